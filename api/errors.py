"""Service errors and their HTTP form: RFC 9457 problem details (application/problem+json).

Services raise the ServiceError subclasses below (or the optimizer's InputError); only the
handlers here turn them into responses, so no service knows about HTTP.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import Problem
from optimizer.errors import InputError, Issue

PROBLEM_JSON = "application/problem+json"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An expected failure with an HTTP status and a problem type slug."""

    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


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
    headers = dict(exc.headers or {})
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    return problem(exc.status, exc.slug, exc.title, exc.detail, headers=headers or None)


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


def _path_matches(template: str, path: str) -> bool:
    want, got = template.strip("/").split("/"), path.strip("/").split("/")
    return len(want) == len(got) and all(
        w == g or (w.startswith("{") and w.endswith("}") and g != "")
        for w, g in zip(want, got, strict=True))


def _allowed_methods(request: Request) -> str | None:
    """The methods the OpenAPI document lists for this path. Starlette's 405 names only the
    first route matching the path, but GET and POST of one path are separate routes here."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if _path_matches(template, request.url.path):
            methods |= {m.upper() for m in operations if m.upper() in HTTP_METHODS}
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    return ", ".join(sorted(methods)) or None


def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {400: "bad-request", 404: "not-found",
            405: "method-not-allowed"}.get(exc.status_code, "http-error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return problem(exc.status_code, slug, str(exc.detail), str(exc.detail), headers=headers)


def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return problem(500, "internal-error", "Internal error", "the server failed; see its log")


def document_problems(app: FastAPI) -> None:
    """Document every error answer as it is sent: application/problem+json with the Problem
    schema. (FastAPI documents its own 422 as application/json with a body we never send,
    and a `model` adds an application/json entry beside problem+json.)"""
    generate = app.openapi
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        document = generate()  # cached by FastAPI until the routes change
        if done and done[0] is document:
            return document
        done[:] = [document]
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema())
        content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path in document.get("paths", {}).values():
            for operation in path.values():
                if "requestBody" in operation:  # a body that is not even UTF-8/JSON/multipart
                    operation["responses"].setdefault("400", {
                        "description": "The body cannot be parsed"})
                for status, response in operation.get("responses", {}).items():
                    if str(status)[:1] in ("4", "5"):
                        response["content"] = copy.deepcopy(content)
                        if status == "422" and response.get("description") == \
                                "Validation Error":
                            response["description"] = "Invalid request (field-level issues)"
        text = json.dumps(document["paths"])
        for unused in ("HTTPValidationError", "ValidationError"):
            if f"#/components/schemas/{unused}" not in text:
                schemas.pop(unused, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(InputError, _on_input_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
