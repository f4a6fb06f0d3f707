"""`alembic upgrade head`, run in code at API and worker start.

Several processes may start at once (N API processes, M workers), so the upgrade runs under
a lock: a PostgreSQL advisory lock, or a file lock beside a SQLite database.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from api.store.db import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same in every process of the service.
ADVISORY_LOCK_ID = 0x7E771701


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision (a no-op when it is already there)."""
    if db.engine.dialect.name == "sqlite":
        target = Path(db.url.removeprefix("sqlite:///")).expanduser()
        with _file_lock(target.with_name(target.name + ".migrate.lock")), \
                db.engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        return
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID})
        conn.commit()
        try:
            with conn.begin():
                command.upgrade(alembic_config(conn), "head")
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID})
            conn.commit()
