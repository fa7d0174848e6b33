"""The PDQ index's tables: merges, packed entries, bucket sizes and their edges, against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from referee.plugins.image_hash import HashIndex
from referee.plugins.image_hash.index import MAX_BUCKET_BITS, auto_bucket_bits


def _planted(n: int, q: int, seed: int = 0, max_bits: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    targets = rng.integers(0, n, q)
    bits = np.unpackbits(codes[targets], axis=1)
    for i, d in enumerate(rng.integers(0, max_bits, q)):
        bits[i, rng.choice(256, d, replace=False)] ^= 1
    return codes, np.packbits(bits, axis=1), targets


def test_an_exact_configuration_returns_exactly_what_brute_force_returns() -> None:
    codes, queries, _ = _planted(70_000, 300, seed=3)
    index = HashIndex(codes, tables=16, flips=1, brute_below=0)
    assert index.exact_radius >= 31 and index._tables is not None
    assert index.search(queries, 31) == index.search_exact(queries, 31)


def test_merged_codes_are_found_as_if_the_tables_were_rebuilt() -> None:
    codes, queries, targets = _planted(80_000, 400, seed=4)
    index = HashIndex(codes[:60_000], tables=16, brute_below=0, merge_at=5_000)
    built = index._tables
    for lo in range(60_000, 80_000, 5_000):  # four merges, none a rebuild
        assert index.add(codes[lo:lo + 5_000]) == range(lo, lo + 5_000)
    assert index._tables is not None and index._indexed == 80_000
    assert index._built_n == 60_000 and index._tables.probe_table is built.probe_table, "merged, not rebuilt"
    fresh = HashIndex(codes, tables=16, brute_below=0)
    assert index.search(queries, 31) == fresh.search(queries, 31) == index.search_exact(queries, 31)
    late = [k for k, t in enumerate(targets) if t >= 60_000]
    assert late and all(any(i == targets[k] for i, _ in index.search(queries[k:k + 1])[0]) for k in late)


def test_a_disabled_code_stays_disabled_through_a_merge() -> None:
    codes, queries, targets = _planted(60_000, 20, seed=5, max_bits=4)
    index = HashIndex(codes[:55_000], brute_below=0, merge_at=5_000)
    index.set_enabled([int(targets[0])], False)
    index.add(codes[55_000:])  # exactly merge_at: merged at once
    assert index._indexed == 60_000
    assert not any(i == targets[0] for i, _ in index.search(queries[:1])[0])
    assert all(any(i == t for i, _ in hits) for hits, t in zip(index.search(queries[1:]), targets[1:]))


def test_wide_chunks_compare_only_the_low_bits_that_fit_and_verification_does_the_rest() -> None:
    codes, queries, _ = _planted(60_000, 200, seed=6, max_bits=8)
    index = HashIndex(codes, tables=4, flips=1, brute_below=0, bucket_bits=12)  # 64-bit chunks: 52 low bits
    assert index.exact_radius == 7
    assert index.search(queries, 7) == index.search_exact(queries, 7)


def test_bucket_bits_follow_the_size_and_are_capped() -> None:
    assert auto_bucket_bits(1_000_000) == 19
    assert auto_bucket_bits(10_000_000) == MAX_BUCKET_BITS == 22
    assert auto_bucket_bits(10) == 8
    assert HashIndex(_planted(60_000, 1)[0], brute_below=0).bucket_bits == 15


def test_edges_empty_queries_an_empty_index_and_bad_settings() -> None:
    codes, queries, _ = _planted(1_000, 5)
    assert HashIndex(codes).search(queries[:0]) == []
    assert HashIndex().search(queries) == [[] for _ in range(5)]
    with pytest.raises(ValueError, match="tables must be 4-64"):
        HashIndex(tables=3)
    with pytest.raises(ValueError, match="bucket_bits must be 1-32"):
        HashIndex(bucket_bits=0)


def test_the_side_buffer_is_searched_in_bounded_blocks() -> None:
    codes, queries, targets = _planted(60_000, 30, seed=7)
    index = HashIndex(codes[:50_000], brute_below=0, merge_at=10**9)
    index.add(codes[50_000:])  # 10,000 codes searched by brute force
    found = index.search(queries, 31)
    assert found == HashIndex(codes, tables=16, brute_below=0).search(queries, 31) or all(
        set(f) <= set(e) for f, e in zip(found, index.search_exact(queries, 31)))
    side = [k for k, t in enumerate(targets) if t >= 50_000]
    assert all(any(i == targets[k] for i, _ in found[k]) for k in side)


def test_a_search_during_adds_merges_and_rebuilds_never_misses_what_was_there() -> None:
    import threading

    codes, _, _ = _planted(120_000, 1, seed=8)
    index = HashIndex(codes[:60_000], brute_below=0, merge_at=5_000)
    probes = codes[:50]  # exact copies of codes present from the start: distance 0
    missed: list[int] = []
    done = threading.Event()

    def search() -> None:
        while not done.is_set():
            for k, hits in enumerate(index.search(probes, 0)):
                if not any(i == k for i, _ in hits):
                    missed.append(k)

    reader = threading.Thread(target=search)
    reader.start()
    try:
        for lo in range(60_000, 120_000, 5_000):  # merges, then a rebuild once the index has doubled
            index.add(codes[lo:lo + 5_000])
    finally:
        done.set()
        reader.join()
    assert index._built_n == 120_000, "the last add rebuilt the tables"
    assert not missed


def test_a_lone_query_takes_its_own_path_and_finds_what_the_batch_path_finds() -> None:
    codes, queries, _ = _planted(70_000, 150, seed=9)
    index = HashIndex(codes[:60_000], brute_below=0, merge_at=10**9)
    index.add(codes[60_000:])  # a side buffer, searched by brute force next to the tables
    index.set_enabled([int(i) for i in range(0, 70_000, 7)], False)
    batch = index.search(queries, 31)
    assert [index.search(queries[k:k + 1], 31)[0] for k in range(len(queries))] == batch
    assert index.search(queries[0], 31) == batch[:1], "a flat (32,) code is one query"
    wide = HashIndex(codes, tables=4, brute_below=0, bucket_bits=12)  # uint64 entries
    assert [wide.search(queries[k:k + 1], 7)[0] for k in range(50)] == wide.search_exact(queries[:50], 7)


def test_many_copies_of_one_code_are_each_found_by_a_lone_query() -> None:
    codes, _, _ = _planted(60_000, 1, seed=10)
    codes[1_000:1_300] = codes[0]  # one crowded bucket in every table
    index = HashIndex(codes, brute_below=0)
    assert index.search(codes[:1], 0) == index.search_exact(codes[:1], 0) == [[(0, 0)] + [
        (i, 0) for i in range(1_000, 1_300)]]


def test_a_thread_pool_splits_a_batch_and_returns_the_same_results() -> None:
    from concurrent.futures import ThreadPoolExecutor

    codes, queries, _ = _planted(60_000, 700, seed=11)
    index = HashIndex(codes, brute_below=0)
    alone = index.search(queries, 31)
    with ThreadPoolExecutor(2) as pool:
        assert index.search(queries, 31, executor=pool) == alone
        assert index.search(queries[:130], 31, batch=1000, executor=pool) == alone[:130], "split in two"
        assert index.search(queries[:1], 31, executor=pool) == alone[:1]


def test_an_update_keeps_the_tables_of_the_codes_still_listed_and_leaves_the_old_index_alone() -> None:
    codes, queries, targets = _planted(80_000, 300, seed=12)
    index = HashIndex(codes[:70_000], brute_below=0, merge_at=5_000)
    before = index.search(queries, 31)
    listed = np.concatenate([codes[10_000:70_000], codes[70_000:], codes[:1]])  # 10,000 gone, 10,001 new
    updated, ids = index.updated(listed)
    assert updated is not index and updated._tables is not None and updated._built_n == 70_000, "merged, not rebuilt"
    assert ids[:60_000].tolist() == list(range(10_000, 70_000)) and ids[-1] == 0
    assert index.search(queries, 31) == before, "the old index is untouched"
    fresh = HashIndex(listed, brute_below=0)
    as_fresh = [sorted((int(ids[i]), d) for i, d in hits) for hits in fresh.search(queries, 31)]
    assert [sorted(h) for h in updated.search(queries, 31)] == as_fresh
    assert all(i >= 10_000 or i == 0 for hits in updated.search(queries, 31) for i, _ in hits)
    again, _ = updated.updated(listed[:20_000])  # most of it gone: built afresh
    assert again._built_n == 20_000 and len(again) == 20_000


def test_a_merge_puts_every_code_in_its_own_bucket_in_every_table() -> None:
    # Codes inserted where one bucket ends and empty ones follow must still land bucket by bucket.
    codes = _planted(80_000, 1, seed=13)[0]
    index = HashIndex(codes[:70_000], brute_below=0, merge_at=10**9, bucket_bits=16)
    index.add(codes[70_000:])
    index.merge()
    fresh = HashIndex(codes, brute_below=0, bucket_bits=16)
    merged, built = index._tables, fresh._tables
    assert merged is not None and built is not None and merged.id_bits == built.id_bits
    assert np.array_equal(merged.offsets, built.offsets)

    def by_bucket(tables: object) -> np.ndarray:
        offsets, entries = tables.offsets.astype(np.int64), tables.entries.astype(np.uint64)  # type: ignore[attr-defined]
        owner = np.repeat(np.arange(len(offsets) - 1, dtype=np.uint64), np.diff(offsets))
        return np.sort((owner << np.uint64(32)) | entries)

    assert np.array_equal(by_bucket(merged), by_bucket(built))


def test_an_update_keeps_each_copy_of_a_code_listed_twice() -> None:
    codes = _planted(1_000, 1, seed=14)[0]
    index = HashIndex(np.concatenate([codes, codes[:5]]))
    updated, ids = index.updated(np.concatenate([codes[:5], codes]))
    assert sorted(ids.tolist()) == list(range(1_005)) and len(updated) == 1_005, "nothing added, nothing masked"
    assert all(sorted([ids[k], ids[5 + k]]) == [k, 1_000 + k] for k in range(5)), "each copy its own id"
