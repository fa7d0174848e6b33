"""Labelled datasets in one format, whatever their source.

Every public set labels something different: HateCheck says "hateful", SMS Spam
says "spam", AILuminate only says which hazard a prompt seeks. To evaluate a
detector across all of them we convert each to *rows*: one text, and one label
per policy category that is 1, 0 or unknown. The conversion is deliberately
conservative: a category the source says nothing about stays unknown, so a
spam set never counts as evidence that a detector's hate scores are right.

The file format is JSON Lines, one object per row::

    {"id": "hatecheck-1", "text": "I hate women. ", "hate": 1,
     "groups": ["women"], "split": "test", "meta": {"functionality": "derog_neg_emote_h"}}

Categories missing from the object (or ``null``) are unknown. ``unsafe`` is an
optional source-given binary label for sets that say "harmful" without saying
which category (ToxicChat, AdvBench); the "any unsafe" view of the metrics
uses it when a row has it.

Each converter turns source records into *source labels* (``"hateful"``,
``"hazard:cse"``, ``"S=1"``), and a per-format mapping turns those into
category values. The mappings are data, printed in docs/evaluation.md, and
``--mapping FILE.yaml`` overrides them key by key. A record none of whose
source labels is in the mapping is dropped (and counted in the card): that is
how out-of-policy material such as AILuminate's privacy prompts is left out.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from referee.errors import ConfigError, InputError
from referee.eval.formats import (
    CATEGORIES,
    FORMATS,
    LABEL_KEYS,
    UNSAFE,
    Format,
    Mapping,
    Reader,
    Split,
    dedup_key,
    file_sha256,
)

#: Public names, including those re-exported from ``formats`` (callers import them from here).
__all__ = [
    "CATEGORIES",
    "FORMATS",
    "LABEL_KEYS",
    "UNSAFE",
    "DatasetCard",
    "Format",
    "Row",
    "check_labels",
    "decontaminate",
    "dedup_key",
    "describe",
    "file_sha256",
    "get_format",
    "import_dataset",
    "import_with_card",
    "label_distribution",
    "load_mapping",
    "load_rows",
    "read_card",
    "split_rows",
    "write_card",
    "write_rows",
]

_RESERVED = {"id", "text", "groups", "split", "meta"}
_CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def check_labels(rows: Sequence[Row], categories: Sequence[str], where: str = "dataset") -> list[str]:
    """The policy categories these rows label, in the policy's order. A label that is
    not a category of the policy (nor ``unsafe``) is an error naming it, with a
    did-you-mean: a typo must fail where the data meets the taxonomy, not vanish."""
    known = set(categories) | {UNSAFE}
    seen: set[str] = set()
    for row in rows:
        seen.update(row.labels)
    stray = sorted(seen - known)
    if stray:
        close = difflib.get_close_matches(stray[0], list(categories), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(f"label {stray[0]!r} is not a category of the policy.{hint} "
                         f"Categories: {', '.join(categories)}", where=where)
    return [c for c in categories if c in seen] or list(categories)


class Row(BaseModel):
    """One labelled text. ``labels`` holds only known values; absent = unknown."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    text: str
    labels: dict[str, int] = Field(default_factory=dict)
    groups: tuple[str, ...] = ()
    split: Split | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _known_labels(cls, value: dict[str, int]) -> dict[str, int]:
        # The taxonomy is the policy's: a row may label any category name (a team's
        # own "scam"), and ``check_labels`` holds the rows against a policy's
        # categories where they meet one (evaluation, training), naming typos there.
        for key, label in value.items():
            if not _CATEGORY_NAME.match(key):
                raise ValueError(f"label {key!r} is not a category name (lower_snake_case, like 'hate'); "
                                 f"known fields: {', '.join(sorted(_RESERVED))}")
            if label not in (0, 1):
                raise ValueError(f"label {key!r} must be 0, 1 or null, got {label!r}")
        return value

    def label(self, category: str) -> int | None:
        return self.labels.get(category)

    def any_unsafe(self) -> int | None:
        """The binary "any unsafe" label, or None when the row cannot say.

        A source-given ``unsafe`` wins. Otherwise 1 if any category is 1, 0 only
        if every category is known 0; a row with some zeros and some unknowns
        (a HateCheck non-hateful case says nothing about harassment) is left
        out, because scoring it would punish a detector for a correct flag in a
        category the source never judged.
        """
        if UNSAFE in self.labels:
            return self.labels[UNSAFE]
        names = CATEGORIES + tuple(k for k in self.labels if k not in LABEL_KEYS)
        values = [self.labels.get(c) for c in names]
        if any(v == 1 for v in values):
            return 1
        if all(v == 0 for v in values):
            return 0
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text}
        for key in LABEL_KEYS + tuple(sorted(k for k in self.labels if k not in LABEL_KEYS)):
            if key in self.labels:
                out[key] = self.labels[key]
        if self.groups:
            out["groups"] = list(self.groups)
        if self.split:
            out["split"] = self.split
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Row":
        labels = {k: v for k, v in data.items() if k not in _RESERVED and v is not None}
        unknown = [k for k, v in labels.items() if not _CATEGORY_NAME.match(k) or not isinstance(v, int)]
        if unknown:
            raise ValueError(
                f"unknown field {unknown[0]!r}; a row has id, text, groups, split, meta and "
                f"category labels (a category name with 0, 1 or null, e.g. {', '.join(LABEL_KEYS[:3])})"
            )
        groups = data.get("groups") or ()
        if isinstance(groups, str) or not isinstance(groups, list | tuple):
            raise ValueError(f"groups must be a list of group names such as [\"women\"], got {groups!r}")
        return cls(
            id=str(data.get("id", "")),
            text=data.get("text"),
            labels=labels,
            groups=tuple(str(g) for g in groups),
            split=data.get("split"),
            meta=data.get("meta") or {},
        )

    def with_split(self, split: Split | None) -> "Row":
        return self.model_copy(update={"split": split})


