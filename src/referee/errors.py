"""The one error tree of referee.

Every error a user can cause says which field or line is wrong, what value was
seen, and how to fix it. Foreign exceptions (pydantic, SQLAlchemy, onnxruntime)
are mapped to one of these at the edge with ``raise ... from exc`` so callers
only ever catch ``RefereeError``.

    RefereeError
    ├── ConfigError            bad settings or CLI arguments
    ├── PolicyError            a policy file that does not load or lint
    ├── InputError             a content item / dataset row that is malformed
    ├── DetectorError          a detector that failed (the engine records it)
    │   └── DetectorTimeout
    ├── ModelError             a model directory that is missing or broken
    ├── StoreError             the decision store could not read or write
    └── AuthError              missing or insufficient API key
"""

from __future__ import annotations

from typing import Any


class RefereeError(Exception):
    """Base of every error referee raises on purpose."""


class ConfigError(RefereeError):
    pass


class PolicyError(RefereeError):
    """A policy problem; ``problems`` holds every one found, not only the first."""

    def __init__(self, message: str, problems: list[Any] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class InputError(RefereeError):
    """Malformed input. ``where`` names the line or field (``line 3``, ``items[2].text``)."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.reason = message


class DetectorError(RefereeError):
    pass


class DetectorTimeout(DetectorError):
    pass


class ModelError(RefereeError):
    pass


class StoreError(RefereeError):
    pass


class AuthError(RefereeError):
    pass
