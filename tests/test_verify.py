"""True-Jaccard verification of MinHash candidates (``minhash_dedup`` with ``verify_jaccard``),
run as the distributed shuffle-join (dedup/verify.py): the same decisions as the in-memory
reference whatever the partition count or the split of inputs into parts, and through the
pipeline on Ray whatever the parallelism. Real crawl text with planted near copies whose
similarity is controlled: 1% of words replaced (Jaccard of 5-gram sets ~0.9, kept by a 0.8
check) or 4% (~0.65-0.7: often LSH candidates at 14 x 8, rejected by the check)."""

from __future__ import annotations

import gzip

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from dedup import verify
from dedup.components import near_duplicates, pair_jaccard, set_jaccard, shingle_sets
from dedup.minhash import lsh_band_keys, minhash_signatures, shingle_hashes
from dedup.near import MinHashDedup

THRESHOLD = 0.8


def crawl_texts(crawl_dir, n: int, min_words: int) -> list[str]:
    with gzip.open(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz") as f:
        return [t for t in (orjson.loads(line)["text"] for line in f) if len(t.split()) > min_words][:n]


def edited(text: str, fraction: float, rng) -> str:
    """``text`` with ``fraction`` of its words replaced by fresh ones."""
    words = text.split()
    for i in rng.choice(len(words), max(1, round(fraction * len(words))), replace=False):
        words[int(i)] = f"w{rng.integers(1 << 40)}"
    return " ".join(words)


def reference(docs: list[str], threshold: float | None) -> np.ndarray:
    """The in-memory result over all documents in input order: the kept index of each."""
    offsets, hashes = shingle_hashes(docs)
    keys = lsh_band_keys(minhash_signatures(offsets, hashes, 112, MinHashDedup().seed), 14, 8)
    return near_duplicates(keys, verify_jaccard=threshold, shingles=(offsets, hashes))


def test_shingle_sets_and_set_jaccard_in_slices_equal_pair_jaccard():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 40, 30)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    hashes = rng.integers(0, 25, offsets[-1]).astype(np.uint64)  # many repeats within a document
    set_off, set_hashes = shingle_sets(offsets, hashes)
    for d in range(30):
        assert set_hashes[set_off[d]:set_off[d + 1]].tolist() == sorted(set(hashes[offsets[d]:offsets[d + 1]].tolist()))
    a, b = rng.integers(0, 30, 200), rng.integers(0, 30, 200)
    want = pair_jaccard(offsets, hashes, a, b)
    # Each edge carries a's set; b is a row of the anchor sets.
    a_len = np.diff(set_off)[a]
    a_off = np.concatenate([[0], np.cumsum(a_len)])
    a_hashes = np.concatenate([set_hashes[set_off[x]:set_off[x + 1]] for x in a])
    for limit in (1, 37, 1 << 22):  # one edge per slice, a few, all at once
        got = verify.edge_jaccard(a_off, a_hashes, b, set_off, set_hashes, slice_entries=limit)
        np.testing.assert_allclose(got, want)
        for threshold in (0.2, 0.5, 1.0):  # the size filter drops no edge that passes
            passed = verify.passing_edges(a_off, a_hashes, b, set_off, set_hashes, threshold, slice_entries=limit)
            assert passed.tolist() == (want >= threshold).tolist()


def test_set_jaccard_small_cases():
    # Sets: {}, {1, 2, 3}, {2, 3, 4}; hashes near 2**64 too (no overflow in the keys).
    top = np.uint64(2**64 - 1)
    set_off = np.array([0, 0, 3, 6])
    set_hashes = np.array([1, 2, 3, 2, 3, top], dtype=np.uint64)
    own = [[], [1, 2, 3], [2, 3, int(top)], [5], [2, 3, int(top)]]
    a_off = np.concatenate([[0], np.cumsum([len(s) for s in own])])
    a_hashes = np.array([h for s in own for h in s], dtype=np.uint64)
    got = set_jaccard(a_off, a_hashes, np.array([0, 2, 1, 1, 2]), set_off, set_hashes)
    np.testing.assert_allclose(got, [0.0, 0.5, 0.5, 0.0, 1.0])
    assert set_jaccard(a_off[:2], a_hashes, np.array([0]), set_off, set_hashes).tolist() == [0.0]  # both empty
    assert len(set_jaccard(np.zeros(1, np.int64), a_hashes, np.zeros(0, np.int64), set_off, set_hashes)) == 0


