"""``POST /v1/moderate/upload``: an item whose images and audio come as files in a multipart form.

The form has one ``item`` field, the item's JSON as ``POST /v1/moderate`` takes
it, and one file field per media part, which the part names with ``"file"``
instead of ``path``/``data``/``url``::

    item  = {"id": "pl-42", "surface": "playlist_description",
             "parts": [{"kind": "text", "id": "title", "text": "late night drives"},
                       {"kind": "image", "id": "cover", "file": "cover"}]}
    cover = <the PNG's bytes>

The answer is the item's decision, as from ``POST /v1/moderate``.

What is checked here, before anything is moderated (each a problem naming the field):

- sizes: every file at most ``max_upload_bytes``, the whole body at most
  ``max_upload_total_bytes`` (counted while it streams in, whatever
  Content-Length says) -> 413;
- what a file *is*, from its first bytes, not its declared type: PNG, JPEG, WebP or
  GIF for an image part; WAV, MP3, OGG, FLAC or M4A for an audio part. Anything
  else, a file whose bytes are of the other kind, or a declared Content-Type that
  contradicts the bytes -> 415;
- the form itself: no ``item``, ``item`` not JSON, a part naming a file that is
  not in the form, a file no part names (it would be content nobody inspects), a
  part given by ``path`` (a file on the *server*: an upload sends its files) ->
  400/422.

What is *not* checked here is whether the file decodes: a PNG cut off half-way
passes the magic-bytes check, and the detector that reads it fails for that part.
The engine records that as the detector's failure on the decision (its message
names the part) and the policy's ``on_error`` applies, while the item's other
parts are moderated as usual: a corrupt file is never a silent allow, and never
costs the rest of the item its moderation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from referee.errors import InputError
from referee.model import MAX_BLOB_BYTES, ContentItem
from referee.model.item import MAX_PARTS
from referee.serve.auth import Principal, require
from referee.serve.problems import (
    BadRequest,
    InvalidItems,
    PayloadTooLarge,
    error_body,
    field_path,
    respond,
)
from referee.serve.schemas import ErrorResponse, ItemError, Rejected
from referee.serve.state import ServeState
from referee.settings import Settings

router = APIRouter()

#: Defaults of ``UploadLimits`` (the app takes its limits from the settings).
#: A file goes to the engine as an inline blob, so it can be no bigger than one.
MAX_UPLOAD_BYTES = MAX_BLOB_BYTES
MAX_UPLOAD_TOTAL_BYTES = 50_000_000
#: The ``item`` field, and every other non-file field, is JSON text: at most this.
MAX_FIELD_BYTES = 1_000_000

#: (first bytes test, format, MIME type, part kind), most specific first.
_IMAGE, _AUDIO = "image", "audio"
FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", _IMAGE), "JPEG": ("image/jpeg", _IMAGE), "WebP": ("image/webp", _IMAGE),
    "GIF": ("image/gif", _IMAGE), "WAV": ("audio/wav", _AUDIO), "MP3": ("audio/mpeg", _AUDIO),
    "OGG": ("audio/ogg", _AUDIO), "FLAC": ("audio/flac", _AUDIO), "M4A": ("audio/mp4", _AUDIO),
}
_M4A_BRANDS = (b"M4A ", b"M4B ", b"mp41", b"mp42", b"isom", b"iso2", b"dash")


def sniff(data: bytes) -> str | None:
    """The format the bytes start like (a key of ``FORMATS``), or None."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head.startswith(b"OggS"):
        return "OGG"
    if head.startswith(b"fLaC"):
        return "FLAC"
    if head[4:8] == b"ftyp" and head[8:12] in _M4A_BRANDS:
        return "M4A"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"  # an ID3 tag, or an MPEG audio frame's sync bits
    return None


class UnsupportedMedia(InputError):
    """A file that is not a kind of image or audio referee reads (415)."""


@dataclass(frozen=True)
class UploadLimits:
    file_bytes: int = MAX_UPLOAD_BYTES
    total_bytes: int = MAX_UPLOAD_TOTAL_BYTES
    field_bytes: int = MAX_FIELD_BYTES

    @classmethod
    def of(cls, settings: Settings) -> UploadLimits:
        """From the settings (``REFEREE_MAX_UPLOAD_BYTES``, ``REFEREE_MAX_UPLOAD_TOTAL_BYTES``,
        ``REFEREE_MAX_BODY_BYTES`` for the JSON fields); never above one inline blob."""
        return cls(min(settings.max_upload_bytes, MAX_BLOB_BYTES), settings.max_upload_total_bytes,
                   settings.max_body_bytes)


