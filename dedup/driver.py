"""The distributed part of deduplication: run a GlobalStage's scatter and reduce tasks on Ray."""

from __future__ import annotations

import pyarrow.fs as pafs

from dedup.shuffle import reduce_partition, resolve, scatter
from filters.base import GlobalStage

# Key rows per reduce partition the driver aims for (~150 MB in a reduce task): a stage says how
# many rows it ships per document (``shuffle_rows_per_document``: 1 for exact dedup, 14 band keys
# for MinHash, ~32 lines for line dedup), so MinHash gets ~200k documents per partition.
ROWS_PER_PARTITION = 3_000_000


def run_global_reduce(stage: GlobalStage, fs: pafs.FileSystem, parts: list[str], work_dir: str,
                      file_keys: dict[int, str], documents: int, partitions: int | None = None) -> int:
    """Scatter every part file's keys, reduce every partition; return the number of rejections.
    Decisions land in ``<work_dir>/decisions/<file key>/``."""
    import ray

    rows = documents * stage.shuffle_rows_per_document
    partitions = partitions or max(1, min(4096, rows // ROWS_PER_PARTITION + 1))
    shuffle_dir, decisions_dir = f"{work_dir}/shuffle", f"{work_dir}/decisions"
    for stale in (shuffle_dir, decisions_dir, f"{work_dir}/edges"):
        if fs.get_file_info(stale).type == pafs.FileType.Directory:
            fs.delete_dir(stale)

    scatter_task = ray.remote(num_cpus=1)(scatter)
    ray.get([scatter_task.remote(stage, fs, part, shuffle_dir, partitions) for part in parts])
    reduce_task = ray.remote(num_cpus=1)(reduce_partition)
    rejected = sum(ray.get([
        reduce_task.remote(stage, fs, shuffle_dir, j, decisions_dir, file_keys) for j in range(partitions)
    ]))
    if stage.resolves_globally:
        rejected = ray.get(ray.remote(num_cpus=1)(resolve).remote(stage, fs, work_dir, file_keys))
    if fs.get_file_info(shuffle_dir).type == pafs.FileType.Directory:
        fs.delete_dir(shuffle_dir)
    return rejected
