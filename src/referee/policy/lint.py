"""Every check on a policy file, each problem with its line and a fix hint.

``check_text`` reads the YAML once (the composed node keeps line marks) and
runs, in this order: YAML syntax, the top-level shape, duplicate keys anywhere
(YAML silently keeps the last one), the pydantic schema, and the semantic
checks that need the whole file (unknown categories and detectors in rules,
rules no item can ever reach, no ``default`` surface, layers on surfaces that
do not exist). The semantic checks read the raw YAML data, so they still run
when the schema fails: one run lists every problem, not the first few.

Errors make ``Policy.from_yaml`` refuse the file (loading runs these same
checks); warnings are lint's own, added on top by ``lint_file``.

Labels stay as written: ``version: 2026.10`` is ``"2026.10"`` and
``countries: [NO]`` is Norway, although YAML reads them as a float and ``False``
(``labels_as_written``).
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from referee.detectors.base import Detector, detector_registry, validate_config
from referee.errors import ConfigError
from referee.policy.plan import plan_problems
from referee.policy.schema import (
    ALL,
    DEFAULT_SURFACE,
    PolicyDocument,
    Rule,
    SurfaceRules,
)
from referee.registry import Registry

if TYPE_CHECKING:
    from referee.policy.load import Policy

ERROR = "error"
WARNING = "warning"

#: Fields whose values are labels (text), even where YAML reads a number, a
#: boolean or a date: ``version: 2026.10``, ``id: 7``, ``countries: [NO]``.
LABEL_FIELDS = frozenset({
    "id", "version", "description", "name", "text", "surface", "country", "tests_file",
    "categories", "detectors", "remove_rules", "countries", "expect_categories",
    "examples", "counter_examples", "surfaces", "jurisdictions",
})
#: Mappings whose keys are names (of categories, surfaces, jurisdictions, detectors).
NAME_MAPS = frozenset({"categories", "surfaces", "jurisdictions", "detectors"})
#: Mappings whose values belong to someone else (detector settings): left as YAML read them.
OPAQUE_MAPS = frozenset({"detectors"})

_YAML_SCALARS = (bool, int, float, dt.date)  # dt.datetime is a dt.date


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy file."""

    file: str
    line: int | None
    path: str
    message: str
    hint: str = ""
    severity: str = ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.severity}: {self.path + ': ' if self.path else ''}{self.message}"
        return f"{text} (fix: {self.hint})" if self.hint else text


@dataclass(frozen=True)
class Checked:
    """What ``check_text`` found in a policy file."""

    source: str
    #: The composed YAML node (line marks), or None when the text is not YAML.
    node: yaml.Node | None
    #: The YAML data as read, labels as written; None when the text is not YAML.
    data: Any
    #: The validated document, or None when the schema (or the YAML) failed.
    document: PolicyDocument | None
    problems: tuple[Problem, ...]
    #: The foreign error behind a syntax problem, for ``raise ... from``.
    cause: Exception | None = field(default=None, compare=False)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]


class Findings:
    """Collects problems for one file, turning field paths into lines.

    ``node`` is the node at ``prefix`` (the root by default): a block YAML does
    not keep (the first of two equal keys) is checked with its own node.
    """

    def __init__(self, source: str, node: yaml.Node | None, prefix: tuple[Any, ...] = ()) -> None:
        self.source = source
        self.node = node
        self.prefix = prefix
        self.problems: list[Problem] = []

    def add(self, loc: tuple[Any, ...], message: str, hint: str = "", severity: str = ERROR) -> None:
        n = len(self.prefix)
        line = line_of(self.node, loc[n:] if loc[:n] == self.prefix else loc)
        self.problems.append(Problem(self.source, line, dotted(loc), message, hint, severity))


