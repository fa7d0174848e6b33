"""The transparency report's aggregates as Spark SQL, over an exported decision log.

``records.transparency.TransparencyReport`` reads the store and keeps a period's
decisions in memory; for a log the store (or one machine) cannot hold, the same
tables come from Spark SQL over the files ``batch.export.export_log`` writes
(``referee rescan export``): ``records.parquet``, ``items.parquet`` and, when the
store has those tables, ``appeals.parquet``, ``notices.parquet`` and
``account_actions.parquet``. The definitions are the embedded
report's, one for one (its docstring says what each table counts), and the
numbers are equal on the same data (``tests/batch/test_aggregates.py``):

- an item is reported by a notice when its context says so (``dsa_notice``) or a
  notice of the ``notices`` table names it; with notices in the period, the
  ``notices`` table counts them (by notifier type and alleged category);
- a record's *previous* record is the one it supersedes (from the whole log,
  not only the period), its *category* its first category or ``(none)``;
- a *first restriction* restricts (its action is in the policy's ``dsa.actions``)
  and its previous record did not;
- medians are exact: the middle one or two values of each group are found in
  SQL (a window over the sorted hours) and averaged here, as
  ``statistics.median`` does, then rounded to 3 places as the report rounds.

Only counts and those middle values reach the driver.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from referee.errors import InputError
from referee.model import Action
from referee.policy import Policy
from referee.records.transparency import TABLES, Report, Table, ground_of, parse_period, restricting_actions
from referee.stats import wilson_interval

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The export's files that must be there (``appeals.parquet`` is optional, as the review tables are).
REQUIRED = ("records.parquet", "items.parquet")

# The period's records, each beside its previous record and its item's metadata.
_PERIOD = """
SELECT d.decision_id, d.item_id, d.action, d.source, d.automated_detection, d.automated_decision, d.created_at,
       d.action IN ({restricting}) AS restricts,
       COALESCE(try_element_at(d.categories, 1), '(none)') AS category,
       p.decision_id IS NOT NULL AS has_prev,
       p.action AS prev_action,
       p.source <> 'automated' AS prev_human,
       p.created_at AS prev_created_at,
       COALESCE(try_element_at(p.categories, 1), '(none)') AS prev_category,
       COALESCE(p.action IN ({restricting}), false) AS prev_restricts,
       COALESCE(m.created_at, m.first_seen_at) AS uploaded,
       IF(m.item_id IS NULL, NULL, COALESCE(m.notice, nt.noticed)) AS notice
FROM {records} d
LEFT JOIN {records} p ON p.decision_id = d.supersedes
LEFT JOIN {items} m ON m.item_id = d.item_id AND m.content_hash = d.content_hash
LEFT JOIN (SELECT item_id, IF(max(CAST(trusted_flagger AS INT)) = 1, 'trusted_flagger', 'article_16') AS noticed
           FROM tr_notices WHERE item_id IS NOT NULL GROUP BY item_id) nt ON nt.item_id = d.item_id
