"""The key store over SQL: API keys, stored hashed, and their scopes."""

from __future__ import annotations

import hmac
from typing import Any

from sqlalchemy import insert, select

from referee.errors import AuthError
from referee.model import utcnow
from referee.store.apikeys import check_scopes, hash_secret, new_key, parse_key
from referee.store.sql.database import Database
from referee.store.sql.tables import api_keys


class SQLKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create_key(self, name: str, scopes: list[str]) -> str:
        """Create a key and return it in full; only its hash is stored, so this is
        the one time anybody sees it."""
        stored_scopes = check_scopes(scopes)
        key_id, secret, key = new_key()
        with self._db.write() as conn:
            conn.execute(insert(api_keys).values(key_id=key_id, secret_hash=hash_secret(secret), name=name,
                                                 scopes=stored_scopes, created_at=utcnow()))
        return key

    def check_key(self, key: str) -> tuple[str, frozenset[str]]:
        """Return (key id, scopes) for a valid key, else raise AuthError."""
        key_id, secret = parse_key(key)
        with self._db.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_hash, hash_secret(secret)):
            raise AuthError("invalid or revoked API key")
        return key_id, frozenset(row.scopes.split(","))

    def revoke_key(self, key_id: str) -> None:
        with self._db.write() as conn:
            conn.execute(api_keys.update().where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=utcnow()))

    def list_keys(self) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).all()
        return [
            {"key_id": r.key_id, "name": r.name, "scopes": r.scopes, "created_at": r.created_at,
             "revoked_at": r.revoked_at}
            for r in rows
        ]
