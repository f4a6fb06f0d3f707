"""`territory serve | worker | keys`: the service's commands, added to the `territory` CLI
with `register(app)`.

The service's modules are imported inside the commands, so registering them costs the
optimizer's own commands (`territory align` ...) no start-up time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from api.config import Settings
    from api.store.db import Database

DEFAULT_TENANT = "default"


def _settings(*, json_logs: bool = False) -> Settings:
    """The settings from the environment; long-running commands also switch to JSON logs."""
    from api.config import Settings
    from api.logs import configure_logging

    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    if json_logs:
        configure_logging(settings.LOG_LEVEL)
    return settings


def _migrated_database(settings: Settings) -> Database:
    from api.store.db import Database
    from api.store.migrate import upgrade

    db = Database(settings.DATABASE_URL)
    upgrade(db)
    return db


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="API processes (uvicorn workers).")] = 1,
) -> None:
    """Run the HTTP API (with the local executor, jobs run in processes beside it)."""
    import uvicorn

    from api import auth

    db = _migrated_database(_settings(json_logs=True))
    with db.session() as session:
        first_start = auth.active_key_count(session=session) == 0
        issued = auth.create_key(session=session, tenant_name=DEFAULT_TENANT) \
            if first_start else None
    db.dispose()
    if issued is not None:
        typer.echo(f"No API keys yet: created tenant {issued.tenant!r} and this key "
                   "(shown once; use it as 'Authorization: Bearer <key>'):")
        typer.echo(issued.key)
    uvicorn.run("api.main:create_app", factory=True, host=host, port=port, workers=workers,
                log_config=None, access_log=False, timeout_graceful_shutdown=10)


def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at once (one process each).")] = 1,
) -> None:
    """Run a distributed worker (EXECUTOR=celery): takes jobs from BROKER_URL's Redis."""
    settings = _settings()
    if settings.EXECUTOR != "celery":
        typer.echo("error: `territory worker` serves EXECUTOR=celery; set EXECUTOR, "
                   "DATABASE_URL (PostgreSQL) and BROKER_URL", err=True)
        raise typer.Exit(2)
    from api.executors.celery import run_worker
    from api.logs import configure_logging

    configure_logging(settings.LOG_LEVEL)
    _migrated_database(settings).dispose()
    run_worker(settings, concurrency=concurrency)


def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant name (created if new).")],
) -> None:
    """Create an API key for a tenant; the key is printed alone on the last line."""
    from api import auth

    db = _migrated_database(_settings())
    with db.session() as session:
        issued = auth.create_key(session=session, tenant_name=tenant)
    db.dispose()
    typer.echo(f"API key for tenant {issued.tenant!r} (prefix {issued.prefix}; shown once):")
    typer.echo(issued.key)


def keys_revoke(
    key_or_prefix: Annotated[str, typer.Argument(help="The key, or its prefix.")],
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    from api import auth

    db = _migrated_database(_settings())
    with db.session() as session:
        revoked = auth.revoke_key(session=session, key_or_prefix=key_or_prefix)
    db.dispose()
    if not revoked:
        typer.echo("error: no active key with that prefix", err=True)
        raise typer.Exit(1)
    typer.echo("revoked")


def register(app: typer.Typer) -> None:
    """Add serve, worker and keys to a typer app (the `territory` CLI)."""
    app.command("serve")(serve)
    app.command("worker")(worker)
    keys = typer.Typer(help="API keys.", no_args_is_help=True)
    keys.command("create")(keys_create)
    keys.command("revoke")(keys_revoke)
    app.add_typer(keys, name="keys")