@dataclass
class _Field:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Form:
    """A multipart body parsed in memory, every limit enforced while it streams in."""

    def __init__(self, boundary: bytes, limits: UploadLimits) -> None:
        self.limits = limits
        self.fields: dict[str, _Field] = {}
        self._current = _Field()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
            "on_header_field": lambda d, a, b: self._header_name.extend(d[a:b]),
            "on_header_value": lambda d, a, b: self._header_value.extend(d[a:b]),
            "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
        })

    def _begin(self) -> None:
        self._current, self._headers = _Field(), {}

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise BadRequest("a form field without a name (Content-Disposition: form-data; name=...)")
        self._current.name = name.decode("utf-8", "replace")
        if b"filename" in options:
            self._current.filename = options[b"filename"].decode("utf-8", "replace")
        declared = self._headers.get(b"content-type")
        self._current.content_type = declared.decode("latin-1").split(";")[0].strip().lower() if declared else None
        if self._current.name in self.fields:
            raise InputError("the form has this field twice; give each file its own name", self._current.name)
        if len(self.fields) >= MAX_PARTS + 1:
            raise PayloadTooLarge(f"more than {MAX_PARTS + 1} form fields (an item has at most {MAX_PARTS} parts)")

    def _data(self, data: bytes, start: int, end: int) -> None:
        current = self._current
        current.data.extend(data[start:end])
        is_file = current.filename is not None or current.name != "item"
        limit = self.limits.file_bytes if is_file else self.limits.field_bytes
        if len(current.data) > limit:
            what = "file" if is_file else "field"
            raise PayloadTooLarge(f"this {what} is over {limit} bytes; send a smaller one"
                                  + (" (or the media by URL from an allow-listed host)" if is_file else ""),
                                  current.name)

    def _end(self) -> None:
        self.fields[self._current.name] = self._current


async def read_form(request: Request, limits: UploadLimits) -> dict[str, _Field]:
    """The form's fields; 415 when the body is not multipart, 413 past a limit, 400 when it is not well formed."""
    declared = request.headers.get("content-type", "")
    kind, options = parse_options_header(declared)
    if kind != b"multipart/form-data":
        raise UnsupportedMedia(f"the body must be multipart/form-data (an 'item' field and its files), "
                               f"got {declared or 'no Content-Type'!r}", "Content-Type")
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest("multipart/form-data without a boundary", "Content-Type")
    form = _Form(boundary, limits)
    size = 0
    try:
        async for chunk in _stream(request):
            size += len(chunk)
            if size > limits.total_bytes:
                raise PayloadTooLarge(f"the upload is over {limits.total_bytes} bytes in all; "
                                      "send fewer or smaller files")
            form.parser.write(chunk)
        form.parser.finalize()
    except FormParserError as exc:
        raise BadRequest(f"not a well-formed multipart/form-data body: {exc}") from exc
    return form.fields


