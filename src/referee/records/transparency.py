"""Transparency reports (DSA Art. 15 and 24): the aggregates referee can know, for a period.

From the decision log (records created in the period) and the items' metadata:

- ``notices``: notices received in the period (the ``notices`` table: Art. 16 notices and
  trusted flaggers' ones, ``referee.records.notices``), by notifier type and alleged category:
  received, decided, actioned and the median hours from notice to decision; without any, items
  reported by a notice through the item context ``dsa_notice`` (received, actioned);
- ``account_actions``: account actions recorded in the period, by kind and action;
- ``own_initiative``: restricting decisions on items no notice reported, by category, ground
  (illegal / incompatible, from the policy's ``dsa:`` mapping), restriction (action) and
  detection method (automated / manual);
- ``automation``: the share of restrictions detected by automated means, and of those decided
  fully automatically;
- ``time_to_action``: the median hours from upload (the item's ``created_at``, else when referee
  first saw it) to the first restriction, overall and by category;
- ``appeals``: received, decided, reversed and the median hours to decide, from the review
  tables' ``appeals`` when they are there, else from the log's ``source: appeal`` records;
- ``accuracy``: for automated restrictions a person reviewed later, the share upheld (the
  precision of the automated means on reviewed samples) with its 95 % Wilson interval, by
  category. A reviewed sample is the automated record a ``review`` record superseded.

``write_report`` writes one CSV per table and ``report.html`` with charts (matplotlib).
"""

from __future__ import annotations

import csv
import html
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select

from referee.errors import InputError
from referee.model import Action, Decision
from referee.policy import Policy
from referee.records.reasons import NOTICE_KEY
from referee.stats import wilson_interval as wilson
from referee.store.sql.account_tables import account_actions, notices
from referee.store.sql.database import Database
from referee.store.sql.tables import items

_RESTRICTING_DEFAULT = (Action.remove, Action.age_restrict, Action.limit_reach, Action.label)


def restricting_actions(policy: Policy) -> frozenset[Action]:
    """What the report counts as a restriction: the policy's ``dsa.actions``, else the four that restrict.
    Shared with ``batch.aggregates``, so the Spark report cannot count otherwise."""
    dsa = policy.document.dsa
    return frozenset(dsa.actions) if dsa is not None else frozenset(_RESTRICTING_DEFAULT)


def ground_of(policy: Policy, category: str | None) -> str:
    """``illegal`` or ``incompatible``: the category's ground in the policy's ``dsa:`` mapping (its
    default category for one it does not name); ``incompatible`` without a mapping."""
    dsa = policy.document.dsa
    if dsa is None:
        return "incompatible"
    spec = dsa.categories.get(category or "") or dsa.default_category
    return spec.ground if spec is not None else "incompatible"