# -- entry points -------------------------------------------------------------
def lint_file(path: str | Path, registry: Registry[type[Detector]] | None = None) -> list[Problem]:
    """Every problem in a policy file, errors and warnings; an empty list means it is clean.
    Detector blocks are checked against ``registry`` (by default the installed detectors)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(str(path), None, "", f"cannot read the file: {exc}", "check the path and that it is UTF-8")]
    return list(check_text(text, str(path), base_dir=path.parent, registry=registry or detector_registry()).problems)


def lint(policy: Policy, registry: Registry[type[Detector]] | None = None) -> list[Problem]:
    """Problems in a loaded policy: only warnings, since loading refuses errors."""
    return list(check_text(policy.raw, policy.source, base_dir=policy.base_dir,
                           registry=registry or detector_registry()).problems)


def check_text(text: str, source: str = "<memory>", *, base_dir: Path | None = None,
               warnings: bool = True, registry: Registry[type[Detector]] | None = None) -> Checked:
    """Run every check on a policy's YAML text; ``base_dir`` resolves ``tests_file``
    (not checked when None). ``warnings=False`` skips the lint-only checks. With a
    ``registry``, each detector block is checked against its detector's settings model
    (lint passes the installed one; the engine checks again with the one it builds from)."""
    try:
        node, data = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = Problem(source, mark.line + 1 if mark else None, "", f"not valid YAML: {getattr(exc, 'problem', exc)}",
                          "check indentation and quoting around that line")
        return Checked(source, None, None, None, (problem,), exc)
    if not isinstance(data, dict):
        problem = Problem(source, 1, "", "a policy file must be a YAML mapping (id, version, categories, surfaces)",
                          "start from policies/default.yaml")
        return Checked(source, node, data, None, (problem,))
    problems = check_duplicate_keys(node, source)
    document, schema = check_schema(data, node, source)
    problems += schema + check_semantics(data, node, source, base_dir)
    if registry is not None:
        problems += check_detectors(data, node, source, registry)
    if document is not None:
        found = Findings(source, node)
        for loc, message, hint in plan_problems(document):
            found.add(loc, message, hint)
        problems += found.problems
    if warnings:
        problems += check_warnings(data, node, source)
        if registry is not None:
            problems += check_segment_rules(data, node, source, registry)
    problems.sort(key=lambda p: p.line or 0)
    return Checked(source, node, data, document, tuple(problems))


def check_detectors(data: dict[str, Any], node: yaml.Node | None, source: str,
                    registry: Registry[type[Detector]]) -> list[Problem]:
    """Each ``detectors.<name>`` block against the detector's own settings model:
    an unknown detector, a misspelt key (with did-you-mean) or a bad value, with its line."""
    blocks = data.get("detectors")
    if not isinstance(blocks, dict):
        return []
    found = Findings(source, node)
    names = registry.names()
    for name, raw in blocks.items():
        loc: tuple[Any, ...] = ("detectors", str(name))
        if str(name) not in names:
            found.add(loc, registry.unknown_message(str(name)),
                      "install the plugin that provides it, or fix the name")
            continue
        try:
            cls = registry.get(str(name))
        except ConfigError as exc:
            found.add(loc, str(exc), "reinstall the plugin")
            continue
        try:
            validate_config(cls, raw if isinstance(raw, dict) else {})
        except ValidationError as exc:
            fields = list(cls.config_model.model_fields)
            for err in exc.errors():
                where = (*loc, *err["loc"])
                if err["type"] == "extra_forbidden":
                    key = str(err["loc"][-1])
                    found.add(where, f"unknown setting {key!r} for detector {name!r}",
                              did_you_mean(key, fields) or f"settings of {name!r}: {', '.join(fields)}")
                else:
                    found.add(where, f"{err['msg']} (got {err.get('input')!r})",
                              f"see the settings of {name!r}: {', '.join(fields)}")
        if raw is not None and not isinstance(raw, dict):
            found.add(loc, f"detectors.{name} must be a mapping of settings, got {type(raw).__name__}",
                      "write {} for no settings")
    return found.problems


# -- reading ------------------------------------------------------------------
def read_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """Parse once: the composed node (for lines) and the data, labels as written.
    Raises ``yaml.YAMLError`` on a syntax error."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        # Construction flattens merge keys (``<<: *base``) into the nodes it builds from; keep
        # the node as written for lines and duplicate keys, and pair the data with the flat copy.
        flat = copy.deepcopy(node)
        data = loader.construct_document(flat)
        return node, labels_as_written(flat, data, loader.construct_object)
    finally:
        loader.dispose()


