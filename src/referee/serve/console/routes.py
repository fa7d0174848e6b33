"""The reviewer console (server-rendered pages under ``/console``) and ``POST /v1/appeals``.

Pages: login, the queues a reviewer is granted (counts, SLA status), the item view (content
with the evidence spans highlighted, images blurred and greyscale until revealed, the policy
text of the flagged category, the item's prior decisions, the author's recent decisions, and
the verdict form with one-key shortcuts), and a metrics page.

Security: a login is a random token in an ``HttpOnly``, ``SameSite=Strict`` cookie whose
sha256 the store keeps (``console_sessions``), so every server process sees it; every form
carries the session's CSRF token (the login form a double-submit one); a reviewer sees and
claims only the queues granted to them (``senior`` reviewers also the senior queue).
"""

from __future__ import annotations

import hmac
import html
import mimetypes
import secrets
import time
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from referee.model import Action, Decision
from referee.records.agreement import agreement, automated_precision
from referee.records.appeals import file_appeal, list_appeals
from referee.records.review import (
    ReviewConflict,
    ReviewDesk,
    ReviewError,
    Task,
    Verdict,
)
from referee.records.reviewers import (
    Reviewer,
    check_password,
    close_session,
    open_session,
    session,
    set_blur,
)
from referee.records.strikes import standing
from referee.serve.auth import Principal, require
from referee.serve.problems import error_body
from referee.serve.routes import BODY_ERRORS
from referee.serve.schemas import ErrorResponse
from referee.serve.state import ServeState
from referee.store.sql.tables import decisions, items

router = APIRouter()

COOKIE = "referee_console"
LOGIN_COOKIE = "referee_console_login"
PREFIX = "/console"


# -- plumbing ----------------------------------------------------------------------
def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.referee
    return state


def _desk(request: Request) -> ReviewDesk:
    state = _state(request)
    return ReviewDesk(state.store, state.engine.policy)


def _templates(request: Request) -> Environment:
    env: Environment | None = getattr(request.app.state, "console_templates", None)
    if env is None:
        env = Environment(loader=PackageLoader("referee.serve.console", "templates"),
                          autoescape=select_autoescape(["html"]))
        env.filters["ago"] = _relative
        request.app.state.console_templates = env
    return env


def _page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = _templates(request).get_template(name).render(prefix=PREFIX, **context)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the console's forms), last value wins."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


Form = Annotated[dict[str, str], Depends(_form)]


def _login(request: Request) -> tuple[Reviewer, str] | None:
    return session(_state(request).store, request.cookies.get(COOKIE))


def _to_login() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/login", status_code=303)


def _csrf_ok(form: dict[str, str], csrf: str) -> bool:
    return hmac.compare_digest(form.get("csrf", ""), csrf)


def _forbidden(request: Request, message: str) -> HTMLResponse:
    return _page(request, "message.html", status=403, title="Not allowed", message=message, reviewer=None)


def _csrf_refused(request: Request) -> HTMLResponse:
    return _forbidden(request, "The form's CSRF token is missing or wrong: reload the page.")


def _signed_in(request: Request, form: Form | None = None) -> tuple[Reviewer, str] | Response:
    """The logged-in reviewer and their CSRF token, or the page to answer instead.

    The pages behind the login start here, so none can skip a check: a form post passes its
    ``form`` and is refused unless it carries the session's CSRF token (logout alone does its
    own, lenient check: it clears the cookie whatever the form holds).
    """
    who = _login(request)
    if who is None:
        return _to_login()
    if form is not None and not _csrf_ok(form, who[1]):
        return _csrf_refused(request)
    return who


def _visible_queues(desk: ReviewDesk, reviewer: Reviewer) -> list[str]:
    return [q for q in desk.config.queues
            if reviewer.may_see(q) or (reviewer.senior and q == desk.config.senior_queue)]


def _relative(epoch: float | None, now: float | None = None) -> str:
    if epoch is None:
        return "-"
    delta = epoch - (now if now is not None else time.time())
    hours = abs(delta) / 3600
    text = f"{hours:.1f} h" if hours >= 1 else f"{abs(delta) / 60:.0f} min"
    return f"in {text}" if delta >= 0 else f"{text} overdue"


# -- login -------------------------------------------------------------------------
@router.get(f"{PREFIX}/login", include_in_schema=False)
def login_page(request: Request) -> Response:
    token = secrets.token_urlsafe(16)
    response = _page(request, "login.html", login_csrf=token, error=None, reviewer=None)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path=PREFIX)
    return response


