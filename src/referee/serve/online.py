"""Read-only HTTP reports of online quality: precision, prevalence and recall, drift.

The same estimators as ``referee quality`` (``referee.online.quality`` and ``.drift``), behind
the ``read`` scope. A prevalence report needs a labelling sample, which ``referee quality
sample --out`` writes as ``<samples_dir>/<sample_id>.json``; the service is told the folder
when the router is built (``build_router(samples_dir)``), it reads no environment itself.
Drift reads the decision log of both windows on each request (one pass over the log): a
report for people and dashboards, not for a tight polling loop; the metrics endpoint takes
its gauges from ``referee.online.drift.drift_gauges``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from referee.errors import InputError
from referee.online import drift, quality
from referee.records.review import ReviewDesk
from referee.serve.auth import Principal, require
from referee.serve.problems import NotFound
from referee.serve.routes import AUTH_ERRORS
from referee.serve.schemas import ErrorResponse
from referee.serve.state import ServeState
from referee.times import parse_optional

__all__ = ["build_router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "A malformed time or parameter (the message names it)."},
    **AUTH_ERRORS,
}
SAMPLE_ID = r"^smp_[0-9a-f]{20}$"


def _when(name: str, text: str | None, now: datetime) -> datetime | None:
    return parse_optional(text, name, now)


# At module level: the routes' annotations are strings (postponed), resolved in this namespace.
require_read = require("read")


def build_router(samples_dir: Path) -> APIRouter:
    """The ``/v1/quality`` routes, reading labelling samples from ``samples_dir``."""
    router = APIRouter(prefix="/v1/quality", tags=["quality"])

    @router.get("/precision", summary="Precision of automated actions, from the random QA share",
                responses=_ERRORS)
    async def precision(request: Request, _: Annotated[Principal, Depends(require_read)],
                        since: Annotated[str | None, Query(description="ISO time or 7d")] = None) -> dict[str, Any]:
        state: ServeState = request.app.state.referee
        start = _when("since", since, datetime.now(UTC))
        desk = ReviewDesk(state.store, state.engine.policy)
        rows = await run_in_threadpool(quality.qa_precision, desk, start.timestamp() if start else None)
        return {"since": start, "precision": [r.model_dump() for r in rows]}

    @router.get("/prevalence/{sample_id}", summary="Violating items per 10,000 and recall, from a labelling sample",
                responses={**_ERRORS, 404: {"model": ErrorResponse, "description": "No sample with this id."}})
    async def prevalence(sample_id: str, request: Request,
                         _: Annotated[Principal, Depends(require_read)]) -> dict[str, Any]:
        if not re.match(SAMPLE_ID, sample_id):
            raise InputError(f"a sample id looks like smp_ and 20 hex digits, got {sample_id!r}", where="sample_id")
        path = samples_dir / f"{sample_id}.json"
        if not path.is_file():
            raise NotFound(f"no labelling sample {sample_id!r} in {samples_dir}; write one with "
                           f"`referee quality sample --out {samples_dir}/<id>.json`", where="sample_id")
        state: ServeState = request.app.state.referee
        sample = quality.read_sample(path)
        desk = ReviewDesk(state.store, state.engine.policy)
        labels = await run_in_threadpool(quality.sample_labels, desk, sample)
        categories = state.engine.policy.categories
        prev = quality.estimate_prevalence(sample, labels, categories)
        recall = quality.estimate_recall(sample, labels, categories)
        return {"sample_id": sample.sample_id, "selected": len(sample.units), "labelled": len(labels),
                "prevalence": [{**e.model_dump(), "per_10k": e.per_10k} for e in prev],
                "recall": [r.model_dump() for r in recall]}

    @router.get("/drift", summary="Score and language-mix drift (PSI), current window against a reference",
                responses=_ERRORS)
    async def drift_report(
        request: Request, _: Annotated[Principal, Depends(require_read)],
        reference_since: Annotated[str, Query(description="ISO time or 14d")] = "14d",
        reference_until: Annotated[str, Query(description="ISO time or 7d; the current window starts here")] = "7d",
        current_until: Annotated[str | None, Query(description="ISO time or 1d; default now")] = None,
        detector: Annotated[str | None, Query(description="Only this detector's scores")] = None,
        min_count: Annotated[int, Query(ge=1, le=10_000_000)] = drift.MIN_COUNT,
    ) -> dict[str, Any]:
        state: ServeState = request.app.state.referee
        now = datetime.now(UTC)
        ref = (_when("reference_since", reference_since, now), _when("reference_until", reference_until, now))
        cur = (ref[1], _when("current_until", current_until, now))
        report = await run_in_threadpool(lambda: drift.drift_report(
            state.store.log, state.store.content, ref, cur, detector=detector, min_count=min_count))
        return {**report.model_dump(mode="json"), "alerts": len(report.alerts)}

    return router
