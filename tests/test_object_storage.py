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
