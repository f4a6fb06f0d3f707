"""The store and its rules without a server: migrations, settings, keys, the state machine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import select

from api import auth, datasets
from api.config import Settings
from api.errors import StateConflictError
from api.jobs import lifecycle
from api.jobs.runner import RunnerConfig, run_job
from api.schemas import JobState
from api.store.db import Database
from api.store.migrate import upgrade
from api.store.tables import ApiKey, Base, Dataset, Job, utcnow
from tests.api.services import fresh_postgres_database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'var' / 'store.db'}")
    upgrade(database)
    yield database
    database.dispose()


def _schema_differences(db: Database) -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_migrations_create_the_declared_schema(db: Database) -> None:
    upgrade(db)  # twice is a no-op
    assert _schema_differences(db) == []


@pytest.mark.services
def test_migrations_create_the_declared_schema_on_postgresql() -> None:
    with fresh_postgres_database("territory_migrations") as url:
        database = Database(url)
        try:
            upgrade(database)
            assert _schema_differences(database) == []
        finally:
            database.dispose()


def test_settings_refuse_unsafe_values() -> None:
    with pytest.raises(ValidationError, match="needs a database every worker machine"):
        Settings(EXECUTOR="celery", DATABASE_URL="sqlite:///./var/x.db")
    with pytest.raises(ValidationError, match="in-memory"):
        Settings(DATABASE_URL="sqlite:///:memory:")
    with pytest.raises(ValidationError, match="must be sqlite"):
        Settings(DATABASE_URL="mysql://root@localhost/x")
    with pytest.raises(ValidationError, match="Redis URL"):
        Settings(BROKER_URL="amqp://guest@localhost//")
    with pytest.raises(ValidationError, match="3 × JOB_HEARTBEAT_SECONDS"):
        Settings(JOB_HEARTBEAT_SECONDS=10, JOB_STALE_SECONDS=20)
    with pytest.raises(ValidationError):
        Settings(LOCAL_WORKERS=0)
    normalised = Settings(DATABASE_URL="postgres://u@db/territory", EXECUTOR="celery")
    assert normalised.DATABASE_URL == "postgresql+psycopg://u@db/territory"


def test_keys_are_stored_hashed_and_can_be_revoked(db: Database) -> None:
    with db.session() as session:
        issued = auth.create_key(session=session, tenant_name="acme")
        again = auth.create_key(session=session, tenant_name="acme")
    assert issued.key.startswith(f"trk_{issued.prefix}_")
    with db.session() as session:
        rows = session.scalars(select(ApiKey)).all()
        assert all(issued.key not in (r.secret_hash, r.prefix) for r in rows)
        tenant = auth.tenant_for_key(session=session, key=issued.key)
        assert tenant is not None and tenant.name == "acme"
        assert auth.tenant_for_key(session=session, key=again.key) == tenant
        forged = f"trk_{issued.prefix}_{'x' * 43}"
        assert auth.tenant_for_key(session=session, key=forged) is None
        assert auth.revoke_key(session=session, key_or_prefix=issued.key)
    with db.session() as session:
        assert auth.tenant_for_key(session=session, key=issued.key) is None
        assert not auth.revoke_key(session=session, key_or_prefix=issued.prefix)
        assert auth.tenant_for_key(session=session, key=again.key) is not None


def _queued_job(db: Database) -> str:
    with db.session() as session:
        tenant = auth.get_or_create_tenant(session=session, name="t")
        job = Job(tenant_id=tenant.id, kind="align", payload={}, request_hash="h")
        session.add(job)
        session.flush()
        return job.id


def test_a_job_is_claimed_once_and_a_lost_attempt_cannot_write(db: Database) -> None:
    job_id = _queued_job(db)
    with db.session() as session:
        first = lifecycle.claim(session=session, job_id=job_id, worker="elsewhere:1",
                                max_attempts=2)
    with db.session() as session:
        assert lifecycle.claim(session=session, job_id=job_id, worker="elsewhere:2",
                               max_attempts=2) is None
    assert first is not None and first.attempt == 1
    # Silent for too long: re-queued, and the old attempt's writes no longer land.
    with db.session() as session:
        requeued = lifecycle.release_stale(session=session, stale_before=utcnow()
                                           + timedelta(seconds=1), max_attempts=2)
    assert requeued == [job_id]
    with db.session() as session:
        assert lifecycle.heartbeat(session=session, claim=first, progress=None) == (False,
                                                                                    False)
        second = lifecycle.claim(session=session, job_id=job_id, worker="elsewhere:3",
                                 max_attempts=2)
    assert second is not None and second.attempt == 2
    with db.session() as session:
        assert not lifecycle.finish(session=session, claim=first, state=JobState.succeeded)
    # The second attempt is silent too: no attempts left, so it fails with the reason.
    with db.session() as session:
        assert lifecycle.release_stale(session=session, stale_before=utcnow()
                                       + timedelta(seconds=1), max_attempts=2) == []
    with db.session() as session:
        job = session.get_one(Job, job_id)
        assert job.state == JobState.failed
        assert job.error is not None and job.error["type"] == "worker-lost"
        assert "stopped sending heartbeats" in job.error["message"]


def test_a_job_of_a_dead_local_process_is_taken_over(db: Database) -> None:
    job_id = _queued_job(db)
    dead = f"{lifecycle.this_worker().rpartition(':')[0]}:{2**22 + 12345}"
    with db.session() as session:
        assert lifecycle.claim(session=session, job_id=job_id, worker=dead, max_attempts=3)
    with db.session() as session:
        taken = lifecycle.claim(session=session, job_id=job_id, worker="here:1",
                                max_attempts=3)
    assert taken is not None and taken.attempt == 2


def test_a_deleted_datasets_tables_are_gone_and_a_job_that_raced_it_fails_saying_so(
        db: Database) -> None:
    with db.session() as session:
        tenant = auth.get_or_create_tenant(session=session, name="t")
        dataset = Dataset(tenant_id=tenant.id, metric="haversine", accounts_count=1,
                          reps_count=1, accounts_csv="account_id,lat,lon,workload\nA,1,1,1\n",
                          reps_csv="rep_id,lat,lon,capacity\nR,1,1,1\n")
        session.add(dataset)
        session.flush()
        queued = Job(tenant_id=tenant.id, kind="align", payload={}, request_hash="h",
                     dataset_id=dataset.id)
        session.add(queued)
    # As in a request: the service function commits itself.
    with db.sessions() as session, pytest.raises(StateConflictError, match="1 job"):
        datasets.delete_dataset(session=session, tenant=tenant, dataset_id=dataset.id)
    with db.session() as session:
        session.get_one(Job, queued.id).state = JobState.cancelled
    with db.sessions() as session:
        datasets.delete_dataset(session=session, tenant=tenant, dataset_id=dataset.id)
    with db.session() as session:
        # A job submitted by a request that read the dataset just before it went.
        raced = Job(tenant_id=tenant.id, kind="align", payload={}, request_hash="h",
                    dataset_id=dataset.id)
        session.add(raced)
    run_job(raced.id, db=db, config=RunnerConfig(db.url, heartbeat_seconds=1, max_attempts=1),
            worker="here:1")
    with db.session() as session:
        gone = session.get_one(Dataset, dataset.id)
        assert gone.deleted_at is not None and gone.accounts_csv == gone.reps_csv == ""
        assert session.get_one(Job, queued.id).dataset_id == dataset.id  # still says so
        failed = session.get_one(Job, raced.id)
        assert failed.state == JobState.failed and failed.error is not None
        assert failed.error["type"] == "invalid-input"
        assert "was deleted before this job ran" in failed.error["issues"][0]["message"]
