"""Parquet files of the global reduce's scratch space, on any ``pyarrow.fs`` filesystem (local disk
or object storage): written whole under a temporary name and then moved, so a reader (or a
rerun after a crash) never sees half a file."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def write_table(fs: pafs.FileSystem, path: str, table: pa.Table, row_group_size: int | None = None) -> None:
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = path + ".tmp"
    pq.write_table(table, tmp, filesystem=fs, compression="zstd", row_group_size=row_group_size)
    fs.move(tmp, path)


def read_directory(fs: pafs.FileSystem, directory: str) -> pa.Table | None:
    """Every ``.parquet`` file in ``directory`` (in name order) as one table; None if none."""
    infos = fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
    paths = sorted(i.path for i in infos if i.path.endswith(".parquet"))
    if not paths:
        return None
    return pa.concat_tables([pq.read_table(p, filesystem=fs) for p in paths])
