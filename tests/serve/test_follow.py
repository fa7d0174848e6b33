"""One log follower per database (a lease), and the follower out of the serving processes.

- two followers on one database: exactly one does passes, and the other takes over
  once the holder stops (SQLite: ``flock`` on ``<db>.follow-lock``; PostgreSQL: an
  advisory lock on a connection of its own);
- ``referee follow`` follows in the foreground and makes a last pass on SIGTERM;
- ``referee serve`` runs one ``referee follow`` beside its workers, which do not follow.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from referee.engine import Engine
from referee.model import ContentItem
from referee.policy import Policy
from referee.records.chain import AuditChain
from referee.records.review import ReviewDesk
from referee.serve.follow import FollowLease, LogFollower
from referee.store import Store, upgrade
from tests.serve.conftest import DEFAULT_POLICY, HashtagDetector
from tests.store.conftest import pg_url  # noqa: F401  (the PostgreSQL fixture)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'follow.db'}"
    u: str = request.getfixturevalue("pg_url")
    upgrade(u)
    return u


def _held(store: Store, n: int, policy: Policy) -> list[str]:
    """Store ``n`` held decisions (the hashtag detector; comment.harm.review) and return their ids."""
    with Engine(policy, [HashtagDetector()], sink=store) as engine:
        return [engine.moderate(ContentItem(id=f"held-{time.monotonic_ns()}-{i}", surface="comment",
                                            text="look #self_harm")).decision_id for i in range(n)]


def test_two_followers_on_one_database_one_follows_and_the_other_takes_over(url: str) -> None:
    policy = Policy.from_file(DEFAULT_POLICY)
    one, two = Store(url), Store(url)  # two processes' stores, as far as the lease can tell
    first, second = LogFollower(one, policy, 60.0), LogFollower(two, policy, 60.0)
    try:
        _held(one, 2, policy)
        assert [first.once(), second.once(), first.once(), second.once()] == [True, False, True, False]
        assert (first.passes, second.passes) == (2, 0)
        desk = ReviewDesk(one, policy)
        assert len(desk.tasks()) == 2 and AuditChain(one.db).head()[0] == one.log.last_seq()

        first.close()  # the holder stops (a process that dies gives its lease back the same way)
        _held(one, 1, policy)
        assert second.once() and not first.once()
        assert (first.passes, second.passes) == (2, 1)
        assert len(desk.tasks()) == 3 and AuditChain(one.db).verify().ok
    finally:
        first.close()
        second.close()
        one.close()
        two.close()


def test_an_in_memory_database_is_always_followed_by_its_own_process() -> None:
    from types import SimpleNamespace

    memory = SimpleNamespace(db=SimpleNamespace(sqlite=SimpleNamespace(in_memory=True),
                                                dialect=SimpleNamespace(name="sqlite")))
    lease = FollowLease(memory)  # type: ignore[arg-type]  # no other process can see it
    assert lease.kind == "local" and lease.held() and FollowLease(memory).held()  # type: ignore[arg-type]


def test_a_follower_that_keeps_only_drift_gauges_never_takes_the_lease(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    store, other = Store(url), Store(url)
    policy = Policy.from_file(DEFAULT_POLICY)
    drift_only = LogFollower(store, policy, 60.0, follow_log=False)
    follower = LogFollower(other, policy, 60.0)
    try:
        assert drift_only.idle and not drift_only.once()
        assert follower.once() and follower.passes == 1
    finally:
        follower.close()
        store.close()
        other.close()


def _wait(predicate: object, timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


def _lease_free(db_file: Path) -> bool:
    fd = os.open(f"{db_file}.follow-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _env(db_file: Path) -> dict[str, str]:
    return {**os.environ, "REFEREE_POLICY": str(DEFAULT_POLICY), "REFEREE_DB_URL": f"sqlite:///{db_file}",
            "REFEREE_DETECTORS": '["lexicon"]', "REFEREE_AUTH": "false", "REFEREE_DRIFT_EVERY_S": "0"}


@pytest.mark.slow
def test_referee_follow_follows_until_sigterm_then_makes_a_last_pass(tmp_path: Path) -> None:
    db_file = tmp_path / "f.db"
    store = Store(f"sqlite:///{db_file}")
    policy = Policy.from_file(DEFAULT_POLICY)
    log = tmp_path / "follow.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from referee.cli import app; app()", "follow",
                                 "--interval", "3600"], env=_env(db_file), stdout=out, stderr=subprocess.STDOUT)
    try:
        # (its log, not a probe of the lock: a probe at the wrong moment would make it wait an hour)
        _wait(lambda: "follows the decision log" in log.read_text(), 60, "the follower to take the lease", log)
        assert not _lease_free(db_file)
        held = _held(store, 1, policy)  # after its first pass; the next tick is an hour away
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
        assert [t.decision_id for t in ReviewDesk(store, policy).tasks()] == held  # the last pass
        assert AuditChain(store.db).head()[0] == store.log.last_seq() and _lease_free(db_file)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        store.close()


def _children(pid: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found[int(entry.name)] = cmdline
    return found




@linux_only
@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_serve_runs_one_follower_process_beside_its_workers(
        stop: str, tmp_path: Path, groups: list[subprocess.Popen[bytes]]) -> None:
    """Stopped by SIGTERM, serve stops its follower; killed by SIGKILL, the follower sees it
    is gone (watch_parent) and stops by itself, after its last pass."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    db_file = tmp_path / "serve.db"
    Store(f"sqlite:///{db_file}").close()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from referee.cli import app; app()", "serve", "--workers", "2",
             "--port", str(port), "--no-access-log"],
            env={**_env(db_file), "REFEREE_FOLLOW_S": "0.2"}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    groups.append(proc)

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(ready, 120, "serve to be ready", log)
    r = httpx.post(f"http://127.0.0.1:{port}/v1/moderate", timeout=10,
                   json={"id": "h1", "surface": "comment", "text": "I want to kill myself"})
    assert r.status_code == 200 and r.json()["action"] == "hold_for_review", r.text
    store = Store(f"sqlite:///{db_file}")
    try:
        policy = Policy.from_file(DEFAULT_POLICY)
        _wait(lambda: [t.decision_id for t in ReviewDesk(store, policy).tasks()] == [r.json()["decision_id"]],
              30, "the held item's review task", log)
    finally:
        store.close()
    children = _children(proc.pid)
    followers = [pid for pid, cmd in children.items() if " follow --interval 0.2" in cmd]
    assert len(followers) == 1, children
    # Only the follower process ever held the lease (the workers do not follow).
    holders = {int(m) for m in re.findall(r"process (\d+) follows the decision log", log.read_text())}
    assert holders == set(followers), log.read_text()[-3000:]
    assert not _lease_free(db_file)

    if stop == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    else:
        proc.kill()  # serve gets no chance to stop anything
        proc.wait(timeout=10)
    _wait(lambda: not _running(followers[0]), 20, "the follower to exit", log)
    assert "a last pass, then exiting" in log.read_text()
    assert _lease_free(db_file)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a PID 1 that never reaps)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
