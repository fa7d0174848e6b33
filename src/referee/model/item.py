"""A content item made of typed parts.

A playlist is a title, a description and cover art; a podcast episode is a
title, show notes and audio. Each of those is a *part* with its own id, so a
detector reads only the kinds it understands, evidence names the part it
points into, and one decision covers the whole item.

The plain ``{"id": ..., "text": ...}`` JSON of earlier releases still works:
``text`` is shorthand for one text part with id ``"text"`` and role ``body``,
and ``media`` (a list of ``{"kind", "uri"}``) for image and audio parts.

Media is identified by the sha256 of its bytes, never by its URI: the same
cover art at two URLs is one content hash, and a URL whose bytes change is
not. The model does no I/O, so a path or URL part must carry its ``sha256``
before the item is hashed; the engine's media resolver computes it (reading a
local path or an allow-listed URL, bounded in size and time).
"""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import datetime, timezone
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Base64Bytes, Field, field_validator, model_validator

from referee.model.base import Frozen

#: Texts longer than this are refused at the edge: a podcast transcript of a few
#: hours fits, a pasted book does not. Detectors window long texts themselves.
MAX_TEXT_CHARS = 200_000
#: Largest media blob accepted inline (base64 ``data``); bigger media goes by path or URL.
MAX_BLOB_BYTES = 20_000_000
#: Most parts one item may have.
MAX_PARTS = 64

KNOWN_SURFACES = (
    "comment",
    "message",
    "playlist_title",
    "playlist_description",
    "profile_bio",
    "podcast_episode",
)

