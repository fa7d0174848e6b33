"""Detectors turn a content item into signals."""

from referee.detectors.base import Detector, DetectorInfo, detectors

__all__ = ["Detector", "DetectorInfo", "detectors"]
