"""Content apart from decisions: by content hash, erasable, with the decisions left standing."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta, timezone

import sqlalchemy

from referee.engine import Engine
from referee.model import ContentItem, ImagePart, TextPart
from tests.conftest import KeywordDetector


def test_items_come_back_as_they_were_moderated(store, small_policy):
    created = datetime(2026, 5, 4, 5, 2, 1, 123456, tzinfo=timezone(timedelta(hours=2)))
    blob = b"\x89PNG fake"
    item = ContentItem(
        id="x", surface="playlist_title", country="DE", author_id="u9", language="de", created_at=created,
        context={"thread": ["t1", 2]},
        parts=(TextPart(id="title", role="title", text="buy buy"),
               ImagePart(id="cover", url="https://img.example/c.png", sha256=hashlib.sha256(blob).hexdigest()),
               ImagePart(id="thumb", data=base64.b64encode(blob))),
    )
    d = Engine(small_policy, [KeywordDetector()], sink=store).moderate(item)
    back = store.content.get("x", d.content_hash)
    assert back == item
    assert back is not None and back.created_at.isoformat() == "2026-05-04T03:02:01.123456+00:00"
    assert store.get_item("x", "0" * 64) is None and store.get_item("nope", d.content_hash) is None


def test_put_stores_content_without_a_decision(store):
    item = ContentItem(id="p", text="just content")
    store.content.put([item, item])
    assert store.content.get("p", item.content_hash) == item
    assert store.log.history("p") == []


def test_contexts_answer_what_get_would_in_one_read(store):
    a = ContentItem(id="a", text="one", context={"followers": 12, "tier": "gold"})
    b = ContentItem(id="b", text="two")
    gone = ContentItem(id="g", text="three", context={"followers": 5})
    store.content.put([a, b, gone])
    assert store.content.erase(gone.content_hash)
    keys = [("a", a.content_hash), ("b", b.content_hash), ("g", gone.content_hash), ("a", b.content_hash),
            ("nobody", a.content_hash)]
    found = store.content.contexts(keys)
    assert found == {("a", a.content_hash): {"followers": 12, "tier": "gold"}, ("b", b.content_hash): {}}
    assert all(found[k] == store.content.get(*k).context for k in found)
    assert store.content.contexts([]) == {}


def test_erase_empties_the_content_and_leaves_the_decisions(store, small_policy):
    engine = Engine(small_policy, [KeywordDetector()], sink=store)
    item = ContentItem(id="e", text="vile words here")
    d = engine.moderate(item)
    twin = ContentItem(id="e2", text="vile words here")  # same content, another item: same hash
    engine.moderate(twin)
    assert store.content.erase(d.content_hash) is True
    assert store.content.get("e", d.content_hash) is None
    assert store.content.get("e2", twin.content_hash) is None
    assert store.content.erase(d.content_hash) is False
    assert store.log.get(d.decision_id) == d  # the decision stays
    assert [r.decision for r in store.log.history("e")] == [d]
    store.content.put([item])  # erased content stays erased, even when posted again
    assert store.content.get("e", d.content_hash) is None
    engine.close()


def test_the_log_holds_no_copy_of_the_users_words(sql_store, small_policy):
    from referee.plugins.lexicon.detector import LexiconDetector
    from referee.policy import Policy
    from tests.conftest import REPO

    policy = Policy.from_file(REPO / "policies" / "default.yaml")
    lexicon = LexiconDetector.from_policy(policy, policy.detector_config("lexicon"))
    words = "i will kill you tomorrow"
    with Engine(policy, [lexicon], sink=sql_store) as engine:
        d = engine.moderate(ContentItem(id="w", text=words))
    assert any(e.start is not None for s in d.signals for e in s.evidence), d.signals
    with sql_store.db.engine.connect() as conn:
        payload = conn.execute(sqlalchemy.text("SELECT CAST(payload AS TEXT) FROM decisions")).scalar_one()
        parts = conn.execute(sqlalchemy.text("SELECT CAST(parts AS TEXT) FROM content")).scalar_one()
    assert words not in payload and "tomorrow" not in payload
    assert words in parts


def test_batch_insert_writes_every_column_as_core_would(sql_store, small_policy):
    """The hot-path inserts (sql/bulk.py) bypass Core's per-row processing: what they
    write must read back exactly, datetimes, JSON and signal rows included."""
    created = datetime(2026, 5, 4, 5, 2, 1, 123456, tzinfo=timezone(timedelta(hours=2)))
    item = ContentItem(id="b1", text="vile buy", surface="message", country="FR", author_id="u9",
                       language="fr", created_at=created, context={"thread": ["t1", 2]})
    plain = ContentItem(id="b2", text="fine")
    decided = Engine(small_policy, [KeywordDetector()], sink=sql_store).moderate_many([item, plain])
    back = sql_store.log.get_many([d.decision_id for d in decided])
    assert [back[d.decision_id] for d in decided] == decided
    assert sql_store.get_item("b1", decided[0].content_hash) == item
    with sql_store.db.engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(
            "SELECT decision_id, detector, category, score FROM signals ORDER BY category")).all()
        row = conn.execute(sqlalchemy.text(
            "SELECT action, strike, seq, input_key, policy_sha256, provisional FROM decisions "
            "WHERE item_id = 'b1'")).one()
    assert sorted((r.decision_id, r.detector, r.category, r.score) for r in rows) == sorted(
        (d.decision_id, s.detector, s.category, s.score) for d in decided for s in d.signals)
    first = decided[0]
    assert (row.action, bool(row.strike), row.seq, row.input_key, row.policy_sha256, bool(row.provisional)) == (
        first.action.value, first.strike, 1, first.input_key, first.policy_sha256, first.provisional)
