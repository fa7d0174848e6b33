"""A partial fine-tune (the encoder's top layers and the head) against the shipped frozen-encoder head.

The candidate learns from the shipped recipe's own corpus (``make model``'s
``.cache/default_corpus``: mix v1, split seed 13), so the only change is what trains. Both
models are then scored, as served (int8 ONNX), on real text that neither learned from:

- sources outside mix v1 (ConvAbuse, EDOS, Toxic Spans: real comments, allowed for training
  but not in v1), the external sets ``quality_experiments.py`` chooses on (Wikipedia Talk
  identity comments, ToxiGen, ETHOS) and Wikipedia Talk in context beside them;
- HateCheck, reported only (it publishes guard-model scores: never used to choose);
- the benign look-alike sets through the default policy (lexicon + the model, ``comment``).

    .venv/bin/python scripts/finetune_top.py --layers 2 --epochs 2 --out .cache/finetune-top2

Prints one table (shipped vs candidate) and writes ``<out>/compare.json``. Needs the
``train`` extra and ``../shared/datasets``. A leave-one-source-out table of the candidate
would need one fine-tune per held-out source: hours on this host's CPUs, not run here.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

app = typer.Typer(add_completion=False)

#: (corpus source, view): real comments outside mix v1.
OUT_OF_MIX = (("convabuse", "any"), ("convabuse", "harassment"), ("convabuse", "hate"),
              ("edos", "hate"), ("toxic_spans", "caught"))
#: (import format, shared folder, view): the external sets.
EXTERNAL = (("wiki_identity", "wiki_toxicity_identity_testset", "any"),
            ("wiki_context", "wiki_context_toxicity", "any"),
            ("toxigen", "toxigen", "hate"),
            ("ethos", "ethos", "hate"),
            ("hatecheck", "hatecheck", "hate"))
REPORT_ONLY = ("hatecheck",)
POLICY_SETS = ("music_lookalikes", "coconot_contrast", "hatecheck_benign")
#: Rows scored per set at most (seeded sample; AUPRC is read at the sample's prevalence).
CAP = 4000


def _sample(rows: list[Any], cap: int, seed: int = 13) -> list[Any]:
    if len(rows) <= cap:
        return rows
    idx = np.random.default_rng(seed).choice(len(rows), size=cap, replace=False)
    return [rows[i] for i in sorted(idx)]


def _figure(rows: list[Any], probs: np.ndarray, view: str, thresholds: np.ndarray) -> float:
    from referee.classifier.metrics import auprc
    from referee.eval import loso
    from referee.eval.datasets import CATEGORIES

    if view == "caught":  # positives only: the share acted on at the model's thresholds
        return float((probs >= thresholds).any(axis=1).mean())
    if view == "any":
        y, sc = loso.any_labels(rows), probs.max(axis=1)
    else:
        c = list(CATEGORIES).index(view)
        y, sc = loso.label_matrix(rows)[:, c], probs[:, c]
    keep = ~np.isnan(y)
    if keep.sum() == 0 or y[keep].min() == y[keep].max():
        return math.nan
    return float(auprc(sc[keep], y[keep]))


def _refit(tuned: Path, out: Path, train_file: Path, corpus: Path) -> Path:
    """A head trained on the frozen, fine-tuned encoder, with the shipped head's recipe."""
    import shutil

    from referee.classifier import artifact
    from referee.classifier.encoder import build_encoder, encoder_id
    from referee.classifier.export import export
    from referee.classifier.text import load_tokenizer
    from referee.classifier.train import TrainConfig, train
    from referee.eval.datasets import CATEGORIES

    weights = tuned / artifact.ENCODER_WEIGHTS

    def factory():  # type: ignore[no-untyped-def]
        return build_encoder(weights=weights), load_tokenizer(tuned / artifact.TOKENIZER)

    factory.encoder_id = f"{encoder_id()}+{artifact.sha256_file(weights)[:12]}"  # type: ignore[attr-defined]
    cfg = TrainConfig(categories=list(CATEGORIES), mode="head", name="default", hidden=256, lr=2e-3, epochs=150,
                      target_precision=0.9, seed=13, progress=False, batch_size=128, patience=10)
    t0 = time.perf_counter()
    res = train(train_file, corpus / "dev.jsonl", out, cfg, test_path=corpus / "test.jsonl", encoder_factory=factory)
    shutil.copyfile(weights, out / artifact.ENCODER_WEIGHTS)
    card = res.card.model_copy(update={"encoder": encoder_id(), "finetuned_encoder": True})
    card.training["encoder_from"] = json.loads((tuned / artifact.CARD).read_text())["training"]["config"]
    artifact.write_card(out, card)
    print(f"refitted the head in {time.perf_counter() - t0:.0f} s: test macro {card.metrics['test']['macro_auprc']}",
          flush=True)
    export(out, int8=True)
    return out


