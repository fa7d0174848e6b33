"""Checks a policy beyond its schema: the mistakes that load fine but enforce wrong.

Schema errors (a threshold of 1.5, an unknown action) come from ``load``;
this module adds what needs the whole file: unknown categories, rules no item
can ever reach, duplicate keys (YAML silently keeps the last one), layers on
surfaces that do not exist. Every problem has a line and a fix hint.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from referee.errors import PolicyError
from referee.policy.load import Policy, Problem
from referee.policy.schema import ALL, DEFAULT_SURFACE, Rule


def lint_file(path: str | Path) -> list[Problem]:
    """Every problem in a policy file; an empty list means it is clean."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(str(path), None, "", f"cannot read the file: {exc}", "check the path and that it is UTF-8")]
    problems = _duplicate_keys(text, str(path))
    try:
        policy = Policy.from_yaml(text, source=str(path))
    except PolicyError as exc:
        return problems + list(exc.problems)
    return problems + lint(policy)


def lint(policy: Policy) -> list[Problem]:
    doc = policy.document
    out: list[Problem] = []
    src = policy.source
    categories = list(doc.categories)

    def problem(loc: tuple[Any, ...], message: str, hint: str = "", severity: str = "error") -> None:
        out.append(Problem(src, policy.line_of(loc), _dotted(loc), message, hint, severity))

    if DEFAULT_SURFACE not in doc.surfaces:
        problem(("surfaces",), "no 'default' surface: surfaces the policy does not name would have no rules",
                "add surfaces.default with strict rules (safe by default)")

    def check_rules(rules: tuple[Rule, ...], loc: tuple[Any, ...]) -> None:
        seen: dict[str, int] = {}
        for i, rule in enumerate(rules):
            rloc = (*loc, i)
            if rule.id in seen:
                problem((*rloc, "id"), f"duplicate rule id {rule.id!r} (also rules[{seen[rule.id]}])",
                        "give every rule in a surface its own id")
            seen.setdefault(rule.id, i)
            if rule.categories != ALL:
                for j, cat in enumerate(rule.categories):
                    if cat not in doc.categories:
                        problem((*rloc, "categories", j) if len(rule.categories) > 1 else (*rloc, "categories"),
                                f"unknown category {cat!r}", _did_you_mean(cat, categories))
            for name in rule.detectors or ():
                if name not in doc.detectors:
                    problem((*rloc, "detectors"), f"rule uses detector {name!r}, which the policy does not configure",
                            f"add detectors.{name} or use one of: {', '.join(doc.detectors) or '(none)'}")
        for i, rule in enumerate(rules):
            for j, other in enumerate(rules):
                if i != j and _shadows(policy, other, rule) and (not _shadows(policy, rule, other) or j < i):
                    problem((*loc, i), f"rule {rule.id!r} is unreachable: rule {other.id!r} fires whenever it does, "
                            f"with an action at least as severe ({other.action.value})",
                            f"delete {rule.id!r}, or give it a lower threshold or a more severe action")
                    break

    for name, surface in doc.surfaces.items():
        check_rules(surface.rules, ("surfaces", name, "rules"))

    for jname, juris in doc.jurisdictions.items():
        for sname, layer in juris.surfaces.items():
            loc = ("jurisdictions", jname, "surfaces", sname)
            if sname not in doc.surfaces:
                problem(loc, f"jurisdiction layer for surface {sname!r}, which the policy does not define; "
                        "that surface uses 'default' rules, so this layer is unreachable",
                        f"add surfaces.{sname} or move the rules under {DEFAULT_SURFACE!r}")
                continue
            base_ids = {r.id for r in doc.surfaces[sname].rules}
            for k, rid in enumerate(layer.remove_rules):
                if rid not in base_ids:
                    problem((*loc, "remove_rules", k), f"removes rule {rid!r}, which surface {sname!r} does not have",
                            _did_you_mean(rid, sorted(base_ids)))
            check_rules(layer.rules, (*loc, "rules"))

    lists = doc.detectors.get("lexicon", {}).get("lists") if isinstance(doc.detectors.get("lexicon"), dict) else None
    if isinstance(lists, dict):
        for cat in lists:
            if cat not in doc.categories:
                problem(("detectors", "lexicon", "lists", cat), f"lexicon list for unknown category {cat!r}",
                        _did_you_mean(cat, categories))

    for i, case in enumerate(doc.tests):
        for cat in case.expect_categories or ():
            if cat not in doc.categories:
                problem(("tests", i, "expect_categories"), f"test expects unknown category {cat!r}",
                        _did_you_mean(cat, categories))
    if doc.tests_file and not (policy.base_dir / doc.tests_file).is_file():
        problem(("tests_file",), f"tests file {doc.tests_file!r} not found next to the policy",
                "create it or fix the path (relative to the policy file)")
    return out


def _shadows(policy: Policy, a: Rule, b: Rule) -> bool:
    """True when ``a`` fires on every input that fires ``b`` and wins or ties."""
    if a.threshold == "model_default" or b.threshold == "model_default":
        return False
    if not set(policy.rule_categories(b)) <= set(policy.rule_categories(a)):
        return False
    if a.detectors is not None and (b.detectors is None or not set(b.detectors) <= set(a.detectors)):
        return False
    return (
        float(a.threshold) <= float(b.threshold)
        and a.action.severity >= b.action.severity
        and (a.strike or not b.strike)
    )


def _duplicate_keys(text: str, source: str) -> list[Problem]:
    """YAML keeps the last of two equal keys without a word; a policy must not."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []  # load() reports the syntax error with its line
    out: list[Problem] = []

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                here = f"{path}.{name}" if path else name
                if name in seen:
                    kind = "surface" if path == "surfaces" else "key"
                    out.append(Problem(source, key.start_mark.line + 1, here,
                                       f"duplicate {kind} {name!r} (first on line {seen[name]}); YAML would keep only the last",
                                       "merge the two blocks into one"))
                else:
                    seen[name] = key.start_mark.line + 1
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                walk(value, f"{path}[{i}]")

    if root is not None:
        walk(root, "")
    return out


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    known = ", ".join(choices)
    return f"did you mean {close[0]!r}? Known: {known}" if close else f"use one of: {known}"


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out
