"""The HTML report as a person sees it: rendered by a real headless Chromium.

Skipped where Debian's chromium is not installed (`.ci/run` installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from referee.eval.datasets import Row
from referee.eval.report import build_result, write_html
from referee.eval.runner import score_detector
from referee.policy import Policy

from .conftest import POLICY, WordDetector

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_in_a_real_browser(rows: list[Row], tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in rows), encoding="utf-8")
    result = build_result(rows, score_detector(WordDetector(), rows, ["hate", "spam"]), data,
                          Policy.from_yaml(POLICY), n_boot=20)
    page = tmp_path / "report.html"
    write_html(result, page)
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The browser parsed the page into the sections a reviewer reads, with the plots inline.
    for heading in ("Metrics", "Curves", "Fairness per identity group", "Functional tests"):
        assert f">{heading}<" in dom.stdout, heading
    assert dom.stdout.count("<img") >= 3
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=60)
    assert shot.is_file() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
