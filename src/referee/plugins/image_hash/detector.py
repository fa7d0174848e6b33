"""The image hash detector: an image part matched against hash banks (the HMA model).

Hasher: the image's MD5 and SHA-256 (exact copies) and its PDQ hash with its
quality (perceptual; hashes of quality below ``min_quality``, default 50, are not
matched, per PDQ's guidance; ``dihedral: true`` also matches the 8 rotations and
flips). Matcher: each enabled bank's exact table and PDQ index (Hamming distance
<= the bank's ``distance``, default 31). Actioner: the policy -- a match is a
signal in the bank's category (or the row's), with the bank, hash, distance and
labels as evidence, and the policy's rules map it to an action like any signal.
A match in an ``allow`` bank suppresses every block match of that image.

    detectors:
      image_hash:
        banks:
          - {name: known_csam, path: banks/known.csv, category: sexual_minors}
          - {name: logos_fp, path: banks/logos.csv, kind: allow}
        # or: manifest: banks/manifest.json  (re-read when it changes)

Bank files and the manifest are re-read when they change (checked at most
every ``reload_s`` seconds), so banks and hashes are enabled, disabled, added
or removed without a restart; the detector's version then changes, so items
moderated again are decided again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from referee.detectors.base import BuildContext, Detector, DetectorConfig, Example
from referee.detectors.media import decode_rgb, part_bytes
from referee.errors import ConfigError, ModelError
from referee.model import ContentItem, Evidence, ImagePart, Signal
from referee.plugins.image_hash import hasher
from referee.plugins.image_hash.banks import Bank, BankEntry, BankSet, spec_from_dict

log = logging.getLogger(__name__)

_CODE_VERSION = "1"
#: Evidence kept per signal (the nearest matches first).
_MAX_EVIDENCE = 5


class ImageHashConfig(DetectorConfig):
    """The ``detectors.image_hash`` block."""

    banks: list[dict[str, Any]] = Field(default_factory=list, description=(
        "Banks: {name, path, kind: block|allow, format: hma|te, category, distance, enabled, signal_type}."))
    manifest: str | None = Field(default=None, description="A JSON bank manifest, re-read when it changes.")
    min_quality: int = Field(default=hasher.MIN_QUALITY_DEFAULT, ge=0, le=100,
                             description="PDQ hashes below this quality are not matched.")
    dihedral: bool = Field(default=False, description="Also match the image's rotations and flips.")
    max_side: int = Field(default=512, ge=64, le=8192, description="Downscale before PDQ hashing.")
    reload_s: float = Field(default=2.0, ge=0, le=3600, description="Check bank files for changes this often.")
    score: float = Field(default=1.0, gt=0, le=1, description="The score of a match.")
    tables: int = Field(default=11, ge=4, le=64, description="Multi-index hashing tables (see index.py).")
    flips: int = Field(default=1, ge=0, le=2, description="Bits flipped per table probe.")


@dataclass(frozen=True)
class Match:
    bank: str
    kind: str
    entry: BankEntry
    distance: int
    orientation: str = "original"


def _rgb(data: bytes, where: str, max_side: int) -> tuple[Any, tuple[int, int]]:
    """RGB pixels (downscaled to ``max_side``) and the original (width, height)."""
    import numpy as np

    rgb, size = decode_rgb(data, where, max_side, resample="bilinear")
    return np.asarray(rgb, dtype=np.uint8), size


class ImageHashDetector(Detector):
    """Image parts matched against hash banks by MD5, SHA-256 and PDQ."""

    name = "image_hash"
    config_model = ImageHashConfig
    reads = frozenset({"image"})
    timeout_s = 10.0

    def __init__(self, banks: BankSet, categories: Sequence[str] | None = None,
                 min_quality: int = hasher.MIN_QUALITY_DEFAULT, dihedral: bool = False, max_side: int = 512,
                 score: float = 1.0) -> None:
        try:
            from importlib.metadata import version

            self._lib = version("pdqhash")
        except Exception as exc:  # noqa: BLE001 - PackageNotFoundError: the optional extra is missing
            raise ModelError("image_hash needs the 'media' extra (pdqhash): pip install 'referee[media]'") from exc
        self.bank_set = banks
        self.policy_categories = None if categories is None else frozenset(categories)
        self.min_quality = min_quality
        self.dihedral = dihedral
        self.max_side = max_side
        self.score = score
        self._check_categories()
        self._set_version()

    @classmethod
    def build(cls, config: DetectorConfig, context: BuildContext) -> "ImageHashDetector":
        assert isinstance(config, ImageHashConfig)
        specs = [spec_from_dict(b, context.base_dir, f"detectors.image_hash.banks[{i}]")
                 for i, b in enumerate(config.banks)]
        manifest = None
        if config.manifest is not None:
            manifest = Path(config.manifest)
            manifest = manifest if manifest.is_absolute() else context.base_dir / manifest
        banks = BankSet(specs, manifest, reload_s=config.reload_s, tables=config.tables, flips=config.flips)
        if not banks.all_banks():
            log.warning("image_hash has no banks: it matches nothing (give detectors.image_hash.banks or a manifest)")
        return cls(banks, context.categories, min_quality=config.min_quality, dihedral=config.dihedral,
                   max_side=config.max_side, score=config.score)

    def _check_categories(self) -> None:
        if self.policy_categories is None:
            return
        for bank in self.bank_set.all_banks():
            cat = bank.spec.category
            if bank.spec.kind == "block" and cat is not None and cat not in self.policy_categories:
                raise ConfigError(f"bank {bank.spec.name!r}: category {cat!r} is not one of the policy's "
                                  f"categories ({', '.join(sorted(self.policy_categories))})")

    def _set_version(self) -> None:
        h = hashlib.sha256()
        for b in sorted(self.bank_set.all_banks(), key=lambda b: b.spec.name):
            h.update(repr((b.spec, b.stamp)).encode())
        self.version = (f"pdq-{self._lib}.{_CODE_VERSION}.q{self.min_quality}.d{int(self.dihedral)}"
                        f".s{self.max_side}.banks-{h.hexdigest()[:12]}")

    @property
    def categories(self) -> tuple[str, ...]:
        cats = self.bank_set.categories()
        if self.policy_categories is not None:
            cats &= self.policy_categories
        return tuple(sorted(cats))

    def refresh(self, force: bool = False) -> None:
        """Pick up bank changes on disk (the engine's batches call this; tests may force it)."""
        if self.bank_set.refresh(force=force):
            self._check_categories()
            self._set_version()

    def detect_many(self, items: Sequence[ContentItem], prior: Sequence[Sequence[Signal]] | None = None
                    ) -> list[list[Signal]]:
        self.refresh()
        return [self._detect(item) for item in items]

    def detect(self, item: ContentItem) -> list[Signal]:
        self.refresh()
        return self._detect(item)

    def _detect(self, item: ContentItem) -> list[Signal]:
        by_category: dict[str, list[tuple[Match, Evidence]]] = {}
        for part in item.parts:
            if not isinstance(part, ImagePart):
                continue
            matches, quality, size = self.match(part)
            if any(m.kind == "allow" for m in matches):
                continue  # a known false positive: no block match of this image counts
            for m in matches:
                bank = next(b for b in self.bank_set.banks() if b.spec.name == m.bank)
                category = bank.spec.category or m.entry.category
                if category is None:
                    continue
                detail: dict[str, Any] = {"bank": m.bank, "signal_type": m.entry.signal_type,
                                          "distance": m.distance, "category": category}
                if m.entry.signal_type == "pdq":
                    detail["quality"] = quality
                    detail["orientation"] = m.orientation
                for key in ("source", "added_at", "note"):
                    value = getattr(m.entry, key)
                    if value:
                        detail[key] = value
                ev = Evidence(part_id=part.id, region=(0, 0, size[0], size[1]),
                              entry=f"{m.entry.signal_type}:{m.entry.signal}", detail=detail)
                by_category.setdefault(category, []).append((m, ev))
        out = []
        for category, found in by_category.items():
            found.sort(key=lambda pair: (pair[0].distance, pair[0].bank))
            out.append(Signal(detector=self.name, detector_version=self.version, category=category,
                              score=self.score, evidence=tuple(ev for _, ev in found[:_MAX_EVIDENCE])))
        return out

    def match(self, part: ImagePart) -> tuple[list[Match], int | None, tuple[int, int]]:
        """Every bank match of one image, its PDQ quality and its size."""
        data = part_bytes(part)
        exact = {("md5", hasher.md5(data)), ("sha256", hasher.sha256(data))}
        rgb, size = _rgb(data, f"part {part.id}", self.max_side)
        try:
            hashes = hasher.pdq_dihedral(rgb) if self.dihedral else [hasher.pdq(rgb)]
        except ImportError as exc:
            raise ModelError(str(exc)) from exc
        quality = hashes[0].quality
        import numpy as np

        matches: list[Match] = []
        for bank in self.bank_set.banks():
            matches.extend(self._exact(bank, exact))
            if bank.index is None or quality < self.min_quality:
                continue
            codes = np.frombuffer(b"".join(h.bytes for h in hashes), dtype=np.uint8).reshape(-1, 32)
            best: dict[int, Match] = {}
            for h, hits in zip(hashes, bank.index.search(codes, radius=bank.spec.distance)):
                for code_id, distance in hits:
                    row = bank.pdq_rows[code_id]
                    if row < 0:  # an id masked by a bank update (search skips them; never report a wrong row)
                        continue
                    if row not in best or distance < best[row].distance:
                        best[row] = Match(bank.spec.name, bank.spec.kind, bank.entries[row], distance, h.orientation)
            matches.extend(best.values())
        return matches, quality, size

    @staticmethod
    def _exact(bank: Bank, exact: set[tuple[str, str]]) -> list[Match]:
        return [Match(bank.spec.name, bank.spec.kind, bank.entries[row], 0)
                for key in exact for row in bank.exact.get(key, ())]

    @classmethod
    def examples(cls) -> list[Example]:
        # With no banks configured (the default policy), nothing matches: an example that scores nothing.
        return [Example(item=ContentItem(id="image-hash-text", text="a cover without a known hash"), category=None)]
