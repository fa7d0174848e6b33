"""The values that flow through referee: item → signals → decision.

These are frozen pydantic models with no I/O, so every other part of referee can
import them and nothing here imports anything of referee but ``errors``. The
same shapes are the HTTP API's JSON and the decision store's payloads.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Texts longer than this are refused at the edge: a podcast transcript of a few
#: hours fits, a pasted book does not. Detectors window long texts themselves.
MAX_TEXT_CHARS = 200_000

KNOWN_SURFACES = (
    "comment",
    "message",
    "playlist_title",
    "playlist_description",
    "profile_bio",
    "podcast_episode",
)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        # Values cached from the fields (functools.cached_property) are safe because
        # the model is frozen; a copy with other fields must compute its own.
        copied = super().model_copy(update=update, deep=deep)
        for name in _cached_properties(type(self)):
            copied.__dict__.pop(name, None)
        return copied


@functools.cache
def _cached_properties(cls: type) -> tuple[str, ...]:
    """Names of a model class's cached properties, found once per class."""
    return tuple(name for klass in cls.__mro__ for name, attr in vars(klass).items()
                 if isinstance(attr, functools.cached_property))


class MediaRef(_Frozen):
    """A pointer to media that belongs to the item (cover art, an episode's audio)."""

    kind: Literal["image", "audio"]
    uri: str = Field(min_length=1, description="Local path or http(s) URL.")


class ContentItem(_Frozen):
    """One piece of user content on one surface."""

    id: str = Field(min_length=1, max_length=256)
    surface: str = Field(default="comment", description="Where the content appears.")
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    media: tuple[MediaRef, ...] = ()
    author_id: str | None = None
    language: str | None = Field(default=None, description="BCP 47 tag such as 'en' or 'de-AT'.")
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2, e.g. 'DE'.")
    created_at: datetime | None = None
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("surface")
    @classmethod
    def _surface_is_a_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"surface must be lower_snake_case like 'comment' or 'playlist_title', got {value!r}"
            )
        return value

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError(f"country must be a two-letter ISO 3166-1 code such as 'DE', got {value!r}")
        return value.upper()

    @field_validator("created_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # One clock for every stored timestamp: SQLite keeps no offset, so an offset
        # left on the value would be silently dropped there. Naive times are taken as UTC.
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 of what a detector sees; metadata like ids and timestamps is left out
        so a re-post of the same text on the same surface hashes the same. Cached: the
        decision id and the store's item row both need it."""
        h = hashlib.sha256(self.surface.encode())
        for part in (self.text, *(m.uri for m in self.media)):
            # Length-prefixed, so ("ab", "c") and ("a", "bc") cannot collide.
            data = part.encode("utf-8", "surrogatepass")
            h.update(b"\x00%d:" % len(data))
            h.update(data)
        return h.hexdigest()


class Evidence(_Frozen):
    """Why a detector said what it said. Offsets index the ORIGINAL item text."""

    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)
    text: str | None = Field(default=None, description="The original text at [start, end).")
    entry: str | None = Field(default=None, description="The list entry or hash that matched.")
    detail: dict[str, Any] = Field(default_factory=dict)


class Signal(_Frozen):
    """One detector's score for one category of one item."""

    detector: str
    detector_version: str
    category: str
    score: float = Field(ge=0.0, le=1.0)
    evidence: tuple[Evidence, ...] = ()
    operating_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="The detector's own recommended threshold; rules with `threshold: model_default` use it.",
    )


class DetectorFailure(_Frozen):
    """A detector that produced nothing for an item; the policy's ``on_error`` decides."""

    detector: str
    detector_version: str
    kind: Literal["timeout", "error"]
    message: str


class SignalRef(_Frozen):
    detector: str
    category: str
    score: float


class Reason(_Frozen):
    """One rule that fired: readable by a user, checkable by a machine."""

    rule_id: str
    kind: Literal["threshold", "on_error"]
    category: str | None
    action: Action
    strike: bool = False
    threshold: float | None = None
    signals: tuple[SignalRef, ...] = ()
    failed_detectors: tuple[str, ...] = ()
    message: str


class Decision(_Frozen):
    """What referee decided about an item, and why. Append-only: a review or an
    appeal writes a new Decision whose ``supersedes`` names the old one."""

    decision_id: str
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
    policy_id: str
    policy_version: str
    detector_versions: dict[str, str] = Field(default_factory=dict)
    automated_detection: bool = True
    automated_decision: bool = True
    review_required: bool = False
    source: Literal["automated", "review", "appeal"] = "automated"
    supersedes: str | None = None
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def flagged(self) -> bool:
        return self.action is not Action.allow

    @functools.cached_property
    def json_bytes(self) -> bytes:
        """The decision as JSON, serialised once: the store writes these bytes as its
        record and the HTTP service sends them, instead of each encoding the decision
        again (the second encoding was 7 % of a busy server's event loop, py-spy).
        Safe to cache because a Decision is frozen; ``model_copy`` drops it."""
        return self.__pydantic_serializer__.to_json(self)


def decision_key(
    item: ContentItem,
    policy_id: str,
    policy_version: str,
    detector_versions: dict[str, str],
) -> str:
    """The id of the automated decision for this item under this policy and these
    detectors. Deriving it (instead of a random uuid) makes moderation idempotent:
    the same input can only ever produce the same decision id."""
    parts = [item.id, item.content_hash, item.country or "", policy_id, policy_version]
    parts += [f"{name}={version}" for name, version in sorted(detector_versions.items())]
    payload = "\x1f".join(parts)  # unit separator: cannot appear in ids, hashes or versions by accident
    return "dec_" + hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]
