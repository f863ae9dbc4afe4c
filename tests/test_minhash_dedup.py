"""minhash_dedup through the pipeline: near-duplicates in different files and workers are found,
the first in input order is kept, and results do not depend on the worker count."""

from __future__ import annotations

import gzip

import orjson
import pyarrow.parquet as pq

from cluster.config import build_config
from cluster.run import run_pipeline


def test_near_duplicates_across_shards_and_workers(ray_local, crawl_dir, tmp_path):
    with gzip.open(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz") as f:
        texts = [t for t in (orjson.loads(line)["text"] for line in f) if len(t.split()) > 200][:60]
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_bytes(b"".join(orjson.dumps({"id": f"orig{i}", "text": t}) + b"\n" for i, t in enumerate(texts)))
    # Near copies (one word changed: Jaccard of 5-gram sets ~0.97) of every third original, in
    # another shard, plus a copy of a copy in a third shard: one cluster of three.
    edited = []
    for i in range(0, 60, 3):
        words = texts[i].split()
        words[len(words) // 2] = "CHANGED"
        edited.append({"id": f"copy{i}", "text": " ".join(words)})
    (src / "b.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in edited))
    words = edited[0]["text"].split()
    words[10] = "ALSO"
    (src / "c.jsonl").write_bytes(orjson.dumps({"id": "copy-of-copy0", "text": " ".join(words)}) + b"\n")

    decisions = []
    for parallelism in (1, 2):
        out = tmp_path / f"out{parallelism}"
        config = build_config({"parallelism": parallelism, "batch_size": 7}, inputs=[str(src)], output=str(out), stages=["minhash_dedup"])
        summary = run_pipeline(config, progress=False)
        assert summary["rejected"] == {"minhash_dedup.duplicate": 21}
        rejected = pq.read_table(sorted((out / "rejected").glob("*.parquet"))).to_pylist()
        kept = pq.read_table(sorted((out / "kept").glob("*.parquet"))).column("source_id").to_pylist()
        assert sorted(kept) == sorted(f"orig{i}" for i in range(60))
        by_source_id = {r["source_id"]: r for r in rejected}
        orig0 = next(r for r in pq.read_table(sorted((out / "kept").glob("*.parquet"))).to_pylist() if r["source_id"] == "orig0")
        assert by_source_id["copy-of-copy0"]["minhash_dedup_duplicate_of"] == orig0["id"]
        decisions.append(sorted((r["id"], r["minhash_dedup_duplicate_of"]) for r in rejected))
    assert decisions[0] == decisions[1]
