# The API and the controller (CPU only): `ffnas` without a GPU runtime.
# Build from the repository root:  docker build -f docker/api.Dockerfile -t ffnas-api .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# CPU torch first (the analytic/solver paths import search_space only, but the package
# depends on torch); pip then keeps this build instead of pulling CUDA wheels.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY search_space search_space
COPY kernels kernels
COPY workers workers
COPY service service
COPY dashboards dashboards
COPY examples examples
RUN pip install --no-cache-dir ".[nni]"
RUN useradd --create-home ffnas
USER ffnas
EXPOSE 8000
# `ffnas up` is the single-machine default; here each process is its own container.
CMD ["uvicorn", "service.main:app", "--host", "0.0.0.0", "--port", "8000"]
