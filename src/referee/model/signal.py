"""What a detector says about an item: signals with evidence, or a failure."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from referee.model.base import Frozen


class Evidence(Frozen):
    """Why a detector said what it said, pointing into one part of the item.

    Where in the part: a character span (``start``/``end``, offsets into that
    part's ORIGINAL text), a time range (``start_s``/``end_s`` in seconds of
    audio) or an image region (``region``: x, y, width, height in pixels). On
    a derived part (OCR text, a transcript) the engine adds ``source_part``
    and, for transcripts, the time range the span came from.

    Evidence keeps offsets and the list entry that matched, never a second
    copy of the user's words: the words live in the content store, which
    retention and erasure can empty; the decision log cannot be emptied.
    """

    part_id: str | None = Field(default=None, description="The part this evidence points into.")
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)
    start_s: float | None = Field(default=None, ge=0)
    end_s: float | None = Field(default=None, ge=0)
    region: tuple[int, int, int, int] | None = Field(default=None, description="x, y, width, height")
    source_part: str | None = Field(default=None, description="For a derived part: the part it came from.")
    entry: str | None = Field(default=None, description="The list entry or hash that matched.")
    detail: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> "Evidence":
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"evidence span ends ({self.end}) before it starts ({self.start})")
        if self.start_s is not None and self.end_s is not None and self.end_s < self.start_s:
            raise ValueError(f"evidence time range ends ({self.end_s}) before it starts ({self.start_s})")
        return self


class Signal(Frozen):
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
    stage: str | None = Field(default=None, description="The plan stage that produced it (set by the engine).")


class DetectorFailure(Frozen):
    """A detector that produced nothing for an item; the policy's ``on_error`` decides."""

    detector: str
    detector_version: str
    kind: Literal["timeout", "error"]
    message: str
