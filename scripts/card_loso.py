"""Write a leave-one-source-out run (``referee eval loso --out DIR``) onto a model card.

Adds ``metrics.leave_one_source_out`` (per held-out source: the model's and the baselines'
figures, as in loso.md), ``metrics.false_positives`` (benign look-alike flag rates per
system), ``metrics.loso_examples`` (the most confident misses / false flags per held-out
source) and replaces the card's ``notes`` with the given lines. The head and its sha256 are
untouched, so the model version does not change.

    .venv/bin/python scripts/card_loso.py models/default reports/loso/loso.json [--note "..."]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("loso_json")
    ap.add_argument("--note", action="append", default=[])
    ap.add_argument("--examples", type=int, default=2)
    args = ap.parse_args()

    from referee.classifier import artifact

    card = artifact.read_card(args.model)
    res = json.loads(Path(args.loso_json).read_text(encoding="utf-8"))
    card.metrics["leave_one_source_out"] = {
        "split": res["split"], "mix": res["mix"], "summary": res["summary"],
        "summary_baselines": res["summary_baselines"],
        "sources": {name: {"rows": r["n"], "train_rows": r["train_rows"], "metrics": r["metrics"]}
                    for name, r in res["loso"].items()},
    }
    card.metrics["false_positives"] = {
        "model": res.get("model"), "surface": "comment", "flagged": "decision action != allow",
        "sets": {name: {"n": fp["n"], **{s: fp[s]["flag_rate"] for s in fp if isinstance(fp[s], dict)}}
                 for name, fp in res.get("false_positives", {}).items()},
    }
    card.metrics["loso_examples"] = {
        name: [m for m in r["mistakes"] if sum(1 for x in r["mistakes"][: r["mistakes"].index(m) + 1]
                                               if x["kind"] == m["kind"] and x["category"] == m["category"])
               <= args.examples]
        for name, r in res["loso"].items()}
    if args.note:
        card.notes = list(args.note)
    path = Path(args.model) / "card.json"
    path.write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
