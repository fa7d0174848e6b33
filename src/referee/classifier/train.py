"""Training: a multi-label head over pooled MiniLM embeddings.

Two modes:

``head``
    The encoder is frozen; embeddings are computed once and cached on disk
    (keyed by text sha256 + encoder id), so retraining the head takes seconds.
    This is the default because it trains in minutes on a laptop CPU and the
    resulting artifact is a few kilobytes on top of a pip-installed encoder.
``finetune``
    All encoder layers train too (mixed precision on a GPU). Better on
    in-domain data, but the artifact then carries its own 90 MB encoder.

Labels: one column per category, 1, 0 or unknown (missing/null). Unknown is
masked out of the loss: a spam corpus that says nothing about hate must not
teach the model that its texts are not hateful.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from referee.classifier import artifact
from referee.classifier.calibrate import apply_platt, choose_threshold, fit_all, sigmoid
from referee.classifier.metrics import ece, macro_auprc, per_category
from referee.classifier.text import PLACEHOLDERS, TEXT_RECIPES
from referee.errors import InputError

#: Categories with fewer train positives than this are flagged as low-data on the card.
LOW_DATA_TRAIN = 100
LOW_DATA_DEV = 20


@dataclass
class LabelledSet:
    """Rows of a referee dataset file, labels as float with NaN = unknown."""

    path: str
    ids: list[str]
    texts: list[str]
    labels: np.ndarray
    groups: list[str | None] = field(default_factory=list)
    sha256: str = ""
    sources: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self, categories: list[str]) -> dict[str, dict[str, int]]:
        out = {}
        for c, name in enumerate(categories):
            col = self.labels[:, c]
            out[name] = {"pos": int(np.nansum(col == 1)), "neg": int(np.nansum(col == 0)),
                         "unknown": int(np.isnan(col).sum())}
        return out


def read_dataset(path: str | Path, categories: list[str]) -> LabelledSet:
    """Read a referee JSONL dataset; errors name the line, the field and the value."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read dataset: {exc.strerror}", where=str(path)) from exc
    ids, texts, rows, groups = [], [], [], []
    sources: list[str | None] = []
    for lineno, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg})", where=where) from exc
        if not isinstance(obj, dict):
            raise InputError("each line must be a JSON object with id, text and category fields", where=where)
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"'text' must be a non-empty string, got {text!r:.60}", where=where)
        row = []
        for cat in categories:
            value = obj.get(cat)
            if value is None:
                row.append(math.nan)
            elif value in (0, 1) and not isinstance(value, float | str):
                row.append(float(value))
            else:
                raise InputError(f"category {cat!r} must be 1, 0 or null (unknown), got {value!r}", where=where)
        ids.append(str(obj.get("id", f"line{lineno}")))
        texts.append(text)
        rows.append(row)
        g = obj.get("groups")
        groups.append(json.dumps(g, sort_keys=True) if g is not None else None)
        meta = obj.get("meta")
        sources.append(str(meta["source"]) if isinstance(meta, dict) and meta.get("source") else None)
    if not texts:
        raise InputError("dataset has no rows", where=str(path))
    labels = np.asarray(rows, dtype=np.float32).reshape(len(texts), len(categories))
    return LabelledSet(str(path), ids, texts, labels, groups, hashlib.sha256(raw).hexdigest(), sources)


