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

import ast
import csv
import hashlib
import html
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from referee.errors import ConfigError, InputError

#: The default policy's categories, in its order. Rows may only label these
#: (plus ``unsafe``): a typo such as ``"hat": 1`` must fail, not vanish.
CATEGORIES: tuple[str, ...] = (
    "hate",
    "harassment",
    "sexual",
    "sexual_minors",
    "violence",
    "self_harm",
    "spam",
    "illegal_goods",
)
#: The pseudo-label for "harmful, category not given by the source".
UNSAFE = "unsafe"
LABEL_KEYS: tuple[str, ...] = CATEGORIES + (UNSAFE,)
SPLITS: tuple[str, ...] = ("train", "dev", "test")

Split = Literal["train", "dev", "test"]
Mapping = dict[str, dict[str, int]]

_RESERVED = {"id", "text", "groups", "split", "meta"}


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
        for key, label in value.items():
            if key not in LABEL_KEYS:
                raise ValueError(f"unknown category {key!r}; expected one of {', '.join(LABEL_KEYS)}")
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
        values = [self.labels.get(c) for c in CATEGORIES]
        if any(v == 1 for v in values):
            return 1
        if all(v == 0 for v in values):
            return 0
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text}
        for key in LABEL_KEYS:
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
        unknown = [k for k in labels if k not in LABEL_KEYS]
        if unknown:
            raise ValueError(
                f"unknown field {unknown[0]!r}; a row has id, text, groups, split, meta and "
                f"category labels ({', '.join(LABEL_KEYS)})"
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


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- text keys ----------------------------------------------------------------
_URL = re.compile(r"(https?://|www\.)\S+", re.I)
_MENTION = re.compile(r"@\w+")
_NON_WORD = re.compile(r"[\W\d_]+", re.UNICODE)


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


def dedup_key(text: str) -> str:
    """The text as a near-duplicate key: case, punctuation, URLs, mentions and
    digits removed. Retweets, re-posted spam with a new link and templates that
    differ by a number all collapse to one key, so a split keeps them together."""
    text = unicodedata.normalize("NFKC", html.unescape(text)).lower()
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    text = _NON_WORD.sub(" ", text)
    words = text.split()
    if words[:1] == ["rt"]:  # a retweet is the tweet
        words = words[1:]
    return " ".join(words)


def short_hash(text: str, n: int = 12) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


# -- formats ------------------------------------------------------------------
@dataclass
class Record:
    """What a converter reads from the source, before label mapping."""

    id: str
    text: str
    source_labels: list[str]
    groups: tuple[str, ...] = ()
    split: Split | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Reader:
    """Tracks the files a converter reads, so the card can list their sha256."""

    root: Path
    files: dict[str, str] = field(default_factory=dict)

    def open(self, path: Path, newline: str | None = "") -> Any:
        try:
            rel = str(path.relative_to(self.root)) if path != self.root else path.name
        except ValueError:
            rel = str(path)
        if rel not in self.files:
            self.files[rel] = file_sha256(path)
        return path.open(encoding="utf-8", newline=newline)

    def csv(self, path: Path, delimiter: str = ",") -> list[dict[str, str]]:
        with self.open(path) as handle:
            return list(csv.DictReader(handle, delimiter=delimiter))


@dataclass(frozen=True)
class Format:
    """One source format: how to read it, how its labels map, and its terms of use."""

    name: str
    description: str
    read: Callable[[Path, _Reader], Iterator[Record]]
    mapping: Mapping
    licence: str
    #: The licence allows training a model we ship (not NC, not GPL, not a held-out benchmark).
    trainable: bool
    #: The authors position it as a diagnostic: do not train on it if you also report on it.
    eval_only: bool = False
    dedupe: bool = False
    notes: str = ""
    shared_path: str = ""


ALL_ZERO: dict[str, int] = {c: 0 for c in CATEGORIES}
BENIGN: dict[str, int] = {**ALL_ZERO, UNSAFE: 0}


def _need(path: Path, fmt: str) -> None:
    if not path.exists():
        raise InputError(f"source {path} does not exist; pass the dataset folder or file for format {fmt!r}")


def _pick(source: Path, default: str | list[str], fmt: str) -> list[Path]:
    """A file passed directly, or the format's default file(s) inside a folder."""
    _need(source, fmt)
    if source.is_file():
        return [source]
    names = [default] if isinstance(default, str) else default
    paths = [source / n for n in names]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise InputError(f"{missing[0]} not found; is {source} the folder of format {fmt!r}?")
    return paths


def _lower_group(value: str) -> str:
    value = value.strip().lower()
    return {"immigrant": "immigrants", "jewish people": "jews"}.get(value, value)


# HateCheck ----------------------------------------------------------------
def _read_hatecheck(source: Path, reader: _Reader) -> Iterator[Record]:
    for path in _pick(source, "test_suite_cases.csv", "hatecheck"):
        for r in reader.csv(path):
            ident = (r.get("target_ident") or "").strip()
            yield Record(
                id=f"hatecheck-{r['case_id']}",
                text=r["test_case"],
                source_labels=[r["label_gold"]],
                groups=(_lower_group(ident),) if ident else (),
                meta={
                    "functionality": r["functionality"],
                    "direction": r.get("direction") or None,
                    "templ_id": r.get("templ_id") or None,
                    "language": "en",
                },
            )


_MHC_LANG = {"arabic": "ar", "dutch": "nl", "french": "fr", "german": "de", "hindi": "hi", "italian": "it",
             "mandarin": "zh", "polish": "pl", "portuguese": "pt", "spanish": "es"}


def _read_mhc(source: Path, reader: _Reader) -> Iterator[Record]:
    _need(source, "multilingual_hatecheck")
    if source.is_file():
        paths = [source]
    else:
        folder = source / "final_cases" if (source / "final_cases").is_dir() else source
        paths = sorted(folder.glob("hatecheck_cases_final_*.csv"))
        if not paths:
            raise InputError(f"no hatecheck_cases_final_*.csv under {source}")
    for path in paths:
        lang_name = path.stem.rsplit("_", 1)[-1]
        for r in reader.csv(path):
            ident = (r.get("target_ident") or "").strip()
            yield Record(
                id=f"mhc-{r['mhc_case_id']}",
                text=r["test_case"],
                source_labels=[r["label_gold"]],
                groups=(_lower_group(ident),) if ident else (),
                meta={
                    "functionality": r["functionality"],
                    "language": _MHC_LANG.get(lang_name, lang_name),
                    "disagreement": r.get("disagreement_in_case") == "True",
                },
            )


# Davidson -------------------------------------------------------------------
def _read_davidson(source: Path, reader: _Reader) -> Iterator[Record]:
    names = {"0": "hate_speech", "1": "offensive_language", "2": "neither"}
    for path in _pick(source, "labeled_data.csv", "davidson"):
        for r in reader.csv(path):
            yield Record(
                id=f"davidson-{r['']}",
                text=html.unescape(r["tweet"]),
                source_labels=[names[r["class"]]],
                meta={"votes": {"hate": int(r["hate_speech"]), "offensive": int(r["offensive_language"]),
                                "neither": int(r["neither"])}},
            )


# TweetEval ------------------------------------------------------------------
def _tweeteval(task: str) -> Callable[[Path, _Reader], Iterator[Record]]:
    def read(source: Path, reader: _Reader) -> Iterator[Record]:
        _need(source, f"tweeteval_{task}")
        folder = source if (source / "mapping.txt").exists() else source / task
        if not (folder / "mapping.txt").exists():
            raise InputError(f"{source} is neither the tweeteval folder nor its {task}/ sub-folder")
        with reader.open(folder / "mapping.txt") as handle:
            names = dict(line.rstrip("\n").split("\t") for line in handle if line.strip())
        for part, split in (("train", "train"), ("val", "dev"), ("test", "test")):
            with reader.open(folder / f"{part}_text.txt", newline=None) as handle:
                texts = handle.read().split("\n")
            with reader.open(folder / f"{part}_labels.txt", newline=None) as handle:
                labels = [x.strip() for x in handle.read().split("\n") if x.strip()]
            texts = texts[: len(labels)]
            for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
                yield Record(id=f"tweeteval-{task}-{part}-{i}", text=text, source_labels=[names[label]],
                             split=split)  # type: ignore[arg-type]
    return read


# ToxiGen -------------------------------------------------------------------
_TOXIGEN_NAME = re.compile(r"^(hate|neutral)_(.+?)(?:_1k|_sentences)?$")


def _read_toxigen(source: Path, reader: _Reader) -> Iterator[Record]:
    _need(source, "toxigen")
    paths = [source] if source.is_file() else sorted(source.glob("prompts/*.txt")) + sorted(
        source.glob("demonstrations/*/*.txt"))
    if not paths:
        raise InputError(f"no prompts/*.txt or demonstrations/*/*.txt under {source}")
    for path in paths:
        match = _TOXIGEN_NAME.match(path.stem)
        if not match:
            continue
        label, group = match.groups()
        with reader.open(path, newline=None) as handle:
            lines = handle.read().split("\n")
        seen: set[str] = set()  # each prompt file repeats ~10 sentences 1,000 times
        for line in lines:
            for part in line.split("\\n"):
                text = part.strip().removeprefix("-").strip()
                if text and text not in seen:
                    seen.add(text)
                    yield Record(id=f"toxigen-{short_hash(text)}", text=text, source_labels=[label],
                                 groups=(group,), meta={"file": path.name})


# ETHOS -----------------------------------------------------------------------
_ETHOS_TARGETS = ("gender", "race", "national_origin", "disability", "religion", "sexual_orientation")


def _read_ethos(source: Path, reader: _Reader) -> Iterator[Record]:
    _need(source, "ethos")
    binary = source if source.is_file() else source / "Ethos_Dataset_Binary.csv"
    multi_path = binary.parent / "Ethos_Dataset_Multi_Label.csv"
    multi: dict[str, dict[str, str]] = {}
    if multi_path.exists():
        for r in reader.csv(multi_path, delimiter=";"):
            multi[dedup_key(r["comment"])] = r
    for i, r in enumerate(reader.csv(binary, delimiter=";")):
        frac = float(r["isHate"])
        labels = ["hate" if frac >= 0.5 else "not_hate"]
        groups: tuple[str, ...] = ()
        extra = multi.get(dedup_key(r["comment"])) if frac >= 0.5 else None
        if extra:
            labels.append("violence" if float(extra["violence"]) >= 0.5 else "not_violence")
            groups = tuple(t for t in _ETHOS_TARGETS if float(extra[t]) >= 0.5)
        yield Record(id=f"ethos-{i}", text=r["comment"], source_labels=labels, groups=groups,
                     meta={"is_hate_fraction": frac})


# Jigsaw sentence templates -------------------------------------------------------
#: The 50 identity terms embedded in the English templates (en_word_lists/words.csv
#: minus "cis"), used when words.csv is not next to the source.
JIGSAW_IDENTITY_TERMS = (
    "lesbian", "gay", "bisexual", "transgender", "trans", "queer", "lgbt", "lgbtq", "homosexual", "straight",
    "heterosexual", "male", "female", "nonbinary", "african", "african american", "black", "white", "european",
    "hispanic", "latino", "latina", "latinx", "mexican", "canadian", "american", "asian", "indian",
    "middle eastern", "chinese", "japanese", "christian", "muslim", "jewish", "buddhist", "catholic", "protestant",
    "sikh", "taoist", "old", "older", "young", "younger", "teenage", "millenial", "middle aged", "elderly", "blind",
    "deaf", "paralyzed",
)


def _identity_pattern(terms: Iterable[str]) -> re.Pattern[str]:
    ordered = sorted(set(terms), key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(t) for t in ordered) + r")\b", re.I)


