"""The lexicon detector: evasions caught, innocent words left alone, offsets exact."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from referee.detectors.base import Detector, detector_registry
from referee.plugins.lexicon.detector import LexiconDetector, read_list
from referee.errors import ConfigError, PolicyError
from referee.model import ContentItem, Signal
from referee.policy import Policy, PolicyDocument

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "policies" / "default.yaml"



def quoted(text: str, ev) -> str:  # type: ignore[no-untyped-def]
    """The words evidence points at (evidence keeps offsets, never a copy of them)."""
    return text[ev.start : ev.end]

def item(text: str) -> ContentItem:
    return ContentItem(id="t", text=text)


def scores(detector: LexiconDetector, text: str) -> dict[str, float]:
    return {s.category: s.score for s in detector.detect(item(text))}


@pytest.fixture(scope="module")
def small() -> LexiconDetector:
    return LexiconDetector(
        {
            "harassment": ["fuck", ("bitch", 0.7), "ass", "asshole", "cunt", "idiot", "kill yourself", ("fuck*", 0.3)],
            "sexual": [("cock", 0.6), "sex", "cum", ("dick", 0.4), "boob"],
            "violence": [("kill you", 0.8), "rape", "*fucker"],
        },
        allow=["moby dick", "cum laude"],
    )


@pytest.fixture(scope="module")
def default_policy() -> Policy:
    return Policy.from_file(DEFAULT_POLICY)


@pytest.fixture(scope="module")
def default(default_policy: Policy) -> LexiconDetector:
    return LexiconDetector.from_policy(default_policy, default_policy.detector_config("lexicon"))


# -- evasion ----------------------------------------------------------------
EVASIONS = {
    "plain": "fuck",
    "upper": "FUCK",
    "cyrillic homoglyph": "fuсk",
    "greek homoglyph": "fυck",
    "fullwidth": "ｆｕｃｋ",
    "math bold": "𝐟𝐮𝐜𝐤",
    "zero-width space": "f\u200bu\u200bc\u200bk",
    "zero-width joiners": "f\u200du\u200cck",
    "soft hyphen": "fu\u00adck",
    "diacritic": "fück",
    "repeats": "fuuuuuck",
    "repeats everywhere": "ffuuucckkk",
    "spaced": "f u c k",
    "dotted": "f.u.c.k",
    "dashed": "f-u-c-k",
    "starred letters": "f*u*c*k",
    "masked vowel": "f*ck",
    "mixed": "Ｆ.\u200bυ.с.К",
}


@pytest.mark.parametrize("variant", EVASIONS.values(), ids=EVASIONS.keys())
def test_evasions_are_caught_and_point_at_the_original(small: LexiconDetector, variant: str) -> None:
    text = f"well {variant} that"
    signals = small.detect(item(text))
    assert [s.category for s in signals] == ["harassment"]
    (evidence,) = signals[0].evidence
    assert (evidence.start, evidence.end) == (5, 5 + len(variant))
    assert text[evidence.start : evidence.end] == variant
    assert evidence.entry == "fuck"


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("b!tch", "bitch"),
        ("b1tch", "bitch"),
        ("1d10t", "idiot"),
        ("@ss", "ass"),
        ("a$$", "ass"),
        ("4ssh0le", "asshole"),
        ("k1ll y0urs3lf", "kill yourself"),
        ("k i l l   y o u r s e l f", "kill yourself"),
        ("#killyourself", "kill yourself"),
        ("kill\n\tyourself", "kill yourself"),
        ("idiots", "idiot"),  # a plural s
    ],
)
def test_leet_spacing_and_plural_variants(small: LexiconDetector, text: str, entry: str) -> None:
    (signal,) = small.detect(item(text))
    assert [e.entry for e in signal.evidence] == [entry]
    ev = signal.evidence[0]
    assert text[ev.start : ev.end].strip("#") == text.strip("#")


def test_offsets_after_earlier_obfuscation(small: LexiconDetector) -> None:
    text = "ｆ\u200bｕｃｋ you, dear ΙDΙΟΤ, and a$$"
    signal = small.detect(item(text))[0]
    assert [(quoted(text, e), e.entry) for e in signal.evidence] == [
        ("ｆ\u200bｕｃｋ", "fuck"),
        ("ΙDΙΟΤ", "idiot"),
        ("a$$", "ass"),
    ]
    assert all(0 <= e.start < e.end <= len(text) for e in signal.evidence)


# -- what must not match ----------------------------------------------------
SCUNTHORPE = [
    "Scunthorpe",
    "assassin",
    "classic",
    "class",
    "bass",
    "cocktail",
    "Hancock",
    "Essex",
    "Sussex",
    "Middlesex",
    "therapist",
    "grape",
    "shitake",
    "shiitake",
    "cumulative",
    "cucumber",
    "Penistone",
    "analysis",
    "raccoon",
    "Dickens",
    "skillet",
    "as",
    "has",
    "bob",
]


@pytest.mark.parametrize("word", SCUNTHORPE)
def test_scunthorpe_words_are_not_flagged(small: LexiconDetector, default: LexiconDetector, word: str) -> None:
    text = f"I love {word}, really."
    assert small.detect(item(text)) == []
    assert default.detect(item(text)) == []


def test_a_doubled_letter_in_the_term_needs_a_run_in_the_text(small: LexiconDetector) -> None:
    assert scores(small, "as if") == {}
    assert scores(small, "asssss") == {"harassment": 1.0}
    assert scores(small, "bob") == {}
    assert scores(small, "boooob") == {"sexual": 1.0}


def test_allow_list_suppresses_overlapping_matches_only(small: LexiconDetector) -> None:
    assert small.detect(item("Moby Dick is a great book")) == []
    assert small.detect(item("graduated summa cum laude")) == []
    (signal,) = small.detect(item("Moby Dick is a dick"))
    assert [quoted("Moby Dick is a dick", e) for e in signal.evidence] == ["dick"]
    assert signal.evidence[0].start == len("Moby Dick is a ")


def test_open_ended_terms_report_the_whole_word(small: LexiconDetector) -> None:
    text = "fucking motherfucker"
    signals = {s.category: s for s in small.detect(item(text))}
    assert [(quoted(text, e), e.entry) for e in signals["harassment"].evidence] == [("fucking", "fuck*")]
    assert [(quoted(text, e), e.entry) for e in signals["violence"].evidence] == [("motherfucker", "*fucker")]


# -- scores -----------------------------------------------------------------
def test_score_is_the_heaviest_match_of_the_category(small: LexiconDetector) -> None:
    assert scores(small, "you bitch") == {"harassment": 0.7}
    assert scores(small, "you bitch, you cunt") == {"harassment": 1.0}
    assert scores(small, "nice cock") == {"sexual": 0.6}
    assert scores(small, "what the fucking hell") == {"harassment": 0.3}


def test_one_signal_per_matching_category_and_none_for_clean_text(small: LexiconDetector) -> None:
    signals = small.detect(item("I will kill you, you idiot, and post sex tapes"))
    assert sorted((s.category, s.score) for s in signals) == [("harassment", 1.0), ("sexual", 1.0), ("violence", 0.8)]
    assert small.detect(item("What a lovely song.")) == []
    assert small.detect(item(" ")) == []


def test_evidence_is_every_distinct_match(small: LexiconDetector) -> None:
    text = "idiot! IDIOT! bitch"
    (signal,) = small.detect(item(text))
    assert [(quoted(text, e), e.detail["weight"]) for e in signal.evidence] == [("idiot", 1.0), ("IDIOT", 1.0), ("bitch", 0.7)]


def test_detect_many_keeps_order(small: LexiconDetector) -> None:
    texts = ["hello", "idiot", "nice cock", "fine"]
    out = small.detect_many([item(t) for t in texts])
    assert [[s.category for s in signals] for signals in out] == [[], ["harassment"], ["sexual"], []]


# -- conformance ------------------------------------------------------------
CORPUS = [
    " ",
    "A perfectly nice comment about the bridge of track 4.",
    "k1ll y0urs3lf you stupid b!tch",
    "Ｆ\u200bＲＥＥ followers, click here: bit.ly/x",
    "buy cocaine, discreet shipping, fake passport",
    "I'm going to kill you. I know where you live.",
    "send nudes",
    "pics of young girls, the younger the better",
    "i want to kms lol",
    "sand n1gger",
    "🔥🔥🔥 " * 50,
    "a" * 5000,
    "f u c k " * 100,
]


def test_contract(default: LexiconDetector, default_policy: Policy) -> None:
    assert isinstance(default, Detector)
    assert default.name == "lexicon"
    assert default.version.startswith("1+")
    assert set(default.categories) <= set(default_policy.categories)
    info = default.info()
    assert info.name == "lexicon" and info.categories == default.categories
    for signals in default.detect_many([item(t) for t in CORPUS]):
        for signal in signals:
            assert isinstance(signal, Signal)
            assert signal.category in default.categories
            assert 0.0 <= signal.score <= 1.0
            assert signal.detector == "lexicon" and signal.detector_version == default.version
            assert signal.evidence
    for text in CORPUS:
        for signal in default.detect(item(text)):
            for ev in signal.evidence:
                assert ev.start is not None and ev.end is not None
                assert 0 <= ev.start < ev.end <= len(text)


def test_registered_under_its_name() -> None:
    assert detector_registry().get("lexicon") is LexiconDetector


def test_version_follows_the_lists() -> None:
    one = LexiconDetector({"hate": ["a slur"]})
    assert LexiconDetector({"hate": ["a slur"]}).version == one.version
    assert LexiconDetector({"hate": [("a slur", 0.5)]}).version != one.version
    assert LexiconDetector({"hate": ["a slur"]}, allow=["a slurpee"]).version != one.version
    assert LexiconDetector({"spam": ["a slur"]}).version != one.version


def test_pathological_text_is_linear(small: LexiconDetector) -> None:
    for text in ["a" * 200_000, "1" * 200_000, "a " * 100_000, "a1!" * 60_000, "f*" * 100_000,
                 "idiot " * 30_000, "moby dick " * 20_000, "\u200b" * 200_000]:
        started = time.perf_counter()
        small.detect(item(text))
        assert time.perf_counter() - started < 5.0, text[:10]


# -- the default policy ------------------------------------------------------
def test_default_policy_lists_cover_every_category(default: LexiconDetector, default_policy: Policy) -> None:
    assert default.categories == tuple(default_policy.categories)


@pytest.mark.parametrize(
    ("text", "category", "minimum"),
    [
        ("I'm going to kill you, I know where you live.", "violence", 0.9),
        ("i w4nt to k1ll mys3lf tonight", "self_harm", 0.5),
        ("buy cocaine here, discreet shipping", "illegal_goods", 0.8),
        ("FREE FOLLOWERS click here now", "spam", 0.8),
        ("k i l l   y o u r s e l f", "harassment", 0.9),
        ("Shut up you stupid bitch", "harassment", 0.8),
        ("Looking for pics of young girls, the younger the better.", "sexual_minors", 0.3),
        ("DM me for nudes, pics and videos for sale.", "sexual", 0.8),
        ("get a fake passport here", "illegal_goods", 0.9),
        ("check out my channel", "spam", 0.8),
    ],
)
def test_default_lists_flag_policy_examples(default: LexiconDetector, text: str, category: str, minimum: float) -> None:
    assert scores(default, text).get(category, 0.0) >= minimum


@pytest.mark.parametrize(
    "text",
    [
        "This album got me through a rough winter. Track 4 is perfect.",
        "Greetings from Scunthorpe! Classic set at the Baths Hall.",
        "This drill track has the hardest beat of the year.",
        "The podcast talks about how parents can protect kids from online grooming.",
        "This track is going to shoot up the charts",
        "Moby Dick is my favourite audiobook",
        "first time here, love the vibe of this stream",
    ],
)
def test_default_lists_leave_counter_examples_alone(default: LexiconDetector, text: str) -> None:
    assert all(s.score < 0.5 for s in default.detect(item(text))), scores(default, text)


@pytest.mark.parametrize(
    "text",
    [
        "Police arrested a man for possession of child pornography.",
        "Never tell a stranger online that you are home alone, and don't tell your parents' passwords either.",
        "How old are you? I'm 34 and this album still slaps.",
    ],
)
def test_safety_talk_stays_below_the_zero_tolerance_threshold(default: LexiconDetector, text: str) -> None:
    assert scores(default, text).get("sexual_minors", 0.0) < 0.3


def test_ambiguous_terms_weigh_less_than_unambiguous_ones(default: LexiconDetector) -> None:
    assert scores(default, "kms")["self_harm"] < 0.5 < scores(default, "I want to kill myself")["self_harm"]
    assert scores(default, "idiot")["harassment"] < scores(default, "worthless idiot")["harassment"]


def test_default_evidence_names_the_list_line(default: LexiconDetector) -> None:
    (signal,) = default.detect(item("buy cocaine"))
    source = signal.evidence[0].detail["source"]
    assert source.startswith("lexicons/illegal_goods.txt:")
    number = int(source.rsplit(":", 1)[1])
    line = (REPO / "policies" / "lexicons" / "illegal_goods.txt").read_text().splitlines()[number - 1]
    assert line.split("\t")[0] == "buy cocaine"


# -- policy config ------------------------------------------------------------
POLICY = """
id: t
version: "1"
categories:
  hate: {description: Attacks on groups.}
  spam: {description: Unsolicited ads.}
