"""What a running app holds: settings, the engine and the store it moderates into.

Kept on ``app.state.referee`` rather than in module globals, so two apps (two
tests, two policies) can live in one process without seeing each other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from referee.engine import Engine
from referee.engine.batcher import Batcher
from referee.obs import Metrics
from referee.online.experiments import ExperimentRunner
from referee.settings import Settings
from referee.store import DecisionStore


@dataclass
class ServeState:
    settings: Settings
    engine: Engine
    store: DecisionStore
    #: What create_app built itself is closed on shutdown; what the caller passed in stays the caller's.
    owns_engine: bool = False
    owns_store: bool = False
    #: The service's metrics (``GET /metrics``), also the engine's observer.
    metrics: Metrics = field(default_factory=Metrics)
    #: The experiment on live traffic (``REFEREE_EXPERIMENT``): when set, the batcher hands it every
    #: batch, so each item is decided by its unit's arm; closed with the app (it is always the app's).
    experiment: ExperimentRunner | None = None
    batcher: Batcher = field(init=False)
    #: Full key -> (expires at, key id, scopes); see ``auth.KEY_CACHE_TTL_S``.
    key_cache: dict[str, tuple[float, str, frozenset[str]]] = field(default_factory=dict)
    #: Full key -> the store lookup in flight for it, shared by concurrent requests.
    key_lookups: dict[str, asyncio.Task[tuple[str, frozenset[str]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.experiment is None:
            self.batcher = self.engine.batcher(self.settings.max_batch, self.settings.batch_wait_ms)
        else:
            self.batcher = Batcher(self.experiment, self.settings.max_batch, max_wait_ms=self.settings.batch_wait_ms)

    def close(self) -> None:
        if self.experiment is not None:
            self.experiment.close()  # before the engine: its control arm may be the service's engine
        if self.owns_engine:
            self.engine.close()
        if self.owns_store:
            self.store.close()
