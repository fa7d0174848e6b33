"""One Spark session for all the batch tests, and a second policy that decides some items otherwise.

Starting a JVM costs seconds, and so does each Python worker's first import of referee and
build of its engine: the tests share one ``local[2]`` session for the whole pytest session
(``spark``), bound to loopback with the UI off and little memory, tuned for tiny data, and
skip cleanly when pyspark, pyarrow or Java is missing. ``local[1]`` runs in a process of its
own (``test_aggregates.py``): one process holds one SparkContext.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from referee.model import ContentItem

POLICY = Path("policies/default.yaml")
#: A rule of the default policy that the "new" policy changes: harassing comments are removed, not limited.
OLD_RULE = "      - id: comment.harassment\n        categories: [harassment, sexual]\n        threshold: 0.8\n" \
           "        action: limit_reach\n"
NEW_RULE = OLD_RULE.replace("limit_reach", "remove")


def skip_without_spark() -> None:
    for module in ("pyspark", "pyarrow", "pandas"):
        pytest.importorskip(module, reason=f"{module} is missing: pip install -e '.[spark]'")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        pytest.skip("Java 17 is missing (Spark needs a JRE): apt-get install openjdk-17-jre-headless")


#: Settings of the test session: tiny data, two cores shared with other jobs.
TEST_CONF = {
    # One shuffle partition: a few dozen rows, and every partition is a task to schedule.
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "2",
    "spark.python.worker.reuse": "true",
    # Tiny data: compiling each query's whole-stage Java code and re-planning it costs more than it saves,
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.adaptive.enabled": "false",
    # ... and interpreted expressions: no Janino compile of each new projection (half the first report).
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    # A short-lived JVM: the quick JIT only, and one GC thread (the host has two cores).
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}


def session(master: str) -> Iterator[Any]:
    """A loopback-only session on ``master`` (the UI off: ``BASE_CONF``), stopped afterwards."""
    skip_without_spark()
    from referee.batch import spark_session

    spark = spark_session(master, "referee-tests", driver_memory="768m", conf=TEST_CONF)
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    from referee.batch.rescan import close_engines

    close_engines()
    spark.stop()


@dataclass
class OtherMaster:
    """``referee rescan`` of ``items`` on another master, in a process of its own."""

    proc: subprocess.Popen[bytes]
    folder: Path
    items: list[ContentItem]

    def wait(self, timeout_s: float = 600) -> tuple[int, str]:
        """The CLI's exit code and output, once it is done."""
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"referee rescan on local[1] did not finish within {timeout_s} s")
        return self.proc.returncode, (self.folder / "rescan.log").read_text(errors="replace")

    def stop(self) -> None:
        """Kill the CLI and its JVM (its own process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="session")
def local_1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtherMaster]:
    """The re-scan CLI on ``local[1]``, started at once and waited for by the test that checks it:
    its JVM starts while the shared session's tests run, instead of after them."""
    skip_without_spark()
    folder = tmp_path_factory.mktemp("local1")
    batch = items(15)
    path = write_jsonl(folder / "items.jsonl", list(batch))
    conf = [arg for key, value in TEST_CONF.items() for arg in ("--conf", f"{key}={value}")]
    cmd = [sys.executable, "-c", "from referee.cli import app; app()", "rescan", "--source", str(path),
           "--policy", str(POLICY), "--master", "local[1]", "--detectors", "lexicon", "--partitions", "3",
           "--out", str(folder / "out"), "--driver-memory", "768m", *conf]
    with (folder / "rescan.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    run = OtherMaster(proc, folder, batch)
    yield run
    run.stop()  # when no test waited for it (a -k selection)


@pytest.fixture(scope="session")
def spark(local_1: OtherMaster) -> Iterator[Any]:
    """The one session every Spark test shares (``local_1`` first: it runs beside them)."""
    yield from session("local[2]")


@pytest.fixture(scope="session")
def new_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """policies/ copied, with comment.harassment removing instead of limiting reach (and a new version)."""
    folder = tmp_path_factory.mktemp("policies")
    shutil.copytree(POLICY.parent, folder, dirs_exist_ok=True)
    text = (folder / POLICY.name).read_text()
    assert OLD_RULE in text, "the default policy's comment.harassment rule changed: update tests/batch/conftest.py"
    text = text.replace(OLD_RULE, NEW_RULE).replace('version: "2026.11.0"', 'version: "2026.12.0-rescan"')
    (folder / POLICY.name).write_text(text)
    return folder / POLICY.name


#: Comments (and a few other surfaces) whose decisions under the default policy with the lexicon
#: cover allow, limit_reach (harassment: the rule the new policy changes), remove and hold.
TEXTS = [
    ("comment", "This album got me through a rough winter. Track 4 is perfect."),
    ("comment", "You're a worthless idiot and nobody wants to hear your podcast, shut up."),
    ("comment", "Shut up you stupid bitch, nobody wants to hear your podcast."),
    ("message", "free followers, click here to buy cheap likes"),
    ("comment", "I will find you and k1ll you"),
    ("profile_bio", "Producer, DJ, coffee."),
    ("playlist_title", "late night drives"),
]


def items(n: int, prefix: str = "i") -> list[ContentItem]:
    return [ContentItem(id=f"{prefix}{i}", surface=TEXTS[i % len(TEXTS)][0], text=f"{TEXTS[i % len(TEXTS)][1]}",
                        country="DE" if i % 2 else "US") for i in range(n)]


def write_jsonl(path: Path, rows: list[ContentItem | str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else row.model_dump_json()) + "\n")
    return path
