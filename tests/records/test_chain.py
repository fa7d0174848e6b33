"""The tamper-evident chain: sealing, verifying, and each kind of tampering found at its link.

The attacker goes around the triggers: the tests drop them on the database file (as
someone with write access to it could) and then edit, delete or reorder records."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
import sqlalchemy

from referee.records import chain as chain_module
from referee.records.chain import GENESIS, AuditChain, canonical_record, link_hash, record_bytes
from referee.store import Store, upgrade
from tests.records.conftest import decision, fill, item


def _db_path(store: Store) -> str:
    return store.url.removeprefix("sqlite:///")


def _attack(store: Store, *sql: str) -> None:
    """Run SQL on the file with the append-only triggers dropped (and foreign keys off)."""
    conn = sqlite3.connect(_db_path(store))
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
    for name in names:
        conn.execute(f"DROP TRIGGER {name}")
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_an_untouched_log_verifies_and_sealing_is_incremental(store):
    fill(store, 5)
    chain = AuditChain(store.db, checkpoint_every=2)
    first = chain.seal()
    assert (first.sealed, first.head_seq) == (5, 5)
    assert [c.seq for c in chain.checkpoints()] == [2, 4, 5]
    assert chain.seal().sealed == 0
    fill_more = [item(f"x{i}") for i in range(3)]
    for it in fill_more:
        store.log.append([(it, decision(it))])
    assert chain.verify().unsealed == 3
    second = chain.seal()
    assert (second.sealed, second.head_seq) == (3, 8)
    full = chain.verify()
    assert full.ok and full.checked == 8 and full.head_hash == second.head_hash and full.unsealed == 0
    quick = chain.verify(from_checkpoint=True)
    assert quick.ok and quick.checked == 0 and quick.head_hash == second.head_hash
    assert chain.verify(expect_head=first.head_hash).ok


def test_an_empty_log_verifies(store):
    chain = AuditChain(store.db)
    assert chain.seal().sealed == 0
    v = chain.verify()
    assert v.ok and v.head_hash == GENESIS


def test_the_chain_tables_refuse_update_and_delete(store):
    fill(store, 2)
    AuditChain(store.db).seal()
    with store.db.engine.begin() as conn:
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
            conn.execute(sqlalchemy.text("UPDATE audit_chain SET record_hash = 'x'"))
    with store.db.engine.begin() as conn:
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
            conn.execute(sqlalchemy.text("DELETE FROM audit_checkpoints"))


def test_an_edited_record_is_found_at_its_link(store):
    fill(store, 6)
    AuditChain(store.db).seal()
    _attack(store, "UPDATE decisions SET payload = replace(payload, '\"remove\"', '\"allow\"'), action = 'allow' "
                   "WHERE seq = 4")
    v = AuditChain(store.db).verify()
    assert not v.ok and v.broken.seq == 4 and v.broken.kind == "edited", v.broken
    assert v.checked == 3


def test_a_column_edited_beside_its_payload_is_found(store):
    fill(store, 3)
    AuditChain(store.db).seal()
    _attack(store, "UPDATE decisions SET action = 'allow' WHERE seq = 2")
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (2, "edited")
    assert "'action'" in v.broken.message


def test_an_edited_recorded_at_is_found(store):
    fill(store, 3)
    AuditChain(store.db).seal()
    _attack(store, "UPDATE decisions SET recorded_at = '2020-01-01 00:00:00.000000' WHERE seq = 3")
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (3, "edited")


def test_a_deleted_record_is_found(store):
    fill(store, 6)
    AuditChain(store.db).seal()
    _attack(store, "DELETE FROM signals WHERE decision_id IN (SELECT decision_id FROM decisions WHERE seq = 3)",
            "DELETE FROM decisions WHERE seq = 3")
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (3, "deleted")


def test_a_deleted_record_and_its_link_are_found(store):
    fill(store, 6)
    AuditChain(store.db).seal()
    _attack(store, "DELETE FROM decisions WHERE seq = 3", "DELETE FROM audit_chain WHERE seq = 3")
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (3, "deleted")


def test_records_removed_from_the_end_are_found(store):
    fill(store, 6)
    AuditChain(store.db, checkpoint_every=100).seal()
    _attack(store, "DELETE FROM decisions WHERE seq >= 5", "DELETE FROM audit_chain WHERE seq >= 5")
    v = AuditChain(store.db).verify()
    assert v.broken is not None and v.broken.kind == "deleted" and v.broken.seq == 5, v.broken


def test_unsealed_records_removed_from_the_end_are_found(store):
    fill(store, 6)
    AuditChain(store.db).seal()
    fill_more = item("late")
    store.log.append([(fill_more, decision(fill_more))])
    _attack(store, "DELETE FROM decisions WHERE seq = 7")
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (7, "truncated")


def test_reordered_records_are_found(store):
    fill(store, 6)
    AuditChain(store.db).seal()
    _attack(store, "UPDATE decisions SET seq = -2 WHERE seq = 2", "UPDATE decisions SET seq = 2 WHERE seq = 5",
            "UPDATE decisions SET seq = 5 WHERE seq = -2")
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (2, "reordered"), v.broken


def _relink(store: Store, from_seq: int) -> None:
    """What an attacker with the code does after editing: recompute the links from ``from_seq``."""
    with store.db.engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT seq, decision_id, recorded_at, payload FROM decisions "
                                            "ORDER BY seq")).all()
        prev = conn.execute(sqlalchemy.text("SELECT record_hash FROM audit_chain WHERE seq = :s"),
                            {"s": from_seq - 1}).scalar() or GENESIS
    links = []
    for seq, decision_id, recorded_at, payload in rows:
        if seq < from_seq:
            continue
        stamp = datetime.fromisoformat(recorded_at)
        h = link_hash(prev, seq, record_bytes(seq, stamp, payload))
        links.append((seq, decision_id, prev, h))
        prev = h
    conn2 = sqlite3.connect(_db_path(store))
    conn2.executemany("INSERT INTO audit_chain (seq, decision_id, prev_hash, record_hash, sealed_at, format) "
                      "VALUES (?, ?, ?, ?, '2026-01-01 00:00:00', 2)", links)
    conn2.commit()
    conn2.close()


def test_a_rewritten_chain_is_caught_by_its_checkpoint_and_by_a_published_head(store):
    fill(store, 6)
    chain = AuditChain(store.db, checkpoint_every=3)
    published = chain.seal().head_hash
    _attack(store, "UPDATE decisions SET payload = replace(payload, '\"remove\"', '\"allow\"'), action = 'allow' "
                   "WHERE seq = 2", "DELETE FROM audit_chain WHERE seq >= 2")
    _relink(store, 2)
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (3, "checkpoint"), v.broken
    # With the checkpoints gone too, only a head published outside the database shows it.
    _attack(store, "DELETE FROM audit_checkpoints")
    assert AuditChain(store.db).verify().ok
    v = AuditChain(store.db).verify(expect_head=published)
    assert v.broken is not None and v.broken.kind == "checkpoint"


def test_an_altered_link_is_found(store):
    fill(store, 4)
    AuditChain(store.db).seal()
    _attack(store, "UPDATE audit_chain SET prev_hash = 'ff' || substr(prev_hash, 3) WHERE seq = 3")
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (3, "chain")


def test_review_verdicts_are_links_of_the_chain(store):
    it = item("r")
    first = store.log.append([(it, decision(it))])[0]
    store.log.supersede(first.decision_id, decision(it, source="review", supersedes=first))
    chain = AuditChain(store.db)
    assert chain.seal().sealed == 2 and chain.verify().ok


@pytest.mark.postgres
def test_the_chain_verifies_on_postgres_as_on_sqlite(pg_url):
    upgrade(pg_url)
    pg = Store(pg_url)
    try:
        fill(pg, 5)
        chain = AuditChain(pg.db, checkpoint_every=2)
        assert chain.seal().sealed == 5 and chain.verify().ok
        with pg.db.engine.begin() as conn:
            with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
                conn.execute(sqlalchemy.text("DELETE FROM audit_chain"))
        with pg.db.engine.begin() as conn:  # the attacker, as the table's owner, disables the triggers
            conn.execute(sqlalchemy.text("ALTER TABLE decisions DISABLE TRIGGER USER"))
            conn.execute(sqlalchemy.text("UPDATE decisions SET recorded_at = recorded_at + interval '1 second' "
                                         "WHERE seq = 4"))
        v = chain.verify()
        assert v.broken is not None and (v.broken.seq, v.broken.kind) == (4, "edited")
    finally:
        pg.close()


def test_signed_checkpoints_catch_a_chain_rewritten_with_its_checkpoints(store):
    fill(store, 6)
    key = b"kept-outside-the-database"
    AuditChain(store.db, checkpoint_every=3, key=key).seal()
    assert AuditChain(store.db, key=key).verify().ok
    assert not AuditChain(store.db, key=b"another key").verify().ok
    # The attacker edits record 2, recomputes the links and rewrites the checkpoints (no key).
    _attack(store, "UPDATE decisions SET payload = replace(payload, '\"remove\"', '\"allow\"'), action = 'allow' "
                   "WHERE seq = 2", "DELETE FROM audit_chain WHERE seq >= 2", "DELETE FROM audit_checkpoints")
    _relink(store, 2)
    assert AuditChain(store.db).verify().ok  # no checkpoints: nothing in the database shows it
    v = AuditChain(store.db, key=key).verify()
    assert v.broken is not None and v.broken.kind == "checkpoint" and "no signed checkpoint" in v.broken.message
    AuditChain(store.db, checkpoint_every=3, key=b"attacker's key").seal()  # nothing left to seal
    conn = sqlite3.connect(_db_path(store))
    conn.execute("INSERT INTO audit_checkpoints VALUES (6, (SELECT record_hash FROM audit_chain WHERE seq = 6), "
                 "'2026-01-01 00:00:00', NULL)")
    conn.commit()
    conn.close()
    v = AuditChain(store.db, key=key).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (6, "checkpoint") and "unsigned" in v.broken.message


def test_a_sealer_that_lost_the_race_is_refused_and_the_chain_stays_whole(store, monkeypatch):
    """Links are hashed outside the write transaction; the key on seq still refuses the
    links of a second sealer that read the same head."""
    from referee.errors import StoreError

    fill(store, 3)
    late = AuditChain(store.db)
    stale_head = late.head()
    AuditChain(store.db).seal()
    monkeypatch.setattr(late, "head", lambda: stale_head)  # read before the other one committed
    with pytest.raises(StoreError, match="at the same time"):
        late.seal()
    v = AuditChain(store.db).verify()
    assert v.ok and v.checked == 3


# -- link formats --------------------------------------------------------------------------


def _formats(store: Store) -> list[int]:
    with store.db.engine.connect() as conn:
        return list(conn.execute(sqlalchemy.text("SELECT format FROM audit_chain ORDER BY seq")).scalars())


def _as_release_0007_with_format_1_links(store: Store, upto: int) -> None:
    """What a database sealed by the release before migration 0008 holds: no ``format``
    column, and links over the records' canonical JSON up to ``upto``."""
    path = _db_path(store)
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE audit_chain DROP COLUMN format")
    conn.execute("UPDATE alembic_version SET version_num = '0007'")
    rows = conn.execute("SELECT seq, decision_id, recorded_at, payload FROM decisions WHERE seq <= ? ORDER BY seq",
                        (upto,)).fetchall()
    prev, links = GENESIS, []
    for seq, decision_id, recorded_at, payload in rows:
        h = link_hash(prev, seq, canonical_record(seq, datetime.fromisoformat(recorded_at), payload))
        links.append((seq, decision_id, prev, h))
        prev = h
    conn.executemany("INSERT INTO audit_chain VALUES (?, ?, ?, ?, '2026-01-01 00:00:00')", links)
    conn.commit()
    conn.close()


