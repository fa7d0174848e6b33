"""Reading content items from JSONL or CSV, one line at a time.

A bad line never stops the file: it becomes an ``InputError`` naming the line
and the field, yielded in order with the good items, so the caller can
process the good ones and report every bad one. Nothing is silently dropped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from referee.errors import InputError
from referee.model import ContentItem

_ITEM_FIELDS = set(ContentItem.model_fields)


def parse_item(data: Any, where: str) -> ContentItem:
    """One item from decoded JSON, or an InputError that says which field is wrong."""
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object with at least 'id' and 'text', got {type(data).__name__}", where)
    try:
        return ContentItem.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "item"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown field (known: {', '.join(sorted(_ITEM_FIELDS))}; put anything else under 'context')"
        elif err["type"] == "string_too_long":
            msg = f"{msg}; split long texts or raise the limit in referee.model.MAX_TEXT_CHARS"
        raise InputError(msg, f"{where}: {field}") from exc


def read_items(source: str | Path | IO[bytes], fmt: str | None = None) -> Iterator[ContentItem | InputError]:
    """Items (or errors) from a JSONL or CSV file, or a binary stream (stdin).

    The format comes from ``fmt`` or the file suffix; streams default to JSONL.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
        if not path.is_file():
            raise InputError(f"no such file: {path}", "INPUT")
        with path.open("rb") as handle:
            yield from read_items(handle, fmt)
        return
    if (fmt or "jsonl") == "csv":
        yield from _read_csv(source)
    else:
        yield from _read_jsonl(source)


def _read_jsonl(stream: IO[bytes]) -> Iterator[ContentItem | InputError]:
    for number, raw in enumerate(stream, start=1):
        where = f"line {number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield InputError(f"invalid UTF-8 at byte {exc.start}; re-encode the file as UTF-8", where)
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", where)
            continue
        try:
            yield parse_item(data, where)
        except InputError as exc:
            yield exc


def _read_csv(stream: IO[bytes]) -> Iterator[ContentItem | InputError]:
    try:
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        reader = csv.DictReader(text)
        header = reader.fieldnames or []
    except UnicodeDecodeError as exc:
        yield InputError(f"invalid UTF-8 in the header at byte {exc.start}", "line 1")
        return
    missing = {"id", "text"} - set(header)
    if missing:
        yield InputError(f"CSV header lacks {sorted(missing)}; expected columns id,text[,surface,country,...]", "line 1")
        return
    number = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            yield InputError(f"invalid UTF-8 at byte {exc.start}; the rest of the file cannot be read", f"line {number + 1}")
            return
        number = reader.line_num
        data: dict[str, Any] = {k: v for k, v in row.items() if k in _ITEM_FIELDS and v not in (None, "")}
        extra = {k: v for k, v in row.items() if k not in _ITEM_FIELDS and k is not None}
        if extra:
            data["context"] = extra
        try:
            yield parse_item(data, f"line {number}")
        except InputError as exc:
            yield exc


def split_errors(results: Iterable[ContentItem | InputError]) -> tuple[list[ContentItem], list[InputError]]:
    items: list[ContentItem] = []
    errors: list[InputError] = []
    for r in results:
        (errors if isinstance(r, InputError) else items).append(r)  # type: ignore[arg-type]
    return items, errors
