"""HTTP routes, one router per resource; `api_router` gathers the versioned ones."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import batches, bundled, datasets, jobs

api_router = APIRouter(prefix="/v1")
api_router.include_router(jobs.router)
api_router.include_router(batches.router)
api_router.include_router(datasets.router)
api_router.include_router(bundled.router)
