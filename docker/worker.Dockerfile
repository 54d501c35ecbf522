# An evaluation worker for one CUDA GPU (run one container per GPU; see compose.yml).
# Build from the repository root:  docker build -f docker/worker.Dockerfile -t ffnas-worker .
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# CUDA torch (Triton comes with it on Linux).
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128
COPY pyproject.toml README.md ./
COPY search_space search_space
COPY kernels kernels
COPY workers workers
COPY service service
COPY dashboards dashboards
RUN pip install --no-cache-dir .
RUN useradd --create-home ffnas
USER ffnas
# The target name is the GPU's slug (e.g. nvidia-h100-80gb-hbm3); jobs name it as `target`.
ENV FFNAS_TARGET=gpu
CMD ["sh", "-c", "ffnas worker --target \"$FFNAS_TARGET\" --concurrency 1"]
