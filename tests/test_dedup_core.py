"""The Ray-free core of deduplication (dedup/minhash.py, dedup/components.py): shingles against a
plain-Python reference, signatures bit-equal to datasketch's, LSH candidate rates against the
theoretical S-curve, union-find against BFS, exact keys against ``" ".join(text.split())``."""

from __future__ import annotations

import glob
from collections import deque

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

import dedup.minhash as mh
from dedup.components import (
    candidate_edges,
    components_of_edges,
    is_empty_signature,
    near_duplicates,
    star_edges,
    connected_components,
    exact_duplicates,
    exact_keys,
    pair_jaccard,
    representatives,
    verify_pairs,
)
from dedup.minhash import (
    candidate_probability,
    has_shingles,
    lsh_band_keys,
    minhash_signatures,
    shingle_hashes,
    threshold_curve,
)

TEXTS = [
    "The quick brown fox jumps over the lazy dog, again and again.",
    "",
    None,
    "one two",
    "  leading and\ttrailing\n\nwhitespace   runs  here ok  ",
    "ÉCOLE Straße ΑΒΓΔ Ёлка\u00a0nbsp\u3000ideographic\u2009thin ＡＢＣ wide",
    "a b c d e",
    "a b c d e f",
    "x" * 300 + " long word and then five more words",
    "中文没有空格的句子很长很长很长 然后 有 几个 空格 分开 的 词",
    "MiXeD CaSe WoRdS MiXeD CaSe WoRdS MiXeD CaSe",
]


def python_shingles(text: str | None, n: int = 5) -> list[str]:
    """The reference definition: lower-case, str.split(), word n-grams (one of the whole text
    when it has fewer than n words)."""
    words = (text or "").lower().split()
    if len(words) >= n:
        return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return [" ".join(words)] if words else []


def datasketch_minhash(values, scheme: str, num_perm: int = 112, seed: int = 1) -> np.ndarray:
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, seed=seed, scheme=scheme, hashfunc=lambda v: v)
    m.update_batch([int(v) for v in values])
    return m.hashvalues


# ---------------------------------------------------------------------------------------------
# Shingles


def test_reference_hash_path_is_python_word_ngrams():
    offsets, hashes = shingle_hashes(TEXTS, hashfunc="xxh64")
    for i, text in enumerate(TEXTS):
        expected = [xxhash.xxh64_intdigest(s.encode()) for s in python_shingles(text)]
        assert hashes[offsets[i] : offsets[i + 1]].tolist() == expected, text


def test_wordmix_has_the_same_shingles_as_the_reference():
    """Same shingle positions; equal hashes exactly where the shingle strings are equal."""
    o1, h1 = shingle_hashes(TEXTS)
    o2, h2 = shingle_hashes(TEXTS, hashfunc="xxh64")
    assert np.array_equal(o1, o2)
    pairs = set(zip(h1.tolist(), h2.tolist()))
    assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)


def test_wordmix_hash_values_are_pinned():
    """The shingle hash is part of any stored signature: changing it must be deliberate."""
    offsets, hashes = shingle_hashes(["The quick brown fox jumps over the lazy dog", "hi there", "A"])
    assert offsets.tolist() == [0, 5, 6, 7]
    assert [f"{v:016x}" for v in hashes.tolist()] == PINNED


PINNED = [
    "9bda6a1728f6990e",
    "2c67315c1814db4f",
    "848ae389d59c5f61",
    "2166da5edfb17212",
    "5ec9bc33347da4ee",
    "9cf9d8fb0dd91f74",
    "90ecb8e478419250",
]