@router.post(f"{PREFIX}/login", include_in_schema=False)
def login(request: Request, form: Form) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(form.get("csrf", ""), expected):
        return _forbidden(request, "The login form expired: reload the page and sign in again.")
    store = _state(request).store
    reviewer = check_password(store, form.get("reviewer", ""), form.get("password", ""))
    if reviewer is None:
        return _page(request, "login.html", status=401, login_csrf=expected, reviewer=None,
                     error="Unknown reviewer or wrong password.")
    token, _ = open_session(store, reviewer.reviewer_id)
    response = RedirectResponse(f"{PREFIX}/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post(f"{PREFIX}/logout", include_in_schema=False)
def logout(request: Request, form: Form) -> Response:
    who = _login(request)
    if who is not None and _csrf_ok(form, who[1]):
        close_session(_state(request).store, request.cookies.get(COOKIE))
    response = _to_login()
    response.delete_cookie(COOKIE, path="/")
    return response


# -- queues ------------------------------------------------------------------------
@router.get(f"{PREFIX}/", include_in_schema=False)
def queues(request: Request) -> Response:
    who = _signed_in(request)
    if isinstance(who, Response):
        return who
    reviewer, csrf = who
    desk = _desk(request)
    desk.sync()  # the log's new held decisions join their queues
    visible = _visible_queues(desk, reviewer)
    stats = desk.stats(visible)
    empty = request.query_params.get("empty")
    return _page(request, "queues.html", reviewer=reviewer, csrf=csrf, stats=stats, now=time.time(),
                 empty=empty if empty in visible else None, queues=desk.config.queues)


@router.post(f"{PREFIX}/queues/{{queue}}/next", include_in_schema=False)
def next_task(request: Request, queue: str, form: Form) -> Response:
    who = _signed_in(request, form)
    if isinstance(who, Response):
        return who
    reviewer, csrf = who
    desk = _desk(request)
    if queue not in _visible_queues(desk, reviewer):
        return _forbidden(request, f"Queue {queue!r} is not granted to {reviewer.reviewer_id!r}.")
    task = desk.claim(reviewer.reviewer_id, queue)
    if task is None:
        return RedirectResponse(f"{PREFIX}/?empty={quote(queue)}", status_code=303)
    return RedirectResponse(f"{PREFIX}/tasks/{task.task_id}", status_code=303)


# -- the item view -------------------------------------------------------------------
def _held(request: Request, task_id: str, form: Form | None = None
          ) -> tuple[Reviewer, str, ReviewDesk, Task] | Response:
    """The logged-in reviewer's claimed task (and, for a form post, a valid CSRF token), or the page saying why not."""
    who = _signed_in(request)
    if isinstance(who, Response):
        return who
    reviewer, csrf = who
    desk = _desk(request)
    try:
        task = desk.task(task_id)
    except ReviewError:
        return _page(request, "message.html", status=404, title="No such task", reviewer=reviewer,
                     message=f"There is no review task {task_id!r}.")
    if task.claimed_by != reviewer.reviewer_id or task.status != "claimed":
        return _forbidden(request, "This task is not assigned to you (its lease may have expired): "
                                   "take the next task from the queue.")
    if form is not None and not _csrf_ok(form, csrf):
        return _csrf_refused(request)
    return reviewer, csrf, desk, task


def _highlighted(text: str, spans: list[tuple[int, int, str]]) -> Markup:
    """``text`` with the evidence spans wrapped in ``<mark>`` (overlaps merged), everything escaped."""
    merged: list[list[Any]] = []
    for start, end, label in sorted((max(0, s), min(len(text), e), lab) for s, e, lab in spans if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = ", ".join(dict.fromkeys([*merged[-1][2].split(", "), label]))
        else:
            merged.append([start, end, label])
    out, at = [], 0
    for start, end, label in merged:
        out.append(html.escape(text[at:start]))
        out.append(f'<mark class="evidence" title="{html.escape(label)}">{html.escape(text[start:end])}</mark>')
        at = end
    out.append(html.escape(text[at:]))
    return Markup("".join(out))


def _parts(task: Task, decision: Decision, content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    out = []
    for part in content.parts:
        if part.kind == "text":
            spans = [(e.start, e.end, f"{s.category} {s.score:.2f} ({s.detector})")
                     for s in decision.signals for e in s.evidence
                     if e.start is not None and e.end is not None and (e.part_id or "text") == part.id]
            out.append({"kind": "text", "id": part.id, "role": part.role, "html": _highlighted(part.text, spans),
                        "marks": len(spans)})
        else:
            local = part.data is not None or part.path is not None
            out.append({"kind": part.kind, "id": part.id, "role": part.role, "url": part.url,
                        "src": f"{PREFIX}/tasks/{task.task_id}/media/{quote(part.id)}" if local else None})
    return out


def _author_history(request: Request, author_id: str | None, item_id: str, limit: int = 10) -> list[dict[str, Any]]:
    if not author_id:
        return []
    q = (select(decisions.c.item_id, decisions.c.action, decisions.c.source, decisions.c.created_at)
         .join(items, (items.c.item_id == decisions.c.item_id) & (items.c.content_hash == decisions.c.content_hash))
         .where(items.c.author_id == author_id, decisions.c.item_id != item_id)
         .order_by(decisions.c.seq.desc()).limit(limit))
    with _state(request).store.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


@router.get(f"{PREFIX}/tasks/{{task_id}}", include_in_schema=False)
def task_page(request: Request, task_id: str) -> Response:
    held = _held(request, task_id)
    if isinstance(held, Response):
        return held
    reviewer, csrf, desk, task = held
    desk.renew(task.task_id, reviewer.reviewer_id)
    store = desk.store
    decision = store.log.get(task.decision_id)
    if decision is None:
        return _page(request, "message.html", status=404, title="Decision missing", reviewer=reviewer,
                     message=f"The log has no decision {task.decision_id!r}.")
    content = store.content.get(decision.item_id, decision.content_hash)
    history = store.log.history(decision.item_id)
    categories = desk.policy.document.categories
    flagged = [c for c in dict.fromkeys([*(task.category and [task.category] or []), *decision.categories])]
    policy_text = [(c, categories[c].description, categories[c].severity) for c in flagged if c in categories]
    appeal = None
    if task.appeal_id:
        appeal = next((a for a in list_appeals(desk) if a.appeal_id == task.appeal_id), None)
    return _page(
        request, "task.html", reviewer=reviewer, csrf=csrf, task=task, decision=decision,
        parts=_parts(task, decision, content), erased=content is None, history=history,
        author=_author_history(request, content.author_id if content else None, decision.item_id),
        standing=standing(store, desk.policy, content.author_id) if content and content.author_id else None,
        policy_text=policy_text, actions=[a.value for a in Action], categories=list(categories),
        appeal=appeal, blur=reviewer.blur_images, now=time.time(),
    )


@router.get(f"{PREFIX}/tasks/{{task_id}}/media/{{part_id}}", include_in_schema=False)
def task_media(request: Request, task_id: str, part_id: str) -> Response:
    held = _held(request, task_id)
    if isinstance(held, Response):
        return held
    _, _, desk, task = held
    decision = desk.store.log.get(task.decision_id)
    content = desk.store.content.get(task.item_id, decision.content_hash) if decision else None
    part = next((p for p in (content.parts if content else ()) if p.id == part_id and p.kind != "text"), None)
    if part is None:
        return Response(status_code=404)
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if part.data is not None:
        data = bytes(part.data)
        mime = part.mime or "application/octet-stream"
    elif part.path is not None:
        try:
            data = Path(part.path).read_bytes()
        except OSError:
            return Response(status_code=404)
        mime = part.mime or mimetypes.guess_type(part.path)[0] or "application/octet-stream"
    else:
        return Response(status_code=404)
    return Response(data, media_type=mime, headers=headers)


@router.post(f"{PREFIX}/tasks/{{task_id}}/verdict", include_in_schema=False)
def submit_verdict(request: Request, task_id: str, form: Form) -> Response:
    held = _held(request, task_id, form)
    if isinstance(held, Response):
        return held
    reviewer, _, desk, task = held
    kind = form.get("verdict", "")
    if kind not in ("uphold", "overturn", "change", "escalate"):
        return _page(request, "message.html", status=422, title="No verdict", reviewer=reviewer,
                     message="Choose uphold (u), overturn (o), change (c) or escalate (e).")
    action = Action(form["action"]) if form.get("action") in {a.value for a in Action} else None
    cats = tuple(c for c in form.get("categories", "").replace(" ", "").split(",") if c) or None
    spent = max(0.0, desk.clock() - (task.claimed_at or desk.clock()))
    try:
        desk.submit(task.task_id, reviewer.reviewer_id, Verdict(
            kind=kind, action=action if kind == "change" else None,
            categories=cats if kind == "change" else None, seconds_spent=spent, notes=form.get("notes", "")[:4000]))
    except ReviewConflict as exc:
        return _page(request, "message.html", status=409, title="Decided meanwhile", reviewer=reviewer,
                     message=str(exc))
    except ReviewError as exc:
        return _page(request, "message.html", status=422, title="Verdict refused", reviewer=reviewer,
                     message=str(exc))
    nxt = desk.claim(reviewer.reviewer_id, task.queue)
    if nxt is None:
        return RedirectResponse(f"{PREFIX}/?empty={quote(task.queue)}", status_code=303)
    return RedirectResponse(f"{PREFIX}/tasks/{nxt.task_id}", status_code=303)


@router.post(f"{PREFIX}/tasks/{{task_id}}/release", include_in_schema=False)
def release_task(request: Request, task_id: str, form: Form) -> Response:
    held = _held(request, task_id, form)
    if isinstance(held, Response):
        return held
    reviewer, _, desk, task = held
    desk.release(task.task_id, reviewer.reviewer_id)
    return RedirectResponse(f"{PREFIX}/", status_code=303)


@router.post(f"{PREFIX}/settings/blur", include_in_schema=False)
def toggle_blur(request: Request, form: Form) -> Response:
    who = _signed_in(request, form)
    if isinstance(who, Response):
        return who
    reviewer, csrf = who
    set_blur(_state(request).store, reviewer.reviewer_id, not reviewer.blur_images)
    back = form.get("back", f"{PREFIX}/")
    return RedirectResponse(back if back.startswith(f"{PREFIX}/") else f"{PREFIX}/", status_code=303)


# -- metrics -----------------------------------------------------------------------
@router.get(f"{PREFIX}/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    who = _signed_in(request)
    if isinstance(who, Response):
        return who
    reviewer, csrf = who
    desk = _desk(request)
    now = desk.clock()
    verdicts = desk.verdicts(since=now - 7 * 86400)
    per_reviewer: dict[str, list[float]] = {}
    for v in verdicts:
        per_reviewer.setdefault(v.reviewer_id, []).append(v.seconds_spent)
    throughput = [{"reviewer": r, "verdicts": len(s), "median_s": sorted(s)[len(s) // 2]}
                  for r, s in sorted(per_reviewer.items())]
    appeals = list_appeals(desk)
    return _page(
        request, "metrics.html", reviewer=reviewer, csrf=csrf,
        stats=desk.stats(_visible_queues(desk, reviewer)), throughput=throughput,
        last_24h=sum(1 for v in verdicts if v.recorded_at >= now - 86400), last_7d=len(verdicts),
        agreement=agreement(desk), precision=automated_precision(desk),
        appeals={s: sum(1 for a in appeals if a.status == s) for s in ("open", "upheld", "overturned")},
    )


@router.get(f"{PREFIX}/static/{{name}}", include_in_schema=False)
def static(name: str) -> Response:
    if name not in ("console.js", "console.css"):
        return Response(status_code=404)
    body = (files("referee.serve.console") / "static" / name).read_text(encoding="utf-8")
    media = "text/javascript" if name.endswith(".js") else "text/css"
    return Response(body, media_type=media, headers={"Cache-Control": "max-age=300"})


# -- appeals (the API) ---------------------------------------------------------------
class AppealRequest(BaseModel):
    decision_id: str = Field(min_length=1, max_length=64, description="The decision the user contests.")
    reason: str = Field(min_length=1, max_length=5000, description="The user's reason, in their words.")


class AppealResponse(BaseModel):
    appeal_id: str
    status: str
    item_id: str
    decision_id: str = Field(description="The item's decision the appeal is about (its head when filed).")


@router.post(
    "/v1/appeals",
    tags=["review"],
    summary="File an appeal (DSA Art. 20 complaint) against a decision",
    status_code=201,
    response_model=AppealResponse,
    responses={401: {"model": ErrorResponse, "description": "No API key, or a malformed, unknown or revoked one."},
               403: {"model": ErrorResponse, "description": "The key lacks the scope."},
               404: {"model": ErrorResponse, "description": "No decision with this id."},
               422: {"model": ErrorResponse, "description": "The body is not an appeal."},
               **BODY_ERRORS},
)
async def post_appeal(body: AppealRequest, request: Request,
                      _: Annotated[Principal, Depends(require("moderate"))]) -> Response:
    desk = _desk(request)
    try:
        appeal = await run_in_threadpool(file_appeal, desk, body.decision_id, body.reason)
    except ReviewError as exc:
        status, kind = (404, "not_found") if "unknown decision" in str(exc) else (422, "invalid_request_error")
        return JSONResponse(error_body(kind, str(exc), "decision_id" if status == 404 else "reason"),
                            status_code=status)
    return JSONResponse(AppealResponse(appeal_id=appeal.appeal_id, status=appeal.status, item_id=appeal.item_id,
                                       decision_id=appeal.decision_id).model_dump(), status_code=201)
