"""Retention and erasure: what users posted is forgotten on time; the evidence stays verifiable.

Retention is set per data class, in days (``None``: kept):

- ``content_text``: content with a text part is emptied (``store.content.erase``) once it has
  been stored this long;
- ``media_refs``: content made only of media references (paths, URLs, hashes) likewise;
- ``author_ids``: the items' ``author_id`` (the one personal identifier referee stores beside
  the content) is removed from items first seen this long ago;
- ``signals`` and ``decisions``: kept. They are the append-only, hash-chained log (the triggers
  refuse to delete them) and hold no user content: scores, rule ids, offsets and the content's
  hash. A value other than ``None`` is refused with that said.

Erasing content leaves a tombstone row (``erased_at``); the decision records name the content
by hash and are untouched, so ``referee audit verify`` still passes and statements of reasons
and report statistics are unchanged. ``erase_author`` answers an erasure request: every item of
that author has its content emptied and its ``author_id`` removed.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator
from sqlalchemy import Text, cast, null, select, update
from sqlalchemy.exc import SQLAlchemyError

from referee.errors import ConfigError, StoreError
from referee.model import utcnow
from referee.model.base import Frozen
from referee.store.sql.database import Database
from referee.store.sql.shadow import SQLShadowStore
from referee.store.sql.tables import content, items

#: Content rows read per query.
PAGE = 1000


class Retention(Frozen):
    """Days each data class is kept (``None``: kept indefinitely)."""

    content_text: int | None = Field(default=365, ge=0)
    media_refs: int | None = Field(default=365, ge=0)
    author_ids: int | None = Field(default=365, ge=0)
    signals: None = Field(default=None, description="Kept: append-only, chained, no user content.")
    decisions: None = Field(default=None, description="Kept: append-only, chained, no user content.")

    @field_validator("signals", "decisions", mode="before")
    @classmethod
    def _kept(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("decision records and their signals are kept: they are the append-only, hash-chained "
                             "log and hold no user content (set it to null or leave it out)")
        return None

    @classmethod
    def from_file(cls, path: Path) -> "Retention":
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read retention config {path}: {exc}") from exc
        section = data.get("retention", data) if isinstance(data, dict) else data
        try:
            return cls.model_validate(section)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(retention)"
            raise ConfigError(f"{path}: retention.{where}: {first['msg']} (got {first.get('input')!r})") from exc


class RetentionResult(Frozen):
    content_erased: int
    authors_removed: int
    dry_run: bool = False


class ErasureResult(Frozen):
    items: int
    content_erased: int
    exposures_erased: int = 0


class RetentionJob:
    """Applies a ``Retention`` to one SQL store (its ``db`` and ``content`` roles)."""

    def __init__(self, db: Database, content_store: Any, retention: Retention | None = None) -> None:
        self._db = db
        self._content = content_store
        self.retention = retention or Retention()

    def expired_content(self, now: datetime | None = None) -> list[str]:
        """The hashes of content past its class's retention, oldest first."""
        now = now or utcnow()
        r = self.retention
        days = [d for d in (r.content_text, r.media_refs) if d is not None]
        if not days:
            return []
        oldest_cut = now - timedelta(days=min(days))
        text_cut = now - timedelta(days=r.content_text) if r.content_text is not None else None
        media_cut = now - timedelta(days=r.media_refs) if r.media_refs is not None else None
        query = (select(content.c.content_hash, content.c.stored_at, cast(content.c.parts, Text).label("parts"))
                 .where(content.c.parts.is_not(None), content.c.stored_at < oldest_cut)
                 .order_by(content.c.stored_at, content.c.content_hash))
        found: list[str] = []
        with self._db.read() as conn:
            for row in conn.execute(query):
                kinds = {p.get("kind") for p in json.loads(row.parts or "[]") if isinstance(p, dict)}
                stored = _aware(row.stored_at)
                cut = text_cut if "text" in kinds else media_cut
                if cut is not None and stored < cut:
                    found.append(row.content_hash)
        return found

    def apply(self, now: datetime | None = None, dry_run: bool = False) -> RetentionResult:
        now = now or utcnow()
        expired = self.expired_content(now)
        authors = 0
        if not dry_run:
            erased = sum(bool(self._content.erase(h)) for h in expired)
        else:
            erased = len(expired)
        if self.retention.author_ids is not None:
            cut = now - timedelta(days=self.retention.author_ids)
            where = (items.c.author_id.is_not(None), items.c.first_seen_at < cut)
            try:
                if dry_run:
                    with self._db.read() as conn:
                        authors = len(conn.execute(select(items.c.item_id).where(*where)).all())
                else:
                    with self._db.write() as conn:
                        authors = conn.execute(update(items).where(*where).values(author_id=null())).rowcount
            except SQLAlchemyError as exc:
                raise StoreError(f"could not remove expired author ids: {exc}") from exc
        return RetentionResult(content_erased=erased, authors_removed=authors, dry_run=dry_run)

    def erase_author(self, author_id: str) -> ErasureResult:
        """An erasure request: empty the content of every item of ``author_id`` and forget the id."""
        if not author_id:
            raise ConfigError("erase_author needs an author id")
        with self._db.read() as conn:
            rows = conn.execute(select(items.c.item_id, items.c.content_hash)
                                .where(items.c.author_id == author_id)).all()
        erased = sum(bool(self._content.erase(h)) for h in sorted({r.content_hash for r in rows}))
        try:
            with self._db.write() as conn:
                conn.execute(update(items).where(items.c.author_id == author_id).values(author_id=null()))
        except SQLAlchemyError as exc:
            raise StoreError(f"could not remove author {author_id!r} from items: {exc}") from exc
        # Experiments assign by author: their exposure records name the author as the unit.
        exposures = SQLShadowStore(self._db).erase_unit(author_id)
        return ErasureResult(items=len(rows), content_erased=erased, exposures_erased=exposures)


def _aware(value: datetime) -> datetime:
    from datetime import timezone

    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


__all__ = ["ErasureResult", "Retention", "RetentionJob", "RetentionResult"]
