"""The normaliser: one canonical spelling per evasion, and exact offsets back."""

from __future__ import annotations

import re

import pytest

from referee.plugins.lexicon.normalize import IL, MASK, Normalizer, fold_char


@pytest.fixture(scope="module")
def normalizer() -> Normalizer:
    return Normalizer()


def words(normalizer: Normalizer, text: str) -> list[str]:
    return normalizer.normalize(text).text.split()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FUCK", "fuck"),
        ("ｆｕｃｋ", "fuck"),  # fullwidth
        ("𝐟𝐮𝐜𝐤", "fuck"),  # mathematical bold
        ("ⓕⓤⓒⓚ", "fuck"),  # circled
        ("fuсk", "fuck"),  # Cyrillic es
        ("ΗΟΤ", "hot"),  # Greek capitals read as Latin capitals (Η is h, not n)
        ("ꜰᴜᴄᴋ", "fuck"),  # small capitals
        ("fück", "fuck"),  # diacritic
        ("fu\u0308ck", "fuck"),  # combining diaeresis
        ("f\u200bu\u200cc\u200dk", "fuck"),  # ZWSP, ZWNJ, ZWJ
        ("f\u00adu\ufeffc\u2060k", "fuck"),  # soft hyphen, BOM, word joiner
        ("fu\ufe0fck", "fuck"),  # variation selector
        ("ﬁre", "fire"),  # ligature
    ],
)
def test_characters_fold_to_plain_latin(normalizer: Normalizer, text: str, expected: str) -> None:
    assert words(normalizer, text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sh1t", f"sh{IL}t"),  # 1 could be i or l: the lexicon expands its terms to match
        ("b!tch", f"b{IL}tch"),
        ("4ss", "as"),
        ("@ss", "as"),
        ("a$$", "as"),
        ("h3ll0", "helo"),
        ("f*ck", f"f{MASK}ck"),
        ("f**k", f"f{MASK}k"),
    ],
)
def test_leetspeak_inside_words(normalizer: Normalizer, text: str, expected: str) -> None:
    assert words(normalizer, text) == [expected]


def test_numbers_and_sentence_punctuation_stay(normalizer: Normalizer) -> None:
    assert words(normalizer, "Track 4 of 2024 is great!!! Wow!") == ["track", "4", "of", "2024", "is", "great", "wow"]


@pytest.mark.parametrize("text", ["f u c k", "f.u.c.k", "f-u-c-k", "f_u_c_k", "f*u*c*k", "f. u. c. k", "f  u  c  k"])
def test_spaced_letters_join(normalizer: Normalizer, text: str) -> None:
    assert words(normalizer, text) == ["fuck"]


def test_two_single_letters_do_not_join(normalizer: Normalizer) -> None:
    assert words(normalizer, "u r nice") == ["u", "r", "nice"]


def test_apostrophes_inside_words_vanish(normalizer: Normalizer) -> None:
    assert words(normalizer, "you're 'quoted' don’t") == ["youre", "quoted", "dont"]


def test_runs_collapse_and_keep_their_length(normalizer: Normalizer) -> None:
    result = normalizer.normalize("fuuuuck ass")
    assert result.text == " fuck as "
    assert result.run_at(result.text.index("u")) == 4
    assert result.run_at(result.text.index("s")) == 2
    assert result.run_at(result.text.index("f")) == 1


@pytest.mark.parametrize(
    "text",
    [
        "plain words, nothing odd",
        "f\u200bu\u200b\u200bc\u200bk you",
        "ｆ𝐮сk y o u   ok",
        "sh1t!!! a$$hole f*ck fuuuuck",
        "you're a b i t c h ﬁne é",
        "e\u0301cole \u200b\u200bstart and end\u200b",
        "Ça c'est génial 🔥🔥 naïve über",
    ],
)
def test_every_word_maps_back_to_its_original_span(normalizer: Normalizer, text: str) -> None:
    result = normalizer.normalize(text)
    spans = [result.original_span(*m.span()) for m in re.finditer(r"[^ ]+", result.text)]
    # Spans are in order, inside the text, and each one folds back to its word.
    assert all(0 <= s < e <= len(text) for s, e in spans)
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)
    assert [normalizer.normalize(text[s:e]).text.strip() for s, e in spans] == result.text.split()


def test_span_of_an_obfuscated_word_is_the_whole_obfuscation(normalizer: Normalizer) -> None:
    text = "well f\u200bu\u200bc\u200bk that"
    result = normalizer.normalize(text)
    start = result.text.index("fuck")
    s, e = result.original_span(start, start + 4)
    assert text[s:e] == "f\u200bu\u200bc\u200bk"


@pytest.mark.parametrize(("char", "folded"), [("А", "a"), ("\u200b", ""), ("ﬁ", "fi"), ("!", "!"), ("🔥", " "), ("Η", "h"), ("η", "n")])
def test_fold_char(char: str, folded: str) -> None:
    assert fold_char(char) == folded


def test_the_character_cache_does_not_change_results() -> None:
    text = "ｆ𝐮сk\u200b y o u ﬁne 🔥 ΗΟΤ"
    cold = Normalizer()
    first = cold.normalize(text)
    assert cold.normalize(text) == first  # second call: every character cached
    assert Normalizer().normalize(text) == first


def test_terms_and_text_fold_the_same_way(normalizer: Normalizer) -> None:
    assert normalizer.collapse(normalizer.fold("Kill   Yourself"))[0] == "kil yourself"