def test_normalisation_case_whitespace_and_punctuation():
    base = shingle_hashes(["hello big wide world of text"])[1]
    for variant in ["HELLO Big\u00a0wide\n\nWORLD\tof  text", "  hello big wide world of text  "]:
        assert np.array_equal(shingle_hashes([variant])[1], base)
    # Punctuation is part of a word unless stripped (then it separates words, like datatrove).
    punct = "hello, big wide (world) of text!"
    assert not np.array_equal(shingle_hashes([punct])[1], base)
    assert np.array_equal(shingle_hashes([punct], strip_punctuation=True)[1], base)
    assert np.array_equal(shingle_hashes(["hello — big wide world of “text”"], strip_punctuation=True)[1], base)
    # Case folding beyond ASCII: Latin-1, Greek, Cyrillic, fullwidth.
    assert np.array_equal(shingle_hashes(["ÉCOLE ΑΒΓ ЁЛКА ＡＢＣ"])[1], shingle_hashes(["école αβγ ёлка ａｂｃ"])[1])
    assert not np.array_equal(shingle_hashes(["ÉCOLE"], lowercase=False)[1], shingle_hashes(["école"], lowercase=False)[1])


def test_input_types_and_chunk_boundaries(monkeypatch):
    texts = [t for t in TEXTS if t is not None] * 7
    expected_o, expected_h = shingle_hashes(texts)
    # Any chunking of the batch (here: one document at a time) gives the same shingles.
    monkeypatch.setattr(mh, "_CHUNK_BYTES", 1)
    o, h = shingle_hashes(texts)
    assert np.array_equal(o, expected_o) and np.array_equal(h, expected_h)
    monkeypatch.undo()
    for column in (
        pa.array(texts, type=pa.string()),
        pa.array(texts, type=pa.large_string()),
        pa.chunked_array([texts[:5], texts[5:]], type=pa.string()),
        pa.array(["drop me"] + texts, type=pa.string()).slice(1),
        pl.Series(texts),
    ):
        o, h = shingle_hashes(column)
        assert np.array_equal(o, expected_o) and np.array_equal(h, expected_h), type(column)
    # Nulls are empty documents.
    o, _ = shingle_hashes(pa.array([None, "a b c d e", None]))
    assert o.tolist() == [0, 0, 1, 1]
    assert has_shingles(o).tolist() == [False, True, False]


def test_tokenizer_matches_python_on_real_crawl(crawl_dir):
    """On real crawl text the words are exactly str.lower().split()'s, except in documents
    holding ASCII control characters (which split words here; Python keeps them in words)."""
    from ingest.readers import InputSpec, read_file, resolve_inputs

    files = resolve_inputs(sorted(glob.glob(str(crawl_dir / "jsonl" / "*.jsonl.gz"))))
    table = pa.concat_tables([b for f in files for b in read_file(f, InputSpec(), 4096)])
    texts = table.filter(pc.is_null(table.column("rejected_by"))).column("text").to_pylist()
    assert len(texts) > 500
    offsets, hashes = shingle_hashes(texts, hashfunc="xxh64")
    wordmix_offsets, wordmix = shingle_hashes(texts)
    assert np.array_equal(offsets, wordmix_offsets)
    checked = 0
    for i, text in enumerate(texts):
        if any(ord(c) < 32 and not c.isspace() for c in text):
            continue
        expected = [xxhash.xxh64_intdigest(s.encode()) for s in python_shingles(text)]
        assert hashes[offsets[i] : offsets[i + 1]].tolist() == expected, i
        checked += 1
        # No collisions of the vectorised hash within a document.
        assert len(set(wordmix[offsets[i] : offsets[i + 1]].tolist())) == len(set(expected))
    assert checked > 0.95 * len(texts)


# ---------------------------------------------------------------------------------------------
# Signatures


@pytest.mark.parametrize("scheme,kernel", [("affine32", "compiled"), ("affine32", "numpy"), ("affine64", "numpy"), ("legacy", "numpy")])
def test_signatures_equal_datasketch(scheme, kernel):
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 60, 40)
    counts[3], counts[4] = 0, 500  # an empty document, and one spanning several blocks
    offsets = np.concatenate([[0], np.cumsum(counts)])
    hashes = rng.integers(0, 2**64, int(offsets[-1]), dtype=np.uint64)
    sigs = minhash_signatures(offsets, hashes, 112, seed=1, scheme=scheme, block=128, kernel=kernel)
    assert sigs.shape == (40, 112)
    assert sigs.dtype == (np.uint64 if scheme == "affine64" else np.uint32)
    assert np.array_equal(sigs, minhash_signatures(offsets, hashes, 112, seed=1, scheme=scheme))
    for i in range(40):
        values = hashes[offsets[i] : offsets[i + 1]]
        if scheme == "affine32":
            values = values & np.uint64(0xFFFFFFFF)
        assert np.array_equal(sigs[i], datasketch_minhash(values, scheme)), i


