"""`referee train` and `referee model ...`: train, inspect, promote and build classifier models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from referee.errors import ConfigError, RefereeError

model_app = typer.Typer(help="Text classifier models: list, card, promote, build.", no_args_is_help=True)
#: markup=False: paths, names and dataset fields are printed as they are, never read as Rich markup.
_out = Console(markup=False)
_err = Console(stderr=True, markup=False)

#: numpy and torch take seeds in [0, 2**32).
MAX_SEED = 2**32 - 1

ModelsOpt = Annotated[
    Optional[Path], typer.Option("--models", help="Registry folder (default: $REFEREE_MODELS or ./models).")
]


def _fail(exc: RefereeError) -> typer.Exit:
    _err.print(Text.assemble(("error:", "red"), f" {exc}"))
    return typer.Exit(code=2)


def _registry(models: Path | None):  # type: ignore[no-untyped-def]
    from referee.classifier.registry import ModelRegistry, default_root

    return ModelRegistry(models or default_root())


def train_cmd(
    data: Annotated[Path, typer.Option("--data", help="Training JSONL (referee dataset format).")],
    dev: Annotated[Path, typer.Option("--dev", help="Dev JSONL: early stopping, calibration, thresholds.")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    categories: Annotated[
        Optional[str], typer.Option("--categories", help="Comma-separated categories (default: the policy's).")
    ] = None,
    policy: Annotated[Optional[Path], typer.Option("--policy", help="Take categories from this policy.")] = None,
    mode: Annotated[str, typer.Option("--mode", help="head (frozen encoder) or finetune (encoder layers too).")] = "head",
    train_layers: Annotated[int, typer.Option(min=0, help=(
        "finetune: train only the top N encoder layers (0 = all); the model directory then holds only those "
        "layers (fp16, about 3.5 MB each) instead of a 90 MB encoder."))] = 0,
    test: Annotated[Optional[Path], typer.Option("--test", help="Held-out JSONL scored once for the card.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Model name (default: the out folder's name).")] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 13,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Max epochs (default 80 head, 3 finetune).")] = None,
    hidden: Annotated[int, typer.Option(min=0, help="MLP head width; 0 = linear head.")] = 0,
    max_tokens: Annotated[int, typer.Option(min=8, max=512, help="Tokens per window.")] = 128,
    text_recipe: Annotated[str, typer.Option(
        help="How text becomes tokens: placeholders-v1 (@handles and links as placeholders) or plain.")
    ] = "placeholders-v1",
    target_precision: Annotated[float, typer.Option(min=0.01, max=1.0,
                                                    help="Dev precision the operating thresholds aim for.")] = 0.9,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Default 128 head, 32 finetune.")] = None,
    lr: Annotated[Optional[float], typer.Option(min=1e-9, max=10.0,
                                                help="Head learning rate (default 1e-2 head, 1e-3 finetune).")] = None,
    encoder_lr: Annotated[Optional[float], typer.Option(
        min=1e-9, max=1.0, help="finetune: the encoder's learning rate (default: TrainConfig's, 3e-5).")] = None,
    cache_dir: Annotated[Path, typer.Option(help="Embedding cache (head mode).")] = Path(".cache/embeddings"),
    provenance: Annotated[
        Optional[Path], typer.Option(help="JSON file merged into the card's training section.")
    ] = None,
    build: Annotated[bool, typer.Option("--build/--no-build", help="Export ONNX graphs after training.")] = True,
) -> None:
    """Train a multi-label text classifier and write a model directory with its card."""
    from referee.classifier.train import TrainConfig, train

    try:
        if categories:
            cats = [c.strip() for c in categories.split(",") if c.strip()]
        elif policy:
            from referee.policy import load_policy

            cats = load_policy(policy).categories
        else:
            raise _bad("--categories", "missing", "pass --categories hate,spam,... or --policy FILE")
        if mode not in ("head", "finetune"):
            raise _bad("--mode", mode, "use 'head' or 'finetune'")
        if train_layers and mode != "finetune":
            raise _bad("--train-layers", str(train_layers), "use it with --mode finetune, or leave it out")
        from referee.classifier.text import TEXT_RECIPES

        if text_recipe not in TEXT_RECIPES:
            raise _bad("--text-recipe", text_recipe, f"use one of {', '.join(TEXT_RECIPES)}")
        cfg = TrainConfig(
            categories=cats, mode=mode, name=name or out.name, seed=seed, hidden=hidden, max_tokens=max_tokens,
            text_recipe=text_recipe, target_precision=target_precision, cache_dir=str(cache_dir),
            epochs=epochs or (80 if mode == "head" else 3),
            batch_size=batch_size or (128 if mode == "head" else 32),
            lr=lr or (1e-2 if mode == "head" else 1e-3),
            patience=10 if mode == "head" else 1,
            train_layers=train_layers, **({} if encoder_lr is None else {"encoder_lr": encoder_lr}),
        )
        extra = json.loads(provenance.read_text(encoding="utf-8")) if provenance else None
        result = train(data, dev, out, cfg, test_path=test, provenance=extra)
        _print_metrics(result.card)
        if build:
            from referee.classifier.export import export

            written = export(out)
            _out.print("exported " + ", ".join(str(p) for p in written.values()))
    except RefereeError as exc:
        raise _fail(exc) from exc
    _out.print(f"wrote model to {out}")


def _bad(option: str, value: str, fix: str) -> RefereeError:
    from referee.errors import ConfigError

    return ConfigError(f"{option}: got {value!r} (fix: {fix})")


def _print_metrics(card) -> None:  # type: ignore[no-untyped-def]
    for split, m in card.metrics.items():
        table = Table(title=f"{card.name}: {split} (macro AUPRC {m['macro_auprc']})")
        for col in ("category", "n", "pos", "AUPRC", "ROC-AUC", "ECE raw", "ECE cal", "threshold"):
            table.add_column(col)
        for cat, row in m["per_category"].items():
            t = card.thresholds[cat]
            table.add_row(cat, str(row["n"]), str(row["positives"]), str(row["auprc"]), str(row["roc_auc"]),
                          str(row.get("ece_raw")), str(row.get("ece_calibrated")), f"{t.threshold:.3f}")
        _out.print(table)


@model_app.command("list")
def list_cmd(models: ModelsOpt = None) -> None:
    """Model versions in the registry, their aliases and whether ONNX graphs are built."""
    try:
        entries = _registry(models).entries()
    except RefereeError as exc:
        raise _fail(exc) from exc
    table = Table(title=f"models in {_registry(models).root}")
    for col in ("name", "aliases", "built", "categories", "created", "version"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.name, ",".join(e.aliases), "yes" if e.built else "no (referee model build)",
                      str(len(e.card.categories)), e.card.created_at, e.card.version)
    _out.print(table)


@model_app.command("promote")
def promote_cmd(
    name: Annotated[str, typer.Argument(help="Model version (folder name in the registry).")],
    alias: Annotated[str, typer.Option(help="Alias to point at it.")] = "champion",
    models: ModelsOpt = None,
) -> None:
    """Point an alias (default `champion`) at a model version."""
    try:
        path = _registry(models).promote(name, alias)
    except RefereeError as exc:
        raise _fail(exc) from exc
    _out.print(f"{alias} -> {name} ({path})")


@model_app.command("card")
def card_cmd(
    model: Annotated[str, typer.Argument(help="Model directory, registry name or alias.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw card.")] = False,
    models: ModelsOpt = None,
) -> None:
    """Show a model card: data, metrics per category, thresholds, low-data warnings."""
    from referee.classifier.artifact import read_card

    try:
        card = read_card(_registry(models).resolve(model))
    except RefereeError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps(card.model_dump(mode="json"), indent=2))
        return
    _out.print(Text.assemble((card.name, "bold"), f"  version {card.version}  created {card.created_at}"))
    _out.print(f"encoder {card.encoder} (finetuned: {card.finetuned_encoder}), max_tokens {card.max_tokens}, "
               f"text recipe {card.text_recipe}")
    for split, info in card.training.get("data", {}).items():
        _out.print(f"{split}: {info['file']} rows={info['rows']} sha256={info['sha256'][:16]}")
    _print_metrics(card)
    for cat, why in card.low_data_categories.items():
        _out.print(Text.assemble(("low data", "yellow"), f" {cat}: {why}"))


@model_app.command("build")
def build_cmd(
    model: Annotated[
        Optional[list[str]], typer.Argument(help="Model directories / names (default: every model in the registry).")
    ] = None,
    models: ModelsOpt = None,
    int8: Annotated[bool, typer.Option("--int8/--no-int8", help="Also write the int8 graph.")] = True,
    force: Annotated[bool, typer.Option(help="Rebuild even if the graphs exist.")] = False,
) -> None:
    """Export ONNX graphs (fp32 + int8) and the tokenizer into model directories, offline."""
    from referee.classifier import artifact
    from referee.classifier.export import export

    reg = _registry(models)
    try:
        paths = [reg.resolve(m) for m in model] if model else [reg.root / n for n in reg.names()]
        if not paths:
            raise _bad("model", "(none)", f"no models in {reg.root}; train one with `referee train`")
        for path in paths:
            if not force and artifact.is_built(path):
                _out.print(f"{path}: already built (use --force to rebuild)")
                continue
            written = export(path, int8=int8)
            _out.print(f"{path}: " + ", ".join(p.name for p in written.values()))
    except RefereeError as exc:
        raise _fail(exc) from exc


model_app.command("export", help="Same as `build`.")(build_cmd)


@model_app.command("corpus")
def corpus_cmd(
    shared: Annotated[Path, typer.Option(help="The shared datasets folder.")] = Path("../shared/datasets"),
    out: Annotated[Path, typer.Option(help="Where to write train/dev/test JSONL.")] = Path("data/default_corpus"),
    policy: Annotated[Path, typer.Option(help="Policy whose examples join the training data.")] = Path(
        "policies/default.yaml"
    ),
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 13,
    mix: Annotated[str, typer.Option(help="Training mix: v1 (the shipped default model's), v2 (adds Toxic Spans, "
                                          "EDOS, ConvAbuse and benign music comments) or v2-no-spans (v2 "
                                          "without Toxic Spans).")] = "v1",
) -> None:
    """Build the default model's training corpus (licence-filtered, seeded splits)."""
    from referee.eval.corpus import MIXES, build

    if mix not in MIXES:
        raise _fail(ConfigError(f"--mix: unknown mix {mix!r}. Available: {', '.join(MIXES)}"))
    try:
        prov = build(shared, out, policy, seed=seed, sources=MIXES[mix])
    except RefereeError as exc:
        raise _fail(exc) from exc
    (out / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
    for split, info in prov["corpus"]["files"].items():
        _out.print(f"{split}: {info['rows']} rows {info['by_source']}")


def register(app: typer.Typer) -> None:
    """Attach `referee train` and the `referee model` group to the main app."""
    app.command("train")(train_cmd)
    app.add_typer(model_app, name="model")
