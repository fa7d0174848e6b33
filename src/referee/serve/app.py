"""``create_app``: the HTTP service, wired from settings. Wiring only.

The caller may pass an engine and a store (tests, embedding); otherwise they
are built here from ``Settings`` and closed on shutdown. Building happens in
``create_app``, not lazily on the first request, so a broken policy or an
unreachable database fails the start, loudly, instead of the first client.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, APIRouter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from referee.build import EngineConfig, build_engine
from referee.detectors.base import Detector
from referee.engine import Engine
from referee.errors import ConfigError
from referee.obs import Metrics, configure_logging
from referee.online.experiments import ExperimentRunner, load_experiment
from referee.online.shadow import attach_shadow
from referee.policy import Policy
from referee.registry import Registry
from referee.serve import (
    accounts,
    console,
    experiments,
    notices,
    online,
    openai_compat,
    problems,
    routes,
    telemetry,
    uploads,
)
from referee.serve.follow import LogFollower
from referee.serve.schemas import BatchRequest, ModerationRequest
from referee.serve.state import ServeState
from referee.settings import Settings
from referee.store import DecisionStore, Store

log = logging.getLogger(__name__)

#: Request bodies that the routes validate themselves (to report per-item
#: errors) and so must add to the OpenAPI components by hand.
_BODY_MODELS = (BatchRequest, ModerationRequest)


def create_app(settings: Settings, engine: Engine | None = None, store: DecisionStore | None = None,
               metrics: Metrics | None = None, registry: Registry[type[Detector]] | None = None) -> FastAPI:
    """The app. Without an engine, one is built from ``settings.engine_config()``
    (``build_engine``: the same path the CLI and the workers take), its detectors from
    ``registry`` (by default the installed ones). ``metrics`` (a new ``Metrics`` by
    default) becomes the engine's observer and backs ``GET /metrics``."""
    metrics = metrics or Metrics(settings.metrics_multiprocess_dir)
    if store is None and engine is not None and isinstance(engine.sink, DecisionStore):
        store = engine.sink
    owns_store = False
    owns_engine = engine is None
    if engine is None:
        if store is None:
            engine = build_engine(settings.engine_config(), registry, observer=metrics)
            store = engine.sink  # type: ignore[assignment]  # closed with the engine
        else:
            engine = Engine.from_policy(Policy.from_file(settings.policy), sink=store, only=settings.detectors,
                                        registry=registry)
    elif store is None:
        store = DecisionStore(settings.db_url)
        owns_store = True
    if engine.sink is not store:
        raise ConfigError(
            "the engine's sink must be the store the app reads decisions from; "
            "build it with Engine(..., sink=store) and pass the same store"
        )
    assert store is not None
    metrics.watch(engine)
    try:
        experiment = (_experiment(settings, engine, store, metrics, registry) if settings.experiment is not None
                      else None)
    except BaseException:
        if owns_engine:
            engine.close()
        if owns_store:
            store.close()
        raise
    state = ServeState(settings, engine, store, owns_engine=owns_engine, owns_store=owns_store, metrics=metrics,
                       experiment=experiment)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Candidates in shadow decide beside the champion, off the hot path (docs/online.md).
        shadow = attach_shadow(engine, store, settings.shadow, sample=settings.shadow_sample,
                               duty=settings.shadow_duty) if settings.shadow else None
        # Everything built so far (policy, lexicon automaton, models, routes, schemas)
        # lives as long as the process. Left in the collector, each full collection
        # walked all of it: 57 ms pauses twice a second under load, which were the
        # whole p99. Frozen, a full collection sees only per-request garbage.
        gc.collect()
        gc.freeze()
        if any(stage.run_async for stage in engine.plan.stages):
            # The log is the durable queue of async stages: finish what a previous
            # process left pending (a crash, a failed call), beside the traffic.
            threading.Thread(target=_resume_pending, args=(engine,), name="referee-resume", daemon=True).start()
        # One follower per database (a lease, serve/follow.py); under `referee serve` that is the
        # `referee follow` process, and a worker keeps only the drift gauges of its /metrics.
        follower = None
        if settings.follow_s > 0 and isinstance(store, Store):
            follower = LogFollower(store, engine.policy, settings.follow_s, settings.audit_key_env,
                                   metrics=metrics, drift_every_s=settings.drift_every_s,
                                   follow_log=settings.follow_in_app)
            if follower.idle:
                follower.close()
                follower = None
            else:
                follower.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.stop()
            if shadow is not None:
                shadow.close()
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
    # The outermost of the app's own middleware: request ids and timings for every route (docs/observability.md).
    app.add_middleware(telemetry.Telemetry, metrics=metrics)
    routers = [
        telemetry.router,  # GET /metrics
        routes.router,
        uploads.router,  # POST /v1/moderate/upload: items with image and audio files (docs/media.md)
        openai_compat.router,
        console.router,  # the reviewer console and POST /v1/appeals (docs/review.md)
        notices.router,  # DSA Art. 16 notices (docs/compliance.md)
        accounts.router,  # strike standing and the account-action outbox (docs/review.md)
        online.build_router(settings.samples_dir),  # GET /v1/quality/* (docs/online-quality.md)
        experiments.router,  # shadow and experiment reports (docs/online.md)
    ]
    for router in routers:
        app.include_router(router)
    app.openapi = lambda: _openapi(app, routers)  # type: ignore[method-assign]
    return app


