"""The frozen base every value of referee shares."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict


M = TypeVar("M", bound=BaseModel)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        # Values cached from the fields (functools.cached_property) are safe because
        # the model is frozen; a copy with other fields must compute its own.
        copied = super().model_copy(update=update, deep=deep)
        for name in _cached_properties(type(self)):
            copied.__dict__.pop(name, None)
        return copied


def assemble(cls: type[M], **values: Any) -> M:
    """An instance from values that are already valid, every field given.

    ``decide`` builds a Decision for every item from parts validated on the way
    in; pydantic's ``model_construct`` still walks every field in Python (40 %
    of ``decide`` with the Decision's 25 fields, cProfile). This sets the
    instance dict directly, which is what ``model_construct`` ends up doing."""
    missing = _field_names(cls) - values.keys()
    if missing:
        raise TypeError(f"{cls.__name__}: assemble() needs every field; missing {sorted(missing)}")
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


@functools.cache
def _field_names(cls: type[BaseModel]) -> frozenset[str]:
    return frozenset(cls.__pydantic_fields__)


@functools.cache
def _cached_properties(cls: type) -> tuple[str, ...]:
    """Names of a model class's cached properties, found once per class."""
    return tuple(name for klass in cls.__mro__ for name, attr in vars(klass).items()
                 if isinstance(attr, functools.cached_property))