async def _stream(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def build_item(fields: dict[str, _Field]) -> ContentItem:
    """The item from the ``item`` field, each ``"file"`` reference replaced by that file's bytes."""
    raw_field = fields.get("item")
    if raw_field is None:
        raise InputError("the form has no 'item' field: send the item's JSON in a field named 'item'", "item")
    try:
        raw = json.loads(bytes(raw_field.data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"not UTF-8 JSON ({exc}); send the item as JSON text", "item") from exc
    if not isinstance(raw, dict):
        raise InputError(f"must be a JSON object (one content item), got a JSON {type(raw).__name__}", "item")
    parts = raw.get("parts")
    used: set[str] = set()
    if isinstance(parts, list):
        resolved = []
        for i, part in enumerate(parts):
            if isinstance(part, dict) and "path" in part and "file" not in part:
                raise InputError("a path is read on the server, so an upload does not take one: "
                                 "send the file and name it with \"file\"", f"item.parts[{i}].path")
            if isinstance(part, dict) and "file" in part:
                part = _with_file(part, i, fields)
                used.add(str(raw["parts"][i]["file"]))
            resolved.append(part)
        raw = {**raw, "parts": resolved}
    unused = sorted(set(fields) - used - {"item"})
    if unused:
        raise InputError(f"no part of the item names this file (add a part with \"file\": {unused[0]!r}); "
                         "content nobody inspects is not accepted", unused[0])
    try:
        return ContentItem.model_validate(raw)
    except ValidationError as exc:
        problems = [ItemError(field=field_path(tuple(e["loc"]), "item", shorthand="text" in raw) or None,
                              type="invalid_input", message=e["msg"]) for e in exc.errors()]
        raise InvalidItems(problems[0].message, problems[0].field, problems) from exc


def _with_file(part: dict[str, Any], i: int, fields: dict[str, _Field]) -> dict[str, Any]:
    where = f"item.parts[{i}].file"
    name = part["file"]
    kind = part.get("kind")
    if not isinstance(name, str) or not name:
        raise InputError("must name a file field of the form, e.g. \"file\": \"cover\"", where)
    if kind not in (_IMAGE, _AUDIO):
        raise InputError(f"only image and audio parts take a file, not a part of kind {kind!r}", where)
    clash = [k for k in ("path", "data", "url") if k in part]
    if clash:
        raise InputError(f"a part takes its bytes from one source: drop {clash[0]!r} or 'file'", where)
    upload = fields.get(name)
    if upload is None or name == "item":
        files = sorted(set(fields) - {"item"})
        raise InputError(f"no file field {name!r} in the form" + (f"; it has {', '.join(files)}" if files else ""),
                         where)
    data = bytes(upload.data)
    if not data:
        raise InputError("the file is empty", name)
    found = sniff(data)
    if found is None:
        wanted = "a PNG, JPEG, WebP or GIF image" if kind == _IMAGE else "WAV, MP3, OGG, FLAC or M4A audio"
        raise UnsupportedMedia(f"not {wanted} (its first bytes are {data[:8].hex()})", name)
    mime, found_kind = FORMATS[found]
    if found_kind != kind:
        raise UnsupportedMedia(f"part {part.get('id')!r} is an {kind} part but this file holds {found} {found_kind}",
                               name)
    declared = upload.content_type
    if declared and declared != "application/octet-stream" and not declared.startswith(f"{kind}/"):
        raise UnsupportedMedia(f"declared as {declared!r} but holds {found} {found_kind}; "
                               f"declare {mime} or application/octet-stream", name)
    rest = {k: v for k, v in part.items() if k != "file"}
    return {**rest, "data": base64.b64encode(data).decode("ascii"), "mime": mime}


def _unsupported(exc: UnsupportedMedia) -> JSONResponse:
    return JSONResponse(error_body("unsupported_media_type", exc.reason, exc.where), status_code=415)


require_moderate = require("moderate")


async def moderate_upload(request: Request, _: Annotated[Principal, Depends(require_moderate)]) -> Response:
    """Moderate one item whose media parts are files of this multipart form (see the module's docstring)."""
    state: ServeState = request.app.state.referee
    try:
        fields = await read_form(request, UploadLimits.of(state.settings))
        item = build_item(fields)
        decision = (await state.batcher.moderate([item]))[0]
    except UnsupportedMedia as exc:
        return _unsupported(exc)
    except ClientDisconnect:
        raise
    except Exception as exc:  # noqa: BLE001 - the same answer the app's exception handlers give
        return respond(exc)
    return Response(content=decision.json_bytes, media_type="application/json")


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Not a well-formed multipart body, or `item` is not UTF-8 JSON."},
    401: {"model": ErrorResponse, "description": "No API key, or a malformed, unknown or revoked one."},
    403: {"model": ErrorResponse, "description": "The key lacks the `moderate` scope."},
    413: {"model": ErrorResponse, "description": "A file over `max_upload_bytes`, or the body over "
                                                 "`max_upload_total_bytes`; `error.field` names the file."},
    415: {"model": ErrorResponse, "description": "The body is not multipart/form-data, or a file is not an image "
                                                 "or audio format referee reads (sniffed from its bytes); "
                                                 "`error.field` names it."},
    422: {"model": Rejected, "description": "The item is invalid, names a file the form lacks, or the form has a "
                                            "file no part names."},
    503: {"model": ErrorResponse, "description": "The decision store cannot be reached; retry later."},
}

router.add_api_route(
    "/v1/moderate/upload",
    moderate_upload,
    methods=["POST"],
    tags=["moderation"],
    summary="Moderate one item whose images and audio are uploaded as files",
    response_model=None,
    responses={200: {"model": None, "description": "The item's decision (as from POST /v1/moderate).",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}},
               **_ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["item"],
                        "properties": {
                            "item": {"type": "string", "description": "The item's JSON; a media part names its "
                                     "file field with \"file\" instead of path/data/url."},
                        },
                        "additionalProperties": {"type": "string", "format": "binary"},
                    },
                    "examples": {
                        "text": {"summary": "An item with no files",
                                 "value": {"item": json.dumps({"id": "u1", "text": "lovely track"})}},
                    },
                }
            },
        }
    },
)
