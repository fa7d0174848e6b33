"""Reading a JSON body under a size limit, with errors that say what is wrong.

FastAPI's own body parsing would reject a whole batch for one bad item and
reads the body without a cap, so the moderation routes read it here: first
the declared ``Content-Length`` (refused before a byte is read), then the
streamed size (a chunked body or a lying header cannot get past the cap).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from referee.serve.problems import BadRequest, PayloadTooLarge


async def read_json(request: Request, limit: int) -> Any:
    return await parse_json_body(request.stream(), request.headers.get("content-length"), limit)


async def parse_json_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> Any:
    """The JSON in a body arriving as ``chunks``, with ``declared`` its Content-Length header."""
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest(f"Content-Length must be an integer, got {declared!r}") from None
        if size > limit:
            raise PayloadTooLarge(_too_large(f"{size} bytes", limit))
    parts: list[bytes] = []
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(_too_large(f"more than {limit} bytes", limit))
        parts.append(chunk)
    raw = b"".join(parts)
    if not raw.strip():
        raise BadRequest("request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def _too_large(seen: str, limit: int) -> str:
    return (
        f"request body is {seen}, over the limit of {limit} bytes; "
        f"split the batch or raise REFEREE_MAX_BODY_BYTES"
    )
