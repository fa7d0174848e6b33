"""A small-budget comparison of ``finetune`` (all encoder layers) against the frozen-encoder head.

Both learn from the same random subset of the v2 mix without one held-out source, pick their
epoch on the same dev subset, and are scored on every row of the held-out source (a
leave-one-source-out check at a budget one CPU core can afford). Prints one JSON line per mode.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/finetune_vs_head.py --held-out convabuse --train-rows 3000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default="../shared/datasets")
    ap.add_argument("--policy", default="policies/default.yaml")
    ap.add_argument("--held-out", default="convabuse")
    ap.add_argument("--train-rows", type=int, default=3000)
    ap.add_argument("--dev-rows", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=1, help="finetune epochs (the head runs to early stopping)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from referee.eval.corpus import MIX_V2, collect
    from referee.classifier.train import TrainConfig, train
    from referee.eval.datasets import CATEGORIES, decontaminate, split_rows

    torch.set_num_threads(args.threads)
    rows, _, _ = collect(args.shared, args.policy, MIX_V2)
    rows = split_rows([r for r in rows if any(k in CATEGORIES for k in r.labels)], seed=args.seed,
                      ratios=(0.7, 0.15, 0.15))
    rng = random.Random(args.seed)
    others = [r for r in rows if r.meta.get("source") != args.held_out]
    train_rows = rng.sample([r for r in others if r.split == "train"], args.train_rows)
    dev_rows = rng.sample([r for r in others if r.split == "dev"], args.dev_rows)
    test_rows = decontaminate([r for r in rows if r.meta.get("source") == args.held_out], train_rows + dev_rows)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, part in (("train", train_rows), ("dev", dev_rows), ("test", test_rows)):
            path = Path(tmp) / f"{name}.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                for r in part:
                    fh.write(json.dumps({"id": r.id, "text": r.text, **{c: r.labels.get(c) for c in CATEGORIES}})
                             + "\n")
            files[name] = path
        for mode in ("head", "finetune"):
            cfg = TrainConfig(categories=list(CATEGORIES), mode=mode, hidden=256, lr=2e-3, seed=args.seed,
                              epochs=150 if mode == "head" else args.epochs, batch_size=128 if mode == "head" else 32,
                              progress=False)
            t0 = time.perf_counter()
            res = train(files["train"], files["dev"], Path(tmp) / mode, cfg, test_path=files["test"])
            test = res.card.metrics["test"]
            print(json.dumps({"mode": mode, "held_out": args.held_out, "train_rows": len(train_rows),
                              "test_rows": len(test_rows), "seconds": round(time.perf_counter() - t0, 1),
                              "test_macro_auprc": test["macro_auprc"],
                              "test_auprc": {c: v.get("auprc") for c, v in test["per_category"].items()
                                             if v.get("n") and v.get("auprc") is not None}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