def labels_as_written(node: yaml.Node, data: Any, construct: Callable[[yaml.Node], Any],
                      field_name: str | None = None, _within: frozenset[int] = frozenset()) -> Any:
    """``data`` with every label (``LABEL_FIELDS`` values, ``NAME_MAPS`` keys) that YAML
    read as a number, boolean or date replaced by the scalar's text in ``node``.

    ``construct`` builds a key node's value as the loader did, to pair node keys
    with data keys; ``node`` is the one the data was built from (merge keys flattened).
    """
    if isinstance(node, yaml.ScalarNode):
        if field_name in LABEL_FIELDS and isinstance(data, _YAML_SCALARS):
            return node.value
        return data
    if id(node) in _within:  # an alias inside its own anchor: leave the cycle as YAML built it
        return data
    _within = _within | {id(node)}
    if isinstance(node, yaml.SequenceNode) and isinstance(data, list) and len(node.value) == len(data):
        return [labels_as_written(n, v, construct, field_name, _within) for n, v in zip(node.value, data, strict=True)]
    if isinstance(node, yaml.MappingNode) and isinstance(data, dict):
        names = field_name in NAME_MAPS
        opaque = field_name in OPAQUE_MAPS
        pairs: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            if isinstance(knode, yaml.ScalarNode) and knode.tag != "tag:yaml.org,2002:merge":
                pairs[construct(knode)] = (knode, vnode)  # the last of equal keys wins, as in ``data``
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if key not in pairs:
                out[key] = value
                continue
            knode, vnode = pairs[key]
            if names:  # the key is a name, its value a section (whose own keys are fields)
                name = knode.value if isinstance(key, _YAML_SCALARS) else key
                out[name] = value if opaque else labels_as_written(vnode, value, construct, None, _within)
            else:
                out[key] = labels_as_written(vnode, value, construct, key if isinstance(key, str) else None, _within)
        return out
    return data


# -- the checks ---------------------------------------------------------------
def check_duplicate_keys(node: yaml.Node | None, source: str) -> list[Problem]:
    """Equal keys in one mapping, anywhere in the file: YAML keeps the last without a word."""
    out: list[Problem] = []

    def walk(node: yaml.Node, path: str, seen_nodes: set[int]) -> None:
        if id(node) in seen_nodes:  # an alias points back at a node already walked
            return
        seen_nodes = seen_nodes | {id(node)}
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                here = f"{path}.{name}" if path else name
                if name in seen:
                    kind = {"surfaces": "surface", "categories": "category", "jurisdictions": "jurisdiction",
                            "detectors": "detector"}.get(path, "key")
                    out.append(Problem(source, key.start_mark.line + 1, here,
                                       f"duplicate {kind} {name!r} (first on line {seen[name]}); "
                                       "YAML would keep only the last",
                                       "merge the two blocks into one"))
                else:
                    seen[name] = key.start_mark.line + 1
                walk(value, here, seen_nodes)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                walk(value, f"{path}[{i}]", seen_nodes)

    if node is not None:
        walk(node, "", set())
    return out


def check_schema(data: Any, node: yaml.Node | None, source: str) -> tuple[PolicyDocument | None, list[Problem]]:
    """The pydantic schema: the document, or None and a problem per field error."""
    try:
        return PolicyDocument.model_validate(data), []
    except ValidationError as exc:
        found = Findings(source, node)
        schema_problems(found, exc)
        return None, found.problems


def schema_problems(found: Findings, exc: ValidationError, base: tuple[Any, ...] = ()) -> None:
    """One problem per pydantic error; ``base`` prefixes the error locations (for a part of the file)."""
    for err in exc.errors():
        found.add((*base, *err["loc"]), _message(err), _hint(err))


