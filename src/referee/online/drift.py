"""Has the traffic moved away from what the models and thresholds were set on?

Two shifts, each a reference window against a current window of the decision log:

**Score drift**, per category and surface: the distribution of the automated decisions'
scores (per decision and category, the highest signal score, 0 when no detector emitted
one; optionally one detector's only). Both windows are counted into the same fixed bins,
dense near 0 where safety scores pile up::

    0, .01, .02, .05, .1, .2, .3, .5, .7, .9, 1

and compared with the population stability index::

    PSI = sum_i (c_i - r_i) * ln(c_i / r_i)

over the bins' shares ``r`` (reference) and ``c`` (current), each floored at 1e-4 so an
empty bin does not make it infinite. The usual reading: under 0.1 stable, 0.1 to 0.25 a
shift worth a look (``warn``), over 0.25 a shift that changes what the thresholds mean
(``alert``). A window with fewer than ``min_count`` decisions is ``insufficient``: a PSI of
a handful of items is noise, and an alert on it would teach people to ignore alerts.

**Language mix**, per surface: the share of each language, as the item declares it
(``ContentItem.language``, the primary subtag) or, when it does not, as ``guess_language``
reads its text, compared with the same PSI (each language a bin). The guess is cheap on
purpose: the writing system decides for non-Latin scripts (Arabic, Cyrillic, Devanagari,
Greek, Hebrew, Hangul, kana, Han, Thai); Latin-script text is matched against short
function-word lists of 13 languages (Hindi romanised, as it is
often typed), and ``und`` (undetermined) when nothing stands out. It
is right for a mix, not for one short comment (``tests/online/test_drift.py`` measures it on
Multilingual HateCheck). Reading the text needs the content store, so at most
``language_sample`` items per window are read, chosen by a hash of the item id (the same
items on every run).

``drift_gauges(report)`` turns a report into ``(name, labels, value)`` triples for the
metrics endpoint: ``referee_drift_psi``, ``referee_drift_alert`` (0 ok, 1 warn, 2 alert)
and ``referee_language_share``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import select, update

from referee.errors import InputError
from referee.model import ContentItem, Decision
from referee.model.base import Frozen
from referee.online.quality import ALL, automated_decisions
from referee.store.protocols import ContentStore, DecisionLog
from referee.store.sql.database import Database
from referee.store.sql.shadow_tables import drift_snapshot

__all__ = [
    "PSI_ALERT",
    "PSI_WARN",
    "SCORE_EDGES",
    "DriftReport",
    "DriftRow",
    "Gauge",
    "drift_gauges",
    "drift_report",
    "guess_language",
    "language_drift",
    "psi",
    "score_drift",
    "score_histograms",
]

SCORE_EDGES: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
PSI_WARN = 0.1
PSI_ALERT = 0.25
MIN_COUNT = 200
FLOOR = 1e-4
UNDETERMINED = "und"

Status = Literal["ok", "warn", "alert", "insufficient"]


def psi(reference: Sequence[float], current: Sequence[float], floor: float = FLOOR) -> float:
    """Population stability index of two histograms over the same bins (counts or shares)."""
    if len(reference) != len(current):
        raise InputError(f"PSI needs two histograms over the same bins; got {len(reference)} and {len(current)}")
    rt, ct = float(sum(reference)), float(sum(current))
    if rt <= 0 or ct <= 0:
        raise InputError("PSI of an empty window is undefined (fix: widen the window)")
    total = 0.0
    for r, c in zip(reference, current):
        rs, cs = max(r / rt, floor), max(c / ct, floor)
        total += (cs - rs) * math.log(cs / rs)
    return total


def _status(value: float, ref_n: int, cur_n: int, min_count: int, warn: float, alert: float) -> Status:
    if ref_n < min_count or cur_n < min_count:
        return "insufficient"
    return "alert" if value > alert else "warn" if value > warn else "ok"


class DriftRow(Frozen):
    kind: Literal["score", "language"]
    surface: str
    category: str | None = None
    reference_n: int
    current_n: int
    psi: float
    status: Status
    #: The bins' (or languages') shares in each window, for a chart or a reader.
    bins: tuple[str, ...] = ()
    reference_share: tuple[float, ...] = ()
    current_share: tuple[float, ...] = ()


class DriftReport(Frozen):
    reference: tuple[datetime | None, datetime | None]
    current: tuple[datetime | None, datetime | None]
    detector: str | None = None
    warn: float = PSI_WARN
    alert: float = PSI_ALERT
    min_count: int = MIN_COUNT
    rows: tuple[DriftRow, ...] = Field(default=())

    @property
    def alerts(self) -> list[DriftRow]:
        return [r for r in self.rows if r.status == "alert"]


# -- scores -------------------------------------------------------------------------------------
def _bin(score: float, edges: Sequence[float]) -> int:
    for i in range(1, len(edges) - 1):
        if score < edges[i]:
            return i - 1
    return len(edges) - 2


def score_histograms(decisions: Iterable[Decision], edges: Sequence[float] = SCORE_EDGES,
                     detector: str | None = None) -> tuple[dict[tuple[str, str], list[int]], Counter[str]]:
    """Per (surface, category) the binned scores, over the categories any decision scored, and
    the number of decisions per surface. ``ALL`` stands for every surface."""
    per: list[tuple[str, dict[str, float]]] = []
    seen: set[str] = set()
    for d in decisions:
        best: dict[str, float] = {}
        for s in d.signals:
            if detector is None or s.detector == detector:
                best[s.category] = max(best.get(s.category, 0.0), s.score)
        seen.update(best)
        per.append((d.surface, best))
    hist: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(edges) - 1))
    n: Counter[str] = Counter()
    for surface, best in per:
        n[surface] += 1
        n[ALL] += 1
        for c in seen:
            b = _bin(best.get(c, 0.0), edges)
            hist[(surface, c)][b] += 1
            hist[(ALL, c)][b] += 1
    return dict(hist), n


def _shares(counts: Sequence[int]) -> tuple[float, ...]:
    total = sum(counts)
    return tuple(round(c / total, 6) if total else 0.0 for c in counts)


def score_drift(reference: Iterable[Decision], current: Iterable[Decision], detector: str | None = None,
                edges: Sequence[float] = SCORE_EDGES, min_count: int = MIN_COUNT, warn: float = PSI_WARN,
                alert: float = PSI_ALERT) -> list[DriftRow]:
    ref, ref_n = score_histograms(reference, edges, detector)
    cur, cur_n = score_histograms(current, edges, detector)
    labels = tuple(f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(edges))
    empty = [0] * (len(edges) - 1)
    rows = []
    for surface, category in sorted(set(ref) | set(cur)):
        r, c = ref.get((surface, category), empty), cur.get((surface, category), empty)
        rn, cn = ref_n[surface], cur_n[surface]
        value = psi(r, c) if rn and cn else 0.0
        rows.append(DriftRow(kind="score", surface=surface, category=category, reference_n=rn, current_n=cn,
                             psi=round(value, 6), status=_status(value, rn, cn, min_count, warn, alert),
                             bins=labels, reference_share=_shares(r), current_share=_shares(c)))
    return rows


# -- languages ----------------------------------------------------------------------------------
#: Writing systems that name their language (or its usual one) on their own.
_SCRIPTS = (
    ("ARABIC", "ar"), ("CYRILLIC", "ru"), ("DEVANAGARI", "hi"), ("GREEK", "el"), ("HEBREW", "he"),
    ("HANGUL", "ko"), ("HIRAGANA", "ja"), ("KATAKANA", "ja"), ("CJK", "zh"), ("THAI", "th"),
)
#: Short, frequent function words, chosen to overlap little between the languages.
_WORDS = {
    "en": "the and you are is not this that with for have of to it was what they",
    "de": "und ist nicht die der das ich sie du ein eine mit sind auch wie auf",
    "fr": "le la les et est une pas des vous je que qui sont pour avec ce dans",
    "es": "el la los las y es una no que por con para del son muy pero como",
    "it": "il la di che non sono per una gli del con questo come anche ma essere",
    "pt": "o a os as que não é uma com para são do da em muito isso você",
    "nl": "de het een en is niet van dat zijn ik je met ze op voor maar",
    "pl": "i w nie na się jest to że z do są jak ale tak ich czy",
    "sv": "och är inte det att en som på med jag har för de ett",
    "tr": "ve bir bu da de için çok ne ile ama gibi daha değil ben sen",
    "id": "dan yang di itu ini tidak dengan untuk ada saya kamu dari akan",
    "da": "og er ikke det at en som på med jeg har for de til",
    "hi": "hai hain ke ki ko se mein nahi nahin tum mujhe yeh woh kya aur bhi sab",  # romanised Hindi
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def guess_language(text: str) -> str:
    """A cheap guess at the language of ``text`` (module docstring); ``und`` when unsure."""
    letters: Counter[str] = Counter()
    latin = 0
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        if name.startswith("LATIN"):
            latin += 1
            continue
        for script, lang in _SCRIPTS:
            if name.startswith(script):
                letters[lang] += 1
                break
    if letters and sum(letters.values()) >= latin:
        if letters["ja"]:  # Japanese mixes kana with Han: any kana says Japanese
            return "ja"
        return letters.most_common(1)[0][0]
    words = _WORD.findall(text.lower())
    if not words:
        return UNDETERMINED
    hits = {lang: sum(w in vocab for w in words) for lang, vocab in _VOCAB.items()}
    best = max(hits.values())
    if best == 0:
        return UNDETERMINED
    top = [lang for lang, h in hits.items() if h == best]
    return top[0] if len(top) == 1 else UNDETERMINED


_VOCAB = {lang: frozenset(words.split()) for lang, words in _WORDS.items()}


def _language_of(item: ContentItem) -> str:
    if item.language:
        return item.language.split("-")[0].lower()
    text = "\n".join(p.text for p in item.parts if p.kind == "text")
    return guess_language(text)


def _hash_rank(item_id: str) -> str:
    return hashlib.sha256(item_id.encode()).hexdigest()


def language_mix(decisions: Iterable[Decision], content: ContentStore, limit: int) -> dict[str, Counter[str]]:
    """Per surface (and ``ALL``) the count of each language, over at most ``limit`` items
    (the first by a hash of their id: a stable sample)."""
    chosen = sorted(decisions, key=lambda d: _hash_rank(d.item_id))[:limit]
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for d in chosen:
        item = content.get(d.item_id, d.content_hash)
        if item is None:  # erased: it says nothing about the mix
            continue
        lang = _language_of(item)
        out[d.surface][lang] += 1
        out[ALL][lang] += 1
    return dict(out)


def language_drift(reference: Iterable[Decision], current: Iterable[Decision], content: ContentStore,
                   limit: int = 5_000, min_count: int = MIN_COUNT, warn: float = PSI_WARN,
                   alert: float = PSI_ALERT) -> list[DriftRow]:
    ref = language_mix(reference, content, limit)
    cur = language_mix(current, content, limit)
    rows = []
    for surface in sorted(set(ref) | set(cur)):
        r, c = ref.get(surface, Counter()), cur.get(surface, Counter())
        langs = tuple(sorted(set(r) | set(c)))
        rv, cv = [r[x] for x in langs], [c[x] for x in langs]
        rn, cn = sum(rv), sum(cv)
        value = psi(rv, cv) if rn and cn else 0.0
        rows.append(DriftRow(kind="language", surface=surface, reference_n=rn, current_n=cn, psi=round(value, 6),
                             status=_status(value, rn, cn, min_count, warn, alert), bins=langs,
                             reference_share=_shares(rv), current_share=_shares(cv)))
    return rows


# -- the report and its gauges -------------------------------------------------------------------
Window = tuple[datetime | None, datetime | None]


def drift_report(log: DecisionLog, content: ContentStore | None, reference: Window, current: Window,
                 detector: str | None = None, min_count: int = MIN_COUNT, warn: float = PSI_WARN,
                 alert: float = PSI_ALERT, language_sample: int = 5_000) -> DriftReport:
    """Score drift (and, given the content store, language drift) of ``current`` against
    ``reference``, each window ``(since, until)`` over the items' latest automated decisions."""
    if not 0 < warn < alert:
        raise InputError(f"thresholds must satisfy 0 < warn < alert, got warn={warn}, alert={alert}",
                         where="warn")
    ref = list(automated_decisions(log, *reference))
    cur = list(automated_decisions(log, *current))
    rows = score_drift(ref, cur, detector, min_count=min_count, warn=warn, alert=alert)
    if content is not None:
        rows += language_drift(ref, cur, content, language_sample, min_count, warn, alert)
    return DriftReport(reference=reference, current=current, detector=detector, warn=warn, alert=alert,
                       min_count=min_count, rows=tuple(rows))


