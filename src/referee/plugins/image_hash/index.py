"""Hamming-radius search over 256-bit codes: multi-index hashing on numpy tables, and brute force.

Multi-index hashing (Norouzi et al.): cut each code into ``tables`` chunks. If
two codes differ in at most ``r`` bits, some chunk differs in at most
``floor(r / tables)`` bits, so probing every chunk's table with the query's chunk
and its variants within ``flips`` bits finds every match when
``tables * (flips + 1) > r`` (exact), and almost every match otherwise. Each
candidate is checked against the full code, so nothing farther than ``r`` is ever
returned.

A table is a bucket array: codes sorted by their chunk's top ``bucket_bits``
bits, an ``offsets`` array addressed directly by those bits (O(1) per probe, no
binary search) and, per code, one packed integer: the chunk's remaining low bits
above the code's id. A probe reads its bucket's packed entries in one gather and
keeps those whose low bits match, so a bucket is compared without a second array
and without a second gather. The default ``bucket_bits`` follows the index's
size (about two codes a bucket, at most 22 bits), which is what makes 10M codes
fast: the probes of a batch read about a quarter of the entries that 20 bits
read there. At 10M codes, 11 tables cost 40 MB of entries each plus 16 MB of
offsets, and the codes 320 MB: about 0.95 GB in all (0.86 GB at 21 bits).

Every step of a batch is one numpy call over the whole batch: the chunks of
every table are cut with one shift per word, the probes (every chunk and its
1-bit variants) are one XOR against a flat mask table, the buckets are one
gather, and the candidates are verified with a popcount over ``uint64`` words
(``np.bitwise_count``). A code reached through several tables counts once.

Those calls release the GIL, so a batch cut into sub-batches on a thread pool
(``search(executor=)``) runs on several cores. A lone query has a path of its own
with half the numpy calls (``candidates_one``): at one query a call, their fixed
cost is most of the time.

Changes are incremental: added codes go to a small side buffer searched by brute
force until it holds ``merge_at`` codes (default 5,000), then they are *merged*
into the tables (each bucket grows in place by one ``np.insert``: no re-sort of
the codes already indexed). A disabled code is masked, not removed. ``updated``
turns a changed list of codes (a bank file re-read) into a copy that keeps the
ids and tables of the codes still listed. Small indexes (under ``brute_below``
codes) are searched by brute force outright, which is exact and fast there.
``search_exact`` is the brute-force path, for checking recall.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

BITS = 256
WORDS = BITS // 64
#: The most direct-address bits a table gets (4M buckets, 16 MB of offsets).
MAX_BUCKET_BITS = 22
#: Pairs compared in one brute-force block (memory bound for the side buffer and small indexes).
_BRUTE_PAIRS = 1 << 21

Codes = NDArray[np.uint8]  # (n, 32): 256 bits, most significant bit first
_Found = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]  # query, code id, distance


def as_words(codes: Codes) -> NDArray[np.uint64]:
    """(n, 32) bytes -> (n, 4) big-endian uint64 words (bit 0 of the code is the top bit of word 0)."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, BITS // 8)
    return codes.view(">u8").astype(np.uint64)


