"""Labels stay as written: YAML reads ``2026.10`` as a float and ``NO`` as false; a policy must not."""

from __future__ import annotations

import pytest

from referee.policy import Policy
from referee.policy.diff import diff
from referee.policy.lint import check_duplicate_keys, read_yaml

POLICY = """\
id: ID
version: VERSION
categories:
  hate: {description: hate}
  2026: {description: a category named by a year}
detectors:
  keyword: {delay_s: 0.5, fail_on: 10}
surfaces:
  default:
    rules:
      - {id: 10, categories: "*", threshold: 1, action: hold_for_review}
  comment:
    rules:
      - {id: 1.50, categories: [hate, 2026], threshold: 0.8, action: remove}
jurisdictions:
  EU:
    countries: [NO, DE]
    surfaces:
      comment: {remove_rules: [1.50]}
"""


def load(version: str = '"1"', id_: str = "p") -> Policy:
    return Policy.from_yaml(POLICY.replace("VERSION", version).replace("ID", id_))


@pytest.mark.parametrize("written", ["2026.10", "2026.1", "1", "2026.10.0", "2026-10-01", '"2026.10"', "1e3", "0x1F"])
def test_version_is_the_text_as_written(written: str) -> None:
    assert load(version=written).version == written.strip('"')


def test_unquoted_version_2026_10_is_not_2026_1() -> None:
    """The measured fault: ``version: 2026.10`` was recorded as ``2026.1``."""
    older, newer = load(version="2026.9"), load(version="2026.10")
    assert newer.version == "2026.10"
    [change] = diff(older, newer)
    assert (change.where, change.old, change.new) == ("version", "2026.9", "2026.10")


def test_ids_countries_and_category_names_as_written() -> None:
    policy = load(id_="2026")
    assert policy.id == "2026"
    assert [r.id for r in policy.rules_for("default")] == ["10"]
    assert [r.id for r in policy.rules_for("comment")] == ["1.50"]
    assert policy.rules_for("comment")[0].categories == ("hate", "2026")
    assert policy.categories == ["hate", "2026"]
    assert policy.document.jurisdictions["EU"].countries == ("NO", "DE")  # Norway, not False
    assert policy.rules_for("comment", "NO") == ()  # the layer removed rule '1.50' for Norway


def test_numbers_that_are_numbers_stay_numbers() -> None:
    policy = load()
    assert policy.rules_for("default")[0].threshold == 1.0
    # Detector settings are the detector's to read: left as YAML reads them.
    assert policy.detector_config("keyword") == {"delay_s": 0.5, "fail_on": 10}


def test_merge_keys_and_aliases() -> None:
    text = "base: &b {id: 7, x: 1}\nrules:\n  - <<: *b\n    version: 2.10\n    x: 2\n  - *b\n"
    node, data = read_yaml(text)
    assert data == {"base": {"id": "7", "x": 1}, "rules": [{"id": "7", "x": 2, "version": "2.10"}, {"id": "7", "x": 1}]}
    # Overriding a merged key is what merges are for, not a duplicate key.
    assert check_duplicate_keys(node, "p.yaml") == []


def test_a_policy_sharing_rules_through_an_anchor_loads() -> None:
    text = POLICY.replace("VERSION", "1").replace("ID", "p").replace(
        '      - {id: 10, categories: "*", threshold: 1, action: hold_for_review}',
        '      - &strict {id: 10, categories: "*", threshold: 1, action: hold_for_review}',
    ).replace("      - {id: 1.50,", "      - {<<: *strict, id: 11, threshold: 0.3}\n      - {id: 1.50,")
    policy = Policy.from_yaml(text)
    assert [(r.id, r.threshold) for r in policy.rules_for("comment")] == [("11", 0.3), ("1.50", 0.8)]
