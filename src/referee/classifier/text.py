"""Tokenisation, normalisation and windowing shared by training and serving.

Training (torch) and serving (onnxruntime) must cut text into tokens the same
way, or the scores drift between what was validated and what runs. This module
needs only ``tokenizers`` and numpy so the serving path stays torch-free.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from referee.errors import ModelError

CLS_ID = 101
SEP_ID = 102
PAD_ID = 0

#: How text becomes token ids. A model is trained with one recipe and must be served
#: with the same one, so the recipe is recorded on its card (``ModelCard.text_recipe``).
PLAIN = "plain"
#: @mentions become "@ user" and links "http", as TweetEval does: a handle or a URL's
#: path is a string of word pieces that says nothing about harm (a Davidson tweet
#: spends 16 % of its tokens on them), and the placeholder keeps "addressed to
#: someone" / "has a link". Offsets still point at the whole original handle or URL.
PLACEHOLDERS = "placeholders-v1"
TEXT_RECIPES = (PLAIN, PLACEHOLDERS)

_SPACE = re.compile(r"\s+")
_MENTION = re.compile(r"(?<![\w@])@(\w+)")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)


def normalise(text: str) -> str:
    """The cache key of a text: a spam wave re-posts the same words with different
    case, spacing or look-alike code points, and the uncased encoder would score
    them identically anyway."""
    text = unicodedata.normalize("NFKC", text).replace("\ufeff", "")
    return _SPACE.sub(" ", text).strip().casefold()


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A fast tokenizer with truncation and padding switched off: the shipped
    ``tokenizer.json`` pads everything to 128, which would make every batch pay
    for the longest possible text, and windowing needs the full token stream."""
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception subclasses
        raise ModelError(f"cannot load tokenizer {path}: {exc} (fix: run `referee model build`)") from exc
    tok.no_truncation()
    tok.no_padding()
    return tok


def encode(tokenizer: Tokenizer, texts: Sequence[str], recipe: str = PLAIN) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Token ids and character offsets (into the original text) per text, without [CLS]/[SEP]."""
    if recipe not in TEXT_RECIPES:
        raise ModelError(f"unknown text recipe {recipe!r}; expected one of {TEXT_RECIPES}")
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    if recipe == PLAIN:
        return [(enc.ids, enc.offsets) for enc in encodings]
    user, http = tokenizer.token_to_id("user"), tokenizer.token_to_id("http")
    if user is None or http is None:
        raise ModelError(f"recipe {recipe!r} needs the word pieces 'user' and 'http'; this tokenizer has no such tokens")
    out = []
    for text, enc in zip(texts, encodings):
        # (start, end, replacement ids) of every handle and link, in text order
        spans = sorted([(m.start(1), m.end(1), [user]) for m in _MENTION.finditer(text)]
                       + [(m.start(), m.end(), [http]) for m in _URL.finditer(text)])
        if not spans:
            out.append((enc.ids, enc.offsets))
            continue
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        k = 0
        for tid, (start, end) in zip(enc.ids, enc.offsets):
            while k < len(spans) and spans[k][1] <= start:
                k += 1
            if k < len(spans) and spans[k][0] <= start < spans[k][1]:
                s0, s1, replacement = spans[k]
                if not offsets or offsets[-1] != (s0, s1):  # first token inside this span
                    ids.extend(replacement)
                    offsets.extend([(s0, s1)] * len(replacement))
                continue
            ids.append(tid)
            offsets.append((start, end))
        out.append((ids, offsets))
    return out


def token_windows(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    max_tokens: int = 128,
    overlap: int = 32,
    max_windows: int | None = None,
    spans: list[tuple[int, int]] | None = None,
    recipe: str = PLAIN,
) -> tuple[list[list[int]], np.ndarray]:
    """Cut each text into windows of at most ``max_tokens`` ids (with [CLS]/[SEP]).

    A podcast transcript is thousands of tokens; truncating it would hide a
    threat in minute forty. Windows overlap so a phrase cut at a boundary still
    appears whole in one window. Returns the windows and, for each window, the
    index of the text it came from (so scores can be max-pooled back). If
    ``spans`` is a list, the character span ``[start, end)`` of each window in
    its original text is appended to it (evidence for "where in the transcript").
    """
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    body = max_tokens - 2
    if not 0 <= overlap < body:
        raise ValueError(f"overlap must be in [0, {body}) for max_tokens={max_tokens}, got {overlap}")
    step = body - overlap
    windows: list[list[int]] = []
    owner: list[int] = []
    for i, (ids, all_offsets) in enumerate(encode(tokenizer, texts, recipe)):
        starts = [0] if len(ids) <= body else list(range(0, len(ids) - overlap, step))
        # The last window ends exactly at the end of the text: no short tail window.
        if len(ids) > body:
            starts = [s for s in starts if s + body < len(ids)] + [len(ids) - body]
        if max_windows is not None:
            starts = starts[:max_windows]
        for s in starts:
            windows.append([CLS_ID, *ids[s : s + body], SEP_ID])
            owner.append(i)
            if spans is not None:
                offsets = all_offsets[s : s + body]
                spans.append((offsets[0][0], offsets[-1][1]) if offsets else (0, 0))
    return windows, np.asarray(owner, dtype=np.int64)


def first_windows(tokenizer: Tokenizer, texts: Sequence[str], max_tokens: int = 128,
                  recipe: str = PLAIN) -> list[list[int]]:
    """The leading window of each text: what training sees of a long document."""
    body = max_tokens - 2
    return [[CLS_ID, *ids[:body], SEP_ID] for ids, _ in encode(tokenizer, texts, recipe)]


def pad(windows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Pad to the longest window of this batch only (dynamic padding)."""
    width = max((len(w) for w in windows), default=2)
    ids = np.full((len(windows), width), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(windows), width), dtype=np.int64)
    for row, w in enumerate(windows):
        ids[row, : len(w)] = w
        mask[row, : len(w)] = 1
    return ids, mask


def length_batches(windows: Sequence[Sequence[int]], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, so a tweet is never padded
    to the length of a transcript window that happens to share its batch."""
    order = np.argsort([len(w) for w in windows], kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
