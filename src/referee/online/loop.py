"""The continuous improvement loop: reviewer labels in, a gated candidate model in shadow out.

``run_loop`` (``referee loop run``) does, in order, each step logged:

1. **export** every reviewer and appeal label (``records.labels.export_labels``; the latest
   verdict on an item wins). If the export is the one the last finished run used, there is
   nothing new: the run stops there and says so. This is what makes the loop safe to
   schedule: a run with the same inputs has the same **run id** (a hash of the labels, the
   champion's version, the fixed evaluation sets, the base data and the loop's settings),
   and a finished run is answered from its record, never trained again.
2. **build the training set**: the base training data (the champion's corpus, when given)
   plus the labels, one row per normalised text (``eval.dedup_key``: case, punctuation,
   links, mentions and digits folded; a label beats a base row, a later label an earlier
   one), without labels people disagreed on, and **without any text of a fixed evaluation
   set or of the fresh set** (leakage would flatter the candidate). The labels new since the
   last run are split by a hash of their normalised text: ``fresh_share`` of them become
   the **fresh** evaluation set (today's traffic, which the fixed sets cannot show), the rest
   train; a ``dev_share`` of the training pool is the dev set (early stopping, calibration,
   thresholds) unless a base dev set is given.
3. **train** a candidate as the champion was trained (its card's training config:
   ``classifier.train``), and export its ONNX graphs. It is written into the model registry
   as ``loop-<run id>``; its card's ``training.loop`` names the run, the labels' sha256 and
   every file's sha256, so any model traces back to the labels that made it.
4. **evaluate** champion and candidate on each fixed set and on the fresh set
   (``eval.build_result``), and compare them with the paired bootstrap (``eval.compare``).
5. **gate** (``eval.gate``): the candidate fails if on any set it is worse than the champion
   by more than ``max_drop`` in ``gate_metric`` with an interval that excludes "no worse".
6. **shadow**: a candidate that passes is written as a shadow candidate (an ``EngineConfig``
   JSON and its policy, the champion's with the classifier pointed at the candidate) in
   ``shadow_dir``, checked by ``online.shadow.load_candidates``. It decides beside the
   champion where ``REFEREE_SHADOW`` names it, and acts nowhere.

Promotion is a separate, explicit command (``promote``: ``referee loop promote RUN_ID``): it
needs the run's gate passed and enough shadow decisions, then points the registry's
``champion`` alias at the candidate.

The log is ``<registry>/loop/log.jsonl`` (one JSON event a line, append-only) and each run's
files are in ``<registry>/loop/runs/<run id>/``: the labels, train, dev and fresh sets, every
evaluation result and comparison, and ``run.json``, written last, which marks it finished.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import yaml
from pydantic import Field

from referee.classifier import artifact
from referee.classifier.registry import ModelRegistry
from referee.errors import ConfigError, InputError
from referee.eval import build_result, compare, dedup_key, gate, load_rows
from referee.eval.datasets import Row
from referee.eval.runner import Scores
from referee.model.base import Frozen
from referee.online.shadow import load_candidates
from referee.records.labels import export_labels
from referee.records.review import ReviewDesk

__all__ = [
    "HeadTrainer",
    "LoopConfig",
    "LoopError",
    "LoopEvent",
    "LoopRun",
    "Trainer",
    "promote",
    "read_log",
    "run_loop",
]

LOOP_DIR = "loop"
LOG_FILE = "log.jsonl"
RUN_FILE = "run.json"


class LoopError(ConfigError):
    """The loop cannot do what was asked (the message says why and what to do)."""


class LoopConfig(Frozen):
    """What a loop run reads and how it judges; part of the run id (a change is a new run)."""

    registry: Path = Field(description="The model registry folder (models/).")
    policy: Path = Field(description="The champion's policy; the candidate's is derived from it.")
    eval_sets: tuple[Path, ...] = Field(min_length=1, description="Fixed evaluation sets (referee dataset JSONL).")
    champion: str = "champion"
    base_train: Path | None = Field(default=None, description="The champion's training data, kept in the mix.")
    base_dev: Path | None = None
    since: float | None = Field(default=None, description="Only labels recorded at or after this Unix time.")
    fresh_share: float = Field(default=0.3, ge=0.0, lt=1.0)
    dev_share: float = Field(default=0.15, gt=0.0, lt=1.0)
    min_new_labels: int = Field(default=1, ge=1)
    gate_metric: str = "auprc"
    max_drop: float = Field(default=0.01, ge=0.0)
    n_boot: int = Field(default=500, ge=0)
    seed: int = 13
    shadow_dir: Path | None = Field(default=None, description="Where shadow candidates go (default <registry>/loop/candidates).")
    train_overrides: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields to change.")

    @property
    def loop_dir(self) -> Path:
        return self.registry / LOOP_DIR

    @property
    def candidates_dir(self) -> Path:
        return self.shadow_dir or self.loop_dir / "candidates"


class LoopEvent(Frozen):
    run_id: str | None
    step: str
    at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)


class LoopRun(Frozen):
    """A finished run: what it read, what it made, and what the gate said."""

    run_id: str
    status: Literal["no_new_labels", "gate_failed", "in_shadow"]
    started_at: datetime
    finished_at: datetime
    labels: dict[str, Any]
    data: dict[str, Any] = Field(default_factory=dict)
    champion: dict[str, Any] = Field(default_factory=dict)
    candidate: dict[str, Any] | None = None
    evaluations: dict[str, Any] = Field(default_factory=dict)
    gate: dict[str, Any] = Field(default_factory=dict)
    shadow: dict[str, Any] | None = None
    reused: bool = Field(default=False, description="True when this run had finished before and was not redone.")


class Trainer(Protocol):
    """Trains a model directory from train/dev files, and builds its serving graphs."""

    def train(self, train_path: Path, dev_path: Path, out_dir: Path, config: dict[str, Any],
              provenance: dict[str, Any]) -> artifact.ModelCard: ...

    def build(self, model_dir: Path) -> None: ...


class HeadTrainer:
    """``classifier.train`` in head mode, then ``classifier.export``. ``encoder_factory`` and
    ``encoder_dir`` choose another encoder (tests use a tiny BERT); by default the packaged one."""

    def __init__(self, encoder_factory: Any = None, encoder_dir: Path | None = None, int8: bool = True,
                 cache_dir: Path = Path(".cache/embeddings")) -> None:
        self.encoder_factory = encoder_factory
        self.encoder_dir = encoder_dir
        self.int8 = int8
        self.cache_dir = cache_dir

    def train(self, train_path: Path, dev_path: Path, out_dir: Path, config: dict[str, Any],
              provenance: dict[str, Any]) -> artifact.ModelCard:
        from referee.classifier.train import TrainConfig, train

        cfg = TrainConfig(**{**config, "cache_dir": str(self.cache_dir), "progress": False})
        return train(train_path, dev_path, out_dir, cfg, provenance=provenance,
                     encoder_factory=self.encoder_factory).card

    def build(self, model_dir: Path) -> None:
        from referee.classifier.export import export

        export(model_dir, int8=self.int8, encoder_dir=self.encoder_dir)


# -- the log ----------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC)


def _log(config: LoopConfig, run_id: str | None, step: str, **detail: Any) -> LoopEvent:
    event = LoopEvent(run_id=run_id, step=step, at=_now(), detail=detail)
    config.loop_dir.mkdir(parents=True, exist_ok=True)
    with (config.loop_dir / LOG_FILE).open("a", encoding="utf-8") as fh:
        fh.write(event.model_dump_json() + "\n")
    return event


def read_log(registry: Path) -> list[LoopEvent]:
    path = registry / LOOP_DIR / LOG_FILE
    if not path.exists():
        return []
    return [LoopEvent.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _runs(config: LoopConfig) -> list[LoopRun]:
    """Finished runs, oldest first."""
    root = config.loop_dir / "runs"
    runs = [LoopRun.model_validate_json(p.read_text(encoding="utf-8")) for p in root.glob(f"*/{RUN_FILE}")]
    return sorted(runs, key=lambda r: r.finished_at)


# -- data -------------------------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _write(path: Path, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    data = _jsonl(rows)
    path.write_bytes(data)
    return {"file": path.name, "rows": len(rows), "sha256": _sha(data)}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", where=str(path)) from exc
    out = []
    for n, line in enumerate(lines, start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg})", where=f"{path}:{n}") from exc
    return out


def _file_sha(path: Path) -> str:
    try:
        return _sha(path.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", where=str(path)) from exc


def _share(key: str, salt: str) -> float:
    """A stable number in [0, 1) for a text key: the same text always lands in the same split."""
    return int(hashlib.sha256(f"{salt}|{key}".encode()).hexdigest()[:12], 16) / 16**12


def _label_signature(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in ("meta",)} | {"at": row["meta"]["labelled_at"]},
                      sort_keys=True)


def _training_row(row: dict[str, Any], categories: Sequence[str]) -> dict[str, Any]:
    out = {"id": row["id"], "text": row["text"]}
    for c in categories:
        if row.get(c) is not None:
            out[c] = row[c]
    if isinstance(row.get("meta"), dict) and row["meta"].get("source"):
        out["meta"] = {"source": row["meta"]["source"]}
    return out


def _build_sets(config: LoopConfig, labels: list[dict[str, Any]], new: set[str], categories: Sequence[str],
                eval_keys: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]],
                                              dict[str, int]]:
    """(train, dev, fresh) rows and the counts of what was left out and why."""
    counts = {"conflict": 0, "leak_eval": 0, "duplicate": 0, "fresh": 0}
    fresh: dict[str, dict[str, Any]] = {}
    pool: dict[str, dict[str, Any]] = {}
    for r in labels:
        key = dedup_key(r["text"])
        if r.get("meta", {}).get("conflict"):
            counts["conflict"] += 1
            continue
        if key in eval_keys:
            counts["leak_eval"] += 1
            continue
        if r["id"] in new and _share(key, f"fresh{config.seed}") < config.fresh_share:
            fresh[key] = _training_row(r, categories)
            continue
        if key in pool:
            counts["duplicate"] += 1
        pool[key] = _training_row(r, categories)  # labels come oldest first: the latest wins
    counts["fresh"] = len(fresh)
    for key in list(pool):
        if key in fresh:  # a text in the fresh set must not be trained on either
            del pool[key]
            counts["leak_eval"] += 1

    def base(path: Path | None) -> list[dict[str, Any]]:
        if path is None:
            return []
        rows = []
        for r in _read_jsonl(path):
            key = dedup_key(str(r.get("text", "")))
            if key in eval_keys or key in fresh:
                counts["leak_eval"] += 1
            elif key in pool:
                counts["duplicate"] += 1  # a person's label beats the corpus's
            else:
                rows.append(r)
        return rows

    labelled = [pool[k] for k in sorted(pool)]
    train = base(config.base_train) + labelled
    if config.base_dev is not None:
        return train, base(config.base_dev), [fresh[k] for k in sorted(fresh)], counts
    in_dev = [_share(dedup_key(str(r["text"])), f"dev{config.seed}") < config.dev_share for r in train]
    dev = [r for r, d in zip(train, in_dev) if d]
    train = [r for r, d in zip(train, in_dev) if not d]
    return train, dev, [fresh[k] for k in sorted(fresh)], counts


# -- evaluation --------------------------------------------------------------------------------
def _score(model_dir: Path, rows: Sequence[Row], categories: Sequence[str]) -> Scores:
    from referee.classifier.runtime import TextClassifier

    clf = TextClassifier(model_dir, variant="fp32", intra_op_threads=1, cache_size=0)
    try:
        probs = clf.predict([r.text for r in rows]) if rows else np.zeros((0, len(clf.categories)))
    finally:
        clf.close()
    col = {c: i for i, c in enumerate(clf.categories)}
    return Scores(ids=[r.id for r in rows], categories=list(categories),
                  scores={c: probs[:, col[c]].astype(float) for c in categories},
                  thresholds={c: float(clf.thresholds[c]) for c in categories},
                  source={"kind": "detector", "name": "classifier", "version": clf.version,
                          "model_dir": str(model_dir)})


def _evaluate(name: str, path: Path, champion: Path, candidate: Path, categories: Sequence[str],
              config: LoopConfig, out: Path) -> dict[str, Any]:
    rows = load_rows(path)
    champ = build_result(rows, _score(champion, rows, categories), path, n_boot=config.n_boot, seed=config.seed)
    cand = build_result(rows, _score(candidate, rows, categories), path, n_boot=config.n_boot, seed=config.seed)
    comparison = compare(champ, cand, metrics=(config.gate_metric, "roc_auc", "f1", "recall", "fpr"),
                         n_boot=config.n_boot, seed=config.seed)
    failures = gate(comparison, metric=config.gate_metric, max_drop=config.max_drop)
    (out / f"eval-{name}-champion.json").write_text(json.dumps(champ, default=_jsonable) + "\n", encoding="utf-8")
    (out / f"eval-{name}-candidate.json").write_text(json.dumps(cand, default=_jsonable) + "\n", encoding="utf-8")
    (out / f"compare-{name}.json").write_text(json.dumps(comparison, default=_jsonable, indent=1) + "\n",
                                              encoding="utf-8")
    view = comparison["views"].get("macro", {}).get(config.gate_metric) or {}
    return {"dataset": str(path), "sha256": _file_sha(path), "rows": len(rows),
            "macro": {k: view.get(k) for k in ("baseline", "candidate", "delta", "lo", "hi")},
            "failures": [{k: f.get(k) for k in ("view", "metric", "baseline", "candidate", "delta", "lo", "hi")}
                         for f in failures]}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


# -- shadow ------------------------------------------------------------------------------------
def _absolute_paths(node: Any, base: Path) -> Any:
    """The policy tree with every relative path that names a file beside the policy made
    absolute, so the candidate's copy of the policy reads the same term lists and tests."""
    if isinstance(node, dict):
        return {k: _absolute_paths(v, base) for k, v in node.items()}
    if isinstance(node, list):
        return [_absolute_paths(v, base) for v in node]
    if isinstance(node, str) and node and "\n" not in node and len(node) < 512 and not Path(node).is_absolute():
        candidate = base / node
        try:
            if candidate.exists():
                return str(candidate.resolve())
        except OSError:
            return node
    return node


