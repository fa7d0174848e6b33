"""referee: content safety you can explain.

    item (parts) -> plan of detectors -> signals -> policy -> decision -> decision log / API

The public surface is what ``__all__`` lists; tests pin it.
"""

from referee.build import EngineConfig, build_engine
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
from referee.model import (
    Action,
    AudioPart,
    ContentItem,
    Decision,
    DetectorFailure,
    Evidence,
    ImagePart,
    Reason,
    Record,
    Signal,
    StageRun,
    TextPart,
)
from referee.policy import Policy
from referee.registry import Registry
from referee.store import DecisionStore

__version__ = "0.2.0"

__all__ = [
    "Action",
    "AudioPart",
    "AuthError",
    "ConfigError",
    "ContentItem",
    "Decision",
    "DecisionStore",
    "DetectorError",
    "DetectorFailure",
    "DetectorTimeout",
    "Engine",
    "EngineConfig",
    "Evidence",
    "ImagePart",
    "InputError",
    "ModelError",
    "Policy",
    "PolicyError",
    "Reason",
    "Record",
    "RefereeError",
    "Registry",
    "Signal",
    "StageRun",
    "StoreError",
    "TextPart",
    "build_engine",
    "decide",
]
