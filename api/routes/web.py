"""The planner web page: `/` answers index.html; `/static/` serves its script and style and
`/static/leaflet/` the Leaflet files vendored in the optimizer (the page loads nothing from a
CDN, so it works offline and behind a firewall)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

import optimizer

STATIC = Path(__file__).resolve().parents[1] / "static"
LEAFLET = Path(optimizer.__file__).resolve().parent / "assets" / "leaflet"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    # no-cache: the page is tiny, and a stale copy after an upgrade would talk to a new API.
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def mount_static(app: FastAPI) -> None:
    """Mount the page's files; the more specific /static/leaflet goes first so it wins."""
    app.mount("/static/leaflet", StaticFiles(directory=LEAFLET), name="leaflet")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