def _put_in_shadow(config: LoopConfig, name: str, model_dir: Path) -> dict[str, Any]:
    from referee.policy import Policy

    try:
        doc = yaml.safe_load(config.policy.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LoopError(f"cannot read the champion policy {config.policy}: {exc}") from exc
    doc = _absolute_paths(doc, config.policy.resolve().parent)
    detectors = doc.get("detectors") or {}
    if "classifier" not in detectors:
        raise LoopError(f"policy {config.policy} configures no classifier detector: a candidate model has "
                        f"nothing to replace (fix: add detectors.classifier to the policy)")
    detectors["classifier"] = {**(detectors["classifier"] or {}), "model": str(model_dir.resolve())}
    detectors["classifier"].pop("models_dir", None)
    config.candidates_dir.mkdir(parents=True, exist_ok=True)
    policy_path = config.candidates_dir / f"{name}.policy.yaml"
    policy_path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    Policy.from_file(policy_path)  # the candidate's policy must load as the champion's does
    engine_path = config.candidates_dir / f"{name}.json"
    engine_path.write_text(json.dumps({"policy": str(policy_path.resolve())}, indent=1) + "\n", encoding="utf-8")
    [candidate] = load_candidates([engine_path])
    return {"candidate": candidate.name, "engine_config": str(engine_path), "policy": str(policy_path),
            "policy_sha256": _file_sha(policy_path), "enable": f"REFEREE_SHADOW={engine_path}"}


# -- the run ------------------------------------------------------------------------------------
def run_loop(config: LoopConfig, desk: ReviewDesk, trainer: Trainer | None = None,
             progress: Callable[[str], None] | None = None) -> LoopRun:
    """One run of the loop (module docstring). Safe to repeat: the same inputs answer from the
    finished run's record."""
    say = progress or (lambda _msg: None)
    trainer = trainer or HeadTrainer()
    started = _now()
    registry = ModelRegistry(config.registry)
    champion_dir = registry.resolve(config.champion)
    champion_card = artifact.read_card(champion_dir)
    categories = list(champion_card.categories)
    if config.gate_metric not in ("auprc", "roc_auc", "f1", "recall", "precision"):
        raise LoopError(f"gate_metric {config.gate_metric!r} is not a gateable metric; use auprc, roc_auc, f1, "
                        f"recall or precision")

    # 1. export
    export = export_labels(desk, categories, since=config.since)
    labels = export.rows
    labels_bytes = _jsonl(labels)
    labels_sha = _sha(labels_bytes)
    finished = _runs(config)
    last = finished[-1] if finished else None
    seen = set(last.labels.get("signatures", [])) if last else set()
    new_ids = {r["id"] for r in labels if _label_signature(r) not in seen}
    label_info = {"rows": len(labels), "sha256": labels_sha, "new": len(new_ids), "conflicts": export.conflicts,
                  "erased": export.erased, "since": config.since}
    say(f"labels: {len(labels)} ({len(new_ids)} new)")
    if last is not None and (last.labels.get("sha256") == labels_sha or len(new_ids) < config.min_new_labels):
        _log(config, last.run_id, "export", **label_info, outcome="no new labels: nothing to do")
        return last.model_copy(update={"reused": True})
    if len(new_ids) < config.min_new_labels:
        raise LoopError(f"{len(new_ids)} labels to learn from, fewer than min_new_labels={config.min_new_labels} "
                        f"(fix: review more items, or lower --min-new-labels)")

    inputs = {"labels": labels_sha, "champion": champion_card.version,
              "eval_sets": {str(p): _file_sha(p) for p in config.eval_sets},
              "base_train": _file_sha(config.base_train) if config.base_train else None,
              "base_dev": _file_sha(config.base_dev) if config.base_dev else None,
              "config": config.model_dump(mode="json", exclude={"registry", "shadow_dir"})}
    run_id = "run_" + _sha(json.dumps(inputs, sort_keys=True).encode())[:16]
    out = config.loop_dir / "runs" / run_id
    if (out / RUN_FILE).exists():
        done = LoopRun.model_validate_json((out / RUN_FILE).read_text(encoding="utf-8"))
        _log(config, run_id, "reuse", outcome="finished before; answered from its record")
        return done.model_copy(update={"reused": True})
    if out.exists():  # an interrupted run: start it again from nothing
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "labels.jsonl").write_bytes(labels_bytes)
    _log(config, run_id, "export", **label_info)

    # 2. the training set
    eval_keys = {dedup_key(r.text) for p in config.eval_sets for r in load_rows(p)}
    train_rows, dev_rows, fresh_rows, left_out = _build_sets(config, labels, new_ids, categories, eval_keys)
    if not train_rows or not dev_rows:
        raise LoopError(f"the training set is empty after dedup and leakage checks (train {len(train_rows)}, "
                        f"dev {len(dev_rows)} rows; left out {left_out}) (fix: pass --base-train, or label more)")
    data = {"train": _write(out / "train.jsonl", train_rows), "dev": _write(out / "dev.jsonl", dev_rows),
            "left_out": left_out}
    if fresh_rows:
        data["fresh"] = _write(out / "fresh.jsonl", fresh_rows)
    _log(config, run_id, "dataset", **data)
    say(f"train {len(train_rows)}, dev {len(dev_rows)}, fresh {len(fresh_rows)} rows; left out {left_out}")

    # 3. train and build
    name = f"loop-{run_id.removeprefix('run_')}"
    model_dir = config.registry / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    train_config = {**champion_card.training.get("config", {}), **config.train_overrides, "name": name,
                    "categories": categories}
    provenance = {"loop": {"run_id": run_id, "labels_sha256": labels_sha, "labels_rows": len(labels),
                           "champion": champion_card.version, "data": data,
                           "eval_sets": inputs["eval_sets"]}}
    say(f"training {name}")
    card = trainer.train(out / "train.jsonl", out / "dev.jsonl", model_dir, train_config, provenance)
    trainer.build(model_dir)
    candidate = {"name": name, "version": card.version, "path": str(model_dir), "head_sha256": card.head_sha256}
    _log(config, run_id, "train", **candidate, train_sha256=data["train"]["sha256"],
         dev_sha256=data["dev"]["sha256"])

    # 4. evaluate, 5. gate
    sets = {f"fixed{i}-{p.stem}": p for i, p in enumerate(config.eval_sets)}
    if fresh_rows:
        sets["fresh"] = out / "fresh.jsonl"
    evaluations = {}
    for set_name, path in sets.items():
        say(f"evaluating on {set_name}")
        evaluations[set_name] = _evaluate(set_name, path, champion_dir, model_dir, categories, config, out)
    _log(config, run_id, "evaluate", sets={k: {"sha256": v["sha256"], "macro": v["macro"]}
                                         for k, v in evaluations.items()})
    failures = {k: v["failures"] for k, v in evaluations.items() if v["failures"]}
    gate_result = {"metric": config.gate_metric, "max_drop": config.max_drop, "passed": not failures,
                   "failures": failures}
    _log(config, run_id, "gate", **gate_result)

    # 6. shadow
    shadow = _put_in_shadow(config, name, model_dir) if not failures else None
    if shadow is not None:
        _log(config, run_id, "shadow", **shadow)
    run = LoopRun(run_id=run_id, status="in_shadow" if shadow else "gate_failed", started_at=started,
                  finished_at=_now(), labels={**label_info, "signatures": sorted(_label_signature(r) for r in labels)},
                  data=data, champion={"name": config.champion, "version": champion_card.version,
                                       "path": str(champion_dir)},
                  candidate=candidate, evaluations=evaluations, gate=gate_result, shadow=shadow)
    (out / RUN_FILE).write_text(run.model_dump_json(indent=1) + "\n", encoding="utf-8")
    _log(config, run_id, "done", status=run.status)
    return run


