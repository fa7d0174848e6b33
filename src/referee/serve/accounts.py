"""``GET /v1/accounts/{author_id}`` (standing and account actions) and ``GET /v1/account-actions`` (the outbox).

The platform enforces what referee cannot (logging a suspended user out, closing an account):
it reads the outbox from the last ``seq`` it applied (``?after=SEQ``) and applies each record
in order. Both answers first bring the account actions up to date with the decision log
(``AccountBook.sync``, incremental), so a strike recorded a moment ago is already counted.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel

from referee.records.accounts import AccountAction, AccountBook, AccountStanding
from referee.serve.auth import Principal, require
from referee.serve.schemas import ErrorResponse
from referee.serve.state import ServeState

router = APIRouter()
require_read = require("read")

_AUTH: dict[int | str, dict[str, Any]] = {401: {"model": ErrorResponse, "description": "No API key, or a malformed, unknown or revoked one."},
         403: {"model": ErrorResponse, "description": "The key lacks the scope."}}


class Outbox(BaseModel):
    actions: list[AccountAction]
    next_after: int


def _book(request: Request) -> AccountBook:
    state: ServeState = request.app.state.referee
    return AccountBook(state.store, state.engine.policy)  # a SQL store (DecisionStore)


@router.get("/v1/accounts/{author_id}", tags=["accounts"], response_model=AccountStanding, responses=_AUTH,
            summary="An author's strike points, the account action in force and every account action")
async def get_account(author_id: str, request: Request, _: Annotated[Principal, Depends(require_read)]) -> Response:
    book = _book(request)
    await run_in_threadpool(book.sync)
    standing = await run_in_threadpool(book.standing, author_id)
    return Response(standing.model_dump_json(), media_type="application/json")


@router.get("/v1/account-actions", tags=["accounts"], response_model=Outbox, responses=_AUTH,
            summary="The outbox: account actions after a sequence number, in the order they were recorded")
async def get_outbox(request: Request, _: Annotated[Principal, Depends(require_read)],
                     after: Annotated[int, Query(ge=0, le=2**63 - 1, description="The last seq the platform applied.")] = 0,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    book = _book(request)
    await run_in_threadpool(book.sync)
    actions = await run_in_threadpool(book.outbox, after, limit)
    out = Outbox(actions=actions, next_after=actions[-1].seq if actions else after)
    return Response(out.model_dump_json(), media_type="application/json")
