"""Structured logs: stdlib ``logging`` with a JSON formatter, and a request or batch id on every line.

The id lives in a ``ContextVar``: the HTTP middleware binds one per request
(the client's ``X-Request-Id`` when it is sane, else a new one) and a stream
worker binds one per batch, so every line logged while handling it carries
the id without passing it around. Context variables follow a request into
``run_in_threadpool`` (anyio copies the context), but not into the engine's
own detector pool: the batcher merges several requests into one engine batch,
so those lines have no single request to name.

``REFEREE_LOG_FORMAT=json`` (settings) gives one JSON object per line::

    {"ts": "2026-12-01T10:00:00.123Z", "level": "WARNING", "logger": "referee.engine.detect",
     "message": "detector llm timed out on 3 items", "request_id": "5f0c…"}

``text`` keeps the usual one-line form, with ``[request_id]`` when there is one.
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

#: The id of the HTTP request being handled, if any.
request_id: ContextVar[str | None] = ContextVar("referee_request_id", default=None)
#: The id of the stream batch being handled, if any.
batch_id: ContextVar[str | None] = ContextVar("referee_batch_id", default=None)

#: What a client's ``X-Request-Id`` may be: an opaque token, at most 128 characters,
#: so it cannot break a log line, a header or a JSON string.
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
#: Attributes every LogRecord has; anything else on a record was passed as ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
#: Marks the handler ``configure_logging`` installed, so a second call replaces it.
_OURS = "_referee_handler"


def sane_request_id(value: str | None) -> str | None:
    """The client's request id if it is an opaque token we can echo safely, else None."""
    if value is not None and _SANE_ID.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    """A fresh id: 128 random bits as hex (a UUID's entropy, without building a UUID).

    From ``random``, not ``os.urandom``: a request id correlates log lines and is no
    secret, and ``os.urandom`` is a system call that lets go of the GIL, so under load the
    event loop then waited for the engine's thread to hand it back (55 µs a request in a
    py-spy profile of ``bench_http``, more than the request's JSON parsing)."""
    return f"{random.getrandbits(128):032x}"


@contextmanager
def bound_batch(value: str) -> Iterator[str]:
    """Put ``value`` on every log line inside the block (a stream worker's batch)."""
    token = batch_id.set(value)
    try:
        yield value
    finally:
        batch_id.reset(token)


@contextmanager
def bound_request(value: str) -> Iterator[str]:
    """Put ``value`` on every log line inside the block (an HTTP request outside the middleware)."""
    token = request_id.set(value)
    try:
        yield value
    finally:
        request_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, message, the bound
    ids, the exception if any, and whatever the call passed as ``extra=``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid, bid = request_id.get(), batch_id.get()
        if rid is not None:
            out["request_id"] = rid
        if bid is not None:
            out["batch_id"] = bid
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The usual line, with ``[request_id]`` or ``[batch_id]`` after the level when one is bound."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [i for i in (request_id.get(), batch_id.get()) if i is not None]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return super().format(record)


def configure_logging(fmt: Literal["json", "text"] = "text", level: int | str = logging.INFO) -> logging.Handler:
    """One handler on the root logger, writing to stderr in ``fmt``; replaces the one an earlier
    call installed (and only that one). Returns it."""
    if fmt not in ("json", "text"):
        raise ValueError(f"log format must be 'json' or 'text', got {fmt!r}; set REFEREE_LOG_FORMAT")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
