"""True-Jaccard verification of a MinHash reduce's candidate edges, as a shuffle-join on disk.

A candidate edge links a document ``a`` to its bucket's anchor ``b`` (order keys
``_file << 40 | _seq``). It survives when the Jaccard of the two documents' shingle sets reaches
the stage's ``verify_threshold()``; only surviving edges seed the components run (dedup/graph.py).

The shingle sets are not carried from the map: the part files already hold every document's text,
so only the documents that are candidates are shingled again, and only their sets move::

    route (per reduce partition j)  edges   -> edges/f<file of a>/p<j>     (sorted by a)
                                    anchors -> anchors/f<file of b>/p<j>   (sorted)
    sets  (per part file)           the part's candidates (edges whose a is in it, anchors in it),
                                    read by the part's order-key range: shingle their text, then
                                    edge + a's set ("half edge") -> half/q<partition_of(b)>/<part>
                                    anchor's set                 -> sets/q<partition_of(b)>/<part>
    check (per partition q)         the anchors' sets of q (ranked once), then each half-edge file
                                    in turn: size filter, Jaccard, keep the edges >= threshold,
                                    seed the components run

Memory per process: one part file (sets step); the shingle sets of partition q's anchors (and
their ranked keys, 16 more bytes a hash) plus one half-edge file, checked in slices of
``PAIR_ENTRIES_PER_SLICE`` member hashes (check step). Every
step reads and writes through ``pyarrow.fs``, so object storage works as for the rest of the reduce.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dedup import graph
from dedup.files import read_directory, write_table
from dedup.components import _ranges, rank_sets, set_jaccard
from dedup.near import FILE_SHIFT  # order key = _file << FILE_SHIFT | _seq
ROW_GROUP = 65_536  # small row groups: a part reads only the groups of its order-key range
# Member hashes one ``set_jaccard`` call looks up, at most (~32 bytes of work arrays each).
PAIR_ENTRIES_PER_SLICE = 1 << 22
EDGE_COLUMNS = ["a", "b", "a_id", "b_id"]


def verify_dir(decisions_dir: str) -> str:
    return f"{decisions_dir.rsplit('/', 1)[0]}/verify"


# ---------------------------------------------------------------------------------------------
# route: one reduce partition's candidate edges, to the input files of their documents


def route_candidates(fs: pafs.FileSystem, edges: pa.Table, vdir: str, j: int) -> int:
    """Write reduce partition j's candidate edges (``a``, ``b``, ``a_id``, ``b_id``) by the input
    file of ``a``, and their anchors by the input file of ``b``; return the edge count."""
    edges = edges.select(EDGE_COLUMNS).sort_by("a")
    _write_by_file(fs, f"{vdir}/edges", f"p{j:05d}", edges.column("a").to_numpy(), edges)
    anchors = np.unique(edges.column("b").to_numpy())
    _write_by_file(fs, f"{vdir}/anchors", f"p{j:05d}", anchors, pa.table({"order": anchors}))
    return edges.num_rows


def _write_by_file(fs: pafs.FileSystem, directory: str, name: str, order: np.ndarray, table: pa.Table) -> None:
    """Rows sorted by ``order`` -> ``<directory>/f<file>/<name>.parquet``, one file per input file."""
    files = order >> FILE_SHIFT
    bounds = np.flatnonzero(np.diff(files)) + 1
    for start, stop in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(order)]])):
        if stop > start:
            _write(fs, f"{directory}/f{int(files[start]):06d}/{name}.parquet", table.slice(start, stop - start))


def _write(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    write_table(fs, path, table, row_group_size=ROW_GROUP)


# ---------------------------------------------------------------------------------------------
# sets: one part file's candidates, shingled again from its text


def candidate_sets(stage, fs: pafs.FileSystem, part: str, vdir: str, partitions: int) -> int:
    """Shingle the part's candidate documents; write its half edges and anchor sets by the
    partition of the anchor. Returns the number of half edges (distinct edges of its documents)."""
    if not set(stage.key_columns()) <= set(pq.read_schema(part, filesystem=fs).names):
        return 0  # a part with no document left to judge: it holds no candidate
    keys = pq.read_table(part, filesystem=fs, columns=["_file", "_seq"])
    if keys.num_rows == 0:
        return 0
    order = (keys.column("_file").to_numpy().astype(np.int64) << FILE_SHIFT) + keys.column("_seq").to_numpy().astype(np.int64)
    edges, anchors = _candidates_in(fs, vdir, order)
    if edges.num_rows == 0 and not len(anchors):
        return 0
    # The part's rows to shingle: every member of an edge here, every anchor here.
    a = edges.column("a").to_numpy()
    rows = np.flatnonzero(np.isin(order, np.union1d(a, anchors)))
    text = pq.read_table(part, filesystem=fs, columns=["text"]).column("text").take(pa.array(rows))
    offsets, hashes = stage.shingle_sets(text)
    sets = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(hashes, pa.uint64()))
    here = order[rows]
    sorter = np.argsort(here)
    name = part.rsplit("/", 1)[-1]
    b = edges.column("b").to_numpy()
    graph.write_partitioned(fs, f"{vdir}/half", name, b, partitions, {
        **{c: edges.column(c) for c in EDGE_COLUMNS},
        "a_set": sets.take(pa.array(sorter[np.searchsorted(here, a, sorter=sorter)])),
    })
    graph.write_partitioned(fs, f"{vdir}/sets", name, anchors, partitions, {
        "order": anchors, "shingles": sets.take(pa.array(sorter[np.searchsorted(here, anchors, sorter=sorter)])),
    })
    return edges.num_rows


def _candidates_in(fs: pafs.FileSystem, vdir: str, order: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """The distinct edges whose member ``a`` is one of ``order``, and the anchors among ``order``.
    Each input file's routed rows are read by the key range of ``order`` (row-group statistics
    skip the rest), then matched exactly: nothing assumes a part's rows are contiguous."""
    edges, anchors = [], []
    files = order >> FILE_SHIFT
    for index in np.unique(files):  # one input file per part (ingest/writer.py), a few at most
        mine = order[files == index]
        lo, hi = int(mine.min()), int(mine.max())
        found = _read_range(fs, f"{vdir}/edges/f{int(index):06d}", "a", lo, hi)
        if found is not None:
            edges.append(found.filter(pa.array(np.isin(found.column("a").to_numpy(), mine))))
        found = _read_range(fs, f"{vdir}/anchors/f{int(index):06d}", "order", lo, hi)
        if found is not None:
            anchors.append(np.intersect1d(found.column("order").to_numpy(), mine))
    if edges:
        # The same edge comes from every reduce partition where its two documents share a bucket.
        table = pl.from_arrow(pa.concat_tables(edges)).unique(["a", "b"], keep="first", maintain_order=True).to_arrow()
    else:
        table = pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.int64()),
                          "a_id": pa.array([], pa.string()), "b_id": pa.array([], pa.string())})
    return table, np.unique(np.concatenate(anchors)) if anchors else np.zeros(0, np.int64)