def test_verify_jaccard_is_validated():
    for bad in (0, -0.1, 1.01):
        with pytest.raises(ValueError, match=r"verify_jaccard must be in \(0, 1\]"):
            MinHashDedup(verify_jaccard=bad)
    assert MinHashDedup(verify_jaccard=1).verify_threshold() == 1
    assert MinHashDedup().verify_threshold() is None


def planted_corpus(crawl_dir, originals: int = 90) -> list[str]:
    """Real documents and near copies (1% and 4% of words replaced), shuffled; the last round
    copies copies too: chains across files, members close to a member but not to their
    bucket's anchor."""
    rng = np.random.default_rng(7)
    docs = crawl_texts(crawl_dir, originals, 150)
    for fraction, copies in ((0.01, originals // 3), (0.04, originals * 4 // 9), (0.01, originals * 2 // 9)):
        for i in rng.choice(len(docs), copies):
            docs.append(edited(docs[int(i)], fraction, rng))
    return [docs[i] for i in rng.permutation(len(docs))]


def write_parts(fs, stage: MinHashDedup, docs: list[str], directory: str) -> list[str]:
    """The mapped documents as the pipeline leaves them: three input files, two parts each."""
    from ingest.schema import batch_of

    table = batch_of(docs)
    files = np.arange(len(docs)) * 3 // len(docs)
    table = stage.map(table.set_column(table.schema.get_field_index("_file"), "_file", pa.array(files, pa.int32())))
    fs.create_dir(directory, recursive=True)
    parts = []
    for i in range(3):
        rows = np.flatnonzero(files == i)
        for half in (rows[: len(rows) // 2], rows[len(rows) // 2:]):
            parts.append(f"{directory}/part-f{i}-{half[0]:012d}.parquet")
            pq.write_table(table.take(pa.array(half)), parts[-1], filesystem=fs)
    return parts


def reduce_decisions(stage: MinHashDedup, fs, parts: list[str], work: str, documents: int, partitions: int) -> list[tuple[str, str]]:
    """run_global_reduce in this process -> sorted (rejected id, kept id); scratch removed."""
    from dedup.driver import run_global_reduce
    from dedup.graph import sequential
    from dedup.shuffle import load_decisions

    keys = {i: f"f{i}" for i in range(3)}
    rejected = run_global_reduce(stage, fs, parts, work, keys, documents, partitions, map_tasks=sequential)
    found = [d for k in keys.values() if (d := load_decisions(fs, f"{work}/decisions", k)) is not None]
    got = sorted(zip(*(pa.concat_tables(found).column(c).to_pylist() for c in ("id", "minhash_dedup_duplicate_of"))))
    assert rejected == len(got)
    assert fs.get_file_info(f"{work}/verify").type == pafs.FileType.NotFound  # scratch removed
    return got


def expected(docs: list[str], threshold: float | None) -> list[tuple[str, str]]:
    return sorted((f"d{i}", f"d{r}") for i, r in enumerate(reference(docs, threshold).tolist()) if i != r)


def test_verified_decisions_equal_reference_across_partitions(crawl_dir, tmp_path, monkeypatch):
    """Sequential reduce over six part files (two per input file): with partitions 1, 2 and 5,
    tiny row groups and pair slices, the verified decisions are the reference's; verification
    rejects fewer documents than the unverified run, and the unverified path is unchanged."""
    docs = planted_corpus(crawl_dir)
    fs = pafs.LocalFileSystem()
    parts = write_parts(fs, MinHashDedup(), docs, str(tmp_path / "parts"))
    want_verified, want_plain = expected(docs, THRESHOLD), expected(docs, None)
    assert len(want_verified) >= 40 and len(want_plain) - len(want_verified) >= 10
    monkeypatch.setattr(verify, "ROW_GROUP", 4)  # parts read a few row groups of their file's candidates
    for partitions, slice_entries in ((1, 1 << 22), (2, 300), (5, 1)):
        monkeypatch.setattr(verify, "PAIR_ENTRIES_PER_SLICE", slice_entries)
        work = str(tmp_path / f"work{partitions}")
        assert reduce_decisions(MinHashDedup(verify_jaccard=THRESHOLD), fs, parts, work, len(docs), partitions) == want_verified
    assert reduce_decisions(MinHashDedup(), fs, parts, str(tmp_path / "plain"), len(docs), 2) == want_plain
    # Most rejected documents are one verified hop from the copy kept for them.
    offsets, hashes = shingle_hashes(docs)
    rejected = np.array([int(d[1:]) for d, _ in want_verified])
    kept = np.array([int(k[1:]) for _, k in want_verified])
    assert (pair_jaccard(offsets, hashes, rejected, kept) >= THRESHOLD).mean() > 0.5


def test_verified_reduce_on_object_storage(crawl_dir, s3_server):
    """The verification join reads and writes through pyarrow's S3 filesystem (moto on
    loopback) as it does locally: same decisions as the reference."""
    fs, _ = pafs.FileSystem.from_uri(f"s3://crawl/x?{s3_server}")
    docs = planted_corpus(crawl_dir, originals=36)
    parts = write_parts(fs, MinHashDedup(), docs, "crawl/parts")
    want = expected(docs, THRESHOLD)
    assert want != expected(docs, None)
    assert reduce_decisions(MinHashDedup(verify_jaccard=THRESHOLD), fs, parts, "crawl/work", len(docs), 2) == want


def test_verified_pipeline_on_ray_is_exact_across_parallelism(ray_local, crawl_dir, tmp_path):
    """minhash_dedup with verify_jaccard through the pipeline (multi-worker Ray, parts of 7
    documents): the account names exactly the reference's duplicates, each behind the
    reference's kept document, with parallelism 1 and 2 alike."""
    from cluster.config import build_config
    from cluster.run import run_pipeline

    texts = crawl_texts(crawl_dir, 40, 200)
    rng = np.random.default_rng(11)
    close = [edited(texts[i], 0.01, rng) for i in range(0, 40, 2)]  # ~0.9: duplicates
    far = [edited(texts[i], 0.04, rng) for i in range(1, 40, 2)]  # ~0.65-0.7: kept if checked
    chained = [edited(t, 0.01, rng) for t in far[:6]]  # close to a far copy, not to its original
    src = tmp_path / "in"
    src.mkdir()
    groups = {"a": texts, "b": close + far, "c": chained}
    for name, group in groups.items():
        (src / f"{name}.jsonl").write_bytes(b"".join(
            orjson.dumps({"id": f"{name}{i}", "text": t}) + b"\n" for i, t in enumerate(group)))
    sources = [f"{name}{i}" for name, group in groups.items() for i in range(len(group))]
    rep = reference([t for group in groups.values() for t in group], THRESHOLD)
    want = {sources[i]: sources[r] for i, r in enumerate(rep.tolist()) if i != r}
    plain = reference([t for group in groups.values() for t in group], None)
    assert len(want) >= 15 and (plain != np.arange(len(plain))).sum() > len(want)

    results = []
    for parallelism in (1, 2):
        out = tmp_path / f"out{parallelism}"
        config = build_config({"parallelism": parallelism, "batch_size": 7,
                               "stages": [{"minhash_dedup": {"verify_jaccard": THRESHOLD}}]},
                              inputs=[str(src)], output=str(out))
        summary = run_pipeline(config, progress=False)
        assert summary["rejected"] == {"minhash_dedup.duplicate": len(want)}
        assert summary["kept"] == len(sources) - len(want)
        kept = pq.read_table(sorted((out / "kept").glob("*.parquet"))).to_pylist()
        rejected = pq.read_table(sorted((out / "rejected").glob("*.parquet"))).to_pylist()
        source_of = {r["id"]: r["source_id"] for r in kept}
        got = {r["source_id"]: source_of[r["minhash_dedup_duplicate_of"]] for r in rejected}
        assert got == want
        results.append(sorted((r["id"], r["minhash_dedup_duplicate_of"]) for r in rejected))
    assert results[0] == results[1]


def test_shingle_sets_when_hashes_share_their_top_bits():
    # Hashes equal in all but their low bits (below the owner's bits of the fast sort key) must
    # still come out sorted and deduplicated.
    base = np.uint64(0xABCDEF0123456789)
    hashes = np.array([base + np.uint64(3), base, base + np.uint64(1), base, 7, base + np.uint64(2)], dtype=np.uint64)
    offsets = np.array([0, 4, 6])
    set_off, set_hashes = shingle_sets(offsets, hashes)
    assert set_off.tolist() == [0, 3, 5]
    assert set_hashes.tolist() == [int(base), int(base) + 1, int(base) + 3, 7, int(base) + 2]


def test_plan_names_the_verification():
    from cluster.plan import describe_plan

    verified, plain = describe_plan([MinHashDedup(verify_jaccard=0.8)])[1], describe_plan([MinHashDedup()])[1]
    assert "verified at true Jaccard >= 0.8" in verified and "verified" not in plain
