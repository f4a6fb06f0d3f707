"""The heartbeat of a running job: a thread beside the solve that, every interval, writes a
heartbeat and the newest progress to the database and reads the cancel flag back.

The solver's callbacks only touch memory (progress is kept, should_stop reads an Event), so
a fast stream of HiGHS callbacks never turns into a stream of database writes.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from api.jobs.lifecycle import Claim, heartbeat
from api.store.db import Database
from api.store.tables import utcnow
from optimizer.solve import Progress

log = logging.getLogger(__name__)


def progress_document(p: Progress) -> dict[str, Any]:
    return {"phase": p.phase, "elapsed": round(p.elapsed, 3), "incumbent": p.incumbent,
            "bound": p.bound, "gap": p.gap, "message": p.message,
            "updated_at": utcnow().isoformat()}


class JobMonitor:
    """Use as a context manager around the solve of one claimed attempt."""

    def __init__(self, *, db: Database, claim: Claim, interval: float) -> None:
        self._db = db
        self._claim = claim
        self._interval = interval
        self._latest: dict[str, Any] | None = None  # not yet written
        self.last_progress: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._stop_asked = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{claim.job_id}",
                                        daemon=True)
        self.lost = False  # the job was given to another attempt meanwhile

    def report(self, progress: Progress) -> None:
        """The solver's progress callback."""
        document = progress_document(progress)
        with self._lock:
            self._latest = self.last_progress = document

    def should_stop(self) -> bool:
        """The solver's stop check: cancellation asked, or the attempt is no longer ours."""
        return self._stop_asked.is_set()

    def _take_progress(self) -> dict[str, Any] | None:
        with self._lock:
            latest, self._latest = self._latest, None
        return latest

    def _beat(self) -> None:
        while not self._done.wait(self._interval):
            try:
                with self._db.session() as session:
                    ours, cancel = heartbeat(session=session, claim=self._claim,
                                             progress=self._take_progress())
            except Exception as exc:  # a database hiccup must not kill the solve
                log.warning("heartbeat failed: %s", type(exc).__name__,
                            extra={"job_id": self._claim.job_id})
                continue
            if not ours:
                self.lost = True
            if cancel or not ours:
                self._stop_asked.set()

    def __enter__(self) -> JobMonitor:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join()
