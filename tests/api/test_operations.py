"""Operations endpoints, OpenAPI and the logs."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.api.conftest import LocalService
from tests.api.harness import QUICK_SCENARIO, metric_value, wait_for_job


def test_health_readiness_and_docs(local_service: LocalService) -> None:
    with local_service.server.client(None) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        ready = anonymous.get("/readyz").json()
        assert ready["status"] == "ready"
        assert ready["checks"] == {"database": "ok", "executor": "ok (local)"}
        assert "swagger" in anonymous.get("/docs").text.lower()
        schema = anonymous.get("/openapi.json").json()
        assert schema["paths"]["/v1/jobs"]["post"]["operationId"] == "jobs-submit_job"
        assert "ApiKey" in schema["components"]["securitySchemes"]


def test_metrics_count_submitted_and_finished_jobs(acme: httpx.Client,
                                                   regional: dict[str, Any]) -> None:
    before = acme.get("/metrics").text
    job = acme.post("/v1/jobs", json={"data": regional, "scenario": QUICK_SCENARIO}).json()
    assert wait_for_job(acme, job["id"])["state"] == "succeeded"
    after = acme.get("/metrics").text
    for name, labels in (("territory_jobs_submitted_total", {"kind": "align"}),
                         ("territory_jobs_finished_total", {"kind": "align",
                                                            "state": "succeeded"}),
                         ("territory_job_run_seconds_count", {"kind": "align",
                                                              "state": "succeeded"})):
        assert metric_value(after, name, **labels) >= metric_value(before, name, **labels) + 1, name
    assert metric_value(after, "territory_http_requests_total", route="jobs-get_job") >= 1


def test_logs_are_json_without_keys_or_data(local_service: LocalService,
                                            acme: httpx.Client,
                                            regional: dict[str, Any]) -> None:
    job = acme.post("/v1/jobs", json={"data": regional, "scenario": QUICK_SCENARIO}).json()
    wait_for_job(acme, job["id"])
    acme.post("/v1/jobs", json={"data": {"accounts": [{"account_id": "SECRET-ROW"}],
                                         "reps": regional["reps"]}})
    lines = [json.loads(line) for line in local_service.server.errors().splitlines() if line]
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    assert any(line.get("job_id") == job["id"] and line["msg"] == "job finished"
               for line in lines)
    assert any(line["msg"] == "request" and line.get("route") == "jobs-submit_job"
               for line in lines)
    text = local_service.server.errors()
    for secret in (*local_service.keys.values(), "SECRET-ROW", regional["accounts"][0]["name"]):
        assert secret not in text
