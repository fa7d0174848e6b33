"""Stream workers end to end: Redis stream → `referee worker` processes → store → output stream.

For each store (SQLite, PostgreSQL) and worker count (1, 2) it starts real
`referee worker` processes, then measures:

  engine_items_per_s
                   the ceiling: the same items through one in-process engine
                   and a SQLite store, no Redis
  items_per_s      a backlog of --items entries drained: items / (last decision
                   published - first item produced), both on Redis's clock
  p50_ms p95_ms p99_ms
                   per-item latency from XADD of the item to XADD of its
                   decision (which follows the store's commit), with items
                   produced at --load (default 0.5) of the measured throughput,
                   so the figure is the pipeline's, not a queue's

Items are a realistic mix: the comments of examples/comments.jsonl and
synthetic music comments (about 5 % with a list term), each with its own id.
Detectors: the lexicon only (`--detectors lexicon`, the default) or the
policy's full set (`--full-policy`; needs the default model built).

Run: .venv/bin/python benchmarks/bench_worker.py [--items 20000] [--workers 1,2] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy

from referee.build import EngineConfig, build_engine
from referee.model import ContentItem
from referee.store import upgrade
from referee.workers import produce

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("REFEREE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
WORDS = ["this", "track", "album", "song", "beat", "drop", "chorus", "verse", "bass", "drums", "vocals", "mix", "live", "show", "tour", "ticket", "love", "great", "awful", "amazing", "boring", "replay", "playlist", "vibe", "summer", "night", "radio", "remix", "singer", "band", "guitar", "podcast", "episode", "host", "guest", "story", "listen", "again", "honestly", "really", "best", "worst", "ever", "friend", "crowd"]
NASTY = ["kill you", "free followers", "k1ll yourself", "buy cocaine", "you worthless idiot"]


def make_items(n: int, seed: int = 7) -> list[ContentItem]:
    rng = random.Random(seed)
    examples = [json.loads(line) for line in (REPO / "examples" / "comments.jsonl").read_text().splitlines()
                if line.strip()]
    items = []
    for i in range(n):
        if i % 4 == 0:
            ex = examples[i // 4 % len(examples)]
            items.append(ContentItem.model_validate({**ex, "id": f"b-{i}"}))
            continue
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 30))]
        if rng.random() < 0.05:
            words.insert(rng.randrange(len(words)), rng.choice(NASTY))
        items.append(ContentItem(id=f"b-{i}", surface="comment", text=" ".join(words),
                                 country=rng.choice(["US", "GB", "DE", "FR", "BR", None])))
    return items


def _ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-")[0])


class Run:
    """One store, one worker count: its streams, database and processes."""

    def __init__(self, args: argparse.Namespace, store: str, workers: int, tmp: Path) -> None:
        self.args = args
        self.prefix = f"bench:{uuid.uuid4().hex[:8]}"
        self.client = redis.Redis.from_url(args.redis_url, socket_timeout=30)
        self.items_key, self.out_key = f"{self.prefix}:items", f"{self.prefix}:decisions"
        self.schema: str | None = None
        if store == "sqlite":
            self.db_url = f"sqlite:///{tmp / f'bench-{self.prefix[6:]}.db'}"
        else:
            self.schema = f"bench_{uuid.uuid4().hex[:8]}"
            with sqlalchemy.create_engine(PG_URL).begin() as conn:
                conn.execute(sqlalchemy.text(f"CREATE SCHEMA {self.schema}"))
            self.db_url = PG_URL + f"?options=-csearch_path%3D{self.schema}"
            upgrade(self.db_url)
        self.log = tmp / f"{self.prefix[6:]}.log"
        env = {**os.environ, "REFEREE_POLICY": str(REPO / "policies" / "default.yaml"), "REFEREE_DB_URL": self.db_url}
        detectors = [] if args.full_policy else ["--detectors", args.detectors]
        self.procs = [subprocess.Popen(
            [sys.executable, "-c", "from referee.cli import app; app()", "worker", "--stream", self.items_key,
             "--group", "g", "--consumer", f"w{k}", "--out-stream", self.out_key, "--dead-stream",
             f"{self.prefix}:dead", "--redis-url", args.redis_url, "--batch", str(args.batch), "--out-maxlen", "0",
             "--block-ms", "200", *detectors],
            env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
            for k in range(workers)]
        self._wait(lambda: self._consumers() == workers, 300, "the workers to start")

    def _consumers(self) -> int:
        try:
            return len(self.client.xinfo_consumers(self.items_key, "g"))
        except redis.ResponseError:
            return 0

    def _wait(self, cond, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while not cond():
            if any(p.poll() is not None for p in self.procs) or time.monotonic() > deadline:
                raise SystemExit(f"gave up waiting for {what}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.02)

    def throughput(self, items: list[ContentItem]) -> float:
        first_id = None
        start = self.client.xlen(self.out_key)
        produce(self.client, self.items_key, items, chunk=1000)
        first_id = self.client.xrange(self.items_key, count=1)[0][0]
        self._wait(lambda: self.client.xlen(self.out_key) >= start + len(items), 1800, "the backlog to drain")
        last_id = self.client.xrevrange(self.out_key, count=1)[0][0]
        return len(items) / max((_ms(last_id) - _ms(first_id)) / 1000, 1e-3)

    def latency(self, items: list[ContentItem], rate: float) -> list[float]:
        start_len = self.client.xlen(self.out_key)
        last_out = self.client.xrevrange(self.out_key, count=1)
        after = last_out[0][0] if last_out else b"0-0"
        began = time.monotonic()
        tick = 10
        for k in range(0, len(items), tick):
            due = began + k / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            produce(self.client, self.items_key, items[k:k + tick], chunk=tick)
        self._wait(lambda: self.client.xlen(self.out_key) >= start_len + len(items), 600, "the paced items")
        rows = self.client.xrange(self.out_key, min=b"(" + after)
        return [float(_ms(out_id) - _ms(f[b"source_id"])) for out_id, f in rows]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            p.wait(60)
        for key in self.client.scan_iter(match=f"{self.prefix}:*"):
            self.client.delete(key)
        if self.schema is not None:
            with sqlalchemy.create_engine(PG_URL).begin() as conn:
                conn.execute(sqlalchemy.text(f"DROP SCHEMA {self.schema} CASCADE"))


def engine_baseline(args: argparse.Namespace, items: list[ContentItem], tmp: Path) -> float:
    """The same items through one in-process engine and a SQLite store, in worker-sized batches."""
    config = EngineConfig(policy=REPO / "policies" / "default.yaml", store_url=f"sqlite:///{tmp / 'baseline.db'}",
                          detectors=None if args.full_policy else args.detectors, batch_size=args.batch)
    with build_engine(config) as engine:
        engine.moderate_many(items[: args.batch])  # warm
        began = time.perf_counter()
        for k in range(args.batch, len(items), args.batch):
            engine.moderate_many(items[k : k + args.batch])
        return (len(items) - args.batch) / (time.perf_counter() - began)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--latency-items", type=int, default=None, help="Paced items (default: items / 4).")
    parser.add_argument("--load", type=float, default=0.5, help="Paced rate as a share of the throughput.")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--detectors", default="lexicon")
    parser.add_argument("--full-policy", action="store_true", help="Every detector the policy configures.")
    parser.add_argument("--redis-url", default=os.environ.get("REFEREE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    items = make_items(args.items)
    paced = make_items(args.latency_items or max(args.items // 4, 100), seed=11)
    paced = [i.model_copy(update={"id": "p" + i.id}) for i in paced]
    print(f"cores={os.cpu_count()} items={args.items} batch={args.batch} "
          f"detectors={'policy' if args.full_policy else args.detectors}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"engine_items_per_s={engine_baseline(args, items[:5000], Path(tmp)):.0f} "
              "(in-process Engine.moderate_many + SQLite store, no Redis: the ceiling of one worker)", flush=True)
        for store in args.stores.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                run = Run(args, store, workers, Path(tmp))
                try:
                    rate = run.throughput(items)
                    lat = run.latency(paced, rate * args.load)
                finally:
                    run.close()
                print(f"store={store} workers={workers} items_per_s={rate:.0f} paced_per_s={rate * args.load:.0f} "
                      f"p50_ms={pct(lat, 0.5):.0f} p95_ms={pct(lat, 0.95):.0f} p99_ms={pct(lat, 0.99):.0f} "
                      f"mean_ms={statistics.fmean(lat):.1f}", flush=True)


if __name__ == "__main__":
    main()
