"""The compliance pipeline from the CLI: seal, verify (exit 1 on tampering), export, submit, report, retention."""

from __future__ import annotations

import json
import sqlite3

from typer.testing import CliRunner

from referee.cli import app
from referee.store import Store
from tests.records.conftest import decision, item
from tests.records.test_submit import server  # noqa: F401  (the local Transparency Database)

runner = CliRunner()


def _store_with(tmp_path, n: int = 5) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    store = Store(url)
    store.log.append([(item(i), decision(item(i))) for i in range(n)])
    store.close()
    return url


def test_seal_and_verify_and_a_tampered_log_exits_1(tmp_path):
    url = _store_with(tmp_path)
    env = {"AUDIT_KEY": "k"}
    sealed = runner.invoke(app, ["audit", "seal", "--db-url", url, "--key-env", "AUDIT_KEY"], env=env)
    assert sealed.exit_code == 0 and "sealed 5 record(s)" in sealed.output, sealed.output
    ok = runner.invoke(app, ["audit", "verify", "--db-url", url, "--key-env", "AUDIT_KEY"], env=env)
    assert ok.exit_code == 0 and "ok: 5 link(s) verified" in ok.output
    wrong = runner.invoke(app, ["audit", "verify", "--db-url", url, "--key-env", "AUDIT_KEY"], env={"AUDIT_KEY": "x"})
    assert wrong.exit_code == 1 and "not signed by this key" in wrong.output
    conn = sqlite3.connect(f"{tmp_path}/cli.db")
    conn.execute("DROP TRIGGER decisions_no_update")
    conn.execute("UPDATE decisions SET seq = 99 WHERE seq = 2")
    conn.commit()
    conn.close()
    bad = runner.invoke(app, ["audit", "verify", "--db-url", url])
    assert bad.exit_code == 1 and "BROKEN at seq 2 (deleted)" in bad.output, bad.output


def test_export_submit_report_and_retention(tmp_path, server):  # noqa: F811
    endpoint, fake = server
    url = _store_with(tmp_path, 120)
    out = tmp_path / "sor.jsonl"
    exported = runner.invoke(app, ["compliance", "sor", "export", "--since", "2026-01-01", "--out", str(out),
                                   "--db-url", url, "--policy", "policies/default.yaml"])
    assert exported.exit_code == 0 and "wrote 120 statement(s) in 2 batch(es)" in exported.output, exported.output
    assert [len(json.loads(line)["statements"]) for line in out.read_text().splitlines()] == [100, 20]
    env = {"SOR_TOKEN": "secret"}
    submitted = runner.invoke(app, ["compliance", "sor", "submit", "--endpoint", endpoint, "--token-env",
                                    "SOR_TOKEN", "--db-url", url, "--policy", "policies/default.yaml"], env=env)
    assert submitted.exit_code == 0 and "submitted 120" in submitted.output, submitted.output
    again = runner.invoke(app, ["compliance", "sor", "submit", "--endpoint", endpoint, "--token-env", "SOR_TOKEN",
                                "--in", str(out), "--db-url", url], env=env)
    assert again.exit_code == 0 and "skipped (done before) 120; 0 request(s)" in again.output, again.output
    assert len(fake.creations) == 120
    no_token = runner.invoke(app, ["compliance", "sor", "submit", "--endpoint", endpoint, "--token-env",
                                   "NOT_SET_ANYWHERE", "--db-url", url], env={})
    assert no_token.exit_code == 2 and "no API token" in no_token.output
    reported = runner.invoke(app, ["compliance", "report", "--period", "2026-H1", "--out", str(tmp_path / "r"),
                                   "--db-url", url, "--policy", "policies/default.yaml"])
    assert reported.exit_code == 0 and (tmp_path / "r" / "report.html").exists(), reported.output
    dry = runner.invoke(app, ["retention", "apply", "--dry-run", "--db-url", url])
    assert dry.exit_code == 0 and "would erase 0 content row(s)" in dry.output
    erased = runner.invoke(app, ["retention", "erase-author", "author-1", "--db-url", url])
    assert erased.exit_code == 0 and "120 item(s)" in erased.output, erased.output
    assert runner.invoke(app, ["audit", "seal", "--db-url", url]).exit_code == 0
    assert runner.invoke(app, ["audit", "verify", "--db-url", url]).exit_code == 0