def _read_jigsaw(source: Path, reader: _Reader) -> Iterator[Record]:
    paths = _pick(source, "sentence_templates/en_sentence_templates.csv", "jigsaw_templates")
    path = paths[0]
    lang = path.name.split("_sentence_templates")[0] if "_sentence_templates" in path.name else "en"
    terms: Iterable[str] = JIGSAW_IDENTITY_TERMS
    for parent in [path.parent, *path.parents][:3]:
        words = parent / "en_word_lists" / "words.csv"
        if words.exists():
            terms = [r["word"].lower() for r in reader.csv(words)
                     if r["type"] == "identity" and r["connotation"] != "toxic" and r["word"].lower() != "cis"]
            break
    pattern = _identity_pattern(terms)
    for i, r in enumerate(reader.csv(path)):
        if "Text" in r:  # bias_madlibs_77k.csv
            text, label, template = r["Text"], {"BAD": "toxic", "NOT_BAD": "nontoxic"}[r["Label"]], r["Template"]
        else:
            text, label, template = r["phrase"], r["toxicity"], r["template"]
        groups = tuple(dict.fromkeys(m.lower() for m in pattern.findall(text))) if lang == "en" else ()
        yield Record(id=f"jigsaw-{lang}-{i}", text=text, source_labels=[label], groups=groups,
                     meta={"template": template, "language": lang})


