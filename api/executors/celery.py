"""The celery executor: `territory worker` processes on any number of machines take job ids
from Redis (BROKER_URL); jobs, progress and results stay in the database.

Delivery is at-least-once and the database makes it exactly-once-in-effect:
- acks_late: a message is acknowledged only after its job ran, so a worker that dies while
  running leaves it in the broker; reject_on_worker_lost re-queues it at once when the pool
  process dies under a live worker (SIGKILL, OOM), and the run_job claim takes the job over
  because its recorded process is gone;
- a whole worker machine that dies leaves its job 'running' with a stale heartbeat; the API's
  recovery loop re-queues it (or fails it after JOB_MAX_ATTEMPTS) and dispatches it anew;
- a duplicate message (re-dispatch after a restart, broker redelivery) finds the job claimed
  or finished and does nothing.
One job at a time per worker process: prefetch multiplier 1 and a pool of --concurrency
processes (default 1).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_process_init

from api.config import Settings
from api.executors.factory import runner_config
from api.jobs import lifecycle
from api.jobs.runner import RunnerConfig, run_job
from api.store.db import DEFAULT_REQUEST_SESSIONS, Database

log = logging.getLogger(__name__)
TASK_NAME = "territory.run_job"
BROKER_PING_SECONDS = 2.0
# A broker that hangs without closing the connection (failover, a dropped route) must not
# hang a submission forever: its publish gives up after this long and recovery re-sends.
BROKER_SOCKET_SECONDS = 5.0
# Broker connections (kombu's producer pool) of one API process: one per request that may
# hold a session (api.store.db) plus the recovery loop, so no publish waits for a producer.
BROKER_POOL_LIMIT = DEFAULT_REQUEST_SESSIONS + 2

# One database handle per worker pool process, made after the fork (never inherited).
_process_db: dict[int, Database] = {}


@worker_process_init.connect
def _forget_parent_database(**_kwargs: Any) -> None:
    _process_db.clear()


def _database(url: str) -> Database:
    pid = os.getpid()
    if pid not in _process_db:
        _process_db.clear()
        _process_db[pid] = Database(url)
    return _process_db[pid]


def make_celery(settings: Settings) -> Celery:
    """The celery app of the service, configured from the settings."""
    app = Celery("territory", broker=settings.BROKER_URL, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.CELERY_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # results live in the database, not the broker
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_pool_limit=BROKER_POOL_LIMIT,
        # Unacknowledged messages of a vanished worker come back after this long; the
        # heartbeat recovery usually re-runs the job much sooner, the claim drops the copy.
        broker_transport_options={"visibility_timeout": max(3_600.0,
                                                            settings.MAX_TIME_LIMIT * 2),
                                  "socket_timeout": BROKER_SOCKET_SECONDS,
                                  "socket_connect_timeout": BROKER_SOCKET_SECONDS},
    )
    config = runner_config(settings)

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def run_job_task(job_id: str) -> None:
        _run(job_id, config)

    return app


def _run(job_id: str, config: RunnerConfig) -> None:
    run_job(job_id, db=_database(config.database_url), config=config,
            worker=lifecycle.this_worker())


class CeleryExecutor:
    name = "celery"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app = make_celery(settings)

    def start(self) -> None:
        pass  # the broker connection is made on first dispatch

    def dispatch(self, job_id: str) -> None:
        self._app.send_task(TASK_NAME, args=[job_id], queue=self._settings.CELERY_QUEUE,
                            retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2,
                                                      "interval_step": 0.5})

    def problem(self) -> str | None:
        client = redis.Redis.from_url(self._settings.BROKER_URL,
                                      socket_connect_timeout=BROKER_PING_SECONDS,
                                      socket_timeout=BROKER_PING_SECONDS)
        try:
            client.ping()
        except redis.RedisError as exc:
            return f"broker unreachable ({type(exc).__name__})"
        finally:
            client.close()
        return None

    def shutdown(self) -> None:
        self._app.close()


def run_worker(settings: Settings, *, concurrency: int, name: str | None = None) -> None:
    """Run a celery worker in this process (blocks): `territory worker`."""
    app = make_celery(settings)
    node = name or f"territory-{os.getpid()}@{socket.gethostname()}"
    app.worker_main([
        "worker", f"--concurrency={concurrency}", f"--queues={settings.CELERY_QUEUE}",
        f"--hostname={node}", f"--loglevel={settings.LOG_LEVEL}", "--pool=prefork",
        "--without-gossip", "--without-mingle",
    ])
