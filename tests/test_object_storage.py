"""s3:// inputs and outputs go through the same code path as local files (pyarrow filesystems),
against a real S3 API served on loopback by moto."""

from __future__ import annotations

import json

import orjson
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cluster.config import build_config
from cluster.run import run_pipeline


def test_pipeline_reads_and_writes_s3(ray_local, crawl_dir, tmp_path, s3_server):
    fs, _ = pafs.FileSystem.from_uri(f"s3://crawl/x?{s3_server}")
    local = tmp_path / "local"
    local.mkdir()
    for s in range(2):
        data = b"".join(orjson.dumps({"id": str(i), "text": f"shard {s} document {i} " * (i % 5)}) + b"\n" for i in range(200))
        (local / f"part-{s}.jsonl").write_bytes(data)
        with fs.open_output_stream(f"crawl/in/part-{s}.jsonl", compression=None) as f:
            f.write(data)
    warc = (crawl_dir / "warc" / "whirlwind.warc.gz").read_bytes()
    (local / "w.warc.gz").write_bytes(warc)
    with fs.open_output_stream("crawl/in/w.warc.gz", compression=None) as f:  # else pyarrow gzips it again
        f.write(warc)

    remote = run_pipeline(
        build_config({}, inputs=[f"s3://crawl/in/*?{s3_server}"], output=f"s3://crawl/out?{s3_server}", stages=["length"]),
        progress=False,
    )
    here = run_pipeline(build_config({}, inputs=[str(local)], output=str(tmp_path / "out"), stages=["length"]), progress=False)
    for key in ("input_documents", "kept", "rejected", "unreadable", "skipped_records", "bytes_in", "bytes_kept"):
        assert remote[key] == here[key], (key, remote, here)
    assert remote["input_files"] == 3

    with fs.open_input_stream("crawl/out/summary.json") as f:
        assert json.loads(f.read())["kept"] == remote["kept"]
    kept = [i.path for i in fs.get_file_info(pafs.FileSelector("crawl/out/kept")) if i.path.endswith(".parquet")]
    assert sum(pq.read_table(p, filesystem=fs).num_rows for p in kept) == remote["kept"]
    sources = pq.read_table(kept[0], filesystem=fs).column("source").to_pylist()
    assert all(s.startswith("s3://crawl/in/") for s in sources)


def test_model_classifier_reads_its_model_from_object_storage(tmp_path, s3_server, monkeypatch):
    """A model directory on s3:// is copied once into the node's cache and scores exactly like the
    same directory read locally; a URI with no model is a config error, not a worker crash."""
    import pytest
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from filters.model_classifier import ModelClassifier
    from ingest.schema import batch_of
    from train.classifier import bundled_encoder_path

    model_dir = tmp_path / "edu"
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(bundled_encoder_path(), local_files_only=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    fs, _ = pafs.FileSystem.from_uri(f"s3://crawl/x?{s3_server}")
    for path in model_dir.iterdir():
        with fs.open_output_stream(f"crawl/models/edu/{path.name}", compression=None) as f:
            f.write(path.read_bytes())
    monkeypatch.setenv("CRAWLSIFT_MODEL_CACHE", str(tmp_path / "cache"))

    texts = ["The mitochondria is the powerhouse of the cell.", "BUY NOW!!! cheap pills", "", "A short note."]
    here = ModelClassifier(model_path=str(model_dir), threshold=0.5)(batch_of(texts))
    remote = ModelClassifier(model_path=f"s3://crawl/models/edu?{s3_server}", threshold=0.5)(batch_of(texts))
    assert remote.column("model_classifier_score").to_pylist() == here.column("model_classifier_score").to_pylist()
    assert remote.column("rejected_by").to_pylist() == here.column("rejected_by").to_pylist()
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and (cached[0] / "config.json").is_file()  # no partial copy left beside it

    with pytest.raises(ValueError, match="no Hugging Face model"):
        ModelClassifier(model_path=f"s3://crawl/models/missing?{s3_server}")


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _crawlsift(*args, env_extra=None, timeout=120):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", **(env_extra or {})}
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "cluster.cli", "run", *args], cwd=Path(__file__).resolve().parents[1],
                          env=env, capture_output=True, text=True, timeout=timeout)
    return done, time.time() - started


def test_remote_inputs_and_outputs_fail_fast_with_one_line(crawl_dir, tmp_path, s3_server):
    """Unreachable endpoints, a missing bucket, and a server that never answers: each is one line
    naming the path and the cause, exit 2, before any work, within a bounded time."""
    import socket
    import threading

    local = str(crawl_dir / "jsonl" / "dolma_cc_en_head-0091.jsonl.gz")
    closed = f"endpoint_override=http://127.0.0.1:{_closed_port()}&scheme=http&region=us-east-1&retries=2"
    cases = [
        (["--input", f"s3://crawl/in/*.jsonl?{closed}", "--output", str(tmp_path / "a")], "cannot list s3://crawl/in/*.jsonl"),
        (["--input", f"s3://nobucket/in/*.jsonl?{s3_server}", "--output", str(tmp_path / "b")], "bucket 'nobucket' does not exist"),
        (["--input", f"gs://crawl/in/x.jsonl?endpoint_override=127.0.0.1:{_closed_port()}&scheme=http&anonymous=true&retry_time_limit=2",
          "--output", str(tmp_path / "c")], "cannot list gs://crawl/in/x.jsonl"),
        (["--input", local, "--output", f"s3://crawl/out?{closed}"], "cannot reach the output s3://crawl/out"),
        (["--input", f"s3://crawl/in/*?{s3_server}&secret_key=hunter2", "--output", str(tmp_path / "d")], "access_key"),
        (["--input", f"s3://crawl/in/*?{s3_server}&endpoint=x", "--output", str(tmp_path / "d")], "unknown option 'endpoint'"),
    ]
    for args, expected in cases:
        done, seconds = _crawlsift(*args, "--stages", "length")
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and expected in lines[0], (args, done.stderr[-2000:])
        assert "hunter2" not in done.stderr
        assert seconds < 45, (args, seconds)
        assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    # A server that accepts and never answers: the listing deadline ends it.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held = []
    threading.Thread(target=lambda: [held.append(silent.accept()) for _ in range(16)], daemon=True).start()
    hang = f"endpoint_override=http://127.0.0.1:{silent.getsockname()[1]}&scheme=http&region=us-east-1&request_timeout=600"
    done, seconds = _crawlsift("--input", f"s3://crawl/in/*?{hang}", "--output", str(tmp_path / "e"), "--stages", "length",
                               env_extra={"CRAWLSIFT_REMOTE_TIMEOUT": "3"})
    assert done.returncode == 2 and "no answer within 3 s" in done.stderr, done.stderr[-2000:]
    assert seconds < 30
    silent.close()
