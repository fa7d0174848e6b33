"""``create_app``: the HTTP service, wired from settings. Wiring only.

The caller may pass an engine and a store (tests, embedding); otherwise they
are built here from ``Settings`` and closed on shutdown. Building happens in
``create_app``, not lazily on the first request, so a broken policy or an
unreachable database fails the start, loudly, instead of the first client.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from referee.engine import Engine
from referee.errors import ConfigError
from referee.policy import Policy
from referee.serve import openai_compat, problems, routes
from referee.serve.schemas import BatchRequest, ModerationRequest
from referee.settings import Settings
from referee.store.repo import DecisionStore
from referee.serve.state import ServeState

#: Request bodies that the routes validate themselves (to report per-item
#: errors) and so must add to the OpenAPI components by hand.
_BODY_MODELS = (BatchRequest, ModerationRequest)


def create_app(settings: Settings, engine: Engine | None = None, store: DecisionStore | None = None) -> FastAPI:
    if store is None and engine is not None and isinstance(engine.sink, DecisionStore):
        store = engine.sink
    owns_store = store is None
    if store is None:
        store = DecisionStore(settings.db_url)
    owns_engine = engine is None
    if engine is None:
        engine = Engine.from_policy(Policy.from_file(settings.policy), sink=store, only=settings.detectors)
    elif engine.sink is not store:
        raise ConfigError(
            "the engine's sink must be the store the app reads decisions from; "
            "build it with Engine(..., sink=store) and pass the same store"
        )
    state = ServeState(settings, engine, store, owns_engine=owns_engine, owns_store=owns_store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything built so far (policy, lexicon automaton, models, routes, schemas)
        # lives as long as the process. Left in the collector, each full collection
        # walked all of it: 57 ms pauses twice a second under load, which were the
        # whole p99. Frozen, a full collection sees only per-request garbage.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            state.close()

    app = _RefereeApp(
        title="referee",
        summary="Content moderation with explainable decisions.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.referee = state
    problems.install(app)
    app.include_router(routes.router)
    app.include_router(openai_compat.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


class _RefereeApp(FastAPI):
    """FastAPI with ``POST /v1/moderate`` answered before FastAPI itself
    (``routes.ModerateFastPath``): the per-request telemetry check and the error,
    exception and body-limit layers that FastAPI and Starlette wrap around every
    request were a fifth of the hot path's event-loop time (yappi, py-spy), and
    the fast path does its own error handling and body limit. Every other request,
    and the lifespan, go through FastAPI as usual."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._front = routes.ModerateFastPath(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # what Starlette would set: handlers find the state through it
        await self._front(scope, receive, send)


def app_from_env() -> FastAPI:
    """uvicorn ``--factory`` entry: settings from ``REFEREE_*``, so every worker process builds its own app."""
    return create_app(Settings())


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in _BODY_MODELS:
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        app.openapi_schema = schema
    return app.openapi_schema
