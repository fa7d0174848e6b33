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
from referee.model import (
    Action,
    ContentItem,
    Decision,
    DetectorFailure,
    Reason,
    Signal,
    SignalRef,
    StageRun,
    TextPart,
    utcnow,
)
from referee.model.account import AccountRestriction
from referee.model.base import assemble
from referee.policy import Policy
from referee.policy.compile import CompiledRule
from referee.policy.schema import Rule

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
    derived: Sequence[TextPart] = (),
) -> Decision:
    """The decision for one item. ``uninspected`` names parts no detector read
    (the policy's ``on_uninspected`` applies); ``stages`` is what the plan did;
    ``account`` is the author's account restriction in force, whose item action
    applies beside the rules (a reason of kind ``account``); ``derived`` are the
    text parts detectors derived (transcripts: their segments give each audio
    part's transcribed time, which ``segments: {share: ...}`` rules divide by)."""
    versions = dict(detector_versions or {})
    reasons: list[Reason] = []
    # A rule fires only on a signal or a failed detector, so an item with neither (most
    # items) has no rule to check: the loop below would find nothing.
    if signals or failures:
        by_category: dict[str, list[Signal]] = {}
        for s in signals:
            by_category.setdefault(s.category, []).append(s)
        rules = policy.compiled_rules(item.surface, item.country)
        if not getattr(rules, "needs_segments", False):
            for compiled in rules:
                reason = _evaluate(compiled, by_category, failures)
                if reason is not None:
                    reasons.append(reason)
        else:
            durations = transcribed_seconds(derived)
            for compiled in rules:
                reason = (_evaluate(compiled, by_category, failures) if compiled.segments is None
                          else _evaluate_segments(compiled, by_category, failures, durations))
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

    if reasons:
        action = Action.most_severe([r.action for r in reasons])
        # Severity-sorted, stable: the reason that set the action comes first.
        reasons.sort(key=lambda r: -r.action.severity)
        # Every category whose signal crossed an acting rule's threshold, not only each
        # rule's top one: "#hate #violence" must report both.
        categories = tuple(sorted({ref.category for r in reasons if r.action is not Action.allow
                                   for ref in r.signals}))
        strike = any(r.strike for r in reasons)
    else:
        action, categories, strike = Action.allow, (), False
    provisional = bool(failures) or any(s.status == "pending" for s in stages)
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
        strike=strike,
        categories=categories,
        reasons=tuple(reasons),
        signals=tuple(signals),
        failures=tuple(failures),
        stages=tuple(stages),
        provisional=provisional,
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
    return _evaluate_failures(compiled, failures) if failures else None


def _evaluate_failures(compiled: CompiledRule, failures: Sequence[DetectorFailure]) -> Reason | None:
    """The rule's ``on_error`` when a detector it depends on failed for the item."""
    rule = compiled.rule
    if not failures:
        return None
    failed = tuple(f.detector for f in failures if compiled.detectors is None or f.detector in compiled.detectors)
    if not failed:
        return None
    return _unchecked(rule, failed, (), f"{', '.join(failed)} failed, so rule {rule.id} could not be checked")


def _unchecked(rule: Rule, failed: tuple[str, ...], parts: tuple[str, ...], why: str) -> Reason:
    """A rule that could not be checked takes the policy's ``on_error`` action, never allow."""
    action = Action(rule.on_error)
    return assemble(Reason, rule_id=rule.id, kind="on_error", category=None, action=action, strike=False,
                    threshold=None, signals=(), failed_detectors=failed, parts=parts,
                    message=f"{why}; policy says on_error → {action.value}")


# -- rules on audio segments (policy ``segments:``) ------------------------------
#: A time-coded piece of evidence: (start_s, end_s, score, the signal it belongs to).
_Timed = tuple[float, float, float, Signal]


def transcribed_seconds(derived: Sequence[TextPart]) -> dict[str, float]:
    """Each source part's transcribed time: where its derived text's last segment ends."""
    out: dict[str, float] = {}
    for part in derived:
        source = part.derived
        if source is not None and source.segments:
            end = max(seg.end_s for seg in source.segments)
            out[source.source_part] = max(out.get(source.source_part, 0.0), end)
    return out