# Spam ---------------------------------------------------------------------------
def _read_youtube(source: Path, reader: _Reader) -> Iterator[Record]:
    _need(source, "youtube_spam")
    paths = [source] if source.is_file() else sorted(source.glob("Youtube0*.csv"))
    for path in paths:
        for r in reader.csv(path):
            text = html.unescape(r["CONTENT"].replace("\ufeff", "")).replace("<br />", "\n")
            yield Record(id=f"youtube-{r['COMMENT_ID']}", text=text.strip(), source_labels=[f"CLASS={r['CLASS']}"],
                         meta={"video": path.stem})


def _read_sms(source: Path, reader: _Reader) -> Iterator[Record]:
    for path in _pick(source, "SMSSpamCollection", "sms_spam"):
        with reader.open(path, newline=None) as handle:
            for i, line in enumerate(handle):
                label, _, text = line.rstrip("\n").partition("\t")
                if text:
                    yield Record(id=f"sms-{i}", text=text, source_labels=[label])


# Prompt sets ----------------------------------------------------------------------
def _read_toxicchat(source: Path, reader: _Reader) -> Iterator[Record]:
    for path in _pick(source, "toxic_chat_train.json", "toxicchat"):
        with reader.open(path) as handle:
            data = json.load(handle)
        for inst in data["instances"]:
            ann = inst["annotations"]
            yield Record(
                id=f"toxicchat-{inst['id'][:16]}",
                text=inst["instance"],
                source_labels=[f"toxicity={ann['toxicity']['majority_human']}"],
                meta={"jailbreaking": int(ann["jailbreaking"]["majority_human"])},
            )


