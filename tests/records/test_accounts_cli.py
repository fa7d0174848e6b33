"""``referee accounts sync|show|outbox`` and ``referee notices list|route|outcomes`` on a SQLite store."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from referee.cli import app
from referee.engine import Engine
from referee.model import ContentItem
from referee.policy import Policy
from referee.records.notices import file_notice
from referee.records.review import ReviewDesk
from referee.store import Store
from tests.serve.conftest import DEFAULT_POLICY, HashtagDetector

runner = CliRunner()


def test_accounts_and_notices_from_the_command_line(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    policy = Policy.from_file(DEFAULT_POLICY)
    store = Store(url)
    with Engine(policy, [HashtagDetector()], sink=store.log) as engine:
        engine.moderate_many([ContentItem(id=f"c-{n}", surface="comment", text="#hate", author_id="u1", country="DE")
                              for n in range(2)])
    file_notice(ReviewDesk(store, policy), "Scam.", url="https://example.org/z")
    store.close()
    args = ["--db-url", url, "--policy", str(DEFAULT_POLICY)]

    synced = runner.invoke(app, ["accounts", "sync", *args])
    assert synced.exit_code == 0, synced.output
    [line] = [ln for ln in synced.stdout.splitlines() if ln.startswith("{")]
    assert json.loads(line)["action"] == "warn"
    shown = runner.invoke(app, ["accounts", "show", "u1", *args])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["points"] == 4
    outbox = runner.invoke(app, ["accounts", "outbox", "--after", "0", *args])
    assert [json.loads(ln)["kind"] for ln in outbox.stdout.splitlines()] == ["impose"]

    listed = runner.invoke(app, ["notices", "list", "--status", "unrouted", *args])
    [notice] = [json.loads(ln) for ln in listed.stdout.splitlines()]
    assert notice["url"] == "https://example.org/z" and "notifier_contact" not in notice
    routed = runner.invoke(app, ["notices", "route", "--notice", notice["notice_id"], "--item", "c-0", *args])
    assert routed.exit_code == 0 and "routed 1" in routed.stdout
    half = runner.invoke(app, ["notices", "route", "--notice", notice["notice_id"], *args])
    assert half.exit_code == 2
    assert runner.invoke(app, ["notices", "outcomes", *args]).stdout == ""  # nothing decided yet
