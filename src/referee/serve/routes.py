"""referee's own endpoints: moderate, fetch a decision, health.

A batch is validated item by item: a bad item is reported with its index and
field and the good ones are still moderated, so a client never loses a whole
batch (or silently loses an item) to one typo. The engine is synchronous and
does blocking I/O (detectors, the store), so it always runs in the threadpool,
through the engine's batcher, which merges concurrent requests into one engine batch.

``POST /v1/moderate`` is the hot path: one function answers it
(``answer_moderate``), reached either through the documented route
(``ModerateRoute``) or, in referee's own app, by ``ModerateFirst``, which sits
inside every middleware the app has and in front of the router.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from referee.errors import InputError, StoreError
from referee.model import ContentItem, Decision, MediaPart
from referee.serve.auth import Principal, authorise, require
from referee.serve.body import parse_json_body
from referee.serve.problems import (
    InvalidItems,
    NotFound,
    PayloadTooLarge,
    field_path,
    respond,
)
from referee.serve.schemas import (
    BatchResponse,
    ErrorResponse,
    Health,
    ItemError,
    ItemHistory,
    Rejected,
)
from referee.serve.state import ServeState

router = APIRouter()
require_moderate = require("moderate")

#: The answers every authenticated route can give besides its own (``app._openapi`` marks
#: a route answering 401 as needing the bearer key).
#: What a route behind an API key can answer when the key is missing, unknown or short of the scope.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No API key, or a malformed, unknown or revoked one."},
    403: {"model": ErrorResponse, "description": "The key lacks the scope this route needs (`error.missing_scope`)."},
}
#: What a route that reads a JSON body can answer when the body is unusable.
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Body empty, not UTF-8, not JSON, or a Content-Length that is not a "
                                                 "number."},
    413: {"model": ErrorResponse, "description": "Body or batch over the configured limit."},
}
_STORE_ERRORS: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "The decision store cannot be reached; retry later."},
}


def _json(model: Decision | BatchResponse | ItemHistory) -> Response:
    # Straight from the model, skipping FastAPI's re-validation; a decision's bytes are
    # the ones the store already wrote (Decision.json_bytes).
    body = model.json_bytes if isinstance(model, Decision) else model.__pydantic_serializer__.to_json(model)
    return Response(content=body, media_type="application/json")


_NO_SERVER_PATHS = ("the HTTP API does not read files on the server: send the media as base64 'data', "
                    "an allow-listed 'url', or a file in POST /v1/moderate/upload")


def _server_path(item: ContentItem, prefix: str) -> str | None:
    """The field of the first part that names a file on the server, if any: over HTTP a
    client may not make referee read a local file (the CLI and workers may)."""
    for j, part in enumerate(item.parts):
        # isinstance, not getattr(part, "path", None): a pydantic model's missing attribute
        # raises inside __getattr__, which was a tenth of this route's own time.
        if isinstance(part, MediaPart) and part.path is not None:
            return f"{prefix}.parts[{j}].path" if prefix else f"parts[{j}].path"
    return None


def parse_batch(raw: Any, max_batch: int) -> tuple[list[tuple[int, ContentItem]], list[ItemError]]:
    """Good items with their index, and every problem of the bad ones."""
    extra = sorted(set(raw) - {"items"})
    if extra:
        raise InputError(f"unknown field {extra[0]!r}; a batch is {{\"items\": [...]}}", where=extra[0])
    items = raw["items"]
    if not isinstance(items, list):
        raise InputError(f"items must be a list of content items, got {type(items).__name__}", where="items")
    if not items:
        raise InputError("items must hold at least one item", where="items")
    if len(items) > max_batch:
        raise PayloadTooLarge(
            f"{len(items)} items in one batch, over the limit of {max_batch}; split it or raise REFEREE_MAX_BATCH",
            where="items",
        )
    good: list[tuple[int, ContentItem]] = []
    errors: list[ItemError] = []
    for i, candidate in enumerate(items):
        if not isinstance(candidate, dict):
            errors.append(ItemError(index=i, field=f"items[{i}]", type="invalid_input",
                                    message=f"must be a JSON object, got {type(candidate).__name__}"))
            continue
        try:
            item = ContentItem.model_validate(candidate)
        except ValidationError as exc:
            errors.extend(
                ItemError(index=i, field=field_path(tuple(e["loc"]), f"items[{i}]", "text" in candidate),
                          type="invalid_input",
                          message=e["msg"])
                for e in exc.errors()
            )
            continue
        served = _server_path(item, f"items[{i}]")
        if served is not None:
            errors.append(ItemError(index=i, field=served, type="invalid_input", message=_NO_SERVER_PATHS))
            continue
        good.append((i, item))
    return good, errors


async def answer_moderate(scope: Scope, receive: Receive) -> Response:
    """The answer to ``POST /v1/moderate``, straight from the ASGI scope and messages:
    ``auth.authorise``, then ``moderate_json``. Starlette's Request and Headers objects
    and the body stream were a third of this handler's own time (cProfile). Errors
    take the same shape as everywhere else (``problems.respond``); a client that
    hangs up mid-body gets nothing, as there is nobody left to answer."""
    state: ServeState = scope["app"].state.referee
    authorization = declared = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-length":
            declared = value.decode("latin-1")
    try:
        await authorise(state, authorization, "moderate")
        raw = await parse_json_body(_body_chunks(receive), declared, state.settings.max_body_bytes)
        return await moderate_json(state, raw)
    except ClientDisconnect:
        return _NoAnswer()
    except Exception as exc:  # the same answer the app's exception handlers give
        return respond(exc)


class ModerateRoute(APIRoute):
    """The documented ``POST /v1/moderate`` route, answered by ``answer_moderate``
    (for apps that mount this router themselves). referee's own app answers the
    path one step earlier, with the same function: see ``ModerateFirst``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def handler(request: Request) -> Response:
            return await answer_moderate(request.scope, request.receive)

        return handler