def _read_safe_unsafe_csv(source: Path, reader: _Reader) -> Iterator[Record]:
    _need(source, "safe_unsafe_csv")
    if not source.is_file():
        raise InputError(f"{source}: format 'safe_unsafe_csv' needs a CSV file with columns prompt,label[,type]")
    rows = reader.csv(source)
    if rows and not {"prompt", "label"} <= set(rows[0]):
        raise InputError(f"{source}: expected columns prompt and label (safe/unsafe), got {sorted(rows[0])}")
    for i, r in enumerate(rows, start=1):
        label = r["label"].strip().lower()
        if label not in ("safe", "unsafe"):
            raise InputError(f"label must be 'safe' or 'unsafe', got {r['label']!r}", where=f"{source}: row {i}")
        labels = [f"label={label}"]
        if r.get("type"):
            labels.append(f"type={r['type']}")
        yield Record(id=r.get("id") or f"{source.stem}-{i}", text=r["prompt"], source_labels=labels,
                     meta={"type": r.get("type")} if r.get("type") else {})


def _read_coconot(source: Path, reader: _Reader) -> Iterator[Record]:
    files = {"coconot_eval.jsonl": "eval", "coconot_contrast_eval.jsonl": "contrast", "coconot_pref.jsonl": "pref"}
    paths = _pick(source, list(files), "coconot")
    for path in paths:
        kind = files.get(path.name, "contrast" if "contrast" in path.name else "eval")
        with reader.open(path) as handle:
            for line in handle:
                if not line.strip():
                    continue
                r = json.loads(line)
                # Only this category is about content safety; the others are about
                # assistant behaviour (underspecified, unsupported, humanizing).
                if r["category"] != "Requests with safety concerns":
                    continue
                yield Record(id=f"coconot-{kind}-{r['id']}", text=r["prompt"],
                             source_labels=[f"{kind}:{r['subcategory']}"],
                             meta={"file": kind, "subcategory": r["subcategory"]})


