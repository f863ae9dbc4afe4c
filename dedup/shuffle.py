"""The global reduce of a GlobalStage as a disk-backed hash shuffle.

scatter: each intermediate part file's key rows (still-kept documents only) become
``stage.shuffle_rows`` (one or more rows per document, each with a uint64 ``_pkey``) and are split
by ``_pkey % partitions`` into ``shuffle/p<j>/<part>.parquet``.
reduce: each partition is read alone and ``stage.decide`` turns it into rejected ids, written per
input file to ``decisions/<file key>/p<j>.parquet`` (exact dedup); or, for a stage that
``resolves_globally`` (MinHash: clusters span partitions), into candidate edges, which seed a
partitioned connected-components run (dedup/graph.py); ``resolve_partition`` then turns each
partition's labelled cluster members into decisions with ``stage.resolve``. A stage with a
``verify_threshold`` has its candidate edges checked by true Jaccard first (dedup/verify.py), and
only the edges that pass seed the components. The streaming apply
step of each input file reads only its own decisions.

No process ever holds more than one part file or one partition, so memory is bounded by
``corpus keys / partitions`` (and ``duplicate edges / partitions`` for the components), and
everything between the steps is on disk (local or object storage). The driver (dedup/driver.py)
runs the tasks of every step in parallel on Ray.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dedup import graph, verify
from dedup.files import read_directory
from dedup.files import write_table as _write
from filters.base import GlobalStage

BOOKKEEPING = ["id", "_file", "_seq"]


def scatter(stage: GlobalStage, fs: pafs.FileSystem, part: str, shuffle_dir: str, partitions: int) -> int:
    """Split one part file's key rows into partition files; return how many rows it scattered."""
    if not set(stage.key_columns()) <= set(pq.read_schema(part, filesystem=fs).names):
        return 0  # a part with no document left to judge: map never ran on it
    table = pq.read_table(part, filesystem=fs, columns=BOOKKEEPING + ["rejected_by"] + stage.key_columns())
    table = table.filter(pc.is_null(table.column("rejected_by"))).drop(["rejected_by"])
    table = stage.shuffle_rows(table)
    if table.num_rows == 0:
        return 0
    which = (table.column("_pkey").to_numpy() % np.uint64(partitions)).astype(np.int64)
    name = part.rsplit("/", 1)[-1]
    for j in np.unique(which):
        _write(fs, f"{shuffle_dir}/p{j:05d}/{name}", table.filter(pa.array(which == j)))
    return table.num_rows


def reduce_partition(stage: GlobalStage, fs: pafs.FileSystem, shuffle_dir: str, j: int,
                     decisions_dir: str, file_keys: dict[int, str], partitions: int = 1) -> int:
    """Decide one partition; write its rejections per input file and return how many; or, when
    the stage ``resolves_globally``, seed the components run (``partitions`` graph partitions)
    with its edges and return how many edges remain; or, when it also has a
    ``verify_threshold``, route its candidate edges to the verification join and return how many."""
    rows = read_directory(fs, f"{shuffle_dir}/p{j:05d}")
    if rows is None:
        return 0
    decisions = stage.decide(rows)
    if decisions.num_rows == 0:
        return 0
    if stage.resolves_globally:  # edges: clusters may span partitions
        if stage.verify_threshold() is not None:  # candidates: checked first (dedup/verify.py)
            return verify.route_candidates(fs, decisions, verify.verify_dir(decisions_dir), j)
        return graph.seed(fs, decisions, graph_dir(decisions_dir), j, partitions)
    return write_decisions(fs, decisions, decisions_dir, file_keys, f"p{j:05d}")


def graph_dir(decisions_dir: str) -> str:
    return f"{decisions_dir.rsplit('/', 1)[0]}/graph"


def resolve_partition(stage: GlobalStage, fs: pafs.FileSystem, decisions_dir: str, k: int,
                      file_keys: dict[int, str]) -> int:
    """One graph partition's cluster members (after ``graph.connected_components_partitioned``)
    -> the stage's decisions, written per input file; return how many."""
    members = graph.members(fs, graph_dir(decisions_dir), k)
    if members is None:
        return 0
    decisions = stage.resolve(members)
    return write_decisions(fs, decisions, decisions_dir, file_keys, f"c{k:05d}")


def write_decisions(fs: pafs.FileSystem, decisions: pa.Table, decisions_dir: str, file_keys: dict[int, str], name: str) -> int:
    files = decisions.column("_file").to_numpy()
    for index in np.unique(files):
        rows = decisions.filter(pa.array(files == index)).drop(["_file"])
        _write(fs, f"{decisions_dir}/{file_keys[int(index)]}/{name}.parquet", rows)
    return decisions.num_rows


def load_decisions(fs: pafs.FileSystem, decisions_dir: str, file_key: str) -> pa.Table | None:
    return read_directory(fs, f"{decisions_dir}/{file_key}")
