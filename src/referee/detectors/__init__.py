"""Detectors turn a content item into signals."""

from referee.detectors.base import Detector, DetectorInfo, build_detector, detectors

__all__ = ["Detector", "DetectorInfo", "build_detector", "detectors"]