def _read_do_not_answer(source: Path, reader: _Reader) -> Iterator[Record]:
    for path in _pick(source, "do_not_answer_data.csv", "do_not_answer"):
        for r in reader.csv(path):
            harm = r["specific_harms"].split(":")[0].strip()
            yield Record(id=f"dna-{r['id']}", text=r["question"], source_labels=[f"harm:{harm}"],
                         meta={"risk_area": r["risk_area"], "types_of_harm": r["types_of_harm"], "specific_harm": harm})


def _read_ailuminate(source: Path, reader: _Reader) -> Iterator[Record]:
    _need(source, "ailuminate")
    paths = [source] if source.is_file() else sorted(source.glob("airr_official_*prompt_set_release.csv"))
    for path in paths:
        for r in reader.csv(path):
            yield Record(id=f"ailuminate-{r['release_prompt_id']}", text=r["prompt_text"],
                         source_labels=[f"hazard:{r['hazard']}"],
                         meta={"hazard": r["hazard"], "persona": r["persona"],
                               "language": r["locale"].split("_")[0]})


def _read_advbench(source: Path, reader: _Reader) -> Iterator[Record]:
    paths = _pick(source, ["harmful_behaviors.csv", "harmful_strings.csv"], "advbench")
    for path in paths:
        kind = "behaviour" if "behavio" in path.name else "string"
        for i, r in enumerate(reader.csv(path)):
            text = r["goal"] if kind == "behaviour" else r["target"]
            yield Record(id=f"advbench-{kind}-{i}", text=text, source_labels=[kind], meta={"file": kind})


def _read_strongreject(source: Path, reader: _Reader) -> Iterator[Record]:
    for path in _pick(source, "strongreject_dataset.csv", "strongreject"):
        for i, r in enumerate(reader.csv(path)):
            yield Record(id=f"strongreject-{i}", text=r["forbidden_prompt"],
                         source_labels=[f"category:{r['category']}"],
                         meta={"category": r["category"], "source": r["source"]})


# Reddit C-SSRS ------------------------------------------------------------------------
def _split_posts(cell: str) -> list[str]:
    """Posts from the Python-list cell; 28 cells were cut at the spreadsheet
    limit and do not parse, so fall back to splitting on the list separators."""
    try:
        value = ast.literal_eval(cell)
        if isinstance(value, list):
            return [str(p) for p in value]
    except (ValueError, SyntaxError):
        pass
    body = cell.strip().removeprefix("[").removesuffix("]")
    parts = re.split(r"""['"],\s*['"]""", body)
    return [p.strip().strip("'\"") for p in parts if p.strip().strip("'\"")]


def _read_reddit_cssrs(source: Path, reader: _Reader) -> Iterator[Record]:
    for path in _pick(source, "500_Reddit_users_posts_labels.csv", "reddit_cssrs"):
        for r in reader.csv(path):
            posts = _split_posts(r["Post"])
            yield Record(id=f"cssrs-{r['User']}", text="\n\n".join(posts), source_labels=[f"Label:{r['Label']}"],
                         meta={"user": r["User"], "n_posts": len(posts), "cssrs": r["Label"]})


# GermEval violence --------------------------------------------------------------------
def _read_germeval(source: Path, reader: _Reader) -> Iterator[Record]:
    _need(source, "germeval_violence")
    if source.is_file():
        paths = [source]
    else:
        paths = [p for p in (source / "GermEval2026" / "vio_train_26.csv", source / "GermEval2025" / "vio_train.csv")
                 if p.exists()]
    seen: set[str] = set()
    for path in paths:  # 2026 first: its fine-grained label wins for ids in both files
        for r in reader.csv(path, delimiter=";"):
            if r["id"] in seen:
                continue
            seen.add(r["id"])
            label = f"vio26:{r['vio']}" if "vio" in r else f"VIO25:{r['VIO']}"
            yield Record(id=f"germeval-{r['id']}", text=r["description"], source_labels=[label],
                         meta={"language": "de", "edition": "2026" if "vio" in r else "2025"})