def _read_range(fs: pafs.FileSystem, directory: str, column: str, lo: int, hi: int) -> pa.Table | None:
    infos = fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
    paths = sorted(i.path for i in infos if i.path.endswith(".parquet"))
    if not paths:
        return None
    where = [(column, ">=", lo), (column, "<=", hi)]
    return pa.concat_tables([pq.read_table(p, filesystem=fs, filters=where) for p in paths])


# ---------------------------------------------------------------------------------------------
# check: one partition's edges against their anchors' sets


def check_partition(fs: pafs.FileSystem, vdir: str, graph_dir: str, q: int, partitions: int,
                    threshold: float) -> tuple[int, int]:
    """Jaccard of every half edge of partition q against its anchor's set; seed the components
    run (``partitions`` graph partitions) with the edges that reach ``threshold``. Returns
    (edges checked, edges kept)."""
    infos = fs.get_file_info(pafs.FileSelector(f"{vdir}/half/q{q:05d}", allow_not_found=True))
    halves = sorted(i.path for i in infos if i.path.endswith(".parquet"))
    if not halves:
        return 0, 0
    anchors = read_directory(fs, f"{vdir}/sets/q{q:05d}")
    if anchors is None:
        raise RuntimeError(f"verification partition {q} has edges but no anchor shingle sets")
    anchors = anchors.sort_by("order")
    anchor_order = anchors.column("order").to_numpy()
    set_off, set_hashes = _list_buffers(anchors.column("shingles"))
    ranked = rank_sets(set_off, set_hashes)  # once for all the partition's edges
    checked, kept = 0, []
    for path in halves:  # one part's half edges at a time
        half = pq.read_table(path, filesystem=fs)
        b = half.column("b").to_numpy()
        b_rows = np.searchsorted(anchor_order, b)
        if not np.array_equal(anchor_order[np.minimum(b_rows, len(anchor_order) - 1)], b):
            raise RuntimeError(f"verification partition {q}: an anchor has no shingle set")
        a_off, a_hashes = _list_buffers(half.column("a_set"))
        passed = passing_edges(a_off, a_hashes, b_rows, set_off, set_hashes, threshold, ranked)
        checked += half.num_rows
        kept.append(half.select(EDGE_COLUMNS).filter(pa.array(passed)))
    edges = pa.concat_tables(kept)
    if edges.num_rows:
        graph.seed(fs, edges, graph_dir, q, partitions)
    return checked, edges.num_rows


