"""The classifier tests' tiny encoder, for the improvement loop's training runs."""

from tests.classifier.conftest import tiny_encoder_dir, tiny_factory

__all__ = ["tiny_encoder_dir", "tiny_factory"]
