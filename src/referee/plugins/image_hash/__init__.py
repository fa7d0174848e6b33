"""Image hash matching against banks (PDQ, MD5, SHA-256), the HMA model (docs/media.md)."""

from referee.plugins.image_hash.banks import (
           BankEntry,
           BankSet,
           BankSpec,
           read_entries,
           write_bank,
)
from referee.plugins.image_hash.detector import ImageHashConfig, ImageHashDetector
from referee.plugins.image_hash.hasher import PdqHash, pdq, pdq_dihedral
from referee.plugins.image_hash.index import HashIndex

__all__ = ["BankEntry", "BankSet", "BankSpec", "HashIndex", "ImageHashConfig", "ImageHashDetector", "PdqHash",
           "pdq", "pdq_dihedral", "read_entries", "write_bank"]
