"""Spark sessions for the batch tests, and a second policy that decides some items otherwise.

Each Spark test module opens one session (module-scoped; starting a JVM costs seconds),
bound to loopback with the UI off and little memory, and skips cleanly when pyspark,
pyarrow or Java is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
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


def session(master: str) -> Iterator[Any]:
    """A loopback-only session on ``master`` for one test module."""
    skip_without_spark()
    from referee.batch import spark_session

    spark = spark_session(master, "referee-tests", driver_memory="768m", conf={
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.python.worker.reuse": "true",
        # Tiny data: compiling each query's whole-stage Java code and re-planning it costs more than it saves.
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.adaptive.enabled": "false",
    })
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    from referee.batch.rescan import close_engines

    close_engines()
    spark.stop()


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
