"""``segments:`` rules in the policy: the schema, lint's checks, and what shadows what."""

from __future__ import annotations

import pytest

from referee.detectors.base import Detector
from referee.errors import PolicyError
from referee.model import ContentItem, Signal
from referee.policy import Policy
from referee.policy.lint import ERROR, WARNING, check_text
from referee.registry import Registry


class Words(Detector):
    name = "lexicon"

    @property
    def categories(self) -> tuple[str, ...]:
        return ("hate",)

    def detect(self, item: ContentItem) -> list[Signal]:
        return []


class Transcriber(Words):
    """Derives text from audio: what makes time-coded evidence (no model needed for lint)."""

    name = "transcribe"
    reads = frozenset({"audio"})
    derives = True


def two_detectors() -> Registry[type[Detector]]:
    """Only these two, so the test needs neither the media extra nor its imports."""
    out: Registry[type[Detector]] = Registry("detector", base_cls=Detector)
    out.register("lexicon", Words)
    out.register("transcribe", Transcriber)
    return out

HEAD = """\
id: p
version: "1"
categories:
  hate: {description: hate}
detectors:
  DETECTORS
surfaces:
  default:
    rules:
"""


def policy(*rules: str, detectors: str = "lexicon: {}") -> str:
    return HEAD.replace("DETECTORS", detectors) + "".join(f"      - {r}\n" for r in rules)


def problems(text: str, severity: str, registry: bool = False) -> list[str]:
    checked = check_text(text, "p.yaml", registry=two_detectors() if registry else None)
    return [f"{p.line}: {p.path}: {p.message}" for p in checked.problems if p.severity == severity]


def test_a_segments_rule_loads_and_compiles() -> None:
    loaded = Policy.from_yaml(policy("{id: s, categories: hate, threshold: 0.8, segments: {share: 0.1}, action: remove}"))
    (rule,) = loaded.compiled_rules("default")
    assert rule.segments is not None and rule.segments.aggregate == "share" and rule.segments.share == 0.1


@pytest.mark.parametrize(("segments", "message"), [
    ("{share: 0.1, count: 2}", "exactly one of 'worst: true', 'share: 0..1' or 'count: n', got share, count"),
    ("{}", "got none"),
    ("{share: 1.5}", "less than or equal to 1"),
    ("{count: 0}", "greater than or equal to 1"),
    ("{shares: 0.1}", "segments.shares: unknown field"),
])
def test_a_bad_segments_block_is_an_error_on_its_line(segments: str, message: str) -> None:
    text = policy("{id: d, categories: hate, threshold: 0.5, action: hold_for_review}",
                  f"{{id: s, categories: hate, threshold: 0.8, segments: {segments}, action: remove}}")
    errors = problems(text, ERROR)
    assert any(e.startswith("11: ") and message in e for e in errors), errors
    with pytest.raises(PolicyError):
        Policy.from_yaml(text)


def test_a_segments_rule_without_a_transcriber_is_a_warning() -> None:
    rule = "{id: s, categories: hate, threshold: 0.8, segments: {count: 3}, action: remove}"
    warned = problems(policy(rule), WARNING, registry=True)
    assert any(w.startswith("10: ") and "no configured detector transcribes audio" in w for w in warned), warned
    with_transcriber = problems(policy(rule, detectors="{lexicon: {}, transcribe: {}}"), WARNING, registry=True)
    assert not any("transcribes audio" in w for w in with_transcriber), with_transcriber


def test_a_plain_rule_shadows_a_segments_rule_but_not_the_other_way_round() -> None:
    plain = "{id: plain, categories: hate, threshold: 0.5, action: remove}"
    seg = "{id: seg, categories: hate, threshold: 0.8, segments: {share: 0.1}, action: remove}"
    assert any("rule 'seg' is unreachable: rule 'plain'" in e for e in problems(policy(plain, seg), ERROR))
    weaker_plain = "{id: plain, categories: hate, threshold: 0.9, action: remove}"
    assert not any("unreachable" in e for e in problems(policy(seg, weaker_plain), ERROR))
    # Two segments rules compare when they aggregate alike: share 0.1 fires whenever share 0.2 does.
    wide = "{id: wide, categories: hate, threshold: 0.8, segments: {share: 0.1}, action: remove}"
    narrow = "{id: narrow, categories: hate, threshold: 0.8, segments: {share: 0.2}, action: remove}"
    assert any("rule 'narrow' is unreachable: rule 'wide'" in e for e in problems(policy(wide, narrow), ERROR))
    count = "{id: count, categories: hate, threshold: 0.8, segments: {count: 2}, action: remove}"
    assert not any("unreachable" in e for e in problems(policy(wide, count), ERROR))
