"""Text → the one spelling the lexicon matches in, with a way back to the original.

People who want a word past a filter rarely type it plainly: "ｆ𝐮сk" (fullwidth,
maths bold, Cyrillic), "f\u200bu\u200bck" (zero-width spaces), "fuuuuck", "f u c k",
"sh1t", "f*ck". Matching every spelling of every term is hopeless, so both the
text and the terms are reduced to one canonical form and matched there. The
reduction runs in stages:

1. **Characters** (one character in, zero or more out): compatibility
   decomposition (the "K" of NFKC: fullwidth, mathematical alphanumerics,
   circled letters, ligatures), diacritics and other combining marks dropped,
   case folded, look-alike letters from other scripts folded to Latin
   (:data:`CONFUSABLES`), invisible characters removed, and every other
   non-letter turned into a space.
2. **Joins**: three or more single characters separated by spaces or ``*``
   become one word ("f u c k", "f.u.c.k", "f-u-c-k"), and an apostrophe inside a
   word is removed ("you're" → "youre").
3. **Leetspeak**, inside words that have at least one letter: 4→a, 3→e, 0→o, $→s
   and so on. ``1``, ``!`` and ``|`` could be an i or an l, so they become
   :data:`IL`, and a ``*`` between letters becomes :data:`MASK`; the lexicon
   expands its terms to match those. Numbers with no letter ("2024") stay.
4. **Runs**: a run of one character becomes one character ("fuuuck" → "fuck")
   and the run length is kept, so "ass" (which needs two s's) does not match
   "as" but matches "asssss".

Every stage that changes the length records where its output came from, so a
match in the canonical text maps back to exact offsets in the original text.
Stages that change nothing record nothing; plain ASCII text takes one
``str.translate`` and a few regex scans, which keeps a 200-character comment
well under 100 µs.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: Stands for "an i or an l" (written as 1, ! or |). A letter, so words stay whole.
IL = "\u01c0"  # ǀ LATIN LETTER DENTAL CLICK
#: Stands for a letter hidden behind ``*`` ("f*ck").
MASK = "\u01c2"  # ǂ LATIN LETTER ALVEOLAR CLICK

#: Bump when a change here can match a term differently; it is part of the lexicon version.
NORMALIZER_VERSION = "1"

# Pairs written as "look-alike, latin": easy to read and to extend. NFKD already
# handles fullwidth, mathematical alphanumerics, circled and superscript letters.
_PAIRS = (
    # Cyrillic
    "аa Аa вb Вb еe Еe кk Кk мm Мm нh Нh оo Оo рp Рp сc Сc тt Тt уy Уy хx Хx "
    "ѕs Ѕs іi Іi јj Јj ԁd Ԁd ԛq Ԛq ԝw Ԝw һh Һh ӏl Ӏl ьb Ьb пn гr шw Шw "
    # Greek
    "αa Αa βb Βb γy εe Εe Ζz ηn Ηh ιi Ιi κk Κk Μm νv Νn οo Οo ρp Ρp τt Τt υu Υy "
    "χx Χx ωw ϲc Ϲc ϳj μu "
    # Armenian
    "օo Օo սu հh ոn ցg զq "
    # Latin look-alikes and small capitals
    "ıi ȷj ɑa ɡg ɩi ᴀa ʙb ᴄc ᴅd ᴇe ꜰf ɢg ʜh ɪi ᴊj ᴋk ʟl ᴍm ɴn ᴏo ᴘp ʀr ꜱs ᴛt ᴜu ᴠv ᴡw ʏy ᴢz "
    "øo Øo đd Đd łl Łl ħh Ħh "
    # Symbols used as letters
    "€e £l ¢c ©c ®r †t ¡i "
    # Apostrophe look-alikes: kept as an apostrophe so "you’re" reads like "you're"
    "’' ‘' ʼ' ʻ' `' ′' "
)


def _confusables() -> dict[str, str]:
    pairs = _PAIRS.split()
    bad = [pair for pair in pairs if len(pair) != 2]
    if bad:
        raise ValueError(f"_PAIRS entries must be two characters, look-alike then Latin: {bad}")
    table = {pair[0]: pair[1] for pair in pairs}
    # Enclosed and regional-indicator letters that have no compatibility decomposition:
    # squared, negative circled, negative squared, regional indicators (flags).
    for base in (0x1F130, 0x1F150, 0x1F170, 0x1F1E6):
        for offset in range(26):
            table.setdefault(chr(base + offset), chr(ord("a") + offset))
    return table


#: Look-alike → Latin letter, applied after compatibility decomposition.
CONFUSABLES: Mapping[str, str] = MappingProxyType(_confusables())

#: Letters by Unicode category that render as nothing (Hangul fillers). Format
#: characters (ZWSP, ZWJ, ZWNJ, soft hyphen, BOM, word joiner, bidi controls,
#: tags) and non-spacing marks (variation selectors, combining marks) are
#: removed by category, so they need no list.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0")

#: Symbols that may stand for letters; kept through stage 1 for the leet stage.
_LEET_SYMBOLS = "@$!|*"
_KEEP = frozenset(_LEET_SYMBOLS + "'")

# Stage 2: an apostrophe inside a word, or a run of 3+ single characters
# separated by spaces or '*'. Lookbehinds are slow in Python's regex engine, so
# a cheap pattern (on the text padded with spaces) decides whether to run this one.
_SINGLES = re.compile(r"(?<![^ *])[^ '*](?:[ *]+[^ '*](?![^ '*])){2,}")
_SINGLES_HINT = re.compile(r"[ *][^ '*][ *]+[^ '*][ *]+[^ '*][ *]")
_JOIN_SEPARATOR = re.compile(r"[ *]+")

# Stage 3: a character that may stand for a letter, and a word holding one
# (the space before it is matched and kept so the pattern starts with a literal).
_LEET_CHAR = re.compile(r"[0-9@$!|*]")
_LEET_TOKEN = re.compile(r" ([^ ]*[0-9@$!|*][^ ]*)")
_NOT_LETTERS = "0123456789" + _LEET_SYMBOLS
_EDGE_SYMBOLS = "!|*"  # only letters between other letters: "idiot!" keeps its "!"
_LEET = str.maketrans(
    {"0": "o", "1": IL, "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
     "@": "a", "$": "s", "!": IL, "|": IL, "*": MASK}
)



# Stage 4: runs of one character.
_RUN = re.compile(r"(.)\1+", re.DOTALL)


def fold_char(char: str) -> str:
    """Stage 1 for one character. Pure, so its results can be cached per character."""
    if char in _INVISIBLE:
        return ""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", char):
        # Look-alikes first: uppercase Greek eta (Η) reads as h, lowercase (η) as n.
        ch = CONFUSABLES.get(ch, ch)
        for x in unicodedata.normalize("NFKD", ch.casefold()):
            category = unicodedata.category(x)
            if category in ("Mn", "Me", "Cf"):
                continue
            x = CONFUSABLES.get(x, x)
            out.append(x if x in _KEEP or x.isalnum() or category == "Mc" else " ")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Anchors:
    """The way back through one stage that changed the text's length.

    Output from one anchor to the next is contiguous in the input, so a few
    anchors describe a whole stage: ``out_starts[k]`` came from ``in_starts[k]``,
    the character after it from the next input character, and so on. A character
    that stands for a collapsed run covers ``runs[j]`` input characters.
    """

    out_starts: list[int]
    in_starts: list[int]
    runs: dict[int, int] = field(default_factory=dict)

    def start_of(self, j: int) -> int:
        k = bisect_right(self.out_starts, j) - 1
        return self.in_starts[k] + (j - self.out_starts[k])

    def end_of(self, j: int) -> int:
        return self.start_of(j) + self.runs.get(j, 1)


def _delete(text: str, cuts: list[tuple[int, int]]) -> tuple[str, _Anchors]:
    """Remove the sorted, disjoint ``[start, end)`` ranges and remember the way back."""
    parts: list[str] = []
    out_starts: list[int] = []
    in_starts: list[int] = []
    kept = prev = 0
    for start, end in cuts:
        if start > prev:
            parts.append(text[prev:start])
            out_starts.append(kept)
            in_starts.append(prev)
            kept += start - prev
        prev = end
    parts.append(text[prev:])
    out_starts.append(kept)
    in_starts.append(prev)
    return "".join(parts), _Anchors(out_starts, in_starts)


@dataclass(frozen=True, slots=True)
class Normalized:
    """A text in canonical form, padded with one space each side so every word,
    including the first and last, sits between spaces (terms are matched as
    `` term ``). ``runs`` holds the length of every collapsed run by position."""

    text: str
    runs: dict[int, int]
    maps: tuple[_Anchors, ...]

    def run_at(self, i: int) -> int:
        return self.runs.get(i, 1)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """``[start, end)`` in :attr:`text` → the same characters in the original text."""
        start, end = start - 1, end - 1  # the padding
        for stage in reversed(self.maps):
            start, end = stage.start_of(start), stage.end_of(end - 1)
        return start, end


class Normalizer:
    """Reduces text (and lexicon terms, so both sides agree) to canonical form.

    Holds a per-character cache of stage 1, filled lazily: the first text in a
    new script pays for ``unicodedata``, later ones are one ``str.translate``.
    The cache only grows with distinct characters seen, which Unicode bounds.
    One instance may serve several threads: a character is fully learned (table,
    then ``_uneven``, then ``_seen``) before any thread skips learning it.
    """

    def __init__(self) -> None:
        self._table: dict[int, str] = {}
        self._seen: set[str] = set()
        #: Characters whose stage-1 form is not exactly one character.
        self._uneven: set[str] = set()
        for code in range(128):
            self._learn(chr(code))

    def _learn(self, char: str) -> None:
        folded = fold_char(char)
        self._table[ord(char)] = folded
        if len(folded) != 1:
            self._uneven.add(char)
        self._seen.add(char)

    # -- stages ------------------------------------------------------------
    def _fold_chars(self, text: str) -> tuple[str, _Anchors | None]:
        if text.isascii():  # every ASCII character folds to exactly one
            return text.translate(self._table), None
        chars = set(text)
        for char in chars - self._seen:
            self._learn(char)
        uneven = chars & self._uneven
        folded = text.translate(self._table)
        if not uneven:
            return folded, None
        # Anchor around each character that vanished or grew; the rest is 1:1.
        out_starts, in_starts = [0], [0]
        shift = 0  # output index minus input index, so far
        pattern = re.compile("[" + "".join(sorted(map(re.escape, uneven))) + "]")  # re caches it
        for m in pattern.finditer(text):
            at = m.start()
            width = len(self._table[ord(text[at])])
            out_at = at + shift
            for k in range(width):  # each piece of "ﬁ" → "fi" comes from the ligature
                out_starts.append(out_at + k)
                in_starts.append(at)
            out_starts.append(out_at + width)
            in_starts.append(at + 1)
            shift += width - 1
        return folded, _Anchors(out_starts, in_starts)

    @staticmethod
    def _join(text: str) -> tuple[str, _Anchors | None]:
        cuts: list[tuple[int, int]] = []
        at = text.find("'")
        while at >= 0:
            if 0 < at < len(text) - 1 and text[at - 1] not in " '*" and text[at + 1] not in " '*":
                cuts.append((at, at + 1))
            at = text.find("'", at + 1)
        if _SINGLES_HINT.search(" " + text + " ") is not None:
            for m in _SINGLES.finditer(text):
                base = m.start()
                cuts.extend((base + s.start(), base + s.end()) for s in _JOIN_SEPARATOR.finditer(m.group()))
            cuts.sort()
        if not cuts:
            return text, None
        return _delete(text, cuts)

    @staticmethod
    def _unleet(text: str) -> str:
        """Stage 3, only on the words that hold a digit or symbol: most have none."""
        if _LEET_CHAR.search(text) is None:
            return text
        # Leftover apostrophes end words like spaces do; one space in front lets a
        # token pattern start with a literal, which the regex engine finds fast.
        return _LEET_TOKEN.sub(_unleet_token, " " + text.replace("'", " "))[1:]

    @staticmethod
    def _collapse(text: str) -> tuple[str, _Anchors | None]:
        # _delete in one loop with the run bookkeeping: this stage runs on every text.
        parts: list[str] = []
        out_starts: list[int] = []
        in_starts: list[int] = []
        runs: dict[int, int] = {}
        kept = copied = 0
        for m in _RUN.finditer(text):
            start, end = m.span()
            parts.append(text[copied : start + 1])  # up to and including the run's first char
            out_starts.append(kept)
            in_starts.append(copied)
            kept += start + 1 - copied
            runs[kept - 1] = end - start
            copied = end
        if not parts:
            return text, None
        parts.append(text[copied:])
        out_starts.append(kept)
        in_starts.append(copied)
        return "".join(parts), _Anchors(out_starts, in_starts, runs)

    # -- public ------------------------------------------------------------
    def fold(self, text: str) -> str:
        """Stages 1–3 without offsets: the spelling a lexicon term is expanded from."""
        folded, _ = self._fold_chars(text)
        joined, _ = self._join(folded)
        return _to_spaces(self._unleet(joined))

    @staticmethod
    def collapse(text: str) -> tuple[str, dict[int, int]]:
        """Stage 4 alone, for short strings such as terms: collapsed text and the
        length of every run longer than one, by position in the collapsed text."""
        out: list[str] = []
        runs: dict[int, int] = {}
        for ch in text:
            if out and out[-1] == ch:
                last = len(out) - 1
                runs[last] = runs.get(last, 1) + 1
            else:
                out.append(ch)
        return "".join(out), runs

    def normalize(self, text: str) -> Normalized:
        maps: list[_Anchors] = []
        folded, char_map = self._fold_chars(text)
        if char_map is not None:
            maps.append(char_map)
        joined, join_map = self._join(folded)
        if join_map is not None:
            maps.append(join_map)
        spaced = _to_spaces(self._unleet(joined))
        collapsed, run_map = self._collapse(spaced)
        runs: dict[int, int] = {}
        if run_map is not None:
            maps.append(run_map)
            runs = {i + 1: n for i, n in run_map.runs.items()}
        return Normalized(" " + collapsed + " ", runs, tuple(maps))


#: Letters written with one separator between each ("m.o.r.o.n", "f-u-c-k", "i_d_i_o_t"):
#: joined on the raw text by :func:`readable`, before stage 1 turns the dots into spaces
#: (where "a m.o.r.o.n" could no longer be told from "a m o r o n").
_SEPARATED = re.compile(r"(?<!\w)\w(?P<sep>[.\-_·•/|*~+])\w(?:(?P=sep)\w)+(?!\w)")


def readable(normalizer: "Normalizer", text: str) -> str:
    """The normalised text as words a language model can read: homoglyphs and full-width
    letters folded, invisible characters removed, leetspeak and separated letters joined,
    runs of three or more letters collapsed; ``1``/``!`` read as ``i``, a hidden letter as ``*``.

    The text classifier scores this beside the raw text, so "ｙｏｕ ａｒｅ ａｎ ｉｄｉｏｔ" and
    "y.o.u a.r.e a.n i.d.i.o.t" read as what they say. Offsets are not kept: it is for
    scoring only, evidence points at the raw text."""
    joined = _SEPARATED.sub(lambda m: m.group().replace(m.group("sep"), ""), text)
    norm = normalizer.normalize(joined)
    # A doubled letter is spelling ("kill", "see"); only longer runs are emphasis ("fuuuck").
    out = "".join(ch * 2 if norm.runs.get(i) == 2 and ch != " " else ch for i, ch in enumerate(norm.text))
    return " ".join(out.replace(IL, "i").replace(MASK, "*").split())


def _to_spaces(text: str) -> str:
    """Stage 3 → 4: a symbol still standing is a word break. (``str.replace`` per
    symbol present beats ``str.translate`` once the text holds IL or MASK.)"""
    for symbol in _KEEP:
        if symbol in text:
            text = text.replace(symbol, " ")
    return text


def _unleet_token(m: re.Match[str]) -> str:
    token = m.group(1)
    if not token.strip(_NOT_LETTERS):
        return m.group()  # a number, a price, "!!!": no letter to read it as a word
    if token[0] not in _EDGE_SYMBOLS and token[-1] not in _EDGE_SYMBOLS:
        return " " + token.translate(_LEET)
    # '!', '|' and '*' only count between letters: "idiot!" ends a sentence, "b!tch" does not.
    head = len(token) - len(token.lstrip(_EDGE_SYMBOLS))
    tail = len(token.rstrip(_EDGE_SYMBOLS))
    return " " + token[:head] + token[head:tail].translate(_LEET) + token[tail:]