@app.command()
def main(layers: int = typer.Option(2, help="Top transformer layers that train (0 = all)."),
         epochs: int = typer.Option(2), encoder_lr: float = typer.Option(5e-5), lr: float = typer.Option(1e-3),
         batch_size: int = typer.Option(32), train_rows: int = typer.Option(0, help="Subsample (0 = all)."),
         corpus: Path = typer.Option(Path(".cache/default_corpus")),
         shared: Path = typer.Option(Path("../shared/datasets")),
         policy: Path = typer.Option(Path("policies/default.yaml")),
         shipped: Path = typer.Option(Path("models/default")),
         out: Path = typer.Option(Path(".cache/finetune-top")),
         skip_train: bool = typer.Option(False, help="Score an existing <out>/model."),
         refit_head: bool = typer.Option(False, help=(
             "Then fit a new head on the fine-tuned encoder, frozen, as `--mode head` does (150 epochs, "
             "early stopping), into <out>/refit, and score that.")),
         ) -> None:
    from referee.classifier.export import export
    from referee.classifier.runtime import TextClassifier
    from referee.classifier.train import TrainConfig, train
    from referee.eval import corpus as corpus_mod
    from referee.eval import loso
    from referee.eval.datasets import CATEGORIES, import_dataset
    from referee.policy import load_policy

    model = out / "model"
    train_file = corpus / "train.jsonl"
    if train_rows:
        lines = train_file.read_text(encoding="utf-8").splitlines()
        keep = np.random.default_rng(13).choice(len(lines), size=min(train_rows, len(lines)), replace=False)
        out.mkdir(parents=True, exist_ok=True)
        train_file = out / "train.jsonl"
        train_file.write_text("\n".join(lines[i] for i in sorted(keep)) + "\n", encoding="utf-8")
    if not skip_train:
        cfg = TrainConfig(categories=list(CATEGORIES), mode="finetune", name="default", hidden=256, lr=lr,
                          encoder_lr=encoder_lr, epochs=epochs, batch_size=batch_size, train_layers=layers,
                          patience=1, target_precision=0.9, seed=13)
        t0 = time.perf_counter()
        res = train(train_file, corpus / "dev.jsonl", model, cfg, test_path=corpus / "test.jsonl")
        print(f"trained in {time.perf_counter() - t0:.0f} s; epochs {res.log}", flush=True)
        export(model, int8=True)

    if refit_head:
        model = _refit(model, out / "refit", train_file, corpus)
    pol = load_policy(policy)
    sets: dict[str, list[Any]] = {}
    rows, _, _ = corpus_mod.collect(shared, policy, tuple(dict.fromkeys(s for s, _ in OUT_OF_MIX)))
    for source in dict.fromkeys(s for s, _ in OUT_OF_MIX):
        sets[source] = _sample([r for r in rows if r.meta.get("source") == source], CAP)
    for fmt, folder, _ in EXTERNAL:
        ext = import_dataset(fmt, shared / folder)
        if fmt == "wiki_context":  # every toxic comment and a sample of the rest, as quality_experiments does
            benign = [r for r in ext if r.any_unsafe() == 0]
            ext = [r for r in ext if r.any_unsafe() == 1] + _sample(benign, CAP)
        sets[fmt] = _sample(ext, CAP)
    views = [(s, v) for s, v in OUT_OF_MIX] + [(f, v) for f, _, v in EXTERNAL]
    fp_sets = {k: v for k, v in loso.benign_sets(shared).items() if k in POLICY_SETS}

    result: dict[str, Any] = {"layers": layers, "epochs": epochs, "train_rows": train_rows or "all", "cap": CAP}
    # The shipped model's figures depend only on its files and on what is scored: memoised under both.
    memo_key = hashlib.sha256(json.dumps([(shipped / "card.json").read_text(), OUT_OF_MIX, EXTERNAL, POLICY_SETS,
                                          CAP]).encode()).hexdigest()[:12]
    memo = Path(".cache") / f"finetune-top-shipped-{memo_key}.json"
    for name, directory in (("shipped", shipped), ("candidate", model)):
        if name == "shipped" and memo.exists():
            result[name] = json.loads(memo.read_text())
            continue
        t0 = time.perf_counter()
        clf = TextClassifier(directory, variant="int8", batch_size=16)
        thr = np.array([clf.thresholds[c] for c in clf.categories])
        probs = {s: clf.predict([r.text for r in rs]) for s, rs in sets.items()}
        clf.close()
        figures = {f"{s}:{v}": round(_figure(sets[s], probs[s], v, thr), 4) for s, v in views}
        fp = loso.policy_flag_rates(pol, fp_sets, directory, systems=["engine"])
        figures.update({f"flagged:{k}": v["engine"]["flag_rate"] for k, v in fp.items() if "engine" in v})
        card = json.loads((directory / "card.json").read_text())
        figures["in_domain_test_macro_auprc"] = round(card["metrics"]["test"]["macro_auprc"], 4)
        result[name] = figures
        if name == "shipped":
            memo.write_text(json.dumps(figures) + "\n", encoding="utf-8")
        print(f"{name} scored in {time.perf_counter() - t0:.0f} s", flush=True)
    chosen = [k for k in result["shipped"] if not k.startswith(("flagged:", "in_domain"))
              and not k.endswith(":caught") and k.split(":")[0] not in REPORT_ONLY]
    for name in ("shipped", "candidate"):
        vals = [result[name][k] for k in chosen if not math.isnan(result[name][k])]
        result[name]["mean_out_of_mix_auprc"] = round(float(np.mean(vals)), 4)
    (out / "compare.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print("| figure | shipped | candidate |\n|---|---|---|")
    for k in result["shipped"]:
        note = " (report only)" if k.split(":")[0] in REPORT_ONLY else ""
        print(f"| {k}{note} | {result['shipped'][k]} | {result['candidate'][k]} |")


if __name__ == "__main__":
    app()
