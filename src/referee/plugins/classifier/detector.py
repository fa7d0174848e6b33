"""The text classifier detector: calibrated per-category scores from a trained model.

The model is named in the policy (``detectors.classifier.model``: a registry
version, an alias such as ``champion``, or a path) and loaded with
onnxruntime; nothing here imports torch. Each signal carries the model's own
operating threshold so a rule can say ``threshold: model_default``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from referee.detectors.base import Detector, DetectorConfig, Example
from referee.errors import ConfigError, ModelError
from referee.model import ContentItem, Evidence, Signal
from referee.plugins.lexicon.normalize import Normalizer, readable


class ClassifierConfig(DetectorConfig):
    """The ``detectors.classifier`` block of a policy."""

    model: str = Field(default="champion", description="Registry name, alias, or model directory path.")
    models_dir: str | None = Field(default=None, description="Registry folder; relative to the policy file.")
    variant: Literal["int8", "fp32"] = "int8"
    max_tokens: int | None = Field(default=None, ge=8, le=512)
    overlap: int = Field(default=32, ge=0)
    batch_size: int | None = Field(default=None, ge=1, description=(
        "Windows per onnxruntime call (length-sorted); default 1 for int8 (batch-independent scores), 4 for fp32."))
    intra_op_threads: int | None = Field(default=None, ge=1)
    cache_size: int = Field(default=10_000, ge=0)
    normalised_text: bool = Field(default=True, description=(
        "Also score the lexicon's normalised spelling of a text (homoglyphs and full-width letters folded, "
        "zero-widths removed, leetspeak and separated letters joined) when it differs from the raw text; "
        "each category takes the higher of the two scores."))


class ClassifierDetector(Detector):
    name = "classifier"
    config_model = ClassifierConfig
    timeout_s = 10.0

    def __init__(self, classifier: Any, categories: Sequence[str] | None = None, normalised_text: bool = True) -> None:
        """``classifier`` is a :class:`referee.classifier.TextClassifier` (or anything
        with ``categories``, ``thresholds``, ``version`` and ``predict_with_spans``);
        ``categories`` limits signals to those a policy knows. With ``normalised_text``
        an obfuscated text ("ｙｏｕ ａｒｅ ａｎ ｉｄｉｏｔ", "i\u200bd\u200bi\u200bo\u200bt")
        is also scored as the lexicon's normaliser reads it, and the higher score wins."""
        self.classifier = classifier
        self.normalised_text = normalised_text
        self._normalizer = Normalizer() if normalised_text else None
        wanted = set(categories) if categories is not None else None
        self._columns = [(i, c) for i, c in enumerate(classifier.categories) if wanted is None or c in wanted]
        self.version = str(classifier.version) + ("+norm" if normalised_text else "")

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(c for _, c in self._columns)

    def close(self) -> None:
        close = getattr(self.classifier, "close", None)
        if close is not None:
            close()

    @classmethod
    def examples(cls) -> list[Example]:
        return [
            Example(item=ContentItem(id="ex1", text="Loved the new single, the chorus is great."), category=None),
            Example(item=ContentItem(id="ex2", text="FREE FOLLOWERS!!! click here to buy cheap followers now"),
                    category="spam"),
        ]

    def detect(self, item: ContentItem) -> list[Signal]:
        return self.detect_many([item])[0]

    def detect_many(
        self, items: Sequence[ContentItem], prior: Sequence[Sequence[Signal]] | None = None
    ) -> list[list[Signal]]:
        texts = [item.text for item in items]
        scored = [i for i, t in enumerate(texts) if t.strip()]
        out: list[list[Signal]] = [[] for _ in items]
        if not scored:
            return out
        # The normalised spelling, for the texts where it differs from the plain words.
        alternates: list[tuple[int, str]] = []
        if self._normalizer is not None:
            for row, i in enumerate(scored):
                alt = normalised_spelling(self._normalizer, texts[i])
                if alt is not None:
                    alternates.append((row, alt))
        probs, spans, windows = self.classifier.predict_with_spans(
            [texts[i] for i in scored] + [alt for _, alt in alternates])
        alt_row = {row: len(scored) + k for k, (row, _) in enumerate(alternates)}
        for row, i in enumerate(scored):
            text = texts[i]
            signals = []
            for col, cat in self._columns:
                score = probs[row, col]
                start, end = (int(x) for x in spans[row, col])
                # For a text longer than one window, point at the window that scored highest.
                evidence = (
                    (Evidence(start=start, end=end, detail={"window_of": int(windows[row])}),)
                    if windows[row] > 1 and 0 <= start < end <= len(text) else ()
                )
                alt_index = alt_row.get(row)
                if alt_index is not None and probs[alt_index, col] > score:
                    # The normalised spelling scored higher: the whole text is the evidence.
                    score = probs[alt_index, col]
                    evidence = (Evidence(start=0, end=len(text), detail={"normalised_text": True}),)
                signals.append(Signal(
                    detector=self.name,
                    detector_version=self.version,
                    category=cat,
                    score=float(min(max(score, 0.0), 1.0)),
                    operating_threshold=self.classifier.thresholds.get(cat),
                    evidence=evidence,
                ))
            out[i] = signals
        return out

    @classmethod
    def from_policy(cls, policy: Any, config: dict[str, Any]) -> "ClassifierDetector":
        from referee.classifier.registry import ModelRegistry, default_root
        from referee.classifier.runtime import TextClassifier

        try:
            cfg = ClassifierConfig.model_validate(config or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"detectors.classifier.{field}: {err['msg']}, got {err.get('input')!r}") from exc
        base = Path(getattr(policy, "base_dir", Path.cwd()))
        root = base / cfg.models_dir if cfg.models_dir else default_root()
        try:
            path = ModelRegistry(root).resolve(cfg.model)
        except ModelError as exc:
            raise ModelError(f"detectors.classifier.model: {exc}") from exc
        classifier = TextClassifier(
            path,
            variant=cfg.variant,
            max_tokens=cfg.max_tokens,
            overlap=cfg.overlap,
            batch_size=cfg.batch_size,
            intra_op_threads=cfg.intra_op_threads,
            cache_size=cfg.cache_size,
        )
        policy_categories = getattr(policy, "categories", None)
        return cls(classifier, categories=policy_categories, normalised_text=cfg.normalised_text)