def evidence_score(ev_detail: dict[str, object], signal_score: float) -> float:
    """A time range's own score: ``detail.score`` if the detector gives one (the lexicon's
    ``weight`` counts as one), else the signal's; never above the signal's score."""
    for key in ("score", "weight"):
        value = ev_detail.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return min(float(value), signal_score)
    return signal_score


def _stretches(ranges: list[_Timed]) -> list[tuple[float, float]]:
    """Flagged ranges with overlapping ones joined (ranges that only touch stay apart)."""
    out: list[tuple[float, float]] = []
    for start, end, _, _ in sorted(ranges, key=lambda r: (r[0], r[1])):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _clock(seconds: float) -> str:
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _evaluate_segments(
    compiled: CompiledRule, by_category: dict[str, list[Signal]], failures: Sequence[DetectorFailure],
    durations: dict[str, float],
) -> Reason | None:
    """A ``segments`` rule: per audio part, the worst flagged segment, the share of its
    transcribed time flagged, or the number of flagged segments. The first part (by
    name) that meets the rule fires it; a share that cannot be measured (no transcribed
    time for a part with flagged segments) is the rule's ``on_error``, never an allow."""
    rule, seg = compiled.rule, compiled.segments
    assert seg is not None
    flagged: dict[str, list[_Timed]] = {}
    thresholds: dict[str, float] = {}
    for category in compiled.categories:
        for s in by_category.get(category, ()):
            if compiled.detectors is not None and s.detector not in compiled.detectors:
                continue
            threshold = compiled.threshold
            if threshold is None:
                threshold = s.operating_threshold if s.operating_threshold is not None else FALLBACK_THRESHOLD
            for ev in s.evidence:
                if ev.start_s is None or ev.end_s is None:
                    continue
                score = evidence_score(ev.detail, s.score)
                if score >= threshold:
                    part = ev.source_part or ev.part_id or "audio"
                    flagged.setdefault(part, []).append((ev.start_s, ev.end_s, score, s))
                    thresholds[part] = min(thresholds.get(part, threshold), threshold)
    unmeasured: list[str] = []
    for part in sorted(flagged):
        ranges = flagged[part]
        stretches = _stretches(ranges)
        at = ", ".join(f"{_clock(a)}-{_clock(b)}" for a, b in stretches[:5]) + (", …" if len(stretches) > 5 else "")
        threshold = thresholds[part]
        top = max(ranges, key=lambda r: r[2])
        if seg.aggregate == "worst":
            what = f"worst segment {_clock(top[0])}-{_clock(top[1])} scored {top[2]:.2f} ≥ {threshold:.2f}"
        elif seg.aggregate == "count":
            if len(stretches) < (seg.count or 0):
                continue
            what = f"{len(stretches)} flagged segments ≥ {seg.count} (at {at}; scores ≥ {threshold:.2f})"
        else:
            total = durations.get(part, 0.0)
            if total <= 0:
                unmeasured.append(part)
                continue
            share = min(1.0, sum(b - a for a, b in stretches) / total)
            if share < (seg.share or 0.0):
                continue
            what = (f"{share:.1%} of {total:.1f} s flagged ≥ {seg.share:.0%} "
                    f"(at {at}; scores ≥ {threshold:.2f})")
        signals = {(s.detector, s.category): s for _, _, _, s in ranges}
        return assemble(Reason,
            rule_id=rule.id,
            kind="threshold",
            category=top[3].category,
            action=rule.action,
            strike=rule.strike,
            threshold=threshold,
            signals=tuple(assemble(SignalRef, detector=s.detector, category=s.category, score=round(s.score, 6))
                          for s in signals.values()),
            failed_detectors=(),
            parts=(part,),
            message=f"{top[3].category} in {part}: {what} (rule {rule.id} → {rule.action.value})",
        )
    if unmeasured:
        return _unchecked(rule, (), tuple(unmeasured),
                          f"rule {rule.id} needs the transcribed time of {', '.join(unmeasured)}, which has "
                          "flagged segments but no transcript timing")
    return _evaluate_failures(compiled, failures)
