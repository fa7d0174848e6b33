"""Leave-one-source-out (LOSO) evaluation and false-positive tests, in one run.

The test split of a corpus is text from the same sources the model learned
from; a safety team's own data is not. So for each trainable source of the
default mix, a head is trained on the frozen encoder's embeddings of every
*other* source (train split), calibrated and thresholded on the other sources'
dev split (a mix of sources, not one), and scored on all rows of the held-out
source, after dropping its near-duplicates of the training rows. That figure —
text from a source the model never saw — is what we optimise.

Reported per held-out source: AUPRC (and ROC-AUC) of "any unsafe" (the highest
category score) and of each category the source labels with both classes; on a
source with positives only, the share caught at the model's thresholds instead
(AUPRC is undefined there). Each figure sits beside ``alt-profanity-check`` (one
profanity score for every category; optional ``baselines`` extra) and the
lexicon detector built from the policy, computed on the same rows in the same run.

False-positive tests (:func:`false_positive_tests`) run a model directory the
way it serves (ONNX int8 through the detectors) and the policy's own rules:
the share of benign look-alikes (CoCoNot contrast, HateCheck's non-hateful
functionalities, the music-domain set in ``eval/data``) that the policy would
act on, for the engine's detector set, the classifier alone, the lexicon
alone, and profanity-check at 0.5.

The heads use the same recipe as ``referee train --mode head`` and cache
embeddings under ``.cache/embeddings`` (torch is needed: ``train`` extra).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from referee.eval.datasets import CATEGORIES, Row, decontaminate, dedup_key, split_rows

DATA = Path(__file__).with_name("data")
MUSIC_LOOKALIKES = DATA / "music_lookalikes.txt"
#: Sources too small or too synthetic to hold out on their own (they stay in training).
NOT_HELD_OUT = ("policy", "benign_music", "identity")
#: Sources held out together: Do-Not-Answer's answers restate their questions, so a head
#: scored on the questions must not have learned from the answers (and the reverse).
HELD_OUT_WITH = {"do_not_answer": ("dna_responses",), "dna_responses": ("do_not_answer",)}
#: HateCheck functionalities that are non-hateful but still abuse (of a person, or of a
#: group without a protected characteristic): acting on them is not a false positive.
HATECHECK_ABUSE_NH = ("target_indiv_nh", "target_group_nh")

Scorer = Callable[[list[str]], np.ndarray]


def label_matrix(rows: Sequence[Row], cats: Sequence[str] = CATEGORIES) -> np.ndarray:
    """Rows' labels as float32 (NaN = unknown), one column per category."""
    return np.array([[math.nan if r.label(c) is None else float(r.label(c)) for c in cats] for r in rows],  # type: ignore[arg-type]
                    dtype=np.float32).reshape(len(rows), len(cats))


def read_lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]


# -- baselines -------------------------------------------------------------------
def profanity_scorer(cats: Sequence[str] = CATEGORIES) -> Scorer | None:
    """alt-profanity-check's one score repeated for every category, or None if not installed."""
    try:
        from profanity_check import predict_prob
    except ImportError:
        return None

    def score(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(cats)), dtype=np.float32)
        return np.repeat(np.asarray(predict_prob(texts), dtype=np.float32)[:, None], len(cats), axis=1)

    return score


def lexicon_scorer(policy: Any, cats: Sequence[str] = CATEGORIES) -> Scorer:
    """The policy's lexicon: per category the heaviest matching term's weight (0 without a match)."""
    from referee.plugins.lexicon.detector import LexiconDetector
    from referee.model import ContentItem

    lex = LexiconDetector.from_policy(policy, policy.detector_config("lexicon"))
    index = {c: i for i, c in enumerate(cats)}

    def score(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(cats)), dtype=np.float32)
        items = [ContentItem(id=str(i), text=t[:200_000]) for i, t in enumerate(texts)]
        for i, signals in enumerate(lex.detect_many(items)):
            for s in signals:
                if s.category in index:
                    out[i, index[s.category]] = max(out[i, index[s.category]], s.score)
        return out

    return score


