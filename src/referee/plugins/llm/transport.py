"""The one seam between the LLM detector and a model server: ``ChatTransport.complete``.

``HTTPChatTransport`` speaks the OpenAI chat-completions protocol (vLLM,
llama.cpp's server, Ollama, TGI, hosted APIs) over httpx and owns the client
behaviour: a timeout per call, bounded retries with exponential backoff and
full jitter (429, 5xx, timeouts, refused connections; ``Retry-After`` is
honoured up to the backoff cap), a concurrency limit, a circuit breaker that
opens after repeated failures and lets one probe through after a cool-down,
and token/cost accounting. ``ScriptedTransport`` answers from a function, for
unit tests. ``ResponseCache`` is a bounded LRU the detector keys by (model,
adapter, policy sha256 and version, content hash, call).

Errors (all ``DetectorError``, so the engine records a ``DetectorFailure``)::

    LLMError
    ├── LLMTimeout         no answer within the call timeout, after the retries
    ├── LLMUnavailable     the breaker is open, or the server kept failing (429/5xx/refused)
    ├── LLMRequestError    the server refused the request (4xx other than 429)
    └── LLMOutputError     the answer did not parse, even after the repair retry
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from referee.errors import DetectorError


class LLMError(DetectorError):
    pass


class LLMTimeout(LLMError):
    pass


class LLMUnavailable(LLMError):
    pass


class LLMRequestError(LLMError):
    pass


class LLMOutputError(LLMError):
    pass


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the top alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[dict[str, Any], ...]
    model: str = ""
    max_tokens: int = 512
    temperature: float = 0.0
    response_format: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    #: Extra top-level fields (``reasoning_effort`` for gpt-oss-safeguard, ``seed``...).
    extra: tuple[tuple[str, Any], ...] = ()

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "messages": list(self.messages),
                               "max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.response_format is not None:
            out["response_format"] = self.response_format
        if self.logprobs:
            out["logprobs"] = True
            if self.top_logprobs:
                out["top_logprobs"] = self.top_logprobs
        out.update(dict(self.extra))
        return out


@dataclass(frozen=True)
class ChatResponse:
    content: str
    logprobs: tuple[TokenLogprob, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    finish_reason: str = ""
    cached: bool = False
    latency_s: float = 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any], latency_s: float = 0.0) -> "ChatResponse":
        try:
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMOutputError(f"not a chat completion (no choices[0].message): {str(data)[:200]}") from exc
        tokens: list[TokenLogprob] = []
        for entry in ((choice.get("logprobs") or {}).get("content") or []):
            top = tuple((str(t.get("token", "")), float(t.get("logprob", -math.inf)))
                        for t in entry.get("top_logprobs") or [])
            tokens.append(TokenLogprob(str(entry.get("token", "")), float(entry.get("logprob", -math.inf)), top))
        usage = data.get("usage") or {}
        return cls(content=str(content), logprobs=tuple(tokens),
                   prompt_tokens=int(usage.get("prompt_tokens") or 0),
                   completion_tokens=int(usage.get("completion_tokens") or 0),
                   model=str(data.get("model") or ""), finish_reason=str(choice.get("finish_reason") or ""),
                   latency_s=latency_s)


class ChatTransport(Protocol):
    """The LLM detector depends only on this."""

    def complete(self, req: ChatRequest) -> ChatResponse: ...


@dataclass
class Usage:
    """Calls, tokens and cost so far (thread-safe counters)."""

    calls: int = 0
    retries: int = 0
    failures: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {k: getattr(self, k) for k in ("calls", "retries", "failures", "cache_hits",
                                                    "prompt_tokens", "completion_tokens", "cost")}


class CircuitBreaker:
    """Opens after ``failures`` consecutive failed calls; after ``reset_s`` one probe call
    goes through (half-open): success closes it, failure opens it again."""

    def __init__(self, failures: int = 5, reset_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._clock() - self._opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self.reset_s or self._probing:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        with self._lock:
            self._count, self._opened_at, self._probing = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self._count += 1
            if self._probing or self._count >= self.failures:
                self._opened_at, self._probing = self._clock(), False


class ResponseCache:
    """A bounded, thread-safe LRU of responses by key (successful answers only)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._data: OrderedDict[str, ChatResponse] = OrderedDict()

    def get(self, key: str) -> ChatResponse | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key: str, value: ChatResponse) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class HTTPChatTransport:
    """``POST {base_url}/chat/completions`` with the client behaviour described above."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 4.0,
        max_concurrency: int = 4,
        breaker: CircuitBreaker | None = None,
        price_prompt_per_1k: float = 0.0,
        price_completion_per_1k: float = 0.0,
        usage: Usage | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.breaker = breaker or CircuitBreaker()
        self.usage = usage or Usage()
        self.price = (price_prompt_per_1k, price_completion_per_1k)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._sleep = sleep
        self._rng = rng or random.Random()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s),
                                    limits=httpx.Limits(max_connections=max_concurrency))
        self._closed = False

    def complete(self, req: ChatRequest) -> ChatResponse:
        if self._closed:
            raise LLMUnavailable("the LLM transport is closed")
        last: LLMError | None = None
        for attempt in range(self.max_retries + 1):
            if not self.breaker.allow():
                raise LLMUnavailable(f"circuit breaker open for {self.url} after repeated failures "
                                     f"(retrying in up to {self.breaker.reset_s:g} s)") from last
            if attempt:
                self.usage.add(retries=1)
            try:
                response = self._post(req)
            except _Retryable as exc:
                self.breaker.failure()
                last = exc.error
                if attempt < self.max_retries:
                    self._sleep(self._delay(attempt, exc.retry_after))
                continue
            except LLMError:
                self.breaker.failure()
                self.usage.add(failures=1)
                raise
            self.breaker.success()
            cost = (response.prompt_tokens * self.price[0] + response.completion_tokens * self.price[1]) / 1000
            self.usage.add(calls=1, prompt_tokens=response.prompt_tokens,
                           completion_tokens=response.completion_tokens, cost=cost)
            return response
        self.usage.add(failures=1)
        assert last is not None
        raise last

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        cap = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        return self._rng.uniform(0, cap)  # full jitter

    def _post(self, req: ChatRequest) -> ChatResponse:
        with self._slots:
            begun = time.monotonic()
            try:
                reply = self._client.post(self.url, json=req.body())
            except httpx.TimeoutException as exc:
                raise _Retryable(LLMTimeout(f"no answer from {self.url} within {self.timeout_s:g} s")) from exc
            except httpx.TransportError as exc:
                raise _Retryable(LLMUnavailable(f"cannot reach {self.url}: {type(exc).__name__}: {exc}")) from exc
            latency = time.monotonic() - begun
        if reply.status_code in _RETRY_STATUS:
            raise _Retryable(LLMUnavailable(f"{self.url} answered {reply.status_code}: {reply.text[:200]}"),
                             _retry_after(reply.headers.get("retry-after")))
        if reply.status_code >= 400:
            raise LLMRequestError(f"{self.url} refused the request with {reply.status_code}: {reply.text[:300]}; "
                                  "check detectors.llm.model and the server's supported fields")
        try:
            data = reply.json()
        except ValueError as exc:
            raise LLMOutputError(f"{self.url} answered non-JSON: {reply.text[:200]!r}") from exc
        return ChatResponse.from_json(data, latency)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()


class _Retryable(Exception):
    def __init__(self, error: LLMError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class ScriptedTransport:
    """Answers from ``script(request)`` (a ChatResponse, or a string for the content), for tests."""

    def __init__(self, script: Callable[[ChatRequest], ChatResponse | str]) -> None:
        self.script = script
        self.requests: list[ChatRequest] = []
        self.usage = Usage()
        self._lock = threading.Lock()

    def complete(self, req: ChatRequest) -> ChatResponse:
        with self._lock:
            self.requests.append(req)
        out = self.script(req)
        response = ChatResponse(content=out) if isinstance(out, str) else out
        self.usage.add(calls=1, prompt_tokens=response.prompt_tokens, completion_tokens=response.completion_tokens)
        return response

    def close(self) -> None:
        pass
