"""Windowing and normalisation: long texts must be covered end to end."""

from __future__ import annotations

import pytest

from referee.classifier.encoder import encoder_path
from referee.classifier.text import CLS_ID, SEP_ID, length_batches, load_tokenizer, normalise, pad, token_windows


@pytest.fixture(scope="module")
def tok():  # type: ignore[no-untyped-def]
    return load_tokenizer(encoder_path() / "tokenizer.json")


def test_short_text_is_one_window(tok) -> None:  # type: ignore[no-untyped-def]
    windows, owner = token_windows(tok, ["hello world", "a second text"], max_tokens=16, overlap=4)
    assert len(windows) == 2 and owner.tolist() == [0, 1]
    assert windows[0][0] == CLS_ID and windows[0][-1] == SEP_ID


def test_long_text_windows_overlap_and_cover_everything(tok) -> None:  # type: ignore[no-untyped-def]
    words = [f"word{i}" for i in range(300)]
    text = " ".join(words)
    ids = tok.encode(text, add_special_tokens=False).ids
    windows, owner = token_windows(tok, ["short", text], max_tokens=32, overlap=8)
    long_windows = [w for w, o in zip(windows, owner) if o == 1]
    assert len(long_windows) > 5
    assert all(len(w) <= 32 for w in long_windows)
    bodies = [w[1:-1] for w in long_windows]
    # Consecutive windows overlap by at least 8 tokens and together reproduce the token stream.
    rebuilt = list(bodies[0])
    for prev, cur in zip(bodies, bodies[1:]):
        shared = next(k for k in range(len(cur), 0, -1) if prev[-k:] == cur[:k])
        assert shared >= 8
        rebuilt.extend(cur[shared:])
    assert rebuilt == ids
    # The last window ends at the end of the text, the first starts at its start.
    assert bodies[-1] == ids[-30:] and bodies[0] == ids[:30]


def test_phrase_at_the_end_of_a_long_text_is_in_a_window(tok) -> None:  # type: ignore[no-untyped-def]
    text = "nice song " * 400 + "i will stab you"
    windows, _ = token_windows(tok, [text], max_tokens=64, overlap=16)
    target = tok.encode("i will stab you", add_special_tokens=False).ids
    assert any(w[-1 - len(target):-1] == target for w in windows)


def test_max_windows_caps_work(tok) -> None:  # type: ignore[no-untyped-def]
    windows, _ = token_windows(tok, ["x " * 1000], max_tokens=32, overlap=0, max_windows=3)
    assert len(windows) == 3


def test_bad_window_settings_name_the_value(tok) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="overlap must be in"):
        token_windows(tok, ["x"], max_tokens=16, overlap=20)


def test_length_batches_group_similar_lengths() -> None:
    windows = [[1] * n for n in (50, 3, 40, 4, 45, 5)]
    batches = length_batches(windows, 3)
    assert [sorted(len(windows[i]) for i in b) for b in batches] == [[3, 4, 5], [40, 45, 50]]
    ids, mask = pad([windows[i] for i in batches[0]])
    assert ids.shape == (3, 5) and mask.sum() == 12


def test_normalise_collapses_spam_variants() -> None:
    assert normalise("  WIN a FREE\u00a0iPhone!!\ufeff ") == normalise("win a free iphone!!")


def test_placeholders_replace_handles_and_links_and_keep_original_offsets(tok) -> None:
    from referee.classifier.text import PLACEHOLDERS, encode

    text = "RT @titaaaR15: dumb http://t.co/abc123 and www.spam.com/x but me@mail.com stays"
    (ids, offsets), = encode(tok, [text], PLACEHOLDERS)
    pieces = [(tok.id_to_token(i), text[a:b]) for i, (a, b) in zip(ids, offsets)]
    assert ("user", "titaaaR15") in pieces
    assert ("http", "http://t.co/abc123") in pieces and ("http", "www.spam.com/x") in pieces
    assert ("mail", "mail") in pieces  # an e-mail address is not a mention
    (plain_ids, _), = encode(tok, [text])
    assert len(ids) < len(plain_ids)
    # text without handles or links is tokenised exactly as before
    assert encode(tok, ["a quiet song"], PLACEHOLDERS) == encode(tok, ["a quiet song"])


def test_unknown_recipe_is_refused(tok) -> None:
    from referee.classifier.text import encode
    from referee.errors import ModelError

    with pytest.raises(ModelError, match="unknown text recipe"):
        encode(tok, ["x"], "lowercase-v9")