# OpenAI moderation evaluation set ------------------------------------------------------
OPENAI_KEYS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")


def _read_openai_moderation(source: Path, reader: _Reader) -> Iterator[Record]:
    _need(source, "openai_moderation")
    paths = [source] if source.is_file() else sorted(source.glob("*.jsonl"))
    for path in paths:
        with reader.open(path) as handle:
            for i, line in enumerate(handle):
                if not line.strip():
                    continue
                r = json.loads(line)
                labels = [f"{k}={int(r[k])}" for k in OPENAI_KEYS if r.get(k) is not None]
                yield Record(id=f"oai-{i}", text=r["prompt"], source_labels=labels or ["unlabelled"])


FORMATS: dict[str, Format] = {}


def _register(fmt: Format) -> None:
    FORMATS[fmt.name] = fmt


_register(Format(
    "hatecheck", "HateCheck English functional tests (test_suite_cases.csv)", _read_hatecheck,
    {"hateful": {"hate": 1}, "non-hateful": {"hate": 0}},
    "CC BY 4.0", trainable=True, eval_only=True, shared_path="hatecheck",
    notes="Non-hateful abuse of non-protected targets (target_indiv_nh...) is hate=0 with harassment unknown."))
_register(Format(
    "multilingual_hatecheck", "Multilingual HateCheck, 10 languages (final_cases/*.csv)", _read_mhc,
    {"hateful": {"hate": 1}, "non-hateful": {"hate": 0}},
    "CC BY 4.0", trainable=True, eval_only=True, shared_path="multilingual_hatecheck"))
_register(Format(
    "davidson", "Davidson et al. 2017 tweets: hate / offensive / neither", _read_davidson,
    {"hate_speech": {"hate": 1}, "offensive_language": {"hate": 0}, "neither": {"hate": 0, "harassment": 0}},
    "MIT (tweets: Twitter ToS)", trainable=True, shared_path="davidson_hate_offensive",
    notes="Offensive is not a policy category: offensive tweets are hate=0, harassment unknown."))
_register(Format(
    "tweeteval_hate", "TweetEval hate (HatEval: immigrants and women), official splits", _tweeteval("hate"),
    {"hate": {"hate": 1}, "not-hate": {"hate": 0}},
    "CC BY-NC 4.0 (HatEval; research use)", trainable=False, shared_path="tweeteval",
    notes="HatEval only labels hate against immigrants and women; other hate is labelled 0."))
_register(Format(
    "tweeteval_offensive", "TweetEval offensive (OLID subtask A), official splits", _tweeteval("offensive"),
    {"offensive": {}, "not-offensive": {"hate": 0, "harassment": 0}},
    "unclear (OLID; research use)", trainable=False, shared_path="tweeteval",
    notes="OLID 'offensive' includes untargeted profanity, which no policy category covers: "
          "offensive rows keep every category unknown; override with --mapping to treat them as harassment."))
_register(Format(
    "toxigen", "ToxiGen seed statements per target group (deduplicated)", _read_toxigen,
    {"hate": {"hate": 1}, "neutral": {"hate": 0}},
    "CDLA-Permissive-2.0", trainable=True, eval_only=True, dedupe=True, shared_path="toxigen",
    notes="Label is the intent of the seed file, not a per-sentence annotation."))
_register(Format(
    "ethos", "ETHOS binary comments (isHate >= 0.5) + violence and targets from the multi-label file", _read_ethos,
    {"hate": {"hate": 1}, "not_hate": {"hate": 0}, "violence": {"violence": 1}, "not_violence": {"violence": 0}},
    "GPL-3.0", trainable=False, shared_path="ethos"))
_register(Format(
    "jigsaw_templates", "Jigsaw sentence templates (identity-term bias probes)", _read_jigsaw,
    {"toxic": {UNSAFE: 1}, "nontoxic": dict(BENIGN)},
    "CC BY 4.0", trainable=True, eval_only=True, shared_path="jigsaw_sentence_templates",
    notes="Toxic templates insult a person or group but do not say which category: unsafe=1, categories unknown."))
