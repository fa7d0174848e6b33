"""``POST /v1/notices`` (DSA Art. 16 notices, trusted flaggers first) and ``GET /v1/notices/{id}`` (the outcome).

A notice is filed with a ``moderate`` key (the platform forwarding its users' notices) or a
``trusted_flagger`` key (an organisation the platform recognises under Art. 22). Only the
key's scope makes a notice a trusted flagger's, never a field of the body; an ``admin`` key
files ordinary notices. The receipt (id, time) is the acknowledgement Art. 16(4) asks for;
``GET`` answers with the outcome once a reviewer decided (the notifier's confirmation of the
decision, Art. 16(5)), to the key that filed it or a ``read`` key.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from referee.records.notices import Notice, NoticeError, file_notice, get_notice, settle
from referee.records.review import ReviewDesk
from referee.serve.auth import Principal, authorise
from referee.serve.problems import ScopeError, error_body
from referee.serve.routes import BODY_ERRORS
from referee.serve.schemas import ErrorResponse
from referee.serve.state import ServeState

router = APIRouter()

_AUTH: dict[int | str, dict[str, Any]] = {401: {"model": ErrorResponse, "description": "No API key, or a malformed, unknown or revoked one."},
         403: {"model": ErrorResponse, "description": "The key lacks the scope."}}


async def require_notifier(request: Request) -> Principal:
    """A ``trusted_flagger`` key, else a ``moderate`` key (403 names the latter)."""
    state: ServeState = request.app.state.referee
    header = request.headers.get("authorization")
    try:
        return await authorise(state, header, "trusted_flagger")
    except ScopeError:
        return await authorise(state, header, "moderate")


require_notifier.scopes = ("trusted_flagger", "moderate")  # type: ignore[attr-defined]  # OpenAPI: any of these


async def require_notice_reader(request: Request) -> Principal:
    """A notifier's key (their own notices) or a ``read`` key (every notice)."""
    state: ServeState = request.app.state.referee
    try:
        return await require_notifier(request)
    except ScopeError:
        return await authorise(state, request.headers.get("authorization"), "read")


require_notice_reader.scopes = ("trusted_flagger", "moderate", "read")  # type: ignore[attr-defined]


class Notifier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")


class NoticeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str | None = Field(default=None, max_length=256, description="The platform's id of the content.")
    url: str | None = Field(default=None, max_length=2000, description="Where the content is (when no item id).")
    category: str | None = Field(default=None, max_length=64,
                                 description="The policy category the notice alleges; none: not specified.")
    explanation: str = Field(min_length=1, max_length=10_000, description="Why the notifier considers it illegal.")
    notifier: Notifier | None = Field(default=None, description="How to tell the notifier the outcome (optional).")


class NoticeReceipt(BaseModel):
    notice_id: str
    received_at: str = Field(description="When referee stored the notice (ISO 8601, UTC).")
    status: str = Field(description="open: queued for review; unrouted: the item is not known to referee yet.")
    trusted_flagger: bool


class NoticeOutcome(NoticeReceipt):
    outcome: str | None = Field(default=None, description="The reviewer's verdict (uphold, overturn, change).")
    action: str | None = Field(default=None, description="The action now in force on the content.")
    decision_id: str | None = Field(default=None, description="The decision taken on the notice.")
    decided_at: str | None = None


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, timezone.utc).isoformat() if t is not None else None


def _receipt(n: Notice) -> dict[str, object]:
    return NoticeReceipt(notice_id=n.notice_id, received_at=_iso(n.received_at) or "", status=n.status,
                         trusted_flagger=n.trusted_flagger).model_dump()


def _desk(request: Request) -> ReviewDesk:
    state: ServeState = request.app.state.referee
    return ReviewDesk(state.store, state.engine.policy)  # a SQL store (DecisionStore)


@router.post("/v1/notices", tags=["notices"], status_code=201, response_model=NoticeReceipt,
             summary="Notify content as illegal (DSA Art. 16); a trusted flagger's key files with priority",
             responses={**_AUTH, 422: {"model": ErrorResponse, "description": "The body is not a notice."},
                        **BODY_ERRORS})
async def post_notice(body: NoticeRequest, request: Request,
                      who: Annotated[Principal, Depends(require_notifier)]) -> Response:
    desk = _desk(request)
    contact = json.dumps(body.notifier.model_dump(exclude_none=True)) if body.notifier else None
    try:
        notice = await run_in_threadpool(
            lambda: file_notice(desk, body.explanation, item_id=body.item_id, url=body.url, category=body.category,
                                notifier_contact=contact, trusted_flagger="trusted_flagger" in who.scopes,
                                key_id=who.key_id))
    except NoticeError as exc:
        return JSONResponse(error_body("invalid_request_error", str(exc), exc.field), status_code=422)
    return JSONResponse(_receipt(notice), status_code=201)


@router.get("/v1/notices/{notice_id}", tags=["notices"], response_model=NoticeOutcome,
            summary="A notice's status and, once decided, its outcome",
            responses={**_AUTH, 404: {"model": ErrorResponse, "description": "No such notice (for this key)."}})
async def get_notice_outcome(notice_id: str, request: Request,
                             who: Annotated[Principal, Depends(require_notice_reader)]) -> Response:
    desk = _desk(request)
    try:
        await run_in_threadpool(settle, desk)
        notice = await run_in_threadpool(get_notice, desk, notice_id)
    except NoticeError as exc:
        return JSONResponse(error_body("not_found", str(exc), "notice_id"), status_code=404)
    if not who.allows("read") and notice.key_id != who.key_id:
        # another notifier's notice is not this key's to see; answer as if it did not exist
        return JSONResponse(error_body("not_found", f"unknown notice {notice_id!r}", "notice_id"), status_code=404)
    out = NoticeOutcome(**_receipt(notice), outcome=notice.outcome,
                        action=notice.outcome_action, decision_id=notice.outcome_decision_id,
                        decided_at=_iso(notice.decided_at))
    return JSONResponse(out.model_dump())