def passing_edges(a_off: np.ndarray, a_hashes: np.ndarray, b_rows: np.ndarray, set_off: np.ndarray,
                  set_hashes: np.ndarray, threshold: float, ranked: tuple[np.ndarray, np.ndarray] | None = None,
                  slice_entries: int | None = None) -> np.ndarray:
    """bool per edge: the true Jaccard of edge i's own set (``a_hashes[a_off[i]:a_off[i+1]]``)
    with anchor set ``b_rows[i]`` (of ``set_off``/``set_hashes``; all sorted, unique) is >=
    ``threshold``. Jaccard <= min(|A|, |B|) / max(|A|, |B|), so edges whose set sizes differ more
    than that fail without a look at their hashes (an exact filter; ~30% of the sample
    generator's candidates at 0.8); the others go through ``set_jaccard`` in slices of at most
    ``slice_entries`` member hashes (~32 bytes each), so memory is bounded whatever the file
    size (an edge larger than a slice is a slice of its own)."""
    a_len = np.diff(a_off)
    b_len = set_off[b_rows + 1] - set_off[b_rows]
    # A hair below the threshold: float rounding never drops an edge the exact check keeps.
    maybe = np.flatnonzero(np.minimum(a_len, b_len) >= (threshold - 1e-9) * np.maximum(a_len, b_len))
    passed = np.zeros(len(b_rows), dtype=bool)
    if len(maybe):
        own = a_hashes[_ranges(a_off[maybe], a_len[maybe])]
        own_off = np.concatenate([[0], np.cumsum(a_len[maybe])])
        jaccard = edge_jaccard(own_off, own, b_rows[maybe], set_off, set_hashes, ranked, slice_entries)
        passed[maybe] = jaccard >= threshold
    return passed


def edge_jaccard(a_off: np.ndarray, a_hashes: np.ndarray, b_rows: np.ndarray, set_off: np.ndarray,
                 set_hashes: np.ndarray, ranked: tuple[np.ndarray, np.ndarray] | None = None,
                 slice_entries: int | None = None) -> np.ndarray:
    """``set_jaccard`` over the edges in slices of at most ``slice_entries`` member hashes."""
    slice_entries = slice_entries or PAIR_ENTRIES_PER_SLICE
    ranked = ranked if ranked is not None else rank_sets(set_off, set_hashes)
    out = np.zeros(len(b_rows), dtype=np.float64)
    for start, stop in _slices(np.diff(a_off), slice_entries):
        out[start:stop] = set_jaccard(a_off[start:stop + 1], a_hashes, b_rows[start:stop], set_off, set_hashes, ranked)
    return out


def _slices(cost: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) ranges of items whose summed ``cost`` stays within ``limit``
    (an item over the limit alone)."""
    slices, start, total = [], 0, np.cumsum(cost)
    while start < len(cost):
        base = total[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(total, base + limit, side="right")))
        slices.append((start, stop))
        start = stop
    return slices


def _list_buffers(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A list<uint64> column as (int64 offsets from 0, uint64 values), whatever its chunking or slicing."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.large_list(pa.uint64()))
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), values
