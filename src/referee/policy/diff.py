"""What changed between two policy versions, rule by rule.

Reviewers of a policy change care about enforcement, not YAML formatting: a
threshold moving from 0.9 to 0.8 on comments in the EU is the line to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel

from referee.policy.load import Policy


@dataclass(frozen=True)
class Change:
    kind: str  # added | removed | changed
    where: str  # e.g. surfaces.comment.rules[comment.hate.remove].threshold
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"+ {self.where}: {_short(self.new)}"
        if self.kind == "removed":
            return f"- {self.where}: {_short(self.old)}"
        return f"~ {self.where}: {_short(self.old)} -> {_short(self.new)}"


def diff(old: Policy, new: Policy) -> list[Change]:
    a, b = old.document, new.document
    changes: list[Change] = []
    for field in ("id", "version"):
        if getattr(a, field) != getattr(b, field):
            changes.append(Change("changed", field, getattr(a, field), getattr(b, field)))
    changes += _mapping("categories", _dump(a.categories), _dump(b.categories))
    changes += _mapping("detectors", a.detectors, b.detectors)
    for name in sorted(set(a.surfaces) | set(b.surfaces)):
        changes += _rules(f"surfaces.{name}", a.surfaces.get(name), b.surfaces.get(name))
    for name in sorted(set(a.jurisdictions) | set(b.jurisdictions)):
        ja, jb = a.jurisdictions.get(name), b.jurisdictions.get(name)
        where = f"jurisdictions.{name}"
        if ja is None or jb is None:
            changes.append(Change("added" if ja is None else "removed", where,
                                  None if ja is None else list(ja.countries),
                                  None if jb is None else list(jb.countries)))
            continue
        if ja.countries != jb.countries:
            changes.append(Change("changed", f"{where}.countries", list(ja.countries), list(jb.countries)))
        for sname in sorted(set(ja.surfaces) | set(jb.surfaces)):
            changes += _rules(f"{where}.surfaces.{sname}", ja.surfaces.get(sname), jb.surfaces.get(sname))
    if len(a.tests) != len(b.tests):
        changes.append(Change("changed", "tests (count)", len(a.tests), len(b.tests)))
    # Every other top-level field (the plan, on_uninspected, ...), so a new section of the
    # schema shows up in reviews without a line here: lists of records keyed by their id.
    for field in type(a).model_fields:
        if field not in _COMPARED:
            changes += _field(field, _json(getattr(a, field)), _json(getattr(b, field)))
    return changes


#: Fields ``diff`` compares by name above; ``description`` says nothing about enforcement.
_COMPARED = frozenset({"id", "version", "description", "categories", "detectors", "surfaces", "jurisdictions",
                       "tests"})


def _field(where: str, a: Any, b: Any) -> list[Change]:
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        return _mapping(where, a, b)
    if _records(a) and _records(b):
        return _mapping(where, {r["id"]: r for r in a}, {r["id"]: r for r in b})
    return [Change("added" if a is None else "removed" if b is None else "changed", where, a, b)]


def _records(value: Any) -> bool:
    """A list of mappings with distinct string ids (stages, rules)."""
    return (isinstance(value, list) and all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in value)
            and len({r["id"] for r in value}) == len(value))


def _json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _rules(where: str, a: Any, b: Any) -> list[Change]:
    ra = {r.id: r.model_dump(mode="json", exclude_none=True) for r in (a.rules if a else ())}
    rb = {r.id: r.model_dump(mode="json", exclude_none=True) for r in (b.rules if b else ())}
    out: list[Change] = []
    for rid in list(ra) + [r for r in rb if r not in ra]:
        key = f"{where}.rules[{rid}]"
        if rid not in rb:
            out.append(Change("removed", key, old=_rule_summary(ra[rid])))
        elif rid not in ra:
            out.append(Change("added", key, new=_rule_summary(rb[rid])))
        else:
            for field in sorted(set(ra[rid]) | set(rb[rid])):
                if ra[rid].get(field) != rb[rid].get(field):
                    out.append(Change("changed", f"{key}.{field}", ra[rid].get(field), rb[rid].get(field)))
    return out


def _mapping(where: str, a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in b:
            out.append(Change("removed", f"{where}.{key}", old=a[key]))
        elif key not in a:
            out.append(Change("added", f"{where}.{key}", new=b[key]))
        elif a[key] != b[key]:
            if isinstance(a[key], dict) and isinstance(b[key], dict):
                out += _mapping(f"{where}.{key}", a[key], b[key])
            else:
                out.append(Change("changed", f"{where}.{key}", a[key], b[key]))
    return out


def _dump(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v.model_dump(mode="json") for k, v in mapping.items()}


def _rule_summary(rule: dict[str, Any]) -> str:
    cats = rule["categories"] if isinstance(rule["categories"], str) else ",".join(rule["categories"])
    return f"{cats} >= {rule.get('threshold', 0.5)} -> {rule['action']}" + (" +strike" if rule.get("strike") else "")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."
