"""The ``detectors.llm`` block of a policy: which server, which adapter, how to call it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from referee.detectors.base import DetectorConfig


class LLMConfig(DetectorConfig):
    """Settings of the LLM policy evaluator (checked when the policy loads)."""

    endpoint: str | None = Field(
        default=None, pattern=r"^https?://",
        description="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (vLLM).")
    model: str = Field(default="", description="The model name the server expects.")
    api_key_env: str | None = Field(
        default=None, pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Name of the environment variable holding the API key (never the key itself).")
    adapter: Literal["policy", "llama_guard", "shieldgemma"] = Field(
        default="policy", description="policy: policy-as-prompt with JSON output (any instruction model, "
                                      "gpt-oss-safeguard); llama_guard: Llama Guard 3/4; shieldgemma.")
    categories: tuple[str, ...] | None = Field(
        default=None, description="Policy categories to judge; all the adapter can judge when omitted.")
    judge_flagged_only: bool = Field(
        default=False, description="Judge only the categories an earlier stage scored at least "
                                   "prior_min (all of them when none did).")
    prior_min: float = Field(default=0.2, ge=0.0, le=1.0)
    show_prior: bool = Field(default=False, description="Tell the model the earlier stages' scores (policy adapter).")
    vision: bool = Field(default=False, description="The endpoint accepts image_url content: send image parts.")
    call_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Seconds for one HTTP call.")
    max_retries: int = Field(default=2, ge=0, le=10, description="Retries on timeouts, 429 and 5xx.")
    backoff_s: float = Field(default=0.5, ge=0, le=60, description="First backoff; doubles, full jitter.")
    max_backoff_s: float = Field(default=4.0, ge=0, le=120)
    max_concurrency: int = Field(default=4, ge=1, le=256, description="Calls in flight at once.")
    breaker_failures: int = Field(default=5, ge=1, le=1000, description="Failed calls in a row that open the breaker.")
    breaker_reset_s: float = Field(default=30.0, gt=0, le=3600, description="Seconds before a probe call.")
    cache_size: int = Field(default=10_000, ge=0, le=10_000_000, description="Responses kept (0: no cache).")
    max_tokens: int = Field(default=512, ge=1, le=32_768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    structured_output: Literal["json_schema", "json_object", "none"] = Field(
        default="json_schema", description="How the policy adapter asks for JSON (response_format).")
    reasoning_effort: Literal["low", "medium", "high"] | None = Field(
        default=None, description="Sent as reasoning_effort (gpt-oss-safeguard, other reasoning models).")
    max_examples: int = Field(default=5, ge=0, le=50, description="Examples and counter-examples per category.")
    logprobs: bool = Field(default=True, description="Ask for logprobs (Llama Guard, ShieldGemma scores).")
    llama_guard_version: Literal[3, 4] = 3
    llama_guard_template: Literal["server", "referee"] = Field(
        default="server", description="server: send the content as the user turn and let the server's chat "
                                      "template build the prompt; referee: send the full task text.")
    hazards: dict[str, tuple[str, ...]] | None = Field(
        default=None, description="Llama Guard hazard code (S1..S14) -> policy categories; replaces the default.")
    price_prompt_per_1k: float = Field(default=0.0, ge=0.0, description="Cost per 1,000 prompt tokens.")
    price_completion_per_1k: float = Field(default=0.0, ge=0.0)
