"""Partitioned connected components (dedup/graph.py): the large-star / small-star rounds find the
same clusters as in-memory union-find, whatever the partition count, the split of the edges
over reduce partitions, and the shape of the graph (long chains numbered against the grain,
big stars, repeats, self-loops); and MinHash decisions do not depend on the partition count."""

from __future__ import annotations

import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.components import components_of_edges
from dedup.graph import connected_components_partitioned, large_star, members, seed, small_star, star_components


def expected(a, b) -> dict[int, int]:
    """node -> smallest node of its component, for every node that is not the smallest."""
    nodes, labels = components_of_edges(np.asarray(a, np.int64), np.asarray(b, np.int64))
    return {n: l for n, l in zip(nodes.tolist(), labels.tolist()) if n != l}


def partitioned(a, b, partitions: int, reduce_partitions: int, rng) -> dict[int, int]:
    """Seed from ``reduce_partitions`` random slices of the edges, run the rounds, read members."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    which = rng.integers(0, reduce_partitions, len(a))
    fs = pafs.LocalFileSystem()
    with tempfile.TemporaryDirectory() as tmp:
        for j in range(reduce_partitions):
            rows = which == j
            seed(fs, pa.table({"a": a[rows], "b": b[rows],
                               "a_id": [f"d{x}" for x in a[rows]], "b_id": [f"d{x}" for x in b[rows]]}),
                 tmp, j, partitions)
        connected_components_partitioned(fs, tmp, partitions)
        found = {}
        for k in range(partitions):
            table = members(fs, tmp, k)
            if table is None:
                continue
            rows = table.to_pylist()
            for r in rows:
                assert r["id"] == f"d{r['order']}" and r["root_id"] == f"d{r['root']}"
                assert r["order"] not in found  # every node labelled once, in one partition
                found[r["order"]] = r["root"]
        return found


graphs = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n),
        st.permutations(range(n)),
    )
)


@settings(max_examples=200, deadline=None)
@given(graphs)
def test_star_rounds_equal_union_find(case):
    edges, perm = case
    # Spread the node numbers like order keys (file << 40 | row) under a random relabelling.
    labels = np.array(perm, np.int64) * (1 << 40) // 7 + 5
    a = labels[[u for u, _ in edges]] if edges else np.zeros(0, np.int64)
    b = labels[[v for _, v in edges]] if edges else np.zeros(0, np.int64)
    node, label = star_components(a, b)
    assert dict(zip(node.tolist(), label.tolist())) == expected(a, b)


@settings(max_examples=40, deadline=None)
@given(graphs, st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_partitioned_run_equals_union_find(case, partitions, reduce_partitions, seed_):
    edges, perm = case
    labels = np.array(perm, np.int64) * 1_000_003
    a = labels[[u for u, _ in edges]] if edges else np.zeros(0, np.int64)
    b = labels[[v for _, v in edges]] if edges else np.zeros(0, np.int64)
    rng = np.random.default_rng(seed_)
    assert partitioned(a, b, partitions, reduce_partitions, rng) == expected(a, b)


def test_long_chain_and_big_star_across_partitions():
    rng = np.random.default_rng(3)
    n = 3000
    chain = rng.permutation(n).astype(np.int64) * 11 + 7  # a path visiting nodes in random order
    a, b = chain[:-1], chain[1:]
    # Plus a star of 2000 leaves on a centre that is not its smallest member, and a repeat.
    centre = np.int64(10**9)
    leaves = np.arange(2000, dtype=np.int64) + 5 * 10**9
    a = np.concatenate([a, np.full(2000, centre), leaves[:1]])
    b = np.concatenate([b, leaves, np.array([3], np.int64)])
    want = expected(a, b)
    assert len(set(want.values())) == 2
    # Each reduce partition holding a random fifth of the edges: no one sees a whole cluster.
    assert partitioned(a, b, partitions=4, reduce_partitions=5, rng=rng) == want


def test_steps_on_a_tiny_graph():
    # 3 - 1 - 2 (as both directions): 3's smaller neighbour is 1, 1 has two larger ones.
    hi, lo, star = large_star(np.array([1, 1, 2, 3]), np.array([2, 3, 1, 1]))
    assert star and sorted(zip(hi.tolist(), lo.tolist())) == [(2, 1), (3, 1)]
    # 1 - 2 - 3: 2 has a smaller and a larger neighbour, not a star; 3 is linked to 1.
    hi, lo, star = large_star(np.array([1, 2, 2, 3]), np.array([2, 1, 3, 2]))
    assert not star and sorted(zip(hi.tolist(), lo.tolist())) == [(2, 1), (3, 1)]
    # 5's smaller neighbours 2 and 4 join the smallest of them, 2.
    node, lowest = small_star(np.array([5, 5]), np.array([4, 2]))
    assert sorted(zip(node.tolist(), lowest.tolist())) == [(4, 2), (5, 2)]


def test_minhash_decisions_do_not_depend_on_partitions(crawl_dir, tmp_path):
    """Real crawl text with planted near copies spread over three input files: the same
    documents are rejected, as duplicates of the same kept ones, with 1, 2 or 5 partitions, and
    they are the clusters of the in-memory reference (union-find over one batch)."""
    import gzip

    import orjson
    import pyarrow.parquet as pq

    from dedup.components import near_duplicates
    from dedup.driver import run_global_reduce
    from dedup.graph import sequential
    from dedup.minhash import lsh_band_keys, minhash_signatures, shingle_hashes
    from dedup.near import MinHashDedup
    from dedup.shuffle import load_decisions
    from ingest.schema import batch_of

    with gzip.open(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz") as f:
        texts = [t for t in (orjson.loads(line)["text"] for line in f) if len(t.split()) > 150][:90]
    rng = np.random.default_rng(7)
    docs = list(texts)
    for i in rng.choice(len(texts), 40):  # copies of copies too: chains across files
        words = docs[int(i)].split()
        words[int(rng.integers(len(words)))] = "EDITED"
        docs.append(" ".join(words))
    order = rng.permutation(len(docs))
    docs = [docs[i] for i in order]
    stage = MinHashDedup()
    table = batch_of(docs)
    files = np.arange(len(docs)) * 3 // len(docs)
    table = table.set_column(table.schema.get_field_index("_file"), "_file", pa.array(files, pa.int32()))
    mapped = stage.map(table)
    fs = pafs.LocalFileSystem()
    parts = []
    for i in range(3):
        parts.append(str(tmp_path / f"part-f{i}.parquet"))
        pq.write_table(mapped.filter(pa.array(files == i)), parts[-1])
    keys = {i: f"f{i}" for i in range(3)}

    offsets, hashes = shingle_hashes(docs)
    rep = near_duplicates(lsh_band_keys(minhash_signatures(offsets, hashes, 112, stage.seed), 14, 8))
    want = sorted((f"d{i}", f"d{r}") for i, r in enumerate(rep.tolist()) if i != r)
    assert len(want) >= 40

    for partitions in (1, 2, 5):
        work = str(tmp_path / f"work{partitions}")
        rejected = run_global_reduce(stage, fs, parts, work, keys, len(docs), partitions, map_tasks=sequential)
        decisions = pa.concat_tables([d for k in keys.values() if (d := load_decisions(fs, f"{work}/decisions", k)) is not None])
        got = sorted(zip(decisions.column("id").to_pylist(), decisions.column("minhash_dedup_duplicate_of").to_pylist()))
        assert rejected == len(got) and got == want
        assert set(decisions.column("rejected_by").to_pylist()) == {"minhash_dedup.duplicate"}
