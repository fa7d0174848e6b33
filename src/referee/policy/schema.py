"""The policy file, as pydantic models.

A policy is data: categories (the taxonomy), detector settings (named, never
imported), rules per surface, jurisdiction overrides, and test cases. Python
never appears in the YAML. Validation errors carry a field path that
``policy.load`` maps back to a file line.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from referee.model import Action

Severity = Literal["low", "medium", "high", "critical"]
OnError = Literal["hold_for_review", "allow", "remove"]

#: The surface whose rules apply to any surface the policy does not name.
DEFAULT_SURFACE = "default"
#: ``categories: "*"`` in a rule means every category of the policy.
ALL = "*"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(_Strict):
    description: str = Field(min_length=1)
    severity: Severity = "medium"
    examples: tuple[str, ...] = ()
    counter_examples: tuple[str, ...] = ()


class Segments(_Strict):
    """A rule on the time-coded evidence of audio (transcript segments), per audio part.

    A *flagged segment* is a time range (evidence with ``start_s``/``end_s``) whose
    score reaches the rule's threshold. Give one of: ``worst`` (the highest-scoring
    segment reaches it), ``share`` (flagged time / the part's transcribed time is at
    least this) or ``count`` (at least this many flagged segments). See docs/policy.md."""

    worst: bool = Field(default=False, description="Fire on the highest-scoring segment (only audio counts).")
    share: float | None = Field(default=None, gt=0.0, le=1.0,
                                description="Least share of the part's time flagged, e.g. 0.1 for 10%.")
    count: int | None = Field(default=None, ge=1, description="Least number of flagged segments.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Segments:
        given = [name for name, on in (("worst", self.worst), ("share", self.share is not None),
                                       ("count", self.count is not None)) if on]
        if len(given) != 1:
            raise ValueError("segments takes exactly one of 'worst: true', 'share: 0..1' or 'count: n', "
                             f"got {', '.join(given) if given else 'none'}")
        return self

    @property
    def aggregate(self) -> Literal["worst", "share", "count"]:
        return "share" if self.share is not None else "count" if self.count is not None else "worst"


class Rule(_Strict):
    """If a signal for one of ``categories`` from one of ``detectors`` scores at
    least ``threshold``, apply ``action``. If one of the rule's detectors failed
    for the item and nothing else fired the rule, apply ``on_error`` instead.
    With ``segments``, the rule reads the signals' time-coded evidence instead
    (the worst segment, the share of flagged time, or a count of flagged segments)."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    categories: tuple[str, ...] | Literal["*"]
    detectors: tuple[str, ...] | None = Field(
        default=None, description="Detectors whose signals count; all detectors when omitted."
    )
    threshold: float | Literal["model_default"] = 0.5
    action: Action
    strike: bool = False
    on_error: OnError = "hold_for_review"
    segments: Segments | None = Field(
        default=None, description="Act on audio segments: {worst: true}, {share: 0.1} or {count: 3}.")
    description: str | None = None

    @field_validator("categories", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) and value != ALL else value

    @field_validator("detectors", mode="before")
    @classmethod
    def _one_or_many_detectors(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("threshold")
    @classmethod
    def _in_unit_interval(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1 (or 'model_default'), got {value}")
        return value


class SurfaceRules(_Strict):
    description: str | None = None
    rules: tuple[Rule, ...] = ()


class JurisdictionSurface(_Strict):
    """Rules layered on a surface for a jurisdiction: same id replaces, new id adds."""

    rules: tuple[Rule, ...] = ()
    remove_rules: tuple[str, ...] = ()


class Jurisdiction(_Strict):
    description: str | None = None
    countries: tuple[str, ...] = Field(min_length=1, description="ISO 3166-1 alpha-2 codes it covers.")
    surfaces: dict[str, JurisdictionSurface] = Field(default_factory=dict)

    @field_validator("countries")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in value if len(c) != 2 or not c.isalpha()]
        if bad:
            raise ValueError(f"countries must be two-letter ISO codes such as 'DE', got {bad}")
        return tuple(c.upper() for c in value)


class PolicyTest(_Strict):
    """A unit test for the policy: this text on this surface in this country must get this action."""

    text: str
    surface: str = "comment"
    country: str | None = None
    expect: Action | None = None
    expect_categories: tuple[str, ...] | None = Field(
        default=None, description="Categories that must be flagged (exactly these)."
    )
    name: str | None = None

    @model_validator(mode="after")
    def _expects_something(self) -> PolicyTest:
        if self.expect is None and self.expect_categories is None:
            raise ValueError("a test needs 'expect' (an action) or 'expect_categories' (a list)")
        return self


class Band(_Strict):
    """Earlier signals for these categories scoring in ``[min, max)``."""

    categories: tuple[str, ...] | Literal["*"] = "*"
    min: float = Field(default=0.0, ge=0.0, le=1.0)
    max: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("categories", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) and value != ALL else value


class Gate(_Strict):
    """When a stage runs for an item. Every condition given must hold; ``band``
    and ``severities`` widen each other: the stage runs when an earlier signal
    lies in the band, or when one for a category of these severities reaches
    the band's lower edge (severe categories always get the second look)."""

    surfaces: tuple[str, ...] | None = None
    jurisdictions: tuple[str, ...] | None = None
    band: Band | None = None
    severities: tuple[Severity, ...] | None = None


class Stage(_Strict):
    """One step of the detection plan: these detectors, run when the gate lets the item through.

    ``async: true`` returns (and stores) the decision without waiting for this
    stage; when it finishes, its signals make a new decision that supersedes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    detectors: tuple[str, ...] = Field(min_length=1)
    when: Gate | None = None
    run_async: bool = Field(default=False, alias="async")
    description: str | None = None

    @field_validator("detectors", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class ReviewRoute(_Strict):
    """Items matching every given condition go to ``queue`` (first matching route wins)."""

    queue: str = Field(min_length=1)
    categories: tuple[str, ...] | None = None
    surfaces: tuple[str, ...] | None = None
    jurisdictions: tuple[str, ...] | None = None
    severities: tuple[Severity, ...] | None = None


class ReviewQueue(_Strict):
    """A named review queue: its SLA and the weights of its priority (docs/review.md)."""

    description: str | None = None
    sla_hours: float = Field(default=24.0, gt=0)
    severity_weight: float = Field(default=1.0, ge=0)
    reach_weight: float = Field(default=1.0, ge=0)
    uncertainty_weight: float = Field(default=1.0, ge=0)
    deadline_weight: float = Field(default=1.0, ge=0)
    reach_field: str = Field(default="followers", description="The item context field giving expected reach.")


class StrikeThreshold(_Strict):
    points: float = Field(gt=0)
    account_action: str = Field(min_length=1, description="e.g. warn, suspend_7d, terminate")
    duration_days: int | None = Field(
        default=None, gt=0, description="How long the account action lasts; none: until lifted (docs/review.md).")
    item_action: Action | None = Field(
        default=None, description="What the author's items get while the account action lasts (e.g. remove); "
                                  "none: their items are decided as anyone's.")


class Strikes(_Strict):
    window_days: int = Field(default=90, gt=0)
    weights: dict[str, float] = Field(default_factory=dict, description="Category -> strike points.")
    thresholds: tuple[StrikeThreshold, ...] = ()


class Review(_Strict):
    """Human review: queues, routing, QA sampling, appeals, strikes."""

    queues: dict[str, ReviewQueue] = Field(min_length=1)
    routes: tuple[ReviewRoute, ...] = ()
    default_queue: str
    appeals_queue: str
    senior_queue: str
    qa_sample_rate: float = Field(default=0.0, ge=0, le=1, description="Share of decisions sampled for double review.")
    held_uphold_action: Action = Field(default=Action.remove, description="An upheld hold_for_review becomes this.")
    strikes: Strikes | None = None

    @model_validator(mode="after")
    def _queues_exist(self) -> Review:
        named = [("default_queue", self.default_queue), ("appeals_queue", self.appeals_queue),
                 ("senior_queue", self.senior_queue)]
        named += [(f"routes[{i}].queue", r.queue) for i, r in enumerate(self.routes)]
        for where, queue in named:
            if queue not in self.queues:
                raise ValueError(f"{where}: unknown queue {queue!r}; declare it under review.queues "
                                 f"(declared: {', '.join(sorted(self.queues))})")
        return self


class DsaRestriction(_Strict):
    """The DSA restriction fields a referee action maps to (statements of reasons)."""

    visibility: tuple[str, ...] = Field(default=(), description="DECISION_VISIBILITY_* values.")
    visibility_other: str | None = None
    monetary: str | None = Field(default=None, description="A DECISION_MONETARY_* value.")
    provision: str | None = Field(default=None, description="A DECISION_PROVISION_* value.")
    account: str | None = Field(default=None, description="A DECISION_ACCOUNT_* value.")
    duration_days: int | None = Field(default=None, gt=0, description="End of the restriction; none: indefinite.")


class DsaCategory(_Strict):
    """How a policy category is reported: the DSA category, keywords and the decision's ground."""

    category: str = Field(pattern=r"^STATEMENT_CATEGORY_[A-Z_]+$")
    keywords: tuple[str, ...] = Field(default=(), description="KEYWORD_* values (category_specification).")
    ground: Literal["illegal", "incompatible"] = "incompatible"
    legal_ground: str | None = Field(default=None, description="The law relied on (ground: illegal).")
    terms_ground: str | None = Field(default=None, description="The terms-of-service clause (ground: incompatible).")
    explanation: str = Field(min_length=1)
    reference_url: str | None = None


class Dsa(_Strict):
    """The mapping from referee's categories and actions to DSA statements of reasons (docs/compliance.md)."""

    puid_prefix: str = Field(default="referee", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    countries: tuple[str, ...] | None = Field(
        default=None, description="Countries whose decisions get a statement; none: every EU/EEA country.")
    actions: dict[Action, DsaRestriction] = Field(min_length=1, description="Restricting actions only.")
    strike: DsaRestriction | None = Field(default=None, description="Added to a decision carrying a strike.")
    account_actions: dict[str, DsaRestriction] = Field(
        default_factory=dict, description="Account action (review.strikes) -> its restriction (decision_account).")
    categories: dict[str, DsaCategory] = Field(min_length=1)
    default_category: DsaCategory | None = Field(default=None, description="For a category not listed.")
    content_types: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Surface -> CONTENT_TYPE_* values (default: CONTENT_TYPE_TEXT).")
    reference_url: str | None = Field(default=None, description="The terms of service (decision_ground_reference_url).")


class PolicyDocument(_Strict):
    """The YAML file as written."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1)
    description: str | None = None
    categories: dict[str, Category] = Field(min_length=1)
    detectors: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Detector name -> that detector's settings."
    )
    surfaces: dict[str, SurfaceRules]
    jurisdictions: dict[str, Jurisdiction] = Field(default_factory=dict)
    openai_categories: dict[str, tuple[str, ...]] | None = Field(
        default=None,
        description=(
            "OpenAI Moderation category name -> the policy categories that must all fire for it "
            "(POST /v1/moderations). Without it, each policy category answers under its own name."
        ),
    )
    plan: tuple[Stage, ...] | None = Field(
        default=None, description="Ordered detection stages; one stage of every detector when omitted."
    )
    on_uninspected: Action = Field(
        default=Action.hold_for_review,
        description="Action for an item with a part (an image, audio) that no configured detector reads.",
    )
    reautomation: Literal["keep_human", "override"] = Field(
        default="keep_human",
        description="Whether re-moderating an item whose current decision is a human verdict may replace it.",
    )
    review: Review | None = Field(default=None, description="Human review queues and appeals (docs/review.md).")
    dsa: Dsa | None = Field(default=None, description="DSA statements of reasons: the mapping (docs/compliance.md).")
    tests: tuple[PolicyTest, ...] = ()
    tests_file: str | None = Field(default=None, description="A sibling YAML file with more tests.")

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # YAML reads 2026.11 as a float; a version is a label, keep it as written.
        return str(value) if isinstance(value, int | float) else value
