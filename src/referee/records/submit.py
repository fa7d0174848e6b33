"""Submitting statements of reasons to the DSA Transparency Database, exactly once each.

The state of every statement is a row of ``sor_submissions`` (by puid), written before it is
sent and after each answer, so a submitter that stops (a crash, a restart, a deploy) resumes
where it was:

- ``pending``: not accepted yet (never sent, or every try so far failed);
- ``submitted``: the API answered 201 for the batch that held it;
- ``duplicate``: the API answered 422 because the puid exists: it was submitted before
  (a 201 whose answer was lost, a timeout after the server created it). Counted as done;
- ``failed``: the API refused the statement itself (422 for another field); the reason is
  kept in ``detail`` and it is not sent again until it is reset.

Only 201 is success. A 422 on the multiple endpoint creates none of the batch, so the
statements it did not name are sent again. 5xx, 429, timeouts and connection errors are
retried with bounded exponential backoff; after ``max_attempts`` the batch stays pending and
the run ends (run it again later). 401 and other 4xx stop the run: a configuration problem,
not a statement's. The puid makes a resend harmless: the server refuses a second copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError

from referee.errors import RefereeError, StoreError
from referee.model import utcnow
from referee.records.reasons import BATCH, Statement, batches
from referee.store.sql.audit_tables import sor_submissions
from referee.store.sql.database import Database

_s = sor_submissions
DONE = ("submitted", "duplicate")
_STATES = select(_s.c.puid, _s.c.status, _s.c.attempts).where(_s.c.puid.in_(bindparam("puids", expanding=True)))
_RETRY = frozenset({408, 425, 429, 500, 502, 503, 504})


class SubmitError(RefereeError):
    """The run cannot go on (the endpoint refused the token, or answered something unusable)."""


@dataclass
class SubmitResult:
    submitted: int = 0
    duplicate: int = 0
    failed: int = 0
    pending: int = 0
    skipped: int = 0
    requests: int = 0

    @property
    def complete(self) -> bool:
        return self.pending == 0


class Submitter:
    """Posts statements to ``endpoint`` (the multiple-statements URL) with a bearer ``token``."""

    def __init__(self, db: Database, endpoint: str, token: str, *, client: httpx.Client | None = None,
                 timeout: float = 30.0, max_attempts: int = 5, backoff: float = 1.0, max_backoff: float = 60.0,
                 batch_size: int = BATCH, sleep: Callable[[float], None] = time.sleep) -> None:
        if not token:
            raise SubmitError("no API token: set the environment variable named by --token-env")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self._db = db
        self.endpoint = endpoint
        self._client = client or httpx.Client(timeout=timeout)
        self._own_client = client is None
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                         "Content-Type": "application/json"}
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.batch_size = batch_size
        self._sleep = sleep

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    # -- state -----------------------------------------------------------------
    def register(self, statements: Sequence[Statement]) -> dict[str, str]:
        """Record the statements as pending (those known keep their state); returns puid -> state."""
        if not statements:
            return {}
        now = utcnow()
        try:
            with self._db.write() as conn:
                conn.execute(self._db.insert_ignoring_duplicates(_s), [
                    {"puid": s.puid, "decision_id": s.decision_id, "seq": s.seq, "status": "pending",
                     "attempts": 0, "http_status": None, "detail": None, "updated_at": now} for s in statements])
                rows = conn.execute(_STATES, {"puids": [s.puid for s in statements]}).all()
        except SQLAlchemyError as exc:
            raise StoreError(f"could not record the submission state: {exc}") from exc
        return {r.puid: r.status for r in rows}

    def _mark(self, puids: Iterable[str], status: str, http_status: int | None, detail: str | None,
              tried: bool = True) -> None:
        puids = list(puids)
        if not puids:
            return
        values: dict[str, Any] = {"status": status, "http_status": http_status,
                                  "detail": (detail or "")[:1000] or None, "updated_at": utcnow()}
        if tried:
            values["attempts"] = _s.c.attempts + 1
        try:
            with self._db.write() as conn:
                conn.execute(update(_s).where(_s.c.puid.in_(puids)).values(**values))
        except SQLAlchemyError as exc:
            raise StoreError(f"could not record the submission state: {exc}") from exc

    def states(self) -> dict[str, int]:
        """How many statements are in each state."""
        from sqlalchemy import func

        with self._db.read() as conn:
            rows = conn.execute(select(_s.c.status, func.count()).group_by(_s.c.status)).all()
        return {str(status): int(n) for status, n in rows}

    # -- sending ---------------------------------------------------------------
    def submit(self, statements: Iterable[Statement], retry_failed: bool = False) -> SubmitResult:
        """Send the statements not done yet; ``retry_failed`` sends refused ones again too
        (after the mapping or the statement was fixed)."""
        result = SubmitResult()
        sendable = ("pending", "failed") if retry_failed else ("pending",)
        for chunk in batches(statements, self.batch_size):
            state = self.register(chunk)
            todo = [s for s in chunk if state.get(s.puid) in sendable]
            result.skipped += len(chunk) - len(todo)
            if not todo:
                continue
            if not self._send(todo, result):
                result.pending += len(todo)
                # Stop here: the endpoint is failing; later chunks stay as they are (pending or unsent).
                return result
        return result

    def _send(self, todo: list[Statement], result: SubmitResult) -> bool:
        """Send until each statement is done or failed; False if the endpoint kept failing."""
        attempt = 0
        while todo:
            attempt += 1
            outcome, status, payload, detail = self._post(todo)
            result.requests += 1
            if outcome == "created":
                self._mark([s.puid for s in todo], "submitted", status, None)
                result.submitted += len(todo)
                return True
            if outcome == "refused":
                named = _per_statement(payload, len(todo))
                if not named:
                    self._mark([s.puid for s in todo], "failed", status, detail)
                    result.failed += len(todo)
                    return True
                rest: list[Statement] = []
                for i, s in enumerate(todo):
                    errors = named.get(i)
                    if errors is None:
                        rest.append(s)
                    elif _duplicate_puid(errors):
                        self._mark([s.puid], "duplicate", status, "puid exists: submitted before")
                        result.duplicate += 1
                    else:
                        self._mark([s.puid], "failed", status, _summary(errors))
                        result.failed += 1
                todo, attempt = rest, 0  # none of the batch was created: send the rest
                continue
            if outcome == "fatal":
                self._mark([s.puid for s in todo], "pending", status, detail, tried=True)
                raise SubmitError(f"{self.endpoint} answered {status}: {detail} (nothing more was sent)")
            # retry
            self._mark([s.puid for s in todo], "pending", status, detail)
            if attempt >= self.max_attempts:
                return False
            self._sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
        return True

    def _post(self, todo: list[Statement]) -> tuple[str, int | None, Any, str]:
        try:
            response = self._client.post(self.endpoint, json={"statements": [s.body for s in todo]},
                                         headers=self._headers)
        except httpx.TimeoutException as exc:
            return "retry", None, None, f"timed out: {exc!r}"
        except httpx.TransportError as exc:
            return "retry", None, None, f"could not reach the endpoint: {exc!r}"
        code = response.status_code
        if code == 201:
            return "created", code, None, ""
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        detail = _text(payload, response)
        if code == 422:
            return "refused", code, payload, detail
        if code in _RETRY or code >= 500:
            return "retry", code, payload, detail
        return "fatal", code, payload, detail


def _per_statement(payload: Any, n: int) -> dict[int, dict[str, Any]]:
    """The 422's errors by statement index ({"errors": {"statement_3": {field: [...]}}}); a flat
    {"errors": {field: [...]}} for a batch of one is that statement's."""
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(errors, dict) or not errors:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for key, value in errors.items():
        if isinstance(key, str) and key.startswith("statement_") and key[10:].isdigit() and isinstance(value, dict):
            index = int(key[10:])
            if index < n:
                out[index] = value
    if not out and n == 1 and all(not str(k).startswith("statement_") for k in errors):
        out[0] = errors
    return out


def _duplicate_puid(errors: dict[str, Any]) -> bool:
    """The API's answer for a puid it holds already: only the puid is wrong, for not being unique."""
    messages = errors.get("puid")
    return set(errors) == {"puid"} and isinstance(messages, list) and any("unique" in str(m) for m in messages)


def _summary(errors: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in errors.items())


def _text(payload: Any, response: httpx.Response) -> str:
    if isinstance(payload, dict) and "message" in payload:
        return str(payload["message"])[:500]
    return response.text[:500]


__all__ = ["DONE", "SubmitError", "SubmitResult", "Submitter"]
