"""Submitting against a real HTTP server on 127.0.0.1 that behaves as the Transparency Database
does (201 for a batch, 422 naming the statements, a duplicate puid refused), with scripted
failures: 5xx, timeouts after the server created the batch, a restart of the submitter. At the
end the server holds every statement exactly once and the state table says so."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from referee.policy import load_policy
from referee.records.reasons import Statements
from referee.records.submit import SubmitError, Submitter
from referee.store import Store
from tests.records.conftest import decision, item


class FakeDatabase:
    """The API's multiple endpoint: all or nothing per batch, puids unique per platform."""

    def __init__(self) -> None:
        self.created: dict[str, dict] = {}
        self.creations: list[str] = []
        self.script: list[str] = []  # per request: "ok", "503", "slow" (create, then answer late), "401"
        self.requests = 0
        self.lock = threading.Lock()
        self.delay = 1.0

    def handle(self, body: dict, auth: str | None) -> tuple[int, dict]:
        with self.lock:
            self.requests += 1
            step = self.script.pop(0) if self.script else "ok"
        if auth != "Bearer secret" or step == "401":
            return 401, {"message": "Unauthenticated."}
        if step == "503":
            return 503, {"message": "Service Unavailable"}
        statements = body.get("statements", [])
        if not 1 <= len(statements) <= 100:
            return 422, {"message": "between 1 and 100 statements"}
        errors: dict[str, dict] = {}
        with self.lock:
            for i, s in enumerate(statements):
                if s.get("puid") in self.created:
                    errors[f"statement_{i}"] = {"puid": ["The identifier given is not unique within this platform."]}
                elif s.get("category") == "STATEMENT_CATEGORY_BOGUS":
                    errors[f"statement_{i}"] = {"category": ["The selected category is invalid."]}
            if errors:
                return 422, {"errors": errors}
            for s in statements:
                self.created[s["puid"]] = s
                self.creations.append(s["puid"])
        if step == "slow":
            time.sleep(self.delay)
        return 201, {"statements": [{**s, "uuid": "u"} for s in statements]}


@pytest.fixture
def server() -> Iterator[tuple[str, FakeDatabase]]:
    fake = FakeDatabase()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            code, payload = fake.handle(body, self.headers.get("Authorization"))
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/statements", fake
    httpd.shutdown()
    httpd.server_close()


def _log(store: Store, n: int) -> list:
    pairs = []
    for i in range(n):
        it = item(i)
        pairs.append((it, decision(it)))
    store.log.append(pairs)
    return list(Statements(store.db, store.log, load_policy("policies/default.yaml")).iter())


def _submitter(store: Store, url: str, **kw) -> Submitter:
    kw.setdefault("sleep", lambda s: None)
    kw.setdefault("timeout", 0.3)
    return Submitter(store.db, url, "secret", client=httpx.Client(timeout=kw.pop("timeout")), **kw)


def _status(store: Store) -> dict[str, str]:
    import sqlalchemy
    with store.db.engine.connect() as conn:
        return dict(conn.execute(sqlalchemy.text("SELECT puid, status FROM sor_submissions")).all())


def test_201_submits_in_batches_and_nothing_is_sent_twice(store, server):
    url, fake = server
    statements = _log(store, 250)
    sub = _submitter(store, url)
    result = sub.submit(statements)
    assert (result.submitted, result.requests, result.pending) == (250, 3, 0)
    assert len(fake.creations) == 250 == len(set(fake.creations))
    again = sub.submit(statements)
    assert (again.skipped, again.requests) == (250, 0)
    assert set(_status(store).values()) == {"submitted"}


def test_5xx_is_retried_with_backoff_and_then_succeeds(store, server):
    url, fake = server
    statements = _log(store, 120)
    fake.script = ["503", "503", "ok", "ok"]
    waits: list[float] = []
    result = _submitter(store, url, sleep=waits.append, backoff=0.5).submit(statements)
    assert result.submitted == 120 and result.requests == 4 and waits == [0.5, 1.0]
    assert sorted(fake.creations) == sorted(s.puid for s in statements)


def test_a_timeout_after_the_server_created_the_batch_is_a_duplicate_not_a_second_copy(store, server):
    url, fake = server
    statements = _log(store, 30)
    fake.script = ["slow"]
    result = _submitter(store, url, timeout=0.3).submit(statements)
    assert (result.submitted, result.duplicate, result.pending) == (0, 30, 0)
    assert len(fake.creations) == 30 == len(set(fake.creations))
    assert set(_status(store).values()) == {"duplicate"}


def test_a_duplicate_puid_marks_only_that_statement_and_the_rest_are_sent(store, server):
    url, fake = server
    statements = _log(store, 10)
    fake.created[statements[3].puid] = statements[3].body  # sent earlier, by another run
    result = _submitter(store, url).submit(statements)
    assert (result.submitted, result.duplicate, result.requests) == (9, 1, 2)
    assert _status(store)[statements[3].puid] == "duplicate"
    assert len(fake.creations) == 9


def test_a_refused_statement_is_failed_with_its_reason_and_not_resent(store, server):
    url, fake = server
    statements = _log(store, 5)
    bad = statements[2].model_copy(update={"body": {**statements[2].body, "category": "STATEMENT_CATEGORY_BOGUS"}})
    statements[2] = bad
    sub = _submitter(store, url)
    result = sub.submit(statements)
    assert (result.submitted, result.failed) == (4, 1)
    import sqlalchemy
    with store.db.engine.connect() as conn:
        detail = conn.execute(sqlalchemy.text("SELECT detail FROM sor_submissions WHERE puid = :p"),
                              {"p": bad.puid}).scalar()
    assert "category" in detail and "invalid" in detail
    assert sub.submit(statements).requests == 0
    statements[2] = bad.model_copy(update={"body": {**bad.body, "category": "STATEMENT_CATEGORY_VIOLENCE"}})
    fixed = sub.submit(statements, retry_failed=True)
    assert (fixed.submitted, fixed.skipped) == (1, 4) and len(fake.creations) == 5


def test_state_survives_a_restart_of_the_submitter(tmp_path, server):
    url, fake = server
    path = f"sqlite:///{tmp_path}/restart.db"
    first = Store(path)
    statements = _log(first, 250)
    fake.script = ["ok", "503", "503"]
    result = _submitter(first, url, max_attempts=2).submit(statements)
    assert (result.submitted, result.pending) == (100, 100) and not result.complete
    first.close()
    second = Store(path)  # a new process: only the database remembers
    again = _submitter(second, url).submit(statements)
    assert (again.submitted, again.skipped) == (150, 100)
    assert sorted(fake.creations) == sorted(s.puid for s in statements)
    assert len(fake.creations) == len(set(fake.creations)) == 250
    assert set(_status(second).values()) == {"submitted"}
    second.close()


def test_a_refused_token_stops_the_run_and_leaves_the_statements_pending(store, server):
    url, fake = server
    statements = _log(store, 3)
    fake.script = ["401"]
    with pytest.raises(SubmitError, match="401"):
        _submitter(store, url).submit(statements)
    assert set(_status(store).values()) == {"pending"}
    assert _submitter(store, url).submit(statements).submitted == 3


def test_an_unreachable_endpoint_leaves_everything_pending(store):
    statements = _log(store, 3)
    result = _submitter(store, "http://127.0.0.1:9/api", max_attempts=2).submit(statements)
    assert result.pending == 3 and result.requests == 2
