"""Operations: liveness, readiness, Prometheus metrics (no API key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ExecutorDep, MetricsDep
from api.errors import problem
from api.routes.common import problems

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses=problems(503))
def readyz(request: Request, executor: ExecutorDep) -> Any:
    """The database answers and the executor can take jobs (the broker, with celery)."""
    checks: dict[str, str] = {}
    try:
        request.app.state.db.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    checks["executor"] = executor.problem() or f"ok ({executor.name})"
    failing = {k: v for k, v in checks.items() if not v.startswith("ok")}
    if failing:
        detail = "; ".join(f"{k}: {v}" for k, v in failing.items())
        return problem(503, "not-ready", "Not ready", detail)
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", response_class=Response)
def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
