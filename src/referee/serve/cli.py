"""``referee serve``, ``referee follow`` and ``referee keys``: the service's commands, registered on
the main typer app.

``serve`` hands settings to the worker processes through ``REFEREE_*``
variables and uvicorn's ``--factory`` hook, so one worker or eight run the
same code path and each builds its own engine and store connection.

With ``--workers N`` (N > 1) uvicorn's parent process binds the port and the
workers inherit the listening socket. A worker must not outlive its parent: a
parent killed with ``kill -9`` cannot stop them, and orphaned workers would go
on serving and hold the port, so the next ``referee serve`` fails with
"address already in use". Each worker therefore watches its parent
(:func:`watch_parent`) and shuts down when it is gone.

The log follower (review queues, notices, account actions, the audit chain;
``serve/follow.py``) does not run in the workers: ``serve`` starts one
``referee follow`` process beside uvicorn, whatever ``--workers``, and tells the
workers not to follow (``REFEREE_FOLLOW_IN_APP=false``). It watches ``serve``
as the workers do, is started again should it die, and is stopped (SIGTERM:
a last pass, then exit) once uvicorn has stopped. Only a database no other
process can see (SQLite in memory) is still followed inside the one worker.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from referee.errors import RefereeError
from referee.settings import Settings
from referee.store import SCOPES, DecisionStore

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

#: Set by ``serve`` for its worker processes: the pid they must not outlive.
SUPERVISOR_PID_ENV = "REFEREE_SUPERVISOR_PID"
#: Most worker processes ``serve`` starts; more than a few per core only adds memory.
MAX_WORKERS = 256
#: Set by ``serve`` for its workers when a ``referee follow`` process follows the log instead.
FOLLOW_IN_APP_ENV = "REFEREE_FOLLOW_IN_APP"
#: How long ``follow`` may take for its last pass once ``serve`` is gone, before it exits anyway.
FOLLOW_GRACE_S = 60.0

keys_app = typer.Typer(name="keys", help="Create, list and revoke API keys for the HTTP service.", no_args_is_help=True)

DbUrl = Annotated[str | None, typer.Option("--db-url", help="SQLAlchemy URL of the decision store (env REFEREE_DB_URL).")]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("follow")(follow)
    app.add_typer(keys_app, name="keys")


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (env REFEREE_HOST, default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="TCP port (env REFEREE_PORT, default 8080).")] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy YAML (env REFEREE_POLICY).")] = None,
    db_url: DbUrl = None,
    workers: Annotated[int, typer.Option(min=1, max=MAX_WORKERS,
                                         help="Worker processes; each builds its own engine.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request (costs latency under load).")] = True,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    overrides = {"REFEREE_POLICY": str(policy) if policy else None, "REFEREE_DB_URL": db_url,
                 SUPERVISOR_PID_ENV: str(os.getpid()) if workers > 1 else None}
    os.environ.update({k: v for k, v in overrides.items() if v is not None})
    if workers == 1:
        os.environ.pop(SUPERVISOR_PID_ENV, None)
    try:
        settings = Settings()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if not settings.auth:
        typer.secho("WARNING: REFEREE_AUTH=false: anyone who can reach this port can moderate and read "
                    "decisions. Never run like this in production.", fg=typer.colors.RED, err=True)
    # Several workers share their metrics through files (prometheus_client's multiprocess mode), so
    # GET /metrics answers the service's totals whichever worker takes the scrape. The directory must
    # be set before a worker imports prometheus_client, and be empty at start: a fresh one per run.
    shared_metrics = None
    if workers > 1 and settings.metrics_multiprocess_dir is None:
        shared_metrics = tempfile.mkdtemp(prefix="referee-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared_metrics
    if settings.log_format == "json":
        from referee.obs import configure_logging

        configure_logging("json")
    follower = None
    if settings.follow_s > 0 and _shared_database(settings.db_url):
        os.environ[FOLLOW_IN_APP_ENV] = "false"  # read by the workers' settings
        follower = FollowProcess(settings.follow_s)
        follower.start()
    try:
        uvicorn.run(
            "referee.serve.cli:worker_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            access_log=access_log,
            log_level="info",
            # JSON: uvicorn's own lines (access log included) go through the root logger's JSON handler.
            log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
        )
    finally:
        if follower is not None:
            follower.stop()
        if shared_metrics is not None:
            shutil.rmtree(shared_metrics, ignore_errors=True)


def _shared_database(url: str) -> bool:
    """Whether another process sees the database at ``url`` (not SQLite in memory)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - a bad URL: the workers report it when they open the store
        return False
    if parsed.get_backend_name() != "sqlite":
        return True
    database = parsed.database or ""
    return database not in ("", ":memory:") and not database.startswith("file::memory:") \
        and parsed.query.get("mode") != "memory"