@settings(max_examples=50, deadline=None)
@given(counts=st.lists(st.integers(0, 40), min_size=1, max_size=30), num_perm=st.integers(1, 130),
       seed=st.integers(0, 2**31), data=st.data())
def test_compiled_signature_kernel_equals_numpy(counts, num_perm, seed, data):
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    hashes = np.array(data.draw(st.lists(st.integers(0, 2**64 - 1), min_size=int(offsets[-1]), max_size=int(offsets[-1]))),
                      dtype=np.uint64)
    compiled = minhash_signatures(offsets, hashes, num_perm, seed=seed, kernel="compiled")
    assert np.array_equal(compiled, minhash_signatures(offsets, hashes, num_perm, seed=seed, kernel="numpy", block=16))
    with pytest.raises(ValueError, match="kernel"):
        minhash_signatures(offsets, hashes, num_perm, kernel="gpu")


def test_text_to_signature_equals_datasketch_with_the_same_hash():
    """End to end from text: datasketch fed the same shingle strings with hashfunc=xxh64
    (truncated to 32 bits for its default scheme) gives the same signatures."""
    from datasketch import MinHash

    offsets, hashes = shingle_hashes(TEXTS, hashfunc="xxh64")
    sigs = minhash_signatures(offsets, hashes, num_perm=64, seed=42)
    for i, text in enumerate(TEXTS):
        m = MinHash(num_perm=64, seed=42, hashfunc=lambda s: xxhash.xxh64_intdigest(s) & 0xFFFFFFFF)
        m.update_batch([s.encode() for s in python_shingles(text)])
        assert np.array_equal(sigs[i], m.hashvalues)


def test_exact_duplicates_share_every_band_key():
    text = "Some document text that is repeated verbatim somewhere else in the crawl today."
    variants = [text, text.upper(), "  " + text.replace(" ", "\n") + "\t", text + " plus one new tail"]
    offsets, hashes = shingle_hashes(variants)
    keys = lsh_band_keys(minhash_signatures(offsets, hashes))
    assert keys.shape == (4, 14) and keys.dtype == np.uint64
    assert (keys[1:3] == keys[0]).all()
    assert not (keys[3] == keys[0]).all()
    # Keys of different bands never coincide (the band index is mixed in).
    assert len(np.unique(keys[0])) == 14


def test_threshold_curve():
    curve = threshold_curve(14, 8)
    assert curve["threshold"] == pytest.approx((1 / 14) ** (1 / 8)) and 0.71 < curve["threshold"] < 0.72
    p = np.array(curve["probability"])
    assert p[0] == 0 and p[-1] == 1 and (np.diff(p) >= 0).all()
    assert candidate_probability(0.8) == pytest.approx(0.924, abs=1e-3)  # datatrove's comment