class TrainConfig(BaseModel):
    """Training knobs; stored on the card so a model can be re-trained exactly."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] = Field(min_length=1)
    mode: Literal["head", "finetune"] = "head"
    name: str = "model"
    seed: int = 13
    max_tokens: int = Field(default=128, ge=8, le=512)
    text_recipe: str = Field(default=PLACEHOLDERS, description="How text becomes tokens; see referee.classifier.text.")
    hidden: int = Field(default=0, ge=0, description="Hidden width of an MLP head; 0 = linear head.")
    dropout: float = Field(default=0.1, ge=0, lt=1)
    epochs: int = Field(default=80, ge=1)
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=1e-2, gt=0, description="Head learning rate (embeddings are unit-norm, so weights must grow large).")
    weight_decay: float = Field(default=1e-4, ge=0)
    patience: int = Field(default=10, ge=1)
    max_pos_weight: float = Field(default=20.0, ge=1)
    source_balance: float = Field(default=0.0, ge=0, le=1, description=(
        "Row weight n_source ** -source_balance (rows' meta.source): 0 = rows alike, 1 = sources alike."))
    target_precision: float = Field(default=0.9, gt=0, le=1)
    cache_dir: str = ".cache/embeddings"
    encoder_lr: float = Field(default=3e-5, gt=0, description="finetune mode: learning rate of the encoder.")
    train_layers: int = Field(default=0, ge=0, description=(
        "finetune mode: train only the top N transformer layers (0 = every layer and the embeddings). "
        "The model directory then stores only those layers, in fp16: megabytes, not the 90 MB encoder."))
    progress: bool = True

    @model_validator(mode="after")
    def _layers_need_finetune(self) -> TrainConfig:
        if self.train_layers and self.mode != "finetune":
            raise ValueError(f"train_layers={self.train_layers} needs mode='finetune' (a head trains no layer)")
        return self

    @field_validator("text_recipe")
    @classmethod
    def _known_recipe(cls, value: str) -> str:
        if value not in TEXT_RECIPES:
            raise ValueError(f"text_recipe must be one of {', '.join(TEXT_RECIPES)}, got {value!r}")
        return value


def _torch() -> Any:
    from referee.classifier.encoder import _torch as load

    return load()


def seed_everything(seed: int) -> None:
    torch = _torch()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def build_head(dim: int, n_out: int, hidden: int = 0, dropout: float = 0.1) -> Any:
    torch = _torch()
    nn = torch.nn
    if hidden:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                             nn.Linear(hidden, n_out))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_out))


def masked_bce(logits: Any, targets: Any, pos_weight: Any | None = None, row_weight: Any | None = None) -> Any:
    """Binary cross-entropy over known labels only (targets NaN = unknown).

    The mean is over known entries, so a batch that happens to be mostly
    unknown for a category does not shrink that category's gradient to zero.
    ``row_weight`` (one per row, mean about 1) scales each row's terms.
    """
    torch = _torch()
    known = ~torch.isnan(targets)
    safe = torch.where(known, targets, torch.zeros_like(targets))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, safe, pos_weight=pos_weight, reduction="none")
    if row_weight is not None:
        loss = loss * row_weight[:, None]
    loss = torch.where(known, loss, torch.zeros_like(loss))
    return loss.sum() / known.sum().clamp(min=1)


def source_weights(sources: list[str | None], alpha: float) -> np.ndarray:
    """Row weights ``n_source ** -alpha``, scaled to mean 1: alpha 0 weighs every row alike,
    1 every source alike. A source of 25k tweets then cannot set the decision boundary
    for text from everywhere else on its own."""
    from collections import Counter

    counts = Counter(sources)
    w = np.array([counts[s] ** -alpha for s in sources], dtype=np.float64)
    out: np.ndarray = (w / w.mean()).astype(np.float32) if len(w) else w.astype(np.float32)
    return out


def pos_weights(labels: np.ndarray, cap: float) -> np.ndarray:
    """neg/pos per category over known labels, capped: rare categories count more,
    without letting a category with 3 positives dominate the loss."""
    pos = np.nansum(labels == 1, axis=0).astype(np.float64)
    neg = np.nansum(labels == 0, axis=0).astype(np.float64)
    weights: np.ndarray = np.clip(neg / np.maximum(pos, 1.0), 1.0, cap).astype(np.float32)
    return weights


@dataclass
class TrainResult:
    card: artifact.ModelCard
    dev_logits: np.ndarray
    test_logits: np.ndarray | None
    log: list[dict[str, Any]]


def train(
    train_path: str | Path,
    dev_path: str | Path,
    out_dir: str | Path,
    config: TrainConfig,
    test_path: str | Path | None = None,
    provenance: dict[str, Any] | None = None,
    encoder_factory: Any = None,
) -> TrainResult:
    """Train, calibrate on dev, pick thresholds, and write a model directory.

    ``encoder_factory`` (returns ``(encoder, tokenizer)``) lets tests swap in a
    tiny encoder; by default the packaged MiniLM is used.
    """
    from referee.classifier import encoder as enc

    seed_everything(config.seed)
    cats = list(config.categories)
    train_set = read_dataset(train_path, cats)
    dev_set = read_dataset(dev_path, cats)
    test_set = read_dataset(test_path, cats) if test_path else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    factory = encoder_factory or enc.default_encoder_factory()
    encoder_key = getattr(factory, "encoder_id", None) or enc.encoder_id()

    if config.mode == "head":
        cache = enc.EmbeddingCache(config.cache_dir, encoder_key, config.max_tokens, config.text_recipe)
        xs = {name: cache.embed(s.texts, factory, progress=config.progress)
              for name, s in (("train", train_set), ("dev", dev_set), ("test", test_set)) if s is not None}
        weights = source_weights(train_set.sources, config.source_balance) if config.source_balance else None
        head, log = _fit_head(xs["train"], train_set.labels, xs["dev"], dev_set.labels, config, out, weights)
        logits = {k: _head_logits(head, v) for k, v in xs.items()}
        encoder_module = None
        embed_dim = int(xs["train"].shape[1])
    else:
        encoder_module, tokenizer = factory()
        embed_dim = int(encoder_module.bert.config.hidden_size)
        head, log = _finetune(encoder_module, tokenizer, train_set, dev_set, config, out)
        # Calibration and metrics read dev and test only (a forward pass over train costs minutes on a CPU).
        logits = {name: _model_logits(encoder_module, head, tokenizer, s.texts, config)
                  for name, s in (("dev", dev_set), ("test", test_set)) if s is not None}

    # Calibrate and choose operating points on dev.
    dev_logits = logits["dev"]
    platt = fit_all(dev_logits, dev_set.labels)
    dev_probs = apply_platt(dev_logits, platt)
    thresholds = {c: choose_threshold(dev_probs[:, i], dev_set.labels[:, i], config.target_precision)
                  for i, c in enumerate(cats)}
    metrics: dict[str, Any] = {"dev": _metrics(dev_logits, dev_probs, dev_set.labels, cats)}
    if test_set is not None:
        test_probs = apply_platt(logits["test"], platt)
        metrics["test"] = _metrics(logits["test"], test_probs, test_set.labels, cats)

    head_path = _save_head(head, out / artifact.HEAD)
    encoder_sha256 = ""
    if encoder_module is not None:
        encoder_sha256 = artifact.sha256_file(
            _save_encoder(encoder_module, config.train_layers, out / artifact.ENCODER_WEIGHTS))

    train_counts = train_set.counts(cats)
    dev_counts = dev_set.counts(cats)
    low = {}
    for c in cats:
        tp, dp = train_counts[c]["pos"], dev_counts[c]["pos"]
        if tp < LOW_DATA_TRAIN or dp < LOW_DATA_DEV:
            low[c] = f"{tp} train / {dp} dev positives: scores and thresholds are rough"
    files = {"train": train_set, "dev": dev_set, **({"test": test_set} if test_set else {})}
    card = artifact.ModelCard(
        name=config.name,
        categories=cats,
        encoder=encoder_key,
        finetuned_encoder=config.mode == "finetune",
        max_tokens=config.max_tokens,
        text_recipe=config.text_recipe,
        embed_dim=embed_dim,
        head_hidden=config.hidden,
        calibration={c: platt[i] for i, c in enumerate(cats)},
        thresholds=thresholds,
        training={
            "config": config.model_dump(exclude={"progress", "cache_dir"}),
            "data": {k: {"file": Path(s.path).name, "sha256": s.sha256, "rows": len(s), "labels": s.counts(cats)}
                     for k, s in files.items()},
            "epochs_run": len(log),
            "best_epoch": max(log, key=lambda r: r["dev_macro_auprc"])["epoch"] if log else None,
            **(provenance or {}),
        },
        metrics=metrics,
        low_data_categories=low,
        library_versions=artifact.library_versions(),
        head_sha256=artifact.sha256_file(head_path),
        encoder_sha256=encoder_sha256,
    )
    artifact.write_card(out, card)
    return TrainResult(card, dev_logits, logits.get("test"), log)


def _metrics(logits: np.ndarray, probs: np.ndarray, labels: np.ndarray, cats: list[str]) -> dict[str, Any]:
    raw = sigmoid(logits)
    table = per_category(probs, labels, cats)
    for i, c in enumerate(cats):
        table[c]["ece_raw"] = round(ece(raw[:, i], labels[:, i]), 4) if table[c]["n"] else math.nan
        table[c]["ece_calibrated"] = round(ece(probs[:, i], labels[:, i]), 4) if table[c]["n"] else math.nan
    return {"macro_auprc": round(macro_auprc(probs, labels), 4), "per_category": table}


def _fit_head(
    x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray, y_dev: np.ndarray, config: TrainConfig, out: Path,
    row_weight: np.ndarray | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Mini-batch AdamW with early stopping on dev macro AUPRC (best epoch restored).

    Runs on one thread: the ops are tiny, and on a loaded machine two intra-op
    threads made each epoch 9x slower (measured: 4.1 s vs 0.45 s on 29k rows).
    """
    torch = _torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_head_loop(x_train, y_train, x_dev, y_dev, config, out, row_weight)
    finally:
        torch.set_num_threads(threads)


