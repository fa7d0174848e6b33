"""What the engine tells an observer: how long each detector and stage took, and what it decided.

The engine knows nothing of Prometheus or logs; it calls an ``Observer`` at a
few points and the edge decides what to do with the figures (``referee.obs``
turns them into metrics). The calls are per batch and per detector, never per
item, and the default ``NO_OBSERVER`` does nothing, so an engine nobody
watches pays two clock reads and a few empty calls per batch
(``benchmarks/bench_engine.py``; docs/observability.md has the figures).

An observer is called from the engine's threads (the caller's, the detector
pool's, the async pool's) and must not raise: the engine does not catch what it
throws, so a broken observer would break moderation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from referee.model import Decision


class Observer(Protocol):
    """Receives the engine's timings and decisions."""

    def on_detector(self, name: str, stage: str, seconds: float, n_items: int, failed: int,
                    timed_out: bool) -> None:
        """One detector ran over ``n_items`` views of one batch in ``seconds`` (its own time; for a
        timeout, how long the engine waited); ``failed`` of them got a ``DetectorFailure``."""
        ...

    def on_stage(self, stage: str, seconds: float, n_items: int) -> None:
        """One plan stage ran its detectors over ``n_items`` items in ``seconds`` (wall time)."""
        ...

    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        """Decisions the engine has just made and stored (not a head it answered again)."""
        ...


class NoObserver:
    """The default: ignores everything."""

    def on_detector(self, name: str, stage: str, seconds: float, n_items: int, failed: int,
                    timed_out: bool) -> None:
        return None

    def on_stage(self, stage: str, seconds: float, n_items: int) -> None:
        return None

    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        return None


#: The shared do-nothing observer (it holds no state).
NO_OBSERVER: Observer = NoObserver()
