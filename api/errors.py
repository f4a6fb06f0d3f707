"""Service errors and their HTTP form: RFC 9457 problem details (application/problem+json).

Services raise the ServiceError subclasses below (or the optimizer's InputError); only the
handlers here turn them into responses, so no service knows about HTTP.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from optimizer.errors import InputError, Issue

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An expected failure with an HTTP status and a problem type slug."""

    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class NotReadyError(ServiceError):
    status, slug, title = 409, "not-ready", "Result not available"


class StateConflictError(ServiceError):
    status, slug, title = 409, "state-conflict", "Not possible in the job's state"


class IdempotencyMismatchError(ServiceError):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key reused"


class UnsupportedKindError(ServiceError):
    status, slug, title = 422, "unsupported-kind", "Unsupported job kind"


class LimitExceededError(ServiceError):
    status, slug, title = 422, "limit-exceeded", "Limit exceeded"


class AuthenticationError(ServiceError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class UnavailableError(ServiceError):
    status, slug, title = 503, "unavailable", "Service unavailable"


def issue_dict(issue: Issue) -> dict[str, Any]:
    return {"source": issue.source, "row": issue.row, "field": issue.field,
            "message": issue.message}


def problem(status: int, slug: str, title: str, detail: str, *,
            issues: list[Issue] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status,
                            "detail": detail}
    if issues is not None:
        body["issues"] = [issue_dict(i) for i in issues]
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_issues(exc: RequestValidationError) -> list[Issue]:
    """Pydantic's error locations, read as (source, row, field) like the optimizer's issues.

    ("body", "data", "accounts", 3, "lat", ...) becomes source accounts, row 4, field lat;
    a cell that is none of the allowed types gives one issue, not one per type tried.
    """
    issues: list[Issue] = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        source, rest = (str(loc[0]), loc[1:]) if loc else ("request", [])
        row: int | None = None
        message = str(err.get("msg", "invalid"))
        if len(rest) >= 3 and rest[0] == "data" and isinstance(rest[2], int):
            source, row, rest = str(rest[1]), rest[2] + 1, rest[3:]
            if len(rest) > 1:  # the union of cell types, branch by branch
                rest, message = rest[:1], "a cell must be text, a number, true/false or null"
        issue = Issue(source, row, ".".join(str(x) for x in rest) or None, message)
        if issue not in issues:
            issues.append(issue)
    return issues


def _on_service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
    return problem(exc.status, exc.slug, exc.title, exc.detail, headers=headers)


def _on_input_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    n = len(exc.issues)
    return problem(422, "invalid-input", "Invalid input",
                   f"{n} problem{'s' if n != 1 else ''} in the input; see issues",
                   issues=exc.issues)


def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    issues = _validation_issues(exc)
    return problem(422, "invalid-request", "Invalid request",
                   f"{len(issues)} problem(s) in the request; see issues", issues=issues)


def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    return problem(exc.status_code, slug, str(exc.detail), str(exc.detail),
                   headers=dict(exc.headers or {}))


def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return problem(500, "internal-error", "Internal error", "the server failed; see its log")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(InputError, _on_input_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