def check_semantics(data: dict[str, Any], node: yaml.Node | None, source: str,
                    base_dir: Path | None = None) -> list[Problem]:
    """The error checks that need the whole file, run on the raw data so they hold
    whatever the schema said: every shape they do not understand is skipped."""
    found = Findings(source, node)
    categories = known_categories(data)
    raw_detectors = data.get("detectors")
    # Absent means none configured; a malformed section is the schema's to report.
    detectors = raw_detectors if isinstance(raw_detectors, dict) else {} if raw_detectors is None else None
    surfaces = data.get("surfaces")

    if isinstance(surfaces, dict) and DEFAULT_SURFACE not in surfaces:
        close = difflib.get_close_matches(DEFAULT_SURFACE, [str(s) for s in surfaces], n=1)
        found.add(("surfaces",), "no 'default' surface: surfaces the policy does not name would have no rules",
                  (f"rename surfaces.{close[0]} to 'default', or " if close else "")
                  + "add surfaces.default with strict rules (safe by default)")

    for name, refs in _as_dict(data.get("openai_categories")).items():
        for k, ref in enumerate(refs if isinstance(refs, list) else []):
            if categories is not None and ref not in categories:
                found.add(("openai_categories", name, k), f"OpenAI category {name!r} maps to unknown category {ref!r}",
                          did_you_mean(str(ref), categories))

    for name, surface in _as_dict(surfaces).items():
        check_rules(found, _as_dict(surface).get("rules"), ("surfaces", name, "rules"), categories, detectors)
    for name, block in shadowed_blocks(node, "surfaces"):
        # YAML drops this block for the later one (check_duplicate_keys says so); check it anyway,
        # so that merging the two brings no new surprises.
        inner = Findings(source, block, ("surfaces", name))
        data_ = labels_as_written(block, construct(block), construct)
        try:
            SurfaceRules.model_validate(data_)
        except ValidationError as exc:
            schema_problems(inner, exc, ("surfaces", name))
        check_rules(inner, _as_dict(data_).get("rules"), ("surfaces", name, "rules"), categories, detectors)
        found.problems += inner.problems

    for jname, juris in _as_dict(data.get("jurisdictions")).items():
        for sname, layer in _as_dict(_as_dict(juris).get("surfaces")).items():
            loc = ("jurisdictions", jname, "surfaces", sname)
            layer = _as_dict(layer)
            if isinstance(surfaces, dict) and sname not in surfaces:
                found.add(loc, f"jurisdiction layer for surface {sname!r}, which the policy does not define; "
                          "that surface uses 'default' rules, so this layer is unreachable",
                          f"add surfaces.{sname} or move the rules under {DEFAULT_SURFACE!r}")
            elif isinstance(surfaces, dict):
                base_ids = sorted(_rule_ids(_as_dict(surfaces[sname]).get("rules")))
                for k, rid in enumerate(_as_list(layer.get("remove_rules"))):
                    if isinstance(rid, str) and rid not in base_ids:
                        found.add((*loc, "remove_rules", k), f"removes rule {rid!r}, which surface {sname!r} does not have",
                                  did_you_mean(rid, base_ids))
            check_rules(found, layer.get("rules"), (*loc, "rules"), categories, detectors)

    if categories is not None:
        lists = _as_dict(_as_dict(_as_dict(detectors).get("lexicon")).get("lists"))
        for cat in lists:
            if cat not in categories:
                found.add(("detectors", "lexicon", "lists", cat), f"lexicon list for unknown category {cat!r}",
                          did_you_mean(str(cat), categories))
        for i, case in enumerate(_as_list(data.get("tests"))):
            expected = _as_dict(case).get("expect_categories")
            for cat in _as_list(expected):
                if isinstance(cat, str) and cat not in categories:
                    found.add(("tests", i, "expect_categories"), f"test expects unknown category {cat!r}",
                              did_you_mean(cat, categories))

    dsa = _as_dict(data.get("dsa"))
    for cat in _as_dict(dsa.get("categories")):
        if categories is not None and cat not in categories:
            found.add(("dsa", "categories", cat), f"DSA mapping for unknown category {cat!r}",
                      did_you_mean(str(cat), categories))
    for cat, spec in _as_dict(dsa.get("categories")).items():
        spec = _as_dict(spec)
        if spec.get("ground") == "illegal" and not spec.get("legal_ground"):
            found.add(("dsa", "categories", cat), f"DSA category {cat!r} has ground 'illegal' but no legal_ground",
                      "name the law relied on in legal_ground (it is the statement's illegal_content_legal_ground)")
        elif spec.get("ground", "incompatible") == "incompatible" and not spec.get("terms_ground"):
            found.add(("dsa", "categories", cat), f"DSA category {cat!r} has ground 'incompatible' but no terms_ground",
                      "name the terms-of-service clause in terms_ground (the statement's incompatible_content_ground)")

    review = _as_dict(data.get("review"))  # human review (docs/review.md): routes and strikes name categories
    jurisdictions = [str(j) for j in _as_dict(data.get("jurisdictions"))]
    for i, route in enumerate(_as_list(review.get("routes"))):
        route = _as_dict(route)
        for k, cat in enumerate(_as_list(route.get("categories"))):
            if categories is not None and cat not in categories:
                found.add(("review", "routes", i, "categories", k), f"review route for unknown category {cat!r}",
                          did_you_mean(str(cat), categories))
        for k, name in enumerate(_as_list(route.get("jurisdictions"))):
            if name not in jurisdictions:
                found.add(("review", "routes", i, "jurisdictions", k), f"review route for unknown jurisdiction {name!r}",
                          did_you_mean(str(name), jurisdictions))
    for cat in _as_dict(_as_dict(review.get("strikes")).get("weights")):
        if categories is not None and cat not in categories:
            found.add(("review", "strikes", "weights", cat), f"strike weight for unknown category {cat!r}",
                      did_you_mean(str(cat), categories))

    tests_file = data.get("tests_file")
    if base_dir is not None and isinstance(tests_file, str) and not (base_dir / tests_file).is_file():
        found.add(("tests_file",), f"tests file {tests_file!r} not found next to the policy",
                  "create it or fix the path (relative to the policy file)")
    return found.problems


