"""Nudity in images from an ONNX object detector (NudeNet's model: optional extra, AGPL-3.0; docs/media.md)."""

from referee.plugins.nudity.detector import NudityConfig, NudityDetector

__all__ = ["NudityConfig", "NudityDetector"]
