"""Dependencies of the routes: the database session, the caller's tenant, settings, executor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from weakref import WeakKeyDictionary

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from api.auth import tenant_for_key
from api.config import Settings
from api.errors import AuthenticationError, UnavailableError
from api.executors.base import Executor
from api.metrics import ServiceMetrics
from api.store.db import Database
from api.store.tables import Tenant

bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                    description="An API key from `territory keys create --tenant T`.")


# A request waits this long for its turn at the database, then is answered 503 (busy).
SESSION_WAIT_SECONDS = 10.0
RETRY_AFTER_SECONDS = 2
# The turns of each Database, per event loop (a semaphore belongs to the loop it runs on).
_turns: RunVar[WeakKeyDictionary[Database, anyio.Semaphore]] = RunVar("territory_db_turns")


def _turns_of(db: Database) -> anyio.Semaphore:
    try:
        turns = _turns.get()
    except LookupError:
        turns = WeakKeyDictionary()
        _turns.set(turns)
    if db not in turns:
        turns[db] = anyio.Semaphore(db.request_sessions)
    return turns[db]


def busy(detail: str) -> UnavailableError:
    """503 problem+json with Retry-After: the server is saturated, not broken."""
    return UnavailableError(f"the server is busy ({detail}); retry shortly",
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's database session. Sync routes and dependencies use it from several
    worker threads in turn, and it may hold a connection while the request waits for the
    next thread; so at most `db.request_sessions` requests hold one at once (the pool has a
    connection for each) and the others wait here, on the event loop, without a thread or
    a connection. Without that limit, requests holding connections waited for threads while
    every thread waited for a connection: the whole API stalled until the pool timed out."""
    db: Database = request.app.state.db
    turns = _turns_of(db)
    try:
        with anyio.fail_after(SESSION_WAIT_SECONDS):
            await turns.acquire()
    except TimeoutError:
        raise busy("no database session free") from None
    try:
        session = db.sessions()
        try:
            yield session
        except PoolTimeoutError as exc:  # the database itself is the bottleneck
            raise busy("no database connection free") from exc
        finally:
            # Closing may roll back on the connection: off the event loop, and not behind
            # the request threads (its own limiter, as FastAPI does for sync dependencies).
            await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))
    finally:
        turns.release()


# The next three only read app state: async, so they cost the request no thread hop.
async def get_settings_of_app(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_executor(request: Request) -> Executor:
    executor: Executor = request.app.state.executor
    return executor


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_of_app)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]


def get_tenant(request: Request, session: SessionDep,
               credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
               ) -> Tenant:
    """The tenant of the API key in `Authorization: Bearer <key>`."""
    if credentials is None:
        raise AuthenticationError("send an API key as 'Authorization: Bearer <key>'")
    # The read stays open into the route's thread (one pool checkout per request); the
    # turns of get_session guarantee the connection it holds meanwhile.
    tenant = tenant_for_key(session=session, key=credentials.credentials)
    if tenant is None:
        raise AuthenticationError("unknown or revoked API key")
    request.state.tenant_id = tenant.id  # for the access log
    return tenant


TenantDep = Annotated[Tenant, Depends(get_tenant)]
