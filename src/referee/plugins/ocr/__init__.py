"""OCR of image parts into derived ``ocr`` text parts (RapidOCR, offline; docs/media.md)."""

from referee.plugins.ocr.detector import OcrConfig, OcrDetector

__all__ = ["OcrConfig", "OcrDetector"]
