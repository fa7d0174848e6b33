"""The lexicon detector: term lists per category, matched after normalisation.

A list is the fastest, most explainable detector a policy can have, and the
easiest to fool, so the text is first reduced to a canonical spelling
(:mod:`referee.plugins.lexicon.normalize`) and every term is expanded, once, into the
spellings that canonical form can still take: ``1``/``!``/``|`` for an i or l,
``*`` for a hidden letter, the phrase written as one word, a plural ``s``.
All of them go into one Aho-Corasick automaton, so matching costs one pass
over the text however long the lists are.

Terms match whole words only: each is stored as `` term `` and the text is
padded with spaces, so "cunt" never fires inside "Scunthorpe". A term written
``fuck*`` may continue into a longer word, ``*fucker`` may start inside one. An
allow-list match (``Scunthorpe``, ``shiitake``, ``Moby Dick``) suppresses every
category match it overlaps.

List files hold one term per line, optionally ``TAB weight`` (0–1, default 1);
``#`` lines are comments. The weight becomes the signal's score, so an
unambiguous slur scores 1.0 and a word with innocent uses scores lower and is
held for review instead of removed. See docs/lexicon.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, combinations
from pathlib import Path
from typing import Any

import ahocorasick  # C extension without stubs (see [tool.mypy] overrides)
from pydantic import Field

from referee.detectors.base import Detector, DetectorConfig, Example
from referee.errors import ConfigError
from referee.model import ContentItem, Evidence, Signal
from referee.plugins.lexicon.normalize import (
    IL,
    MASK,
    NORMALIZER_VERSION,
    Normalized,
    Normalizer,
)

#: What a caller may pass per term: ``"term"`` (weight 1.0) or ``("term", weight)``.
TermSpec = str | tuple[str, float]

#: Bump when matching changes for the same lists; the version adds a hash of the lists.
_CODE_VERSION = "1"
#: Up to this many i's and l's in a term, every mix of them with 1/!/| is spelled out.
_ALL_IL_UP_TO = 4
#: The category index that marks an allow-list term.
_ALLOW = -1
#: Words that aim a term at the reader, as written ("u", "ur", "ya") or as the normaliser
#: joins a spaced-out "u r a" ("ura"). Folded and collapsed like the text before matching.
SECOND_PERSON = ("you", "u", "ya", "ye", "yu", "youre", "ur", "ure", "ura", "your", "yourself", "yall", "thou")
#: A negation between the pronoun and the term ("you are not an idiot") undoes the aim.
_NEGATORS = ("not", "no", "never", "isnt", "arent", "aint", "wasnt", "werent", "dont", "nt")


@dataclass(frozen=True, slots=True)
class Directed:
    """Lexicon evidence combined with its context: a term of ``categories`` with a list
    weight of at least ``min_term_weight``, within ``window`` words after a second-person
    word ("you", "u", "ur", ...) or right before one, scores ``weight`` instead.

    An insult alone ("idiot", 0.5) is ambiguous; aimed at the reader ("you are an
    idiot") it is harassment, however it is spelled, because the match runs on the
    normalised text. Bare profanity stays below ``min_term_weight`` so "you fucking
    rock" is not boosted. Set in the policy as ``detectors.lexicon.directed``."""

    categories: tuple[str, ...] = ("harassment",)
    weight: float = 0.85
    min_term_weight: float = 0.4
    window: int = 5
    pronouns: tuple[str, ...] = SECOND_PERSON

    @classmethod
    def from_config(cls, value: Any, field: str, categories: Sequence[str]) -> "Directed":
        if value is True:
            return cls()
        if not isinstance(value, Mapping):
            raise ConfigError(f"{field}: expected a mapping such as '{{categories: [harassment], weight: 0.85}}' "
                              f"or true, got {value!r}")
        unknown = sorted(set(value) - {"categories", "weight", "min_term_weight", "window", "pronouns"})
        if unknown:
            raise ConfigError(f"{field}.{unknown[0]}: unknown setting; directed reads categories, weight, "
                              "min_term_weight, window and pronouns")
        cats = value.get("categories", ["harassment"])
        cats = [cats] if isinstance(cats, str) else list(cats)
        for c in cats:
            if c not in categories:
                raise ConfigError(f"{field}.categories: {c!r} has no lexicon list. Lists: {', '.join(categories)}")
        out = {}
        for key, low, high in (("weight", 0.0, 1.0), ("min_term_weight", 0.0, 1.0), ("window", 1, 10)):
            if key in value:
                v = value[key]
                if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high:
                    raise ConfigError(f"{field}.{key}: must be a number in [{low}, {high}], got {v!r}")
                out[key] = int(v) if key == "window" else float(v)
        pronouns = tuple(str(p) for p in value.get("pronouns", SECOND_PERSON))
        return cls(categories=tuple(cats), pronouns=pronouns, **out)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Term:
    """One list entry, parsed: ``text`` without its ``*`` markers."""

    text: str
    weight: float
    source: str
    open_start: bool = False
    open_end: bool = False

    @property
    def entry(self) -> str:
        """The entry as a list writer wrote it, for evidence."""
        return ("*" if self.open_start else "") + self.text + ("*" if self.open_end else "")

    @classmethod
    def parse(cls, raw: str, weight: float, source: str) -> "Term":
        """``source`` ("hate.txt:12", "lists['hate'][3]") leads every error message."""
        text = raw.strip()
        open_start, open_end = text.startswith("*"), text.endswith("*") and len(text) > 1
        text = text.strip("*").strip()
        if not text:
            raise ConfigError(f"{source}: empty term {raw!r}; write a word or phrase, or delete the line")
        if not 0.0 <= weight <= 1.0 or math.isnan(weight):
            raise ConfigError(f"{source}: weight of {text!r} must be in [0, 1], got {weight}")
        return cls(text, float(weight), source, open_start, open_end)


def parse_line(line: str, source: str) -> Term | None:
    """One list line → a term, or ``None`` for a blank or ``#`` comment line."""
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    text, tab, rest = line.partition("\t")
    weight = 1.0
    if tab:
        raw_weight = rest.strip()
        try:
            weight = float(raw_weight)
        except ValueError:
            raise ConfigError(
                f"{source}: weight {raw_weight!r} is not a number; write a number in [0, 1] after "
                "one TAB, or leave the TAB out for 1.0"
            ) from None
    return Term.parse(text, weight, source)


def read_list(path: Path, field: str, name: str | None = None) -> list[Term]:
    """Read a list file. ``field`` names the policy setting that pointed at it and
    ``name`` is the path as written there; errors and evidence quote those, not
    the absolute path of the server it runs on."""
    shown = name or str(path)
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{field}: list file {path} does not exist; create it or fix {field}") from exc
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read list file {path} ({exc.strerror}); fix {field}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{field}: list file {path} is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    terms = (parse_line(line, f"{shown}:{number}") for number, line in enumerate(content.splitlines(), start=1))
    return [term for term in terms if term is not None]


#: One spelling of one term under one automaton key: (index into the term table,
#: ((offset from the match start, minimum run length), ...)). A plain tuple,
#: because the automaton holds tens of thousands of them.
_Pattern = tuple[int, tuple[tuple[int, int], ...]]


class LexiconConfig(DetectorConfig):
    """The ``detectors.lexicon`` block: term lists per category, an allow-list."""

    lists: dict[str, str | list[Any]] = Field(
        default_factory=dict, description="Category -> list file (relative to the policy) or inline list of terms.")
    allow: str | list[Any] | None = Field(default=None, description="Terms whose matches suppress overlapping ones.")
    directed: dict[str, Any] | None = Field(
        default=None, description="Insults aimed at 'you': categories, weight, min_term_weight, window.")


class LexiconDetector(Detector):
    """Scores each category by the heaviest list term found in the text."""

    name = "lexicon"
    config_model = LexiconConfig
    # Linear in the text (one automaton pass), and texts are size-limited on the way in.
    runs_inline = True

    def __init__(
        self,
        lists: Mapping[str, Iterable[TermSpec | Term]],
        allow: Iterable[str | Term] = (),
        normalizer: Normalizer | None = None,
        directed: Directed | None = None,
    ) -> None:
        """``lists`` maps a category to its terms, each ``"term"`` or ``("term", weight)``;
        ``allow`` holds terms whose matches suppress overlapping ones."""
        self.normalizer = normalizer or Normalizer()
        self._categories = tuple(lists)
        self._terms: list[tuple[int, Term]] = []  # (category index or _ALLOW, term)
        for index, category in enumerate(self._categories):
            if not isinstance(category, str) or not category:
                raise ConfigError(f"lists: category names must be non-empty strings, got {category!r}")
            for i, spec in enumerate(lists[category]):
                self._terms.append((index, _as_term(spec, f"lists[{category!r}][{i}]")))
        for i, spec in enumerate(allow):
            self._terms.append((_ALLOW, _as_term(spec, f"allow[{i}]")))
        self._automaton = self._compile()
        self.version = f"{_CODE_VERSION}+{self._fingerprint()}"
        self.directed = directed
        self._directed_cats = frozenset(
            i for i, c in enumerate(self._categories) if directed is not None and c in directed.categories)
        if directed is not None:
            fold = self.normalizer.fold
            self._pronouns = frozenset(self.normalizer.collapse(fold(p).strip())[0] for p in directed.pronouns)
            self._negators = frozenset(self.normalizer.collapse(fold(n))[0] for n in _NEGATORS)
            digest = hashlib.sha256(repr(directed).encode("utf-8")).hexdigest()[:8]
            self.version += f"+directed-{digest}"

    def _aimed(self, text: str, start: int, end: int) -> bool:
        """Whether the match at ``[start, end)`` of the normalised text is aimed at the reader."""
        assert self.directed is not None
        before = text[:start].split()[-self.directed.window:]
        for k in range(len(before) - 1, -1, -1):
            if before[k] in self._negators:
                return False
            if before[k] in self._pronouns:
                return True
        after = text[end:].split()[:1]
        return bool(after) and after[0] in self._pronouns

    # -- construction ------------------------------------------------------
    @classmethod
    def from_policy(cls, policy: Any, config: dict[str, Any]) -> "LexiconDetector":
        """Build from ``detectors.lexicon``: ``lists: {category: path-or-list}`` and
        ``allow: path-or-list``, paths relative to the policy file."""
        prefix = "detectors.lexicon"
        config = dict(config or {})
        unknown = sorted(set(config) - {"lists", "allow", "directed"})
        if unknown:
            raise ConfigError(
                f"{prefix}.{unknown[0]}: unknown setting; the lexicon reads only 'lists', 'allow' and 'directed' "
                "(see docs/lexicon.md)"
            )
        lists = config.get("lists")
        if not isinstance(lists, Mapping) or not lists:
            raise ConfigError(
                f"{prefix}.lists: expected a mapping of category to list file or inline list, got {lists!r}; "
                "add e.g. 'lists: {hate: lexicons/hate.txt}'"
            )
        known = list(getattr(policy, "categories", []))
        base = Path(getattr(policy, "base_dir", Path.cwd()))
        terms: dict[str, list[Term]] = {}
        for category, value in lists.items():
            field = f"{prefix}.lists.{category}"
            if category not in known:
                raise ConfigError(
                    f"{field}: {category!r} is not a category of policy {getattr(policy, 'id', '?')!r}. "
                    f"Categories: {', '.join(known)}; rename it or add the category to the policy"
                )
            terms[category] = _read_value(value, base, field)
        allow = _read_value(config["allow"], base, f"{prefix}.allow") if config.get("allow") is not None else []
        directed = (Directed.from_config(config["directed"], f"{prefix}.directed", list(terms))
                    if config.get("directed") else None)
        return cls(terms, allow, directed=directed)

    def _compile(self) -> Any:
        """Every spelling of every term as an automaton key → ``(key length,
        leading space, trailing space, patterns)``; ``None`` when there are no terms.

        A key is `` term `` with a space each side, or without the side a ``*``
        opened, so word boundaries cost nothing at match time."""
        keys: dict[str, set[_Pattern]] = {}
        for index, (_, term) in enumerate(self._terms):
            folded = " ".join(self.normalizer.fold(term.text).split())
            if not folded:
                raise ConfigError(
                    f"{term.source}: term {term.text!r} has no letters or digits once normalised; remove it"
                )
            for spelling in _spellings(folded, plural=not term.open_end):
                key, runs = self.normalizer.collapse(spelling)
                key = ("" if term.open_start else " ") + key + ("" if term.open_end else " ")
                keys.setdefault(key, set()).add((index, tuple(sorted(runs.items()))))
        automaton = ahocorasick.Automaton()
        for key, patterns in keys.items():
            open_start, open_end = key[0] != " ", key[-1] != " "
            automaton.add_word(
                key, (len(key), 0 if open_start else 1, 0 if open_end else 1, tuple(patterns))
            )
        if keys:
            automaton.make_automaton()
        return automaton if keys else None

    def _fingerprint(self) -> str:
        payload = json.dumps(
            [
                NORMALIZER_VERSION,
                list(self._categories),
                sorted((c, t.text, t.weight, t.open_start, t.open_end) for c, t in self._terms),
            ],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]

    # -- detector contract -------------------------------------------------
    @property
    def categories(self) -> tuple[str, ...]:
        return self._categories

    @classmethod
    def examples(cls) -> list[Example]:
        return [
            Example(item=ContentItem(id="ex1", text="Loved the new single, the chorus is great."), category=None),
            Example(item=ContentItem(id="ex2", text="FREE FOLLOWERS click here"), category="spam"),
        ]

    def detect(self, item: ContentItem) -> list[Signal]:
        if self._automaton is None or not item.text:
            return []
        norm = self.normalizer.normalize(item.text)
        by_category = self._matches(norm)
        signals = []
        for category in sorted(by_category):
            matches = by_category[category]
            evidence = []
            boosted = 0.0
            for start, end, weight, index in matches:
                term = self._terms[index][1]
                aimed = (category in self._directed_cats and self.directed is not None
                         and weight >= self.directed.min_term_weight and self._aimed(norm.text, start, end))
                if aimed and self.directed is not None:
                    boosted = max(boosted, self.directed.weight)
                begin, stop = norm.original_span(start, end)
                evidence.append(
                    Evidence(
                        start=begin,
                        end=stop,
                        entry=term.entry,
                        detail={"weight": weight, "source": term.source, **({"directed": True} if aimed else {})},
                    )
                )
            signals.append(
                Signal(
                    detector=self.name,
                    detector_version=self.version,
                    category=self._categories[category],
                    score=max(max(m[2] for m in matches), boosted),
                    evidence=tuple(evidence),
                )
            )
        return signals

    def _matches(self, norm: Normalized) -> dict[int, list[tuple[int, int, float, int]]]:
        """Matches by category as ``(start, end, weight, term index)`` in the
        normalised text, sorted by position, after the allow-list and the tidying
        a reviewer wants: one match per span (the heaviest), and none that sits
        inside a heavier-or-equal match of its category ("bitch" inside "stupid
        bitch" adds nothing)."""
        hits: list[tuple[int, int, int]] = []
        allowed: list[tuple[int, int]] = []
        runs = norm.runs
        for last, (length, lead, trail, patterns) in self._automaton.iter(norm.text):
            start, end = last - length + 1 + lead, last + 1 - trail
            for index, needed in patterns:
                if needed and any(runs.get(start + i, 1) < n for i, n in needed):
                    continue  # "as" is not "ass": a doubled letter of the term needs a run in the text
                if self._terms[index][0] == _ALLOW:
                    allowed.append((start, end))
                else:
                    hits.append((start, end, index))
        overlaps_allowed = _overlap_test(allowed) if allowed else None
        spans: dict[int, dict[tuple[int, int], tuple[float, int]]] = {}
        for start, end, index in hits:
            if overlaps_allowed is not None and overlaps_allowed(start, end):
                continue
            category, term = self._terms[index]
            # A term open at one end ("fuck*") reports the whole word it sits in.
            if term.open_start:
                start = norm.text.rfind(" ", 0, start) + 1
            if term.open_end:
                end = norm.text.find(" ", end)
            best = spans.setdefault(category, {}).get((start, end))
            if best is None or term.weight > best[0]:
                spans[category][(start, end)] = (term.weight, index)
        return {
            category: _outermost([(s, e, w, i) for (s, e), (w, i) in found.items()]) if len(found) > 1
            else [(s, e, w, i) for (s, e), (w, i) in found.items()]
            for category, found in spans.items()
        }

    def detect_many(
        self, items: Sequence[ContentItem], prior: Sequence[Sequence[Signal]] | None = None
    ) -> list[list[Signal]]:
        # Nothing to vectorise: the automaton is per text and already one C pass.
        detect = self.detect
        return [detect(item) for item in items]


def _overlap_test(spans: list[tuple[int, int]]) -> Callable[[int, int], bool]:
    """A function telling whether ``[start, end)`` overlaps any of ``spans``, in
    O(log n): a text of thousands of allow-listed phrases stays linear."""
    spans = sorted(spans)
    starts = [s for s, _ in spans]
    reach = list(accumulate((e for _, e in spans), max))  # furthest end among spans so far

    def overlaps(start: int, end: int) -> bool:
        k = bisect_left(starts, end)  # spans that begin before this one ends
        return k > 0 and reach[k - 1] > start

    return overlaps


def _outermost(matches: list[tuple[int, int, float, int]]) -> list[tuple[int, int, float, int]]:
    """Drop each match that sits inside a heavier-or-equal one, in one sweep by position."""
    kept: list[tuple[int, int, float, int]] = []
    open_: list[tuple[int, int, float, int]] = []  # kept matches still covering the sweep
    for match in sorted(matches, key=lambda m: (m[0], -m[1], -m[2])):
        start, end, weight, _ = match
        open_ = [o for o in open_ if o[1] > start]
        if any(o[1] >= end and o[2] >= weight for o in open_):
            continue
        kept.append(match)
        open_.append(match)
    return kept


def _as_term(spec: TermSpec | Term, source: str) -> Term:
    if isinstance(spec, Term):
        return spec
    if isinstance(spec, str):
        term = parse_line(spec, source)
        if term is None:
            raise ConfigError(f"{source}: {spec!r} is blank or a comment; write a term or remove it")
        return term
    if (
        isinstance(spec, Sequence)
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], int | float)
        and not isinstance(spec[1], bool)
    ):
        return Term.parse(spec[0], float(spec[1]), source)
    raise ConfigError(f"{source}: expected a term or [term, weight], got {spec!r}")


