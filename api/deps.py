"""Dependencies of the routes: the database session, the caller's tenant, settings, executor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.auth import tenant_for_key
from api.config import Settings
from api.errors import AuthenticationError
from api.executors.base import Executor
from api.metrics import ServiceMetrics
from api.store.tables import Tenant

bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                    description="An API key from `territory keys create --tenant T`.")


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.db.sessions() as session:
        yield session


def get_settings_of_app(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_executor(request: Request) -> Executor:
    executor: Executor = request.app.state.executor
    return executor


def get_metrics(request: Request) -> ServiceMetrics:
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
    tenant = tenant_for_key(session=session, key=credentials.credentials)
    if tenant is None:
        raise AuthenticationError("unknown or revoked API key")
    request.state.tenant_id = tenant.id  # for the access log
    return tenant


TenantDep = Annotated[Tenant, Depends(get_tenant)]
