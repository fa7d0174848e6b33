"""Signals + rules → Decision. Pure: no I/O, no clock but the one passed in.

Every rule that applies to the item's surface and jurisdiction is checked; the
most severe action among the rules that fired wins, and every fired rule
becomes a reason, so a reviewer (or a regulator) sees all of them, not only
the winner. Ties between equally severe rules keep file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from referee import ids
from referee.model.account import AccountRestriction
from referee.model.base import assemble
from referee.model import (
    Action,
    ContentItem,
    Decision,
    DetectorFailure,
    Reason,
    Signal,
    SignalRef,
    StageRun,
    utcnow,
)
from referee.policy import Policy
from referee.policy.compile import CompiledRule

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
    *,
    stages: Sequence[StageRun] = (),
    uninspected: Sequence[str] = (),
    supersedes: str | None = None,
    engine_config_id: str = "",
    account: AccountRestriction | None = None,
) -> Decision:
    """The decision for one item. ``uninspected`` names parts no detector read
    (the policy's ``on_uninspected`` applies); ``stages`` is what the plan did;
    ``account`` is the author's account restriction in force, whose item action
    applies beside the rules (a reason of kind ``account``)."""
    versions = dict(detector_versions or {})
    by_category: dict[str, list[Signal]] = {}
    for s in signals:
        by_category.setdefault(s.category, []).append(s)
    reasons: list[Reason] = []
    for compiled in policy.compiled_rules(item.surface, item.country):
        reason = _evaluate(compiled, by_category, failures)
        if reason is not None:
            reasons.append(reason)

    if uninspected:
        action_if = policy.document.on_uninspected
        reasons.append(assemble(Reason, 
            rule_id="policy.on_uninspected",
            kind="uninspected",
            category=None,
            action=action_if,
            strike=False,
            threshold=None,
            signals=(),
            failed_detectors=(),
            parts=tuple(uninspected),
            message=(
                f"no configured detector reads part(s) {', '.join(uninspected)}; "
                f"policy says on_uninspected → {action_if.value}"
            ),
        ))

    if account is not None:
        until = f" until {account.until:%Y-%m-%d %H:%M} UTC" if account.until is not None else ""
        reasons.append(assemble(Reason,
            rule_id=account.rule_id,
            kind="account",
            category=None,
            action=account.item_action,
            strike=False,
            threshold=None,
            signals=(),
            failed_detectors=(),
            parts=(),
            message=(f"the author's account is under '{account.account_action}'{until}; "
                     f"policy says its items → {account.item_action.value}"),
        ))

    action = Action.most_severe([r.action for r in reasons])
    # Severity-sorted, stable: the reason that set the action comes first.
    reasons.sort(key=lambda r: -r.action.severity)
    # Every category whose signal crossed an acting rule's threshold, not only each
    # rule's top one: "#hate #violence" must report both.
    categories = sorted({ref.category for r in reasons if r.action is not Action.allow for ref in r.signals})
    # Every part below was validated on the way in (item, signals, policy), so the
    # Decision is assembled without re-validating: this step runs for every item.
    key = input_key_of(policy, item, versions, engine_config_id)
    return assemble(Decision, 
        decision_id=ids.decision_id(key, supersedes),
        input_key=key,
        item_id=item.id,
        content_hash=item.content_hash,
        surface=item.surface,
        country=item.country,
        action=action,
        strike=any(r.strike for r in reasons),
        categories=tuple(categories),
        reasons=tuple(reasons),
        signals=tuple(signals),
        failures=tuple(failures),
        stages=tuple(stages),
        provisional=bool(failures) or any(s.status == "pending" for s in stages),
        policy_id=policy.id,
        policy_version=policy.version,
        policy_sha256=policy.sha256,
        engine_config_id=engine_config_id,
        detector_versions=versions,
        automated_detection=True,
        automated_decision=True,
        review_required=action in _REVIEW_ACTIONS,
        source="automated",
        supersedes=supersedes,
        created_at=now or utcnow(),
    )


def input_key_of(policy: Policy, item: ContentItem, detector_versions: dict[str, str], engine_config_id: str) -> str:
    """The input key of an automated decision about ``item`` (see ``referee.ids``)."""
    return ids.input_key(item.id, item.content_hash, item.country, policy.id, policy.version, policy.sha256,
                         detector_versions, engine_config_id)


def _evaluate(
    compiled: CompiledRule, by_category: dict[str, list[Signal]], failures: Sequence[DetectorFailure]
) -> Reason | None:
    rule = compiled.rule
    hits: list[tuple[Signal, float]] = []
    for category in compiled.categories:
        for s in by_category.get(category, ()):
            if compiled.detectors is not None and s.detector not in compiled.detectors:
                continue
            threshold = compiled.threshold
            if threshold is None:
                threshold = s.operating_threshold if s.operating_threshold is not None else FALLBACK_THRESHOLD
            if s.score >= threshold:
                hits.append((s, threshold))
    if hits:
        top, threshold = max(hits, key=lambda h: h[0].score)
        return assemble(Reason, 
            rule_id=rule.id,
            kind="threshold",
            category=top.category,
            action=rule.action,
            strike=rule.strike,
            threshold=threshold,
            signals=tuple(
                assemble(SignalRef, detector=s.detector, category=s.category, score=round(s.score, 6))
                for s, _ in hits
            ),
            failed_detectors=(),
            parts=(),
            message=(
                f"{top.category}: {top.detector} scored {top.score:.2f} ≥ {threshold:.2f} "
                f"(rule {rule.id} → {rule.action.value})"
            ),
        )
    if not failures:
        return None
    failed = tuple(f.detector for f in failures if compiled.detectors is None or f.detector in compiled.detectors)
    if not failed:
        return None
    action = Action(rule.on_error)
    return assemble(Reason, 
        rule_id=rule.id,
        kind="on_error",
        category=None,
        action=action,
        strike=False,
        threshold=None,
        signals=(),
        failed_detectors=failed,
        parts=(),
        message=(
            f"{', '.join(failed)} failed, so rule {rule.id} could not be checked; "
            f"policy says on_error → {action.value}"
        ),
    )
