"""Hamming-radius search over 256-bit codes: multi-index hashing on numpy tables, and brute force.

Multi-index hashing (Norouzi et al.): cut each code into ``tables`` chunks. If
two codes differ in at most ``r`` bits, some chunk differs in at most
``floor(r / tables)`` bits, so probing every chunk's table with the query's chunk
and its variants within ``flips`` bits finds every match when
``tables * (flips + 1) > r`` (exact), and almost every match otherwise. Each
candidate is checked against the full code, so nothing farther than ``r`` is ever
returned.

A table is a bucket array: codes sorted by their chunk's top bits, an
``offsets`` array addressed directly by those bits (O(1) per probe, no binary
search) and the chunk's remaining low bits (at most 8) in one byte per code,
compared after the bucket is read. At 10M codes, 11 tables cost about 54 MB
each plus 320 MB of codes: about 0.9 GB in all.

Changes are incremental: added codes go to a small side buffer searched by brute
force until it grows past ``merge_at`` (default 20,000; then the tables are
rebuilt), and a
disabled code is masked, not removed. Small indexes (under ``brute_below``
codes) are searched by brute force outright, which is exact and fast there.
``search_exact`` is the brute-force path, for checking recall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

BITS = 256
WORDS = BITS // 64
#: Chunk bits kept in the direct-address offsets; the rest (<= 8) are stored per code.
_BUCKET_BITS = 20

Codes = NDArray[np.uint8]  # (n, 32): 256 bits, most significant bit first


def as_words(codes: Codes) -> NDArray[np.uint64]:
    """(n, 32) bytes -> (n, 4) big-endian uint64 words (bit 0 of the code is the top bit of word 0)."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, BITS // 8)
    return codes.view(">u8").astype(np.uint64)