def _fit_head_loop(
    x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray, y_dev: np.ndarray, config: TrainConfig, out: Path,
    row_weight: np.ndarray | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    torch = _torch()
    head = build_head(x_train.shape[1], y_train.shape[1], config.hidden, config.dropout)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    pw = torch.from_numpy(pos_weights(y_train, config.max_pos_weight))
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xd, yd = torch.from_numpy(x_dev), torch.from_numpy(y_dev)
    wt = torch.from_numpy(row_weight) if row_weight is not None else None
    gen = torch.Generator().manual_seed(config.seed)
    best, best_state, stale, log = -1.0, None, 0, []
    epochs = range(1, config.epochs + 1)
    if config.progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc="head", unit="epoch")
    t0 = time.perf_counter()
    with open(out / artifact.TRAIN_LOG, "w", encoding="utf-8") as logf:
        for epoch in epochs:
            head.train()
            perm = torch.randperm(len(xt), generator=gen)
            total = 0.0
            for i in range(0, len(xt), config.batch_size):
                idx = perm[i : i + config.batch_size]
                loss = masked_bce(head(xt[idx]), yt[idx], pw, wt[idx] if wt is not None else None)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            head.eval()
            with torch.no_grad():
                dl = head(xd)
                dev_loss = float(masked_bce(dl, yd, pw))
            score = macro_auprc(dl.numpy(), y_dev)
            row = {"epoch": epoch, "train_loss": round(total / len(xt), 5), "dev_loss": round(dev_loss, 5),
                   "dev_macro_auprc": round(score, 5), "elapsed_s": round(time.perf_counter() - t0, 2)}
            logf.write(json.dumps(row) + "\n")
            log.append(row)
            if config.progress:
                epochs.set_postfix(dev_auprc=f"{score:.4f}")  # type: ignore[attr-defined]
            if score > best + 1e-5:
                best, stale = score, 0
                best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
            else:
                stale += 1
                if stale >= config.patience:
                    break
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return head, log


