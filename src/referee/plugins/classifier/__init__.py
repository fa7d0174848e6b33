"""The text classifier detector: MiniLM + a multi-label head, served by ONNX Runtime (docs/classifier.md)."""

from referee.plugins.classifier.detector import ClassifierConfig, ClassifierDetector

__all__ = ["ClassifierConfig", "ClassifierDetector"]
