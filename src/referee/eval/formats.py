"""Source formats: one reader per public dataset, and its default label mapping.

A reader turns a source file into ``Record``s carrying *source labels*
(``"hateful"``, ``"hazard:cse"``, ``"S=1"``); ``datasets.import_with_card``
maps those to category values. Adding a dataset means one reader and one
``_register(Format(...))`` here, nothing else.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import html
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from referee.errors import InputError

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

_URL = re.compile(r"(https?://|www\.)\S+", re.I)
_MENTION = re.compile(r"@\w+")
_NON_WORD = re.compile(r"[\W\d_]+", re.UNICODE)


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


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def short_hash(text: str, n: int = 12) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


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
class Reader:
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
    read: Callable[[Path, Reader], Iterator[Record]]
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
def _read_hatecheck(source: Path, reader: Reader) -> Iterator[Record]:
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


def _read_mhc(source: Path, reader: Reader) -> Iterator[Record]:
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
def _read_davidson(source: Path, reader: Reader) -> Iterator[Record]:
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
def _tweeteval(task: str) -> Callable[[Path, Reader], Iterator[Record]]:
    def read(source: Path, reader: Reader) -> Iterator[Record]:
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


def _read_toxigen(source: Path, reader: Reader) -> Iterator[Record]:
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


def _read_ethos(source: Path, reader: Reader) -> Iterator[Record]:
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


def _read_jigsaw(source: Path, reader: Reader) -> Iterator[Record]:
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
def _read_youtube(source: Path, reader: Reader) -> Iterator[Record]:
    _need(source, "youtube_spam")
    paths = [source] if source.is_file() else sorted(source.glob("Youtube0*.csv"))
    for path in paths:
        for r in reader.csv(path):
            text = html.unescape(r["CONTENT"].replace("\ufeff", "")).replace("<br />", "\n")
            yield Record(id=f"youtube-{r['COMMENT_ID']}", text=text.strip(), source_labels=[f"CLASS={r['CLASS']}"],
                         meta={"video": path.stem})


def _read_sms(source: Path, reader: Reader) -> Iterator[Record]:
    for path in _pick(source, "SMSSpamCollection", "sms_spam"):
        with reader.open(path, newline=None) as handle:
            for i, line in enumerate(handle):
                label, _, text = line.rstrip("\n").partition("\t")
                if text:
                    yield Record(id=f"sms-{i}", text=text, source_labels=[label])


# Prompt sets ----------------------------------------------------------------------
def _read_toxicchat(source: Path, reader: Reader) -> Iterator[Record]:
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


def _read_safe_unsafe_csv(source: Path, reader: Reader) -> Iterator[Record]:
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


def _read_coconot(source: Path, reader: Reader) -> Iterator[Record]:
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


def _read_do_not_answer(source: Path, reader: Reader) -> Iterator[Record]:
    for path in _pick(source, "do_not_answer_data.csv", "do_not_answer"):
        for r in reader.csv(path):
            harm = r["specific_harms"].split(":")[0].strip()
            yield Record(id=f"dna-{r['id']}", text=r["question"], source_labels=[f"harm:{harm}"],
                         meta={"risk_area": r["risk_area"], "types_of_harm": r["types_of_harm"], "specific_harm": harm})


def _read_ailuminate(source: Path, reader: Reader) -> Iterator[Record]:
    _need(source, "ailuminate")
    paths = [source] if source.is_file() else sorted(source.glob("airr_official_*prompt_set_release.csv"))
    for path in paths:
        for r in reader.csv(path):
            yield Record(id=f"ailuminate-{r['release_prompt_id']}", text=r["prompt_text"],
                         source_labels=[f"hazard:{r['hazard']}"],
                         meta={"hazard": r["hazard"], "persona": r["persona"],
                               "language": r["locale"].split("_")[0]})


def _read_advbench(source: Path, reader: Reader) -> Iterator[Record]:
    paths = _pick(source, ["harmful_behaviors.csv", "harmful_strings.csv"], "advbench")
    for path in paths:
        kind = "behaviour" if "behavio" in path.name else "string"
        for i, r in enumerate(reader.csv(path)):
            text = r["goal"] if kind == "behaviour" else r["target"]
            yield Record(id=f"advbench-{kind}-{i}", text=text, source_labels=[kind], meta={"file": kind})


def _read_strongreject(source: Path, reader: Reader) -> Iterator[Record]:
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


def _read_reddit_cssrs(source: Path, reader: Reader) -> Iterator[Record]:
    for path in _pick(source, "500_Reddit_users_posts_labels.csv", "reddit_cssrs"):
        for r in reader.csv(path):
            posts = _split_posts(r["Post"])
            yield Record(id=f"cssrs-{r['User']}", text="\n\n".join(posts), source_labels=[f"Label:{r['Label']}"],
                         meta={"user": r["User"], "n_posts": len(posts), "cssrs": r["Label"]})


# Real comments with abuse labels (CC0 / CC BY) ------------------------------------------
#: Toxic Spans subtypes, as a majority of a comment's raters marked them.
TOXIC_SPAN_TYPES = ("Insult", "Threat", "Identity based Attack", "Profane/Obscene", "Other Toxicity")


def _read_toxic_spans(source: Path, reader: Reader) -> Iterator[Record]:
    """One record per comment; ``majority:<type>`` when more than half of its raters
    marked a span of that type. Every comment was toxic in Civil Comments (no negatives)."""
    comments, annotations, spans = _pick(source, ["comments.csv", "annotations.csv", "spans.csv"], "toxic_spans")
    raters: dict[str, set[str]] = {}
    owner: dict[str, str] = {}
    for r in reader.csv(annotations):
        raters.setdefault(r["comment_id"], set()).add(r["worker"])
        owner[r["annotation"]] = r["comment_id"]
    marked: dict[tuple[str, str], set[str]] = {}
    worker = {r["annotation"]: r["worker"] for r in reader.csv(annotations)}
    for r in reader.csv(spans):
        kind = r["type"].strip()
        if kind not in TOXIC_SPAN_TYPES or r["annotation"] not in owner:
            continue
        marked.setdefault((owner[r["annotation"]], kind), set()).add(worker[r["annotation"]])
    for r in reader.csv(comments):
        cid = r["comment_id"]
        n = max(len(raters.get(cid, ())), 1)
        labels = ["toxic"] + [f"majority:{k}" for k in TOXIC_SPAN_TYPES if len(marked.get((cid, k), ())) * 2 > n]
        yield Record(id=f"toxicspans-{cid}", text=r["comment_text"], source_labels=labels,
                     meta={"raters": n, "types": [x.split(":", 1)[1] for x in labels[1:]]})


def _read_edos(source: Path, reader: Reader) -> Iterator[Record]:
    for path in _pick(source, "edos_labelled_aggregated.csv", "edos"):
        for r in reader.csv(path):
            labels = [f"sexist:{r['label_sexist']}"]
            if r["label_category"] != "none":
                labels.append(f"category:{r['label_category'].split('.')[0]}")
            split = r["split"] if r["split"] in SPLITS else None
            yield Record(id=f"edos-{r['rewire_id'].rsplit('-', 1)[-1]}", text=r["text"], source_labels=labels,
                         groups=("women",) if r["label_sexist"] == "sexist" else (), split=split,  # type: ignore[arg-type]
                         meta={"category": r["label_category"], "vector": r["label_vector"]})


#: ConvAbuse ``example_id``s its SOURCE.md says to exclude (they duplicate held-out benchmark prompts).
CONVABUSE_EXCLUDE = frozenset(float(x) for x in """
28 63 138 152 314 433 450 461 634 744 831 993 1016 1043 1215 1560 1567 1942 1957 2106 2152 2228 2255 2404 2491 2529
2809 2896 3080 3097 3211 3232 3295 3340 3355 3743 3760 3832 3877 4078 10 277 430 451 716 812 816 1006 1020 1561 1786
1946 2026 2044 2391 2456 2611 2706 2888 3088 3100 3139 3187 3205 3245 3301 3457 3557 3582 3789 3818 4056 4068
767 1704 1756 1795 1860 3238 3273 3495 3660 3876 1270 2487 3218 3246 3277 3425 3526
95 97 1229 2238 2650 2674 2763 3098 3235 3303 3320 3926 4061 1022 1032 1687 1716 1992 2311 2409 2912 3411 3586 3778
3889 4010 4084 4103""".split())
_CONVABUSE_TYPES = ("sexist", "sex_harassment", "homophobic", "racist", "transphobic", "ableist", "intellectual")


def _mean_cell(value: str) -> float | None:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return sum(float(p) for p in parts) / len(parts) if parts else None


def _read_convabuse(source: Path, reader: Reader) -> Iterator[Record]:
    """The ``user`` utterance by majority of its annotators: ``abuse`` (more than half
    chose -1..-3), ``not_abuse`` (more than half chose 1), else ``ambiguous``; plus
    ``type:<t>`` for a type a majority marked. The 118 rows SOURCE.md lists are skipped."""
    names = {"ConvAbuseEMNLPtrain.csv": "train", "ConvAbuseEMNLPvalid.csv": "dev", "ConvAbuseEMNLPtest.csv": "test"}
    for path in _pick(source, list(names), "convabuse"):
        for r in reader.csv(path):
            example = float(r["example_id"])
            if example in CONVABUSE_EXCLUDE or not r["user"].strip():
                continue
            votes = {"abuse": 0, "not_abuse": 0, "n": 0}
            types = {t: 0 for t in _CONVABUSE_TYPES}
            for k in range(1, 9):
                cells = {v: _mean_cell(r.get(f"Annotator{k}_is_abuse.{v}", "") or "") for v in ("1", "0", "-1", "-2", "-3")}
                if all(c is None for c in cells.values()):
                    continue
                votes["n"] += 1
                votes["abuse"] += sum((cells[v] or 0) for v in ("-1", "-2", "-3")) >= 0.5
                votes["not_abuse"] += (cells["1"] or 0) >= 0.5
                for t in _CONVABUSE_TYPES:
                    types[t] += (_mean_cell(r.get(f"Annotator{k}_{t}", "") or "") or 0) >= 0.5
            n = max(votes["n"], 1)
            kind = "abuse" if votes["abuse"] * 2 > n else "not_abuse" if votes["not_abuse"] * 2 > n else "ambiguous"
            labels = [kind] + [f"type:{t}" for t, c in types.items() if kind == "abuse" and c * 2 > n]
            yield Record(id=f"convabuse-{int(example)}", text=r["user"].strip(), source_labels=labels,
                         split=names.get(path.name),  # type: ignore[arg-type]
                         meta={"bot": r["bot"], "conv_id": r["conv_id"], "group_key": f"convabuse-conv-{r['conv_id']}",
                               "annotators": votes["n"]})


def _read_do_not_answer_responses(source: Path, reader: Reader) -> Iterator[Record]:
    """The six models' answers, each with its human harm label and its question's harm.

    Long, explanatory text about drugs, violence or self-harm that humans judged
    harmless: the benign look-alikes of described (not requested) harm."""
    for path in _pick(source, "do_not_answer_data.csv", "do_not_answer"):
        for r in reader.csv(path):
            harm = r["specific_harms"].split(":")[0].strip()
            for model in DNA_MODELS:
                text, label = (r.get(f"{model}_response") or "").strip(), (r.get(f"{model}_harmful") or "").strip()
                if not text or label not in ("0", "1"):
                    continue
                yield Record(id=f"dna-{r['id']}-{model}", text=text,
                             source_labels=[f"harmful:{harm}" if label == "1" else "harmless"],
                             meta={"model": model, "question_id": r["id"], "group_key": f"dna-{r['id']}",
                                   "types_of_harm": r["types_of_harm"], "specific_harm": harm})


#: The answering models of Do-Not-Answer, as its column prefixes spell them.
DNA_MODELS = ("GPT4", "ChatGPT", "Claude", "ChatGLM2", "llama2-7b-chat", "vicuna-7b")


def _read_wiki_identity(source: Path, reader: Reader) -> Iterator[Record]:
    for path in _pick(source, "toxicity_nonfuzzed_testset.csv", "wiki_identity"):
        for r in reader.csv(path):
            yield Record(id=f"wikiid-{r['rev_id']}", text=r["comment"].strip(),
                         source_labels=["toxic" if r["toxic"] == "True" else "not_toxic"])


def _read_wiki_context(source: Path, reader: Reader) -> Iterator[Record]:
    """CAT_LARGE comments rated without (``gn``) and with (``gc``) their parent; the
    comment alone is scored, as a platform sees a new comment."""
    for path in _pick(source, ["CAT_LARGE/gn.csv", "CAT_LARGE/gc.csv"], "wiki_context"):
        for r in reader.csv(path):
            yield Record(id=f"wikictx-{path.stem}-{r['id']}", text=r["text"].strip(),
                         source_labels=["toxic" if r["label"].strip() == "1" else "not_toxic"],
                         meta={"file": path.stem})


# GermEval violence --------------------------------------------------------------------
def _read_germeval(source: Path, reader: Reader) -> Iterator[Record]:
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


def _read_openai_moderation(source: Path, reader: Reader) -> Iterator[Record]:
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


#: Do-Not-Answer's specific harms that fall in the policy's categories (questions and answers).
DNA_HARMS: Mapping = {"harm:Explicit Sexual Content": {"sexual": 1},
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
    "harm:Other Severe Toxicity": {UNSAFE: 1}}

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
    DNA_HARMS,
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
    "toxic_spans", "Toxic Spans (Civil Comments news comments, all toxic) with majority span subtypes",
    _read_toxic_spans,
    {"toxic": {UNSAFE: 1}, "majority:Insult": {"harassment": 1}, "majority:Threat": {"violence": 1},
     "majority:Identity based Attack": {"hate": 1}},
    "CC0 1.0", trainable=True, dedupe=True, shared_path="toxic_spans",
    notes="Positives only (every comment was toxic in Civil Comments). A subtype counts when more than half of "
          "the comment's raters marked a span of it; the authors call subtypes weak."))
_register(Format(
    "edos", "EDOS online sexism (Reddit + Gab), official splits", _read_edos,
    {"sexist:sexist": {"hate": 1}, "sexist:not sexist": {"hate": 0}, "category:1": {"violence": 1}},
    "CC0 1.0", trainable=True, shared_path="edos_sexism",
    notes="Sexism is gender-based hate; 'not sexist' is hate=0 only (it may still be abusive in other ways). "
          "Category 1 (threats, plans to harm, incitement) also counts as violence."))
_register(Format(
    "convabuse", "ConvAbuse: real user messages to chatbots, abuse by annotator majority", _read_convabuse,
    {"abuse": {UNSAFE: 1, "harassment": 1}, "not_abuse": dict(BENIGN),
     "type:sexist": {"hate": 1}, "type:homophobic": {"hate": 1}, "type:racist": {"hate": 1},
     "type:transphobic": {"hate": 1}, "type:ableist": {"hate": 1}},
    "CC BY 4.0", trainable=True, shared_path="convabuse",
    notes="Abuse is mostly aimed at the bot (insults, sexual harassment): harassment=1. Ambiguous rows are dropped; "
          "the 118 rows its SOURCE.md lists (benchmark duplicates) are skipped."))
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
_register(Format(
    "do_not_answer_responses", "Do-Not-Answer: six models' answers with human harm labels", _read_do_not_answer_responses,
    {"harmless": dict(BENIGN), **{"harmful:" + k.removeprefix("harm:"): v for k, v in DNA_HARMS.items()}},
    "Apache-2.0 (answers are model outputs)", trainable=True, dedupe=True, shared_path="do_not_answer",
    notes="Harmless answers are benign for every category; a harmful answer takes its question's category; harmful "
          "answers to questions outside the policy are dropped. Answers are grouped with their question."))
_register(Format(
    "wiki_identity", "Wikipedia Talk test comments with religion / LGBT identity terms (+ random sample)",
    _read_wiki_identity, {"toxic": {UNSAFE: 1}, "not_toxic": dict(BENIGN)},
    "CC BY 4.0 (labels); text CC BY-SA 3.0", trainable=False, shared_path="wiki_toxicity_identity_testset",
    notes="Share-alike text: evaluation only. Toxic is Wulczyn et al.'s broad toxicity, so only 'any unsafe' is labelled."))
_register(Format(
    "wiki_context", "Wikipedia Talk comments at natural toxicity prevalence (CAT_LARGE gn + gc)", _read_wiki_context,
    {"toxic": {UNSAFE: 1}, "not_toxic": dict(BENIGN)},
    "Apache-2.0 (repo); text CC BY-SA 3.0", trainable=False, shared_path="wiki_context_toxicity",
    notes="Share-alike text: evaluation only. About 1 % toxic: a realistic false-positive-rate check."))
