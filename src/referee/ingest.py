"""Reading content items from JSONL or CSV.

A bad line never stops the file: it becomes an ``InputError`` naming the line
and the field, yielded in order with the good items, so the caller can
process the good ones and report every bad one. Nothing is silently dropped.

CSV is read as strictly as JSONL (RFC 4180, UTF-8, an optional byte order mark):

- the header names ``id``, ``text`` (the body text) and the other ContentItem
  fields that hold one value (``csv_columns()``: surface, author_id, language,
  country, created_at); ``text.<role>`` for one more text part with that role
  (``text.title``, ``text.description``); ``context.<name>`` for one key of the
  item's ``context``. Any other column is an error for the whole file, as an
  unknown field is for a JSONL line; media needs JSONL;
- every row has exactly as many fields as the header; an empty cell means the
  field is absent (its default applies);
- a quoted field may hold commas, doubled quotes and line breaks, but a quote
  that never closes, or text after a closing quote, is an error for the row
  where the quote opened, and reading resumes on the next line, so a stray quote
  costs one row instead of swallowing the ones after it.

Errors name the line and the column (``line 4, column 2 (text): ...``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import IO, Any, Literal, get_args, get_origin

from pydantic import ValidationError

from referee.errors import InputError
from referee.model import ContentItem

#: Fields a JSON item may have: the model's, and the ``text``/``media`` shorthands for parts.
_ITEM_FIELDS = set(ContentItem.model_fields) | {"text", "media"}
_PART_KINDS = ("text", "image", "audio")
#: What ``read_items`` reads.
FORMATS = ("jsonl", "csv")


def parse_item(data: Any, where: str) -> ContentItem:
    """One item from decoded JSON, or an InputError that says which field is wrong."""
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object with at least 'id' and 'text', got {type(data).__name__}", where)
    # Before the model: its shorthand check ("nothing to inspect") would hide a misspelt 'text'.
    for key in data:
        if key not in _ITEM_FIELDS:
            close = difflib.get_close_matches(str(key), _ITEM_FIELDS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InputError(f"unknown field; {hint}known: {', '.join(sorted(_ITEM_FIELDS))}; put anything else "
                             "under 'context'", f"{where}: {key}")
    try:
        return ContentItem.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field(tuple(err["loc"]), data)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown field (known: {', '.join(sorted(_ITEM_FIELDS))}; put anything else under 'context')"
        elif err["type"] == "string_too_long":
            msg = f"{msg}; split long texts or raise the limit in referee.model.MAX_TEXT_CHARS"
        raise InputError(msg, f"{where}: {field}") from exc


def _field(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """pydantic's error location as the field the user wrote: the tag pydantic adds after a
    part's index goes (``parts.0.text.text`` is ``parts.0.text``), and an item given with the
    ``text`` shorthand hears about ``text``, not about the part it became."""
    path = [p for i, p in enumerate(loc)
            if not (i > 0 and isinstance(loc[i - 1], int) and p in _PART_KINDS and i + 1 < len(loc))]
    if path[:2] == ["parts", 0] and "parts" not in data and data.get("text"):
        path = ["text"]
    return ".".join(str(p) for p in path) or "item"


def read_items(source: str | Path | IO[bytes], fmt: str | None = None) -> Iterator[ContentItem | InputError]:
    """Items (or errors) from a JSONL or CSV file, or a binary stream (stdin).

    The format comes from ``fmt`` or the file suffix; streams default to JSONL.
    """
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", "--format")
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


def parse_line(raw: bytes, where: str, prepare: Callable[[Any], Any] | None = None) -> ContentItem | InputError | None:
    """One JSONL line: None when it is blank, else the item or an InputError naming ``where`` and
    the field. The one line parser: ``referee moderate`` and the Spark re-scan (``batch.rescan``)
    both read lines with it, so a file is read the same either way. ``prepare`` may reshape the
    decoded JSON before it is validated (a re-scan's Parquet rows hold nested fields as JSON text);
    an InputError it raises is returned like any other."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InputError(f"invalid UTF-8 at byte {exc.start}; re-encode the file as UTF-8", where)
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", where)
    try:
        return parse_item(prepare(data) if prepare is not None else data, where)
    except InputError as exc:
        return exc


def _read_jsonl(stream: IO[bytes]) -> Iterator[ContentItem | InputError]:
    for number, raw in enumerate(stream, start=1):
        got = parse_line(raw, f"line {number}")
        if got is not None:
            yield got


#: ``context.<name>`` columns go under the item's ``context`` mapping.
CONTEXT_PREFIX = "context."
#: ``text`` is the item's body; ``text.<role>`` one more text part with that role and id.
TEXT_COLUMN = "text"
TEXT_PREFIX = "text."
_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SCALARS = (str, int, float, bool, datetime, type(None))


def csv_columns() -> tuple[str, ...]:
    """The plain columns: ``id``, ``text`` and the ContentItem fields holding one scalar
    value (a name, a code, a time). Structured fields (``parts``, ``context``) need
    JSONL, except for the ``text.<role>`` and ``context.<name>`` columns."""
    scalars = []
    for name, field in ContentItem.model_fields.items():
        args = get_args(field.annotation) or (field.annotation,)
        if get_origin(field.annotation) is Literal or all(
            a in _SCALARS or (isinstance(a, type) and issubclass(a, Enum)) for a in args
        ):
            scalars.append(name)
    return tuple(dict.fromkeys(["id", TEXT_COLUMN, *scalars]))


def _is_text(column: str) -> bool:
    return column == TEXT_COLUMN or column.startswith(TEXT_PREFIX)


@dataclass(frozen=True)
class _Record:
    line: int  # the physical line the record starts on (1-based)
    fields: list[str]
    lines: int  # physical lines the record spans


class _CsvFault(Exception):
    def __init__(self, message: str, line: int, field: int) -> None:
        super().__init__(message)
        self.message, self.line, self.field = message, line, field


def _parse_record(lines: list[tuple[int, str | InputError]], start: int) -> _Record:
    """One RFC 4180 record starting at ``lines[start]``. A quoted field may span lines (it
    takes as many as it needs, up to a line that is not UTF-8); a quote that never closes,
    or text after a closing quote, is a ``_CsvFault`` naming where the quote opened."""
    fields: list[str] = []
    row, pos = 0, 0
    first, head = lines[start]
    assert isinstance(head, str)
    text = head
    while True:
        if pos < len(text) and text[pos] == '"':
            open_line, open_col = first + row, pos + 1
            value: list[str] = []
            pos += 1
            while True:
                close = text.find('"', pos)
                if close < 0:
                    value.append(text[pos:])
                    row += 1
                    nxt = lines[start + row][1] if start + row < len(lines) else None
                    if not isinstance(nxt, str):
                        raise _CsvFault(
                            f"the quote at character {open_col} is never closed, so the field would swallow every "
                            "line after it; close the quote, or double it (\"\") to put a quote inside a quoted field",
                            open_line, len(fields) + 1)
                    value.append("\n")
                    text, pos = nxt, 0
                    continue
                value.append(text[pos:close])
                if text.startswith('"', close + 1):  # "" inside a quoted field is one quote
                    value.append('"')
                    pos = close + 2
                    continue
                pos = close + 1
                break
            fields.append("".join(value))
            if pos < len(text) and text[pos] != ",":
                spans = f" (it closes on line {first + row})" if first + row != open_line else ""
                raise _CsvFault(
                    f"the quoted field opened at character {open_col}{spans} is followed by {text[pos:pos + 10]!r} "
                    "instead of a comma; double a quote (\"\") inside a quoted field, or quote the whole field",
                    open_line, len(fields))
        else:
            comma = text.find(",", pos)
            end = len(text) if comma < 0 else comma
            fields.append(text[pos:end])
            pos = end
        if pos >= len(text):
            return _Record(first, fields, row + 1)
        pos += 1  # past the comma


def _physical_lines(stream: IO[bytes]) -> Iterator[tuple[int, str | InputError]]:
    """``(line number, text)`` without the line end, or an InputError for a line that is not UTF-8.
    Lines end at \\n, \\r\\n or \\r, as CSV writers write them."""
    data = stream.read()
    if data.startswith(b"\xef\xbb\xbf"):  # the UTF-8 byte order mark spreadsheets write
        data = data[3:]
    raw_lines = re.split(rb"\r\n|\n|\r", data)
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, start=1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, InputError(f"invalid UTF-8 at byte {exc.start} of the line; re-encode the file as UTF-8",
                                     f"line {number}")


def _header(record: _Record) -> list[str] | InputError:
    known = csv_columns()
    seen: set[str] = set()
    for i, name in enumerate(record.fields, start=1):
        where = f"line {record.line}, column {i}"
        if name in seen:
            return InputError(f"column {name!r} appears twice in the header; keep one", where)
        seen.add(name)
        if name.startswith(CONTEXT_PREFIX) and len(name) > len(CONTEXT_PREFIX):
            continue
        if name.startswith(TEXT_PREFIX):
            if not _ROLE.match(name[len(TEXT_PREFIX):]):
                return InputError(f"column {name!r}: the role after {TEXT_PREFIX!r} must be lower_snake_case, like "
                                  f"{TEXT_PREFIX}title or {TEXT_PREFIX}description; no row was read", where)
            continue
        if name not in known:
            hint = (f"{name!r} needs JSONL, a CSV cell holds one value" if name in _ITEM_FIELDS
                    else f"unknown column {name!r}")
            return InputError(
                f"{hint}; known columns: {', '.join(known)}, plus {TEXT_PREFIX}<role> for a text part and "
                f"{CONTEXT_PREFIX}<name> for a context key (rename it to {CONTEXT_PREFIX}{name} to keep it as "
                "context); no row was read", where)
    missing = (["id"] if "id" not in seen else []) + ([] if any(map(_is_text, seen)) else [TEXT_COLUMN])
    if missing:
        return InputError(f"the header lacks {' and '.join(missing)}; expected columns id,text[,surface,country,...] "
                          f"(or {TEXT_PREFIX}<role> columns for the text); no row was read", f"line {record.line}")
    return record.fields


def _row_item(record: _Record, header: list[str]) -> ContentItem:
    where = f"line {record.line}"
    if len(record.fields) != len(header):
        n, want = len(record.fields), len(header)
        if n < want:
            lacking = ", ".join(header[n:])
            raise InputError(f"the row has {n} field(s), the header {want}: {lacking} missing; add the empty "
                             "field(s) (a trailing comma each) or quote a field that holds a line break",
                             f"{where}, column {n + 1} ({header[n]})")
        raise InputError(f"the row has {n} fields, the header {want}; quote a field that holds a comma, "
                         "or add a header for the extra column", f"{where}, column {want + 1}")
    data: dict[str, Any] = {}
    context: dict[str, str] = {}
    parts: list[dict[str, str]] = []
    part_columns: list[str] = []  # parts[i] came from column part_columns[i]
    for name, value in zip(header, record.fields):
        if value == "":  # an empty cell: the field is absent (its default applies)
            continue
        if name.startswith(CONTEXT_PREFIX):
            context[name[len(CONTEXT_PREFIX):]] = value
        elif _is_text(name):
            role = name[len(TEXT_PREFIX):] if name != TEXT_COLUMN else "body"
            parts.append({"kind": "text", "id": TEXT_COLUMN if name == TEXT_COLUMN else role, "role": role,
                          "text": value})
            part_columns.append(name)
        else:
            data[name] = value
    if parts:
        data["parts"] = parts
    if context:
        data["context"] = context
    try:
        return parse_item(data, where)
    except InputError as exc:
        path = (exc.where or "").removeprefix(f"{where}: ").split(".")
        if path[0] == "parts" and len(path) > 1 and path[1].isdigit() and int(path[1]) < len(part_columns):
            field = part_columns[int(path[1])]
        elif path[0] in ("item", "parts"):  # the item as a whole, e.g. nothing to inspect
            field = next(name for name in header if _is_text(name))
        else:
            field = path[0]
        if field not in header:
            raise
        raise InputError(exc.reason, f"{where}, column {header.index(field) + 1} ({field})") from exc.__cause__


def _read_csv(stream: IO[bytes]) -> Iterator[ContentItem | InputError]:
    """Strict CSV: a malformed row is an error naming its line and column, and parsing
    resumes on the line after the row's first, so a stray quote costs one row, not the
    rest of the file."""
    pending: list[tuple[int, str | InputError]] = list(_physical_lines(stream))
    header: list[str] | None = None
    i = 0
    while i < len(pending):
        first = pending[i][1]
        if isinstance(first, InputError):
            yield first
            if header is None:
                return
            i += 1
            continue
        if first == "":  # a blank line between records holds no row
            i += 1
            continue
        try:
            record = _parse_record(pending, i)
        except _CsvFault as exc:
            yield InputError(exc.message, f"line {exc.line}, column {exc.field}"
                             + (f" ({header[exc.field - 1]})" if header and exc.field <= len(header) else ""))
            if header is None:
                return
            i += 1
            continue
        i += record.lines
        if header is None:
            checked = _header(record)
            if isinstance(checked, InputError):
                yield checked
                return
            header = checked
            continue
        try:
            yield _row_item(record, header)
        except InputError as exc:
            yield exc
    if header is None:
        yield InputError("the file is empty; expected a header line id,text[,surface,country,...]", "line 1")


def split_errors(results: Iterable[ContentItem | InputError]) -> tuple[list[ContentItem], list[InputError]]:
    items: list[ContentItem] = []
    errors: list[InputError] = []
    for r in results:
        (errors if isinstance(r, InputError) else items).append(r)  # type: ignore[arg-type]
    return items, errors
