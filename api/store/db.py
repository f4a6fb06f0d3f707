"""Engines and sessions. One `Database` per process (the API, each worker process)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

# SQLite writers wait this long for each other (the API and its worker processes share a file).
SQLITE_BUSY_MS = 30_000
# One number sizes an API process's use of the database: at most this many requests hold a
# session at once (the others wait for a turn on the event loop, holding neither a thread nor
# a connection; see api.deps.get_session). The pool holds one connection per such request
# plus BACKGROUND_CONNECTIONS for the recovery loop, /metrics and /readyz, so a request never
# waits for a connection while holding one, which is what deadlocked the pool under load.
DEFAULT_REQUEST_SESSIONS = 20
BACKGROUND_CONNECTIONS = 5
# A checkout that still waits this long means the database is the bottleneck: the request
# is answered 503 (busy, retry later) instead of hanging.
POOL_TIMEOUT_SECONDS = 10.0


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a worker process writes progress.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, *, connections: int,
                pool_timeout: float = POOL_TIMEOUT_SECONDS) -> Engine:
    """An engine whose pool holds at most `connections` (opened as needed, then kept)."""
    pool = {"pool_size": connections, "max_overflow": 0, "pool_timeout": pool_timeout}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True,
                                                                      exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000,
                                                  "check_same_thread": False}, **pool)
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


class Database:
    """An engine and its session factory, for `request_sessions` concurrent requests."""

    def __init__(self, url: str, *, request_sessions: int = DEFAULT_REQUEST_SESSIONS,
                 pool_timeout: float = POOL_TIMEOUT_SECONDS) -> None:
        if request_sessions < 1:
            raise ValueError("request_sessions must be at least 1")
        self.url = url
        self.request_sessions = request_sessions
        self.engine = make_engine(url, connections=request_sessions + BACKGROUND_CONNECTIONS,
                                  pool_timeout=pool_timeout)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
