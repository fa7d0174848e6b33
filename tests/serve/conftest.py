"""Fixtures for the HTTP service: the default policy, a fake detector, a temp SQLite store.

The fake detector reads hashtags instead of meaning ("#hate", "#violence"), so a
test says exactly which categories an item should trip, and the real lexicon
(written elsewhere) is not needed to test the HTTP layer.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from referee.detectors.base import Detector
from referee.engine import Engine
from referee.model import ContentItem, Signal
from referee.policy import Policy
from referee.serve import create_app
from referee.settings import Settings
from referee.store import DecisionStore

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "policies" / "default.yaml"
CATEGORIES = ("hate", "harassment", "sexual", "sexual_minors", "violence", "self_harm", "spam", "illegal_goods")


class HashtagDetector(Detector):
    """'#hate' scores hate 0.95, '#spam' spam 0.95, and so on; '#boom' raises."""

    name = "hashtag"
    version = "h1"

    @property
    def categories(self) -> tuple[str, ...]:
        return CATEGORIES

    def detect(self, item: ContentItem) -> list[Signal]:
        if "#boom" in item.text:
            raise RuntimeError("detector exploded")
        words = set(item.text.split())
        return [
            Signal(detector=self.name, detector_version=self.version, category=c,
                   score=0.95 if f"#{c}" in words else 0.01)
            for c in CATEGORIES
        ]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, policy=DEFAULT_POLICY, db_url=f"sqlite:///{tmp_path / 'referee.db'}",
                    max_body_bytes=4096, max_batch=5)


@pytest.fixture
def store(settings: Settings) -> Iterator[DecisionStore]:
    s = DecisionStore(settings.db_url)
    yield s
    s.close()


@pytest.fixture
def engine(store: DecisionStore) -> Iterator[Engine]:
    with Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector()], sink=store) as e:
        yield e


@pytest.fixture
def app(settings: Settings, engine: Engine, store: DecisionStore) -> FastAPI:
    return create_app(settings, engine=engine, store=store)


@pytest.fixture
def keys(store: DecisionStore) -> dict[str, str]:
    return {
        "moderate": store.create_key("mod", ["moderate"]),
        "read": store.create_key("reader", ["read"]),
        "admin": store.create_key("root", ["admin"]),
        "both": store.create_key("svc", ["moderate", "read"]),
    }


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def groups() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The process groups this test started; each is killed whatever the test's outcome."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
