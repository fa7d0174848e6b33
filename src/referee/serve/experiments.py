"""Read-only HTTP reports of shadow candidates and experiments (``read`` scope).

The same reports as ``referee shadow report`` and ``referee experiment report``
(``referee.online.shadow_report``, ``referee.online.experiments``), as JSON, and the
experiment's HTML page with charts. Each request reads the store (the window's shadow
decisions or exposures and the decisions they name): a report for people and
dashboards, not for a tight polling loop.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from referee.online.experiments import ExperimentReport, experiment_report
from referee.online.html import render_experiment_html
from referee.online.shadow import shadow_store
from referee.online.shadow_report import shadow_report
from referee.serve.auth import Principal, require
from referee.serve.problems import NotFound
from referee.serve.routes import AUTH_ERRORS
from referee.serve.schemas import ErrorResponse
from referee.serve.state import ServeState
from referee.times import parse_optional

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "A malformed time or parameter (the message names it)."},
    **AUTH_ERRORS,
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **_ERRORS, 404: {"model": ErrorResponse, "description": "No experiment of this name in the store."}}

# The HTML page's errors are JSON like every other route's: say so, or FastAPI documents them as text/html.
_NOT_FOUND_HTML: dict[int | str, dict[str, Any]] = {
    code: {**spec, "content": {"application/json": {}}} for code, spec in _NOT_FOUND.items()}

router = APIRouter(tags=["online"])
_read = require("read")
Since = Annotated[str | None, Query(description="ISO time or a duration back from now (7d, 24h)")]
Until = Annotated[str | None, Query(description="ISO time or a duration back from now; default now")]


def _when(name: str, text: str | None) -> datetime | None:
    return parse_optional(text, name)


@router.get("/v1/shadow/candidates", summary="Candidates with shadow decisions", responses=_ERRORS)
async def candidates(request: Request, _: Annotated[Principal, Depends(_read)]) -> dict[str, list[str]]:
    state: ServeState = request.app.state.referee
    names = await run_in_threadpool(shadow_store(state.store).shadow_candidates)
    return {"candidates": names}


@router.get("/v1/shadow/{candidate}/report", summary="A shadow candidate against the champion", responses=_ERRORS)
async def shadow(candidate: str, request: Request, _: Annotated[Principal, Depends(_read)], since: Since = None,
                 until: Until = None, sample: Annotated[int, Query(ge=0, le=1000)] = 20) -> dict[str, Any]:
    state: ServeState = request.app.state.referee
    start, end = _when("since", since), _when("until", until)
    report = await run_in_threadpool(shadow_report, state.store, candidate, start, end, sample)
    return report.model_dump(mode="json")


async def _experiment(request: Request, name: str, since: str | None, until: str | None) -> ExperimentReport:
    state: ServeState = request.app.state.referee
    start, end = _when("since", since), _when("until", until)
    if await run_in_threadpool(shadow_store(state.store).experiment_config, name) is None:
        raise NotFound(f"no experiment {name!r} in this store (it is recorded when an ExperimentRunner starts)",
                       where="name")
    return await run_in_threadpool(experiment_report, state.store, name, start, end)


@router.get("/v1/experiments/{name}/report", summary="Per-arm metrics, differences and the sample-ratio check",
            responses=_NOT_FOUND)
async def experiment(name: str, request: Request, _: Annotated[Principal, Depends(_read)], since: Since = None,
                     until: Until = None) -> dict[str, Any]:
    return (await _experiment(request, name, since, until)).model_dump(mode="json")


@router.get("/v1/experiments/{name}/report.html", summary="The experiment report as an HTML page with charts",
            response_class=HTMLResponse, responses=_NOT_FOUND_HTML)
async def experiment_html(name: str, request: Request, _: Annotated[Principal, Depends(_read)], since: Since = None,
                          until: Until = None) -> HTMLResponse:
    report = await _experiment(request, name, since, until)
    return HTMLResponse(await run_in_threadpool(render_experiment_html, report))