# -- reading and writing ----------------------------------------------------
def load_rows(path: str | Path) -> list[Row]:
    """Read a referee dataset; a bad line raises InputError naming file and line."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read dataset: {exc.strerror}", where=str(path)) from exc
    rows: list[Row] = []
    seen: dict[str, int] = {}
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno}); each line must be one JSON object",
                                 where=where) from exc
            if not isinstance(data, dict):
                raise InputError(f"expected a JSON object with id and text, got {type(data).__name__}", where=where)
            try:
                row = Row.from_json(data)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                raise InputError(f"{loc}: {msg} (got {err.get('input')!r})", where=where) from exc
            except ValueError as exc:
                raise InputError(str(exc), where=where) from exc
            if row.id in seen:
                raise InputError(f"duplicate id {row.id!r} (first on line {seen[row.id]}); ids must be unique",
                                 where=where)
            seen[row.id] = lineno
            rows.append(row)
    return rows


def write_rows(rows: Iterable[Row], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n


# -- decontamination ----------------------------------------------------------
def decontaminate(rows: list[Row], seen: list[Row]) -> list[Row]:
    """Rows that share nothing with ``seen`` (typically a model's training data):
    neither a near-duplicate text nor a user/group. Evaluating a model on text it
    was trained on — even re-split differently — flatters it."""
    keys = {dedup_key(r.text) for r in seen}
    groups = {str(g) for r in seen for g in (r.meta.get("group_key"), r.meta.get("user")) if g}
    return [
        r for r in rows
        if dedup_key(r.text) not in keys
        and not any(str(g) in groups for g in (r.meta.get("group_key"), r.meta.get("user")) if g)
    ]



# -- import --------------------------------------------------------------------
class DatasetCard(BaseModel):
    """Provenance and shape of one converted dataset, written next to the JSONL."""

    model_config = ConfigDict(extra="allow")

    format: str
    description: str = ""
    source: str
    source_files: dict[str, str] = Field(default_factory=dict, description="relative path -> sha256")
    licence: str
    trainable: bool
    eval_only: bool = False
    notes: str = ""
    mapping: Mapping = Field(default_factory=dict)
    rows: int = 0
    dropped_unmapped: dict[str, int] = Field(default_factory=dict)
    merged_duplicates: int = 0
    created_at: str = ""
    split_seed: int | None = None
    split_ratios: tuple[float, ...] | None = None


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"Unknown dataset format {name!r}. Available: {', '.join(sorted(FORMATS))}") from None


def load_mapping(path: str | Path) -> dict[str, dict[str, int] | None]:
    """A YAML mapping override: ``source_label: {category: 0|1}``; ``null`` drops a default key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read mapping: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a mapping file is a YAML mapping 'source_label: {{category: 0 or 1}}'")
    return data


def _merge_mapping(default: Mapping, override: dict[str, Any] | None) -> Mapping:
    merged: Mapping = {k: dict(v) for k, v in default.items()}
    for key, value in (override or {}).items():
        if value is None:
            merged.pop(str(key), None)
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"mapping[{key!r}] must be a mapping of category to 0 or 1, got {value!r}")
        for cat, v in value.items():
            if cat not in LABEL_KEYS:
                raise ConfigError(f"mapping[{key!r}]: unknown category {cat!r}. Available: {', '.join(LABEL_KEYS)}")
            if v not in (0, 1):
                raise ConfigError(f"mapping[{key!r}][{cat!r}] must be 0 or 1, got {v!r}")
        merged[str(key)] = {str(c): int(v) for c, v in value.items()}
    return merged


