"""The key store: hashed, scoped, revocable; the same in memory and in SQL."""

from __future__ import annotations

import pytest
import sqlalchemy

from referee.errors import AuthError
from referee.store import Store


def test_api_keys_are_scoped_and_revocable(store):
    key = store.create_key("ci", ["read", "read"])
    key_id, scopes = store.check_key(key)
    assert scopes == {"read"}
    with pytest.raises(AuthError, match="invalid"):
        store.check_key(key[:-2] + "xx")
    with pytest.raises(AuthError, match="malformed"):
        store.check_key("nope")
    assert [(r["key_id"], r["name"], r["scopes"], r["revoked_at"]) for r in store.list_keys()] == [
        (key_id, "ci", "read", None)]
    store.revoke_key(key_id)
    with pytest.raises(AuthError):
        store.check_key(key)
    assert store.list_keys()[0]["revoked_at"] is not None
    with pytest.raises(AuthError, match="scopes must be"):
        store.create_key("bad", ["superuser"])
    with pytest.raises(AuthError, match="scopes must be"):
        store.create_key("none", [])


def test_only_the_hash_is_stored(sql_store: Store):
    key = sql_store.create_key("ci", ["admin"])
    with sql_store.db.engine.connect() as conn:
        stored = conn.execute(sqlalchemy.text("SELECT secret_hash FROM api_keys")).scalar_one()
    assert key.split("_", 2)[2] not in stored
