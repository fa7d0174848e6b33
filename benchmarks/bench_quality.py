"""Quality of the text classifier per category, against two baselines, in one run.

Sets (none of them trained on):
* the held-out test split of the default model's corpus, reported per source
  group (tweets, spam, reddit posts, prompts incl. the CoCoNot benign contrast
  set) and the Reddit test users as whole long documents (windowing);
* evaluation-only public sets: HateCheck, ToxiGen seeds, ETHOS (GPL: used to
  evaluate only), TweetEval hate (official test split).

Systems: referee's classifier (ONNX int8), ``alt-profanity-check`` (one
profanity score used for every category; ``pip install -e '.[baselines]'``)
and referee's lexicon detector built from the default policy.

Prints ``name=value`` lines (``quality_<set>_<category>_<system>_auprc=``) and a
table. Skips with a message when ../shared is absent.

    .venv/bin/python benchmarks/bench_quality.py [--model models/default]

``--loso`` runs the leave-one-source-out table and the benign look-alike
false-positive tests instead (``referee.eval.loso``; same as ``referee eval loso``):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_quality.py --loso [--mix v1] [--universe v2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REFEREE_SHARED", REPO.parent / "shared")) / "datasets"

GROUPS = {
    "tweets": ("davidson",),
    "spam": ("youtube", "sms"),
    "reddit_posts": ("cssrs",),
    "prompts": ("ailuminate", "dna", "strongreject", "advbench", "coconot"),
}


def _group(row_id: str) -> str:
    for name, prefixes in GROUPS.items():
        if row_id.startswith(prefixes):
            return name
    return "other"


def load_sets(corpus: Path, cats: list[str]) -> dict[str, tuple[list[str], np.ndarray]]:
    from referee.eval.datasets import import_dataset

    sets: dict[str, tuple[list[str], np.ndarray]] = {}
    test = corpus / "test.jsonl"
    if test.exists():
        from referee.classifier.train import read_dataset

        ds = read_dataset(test, cats)
        groups = np.array([_group(i) for i in ds.ids])
        for g in GROUPS:
            sel = groups == g
            sets[f"test_{g}"] = ([t for t, s in zip(ds.texts, sel) if s], ds.labels[sel])
        sets["test_all"] = (ds.texts, ds.labels)
        long = corpus / "test_long.jsonl"
        if long.exists():
            lds = read_dataset(long, cats)
            sets["test_reddit_users_long"] = (lds.texts, lds.labels)
    else:
        print(f"note: no corpus test split at {test}; run scripts/train_default_model.sh", file=sys.stderr)

    def rows_to(rows, split=None):  # type: ignore[no-untyped-def]
        rows = [r for r in rows if split is None or r.split == split]
        labels = np.array([[np.nan if r.label(c) is None else r.label(c) for c in cats] for r in rows], dtype=np.float32)
        return [r.text for r in rows], labels

    for name, fmt, folder, split in (("hatecheck", "hatecheck", "hatecheck", None),
                                     ("toxigen", "toxigen", "toxigen", None),
                                     ("ethos", "ethos", "ethos", None),
                                     ("tweeteval_hate_test", "tweeteval_hate", "tweeteval", "test")):
        if (SHARED / folder).exists():
            try:
                sets[name] = rows_to(import_dataset(fmt, SHARED / folder), split)
            except Exception as exc:  # a converter problem must not hide the other numbers
                print(f"note: cannot load {name}: {exc}", file=sys.stderr)
    return sets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "default"))
    ap.add_argument("--corpus", default=str(REPO / ".cache" / "default_corpus"))
    ap.add_argument("--policy", default=str(REPO / "policies" / "default.yaml"))
    ap.add_argument("--json", help="also write the numbers to this file")
    ap.add_argument("--loso", action="store_true", help="leave-one-source-out table + false-positive tests")
    ap.add_argument("--mix", default="v1", help="--loso: training mix (v1, v2, v2-no-spans)")
    ap.add_argument("--universe", default="v2", help="--loso: also hold out this mix's sources (default v2: all)")
    ap.add_argument("--held-out", action="append", default=None, help="--loso: only this source (repeatable)")
    args = ap.parse_args()
    if not SHARED.exists():
        print(f"skip: {SHARED} not found (set REFEREE_SHARED to the folder holding datasets/)", file=sys.stderr)
        return 0
    if args.loso:
        from referee.eval.corpus import MIXES
        from referee.eval import loso

        model_dir = Path(args.model) if (Path(args.model) / "model.int8.onnx").exists() else None
        result = loso.run(SHARED, args.policy, model_dir, MIXES[args.mix],
                          MIXES[args.universe] if args.universe else None, args.held_out,
                          cache_dir=REPO / ".cache" / "embeddings", progress=lambda m: print(m, file=sys.stderr))
        print(loso.markdown(result))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return 0

    from referee.classifier import TextClassifier
    from referee.classifier.artifact import ONNX_INT8
    from referee.classifier.metrics import auprc, roc_auc
    from referee.model import ContentItem
    from referee.policy import load_policy

    model = Path(args.model)
    if not (model / ONNX_INT8).exists():
        print(f"skip: {model} is not built; run `referee model build` (or `make model`) first", file=sys.stderr)
        return 0
    clf = TextClassifier(model, variant="int8", cache_size=0)
    cats = clf.categories
    policy = load_policy(args.policy)

    systems = {"referee": clf.predict}
    try:
        from profanity_check import predict_prob

        systems["profanity_check"] = lambda texts: np.repeat(predict_prob(texts)[:, None], len(cats), axis=1)
    except ImportError:
        print("note: alt-profanity-check not installed (pip install -e '.[baselines]'): baseline skipped",
              file=sys.stderr)
    try:
        from referee.plugins.lexicon.detector import LexiconDetector

        lex = LexiconDetector.from_policy(policy, policy.detector_config("lexicon"))

        def lexicon(texts: list[str]) -> np.ndarray:
            out = np.zeros((len(texts), len(cats)), dtype=np.float32)
            items = [ContentItem(id=str(i), text=t[:200_000]) for i, t in enumerate(texts)]
            for i, signals in enumerate(lex.detect_many(items)):
                for s in signals:
                    if s.category in cats:
                        out[i, cats.index(s.category)] = max(out[i, cats.index(s.category)], s.score)
            return out

        systems["lexicon"] = lexicon
    except Exception as exc:  # the lexicon detector is optional here
        print(f"note: lexicon detector unavailable ({exc}): baseline skipped", file=sys.stderr)

    results: dict[str, float] = {}
    table = []
    for set_name, (texts, labels) in load_sets(Path(args.corpus), cats).items():
        if not texts:
            continue
        scores = {name: fn(texts) for name, fn in systems.items()}
        for c, cat in enumerate(cats):
            y = labels[:, c]
            known = ~np.isnan(y)
            pos = int(np.nansum(y))
            if pos == 0 or pos == known.sum():
                continue
            row = {"set": set_name, "category": cat, "n": int(known.sum()), "pos": pos}
            results[f"quality_{set_name}_{cat}_n"] = int(known.sum())
            results[f"quality_{set_name}_{cat}_pos"] = pos
            for name, s in scores.items():
                a, r = auprc(s[:, c], y), roc_auc(s[:, c], y)
                results[f"quality_{set_name}_{cat}_{name}_auprc"] = a
                results[f"quality_{set_name}_{cat}_{name}_roc_auc"] = r
                row[name] = (a, r)
            table.append(row)
    # All-benign look-alikes (CoCoNot contrast, forced into the test split): share flagged at
    # the model's own operating thresholds. AUPRC is undefined on a one-class set.
    test = Path(args.corpus) / "test.jsonl"
    if test.exists():
        rows = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines()]
        benign = [r["text"] for r in rows if r["id"].startswith("coconot-contrast")]
        if benign:
            probs = clf.predict(benign)
            thr = np.array([clf.thresholds[c] for c in cats])
            flagged = probs >= thr
            results["quality_coconot_contrast_n"] = len(benign)
            results["quality_coconot_contrast_referee_flag_rate"] = float(flagged.any(axis=1).mean())
            for c, cat in enumerate(cats):
                results[f"quality_coconot_contrast_referee_flag_rate_{cat}"] = float(flagged[:, c].mean())
    for k, v in results.items():
        print(f"{k}={v:.4f}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}")
    names = list(systems)
    print("\n| set | category | n | pos | " + " | ".join(f"{n} AUPRC / ROC-AUC" for n in names) + " |")
    print("|---|---|---|---|" + "---|" * len(names))
    for row in table:
        cells = " | ".join(f"{row[n][0]:.3f} / {row[n][1]:.3f}" for n in names)
        print(f"| {row['set']} | {row['category']} | {row['n']} | {row['pos']} | {cells} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