def _labels_from(source_labels: list[str], mapping: Mapping) -> dict[str, int] | None:
    """Combine mapped labels: a 1 from any source label wins over a 0. None = no source label is mapped."""
    hits = [mapping[s] for s in source_labels if s in mapping]
    if not hits:
        return None
    labels: dict[str, int] = {}
    for hit in hits:
        for cat, value in hit.items():
            labels[cat] = max(labels.get(cat, 0), value)
    return labels


def _dedupe(rows: list[Row]) -> tuple[list[Row], int]:
    """Merge rows with the same stripped text: groups are unioned and a category
    on which the copies disagree becomes unknown rather than picking a side."""
    by_text: dict[str, int] = {}
    out: list[Row] = []
    merged = 0
    for row in rows:
        key = row.text.strip()
        if key not in by_text:
            by_text[key] = len(out)
            out.append(row)
            continue
        merged += 1
        first = out[by_text[key]]
        labels = dict(first.labels)
        conflicts = list(first.meta.get("conflicting_labels", []))
        for cat in set(first.labels) | set(row.labels):
            a, b = first.labels.get(cat), row.labels.get(cat)
            if a is not None and b is not None and a != b:
                labels.pop(cat, None)
                conflicts.append(cat)
            elif a is None and b is not None and cat not in conflicts:
                labels[cat] = b
        meta = dict(first.meta)
        meta["duplicates"] = int(meta.get("duplicates", 0)) + 1
        if conflicts:
            meta["conflicting_labels"] = sorted(set(conflicts))
        out[by_text[key]] = first.model_copy(update={
            "labels": labels,
            "groups": tuple(dict.fromkeys(first.groups + row.groups)),
            "meta": meta,
        })
    return out, merged