class FollowProcess:
    """``serve``'s ``referee follow`` child: started beside uvicorn, started again should it
    die (after ``restart_after_s``), stopped with SIGTERM (a last pass) when ``serve`` ends."""

    def __init__(self, interval_s: float, restart_after_s: float = 5.0, stop_timeout_s: float = FOLLOW_GRACE_S) -> None:
        self.interval_s = interval_s
        self.restart_after_s = restart_after_s
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watch: threading.Thread | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-c", "from referee.cli import app; app()", "follow",
                "--interval", repr(self.interval_s)]

    def start(self) -> None:
        self._spawn()
        self._watch = threading.Thread(target=self._supervise, name="referee-follow-supervisor", daemon=True)
        self._watch.start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            # The child watches this process (watch_parent), as the workers do: it must not outlive serve.
            env = {**os.environ, SUPERVISOR_PID_ENV: str(os.getpid())}
            self.proc = subprocess.Popen(self.command(), env=env)
            log.info("started the log follower (pid %d, every %.1f s)", self.proc.pid, self.interval_s)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            proc = self.proc
            if proc is not None and proc.poll() is not None:
                log.error("the log follower (pid %d) exited with %s; starting it again in %.0f s",
                          proc.pid, proc.returncode, self.restart_after_s)
                if self._stopping.wait(self.restart_after_s):
                    return
                self._spawn()
            self._stopping.wait(0.5)

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # its last pass sees what the workers stored last
        try:
            proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.error("the log follower (pid %d) did not stop within %.0f s; killing it", proc.pid,
                      self.stop_timeout_s)
            proc.kill()
            proc.wait()


def follow(
    policy: Annotated[Path | None, typer.Option(help="Policy YAML (env REFEREE_POLICY).")] = None,
    db_url: DbUrl = None,
    interval: Annotated[float | None, typer.Option(min=0.01, max=3600,
                                                   help="Seconds between passes (env REFEREE_FOLLOW_S, default 2).")]
    = None,
) -> None:
    """Follow the decision log in the foreground, as `serve` does beside its workers: queue held
    decisions for review, route and settle notices, turn strikes into account actions and seal new
    records into the audit chain, every few seconds, until SIGTERM or SIGINT, then one last pass.
    One follower per database does the work (a lease); others wait to take over."""
    from referee.obs import configure_logging
    from referee.policy import Policy
    from referee.serve.follow import LogFollower

    supervisor = os.environ.get(SUPERVISOR_PID_ENV)
    # Started by serve (which may already be gone: then watch_parent ends this process at once).
    supervised = bool(supervisor and supervisor.isdigit() and int(supervisor) != os.getpid())
    # Signals are taken by sigwait below, never by a handler: blocked before any thread starts, so
    # every thread inherits the mask. Started by serve, Ctrl-C is serve's to handle: it stops this
    # process with SIGTERM once its workers have stopped, and the last pass sees their last records.
    stop_on = {signal.SIGTERM} if supervised else {signal.SIGTERM, signal.SIGINT}
    if supervised:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_on)
    if supervised:
        assert supervisor is not None
        watch_parent(int(supervisor), grace_s=FOLLOW_GRACE_S)
    overrides = {"REFEREE_POLICY": str(policy) if policy else None, "REFEREE_DB_URL": db_url}
    os.environ.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = Settings()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    interval_s = settings.follow_s if interval is None else interval
    if interval_s <= 0:
        raise typer.BadParameter("REFEREE_FOLLOW_S is 0 (following is off); pass --interval SECONDS")
    configure_logging(settings.log_format)
    store = _store(settings.db_url)
    try:
        try:
            pol = Policy.from_file(settings.policy)
        except RefereeError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
        follower = LogFollower(store, pol, interval_s, settings.audit_key_env,
                               drift_every_s=settings.drift_every_s)
        log.info("process %d: following %s every %.1f s", os.getpid(), store.db.engine.url, interval_s)
        follower.start(now=True)
        got = signal.sigwait(stop_on)
        log.info("process %d: %s; a last pass, then exiting", os.getpid(), signal.Signals(got).name)
        follower.stop(timeout_s=None)
    finally:
        store.close()


