"""A decision's JSON does not depend on the process's hash seed.

Rules list their categories; the reason's signals, and on a tie in score its
category, follow that order. Compiled as a set, the order changed from one process
to the next (PYTHONHASHSEED), so two executors of one re-scan could write different
bytes, and a different category, for the same input."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
from referee.engine.decide import decide
from referee.model import ContentItem, Signal
from referee.policy import Policy

policy = Policy.from_yaml('''
id: order
version: "1"
categories:
  hate: {description: hate}
  violence: {description: violence}
  harassment: {description: harassment}
  spam: {description: spam}
detectors: {keyword: {}}
surfaces:
  default:
    rules:
      - {id: harm, categories: [violence, hate, harassment, spam], threshold: 0.5, action: remove}
''')
item = ContentItem(id="i1", text="some text")
signals = [Signal(detector="keyword", detector_version="1", category=c, score=0.9)
           for c in ("spam", "harassment", "hate", "violence")]
d = decide(policy, item, signals)
r = d.reasons[0]
print(r.category, [s.category for s in r.signals])
"""


def _run(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


def test_reason_follows_the_rule_order_in_every_process() -> None:
    outs = {_run(seed) for seed in ("0", "1", "2", "3", "4", "5")}
    assert outs == {"violence ['violence', 'hate', 'harassment', 'spam']"}
