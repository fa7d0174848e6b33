"""The three store roles in memory, with the SQL store's semantics, for unit tests.

Same rules as ``referee.store.sql``: records get gap-free ``seq`` numbers; a
decision is superseded at most once and an item has one root, so an append
that conflicts returns the item's head; a stored decision id returns the
stored decision; erased content stays erased. Thread-safe (one lock).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from referee.errors import AuthError, StoreError
from referee.model import ContentItem, Decision, Part, Record, utcnow
from referee.store.apikeys import check_scopes, hash_secret, new_key, parse_key
from referee.store.chain import check_parent, check_supersedes
from referee.store.protocols import Exposure, ShadowDecision
from referee.store.roles import Roles
from referee.store.sql.shadow import check_same_experiment, shadow_id


class MemoryContentStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._content: dict[str, tuple[Part, ...] | None] = {}
        self._items: dict[tuple[str, str], ContentItem] = {}

    def put(self, items: Sequence[ContentItem]) -> None:
        with self._lock:
            for item in items:
                self._put(item)

    def _put(self, item: ContentItem) -> None:
        self._content.setdefault(item.content_hash, item.parts)
        self._items.setdefault((item.id, item.content_hash), item)

    def knows(self, item_id: str, content_hash: str) -> bool:
        return (item_id, content_hash) in self._items

    def get(self, item_id: str, content_hash: str) -> ContentItem | None:
        with self._lock:
            item = self._items.get((item_id, content_hash))
            parts = self._content.get(content_hash)
        if item is None or parts is None:
            return None
        return item if item.parts == parts else item.model_copy(update={"parts": parts})

    def contexts(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        with self._lock:
            return {key: dict(item.context) for key in keys
                    if (item := self._items.get(key)) is not None and self._content.get(key[1]) is not None}

    def erase(self, content_hash: str) -> bool:
        with self._lock:
            if self._content.get(content_hash) is None:
                return False
            self._content[content_hash] = None
            return True


class MemoryDecisionLog:
    """``DecisionLog`` in memory; appends also put the items into ``content``."""

    def __init__(self, content: MemoryContentStore | None = None) -> None:
        self.content = content or MemoryContentStore()
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._by_id: dict[str, Record] = {}
        self._chains: dict[str, list[str]] = {}
        self._superseded: set[str] = set()

    def append(self, pairs: Sequence[tuple[ContentItem, Decision]]) -> list[Decision]:
        with self._lock:
            return [self._append_one(item, decision) for item, decision in pairs]

    def supersede(self, old_id: str, new: Decision) -> Decision:
        with self._lock:
            old = self._by_id.get(old_id)
            new = check_supersedes(old_id, old.decision if old else None, new)
            return self._append_one(None, new)

    def _append_one(self, item: ContentItem | None, decision: Decision) -> Decision:
        stored = self._by_id.get(decision.decision_id)
        if stored is not None:
            return stored.decision
        chain = self._chains.get(decision.item_id)
        if decision.supersedes is not None:
            parent = self._by_id.get(decision.supersedes)
            check_parent(decision, parent.decision if parent else None)
            if decision.supersedes in self._superseded:
                return self._head(decision.item_id)  # type: ignore[return-value]
        elif chain:
            return self._head(decision.item_id)  # type: ignore[return-value]
        if item is not None:
            with self.content._lock:
                self.content._put(item)
        elif not self.content.knows(decision.item_id, decision.content_hash):
            raise StoreError(
                f"decision {decision.decision_id} is about item {decision.item_id!r} with content "
                f"{decision.content_hash}, which the store does not hold; append it with its ContentItem"
            )
        record = Record(seq=len(self._records) + 1, decision=decision, recorded_at=utcnow())
        self._records.append(record)
        self._by_id[decision.decision_id] = record
        self._chains.setdefault(decision.item_id, []).append(decision.decision_id)
        if decision.supersedes is not None:
            self._superseded.add(decision.supersedes)
        return decision

    def _head(self, item_id: str) -> Decision | None:
        chain = self._chains.get(item_id)
        return self._by_id[chain[-1]].decision if chain else None

    def get(self, decision_id: str) -> Decision | None:
        record = self._by_id.get(decision_id)
        return record.decision if record else None

    def get_many(self, decision_ids: Sequence[str]) -> dict[str, Decision]:
        return {i: self._by_id[i].decision for i in decision_ids if i in self._by_id}

    def head(self, item_id: str) -> Decision | None:
        with self._lock:
            return self._head(item_id)

    def heads(self, item_ids: Sequence[str]) -> dict[str, Decision]:
        with self._lock:
            return {i: d for i in item_ids if (d := self._head(i)) is not None}

    def history(self, item_id: str) -> list[Record]:
        with self._lock:
            return [self._by_id[i] for i in self._chains.get(item_id, [])]

    def pending_heads(self, limit: int = 100) -> list[Decision]:
        with self._lock:
            heads = [self._by_id[chain[-1]] for chain in self._chains.values()]
        found = sorted((r for r in heads if r.decision.pending_stages), key=lambda r: r.seq)
        return [r.decision for r in found[:limit]]

    def list(self, since: datetime | None = None, action: str | None = None, limit: int = 100) -> list[Decision]:
        with self._lock:
            records = list(self._records)
        found = [r.decision for r in records
                 if (since is None or _utc(r.decision.created_at) >= _utc(since))
                 and (action is None or r.decision.action.value == action)]
        # Newest first; among equal times, the later record first (as the SQL log orders them).
        return sorted(reversed(found), key=lambda d: _utc(d.created_at), reverse=True)[:limit]

    def records(self, after_seq: int = 0, limit: int | None = None) -> Iterator[Record]:
        with self._lock:
            chosen = self._records[after_seq:]
        return iter(chosen if limit is None else chosen[:limit])

    def last_seq(self) -> int:
        return len(self._records)


class MemoryKeyStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] = {}

    def create_key(self, name: str, scopes: list[str]) -> str:
        stored = check_scopes(scopes)
        key_id, secret, key = new_key()
        with self._lock:
            self._keys[key_id] = {"key_id": key_id, "secret_hash": hash_secret(secret), "name": name,
                                  "scopes": stored, "created_at": utcnow(), "revoked_at": None}
        return key

    def check_key(self, key: str) -> tuple[str, frozenset[str]]:
        key_id, secret = parse_key(key)
        row = self._keys.get(key_id)
        if row is None or row["revoked_at"] is not None or not hmac.compare_digest(row["secret_hash"],
                                                                                   hash_secret(secret)):
            raise AuthError("invalid or revoked API key")
        return key_id, frozenset(row["scopes"].split(","))

    def revoke_key(self, key_id: str) -> None:
        with self._lock:
            row = self._keys.get(key_id)
            if row is not None and row["revoked_at"] is None:
                row["revoked_at"] = utcnow()

    def list_keys(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = sorted(self._keys.values(), key=lambda r: r["created_at"])
        return [{k: v for k, v in r.items() if k != "secret_hash"} for r in rows]


class MemoryShadowStore:
    """``ShadowStore`` in memory: shadow decisions, exposures and experiment configurations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shadow: dict[str, ShadowDecision] = {}
        self._exposures: dict[tuple[str, str, str], Exposure] = {}
        self._experiments: dict[str, dict[str, Any]] = {}

    def add_shadow(self, rows: Sequence[ShadowDecision]) -> int:
        with self._lock:
            before = len(self._shadow)
            for r in rows:
                self._shadow.setdefault(shadow_id(r.candidate_id, r.champion_decision_id), r)
            return len(self._shadow) - before

    def shadow_decisions(self, candidate_id: str, since: datetime | None = None,
                         until: datetime | None = None) -> list[ShadowDecision]:
        with self._lock:
            rows = [r for r in self._shadow.values() if r.candidate_id == candidate_id
                    and _within(r.decision.created_at, since, until)]
        return sorted(rows, key=lambda r: (_utc(r.decision.created_at),
                                           shadow_id(r.candidate_id, r.champion_decision_id)))

    def shadow_candidates(self) -> list[str]:
        with self._lock:
            return sorted({r.candidate_id for r in self._shadow.values()})

    def register_experiment(self, name: str, config: dict[str, Any]) -> None:
        with self._lock:
            stored = self._experiments.setdefault(name, config)
        check_same_experiment(name, stored, config)

    def experiment_config(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._experiments.get(name)

    def log_exposures(self, rows: Sequence[Exposure]) -> int:
        with self._lock:
            before = len(self._exposures)
            for r in rows:
                self._exposures.setdefault((r.experiment, r.unit, r.item_id), r)
            return len(self._exposures) - before

    def exposures(self, experiment: str, since: datetime | None = None,
                  until: datetime | None = None) -> list[Exposure]:
        with self._lock:
            rows = [r for r in self._exposures.values() if r.experiment == experiment and _within(r.ts, since, until)]
        return sorted(rows, key=lambda r: (_utc(r.ts), r.unit, r.item_id))

    def erase_unit(self, unit: str) -> int:
        with self._lock:
            gone = [k for k in self._exposures if k[1] == unit]
            for k in gone:
                del self._exposures[k]
            return len(gone)


class MemoryStore(Roles):
    """``Store``'s roles in memory: ``.log``, ``.content``, ``.keys`` (and ``.shadow``)."""

    log: MemoryDecisionLog
    content: MemoryContentStore
    keys: MemoryKeyStore

    def __init__(self) -> None:
        self.content = MemoryContentStore()
        self.log = MemoryDecisionLog(self.content)
        self.keys = MemoryKeyStore()
        self.shadow = MemoryShadowStore()

    def __repr__(self) -> str:
        return "MemoryStore()"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _within(value: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or _utc(value) >= _utc(since)) and (until is None or _utc(value) < _utc(until))
