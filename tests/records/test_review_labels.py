"""Labels back to training: the export is the referee dataset format (Row.from_json reads it),
the latest verdict wins and conflicts are flagged; active-learning samples."""

from __future__ import annotations

from referee.eval.datasets import LABEL_KEYS, Row
from referee.model import Action, ContentItem, Signal
from referee.records.labels import export_labels
from referee.records.review import ReviewDesk, Verdict
from referee.store import Store
from tests.records import test_review as base
from tests.records.test_review import automated, make_item, put

clock, desk, pg_url, policy, store, url = base.clock, base.desk, base.pg_url, base.policy, base.store, base.url


def take(desk: ReviewDesk, reviewer: str, queue: str = "general"):
    task = desk.claim(reviewer, queue)
    assert task is not None
    return task


def test_export_is_the_dataset_format_latest_verdict_wins_conflicts_flagged(desk: ReviewDesk, store: Store, clock) -> None:
    a, b = make_item("a", text="you vile people"), make_item("b", text="buy now")
    da = put(store, a, automated(a, "hate", 0.55))
    db = put(store, b, automated(b, "spam", 0.9))
    desk.enqueue(da)
    desk.enqueue(db)
    desk.submit(take(desk, "alice").task_id, "alice", Verdict(kind="uphold"))  # a: hate, remove
    desk.submit(take(desk, "alice").task_id, "alice", Verdict(kind="overturn"))  # b: not spam
    # b is re-reviewed by a senior who disagrees: the later verdict wins, the conflict is flagged
    clock.t += 60
    desk.enqueue(store.log.head(b.id), kind="senior", queue="senior")  # type: ignore[arg-type]
    desk.submit(take(desk, "sam", "senior").task_id, "sam",
                Verdict(kind="change", action=Action.limit_reach, categories=("spam",)))
    out = export_labels(desk, LABEL_KEYS)
    rows = {r["id"]: r for r in out.rows}
    assert set(rows) == {"it-a", "it-b"} and out.conflicts == 1
    parsed = {i: Row.from_json(r) for i, r in rows.items()}  # the dataset format's own reader
    assert parsed["it-a"].labels["hate"] == 1 and parsed["it-a"].labels["spam"] == 0
    assert parsed["it-a"].labels["unsafe"] == 1 and parsed["it-a"].text == "you vile people a"
    assert parsed["it-b"].labels["spam"] == 1 and parsed["it-b"].meta["reviewer"] == "sam"
    assert parsed["it-b"].meta["conflict"] is True and len(parsed["it-b"].meta["labels"]) == 2
    assert "conflict" not in parsed["it-a"].meta
    assert Row.from_json(rows["it-a"]).to_json() == rows["it-a"]  # round-trips unchanged
    # --since leaves out what was labelled before
    assert [r["id"] for r in export_labels(desk, LABEL_KEYS, since=clock.t).rows] == ["it-b"]
    store.content.erase(a.content_hash)
    assert export_labels(desk, LABEL_KEYS).erased == 1


def _scored(n: int, scores: list[float]) -> tuple[ContentItem, object]:
    it = make_item(f"s{n}")
    d = automated(it, "hate", scores[0], action=Action.allow)
    d = d.model_copy(update={"signals": tuple(
        Signal(detector=f"d{k}", detector_version="1", category="hate", score=s) for k, s in enumerate(scores))})
    return it, d


def test_active_learning_samples_by_uncertainty_disagreement_and_at_random(desk: ReviewDesk, store: Store) -> None:
    cases = {0: [0.5, 0.5], 1: [0.05, 0.06], 2: [0.1, 0.9], 3: [0.95, 0.97]}
    for n, scores in cases.items():
        put(store, *_scored(n, scores))  # type: ignore[arg-type]
    assert [t.item_id for t in desk.sample("uncertainty", 1)] == ["it-s0"]
    assert [t.item_id for t in desk.sample("disagreement", 1)] == ["it-s2"]  # 0.1 vs 0.9
    picked = desk.sample("random", 10)
    assert {t.item_id for t in picked} == {"it-s1", "it-s3"}  # the other two are queued already
    assert all(t.kind == "qa" for t in picked)
