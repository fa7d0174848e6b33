"""What ``Store`` and ``MemoryStore`` share: the three roles, and the names callers used before the split.

The roles are the API (``store.log``, ``store.content``, ``store.keys``); the
methods here are thin delegations so that a store object itself is still the
engine's ``DecisionSink`` and the old method names keep working.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, Self

from referee.model import ContentItem, Decision, Record
from referee.store.protocols import ContentStore, DecisionLog, KeyStore


class SupersedingLog(DecisionLog, Protocol):
    """A decision log that also records review and appeal outcomes by the id they replace."""

    def supersede(self, old_id: str, new: Decision) -> Decision: ...


class Roles:
    log: SupersedingLog
    content: ContentStore
    keys: KeyStore

    # -- the engine's DecisionSink -------------------------------------------------
    def heads(self, item_ids: Sequence[str]) -> dict[str, Decision]:
        return self.log.heads(item_ids)

    def append(self, pairs: Sequence[tuple[ContentItem, Decision]]) -> list[Decision]:
        return self.log.append(pairs)

    # -- decisions ---------------------------------------------------------------
    def get_decision(self, decision_id: str) -> Decision | None:
        return self.log.get(decision_id)

    def list_decisions(self, since: datetime | None = None, action: str | None = None,
                       limit: int = 100) -> list[Decision]:
        return self.log.list(since=since, action=action, limit=limit)

    def iter_decisions(self) -> Iterator[Decision]:
        """Every decision, in the order the log recorded them."""
        return (record.decision for record in self.log.records())

    def history(self, item_id: str) -> list[Record]:
        return self.log.history(item_id)

    def pending_heads(self, limit: int = 100) -> list[Decision]:
        return self.log.pending_heads(limit)

    def supersede(self, old_id: str, new: Decision) -> Decision:
        """Record a review or appeal outcome as a new decision that replaces ``old_id``."""
        return self.log.supersede(old_id, new)

    # -- content -----------------------------------------------------------------
    def get_item(self, item_id: str, content_hash: str) -> ContentItem | None:
        return self.content.get(item_id, content_hash)

    # -- API keys ----------------------------------------------------------------
    def create_key(self, name: str, scopes: list[str]) -> str:
        return self.keys.create_key(name, scopes)

    def check_key(self, key: str) -> tuple[str, frozenset[str]]:
        return self.keys.check_key(key)

    def revoke_key(self, key_id: str) -> None:
        self.keys.revoke_key(key_id)

    def list_keys(self) -> list[dict[str, Any]]:
        return self.keys.list_keys()

    # -- lifecycle ---------------------------------------------------------------
    def ping(self) -> None:
        """Raise StoreError unless the store answers (readiness checks)."""

    def close(self) -> None:
        """Release connections and threads. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
