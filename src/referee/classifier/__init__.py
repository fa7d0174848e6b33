"""The text classifier: training, calibration, export, registry and serving.

Serving (``TextClassifier``, ``ModelRegistry``) needs only
onnxruntime, tokenizers and numpy; training and export (``referee.classifier.train``,
``referee.classifier.export``) import torch lazily and need the ``train`` extra.
"""

from referee.classifier.artifact import ModelCard, read_card
from referee.classifier.calibrate import Platt, Threshold
from referee.classifier.registry import ModelRegistry, default_root
from referee.classifier.runtime import TextClassifier
from referee.classifier.text import normalise, token_windows

__all__ = [
    "ModelCard",
    "ModelRegistry",
    "Platt",
    "TextClassifier",
    "Threshold",
    "default_root",
    "normalise",
    "read_card",
    "token_windows",
]