class _RefereeApp(FastAPI):
    """FastAPI with ``routes.ModerateFirst`` as the innermost of the app's own
    middleware: every middleware added with ``add_middleware`` or
    ``@app.middleware`` (now or later) wraps ``POST /v1/moderate``, and only
    FastAPI's inner layers (exception handlers, its exit stack, the router) are
    skipped for it, which cost about as much as the answer itself (cProfile).
    ``answer_moderate`` handles its own errors in the same shape."""

    _telemetry_on: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # FastAPI asks OpenTelemetry whether tracing is configured on every request
        # (three os.environ lookups, about a tenth of the handler's own time); the
        # answer is read once, at the first request: configure telemetry before serving.
        if scope["type"] == "http":
            if self._telemetry_on is None:
                self._telemetry_on = bool(self._native_telemetry.enabled())
            if not self._telemetry_on:
                if self.root_path:
                    scope["root_path"] = self.root_path
                await Starlette.__call__(self, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        declared = self.user_middleware
        self.user_middleware = [*declared, Middleware(routes.ModerateFirst)]
        try:
            return super().build_middleware_stack()
        finally:
            self.user_middleware = declared


def _experiment(settings: Settings, engine: Engine, store: DecisionStore, metrics: Metrics,
                registry: Registry[type[Detector]] | None) -> ExperimentRunner:
    """``REFEREE_EXPERIMENT`` on live traffic: its arms are the service's engine config with
    each arm's changes (a control arm that changes nothing is the service's engine itself),
    counted by the service's metrics; exposures go to the service's store. Built with the
    app, so a bad experiment file or arm fails the start, not the first request."""
    assert settings.experiment is not None
    base = engine.config if isinstance(engine.config, EngineConfig) else settings.engine_config()
    return ExperimentRunner(load_experiment(settings.experiment), base, store, reuse=engine,
                            build=lambda config: build_engine(config, registry, observer=metrics))


def _resume_pending(engine: Engine, limit: int = 1000) -> None:
    """One pass at start-up (a head that still fails stays pending for the next start)."""
    try:
        engine.resume_pending(limit)
    except Exception:
        log.exception("resuming pending async stages failed")


def app_from_env() -> FastAPI:
    """uvicorn ``--factory`` entry: settings from ``REFEREE_*``, so every worker process builds its own app."""
    settings = Settings()
    configure_logging(settings.log_format)
    return create_app(settings)


#: ``Authorization: Bearer <key>``: the one security scheme (``/docs`` shows an Authorize button for it).
BEARER_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key from `referee keys create`. Scopes: moderate, read, metrics, admin (admin holds "
                   "every scope); each operation's security requirement names the scope it needs.",
}


def _openapi(app: FastAPI, routers: list[APIRouter]) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {})
        models = components.setdefault("schemas", {})
        for model in _BODY_MODELS:
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            models.update(body.pop("$defs", {}))
            models[model.__name__] = body
        components["securitySchemes"] = {"bearer": BEARER_SCHEME}
        state: ServeState | None = getattr(app.state, "referee", None)
        if state is None or state.settings.auth:
            for path, method, scopes in _scopes(routers):
                # OpenAPI 3.1 lets a non-OAuth requirement list role names: the scope; one
                # requirement per scope that is accepted on its own.
                schema["paths"][path][method]["security"] = [{"bearer": [scope]} for scope in scopes]
        app.openapi_schema = schema
    return app.openapi_schema


def _scopes(routers: list[APIRouter]) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(path, method, scopes)`` of every documented route of ``routers`` that depends on
    ``auth.require(scope)`` (it names its dependency ``require_<scope>``, or lists the scopes
    it accepts in the dependency's ``scopes`` attribute)."""
    found: list[tuple[str, str, tuple[str, ...]]] = []
    for route in (r for router in routers for r in router.routes):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for dep in route.dependant.dependencies:
            name = getattr(dep.call, "__name__", "")
            if name.startswith("require_"):
                scopes = tuple(getattr(dep.call, "scopes", (name.removeprefix("require_"),)))
                found.extend((route.path_format, m.lower(), scopes) for m in route.methods or ())
    return found