def _head_logits(head: Any, x: np.ndarray) -> np.ndarray:
    torch = _torch()
    head.eval()
    with torch.no_grad():
        logits: np.ndarray = head(torch.from_numpy(x)).numpy()
    return logits


def _model_logits(encoder: Any, head: Any, tokenizer: Any, texts: list[str], config: TrainConfig) -> np.ndarray:
    from referee.classifier.encoder import embed

    device = next(encoder.parameters()).device
    emb = embed(encoder.cpu(), tokenizer, texts, config.max_tokens, 64, progress=False, recipe=config.text_recipe)
    encoder.to(device)
    return _head_logits(head.cpu(), emb)


def _finetune(
    encoder: Any, tokenizer: Any, train_set: LabelledSet, dev_set: LabelledSet, config: TrainConfig, out: Path
) -> tuple[Any, list[dict[str, Any]]]:
    """End-to-end training; bf16 autocast on a GPU, fp32 on CPU (CPU bf16 is slower here)."""
    torch = _torch()
    from referee.classifier.text import first_windows, pad

    device = "cuda" if torch.cuda.is_available() else "cpu"
    head = build_head(int(encoder.bert.config.hidden_size), train_set.labels.shape[1], config.hidden, config.dropout)
    tuned = _tuned_prefixes(encoder.bert, config.train_layers)
    for name, param in encoder.bert.named_parameters():
        # Frozen layers build no autograd graph: their forward is all they cost.
        param.requires_grad_(tuned is None or name.startswith(tuned))
    encoder.to(device).train()
    head.to(device).train()
    opt = torch.optim.AdamW(
        [{"params": [p for p in encoder.parameters() if p.requires_grad], "lr": config.encoder_lr},
         {"params": head.parameters(), "lr": config.lr}],
        weight_decay=config.weight_decay,
    )
    pw = torch.from_numpy(pos_weights(train_set.labels, config.max_pos_weight)).to(device)
    windows = first_windows(tokenizer, train_set.texts, config.max_tokens, config.text_recipe)
    rng = np.random.default_rng(config.seed)
    # Length-bucketed batches in random order: dynamic padding without a fixed curriculum.
    order = np.argsort([len(w) for w in windows], kind="stable")
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    best, best_state, stale, log = -1.0, None, 0, []
    t0 = time.perf_counter()
    with open(out / artifact.TRAIN_LOG, "w", encoding="utf-8") as logf:
        for epoch in range(1, config.epochs + 1):
            encoder.train()
            head.train()
            rng.shuffle(batches)
            total = 0.0
            it = batches
            if config.progress:
                from tqdm import tqdm

                it = tqdm(batches, desc=f"finetune {epoch}", unit="batch")
            for idx in it:
                ids, mask = pad([windows[i] for i in idx])
                y = torch.from_numpy(train_set.labels[idx]).to(device)
                with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
                    logits = head(encoder(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)))
                loss = masked_bce(logits.float(), y, pw)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            encoder.eval()
            head.eval()
            dl = _model_logits(encoder, head, tokenizer, dev_set.texts, config)
            head.to(device)
            score = macro_auprc(dl, dev_set.labels)
            row = {"epoch": epoch, "train_loss": round(total / len(windows), 5), "dev_macro_auprc": round(score, 5),
                   "elapsed_s": round(time.perf_counter() - t0, 2)}
            logf.write(json.dumps(row) + "\n")
            log.append(row)
            if score > best + 1e-5:
                best, stale = score, 0
                best_state = ({k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
                              {k: v.detach().cpu().clone() for k, v in head.state_dict().items()})
            else:
                stale += 1
                if stale >= config.patience:
                    break
    if best_state is not None:
        encoder.load_state_dict(best_state[0])
        head.load_state_dict(best_state[1])
    encoder.cpu().eval()
    head.cpu().eval()
    return head, log


def _tuned_prefixes(bert: Any, train_layers: int) -> tuple[str, ...] | None:
    """The parameter-name prefixes a partial fine-tune trains (None: every parameter)."""
    n = int(bert.config.num_hidden_layers)
    if train_layers == 0 or train_layers >= n:
        return None
    return tuple(f"encoder.layer.{i}." for i in range(n - train_layers, n))


def _save_encoder(encoder: Any, train_layers: int, path: Path) -> Path:
    """All of the encoder's weights, or for a partial fine-tune only its trained layers in fp16
    (``build_encoder`` lays them over the packaged weights)."""
    from safetensors.torch import save_file

    state = encoder.bert.state_dict()
    tuned = _tuned_prefixes(encoder.bert, train_layers)
    if tuned is None:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        save_file({k: v.half().contiguous() for k, v in state.items() if k.startswith(tuned)}, str(path),
                  metadata={"partial": "1"})
    return path


def _save_head(head: Any, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path))
    return path


def load_head(model_dir: str | Path, card: artifact.ModelCard) -> Any:
    """Rebuild the torch head of a model directory (for export and tests)."""
    from safetensors.torch import load_file

    head = build_head(card.embed_dim, len(card.categories), card.head_hidden, 0.0)
    head.load_state_dict(load_file(str(Path(model_dir) / artifact.HEAD)))
    head.eval()
    return head