def _read_value(value: Any, base: Path, field: str) -> list[Term]:
    """A policy value is a path (relative to the policy file), a list of terms, or {term: weight}."""
    if isinstance(value, str):
        return read_list(base / value, field, name=value)
    if isinstance(value, Mapping):
        value = list(value.items())
    if isinstance(value, list | tuple):
        return [_as_term(spec, f"{field}[{i}]") for i, spec in enumerate(value)]
    raise ConfigError(
        f"{field}: expected a list file path, a list of terms or a {{term: weight}} mapping, got {value!r}"
    )


def _spellings(folded: str, plural: bool) -> set[str]:
    """The canonical spellings one term can take in normalised text.

    The normaliser cannot know whether "1" meant i or l, nor which letter a "*"
    hid, so it writes :data:`IL` and :data:`MASK`; here each term grows the
    matching spellings. Done once per list load, it keeps matching a single pass.
    """
    forms = {folded}
    if " " in folded:
        forms.add(folded.replace(" ", ""))  # "killyourself", "#freefollowers"
    forms |= {form.replace("f", "ph") for form in forms if "f" in form}  # "phuck", "phaggot"
    if plural and not folded.endswith("s"):
        forms |= {form + "s" for form in forms}
    spellings: set[str] = set()
    for form in forms:
        spellings |= _il_spellings(form)
        if " " not in form:
            spellings |= _masked_spellings(form)
            if len(form) >= 5:
                # "a m.o.r.o.n" reaches the automaton as "amoron": the normaliser joins the
                # article with the spelled-out letters ("u" likewise).
                spellings |= {"a" + form, "u" + form}
    return spellings


