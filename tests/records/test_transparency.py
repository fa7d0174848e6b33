"""The transparency report's aggregates on a small hand-made log, and its files."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import pytest

from referee.errors import InputError
from referee.model import Action
from referee.policy import load_policy
from referee.records.transparency import TransparencyReport, parse_period, wilson, write_report
from tests.records.conftest import T0, decision, item

H = timedelta(hours=1)


@pytest.fixture
def report(store):
    a, b, c = item("a", created_at=T0 - 2 * H), item("b", created_at=T0 - 4 * H), item("c", created_at=T0 - 6 * H)
    d, e, f = item("d", created_at=T0 - 1 * H), item("e", created_at=T0 - 8 * H), item("f", created_at=T0 - 10 * H)
    g = item("g", created_at=T0 - 12 * H).model_copy(update={"context": {"dsa_notice": "article_16"}})
    old = item("old", created_at=datetime(2025, 11, 1, tzinfo=timezone.utc))
    roots = store.log.append([
        (a, decision(a)), (b, decision(b, categories=("violence",))),
        (c, decision(c, action=Action.limit_reach, categories=("spam",))),
        (d, decision(d, action=Action.hold_for_review)), (e, decision(e)),
        (f, decision(f, categories=("violence",))), (g, decision(g, categories=("harassment",))),
        (old, decision(old, created_at=datetime(2025, 12, 1, tzinfo=timezone.utc))),
    ])
    by = {r.item_id: r for r in roots}
    review = {"source": "review", "created_at": T0 + H, "automated_decision": False}
    store.log.supersede(by["item-d"].decision_id, decision(d, supersedes=by["item-d"], **review))
    store.log.supersede(by["item-e"].decision_id, decision(e, action=Action.allow, categories=(),
                                                           supersedes=by["item-e"], **review))
    upheld = store.log.supersede(by["item-f"].decision_id, decision(f, categories=("violence",),
                                                                    supersedes=by["item-f"], **review))
    store.log.supersede(upheld.decision_id, decision(f, action=Action.allow, categories=(), source="appeal",
                                                     supersedes=upheld, created_at=T0 + 3 * H,
                                                     automated_decision=False))
    return TransparencyReport(store.db, store.log, load_policy("policies/default.yaml")).build("2026-H1")


def test_periods():
    assert parse_period("2026-H1") == (datetime(2026, 1, 1, tzinfo=timezone.utc),
                                       datetime(2026, 7, 1, tzinfo=timezone.utc))
    assert parse_period("2026-Q4")[1] == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert parse_period("2026-12") == (datetime(2026, 12, 1, tzinfo=timezone.utc),
                                       datetime(2027, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(InputError, match="a half"):
        parse_period("H1-2026")


def test_wilson_matches_the_textbook_values():
    low, high = wilson(1, 2)
    assert (round(low, 4), round(high, 4)) == (0.0945, 0.9055)
    low, high = wilson(81, 100)
    assert (round(low, 3), round(high, 3)) == (0.722, 0.875)  # p 0.81, z 1.96: centre 0.7985, half 0.0763


def test_own_initiative_actions_by_category_ground_restriction_and_detection(report):
    assert report.table("own_initiative").rows == [
        ["hate", "incompatible", "remove", "automated", 3],  # a, e, and d's review (held first)
        ["spam", "incompatible", "limit_reach", "automated", 1],
        ["violence", "incompatible", "remove", "automated", 2],  # b, f (f's upheld review is no new action)
    ]


def test_notices_received_and_actioned(report):
    assert report.table("notices").rows == [["article_16", "harassment", 1, 1]]


def test_automated_shares(report):
    assert report.table("automation").rows == [
        ["automated detection", 7, 7, 1.0],
        ["fully automated decision", 6, 7, round(6 / 7, 4)],  # d's removal was a reviewer's
    ]


def test_median_time_to_action(report):
    rows = {r[0]: r[1:] for r in report.table("time_to_action").rows}
    assert rows["(all)"] == [7, 6.0]  # 2, 4, 6, 2, 8, 10, 12 hours
    assert rows["hate"] == [3, 2.0]  # 2, 2, 8


def test_appeals_from_the_log(report):
    assert report.table("appeals").rows == [["decision log", None, 1, 1, 2.0]]


def test_precision_on_reviewed_samples_with_its_interval(report):
    rows = {r[0]: r[1:] for r in report.table("accuracy").rows}
    assert rows["(all)"] == [2, 1, 0.5, 0.0945, 0.9055]
    assert rows["hate"][:3] == [1, 0, 0.0] and rows["violence"][:3] == [1, 1, 1.0]


def test_csv_per_table_and_an_html_report_with_charts(report, tmp_path):
    files = {p.name for p in write_report(report, tmp_path)}
    assert {"own_initiative.csv", "notices.csv", "automation.csv", "time_to_action.csv", "appeals.csv",
            "accuracy.csv", "report.html", "own_initiative.png", "accuracy.png"} <= files
    with (tmp_path / "own_initiative.csv").open() as f:
        assert list(csv.reader(f))[1] == ["hate", "incompatible", "remove", "automated", "3"]
    page = (tmp_path / "report.html").read_text()
    assert "Transparency report 2026-H1" in page and "<img src='accuracy.png'" in page
