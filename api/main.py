"""The FastAPI application: `create_app()` wires settings, store, executor and routes.

Run it with `territory serve`, or any ASGI server: `uvicorn --factory api.main:create_app`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.config import Settings, get_settings
from api.errors import document_problems, install_problem_handlers
from api.executors.factory import make_executor
from api.jobs.recovery import RecoveryLoop
from api.metrics import ServiceMetrics
from api.middleware import AccessLog, BodySizeLimit
from api.routes import api_router, health, web
from api.store.db import Database
from api.store.migrate import upgrade

log = logging.getLogger(__name__)

DESCRIPTION = """Sales territory optimization as jobs: submit a scenario with inline data or an
uploaded dataset, follow its progress, fetch the plan. Authenticate with
`Authorization: Bearer <API key>`; every dataset, job and batch belongs to the key's tenant.
Errors are `application/problem+json` with field-level `issues` where input is at fault."""


def _operation_id(route: APIRoute) -> str:
    # Stable ids for generated clients: "jobs-submit_job", "datasets-get_dataset", ...
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = Database(settings.DATABASE_URL, request_sessions=settings.DB_REQUEST_SESSIONS)
    metrics = ServiceMetrics(db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade(db)
        executor = make_executor(settings)
        executor.start()
        app.state.executor = executor
        recovery = RecoveryLoop(db=db, executor=executor, settings=settings)
        recovery.start()
        log.info("service started", extra={"executor": executor.name,
                                           "database": db.engine.dialect.name})
        try:
            yield
        finally:
            recovery.stop()
            executor.shutdown()
            db.dispose()
            log.info("service stopped")

    app = FastAPI(title="Territory optimizer", version="1", description=DESCRIPTION,
                  lifespan=lifespan, generate_unique_id_function=_operation_id)
    app.state.settings = settings
    app.state.db = db
    app.state.metrics = metrics
    install_problem_handlers(app)
    document_problems(app)
    app.include_router(api_router)
    app.include_router(health.router)
    app.include_router(web.router)
    web.mount_static(app)
    # Added last = outermost: the size limit applies before anything reads the body.
    app.add_middleware(AccessLog, metrics=metrics)
    app.add_middleware(BodySizeLimit, limit=settings.MAX_REQUEST_BYTES)
    return app