def _il_spellings(form: str) -> set[str]:
    """Every way a writer could have swapped this form's i's and l's for 1, ! or |.

    All combinations up to :data:`_ALL_IL_UP_TO` positions; beyond that, any one
    or two swapped and all of them, which is how people write it ("k1ll", "1d10t"),
    without 2**n spellings for a long phrase.
    """
    positions = [i for i, ch in enumerate(form) if ch in "il"]
    if len(positions) <= _ALL_IL_UP_TO:
        subsets: Iterable[tuple[int, ...]] = (
            c for size in range(len(positions) + 1) for c in combinations(positions, size)
        )
    else:
        subsets = chain(
            [(), tuple(positions)], combinations(positions, 1), combinations(positions, 2)
        )
    out = set()
    for subset in subsets:
        chars = list(form)
        for position in subset:
            chars[position] = IL
        out.add("".join(chars))
    return out


def _masked_spellings(word: str) -> set[str]:
    """Spellings with a span inside the word hidden by '*' ("f*ck", "b**ch").

    The first and last letter stay and at most (length - 1) // 2 letters (at
    least one) are hidden, so "s**t" does not guess between shit and slut; a
    list may spell such forms itself ("f**k").
    """
    if len(word) < 4:
        return set()
    longest = max(1, (len(word) - 1) // 2)
    return {
        word[:start] + MASK * size + word[start + size:]
        for size in range(1, longest + 1)
        for start in range(1, len(word) - size)
    }
