"""`referee eval cascade`: what a cascade's band costs and buys, so a team can pick it from a table.

For each band, the policy's gated stage (the LLM stage) runs inline for the items
whose earlier signals fall in the band; the table shows the fraction escalated,
the LLM calls and tokens, and the quality of the final decisions against the
earlier stages alone (micro precision/recall/F1 over the labelled categories:
a category counts as predicted when the decision flags it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from referee.cli.detectors import registry_of
from referee.errors import ConfigError, RefereeError

_out = Console()


def parse_band(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split("-", 1))
    except ValueError as exc:
        raise ConfigError(f"--band {text!r}: write it as MIN-MAX, e.g. 0.2-0.8") from exc
    if not 0.0 <= lo < hi <= 1.0:
        raise ConfigError(f"--band {text!r}: need 0 <= MIN < MAX <= 1")
    return lo, hi


def _gated_stage(plan: Any, stage_id: str | None) -> int:
    stages = plan.stages
    if stage_id is not None:
        for i, s in enumerate(stages):
            if s.id == stage_id:
                if i == 0:
                    raise ConfigError(f"--stage {stage_id!r} is the first stage; the cascade needs an earlier one")
                return i
        raise ConfigError(f"--stage {stage_id!r}: the plan's stages are {', '.join(s.id for s in stages)}")
    for i, s in enumerate(stages):
        if i and s.gate is not None and s.gate.band is not None:
            return i
    if len(stages) < 2:
        raise ConfigError("the policy's plan has one stage; a cascade needs a plan: with a gated second stage "
                          "(see docs/llm.md)")
    return len(stages) - 1


def _with_band(plan: Any, index: int, band: tuple[float, float], categories: Sequence[str]) -> Any:
    from referee.policy.plan import Plan, PlanStage
    from referee.policy.schema import Band, Gate

    stage = plan.stages[index]
    gate = stage.gate or Gate()
    cats = gate.band.categories if gate.band is not None else "*"
    new_gate = gate.model_copy(update={"band": Band(categories=cats, min=band[0], max=band[1])})
    band_cats = stage.band_categories if gate.band is not None else frozenset(categories)
    stages = list(plan.stages)
    stages[index] = PlanStage(stage.id, stage.detectors, False, new_gate, band_cats, stage.severe_categories)
    return Plan(tuple(stages))


def _quality(decisions: Sequence[Any], rows: Sequence[Any], categories: Sequence[str]) -> dict[str, float]:
    tp = fp = fn = 0
    for decision, row in zip(decisions, rows):
        flagged = set(decision.categories)
        for c in categories:
            label = row.label(c)
            if label is None:
                continue
            predicted = c in flagged
            tp += predicted and label == 1
            fp += predicted and label == 0
            fn += (not predicted) and label == 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def run_cascade(policy: Any, rows: Sequence[Any], bands: Sequence[tuple[float, float]],
                stage_id: str | None = None, surface: str = "comment", batch_size: int = 64,
                registry: Any = None) -> dict[str, Any]:
    """The cascade table as data: one row for the earlier stages alone, one per band
    (detectors built from ``registry``, by default the installed ones)."""
    from referee.engine import Engine
    from referee.eval.datasets import CATEGORIES
    from referee.eval.runner import to_item

    plan = policy.plan
    index = _gated_stage(plan, stage_id)
    gated = plan.stages[index]
    items = [to_item(r, surface) for r in rows]
    categories = [c for c in policy.categories if c in CATEGORIES]

    def moderate(engine: Any) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(items), batch_size):
            out.extend(engine.moderate_many(items[start:start + batch_size]))
        return out

    earlier = [name for s in plan.stages[:index] for name in s.detectors]
    with Engine.from_policy(policy, only=earlier, registry=registry) as engine:
        base = moderate(engine)
    base_q = _quality(base, rows, categories)
    table: list[dict[str, Any]] = [{"band": "earlier stages only", "escalated": 0.0, "llm_calls": 0, "tokens": 0,
                                    "cost": 0.0, **base_q, "delta_f1": 0.0}]
    for band in bands:
        with Engine.from_policy(policy, plan=_with_band(plan, index, band, policy.categories),
                                registry=registry) as engine:
            decisions = moderate(engine)
            usage: dict[str, float] = {}
            for d in engine.detectors:
                counters = getattr(d, "usage", None)
                if d.name in gated.detectors and counters is not None:
                    for k, v in counters.snapshot().items():
                        usage[k] = usage.get(k, 0) + v
        escalated = sum(any(s.stage == gated.id and s.status in ("ran", "failed") for s in d.stages)
                        for d in decisions)
        failed = sum(any(f.detector in gated.detectors for f in d.failures) for d in decisions)
        q = _quality(decisions, rows, categories)
        table.append({"band": f"{band[0]:g}-{band[1]:g}", "escalated": escalated / max(1, len(items)),
                      "llm_calls": int(usage.get("calls", 0)), "retries": int(usage.get("retries", 0)),
                      "tokens": int(usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)),
                      "cost": float(usage.get("cost", 0.0)), "failed": failed, **q,
                      "delta_f1": q["f1"] - base_q["f1"]})
    return {"policy": {"id": policy.id, "version": policy.version}, "stage": gated.id, "rows": len(items),
            "categories": categories, "table": table}


def print_table(result: dict[str, Any]) -> None:
    table = Table(title=f"cascade: stage {result['stage']!r} of policy {result['policy']['id']} "
                        f"on {result['rows']} rows")
    cols = ["band", "escalated", "llm calls", "tokens", "cost", "precision", "recall", "F1", "ΔF1"]
    for col in cols:
        table.add_column(col, justify="left" if col == "band" else "right")
    for r in result["table"]:
        table.add_row(r["band"], f"{r['escalated']:.1%}", str(r["llm_calls"]), str(r["tokens"]), f"{r['cost']:.4f}",
                      f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", f"{r['delta_f1']:+.3f}")
    Console(width=max(_out.width, 120)).print(table)  # nine columns: never squeezed to 80


def cascade_cmd(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="A labelled referee dataset (JSONL).")],
    policy_path: Annotated[Path, typer.Option("--policy", help="Policy whose plan has the gated (LLM) stage.")]
    = Path("policies/default.yaml"),
    band: Annotated[list[str] | None, typer.Option("--band", help="MIN-MAX of earlier scores that escalate; "
                                                                   "repeatable.")] = None,
    stage: Annotated[str | None, typer.Option(help="The gated stage (default: the first with a band).")] = None,
    surface: Annotated[str, typer.Option(help="Surface of the items.")] = "comment",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N rows.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the table as JSON here.")] = None,
) -> None:
    """For each band: the fraction of items escalated, LLM calls and tokens, and the final decisions'
    quality against the earlier stages alone."""
    from referee.eval.datasets import load_rows
    from referee.policy import load_policy

    try:
        bands = [parse_band(b) for b in (band or ["0.2-0.8", "0.3-0.7", "0.4-0.6"])]
        rows = load_rows(data)[:limit] if limit else load_rows(data)
        result = run_cascade(load_policy(policy_path), rows, bands, stage, surface, registry=registry_of(ctx))
    except RefereeError as exc:
        _out.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    print_table(result)
    if out is not None:
        out.write_text(json.dumps(result, indent=2))
        _out.print(f"wrote {out}")


def register(eval_app: typer.Typer) -> None:
    eval_app.command("cascade")(cascade_cmd)
