"""Batches: several scenarios over one dataset, and their KPI comparison."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.harness import QUICK_SCENARIO, wait_for


def test_batch_over_inline_data_compares_scenarios(acme: httpx.Client,
                                                   regional: dict[str, Any]) -> None:
    scenarios = [
        {"label": "travel only", "scenario": QUICK_SCENARIO},
        {"label": "move at most 10 %",
         "scenario": {**QUICK_SCENARIO, "disruption": {"max_share": 0.10}}},
        {"label": "impossible", "scenario": {"balance": {"workload": {"min": 5_000}}}},
    ]
    r = acme.post("/v1/batches", json={"data": regional, "scenarios": scenarios})
    assert r.status_code == 202, r.text
    batch = r.json()
    assert len(batch["jobs"]) == 3 and batch["state"] == "running"
    # Inline data are stored once, as a dataset of the tenant.
    dataset = acme.get(f"/v1/datasets/{batch['dataset_id']}").json()
    assert dataset["accounts"] == 372

    def finished() -> dict[str, Any] | None:
        view: dict[str, Any] = acme.get(f"/v1/batches/{batch['id']}").json()
        return view if view["state"] == "finished" else None

    view = wait_for(finished, timeout=180, what="the batch to finish")
    states = {j["label"]: j["state"] for j in view["jobs"]}
    assert states == {"travel only": "succeeded", "move at most 10 %": "succeeded",
                      "impossible": "failed"}
    assert view["counts"] == {"succeeded": 2, "failed": 1}
    rows = {row["label"]: row for row in view["comparison"]}
    assert set(rows) == {"travel only", "move at most 10 %"}
    for row in rows.values():
        assert row["objective"] is not None and row["gap"] is not None
        assert row["travel"] > 0 and row["workload_max_over_fair"] <= 1.1 + 1e-6
    assert rows["move at most 10 %"]["accounts_moved_share"] <= 0.10 + 1e-9
    assert rows["travel only"]["travel"] <= rows["move at most 10 %"]["travel"] * (1 + 0.01)

    listed = acme.get("/v1/jobs", params={"batch_id": batch["id"]}).json()
    assert listed["count"] == 3
    assert batch["id"] in [b["id"] for b in acme.get("/v1/batches").json()["data"]]


def test_batch_problems_name_the_scenario(acme: httpx.Client,
                                          regional: dict[str, Any]) -> None:
    scenarios = [{"scenario": {}}, {"scenario": {"objective": {"travel": "lots"}}}]
    r = acme.post("/v1/batches", json={"data": regional, "scenarios": scenarios})
    assert r.status_code == 422
    assert any(i["source"] == "scenarios[1].scenario" and i["field"] == "objective.travel"
               for i in r.json()["issues"])

    too_many: list[dict[str, Any]] = [{"scenario": {}}] * 6
    r = acme.post("/v1/batches", json={"data": regional, "scenarios": too_many})
    assert r.status_code == 422 and "MAX_BATCH_SCENARIOS" in r.json()["detail"]
    assert acme.post("/v1/batches", json={"data": regional, "scenarios": []}).status_code == 422


def test_a_design_batch_over_inline_accounts(acme: httpx.Client) -> None:
    """Inline data without reps is a design's: it was stored as a realignment's and refused
    ('no reps'). A quota batch, whose tables a dataset cannot hold, is refused by name."""
    accounts = [{"account_id": f"W{i}", "x": float(i % 6), "y": float(i // 6),
                 "workload": 10.0} for i in range(24)]
    scenarios = [{"label": f"{n} territories", "scenario": {
        "mode": "design", "territories": n, "metric": "euclidean",
        "balance": {"workload": {"tolerance": 0.25}}, "solver": {"time_limit": 10}}}
        for n in (2, 3)]
    r = acme.post("/v1/batches", json={"kind": "design", "data": {"accounts": accounts},
                                       "scenarios": scenarios})
    assert r.status_code == 202, r.text
    batch = r.json()

    def finished() -> dict[str, Any] | None:
        view: dict[str, Any] = acme.get(f"/v1/batches/{batch['id']}").json()
        return view if view["state"] == "finished" else None

    view = wait_for(finished, timeout=180, what="the design batch to finish")
    assert view["counts"] == {"succeeded": 2}, view
    for job in view["jobs"]:
        result = acme.get(f"/v1/jobs/{job['id']}/result").json()
        assert len(result["territories"]) == int(job["label"].split()[0])
        assert len(result["assignments"]) == 24

    quota = acme.post("/v1/batches", json={
        "kind": "quota", "data": {"territories": [{"territory_id": "T1", "potential": 1}]},
        "scenarios": [{"scenario": {"goal": 10}}]})
    assert quota.status_code == 422
    assert [(i["source"], i["field"]) for i in quota.json()["issues"]] == [("batch", "kind")]
