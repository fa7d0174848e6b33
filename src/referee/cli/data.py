"""`referee data`: convert public datasets to referee's format, split them, describe them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from referee.errors import ConfigError, RefereeError

data_app = typer.Typer(help="Labelled datasets: import, split, describe.", no_args_is_help=True)
#: markup=False: paths, names and dataset fields are printed as they are, never read as Rich markup.
_out = Console(markup=False)
_err = Console(stderr=True, markup=False)


def _fail(exc: RefereeError) -> typer.Exit:
    _err.print(Text.assemble(("error:", "red"), f" {exc}"))
    return typer.Exit(code=2)


@data_app.command("formats")
def formats() -> None:
    """List the source formats `referee data import` understands."""
    from referee.eval.datasets import FORMATS

    table = Table(title="Dataset formats")
    for col in ("format", "description", "licence", "trainable", "eval only"):
        table.add_column(col)
    for name, fmt in sorted(FORMATS.items()):
        table.add_row(name, fmt.description, fmt.licence, "yes" if fmt.trainable else "no",
                      "yes" if fmt.eval_only else "")
    _out.print(table)


@data_app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="The dataset folder (or one of its files).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Source format; see `referee data formats`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the JSONL (a .card.json goes beside it).")],
    mapping: Annotated[Path | None, typer.Option(help="YAML overriding the default label mapping.")] = None,
) -> None:
    """Convert a public dataset to referee's JSONL format and write its card."""
    from referee.eval.datasets import describe, import_with_card, load_mapping, write_card, write_rows

    try:
        override = load_mapping(mapping) if mapping else None
        rows, card = import_with_card(fmt, source, override)
    except RefereeError as exc:
        raise _fail(exc) from exc
    write_rows(rows, out)
    write_card(card, out)
    _print_card(describe(rows, card))
    _out.print(f"wrote {len(rows)} rows to {out}")


def _parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--ratios must look like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3:
        raise ConfigError(f"--ratios needs three numbers (train,dev,test), got {text!r}")
    return parts[0], parts[1], parts[2]


@data_app.command("split")
def split(
    path: Annotated[Path, typer.Argument(help="A referee dataset (JSONL).")],
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of the split; record it with the results.")] = 13,
    ratios: Annotated[str, typer.Option(help="train,dev,test fractions.")] = "0.8,0.1,0.1",
    out: Annotated[Path | None, typer.Option(help="Write here instead of rewriting PATH.")] = None,
    resplit: Annotated[bool, typer.Option(help="Also re-split rows that already have a split (official splits).")]
    = False,
) -> None:
    """Assign train/dev/test: deterministic, stratified, near-duplicates kept together."""
    from referee.eval.datasets import describe, load_rows, read_card, split_rows, write_card, write_rows

    try:
        parsed = _parse_ratios(ratios)
        rows = split_rows(load_rows(path), seed=seed, ratios=parsed, keep_existing=not resplit)
        card = read_card(path)
    except RefereeError as exc:
        raise _fail(exc) from exc
    target = out or path
    write_rows(rows, target)
    if card is not None:
        card.split_seed, card.split_ratios = seed, parsed
        write_card(card, target)
    info = describe(rows, card)
    _out.print(f"split {len(rows)} rows (seed {seed}): "
               + ", ".join(f"{k} {v}" for k, v in info["splits"].items()) + f" -> {target}")


@data_app.command("card")
def card(
    path: Annotated[Path, typer.Argument(help="A referee dataset (JSONL).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
) -> None:
    """Describe a dataset: source, licence, hashes, label distribution, split sizes."""
    from referee.eval.datasets import describe, load_rows, read_card

    try:
        info = describe(load_rows(path), read_card(path), path)
    except RefereeError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        _print_card(info)


def _print_card(info: dict[str, Any]) -> None:
    head = Table(show_header=False, title=f"Dataset card: {info.get('file') or info.get('format')}")
    head.add_column("field", style="bold")
    head.add_column("value")
    for key in ("format", "source", "licence", "trainable", "eval_only", "rows", "file_sha256", "split_seed",
                "merged_duplicates", "notes"):
        if info.get(key) not in (None, "", {}):
            head.add_row(key, str(info[key]))
    for name, digest in (info.get("source_files") or {}).items():
        head.add_row(f"sha256 {name}", digest)
    if info.get("dropped_unmapped"):
        head.add_row("dropped (unmapped)", ", ".join(f"{k}: {v}" for k, v in info["dropped_unmapped"].items()))
    head.add_row("splits", ", ".join(f"{k}: {v}" for k, v in info["splits"].items()))
    _out.print(head)
    labels = Table(title="Labels (1 / 0 / unknown)")
    labels.add_column("category")
    splits = list(info["labels_by_split"])
    for name in ["all", *splits] if len(splits) > 1 else ["all"]:
        labels.add_column(name, justify="right")
    for cat, counts in info["labels"].items():
        if not counts["positive"] and not counts["negative"]:
            continue
        cells = [f"{counts['positive']} / {counts['negative']} / {counts['unknown']}"]
        if len(splits) > 1:
            for s in splits:
                c = info["labels_by_split"][s][cat]
                cells.append(f"{c['positive']} / {c['negative']} / {c['unknown']}")
        labels.add_row(cat, *cells)
    _out.print(labels)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.add_typer(data_app, name="data")
