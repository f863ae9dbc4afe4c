"""The global reduce of a GlobalStage as a disk-backed hash shuffle.

scatter: each intermediate part file's key rows (still-kept documents only) are split by
``stage.partition_of`` into ``shuffle/p<j>/<part>.parquet``.
reduce: each partition is read alone, ``stage.decide`` turns it into rejected ids, written per
input file to ``decisions/<file key>/p<j>.parquet``; the streaming apply step of each input file
reads only its own decisions.

No process ever holds more than one part file or one partition, so memory is bounded by
``corpus keys / partitions``, and everything between the steps is on disk (local or object
storage). The driver (dedup/driver.py) runs scatter and reduce tasks in parallel on Ray.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from filters.base import GlobalStage

BOOKKEEPING = ["id", "_file", "_seq"]


def scatter(stage: GlobalStage, fs: pafs.FileSystem, part: str, shuffle_dir: str, partitions: int) -> int:
    """Split one part file's key rows into partition files; return how many rows it scattered."""
    if not set(stage.key_columns()) <= set(pq.read_schema(part, filesystem=fs).names):
        return 0  # a part with no document left to judge: map never ran on it
    table = pq.read_table(part, filesystem=fs, columns=BOOKKEEPING + ["rejected_by"] + stage.key_columns())
    table = table.filter(pc.is_null(table.column("rejected_by"))).drop(["rejected_by"])
    if table.num_rows == 0:
        return 0
    which = stage.partition_of(table, partitions)
    name = part.rsplit("/", 1)[-1]
    for j in np.unique(which):
        _write(fs, f"{shuffle_dir}/p{j:05d}/{name}", table.filter(pa.array(which == j)))
    return table.num_rows


def reduce_partition(stage: GlobalStage, fs: pafs.FileSystem, shuffle_dir: str, j: int,
                     decisions_dir: str, file_keys: dict[int, str]) -> int:
    """Decide one partition; write its rejections per input file; return how many."""
    infos = fs.get_file_info(pafs.FileSelector(f"{shuffle_dir}/p{j:05d}", allow_not_found=True))
    paths = sorted(i.path for i in infos if i.path.endswith(".parquet"))
    if not paths:
        return 0
    decisions = stage.decide(pa.concat_tables([pq.read_table(p, filesystem=fs) for p in paths]))
    if decisions.num_rows == 0:
        return 0
    files = decisions.column("_file").to_numpy()
    for index in np.unique(files):
        rows = decisions.filter(pa.array(files == index)).drop(["_file"])
        _write(fs, f"{decisions_dir}/{file_keys[int(index)]}/p{j:05d}.parquet", rows)
    return decisions.num_rows


def load_decisions(fs: pafs.FileSystem, decisions_dir: str, file_key: str) -> pa.Table | None:
    infos = fs.get_file_info(pafs.FileSelector(f"{decisions_dir}/{file_key}", allow_not_found=True))
    paths = sorted(i.path for i in infos if i.path.endswith(".parquet"))
    if not paths:
        return None
    return pa.concat_tables([pq.read_table(p, filesystem=fs) for p in paths])


def _write(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = path + ".tmp"
    pq.write_table(table, tmp, filesystem=fs, compression="zstd")
    fs.move(tmp, path)
