"""Hostile input over real HTTP: oversized and overlong uploads, formula injection, unicode
and very long ids, NaN/Infinity in JSON, malformed GeoJSON. Every answer is a plan or a
problem+json naming what is wrong, never a 5xx."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pandas as pd
from openpyxl import load_workbook

from tests.api.harness import wait_for_job

PROBLEM = "application/problem+json"
REPS = b"rep_id,lat,lon,capacity\nR1,33.7,-84.4,100\nR2,34.0,-84.0,100\n"
FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)"]


def upload(client: httpx.Client, accounts: bytes, name: str = "accounts.csv") -> httpx.Response:
    return client.post("/v1/datasets", files={"accounts": (name, accounts, "text/csv"),
                                               "reps": ("reps.csv", REPS, "text/csv")})


def run(client: httpx.Client, accounts: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    reps = [{"rep_id": "R1", "lat": 33.7, "lon": -84.4, "capacity": 100},
            {"rep_id": "R2", "lat": 34.0, "lon": -84.0, "capacity": 100}]
    r = client.post("/v1/jobs", json={"data": {"accounts": accounts, "reps": reps},
                                      "scenario": {"balance": {"workload": {"tolerance": None}},
                                                   "solver": {"time_limit": 10}}})
    assert r.status_code == 202, r.text
    job = wait_for_job(client, r.json()["id"])
    assert job["state"] == "succeeded", job
    return job["id"], client.get(f"/v1/jobs/{job['id']}/result").json()


def test_oversized_upload_is_413(acme: httpx.Client) -> None:
    big = b"account_id,lat,lon,workload\n" + b"A,33.5,-84.1,1\n" * 250_000  # 3.75 MB
    r = upload(acme, big)
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    assert "MAX_REQUEST_BYTES" in r.json()["detail"]


def test_upload_over_the_row_limit_names_it(acme: httpx.Client) -> None:
    # 100,000 rows (1.2 MB, under the byte limit) against MAX_ACCOUNTS = 1,000.
    rows = b"account_id,lat,lon,workload\n" + b"A,1,1,1\n" * 100_000
    r = upload(acme, rows)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["detail"] == ("accounts has more than 1,000 rows, which exceeds this "
                                  "server's limit of 1,000 accounts per job (MAX_ACCOUNTS)")


def test_formulas_never_reach_the_workbook_as_formulas(acme: httpx.Client) -> None:
    accounts = [{"account_id": f, "name": f, "lat": 33.5 + k / 10, "lon": -84.2,
                 "workload": 1} for k, f in enumerate(FORMULAS)]
    job_id, _ = run(acme, accounts)
    xlsx = acme.get(f"/v1/jobs/{job_id}/result.xlsx")
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.content))
    texts = set()
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                texts.add(cell.value)
    assert set(FORMULAS) <= texts
    # CSV is data, not a spreadsheet: it keeps ids exactly as given (a quote prefix would
    # change the ids a planner joins on); the workbook is the file meant for Excel.
    table = pd.read_csv(io.StringIO(acme.get(f"/v1/jobs/{job_id}/result.csv").text), dtype=str)
    assert sorted(table["account_id"]) == sorted(FORMULAS)


def test_unicode_and_very_long_ids_round_trip(acme: httpx.Client) -> None:
    ids = ["Ünïcødé-東京-😀", "x" * 10_000, "ﷺ‮rtl"]
    accounts = [{"account_id": a, "lat": 33.5 + k / 10, "lon": -84.2, "workload": 1}
                for k, a in enumerate(ids)]
    _, result = run(acme, accounts)
    assert sorted(a["account_id"] for a in result["assignments"]) == sorted(ids)


def test_nan_and_infinity_in_json_are_named(acme: httpx.Client) -> None:
    body = ('{"data": {"accounts": [{"account_id": "A", "lat": NaN, "lon": -84, "workload": 1},'
            '{"account_id": "B", "lat": 33, "lon": Infinity, "workload": -Infinity}],'
            '"reps": [{"rep_id": "R", "lat": 33, "lon": -84, "capacity": 1}]}}')
    r = acme.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    found = [(i["source"], i["row"], i["field"], i["message"]) for i in r.json()["issues"]]
    # One issue a cell, showing the value as JSON wrote it, not numpy's repr of it
    # (np.float64(-inf)); -inf is named as not finite, not also as below 0.
    assert sorted(found) == [("accounts", 1, "lat", "is empty"),  # NaN: no value
                             ("accounts", 2, "lon", "must be finite (got inf)"),
                             ("accounts", 2, "workload", "must be finite (got -inf)")]


def test_malformed_geojson_upload_is_422(acme: httpx.Client) -> None:
    bad = json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"account_id": "A", "workload": 1},
         "geometry": {"type": "Point", "coordinates": [1]}}, 7]}).encode()
    r = upload(acme, bad, "accounts.geojson")
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert [(i["row"], i["field"]) for i in r.json()["issues"]] == [(1, "geometry"), (2, None)]
    truncated = upload(acme, bad[:40], "accounts.geojson")
    assert truncated.status_code == 422
    assert "cannot read the file" in truncated.json()["issues"][0]["message"]
