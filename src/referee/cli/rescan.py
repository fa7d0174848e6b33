"""``referee rescan``: batch re-scans and compliance aggregates on Apache Spark (wiring only).

- ``rescan --source FILE|DIR|db:URL --policy NEW [--master local[2]|spark://...] [--out DIR] [--enforce]``:
  decide a dataset under a new policy or model, write the decisions as Parquet and print the diff
  against the current heads (dry run unless ``--enforce``);
- ``rescan export --db-url URL --out DIR``: the decision log as Parquet files;
- ``rescan report --source EXPORT --period 2026-H1 --out DIR``: the transparency report from an
  export, in Spark SQL (the same tables as ``referee compliance report``).

``referee.batch`` is imported inside the commands: pyspark and pyarrow come from the optional
``spark`` extra, and ``referee --help`` must work without them. See docs/rescan.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from referee.errors import RefereeError
from referee.settings import Settings

if TYPE_CHECKING:
    from referee.batch.rescan import Diff

err = Console(stderr=True)

rescan_app = typer.Typer(
    name="rescan", invoke_without_command=True, no_args_is_help=True,
    help="Re-scan a dataset or the store's catalogue under a new policy on Spark; export the log; "
         "transparency aggregates in Spark SQL.",
)

Master = Annotated[str, typer.Option("--master", help="Spark master: local[N], local[*], spark://HOST:7077, yarn.")]
Conf = Annotated[list[str] | None, typer.Option(
    "--conf", help="A Spark setting KEY=VALUE (repeatable), e.g. spark.driver.host=10.0.0.5 on a cluster.")]
DriverMemory = Annotated[str, typer.Option("--driver-memory", help="spark.driver.memory (local: the executors' too).")]


def register(app: typer.Typer) -> None:
    app.add_typer(rescan_app, name="rescan")


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


@rescan_app.callback()
def rescan(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Option(
        "--source", help="Items: a JSONL file or folder, a Parquet dataset, or db:URL (the store's catalogue).")] = None,
    policy: Annotated[Path | None, typer.Option("--policy", "-p", help="The new policy YAML.")] = None,
    master: Master = "local[*]",
    out: Annotated[Path, typer.Option("--out", help="Folder for decisions.parquet, rejected.jsonl, diff.json.")]
    = Path("runs/rescan"),
    enforce: Annotated[bool, typer.Option(
        "--enforce", help="Append the new decisions to the store (supersede heads). Default: dry run.")] = False,
    detectors: Annotated[str | None, typer.Option("--detectors", help="Comma-separated subset of the policy's.")]
    = None,
    db_url: Annotated[str | None, typer.Option(
        "--db-url", help="The store whose heads are the baseline (and which --enforce appends to).")] = None,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="Earlier decisions to compare with: a decisions.parquet or referee moderate's JSONL.")]
    = None,
    partitions: Annotated[int | None, typer.Option(min=1, max=100_000, help="Repartition the items first.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=4096, help="Items per detector batch.")] = 64,
    conf: Conf = None,
    driver_memory: DriverMemory = "1g",
) -> None:
    """Decide every item under POLICY with Spark and print what would change (nothing is stored without --enforce)."""
    if ctx.invoked_subcommand is not None:
        return
    if source is None or policy is None:
        raise _fail("rescan needs --source and --policy (or a sub-command: export, report)")
    from referee.batch import RescanJob, Source, parse_conf, run_rescan, spark_session

    try:
        config = Settings().engine_config(store=False, detectors=detectors, batch_size=batch_size)
        config = config.model_copy(update={"policy": policy})
        job = RescanJob(source=Source.parse(source), config=config, out=out, enforce=enforce, store_url=db_url,
                        baseline=baseline, partitions=partitions)
        spark = spark_session(master, "referee-rescan", driver_memory=driver_memory, conf=parse_conf(conf or []))
        try:
            result = run_rescan(spark, job, master=master)
        finally:
            spark.stop()
    except RefereeError as exc:
        raise _fail(str(exc)) from exc
    for entry in result.rejected_sample:
        err.print(f"[yellow]skipped[/yellow] {escape(entry['where'])}: {escape(entry['error'])}", highlight=False)
    if result.rejected > len(result.rejected_sample):
        err.print(f"... {result.rejected - len(result.rejected_sample)} more in {escape(str(out / 'rejected.jsonl'))}")
    print_diff(result.diff)
    if result.erased:
        err.print(f"{result.erased} item(s) left out: their content was erased (retention or erasure)")
    verb = "appended to the store" if result.enforced else "dry run: nothing stored"
    err.print(escape(f"{result.decided} decided, {result.rejected} rejected; {verb}; wrote "
                     + ", ".join(str(p) for p in result.files)), highlight=False)
    if result.rejected:
        raise typer.Exit(1)


def print_diff(diff: Diff) -> None:
    summary = Table(title=f"{diff.items} items against baseline: {diff.baseline}")
    for column in ("with baseline", "new", "changed", "unchanged", "escalated", "relaxed", "human verdict stands"):
        summary.add_column(column, justify="right")
    summary.add_row(*(str(v) for v in (diff.with_baseline, diff.new_items, diff.changed, diff.unchanged,
                                         diff.escalated, diff.relaxed, diff.human_stands)))
    err.print(summary)
    moves = Table(title="old action -> new action")
    for column in ("old", "new", "items"):
        moves.add_column(column, justify="right" if column == "items" else "left")
    for t in diff.transitions:
        moves.add_row(escape(t.old), escape(t.new), str(t.items))
    err.print(moves)
    for title, rows in (("by category", diff.by_category), ("by surface", diff.by_surface)):
        table = Table(title=title)
        for column in ("", "items", "changed", "escalated", "relaxed"):
            table.add_column(column, justify="left" if not column else "right")
        for b in rows:
            table.add_row(escape(b.key), str(b.items), str(b.changed), str(b.escalated), str(b.relaxed))
        err.print(table)


@rescan_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Folder for records.parquet, items.parquet, appeals.parquet.")],
    db_url: Annotated[str | None, typer.Option("--db-url", help="The store [env REFEREE_DB_URL].")] = None,
) -> None:
    """Export the decision log (and the items' metadata, the appeals) as Parquet for Spark jobs."""
    from referee.batch import export_log
    from referee.store import Store

    try:
        store = Store(db_url or Settings().db_url)
        try:
            done = export_log(store, out)
        finally:
            store.close()
    except RefereeError as exc:
        raise _fail(str(exc)) from exc
    extra = "".join(f", {n} {name.replace('_', ' ')} row(s)" for name, n in done.optional.items())
    typer.echo(f"exported {done.records} record(s), {done.items} item row(s){extra} to {out}")


@rescan_app.command("report")
def report(
    source: Annotated[Path, typer.Option("--source", help="An export folder (referee rescan export).")],
    period: Annotated[str, typer.Option(help="2026-H1, 2026-Q3, 2026-05 or 2026.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the CSV files and report.html.")],
    policy: Annotated[Path | None, typer.Option("--policy", help="Policy YAML with a dsa: section.")] = None,
    master: Master = "local[*]",
    conf: Conf = None,
    driver_memory: DriverMemory = "1g",
) -> None:
    """The transparency report of a period, in Spark SQL over an export (same tables as compliance report)."""
    from referee.batch import SparkTransparencyReport, parse_conf, spark_session
    from referee.policy import Policy
    from referee.records.transparency import write_report

    try:
        pol = Policy.from_file(policy or Settings().policy)
        spark = spark_session(master, "referee-report", driver_memory=driver_memory, conf=parse_conf(conf or []))
        try:
            built = SparkTransparencyReport(spark, source, pol).build(period)
        finally:
            spark.stop()
        files = write_report(built, out)
    except RefereeError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"wrote {len(files)} file(s) to {out} ({out / 'report.html'})")
