"""Connected components of a graph too large for one process: the duplicate clusters of a
MinHash reduce, computed over hash-partitioned edge files by alternating *large-star* and
*small-star* rounds (Kiveris et al. 2014, "Connected Components in MapReduce and Beyond").

Nodes are int64 keys whose order decides the kept document (``_file << 40 | _seq``); every
component ends as a star around its smallest node, so the label of a node is its component's
smallest node. Each step is a function of the edges of one partition (the edges whose first
node hashes to it), vectorised in NumPy, and writes its output edges already split by the
partition of the step that reads them::

    seed      (per reduce partition)  candidate edges -> local components -> s000/q<k>/p<j>
    large-star (per partition k)      s<i>/q<k>   -> s<i+1>/q<hash(hi)>   (+ "is this a star forest?")
    small-star (per partition k)      s<i+1>/q<k> -> s<i+2>/q<hash(node)>
    ... until every large-star partition reports a star forest ...
    label     (per partition k)       the stars' edges + ids -> labels/q<hash(leaf)>
    finish    (per partition k)       labels + ids of partition k -> the stage's decisions

No step holds more than one partition's edges and ids, so memory is bounded by
``duplicate edges / partitions`` (one cluster's edges meet at its smallest node: a cluster of a
million copies is a million rows in one task). The rounds needed grow as O(log^2 n) at worst;
duplicate clusters are small and shallow, and a few rounds suffice in practice.

Convergence is decided exactly, per partition: the input of a large-star step is a forest of
stars centred on their smallest node iff every node that has a smaller neighbour has exactly one
neighbour (then that neighbour has no smaller one, and all its neighbours are such leaves).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from dedup.components import components_of_edges
from dedup.files import read_directory as _read
from dedup.files import write_table as _write

# A sequence of calls of one function, e.g. as Ray tasks; returns their results in order.
MapTasks = Callable[[Callable, list[tuple]], list]
MAX_STEPS = 400  # O(log^2 n) rounds: 400 steps is far past any graph that fits in int64 keys


def sequential(fn: Callable, calls: list[tuple]) -> list:
    return [fn(*call) for call in calls]


def partition_of(nodes: np.ndarray, partitions: int) -> np.ndarray:
    """Partition (0..partitions-1) of every node: a multiplicative hash, so that order keys
    (file << 40 | row), which are dense within a file, spread evenly."""
    mixed = np.asarray(nodes, dtype=np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return ((mixed >> np.uint64(32)) % np.uint64(partitions)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# The two steps, on the edges of one partition


def _sorted_unique(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (u, v) sorted by u then v, repeats dropped; and the start of every u's run."""
    idx = np.lexsort((v, u))
    u, v = u[idx], v[idx]
    keep = np.ones(len(u), dtype=bool)
    keep[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    u, v = u[keep], v[keep]
    new = np.ones(len(u), dtype=bool)
    new[1:] = u[1:] != u[:-1]
    return u, v, np.flatnonzero(new)


def large_star(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Every node links its larger neighbours to the smallest of itself and its neighbours.

    ``(u, v)``: undirected edges listed from both ends (every edge of node ``u`` in this
    partition). Returns the new edges as ``(hi, lo)`` with ``hi > lo``, and whether the input
    was already a forest of stars around their smallest nodes (then the output is the input)."""
    u, v, starts = _sorted_unique(np.asarray(u, np.int64), np.asarray(v, np.int64))
    if not len(u):
        return u, v, True
    degree = np.diff(np.append(starts, len(u)))
    smallest_neighbour = v[starts]  # v is sorted within each node's run
    star = not np.any((smallest_neighbour < u[starts]) & (degree > 1))
    lowest = np.minimum(u[starts], smallest_neighbour)[np.repeat(np.arange(len(starts)), degree)]
    larger = v > u
    return v[larger], lowest[larger], star


def small_star(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every node links itself and its smaller neighbours to the smallest of them.

    ``(hi, lo)``: edges with ``hi > lo``, every edge whose larger node is in this partition.
    Returns undirected edges ``(node, lowest)`` with ``node > lowest``."""
    hi, lo, starts = _sorted_unique(np.asarray(hi, np.int64), np.asarray(lo, np.int64))
    if not len(hi):
        return hi, lo
    lowest = lo[starts]
    degree = np.diff(np.append(starts, len(hi)))
    lowest_of_row = np.repeat(lowest, degree)
    others = lo != lowest_of_row
    return np.concatenate([hi[starts], lo[others]]), np.concatenate([lowest, lowest_of_row[others]])


def star_components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rounds in one process (one partition): ``(node, label)`` of every node that is not its
    component's smallest, label = that smallest node. Same components as ``components_of_edges``;
    it exists to test the steps the partitioned run is made of."""
    u = np.concatenate([np.asarray(a, np.int64), np.asarray(b, np.int64)])
    v = np.concatenate([np.asarray(b, np.int64), np.asarray(a, np.int64)])
    keep = u != v
    u, v = u[keep], v[keep]
    for _ in range(MAX_STEPS):
        hi, lo, star = large_star(u, v)
        if star:
            return hi, lo
        node, lowest = small_star(hi, lo)
        u, v = np.concatenate([node, lowest]), np.concatenate([lowest, node])
    raise RuntimeError(f"connected components did not converge in {MAX_STEPS} rounds")


# ---------------------------------------------------------------------------------------------
# The partitioned run over files


def write_partitioned(fs: pafs.FileSystem, directory: str, name: str, by: np.ndarray, partitions: int, columns: dict) -> None:
    """Write the rows of ``columns`` to ``<directory>/q<k>/<name>.parquet`` by ``partition_of(by)``."""
    if not len(by):
        return
    which = partition_of(by, partitions)
    idx = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[idx], np.arange(partitions + 1))
    for k in range(partitions):
        rows = idx[bounds[k]:bounds[k + 1]]
        if len(rows):
            _write(fs, f"{directory}/q{k:05d}/{name}.parquet",
                   pa.table({key: col.take(pa.array(rows)) if isinstance(col, (pa.Array, pa.ChunkedArray)) else col[rows] for key, col in columns.items()}))


def _write_undirected(fs, directory: str, name: str, node: np.ndarray, other: np.ndarray, partitions: int) -> None:
    """Both directions of every edge, each at the partition of its first node (large-star input)."""
    u, v = np.concatenate([node, other]), np.concatenate([other, node])
    write_partitioned(fs, directory, name, u, partitions, {"u": u, "v": v})


def seed(fs: pafs.FileSystem, edges: pa.Table, graph_dir: str, j: int, partitions: int) -> int:
    """One reduce partition's candidate edges (``a``, ``b``, ``a_id``, ``b_id``) -> its local
    components as star edges (fewer edges, shallower clusters: most clusters are whole here) for
    the first large-star step, and the ids of its nodes, each at its node's partition."""
    a = edges.column("a").to_numpy()
    b = edges.column("b").to_numpy()
    node, label = components_of_edges(a, b)
    moved = node != label
    _write_undirected(fs, f"{graph_dir}/s00000", f"p{j:05d}", node[moved], label[moved], partitions)
    order = np.concatenate([a, b])
    ids = pa.concat_arrays([edges.column("a_id").combine_chunks(), edges.column("b_id").combine_chunks()])
    first = np.unique(order, return_index=True)[1]
    write_partitioned(fs, f"{graph_dir}/ids", f"p{j:05d}", order[first], partitions,
                 {"order": order[first], "id": ids.take(pa.array(first))})
    return int(moved.sum())


def large_star_step(fs: pafs.FileSystem, graph_dir: str, step: int, k: int, partitions: int) -> bool:
    edges = _read(fs, f"{graph_dir}/s{step:05d}/q{k:05d}")
    if edges is None:
        return True
    hi, lo, star = large_star(edges.column("u").to_numpy(), edges.column("v").to_numpy())
    # Written even where this partition is a star forest: another one may not be, and then the
    # next round needs every edge.
    write_partitioned(fs, f"{graph_dir}/s{step + 1:05d}", f"p{k:05d}", hi, partitions, {"hi": hi, "lo": lo})
    return star


def small_star_step(fs: pafs.FileSystem, graph_dir: str, step: int, k: int, partitions: int) -> int:
    edges = _read(fs, f"{graph_dir}/s{step:05d}/q{k:05d}")
    if edges is None:
        return 0
    node, lowest = small_star(edges.column("hi").to_numpy(), edges.column("lo").to_numpy())
    _write_undirected(fs, f"{graph_dir}/s{step + 1:05d}", f"p{k:05d}", node, lowest, partitions)
    return len(node)


def _ids_of(fs: pafs.FileSystem, graph_dir: str, k: int) -> pa.Table:
    ids = _read(fs, f"{graph_dir}/ids/q{k:05d}")
    if ids is None:
        raise RuntimeError(f"no ids for graph partition {k} in {graph_dir}")
    return ids


def _lookup(ids: pa.Table, order: np.ndarray) -> pa.Array:
    """The id of every node in ``order`` (all present in ``ids``; several reduce partitions may
    list the same node, with the same id)."""
    keys = ids.column("order").to_numpy()
    position = np.searchsorted(keys, order, sorter=(sorter := np.argsort(keys, kind="stable")))
    rows = sorter[np.minimum(position, len(keys) - 1)]
    if not np.array_equal(keys[rows], order):
        raise RuntimeError("a graph node has no id: the reduce's edge files are incomplete")
    return ids.column("id").take(pa.array(rows))


def label_step(fs: pafs.FileSystem, graph_dir: str, step: int, k: int, partitions: int) -> int:
    """The converged stars of partition k: every centre (a node whose neighbours are all larger)
    sends ``(leaf, root, root_id)`` to its leaves' partitions."""
    edges = _read(fs, f"{graph_dir}/s{step:05d}/q{k:05d}")
    if edges is None:
        return 0
    u, v = edges.column("u").to_numpy(), edges.column("v").to_numpy()
    u, v, _ = _sorted_unique(u, v)
    centre = v > u
    leaf, root = v[centre], u[centre]
    write_partitioned(fs, f"{graph_dir}/labels", f"p{k:05d}", leaf, partitions,
                 {"order": leaf, "root": root, "root_id": _lookup(_ids_of(fs, graph_dir, k), root)})
    return len(leaf)


def members(fs: pafs.FileSystem, graph_dir: str, k: int) -> pa.Table | None:
    """Partition k's labelled nodes: ``order``, ``root``, ``id``, ``root_id``, one row per node
    that is not its component's smallest."""
    labels = _read(fs, f"{graph_dir}/labels/q{k:05d}")
    if labels is None:
        return None
    ids = _ids_of(fs, graph_dir, k)
    return labels.append_column("id", _lookup(ids, labels.column("order").to_numpy()))


def connected_components_partitioned(fs: pafs.FileSystem, graph_dir: str, partitions: int,
                                     map_tasks: MapTasks = sequential,
                                     report: Callable[[str], None] | None = None) -> int:
    """Run the rounds over the seeded ``graph_dir`` until the edges are stars, then label.
    Returns the number of labelled (non-root) nodes; ``members(fs, graph_dir, k)`` reads them.
    ``report`` gets a line per round."""
    step = 0
    for _ in range(MAX_STEPS):
        calls = [(fs, graph_dir, step, k, partitions) for k in range(partitions)]
        stars = map_tasks(large_star_step, calls)
        if all(stars):
            fs.delete_dir_contents(f"{graph_dir}/s{step + 1:05d}", missing_dir_ok=True)
            break
        edges = sum(map_tasks(small_star_step, [(fs, graph_dir, step + 1, k, partitions) for k in range(partitions)]))
        if report:
            report(f"components round {step // 2 + 1}: {edges:,} edges, {stars.count(False)}/{partitions} partitions not yet stars")
        for done in (step, step + 1):
            fs.delete_dir_contents(f"{graph_dir}/s{done:05d}", missing_dir_ok=True)
        step += 2
    else:
        raise RuntimeError(f"connected components did not converge in {MAX_STEPS} rounds")
    return sum(map_tasks(label_step, [(fs, graph_dir, step, k, partitions) for k in range(partitions)]))
