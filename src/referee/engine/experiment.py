"""Experiments: which arm a unit is in, and what each arm changes. Pure: no I/O, no clock.

An ``Experiment`` splits traffic into arms by *unit*: the author (default), so one
person sees one arm however many items they post, or the item. A unit's arm is
``sha256(salt, unit)`` read as a number in [0, 1) and placed on the arms' shares
laid end to end: deterministic (the same unit gets the same arm in every process,
on every machine, with no table of assignments), independent across experiments
(each has its own salt), and changed wholesale by changing the salt.

An arm changes the engine: another policy file, another detector selection, and
overrides applied to its policy document (rule thresholds by rule id, detector
settings such as a classifier's model directory, the score band that gates a
cascade stage). ``derive_policy`` applies the overrides to the YAML's data; the
caller writes the result as a policy file, so every arm is still an engine built
from an ``EngineConfig`` and its decisions name the policy content they ran under.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from referee.errors import ConfigError
from referee.model import ContentItem

__all__ = ["Arm", "CascadeBand", "Experiment", "assign", "bucket", "derive_policy"]

_NAME = r"^[A-Za-z0-9_.:-]+$"


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CascadeBand(_Config):
    """The score band ``[min, max)`` of earlier signals that sends an item to plan stage ``stage``."""

    stage: str = Field(min_length=1)
    min: float = Field(ge=0.0, le=1.0)
    max: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> CascadeBand:
        if self.min > self.max:
            raise ValueError(f"cascade_band.min ({self.min}) must not exceed cascade_band.max ({self.max})")
        return self


class Arm(_Config):
    """One arm: its share of units and what its engine changes against the experiment's base."""

    name: str = Field(min_length=1, max_length=64, pattern=_NAME)
    share: float = Field(gt=0.0, le=1.0)
    policy: Path | None = Field(default=None, description="Another policy file; the base's when omitted.")
    detectors: tuple[str, ...] | None = Field(default=None, description="Only these of the policy's detectors.")
    thresholds: dict[str, float] = Field(default_factory=dict, description="Rule id -> its threshold in this arm.")
    detector_settings: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Detector name -> settings merged over the policy's (e.g. a model dir).")
    cascade_band: CascadeBand | None = None

    @field_validator("thresholds")
    @classmethod
    def _unit_interval(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {rule: t for rule, t in value.items() if not 0.0 <= t <= 1.0}
        if bad:
            raise ValueError(f"thresholds must be between 0 and 1, got {bad}")
        return value

    @property
    def changes_policy(self) -> bool:
        """Whether the arm's policy document differs from its file (and so must be derived)."""
        return bool(self.thresholds or self.detector_settings or self.cascade_band)


class Experiment(_Config):
    """A named experiment: its salt, its unit and its arms (shares summing to 1)."""

    name: str = Field(min_length=1, max_length=128, pattern=_NAME)
    salt: str = Field(min_length=1, description="Change it to re-draw every unit's arm.")
    unit: Literal["author", "item"] = "author"
    control: str | None = Field(default=None, description="The arm the others are compared with; the first if omitted.")
    arms: tuple[Arm, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        total = sum(a.share for a in self.arms)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"arm shares must sum to 1, got {total:g} ({', '.join(f'{a.name}={a.share:g}' for a in self.arms)})")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not an arm (arms: {', '.join(names)})")
        return self

    @property
    def control_arm(self) -> str:
        return self.control or self.arms[0].name

    @property
    def shares(self) -> dict[str, float]:
        return {a.name: a.share for a in self.arms}

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise ConfigError(f"experiment {self.name!r} has no arm {name!r} (arms: {', '.join(self.shares)})")

    def unit_of(self, item: ContentItem) -> str:
        """The unit an item is assigned by. An item without an author (unit ``author``) is
        its own unit, named so that it never collides with an author id."""
        if self.unit == "author" and item.author_id:
            return item.author_id
        return f"item:{item.id}" if self.unit == "author" else item.id

    def assign(self, unit: str) -> str:
        return assign(self.salt, unit, self.shares)

    def assign_item(self, item: ContentItem) -> tuple[str, str]:
        """(unit, arm) for an item."""
        unit = self.unit_of(item)
        return unit, self.assign(unit)


def bucket(salt: str, unit: str) -> float:
    """``sha256(salt NUL unit)``'s first 8 bytes as a number in [0, 1)."""
    digest = hashlib.sha256(f"{salt}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(salt: str, unit: str, shares: Mapping[str, float]) -> str:
    """The arm whose slice of [0, 1) (shares laid end to end, in order) holds the unit's bucket."""
    point = bucket(salt, unit)
    edge = 0.0
    last = ""
    for name, share in shares.items():
        edge += share
        last = name
        if point < edge:
            return name
    return last  # shares summing to 1 within rounding: the last slice ends at 1


def derive_policy(document: Mapping[str, Any], arm: Arm) -> dict[str, Any]:
    """The policy YAML's data with the arm's overrides applied (a copy).

    Every override must name something the policy has: a threshold for a rule id no
    surface or jurisdiction uses, settings for a detector the policy does not
    configure, or a band for a stage it does not plan is a ConfigError, since an
    override that silently matched nothing would make an arm identical to control."""
    data: dict[str, Any] = copy.deepcopy(dict(document))
    if arm.thresholds:
        seen: set[str] = set()
        for rule in _rules(data):
            if rule.get("id") in arm.thresholds:
                rule["threshold"] = arm.thresholds[rule["id"]]
                seen.add(rule["id"])
        missing = sorted(set(arm.thresholds) - seen)
        if missing:
            known = sorted({str(r["id"]) for r in _rules(data) if isinstance(r.get("id"), str)})
            raise ConfigError(f"arm {arm.name!r}: thresholds name rule(s) {missing} the policy does not have "
                              f"(its rules: {', '.join(known)})")
    if arm.detector_settings:
        detectors = data.setdefault("detectors", {}) or {}
        data["detectors"] = detectors
        for name, settings in arm.detector_settings.items():
            if name not in detectors:
                raise ConfigError(f"arm {arm.name!r}: detector_settings for {name!r}, which the policy does not "
                                  f"configure (its detectors: {', '.join(detectors) or 'none'})")
            detectors[name] = {**(detectors[name] or {}), **settings}
    if arm.cascade_band is not None:
        band = arm.cascade_band
        stages = {s.get("id"): s for s in data.get("plan") or [] if isinstance(s, dict)}
        stage = stages.get(band.stage)
        if stage is None:
            raise ConfigError(f"arm {arm.name!r}: cascade_band names stage {band.stage!r}, which the policy's plan "
                              f"does not have (stages: {', '.join(str(s) for s in stages) or 'no plan'})")
        when = stage.setdefault("when", {}) or {}
        stage["when"] = when
        when["band"] = {**(when.get("band") or {}), "min": band.min, "max": band.max}
    return data


def _rules(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for surface in (data.get("surfaces") or {}).values():
        found.extend(r for r in (surface or {}).get("rules") or [] if isinstance(r, dict))
    for jurisdiction in (data.get("jurisdictions") or {}).values():
        for surface in ((jurisdiction or {}).get("surfaces") or {}).values():
            found.extend(r for r in (surface or {}).get("rules") or [] if isinstance(r, dict))
    return found
