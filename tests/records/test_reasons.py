"""Statements of reasons: the schema accepts a correct statement and names the field and the
reason of each kind of error; statements come from restricting EU/EEA decisions only, carry no
personal data, and are exported in batches of at most 100."""

from __future__ import annotations

import copy
import json

import pytest

from referee.model import Action
from referee.policy import load_policy
from referee.records.reasons import BATCH, Statements, StatementValidator, export, read_export
from tests.records.conftest import decision, item

GOOD = {
    "decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
    "decision_account": "DECISION_ACCOUNT_SUSPENDED",
    "end_date_account_restriction": "2026-02-08",
    "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
    "incompatible_content_ground": "Terms 4.1",
    "incompatible_content_explanation": "Attacks people for a protected characteristic.",
    "content_type": ["CONTENT_TYPE_TEXT"],
    "category": "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
    "category_specification": ["KEYWORD_HATE_SPEECH"],
    "territorial_scope": ["DE"],
    "content_language": "EN",
    "content_date": "2026-01-30",
    "application_date": "2026-02-01",
    "decision_facts": "referee's automated moderation decided 'remove'.",
    "source_type": "SOURCE_VOLUNTARY",
    "automated_detection": "Yes",
    "automated_decision": "AUTOMATED_DECISION_FULLY",
    "puid": "referee-abc123",
}


@pytest.fixture(scope="module")
def validator() -> StatementValidator:
    return StatementValidator()


@pytest.fixture(scope="module")
def policy():
    return load_policy("policies/default.yaml")


def _with(**changes):
    body = copy.deepcopy(GOOD)
    for k, v in changes.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    return body


def test_a_correct_statement_is_accepted(validator):
    assert validator.errors(GOOD) == []


@pytest.mark.parametrize(("changes", "field", "reason"), [
    ({"category": None}, "category", "is required"),
    ({"puid": None}, "puid", "is required"),
    ({"category": "STATEMENT_CATEGORY_HATE"}, "category", "is not an allowed value"),
    ({"decision_visibility": ["DECISION_VISIBILITY_HIDDEN"]}, "decision_visibility.0", "is not an allowed value"),
    ({"territorial_scope": ["US"]}, "territorial_scope.0", "is not an allowed value"),
    ({"territorial_scope": []}, "territorial_scope", "should be non-empty"),
    ({"automated_detection": True}, "automated_detection", "is not an allowed value"),
    ({"decision_facts": "x" * 5001}, "decision_facts", "is too long"),
    ({"content_date": "01/02/2026"}, "content_date", "does not match"),
    ({"puid": "has spaces in it"}, "puid", "does not match"),
    ({"author_id": "u-1"}, "(statement)", "unknown field(s)"),
    ({"decision_visibility": None, "decision_account": None, "end_date_account_restriction": None},
     "decision_visibility", "one of decision_visibility, decision_monetary, decision_provision, decision_account"),
    ({"incompatible_content_ground": None}, "incompatible_content_ground", "is required"),
    ({"decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT"}, "illegal_content_legal_ground", "is required"),
    ({"decision_visibility": ["DECISION_VISIBILITY_OTHER"]}, "decision_visibility_other", "is required"),
    ({"end_date_account_restriction": "2026-01-01"}, "end_date_account_restriction",
     "must be on or after the application_date 2026-02-01"),
    ({"application_date": "2019-12-31", "end_date_account_restriction": None}, "application_date",
     "must be on or after 2020-01-01"),
])
def test_each_kind_of_error_is_named_by_field_and_reason(validator, changes, field, reason):
    errors = validator.errors(_with(**changes))
    assert errors, "accepted an invalid statement"
    assert any(f == field and reason in r for f, r in errors), errors


def _statements(store, policy):
    return Statements(store.db, store.log, policy)


