"""Hand-made decision logs for the compliance tests: decisions built directly, no detectors."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from referee.model import Action, ContentItem, Decision, Reason
from referee.store import Store
from tests.store.conftest import pg_url  # noqa: F401  (the PostgreSQL fixture, for these tests too)

T0 = datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)


def item(n: int | str, text: str = "some words", author: str | None = "author-1", country: str | None = "DE",
         created_at: datetime | None = T0) -> ContentItem:
    return ContentItem(id=f"item-{n}", text=f"{text} {n}", author_id=author, country=country, language="en",
                       created_at=created_at)


def decision(it: ContentItem, action: Action = Action.remove, categories: tuple[str, ...] = ("hate",),
             source: str = "automated", supersedes: Decision | None = None, created_at: datetime = T0,
             automated_detection: bool = True, automated_decision: bool = True, strike: bool = False) -> Decision:
    key = hashlib.sha256(f"{it.id}|{it.content_hash}|{source}|{supersedes and supersedes.decision_id}".encode())
    reasons = tuple(Reason(rule_id=f"r-{c}", kind="threshold", category=c, action=action, threshold=0.5,
                           message=f"{c} above 0.5") for c in categories)
    return Decision(decision_id=key.hexdigest(), input_key=key.hexdigest(), item_id=it.id,
                    content_hash=it.content_hash, surface=it.surface, country=it.country, action=action,
                    strike=strike, categories=categories, reasons=reasons, policy_id="default",
                    policy_version="1", policy_sha256="p" * 64, source=source,  # type: ignore[arg-type]
                    supersedes=supersedes.decision_id if supersedes else None, created_at=created_at,
                    automated_detection=automated_detection, automated_decision=automated_decision)


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/log.db")
    yield s
    s.close()


def fill(store: Store, n: int) -> list[Decision]:
    out = []
    for i in range(n):
        it = item(i)
        out += store.log.append([(it, decision(it))])
    return out
