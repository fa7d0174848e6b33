"""Plugins found by name.

A policy names detectors (``lexicon``, ``classifier``); the registry maps those
names to classes, from referee's own entry points (group ``referee.detectors``)
or from third-party packages that declare the same group. The core never
imports a plugin directly, so a broken plugin fails loudly, by name, only when
a policy asks for it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from referee.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, T | str] = {}

    def register(self, name: str, obj: T | str) -> None:
        """Register an object, or a lazy ``"module:attr"`` placeholder."""
        if name in self._items and self._items[name] != obj:
            raise ConfigError(f"{self.kind} {name!r} is registered twice; rename one of them")
        self._items[name] = obj

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name not in self._items:
            raise ConfigError(f"Unknown {self.kind} {name!r}. Available: {', '.join(self.names()) or '(none)'}")
        obj = self._items[name]
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            try:
                obj = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"{self.kind} {name!r} could not be loaded from {self._items[name]!r}: {exc}") from exc
            self._items[name] = obj
        return obj

    def _load_entry_points(self) -> None:
        if self.group is None:
            return
        for ep in entry_points(group=self.group):
            self._items.setdefault(ep.name, ep.value)
