"""Request and response shapes of the HTTP API.

Items and decisions are ``referee.model``'s own ``ContentItem`` and
``Decision``: the wire format is the domain format, so there is no second
schema to drift. What lives here is only the envelope around them (batches,
per-item errors, health) and OpenAI's Moderation shape.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from referee.model import ContentItem, Decision, Record


class ErrorDetail(BaseModel):
    type: str = Field(description="Stable machine-readable kind, e.g. 'invalid_input', 'unauthorized'.")
    message: str = Field(description="What is wrong and how to fix it.")
    field: str | None = Field(default=None, description="The offending field, e.g. 'items[2].text'.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ItemError(BaseModel):
    index: int | None = Field(
        default=None, description="Position of the bad item in the request's `items`; null when the request is not a batch."
    )
    field: str | None = Field(
        description="Path of the bad field, e.g. 'items[2].surface'; null when the whole body is wrong."
    )
    type: str
    message: str


class BatchRequest(BaseModel):
    """Several items in one call; at most ``Settings.max_batch``."""

    items: list[ContentItem] = Field(min_length=1)


class BatchResponse(BaseModel):
    """``decisions[i]`` answers ``items[i]``; it is null exactly when ``errors`` has an entry with ``index == i``."""

    decisions: list[Decision | None]
    errors: list[ItemError] = Field(default_factory=list)


class Rejected(ErrorResponse):
    """Every 422: the body is JSON but nothing in it could be processed (a single item
    that is invalid, a batch whose every item is, a body of the wrong shape). ``error``
    is the first problem; ``errors`` lists every one."""

    errors: list[ItemError] = Field(min_length=1)


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


# -- OpenAI Moderation API -------------------------------------------------
class RefereeOptions(BaseModel):
    """Referee-specific knobs of ``POST /v1/moderations`` (send with the openai client's ``extra_body``)."""

    model_config = ConfigDict(extra="forbid")
    surface: str = "comment"
    country: str | None = None


class TextInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="A data: URL (base64) or an http(s) URL from an allow-listed host.")


class ImageInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image_url"]
    image_url: ImageURL


class ModerationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str | list[str] | list[Annotated[TextInput | ImageInput, Field(discriminator="type")]] = Field(
        description="One text, a list of texts, or OpenAI's multimodal array of text and image_url parts "
                    "(one input made of parts).")
    model: str | None = Field(default=None, description="Accepted for compatibility; referee's policy decides.")
    referee: RefereeOptions = Field(default_factory=RefereeOptions)


class RefereeExtras(BaseModel):
    """What OpenAI's shape cannot carry: the decision itself and categories without an OpenAI name."""

    decision_id: str
    action: str
    categories: list[str]
    category_scores: dict[str, float]


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[Literal["text", "image"]]]
    referee: RefereeExtras


class ModerationResponse(BaseModel):
    id: str
    model: str
    results: list[ModerationResult]


class ItemHistory(BaseModel):
    """Every decision about an item, oldest first, and its head (the current decision)."""

    item_id: str
    head: Decision | None
    records: list[Record]
