"""The distributed part of deduplication: run a GlobalStage's scatter, reduce and components tasks
on Ray."""

from __future__ import annotations

import time
from typing import Callable

import pyarrow.fs as pafs

from dedup.graph import MapTasks, connected_components_partitioned
from dedup.shuffle import graph_dir, reduce_partition, resolve_partition, scatter
from dedup.verify import candidate_sets, check_partition, verify_dir
from filters.base import GlobalStage

# Key rows per reduce partition the driver aims for (~150 MB in a reduce task): a stage says how
# many rows it ships per document (``shuffle_rows_per_document``: 1 for exact dedup, 14 band keys
# for MinHash, ~32 lines for line dedup), so MinHash gets ~200k documents per partition.
ROWS_PER_PARTITION = 3_000_000


def run_global_reduce(stage: GlobalStage, fs: pafs.FileSystem, parts: list[str], work_dir: str,
                      file_keys: dict[int, str], documents: int, partitions: int | None = None,
                      map_tasks: MapTasks | None = None, report: Callable[[str], None] | None = None) -> int:
    """Scatter every part file's keys, reduce every partition (and, for a stage whose clusters
    span partitions, verify its candidate edges if it asks to, then find the clusters with the
    partitioned components run); return the number of
    rejections. Decisions land in ``<work_dir>/decisions/<file key>/``. ``map_tasks`` runs each
    step's calls (default: as Ray tasks; ``dedup.graph.sequential`` runs them in this process).
    ``report`` gets one line per finished step (progress of a long reduce)."""
    map_tasks = map_tasks or ray_tasks
    report = report or (lambda line: None)
    start = time.monotonic()
    decided = stage.reduce_here(fs, parts, work_dir, file_keys, report)
    if decided is not None:
        return decided

    def done(step: str) -> None:
        report(f"[{time.monotonic() - start:7.1f}s] {stage.name} reduce: {step}")
    rows = documents * stage.shuffle_rows_per_document
    partitions = partitions or max(1, min(4096, rows // ROWS_PER_PARTITION + 1))
    shuffle_dir, decisions_dir = f"{work_dir}/shuffle", f"{work_dir}/decisions"
    graph, vdir = graph_dir(decisions_dir), verify_dir(decisions_dir)
    for stale in (shuffle_dir, decisions_dir, graph, vdir):
        if fs.get_file_info(stale).type == pafs.FileType.Directory:
            fs.delete_dir(stale)

    rows = sum(map_tasks(scatter, [(stage, fs, part, shuffle_dir, partitions) for part in parts]))
    done(f"scattered {rows:,} key rows from {len(parts)} parts into {partitions} partitions")
    rejected = sum(map_tasks(reduce_partition, [
        (stage, fs, shuffle_dir, j, decisions_dir, file_keys, partitions) for j in range(partitions)
    ]))
    if stage.resolves_globally:
        if (threshold := stage.verify_threshold()) is not None:
            done(f"{rejected:,} candidate edges routed to their documents' input files")
            verify_edges(stage, fs, parts, vdir, graph, partitions, threshold, map_tasks, done)
        else:
            done(f"{rejected:,} candidate edges after each partition's own clusters")
        members = connected_components_partitioned(fs, graph, partitions, map_tasks, report=done)
        done(f"{members:,} documents placed behind their cluster's first in input order")
        rejected = sum(map_tasks(resolve_partition, [
            (stage, fs, decisions_dir, k, file_keys) for k in range(partitions)
        ]))
    done(f"{rejected:,} documents rejected")
    for scratch in (shuffle_dir, graph, vdir):
        if fs.get_file_info(scratch).type == pafs.FileType.Directory:
            fs.delete_dir(scratch)
    return rejected


def verify_edges(stage: GlobalStage, fs: pafs.FileSystem, parts: list[str], vdir: str, graph: str, partitions: int,
                 threshold: float, map_tasks: MapTasks, done: Callable[[str], None]) -> int:
    """The verification join (dedup/verify.py) between the reduce and the components run:
    shingle every part's candidates, check every edge against its anchor, seed the components
    with the edges that pass. Returns how many passed."""
    halves = sum(map_tasks(candidate_sets, [(stage, fs, part, vdir, partitions) for part in parts]))
    done(f"{halves:,} distinct candidate edges joined with their document's shingle set")
    results = map_tasks(check_partition, [(fs, vdir, graph, q, partitions, threshold) for q in range(partitions)])
    checked, kept = sum(c for c, _ in results), sum(k for _, k in results)
    done(f"{kept:,} of {checked:,} candidate edges have true Jaccard >= {threshold:g} "
         f"({checked - kept:,} dropped before merging)")
    return kept


def ray_tasks(fn, calls: list[tuple]) -> list:
    """Every call of ``fn`` as a Ray task (one CPU each); their results in order."""
    import ray

    task = ray.remote(num_cpus=1)(fn)
    return ray.get([task.remote(*call) for call in calls])
