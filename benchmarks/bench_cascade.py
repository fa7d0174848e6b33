"""What an LLM stage adds to synchronous decisions: async vs inline, with a 300 ms model.

A cheap first stage (the tests' keyword triage detector) scores every item; a
gated ``llm`` stage judges only the items whose score falls in [0.2, 0.8). The
model is the tests' scripted chat-completions server on 127.0.0.1 answering
after ``--model-ms`` (default 300). Each item is moderated alone (one call of
``Engine.moderate``, a MemoryStore as the log), so the latency is what a caller
of the HTTP service would wait for.

Prints name=value lines:
  items, escalated                 items moderated, items in the band
  base_p50_ms, base_p99_ms         the first stage alone (no llm stage)
  async_p50_ms, async_p99_ms       sync decision with the llm stage async
  async_added_p99_ms               async_p99 - base_p99 (medians of rounds)  goal < 1
  async_added_p95_ms, async_added_p50_ms   the same at p95 and p50
  async_llm_calls, async_superseded  server calls, decisions the async stage wrote
  inline_clean_p99_ms              inline llm stage, items not escalated    goal ~ base
  inline_clean_added_p99_ms        inline_clean_p99 - base_p99
  inline_escalated_p50_ms, inline_escalated_p99_ms   escalated items      ~ model latency
  inline_llm_calls                 server calls (= escalated)

Run: .venv/bin/python benchmarks/bench_cascade.py [--items 400] [--model-ms 300]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from referee.detectors.base import build_detector  # noqa: E402
from referee.engine import Engine  # noqa: E402
from referee.model import ContentItem, Decision  # noqa: E402
from referee.store.memory import MemoryStore  # noqa: E402
from tests.plugins import chat_server as cs  # noqa: E402
from tests.plugins.llm_fixtures import TriageDetector, cascade_plan, make_policy  # noqa: E402

CLEAN = ["loved the chorus", "great show last night", "this track is a banger", "see you at the gig",
         "the bassline is unreal", "playlist for the road trip"]
AMBIGUOUS = ["I will shoot you", "let's fight about it", "gain followers now", "such a loser move"]
CLEAR = ["I will stab you", "you idiot"]


def make_items(n: int, escalate: float, seed: int = 7) -> list[ContentItem]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        words = rng.choice(AMBIGUOUS if r < escalate else CLEAR if r < escalate + 0.05 else CLEAN)
        out.append(ContentItem(id=f"b{i}", text=f"{words} #{i}"))
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] * 1000


def timed(engine: Engine, items: list[ContentItem]) -> list[tuple[float, Decision]]:
    out = []
    for item in items:
        begun = time.perf_counter()
        d = engine.moderate(item)
        out.append((time.perf_counter() - begun, d))
    return out


def escalated(d: Decision) -> bool:
    return any(s.stage == "second_look" and s.status in ("ran", "failed") for s in d.stages)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--escalate", type=float, default=0.1, help="Fraction of items in the band.")
    ap.add_argument("--model-ms", type=float, default=300.0)
    ap.add_argument("--switch-interval-ms", type=float, default=None,
                    help="sys.setswitchinterval for the run (Python's default is 5 ms).")
    args = ap.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    items = make_items(args.items, args.escalate)
    warm = make_items(50, args.escalate, seed=99)
    delay = args.model_ms / 1000
    base_p50: list[float] = []
    base_p99: list[float] = []
    async_p50: list[float] = []
    async_p99: list[float] = []
    base_p95: list[float] = []
    async_p95: list[float] = []
    superseded: list[Decision] = []
    lock = threading.Lock()

    def record(d: Decision) -> None:
        with lock:
            superseded.append(d)

    with cs.ChatServer(lambda body: cs.judge(body, delay_s=delay)) as server:
        settings = {"endpoint": server.url, "model": "scripted", "max_concurrency": 8, "call_timeout_s": 5.0}
        base_policy = make_policy(None, [{"id": "fast", "detectors": ["triage"]}])
        async_policy = make_policy(settings, cascade_plan(run_async=True))
        async_calls = 0
        # Rounds alternate the two set-ups so that load from other processes hits both alike;
        # each round gets fresh item ids (a stored head would stand without running anything).
        for r in range(args.rounds):
            batch = [i.model_copy(update={"id": f"{i.id}-{r}"}) for i in items]
            warm_r = [i.model_copy(update={"id": f"w{i.id}-{r}"}) for i in warm if "shoot" not in i.text][:10]
            with Engine(base_policy, [TriageDetector()], sink=MemoryStore()) as engine:
                timed(engine, warm_r)
                base_t = [t for t, _ in timed(engine, batch)]
            engine = Engine(async_policy, [TriageDetector(), build_detector("llm", async_policy)], sink=MemoryStore())
            timed(engine, warm_r)
            engine.wait_async()
            engine.on_decision.append(record)
            calls_before = server.calls
            async_t = [t for t, _ in timed(engine, batch)]
            engine.wait_async()
            engine.close()
            async_calls += server.calls - calls_before
            base_p50.append(pct(base_t, 0.5))
            base_p99.append(pct(base_t, 0.99))
            async_p50.append(pct(async_t, 0.5))
            async_p99.append(pct(async_t, 0.99))
            base_p95.append(pct(base_t, 0.95))
            async_p95.append(pct(async_t, 0.95))
        n_escalated = sum(1 for d in superseded if escalated(d))

        inline_policy = make_policy(settings, cascade_plan(run_async=False))
        with Engine(inline_policy, [TriageDetector(), build_detector("llm", inline_policy)],
                    sink=MemoryStore()) as engine:
            timed(engine, [i.model_copy(update={"id": "w" + i.id}) for i in warm if "shoot" not in i.text][:10])
            calls_before = server.calls
            inline = timed(engine, items)
        inline_calls = server.calls - calls_before
        clean = [t for t, d in inline if not escalated(d)]
        esc = [t for t, d in inline if escalated(d)]

    med = statistics.median
    print(f"items={len(items)}")
    print(f"rounds={args.rounds}")
    print(f"escalated={len(esc)}")
    print(f"model_ms={args.model_ms:g}")
    print(f"switch_interval_ms={sys.getswitchinterval() * 1000:g}")
    print(f"base_p50_ms={med(base_p50):.3f}")
    print(f"base_p99_ms={med(base_p99):.3f}")
    print(f"async_p50_ms={med(async_p50):.3f}")
    print(f"async_p99_ms={med(async_p99):.3f}")
    print(f"async_added_p99_ms={med(async_p99) - med(base_p99):.3f}")
    print(f"base_p95_ms={med(base_p95):.3f}")
    print(f"async_p95_ms={med(async_p95):.3f}")
    print(f"async_added_p95_ms={med(async_p95) - med(base_p95):.3f}")
    print(f"async_added_p50_ms={med(async_p50) - med(base_p50):.3f}")
    print(f"base_p99_per_round_ms={','.join(f'{x:.2f}' for x in base_p99)}")
    print(f"async_p99_per_round_ms={','.join(f'{x:.2f}' for x in async_p99)}")
    print(f"async_llm_calls={async_calls}")
    print(f"async_superseded={len(superseded)}")
    print(f"async_superseded_escalated={n_escalated}")
    print(f"inline_clean_p99_ms={pct(clean, 0.99):.3f}")
    print(f"inline_clean_added_p99_ms={pct(clean, 0.99) - med(base_p99):.3f}")
    print(f"inline_escalated_p50_ms={pct(esc, 0.5):.3f}" if esc else "inline_escalated_p50_ms=nan")
    print(f"inline_escalated_p99_ms={pct(esc, 0.99):.3f}" if esc else "inline_escalated_p99_ms=nan")
    print(f"inline_llm_calls={inline_calls}")


if __name__ == "__main__":
    main()
