"""YAML -> Policy, refused unless every check passes.

``Policy.from_yaml`` runs the same checks as ``referee policy lint``
(``policy.lint.check_text``: syntax, duplicate keys, schema, unknown categories
and detectors, a missing ``default`` surface, ...) and raises ``PolicyError``
with every error-severity problem, each with its file line, field path and a
fix hint. Lint's warnings do not stop a load.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from referee.detectors.base import Detector
from referee.errors import PolicyError
from referee.policy.compile import CompiledRule, compile_rules
from referee.policy.lint import (
    Findings,
    Problem,
    check_detectors,
    check_text,
    line_of,
    read_yaml,
    schema_problems,
)
from referee.policy.plan import Plan, compile_plan
from referee.policy.schema import ALL, DEFAULT_SURFACE, PolicyDocument, PolicyTest, Rule
from referee.registry import Registry

__all__ = ["Policy", "Problem", "load_policy", "load_tests", "refusal"]


class Policy:
    """A validated policy plus the lookups the engine needs.

    Build one with :meth:`from_file` or :meth:`from_yaml`; the constructor takes
    an already validated document.
    """

    def __init__(self, document: PolicyDocument, source: str = "<memory>", raw: str = "", node: Any = None) -> None:
        self.document = document
        self.source = source
        self.raw = raw
        self._node = node
        self._rules_cache: dict[tuple[str, str | None], tuple[Rule, ...]] = {}
        self._compiled_cache: dict[tuple[str, str | None], tuple[CompiledRule, ...]] = {}

    # -- construction -----------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise PolicyError(f"{path}: policy files must be UTF-8 ({exc.reason} at byte {exc.start})") from exc
        return cls.from_yaml(text, source=str(path))

    @classmethod
    def from_yaml(cls, text: str, source: str = "<memory>") -> Policy:
        """Check ``text`` as lint does and build the policy; ``PolicyError`` lists every error."""
        checked = check_text(text, source, base_dir=_base_dir(source), warnings=False)
        if checked.errors or checked.document is None:
            raise PolicyError(refusal(source, checked.errors), checked.errors) from checked.cause
        return cls(checked.document, source=source, raw=text, node=checked.node)

    # -- identity ---------------------------------------------------------
    @property
    def id(self) -> str:
        return self.document.id

    @property
    def version(self) -> str:
        return self.document.version

    @cached_property
    def sha256(self) -> str:
        """sha256 of the policy's content: the file as written, or, for a policy built
        in memory, its document. Decision identity uses it, so an edited threshold
        under an unchanged ``version`` still makes new decisions."""
        content = self.raw or self.document.model_dump_json()
        return hashlib.sha256(content.encode("utf-8")).hexdigest()

    @cached_property
    def plan(self) -> Plan:
        """The detection plan compiled from ``plan:`` (or one stage of every detector)."""
        return compile_plan(self.document)

    @property
    def categories(self) -> list[str]:
        return list(self.document.categories)

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the policy (lexicon files, tests_file) are read from."""
        return _base_dir(self.source)

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        return line_of(self._node, path)

    def check_detectors(self, registry: Registry[type[Detector]]) -> None:
        """Refuse (``PolicyError``, every problem with its line) detector blocks that the
        registry's detectors do not accept: an unknown name, a misspelt setting."""
        if self.raw:
            node, data = read_yaml(self.raw)
        else:
            node, data = None, self.document.model_dump(mode="json")
        problems = check_detectors(data, node, self.source, registry)
        if problems:
            raise PolicyError(refusal(self.source, problems), problems)

    def detector_config(self, name: str) -> dict[str, Any]:
        return dict(self.document.detectors.get(name) or {})

    # -- rule lookup ------------------------------------------------------
    def jurisdictions_for(self, country: str | None) -> list[str]:
        if not country:
            return []
        return [name for name, j in self.document.jurisdictions.items() if country.upper() in j.countries]

    def surface_for(self, surface: str) -> str:
        """The surface whose rules apply: itself if named, else the strict ``default``."""
        return surface if surface in self.document.surfaces else DEFAULT_SURFACE

    def rules_for(self, surface: str, country: str | None = None) -> tuple[Rule, ...]:
        """Rules for a surface in a country: the surface's own (or ``default``'s),
        with each matching jurisdiction layered on top in file order."""
        key = (surface, country)
        cached = self._rules_cache.get(key)
        if cached is not None:
            return cached
        name = self.surface_for(surface)
        base = self.document.surfaces.get(name)
        rules: dict[str, Rule] = {r.id: r for r in (base.rules if base else ())}
        for jname in self.jurisdictions_for(country):
            layer = self.document.jurisdictions[jname].surfaces.get(name)
            if layer is None:
                continue
            for rule_id in layer.remove_rules:
                rules.pop(rule_id, None)
            for rule in layer.rules:
                rules[rule.id] = rule
        result = tuple(rules.values())
        self._rules_cache[key] = result
        return result

    def compiled_rules(self, surface: str, country: str | None = None) -> tuple[CompiledRule, ...]:
        """``rules_for`` prepared for the engine's hot path (see ``policy.compile``)."""
        key = (surface, country)
        compiled = self._compiled_cache.get(key)
        if compiled is None:
            compiled = compile_rules(self.rules_for(surface, country), tuple(self.document.categories))
            self._compiled_cache[key] = compiled
        return compiled

    def rule_categories(self, rule: Rule) -> tuple[str, ...]:
        return tuple(self.document.categories) if rule.categories == ALL else tuple(rule.categories)

    def tests(self) -> list[PolicyTest]:
        """Test cases written in the policy plus those in its ``tests_file``."""
        cases = list(self.document.tests)
        if self.document.tests_file:
            cases.extend(load_tests(self.base_dir / self.document.tests_file))
        return cases


def load_tests(path: Path) -> list[PolicyTest]:
    """Read a YAML list of test cases (or a mapping with a ``tests`` list); every bad case is reported."""
    try:
        node, data = read_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyError(f"{path}: cannot read policy tests: {exc}") from exc
    base: tuple[Any, ...] = ("tests",) if isinstance(data, dict) else ()
    if isinstance(data, dict):
        data = data.get("tests", [])
    if not isinstance(data, list):
        raise PolicyError(f"{path}: expected a list of test cases (text, surface, country, expect)")
    cases: list[PolicyTest] = []
    found = Findings(str(path), node)
    for i, case in enumerate(data):
        try:
            cases.append(PolicyTest.model_validate(case))
        except ValidationError as exc:
            schema_problems(found, exc, (*base, i))
    if found.problems:
        raise PolicyError(refusal(str(path), found.problems, "policy tests"), found.problems)
    return cases


def load_policy(path: str | Path) -> Policy:
    return Policy.from_file(path)


def refusal(source: str, problems: list[Problem], what: str = "policy") -> str:
    """The message of a refused load: a count, then one problem a line."""
    count = f"{len(problems)} error{'s' if len(problems) != 1 else ''}"
    return f"{source}: {what} not loaded, {count}:\n" + "\n".join(f"  {p}" for p in problems)


def _base_dir(source: str) -> Path:
    return Path(source).parent if source != "<memory>" else Path.cwd()
