"""Every error the HTTP API answers, in one shape and one status table.

Clients get ``{"error": {"type": ..., "message": ..., "field": ...}}`` for
every failure, and a 422 also ``"errors": [...]``, every problem found (the
``Rejected`` schema), whichever layer raised it: referee's own ``RefereeError`` tree,
FastAPI's request validation, Starlette's routing 404/405, or a bug. The shape
is deliberately the one OpenAI's API uses (``error.message``, ``error.type``),
so the ``openai`` client shows our messages unchanged.

The HTTP-only cases are subclasses of the central tree rather than a second
tree, so the CLI and library callers can still catch ``RefereeError``::

    InputError              422  JSON of the wrong shape
    ├── InvalidItems        422  the item (or every item of a batch) is invalid; carries every problem
    ├── BadRequest          400  body is not UTF-8 / not JSON
    └── PayloadTooLarge     413  body or batch over the configured limit
    AuthError               401  missing, malformed, unknown or revoked key
    └── ScopeError          403  a valid key without the scope the route needs
    NotFound (InputError)   404  an id the store does not know
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from referee.errors import (
    AuthError,
    ConfigError,
    DetectorError,
    InputError,
    ModelError,
    PolicyError,
    RefereeError,
    StoreError,
)
from referee.serve.schemas import ItemError

log = logging.getLogger(__name__)


class BadRequest(InputError):
    """The body could not be read as JSON at all (as opposed to JSON of the wrong shape)."""


class PayloadTooLarge(InputError):
    pass


class InvalidItems(InputError):
    """Nothing could be moderated; ``errors`` names every bad field, the message the first."""

    def __init__(self, message: str, where: str | None, errors: list[ItemError]) -> None:
        super().__init__(message, where)
        self.errors = errors


class NotFound(InputError):
    pass


class ScopeError(AuthError):
    """The key is genuine but lacks a scope; distinct from AuthError so it maps to 403, not 401."""

    def __init__(self, message: str, missing: str) -> None:
        super().__init__(message)
        self.missing = missing


#: Status and error ``type`` per exception class. Looked up along the MRO, so the
#: most specific entry wins and a new RefereeError subclass inherits its parent's.
STATUS: dict[type[BaseException], tuple[int, str]] = {
    BadRequest: (400, "bad_request"),
    PayloadTooLarge: (413, "payload_too_large"),
    NotFound: (404, "not_found"),
    InputError: (422, "invalid_input"),
    ScopeError: (403, "insufficient_scope"),
    AuthError: (401, "unauthorized"),
    StoreError: (503, "store_unavailable"),
    DetectorError: (502, "detector_error"),
    ModelError: (503, "model_unavailable"),
    PolicyError: (500, "policy_error"),
    ConfigError: (500, "config_error"),
    RefereeError: (500, "referee_error"),
}


def status_for(exc: BaseException) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500, "internal_error"


def error_body(type_: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, "field": field}, **extra}


def problem(exc: RefereeError) -> JSONResponse:
    status, type_ = status_for(exc)
    field = exc.where if isinstance(exc, InputError) else None
    message = exc.reason if isinstance(exc, InputError) and exc.where else str(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = error_body(type_, message, field)
    if isinstance(exc, ScopeError):
        body["error"]["missing_scope"] = exc.missing
    if status == 422:
        errors = exc.errors if isinstance(exc, InvalidItems) else [ItemError(field=field, type=type_, message=message)]
        body["errors"] = [e.model_dump() for e in errors]
    return JSONResponse(body, status_code=status, headers=headers)


def respond(exc: Exception) -> JSONResponse:
    """The answer to any exception a handler let out: its problem shape for referee's
    own errors (logged when it is the server's fault), a bare 500 for a bug."""
    if isinstance(exc, RefereeError):
        if status_for(exc)[0] >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
        return problem(exc)
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal server error; see the server log"), status_code=500)


def field_path(loc: tuple[int | str, ...] | list[int | str], prefix: str = "", shorthand: bool = False) -> str:
    """pydantic's ``("items", 2, "text")`` as ``items[2].text``, the way the docs write it.
    With ``shorthand`` (the client sent ``text``, not parts), an error in the text
    part made from it is named ``text``, the field the client wrote."""
    out = prefix
    loc = tuple(loc)
    if shorthand and loc[:4] == ("parts", 0, "text", "text"):
        loc = ("text", *loc[4:])
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def install(app: FastAPI) -> None:
    """Route every exception the app can see through :func:`problem`'s shape."""

    async def on_error(_: Request, exc: Exception) -> JSONResponse:
        return respond(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            ItemError(field=field_path([p for p in e.get("loc", ()) if p not in ("body", "path", "query", "header")])
                      or None, type="invalid_input", message=str(e["msg"]))
            for e in exc.errors()
        ] or [ItemError(field=None, type="invalid_input", message="invalid request")]
        return problem(InvalidItems(errors[0].message, errors[0].field, errors))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        type_ = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(type_, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    async def on_disconnect(_: Request, exc: Exception) -> JSONResponse:
        # The client hung up mid-body: nobody will read this answer, and it is not a server bug.
        log.debug("client disconnected before sending its whole body")
        return JSONResponse(error_body("client_disconnected", "client closed the connection"), status_code=400)

    app.add_exception_handler(RefereeError, on_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(Exception, on_error)
