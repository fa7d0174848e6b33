"""referee: content safety you can explain.

    item -> detectors -> signals -> policy -> decision -> store / API

The public surface is what ``__all__`` lists; tests pin it.
"""

from referee.engine import Engine, decide
from referee.errors import (
    AuthError,
    ConfigError,
    DetectorError,
    DetectorTimeout,
    InputError,
    ModelError,
    PolicyError,
    RefereeError,
    StoreError,
)
from referee.model import Action, ContentItem, Decision, DetectorFailure, Evidence, MediaRef, Reason, Signal
from referee.policy import Policy
from referee.store import DecisionStore

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AuthError",
    "ConfigError",
    "ContentItem",
    "Decision",
    "DecisionStore",
    "DetectorError",
    "DetectorFailure",
    "DetectorTimeout",
    "Engine",
    "Evidence",
    "InputError",
    "MediaRef",
    "ModelError",
    "Policy",
    "PolicyError",
    "Reason",
    "RefereeError",
    "Signal",
    "StoreError",
    "decide",
]
