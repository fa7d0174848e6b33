"""int8 against fp32 on a labelled JSONL (default: the corpus test split): AUPRC per category.

The int8 graph must stay within 0.005 macro AUPRC of fp32 (issue 11); prints both, the gap, and the
worst single category's gap.

    .venv/bin/python scripts/int8_check.py models/default .cache/default_corpus/test.jsonl [--limit 4000]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--limit", type=int, default=0, help="first N rows only (0: all)")
    args = ap.parse_args()

    from referee.classifier.metrics import auprc
    from referee.classifier.runtime import TextClassifier
    from referee.classifier.train import read_dataset

    fp32 = TextClassifier(args.model, variant="fp32", cache_size=0)
    cats = fp32.categories
    ds = read_dataset(args.data, cats)
    texts, labels = ds.texts, ds.labels
    if args.limit:
        texts, labels = texts[: args.limit], labels[: args.limit]
    p32 = fp32.predict(texts)
    p8 = TextClassifier(args.model, variant="int8", cache_size=0).predict(texts)
    out = {}
    for c, cat in enumerate(cats):
        y = labels[:, c]
        known = ~np.isnan(y)
        if 0 < np.nansum(y) < known.sum():
            a32, a8 = float(auprc(p32[known, c], y[known])), float(auprc(p8[known, c], y[known]))
            out[cat] = {"fp32": round(a32, 4), "int8": round(a8, 4), "gap": round(a8 - a32, 4)}
    worst = min((v["gap"] for v in out.values()), default=0.0)
    macro32 = float(np.mean([v["fp32"] for v in out.values()])) if out else 0.0
    macro8 = float(np.mean([v["int8"] for v in out.values()])) if out else 0.0
    print(json.dumps({"rows": len(texts), "per_category": out, "macro_fp32": round(macro32, 4),
                      "macro_int8": round(macro8, 4), "macro_gap": round(macro8 - macro32, 4),
                      "macro_within_0.005": macro8 - macro32 >= -0.005, "worst_category_gap": worst}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
