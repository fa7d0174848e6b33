"""The lexicon detector: obfuscation-aware term lists (docs/lexicon.md)."""

from referee.plugins.lexicon.detector import LexiconConfig, LexiconDetector

__all__ = ["LexiconConfig", "LexiconDetector"]
