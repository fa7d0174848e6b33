"""The shadow store over SQL: shadow decisions, experiment exposures and experiment configurations.

A candidate's decisions go to ``shadow_decisions`` and nowhere else: this class
never touches ``decisions``, so nothing that reads the log (enforcement, review
sync, the audit chain, statements of reasons, the transparency report) can see them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select

from referee.errors import StoreError
from referee.model import Action, Decision, utcnow
from referee.store.protocols import Exposure, ShadowDecision
from referee.store.sql.bulk import RawJSON
from referee.store.sql.database import Database
from referee.store.sql.shadow_tables import (
    experiment_exposures,
    experiments,
    shadow_decisions,
)

_s = shadow_decisions
_e = experiment_exposures


class SQLShadowStore:
    """``ShadowStore`` on the store's database (``SQLShadowStore(store.db)``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- shadow decisions ------------------------------------------------------
    def add_shadow(self, rows: Sequence[ShadowDecision]) -> int:
        if not rows:
            return 0
        values = [_shadow_row(r) for r in rows]
        with self._db.write() as conn:
            # RETURNING counts what was new on both dialects (an executemany's rowcount does not).
            return len(conn.execute(self._db.insert_ignoring_duplicates(_s).returning(_s.c.shadow_id), values).all())

    def shadow_decisions(self, candidate_id: str, since: datetime | None = None,
                         until: datetime | None = None) -> list[ShadowDecision]:
        query = select(_s.c.candidate_id, _s.c.champion_decision_id, _s.c.champion_action, _s.c.decision).where(
            _s.c.candidate_id == candidate_id).order_by(_s.c.created_at, _s.c.shadow_id)
        if since is not None:
            query = query.where(_s.c.created_at >= _utc(since))
        if until is not None:
            query = query.where(_s.c.created_at < _utc(until))
        with self._db.read() as conn:
            found = conn.execute(query).all()
        return [ShadowDecision(candidate_id=r.candidate_id, champion_decision_id=r.champion_decision_id,
                               champion_action=Action(r.champion_action),
                               decision=Decision.model_validate(r.decision)) for r in found]

    def shadow_candidates(self) -> list[str]:
        with self._db.read() as conn:
            return list(conn.execute(select(_s.c.candidate_id).distinct().order_by(_s.c.candidate_id)).scalars())

    # -- experiments -----------------------------------------------------------
    def register_experiment(self, name: str, config: dict[str, Any]) -> None:
        with self._db.write() as conn:
            stored = conn.execute(select(experiments.c.config).where(experiments.c.name == name)).scalar()
            if stored is None:
                conn.execute(insert(experiments).values(name=name, config=config, created_at=utcnow()))
                return
        check_same_experiment(name, stored, config)

    def experiment_config(self, name: str) -> dict[str, Any] | None:
        with self._db.read() as conn:
            found: dict[str, Any] | None = conn.execute(
                select(experiments.c.config).where(experiments.c.name == name)).scalar()
        return found

    def log_exposures(self, rows: Sequence[Exposure]) -> int:
        if not rows:
            return 0
        values = [{**r.model_dump(), "ts": _utc(r.ts)} for r in rows]
        with self._db.write() as conn:
            return len(conn.execute(self._db.insert_ignoring_duplicates(_e).returning(_e.c.unit), values).all())

    def exposures(self, experiment: str, since: datetime | None = None,
                  until: datetime | None = None) -> list[Exposure]:
        query = select(_e).where(_e.c.experiment == experiment).order_by(_e.c.ts, _e.c.unit, _e.c.item_id)
        if since is not None:
            query = query.where(_e.c.ts >= _utc(since))
        if until is not None:
            query = query.where(_e.c.ts < _utc(until))
        with self._db.read() as conn:
            found = conn.execute(query).all()
        return [Exposure(experiment=r.experiment, unit=r.unit, arm=r.arm, item_id=r.item_id,
                         decision_id=r.decision_id, ts=_utc(r.ts)) for r in found]

    def erase_unit(self, unit: str) -> int:
        with self._db.write() as conn:
            return len(conn.execute(delete(_e).where(_e.c.unit == unit).returning(_e.c.item_id)).all())


def check_same_experiment(name: str, stored: dict[str, Any], config: dict[str, Any]) -> None:
    """Raise StoreError when an experiment's stored configuration differs from ``config``."""
    if _canonical(stored) != _canonical(config):
        raise StoreError(
            f"experiment {name!r} is already running with another configuration (arms, shares, salt or "
            "unit changed); an experiment whose arms change mid-run cannot be analysed: give the new "
            "configuration a new name"
        )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def shadow_id(candidate_id: str, champion_decision_id: str) -> str:
    """One row per candidate and champion decision (two candidates with one configuration
    make the same decision ids, so the candidate's decision id alone is not a key)."""
    return hashlib.sha256(f"{candidate_id}\x00{champion_decision_id}".encode()).hexdigest()


def _shadow_row(r: ShadowDecision) -> dict[str, Any]:
    d = r.decision
    return {
        "shadow_id": shadow_id(r.candidate_id, r.champion_decision_id),
        "candidate_id": r.candidate_id,
        "item_id": d.item_id,
        "champion_decision_id": r.champion_decision_id,
        "champion_action": r.champion_action.value,
        "decision": RawJSON(d.json_bytes.decode()),
        "action": d.action.value,
        "categories": list(d.categories),
        "surface": d.surface,
        "country": d.country,
        "created_at": _utc(d.created_at),
    }


def _utc(value: datetime) -> datetime:
    # SQLite keeps no offset: every stored time is UTC, so comparisons hold.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.utcoffset() == timedelta(0) else value.astimezone(UTC)
