"""Batch jobs on Apache Spark: re-scans of large datasets and compliance aggregates (docs/rescan.md).

Needs the ``spark`` extra (pyspark, pyarrow, pandas) and Java 17. The same code
runs on ``local[N]`` and on a cluster: only the master URL changes.

- ``rescan``: decide a JSONL/Parquet dataset or the store's catalogue under a
  new policy or model; decisions as Parquet and a diff against the current heads.
- ``aggregates``: the transparency report's tables as Spark SQL over an export.
- ``export``: the store as the Parquet files both read.
- ``session``: the Spark session, bound to loopback on a local master.
"""

from referee.batch.aggregates import SparkTransparencyReport, tables_equal
from referee.batch.export import Exported, export_log, write_heads, write_held_items
from referee.batch.rescan import Diff, RescanJob, RescanResult, Source, run_rescan
from referee.batch.session import check_spark, parse_conf, spark_session

__all__ = [
    "Diff",
    "Exported",
    "RescanJob",
    "RescanResult",
    "Source",
    "SparkTransparencyReport",
    "check_spark",
    "export_log",
    "parse_conf",
    "run_rescan",
    "spark_session",
    "tables_equal",
    "write_heads",
    "write_held_items",
]
