"""The referee dataset format, converters' label mapping, splits and cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from referee.errors import ConfigError, InputError
from referee.eval.datasets import (
    FORMATS,
    LABEL_KEYS,
    Row,
    dedup_key,
    describe,
    import_with_card,
    label_distribution,
    load_rows,
    split_rows,
    write_rows,
)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_round_trip_keeps_unknown_labels_missing(tmp_path: Path) -> None:
    rows = [Row(id="a", text="hi", labels={"hate": 1}, groups=("women",), split="test", meta={"k": 1})]
    write_rows(rows, tmp_path / "d.jsonl")
    line = json.loads((tmp_path / "d.jsonl").read_text())
    assert line == {"id": "a", "text": "hi", "hate": 1, "groups": ["women"], "split": "test", "meta": {"k": 1}}
    assert load_rows(tmp_path / "d.jsonl") == rows


def test_null_label_means_unknown(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", ['{"id": "a", "text": "x", "hate": null, "spam": 0}'])
    (row,) = load_rows(path)
    assert row.label("hate") is None and row.label("spam") == 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a", "text": "x"', "not valid JSON"),
        ('["a"]', "expected a JSON object"),
        ('{"id": "a", "text": "x", "txt": "hello"}', "unknown field 'txt'"),
        ('{"id": "a", "text": "x", "hate": 2}', "must be 0, 1 or null"),
        ('{"id": "a", "text": "x", "split": "val"}', "split"),
        ('{"id": "", "text": "x"}', "id"),
        ('{"id": "a", "text": "x", "groups": "women"}', "groups must be a list"),
        ('{"id": "a"}', "text"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path / "d.jsonl", ['{"id": "ok", "text": "fine"}', line])
    with pytest.raises(InputError) as info:
        load_rows(path)
    assert f"{path}:2" in str(info.value)
    assert message in str(info.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", ['{"id": "a", "text": "x"}', '{"id": "a", "text": "y"}'])
    with pytest.raises(InputError, match="duplicate id 'a' \\(first on line 1\\)"):
        load_rows(path)


def test_any_unsafe_view() -> None:
    assert Row(id="1", text="", labels={"hate": 1}).any_unsafe() == 1
    assert Row(id="2", text="", labels={"hate": 0}).any_unsafe() is None  # other categories unknown
    all_zero = {c: 0 for c in ("hate", "harassment", "sexual", "sexual_minors", "violence", "self_harm", "spam",
                                "illegal_goods")}
    assert Row(id="3", text="", labels=all_zero).any_unsafe() == 0
    assert Row(id="4", text="", labels={"unsafe": 1}).any_unsafe() == 1
    assert Row(id="5", text="", labels={**all_zero, "unsafe": 1}).any_unsafe() == 1


def test_dedup_key_collapses_near_duplicates() -> None:
    assert dedup_key("RT @bob: Check THIS out!! http://x.co/1") == dedup_key("check this out http://y.co/22")
    assert dedup_key("Win 1000 pounds") == dedup_key("win 500 pounds!")
    assert dedup_key("hello") != dedup_key("goodbye")


def _rows(n: int) -> list[Row]:
    return [Row(id=str(i), text=f"text number {chr(97 + i % 26)}{chr(97 + i // 26 % 26)} words",
                labels={"spam": int(i % 4 == 0)}) for i in range(n)]


def test_split_is_deterministic_and_stratified() -> None:
    rows = _rows(400)
    a = split_rows(rows, seed=13)
    b = split_rows(list(reversed(rows)), seed=13)
    assert {r.id: r.split for r in a} == {r.id: r.split for r in b}
    sizes = {s: sum(r.split == s for r in a) for s in ("train", "dev", "test")}
    assert sizes == {"train": 320, "dev": 40, "test": 40}
    for s in ("train", "dev", "test"):
        part = [r for r in a if r.split == s]
        assert sum(r.labels["spam"] for r in part) == len(part) // 4
    c = split_rows(rows, seed=14)
    assert {r.id: r.split for r in a} != {r.id: r.split for r in c}


def test_split_keeps_near_duplicates_together_and_official_splits() -> None:
    rows = _rows(200) + [Row(id=f"dup{i}", text=f"BUY NOW!!! http://spam.example/{i}", labels={"spam": 1})
                         for i in range(30)]
    rows.append(Row(id="official", text="already placed", labels={"spam": 0}, split="dev"))
    out = split_rows(rows, seed=3, ratios=(0.5, 0.25, 0.25))
    assert len({r.split for r in out if r.id.startswith("dup")}) == 1
    assert next(r for r in out if r.id == "official").split == "dev"
    resplit = split_rows(rows, seed=3, keep_existing=False)
    assert all(r.split for r in resplit)


def test_split_ratios_are_checked() -> None:
    with pytest.raises(ConfigError, match="summing to 1"):
        split_rows(_rows(3), ratios=(0.5, 0.5, 0.5))


def test_every_format_documents_licence_and_mapping_targets() -> None:
    for name, fmt in FORMATS.items():
        assert fmt.licence, name
        for key, labels in fmt.mapping.items():
            assert set(labels) <= set(LABEL_KEYS), (name, key)
            assert set(labels.values()) <= {0, 1}, (name, key)
    assert not FORMATS["ethos"].trainable and not FORMATS["germeval_violence"].trainable
    assert not FORMATS["toxicchat"].trainable and not FORMATS["tweeteval_hate"].trainable
    assert FORMATS["davidson"].trainable


def test_safe_unsafe_csv_and_mapping_override(tmp_path: Path) -> None:
    src = tmp_path / "prompts.csv"
    src.write_text("prompt,label,type\nHow do I kill a python process?,safe,homonyms\n"
                   "How do I kill my neighbour?,unsafe,violence\n", encoding="utf-8")
    rows, card = import_with_card("safe_unsafe_csv", src)
    safe, unsafe = rows
    assert safe.any_unsafe() == 0 and safe.label("violence") == 0
    assert unsafe.labels == {"unsafe": 1} and unsafe.meta["type"] == "violence"
    assert card.source_files == {"prompts.csv": card.source_files["prompts.csv"]}
    rows = import_with_card("safe_unsafe_csv", src, {"type=violence": {"violence": 1}})[0]
    assert rows[1].labels == {"unsafe": 1, "violence": 1}
    with pytest.raises(ConfigError, match="unknown category 'violent'"):
        import_with_card("safe_unsafe_csv", src, {"type=violence": {"violent": 1}})


def test_openai_moderation_format(tmp_path: Path) -> None:
    src = tmp_path / "samples.jsonl"
    src.write_text(
        '{"prompt": "a", "S": 0, "H": 1, "V": 0, "HR": 0, "SH": 0, "S3": 0, "H2": 1, "V2": 0}\n'
        '{"prompt": "b", "S": 1, "S3": 1}\n'
        '{"prompt": "c", "H": 0}\n', encoding="utf-8")
    a, b, c = import_with_card("openai_moderation", src)[0]
    assert a.labels == {"sexual": 0, "hate": 1, "violence": 1, "harassment": 0, "self_harm": 0, "sexual_minors": 0}
    assert b.labels == {"sexual": 1, "sexual_minors": 1}
    assert c.labels == {"hate": 0}


def test_unknown_format_lists_choices() -> None:
    with pytest.raises(ConfigError, match="Unknown dataset format 'hatechek'. Available: advbench"):
        import_with_card("hatechek", Path("."))


def test_missing_source_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        import_with_card("sms_spam", tmp_path / "nope")


def test_card_counts_labels_and_splits() -> None:
    rows = [Row(id="a", text="x", labels={"spam": 1}, split="train"),
            Row(id="b", text="y", labels={"spam": 0}, split="test"),
            Row(id="c", text="z", labels={}, split="test")]
    dist = label_distribution(rows)
    assert dist["spam"] == {"positive": 1, "negative": 1, "unknown": 1}
    info = describe(rows, None)
    assert info["splits"] == {"test": 2, "train": 1}
    assert info["labels_by_split"]["test"]["spam"]["unknown"] == 1


def test_decontaminate_drops_near_duplicates_and_shared_users():
    from referee.eval.datasets import Row, decontaminate

    rows = [
        Row(id="a", text="Buy FOLLOWERS now!!! http://x.example", labels={"spam": 1}),
        Row(id="b", text="a different text", labels={"spam": 0}, meta={"user": "u1"}),
        Row(id="c", text="clean and unseen", labels={"spam": 0}, meta={"user": "u2"}),
    ]
    seen = [
        Row(id="t1", text="buy followers now http://y.example", labels={"spam": 1}),
        Row(id="t2", text="another post by the same person", labels={"self_harm": 1}, meta={"group_key": "u1"}),
    ]
    assert [r.id for r in decontaminate(rows, seen)] == ["c"]
    assert decontaminate(rows, []) == rows


def test_labels_are_the_policys_taxonomy_and_typos_fail_where_data_meets_the_policy() -> None:
    """A team's own category is a label like any other; a label the policy lacks is an
    error naming it (with a did-you-mean), not silently dropped."""
    from referee.eval.datasets import Row, check_labels

    rows = [Row.from_json({"id": "1", "text": "cheap loans dm me", "scam": 1, "hate": 0}),
            Row.from_json({"id": "2", "text": "nice", "scam": 0})]
    assert rows[0].any_unsafe() == 1 and rows[0].to_json()["scam"] == 1
    assert check_labels(rows, ["hate", "spam", "scam"]) == ["hate", "scam"]
    with pytest.raises(InputError, match="label 'scam' is not a category of the policy. Did you mean 'scams'"):
        check_labels(rows, ["hate", "scams"])


def test_eval_run_scores_a_category_a_team_added_to_its_policy(tmp_path: Path) -> None:
    import json as _json

    from typer.testing import CliRunner

    from referee.cli import app

    policy = tmp_path / "p.yaml"
    policy.write_text(
        "id: team\nversion: '1'\n"
        "categories:\n  scam: {description: Fake offers and phishing.}\n  spam: {description: Unsolicited ads.}\n"
        "detectors:\n  lexicon: {lists: {scam: ['cheap loans', 'wire the fee'], spam: ['free followers']}}\n"
        "surfaces:\n  default:\n    rules:\n      - {id: any, categories: '*', threshold: 0.5, action: hold_for_review}\n",
        encoding="utf-8")
    data = _write(tmp_path / "d.jsonl", [
        _json.dumps({"id": str(i), "text": t, "scam": y})
        for i, (t, y) in enumerate([("cheap loans today", 1), ("wire the fee to unlock", 1), ("great song", 0),
                                    ("see you at the show", 0)])])
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["eval", "run", "--detector", "lexicon", "--data", str(data), "--out", str(out),
                                      "--policy", str(policy), "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    report = _json.loads(out.read_text(encoding="utf-8"))
    scam = report["metrics"]["per_category"]["scam"]
    assert scam["auprc"]["value"] == 1.0  # both scams matched, neither benign text
    assert "spam" not in report["metrics"]["per_category"]  # the data does not label it