def test_candidate_rate_follows_the_s_curve_on_controlled_sets():
    """6 000 pairs of random 200-shingle sets with planted Jaccard 0.3..1: the number of pairs
    sharing a bucket, per Jaccard bin of width 0.05, is within 4 standard deviations of the
    S-curve's prediction (the count is Poisson-binomial: sd = sqrt(sum p(1-p))) plus 1 for
    discreteness. A correct implementation fails a bin with probability < 1e-4; a table one row
    off (14 x 7, threshold 0.69) is caught. (13 x 8 is not: 13 and 14 bands differ by < 3
    points anywhere on the curve, below what 6 000 pairs resolve.)"""
    rng = np.random.default_rng(3)
    pairs, size = 6000, 200
    target = rng.uniform(0.3, 1.0, pairs)
    shared = np.round(2 * size * target / (1 + target)).astype(int)  # |A & B|, |A| = |B| = size
    jac = shared / (2 * size - shared)
    sets = rng.integers(0, 2**64, (pairs, 2, size), dtype=np.uint64)
    common = np.arange(size)[None, :] < shared[:, None]
    sets[:, 1][common] = sets[:, 0][common]
    offsets = np.arange(0, 2 * pairs * size + 1, size)
    sigs = minhash_signatures(offsets, sets.reshape(-1))
    # Each row is an unbiased estimate of the Jaccard.
    rows_equal = (sigs[0::2] == sigs[1::2]).mean(axis=1)
    assert abs((rows_equal - jac).mean()) < 4 * np.sqrt((jac * (1 - jac) / 112).sum()) / pairs
    keys = lsh_band_keys(sigs)
    hit = (keys[0::2] == keys[1::2]).any(axis=1)

    def worst_bin(bands, rows):
        p = candidate_probability(jac, bands, rows)
        worst = 0.0
        for lo in np.arange(0.3, 1.0, 0.05):
            m = (jac >= lo) & (jac < lo + 0.05)
            bound = 4 * np.sqrt((p[m] * (1 - p[m])).sum()) + 1
            worst = max(worst, abs(hit[m].sum() - p[m].sum()) / bound)
        return worst

    assert worst_bin(14, 8) <= 1
    assert worst_bin(14, 7) > 1


def test_candidate_rate_on_the_sample_near_duplicates(tmp_path):
    """The sample generator's labelled near duplicates (JSONL ones: WARC text gains the page
    title) have measured word-5-gram Jaccard 0.5..0.95: our shingles measure the same Jaccard,
    and their candidate rate follows the S-curve (same bound as above); labelled exact
    duplicates share every band key."""
    from ingest.readers import InputSpec, read_file, resolve_inputs
    from ingest.sample import write_sample

    write_sample(tmp_path, docs=3000, seed=1)
    labels = [orjson.loads(line) for line in (tmp_path / "labels.jsonl").read_bytes().splitlines()]
    files = resolve_inputs([str(tmp_path / "*.jsonl.gz")])
    table = pa.concat_tables([b for f in files for b in read_file(f, InputSpec(), 10_000)])
    table = table.filter(pc.is_null(table.column("rejected_by")))
    row = {sid: i for i, sid in enumerate(table.column("source_id").to_pylist())}
    near = [(row[x["source_id"]], row[x["dup_of"]], x["jaccard"]) for x in labels
            if x["label"] == "near_duplicate" and x["source_id"] in row and x["dup_of"] in row]
    exact = [(row[x["source_id"]], row[x["dup_of"]]) for x in labels
             if x["label"] == "exact_duplicate" and x["source_id"] in row and x["dup_of"] in row]
    assert len(near) > 80 and len(exact) > 50
    offsets, hashes = shingle_hashes(table.column("text"))
    keys = lsh_band_keys(minhash_signatures(offsets, hashes))
    a, b, jac = (np.array(c) for c in zip(*near))
    assert np.allclose(pair_jaccard(offsets, hashes, a, b), jac)
    hit = (keys[a] == keys[b]).any(axis=1)
    p = candidate_probability(jac)
    assert abs(hit.sum() - p.sum()) <= 4 * np.sqrt((p * (1 - p)).sum()) + 1
    for lo in np.arange(0.5, 0.95, 0.1):
        m = (jac >= lo) & (jac < lo + 0.1)
        assert abs(hit[m].sum() - p[m].sum()) <= 4 * np.sqrt((p[m] * (1 - p[m])).sum()) + 1, lo
    ea, eb = (np.array(c) for c in zip(*exact))
    assert (keys[ea] == keys[eb]).all()
    # End to end in the batch: every exact duplicate is clustered with its original.
    edge_a, edge_b = candidate_edges(keys, valid=has_shingles(offsets))
    rep = representatives(len(keys), edge_a, edge_b)
    assert (rep[ea] == rep[eb]).all()


# ---------------------------------------------------------------------------------------------
# Components