def test_statements_come_from_restricting_eu_decisions_only(store, policy):
    de, us, ok = item("de"), item("us", country="US"), item("ok")
    store.log.append([(de, decision(de, strike=True)), (us, decision(us)),
                      (ok, decision(ok, action=Action.allow, categories=()))])
    found = list(_statements(store, policy).iter())
    assert len(found) == 1
    s = found[0]
    assert s.decision_id == decision(de).decision_id and s.puid == "referee-" + s.decision_id
    assert s.body["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    # A strike alone restricts no account (account actions have statements of their own).
    assert "decision_account" not in s.body and "end_date_account_restriction" not in s.body
    assert s.body["category"] == "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH"
    assert s.body["category_specification"] == ["KEYWORD_HATE_SPEECH"]
    assert s.body["territorial_scope"] == ["DE"] and s.body["content_language"] == "EN"
    assert s.body["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert s.body["source_type"] == "SOURCE_VOLUNTARY"


def test_illegal_ground_notices_and_human_decisions(store, policy):
    it = item("m", created_at=None)
    it = it.model_copy(update={"context": {"dsa_notice": "trusted_flagger"}})
    first = store.log.append([(it, decision(it, action=Action.hold_for_review, categories=("sexual_minors",)))])[0]
    store.log.supersede(first.decision_id, decision(it, categories=("sexual_minors",), source="review",
                                                    supersedes=first, automated_decision=False))
    (s,) = list(_statements(store, policy).iter())
    assert s.body["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert s.body["category"] == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
    assert s.body["illegal_content_legal_ground"].startswith("Directive 2011/93/EU")
    assert s.body["source_type"] == "SOURCE_TRUSTED_FLAGGER"
    assert s.body["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"


def test_a_re_decision_with_the_same_restriction_makes_no_second_statement(store, policy):
    it = item("r")
    first = store.log.append([(it, decision(it))])[0]
    store.log.supersede(first.decision_id, decision(it, source="review", supersedes=first))
    assert len(list(_statements(store, policy).iter())) == 1


def test_export_writes_batches_of_at_most_100_and_no_personal_data(store, policy, tmp_path):
    pairs = []
    for i in range(250):
        it = item(i, text="my phone is 555-0100 and I hate", author="alice@example.org")
        pairs.append((it, decision(it)))
    store.log.append(pairs)
    out = tmp_path / "sor.jsonl"
    result = export(_statements(store, policy), out)
    assert (result.written, result.batches, result.invalid) == (250, 3, [])
    lines = out.read_text().splitlines()
    assert [len(json.loads(line)["statements"]) for line in lines] == [BATCH, BATCH, 50]
    text = out.read_text()
    assert "alice" not in text and "555-0100" not in text and "item-" not in text
    assert len({b["puid"] for b in read_export(out)}) == 250


def test_an_invalid_statement_is_reported_and_not_exported(store, tmp_path):
    raw = open("policies/default.yaml").read().replace("KEYWORD_HATE_SPEECH", "KEYWORD_HATEFUL")
    path = tmp_path / "p.yaml"
    path.write_text(raw)
    (tmp_path / "default.tests.yaml").write_text(open("policies/default.tests.yaml").read())
    bad_policy = load_policy(str(path))
    it, ok = item("h"), item("v")
    store.log.append([(it, decision(it)), (ok, decision(ok, categories=("violence",)))])
    result = export(Statements(store.db, store.log, bad_policy), tmp_path / "o.jsonl")
    assert result.written == 1
    (err,) = result.invalid
    assert err.field == "category_specification.0" and "'KEYWORD_HATEFUL' is not an allowed value" in err.reason
    assert err.decision_id == decision(it).decision_id


@pytest.mark.parametrize("changes", [
    {"puid": "bad puid"}, {"content_date": "2026-13-01"}, {"decision_facts": "y" * 5001}, {"content_language": "en"},
    {"category": "STATEMENT_CATEGORY_X"}, {"end_date_account_restriction": "2020-01-01"},
])
def test_the_shape_cache_gives_the_verdict_of_the_whole_schema(validator, changes):
    validator.errors(GOOD)  # the shape of GOOD is cached as valid
    body = _with(**changes)
    assert validator.errors(body) == validator.full_errors(body) != []
