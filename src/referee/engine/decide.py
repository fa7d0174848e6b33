"""Signals + rules → Decision. Pure: no I/O, no clock but the one passed in.

Every rule that applies to the item's surface and jurisdiction is checked; the
most severe action among the rules that fired wins, and every fired rule
becomes a reason, so a reviewer (or a regulator) sees all of them, not only
the winner. Ties between equally severe rules keep file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from referee.model import (
    Action,
    ContentItem,
    Decision,
    DetectorFailure,
    Reason,
    Signal,
    SignalRef,
    decision_key,
    utcnow,
)
from referee.policy import Policy, Rule

#: Rules with ``threshold: model_default`` fall back to this when a signal carries no
#: operating threshold (e.g. the lexicon, whose scores are list weights).
FALLBACK_THRESHOLD = 0.5

#: Actions a person must confirm before they count as final.
_REVIEW_ACTIONS = {Action.hold_for_review}


def decide(
    policy: Policy,
    item: ContentItem,
    signals: Sequence[Signal],
    failures: Sequence[DetectorFailure] = (),
    detector_versions: dict[str, str] | None = None,
    now: datetime | None = None,
) -> Decision:
    versions = dict(detector_versions or {})
    reasons: list[Reason] = []
    for rule in policy.rules_for(item.surface, item.country):
        reason = _evaluate(policy, rule, signals, failures)
        if reason is not None:
            reasons.append(reason)

    action = Action.most_severe([r.action for r in reasons])
    # Severity-sorted, stable: the reason that set the action comes first.
    reasons.sort(key=lambda r: -r.action.severity)
    categories = sorted({r.category for r in reasons if r.category and r.action is not Action.allow})
    return Decision(
        decision_id=decision_key(item, policy.id, policy.version, versions),
        item_id=item.id,
        content_hash=item.content_hash(),
        surface=item.surface,
        country=item.country,
        action=action,
        strike=any(r.strike for r in reasons),
        categories=tuple(categories),
        reasons=tuple(reasons),
        signals=tuple(signals),
        failures=tuple(failures),
        policy_id=policy.id,
        policy_version=policy.version,
        detector_versions=versions,
        review_required=action in _REVIEW_ACTIONS,
        created_at=now or utcnow(),
    )


def _evaluate(
    policy: Policy, rule: Rule, signals: Sequence[Signal], failures: Sequence[DetectorFailure]
) -> Reason | None:
    categories = set(policy.rule_categories(rule))
    relevant = [
        s for s in signals
        if s.category in categories and (rule.detectors is None or s.detector in rule.detectors)
    ]
    hits = [s for s in relevant if s.score >= _threshold(rule, s)]
    if hits:
        top = max(hits, key=lambda s: s.score)
        threshold = _threshold(rule, top)
        return Reason(
            rule_id=rule.id,
            kind="threshold",
            category=top.category,
            action=rule.action,
            strike=rule.strike,
            threshold=threshold,
            signals=tuple(SignalRef(detector=s.detector, category=s.category, score=round(s.score, 6)) for s in hits),
            message=(
                f"{top.category}: {top.detector} scored {top.score:.2f} ≥ {threshold:.2f} "
                f"(rule {rule.id} → {rule.action.value})"
            ),
        )
    failed = tuple(
        f.detector for f in failures if rule.detectors is None or f.detector in rule.detectors
    )
    if failed:
        action = Action(rule.on_error)
        return Reason(
            rule_id=rule.id,
            kind="on_error",
            category=None,
            action=action,
            failed_detectors=failed,
            message=(
                f"{', '.join(failed)} failed, so rule {rule.id} could not be checked; "
                f"policy says on_error → {action.value}"
            ),
        )
    return None


def _threshold(rule: Rule, signal: Signal) -> float:
    if rule.threshold == "model_default":
        return signal.operating_threshold if signal.operating_threshold is not None else FALLBACK_THRESHOLD
    return float(rule.threshold)