def bfs_components(n: int, edges: list[tuple[int, int]], rank: np.ndarray | None = None) -> np.ndarray:
    rank = np.arange(n) if rank is None else rank
    adj: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges:
        adj[u].append(v)
        adj[v].append(u)
    label = np.full(n, -1)
    for s in range(n):
        if label[s] >= 0:
            continue
        seen, queue = [s], deque([s])
        label[s] = s
        while queue:
            for w in adj[queue.popleft()]:
                if label[w] < 0:
                    label[w] = s
                    seen.append(w)
                    queue.append(w)
        best = min(seen, key=lambda i: (rank[i], i))
        label[seen] = best
    return label


def test_components_on_hand_made_graphs():
    # A chain, numbered against the grain: labels must propagate the whole way.
    n = 1000
    chain = np.arange(n)[::-1]
    assert (connected_components(n, chain[:-1], chain[1:]) == 0).all()
    # A star with its centre last, two disjoint pairs, isolated nodes, a self-loop, repeats.
    a = np.array([9, 9, 9, 9, 1, 3, 6, 6, 1])
    b = np.array([0, 2, 4, 5, 7, 8, 6, 6, 7])
    assert connected_components(12, a, b).tolist() == [0, 1, 0, 3, 0, 0, 6, 1, 3, 0, 10, 11]
    # Keep the member with the smallest order key, not the smallest index.
    order = np.array([50, 40, 30, 20, 10, 60, 70, 80, 90, 5, 0, 1])
    assert representatives(12, a, b, order=order).tolist() == [9, 1, 9, 3, 9, 9, 6, 1, 3, 9, 10, 11]
    # No edges: everyone keeps themself.
    assert representatives(4, np.array([], int), np.array([], int)).tolist() == [0, 1, 2, 3]
    nodes, labels = components_of_edges(np.array([100, 7, 300, 42]), np.array([5, 300, 8, 42]))
    assert dict(zip(nodes.tolist(), labels.tolist())) == {5: 5, 100: 5, 7: 7, 8: 7, 300: 7, 42: 42}


def test_star_edges_anchor_on_the_smallest_order_key():
    keys = np.array([[1, 2], [1, 3], [1, 4], [5, 4], [6, 7]], dtype=np.uint64)
    a, b = candidate_edges(keys)
    assert sorted(zip(a.tolist(), b.tolist())) == [(1, 0), (2, 0), (3, 2)]
    a, b = candidate_edges(keys, order=np.array([3, 2, 1, 0, 9]))
    assert sorted(zip(a.tolist(), b.tolist())) == [(0, 2), (1, 2), (2, 3)]
    a, _ = candidate_edges(keys, valid=np.array([True, True, False, True, True]))
    assert sorted(a.tolist()) == [1]


def test_documents_without_shingles_are_never_candidates():
    texts = ["", None, "   \n ", "five words in a row", "five words in a row", ""]
    offsets, hashes = shingle_hashes(texts)
    for scheme in ("affine32", "affine64", "legacy"):
        keys = lsh_band_keys(minhash_signatures(offsets, hashes, scheme=scheme))
        assert is_empty_signature(keys).tolist() == [True, True, True, False, False, True]
        a, b = candidate_edges(keys)  # empty documents left out by default
        assert list(zip(a.tolist(), b.tolist())) == [(4, 3)]
        assert np.array_equal(candidate_edges(keys, valid=has_shingles(offsets))[0], a)


def test_star_edges_on_global_ids():
    """In a distributed reduce the rows carry global ids (e.g. order keys): the smallest id
    anchors each bucket, and components_of_edges merges partial results."""
    keys = np.array([7, 7, 7, 9, 9], dtype=np.uint64)
    ids = np.array([500, 20, 3000, 20, 41], dtype=np.int64)
    a, b = star_edges(keys, ids)
    assert sorted(zip(a.tolist(), b.tolist())) == [(41, 20), (500, 20), (3000, 20)]
    nodes, labels = components_of_edges(a, b)
    assert set(labels.tolist()) == {20}


