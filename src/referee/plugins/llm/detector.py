"""The LLM policy evaluator: the written policy as the prompt, any OpenAI-compatible server.

One item at a time as a whole (``per_part = False``: a playlist's title and
description are judged together), the earlier stages' signals at hand
(``uses_prior_signals``), each item's calls sent concurrently up to the
transport's limit. A verdict per category becomes a signal whose evidence
``detail`` carries the rationale, the model and the tokens; the decision's
signals keep it. Any failure (timeout, 429/5xx after the retries, an open
breaker, an answer that does not parse after the repair retry) raises, so the
engine records a ``DetectorFailure`` and the policy's ``on_error`` applies.

Answers are cached by (model, adapter and its version, policy sha256 and
version, the item's content hash, the call's own key), so re-moderating the
same content under the same policy costs no call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from referee.detectors.base import BuildContext, Detector, DetectorConfig, Example
from referee.errors import ConfigError, ModelError
from referee.model import (
    MAX_BLOB_BYTES,
    ContentItem,
    Evidence,
    ImagePart,
    Signal,
    TextPart,
)
from referee.plugins.llm.adapters import (
    ADAPTERS,
    Adapter,
    CategorySpec,
    ContentPart,
    PolicyText,
    Verdict,
)
from referee.plugins.llm.config import LLMConfig
from referee.plugins.llm.transport import (
    ChatResponse,
    ChatTransport,
    CircuitBreaker,
    HTTPChatTransport,
    LLMOutputError,
    ResponseCache,
    Usage,
)

#: Bumped whenever the prompts change (part of the detector version, so of decision identity).
PROMPT_VERSION = "1"


class LLMDetector(Detector):
    name = "llm"
    config_model = LLMConfig
    reads = frozenset({"text"})
    per_part = False
    uses_prior_signals = True

    def __init__(self, transport: ChatTransport, adapter: Adapter, policy: PolicyText,
                 config: LLMConfig | None = None, cache: ResponseCache | None = None) -> None:
        self.transport = transport
        self.adapter = adapter
        self.policy = policy
        self.config = config or adapter.config
        self.cache = cache if cache is not None else ResponseCache(self.config.cache_size)
        able = adapter.judgeable(policy)
        wanted = self.config.categories
        if wanted is not None:
            bad = [c for c in wanted if c not in able]
            if bad:
                raise ConfigError(f"detectors.llm.categories: {bad[0]!r} is not a category the {adapter.name!r} "
                                  f"adapter can judge under policy {policy.id!r}; choose from {', '.join(able)}")
        self._categories = tuple(wanted) if wanted is not None else able
        self.version = f"{adapter.name}.{adapter.version}+p{PROMPT_VERSION}:{self.config.model or 'default'}"
        c = self.config
        if c.timeout_s is None:  # the engine's wait for a batch: every retry of one call, with backoff
            self.timeout_s = min(600.0, c.call_timeout_s * (c.max_retries + 1) + c.max_backoff_s * c.max_retries + 1)
        self.usage: Usage = getattr(transport, "usage", None) or Usage()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    # -- the contract ----------------------------------------------------------------------
    @property
    def categories(self) -> tuple[str, ...]:
        return self._categories

    def detect(self, item: ContentItem) -> list[Signal]:
        return self.detect_many([item])[0]

    def detect_many(self, items: Sequence[ContentItem],
                    prior: Sequence[Sequence[Signal]] | None = None) -> list[list[Signal]]:
        if not items:
            return []
        priors: Sequence[Sequence[Signal]] = prior if prior is not None else [() for _ in items]
        if len(items) == 1:
            return [self._judge(items[0], priors[0])]
        pool = self._executor()
        return list(pool.map(self._judge, items, priors))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    @classmethod
    def build(cls, config: DetectorConfig, context: BuildContext) -> "LLMDetector":
        assert isinstance(config, LLMConfig)
        if not config.endpoint:
            raise ModelError("detectors.llm.endpoint is not set: point it at an OpenAI-compatible server "
                             "(e.g. http://127.0.0.1:8000/v1 for vLLM; see docs/llm.md)")
        if context.policy is None:
            raise ConfigError("the llm detector reads the policy's categories; build it from a policy")
        api_key = None
        if config.api_key_env:
            api_key = os.environ.get(config.api_key_env)
            if not api_key:
                raise ConfigError(f"detectors.llm.api_key_env: environment variable {config.api_key_env} is "
                                  "empty or unset; export the key or drop the setting")
        transport = HTTPChatTransport(
            config.endpoint, api_key=api_key, timeout_s=config.call_timeout_s, max_retries=config.max_retries,
            backoff_s=config.backoff_s, max_backoff_s=config.max_backoff_s, max_concurrency=config.max_concurrency,
            breaker=CircuitBreaker(config.breaker_failures, config.breaker_reset_s),
            price_prompt_per_1k=config.price_prompt_per_1k, price_completion_per_1k=config.price_completion_per_1k)
        try:
            detector = cls.create(transport, config, context.policy)
        except BaseException:
            transport.close()
            raise
        return detector

    @classmethod
    def create(cls, transport: ChatTransport, config: LLMConfig, policy: Any) -> "LLMDetector":
        """The detector for this policy (a ``referee.policy.Policy``) over any transport."""
        adapter = ADAPTERS[config.adapter](config)
        kind: type[LLMDetector] = VisionLLMDetector if (config.vision and adapter.supports_images) else cls
        return kind(transport, adapter, policy_text(policy), config)

    @classmethod
    def examples(cls) -> list[Example]:
        # Judged by a real model, so nothing is asserted offline; tests/plugins runs the suite's
        # checks against the scripted server instead.
        return [Example(item=ContentItem(id="llm-ex-1", text="I will kill you tonight."), category="violence"),
                Example(item=ContentItem(id="llm-ex-2", text="Loved the chorus of this song."), category=None)]

    # -- judging ---------------------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.config.max_concurrency, thread_name_prefix="referee-llm")
        return self._pool

    def _judged(self, prior: Sequence[Signal]) -> tuple[str, ...]:
        if not self.config.judge_flagged_only:
            return self._categories
        flagged = {s.category for s in prior if s.score >= self.config.prior_min}
        return tuple(c for c in self._categories if c in flagged) or self._categories

    def _judge(self, item: ContentItem, prior: Sequence[Signal]) -> list[Signal]:
        parts = content_parts(item, self.config.vision and self.adapter.supports_images)
        if not any(p.text or p.image_url for p in parts):
            return []
        cats = self._judged(prior)
        hints = [(s.detector, s.category, s.score) for s in prior if s.category in cats]
        calls = self.adapter.calls(parts, self.policy, cats, hints, surface=item.surface)
        first_part = parts[0].id
        known = {p.id for p in parts}
        signals: list[Signal] = []
        for call in calls:
            verdicts, response, cached = self._ask(call, item.content_hash)
            for v in verdicts:
                signals.append(self._signal(v, response, cached, first_part, known))
        return signals

    def _ask(self, call: Any, content_hash: str) -> tuple[list[Verdict], ChatResponse, bool]:
        key = hashlib.sha256(json.dumps([self.config.model, self.adapter.name, self.adapter.version, PROMPT_VERSION,
                                         self.policy.sha256, self.policy.version, content_hash, call.key]
                                        ).encode()).hexdigest()
        hit = self.cache.get(key)
        if hit is not None:
            self.usage.add(cache_hits=1)
            return self.adapter.parse(call, hit), hit, True
        response = self.transport.complete(call.request)
        try:
            verdicts = self.adapter.parse(call, response)
        except LLMOutputError as error:
            repair = self.adapter.repair(call, response, error)
            if repair is None:
                raise
            response = self.transport.complete(repair)
            try:
                verdicts = self.adapter.parse(call, response)
            except LLMOutputError as again:
                raise LLMOutputError(f"{again} (after one repair retry; first answer: {error})") from again
        self.cache.put(key, response)
        return verdicts, response, False

    def _signal(self, v: Verdict, response: ChatResponse, cached: bool, first_part: str,
                known: set[str]) -> Signal:
        named = [p for p in v.parts if p in known]
        detail: dict[str, Any] = {
            "rationale": v.rationale, **v.detail, "adapter": self.adapter.name, "model": response.model or self.config.model,
            "prompt_tokens": response.prompt_tokens, "completion_tokens": response.completion_tokens,
        }  # the same whether the answer came from the cache or the server: decisions stay deterministic
        if named:
            detail["parts"] = named
        return Signal(detector=self.name, detector_version=self.version, category=v.category,
                      score=min(1.0, max(0.0, v.score)),
                      evidence=(Evidence(part_id=named[0] if named else first_part, detail=detail),))


class VisionLLMDetector(LLMDetector):
    """The LLM detector for an endpoint declared vision-capable: image parts go as image_url content."""

    reads = frozenset({"text", "image"})


def policy_text(policy: Any) -> PolicyText:
    """The prompt's view of a ``referee.policy.Policy`` (read loosely: plugins sit above the contract)."""
    doc = policy.document
    cats = tuple(CategorySpec(name, c.description, c.severity, tuple(c.examples), tuple(c.counter_examples))
                 for name, c in doc.categories.items())
    return PolicyText(id=str(policy.id), version=str(policy.version), sha256=str(policy.sha256), categories=cats)


def content_parts(item: ContentItem, images: bool) -> list[ContentPart]:
    out: list[ContentPart] = []
    for part in item.parts:
        if isinstance(part, TextPart):
            out.append(ContentPart(part.id, "text", part.role, text=part.text))
        elif images and isinstance(part, ImagePart):
            out.append(ContentPart(part.id, "image", part.role, image_url=_image_url(part)))
    return out


def _image_url(part: ImagePart) -> str:
    mime = part.mime or "image/jpeg"
    if part.data is not None:
        return f"data:{mime};base64,{base64.b64encode(part.data).decode()}"
    if part.url is not None:
        return part.url
    if part.path is not None:
        path = Path(part.path)
        if path.stat().st_size > MAX_BLOB_BYTES:
            raise ModelError(f"image part {part.id!r}: {path} is larger than {MAX_BLOB_BYTES} bytes")
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
    raise ModelError(f"image part {part.id!r} has no data, url or path")
