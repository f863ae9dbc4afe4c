"""The Ray Data plan: read -> stages (map_batches) -> write, one streaming dataset.

Stateless stages run in the task that reads the input file, batch by batch (``_Chain``), so a
batch crosses no process boundary and is written as soon as it is judged. A stage that holds a
model (``Stage.stateful``) runs in an actor pool that loads the model once per worker. The write
step returns one small stats row per input file per batch; only those reach the driver.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa

from filters.base import GlobalStage, Stage, active_mask
from ingest.readers import InputFile, InputSpec, ReadFiles, file_items
from ingest.writer import STAGE_SECONDS_PREFIX, OutputDir, merge_accounts, write_batch, write_intermediate, write_progress


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
        # A map that scores with a model (quality's global top fraction) runs in an actor pool.
        self.stateful, self.num_cpus, self.num_gpus = stage.stateful, stage.num_cpus, stage.num_gpus
        self.model_path = getattr(stage, "model_path", "")

    def setup(self) -> None:
        self.stage.setup()

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


def load_on_node(stage: Stage) -> None:
    """``stage.setup()`` where the stage runs; a failure is one line naming stage, path and node."""
    try:
        stage.setup()
    except Exception as exc:  # noqa: BLE001 - whatever the loader raises, one line naming node and path
        import socket

        path = getattr(stage, "model_path", "") or "(bundled)"
        raise ModelUnavailable(f"{MODEL_UNAVAILABLE}stage {stage.name}: cannot load its model {path} on node "
                               f"{socket.gethostname()}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                               ) from None


class StageActor:
    """Actor-pool UDF: the stage's model is loaded once, in ``__init__``, per worker, and checked
    there: on a cluster the model must reach every node, not only the driver's."""

    def __init__(self, stage: Stage):
        self.stage = stage
        load_on_node(stage)

    def __call__(self, table: pa.Table) -> pa.Table:
        return run_stage(self.stage, table)


class _WriteBatch:
    """The sink: final kept/rejected Parquet, or (``intermediate_dir``) every row of the batch
    as a part file for the next segment."""

    def __init__(self, output: str, files: list[InputFile], intermediate_dir: str | None = None, keeper=None,
                 board=None, checkpoint: bool = False):
        self.output = output
        self.keys = {f.index: f.key for f in files}
        self.paths = {f.index: f.path for f in files}
        self.sizes = {f.index: f.size for f in files}
        self.intermediate_dir = intermediate_dir
        self.keeper = keeper
        self.board = board
        # In the reading task (batches of a file in order): checkpoint each file after each batch.
        self.checkpoint = checkpoint
        self.progress_dir = (intermediate_dir.rsplit("/", 1)[0] if intermediate_dir else "_state") + "/progress"
        self._covered: dict[int, tuple[int, dict | None]] = {}
        self._out = None

    def __call__(self, table: pa.Table) -> pa.Table:
        if self._out is None:
            self._out = OutputDir(self.output)
        if self.intermediate_dir:
            stats = write_intermediate(table, self._out, self.intermediate_dir, self.keys)
            self._post(stats)
            self._checkpoint(stats)
            return stats
        stats = write_batch(table, self._out, self.keys, self.paths)
        self._post(stats)
        self._checkpoint(stats)
        if self.keeper is None:
            return stats
        import ray

        # The account first (so a finished file's manifest never lags its parts), then the kept
        # documents flow on to the trainer.
        ray.get(self.keeper.add.remote(stats))
        return kept_stream(table)


    def _checkpoint(self, stats: pa.Table) -> None:
        """``progress/<file key>.json``: the rows of the file written contiguously from its start and
        their account, rewritten after each batch; a rerun resumes the file there. (The driver sees
        a task's stats only when the task ends, since Ray Data coalesces a task's outputs.)"""
        if not self.checkpoint:
            return
        for row in stats.to_pylist():
            index, first = row["file"], row["first_seq"]
            if row["last_seq"] >= 0:  # the file is complete: the driver writes its done manifest
                self._covered.pop(index, None)
                continue
            rows, account = self._covered.get(index, (0, None))
            if index not in self._covered and first > 0:  # resumed: continue the earlier run's checkpoint
                earlier = self._out.read_json(f"{self.progress_dir}/{self.keys[index]}.json") or {}
                rows, account = earlier.get("rows", 0), earlier.get("account")
            if first != rows:
                continue  # not contiguous with the checkpoint: leave it where it is
            account = merge_accounts([a for a in (account, json.loads(row["account"])) if a])
            self._covered[index] = (rows + row["rows"], account)
            write_progress(self._out, self.progress_dir, self.keys[index], self.paths[index], self.sizes[index],
                           rows + row["rows"], account)

    def _post(self, stats: pa.Table) -> None:
        """This batch's counts to the progress board (fire and forget: the line, not the account)."""
        if self.board is None:
            return
        accounts = [json.loads(a) for a in stats.column("account").to_pylist()]
        seconds: dict[str, float] = {}
        for a in accounts:
            for name, sec in a.get("stage_seconds", {}).items():
                seconds[name] = seconds.get(name, 0.0) + sec
        unreadable = sum(sum(a.get("unreadable", {}).values()) for a in accounts)
        self.board.wrote.remote(documents=sum(a.get("documents", 0) for a in accounts) + unreadable,
                                kept=sum(a.get("kept", a.get("documents", 0)) for a in accounts),
                                unreadable=unreadable, stage_seconds=seconds)


