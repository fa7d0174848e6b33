"""The frozen base every value of referee shares."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Self

from pydantic import BaseModel, ConfigDict


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


@functools.cache
def _cached_properties(cls: type) -> tuple[str, ...]:
    """Names of a model class's cached properties, found once per class."""
    return tuple(name for klass in cls.__mro__ for name, attr in vars(klass).items()
                 if isinstance(attr, functools.cached_property))
