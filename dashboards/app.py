"""Serve the dashboard's static files from the API process.

`mount_dashboard(app)` is called last by `service.main.create_app()`, so the `/api` and
`/docs` routes registered before it win. The page reads only the HTTP API; every asset,
the plotting library included, comes from this origin so the dashboard works with no
internet access (issue 8 §3).
"""

from __future__ import annotations

import logging
from pathlib import Path

import plotly
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# plotly's Python package ships the full JS bundle (about 4.8 MB for plotly 6/7); serving it
# from the installed package avoids both a CDN and a 4.8 MB copy in the repository.
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"

# The static files change with the package version, not between requests; a short max-age
# keeps reloads fast while a new install is picked up within minutes.
_CACHE_HEADERS = {"Cache-Control": "public, max-age=300"}


def plotly_js_path() -> Path:
    """Path of the plotly bundle inside the installed `plotly` package.

    Raises:
        FileNotFoundError: the installed plotly has no `package_data/plotly.min.js`.
    """
    if not PLOTLY_JS.is_file():
        raise FileNotFoundError(
            f"the dashboard serves plotly.min.js from the installed plotly package, but "
            f"{PLOTLY_JS} does not exist (plotly {plotly.__version__}); reinstall plotly>=5.20"
        )
    return PLOTLY_JS


def mount_dashboard(app: FastAPI) -> None:
    """Serve `dashboards/static/` at `/` and plotly at `/static/vendor/plotly.min.js`."""
    plotly_path = plotly_js_path()

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_bundle() -> FileResponse:
        return FileResponse(plotly_path, media_type="text/javascript", headers=_CACHE_HEADERS)

    @app.get("/", include_in_schema=False)
    def dashboard_index() -> FileResponse:
        # no-cache on the entry page so a new release's module URLs are always fetched.
        return FileResponse(
            STATIC_DIR / "index.html",
            media_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    logger.debug("dashboard mounted from %s (plotly %s)", STATIC_DIR, plotly.__version__)
