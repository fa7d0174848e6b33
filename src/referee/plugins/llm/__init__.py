"""The LLM policy evaluator (``detectors.llm``): the policy as the prompt, over any
OpenAI-compatible chat endpoint, with adapters for Llama Guard and ShieldGemma.
See docs/llm.md."""

from referee.plugins.llm.adapters import (
    ADAPTERS,
    HAZARDS,
    Adapter,
    LlamaGuardAdapter,
    PolicyAdapter,
    ShieldGemmaAdapter,
)
from referee.plugins.llm.config import LLMConfig
from referee.plugins.llm.detector import LLMDetector, VisionLLMDetector
from referee.plugins.llm.transport import (
    ChatRequest,
    ChatResponse,
    ChatTransport,
    CircuitBreaker,
    HTTPChatTransport,
    LLMError,
    LLMOutputError,
    LLMRequestError,
    LLMTimeout,
    LLMUnavailable,
    ResponseCache,
    ScriptedTransport,
    Usage,
)

__all__ = [
    "ADAPTERS",
    "HAZARDS",
    "Adapter",
    "ChatRequest",
    "ChatResponse",
    "ChatTransport",
    "CircuitBreaker",
    "HTTPChatTransport",
    "LLMConfig",
    "LLMDetector",
    "LLMError",
    "LLMOutputError",
    "LLMRequestError",
    "LLMTimeout",
    "LLMUnavailable",
    "LlamaGuardAdapter",
    "PolicyAdapter",
    "ResponseCache",
    "ScriptedTransport",
    "ShieldGemmaAdapter",
    "Usage",
    "VisionLLMDetector",
]
