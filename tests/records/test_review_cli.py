"""The CLI: reviewers add, review sync/queues/sample/agreement, labels export."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from referee.cli import app
from referee.eval.datasets import Row
from referee.model import Action
from referee.records.reviewers import check_password
from referee.store import Store
from tests.records.test_review import POLICY, automated, make_item, put


def test_the_review_commands_end_to_end(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    store = Store(url)
    for n in range(3):
        it = make_item(n, country="DE" if n == 0 else None)
        put(store, it, automated(it, action=Action.hold_for_review if n < 2 else Action.allow))
    run = CliRunner()
    common = ["--db-url", url, "--policy", str(policy)]
    r = run.invoke(app, ["reviewers", "add", "alice", "--queue", "general", "--queue", "eu", "--password-stdin",
                         "--db-url", url], input="correct horse\n")
    assert r.exit_code == 0, r.output
    assert check_password(store, "alice", "correct horse") is not None
    assert check_password(store, "alice", "wrong") is None
    r = run.invoke(app, ["review", "sync", *common])
    assert r.exit_code == 0 and "queued 2 task(s)" in r.output, r.output
    r = run.invoke(app, ["review", "queues", *common])
    lines = {line.split()[0]: line.split()[1:] for line in r.output.splitlines()[1:]}
    assert lines["general"][0] == "1" and lines["eu"][0] == "1", r.output
    r = run.invoke(app, ["review", "sample", "--strategy", "random", "--n", "5", *common])
    assert r.exit_code == 0 and "queued 1 item(s)" in r.output, r.output  # the allowed one; the held are queued
    r = run.invoke(app, ["review", "sample", "--strategy", "best", *common])
    assert r.exit_code == 2 and "--strategy must be" in r.output
    from referee.policy import Policy
    from referee.records.review import ReviewDesk, Verdict
    desk = ReviewDesk(store, Policy.from_yaml(POLICY))
    task = desk.claim("alice", "eu")
    assert task is not None
    desk.submit(task.task_id, "alice", Verdict(kind="uphold"))
    out = tmp_path / "labels.jsonl"
    r = run.invoke(app, ["labels", "export", "--since", "2020-01-01", "--out", str(out), *common])
    assert r.exit_code == 0 and "wrote 1 row(s)" in r.output, r.output
    (row,) = [Row.from_json(json.loads(line)) for line in out.read_text().splitlines()]
    assert row.id == "it-0" and row.labels["hate"] == 1
    r = run.invoke(app, ["review", "agreement", *common])
    assert r.exit_code == 0 and json.loads(r.output)["pairs"] == 0
    store.close()