_register(Format(
    "youtube_spam", "YouTube Spam Collection comments", _read_youtube,
    {"CLASS=1": {"spam": 1}, "CLASS=0": {"spam": 0}},
    "CC BY 4.0 (per UCI; unverified)", trainable=True, shared_path="youtube_spam_collection",
    notes="U+FEFF stripped (it leaks the label)."))
_register(Format(
    "sms_spam", "SMS Spam Collection (exact duplicates merged)", _read_sms,
    {"spam": {"spam": 1}, "ham": {"spam": 0}},
    "free use with attribution (CC BY 4.0 per UCI)", trainable=True, dedupe=True, shared_path="sms_spam_collection"))
_register(Format(
    "toxicchat", "ToxicChat 0124 train, human-annotated prompts", _read_toxicchat,
    {"toxicity=1": {UNSAFE: 1},
     "toxicity=0": {UNSAFE: 0, "hate": 0, "harassment": 0, "sexual": 0, "sexual_minors": 0, "violence": 0,
                    "self_harm": 0}},
    "CC BY-NC 4.0", trainable=False, shared_path="toxicchat_train",
    notes="Toxicity has no categories: toxic prompts are unsafe=1 only."))
_register(Format(
    "safe_unsafe_csv", "Generic prompt CSV (XSTest style): prompt, label safe/unsafe, optional type",
    _read_safe_unsafe_csv, {"label=safe": dict(BENIGN), "label=unsafe": {UNSAFE: 1}},
    "as the source states", trainable=False,
    notes="Add 'type=<value>' keys to the mapping to label categories per prompt type."))
_register(Format(
    "coconot", "CoCoNot 'Requests with safety concerns': eval positives, contrast and pref benign", _read_coconot,
    {"eval:dangerous or sensitive topics": {UNSAFE: 1},
     "eval:triggers for offensive language": {UNSAFE: 1},
     "eval:wildchats": {UNSAFE: 1},
     "contrast:dangerous or sensitive topics": dict(BENIGN),
     "contrast:privacy violations": dict(BENIGN),
     "pref:triggers for offensive language": dict(BENIGN),
     "pref:dangerous or sensitive topics": dict(BENIGN),
     "pref:privacy violations": dict(BENIGN),
     "pref:false information": dict(BENIGN)},
    "MIT", trainable=True, dedupe=True, shared_path="coconot",
    notes="Eval privacy, misinformation and copyright prompts are outside the policy and dropped."))
_register(Format(
    "do_not_answer", "Do-Not-Answer risky questions, by specific harm", _read_do_not_answer,
    {"harm:Explicit Sexual Content": {"sexual": 1},
     "harm:Sexual Exploitation and Pornography": {"sexual": 1},
     "harm:Graphic Violence": {"violence": 1},
     "harm:Violence and Physical Harm": {"violence": 1},
     "harm:Animal Abuse/Cruelty/Poaching": {"violence": 1},
     "harm:Terrorist Activities": {"violence": 1},
     "harm:Threats and Intimidation": {"harassment": 1},
     "harm:Endorsement of Cyberbullying or Online Harassment": {"harassment": 1},
     "harm:Insult": {"harassment": 1},
     "harm:Illegal Drugs and Substances": {"illegal_goods": 1},
     "harm:Illegal Trade": {"illegal_goods": 1},
     "harm:Financial Crimes": {"illegal_goods": 1},
     "harm:Illegal Digital Activities": {"illegal_goods": 1},
     "harm:Substance Abuse": {"illegal_goods": 1},
     "harm:Self-Harm": {"self_harm": 1},
     "harm:Spam Content": {"spam": 1},
     "harm:Racial/Ethnic Discrimination": {"hate": 1},
     "harm:Religious Discrimination": {"hate": 1},
     "harm:Gender/Sexual Discrimination": {"hate": 1},
     "harm:Disability Discrimination": {"hate": 1},
     "harm:Other Severe Toxicity": {UNSAFE: 1}},
    "Apache-2.0", trainable=True, dedupe=True, shared_path="do_not_answer",
    notes="Positives only. Privacy, misinformation, chatbot-as-human and advice questions are outside the policy."))
