"""The Ray Data plan: read -> stages (map_batches) -> write, one streaming dataset.

Stateless stages are plain ``map_batches`` tasks, which Ray fuses with the read and the write so a
batch crosses no process boundary. A stage that holds a model (``Stage.stateful``) runs in an actor
pool that loads the model once per worker. The write step returns one small stats row per input
file per batch; only those reach the driver.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from filters.base import Stage, active_mask
from ingest.readers import InputFile, InputSpec, read_file
from ingest.writer import STAGE_SECONDS_PREFIX, OutputDir, write_batch


class _ReadFiles:
    """map_batches UDF over a batch of input-file descriptors: yields document batches."""

    def __init__(self, spec: InputSpec, batch_size: int):
        self.spec = spec
        self.batch_size = batch_size

    def __call__(self, files: pa.Table):
        for row in files.to_pylist():
            yield from read_file(InputFile(row["index"], row["path"], row["size"]), self.spec, self.batch_size)


def run_stage(stage: Stage, table: pa.Table) -> pa.Table:
    """Apply one stage and record its time, spread over the rows it judged, in ``_sec_<stage>``
    so each input file's account can say how long each stage spent on it."""
    start = time.perf_counter()
    mask = active_mask(table)
    if mask.any():
        table = stage(table)
    elapsed = time.perf_counter() - start
    per_row = np.zeros(table.num_rows)
    if mask.any():
        per_row[mask] = elapsed / mask.sum()
    return table.append_column(STAGE_SECONDS_PREFIX + stage.name, pa.array(per_row))


class _StatelessStage:
    def __init__(self, stage: Stage):
        self.stage = stage

    def __call__(self, table: pa.Table) -> pa.Table:
        return run_stage(self.stage, table)


class StageActor:
    """Actor-pool UDF: the stage's model is loaded once, in ``__init__``, per worker."""

    def __init__(self, stage: Stage):
        self.stage = stage
        self.stage.setup()

    def __call__(self, table: pa.Table) -> pa.Table:
        return run_stage(self.stage, table)


class _WriteBatch:
    def __init__(self, output: str, files: list[InputFile]):
        self.output = output
        self.keys = {f.index: f.key for f in files}
        self.paths = {f.index: f.path for f in files}
        self._out = None

    def __call__(self, table: pa.Table) -> pa.Table:
        if self._out is None:
            self._out = OutputDir(self.output)
        return write_batch(table, self._out, self.keys, self.paths)


def build_dataset(files: list[InputFile], spec: InputSpec, stages: list[Stage], output: str, *,
                  batch_size: int, parallelism: int | None, actors_per_stage: int | None = None):
    import ray.data

    items = [{"index": f.index, "path": f.path, "size": f.size} for f in files]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(
        _ReadFiles(spec, batch_size),
        batch_size=1,
        batch_format="pyarrow",
        concurrency=parallelism,
    )
    for stage in stages:
        if stage.stateful:
            ds = ds.map_batches(
                StageActor,
                fn_constructor_args=(stage,),
                batch_size=None,
                batch_format="pyarrow",
                zero_copy_batch=True,
                concurrency=(1, actors_per_stage or _cluster_cpus()),
                num_cpus=stage.num_cpus,
                num_gpus=stage.num_gpus,
            )
        else:
            ds = ds.map_batches(_StatelessStage(stage), batch_size=None, batch_format="pyarrow", zero_copy_batch=True)
    return ds.map_batches(_WriteBatch(output, files), batch_size=None, batch_format="pyarrow")


def _cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def describe_plan(stages: list[Stage]) -> list[str]:
    """One line per operator, as the CLI prints it before running."""
    lines = ["read (tasks, one per input file)"]
    for stage in stages:
        kind = f"actor pool, {stage.num_cpus:g} CPU / {stage.num_gpus:g} GPU per actor" if stage.stateful else "tasks, fused"
        lines.append(f"{stage.name} ({kind})")
    lines.append("write kept/rejected Parquet (tasks, fused)")
    return lines