def check_rules(found: Findings, rules: Any, loc: tuple[Any, ...], categories: list[str] | None,
                detectors: dict[str, Any] | None) -> None:
    """One list of rules (a surface's or a jurisdiction layer's), raw: duplicate ids,
    unknown categories (when ``categories`` is not None), detectors the policy does not
    configure (when ``detectors`` is not None), and rules another one always beats."""
    seen: dict[str, int] = {}
    valid: list[tuple[int, Rule]] = []
    for i, raw in enumerate(_as_list(rules)):
        if not isinstance(raw, dict):
            continue
        rloc = (*loc, i)
        rid = raw.get("id")
        if isinstance(rid, str):
            if rid in seen:
                found.add((*rloc, "id"), f"duplicate rule id {rid!r} (also rules[{seen[rid]}])",
                          "give every rule in a surface its own id")
            seen.setdefault(rid, i)
        cats = raw.get("categories")
        if categories is not None and cats != ALL:
            names = _one_or_many(cats)
            for j, cat in enumerate(names):
                if isinstance(cat, str) and cat not in categories:
                    found.add((*rloc, "categories", j) if isinstance(cats, list) and len(cats) > 1
                              else (*rloc, "categories"), f"unknown category {cat!r}", did_you_mean(cat, categories))
        if detectors is not None:
            for name in _one_or_many(raw.get("detectors")):
                if isinstance(name, str) and name not in detectors:
                    configured = [str(d) for d in detectors]
                    found.add((*rloc, "detectors"), f"rule uses detector {name!r}, which the policy does not configure",
                              f"{did_you_mean(name, configured)}; or add detectors.{name}" if configured
                              else f"add detectors.{name}, or drop the rule's detectors (then every detector counts)")
        try:
            valid.append((i, Rule.model_validate(raw)))
        except ValidationError:
            pass  # check_schema reports it
    everything = tuple(categories or ())
    for i, rule in valid:
        for j, other in valid:
            if i != j and _shadows(other, rule, everything) and (not _shadows(rule, other, everything) or j < i):
                found.add((*loc, i), f"rule {rule.id!r} is unreachable: rule {other.id!r} fires whenever it does, "
                          f"with an action at least as severe ({other.action.value})",
                          f"delete {rule.id!r}, or give it a lower threshold or a more severe action")
                break


def check_warnings(data: dict[str, Any], node: yaml.Node | None, source: str) -> list[Problem]:
    """Lint-only: what loads and enforces, but probably not as meant."""
    found = Findings(source, node)
    surfaces = _as_dict(data.get("surfaces"))
    default = surfaces.get(DEFAULT_SURFACE)
    if isinstance(default, dict) and not _as_list(default.get("rules")):
        found.add(("surfaces", DEFAULT_SURFACE), "the 'default' surface has no rules: every surface the policy "
                  "does not name allows everything", "add strict rules, e.g. categories: '*', action: hold_for_review",
                  WARNING)
    categories = known_categories(data)
    if categories:
        named: set[str] = set()
        layers = [_as_dict(s).get("rules") for s in surfaces.values()] + [
            _as_dict(layer).get("rules")
            for juris in _as_dict(data.get("jurisdictions")).values()
            for layer in _as_dict(_as_dict(juris).get("surfaces")).values()
        ]
        for rules in layers:
            for rule in _as_list(rules):
                cats = _as_dict(rule).get("categories")
                named.update(categories if cats == ALL else (c for c in _one_or_many(cats) if isinstance(c, str)))
        for cat in categories:
            if cat not in named:
                found.add(("categories", cat), f"no rule names category {cat!r}: its signals never change a decision",
                          "add it to a rule's categories, or use categories: '*'", WARNING)
    return found.problems


