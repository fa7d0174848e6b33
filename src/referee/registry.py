"""``Registry[T]``: plugins found by name, handed around as a value.

A policy names detectors (``lexicon``, ``classifier``); a registry maps those
names to classes, from referee's own entry points (group
``referee.detectors``) or from third-party packages that declare the same
group. The core never imports a plugin directly, so a broken plugin fails
loudly, by name, only when a policy asks for it.

There is no module-level registry: ``build_engine`` takes one (by default
the one built from entry points), and tests build their own, so nothing is
patched behind anybody's back. ``freeze()`` ends registration once a
process has wired itself up.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from referee.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named classes of one base: ``Registry[type[Detector]]("detector", base_cls=Detector)``."""

    def __init__(self, kind: str, base_cls: type | None = None, group: str | None = None) -> None:
        self.kind = kind
        self.base_cls = base_cls
        self.group = group
        self._items: dict[str, T | str] = {}
        self._frozen = False
        self._entry_points_loaded = group is None

    def register(self, name: str, obj: T | str) -> None:
        """Register a class, or a lazy ``"module:attr"`` placeholder loaded on first use."""
        if self._frozen:
            raise ConfigError(f"the {self.kind} registry is frozen; register {name!r} before the engine is built")
        if name in self._items and self._items[name] != obj:
            raise ConfigError(f"{self.kind} {name!r} is registered twice; rename one of them")
        if not isinstance(obj, str):
            self._check(name, obj)
        self._items[name] = obj

    def freeze(self) -> "Registry[T]":
        self._load_entry_points()
        self._frozen = True
        return self

    @property
    def frozen(self) -> bool:
        return self._frozen

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name not in self._items:
            raise ConfigError(self.unknown_message(name))
        obj = self._items[name]
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            try:
                loaded = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"{self.kind} {name!r} could not be loaded from {obj!r}: {exc}") from exc
            self._check(name, loaded)
            self._items[name] = loaded
            return loaded  # type: ignore[no-any-return]
        return obj

    def unknown_message(self, name: str) -> str:
        choices = self.names()
        close = difflib.get_close_matches(name, choices, n=1) or difflib.get_close_matches(
            name.lower(), choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"Unknown {self.kind} {name!r}.{hint} Available: {', '.join(choices) or '(none)'}"

    def _check(self, name: str, obj: object) -> None:
        if self.base_cls is not None and not (isinstance(obj, type) and issubclass(obj, self.base_cls)):
            raise ConfigError(f"{self.kind} {name!r} must be a subclass of {self.base_cls.__name__}, got {obj!r}")

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group or ""):
            self._items.setdefault(ep.name, ep.value)

    @classmethod
    def of(cls, kind: str, items: Iterable[tuple[str, T]], base_cls: type | None = None) -> "Registry[T]":
        """A registry of exactly these items, no entry points (tests, embedding)."""
        registry: Registry[T] = cls(kind, base_cls=base_cls)
        for name, obj in items:
            registry.register(name, obj)
        return registry
