"""``referee serve`` and ``referee keys``: numeric options are range-checked, user text is shown verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from referee.serve import cli


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    cli.register(app)
    return app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "0"], "'--port': Input should be greater than or equal to 1"),
        (["--port", "65536"], "'--port': Input should be less than or equal to 65535"),
        (["--port", "8e3"], "'--port': Input should be a valid integer"),
        (["--workers", "0"], "'--workers': Input should be greater than or equal to 1"),
        (["--workers", "100000"], f"'--workers': Input should be less than or equal to {cli.MAX_WORKERS}"),
    ],
)
def test_serve_refuses_out_of_range_numbers(app: typer.Typer, args: list[str], message: str) -> None:
    r = CliRunner().invoke(app, ["serve", *args])
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split())


def test_serve_help_names_the_environment_variables(app: typer.Typer) -> None:
    # Square brackets in a help text are Rich markup: "[env REFEREE_HOST]" used to vanish.
    text = " ".join(CliRunner().invoke(app, ["serve", "--help"]).output.split())
    for variable in ("REFEREE_HOST", "REFEREE_PORT", "REFEREE_POLICY", "REFEREE_DB_URL"):
        assert variable in text


def test_keys_messages_show_user_text_verbatim(app: typer.Typer, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["keys", "revoke", "[red]x", "--db-url", f"sqlite:///{tmp_path / 'k.db'}"])
    assert r.exit_code == 2 and "no key '[red]x'" in r.output


def test_a_single_process_server_does_not_watch_a_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    watched: list[int] = []
    monkeypatch.setattr(cli, "watch_parent", watched.append)
    monkeypatch.setattr("referee.serve.app.app_from_env", lambda: "app")
    monkeypatch.delenv(cli.SUPERVISOR_PID_ENV, raising=False)
    assert cli.worker_app() == "app" and watched == []
    monkeypatch.setenv(cli.SUPERVISOR_PID_ENV, "424242")
    assert cli.worker_app() == "app" and watched == [424242]