# -- metrics on one held-out source ------------------------------------------------
def _auprc_auc(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from referee.classifier.metrics import auprc, roc_auc

    return float(auprc(scores, y)), float(roc_auc(scores, y))


def any_labels(rows: Sequence[Row]) -> np.ndarray:
    return np.array([math.nan if (v := r.any_unsafe()) is None else float(v) for r in rows], dtype=np.float32)


def source_metrics(rows: Sequence[Row], scores: dict[str, np.ndarray], thresholds: dict[str, np.ndarray],
                   cats: Sequence[str] = CATEGORIES) -> dict[str, Any]:
    """AUPRC / ROC-AUC per system for "any unsafe" and each two-class category; for a
    one-class (positives only) view, the share at or above each system's thresholds."""
    labels = label_matrix(rows, cats)
    views: dict[str, tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    anyl = any_labels(rows)
    views["any"] = (anyl, {n: np.asarray(s.max(axis=1)) for n, s in scores.items()},
                    {n: np.asarray((s >= thresholds[n]).any(axis=1), dtype=np.float32) for n, s in scores.items()})
    for c, cat in enumerate(cats):
        views[cat] = (labels[:, c], {n: s[:, c] for n, s in scores.items()},
                      {n: (s[:, c] >= thresholds[n][c]).astype(np.float32) for n, s in scores.items()})
    out: dict[str, Any] = {}
    for view, (y, s_by, flag_by) in views.items():
        known = ~np.isnan(y)
        n, pos = int(known.sum()), int(np.nansum(y))
        if n == 0 or (pos == 0 and view != "any"):
            continue
        entry: dict[str, Any] = {"n": n, "pos": pos}
        two_class = 0 < pos < n
        for name in s_by:
            yk, sk, fk = y[known], s_by[name][known], flag_by[name][known]
            if two_class:
                a, r = _auprc_auc(sk, yk)
                entry[name] = {"auprc": round(a, 4), "roc_auc": round(r, 4),
                               "recall": round(float(fk[yk == 1].mean()), 4),
                               "fpr": round(float(fk[yk == 0].mean()), 4)}
            elif pos == n:
                entry[name] = {"recall": round(float(fk.mean()), 4)}
            else:
                entry[name] = {"flag_rate": round(float(fk.mean()), 4)}
        out[view] = entry
    return out


# -- heads on frozen embeddings --------------------------------------------------------
@dataclass
class Corpus:
    """The mix's rows, split (seeded) and embedded once."""

    rows: list[Row]
    embeddings: np.ndarray
    sources: list[str]

    def source_of(self, i: int) -> str:
        return str(self.rows[i].meta.get("source"))


def load_corpus(shared: str | Path, policy_path: str | Path, sources: Sequence[str], seed: int = 13,
                cache_dir: str | Path = ".cache/embeddings", max_tokens: int = 128,
                recipe: str = "placeholders-v1") -> Corpus:
    from referee.eval import corpus as corpus_mod
    from referee.classifier import encoder as enc

    rows, _, _ = corpus_mod.collect(shared, policy_path, tuple(sources))
    rows = [r for r in rows if any(k in CATEGORIES for k in r.labels)]
    rows = split_rows(rows, seed=seed, ratios=(0.7, 0.15, 0.15))
    cache = enc.EmbeddingCache(cache_dir, enc.encoder_id(), max_tokens, recipe)
    emb = cache.embed([r.text for r in rows], enc.default_encoder_factory(), progress=False)
    present = list(dict.fromkeys(str(r.meta.get("source")) for r in rows))
    return Corpus(rows, emb, present)


def head_config(hidden: int = 256, lr: float = 2e-3, source_balance: float = 0.0, seed: int = 13) -> Any:
    """The shipped recipe's head settings (scripts/train_default_model.sh), overridable for experiments.

    ``seed`` is the head's own seed (initialisation, dropout, batch order), not the split's:
    two seeds on one corpus measure how much a figure moves from training noise alone."""
    from referee.classifier.train import TrainConfig

    return TrainConfig(categories=list(CATEGORIES), hidden=hidden, lr=lr, epochs=150, progress=False,
                       source_balance=source_balance, seed=seed)


def fit_head(x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray, y_dev: np.ndarray,
             config: Any | None = None, sources: Sequence[str | None] | None = None,
             ) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, int]:
    """Train a head exactly as ``referee train --mode head`` does; calibrate (Platt) and pick
    thresholds (precision ≥ target) on dev. Returns (embeddings → calibrated probs, thresholds, epochs)."""
    from referee.classifier.calibrate import apply_platt, choose_threshold, fit_all
    from referee.classifier.train import _fit_head, _head_logits, seed_everything, source_weights

    cfg = config or head_config()
    seed_everything(cfg.seed)
    weights = source_weights(list(sources), cfg.source_balance) if sources is not None and cfg.source_balance else None
    with tempfile.TemporaryDirectory() as tmp:
        head, log = _fit_head(x_train, y_train, x_dev, y_dev, cfg, Path(tmp), weights)
    dev_logits = _head_logits(head, x_dev)
    platt = fit_all(dev_logits, y_dev)
    dev_probs = apply_platt(dev_logits, platt)
    thr = np.array([choose_threshold(dev_probs[:, i], y_dev[:, i], cfg.target_precision).threshold
                    for i in range(y_dev.shape[1])], dtype=np.float32)

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(apply_platt(_head_logits(head, x), platt), dtype=np.float32)

    return predict, thr, len(log)


def leave_one_source_out(corpus: Corpus, policy: Any, held_out: Sequence[str] | None = None,
                         config: Any | None = None, progress: Callable[[str], None] | None = None,
                         examples: int = 3, train_sources: Sequence[str] | None = None,
                         baselines: bool = True) -> dict[str, Any]:
    """One head per held-out source; its metrics next to the baselines on the same rows.

    ``train_sources`` (default: every source of the corpus) is the mix the heads learn
    from; a held-out source outside it is scored by a head trained on the whole mix, so
    two mixes can be compared on the same held-out sources."""
    cats = list(CATEGORIES)
    labels = label_matrix(corpus.rows, cats)
    src = np.array([corpus.source_of(i) for i in range(len(corpus.rows))])
    split = np.array([r.split or "train" for r in corpus.rows])
    scorers: dict[str, Scorer] = {"lexicon": lexicon_scorer(policy, cats)} if baselines else {}
    prof = profanity_scorer(cats) if baselines else None
    if prof is not None:
        scorers["profanity_check"] = prof
    base_thr = {"lexicon": np.full(len(cats), 0.5, np.float32), "profanity_check": np.full(len(cats), 0.5, np.float32)}
    names = held_out or [s for s in corpus.sources if s not in NOT_HELD_OUT]
    in_mix = np.isin(src, list(train_sources or corpus.sources))
    results: dict[str, Any] = {}
    for name in names:
        t0 = time.perf_counter()
        out_now = np.isin(src, [name, *HELD_OUT_WITH.get(name, ())])
        train = in_mix & ~out_now & (split == "train")
        dev = in_mix & ~out_now & (split == "dev")
        seen = [corpus.rows[i] for i in np.flatnonzero(train | dev)]
        test_rows = decontaminate([corpus.rows[i] for i in np.flatnonzero(src == name)], seen)
        keep_ids = {r.id for r in test_rows}
        test_idx = np.array([i for i in np.flatnonzero(src == name) if corpus.rows[i].id in keep_ids], dtype=np.int64)
        if not len(test_idx):
            continue
        predict, thr, epochs = fit_head(corpus.embeddings[train], labels[train], corpus.embeddings[dev], labels[dev],
                                        config, sources=list(src[train]))
        texts = [corpus.rows[i].text for i in test_idx]
        scores = {"referee": predict(corpus.embeddings[test_idx])}
        for bname, fn in scorers.items():
            scores[bname] = fn(texts)
        thresholds = {"referee": thr, **{b: base_thr[b] for b in scorers}}
        rows = [corpus.rows[i] for i in test_idx]
        entry = source_metrics(rows, scores, thresholds, cats)
        results[name] = {"n": len(rows), "dropped_near_duplicates": int((src == name).sum()) - len(rows),
                         "train_rows": int(train.sum()), "epochs": epochs, "metrics": entry,
                         "mistakes": _mistakes(rows, scores["referee"], thr, cats, examples),
                         "seconds": round(time.perf_counter() - t0, 1)}
        if progress:
            progress(f"{name}: {len(rows)} rows, {results[name]['seconds']} s")
    return results


def _mistakes(rows: Sequence[Row], probs: np.ndarray, thr: np.ndarray, cats: Sequence[str],
              k: int) -> list[dict[str, Any]]:
    """The k most confident misses and false flags of the held-out source, per category."""
    labels = label_matrix(rows, cats)
    out: list[dict[str, Any]] = []
    for c, cat in enumerate(cats):
        y, s = labels[:, c], probs[:, c]
        miss = np.flatnonzero((y == 1) & (s < thr[c]))
        false = np.flatnonzero((y == 0) & (s >= thr[c]))
        for kind, idx, order in (("miss", miss, np.argsort(s[miss])), ("false_flag", false, np.argsort(-s[false]))):
            for i in idx[order][:k]:
                out.append({"kind": kind, "category": cat, "score": round(float(s[i]), 3),
                            "threshold": round(float(thr[c]), 3), "id": rows[i].id, "text": rows[i].text[:240]})
    return out


# -- false-positive tests ------------------------------------------------------------------
def benign_sets(shared: str | Path | None) -> dict[str, list[Row]]:
    """Benign look-alike sets: the music-domain list (always), CoCoNot contrast and
    HateCheck's non-hateful cases per functionality (when ``shared`` has them)."""
    from referee.eval.datasets import import_dataset

    sets: dict[str, list[Row]] = {
        "music_lookalikes": [Row(id=f"music-{i}", text=t) for i, t in enumerate(read_lines(MUSIC_LOOKALIKES))]}
    if shared is None:
        return sets
    shared = Path(shared)
    if (shared / "coconot").exists():
        rows = import_dataset("coconot", shared / "coconot")
        sets["coconot_contrast"] = [r for r in rows if r.meta.get("file") == "contrast"]
    if (shared / "hatecheck").exists():
        rows = [r for r in import_dataset("hatecheck", shared / "hatecheck") if r.label("hate") == 0]
        sets["hatecheck_benign"] = [r for r in rows if r.meta.get("functionality") not in HATECHECK_ABUSE_NH]
        for r in rows:
            f = str(r.meta.get("functionality"))
            sets.setdefault(f"hatecheck:{f}", []).append(r)
    return sets


def policy_flag_rates(policy: Any, sets: dict[str, list[Row]], model_dir: str | Path | None,
                      surface: str = "comment", systems: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Share of each set the policy would act on (action ≠ allow), per system.

    Systems: ``engine`` (lexicon + classifier signals, as the engine combines them),
    ``classifier`` and ``lexicon`` alone through the same rules, and
    ``profanity_check`` (score ≥ 0.5). Also the share flagged per category."""
    from referee.plugins.lexicon.detector import LexiconDetector
    from referee.engine.decide import decide
    from referee.eval.runner import to_item

    detectors: dict[str, Any] = {"lexicon": LexiconDetector.from_policy(policy, policy.detector_config("lexicon"))}
    if model_dir is not None:
        from referee.plugins.classifier.detector import ClassifierDetector

        # Built as the engine builds it (the policy's settings), with the model to test.
        cfg = {k: v for k, v in policy.detector_config("classifier").items() if k not in ("optional", "timeout_s")}
        cfg.update(model=str(Path(model_dir).resolve()), cache_size=0)
        detectors["classifier"] = ClassifierDetector.from_policy(policy, cfg)
    prof = profanity_scorer()
    wanted = list(systems or ["engine", "classifier", "lexicon", "profanity_check"])
    out: dict[str, dict[str, Any]] = {}
    for set_name, rows in sets.items():
        if not rows:
            continue
        items = [to_item(r, surface) for r in rows]
        signals = {name: det.detect_many(items) for name, det in detectors.items()}
        entry: dict[str, Any] = {"n": len(rows)}
        for system in wanted:
            if system == "profanity_check":
                if prof is None:
                    continue
                flags = prof([r.text for r in rows])[:, 0] >= 0.5
                entry[system] = {"flag_rate": round(float(flags.mean()), 4)}
                continue
            use = list(detectors) if system == "engine" else [system]
            if any(u not in signals for u in use):
                continue
            actions: dict[str, int] = {}
            by_cat: dict[str, int] = {}
            flagged_examples: list[dict[str, Any]] = []
            for i, item in enumerate(items):
                sig = [s for u in use for s in signals[u][i]]
                decision = decide(policy, item, sig)
                action = decision.action.value
                actions[action] = actions.get(action, 0) + 1
                for c in decision.categories:
                    by_cat[c] = by_cat.get(c, 0) + 1
                if action != "allow" and len(flagged_examples) < 5:
                    top = max(sig, key=lambda s: s.score) if sig else None
                    flagged_examples.append({"text": item.text[:200], "action": action,
                                             "categories": list(decision.categories),
                                             "top": f"{top.detector}:{top.category}={top.score:.2f}" if top else ""})
            n = len(items)
            entry[system] = {"flag_rate": round(1 - actions.get("allow", 0) / n, 4),
                             "actions": {a: round(k / n, 4) for a, k in sorted(actions.items())},
                             "categories": {c: round(k / n, 4) for c, k in sorted(by_cat.items())},
                             "examples": flagged_examples}
        out[set_name] = entry
    return out


def false_positive_tests(policy: Any, shared: str | Path | None, model_dir: str | Path | None,
                         surface: str = "comment") -> dict[str, dict[str, Any]]:
    return policy_flag_rates(policy, benign_sets(shared), model_dir, surface)


# -- printing ---------------------------------------------------------------------------
def _cell(m: dict[str, Any] | None) -> str:
    if not m:
        return "–"
    if "auprc" in m:
        return f"{m['auprc']:.3f} / {m['roc_auc']:.2f}"
    if "recall" in m:
        return f"caught {m['recall']:.0%}"
    return f"flags {m['flag_rate']:.0%}"


def loso_markdown(results: dict[str, Any], systems: Sequence[str] = ("referee", "profanity_check", "lexicon")) -> str:
    lines = ["| held-out source | view | n | pos | " + " | ".join(f"{s} AUPRC / ROC-AUC" for s in systems) + " |",
             "|---|---|---|---|" + "---|" * len(systems)]
    for name, res in results.items():
        for view, m in res["metrics"].items():
            lines.append(f"| {name} | {view} | {m['n']} | {m['pos']} | "
                         + " | ".join(_cell(m.get(s)) for s in systems) + " |")
    return "\n".join(lines)


def fp_markdown(results: dict[str, dict[str, Any]],
                systems: Sequence[str] = ("engine", "classifier", "lexicon", "profanity_check")) -> str:
    lines = ["| benign set | n | " + " | ".join(f"{s} flagged" for s in systems) + " |",
             "|---|---|" + "---|" * len(systems)]
    for name, res in results.items():
        cells = " | ".join(f"{res[s]['flag_rate']:.1%}" if s in res else "–" for s in systems)
        lines.append(f"| {name} | {res['n']} | {cells} |")
    return "\n".join(lines)


def summary(results: dict[str, Any], system: str = "referee") -> dict[str, float]:
    """Mean any-unsafe AUPRC over held-out sources with both classes, and mean per-category AUPRC."""
    anys = [r["metrics"]["any"][system]["auprc"] for r in results.values()
            if "any" in r["metrics"] and "auprc" in r["metrics"]["any"].get(system, {})]
    cats = [m[system]["auprc"] for r in results.values() for v, m in r["metrics"].items()
            if v != "any" and "auprc" in m.get(system, {})]
    return {"mean_any_auprc": round(float(np.mean(anys)), 4) if anys else math.nan,
            "mean_category_auprc": round(float(np.mean(cats)), 4) if cats else math.nan,
            "n_any": len(anys), "n_category": len(cats)}


__all__ = [
    "Corpus",
    "benign_sets",
    "dedup_key",
    "false_positive_tests",
    "fit_head",
    "head_config",
    "fp_markdown",
    "leave_one_source_out",
    "lexicon_scorer",
    "load_corpus",
    "loso_markdown",
    "markdown",
    "policy_flag_rates",
    "profanity_scorer",
    "run",
    "source_metrics",
    "summary",
]


def run(shared: str | Path, policy_path: str | Path, model_dir: str | Path | None, mix: Sequence[str],
        universe: Sequence[str] | None = None, held_out: Sequence[str] | None = None, seed: int = 13,
        cache_dir: str | Path = ".cache/embeddings", progress: Callable[[str], None] | None = None,
        config: Any | None = None) -> dict[str, Any]:
    """The whole evaluation: LOSO table for ``mix`` (held-out sources drawn from ``universe``,
    default the mix itself) and the false-positive tests of ``model_dir`` under the policy."""
    from referee.policy import load_policy

    policy = load_policy(policy_path)
    # Held-out sources outside the mix are loaded too (scored by a head trained on the whole mix).
    sources = list(dict.fromkeys([*mix, *(universe or ()), *(held_out or ())]))
    t0 = time.perf_counter()
    corpus = load_corpus(shared, policy_path, sources, seed=seed, cache_dir=cache_dir)
    cfg = config or head_config()
    table = leave_one_source_out(corpus, policy, held_out, config=cfg, progress=progress, train_sources=list(mix))
    fp = false_positive_tests(policy, shared, model_dir) if model_dir is not None else {}
    return {"split": {"seed": seed, "ratios": [0.7, 0.15, 0.15], "method": "referee.eval.datasets.split_rows; "
                      "heads train on the other sources' train split, calibrate and pick thresholds (precision "
                      ">= 0.9) on their dev split, and score every row of the held-out source minus its "
                      "near-duplicates of the training rows"},
            "mix": list(mix), "head": cfg.model_dump(include={"hidden", "lr", "epochs", "source_balance", "seed"}),
            "held_out": list(table), "loso": table, "summary": summary(table),
            "summary_baselines": {b: summary(table, b) for b in ("profanity_check", "lexicon")},
            "false_positives": fp, "model": str(model_dir) if model_dir else None,
            "seconds": round(time.perf_counter() - t0, 1)}


def markdown(result: dict[str, Any]) -> str:
    """The LOSO table, its summary and the false-positive table, as Markdown."""
    parts = [f"Leave-one-source-out, mix {', '.join(result['mix'])} (seed {result['split']['seed']}).", "",
             loso_markdown(result["loso"]), "",
             "Mean over held-out sources: " + "; ".join(
                 f"{name} any-unsafe AUPRC {s['mean_any_auprc']:.3f} ({s['n_any']} sources), "
                 f"category AUPRC {s['mean_category_auprc']:.3f} ({s['n_category']})"
                 for name, s in [("referee", result["summary"]), *result["summary_baselines"].items()])]
    if result.get("false_positives"):
        parts += ["", f"Benign look-alikes flagged (action != allow, comment surface), model {result['model']}:", "",
                  fp_markdown(result["false_positives"])]
    return "\n".join(parts) + "\n"
