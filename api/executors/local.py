"""The local executor: a few processes beside the API, each running one job at a time.

Nothing else to install or start. Processes are spawned (not forked: the API holds threads
and database connections that must not be copied), take job ids from a queue and run them
through the runner, which writes progress and results to the database itself. A supervisor
thread replaces a process that dies and hands its job back to the queue at once.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import queue as queue_module
import signal
import socket
import threading
from multiprocessing.context import SpawnProcess
from typing import Any

from api.jobs import lifecycle
from api.jobs.runner import RunnerConfig, run_job
from api.logs import configure_logging
from api.store.db import Database

log = logging.getLogger(__name__)
SUPERVISE_SECONDS = 0.5
STOP_GRACE_SECONDS = 2.0
ORPHAN_CHECK_SECONDS = 1.0


def _process_main(jobs: Any, config: RunnerConfig, parent_pid: int) -> None:
    """The loop of one pool process: run job ids until the None sentinel, or until the API
    process is gone (killed without a chance to stop us: we must not linger as orphans)."""
    # Ctrl-C in a terminal reaches the whole process group; the API decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(config.log_level)
    db = Database(config.database_url)
    worker = lifecycle.this_worker()
    while os.getppid() == parent_pid:
        try:
            job_id = jobs.get(timeout=ORPHAN_CHECK_SECONDS)
        except queue_module.Empty:
            continue
        if job_id is None:
            break
        try:
            run_job(job_id, db=db, config=config, worker=worker)
        except Exception:
            # Claim or final write failed (database gone?): the job stays queued or running
            # with a stale heartbeat, and recovery takes it from there.
            log.exception("job could not be run", extra={"job_id": job_id})
    db.dispose()


class LocalExecutor:
    name = "local"

    def __init__(self, config: RunnerConfig, *, workers: int) -> None:
        self._config = config
        self._size = workers
        self._context = multiprocessing.get_context("spawn")
        self._jobs: Any = self._context.Queue()
        self._processes: list[SpawnProcess] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="local-executor",
                                            daemon=True)
        self._db: Database | None = None

    def _spawn(self) -> SpawnProcess:
        process = self._context.Process(target=_process_main,
                                        args=(self._jobs, self._config, os.getpid()),
                                        name="territory-job", daemon=True)
        process.start()
        return process

    def start(self) -> None:
        self._db = Database(self._config.database_url)
        with self._lock:
            self._processes = [self._spawn() for _ in range(self._size)]
        self._supervisor.start()

    def dispatch(self, job_id: str) -> None:
        self._jobs.put(job_id)

    def problem(self) -> str | None:
        with self._lock:
            alive = sum(p.is_alive() for p in self._processes)
        if alive < self._size:
            return f"{alive} of {self._size} local worker processes alive"
        return None

    def _release(self, pid: int | None, why: str, *, counts: bool) -> list[str]:
        assert self._db is not None
        worker = f"{socket.gethostname()}:{pid}"
        with self._db.session() as session:
            return lifecycle.release_worker(session=session, worker=worker, why=why,
                                            max_attempts=self._config.max_attempts,
                                            counts=counts)

    def _supervise(self) -> None:
        while not self._stopping.wait(SUPERVISE_SECONDS):
            with self._lock:
                dead = [p for p in self._processes if not p.is_alive()]
                for process in dead:
                    self._processes.remove(process)
                    if not self._stopping.is_set():
                        self._processes.append(self._spawn())
            for process in dead:
                log.error("local worker process died; replaced",
                          extra={"pid": process.pid, "exitcode": process.exitcode})
                try:
                    requeued = self._release(
                        process.pid, f"its worker process died (exit code {process.exitcode})",
                        counts=True)
                except Exception:
                    log.exception("could not release the jobs of a dead worker process")
                    continue
                for job_id in requeued:
                    self.dispatch(job_id)

    def shutdown(self) -> None:
        """Stop the processes; jobs they were running go back to the queue in the database
        without using up an attempt, so the next start runs them again."""
        self._stopping.set()
        if self._supervisor.is_alive():
            self._supervisor.join()
        with self._lock:
            processes, self._processes = self._processes, []
        # Ids still in the queue are jobs queued in the database: the next start sends them.
        # Drop them first, so idle processes meet the stop sentinel, not a new job.
        try:
            while True:
                self._jobs.get_nowait()
        except (queue_module.Empty, OSError, ValueError):
            pass
        for _ in processes:
            self._jobs.put(None)
        for process in processes:
            process.join(STOP_GRACE_SECONDS / max(len(processes), 1))
        busy = [p for p in processes if p.is_alive()]
        for process in busy:
            process.terminate()
        for process in busy:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
        if self._db is not None:
            for process in busy:
                try:
                    self._release(process.pid, "the service shut down", counts=False)
                except Exception:
                    log.exception("could not re-queue the jobs of a stopped worker process")
            self._db.dispose()
        self._jobs.close()
        self._jobs.join_thread()
        # uvicorn ends by re-raising SIGTERM, so atexit never runs: free the queue's
        # semaphores now (their finalizers run when the queue is collected), or the
        # resource tracker reports them as leaked.
        del processes, busy
        self._jobs = None
        gc.collect()