class ModerateFirst:
    """Middleware, the innermost of the app's own: ``POST /v1/moderate`` goes to
    ``answer_moderate`` at once, everything else on inwards. Every middleware the
    app declares (now or later) still wraps it; what is skipped is FastAPI's inner
    layers and route matching, which cost about as much as the whole answer (two
    regex matches, route contexts, a Request object; cProfile, FastAPI 0.165)."""

    def __init__(self, app: ASGIApp) -> None:
        self.router = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/moderate":
            response = await answer_moderate(scope, receive)
            await response(scope, receive, send)
            return
        await self.router(scope, receive, send)


class _NoAnswer(Response):
    """For a client that hung up mid-body: there is nobody left to answer."""

    def __init__(self) -> None:
        super().__init__(status_code=499)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return


async def moderate(request: Request, _: Annotated[Principal, Depends(require_moderate)]) -> Response:
    """A single ContentItem answers with its Decision. ``{"items": [...]}``
    answers 200 with ``decisions`` aligned to ``items`` (null for a bad item)
    and ``errors`` naming each bad item's index and field; 422 if no item is valid.

    (Documentation only: ``ModerateRoute`` answers this route.)"""
    raise NotImplementedError


#: Request bodies shown in /docs (and sent first by the schemathesis suite).
MODERATE_EXAMPLES: dict[str, Any] = {
    "item": {
        "summary": "One item",
        "value": {"id": "c1", "surface": "comment",
                  "parts": [{"kind": "text", "id": "text", "role": "body", "text": "free followers, click here"}]},
    },
    "batch": {
        "summary": "A batch",
        "value": {"items": [
            {"id": "p1", "surface": "playlist_title", "parts": [{"kind": "text", "id": "title", "role": "title",
                                                                  "text": "songs for a rainy day"}]},
            {"id": "c2", "surface": "comment", "country": "DE",
             "parts": [{"kind": "text", "id": "text", "role": "body", "text": "lovely track"}]},
        ]},
    },
}


router.add_api_route(
    "/v1/moderate",
    moderate,
    methods=["POST"],
    route_class_override=ModerateRoute,
    tags=["moderation"],
    summary="Moderate one item, or a batch of items",
    response_model=Decision | BatchResponse,
    responses={
        **AUTH_ERRORS,
        **BODY_ERRORS,
        422: {"model": Rejected, "description": "Nothing was moderated: the single item is invalid, every item of "
                                                "the batch is, or the body is neither an item nor a batch. "
                                                "`errors` lists every problem."},
        **_STORE_ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/ContentItem"},
                            {"$ref": "#/components/schemas/BatchRequest"},
                        ]
                    },
                    "examples": MODERATE_EXAMPLES,
                }
            },
        }
    },
)


