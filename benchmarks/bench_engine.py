"""Engine throughput with the lexicon detector and the default policy.

Prints name=value lines:
  policy_us_per_item   the policy step alone (decide), per item       goal < 50
  lexicon_us_per_item  the lexicon detector per ~200-character comment goal < 100
  engine_items_per_s   Engine.moderate_many end to end (no store)
  store_items_per_s    the same with the SQLite decision store

Comments are synthetic (no data needed): 200-character texts from a music
comment vocabulary with about 5% carrying a list term, some obfuscated.
Run: .venv/bin/python benchmarks/bench_engine.py [--items 100000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from referee.plugins.lexicon.detector import LexiconDetector
from referee.engine import Engine, decide
from referee.model import ContentItem
from referee.policy import Policy
from referee.store import DecisionStore

REPO = Path(__file__).resolve().parents[1]
WORDS = (
    "this track album song beat drop chorus verse bass drums vocals mix master live show tour ticket "
    "love hate great awful amazing boring replay playlist vibe summer night radio remix producer "
    "singer band guitar piano podcast episode host guest story talk listen again honestly really "
    "best worst ever never always maybe today tomorrow yesterday friend family city crowd"
).split()
NASTY = ["kill you", "free followers", "k1ll yourself", "buy cocaine", "sh00t up the place", "you idiot"]
SURFACES = ["comment"] * 6 + ["message", "playlist_title", "profile_bio", "podcast_episode"]
COUNTRIES = ["US", "GB", "DE", "FR", "BR", "IN", None]


def comments(n: int, seed: int = 7) -> list[ContentItem]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 200:
            words.append(rng.choice(WORDS))
        if rng.random() < 0.05:
            words.insert(rng.randrange(len(words)), rng.choice(NASTY))
        text = " ".join(words)[:200]
        out.append(ContentItem(id=f"b{i}", text=text, surface=rng.choice(SURFACES), country=rng.choice(COUNTRIES)))
    return out


def best_of(repeats: int, fn) -> float:
    return min(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()

    policy = Policy.from_file(REPO / "policies" / "default.yaml")
    lexicon = LexiconDetector.from_policy(policy, policy.detector_config("lexicon"))
    items = comments(args.items)
    print(f"items={len(items)}")
    print(f"mean_chars={statistics.mean(len(i.text) for i in items):.0f}")

    def time_lexicon() -> float:
        start = time.perf_counter()
        for s in range(0, len(items), 256):
            lexicon.detect_many(items[s : s + 256])
        return time.perf_counter() - start

    lex_s = best_of(2, time_lexicon)
    print(f"lexicon_us_per_item={lex_s / len(items) * 1e6:.1f}")

    signals = [lexicon.detect(i) for i in items]
    flagged = sum(1 for s in signals if s)
    versions = {lexicon.name: lexicon.version}

    def time_policy() -> float:
        start = time.perf_counter()
        for item, sigs in zip(items, signals):
            decide(policy, item, sigs, (), versions)
        return time.perf_counter() - start

    pol_s = best_of(2, time_policy)
    print(f"policy_us_per_item={pol_s / len(items) * 1e6:.1f}")
    print(f"items_with_signals={flagged}")

    with Engine(policy, [lexicon], batch_size=256) as engine:
        start = time.perf_counter()
        decisions = engine.moderate_many(items)
        eng_s = time.perf_counter() - start
    print(f"engine_items_per_s={len(items) / eng_s:.0f}")
    print(f"engine_us_per_item={eng_s / len(items) * 1e6:.1f}")
    print(f"flagged_share={sum(d.flagged for d in decisions) / len(decisions):.3f}")

    sample = items[: min(len(items), 10_000)]
    with tempfile.TemporaryDirectory() as tmp:
        store = DecisionStore(f"sqlite:///{tmp}/bench.db")
        with Engine(policy, [lexicon], sink=store, batch_size=256) as engine:
            start = time.perf_counter()
            engine.moderate_many(sample)
            st_s = time.perf_counter() - start
        store.close()
    print(f"store_items_per_s={len(sample) / st_s:.0f}")


if __name__ == "__main__":
    main()