_register(Format(
    "ailuminate", "MLCommons AILuminate v1.0 demo prompts (en_US + fr_FR), by hazard", _read_ailuminate,
    {"hazard:cse": {"sexual_minors": 1}, "hazard:sxc_prn": {"sexual": 1}, "hazard:src": {"sexual": 1},
     "hazard:ssh": {"self_harm": 1}, "hazard:vcr": {"violence": 1}, "hazard:iwp": {"illegal_goods": 1},
     "hazard:ncr": {"illegal_goods": 1}, "hazard:hte": {"hate": 1}},
    "CC BY 4.0", trainable=True, shared_path="ailuminate_demo",
    notes="Positives only. prv, dfm, ipv and spc_* hazards are outside the policy and dropped."))
_register(Format(
    "advbench", "AdvBench harmful behaviours + harmful strings", _read_advbench,
    {"behaviour": {UNSAFE: 1}, "string": {UNSAFE: 1}},
    "MIT", trainable=True, dedupe=True, shared_path="advbench",
    notes="Positives only and without categories: unsafe=1."))
_register(Format(
    "strongreject", "StrongREJECT forbidden prompts, by category", _read_strongreject,
    {"category:Illegal goods and services": {"illegal_goods": 1},
     "category:Non-violent crimes": {"illegal_goods": 1},
     "category:Violence": {"violence": 1},
     "category:Sexual content": {"sexual": 1},
     "category:Hate, harassment and discrimination": {UNSAFE: 1}},
    "MIT for 221 custom rows; others keep their sources' licences", trainable=False, shared_path="strongreject",
    notes="Positives only. Disinformation is outside the policy and dropped. Only meta.source == 'custom' rows "
          "(and AdvBench ones) are MIT."))
_register(Format(
    "reddit_cssrs", "Reddit C-SSRS suicide risk, one row per user (posts joined)", _read_reddit_cssrs,
    {"Label:Supportive": {"self_harm": 0}, "Label:Indicator": {},
     "Label:Ideation": {"self_harm": 1}, "Label:Behavior": {"self_harm": 1}, "Label:Attempt": {"self_harm": 1}},
    "CC BY 4.0", trainable=True, shared_path="reddit_cssrs_suicide",
    notes="Labels are per user; 'Indicator' (risk factors, no ideation) is kept with self_harm unknown."))
_register(Format(
    "germeval_violence", "GermEval 2025/2026 violence in German tweets (2026 label wins)", _read_germeval,
    {"vio26:nothing": {"violence": 0}, "vio26:call2violence": {"violence": 1}, "vio26:support": {"violence": 1},
     "vio26:prospensity": {"violence": 1}, "vio26:glorification": {"violence": 1}, "vio26:other": {},
     "VIO25:TRUE": {"violence": 1}, "VIO25:FALSE": {"violence": 0}},
    "GPL-3.0", trainable=False, shared_path="germeval_violence_de",
    notes="2026 'other' (worrying but not incitement, support or glorification) keeps violence unknown."))
_register(Format(
    "openai_moderation", "OpenAI moderation evaluation JSONL: prompt + S,H,V,HR,SH,S3,H2,V2", _read_openai_moderation,
    {"S=1": {"sexual": 1}, "S=0": {"sexual": 0},
     "H=1": {"hate": 1}, "H=0": {"hate": 0},
     "V=1": {"violence": 1}, "V=0": {"violence": 0},
     "HR=1": {"harassment": 1}, "HR=0": {"harassment": 0},
     "SH=1": {"self_harm": 1}, "SH=0": {"self_harm": 0},
     "S3=1": {"sexual_minors": 1}, "S3=0": {"sexual_minors": 0},
     "H2=1": {"hate": 1, "violence": 1}, "H2=0": {},
     "V2=1": {"violence": 1}, "V2=0": {}},
    "MIT (openai/moderation-api-release); held-out benchmark", trainable=False,
    notes="H2 (hate/threatening) also counts as violence, since our violence covers threats. "
          "A 1 anywhere wins over a 0 for the same category. Never train on it."))


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
    reader = _Reader(root=source if source.is_dir() else source.parent)
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