def import_with_card(fmt: str, source: Path, mapping: dict[str, Any] | None = None) -> tuple[list[Row], DatasetCard]:
    """Convert a source to rows and describe the conversion (licence, hashes, drops)."""
    spec = get_format(fmt)
    source = Path(source)
    reader = Reader(root=source if source.is_dir() else source.parent)
    table = _merge_mapping(spec.mapping, mapping)
    rows: list[Row] = []
    dropped: Counter[str] = Counter()
    texts_by_id: dict[str, str] = {}
    repeated = 0
    try:
        for rec in spec.read(source, reader):
            if rec.id in texts_by_id:
                # Some sources repeat a record verbatim (YouTube has three); a
                # different text under a reused id gets a suffix instead.
                if texts_by_id[rec.id] == rec.text:
                    repeated += 1
                    continue
                n = 2
                while f"{rec.id}~{n}" in texts_by_id:
                    n += 1
                rec.id = f"{rec.id}~{n}"
            texts_by_id[rec.id] = rec.text
            labels = _labels_from(rec.source_labels, table)
            if labels is None:
                dropped[" + ".join(rec.source_labels)] += 1
                continue
            meta = {"source_labels": rec.source_labels, **{k: v for k, v in rec.meta.items() if v is not None}}
            rows.append(Row(id=rec.id, text=rec.text, labels=labels, groups=rec.groups, split=rec.split, meta=meta))
    except (KeyError, ValueError, csv.Error, json.JSONDecodeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot read {source} as format {fmt!r}: {type(exc).__name__}: {exc}; "
                         f"check the format name against the folder's SOURCE.md") from exc
    merged = repeated
    if spec.dedupe:
        rows, n_merged = _dedupe(rows)
        merged += n_merged
    card = DatasetCard(
        format=fmt, description=spec.description, source=str(source), source_files=dict(sorted(reader.files.items())),
        licence=spec.licence, trainable=spec.trainable, eval_only=spec.eval_only, notes=spec.notes, mapping=table,
        rows=len(rows), dropped_unmapped=dict(dropped), merged_duplicates=merged,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return rows, card


def import_dataset(fmt: str, source: Path, mapping: dict[str, Any] | None = None) -> list[Row]:
    """Rows of a source dataset in referee's format; see :data:`FORMATS` for the names."""
    return import_with_card(fmt, source, mapping)[0]


# -- cards -------------------------------------------------------------------------
def card_path(dataset: str | Path) -> Path:
    dataset = Path(dataset)
    return dataset.with_name(dataset.name.removesuffix(".jsonl") + ".card.json")


def write_card(card: DatasetCard, dataset: str | Path) -> Path:
    path = card_path(dataset)
    path.write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_card(dataset: str | Path) -> DatasetCard | None:
    path = card_path(dataset)
    if not path.exists():
        return None
    try:
        return DatasetCard.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise InputError(f"{path}: not a dataset card: {exc.errors()[0]['msg']}") from exc


def label_distribution(rows: Iterable[Row]) -> dict[str, dict[str, int]]:
    """Per category (and ``unsafe``, ``any``): counts of 1, 0 and unknown."""
    rows = list(rows)
    out: dict[str, dict[str, int]] = {}
    for key in LABEL_KEYS + ("any",):
        values = [r.any_unsafe() if key == "any" else r.label(key) for r in rows]
        out[key] = {"positive": sum(v == 1 for v in values), "negative": sum(v == 0 for v in values),
                    "unknown": sum(v is None for v in values)}
    return out


def describe(rows: list[Row], card: DatasetCard | None, path: str | Path | None = None) -> dict[str, Any]:
    """The full card: stored provenance plus what the file holds now."""
    splits = Counter(r.split or "unassigned" for r in rows)
    out: dict[str, Any] = card.model_dump() if card else {"format": None, "licence": "unknown", "trainable": False}
    out["rows"] = len(rows)
    if path is not None:
        out["file"] = str(path)
        out["file_sha256"] = file_sha256(path)
    out["labels"] = label_distribution(rows)
    out["splits"] = dict(sorted(splits.items()))
    out["labels_by_split"] = {s: label_distribution([r for r in rows if (r.split or "unassigned") == s])
                              for s in sorted(splits)}
    out["groups"] = dict(Counter(g for r in rows for g in r.groups).most_common())
    return out


# -- splits --------------------------------------------------------------------------
def _stratum(row: Row) -> str:
    return ",".join(f"{k}={row.labels[k]}" for k in LABEL_KEYS if k in row.labels)


def split_rows(rows: list[Row], seed: int = 13, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
               keep_existing: bool = True) -> list[Row]:
    """Assign train/dev/test deterministically, stratified by label pattern.

    Rows sharing a near-duplicate key (``dedup_key``) or a ``meta.group_key``
    form one unit and always land in the same split, so a re-posted spam
    campaign cannot sit in train and test at once. Within each stratum units are
    ordered by a seeded hash (stable across Python versions and machines) and
    cut at the cumulative ratios. Rows that already carry a split (official
    splits such as TweetEval's) keep it unless ``keep_existing`` is False.
    """
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(f"--ratios must be three non-negative numbers summing to 1 (train,dev,test), got {ratios}")
    units: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if keep_existing and row.split:
            continue
        key = str(row.meta.get("group_key") or dedup_key(row.text) or f"__empty_{row.id}")
        units.setdefault(key, []).append(i)
    strata: dict[str, list[str]] = {}
    for key, members in units.items():
        strata.setdefault(_stratum(rows[members[0]]), []).append(key)
    assign: dict[int, Split] = {}
    for stratum in sorted(strata):
        keys = sorted(strata[stratum], key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
        total = sum(len(units[k]) for k in keys)
        done = 0
        for key in keys:
            size = len(units[key])
            # Place a unit by the position of its midpoint, so big duplicate clusters fall where they fit.
            pos = (done + size / 2) / total
            split: Split = "train" if pos < ratios[0] else "dev" if pos < ratios[0] + ratios[1] else "test"
            for i in units[key]:
                assign[i] = split
            done += size
    return [row.with_split(assign[i]) if i in assign else row for i, row in enumerate(rows)]
