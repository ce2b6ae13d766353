"""PDQIndex: exact recall against brute force, incremental updates, removal, persistence."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from tiptriage.hashes import pdq_index as mod
from tiptriage.hashes.pdq_index import PDQIndex, pdq_from_hex, pdq_to_hex

Result = set[tuple[int, int, int]]


def flip(codes: NDArray[np.uint8], ks: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.uint8]:
    """Copy of codes with ks[i] distinct random bits of row i flipped (so distance is exactly ks[i])."""
    bits = np.unpackbits(codes, axis=1)
    for i, k in enumerate(ks):
        bits[i, rng.choice(256, size=int(k), replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def brute_force(db: NDArray[np.uint8], ids: NDArray[np.int64], queries: NDArray[np.uint8], r: int) -> Result:
    out: Result = set()
    for q0 in range(0, len(queries), 32):
        d = np.bitwise_count(queries[q0 : q0 + 32, None, :] ^ db[None, :, :]).sum(axis=2)
        qi, row = np.nonzero(d <= r)
        out.update(zip((qi + q0).tolist(), ids[row].tolist(), d[qi, row].tolist(), strict=True))
    return out


def as_set(result: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int32]]) -> Result:
    """The matches as a set, after checking none is reported twice (a neighbour found via several substrings)."""
    qi, ids, d = result
    triples = list(zip(qi.tolist(), ids.tolist(), d.tolist(), strict=True))
    found = set(triples)
    assert len(found) == len(triples), "duplicate matches"
    return found


def clustered(n: int, rng: np.random.Generator) -> NDArray[np.uint8]:
    """n codes, a third of them near-copies (0..45 bits away) of others, so queries have several matches
    at many distances rather than one planted neighbour among codes ~128 bits from everything."""
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    near = rng.choice(n, n // 3, replace=False)
    codes[near] = flip(codes[rng.integers(0, n, len(near))], rng.integers(0, 46, len(near)), rng)
    return codes


@pytest.fixture(scope="module")
def corpus() -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8]]:
    rng = np.random.default_rng(20240601)
    db = clustered(20_000, rng)
    ids = rng.choice(2**40, 20_000, replace=False).astype(np.int64)
    per_k = 8
    ks = np.repeat(np.arange(41), per_k)
    queries = flip(db[rng.integers(0, len(db), len(ks))], ks, rng)
    # far queries: nothing near them
    queries = np.concatenate([queries, rng.integers(0, 256, (40, 32), dtype=np.uint8)])
    return db, ids, queries


@pytest.mark.parametrize("substrings", [None, 11, 16, 32])
@pytest.mark.parametrize("r", [0, 10, 31, 40])
def test_exact_recall_against_brute_force(
    corpus: tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8]], r: int, substrings: int | None
) -> None:
    db, ids, queries = corpus
    idx = PDQIndex(substrings=substrings)
    idx.add(db, ids)
    # 11 substrings of 23-24 bits are too sparse for 20k rows to deserve bucket tables: binary search path
    uses_table = [s.table is not None for s in idx._segments[0].substrings]
    assert all(uses_table) if substrings != 11 else not any(uses_table)
    expected = brute_force(db, ids, queries, r)
    assert as_set(idx.search(queries, max_distance=r)) == expected
    if r == 31:
        # the planted neighbour is there at its exact distance for every k <= r
        assert len({q for q, _, _ in expected}) >= 32 * 8


def test_large_radius_is_exact_including_scan_fallback(corpus: tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8]]) -> None:
    db, ids, queries = corpus
    db, ids, queries = db[:4000], ids[:4000], queries[::6]
    idx = PDQIndex()
    idx.add(db, ids)
    for r in (47, 63, 100):
        assert as_set(idx.search(queries, max_distance=r)) == brute_force(db, ids, queries, r)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    r=st.integers(0, 70),
    substrings=st.sampled_from([None, 8, 9, 11, 13, 16, 23, 32]),
)
def test_matches_brute_force_property(seed: int, n: int, r: int, substrings: int | None) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (4, 32), dtype=np.uint8)
    # few seeds, many variants: dense neighbourhoods at every distance
    db = flip(base[rng.integers(0, 4, n)], rng.integers(0, 80, n), rng) if n else np.zeros((0, 32), np.uint8)
    ids = rng.integers(-(2**62), 2**62, n)
    queries = flip(base[rng.integers(0, 4, 12)], rng.integers(0, 60, 12), rng)
    idx = PDQIndex(substrings=substrings, threads=1)
    idx.add(db, ids)
    idx._flush()  # index even a small set, so substring lookups (not the buffer scan) are exercised
    assert as_set(idx.search(queries, max_distance=r)) == brute_force(db, ids, queries, r)


def test_results_are_sorted_and_typed(corpus: tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8]]) -> None:
    db, ids, queries = corpus
    idx = PDQIndex()
    idx.add(db, ids)
    qi, found, d = idx.search(queries)
    assert qi.dtype == np.int64 and found.dtype == np.int64 and d.dtype == np.int32
    keys = list(zip(qi.tolist(), d.tolist(), found.tolist(), strict=True))
    assert keys == sorted(keys)
    assert idx.search(queries, max_distance=31)[0].size == qi.size  # default radius is 31


def test_threads_do_not_change_results(corpus: tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8]]) -> None:
    db, ids, queries = corpus
    one, two = PDQIndex(threads=1), PDQIndex(threads=3)
    one.add(db, ids)
    two.add(db, ids)
    for a, b in zip(one.search(queries), two.search(queries), strict=True):
        assert np.array_equal(a, b)


def test_incremental_add_keeps_big_segment_and_finds_old_and_new(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    db = clustered(30_000, rng)
    ids = np.arange(len(db), dtype=np.int64)
    idx = PDQIndex()
    idx.add(db[:20_000], ids[:20_000])
    main = idx._segments[0]
    main_rows = [s.rows for s in main.substrings]
    # a batch well under a quarter of the main segment becomes a segment of its own: main is not re-sorted
    idx.add(db[20_000:24_000], ids[20_000:24_000])
    assert idx._segments[0] is main and all(s.rows is r for s, r in zip(main.substrings, main_rows, strict=True))
    assert idx.segment_sizes == [20_000, 4_000, 0]
    # single hashes go to the buffer (brute force) until it fills
    for i in range(24_000, 24_100):
        idx.add(db[i : i + 1], ids[i : i + 1])
    assert idx.segment_sizes[-1] == 100
    assert len(idx) == 24_100
    queries = flip(db[rng.integers(0, 24_100, 300)], rng.integers(0, 32, 300), rng)
    assert as_set(idx.search(queries)) == brute_force(db[:24_100], ids[:24_100], queries, 31)
    # more adds: segments merge once the newer one grows past 1/MERGE_RATIO of the older
    idx.add(db[24_100:], ids[24_100:])
    assert sum(idx.segment_sizes) == 30_000
    assert len(idx._segments) == 1, idx.segment_sizes
    queries = flip(db[rng.integers(0, 30_000, 300)], rng.integers(0, 32, 300), rng)
    assert as_set(idx.search(queries)) == brute_force(db, ids, queries, 31)


def test_many_small_adds_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod, "BRUTE_FORCE_ROWS", 64)  # many flushes and merges on a small set
    rng = np.random.default_rng(11)
    db = clustered(3_000, rng)
    ids = np.arange(len(db), dtype=np.int64)
    idx = PDQIndex(threads=1)
    for a in range(0, len(db), 37):
        idx.add(db[a : a + 37], ids[a : a + 37])
    sizes = [len(s) for s in idx._segments]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) <= 6
    queries = flip(db[rng.integers(0, len(db), 200)], rng.integers(0, 40, 200), rng)
    assert as_set(idx.search(queries, max_distance=40)) == brute_force(db, ids, queries, 40)


def test_remove_hides_entries_everywhere() -> None:
    rng = np.random.default_rng(3)
    db = clustered(11_100, rng)
    ids = np.arange(len(db), dtype=np.int64)
    idx = PDQIndex()
    idx.add(db[:9_000], ids[:9_000])
    idx.add(db[9_000:], ids[9_000:])  # a second segment
    dup_ids = np.array([100_000, 100_001, 100_002, 100_003, 100_004])
    idx.add(db[:5], dup_ids)  # buffer: the first five hashes again, under new ids
    assert idx.segment_sizes == [9_000, 2_100, 5]
    gone = np.concatenate([rng.choice(len(db), 500, replace=False), [100_000, 100_004, 123456789]])
    assert idx.remove(gone) == 502
    assert len(idx) == len(db) + 5 - 502
    assert idx.remove(gone) == 0  # idempotent
    queries = flip(db[rng.integers(0, len(db), 400)], rng.integers(0, 32, 400), rng)
    keep = ~np.isin(ids, gone)
    expected = brute_force(db[keep], ids[keep], queries, 31)
    expected |= brute_force(db[1:4], dup_ids[1:4], queries, 31)
    assert as_set(idx.search(queries)) == expected
    # re-adding a removed id brings back only the new entry
    idx.add(db[gone[:1]], gone[:1])
    _, found, d = idx.search(db[gone[:1]], max_distance=0)
    assert found.tolist() == [int(gone[0])] and d.tolist() == [0]


def test_mostly_removed_segment_is_reclaimed() -> None:
    rng = np.random.default_rng(5)
    db = rng.integers(0, 256, (8_000, 32), dtype=np.uint8)
    idx = PDQIndex()
    idx.add(db, np.arange(8_000))
    idx.remove(np.arange(5_000))
    assert idx.segment_sizes == [3_000, 0]
    assert as_set(idx.search(db[4_990:5_010], max_distance=0)) == {(i, 4_990 + i, 0) for i in range(10, 20)}


def test_duplicate_hashes_with_different_ids_all_returned() -> None:
    h = pdq_from_hex(["ab" * 32] * 3 + ["00" * 32])
    idx = PDQIndex()
    idx.add(h, np.array([7, 5, 9, 1]))
    qi, found, d = idx.search(pdq_from_hex(["ab" * 31 + "aa"]))
    assert qi.tolist() == [0, 0, 0] and found.tolist() == [5, 7, 9] and d.tolist() == [1, 1, 1]
    idx._flush()
    assert idx.search(h[:1], max_distance=0)[1].tolist() == [5, 7, 9]


def test_empty_index() -> None:
    idx = PDQIndex()
    assert len(idx) == 0
    qi, found, d = idx.search(pdq_from_hex(["0" * 64]))
    assert qi.size == found.size == d.size == 0
    assert idx.search(np.zeros((0, 32), np.uint8))[0].size == 0
    idx.add(np.zeros((0, 32), np.uint8), np.zeros(0, np.int64))
    assert idx.remove([1, 2]) == 0
    idx.compact()
    assert len(idx) == 0


def test_save_load_round_trip(tmp_path: Path, corpus: tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8]]) -> None:
    db, ids, queries = corpus
    idx = PDQIndex()
    idx.add(db[:17_000], ids[:17_000])
    idx.add(db[17_000:], ids[17_000:])  # second segment
    idx.add(db[:10], ids[:10] + 1)  # buffer
    assert idx.segment_sizes == [17_000, 3_000, 10]
    idx.remove(ids[100:200])
    path = tmp_path / "pdq.index"
    idx.save(path)
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    # plain arrays only: every member loads with pickling refused
    with np.load(path, allow_pickle=False) as z:
        for name in z.files:
            assert z[name].dtype != object
    loaded = PDQIndex.load(path)
    assert loaded.segment_sizes == idx.segment_sizes and len(loaded) == len(idx)
    for r in (0, 31, 40):
        for a, b in zip(idx.search(queries, max_distance=r), loaded.search(queries, max_distance=r), strict=True):
            assert np.array_equal(a, b)
    # the loaded index keeps working incrementally
    loaded.add(db[:1], np.array([-1]))
    assert -1 in loaded.search(db[:1], max_distance=0)[1].tolist()

    empty = tmp_path / "empty.index"
    PDQIndex().save(empty)
    assert len(PDQIndex.load(empty)) == 0


def test_load_refuses_pickles_and_corrupt_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    idx = PDQIndex()
    idx.add(rng.integers(0, 256, (5_000, 32), dtype=np.uint8), np.arange(5_000))
    good = tmp_path / "good.index"
    idx.save(good)

    # an object array (which np.save would pickle) is refused at load, never unpickled
    evil = tmp_path / "evil.index"
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["s0_ids"] = np.array([object()] * 5_000, dtype=object)
    with evil.open("wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError):
        PDQIndex.load(evil)

    # rows that no longer sort their substring would silently lose matches: refused
    bad = tmp_path / "bad.index"
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["s0_rows0"] = arrays["s0_rows0"][::-1].copy()
    with bad.open("wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="not sorted"):
        PDQIndex.load(bad)

    junk = tmp_path / "junk.index"
    with zipfile.ZipFile(junk, "w"):
        pass
    with pytest.raises(ValueError):
        PDQIndex.load(junk)


def test_hex_helpers_and_input_validation() -> None:
    values = ["0123456789abcdef" * 4, "f" * 64]
    arr = pdq_from_hex(values)
    assert arr.shape == (2, 32) and arr.dtype == np.uint8 and arr[0, 0] == 0x01
    assert pdq_to_hex(arr) == values
    assert pdq_from_hex([]).shape == (0, 32)
    with pytest.raises(ValueError, match="hex digits"):
        pdq_from_hex(["abc"])
    with pytest.raises(ValueError, match="non-hex"):
        pdq_from_hex(["g" * 64])
    idx = PDQIndex()
    idx.add(values, [1, 2])  # hex strings accepted directly
    assert idx.search(["0123456789abcdef" * 4], max_distance=0)[1].tolist() == [1]
    with pytest.raises(ValueError, match="ids"):
        idx.add(arr, np.array([1]))
    with pytest.raises(ValueError, match="uint8"):
        idx.add(arr.astype(np.int64), np.array([1, 2]))
    with pytest.raises(ValueError, match="max_distance"):
        idx.search(arr, max_distance=-1)
    with pytest.raises(ValueError, match="substrings"):
        PDQIndex(substrings=7)


def test_pigeonhole_radii_cover_every_split() -> None:
    # For every m and r, any split of r differing bits over m substrings must put some substring within
    # its assigned radius: the worst case is spreading bits one over each radius.
    for m in range(8, 33):
        for r in range(0, 80):
            radii = mod._radii(m, r)
            assert sum(rad + 1 for rad in radii) == r + 1  # exceeding every radius needs r + 1 bits
