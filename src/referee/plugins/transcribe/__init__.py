"""Transcription of audio parts into time-coded ``transcript`` text parts (faster-whisper; docs/media.md)."""

from referee.plugins.transcribe.detector import TranscribeConfig, TranscribeDetector

__all__ = ["TranscribeConfig", "TranscribeDetector"]
