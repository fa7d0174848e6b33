"""Policy → staged detection plan, checked when the policy loads.

A plan is ordered stages of detectors. The first stage runs on every item;
a later stage can be gated on what earlier stages found (a score band, the
surface, the jurisdiction, the severity of the category) so an expensive
detector (an LLM) sees only the items where the cheap ones were unsure. A
stage can be ``async``: the decision is returned without it and superseded
when it finishes.

A policy without ``plan:`` gets one stage, ``detect``, of every detector it
configures: the behaviour of policies written before plans existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from referee.model import Signal
from referee.policy.schema import ALL, Gate, PolicyDocument, Stage

#: The id of the one stage a policy without ``plan:`` gets.
DEFAULT_STAGE = "detect"


@dataclass(frozen=True)
class PlanStage:
    id: str
    detectors: tuple[str, ...]
    run_async: bool
    gate: Gate | None
    #: Band categories with ``"*"`` expanded; empty when there is no band.
    band_categories: frozenset[str]
    #: Categories whose severity is in ``gate.severities``.
    severe_categories: frozenset[str]

    def admits(
        self, surface: str, jurisdictions: Sequence[str], prior: Sequence[Signal]
    ) -> tuple[bool, str]:
        """Whether this stage runs for an item, and why (recorded on the decision)."""
        gate = self.gate
        if gate is None:
            return True, "no gate"
        if gate.surfaces is not None and surface not in gate.surfaces:
            return False, f"surface {surface!r} is not one of {list(gate.surfaces)}"
        if gate.jurisdictions is not None and not set(jurisdictions) & set(gate.jurisdictions):
            return False, f"jurisdiction not one of {list(gate.jurisdictions)}"
        if gate.band is None and gate.severities is None:
            return True, "surface/jurisdiction gate passed"
        low = gate.band.min if gate.band is not None else 0.0
        for s in prior:
            if s.category in self.severe_categories and s.score >= low and s.score > 0.0:
                return True, f"{s.category} ({s.detector} {s.score:.2f}) is a severe category"
        if gate.band is not None:
            for s in prior:
                if s.category in self.band_categories and gate.band.min <= s.score < gate.band.max:
                    return True, f"{s.category} ({s.detector} {s.score:.2f}) in [{gate.band.min}, {gate.band.max})"
            return False, f"no earlier signal in [{gate.band.min}, {gate.band.max})"
        return False, "no earlier signal in a severe category"


@dataclass(frozen=True)
class Plan:
    stages: tuple[PlanStage, ...]

    @property
    def detectors(self) -> tuple[str, ...]:
        return tuple(name for stage in self.stages for name in stage.detectors)

    def only(self, names: Sequence[str]) -> "Plan":
        """The plan restricted to these detectors (``--detectors``); emptied stages drop out."""
        wanted = set(names)
        stages = []
        for stage in self.stages:
            kept = tuple(d for d in stage.detectors if d in wanted)
            if kept:
                stages.append(PlanStage(stage.id, kept, stage.run_async, stage.gate,
                                        stage.band_categories, stage.severe_categories))
        return Plan(tuple(stages))


def compile_plan(doc: PolicyDocument) -> Plan:
    stages = doc.plan if doc.plan is not None else (Stage(id=DEFAULT_STAGE, detectors=tuple(doc.detectors)),)
    compiled = []
    all_categories = tuple(doc.categories)
    for stage in stages:
        if not stage.detectors:
            continue
        gate = stage.when
        band = gate.band if gate is not None else None
        band_categories = frozenset(
            () if band is None else all_categories if band.categories == ALL else band.categories)
        severe = frozenset(
            name for name, cat in doc.categories.items()
            if gate is not None and gate.severities is not None and cat.severity in gate.severities
        )
        compiled.append(PlanStage(stage.id, stage.detectors, stage.run_async, gate, band_categories, severe))
    return Plan(tuple(compiled))


def plan_problems(doc: PolicyDocument) -> list[tuple[tuple[Any, ...], str, str]]:
    """What is wrong with the plan, as (location, message, fix hint); ``load`` adds lines."""
    out: list[tuple[tuple[Any, ...], str, str]] = []
    if doc.plan is None:
        return out
    seen_stage: set[str] = set()
    placed: dict[str, str] = {}
    for i, stage in enumerate(doc.plan):
        loc: tuple[Any, ...] = ("plan", i)
        if stage.id in seen_stage:
            out.append(((*loc, "id"), f"stage id {stage.id!r} is used twice", "give every stage its own id"))
        seen_stage.add(stage.id)
        for j, name in enumerate(stage.detectors):
            if name not in doc.detectors:
                out.append(((*loc, "detectors", j), f"stage {stage.id!r} runs detector {name!r}, which the policy "
                            "does not configure", f"add detectors.{name} or use one of: {', '.join(doc.detectors)}"))
            if name in placed:
                out.append(((*loc, "detectors", j), f"detector {name!r} is already in stage {placed[name]!r}",
                            "run each detector in one stage"))
            placed.setdefault(name, stage.id)
        gate = stage.when
        if gate is None:
            continue
        gloc = (*loc, "when")
        if (gate.band is not None or gate.severities is not None) and i == 0:
            out.append((gloc, f"stage {stage.id!r} is gated on earlier signals but is the first stage, so it "
                        "never runs", "move the stage after one that emits those categories, or drop the gate"))
        if gate.band is not None:
            if gate.band.min >= gate.band.max:
                out.append(((*gloc, "band"), f"band [{gate.band.min}, {gate.band.max}) is empty: the stage is "
                            "unreachable", "make min lower than max"))
            if gate.band.categories != ALL:
                for k, cat in enumerate(gate.band.categories):
                    if cat not in doc.categories:
                        out.append(((*gloc, "band", "categories", k), f"band on unknown category {cat!r}",
                                    f"use one of: {', '.join(doc.categories)}"))
        if gate.severities is not None:
            have = {c.severity for c in doc.categories.values()}
            if not set(gate.severities) & have:
                out.append(((*gloc, "severities"), f"no category has severity {list(gate.severities)}: "
                            "that condition never holds", f"severities in this policy: {sorted(have)}"))
        for k, jname in enumerate(gate.jurisdictions or ()):
            if jname not in doc.jurisdictions:
                out.append(((*gloc, "jurisdictions", k), f"unknown jurisdiction {jname!r}: the stage is "
                            "unreachable for it", f"use one of: {', '.join(doc.jurisdictions) or '(none)'}"))
    for name in doc.detectors:
        if name not in placed:
            out.append((("detectors", name), f"detector {name!r} is configured but in no stage of the plan, "
                        "so it never runs", "add it to a stage or remove its settings"))
    return out


def emitted_before(plan: Plan, categories_of: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """(stage, category) pairs where a gate names a category no earlier detector emits.

    Needs the built detectors' categories, so the engine runs it when it is built."""
    bad: list[tuple[str, str]] = []
    emitted: set[str] = set()
    for stage in plan.stages:
        if stage.gate is not None and stage.gate.band is not None and stage.gate.band.categories != ALL:
            bad.extend((stage.id, c) for c in stage.band_categories if c not in emitted)
        for name in stage.detectors:
            emitted.update(categories_of.get(name, ()))
    return bad