def parse_period(text: str) -> tuple[datetime, datetime]:
    """``2026-H1``, ``2026-Q3``, ``2026-05`` or ``2026`` -> [start, end) in UTC."""
    m = re.fullmatch(r"(\d{4})(?:-(H[12]|Q[1-4]|\d{2}))?", text.strip())
    if not m:
        raise InputError(f"--period {text!r}: write a year (2026), a half (2026-H1), a quarter (2026-Q3) "
                         "or a month (2026-05)")
    year, part = int(m.group(1)), m.group(2)
    if part is None:
        months = (1, 13)
    elif part[0] == "H":
        months = (1, 7) if part == "H1" else (7, 13)
    elif part[0] == "Q":
        q = int(part[1])
        months = (3 * q - 2, 3 * q + 1)
    else:
        month = int(part)
        if not 1 <= month <= 12:
            raise InputError(f"--period {text!r}: month {month} is not 01-12")
        months = (month, month + 1)

    def at(y: int, mo: int) -> datetime:
        return datetime(y + (mo - 1) // 12, (mo - 1) % 12 + 1, 1, tzinfo=timezone.utc)

    return at(year, months[0]), at(year, months[1])


@dataclass(frozen=True, slots=True)
class Brief:
    """What the report needs of a record outside the period (a few fields, not the decision)."""

    action: Action
    human: bool
    created_at: datetime
    categories: tuple[str, ...]


@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TableSpec:
    """A table's name, title and columns: one definition for the embedded report and the Spark one."""

    name: str
    title: str
    columns: tuple[str, ...]

    def table(self) -> Table:
        return Table(self.name, self.title, list(self.columns))


#: Every table either report builds, by kind. Two kinds share the name ``notices``: from the
#: ``notices`` table when the period has any, else from the items' ``dsa_notice`` context.
TABLES: dict[str, TableSpec] = {
    "notices": TableSpec("notices", "Notices received, decided and actioned, by notifier type and alleged "
                         "category, with the median hours from notice to decision",
                         ("notice_type", "category", "received", "decided", "actioned", "median_hours_to_action")),
    "notices_by_context": TableSpec("notices", "Notices received and actioned, by notice type and category",
                                    ("notice_type", "category", "received", "actioned")),
    "account_actions": TableSpec("account_actions", "Account actions from strikes, by kind (impose, lower, "
                                 "lift) and action", ("kind", "action", "count")),
    "own_initiative": TableSpec("own_initiative", "Own-initiative restrictions by category, ground, restriction "
                                "and detection method", ("category", "ground", "restriction", "detection", "count")),
    "automation": TableSpec("automation", "Use of automated means in restrictions",
                            ("measure", "count", "of", "share")),
    "time_to_action": TableSpec("time_to_action", "Median hours from upload to restriction",
                                ("category", "restrictions", "median_hours")),
    "appeals": TableSpec("appeals", "Complaints (appeals): received, decided, reversed, median hours to decide",
                         ("source", "received", "decided", "reversed", "median_hours")),
    "accuracy": TableSpec("accuracy", "Precision of automated restrictions on reviewed samples (95 % Wilson "
                          "interval)", ("category", "reviewed", "upheld", "precision", "ci_low", "ci_high")),
}


@dataclass
class Report:
    period: str
    start: datetime
    end: datetime
    tables: dict[str, Table]

    def table(self, name: str) -> Table:
        return self.tables[name]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


class TransparencyReport:
    """Aggregates over one SQL store's log for a period, by the policy's mapping."""

    def __init__(self, db: Database, log: Any, policy: Policy) -> None:
        self._db = db
        self._log = log
        self.policy = policy
        self.restricting = restricting_actions(policy)

    def build(self, period: str) -> Report:
        start, end = parse_period(period)
        # Every record's brief (what a successor in the period is compared with); whole
        # decisions only for the period's records.
        by_id: dict[str, Decision | Brief] = {}
        in_period: list[Decision] = []
        for record in self._log.records():
            d = record.decision
            if start <= _utc(d.created_at) < end:
                in_period.append(d)
                by_id[d.decision_id] = d
            else:
                by_id[d.decision_id] = Brief(d.action, d.human, d.created_at, d.categories[:1])
        metas = self._metas({d.item_id for d in in_period})
        noticed = self._noticed({d.item_id for d in in_period})
        for key, (uploaded, notice) in list(metas.items()):
            if notice is None and key[0] in noticed:
                metas[key] = (uploaded, noticed[key[0]])  # reported by a notice: not own initiative
        notice_table = self._notice_rows(start, end)
        tables = {t.name: t for t in (
            notice_table if notice_table is not None else self._notices(in_period, metas, by_id),
            self._account_actions(start, end),
            self._own_initiative(in_period, metas, by_id),
            self._automation(in_period, by_id),
            self._time_to_action(in_period, metas, by_id),
            self._appeals(in_period, by_id, start, end),
            self._accuracy(in_period, by_id),
        )}
        return Report(period=period, start=start, end=end, tables=tables)

    # -- inputs ----------------------------------------------------------------
    def _metas(self, item_ids: set[str]) -> dict[tuple[str, str], tuple[datetime | None, str | None]]:
        out: dict[tuple[str, str], tuple[datetime | None, str | None]] = {}
        ids = sorted(item_ids)
        query = select(items.c.item_id, items.c.content_hash, items.c.created_at, items.c.first_seen_at,
                       items.c.context)
        with self._db.read() as conn:
            for i in range(0, len(ids), 500):
                for r in conn.execute(query.where(items.c.item_id.in_(ids[i:i + 500]))).all():
                    context = r.context if isinstance(r.context, dict) else {}
                    notice = context.get(NOTICE_KEY)
                    out[(r.item_id, r.content_hash)] = (r.created_at or r.first_seen_at,
                                                        notice if isinstance(notice, str) else None)
        return out

    def _noticed(self, item_ids: set[str]) -> dict[str, str]:
        """Items a notice of the ``notices`` table reported -> 'trusted_flagger' or 'article_16'."""
        out: dict[str, str] = {}
        ids = sorted(item_ids)
        with self._db.read() as conn:
            if not inspect(conn).has_table("notices"):
                return out
            for i in range(0, len(ids), 500):
                for r in conn.execute(select(notices.c.item_id, notices.c.trusted_flagger)
                                      .where(notices.c.item_id.in_(ids[i:i + 500]))):
                    if r.trusted_flagger or r.item_id not in out:
                        out[r.item_id] = "trusted_flagger" if r.trusted_flagger else "article_16"
        return out

    def _restricts(self, d: Decision | Brief) -> bool:
        return d.action in self.restricting

    @staticmethod
    def _category(d: Decision | Brief) -> str:
        return d.categories[0] if d.categories else "(none)"

    def _first_restriction(self, d: Decision, by_id: dict[str, Decision | Brief]) -> bool:
        """A restriction the record it supersedes did not already impose."""
        prev = by_id.get(d.supersedes) if d.supersedes else None
        return self._restricts(d) and (prev is None or not self._restricts(prev))

    # -- tables ----------------------------------------------------------------
    def _notices(self, ds: list[Decision], metas: dict[tuple[str, str], Any], by_id: dict[str, Decision | Brief]) -> Table:
        received: Counter[tuple[str, str]] = Counter()
        actioned: Counter[tuple[str, str]] = Counter()
        restricted = {d.item_id for d in ds if self._restricts(d)}
        for d in ds:
            notice = metas.get((d.item_id, d.content_hash), (None, None))[1]
            if notice is None or (d.supersedes is not None and d.supersedes in by_id):
                continue  # one notice per item: counted at the item's first decision
            key = (notice, self._category(d))
            received[key] += 1
            actioned[key] += d.item_id in restricted
        table = TABLES["notices_by_context"].table()
        for key in sorted(received):
            table.rows.append([*key, received[key], actioned[key]])
        return table

    def _notice_rows(self, start: datetime, end: datetime) -> Table | None:
        """Notices received in the period (the ``notices`` table, DSA Art. 16), by notice type (a
        trusted flagger's or anyone's) and alleged category: received, decided, actioned (the
        outcome restricts) and the median hours from the notice to its decision. None when the
        store holds no notice of the period (the item-context ``dsa_notice`` key is counted instead)."""
        with self._db.read() as conn:
            if not inspect(conn).has_table("notices"):
                return None
            rows = conn.execute(select(notices.c.trusted_flagger, notices.c.category, notices.c.received_at,
                                       notices.c.decided_at, notices.c.outcome_action)
                                .where(notices.c.received_at >= start.timestamp(),
                                       notices.c.received_at < end.timestamp())).all()
        if not rows:
            return None
        restricting = {a.value for a in self.restricting}
        groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for r in rows:
            kind = "trusted_flagger" if r.trusted_flagger else "article_16"
            for key in ((kind, r.category or "(not specified)"), (kind, "(all)"), ("(all)", "(all)")):
                groups[key].append(r)
        table = TABLES["notices"].table()
        for key in sorted(groups, key=lambda k: (k[0] == "(all)", k[0], k[1] != "(all)", k[1])):
            g = groups[key]
            decided = [r for r in g if r.decided_at is not None]
            table.rows.append([*key, len(g), len(decided), sum(r.outcome_action in restricting for r in decided),
                               _median([(r.decided_at - r.received_at) / 3600 for r in decided])])
        return table

    def _account_actions(self, start: datetime, end: datetime) -> Table:
        """Account actions (suspensions, terminations, ...) recorded in the period, by kind and action."""
        table = TABLES["account_actions"].table()
        with self._db.read() as conn:
            if not inspect(conn).has_table("account_actions"):
                return table
            rows = conn.execute(select(account_actions.c.kind, account_actions.c.action, account_actions.c.created_at)
                                ).all()
        counts = Counter((r.kind, r.action or "(none)") for r in rows if start <= _utc(r.created_at) < end)
        for key in sorted(counts):
            table.rows.append([*key, counts[key]])
        return table

    def _own_initiative(self, ds: list[Decision], metas: dict[tuple[str, str], Any],
                        by_id: dict[str, Decision | Brief]) -> Table:
        counts: Counter[tuple[str, str, str, str]] = Counter()
        for d in ds:
            if not self._first_restriction(d, by_id) or metas.get((d.item_id, d.content_hash), (None, None))[1] is not None:
                continue
            category = self._category(d)
            counts[(category, ground_of(self.policy, category), d.action.value,
                    "automated" if d.automated_detection else "manual")] += 1
        table = TABLES["own_initiative"].table()
        for key in sorted(counts):
            table.rows.append([*key, counts[key]])
        return table

    def _automation(self, ds: list[Decision], by_id: dict[str, Decision | Brief]) -> Table:
        restr = [d for d in ds if self._first_restriction(d, by_id)]
        n = len(restr)
        detected = sum(d.automated_detection for d in restr)
        decided = sum(1 for d in restr if not d.human and d.automated_decision)
        table = TABLES["automation"].table()
        table.rows.append(["automated detection", detected, n, round(detected / n, 4) if n else None])
        table.rows.append(["fully automated decision", decided, n, round(decided / n, 4) if n else None])
        return table

    def _time_to_action(self, ds: list[Decision], metas: dict[tuple[str, str], Any],
                        by_id: dict[str, Decision | Brief]) -> Table:
        hours: dict[str, list[float]] = defaultdict(list)
        for d in ds:
            if not self._first_restriction(d, by_id):
                continue
            uploaded = metas.get((d.item_id, d.content_hash), (None, None))[0]
            if uploaded is None:
                continue
            h = max(0.0, (_utc(d.created_at) - _utc(uploaded)).total_seconds() / 3600)
            hours["(all)"].append(h)
            hours[self._category(d)].append(h)
        table = TABLES["time_to_action"].table()
        for cat in sorted(hours, key=lambda c: (c != "(all)", c)):
            table.rows.append([cat, len(hours[cat]), _median(hours[cat])])
        return table

    def _appeals(self, ds: list[Decision], by_id: dict[str, Decision | Brief], start: datetime, end: datetime) -> Table:
        table = TABLES["appeals"].table()
        from_tables = self._appeal_rows(start, end)
        if from_tables is not None and from_tables[0]:
            table.rows.append(["review tables", *from_tables])
            return table
        outcomes = [d for d in ds if d.source == "appeal"]
        reversed_ = 0
        hours: list[float] = []
        for d in outcomes:
            prev = by_id.get(d.supersedes or "")
            if prev is not None:
                reversed_ += prev.action != d.action
                hours.append((_utc(d.created_at) - _utc(prev.created_at)).total_seconds() / 3600)
        table.rows.append(["decision log", None, len(outcomes), reversed_, _median(hours)])
        return table

    def _appeal_rows(self, start: datetime, end: datetime) -> list[Any] | None:
        """From the review tables' ``appeals`` (epoch seconds) when the store has them."""
        try:
            from referee.store.sql.review_tables import appeals
        except ImportError:
            return None
        with self._db.read() as conn:
            if not inspect(conn).has_table("appeals"):
                return None
            lo, hi = start.timestamp(), end.timestamp()
            rows = conn.execute(select(appeals.c.status, appeals.c.received_at, appeals.c.decided_at)
                                .where(appeals.c.received_at >= lo, appeals.c.received_at < hi)).all()
        decided = [r for r in rows if r.status != "open"]
        hours = [(r.decided_at - r.received_at) / 3600 for r in decided if r.decided_at is not None]
        return [len(rows), len(decided), sum(r.status == "overturned" for r in decided), _median(hours)]

    def _accuracy(self, ds: list[Decision], by_id: dict[str, Decision | Brief]) -> Table:
        reviewed: Counter[str] = Counter()
        upheld: Counter[str] = Counter()
        for d in ds:
            if d.source != "review" or not d.supersedes:
                continue
            prev = by_id.get(d.supersedes)
            if prev is None or prev.human or not self._restricts(prev):
                continue
            for key in ("(all)", self._category(prev)):
                reviewed[key] += 1
                upheld[key] += self._restricts(d)
        table = TABLES["accuracy"].table()
        for key in sorted(reviewed, key=lambda c: (c != "(all)", c)):
            n, k = reviewed[key], upheld[key]
            low, high = wilson(k, n)
            table.rows.append([key, n, k, round(k / n, 4), round(low, 4), round(high, 4)])
        return table


# -- output ------------------------------------------------------------------------
def write_report(report: Report, out: Path) -> list[Path]:
    """One CSV per table and ``report.html`` with charts; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for table in report.tables.values():
        path = out / f"{table.name}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(table.columns)
            writer.writerows([["" if v is None else v for v in row] for row in table.rows])
        written.append(path)
    charts = _charts(report, out)
    written += charts
    parts = [f"<!doctype html><meta charset='utf-8'><title>Transparency report {html.escape(report.period)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}th{background:#eee}</style>",
             f"<h1>Transparency report {html.escape(report.period)}</h1>",
             f"<p>{report.start:%Y-%m-%d} to {report.end:%Y-%m-%d} (exclusive), from the decision log.</p>"]
    for table in report.tables.values():
        parts.append(f"<h2>{html.escape(table.title)}</h2>")
        chart = out / f"{table.name}.png"
        if chart in charts:
            parts.append(f"<img src='{chart.name}' alt='{html.escape(table.title)}' width='640'>")
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in table.columns) + "</tr>")
        for row in table.rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row)
                         + "</tr>")
        if not table.rows:
            parts.append(f"<tr><td colspan='{len(table.columns)}'>none in this period</td></tr>")
        parts.append(f"</table><p><a href='{table.name}.csv'>{table.name}.csv</a></p>")
    page = out / "report.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    written.append(page)
    return written


def _charts(report: Report, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[Path] = []
    specs = {"own_initiative": (0, -1), "notices": (1, 2), "time_to_action": (0, 2), "accuracy": (0, 3)}
    for name, (label_col, value_col) in specs.items():
        table = report.tables.get(name)
        if table is None or not table.rows:
            continue
        totals: dict[str, float] = defaultdict(float)
        for row in table.rows:
            value = row[value_col]
            if isinstance(value, (int, float)):
                totals[str(row[label_col])] += value
        if not totals:
            continue
        fig, ax = plt.subplots(figsize=(8, 3.5))
        labels = sorted(totals)
        ax.barh(labels, [totals[k] for k in labels], color="#4a78a8")
        ax.set_title(table.title, fontsize=9)
        if name == "accuracy":
            ax.set_xlim(0, 1)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(path)
    return made


__all__ = ["TABLES", "Report", "Table", "TableSpec", "TransparencyReport", "ground_of", "parse_period",
           "restricting_actions", "wilson", "write_report"]
