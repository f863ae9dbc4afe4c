"""The Ray plan: model-holding stages run in an actor pool that loads the model once per worker."""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import ray.cloudpickle as cloudpickle  # Ray ships its own copy; registering with it is what counts
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cluster.config import build_config
from cluster.plan import describe_plan
from cluster.run import run_pipeline
from filters.base import Stage, scatter, active_mask

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/


@dataclass(frozen=True)
class CountingModelStage(Stage):
    """Stands in for a model stage: ``setup`` records each load, ``__call__`` rejects by a rule
    that needs the loaded state."""

    name = "counting_model"
    stateful = True
    num_cpus = 1
    load_dir: str = ""

    def setup(self) -> None:
        Path(self.load_dir, f"{os.getpid()}-{uuid.uuid4().hex}").write_text("loaded")
        object.__setattr__(self, "_banned", "banned")

    def __call__(self, table: pa.Table) -> pa.Table:
        mask = active_mask(table)
        hit = pc.fill_null(pc.match_substring(table.column("text"), self._banned), False)
        reasons = pc.if_else(hit, pa.scalar("counting_model.banned"), pa.scalar(None, pa.string()))
        merged = pc.coalesce(table.column("rejected_by"), scatter(pa.nulls(table.num_rows, pa.string()), mask, pc.filter(reasons, pa.array(mask))))
        return table.set_column(table.schema.get_field_index("rejected_by"), "rejected_by", merged)


def test_model_stage_loads_once_per_actor(ray_local, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for s in range(6):
        rows = [{"id": str(i), "text": "banned word" if i % 10 == 0 else f"fine text {i}"} for i in range(500)]
        (inputs / f"s{s}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    loads = tmp_path / "loads"
    loads.mkdir()
    config = build_config({"batch_size": 50}, inputs=[str(inputs)], output=str(tmp_path / "out"), stages=["length"])
    config.stages.append(CountingModelStage(load_dir=str(loads)))
    summary = run_pipeline(config, progress=False)
    assert summary["rejected"] == {"counting_model.banned": 6 * 50}
    assert summary["kept"] == 6 * 450
    batches = 6 * 500 // 50
    n_loads = len(list(loads.iterdir()))
    assert 1 <= n_loads <= 2 < batches  # one load per actor (2 CPUs), not one per batch
    assert "actor pool" in describe_plan(config.stages)[-2]


def test_a_model_missing_where_the_stage_runs_is_one_clear_line(ray_local, crawl_dir, tmp_path):
    """The model file is there when the config is checked and gone when the worker loads it (as on a
    node the file never reached): the run stops with one line naming the stage, path and node."""
    import shutil

    from cluster.cli import model_unavailable_line
    from cluster.config import build_config
    from cluster.run import run_pipeline
    from filters.langid import bundled_model_path

    model = tmp_path / "quality.ftz"
    shutil.copy(bundled_model_path(), model)
    config = build_config({"stages": [{"quality": {"model_path": str(model), "positive_label": "__label__en",
                                                   "threshold": 0.5}}]},
                          inputs=[str(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz")],
                          output=str(tmp_path / "out"))
    model.unlink()
    with pytest.raises(Exception) as info:
        run_pipeline(config, progress=False)
    line = model_unavailable_line(info.value)
    assert line is not None and "stage quality" in line and str(model) in line and "on node" in line, str(info.value)[-2000:]
