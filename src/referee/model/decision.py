"""What the policy made of the signals, and the log's record of it."""

from __future__ import annotations

import functools
from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import Field

from referee.model.base import Frozen, utcnow
from referee.model.signal import DetectorFailure, Signal


class Action(str, Enum):
    """Enforcement actions, declared from least to most severe.

    Account-level strikes are not an action on the item; a rule adds one with
    ``strike: true`` next to its action, and the decision carries ``strike``.
    """

    allow = "allow"
    label = "label"
    age_restrict = "age_restrict"
    limit_reach = "limit_reach"
    hold_for_review = "hold_for_review"
    remove = "remove"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @classmethod
    def most_severe(cls, actions: list["Action"]) -> "Action":
        return max(actions, key=lambda a: a.severity, default=cls.allow)


_SEVERITY = {a: i for i, a in enumerate(Action)}


class SignalRef(Frozen):
    detector: str
    category: str
    score: float


class Reason(Frozen):
    """One rule that fired: readable by a user, checkable by a machine.

    ``kind`` is ``threshold`` (a signal crossed a rule), ``on_error`` (a detector
    the rule depends on failed), ``uninspected`` (a part of the item that no
    configured detector reads, so the policy's ``on_uninspected`` applies) or
    ``account`` (the author's account is under an account action whose
    ``item_action`` applies to their items; ``rule_id`` names the record)."""

    rule_id: str
    kind: Literal["threshold", "on_error", "uninspected", "account"]
    category: str | None
    action: Action
    strike: bool = False
    threshold: float | None = None
    signals: tuple[SignalRef, ...] = ()
    failed_detectors: tuple[str, ...] = ()
    parts: tuple[str, ...] = Field(default=(), description="For 'uninspected': the parts nothing read.")
    message: str


class StageRun(Frozen):
    """What happened to one stage of the detection plan for this item."""

    stage: str
    status: Literal["ran", "skipped", "pending", "failed"]
    why: str = ""
    detectors: tuple[str, ...] = ()


Source = Literal["automated", "review", "appeal"]


class Decision(Frozen):
    """What referee decided about an item, and why.

    Append-only: a review verdict, an appeal or an async stage writes a new
    Decision whose ``supersedes`` names the one it replaces. The decisions of
    an item form a chain; its last link is the item's *head*.

    ``input_key`` names the inputs (content, policy content, detector versions,
    engine configuration): re-moderating with the same inputs returns the head
    instead of deciding again. A ``provisional`` decision was made while a
    detector failed or an async stage was still pending; re-moderation after a
    failure decides again and supersedes it.
    """

    decision_id: str
    input_key: str
    item_id: str
    content_hash: str
    surface: str
    country: str | None = None
    action: Action
    strike: bool = False
    categories: tuple[str, ...] = ()
    reasons: tuple[Reason, ...] = ()
    signals: tuple[Signal, ...] = ()
    failures: tuple[DetectorFailure, ...] = ()
    stages: tuple[StageRun, ...] = ()
    provisional: bool = False
    policy_id: str
    policy_version: str
    policy_sha256: str
    engine_config_id: str = ""
    detector_versions: dict[str, str] = Field(default_factory=dict)
    automated_detection: bool = True
    automated_decision: bool = True
    review_required: bool = False
    source: Source = "automated"
    supersedes: str | None = None
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def flagged(self) -> bool:
        return self.action is not Action.allow

    @property
    def human(self) -> bool:
        """A person made this decision (a reviewer's verdict or an appeal's outcome)."""
        return self.source != "automated"

    @property
    def pending_stages(self) -> tuple[str, ...]:
        return tuple(s.stage for s in self.stages if s.status == "pending")

    @functools.cached_property
    def json_bytes(self) -> bytes:
        """The decision as JSON, serialised once: the store writes these bytes as its
        record and the HTTP service sends them, instead of each encoding the decision
        again (the second encoding was 7 % of a busy server's event loop, py-spy).
        Safe to cache because a Decision is frozen; ``model_copy`` drops it."""
        return self.__pydantic_serializer__.to_json(self)


class Record(Frozen):
    """A decision as the log holds it: with its store-assigned, gap-free sequence number."""

    seq: int = Field(ge=1)
    decision: Decision
    recorded_at: datetime
