"""Compare training mixes for the default classifier head, out of domain, in one run.

For each mix: the leave-one-source-out table (``referee.eval.loso``; every held-out
source scored by a head trained without it), plus a head trained on the whole mix
scored on real-comment sets no mix may train on (share-alike Wikipedia Talk comments,
ToxiGen, ETHOS) and on the benign look-alike sets. HateCheck and the Jigsaw templates
are *reported*, never used to choose: they publish guard-model scores.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/quality_experiments.py --mix v1 --mix v3 [--embed-only]

Needs the ``train`` extra (torch) and ``../shared/datasets`` (or --shared). Writes
``reports/quality/<mix>.json`` and prints one summary line per mix.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import typer

app = typer.Typer(add_completion=False)

#: Real text no shipped model may learn from (share-alike, GPL) or that is reserved for
#: evaluation: (format, shared folder, view to score).
EXTERNAL = (("wiki_identity", "wiki_toxicity_identity_testset", "any"),
            ("wiki_context", "wiki_context_toxicity", "any"),
            ("toxigen", "toxigen", "hate"),
            ("ethos", "ethos", "hate"),
            ("hatecheck", "hatecheck", "hate"))
#: Benign Wikipedia Talk comments sampled beside all 210 toxic ones.
WIKI_BENIGN = 4000
#: Only reported (published guard-model scores exist): never used to pick a mix.
REPORT_ONLY = ("hatecheck",)


def _auprc(scores: np.ndarray, y: np.ndarray) -> float:
    from referee.classifier.metrics import auprc

    keep = ~np.isnan(y)
    if keep.sum() == 0 or y[keep].min() == y[keep].max():
        return math.nan
    return float(auprc(scores[keep], y[keep]))


@app.command()
def main(mix: list[str] = typer.Option(["v1"], help="Mixes to compare (referee.eval.corpus.MIXES)."),
         shared: Path = typer.Option(Path("../shared/datasets")),
         policy: Path = typer.Option(Path("policies/default.yaml")),
         held_out: list[str] = typer.Option([], help="LOSO sources (default: every real-text and prompt source)."),
         out: Path = typer.Option(Path("reports/quality")),
         embed_only: bool = typer.Option(False, help="Only fill the embedding cache.")) -> None:
    from referee.classifier import encoder as enc
    from referee.eval import corpus as corpus_mod
    from referee.eval import loso
    from referee.eval.datasets import import_dataset
    from referee.policy import load_policy

    t0 = time.perf_counter()
    pol = load_policy(policy)
    corpus = loso.load_corpus(shared, policy, corpus_mod.ALL_SOURCES)
    cache = enc.EmbeddingCache(".cache/embeddings", enc.encoder_id(), 128, "placeholders-v1")
    ext_rows = {fmt: import_dataset(fmt, shared / folder) for fmt, folder, _ in EXTERNAL}
    # 20k Wikipedia comments cost as much to embed as half the corpus: every toxic one and a
    # seeded sample of the rest (prevalence ~5 % instead of ~1 %; AUPRC is read at that rate).
    rng = np.random.default_rng(13)
    wiki = ext_rows["wiki_context"]
    benign = [r for r in wiki if r.any_unsafe() == 0]
    keep = {benign[i].id for i in rng.choice(len(benign), size=min(WIKI_BENIGN, len(benign)), replace=False)}
    ext_rows["wiki_context"] = [r for r in wiki if r.any_unsafe() == 1 or r.id in keep]
    ext_emb = {fmt: cache.embed([r.text for r in rows], enc.default_encoder_factory(), progress=True)
               for fmt, rows in ext_rows.items()}
    print(f"embedded in {time.perf_counter() - t0:.0f} s: corpus {len(corpus.rows)}, "
          + ", ".join(f"{k} {len(v)}" for k, v in ext_rows.items()), flush=True)
    if embed_only:
        return
    labels = loso.label_matrix(corpus.rows)
    src = np.array([corpus.source_of(i) for i in range(len(corpus.rows))])
    split = np.array([r.split or "train" for r in corpus.rows])
    names = held_out or ["davidson", "convabuse", "edos", "toxic_spans", "reddit_cssrs", "youtube_spam", "sms_spam",
                         "ailuminate", "do_not_answer", "strongreject", "advbench", "coconot"]
    out.mkdir(parents=True, exist_ok=True)
    for m in mix:
        sources = corpus_mod.MIXES[m]
        t1 = time.perf_counter()
        table = loso.leave_one_source_out(corpus, pol, names, train_sources=list(sources), baselines=False)
        in_mix = np.isin(src, list(sources))
        tr, dv = in_mix & (split == "train"), in_mix & (split == "dev")
        predict, thr, _ = loso.fit_head(corpus.embeddings[tr], labels[tr], corpus.embeddings[dv], labels[dv],
                                        loso.head_config(), sources=list(src[tr]))
        external: dict[str, float] = {}
        for fmt, _, view in EXTERNAL:
            rows, probs = ext_rows[fmt], predict(ext_emb[fmt])
            if view == "any":
                y, s = loso.any_labels(rows), probs.max(axis=1)
            else:
                c = list(loso.CATEGORIES).index(view)
                y, s = loso.label_matrix(rows)[:, c], probs[:, c]
            external[fmt] = round(_auprc(s, y), 4)
        summ = loso.summary(table)
        chosen = [v for k, v in external.items() if k not in REPORT_ONLY and not math.isnan(v)]
        result = {"mix": list(sources), "loso": table, "summary": summ, "external": external,
                  "external_mean": round(float(np.mean(chosen)), 4), "seconds": round(time.perf_counter() - t1, 1)}
        (out / f"{m}.json").write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
        per_source = {k: v["metrics"].get("any", {}).get("referee", {}) for k, v in table.items()}
        print(f"{m}: loso any {summ['mean_any_auprc']:.3f} cat {summ['mean_category_auprc']:.3f} | external "
              f"mean {result['external_mean']:.3f} " + " ".join(f"{k}={v:.3f}" for k, v in external.items()), flush=True)
        print("   " + " ".join(f"{k}={v.get('auprc', v.get('recall', v.get('flag_rate', math.nan))):.3f}"
                             for k, v in per_source.items()), flush=True)


if __name__ == "__main__":
    app()