def test_links_sealed_before_migration_0008_keep_their_format_and_the_chain_goes_on_in_format_2(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/log.db")
    fill(store, 6)
    _as_release_0007_with_format_1_links(store, upto=4)
    store = Store(f"sqlite:///{tmp_path}/log.db")  # the embedded file upgrades itself once
    assert store.db.revision() == "0008"
    assert _formats(store) == [1, 1, 1, 1]
    chain = AuditChain(store.db)
    assert chain.verify().ok and chain.verify().unsealed == 2
    assert chain.seal().sealed == 2
    assert _formats(store) == [1, 1, 1, 1, 2, 2]
    assert chain.verify().ok and chain.verify().checked == 6
    # An edit is found in either format (and undone before the next).
    for seq in (2, 5):
        with store.db.engine.connect() as conn:
            stamp = conn.execute(sqlalchemy.text(f"SELECT recorded_at FROM decisions WHERE seq = {seq}")).scalar()
        _attack(store, f"UPDATE decisions SET recorded_at = '2020-01-01 00:00:00.000000' WHERE seq = {seq}")
        v = AuditChain(store.db).verify()
        assert v.broken is not None and (v.broken.seq, v.broken.kind) == (seq, "edited"), v.broken
        _attack(store, f"UPDATE decisions SET recorded_at = '{stamp}' WHERE seq = {seq}")
        assert AuditChain(store.db).verify().ok
    store.close()


def test_format_2_hashes_the_stored_bytes_so_a_reencoded_payload_is_found(store):
    fill(store, 3)
    AuditChain(store.db).seal()
    assert _formats(store) == [2, 2, 2]
    # The same JSON, re-encoded with spaces: format 1 would not see it, format 2 does.
    _attack(store, "UPDATE decisions SET payload = replace(payload, '\"action\":', '\"action\": ') WHERE seq = 2")
    with store.db.engine.connect() as conn:
        payload = conn.execute(sqlalchemy.text("SELECT payload FROM decisions WHERE seq = 2")).scalar()
    assert '"action": ' in payload
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (2, "edited"), v.broken


def test_a_link_whose_format_was_changed_is_broken(store):
    fill(store, 3)
    AuditChain(store.db).seal()
    _attack(store, "UPDATE audit_chain SET format = 1 WHERE seq = 2")
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (2, "edited"), v.broken
    _attack(store, "UPDATE audit_chain SET format = 9 WHERE seq = 2")
    v = AuditChain(store.db).verify()
    assert v.broken is not None and (v.broken.seq, v.broken.kind) == (2, "chain") and "format 9" in v.broken.message


def test_the_two_formats_hash_different_bytes_for_the_same_record():
    stamp = datetime(2026, 2, 1, 12, 0, 0, 123456)
    payload = '{"b":1,"a":"\u00e9"}'
    v2 = record_bytes(3, stamp, payload)
    assert v2 == b"v2\x00" + b"1769947200123456" + b"\x00" + payload.encode()
    assert record_bytes(3, stamp, payload, link_format=1) == canonical_record(3, stamp, payload)
    assert record_bytes(3, stamp, payload, link_format=1).startswith(b"{")
    assert chain_module.FORMAT == 2