async def moderate_json(state: ServeState, raw: Any) -> Response:
    """The answer to a parsed ``POST /v1/moderate`` body."""
    if not isinstance(raw, dict):
        raise InputError(
            f"body must be a JSON object (one item, or {{\"items\": [...]}}), got a JSON {type(raw).__name__}"
        )
    if "items" not in raw:
        try:
            item = ContentItem.model_validate(raw)
        except ValidationError as exc:
            problems = [ItemError(field=field_path(tuple(e["loc"]), shorthand="text" in raw) or None,
                                  type="invalid_input", message=e["msg"])
                        for e in exc.errors()]
            raise InvalidItems(problems[0].message, problems[0].field, problems) from exc
        served = _server_path(item, "")
        if served is not None:
            raise InvalidItems(_NO_SERVER_PATHS, served,
                               [ItemError(field=served, type="invalid_input", message=_NO_SERVER_PATHS)])
        decisions = await state.batcher.moderate([item])
        return _json(decisions[0])

    good, errors = parse_batch(raw, state.settings.max_batch)
    if not good:
        first = errors[0]
        raise InvalidItems(f"all {len(raw['items'])} items are invalid; nothing was moderated "
                           f"(first: {first.field}: {first.message})", "items", errors)
    decided = await state.batcher.moderate([item for _, item in good])
    aligned: list[Decision | None] = [None] * len(raw["items"])
    for (i, _item), decision in zip(good, decided):
        aligned[i] = decision
    return _json(BatchResponse(decisions=aligned, errors=errors))


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


@router.get(
    "/v1/decisions/{decision_id}",
    tags=["moderation"],
    summary="Fetch a stored decision",
    response_model=Decision,
    responses={**AUTH_ERRORS, 404: {"model": ErrorResponse, "description": "No decision with this id."},
               **_STORE_ERRORS},
)
async def get_decision(
    decision_id: str, request: Request, _: Annotated[Principal, Depends(require("read"))]
) -> Response:
    state: ServeState = request.app.state.referee
    decision = await run_in_threadpool(state.store.get_decision, decision_id)
    if decision is None:
        raise NotFound(
            f"no decision {decision_id!r}; use a decision_id returned by POST /v1/moderate",
            where="decision_id",
        )
    return _json(decision)


@router.get(
    "/v1/items/{item_id}/history",
    tags=["moderation"],
    summary="An item's decisions, oldest first, and its head",
    response_model=ItemHistory,
    responses={**AUTH_ERRORS, 404: {"model": ErrorResponse, "description": "No decision about this item."},
               **_STORE_ERRORS},
)
async def item_history(
    item_id: str, request: Request, _: Annotated[Principal, Depends(require("read"))]
) -> Response:
    """The chain of decisions about one item (automated, review, appeal, async stages);
    the head is the one in force."""
    state: ServeState = request.app.state.referee
    records = await run_in_threadpool(state.store.log.history, item_id)
    if not records:
        raise NotFound(f"no decision about item {item_id!r}", where="item_id")
    head = await run_in_threadpool(state.store.log.head, item_id)
    return _json(ItemHistory(item_id=item_id, head=head, records=records))


@router.get("/healthz", tags=["health"], summary="Liveness: the process answers", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    tags=["health"],
    summary="Readiness: engine built and store reachable",
    response_model=Health,
    responses={503: {"model": Health}},
)
async def readyz(request: Request) -> JSONResponse:
    state: ServeState | None = getattr(request.app.state, "referee", None)
    checks: dict[str, str] = {}
    if state is None:
        checks["engine"] = "not built"
    else:
        names = ", ".join(d.name for d in state.engine.detectors) or "no detectors"
        checks["engine"] = f"ok (policy {state.engine.policy.id}@{state.engine.policy.version}; {names})"
        try:
            # A real query, not a socket check: a locked or missing table is also "not ready".
            await run_in_threadpool(state.store.ping)
            checks["store"] = "ok"
        except (SQLAlchemyError, StoreError, OSError) as exc:
            checks["store"] = f"unreachable: {type(exc).__name__}: {exc}"[:300]
    ready = all(v.startswith("ok") for v in checks.values()) and "store" in checks
    health = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(health.model_dump(), status_code=200 if ready else 503)
