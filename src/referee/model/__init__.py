"""The values that flow through referee: item → signals → decision.

Frozen pydantic models with no I/O, so every other part of referee can import
them and nothing here imports anything of referee but ``errors`` and ``ids``.
The same shapes are the HTTP API's JSON and the decision log's payloads.

- ``item``: a ContentItem made of typed parts (text, image, audio), each with a part id.
- ``signal``: what a detector says about an item, with evidence that names the part.
- ``decision``: what the policy made of the signals, and the log's record of it.
"""

from referee.model.base import utcnow
from referee.model.decision import (
    Action,
    Decision,
    Reason,
    Record,
    SignalRef,
    StageRun,
)
from referee.model.item import (
    KNOWN_SURFACES,
    MAX_BLOB_BYTES,
    MAX_TEXT_CHARS,
    AudioPart,
    ContentItem,
    Derivation,
    ImagePart,
    MediaPart,
    Part,
    PartKind,
    TextPart,
    TimeSegment,
)
from referee.model.signal import DetectorFailure, Evidence, Signal

__all__ = [
    "KNOWN_SURFACES",
    "MAX_BLOB_BYTES",
    "MAX_TEXT_CHARS",
    "Action",
    "AudioPart",
    "ContentItem",
    "Decision",
    "Derivation",
    "DetectorFailure",
    "Evidence",
    "ImagePart",
    "MediaPart",
    "Part",
    "PartKind",
    "Reason",
    "Record",
    "Signal",
    "SignalRef",
    "StageRun",
    "TextPart",
    "TimeSegment",
    "utcnow",
]