def worker_app() -> FastAPI:
    """uvicorn's factory for ``serve``: the app from ``REFEREE_*``; in a worker process
    of ``--workers N``, also a watch that ends the worker when its parent is gone."""
    from referee.serve.app import app_from_env

    supervisor = os.environ.get(SUPERVISOR_PID_ENV)
    if supervisor and supervisor.isdigit() and int(supervisor) != os.getpid():
        watch_parent(int(supervisor))
    return app_from_env()


def watch_parent(parent: int, interval_s: float = 0.25, grace_s: float = 5.0) -> threading.Thread:
    """Shut this process down once ``parent`` is no longer its parent (it died, even by
    SIGKILL, and the process was re-parented): SIGTERM first, so uvicorn stops
    accepting, closes the inherited listening socket and finishes the requests in
    flight; ``os._exit`` after ``grace_s`` if that has not ended the process.

    A polling thread rather than Linux's ``PR_SET_PDEATHSIG``: that one fires when the
    parent *thread* that spawned the worker exits, and exists on Linux only."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        log.warning("worker %d: parent process %d is gone; shutting down", os.getpid(), parent)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        log.error("worker %d: still running %.0f s after SIGTERM; exiting now", os.getpid(), grace_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="referee-parent-watch", daemon=True)
    thread.start()
    return thread


def _store(db_url: str | None) -> DecisionStore:
    try:
        return DecisionStore(db_url or Settings().db_url)
    except RefereeError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. 'comments-service'.")],
    scope: Annotated[list[str], typer.Option(help=f"Repeat for several: {', '.join(SCOPES)}.")],
    db_url: DbUrl = None,
) -> None:
    """Mint a key and print it. It is shown this once; only its hash is stored."""
    store = _store(db_url)
    try:
        key = store.create_key(name, scope)
    except RefereeError as exc:
        typer.secho(f"error: --scope: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    finally:
        store.close()
    typer.echo(key)
    typer.secho("Store this key now: referee keeps only its hash and cannot show it again.", err=True)


@keys_app.command("list")
def list_keys(
    db_url: DbUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Every key's id, name, scopes and state (never the secret)."""
    with _store(db_url) as store:
        rows = store.list_keys()
    for row in rows:
        if as_json:
            typer.echo(json.dumps(row, default=str))
        else:
            state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
            typer.echo(f"{row['key_id']}  {row['name']:<24} {row['scopes']:<20} {state}")


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The id from `referee keys list` (the part after 'rk_').")],
    db_url: DbUrl = None,
) -> None:
    """Revoke a key; requests with it are refused (401) from now on."""
    with _store(db_url) as store:
        if key_id not in {r["key_id"] for r in store.list_keys()}:
            typer.secho(f"error: no key {key_id!r}; see `referee keys list`", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        store.revoke_key(key_id)
    typer.echo(f"revoked {key_id}")