def hamming_words(a: NDArray[np.uint64], b: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Row-wise Hamming distance of two (n, 4) word arrays (broadcasting)."""
    counts: NDArray[np.int64] = np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)
    return counts


def _popcount_rows(x: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Bits set in each (m, 4) row: the byte counts summed as packed uint32 lanes (faster than .sum(axis=1))."""
    v = np.bitwise_count(x).view(np.uint32).ravel()  # 4 uint64 -> 4 byte counts (each <= 64) -> 1 uint32 per row
    s = (v & np.uint32(0x00FF00FF)) + ((v >> np.uint32(8)) & np.uint32(0x00FF00FF))
    return ((s & np.uint32(0xFFFF)) + (s >> np.uint32(16))).astype(np.int64)


def _key(words: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """A 64-bit key of each whole code (two codes sharing their first 64 bits get different keys)."""
    key: NDArray[np.uint64] = (words[:, 0] ^ words[:, 1] * np.uint64(0x9E3779B97F4A7C15)
                               ^ words[:, 2] * np.uint64(0xC2B2AE3D27D4EB4F) ^ words[:, 3] * np.uint64(0x165667B19E3779F9))
    return key


def _sorted_keys(words: NDArray[np.uint64], bits: int) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """The codes' keys (their top ``64 - bits`` bits) in order, and the row of each.

    Key and row are packed in one uint64 and sorted with numpy's SIMD sort, several
    times faster than an argsort (as in the tables' build)."""
    packed = ((_key(words) >> np.uint64(bits)) << np.uint64(bits)) | np.arange(len(words), dtype=np.uint64)
    packed.sort()
    rows = (packed & np.uint64((1 << bits) - 1)).astype(np.int64)
    packed >>= np.uint64(bits)
    return packed, rows


def auto_bucket_bits(n: int) -> int:
    """About two codes a bucket: fewer entries read per probe, offsets no bigger than the entries."""
    return max(8, min(MAX_BUCKET_BITS, n.bit_length() - 1))


@dataclass(frozen=True)
class _Chunk:
    start: int  # first bit, counted from the code's most significant bit
    width: int


def _chunks(tables: int) -> list[_Chunk]:
    base, extra = divmod(BITS, tables)
    out, start = [], 0
    for t in range(tables):
        width = base + (1 if t < extra else 0)
        out.append(_Chunk(start, width))
        start += width
    return out


def _flip_masks(width: int, flips: int) -> list[int]:
    masks = [0]
    if flips >= 1:
        masks += [1 << b for b in range(width)]
    if flips >= 2:
        masks += [(1 << a) | (1 << b) for a in range(width) for b in range(a + 1, width)]
    return masks


class _Cutter:
    """Cuts every table's chunk out of a batch of codes in a few whole-array shifts.

    A chunk spans at most two words: shift the first left by the chunk's offset,
    the next right by the rest, OR them and keep the top ``width`` bits."""

    def __init__(self, chunks: list[_Chunk]) -> None:
        self.word = np.array([c.start // 64 for c in chunks], dtype=np.intp)
        self.next = np.minimum(self.word + 1, WORDS - 1)
        self.left = np.array([c.start % 64 for c in chunks], dtype=np.uint64)
        self.right = np.uint64(63) - self.left  # then >> 1: a shift by 64 is undefined
        # A chunk that ends in the last word takes nothing from a next one.
        self.spill = np.array([0 if w + 1 >= WORDS else (1 << 64) - 1 for w in self.word.tolist()], dtype=np.uint64)
        self.keep = np.array([64 - c.width for c in chunks], dtype=np.uint64)

    def __call__(self, words: NDArray[np.uint64]) -> NDArray[np.uint64]:
        hi = words[:, self.word] << self.left
        lo = ((words[:, self.next] >> self.right) >> np.uint64(1)) & self.spill
        chunks: NDArray[np.uint64] = (hi | lo) >> self.keep
        return chunks

    def one(self, words: NDArray[np.uint64], t: int) -> NDArray[np.uint64]:
        """Table ``t``'s chunk of every code (builds cut one table at a time to bound memory)."""
        w = int(self.word[t])
        hi = words[:, w] << self.left[t]
        lo = ((words[:, w + 1] >> self.right[t]) >> np.uint64(1)) if w + 1 < WORDS else np.uint64(0)
        chunk: NDArray[np.uint64] = (hi | lo) >> self.keep[t]
        return chunk


class _Tables:
    """Every table stacked into one set of arrays, so a batch of probes is one vectorised lookup.

    Bucket ``b`` of table ``t`` is ``entries[offsets[base[t] + b] : offsets[base[t] + b + 1]]``;
    an entry is ``low << id_bits | id``, ``low`` being the chunk bits below the bucket bits."""

    def __init__(self, words: NDArray[np.uint64], chunks: list[_Chunk], bucket_bits: int, flips: int) -> None:
        n = len(words)
        self.chunks = chunks
        self.bucket_bits = bucket_bits
        self.cut = _Cutter(chunks)
        low_bits = [max(0, c.width - bucket_bits) for c in chunks]
        sizes = [1 << (c.width - lb) for c, lb in zip(chunks, low_bits)]
        base = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        self.buckets = int(sum(sizes))
        # Ids with room to double through merges; uint32 entries while ids and low bits fit.
        self.id_bits = max(1, (2 * n).bit_length())
        total = 32 if self.id_bits + min(max(low_bits), 2) <= 32 else 63  # 63: the sign bit stays clear
        self.dtype: type[np.unsignedinteger] = np.uint32 if total == 32 else np.uint64
        self.capacity = 1 << self.id_bits
        # Only the top `kept` low bits are compared in the bucket (the rest by verification).
        kept = [min(lb, total - self.id_bits, 31) for lb in low_bits]
        self._drop = np.array([lb - k for lb, k in zip(low_bits, kept)], dtype=np.uint64)
        self._shift = np.array(low_bits, dtype=np.uint64)
        self._base = base
        # The flat probe table: one row per (table, flip mask). A mask flips bits of the bucket
        # part (bucket_flip) or of the low part (low_flip), so a probe is two XORs of its table's key.
        probe_t, bucket_flip, low_flip = [], [], []
        for t, c in enumerate(chunks):
            for m in _flip_masks(c.width, flips):
                probe_t.append(t)
                bucket_flip.append(m >> low_bits[t])
                low_flip.append((m & ((1 << low_bits[t]) - 1)) >> (low_bits[t] - kept[t]))
        self.probe_table = np.array(probe_t, dtype=np.intp)
        self.bucket_flip = np.array(bucket_flip, dtype=np.int64)
        self.low_flip = np.array(low_flip, dtype=np.int64)
        self.probe_base = base[self.probe_table]
        # One query's chunks are cut from the code as a Python int (two integer ops a table, no
        # array calls); then each probe's flipped chunk gives its bucket and kept low bits.
        self._one = [(BITS - c.start - c.width, (1 << c.width) - 1) for c in chunks]
        # uint64 throughout: a 64-bit chunk does not fit an int64 (and uint64 + int64 makes floats).
        self._one_flip = np.array([m for c in chunks for m in _flip_masks(c.width, flips)], dtype=np.uint64)
        self._one_shift = self._shift[self.probe_table]
        self._one_low = np.array([(1 << lb) - 1 for lb in low_bits], dtype=np.uint64)[self.probe_table]
        self._one_drop = self._drop[self.probe_table]
        self._one_base = self.probe_base.astype(np.uint64)

        # Each table sorted by bucket: a sort of (bucket, entry) keys, which numpy's SIMD sort does
        # several times faster than an argsort (a bucket's entries end up in (low bits, id) order).
        self.entries = np.empty(len(chunks) * n, self.dtype)
        counts_all = []
        ids = np.arange(n, dtype=np.uint64)
        for t in range(len(chunks)):
            bucket, low = self._split(self.cut.one(words, t), t)
            counts_all.append(np.bincount(bucket - base[t], minlength=sizes[t]))
            entry = (low << np.uint64(self.id_bits)) | ids
            if self.dtype is np.uint32:
                key = (bucket.astype(np.uint64) << np.uint64(32)) | entry
                key.sort()
                self.entries[t * n:(t + 1) * n] = key & np.uint64(0xFFFFFFFF)
            else:
                self.entries[t * n:(t + 1) * n] = entry[np.argsort(bucket, kind="stable")]
            del bucket, low, entry
        self.offsets = self._offsets(np.concatenate(counts_all))

    def _offsets(self, counts: NDArray[np.int64]) -> NDArray[np.unsignedinteger]:
        big = int(counts.sum()) >= 2**32
        out: NDArray[np.unsignedinteger] = np.zeros(len(counts) + 1, dtype=np.uint64 if big else np.uint32)
        np.cumsum(counts, out=out[1:])
        return out

    def _split(self, values: NDArray[np.uint64], t: int | NDArray[np.intp]) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
        """Chunk values of table(s) ``t`` -> (global bucket, the kept low bits)."""
        shift = self._shift[t]
        bucket = (values >> shift).astype(np.int64) + self._base[t]
        low = (values & ((np.uint64(1) << shift) - np.uint64(1))) >> self._drop[t]
        return bucket, low

    @property
    def nbytes(self) -> int:
        return int(self.entries.nbytes + self.offsets.nbytes)

    def merged(self, words: NDArray[np.uint64], first_id: int) -> _Tables:
        """These tables with codes (ids from ``first_id``) at the end of their buckets: no re-sort
        of the rest. A new object, so a search running meanwhile keeps a consistent one."""
        out = copy.copy(self)
        out._merge(words, first_id)
        return out

    def _merge(self, words: NDArray[np.uint64], first_id: int) -> None:
        ids = np.arange(first_id, first_id + len(words), dtype=np.uint64)
        glob, packed = [], []
        for t in range(len(self.chunks)):
            bucket, low = self._split(self.cut.one(words, t), t)
            glob.append(bucket)
            packed.append((low << np.uint64(self.id_bits)) | ids)
        # In bucket order: entries inserted at one position (the end of a bucket that is also the
        # start of empty ones after it) land in the order given, so they must come bucket by bucket.
        g = np.concatenate(glob)
        order = np.argsort(g, kind="stable")
        g = g[order]
        at = self.offsets[g + 1].astype(np.int64)  # the end of the bucket keeps each bucket in id order
        self.entries = np.insert(self.entries, at, np.concatenate(packed)[order].astype(self.dtype))
        # Each offset grows by the codes added to the buckets before it: one cumulative sum in the
        # offsets' own dtype (no int64 copies of 46M offsets at 10M codes), widened only if it must.
        dtype = np.uint64 if int(self.offsets[-1]) + len(g) >= 2**32 else self.offsets.dtype
        offsets = np.zeros(len(self.offsets), dtype)
        np.add.at(offsets, g + 1, 1)
        np.cumsum(offsets, out=offsets)
        offsets += self.offsets
        self.offsets = offsets

    def candidates(self, q: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(query index, code id) of every code in a probed bucket whose kept low bits match."""
        chunk = self.cut(q)  # (queries, tables)
        local = (chunk >> self._shift).astype(np.int64)
        low = ((chunk & ((np.uint64(1) << self._shift) - np.uint64(1))) >> self._drop).astype(np.int64)
        low |= np.arange(len(q), dtype=np.int64)[:, None] << 32  # a tag: the query above the low bits
        bucket = ((local[:, self.probe_table] ^ self.bucket_flip) + self.probe_base).ravel()
        want = (low[:, self.probe_table] ^ self.low_flip).ravel()  # (queries * probes)
        # A bucket's two offsets in one gather (they share a cache line), not two passes.
        pair = np.empty((len(bucket), 2), np.int64)
        pair[:, 0] = bucket
        pair[:, 1] = bucket + 1
        bounds = np.take(self.offsets, pair.ravel()).astype(np.int64).reshape(-1, 2)
        starts, counts = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
        ends = np.cumsum(counts)
        total = int(ends[-1]) if len(ends) else 0
        if total == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        tag = np.repeat(want, counts)  # each probe's tag, spread over its bucket's entries
        pos = np.repeat(starts - (ends - counts), counts) + np.arange(total, dtype=np.int64)
        entry = np.take(self.entries, pos).astype(np.int64)
        keep = np.flatnonzero((entry >> self.id_bits) == (tag & 0xFFFFFFFF))  # indices, then take: not masks
        return np.take(tag, keep) >> 32, np.take(entry, keep) & ((1 << self.id_bits) - 1)

    def candidates_one(self, code: int) -> NDArray[np.int64]:
        """Code ids in one query's probed buckets whose kept low bits match (repeats possible).

        The batch path's steps without its bookkeeping (no query tags, no (queries, tables)
        arrays, each probe's bucket and low bits from its flipped chunk) in half its numpy
        calls, which is most of what a lone query costs. (Reading every bucket through a
        fixed window instead of the two repeats was slower: about 63 against 47 us.)"""
        flipped = np.take(np.array([(code >> right) & mask for right, mask in self._one], np.uint64),
                          self.probe_table) ^ self._one_flip
        bucket = (flipped >> self._one_shift) + self._one_base
        want = (flipped & self._one_low) >> self._one_drop
        starts = np.take(self.offsets, bucket).astype(np.int64)
        counts = np.take(self.offsets, bucket + 1).astype(np.int64) - starts  # int64: uint64 offsets too
        ends = np.cumsum(counts)
        entry = np.take(self.entries, np.repeat(starts - ends + counts, counts) + np.arange(int(ends[-1])))
        keep = np.flatnonzero((entry >> self.id_bits) == np.repeat(want, counts))
        ids: NDArray[np.int64] = np.take(entry, keep).astype(np.int64) & ((1 << self.id_bits) - 1)
        return ids


class HashIndex:
    """Codes within a Hamming radius of each query. Ids are positions in the order codes were added."""

    def __init__(self, codes: Codes | None = None, tables: int = 11, flips: int = 1,
                 brute_below: int = 50_000, merge_at: int | None = None, bucket_bits: int | None = None) -> None:
        if not 4 <= tables <= 64 or flips not in (0, 1, 2):
            raise ValueError(f"tables must be 4-64 (a chunk is at most 64 bits) and flips 0-2, "
                             f"got tables={tables}, flips={flips}")
        if bucket_bits is not None and not 1 <= bucket_bits <= 32:
            raise ValueError(f"bucket_bits must be 1-32 (or None: from the index's size), got {bucket_bits}")
        self.tables_n = tables
        self.flips = flips
        self.brute_below = brute_below
        self.merge_at = merge_at if merge_at is not None else 5_000
        self._bucket_bits = bucket_bits
        self._words = np.empty((0, WORDS), np.uint64)
        self._enabled = np.empty(0, bool)
        self._indexed = 0  # codes [0, _indexed) are in the tables; the rest are searched by brute force
        self._tables: _Tables | None = None
        self._built_n = 0  # codes in the tables at their last full build
        if codes is not None and len(codes):
            self.add(codes)

    def __len__(self) -> int:
        return len(self._words)

    @property
    def bucket_bits(self) -> int:
        """The direct-address bits of the tables (as built, or as the next build would choose)."""
        if self._tables is not None:
            return self._tables.bucket_bits
        return self._bucket_bits if self._bucket_bits is not None else auto_bucket_bits(len(self._words))

    @property
    def exact_radius(self) -> int:
        """The largest radius the tables answer exactly (brute force is always exact)."""
        return self.tables_n * (self.flips + 1) - 1

    @property
    def nbytes(self) -> int:
        t = self._tables.nbytes if self._tables is not None else 0
        return t + self._words.nbytes + self._enabled.nbytes

    def add(self, codes: Codes) -> range:
        """Add codes (n, 32); returns their ids. Merges the side buffer into the tables once it is full."""
        words = as_words(codes)
        first = len(self._words)
        # Each step leaves a state a search in another thread can read (a superset, never less):
        # the flags before the codes, the tables before the count of codes they hold.
        self._enabled = np.concatenate([self._enabled, np.ones(len(words), bool)])
        self._words = np.concatenate([self._words, words]) if first else words
        if len(self._words) < self.brute_below:
            return range(first, len(self._words))
        if self._tables is None:
            self.rebuild()
        elif len(self._words) - self._indexed >= self.merge_at:
            self.merge()
        return range(first, len(self._words))

    def set_enabled(self, ids: Sequence[int] | NDArray[np.int64], enabled: bool) -> None:
        self._enabled[np.asarray(ids, dtype=np.int64)] = enabled

    def updated(self, codes: Codes) -> tuple[HashIndex, NDArray[np.int64]]:
        """An index whose enabled codes are exactly ``codes``, and the id of each of them in it.

        A bank file that changed is mostly the same codes: those keep their ids and the
        built tables, new ones are added (the side buffer, then a merge), and codes no longer
        listed are masked. This index is left as it was (the result is a copy that shares
        its arrays and owns its flags), so a search running on it meanwhile is unaffected.
        A fresh build instead once masked codes would outnumber live ones."""
        new = as_words(codes)
        old = self._words
        ids = np.full(len(new), -1, np.int64)
        if len(old) and len(new):
            # Match on a key of the whole code and on the copy's rank among equal keys (the k-th
            # copy of a code listed twice takes the k-th old id); the codes are compared after, so
            # keys that collide only cost an id. Both sides sorted, and searched with sorted needles.
            bits = max(len(old), len(new)).bit_length()
            held, order = _sorted_keys(old, bits)
            wanted, by_key = _sorted_keys(new, bits)
            pos = np.minimum(np.searchsorted(held, wanted) + np.arange(len(new)) - np.searchsorted(wanted, wanted),
                             len(old) - 1)  # the first old copy of the key, plus this copy's rank
            cand = np.empty(len(new), np.int64)
            cand[by_key] = order[pos]
            same = np.empty(len(new), bool)
            same[by_key] = held[pos] == wanted
            diff = np.take(old, cand, axis=0) ^ new  # in the new order: mostly sequential in the old
            same &= (diff[:, 0] | diff[:, 1] | diff[:, 2] | diff[:, 3]) == 0
            del diff
            ids[same] = cand[same]
        kept = int((ids >= 0).sum())
        if len(old) - kept > kept + (len(new) - kept):
            fresh = HashIndex(codes, tables=self.tables_n, flips=self.flips, brute_below=self.brute_below,
                              merge_at=self.merge_at, bucket_bits=self._bucket_bits)
            return fresh, np.arange(len(new), dtype=np.int64)
        out = copy.copy(self)
        enabled = np.zeros(len(old), bool)
        enabled[ids[ids >= 0]] = True
        out._enabled = enabled
        added = np.flatnonzero(ids < 0)
        if len(added):
            got = out.add(np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, BITS // 8)[added])
            ids[added] = np.arange(got.start, got.stop)
        return out, ids

    def rebuild(self) -> None:
        """Build the tables afresh over every code (bucket bits chosen for the size now)."""
        bits = self._bucket_bits if self._bucket_bits is not None else auto_bucket_bits(len(self._words))
        n = len(self._words)
        self._indexed = 0  # meanwhile a search is brute force over everything: slow, never wrong
        self._tables = None  # the old tables go before the new ones are built (peak memory)
        self._tables = _Tables(self._words[:n], _chunks(self.tables_n), bits, self.flips)
        self._indexed = self._built_n = n

    def merge(self) -> None:
        """Move the side buffer into the tables: buckets grow in place, nothing indexed is re-sorted.

        A full rebuild instead when the packed ids would overflow, or once the index has
        doubled since its last build (its bucket bits would no longer fit its size)."""
        if self._tables is None or len(self._words) >= self._tables.capacity or len(self._words) >= 2 * self._built_n:
            self.rebuild()
            return
        n = len(self._words)
        self._tables = self._tables.merged(self._words[self._indexed:n], self._indexed)
        self._indexed = n

    # -- search -------------------------------------------------------------
    def search(self, queries: Codes, radius: int = 31, batch: int = 256,
               executor: Executor | None = None) -> list[list[tuple[int, int]]]:
        """For each query, the (id, distance) of enabled codes within ``radius``, nearest first.

        The batch is cut into sub-batches of at most ``batch`` queries (their temporaries stay
        in cache). With an ``executor`` (a thread pool) the sub-batches run on its threads, at
        least two when the batch has 128 queries or more: each sub-batch is a few dozen numpy
        calls over arrays of 10^4-10^5 elements, which release the GIL, so threads use
        separate cores. A lone query takes a path of its own (``candidates_one``)."""
        # One consistent view, read in the order that ``add``/``merge``/``rebuild`` write in reverse:
        # what the tables cover, then the tables (no tables: brute force over everything).
        indexed = self._indexed
        tables = self._tables
        if tables is None:
            indexed = 0
        if tables is not None and indexed and queries.size == BITS // 8 and queries.dtype == np.uint8:
            return [self._search_one(queries.tobytes(), tables, indexed, radius)]
        q = as_words(queries)
        out: list[list[tuple[int, int]]] = [[] for _ in range(len(q))]
        if not len(self._words) or not len(q):
            return out
        parts = -(-len(q) // max(1, batch))
        if executor is not None and len(q) >= 128:
            parts = max(parts, 2)
        step = -(-len(q) // parts)
        spans = [(lo, q[lo:lo + step]) for lo in range(0, len(q), step)]

        def run(lo: int, part: NDArray[np.uint64]) -> list[_Found]:
            found: list[_Found] = []
            if tables is not None and indexed:
                qid, cid = tables.candidates(part)
                found.append(self._verify(part, qid, cid, radius, lo))
            if indexed < len(self._words):  # the side buffer (or a small index): brute force
                found.append(self._brute(part, indexed, radius, lo))
            return found

        if executor is None or len(spans) == 1:
            found = [f for lo, part in spans for f in run(lo, part)]
        else:
            found = [f for job in [executor.submit(run, lo, part) for lo, part in spans] for f in job.result()]
        fq, fc, fd = (np.concatenate(a) for a in zip(*found))
        if len(fq):
            order = np.lexsort((fc, fd, fq))
            fq, fc, fd = fq[order], fc[order], fd[order]
            dup = np.zeros(len(fq), bool)  # a code reached through several tables counts once
            dup[1:] = (fq[1:] == fq[:-1]) & (fc[1:] == fc[:-1])
            for a, b, d in zip(fq[~dup].tolist(), fc[~dup].tolist(), fd[~dup].tolist()):
                out[a].append((b, d))
        return out

    def _search_one(self, code: bytes, tables: _Tables, indexed: int, radius: int) -> list[tuple[int, int]]:
        """One query: its candidates, verified; the few hits deduplicated in Python, nearest first."""
        value = int.from_bytes(code, "big")
        q = np.array([(value >> s) & 0xFFFFFFFFFFFFFFFF for s in (192, 128, 64, 0)], np.uint64)
        cid = tables.candidates_one(value)
        d = np.bitwise_count(np.take(self._words, cid, axis=0) ^ q).sum(axis=1)
        near = np.flatnonzero(d <= radius)
        hits = {(c, dist) for c, dist in zip(np.take(cid, near).tolist(), np.take(d, near).tolist())
                if self._enabled[c]}
        if indexed < len(self._words):
            _, bc, bd = self._brute(q[None, :], indexed, radius, 0)
            hits.update(zip(bc.tolist(), bd.tolist()))
        return sorted(hits, key=lambda hit: (hit[1], hit[0]))

    def search_exact(self, queries: Codes, radius: int = 31) -> list[list[tuple[int, int]]]:
        """Brute force over every code: the reference the tables' recall is measured against."""
        q = as_words(queries)
        out: list[list[tuple[int, int]]] = [[] for _ in range(len(q))]
        fq, fc, fd = self._brute(q, 0, radius, 0)
        order = np.lexsort((fc, fd, fq))
        for a, b, d in zip(fq[order].tolist(), fc[order].tolist(), fd[order].tolist()):
            out[a].append((b, d))
        return out

    def _brute(self, q: NDArray[np.uint64], first: int, radius: int, offset: int) -> _Found:
        """Every query against codes ``[first, len)``, in blocks of about ``_BRUTE_PAIRS`` pairs."""
        codes = self._words[first:]
        rows = max(1, _BRUTE_PAIRS // max(len(q), 1))
        none = np.empty(0, np.int64)
        parts: list[_Found] = [(none, none, none)]
        for lo in range(0, len(codes), rows):
            block = codes[lo:lo + rows]
            d = np.zeros((len(q), len(block)), np.uint16)  # word by word: no (q, rows, 4) temporary to reduce
            for w in range(WORDS):
                d += np.bitwise_count(q[:, w, None] ^ block[None, :, w])
            qi, ci = np.nonzero((d <= radius) & self._enabled[None, first + lo:first + lo + len(block)])
            parts.append((qi.astype(np.int64) + offset, ci.astype(np.int64) + first + lo, d[qi, ci].astype(np.int64)))
        fq, fc, fd = (np.concatenate(a) for a in zip(*parts))
        return fq, fc, fd

    def _verify(self, q: NDArray[np.uint64], qid: NDArray[np.int64], cid: NDArray[np.int64], radius: int,
                offset: int) -> _Found:
        # np.take, not fancy indexing: rows gathered from a big 2-D array are several times faster.
        d = _popcount_rows(np.take(q, qid, axis=0) ^ np.take(self._words, cid, axis=0))
        near = np.flatnonzero(d <= radius)
        near = near[self._enabled[cid[near]]]
        return np.take(qid, near) + offset, np.take(cid, near), np.take(d, near)
