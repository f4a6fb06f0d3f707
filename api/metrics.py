"""Prometheus metrics at /metrics.

Requests and submissions are counted by the API process that served them. Job outcomes and
run times are read from the database at scrape time, because jobs finish in other processes
(local pool, celery workers on other machines): every API process then reports the same,
cluster-wide numbers, so scrape one of them or aggregate with max(), not sum().
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from api.schemas import FINISHED_STATES
from api.store.db import Database
from api.store.tables import Job

RUN_SECONDS_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3_600.0)


class JobStoreCollector(Collector):
    """Job counts by kind and state, and run-time histograms, from the job table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        finished = CounterMetricFamily(
            "territory_jobs_finished", "Jobs that reached an end state (all processes).",
            labels=["kind", "state"])
        waiting = GaugeMetricFamily("territory_jobs_active", "Jobs queued or running now.",
                                    labels=["kind", "state"])
        durations = HistogramMetricFamily(
            "territory_job_run_seconds", "Run time of finished jobs (last attempt).",
            labels=["kind", "state"])
        bucket_columns = [func.sum(case((Job.run_seconds <= b, 1), else_=0))
                          for b in RUN_SECONDS_BUCKETS]
        query = (select(Job.kind, Job.state, func.count(), func.count(Job.run_seconds),
                        func.coalesce(func.sum(Job.run_seconds), 0.0), *bucket_columns)
                 .group_by(Job.kind, Job.state))
        with self._db.sessions() as session:
            rows = session.execute(query).all()
        for kind, state, count, timed, total, *buckets in rows:
            if state in FINISHED_STATES:
                finished.add_metric([kind, state], count)
                cumulative = [(f"{b:g}", float(n or 0)) for b, n in
                              zip(RUN_SECONDS_BUCKETS, buckets, strict=True)]
                durations.add_metric([kind, state], [*cumulative, ("+Inf", float(timed))],
                                     float(total or 0.0))
            else:
                waiting.add_metric([kind, state], count)
        yield finished
        yield waiting
        yield durations


class ServiceMetrics:
    """The metrics of one app instance, in their own registry (several apps per test run)."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.jobs_submitted = Counter(
            "territory_jobs_submitted", "Jobs accepted by this API process.", ["kind"],
            registry=self.registry)
        self.requests = Counter(
            "territory_http_requests", "HTTP requests served by this API process.",
            ["method", "route", "status"], registry=self.registry)
        self.request_seconds = Histogram(
            "territory_http_request_seconds", "HTTP request latency.", ["method", "route"],
            registry=self.registry)
        self.registry.register(JobStoreCollector(db))