def kept_stream(table: pa.Table) -> pa.Table:
    """The kept documents of a processed batch, as the trainer's tokenizer takes them."""
    import pyarrow.compute as pc

    kept = table.filter(pc.is_null(table.column("rejected_by")))
    return kept.select(["id", "text", "_file", "_seq"])


class _Chain:
    """One input file's whole path in one task: read (or the previous segment's parts), the stateless
    stages and, when nothing stateful follows, the sink, batch by batch. Ray Data's own fusion would
    run the same code in one task, but its output buffer coalesces a generator's yields into ~128 MB
    blocks, so a file's batches would reach the stages as one block at the file's end: no progress,
    and a whole file in memory. Here each batch is judged and written as soon as it is read."""

    def __init__(self, produce, stages: list[Stage], sink=None):
        self.produce = produce
        self.stages = stages
        self.sink = sink

    def __call__(self, files: pa.Table):
        for stage in self.stages:  # models of stateless stages (langid's) load here, checked like an actor's
            load_on_node(stage)
        for table in self.produce(files):
            for stage in self.stages:
                table = run_stage(stage, table)
            yield self.sink(table) if self.sink is not None else table


class _Apply:
    """The stateless stages after a model stage, and the sink when it comes last."""

    def __init__(self, stages: list[Stage], sink=None):
        self.stages = stages
        self.sink = sink

    def __call__(self, table: pa.Table) -> pa.Table:
        for stage in self.stages:
            load_on_node(stage)
            table = run_stage(stage, table)
        return self.sink(table) if self.sink is not None else table


def _runs(stages: list[Stage]) -> tuple[list[Stage], list[tuple[Stage, list[Stage]]]]:
    """(the stateless stages before the first model stage, [(model stage, the stateless stages after it)])."""
    head, tail = [], []
    for stage in stages:
        if stage.stateful:
            tail.append((stage, []))
        elif tail:
            tail[-1][1].append(stage)
        else:
            head.append(stage)
    return head, tail


def build_dataset(files: list[InputFile], spec: InputSpec, stages: list[Stage], output: str, *,
                  batch_size: int, parallelism: int | None, actors_per_stage: int | None = None,
                  source: _ReadParts | None = None, intermediate_dir: str | None = None, keeper=None, board=None,
                  starts: dict[int, int] | None = None):
    """Read (raw inputs, or ``source``: the previous segment's parts) -> stages -> sink. The stateless
    stages before the first model stage run in the reading task (``_Chain``), with the sink too
    when there is no model stage; each model stage is an actor pool. With a ``keeper`` (a
    FileAccount actor) the sink reports its stats there and yields the kept documents. With a
    ``board`` (a ProgressBoard actor) the reader and the sink post progress as batches pass.
    ``starts``: per input index, the row to resume at (an earlier run's checkpoint)."""
    import ray.data

    head, tail = _runs(stages)
    # Checkpoints inside a file: written by the sink when it runs in the reading task (a file's
    # batches in order), else by the driver's FileAccount from the stats rows as they arrive.
    sink = _WriteBatch(output, files, intermediate_dir, keeper, board, checkpoint=not tail and source is None)
    produce = source or ReadFiles(spec, batch_size, board)
    ds = ray.data.from_items(file_items(files, starts), override_num_blocks=len(files))
    ds = ds.map_batches(_Chain(produce, head, None if tail else sink), batch_size=1, batch_format="pyarrow",
                        concurrency=parallelism)
    for i, (stage, after) in enumerate(tail):
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
        last = i == len(tail) - 1
        if after or last:
            ds = ds.map_batches(_Apply(after, sink if last else None), batch_size=None, batch_format="pyarrow",
                                zero_copy_batch=True)
    return ds


def _cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def describe_plan(stages: list[Stage]) -> list[str]:
    """One line per operator, as the CLI prints it before running."""
    def op(names: list[str]) -> str:
        return " + ".join(names) + (" (tasks, batch by batch)" if names[0].startswith("read") else " (tasks)")

    lines = []
    pending = ["read (one task per input file)"]
    for stage in stages:
        if getattr(stage, "is_global", False):
            threshold = stage.verify_threshold()
            check = "" if threshold is None else f", candidates verified at true Jaccard >= {threshold:g}"
            if stage.stateful:  # a model scores the keys: an actor pool, then the parts written
                if pending:
                    lines.append(op(pending))
                lines.append(f"{stage.name} keys + write parts (actor pool, {stage.num_cpus:g} CPU / {stage.num_gpus:g} GPU per actor)")
            else:
                lines.append(op(pending + [f"{stage.name} keys", "write parts"]))
            lines.append(f"{stage.name} reduce ({stage.reduce_description}{check})")
            pending = [f"read parts + {stage.name} apply (one task per input file)"]
        elif stage.stateful:
            if pending:
                lines.append(op(pending))
            lines.append(f"{stage.name} (actor pool, {stage.num_cpus:g} CPU / {stage.num_gpus:g} GPU per actor)")
            pending = []
        else:
            pending.append(stage.name)
    lines.append(op(pending + ["write kept/rejected Parquet"]))
    return lines