_WORD = re.compile(r"[^\W_]+")
_RUN = re.compile(r"(.)\1{2,}")
#: What obfuscation leaves behind: a non-ASCII character, a digit or symbol touching a
#: letter ("1d10t", "b!tch"), or single letters between separators ("i.d.i.o.t").
_MAYBE_OBFUSCATED = re.compile(r"[^\x00-\x7f]|[a-z][0-9$@!|]|[0-9$@!|][a-z]|(?<![a-z])[a-z][.\-_*/|~+][a-z](?![a-z])",
                               re.IGNORECASE)
#: Handles and links are not words (and "@mleew17" is no leetspeak); numbers with a
#: suffix ("1950s", "100k", "3rd") are numbers, not "igsos".
_HANDLE_OR_LINK = re.compile(r"(?<![\w@])@\w+|\b(?:https?://|www\.)\S+", re.IGNORECASE)
_NUMBER_SUFFIX = re.compile(r"(?<!\w)(\d[\d.,:]*)([^\W\d_]{1,2})(?!\w)")


def plain_words(text: str) -> str:
    """The text's words as the normaliser writes an unobfuscated text: lower case,
    apostrophes dropped, letter runs of three or more collapsed ("sooo" -> "so"),
    anything else between words one space."""
    words = _WORD.findall(text.casefold().replace("'", "").replace("\u2019", ""))
    return _RUN.sub(r"\1", " ".join(words))


def normalised_spelling(normalizer: Normalizer, text: str) -> str | None:
    """The normaliser's readable spelling of ``text`` when it differs from the text's plain
    words (an obfuscated text), else None. Most texts fail the cheap pre-check."""
    if _MAYBE_OBFUSCATED.search(text) is None:
        return None
    text = _NUMBER_SUFFIX.sub(r"\1 \2", _HANDLE_OR_LINK.sub(" ", text))
    alt = readable(normalizer, text)
    return alt if alt and _RUN.sub(r"\1", alt) != plain_words(text) else None
