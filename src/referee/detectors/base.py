"""The detector contract.

A detector reads items and returns signals; it never decides. Detectors see
batches (``detect_many``) so a model can vectorise; the engine adds timeouts
and turns exceptions into recorded failures, so a detector may simply raise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from referee.model import ContentItem, Signal
from referee.registry import Registry


class DetectorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    version: str
    categories: tuple[str, ...]


class Detector(ABC):
    #: The name a policy uses for this detector.
    name: ClassVar[str]
    #: Changes whenever the detector can score the same item differently.
    version: str = "0"
    #: Seconds the engine waits for one batch before recording a timeout.
    timeout_s: float = 5.0
    #: True for bounded CPU work in this process (no I/O, no model server): the engine
    #: then runs it in its own thread instead of the detector pool and checks the
    #: timeout afterwards. Anything that can block must leave this False.
    runs_inline: ClassVar[bool] = False

    @property
    @abstractmethod
    def categories(self) -> tuple[str, ...]:
        """The policy categories this detector can emit signals for."""

    @abstractmethod
    def detect(self, item: ContentItem) -> list[Signal]:
        """Signals for one item; categories with nothing to report may be omitted."""

    def detect_many(self, items: Sequence[ContentItem]) -> list[list[Signal]]:
        """Signals for a batch, in order. Override to vectorise."""
        return [self.detect(item) for item in items]

    def info(self) -> DetectorInfo:
        return DetectorInfo(name=self.name, version=self.version, categories=tuple(self.categories))

    @classmethod
    def from_policy(cls, policy: Any, config: dict[str, Any]) -> "Detector":
        """Build the detector from the policy's ``detectors.<name>`` block.

        ``policy`` is a :class:`referee.policy.Policy`; it is typed loosely here
        because detectors sit beside policy, not above it.
        """
        raise NotImplementedError(f"detector {cls.name!r} cannot be built from a policy file")


#: Detector classes by name; referee's own come from entry points in pyproject.toml.
detectors: Registry[type[Detector]] = Registry("detector", group="referee.detectors")

#: Keys any ``detectors.<name>`` block may carry that belong to the caller, not the detector.
COMMON_KEYS = ("optional", "timeout_s")


def build_detector(name: str, policy: Any) -> Detector:
    """The detector named ``name``, configured by the policy's ``detectors.<name>`` block.

    ``timeout_s`` is applied here; ``optional`` is the caller's business (the
    engine skips an optional detector whose model is missing), so neither
    reaches the detector's own settings.
    """
    config = dict(policy.detector_config(name))
    timeout = config.pop("timeout_s", None)
    config.pop("optional", None)
    detector = detectors.get(name).from_policy(policy, config)
    if timeout is not None:
        detector.timeout_s = float(timeout)
    return detector
