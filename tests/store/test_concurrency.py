"""At most one successor per decision and one root per item, with writers racing:
threads on two stores of one SQLite file (as two server processes), and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from referee import ids
from referee.engine import decide
from referee.model import Action, ContentItem, Decision
from referee.store import Store, upgrade

WRITERS = 8


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_stores(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/race.db"
    else:
        url = request.getfixturevalue("pg_url")
        upgrade(url)
    stores = [Store(url), Store(url)]
    yield stores
    for s in stores:
        s.close()


def _race(n: int, work: Callable[[int], Decision]) -> list[Decision]:
    barrier = threading.Barrier(n)
    results: list[Decision | BaseException] = [None] * n  # type: ignore[list-item]

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return results  # type: ignore[return-value]


def test_reviewers_racing_on_one_decision_make_one_successor(two_stores, small_policy):
    item = ContentItem(id="contested", text="vile vile")
    first = decide(small_policy, item, [], (), {"keyword": "k1"})
    two_stores[0].log.append([(item, first)])

    def review(i: int) -> Decision:
        verdict = first.model_copy(update={
            "decision_id": ids.decision_id(first.input_key, first.decision_id, "review", salt=f"reviewer{i}"),
            "action": Action.remove if i % 2 else Action.allow, "source": "review", "automated_decision": False,
        })
        return two_stores[i % 2].supersede(first.decision_id, verdict)

    for _ in range(3):  # a few rounds: each round races on the head the last one left
        results = _race(WRITERS, review)
        winners = {r.decision_id for r in results}
        assert len(winners) == 1, winners  # every reviewer is told the same head
        head = two_stores[0].log.head("contested")
        assert head is not None and head.decision_id in winners
        first = head
    history = two_stores[1].log.history("contested")
    assert len(history) == 4
    assert [r.decision.supersedes for r in history[1:]] == [r.decision.decision_id for r in history[:-1]]
    assert [r.seq for r in history] == [1, 2, 3, 4]


def test_writers_racing_on_a_new_item_make_one_root(two_stores, small_policy):
    def moderate(i: int) -> Decision:
        item = ContentItem(id="fresh", text=f"version {i} of the text")
        return two_stores[i % 2].log.append([(item, decide(small_policy, item, [], (), {"keyword": "k1"}))])[0]

    results = _race(WRITERS, moderate)
    assert len({r.decision_id for r in results}) == 1
    assert len(two_stores[0].log.history("fresh")) == 1


def test_concurrent_batches_get_gap_free_seq(two_stores, small_policy):
    def batch(i: int) -> Decision:
        for r in range(5):
            items = [ContentItem(id=f"w{i}-r{r}-{k}", text=f"item {k} of round {r} of writer {i}") for k in range(20)]
            stored = two_stores[i % 2].log.append([(it, decide(small_policy, it, [], (), {"keyword": "k1"}))
                                                   for it in items])
        return stored[0]

    _race(WRITERS, batch)
    seqs = [r.seq for r in two_stores[1].log.records()]
    assert seqs == list(range(1, WRITERS * 5 * 20 + 1))
    assert two_stores[0].log.last_seq() == len(seqs)
