"""Bits shared by the routers: paging parameters and documented problem answers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from api.errors import PROBLEM_JSON
from api.schemas import Problem

Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
# Bounded: the databases take 64-bit offsets, and a bigger number was a 500.
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip.")]


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for problem+json answers."""
    described = {401: "Missing, unknown or revoked API key", 404: "No such id for this tenant",
                 409: "Not possible in the current state", 413: "Request too large",
                 422: "Invalid request or input (field-level issues)"}
    return {s: {"model": Problem, "description": described.get(s, "Problem"),
                "content": {PROBLEM_JSON: {}}} for s in statuses}