surfaces:
  default:
    rules:
      - {id: r, categories: "*", threshold: 0.5, action: hold_for_review}
detectors:
  lexicon:
    LEXICON
"""


def policy_with(tmp_path: Path, lexicon_yaml: str) -> Policy:
    text = POLICY.replace("LEXICON", lexicon_yaml.strip().replace("\n", "\n    "))
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return Policy.from_file(path)


def build(policy: Policy) -> LexiconDetector:
    return LexiconDetector.from_policy(policy, policy.detector_config("lexicon"))


def test_from_policy_reads_files_inline_lists_and_mappings(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "hate.txt").write_text(
        "# a comment\n\nvile slur\nmaybe slur\t0.4\n  # indented comment\n", encoding="utf-8"
    )
    policy = policy_with(
        tmp_path,
        """
lists:
  hate: lists/hate.txt
  spam: ["click here", ["free followers", 0.9], "buy now\t0.5"]
allow: {click here to donate: 1}
""",
    )
    detector = build(policy)
    assert detector.categories == ("hate", "spam")
    assert scores(detector, "a vile slur") == {"hate": 1.0}
    assert scores(detector, "a maybe slur") == {"hate": 0.4}
    assert scores(detector, "free followers, buy now") == {"spam": 0.9}
    assert scores(detector, "click here to donate") == {}
    (signal,) = detector.detect(item("a vile slur"))
    assert signal.evidence[0].detail["source"] == "lists/hate.txt:3"


def test_missing_list_file(tmp_path: Path) -> None:
    policy = policy_with(tmp_path, "lists: {hate: lists/missing.txt}")
    with pytest.raises(ConfigError) as err:
        build(policy)
    message = str(err.value)
    assert str(tmp_path / "lists" / "missing.txt") in message
    assert "create it or fix detectors.lexicon.lists.hate" in message


def test_category_not_in_policy(tmp_path: Path) -> None:
    # Loading the file refuses it (the lint check); the detector still refuses a policy built in code.
    with pytest.raises(PolicyError, match=r"lexicon list for unknown category 'hat'"):
        policy_with(tmp_path, "lists: {hat: [a slur]}")
    text = POLICY.replace("LEXICON", "lists: {hat: [a slur]}")
    policy = Policy(PolicyDocument.model_validate(yaml.safe_load(text)), source=str(tmp_path / "policy.yaml"))
    with pytest.raises(ConfigError, match=r"detectors\.lexicon\.lists\.hat: 'hat' is not a category") as err:
        build(policy)
    assert "Categories: hate, spam" in str(err.value)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("slur\tlots", "hate.txt:2: weight 'lots' is not a number"),
        ("slur\t1.5", "hate.txt:2: weight of 'slur' must be in [0, 1], got 1.5"),
        ("slur\t-0.1", "must be in [0, 1]"),
        ("*\t0.5", "hate.txt:2: empty term"),
        ("!!!", "has no letters or digits once normalised"),
    ],
)
def test_bad_list_lines_name_file_and_line(tmp_path: Path, line: str, fragment: str) -> None:
    (tmp_path / "hate.txt").write_text(f"fine\n{line}\n", encoding="utf-8")
    policy = policy_with(tmp_path, "lists: {hate: hate.txt}")
    with pytest.raises(ConfigError, match="hate.txt") as err:
        build(policy)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        ("{}", "detectors.lexicon.lists: expected a mapping"),
        ("lists: {hate: [a]}\nthreshold: 0.5", "detectors.lexicon.threshold: unknown setting"),
        ("lists: {hate: 42}", "detectors.lexicon.lists.hate: expected a list file path"),
        ("lists: {hate: [[a, b, c]]}", "detectors.lexicon.lists.hate[0]: expected a term or [term, weight]"),
        ("lists: {hate: [[a, 2]]}", "detectors.lexicon.lists.hate[0]: weight of 'a' must be in [0, 1]"),
        ("lists: {hate: [a]}\nallow: nowhere.txt", "detectors.lexicon.allow: list file"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, block: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        build(policy_with(tmp_path, block))
    assert fragment in str(err.value)


def test_constructor_rejects_bad_terms() -> None:
    with pytest.raises(ConfigError, match=r"lists\['hate'\]\[1\]: weight of 'b' must be in \[0, 1\], got 3"):
        LexiconDetector({"hate": ["a", ("b", 3)]})


def test_read_list_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("# header\n\nterm one\n#term two\nterm three\t0.25\n", encoding="utf-8")
    terms = read_list(path, "lists.x", name="x.txt")
    assert [(t.text, t.weight, t.source) for t in terms] == [("term one", 1.0, "x.txt:3"), ("term three", 0.25, "x.txt:5")]


def test_shipped_lists_parse_and_hold_no_duplicates() -> None:
    for path in sorted((REPO / "policies" / "lexicons").glob("*.txt")):
        terms = read_list(path, path.name)
        assert terms, path
        seen = [t.entry for t in terms]
        assert len(seen) == len(set(seen)), f"duplicate term in {path.name}"
        assert all(0.0 <= t.weight <= 1.0 for t in terms)
