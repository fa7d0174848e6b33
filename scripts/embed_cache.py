"""Fill the frozen-encoder embedding cache for JSONL files (``text`` field), in chunks.

Chunks are written as they finish, so an interrupted run keeps what it embedded.
The cache is the one head training and the leave-one-source-out evaluation read
(``.cache/embeddings``, keyed by text sha256 + encoder id + window + recipe).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/embed_cache.py FILE.jsonl [...] [--chunk 4000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--cache", default=".cache/embeddings")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--recipe", default="placeholders-v1")
    ap.add_argument("--chunk", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from referee.classifier import encoder as enc

    torch.set_num_threads(args.threads)
    texts: list[str] = []
    for path in args.files:
        with open(path, encoding="utf-8") as fh:
            texts.extend(json.loads(line)["text"] for line in fh if line.strip())
    factory = enc.default_encoder_factory()
    loaded: list[tuple[object, object]] = []

    def cached_factory() -> tuple[object, object]:
        if not loaded:
            loaded.append(factory())
        return loaded[0]

    cache = enc.EmbeddingCache(args.cache, enc.encoder_id(), args.max_tokens, args.recipe)
    stored = cache._load()
    todo = list(dict.fromkeys(t for t in texts if cache.key(t) not in stored))
    print(f"{len(texts)} texts, {len(todo)} not cached", flush=True)
    t0 = time.perf_counter()
    for i in range(0, len(todo), args.chunk):
        cache.embed(todo[i : i + args.chunk], cached_factory, progress=False)
        done = min(i + args.chunk, len(todo))
        print(f"{done}/{len(todo)} in {time.perf_counter() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
