"""The transparency aggregates in Spark SQL equal the embedded report's on the same log (the
shared session), and the same re-scan code runs on local[1] (the CLI, in a process of its own)
as on local[2]."""

from __future__ import annotations

import csv
import random
from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from referee.batch import SparkTransparencyReport, export_log, tables_equal
from referee.build import EngineConfig, build_engine
from referee.cli import app
from referee.errors import InputError
from referee.model import Action
from referee.policy import load_policy
from referee.records.transparency import TransparencyReport
from referee.store import Store
from tests.batch.conftest import POLICY
from tests.records.conftest import T0, decision, item

pytestmark = pytest.mark.spark
H = timedelta(hours=1)


def hand_made(store: Store) -> None:
    """The log of tests/records/test_transparency.py: restrictions, a notice, reviews, an appeal."""
    a, b, c = item("a", created_at=T0 - 2 * H), item("b", created_at=T0 - 4 * H), item("c", created_at=T0 - 6 * H)
    d, e, f = item("d", created_at=T0 - 1 * H), item("e", created_at=T0 - 8 * H), item("f", created_at=T0 - 10 * H)
    g = item("g", created_at=T0 - 12 * H).model_copy(update={"context": {"dsa_notice": "article_16"}})
    roots = store.log.append([
        (a, decision(a)), (b, decision(b, categories=("violence",))),
        (c, decision(c, action=Action.limit_reach, categories=("spam",))),
        (d, decision(d, action=Action.hold_for_review)), (e, decision(e)),
        (f, decision(f, categories=("violence",))), (g, decision(g, categories=("harassment",))),
    ])
    by = {r.item_id: r for r in roots}
    review = {"source": "review", "created_at": T0 + H, "automated_decision": False}
    store.log.supersede(by["item-d"].decision_id, decision(d, supersedes=by["item-d"], **review))
    store.log.supersede(by["item-e"].decision_id, decision(e, action=Action.allow, categories=(),
                                                           supersedes=by["item-e"], **review))
    upheld = store.log.supersede(by["item-f"].decision_id, decision(f, categories=("violence",),
                                                                    supersedes=by["item-f"], **review))
    store.log.supersede(upheld.decision_id, decision(f, action=Action.allow, categories=(), source="appeal",
                                                     supersedes=upheld, created_at=T0 + 3 * H,
                                                     automated_decision=False))


def random_log(store: Store, seed: int, n: int = 120, tables: bool = False) -> None:
    """Chains of automated decisions, reviews and appeals over 2025-12 .. 2026-08, some items
    reported by notices, some without an upload time; with ``tables``, rows in the appeals,
    notices and account actions tables too."""
    rng = random.Random(seed)
    actions = list(Action)
    cats = ["hate", "violence", "spam", "harassment", "sexual_minors"]
    appeals: list[dict[str, Any]] = []
    notices: list[dict[str, Any]] = []
    accounts: list[dict[str, Any]] = []
    for i in range(n):
        at = T0 + timedelta(days=rng.randint(-70, 200), minutes=rng.randint(0, 1440), microseconds=rng.randint(0, 999))
        it = item(f"r{i}", created_at=None if i % 7 == 0 else at - timedelta(hours=rng.uniform(0, 90)))
        if i % 5 == 0:
            it = it.model_copy(update={"context": {"dsa_notice": rng.choice(["article_16", "trusted_flagger"])}})
        chosen = tuple(rng.sample(cats, rng.randint(0, 2)))
        head = store.log.append([(it, decision(it, action=rng.choice(actions), categories=chosen, created_at=at,
                                               automated_detection=rng.random() < 0.9))])[0]
        for source in ("review", "appeal"):
            if rng.random() < 0.45:
                break
            at += timedelta(hours=rng.uniform(0.5, 60))
            new = decision(it, action=rng.choice(actions), categories=tuple(rng.sample(cats, rng.randint(0, 1))),
                           source=source, supersedes=head, created_at=at, automated_decision=False)
            head = store.log.supersede(head.decision_id, new)
        if tables and rng.random() < 0.25:
            received = at.timestamp() - rng.uniform(0, 86400)
            decided = None if rng.random() < 0.3 else received + rng.uniform(60, 86400 * 2)
            notices.append({"notice_id": f"n{i}", "received_at": received, "item_id": it.id if i % 9 else None,
                            "category": rng.choice([None, "hate", "spam"]), "explanation": "",
                            "trusted_flagger": rng.random() < 0.3, "status": "decided" if decided else "open",
                            "decided_at": decided, "outcome_action": rng.choice(["remove", "allow", None])})
        if tables and rng.random() < 0.15:
            accounts.append({"action_id": f"acc{i}", "author_id": "author-1", "kind": rng.choice(["impose", "lift"]),
                             "action": rng.choice([None, "suspend_7d"]), "points": 1.0, "reason": "",
                             "decision_ids": [head.decision_id], "created_at": at})
        if tables and rng.random() < 0.3:
            received = at.timestamp() + rng.uniform(0, 3600)
            status = rng.choice(["open", "upheld", "overturned"])
            appeals.append({"appeal_id": f"ap{i}", "item_id": it.id, "decision_id": head.decision_id, "reason": "",
                            "received_at": received, "status": status,
                            "decided_at": None if status == "open" else received + rng.uniform(60, 86400 * 3)})
    from referee.store.sql.account_tables import account_actions
    from referee.store.sql.account_tables import notices as notices_table
    from referee.store.sql.review_tables import appeals as appeals_table

    with store.db.write() as conn:
        for table, rows in ((appeals_table, appeals), (notices_table, notices), (account_actions, accounts)):
            if rows:
                conn.execute(table.insert(), rows)


