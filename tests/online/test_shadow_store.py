"""The shadow store (migration 0005): shadow decisions, exposures and experiment configs, the same
in memory, on SQLite and on PostgreSQL; and none of it in the decision log."""

from __future__ import annotations

from datetime import timedelta

import pytest

from referee.errors import StoreError
from referee.model import Action
from referee.store import MemoryStore, Store
from referee.store.protocols import Exposure, ShadowDecision, ShadowStore
from referee.store.sql.shadow import SQLShadowStore
from tests.records.conftest import T0, decision, item
from tests.store.conftest import pg_url, store  # noqa: F401  (fixtures)


def shadow_of(s: Store | MemoryStore) -> ShadowStore:
    return s.shadow if isinstance(s, MemoryStore) else SQLShadowStore(s.db)


def row(n: int, candidate: str = "cand", action: Action = Action.remove, minutes: int = 0,
        country: str | None = "DE") -> ShadowDecision:
    it = item(n, country=country)
    cand = decision(it, action=action, created_at=T0 + timedelta(minutes=minutes))
    return ShadowDecision(candidate_id=candidate, champion_decision_id=f"champ-{n}", champion_action=Action.allow,
                          decision=cand)


def test_shadow_decisions_round_trip_once_each(store):  # noqa: F811
    shadow = shadow_of(store)
    assert shadow.add_shadow([row(1), row(2, minutes=5), row(3, candidate="other")]) == 3
    assert shadow.add_shadow([row(1), row(4, minutes=10)]) == 1  # row 1 again: skipped
    found = shadow.shadow_decisions("cand")
    assert [r.decision.item_id for r in found] == ["item-1", "item-2", "item-4"]
    assert found[0] == row(1)
    assert [r.decision.item_id for r in shadow.shadow_decisions("cand", since=T0 + timedelta(minutes=5),
                                                               until=T0 + timedelta(minutes=10))] == ["item-2"]
    assert shadow.shadow_candidates() == ["cand", "other"]
    # Two candidates with one configuration make the same decision ids: both are kept.
    same = row(1).model_copy(update={"candidate_id": "twin"})
    assert shadow.add_shadow([same]) == 1
    # Nothing of it is in the decision log.
    assert list(store.log.records()) == []


def test_exposures_one_per_unit_experiment_and_item(store):  # noqa: F811
    shadow = shadow_of(store)
    e = {"experiment": "x", "arm": "control", "decision_id": "d1", "ts": T0}
    first = [Exposure(unit="u1", item_id="i1", **e), Exposure(unit="u1", item_id="i2", **e),
             Exposure(unit="u2", item_id="i1", **{**e, "arm": "treatment", "ts": T0 + timedelta(hours=1)})]
    assert shadow.log_exposures(first) == 3
    assert shadow.log_exposures([Exposure(unit="u1", item_id="i1", **{**e, "arm": "treatment"})]) == 0
    assert shadow.exposures("x") == first
    assert shadow.exposures("x", since=T0 + timedelta(minutes=1)) == first[2:]
    assert shadow.exposures("y") == []
    # An author's erasure forgets their exposures, and only theirs.
    assert shadow.erase_unit("u1") == 2
    assert shadow.exposures("x") == first[2:]


def test_an_experiment_keeps_its_configuration(store):  # noqa: F811
    shadow = shadow_of(store)
    config = {"name": "x", "salt": "s", "arms": [{"name": "control", "share": 0.5}, {"name": "t", "share": 0.5}]}
    assert shadow.experiment_config("x") is None
    shadow.register_experiment("x", config)
    shadow.register_experiment("x", dict(reversed(config.items())))  # the same, keys in another order
    assert shadow.experiment_config("x") == config
    with pytest.raises(StoreError, match="new name"):
        shadow.register_experiment("x", {**config, "salt": "t"})