def promote(config: LoopConfig, run_id: str, shadow_decisions: int, min_shadow: int = 500,
            agreement: float | None = None) -> Path:
    """Make a run's candidate the champion: only after its gate passed and it decided at least
    ``min_shadow`` items in shadow (the caller counts them: ``ShadowStore.shadow_decisions``)."""
    path = config.loop_dir / "runs" / run_id / RUN_FILE
    if not path.exists():
        known = ", ".join(r.run_id for r in _runs(config)) or "(none)"
        raise LoopError(f"no finished loop run {run_id!r} in {config.loop_dir}; finished runs: {known}")
    run = LoopRun.model_validate_json(path.read_text(encoding="utf-8"))
    if run.status != "in_shadow" or run.candidate is None or run.shadow is None:
        raise LoopError(f"run {run_id} did not pass its gate ({run.gate.get('failures')}); its candidate cannot be "
                        f"promoted (fix: run the loop again with more labels)")
    if shadow_decisions < min_shadow:
        raise LoopError(f"candidate {run.shadow['candidate']!r} has {shadow_decisions} shadow decisions, fewer than "
                        f"--min-shadow {min_shadow}: let it run in shadow longer "
                        f"({run.shadow['enable']}), then promote")
    alias = ModelRegistry(config.registry).promote(run.candidate["name"], config.champion)
    _log(config, run_id, "promote", candidate=run.candidate["name"], version=run.candidate["version"],
         alias=config.champion, shadow_decisions=shadow_decisions, agreement=agreement,
         previous=run.champion.get("version"))
    return alias