@pytest.mark.parametrize("fill, periods", [
    (hand_made, ["2026-H1", "2025"]),
    pytest.param(lambda s: random_log(s, seed=7), ["2026-H1", "2026-Q3"], marks=pytest.mark.slow),
    (lambda s: random_log(s, seed=11, tables=True), ["2026"]),
], ids=["hand-made", "random", "random-with-appeal-notice-and-account-tables"])
def test_spark_sql_tables_equal_the_embedded_report(spark, tmp_path, fill, periods):
    store = Store(f"sqlite:///{tmp_path}/log.db")
    try:
        fill(store)
        exported = export_log(store, tmp_path / "export")
        policy = load_policy("policies/default.yaml")
        embedded = TransparencyReport(store.db, store.log, policy)
        on_spark = SparkTransparencyReport(spark, tmp_path / "export", policy)
        assert exported.records == store.log.last_seq()
        filled = 0
        for period in periods:
            want, got = embedded.build(period), on_spark.build(period)
            assert tables_equal(want, got) == [], period
            assert [t.title for t in want.tables.values()] == [t.title for t in got.tables.values()]
            filled = max(filled, sum(len(t.rows) for t in want.tables.values()))
        assert filled > 5  # not only empty reports
        if exported.optional.get("notices"):  # the tables variant reaches every table, from the tables
            assert all(got.table(name).rows for name in got.tables)
            assert got.table("notices").columns[-1] == "median_hours_to_action"
            assert got.table("appeals").rows[0][0] == "review tables"
    finally:
        store.close()


def test_a_folder_that_is_no_export_is_refused(spark, tmp_path):
    with pytest.raises(InputError, match="rescan export"):
        SparkTransparencyReport(spark, tmp_path, load_policy("policies/default.yaml"))


class _Kept:
    """The module's session, handed to a CLI command that would stop it."""

    def __init__(self, spark: Any) -> None:
        self._spark = spark

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spark, name)

    def stop(self) -> None:
        pass


def test_cli_export_then_report_writes_the_compliance_reports_files(spark, tmp_path, monkeypatch):
    import referee.batch

    url = f"sqlite:///{tmp_path}/log.db"
    store = Store(url)
    try:
        hand_made(store)
    finally:
        store.close()
    monkeypatch.setattr(referee.batch, "spark_session", lambda *a, **k: _Kept(spark))
    runner = CliRunner()
    done = runner.invoke(app, ["rescan", "export", "--db-url", url, "--out", str(tmp_path / "export")])
    assert done.exit_code == 0, done.output
    assert "exported 11 record(s)" in done.output
    done = runner.invoke(app, ["rescan", "report", "--source", str(tmp_path / "export"), "--period", "2026-H1",
                               "--out", str(tmp_path / "spark"), "--policy", str(POLICY)])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["compliance", "report", "--db-url", url, "--period", "2026-H1",
                               "--out", str(tmp_path / "embedded"), "--policy", str(POLICY)])
    assert done.exit_code == 0, done.output
    def rows(folder: str, name: str) -> list[list[str]]:
        with (tmp_path / folder / f"{name}.csv").open() as f:
            return list(csv.reader(f))

    names = sorted(p.stem for p in (tmp_path / "embedded").glob("*.csv"))
    assert len(names) >= 7 and names == sorted(p.stem for p in (tmp_path / "spark").glob("*.csv"))
    for name in names:
        assert rows("spark", name) == rows("embedded", name), name


def test_the_rescan_runs_the_same_on_local_1(local_1):
    import pyarrow.parquet as pq

    code, output = local_1.wait()
    assert code == 0, output
    assert "15 decided, 0 rejected; dry run" in " ".join(output.split())
    out = local_1.folder / "out"
    got = {r["item_id"]: r["action"] for r in pq.read_table(out / "decisions.parquet").to_pylist()}
    with build_engine(EngineConfig(policy=POLICY, detectors=("lexicon",))) as engine:
        assert got == {d.item_id: d.action.value for d in engine.moderate_many(local_1.items)}
    assert (out / "diff.json").exists()
