"""The detector contract. Detectors themselves are plugins (``referee.plugins``), found by name."""

from referee.detectors.base import (
    BuildContext,
    Detector,
    DetectorConfig,
    DetectorInfo,
    Example,
    build_detector,
    detector_registry,
)

__all__ = ["BuildContext", "Detector", "DetectorConfig", "DetectorInfo", "Example", "build_detector",
           "detector_registry"]