PartKind = Literal["text", "image", "audio"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PART_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class TimeSegment(Frozen):
    """Characters ``[start, end)`` of a derived text came from seconds ``[start_s, end_s)`` of its source."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)


class Derivation(Frozen):
    """Where a derived text part came from: OCR of an image, a transcript of audio."""

    source_part: str
    detector: str
    detector_version: str
    segments: tuple[TimeSegment, ...] = ()


class TextPart(Frozen):
    kind: Literal["text"] = "text"
    id: str = "text"
    role: str = Field(default="body", description="title, description, body, bio, transcript, ocr, ...")
    text: str = Field(max_length=MAX_TEXT_CHARS)
    derived: Derivation | None = Field(default=None, description="Set on text a detector derived from another part.")

    @field_validator("id")
    @classmethod
    def _part_id(cls, value: str) -> str:
        return _check_part_id(value)


class MediaPart(Frozen):
    """An image or audio part: a local ``path``, an inline base64 ``data`` blob, or a ``url``.

    Exactly one source is given. ``sha256`` is the hash of the bytes: computed
    here for ``data``, checked against ``data`` when both are given, and filled
    in by the engine's media resolver for ``path`` and ``url``.
    """

    kind: Literal["image", "audio"]
    id: str
    role: str = "media"
    path: str | None = None
    url: str | None = None
    data: Base64Bytes | None = Field(default=None, description="The bytes, base64-encoded in JSON.")
    sha256: str | None = None
    mime: str | None = None

    @field_validator("id")
    @classmethod
    def _part_id(cls, value: str) -> str:
        return _check_part_id(value)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value.lower()):
            raise ValueError(f"sha256 must be 64 hex digits, got {value!r}")
        return None if value is None else value.lower()

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {value[:60]!r}; use 'path' for files")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "MediaPart":
        given = [name for name in ("path", "url", "data") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a {self.kind} part needs exactly one of 'path', 'url' or 'data', got {given or 'none'}")
        if self.data is not None:
            if len(self.data) > MAX_BLOB_BYTES:
                raise ValueError(f"data is {len(self.data)} bytes, over {MAX_BLOB_BYTES}; send it by path or url")
            digest = hashlib.sha256(self.data).hexdigest()
            if self.sha256 is not None and self.sha256 != digest:
                raise ValueError(f"sha256 {self.sha256} does not match the data (its sha256 is {digest})")
            object.__setattr__(self, "sha256", digest)
        return self



class ImagePart(MediaPart):
    kind: Literal["image"] = "image"
    role: str = "image"


class AudioPart(MediaPart):
    kind: Literal["audio"] = "audio"
    role: str = "audio"


Part = Annotated[TextPart | ImagePart | AudioPart, Field(discriminator="kind")]


class ContentItem(Frozen):
    """One piece of user content on one surface, made of one or more parts."""

    id: str = Field(min_length=1, max_length=256)
    surface: str = Field(default="comment", description="Where the content appears.")
    parts: tuple[Part, ...] = Field(min_length=1, max_length=MAX_PARTS)
    author_id: str | None = None
    language: str | None = Field(default=None, description="BCP 47 tag such as 'en' or 'de-AT'.")
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2, e.g. 'DE'.")
    created_at: datetime | None = None
    context: dict[str, Any] = Field(default_factory=dict)

    if TYPE_CHECKING:  # the shorthand keywords, for type checkers (pydantic's own __init__ takes them)
        def __init__(
            self, *, id: str, surface: str = "comment", text: str | None = None,
            parts: Sequence[Any] | None = None, media: Sequence[Any] | None = None,
            author_id: str | None = None, language: str | None = None, country: str | None = None,
            created_at: datetime | None = None, context: dict[str, Any] | None = None,
        ) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``text`` and ``media`` are shorthand for parts (the JSON of earlier releases)."""
        if not isinstance(data, dict):
            return data
        if "text" not in data and "media" not in data:
            if "parts" not in data:
                raise ValueError("the item has nothing to inspect: give a non-empty 'text' or at least one part")
            return data
        data = dict(data)
        text = data.pop("text", None)
        media = data.pop("media", None) or []
        parts = list(data.get("parts") or [])
        if text is not None and any(isinstance(p, dict) and p.get("kind", "text") == "text" for p in parts):
            raise ValueError("give either 'text' or text parts in 'parts', not both")
        shorthand: list[Any] = []
        if text is not None and text != "":
            shorthand.append({"kind": "text", "id": "text", "role": "body", "text": text})
        if not isinstance(media, list):
            raise ValueError("media must be a list of {kind, uri} objects")
        for i, ref in enumerate(media):
            if not isinstance(ref, dict) or set(ref) - {"kind", "uri", "sha256"}:
                raise ValueError(f"media[{i}] must be {{kind, uri[, sha256]}}; use 'parts' for more")
            uri = str(ref.get("uri", ""))
            source = "url" if uri.startswith(("http://", "https://")) else "path"
            shorthand.append({"kind": ref.get("kind"), "id": f"media{i}", source: uri, "sha256": ref.get("sha256")})
        data["parts"] = shorthand + parts
        if not data["parts"]:
            raise ValueError("the item has nothing to inspect: give a non-empty 'text' or at least one part")
        return data

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
        try:
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        except OverflowError:  # 0001-01-01T00:00+01:00 is a year-0 time in UTC
            raise ValueError(f"created_at {value.isoformat()} lies outside the years 1 to 9999 in UTC; "
                             "give a time with its real offset") from None

    @model_validator(mode="after")
    def _parts_fit_together(self) -> "ContentItem":
        seen: set[str] = set()
        for i, part in enumerate(self.parts):
            if part.id in seen:
                raise ValueError(f"parts[{i}].id {part.id!r} is used twice; give every part its own id")
            seen.add(part.id)
        for i, part in enumerate(self.parts):
            if isinstance(part, TextPart) and part.derived is not None and part.derived.source_part not in seen:
                raise ValueError(f"parts[{i}] is derived from {part.derived.source_part!r}, which the item lacks")
        if all(isinstance(p, TextPart) and not p.text for p in self.parts):
            raise ValueError("the item has nothing to inspect: every part is empty text")
        return self

    # -- reading parts ------------------------------------------------------
    @functools.cached_property
    def text(self) -> str:
        """All text parts written by the user (not derived ones), one per line: for
        tools that want one string; a view holding only derived text (what a text
        detector gets for an OCR part) gives that text. Evidence offsets index a
        part, and for the one-part views detectors get, ``text`` is that part."""
        texts = [p.text for p in self.parts if isinstance(p, TextPart) and p.derived is None]
        if not texts:
            texts = [p.text for p in self.parts if isinstance(p, TextPart)]
        return texts[0] if len(texts) == 1 else "\n".join(texts)

    def text_parts(self) -> tuple[TextPart, ...]:
        return tuple(p for p in self.parts if isinstance(p, TextPart))

    def media_parts(self) -> tuple[ImagePart | AudioPart, ...]:
        return tuple(p for p in self.parts if not isinstance(p, TextPart))

    def part(self, part_id: str) -> TextPart | ImagePart | AudioPart | None:
        return next((p for p in self.parts if p.id == part_id), None)

    @functools.cached_property
    def kinds(self) -> frozenset[str]:
        return frozenset(p.kind for p in self.parts)

    def only(self, kinds: frozenset[str]) -> "ContentItem":
        """The same item with only the parts of these kinds (what one detector reads)."""
        if self.kinds <= kinds:
            return self
        return self.model_copy(update={"parts": tuple(p for p in self.parts if p.kind in kinds)})

    def with_parts(self, extra: tuple[TextPart | ImagePart | AudioPart, ...]) -> "ContentItem":
        """The item with derived parts added; the content hash stays the user's content's."""
        if not extra:
            return self
        copy = self.model_copy(update={"parts": self.parts + tuple(extra)})
        copy.__dict__["content_hash"] = self.content_hash
        return copy

    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 of what the user posted: the surface and every non-derived part's
        content (text, or the media bytes' sha256), not ids of the item, timestamps or
        URIs, so a re-post of the same content on the same surface hashes the same.
        Cached: the decision id and the content row both need it."""
        h = hashlib.sha256(self.surface.encode())
        for part in self.parts:
            if isinstance(part, TextPart):
                if part.derived is not None:
                    continue
                content = part.text.encode("utf-8", "surrogatepass")
            else:
                if part.sha256 is None:
                    raise ValueError(
                        f"part {part.id!r} has no sha256 yet; the engine resolves media before hashing "
                        "(or declare 'sha256' with the part)"
                    )
                content = part.sha256.encode()
            # Length-prefixed fields, so ("ab", "c") and ("a", "bc") cannot collide.
            for field in (part.kind.encode(), part.id.encode(), part.role.encode(), content):
                h.update(b"\x00%d:" % len(field))
                h.update(field)
        return h.hexdigest()


def _check_part_id(value: str) -> str:
    if not _PART_ID.match(value):
        raise ValueError(f"part id must be 1-64 letters, digits or _.:- characters, got {value!r}")
    return value
