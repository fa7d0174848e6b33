"""The detector contract: the one seam between referee and every detector.

A detector reads items and returns signals; it never decides. It declares
which part kinds it ``reads`` and gets only those: the engine hands a text
detector one text part at a time (a view of the item holding just that part),
so evidence offsets always index one part, and a detector written for plain
text works unchanged on a playlist's title, its description and the OCR text
of its cover. A detector that wants the whole item at once (an LLM judging a
title with its description) sets ``per_part = False``.

Detectors see batches (``detect_many``) so a model can vectorise; the engine
adds timeouts and turns exceptions into recorded failures, so a detector may
simply raise. A detector that turns media into text (OCR, transcription) sets
``derives = True`` and returns text parts from ``derive_many``; later stages
of the plan read them like any other text.

Settings are typed: each detector names a pydantic ``config_model`` (extra
keys forbidden), which the policy loader validates its ``detectors.<name>``
block against, so a misspelt key is a lint error with a line number, not a
surprise at the first ``moderate``.

This module imports only the model, so plugins (lexicon, classifier, LLM...)
depend on it and nothing here depends on them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from referee.errors import ConfigError
from referee.model import ContentItem, Signal, TextPart
from referee.registry import Registry

#: Keys any ``detectors.<name>`` block may carry that belong to the engine, not the detector.
COMMON_KEYS = ("optional", "timeout_s")


class DetectorConfig(BaseModel):
    """Settings every detector accepts. Subclass it for a detector's own settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float | None = Field(default=None, gt=0, le=600, description="Seconds for one batch.")
    optional: bool = Field(default=False, description="Skip with a warning when its model is not installed.")


class DetectorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    version: str
    categories: tuple[str, ...]
    reads: tuple[str, ...]


class BuildContext:
    """What a detector may know about the policy it is built for: its categories
    (signals outside them are dropped) and the folder relative paths are read from."""

    def __init__(self, policy_id: str, categories: Sequence[str], base_dir: Path, policy: Any = None) -> None:
        self.policy_id = policy_id
        self.categories = tuple(categories)
        self.base_dir = base_dir
        #: The policy itself, for detectors that read more of it (an LLM stage reads the
        #: category descriptions). Typed loosely: the contract sits below ``policy``.
        self.policy = policy


class Example(BaseModel):
    """A detector's own example for the conformance suite: this item scores at least
    ``min_score`` in ``category`` (or, with ``category=None``, raises no signal above 0.5)."""

    model_config = ConfigDict(frozen=True)
    item: ContentItem
    category: str | None
    min_score: float = 0.5


class Detector(ABC):
    #: The name a policy uses for this detector.
    name: ClassVar[str]
    #: The settings it accepts in ``detectors.<name>``.
    config_model: ClassVar[type[DetectorConfig]] = DetectorConfig
    #: Part kinds it reads; parts of other kinds never reach it.
    reads: ClassVar[frozenset[str]] = frozenset({"text"})
    #: One part at a time (True) or the whole item, filtered to ``reads`` (False).
    per_part: ClassVar[bool] = True
    #: Turns parts into derived text parts (``derive_many``) instead of, or as well as, scoring.
    derives: ClassVar[bool] = False
    #: Reads the signals of earlier plan stages (``detect_many(items, prior)``).
    uses_prior_signals: ClassVar[bool] = False
    #: True for bounded CPU work in this process (no I/O, no model server): the engine
    #: then runs it in the calling thread instead of the detector pool and checks the
    #: timeout afterwards. Anything that can block must leave this False.
    runs_inline: ClassVar[bool] = False
    #: Changes whenever the detector can score the same item differently.
    version: str = "0"
    #: Seconds the engine waits for one batch before recording a timeout.
    timeout_s: float = 5.0

    @property
    @abstractmethod
    def categories(self) -> tuple[str, ...]:
        """The policy categories this detector can emit signals for."""

    @abstractmethod
    def detect(self, item: ContentItem) -> list[Signal]:
        """Signals for one item; categories with nothing to report may be omitted."""

    def detect_many(
        self, items: Sequence[ContentItem], prior: Sequence[Sequence[Signal]] | None = None
    ) -> list[list[Signal]]:
        """Signals for a batch, in order. Override to vectorise. ``prior`` (the earlier
        stages' signals per item) is passed only to detectors with ``uses_prior_signals``."""
        return [self.detect(item) for item in items]

    def derive_many(self, items: Sequence[ContentItem]) -> list[list[TextPart]]:
        """Derived text parts per item (OCR text, a transcript); ``derives`` detectors override it.
        Each part's ``derived`` names the part it came from."""
        return [[] for _ in items]

    def close(self) -> None:
        """Release threads, sessions, connections. Idempotent; the engine calls it on close."""

    def info(self) -> DetectorInfo:
        return DetectorInfo(name=self.name, version=self.version, categories=tuple(self.categories),
                            reads=tuple(sorted(self.reads)))

    @classmethod
    def build(cls, config: DetectorConfig, context: BuildContext) -> "Detector":
        """Build the detector from its validated settings. The default hands the
        detector's own settings (without the common keys) to ``from_policy``."""
        settings = config.model_dump(exclude=set(COMMON_KEYS), exclude_unset=True)
        return cls.from_policy(context.policy if context.policy is not None else context, settings)

    @classmethod
    def from_policy(cls, policy: Any, config: dict[str, Any]) -> "Detector":
        raise NotImplementedError(f"detector {cls.name!r} implements neither build() nor from_policy()")

    @classmethod
    def examples(cls) -> list[Example]:
        """A few items the conformance suite checks this detector against."""
        return []


def detector_registry(extra: Mapping[str, type[Detector]] | None = None) -> Registry[type[Detector]]:
    """A new registry of every detector installed (entry-point group ``referee.detectors``),
    plus ``extra``: an embedding application's own detectors, a test's fakes.

    Each call makes a new registry, and nothing is registered into the process: an
    engine, a CLI command or an app sees the detectors of the registry it was handed
    (``Engine.from_policy(..., registry=)``, ``build_engine(config, registry)``,
    ``create_app(..., registry=)``, the CLI's ``app(obj=registry)``), never those
    another caller added."""
    registry: Registry[type[Detector]] = Registry("detector", base_cls=Detector, group="referee.detectors")
    for name, cls in (extra or {}).items():
        registry.register(name, cls)
    return registry


def validate_config(cls: type[Detector], raw: dict[str, Any] | None) -> DetectorConfig:
    """The detector's settings as its config model; pydantic's ValidationError on bad keys."""
    return cls.config_model.model_validate(raw or {})


def build_detector(name: str, policy: Any, registry: Registry[type[Detector]] | None = None) -> Detector:
    """The detector ``name`` built from the policy's ``detectors.<name>`` block
    (validated against its ``config_model``); ``timeout_s`` is applied here,
    ``optional`` is the caller's business."""
    cls = (registry or detector_registry()).get(name)
    try:
        config = validate_config(cls, policy.detector_config(name))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"detectors.{name}.{field}: {err['msg']} (got {err.get('input')!r}); "
                          f"settings of {name!r}: {', '.join(cls.config_model.model_fields)}") from exc
    context = BuildContext(policy.id, policy.categories, policy.base_dir, policy)
    detector = cls.build(config, context)
    if config.timeout_s is not None:
        detector.timeout_s = float(config.timeout_s)
    return detector
