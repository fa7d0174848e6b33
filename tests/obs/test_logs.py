"""Structured logs: the JSON formatter, request and batch ids, configure_logging."""

from __future__ import annotations

import json
import logging

import pytest

from referee.obs import (
    JsonFormatter,
    TextFormatter,
    bound_batch,
    bound_request,
    configure_logging,
    new_request_id,
    sane_request_id,
)


def record(msg: str = "hello %s", args: tuple[object, ...] = ("world",), **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("referee.x", logging.WARNING, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_lines_carry_the_bound_ids_and_extras() -> None:
    fmt = JsonFormatter()
    plain = json.loads(fmt.format(record()))
    assert plain["message"] == "hello world" and plain["level"] == "WARNING" and plain["logger"] == "referee.x"
    assert plain["ts"].endswith("Z") and "request_id" not in plain and "batch_id" not in plain
    with bound_request("r-1"), bound_batch("b-7"):
        line = json.loads(fmt.format(record(items=3, where=object())))
    assert line["request_id"] == "r-1" and line["batch_id"] == "b-7" and line["items"] == 3
    assert line["where"].startswith("<object")  # not JSON: its repr, never a crash
    assert "request_id" not in json.loads(fmt.format(record()))  # unbound again after the block


def test_exceptions_and_text_that_needs_escaping_stay_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys

        rec = logging.LogRecord("referee.x", logging.ERROR, __file__, 1, 'a "quoted"\nline', None, sys.exc_info())
    out = JsonFormatter().format(rec)
    assert "\n" not in out
    parsed = json.loads(out)
    assert parsed["message"] == 'a "quoted"\nline' and "ValueError: bad" in parsed["exc"]


def test_text_lines_name_the_id() -> None:
    with bound_request("r-9"):
        assert "[r-9]" in TextFormatter().format(record())
    assert "[" not in TextFormatter().format(record()).split(": ", 1)[0]


@pytest.mark.parametrize("value", ["abc", "0af3-9", "svc:1234/5", "a" * 128, "x.y_z=+@"])
def test_sane_request_ids_are_kept(value: str) -> None:
    assert sane_request_id(value) == value


@pytest.mark.parametrize("value", [None, "", "a b", "a" * 129, "line\nbreak", "é", "<script>", "a,b", 'q"'])
def test_other_request_ids_are_refused(value: str | None) -> None:
    assert sane_request_id(value) is None


def test_new_ids_are_random_hex() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_configure_logging_replaces_only_its_own_handler() -> None:
    root = logging.getLogger()
    theirs = logging.NullHandler()
    root.addHandler(theirs)
    level = root.level
    try:
        first = configure_logging("json")
        second = configure_logging("text", level="DEBUG")
        assert theirs in root.handlers and second in root.handlers and first not in root.handlers
        assert isinstance(second.formatter, TextFormatter) and root.level == logging.DEBUG
        with pytest.raises(ValueError, match="REFEREE_LOG_FORMAT"):
            configure_logging("xml")  # type: ignore[arg-type]
    finally:
        for handler in list(root.handlers):
            if handler is theirs or getattr(handler, "_referee_handler", False):
                root.removeHandler(handler)
        root.setLevel(level)
