"""`territory serve | worker | keys` as registered on a typer app."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from api.auth import tenant_for_key
from api.commands import register
from api.store.db import Database
from tests.api.harness import ApiServer, service_env

runner = CliRunner()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[typer.Typer, str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("EXECUTOR", "local")
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test CLI."""

    register(app)
    return app, url


def test_keys_create_and_revoke(cli: tuple[typer.Typer, str]) -> None:
    app, url = cli
    created = runner.invoke(app, ["keys", "create", "--tenant", "acme"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    db = Database(url)
    with db.session() as session:
        tenant = tenant_for_key(session=session, key=key)
        assert tenant is not None and tenant.name == "acme"
    prefix = key.split("_")[1]
    assert runner.invoke(app, ["keys", "revoke", prefix]).exit_code == 0
    with db.session() as session:
        assert tenant_for_key(session=session, key=key) is None
    again = runner.invoke(app, ["keys", "revoke", key])
    assert again.exit_code == 1
    db.dispose()


def test_worker_needs_the_celery_executor(cli: tuple[typer.Typer, str]) -> None:
    app, _ = cli
    result = runner.invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "EXECUTOR=celery" in result.output


def test_bad_settings_are_refused(cli: tuple[typer.Typer, str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    app, _ = cli
    monkeypatch.setenv("DATABASE_URL", "sqlite:///:memory:")
    result = runner.invoke(app, ["keys", "create", "--tenant", "x"])
    assert result.exit_code == 2 and "invalid settings" in result.output


def test_first_serve_prints_a_working_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'first.db'}"
    server = ApiServer(service_env(DATABASE_URL=url, LOCAL_WORKERS=1), tmp_path)
    server.start()
    try:
        key = server.output().strip().splitlines()[-1]
        assert key.startswith("trk_")
        r = httpx.get(server.url + "/v1/jobs", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json() == {"data": [], "count": 0}
    finally:
        server.stop()
