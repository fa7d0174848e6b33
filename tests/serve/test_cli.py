"""``referee keys`` and ``referee serve`` registration, on a typer app of the test's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from referee.serve import cli
from referee.store import DecisionStore


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    cli.register(app)
    return app


def test_keys_create_list_revoke(app: typer.Typer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    runner = CliRunner()
    made = runner.invoke(app, ["keys", "create", "--name", "svc", "--scope", "moderate", "--scope", "read",
                               "--db-url", url])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    store = DecisionStore(url)
    key_id, scopes = store.check_key(key)
    assert scopes == {"moderate", "read"}

    listed = runner.invoke(app, ["keys", "list", "--db-url", url])
    assert key_id in listed.stdout and "active" in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout  # the secret is never shown again

    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--db-url", url])
    assert revoked.exit_code == 0
    assert "revoked" in runner.invoke(app, ["keys", "list", "--db-url", url]).stdout
    store.close()


def test_unknown_scope_is_refused(app: typer.Typer, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["keys", "create", "--name", "x", "--scope", "write",
                                 "--db-url", f"sqlite:///{tmp_path / 'k.db'}"])
    assert r.exit_code == 2
    assert "moderate, read, admin" in r.output


def test_revoking_an_unknown_key_fails(app: typer.Typer, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["keys", "revoke", "nope", "--db-url", f"sqlite:///{tmp_path / 'k.db'}"])
    assert r.exit_code == 2 and "no key 'nope'" in r.output


def test_serve_is_registered_with_its_options(app: typer.Typer) -> None:
    r = CliRunner().invoke(app, ["serve", "--help"])
    assert r.exit_code == 0
    for option in ("--host", "--port", "--policy", "--db-url", "--workers"):
        assert option in r.output
