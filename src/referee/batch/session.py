"""The Spark session a batch job runs in: the same code on a laptop and on a cluster.

The master URL is the only difference between the two: ``local[2]`` runs the
driver and two executor slots in this process (and its Python workers), a
``spark://host:7077`` (or ``yarn``, ``k8s://...``) master runs the executors
elsewhere. On a local master everything is bound to loopback and the web UI
is off, so a job on a shared host opens no port beyond 127.0.0.1; a cluster
master takes the driver's address from ``--conf spark.driver.host=...``.

Executors run this interpreter (``sys.executable``) locally, so they import
the same installed ``referee``; on a cluster every node needs referee installed
(a container image, or ``spark.pyspark.python`` pointing at a venv there).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from referee.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Settings of every session: UTC (decisions' times are UTC), Arrow batches for ``mapInPandas``.
BASE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.sources.partitionOverwriteMode": "static",
}
#: Added on a local master: nothing listens beyond loopback.
LOOPBACK_CONF: dict[str, str] = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def check_spark() -> None:
    """Raise ConfigError naming what to install when pyspark, pyarrow, pandas or Java is missing."""
    missing = []
    for module in ("pyspark", "pyarrow", "pandas"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(f"batch jobs need {', '.join(missing)}: pip install -e '.[spark]'")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise ConfigError("batch jobs need Java 17 for Spark: install a JRE (apt-get install openjdk-17-jre-headless) "
                          "or set JAVA_HOME")


def parse_conf(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` options (``--conf``) as a mapping; ConfigError names a malformed one."""
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf {pair!r}: write KEY=VALUE, e.g. spark.executor.memory=4g")
        conf[key.strip()] = value
    return conf


def spark_session(master: str = "local[2]", app_name: str = "referee", *, driver_memory: str = "1g",
                  conf: Mapping[str, str] | None = None) -> SparkSession:
    """A session on ``master``; ``conf`` overrides any setting (``spark.driver.host`` on a cluster).

    A process holds one SparkContext: when one is running already (a test session shared by
    many tests, a notebook) its session is returned, with ``BASE_CONF``'s and ``conf``'s run-time
    (SQL) settings applied, provided it runs on ``master``. Another master is refused (Spark
    would hand back the running one, and the job would run where it was not asked to), and so is
    a ``conf`` naming a static setting (the running session keeps its own)."""
    check_spark()
    from pyspark.sql import SparkSession

    if not master.strip():
        raise ConfigError("--master is empty: write local[2] or spark://HOST:7077")
    active = SparkSession.getActiveSession()
    if active is not None:
        running = active.sparkContext.master
        if running != master:
            raise ConfigError(f"--master {master}: this process already runs a Spark session on {running} (one "
                              f"SparkContext a process); stop that one first, or ask for {running}")
        from pyspark.errors import PySparkException

        # The job's own run-time settings (UTC, Arrow) hold in any session; static ones (the UI,
        # the bind address) are the running session's, as whoever started it set them.
        runtime = {k: v for k, v in BASE_CONF.items() if k.startswith("spark.sql.")}
        for key, value in {**runtime, **(conf or {})}.items():
            try:
                active.conf.set(key, value)
            except PySparkException as exc:  # a static setting: fixed when the session started
                raise ConfigError(f"--conf {key}={value}: the running Spark session cannot change it ({exc}); "
                                  "start a new process for it") from exc
        return active
    settings = dict(BASE_CONF)
    if is_local(master):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings.update(LOOPBACK_CONF)
        # Spark's default of 200 shuffle partitions is sized for clusters; a few cores want few.
        settings["spark.sql.shuffle.partitions"] = "4"
        # Local executors run this interpreter, so they import this venv's referee. PySpark
        # takes the workers' interpreter from the environment (PYSPARK_PYTHON), not from conf.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings["spark.driver.memory"] = driver_memory
    settings.update(conf or {})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


__all__ = ["BASE_CONF", "LOOPBACK_CONF", "check_spark", "is_local", "parse_conf", "spark_session"]