def hamming_words(a: NDArray[np.uint64], b: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Row-wise Hamming distance of two (n, 4) word arrays (broadcasting)."""
    counts: NDArray[np.int64] = np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)
    return counts


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


def _chunk_values(words: NDArray[np.uint64], chunk: _Chunk) -> NDArray[np.uint64]:
    """The chunk's bits of every code, as integers."""
    w0, off = divmod(chunk.start, 64)
    if off + chunk.width <= 64:
        shift = np.uint64(64 - off - chunk.width)
        return (words[:, w0] >> shift) & np.uint64((1 << chunk.width) - 1)
    hi_bits = 64 - off
    lo_bits = chunk.width - hi_bits
    hi = words[:, w0] & np.uint64((1 << hi_bits) - 1)
    lo = words[:, w0 + 1] >> np.uint64(64 - lo_bits)
    return (hi << np.uint64(lo_bits)) | lo


def _flip_masks(width: int, flips: int) -> NDArray[np.uint64]:
    masks = [0]
    if flips >= 1:
        masks += [1 << b for b in range(width)]
    if flips >= 2:
        masks += [(1 << a) | (1 << b) for a in range(width) for b in range(a + 1, width)]
    return np.array(masks, dtype=np.uint64)


class _Tables:
    """Every table stacked into one set of arrays, so a batch of probes is one vectorised lookup.

    Table ``t`` holds entries ``[t*n, (t+1)*n)`` of ``ids``/``low``; its buckets are
    ``offsets[base[t] + b]``. ``low`` keeps the chunk bits below the bucket bits."""

    def __init__(self, words: NDArray[np.uint64], chunks: list[_Chunk], bucket_bits: int = _BUCKET_BITS) -> None:
        n = len(words)
        self.chunks = chunks
        self.low_bits = np.array([max(0, c.width - bucket_bits) for c in chunks], dtype=np.uint64)
        sizes = [1 << (c.width - int(lb)) for c, lb in zip(chunks, self.low_bits)]
        self.base = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        big = len(chunks) * n >= 2**32
        ids, low, offsets = [], [], []
        for t, (chunk, size) in enumerate(zip(chunks, sizes)):
            values = _chunk_values(words, chunk)
            lb = np.uint64(self.low_bits[t])
            bucket = (values >> lb).astype(np.int64)
            order = np.argsort(bucket, kind="stable")
            ids.append(order.astype(np.uint32))
            low.append((values[order] & ((np.uint64(1) << lb) - np.uint64(1))).astype(np.uint8))
            counts = np.bincount(bucket, minlength=size)
            starts = np.concatenate(([0], np.cumsum(counts[:-1]))) + t * n
            offsets.append(starts.astype(np.uint64 if big else np.uint32))
        offsets.append(np.array([len(chunks) * n], dtype=np.uint64 if big else np.uint32))
        self.ids = np.concatenate(ids)
        self.low = np.concatenate(low)
        self.offsets = np.concatenate(offsets)

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.low.nbytes + self.offsets.nbytes)

    def probe(self, bucket: NDArray[np.int64], want: NDArray[np.uint8]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """For each probe (a global bucket and the low bits wanted in it): (probe index, code id)
        of every code there whose low bits match."""
        starts = self.offsets[bucket].astype(np.int64)
        counts = self.offsets[bucket + 1].astype(np.int64) - starts
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        which = np.repeat(np.arange(len(bucket), dtype=np.int64), counts)
        pos = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(total, dtype=np.int64)
        keep = self.low[pos] == want[which]
        return which[keep], self.ids[pos[keep]].astype(np.int64)

    def keys(self, q: NDArray[np.uint64], t: int, masks: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
        """Table ``t``'s probes for queries ``q`` (every chunk variant in ``masks``): global buckets, low bits."""
        keys = (_chunk_values(q, self.chunks[t])[:, None] ^ masks[None, :]).ravel()
        shift = np.uint64(self.low_bits[t])
        bucket = (keys >> shift).astype(np.int64) + int(self.base[t])
        return bucket, (keys & ((np.uint64(1) << shift) - np.uint64(1))).astype(np.uint8)


class HashIndex:
    """Codes within a Hamming radius of each query. Ids are positions in the order codes were added."""

    def __init__(self, codes: Codes | None = None, tables: int = 11, flips: int = 1,
                 brute_below: int = 50_000, merge_at: int | None = None, bucket_bits: int = _BUCKET_BITS) -> None:
        if not 2 <= tables <= 64 or flips not in (0, 1, 2):
            raise ValueError(f"tables must be 2-64 and flips 0-2, got tables={tables}, flips={flips}")
        self.tables_n = tables
        self.flips = flips
        self.brute_below = brute_below
        self.merge_at = merge_at
        self.bucket_bits = bucket_bits
        self._words = np.empty((0, WORDS), np.uint64)
        self._enabled = np.empty(0, bool)
        self._indexed = 0  # codes [0, _indexed) are in the tables; the rest are searched by brute force
        self._tables: _Tables | None = None
        self._masks = {w: _flip_masks(w, flips) for w in {c.width for c in _chunks(tables)}}
        if codes is not None and len(codes):
            self.add(codes)

    def __len__(self) -> int:
        return len(self._words)

    @property
    def exact_radius(self) -> int:
        """The largest radius the tables answer exactly (brute force is always exact)."""
        return self.tables_n * (self.flips + 1) - 1

    @property
    def nbytes(self) -> int:
        t = self._tables.nbytes if self._tables is not None else 0
        return t + self._words.nbytes + self._enabled.nbytes

    def add(self, codes: Codes) -> range:
        """Add codes (n, 32); returns their ids. Rebuilds the tables when the side buffer is full."""
        words = as_words(codes)
        first = len(self._words)
        self._words = np.concatenate([self._words, words]) if first else words
        self._enabled = np.concatenate([self._enabled, np.ones(len(words), bool)])
        limit = self.merge_at if self.merge_at is not None else 20_000
        if len(self._words) >= self.brute_below and (self._tables is None or len(self._words) - self._indexed >= limit):
            self.rebuild()
        return range(first, len(self._words))

    def set_enabled(self, ids: Sequence[int] | NDArray[np.int64], enabled: bool) -> None:
        self._enabled[np.asarray(ids, dtype=np.int64)] = enabled

    def rebuild(self) -> None:
        self._tables = _Tables(self._words, _chunks(self.tables_n), self.bucket_bits)
        self._indexed = len(self._words)

    # -- search -------------------------------------------------------------
    def search(self, queries: Codes, radius: int = 31, batch: int = 128) -> list[list[tuple[int, int]]]:
        """For each query, the (id, distance) of enabled codes within ``radius``, nearest first."""
        q = as_words(queries)
        out: list[list[tuple[int, int]]] = [[] for _ in range(len(q))]
        if not len(self._words):
            return out
        for lo in range(0, len(q), batch):
            part = q[lo:lo + batch]
            qid, cid = self._candidates(part)
            self._verify(part, qid, cid, radius, out, lo)
        for hits in out:
            hits.sort(key=lambda h: (h[1], h[0]))
        return out

    def search_exact(self, queries: Codes, radius: int = 31, batch: int = 64) -> list[list[tuple[int, int]]]:
        """Brute force over every code: the reference the tables' recall is measured against."""
        q = as_words(queries)
        out: list[list[tuple[int, int]]] = [[] for _ in range(len(q))]
        step = max(1, 4_000_000 // max(len(self._words), 1))
        for lo in range(0, len(q), min(batch, step) or 1):
            part = q[lo:lo + min(batch, step)]
            d = hamming_words(part[:, None, :], self._words[None, :, :])
            qi, ci = np.nonzero((d <= radius) & self._enabled[None, :])
            for a, b in zip(qi.tolist(), ci.tolist()):
                out[lo + a].append((b, int(d[a, b])))
        for hits in out:
            hits.sort(key=lambda h: (h[1], h[0]))
        return out

    def _candidates(self, q: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        n = len(q)
        pieces_q: list[NDArray[np.int64]] = []
        pieces_c: list[NDArray[np.int64]] = []
        if self._tables is not None and self._indexed:
            buckets, wants, qids = [], [], []
            for t, chunk in enumerate(self._tables.chunks):
                masks = self._masks[chunk.width]
                bucket, want = self._tables.keys(q, t, masks)
                buckets.append(bucket)
                wants.append(want)
                qids.append(np.repeat(np.arange(n, dtype=np.int64), len(masks)))
            qid = np.concatenate(qids)
            which, ids = self._tables.probe(np.concatenate(buckets), np.concatenate(wants))
            pieces_q.append(qid[which])
            pieces_c.append(ids)
        side = np.arange(self._indexed, len(self._words), dtype=np.int64)
        if len(side):  # the side buffer (or a small index): every query against every code
            pieces_q.append(np.repeat(np.arange(n, dtype=np.int64), len(side)))
            pieces_c.append(np.tile(side, n))
        if not pieces_q:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(pieces_q), np.concatenate(pieces_c)

    def _verify(self, q: NDArray[np.uint64], qid: NDArray[np.int64], cid: NDArray[np.int64], radius: int,
                out: list[list[tuple[int, int]]], offset: int) -> None:
        step = 1 << 20
        found_q: list[NDArray[np.int64]] = []
        found_c: list[NDArray[np.int64]] = []
        found_d: list[NDArray[np.int64]] = []
        for lo in range(0, len(qid), step):
            a, b = qid[lo:lo + step], cid[lo:lo + step]
            d = hamming_words(q[a], self._words[b])
            keep = (d <= radius) & self._enabled[b]
            found_q.append(a[keep])
            found_c.append(b[keep])
            found_d.append(d[keep])
        if not found_q:
            return
        fq, fc, fd = np.concatenate(found_q), np.concatenate(found_c), np.concatenate(found_d)
        if not len(fq):
            return
        key = fq * len(self._words) + fc  # a code reached through several tables counts once
        _, first = np.unique(key, return_index=True)
        for a, b, d in zip(fq[first].tolist(), fc[first].tolist(), fd[first].tolist()):
            out[offset + a].append((b, d))
