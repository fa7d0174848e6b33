"""One way to build an engine: a frozen, serialisable ``EngineConfig`` → ``build_engine``.

The CLI, the HTTP service, stream workers and Spark executors all build their
engine here, from a config that travels as JSON: a worker in another process
(or on another machine) rebuilds exactly the engine its parent described.
Settings and the environment are read in one place only (``settings.py``,
which turns them into an ``EngineConfig``); nothing below reads either.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from referee.detectors.base import Detector, detector_registry
from referee.engine import Engine
from referee.engine.media import MediaResolver
from referee.engine.observe import Observer
from referee.errors import ConfigError
from referee.policy import Policy
from referee.records.accounts import AccountBook
from referee.registry import Registry
from referee.store import DecisionStore


class EngineConfig(BaseModel):
    """Everything an engine is made of. ``id`` names the parts that can change a
    decision (the detector selection), and is part of every decision's identity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: Path = Field(description="Policy YAML file.")
    detectors: tuple[str, ...] | None = Field(default=None, description="Only these of the policy's detectors.")
    store_url: str | None = Field(default=None, description="Decision store URL; None moderates without storing.")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Items per detector batch.")
    max_batch: int = Field(default=256, ge=1, le=4096, description="Most items the batcher merges into one call.")
    batch_wait_ms: float = Field(default=0.0, ge=0, le=100, description="How long the batcher waits for more.")
    max_workers: int | None = Field(default=None, ge=1, le=256, description="Detector thread pool size.")
    media_allow_hosts: tuple[str, ...] = Field(
        default=(), description="Hosts media URLs may be fetched from; none by default (fetching off).")
    media_max_bytes: int = Field(default=20_000_000, ge=1, description="Largest media fetched or read.")

    @field_validator("detectors", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @property
    def id(self) -> str:
        decisive = {"detectors": sorted(self.detectors) if self.detectors is not None else None}
        payload = json.dumps(decisive, sort_keys=True).encode()
        return "cfg_" + hashlib.sha256(payload).hexdigest()[:16]


def build_engine(config: EngineConfig, registry: Registry[type[Detector]] | None = None,
                 observer: Observer | None = None) -> Engine:
    """The engine ``config`` describes, with its store open (closed with the engine). An
    ``observer`` (``referee.obs.Metrics``) is not part of the config: watching an engine
    changes no decision, and each process brings its own."""
    policy = Policy.from_file(config.policy)
    store = DecisionStore(config.store_url) if config.store_url else None
    try:
        engine = Engine.from_policy(
            policy,
            sink=store,
            only=config.detectors,
            registry=registry or detector_registry(),
            batch_size=config.batch_size,
            max_workers=config.max_workers,
            config_id=config.id,
            observer=observer,
        )
    except BaseException:
        if store is not None:
            store.close()
        raise
    engine.config = config
    engine.media = MediaResolver(config.media_allow_hosts, max_bytes=config.media_max_bytes)
    if store is not None:
        engine.owned.append(store)
        review = policy.document.review
        if review is not None and review.strikes is not None:
            # Suspended authors' items are decided with their threshold's item_action (docs/review.md).
            engine.accounts = AccountBook(store, policy)
    if not engine.detectors:
        engine.close()
        raise ConfigError(f"policy {policy.id!r} built no detector (all optional ones are missing): "
                          "nothing would inspect the content; install a model or configure a detector")
    return engine