WHERE d.created_at >= :start AND d.created_at < :end
"""
#: The optional tables as empty views when the export has none (the store had no such table).
_EMPTY = {
    "appeals": "appeal_id string, status string, received_at double, decided_at double",
    "notices": "notice_id string, item_id string, category string, trusted_flagger boolean, received_at double, "
               "decided_at double, outcome_action string",
    "account_actions": "kind string, action string, created_at timestamp",
}

_HOURS = "(CAST(unix_micros({later}) - unix_micros({earlier}) AS DOUBLE) / 1e6 / 3600)"


class SparkTransparencyReport:
    """``TransparencyReport``'s tables from an export folder, computed by Spark SQL."""

    def __init__(self, spark: SparkSession, export: str | Path, policy: Policy) -> None:
        self.spark = spark
        self.export = str(export).rstrip("/")
        self.policy = policy
        self._present: dict[str, bool] = {}
        # Action values are identifiers (the enum checks them), so they are safe as SQL literals.
        self._restricting = ", ".join(f"'{Action(a).value}'" for a in sorted(restricting_actions(policy)))
        local = Path(self.export)
        if "://" not in self.export:
            missing = [name for name in REQUIRED if not (local / name).exists()]
            if missing:
                raise InputError(f"not an export of the decision log ({', '.join(missing)} missing); write one with "
                                 "`referee rescan export --db-url URL --out DIR`", f"--source {self.export}")

    def _read(self, name: str) -> DataFrame | None:
        path = f"{self.export}/{name}"
        if "://" not in self.export and not Path(path).exists():
            return None
        return self.spark.read.parquet(path)

    def build(self, period: str) -> Report:
        start, end = parse_period(period)
        records, items = self._read("records.parquet"), self._read("items.parquet")
        assert records is not None and items is not None  # checked in __init__
        records.createOrReplaceTempView("tr_records")
        items.createOrReplaceTempView("tr_items")
        self._present = {}
        for name, schema in _EMPTY.items():
            frame = self._read(f"{name}.parquet")
            self._present[name] = frame is not None
            (frame if frame is not None else self.spark.createDataFrame([], schema)).createOrReplaceTempView(
                f"tr_{name}")
        query = _PERIOD.format(restricting=self._restricting, records="tr_records", items="tr_items")
        frame = self.spark.sql(query, args={"start": start, "end": end}).cache()
        try:
            frame.createOrReplaceTempView("tr_period")
            first = "restricts AND (NOT has_prev OR NOT prev_restricts)"
            tables = [self._notice_rows(start, end) or self._notices(), self._account_actions(start, end),
                      self._own_initiative(first), self._automation(first), self._time_to_action(first),
                      self._appeals(start, end), self._accuracy()]
        finally:
            frame.unpersist()
        return Report(period=period, start=start, end=end, tables={t.name: t for t in tables})

    def _sql(self, query: str, **args: Any) -> list[Any]:
        return self.spark.sql(query, args=args or None).collect()

    def _medians(self, source: str, keys: str, value: str) -> dict[tuple[Any, ...], float | None]:
        """Per group of ``keys`` (comma-separated columns): the exact median of ``value`` over ``source``."""
        rows = self._sql(f"""
            SELECT {keys}, v FROM (
              SELECT {keys}, {value} AS v,
                     row_number() OVER (PARTITION BY {keys} ORDER BY {value}) AS rn,
                     count(*) OVER (PARTITION BY {keys}) AS n
              FROM {source}) AS ranked
            WHERE rn IN (floor((n + 1) / 2), floor(n / 2) + 1)""")
        width = len(keys.split(","))
        middles: dict[tuple[Any, ...], list[float]] = {}
        for r in rows:
            middles.setdefault(tuple(r[:width]), []).append(float(r["v"]))
        return {k: round(statistics.median(vs), 3) for k, vs in middles.items()}

    # -- tables ----------------------------------------------------------------
    def _notices(self) -> Table:
        rows = self._sql("""
            SELECT t.notice, t.category, count(*) AS received, count(r.item_id) AS actioned
            FROM tr_period t
            LEFT JOIN (SELECT DISTINCT item_id FROM tr_period WHERE restricts) r ON r.item_id = t.item_id
            WHERE t.notice IS NOT NULL AND NOT t.has_prev
            GROUP BY t.notice, t.category""")
        table = TABLES["notices_by_context"].table()
        table.rows = sorted([r["notice"], r["category"], int(r["received"]), int(r["actioned"])] for r in rows)
        return table

    def _notice_rows(self, start: datetime, end: datetime) -> Table | None:
        """The notices received in the period, as the embedded report counts them; None when there are none."""
        bounds = {"lo": start.timestamp(), "hi": end.timestamp()}
        self.spark.sql(f"""
            WITH n AS (
              SELECT IF(trusted_flagger, 'trusted_flagger', 'article_16') AS kind, category, received_at, decided_at,
                     decided_at IS NOT NULL AND outcome_action IN ({self._restricting}) AS actioned
              FROM tr_notices WHERE received_at >= :lo AND received_at < :hi)
            SELECT kind AS k1, COALESCE(category, '(not specified)') AS k2, received_at, decided_at, actioned FROM n
            UNION ALL SELECT kind, '(all)', received_at, decided_at, actioned FROM n
            UNION ALL SELECT '(all)', '(all)', received_at, decided_at, actioned FROM n""",
                       args=bounds).createOrReplaceTempView("tr_notice_groups")
        rows = self._sql("""
            SELECT k1, k2, count(*) AS received, count(decided_at) AS decided,
                   COALESCE(sum(CAST(actioned AS INT)), 0) AS actioned
            FROM tr_notice_groups GROUP BY k1, k2""")
        if not rows:
            return None
        self.spark.sql("SELECT k1, k2, (decided_at - received_at) / 3600 AS h FROM tr_notice_groups "
                       "WHERE decided_at IS NOT NULL").createOrReplaceTempView("tr_notice_hours")
        medians = self._medians("tr_notice_hours", "k1, k2", "h")
        table = TABLES["notices"].table()
        for r in sorted(rows, key=lambda r: (r["k1"] == "(all)", r["k1"], r["k2"] != "(all)", r["k2"])):
            table.rows.append([r["k1"], r["k2"], int(r["received"]), int(r["decided"]), int(r["actioned"]),
                               medians.get((r["k1"], r["k2"]))])
        return table

    def _account_actions(self, start: datetime, end: datetime) -> Table:
        rows = self._sql("""
            SELECT kind, COALESCE(action, '(none)') AS action, count(*) AS n FROM tr_account_actions
            WHERE created_at >= :start AND created_at < :end GROUP BY kind, COALESCE(action, '(none)')""",
                         start=start, end=end)
        table = TABLES["account_actions"].table()
        table.rows = sorted([r["kind"], r["action"], int(r["n"])] for r in rows)
        return table

    def _own_initiative(self, first: str) -> Table:
        rows = self._sql(f"""
            SELECT category, action, automated_detection, count(*) AS n FROM tr_period
            WHERE {first} AND notice IS NULL
            GROUP BY category, action, automated_detection""")
        counts = sorted(((r["category"], ground_of(self.policy, r["category"]), r["action"],
                          "automated" if r["automated_detection"] else "manual"), int(r["n"])) for r in rows)
        table = TABLES["own_initiative"].table()
        table.rows = [[*key, n] for key, n in counts]
        return table

    def _automation(self, first: str) -> Table:
        (r,) = self._sql(f"""
            SELECT count(*) AS n, COALESCE(sum(CAST(automated_detection AS INT)), 0) AS detected,
                   COALESCE(sum(CAST(source = 'automated' AND automated_decision AS INT)), 0) AS decided
            FROM tr_period WHERE {first}""")
        n, detected, decided = int(r["n"]), int(r["detected"]), int(r["decided"])
        table = TABLES["automation"].table()
        table.rows.append(["automated detection", detected, n, round(detected / n, 4) if n else None])
        table.rows.append(["fully automated decision", decided, n, round(decided / n, 4) if n else None])
        return table

    def _time_to_action(self, first: str) -> Table:
        hours = f"greatest(0.0D, {_HOURS.format(later='created_at', earlier='uploaded')})"
        self.spark.sql(f"""
            SELECT category, {hours} AS h FROM tr_period WHERE {first} AND uploaded IS NOT NULL
            UNION ALL
            SELECT '(all)' AS category, {hours} AS h FROM tr_period WHERE {first} AND uploaded IS NOT NULL
            """).createOrReplaceTempView("tr_hours")
        counts = {r["category"]: int(r["n"]) for r in
                  self._sql("SELECT category, count(*) AS n FROM tr_hours GROUP BY category")}
        medians = self._medians("tr_hours", "category", "h")
        table = TABLES["time_to_action"].table()
        for cat in sorted(counts, key=lambda c: (c != "(all)", c)):
            table.rows.append([cat, counts[cat], medians.get((cat,))])
        return table

    def _appeals(self, start: datetime, end: datetime) -> Table:
        table = TABLES["appeals"].table()
        if self._present["appeals"]:
            window = "received_at >= :lo AND received_at < :hi"
            bounds = {"lo": start.timestamp(), "hi": end.timestamp()}
            (r,) = self._sql(f"""
                SELECT count(*) AS received, COALESCE(sum(CAST(status <> 'open' AS INT)), 0) AS decided,
                       COALESCE(sum(CAST(status = 'overturned' AS INT)), 0) AS overturned
                FROM tr_appeals WHERE {window}""", **bounds)
            if r["received"]:
                self.spark.sql(f"""
                    SELECT 1 AS k, (decided_at - received_at) / 3600 AS h FROM tr_appeals
                    WHERE {window} AND status <> 'open' AND decided_at IS NOT NULL""",
                               args=bounds).createOrReplaceTempView("tr_appeal_hours")
                median = self._medians("tr_appeal_hours", "k", "h").get((1,))
                table.rows.append(["review tables", int(r["received"]), int(r["decided"]), int(r["overturned"]),
                                   median])
                return table
        (r,) = self._sql("""
            SELECT count(*) AS decided, COALESCE(sum(CAST(has_prev AND prev_action <> action AS INT)), 0) AS reversed
            FROM tr_period WHERE source = 'appeal'""")
        self.spark.sql(f"""
            SELECT 1 AS k, {_HOURS.format(later='created_at', earlier='prev_created_at')} AS h
            FROM tr_period WHERE source = 'appeal' AND has_prev""").createOrReplaceTempView("tr_appeal_hours")
        median = self._medians("tr_appeal_hours", "k", "h").get((1,))
        table.rows.append(["decision log", None, int(r["decided"]), int(r["reversed"]), median])
        return table

    def _accuracy(self) -> Table:
        rows = self._sql("""
            SELECT prev_category, count(*) AS reviewed, COALESCE(sum(CAST(restricts AS INT)), 0) AS upheld
            FROM tr_period WHERE source = 'review' AND has_prev AND NOT prev_human AND prev_restricts
            GROUP BY prev_category""")
        counts = {r["prev_category"]: (int(r["reviewed"]), int(r["upheld"])) for r in rows}
        if counts:
            counts["(all)"] = (sum(n for n, _ in counts.values()), sum(k for _, k in counts.values()))
        table = TABLES["accuracy"].table()
        for key in sorted(counts, key=lambda c: (c != "(all)", c)):
            n, k = counts[key]
            low, high = wilson_interval(k, n)
            table.rows.append([key, n, k, round(k / n, 4), round(low, 4), round(high, 4)])
        return table


def tables_equal(a: Report, b: Report, names: Sequence[str] | None = None) -> list[str]:
    """The tables (by name) whose columns or rows differ between two reports; empty when equal."""
    return [name for name in (names or sorted(a.tables)) if
            name not in b.tables or (a.tables[name].columns, a.tables[name].rows)
            != (b.tables[name].columns, b.tables[name].rows)]


__all__ = ["REQUIRED", "SparkTransparencyReport", "tables_equal"]