def test_clusters_are_deterministic_under_permutation():
    rng = np.random.default_rng(11)
    n = 400
    keys = rng.integers(0, 60, (n, 14)).astype(np.uint64)  # dense buckets: big clusters
    order = rng.permutation(n) * 7 + 3  # unique order keys
    a, b = candidate_edges(keys, order=order)
    rep = representatives(n, a, b, order=order)
    for _ in range(3):
        perm = rng.permutation(n)  # position j holds document perm[j]
        pa_, pb = candidate_edges(keys[perm], order=order[perm])
        rep_p = representatives(n, pa_, pb, order=order[perm])
        assert np.array_equal(perm[rep_p], rep[perm])
        # The star edges themselves are the same edges.
        assert sorted(zip(perm[pa_].tolist(), perm[pb].tolist())) == sorted(zip(a.tolist(), b.tolist()))


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n),
            st.permutations(range(n)),
        )
    )
)
def test_union_find_equals_bfs(case):
    n, edges, perm = case
    a = np.array([u for u, _ in edges], dtype=np.int64)
    b = np.array([v for _, v in edges], dtype=np.int64)
    assert np.array_equal(connected_components(n, a, b), bfs_components(n, edges))
    rank = np.array(perm)
    assert np.array_equal(connected_components(n, a, b, ranks=rank), bfs_components(n, edges, rank))


def test_verify_pairs_exact_jaccard():
    rng = np.random.default_rng(5)
    sets = [rng.integers(0, 50, rng.integers(0, 40)).astype(np.uint64) for _ in range(30)]  # repeats inside
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])])
    hashes = np.concatenate(sets)
    a, b = rng.integers(0, 30, 100), rng.integers(0, 30, 100)
    got = pair_jaccard(offsets, hashes, a, b)
    for i in range(100):
        x, y = set(sets[a[i]].tolist()), set(sets[b[i]].tolist())
        assert got[i] == pytest.approx(len(x & y) / len(x | y) if x | y else 0.0)
    ka, kb, kj = verify_pairs(offsets, hashes, a, b, 0.3)
    assert (kj >= 0.3).all() and len(ka) == (got >= 0.3).sum()


def test_near_duplicates_with_verification():
    base = " ".join(f"w{i}" for i in range(60))
    words = base.split()
    close = " ".join(words[:55] + ["x1", "x2", "x3", "x4", "x5"])  # Jaccard ~0.85
    far = " ".join(words[:30] + [f"y{i}" for i in range(30)])  # Jaccard ~0.3
    texts = [base, close, far, base, "unrelated text entirely, nothing shared with the others"]
    offsets, hashes = shingle_hashes(texts)
    keys = lsh_band_keys(minhash_signatures(offsets, hashes))
    rep = near_duplicates(keys)
    assert rep[[0, 1, 3, 4]].tolist() == [0, 0, 0, 4]
    verified = near_duplicates(keys, verify_jaccard=0.9, shingles=(offsets, hashes))
    assert verified[[0, 1, 3, 4]].tolist() == [0, 1, 0, 4]  # 0.85 < 0.9: kept apart
    # A cluster keeps the smallest order key.
    assert near_duplicates(keys, order=np.array([5, 4, 3, 2, 1]))[[0, 1, 3]].tolist() == [3, 3, 3]
    with pytest.raises(ValueError):
        near_duplicates(keys, verify_jaccard=0.5)


def test_exact_keys():
    texts = ["a  b\n c", " a b c ", "A B C", "", None, "x\u00a0y", "x y", "x  y z"]
    keys = exact_keys(texts)
    assert keys.shape == (8, 2) and keys.dtype == np.uint64
    expected = [xxhash.xxh3_128_intdigest(" ".join((t or "").split()).encode()) for t in texts]
    assert [(int(hi) << 64) | int(lo) for hi, lo in keys] == expected
    assert exact_duplicates(keys).tolist() == [0, 0, 2, 3, 3, 5, 5, 7]
    assert exact_duplicates(exact_keys(texts, lowercase=True)).tolist() == [0, 0, 0, 3, 3, 5, 5, 7]
    assert exact_duplicates(keys, order=np.array([9, 1, 0, 5, 2, 3, 4, 0])).tolist() == [1, 1, 2, 4, 4, 5, 5, 7]
