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

from filters.base import GlobalStage, Stage, active_mask
from ingest.readers import InputFile, InputSpec, ReadFiles, file_items
from ingest.writer import STAGE_SECONDS_PREFIX, OutputDir, write_batch, write_intermediate


class _ReadParts:
    """map_batches UDF for the segment after a global stage: streams each input file's parts
    from the previous segment, in order, through the global stage's ``apply``."""

    def __init__(self, output: str, parts_dir: str, decisions_dir: str, stage: GlobalStage, keys: dict[int, str]):
        self.output = output
        self.parts_dir = parts_dir
        self.decisions_dir = decisions_dir
        self.stage = stage
        self.keys = keys

    def __call__(self, files: pa.Table):
        import pyarrow.parquet as pq

        from dedup.shuffle import load_decisions

        out = OutputDir(self.output)
        for row in files.to_pylist():
            key = self.keys[row["index"]]
            decisions = load_decisions(out.fs, out.path(self.decisions_dir), key)
            for part in out.list(f"{self.parts_dir}"):
                if part.rsplit("/", 1)[-1].startswith(f"part-{key}-"):
                    table = pq.read_table(part, filesystem=out.fs)
                    if decisions is not None or self.stage.apply_always:
                        start = time.perf_counter()
                        mask = active_mask(table)
                        table = self.stage.apply(table, decisions)
                        table = _add_seconds(table, self.stage.name, time.perf_counter() - start, mask)
                    yield table


class GlobalMap(Stage):
    """The streaming first step of a GlobalStage, as a plain stage of its segment."""

    def __init__(self, stage: GlobalStage):
        self.stage = stage
        self.name = stage.name

    def __call__(self, table: pa.Table) -> pa.Table:
        return self.stage.map(table)


def _add_seconds(table: pa.Table, name: str, elapsed: float, mask: np.ndarray) -> pa.Table:
    column = STAGE_SECONDS_PREFIX + name
    per_row = np.zeros(table.num_rows)
    if mask.any():
        per_row[mask] = elapsed / mask.sum()
    if column in table.column_names:
        per_row += table.column(column).to_numpy()
        return table.set_column(table.schema.get_field_index(column), column, pa.array(per_row))
    return table.append_column(column, pa.array(per_row))


def run_stage(stage: Stage, table: pa.Table) -> pa.Table:
    """Apply one stage and record its time, spread over the rows it judged, in ``_sec_<stage>``
    so each input file's account can say how long each stage spent on it."""
    start = time.perf_counter()
    mask = active_mask(table)
    # Called even when nothing is left to judge, so every batch gets the stage's annotation
    # columns (as nulls) and all output parts share one schema.
    table = stage(table)
    return _add_seconds(table, stage.name, time.perf_counter() - start, mask)


class _StatelessStage:
    def __init__(self, stage: Stage):
        self.stage = stage

    def __call__(self, table: pa.Table) -> pa.Table:
        return run_stage(self.stage, table)


MODEL_UNAVAILABLE = "crawlsift-model-unavailable: "


class ModelUnavailable(RuntimeError):
    """A model stage could not load its model on a worker node (a path that exists on the driver but
    not where the stage runs, a corrupt file, ...). The message's first line is what the user sees."""


class StageActor:
    """Actor-pool UDF: the stage's model is loaded once, in ``__init__``, per worker, and checked
    there: on a cluster the model must reach every node, not only the driver's."""

    def __init__(self, stage: Stage):
        self.stage = stage
        try:
            self.stage.setup()
        except Exception as exc:  # noqa: BLE001 - whatever the loader raises, one line naming node and path
            import socket

            path = getattr(stage, "model_path", "") or "(bundled)"
            raise ModelUnavailable(f"{MODEL_UNAVAILABLE}stage {stage.name}: cannot load its model {path} on node "
                                   f"{socket.gethostname()}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                                   ) from None

    def __call__(self, table: pa.Table) -> pa.Table:
        return run_stage(self.stage, table)


class _WriteBatch:
    """The sink: final kept/rejected Parquet, or (``intermediate_dir``) every row of the batch
    as a part file for the next segment."""

    def __init__(self, output: str, files: list[InputFile], intermediate_dir: str | None = None, keeper=None):
        self.output = output
        self.keys = {f.index: f.key for f in files}
        self.paths = {f.index: f.path for f in files}
        self.intermediate_dir = intermediate_dir
        self.keeper = keeper
        self._out = None

    def __call__(self, table: pa.Table) -> pa.Table:
        if self._out is None:
            self._out = OutputDir(self.output)
        if self.intermediate_dir:
            return write_intermediate(table, self._out, self.intermediate_dir, self.keys)
        stats = write_batch(table, self._out, self.keys, self.paths)
        if self.keeper is None:
            return stats
        import ray

        # The account first (so a finished file's manifest never lags its parts), then the kept
        # documents flow on to the trainer.
        ray.get(self.keeper.add.remote(stats))
        return kept_stream(table)


def kept_stream(table: pa.Table) -> pa.Table:
    """The kept documents of a processed batch, as the trainer's tokenizer takes them."""
    import pyarrow.compute as pc

    kept = table.filter(pc.is_null(table.column("rejected_by")))
    return kept.select(["id", "text", "_file", "_seq"])


def build_dataset(files: list[InputFile], spec: InputSpec, stages: list[Stage], output: str, *,
                  batch_size: int, parallelism: int | None, actors_per_stage: int | None = None,
                  source: _ReadParts | None = None, intermediate_dir: str | None = None, keeper=None):
    """Read (raw inputs, or ``source``: the previous segment's parts) -> stages -> sink. With a
    ``keeper`` (a FileAccount actor) the sink reports its stats there and yields the kept documents."""
    import ray.data

    ds = ray.data.from_items(file_items(files), override_num_blocks=len(files))
    ds = ds.map_batches(
        source or ReadFiles(spec, batch_size),
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
    return ds.map_batches(_WriteBatch(output, files, intermediate_dir, keeper), batch_size=None, batch_format="pyarrow")


def _cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def describe_plan(stages: list[Stage]) -> list[str]:
    """One line per operator, as the CLI prints it before running."""
    lines = ["read (tasks, one per input file)"]
    for stage in stages:
        if getattr(stage, "is_global", False):
            threshold = stage.verify_threshold()
            check = "" if threshold is None else f", candidates verified at true Jaccard >= {threshold:g}"
            lines.append(f"{stage.name} keys (tasks, fused) => write parts; {stage.name} reduce (hash shuffle on disk{check}, "
                         f"Ray tasks) => read parts + {stage.name} apply (tasks, one per input file)")
            continue
        kind = f"actor pool, {stage.num_cpus:g} CPU / {stage.num_gpus:g} GPU per actor" if stage.stateful else "tasks, fused"
        lines.append(f"{stage.name} ({kind})")
    lines.append("write kept/rejected Parquet (tasks, fused)")
    return lines
