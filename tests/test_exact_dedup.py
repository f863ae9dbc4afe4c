"""Exact dedup as a global stage: keys stream, the reduce is a hash shuffle on disk, the apply
streams again; the first copy in input order is kept, across files and workers."""

from __future__ import annotations


import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from cluster.config import build_config
from cluster.run import run_pipeline
from dedup.components import exact_keys
from dedup.exact import ExactDedup
from dedup.shuffle import load_decisions, reduce_partition, scatter

import polars as pl


def write(path, texts):
    path.write_bytes(b"".join(orjson.dumps({"id": str(i), "text": t}) + b"\n" for i, t in enumerate(texts)))


def test_keys_normalize_whitespace_but_not_case():
    keys = exact_keys(pl.Series(["a  b\n c", " a b c ", "A b c", "a b d"]))
    assert (keys[0] == keys[1]).all()
    assert not (keys[0] == keys[2]).all() and not (keys[0] == keys[3]).all()
    lower = exact_keys(pl.Series(["a b c", "A B C"]), lowercase=True)
    assert (lower[0] == lower[1]).all()


def test_duplicates_across_files_keep_the_first_in_input_order(ray_local, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write(src / "a.jsonl", ["alpha text", "beta text", "unique one", "alpha text"])
    write(src / "b.jsonl", ["beta   text", "gamma", "alpha text", ""])
    write(src / "c.jsonl", ["gamma", "delta"])
    results = []
    for parallelism in (1, 2):
        out = tmp_path / f"out{parallelism}"
        config = build_config({"parallelism": parallelism, "batch_size": 2}, inputs=[str(src)], output=str(out), stages=["length", "exact_dedup"])
        summary = run_pipeline(config, progress=False)
        assert summary["input_documents"] == summary["kept"] + summary["rejected_total"] + summary["unreadable_total"]
        assert summary["rejected"] == {"exact_dedup.duplicate": 4, "length.too_short": 1}
        rejected = pq.read_table(sorted((out / "rejected").glob("*.parquet"))).to_pylist()
        kept = pq.read_table(sorted((out / "kept").glob("*.parquet"))).to_pylist()
        by_source = {r["source"].rsplit("/", 1)[-1]: r for r in rejected + kept}
        first_alpha = by_source["a.jsonl:1"]["id"]
        assert by_source["a.jsonl:4"]["exact_dedup_duplicate_of"] == first_alpha
        assert by_source["b.jsonl:3"]["exact_dedup_duplicate_of"] == first_alpha
        assert by_source["b.jsonl:1"]["exact_dedup_duplicate_of"] == by_source["a.jsonl:2"]["id"]
        assert by_source["c.jsonl:1"]["exact_dedup_duplicate_of"] == by_source["b.jsonl:2"]["id"]
        assert by_source["b.jsonl:4"]["rejected_by"] == "length.too_short"
        assert all(r["rejected_by"] is None for r in kept)
        assert summary["stages"]["exact_dedup"]["documents_in"] == 9
        results.append(sorted((r["id"], r["rejected_by"]) for r in rejected))
    assert results[0] == results[1]  # identical across worker counts

    # A rerun over a finished output does nothing and keeps the account.
    again = run_pipeline(build_config({"parallelism": 1, "batch_size": 2}, inputs=[str(src)], output=str(tmp_path / "out1"),
                                      stages=["length", "exact_dedup"]), progress=False)
    assert again["input_files_processed_this_run"] == 0 and again["rejected"] == {"exact_dedup.duplicate": 4, "length.too_short": 1}


def test_priority_column_wins_over_input_order(tmp_path):
    import pyarrow.fs as pafs

    stage = ExactDedup(priority_column="score")
    table = pa.table({
        "id": ["x", "y", "z"], "text": ["same", "same", "same"], "rejected_by": pa.nulls(3, pa.string()),
        "_file": pa.array([0, 0, 1], pa.int32()), "_seq": pa.array([0, 1, 0], pa.int64()), "score": [0.1, 0.9, 0.5],
    })
    mapped = stage.map(table)
    fs = pafs.LocalFileSystem()
    part = str(tmp_path / "part-k-0.parquet")
    pq.write_table(mapped, part)
    assert scatter(stage, fs, part, str(tmp_path / "shuffle"), 1) == 3
    assert reduce_partition(stage, fs, str(tmp_path / "shuffle"), 0, str(tmp_path / "d"), {0: "f0", 1: "f1"}) == 2
    decisions = pa.concat_tables([load_decisions(fs, str(tmp_path / "d"), k) for k in ("f0", "f1")])
    assert sorted(decisions.column("id").to_pylist()) == ["x", "z"]
    assert set(decisions.column("exact_dedup_duplicate_of").to_pylist()) == {"y"}
