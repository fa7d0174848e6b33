"""Runtime settings, read from the environment (``REFEREE_*``) or a ``.env`` file.

Only ``cli`` and ``serve`` read settings (the CLI hands stream workers what
they need), and only through this module: it turns them into an
``EngineConfig`` for ``build_engine``, so library code never looks at the
environment behind the caller's back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from referee.build import EngineConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFEREE_", env_file=".env", extra="ignore", populate_by_name=True)

    policy: Path = Field(default=Path("policies/default.yaml"), description="Policy YAML file.")
    db_url: str = Field(default="sqlite:///referee.db", description="SQLAlchemy URL of the decision store.")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Largest accepted HTTP request body.")
    max_batch: int = Field(default=256, ge=1, description="Most items in one POST /v1/moderate.")
    batch_wait_ms: float = Field(
        default=0.0, ge=0, le=100,
        description="HTTP: wait up to this long to gather concurrent requests into one batch (0 = never wait).",
    )
    detectors: list[str] | None = Field(
        default=None, description="Only these detectors of the policy (comma-separated in the env)."
    )
    auth: bool = Field(default=True, description="Require API keys on every endpoint but health checks.")
    follow_s: float = Field(
        default=2.0, ge=0, le=3600,
        description="HTTP: seconds between passes that queue held decisions for review and seal new records "
                    "into the audit chain (0 = off; run `referee review sync` and `referee audit seal` instead).")
    follow_in_app: bool = Field(
        default=True,
        description="HTTP: the app follows the log itself, in a thread (one follower per database holds a lease). "
                    "`referee serve` sets it false for its workers and runs `referee follow` beside them.")
    audit_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the key that signs audit checkpoints.")
    drift_every_s: float = Field(
        default=600.0, ge=0, le=86_400,
        description="Seconds between the log follower's drift passes (yesterday against the week before), "
                    "whose PSI gauges every worker's /metrics shows (0 = off; `referee quality drift` "
                    "computes it on demand).")
    samples_dir: Path = Field(
        default=Path("samples"),
        description="HTTP: where GET /v1/quality/prevalence/{id} finds labelling samples "
                    "(`referee quality sample --out samples/<id>.json`).")
    max_upload_bytes: int = Field(default=20_000_000, ge=1024, le=20_000_000,
                                  description="Largest file in POST /v1/moderate/upload.")
    max_upload_total_bytes: int = Field(default=50_000_000, ge=1024, description="Largest upload body in all.")
    media_allow_hosts: list[str] = Field(
        default_factory=list, description="Hosts media URLs may be fetched from (comma-separated); none by default.")
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis that stream workers read items from and publish decisions to (`referee worker`).")
    log_format: Literal["json", "text"] = Field(
        default="text",
        description="Log lines as JSON objects (one per line, with the request or batch id) or as plain text.")
    metrics_multiprocess_dir: Path | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="Where worker processes share their metrics (prometheus_client's multiprocess mode); "
                    "`referee serve --workers N` sets it. Unset: one process, metrics in memory.")

    shadow: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="HTTP: engine-config JSON files (comma-separated) of candidates that run in shadow beside the "
                    "champion: their decisions are stored as shadow decisions, never enforced (docs/online.md).")

    experiment: Path | None = Field(
        default=None,
        description="HTTP and `referee worker`: an experiment file (JSON or YAML, as `referee experiment moderate` "
                    "takes); each item is decided by its unit's arm and one exposure logged (docs/online.md).")

    shadow_sample: float = Field(
        default=1.0, gt=0, le=1,
        description="HTTP: share of items the shadow candidates see (chosen by a hash of the item id).")
    shadow_duty: float = Field(
        default=0.25, gt=0, le=1,
        description="HTTP: share of the time the shadow thread may work; beyond it the queue fills and drops.")

    @field_validator("shadow", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def engine_config(self, *, store: bool = True, detectors: str | None = None, batch_size: int = 64) -> EngineConfig:
        """The engine these settings describe; CLI flags override through the keywords."""
        only: object = detectors if detectors is not None else (tuple(self.detectors) if self.detectors is not None
                                                                else None)
        return EngineConfig.model_validate({
            "policy": self.policy,
            "detectors": only,
            "store_url": self.db_url if store else None,
            "batch_size": batch_size,
            "max_batch": self.max_batch,
            "batch_wait_ms": self.batch_wait_ms,
            "media_allow_hosts": tuple(self.media_allow_hosts),
        })