def check_segment_rules(data: dict[str, Any], node: yaml.Node | None, source: str,
                        registry: Registry[type[Detector]]) -> list[Problem]:
    """Lint-only: a ``segments`` rule reads time-coded evidence, which only a detector that
    derives text from audio (transcription) produces; without one it can never fire."""
    found = Findings(source, node)
    places: list[tuple[Any, ...]] = []
    for name, surface in _as_dict(data.get("surfaces")).items():
        places += [("surfaces", name, "rules", i) for i, r in enumerate(_as_list(_as_dict(surface).get("rules")))
                   if isinstance(r, dict) and r.get("segments") is not None]
    for jname, juris in _as_dict(data.get("jurisdictions")).items():
        for sname, layer in _as_dict(_as_dict(juris).get("surfaces")).items():
            places += [("jurisdictions", jname, "surfaces", sname, "rules", i)
                       for i, r in enumerate(_as_list(_as_dict(layer).get("rules")))
                       if isinstance(r, dict) and r.get("segments") is not None]
    if not places:
        return []
    transcribers = []
    for name in _as_dict(data.get("detectors")):
        try:
            cls = registry.get(str(name))
        except ConfigError:
            continue  # check_detectors reports it
        if cls.derives and "audio" in cls.reads:
            transcribers.append(str(name))
    if not transcribers:
        for loc in places:
            found.add((*loc, "segments"), "a segments rule reads time-coded evidence from audio, but no configured "
                      "detector transcribes audio: it never fires",
                      "add a transcribing detector (detectors.transcribe) in an early plan stage", WARNING)
    return found.problems


# -- helpers for checks (also for the plan's) ---------------------------------
def shadowed_blocks(node: yaml.Node | None, *path: str) -> list[tuple[str, yaml.Node]]:
    """Values under the mapping at ``path`` whose key comes again later: YAML keeps
    only the last, so these are in no data; each as (key, value node), in file order."""
    for part in path:
        node = _value_node(node, part)
    if not isinstance(node, yaml.MappingNode):
        return []
    pairs = [(str(k.value), v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
    last = {name: i for i, (name, _) in enumerate(pairs)}
    return [(name, v) for i, (name, v) in enumerate(pairs) if i < last[name]]


def construct(node: yaml.Node) -> Any:
    """A node's value as ``yaml.safe_load`` would build it."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def known_categories(data: dict[str, Any]) -> list[str] | None:
    """The policy's category names, or None when ``categories`` is not a mapping
    (the schema reports that; checks against it would only add noise)."""
    cats = data.get("categories")
    return [str(c) for c in cats] if isinstance(cats, dict) and cats else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    known = ", ".join(choices) or "(none)"
    return f"did you mean {close[0]!r}? Known: {known}" if close else f"use one of: {known}"


def line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The line of a field path in the composed YAML (the deepest part found)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if node is None:
            break
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):  # no break: of equal keys, YAML keeps (and we check) the last
                    nxt = value
                    line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        if nxt is None:
            # Pydantic adds pseudo-locations for unions ("float", "literal['model_default']"): skip them.
            continue
        node = nxt
    return line


def dotted(loc: tuple[Any, ...]) -> str:
    """``("surfaces", "comment", "rules", 0)`` -> ``surfaces.comment.rules[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("float", "int", "str", "tuple[str, ...]") or str(part).startswith(("literal[", "function-")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _shadows(a: Rule, b: Rule, everything: tuple[str, ...]) -> bool:
    """True when ``a`` fires on every input that fires ``b`` and wins or ties.

    A ``segments`` rule fires on less than a plain rule (its segments' scores never
    exceed their signal's), so a plain rule can shadow it but not the other way round;
    two segments rules compare only when they aggregate the same way."""
    if a.threshold == "model_default" or b.threshold == "model_default":
        return False
    if a.segments is not None:
        if b.segments is None or a.segments.aggregate != b.segments.aggregate:
            return False
        if (a.segments.share or 0) > (b.segments.share or 0) or (a.segments.count or 0) > (b.segments.count or 0):
            return False

    def cats(rule: Rule) -> set[str]:
        return set(everything if rule.categories == ALL else rule.categories)

    if not cats(b) <= cats(a):
        return False
    if a.detectors is not None and (b.detectors is None or not set(b.detectors) <= set(a.detectors)):
        return False
    return (
        float(a.threshold) <= float(b.threshold)
        and a.action.severity >= b.action.severity
        and (a.strike or not b.strike)
    )


def _value_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    """The value node of ``key`` in a mapping node (the last, if the key repeats)."""
    found = None
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                found = v
    return found


def _as_dict(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _one_or_many(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else _as_list(value)


def _rule_ids(rules: Any) -> set[str]:
    return {r["id"] for r in _as_list(rules) if isinstance(r, dict) and isinstance(r.get("id"), str)}


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
