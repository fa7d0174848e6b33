"""OpenAI's Moderation API, answered by referee: ``POST /v1/moderations``.

Code written for ``openai.OpenAI().moderations.create(input=...)`` works
against referee by changing ``base_url`` and ``api_key``. Each input text
becomes a ``ContentItem`` (surface ``comment`` unless ``referee.surface`` says
otherwise) and goes through the same engine, policy and store as
``/v1/moderate``, so every answer is also a stored, explainable decision.

Referee's taxonomy is coarser than OpenAI's, so an OpenAI category is mapped
to one referee category, or to a conjunction of two (``hate/threatening`` is
hate *and* violence). ``categories[x]`` is true when every mapped referee
category fired in the decision (is in ``Decision.categories`` or crossed the
threshold of a rule that acted, see :func:`fired_categories`); ``category_scores[x]`` is the
highest signal score of the mapped category, and for a conjunction the lower
of the two highest scores, so a sub-category never scores above its parent.
``flagged`` is the decision's action not being ``allow``: it can be true with
no category true (a failed detector whose rule says ``on_error: hold_for_review``).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from referee.errors import InputError
from referee.model import Action, ContentItem, Decision
from referee.policy import Policy
from referee.serve.auth import Principal, require
from referee.serve.body import read_json
from referee.serve.problems import PayloadTooLarge, field_path
from referee.serve.schemas import (
    ErrorResponse,
    ImageInput,
    ModerationRequest,
    ModerationResponse,
    ModerationResult,
    RefereeExtras,
    Rejected,
    TextInput,
)
from referee.serve.state import ServeState


def category_map(policy: Policy) -> dict[str, tuple[str, ...]]:
    """OpenAI category name → the policy categories that must all fire: the policy's
    ``openai_categories`` (data, checked by lint), else each category under its own name."""
    mapping = policy.document.openai_categories
    if mapping is not None:
        return dict(mapping)
    return {name: (name,) for name in policy.categories}


_TEXT_ONLY: list[Any] = ["text"]

router = APIRouter(tags=["openai-compatible"])


def fired_categories(decision: Decision) -> set[str]:
    """Every category whose signal crossed the threshold of a rule that acted.

    ``Decision.categories`` names only each fired rule's top category, so an
    item that is both hate and violence under a ``[hate, violence]`` rule lists
    one of them; the reasons' signal refs list both, which ``hate/threatening``
    needs.
    """
    present = set(decision.categories)
    for reason in decision.reasons:
        if reason.action is not Action.allow:
            present.update(ref.category for ref in reason.signals)
    return present


def to_result(decision: Decision, policy: Policy) -> ModerationResult:
    mapping = category_map(policy)
    best: dict[str, float] = {c: 0.0 for c in policy.categories}
    for signal in decision.signals:
        best[signal.category] = max(best.get(signal.category, 0.0), signal.score)
    present = fired_categories(decision)
    categories = {name: all(c in present for c in refs) for name, refs in mapping.items()}
    scores = {name: min(best.get(c, 0.0) for c in refs) for name, refs in mapping.items()}
    return ModerationResult(
        flagged=decision.flagged,
        categories=categories,
        category_scores=scores,
        category_applied_input_types={name: list(_TEXT_ONLY) for name in mapping},
        referee=RefereeExtras(
            decision_id=decision.decision_id,
            action=decision.action.value,
            categories=list(decision.categories),
            category_scores=best,
        ),
    )


def items_for(request: ModerationRequest) -> list[ContentItem]:
    """One item per text, or one item made of parts for OpenAI's multimodal array.
    The id is derived from the content so a retried call is idempotent (same
    content → same stored decision) without the client naming ids."""
    raw = request.input
    if isinstance(raw, list) and raw and not isinstance(raw[0], str):
        return [_multimodal_item(request, raw)]
    texts = [raw] if isinstance(raw, str) else raw
    if not texts:
        raise InputError("input must hold at least one text", where="input")
    items = []
    for i, text in enumerate(texts):
        assert isinstance(text, str)
        digest = hashlib.sha256(f"{request.referee.surface}\0{text}".encode("utf-8")).hexdigest()[:24]
        field = "input" if isinstance(raw, str) else f"input[{i}]"
        items.append(_item(request, f"oai_{digest}", {"text": text}, field))
    return items


def _multimodal_item(request: ModerationRequest, parts: list[TextInput | ImageInput]) -> ContentItem:
    converted: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        if isinstance(part, TextInput):
            converted.append({"kind": "text", "id": f"input{i}", "role": "body", "text": part.text})
            continue
        url = part.image_url.url
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            if ";base64" not in header:
                raise InputError("image data URLs must be base64 (data:image/png;base64,...)",
                                 where=f"input[{i}].image_url.url")
            converted.append({"kind": "image", "id": f"input{i}", "data": payload,
                              "mime": header[5:].split(";")[0] or None})
        else:
            converted.append({"kind": "image", "id": f"input{i}", "url": url})
    digest = hashlib.sha256(
        (request.referee.surface + "\0" + repr([p.model_dump() for p in parts])).encode("utf-8")).hexdigest()[:24]
    return _item(request, f"oai_{digest}", {"parts": converted}, "input")


def _item(request: ModerationRequest, item_id: str, content: dict[str, Any], field: str) -> ContentItem:
    try:
        return ContentItem.model_validate(
            {"id": item_id, "surface": request.referee.surface, "country": request.referee.country, **content})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        where = field if loc[:1] in (("text",), ("parts",), ()) else field_path(loc, "referee")
        raise InputError(err["msg"], where=where) from exc


@router.post(
    "/v1/moderations",
    response_model=ModerationResponse,
    summary="Classify texts, answering in OpenAI's Moderation API shape",
    responses={
        401: {"model": ErrorResponse, "description": "No API key, or a malformed, unknown or revoked one."},
        403: {"model": ErrorResponse, "description": "The key lacks the `moderate` scope."},
        400: {"model": ErrorResponse, "description": "Body empty, not UTF-8 or not JSON."},
        413: {"model": ErrorResponse, "description": "Body or the number of inputs over the configured limit."},
        422: {"model": Rejected, "description": "The body is not a valid moderation request; `errors` lists why."},
        503: {"model": ErrorResponse, "description": "The decision store cannot be reached; retry later."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ModerationRequest"},
                "examples": {
                    "one": {"summary": "One text", "value": {"input": "I will kill you"}},
                    "many": {"summary": "Several texts on a surface",
                             "value": {"input": ["great song", "free followers, click here"],
                                       "referee": {"surface": "playlist_title"}}},
                },
            }},
        }
    },
)
async def moderations(
    request: Request, _: Annotated[Principal, Depends(require("moderate"))]
) -> JSONResponse:
    state: ServeState = request.app.state.referee
    raw = await read_json(request, state.settings.max_body_bytes)
    try:
        body = ModerationRequest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(err["msg"], where=field_path(tuple(err["loc"])) or None) from exc
    items = items_for(body)
    if len(items) > state.settings.max_batch:
        raise PayloadTooLarge(
            f"{len(items)} inputs in one call, over the limit of {state.settings.max_batch}; split the call",
            where="input",
        )
    decisions = await state.batcher.moderate(items)
    policy = state.engine.policy
    response = ModerationResponse(
        id=f"modr-{uuid.uuid4().hex}",
        model=f"referee/{policy.id}@{policy.version}",
        results=[to_result(d, policy) for d in decisions],
    )
    return JSONResponse(response.model_dump(mode="json"))
