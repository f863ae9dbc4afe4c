"""Token counts in the summary, and `crawlsift export --format megatron`: shards a Megatron-LM
indexed-dataset reader would load (parsed here independently from the format's definition), whose
sequences decode to the kept documents, in order, each ending in the end-of-text id."""

from __future__ import annotations

import json
import struct

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import SHARED_DATA

TOKENIZER = SHARED_DATA / "tokenizer" / "gpt-neo-test-tokenizer.json"


def _megatron_shard(prefix: str) -> tuple[np.dtype, list[np.ndarray]]:
    """An independent reading of Megatron's MMapIndexedDataset index: header, version, dtype code,
    counts, lengths, byte pointers, document indices."""
    idx = open(prefix + ".idx", "rb").read()
    assert idx[:9] == b"MMIDIDX\x00\x00"
    version, code, count, docs = struct.unpack("<QBQQ", idx[9:34])
    assert version == 1
    dtype = {8: np.uint16, 4: np.int32}[code]
    offset = 34
    lengths = np.frombuffer(idx, np.int32, count, offset)
    pointers = np.frombuffer(idx, np.int64, count, offset + 4 * count)
    doc_index = np.frombuffer(idx, np.int64, docs, offset + 12 * count)
    assert len(idx) == offset + 12 * count + 8 * docs
    assert (doc_index == np.arange(count + 1)).all()  # one sequence per document
    data = np.memmap(prefix + ".bin", dtype=dtype, mode="r")
    assert pointers[0] == 0 and (np.diff(pointers) == lengths[:-1] * np.dtype(dtype).itemsize).all()
    assert len(data) == lengths.sum()
    return np.dtype(dtype), [np.asarray(data[p // data.itemsize:p // data.itemsize + n]) for p, n in zip(pointers, lengths)]


@pytest.fixture(scope="module")
def tokened_run(ray_local, crawl_dir, tmp_path_factory):
    from cluster.config import build_config
    from cluster.run import run_pipeline

    out = tmp_path_factory.mktemp("run")
    config = build_config({"stages": [{"length": {"min_words": 100}}, {"tokens": {"tokenizer": str(TOKENIZER)}}]},
                          inputs=[str(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz")], output=str(out))
    return out, run_pipeline(config, progress=False)


def test_summary_counts_tokens_of_kept_documents(tokened_run):
    from tokenizers import Tokenizer

    out, summary = tokened_run
    kept = pq.read_table(str(out / "kept"), columns=["text", "tokens"])
    tok = Tokenizer.from_file(str(TOKENIZER))
    expected = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in kept.column("text").to_pylist())
    assert summary["tokens_kept"] == expected == sum(kept.column("tokens").to_pylist())
    assert summary["tokens_counted"] == summary["tokens_kept"]  # length ran before tokens: only kept ones counted
    assert summary["rejected"]["length.too_few_words"] > 0


def test_export_megatron_shards_decode_to_the_kept_documents(tokened_run, tmp_path):
    from tokenizers import Tokenizer

    from cluster.cli import main

    out, summary = tokened_run
    assert main(["export", str(out), "--format", "megatron", "--output", str(tmp_path / "mg" / "c4"),
                 "--tokenizer", str(TOKENIZER), "--max-shard-tokens", "100000"]) == 0
    report = json.loads((tmp_path / "mg" / "c4.export.json").read_text())
    assert len(report["shards"]) >= 3  # ~400k tokens in shards closed past 100k
    tok = Tokenizer.from_file(str(TOKENIZER))
    eod = report["eod_id"]
    assert tok.id_to_token(eod) in ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>")
    sequences = []
    for prefix in report["shards"]:
        dtype, seqs = _megatron_shard(prefix)
        assert dtype == np.uint16  # vocabulary < 65,500: Megatron's optimal dtype
        sequences += seqs
    texts = []
    for part in sorted((out / "kept").glob("*.parquet")):
        texts += pq.read_table(part, columns=["text"]).column("text").to_pylist()
    assert len(sequences) == len(texts) == summary["kept"] == report["documents"]
    assert all(s[-1] == eod for s in sequences)
    assert sum(len(s) for s in sequences) == summary["tokens_kept"] + len(texts) == report["tokens"]
    for s, text in zip(sequences[:50], texts[:50]):
        assert s[:-1].tolist() == tok.encode(text, add_special_tokens=False).ids


def test_export_errors_are_one_line(tmp_path, capsys):
    from cluster.cli import main

    assert main(["export", str(tmp_path), "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no kept/*.parquet" in err[0]
