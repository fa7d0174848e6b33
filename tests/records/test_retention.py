"""Retention and erasure empty the content and keep the chain, the statements and the statistics."""

from __future__ import annotations

from datetime import timedelta

import pytest

from referee.errors import ConfigError
from referee.model import ContentItem, utcnow
from referee.policy import load_policy
from referee.records.chain import AuditChain
from referee.records.reasons import Statements
from referee.records.retention import Retention, RetentionJob
from referee.records.transparency import TransparencyReport
from tests.records.conftest import decision, item


def _author(store, item_id):
    import sqlalchemy
    with store.db.engine.connect() as conn:
        return conn.execute(sqlalchemy.text("SELECT author_id FROM items WHERE item_id = :i"), {"i": item_id}).scalar()


def _evidence(store, policy):
    statements = [s.body for s in Statements(store.db, store.log, policy).iter()]
    report = TransparencyReport(store.db, store.log, policy).build("2026")
    return statements, {n: t.rows for n, t in report.tables.items()}


@pytest.fixture
def policy():
    return load_policy("policies/default.yaml")


@pytest.fixture
def logged(store):
    media = ContentItem(id="item-media", parts=[{"kind": "image", "id": "cover", "url": "https://cdn.example/a.jpg",
                                                 "sha256": "a" * 64}], author_id="author-2", country="DE")
    pairs = [(item(i, author="author-1" if i < 2 else "author-2"), None) for i in range(3)] + [(media, None)]
    store.log.append([(it, decision(it)) for it, _ in pairs])
    AuditChain(store.db).seal()
    return [it for it, _ in pairs]


def test_apply_empties_expired_content_and_the_chain_still_verifies(store, logged, policy):
    before = _evidence(store, policy)
    job = RetentionJob(store.db, store.content, Retention(content_text=30, media_refs=400, author_ids=30))
    assert job.apply(now=utcnow() + timedelta(days=10)).content_erased == 0
    dry = job.apply(now=utcnow() + timedelta(days=31), dry_run=True)
    assert (dry.content_erased, dry.authors_removed, dry.dry_run) == (3, 4, True)
    assert store.content.get(logged[0].id, logged[0].content_hash) is not None
    done = job.apply(now=utcnow() + timedelta(days=31))
    assert (done.content_erased, done.authors_removed) == (3, 4)
    for it in logged[:3]:
        assert store.content.get(it.id, it.content_hash) is None
    media = logged[3]
    assert store.content.get(media.id, media.content_hash) is not None  # media kept 400 days
    assert _author(store, "item-0") is None
    assert AuditChain(store.db).verify().ok
    assert _evidence(store, policy) == before
    assert job.apply(now=utcnow() + timedelta(days=401)).content_erased == 1
    assert AuditChain(store.db).verify().ok


def test_erasure_for_an_author_removes_their_content_and_keeps_statements_and_statistics(store, logged, policy):
    from referee.store.protocols import Exposure
    from referee.store.sql.shadow import SQLShadowStore

    shadow = SQLShadowStore(store.db)
    shadow.log_exposures([Exposure(experiment="e", unit=u, arm="a", item_id=f"item-{i}", decision_id=f"d{i}",
                                   ts=utcnow()) for i, u in enumerate(["author-1", "author-2", "author-1"])])
    before = _evidence(store, policy)
    result = RetentionJob(store.db, store.content).erase_author("author-1")
    assert (result.items, result.content_erased, result.exposures_erased) == (2, 2, 2)
    assert [e.unit for e in shadow.exposures("e")] == ["author-2"]  # experiments assign by author
    assert store.content.get("item-0", logged[0].content_hash) is None
    assert store.content.get("item-2", logged[2].content_hash) is not None
    assert _author(store, "item-0") is None and _author(store, "item-2") == "author-2"
    assert _evidence(store, policy) == before
    assert AuditChain(store.db).verify().ok


def test_the_config_names_a_class_that_cannot_be_deleted(tmp_path):
    path = tmp_path / "retention.yaml"
    path.write_text("retention:\n  content_text: 90\n  decisions: 30\n")
    with pytest.raises(ConfigError, match=r"retention\.decisions: .*append-only, hash-chained"):
        Retention.from_file(path)
    path.write_text("retention: {content_text: 90, media_refs: null}\n")
    assert Retention.from_file(path) == Retention(content_text=90, media_refs=None)
