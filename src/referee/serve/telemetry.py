"""The service's observability: a request id and a timing for every request, and ``GET /metrics``.

``Telemetry`` is plain ASGI middleware, the outermost of the app's own, so it
times ``POST /v1/moderate`` too (``routes.ModerateFirst`` answers that one
inside every middleware). Per request it reads the headers once, binds the
request id for the logs (``referee.obs.logs.request_id``), adds ``X-Request-Id``
to the answer and makes one counter increment and one histogram observation.

``GET /metrics`` needs an API key with the ``metrics`` scope (or ``admin``) when
auth is on, as every other route does: the figures say what the service
decides and how busy it is, which is not for anyone who can reach the port.
Prometheus sends the key with ``authorization: {credentials_file: ...}``.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from referee.obs import (
    CONTENT_TYPE,
    UNMATCHED,
    Metrics,
    new_request_id,
    request_id,
    sane_request_id,
)
from referee.serve.auth import Principal, require
from referee.serve.schemas import ErrorResponse
from referee.serve.state import ServeState

router = APIRouter()

#: ``routes.ModerateFirst`` answers this path before the router, so no route is set in the scope for it.
_MODERATE = "/v1/moderate"
#: A response never started: the client hung up first (nginx's 499).
_CLIENT_GONE = 499


class Telemetry:
    """Middleware: request id in, ``X-Request-Id`` out, one observation into ``metrics``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = sane_request_id(value.decode("latin-1"))
                break
        if rid is None:
            rid = new_request_id()
        echoed = (b"x-request-id", rid.encode("ascii"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            status = status or 500
            raise
        finally:
            request_id.reset(token)
            self.metrics.observe_request(_route(scope), scope["method"], status or _CLIENT_GONE,
                                         time.perf_counter() - started)


def _route(scope: Scope) -> str:
    """The route template the router matched (bounded), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return _MODERATE if scope["path"] == _MODERATE else UNMATCHED


@router.get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}},
              "description": "Every series (docs/observability.md), summed over the service's worker processes."},
        401: {"model": ErrorResponse, "description": "No API key, or a malformed, unknown or revoked one."},
        403: {"model": ErrorResponse, "description": "The key lacks the `metrics` scope (`error.missing_scope`)."},
    },
)
async def metrics(request: Request, _: Annotated[Principal, Depends(require("metrics"))]) -> Response:
    state: ServeState = request.app.state.referee
    # A multiprocess scrape reads every worker's file: off the event loop.
    body = await run_in_threadpool(state.metrics.exposition)
    return Response(content=body, media_type=CONTENT_TYPE)
