"""``referee serve --workers 2`` as a real process tree: workers do not outlive their parent.

Measured before the fix: after ``kill -9`` of the parent both workers kept
serving on the inherited socket and a second ``referee serve`` on the port
failed with "address already in use".
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import DEFAULT_POLICY

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc"),
]

START_TIMEOUT_S = 120.0  # two worker processes import the app on a busy two-core machine
EXIT_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a PID 1 that never reaps)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _serve(port: int, tmp_path: Path, log_name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REFEREE_POLICY": str(DEFAULT_POLICY), "REFEREE_DETECTORS": '["lexicon"]',
           "REFEREE_DB_URL": f"sqlite:///{tmp_path / 'serve.db'}", "REFEREE_AUTH": "false"}
    log = (tmp_path / log_name).open("wb")
    return subprocess.Popen(
        [sys.executable, "-c", "from referee.cli import app; app()", "serve", "--workers", "2",
         "--port", str(port), "--no-access-log"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _wait_ready(proc: subprocess.Popen[bytes], port: int, tmp_path: Path, log_name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}:\n{(tmp_path / log_name).read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"serve did not become ready:\n{(tmp_path / log_name).read_text()[-3000:]}")


def _refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0




def test_workers_exit_after_kill_9_of_the_parent_and_the_port_is_free_again(
    tmp_path: Path, groups: list[subprocess.Popen[bytes]]
) -> None:
    port = _free_port()
    first = _serve(port, tmp_path, "first.log")
    groups.append(first)
    _wait_ready(first, port, tmp_path, "first.log")
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(workers := {p for p in _children(first.pid) if _running(p)}) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(workers) >= 2, workers

    first.kill()  # SIGKILL: the parent gets no chance to stop its workers
    first.wait(timeout=10)
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while any(_running(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _running(p)], "workers outlived their parent"
    assert _refused(port), "something still accepts connections on the port"

    second = _serve(port, tmp_path, "second.log")
    groups.append(second)
    _wait_ready(second, port, tmp_path, "second.log")
    assert "address already in use" not in (tmp_path / "second.log").read_text().lower()
    second.send_signal(signal.SIGTERM)  # a normal stop still stops everything
    assert second.wait(timeout=30) == 0
