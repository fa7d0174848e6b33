"""YAML → Policy, with every error pointing at a file line.

PyYAML's composed node tree keeps line marks; pydantic's error locations are
field paths. ``_line_of`` walks the one with the other, so "rules[2].threshold:
must be between 0 and 1" becomes "policy.yaml:41".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from referee.errors import PolicyError
from referee.policy.compile import CompiledRule, compile_rules
from referee.policy.schema import ALL, DEFAULT_SURFACE, PolicyDocument, PolicyTest, Rule


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy file."""

    file: str
    line: int | None
    path: str
    message: str
    hint: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.severity}: {self.path + ': ' if self.path else ''}{self.message}"
        return f"{text} (fix: {self.hint})" if self.hint else text


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
    def from_file(cls, path: str | Path) -> "Policy":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise PolicyError(f"{path}: policy files must be UTF-8 ({exc.reason} at byte {exc.start})") from exc
        return cls.from_yaml(text, source=str(path))

    @classmethod
    def from_yaml(cls, text: str, source: str = "<memory>") -> "Policy":
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else None
            problem = Problem(source, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}",
                              "check indentation and quoting around that line")
            raise PolicyError(str(problem), [problem]) from exc
        if not isinstance(data, dict):
            problem = Problem(source, 1, "", "a policy file must be a YAML mapping (id, version, categories, surfaces)",
                              "start from policies/default.yaml")
            raise PolicyError(str(problem), [problem])
        try:
            document = PolicyDocument.model_validate(data)
        except ValidationError as exc:
            problems = [
                Problem(source, _line_of(node, err["loc"]), _dotted(err["loc"]), _message(err), _hint(err))
                for err in exc.errors()
            ]
            raise PolicyError("\n".join(map(str, problems)), problems) from exc
        return cls(document, source=source, raw=text, node=node)

    # -- identity ---------------------------------------------------------
    @property
    def id(self) -> str:
        return self.document.id

    @property
    def version(self) -> str:
        return self.document.version

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw.encode("utf-8")).hexdigest()

    @property
    def categories(self) -> list[str]:
        return list(self.document.categories)

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the policy (lexicon files, tests_file) are read from."""
        return Path(self.source).parent if self.source != "<memory>" else Path.cwd()

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        return _line_of(self._node, path)

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
    """Read a YAML list of test cases (or a mapping with a ``tests`` list)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"{path}: cannot read policy tests: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("tests", [])
    if not isinstance(data, list):
        raise PolicyError(f"{path}: expected a list of test cases (text, surface, country, expect)")
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    cases = []
    for i, case in enumerate(data):
        try:
            cases.append(PolicyTest.model_validate(case))
        except ValidationError as exc:
            loc = ("tests", i) if isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict) else (i,)
            line = _line_of(node, loc)
            raise PolicyError(f"{path}:{line}: test case {i}: {_message(exc.errors()[0])}") from exc
    return cases


def load_policy(path: str | Path) -> Policy:
    return Policy.from_file(path)


# -- helpers: map pydantic error locations to YAML lines ---------------------
def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if node is None:
            break
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    nxt = value
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        if nxt is None:
            # Pydantic adds pseudo-locations for unions ("float", "literal['model_default']"): skip them.
            continue
        node = nxt
    return line


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("float", "int", "str", "tuple[str, ...]") or str(part).startswith(("literal[", "function-")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "enum":
        return f"{msg}, got {err.get('input')!r}"
    return msg


def _hint(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "remove it or check its spelling against docs/policy.md"
    if err["type"] == "missing":
        return "add this required field"
    if err["type"] == "enum":
        return "use one of: allow, label, age_restrict, limit_reach, hold_for_review, remove"
    if "threshold" in str(err["loc"]):
        return "use a number between 0 and 1, or 'model_default'"
    return ""