@dataclass(frozen=True)
class Gauge:
    """One value for the metrics endpoint: a Prometheus gauge's name, its labels and value."""

    name: str
    labels: dict[str, str]
    value: float


_LEVEL = {"ok": 0.0, "insufficient": 0.0, "warn": 1.0, "alert": 2.0}


def drift_gauges(report: DriftReport) -> list[Gauge]:
    """``referee_drift_psi`` and ``referee_drift_alert`` (0 ok or too few items, 1 warn,
    2 alert) per kind, surface and category (``-`` for language rows), and
    ``referee_language_share`` of the current window per surface and language."""
    out = []
    for r in report.rows:
        labels = {"kind": r.kind, "surface": r.surface, "category": r.category or "-"}
        out.append(Gauge("referee_drift_psi", labels, r.psi))
        out.append(Gauge("referee_drift_alert", labels, _LEVEL[r.status]))
        if r.kind == "language":
            out += [Gauge("referee_language_share", {"surface": r.surface, "language": lang}, share)
                    for lang, share in zip(r.bins, r.current_share)]
    return out


class DriftBoard:
    """The latest drift gauges, kept in the database (one row): the one log follower that
    holds the lease computes a report every few minutes and ``publish``es it; every serving
    process shows the ``latest`` on its ``/metrics``. Each serving process computing its
    own read the whole 8-day window of the log and one content row per sampled item, in
    every worker (docs/spine.md, session 10)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def publish(self, gauges: Sequence[Gauge], computed_at: datetime) -> None:
        values = {"computed_at": computed_at,
                  "gauges": [{"name": g.name, "labels": g.labels, "value": g.value} for g in gauges]}
        with self._db.write() as conn:
            stmt = (self._db.insert_ignoring_duplicates(drift_snapshot).values(id=1, **values)
                    .returning(drift_snapshot.c.id))
            if conn.execute(stmt).first() is None:
                conn.execute(update(drift_snapshot).where(drift_snapshot.c.id == 1).values(**values))

    def latest(self) -> tuple[datetime, list[Gauge]] | None:
        """When the latest report was computed and its gauges; None before the first."""
        with self._db.read() as conn:
            row = conn.execute(select(drift_snapshot.c.computed_at, drift_snapshot.c.gauges)
                               .where(drift_snapshot.c.id == 1)).first()
        if row is None:
            return None
        return row.computed_at, [Gauge(g["name"], dict(g["labels"]), float(g["value"])) for g in row.gauges]
