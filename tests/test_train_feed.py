"""The trainer's pieces without Ray: packing, the resume cursor, holdout, worker sizing, schedule,
and the one-line errors every bad input gets before any work."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.schema import batch_of
from train.feed import Cursor, Packer, TokenizeDocuments, in_holdout
from train.loop import cosine_with_warmup, latest_checkpoint, plan_workers, write_checkpoint
from train.models import TrainInputError

TOKENIZER = None


def _docs(lengths, start=0):
    """Documents as token arrays whose values encode (document, position) so any misplacement shows."""
    return [np.arange(n, dtype=np.int32) + 1000 * (start + i) for i, n in enumerate(lengths)]


def _push_all(packer, docs, splits, first_seq=0):
    arrays = pa.array([d.tolist() for d in docs], type=pa.large_list(pa.int32()))
    seqs = np.arange(first_seq, first_seq + len(docs))
    files = np.zeros(len(docs), dtype=np.int64)
    start = 0
    for end in list(splits) + [len(docs)]:
        if end > start:
            packer.push(arrays.slice(start, end - start), files[start:end], seqs[start:end])
        start = max(start, end)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=30), context=st.integers(2, 17),
       cut=st.lists(st.integers(0, 30), max_size=5))
def test_packing_keeps_every_token_whatever_the_batch_boundaries(lengths, context, cut):
    docs = _docs(lengths)
    stream = np.concatenate(docs)
    packer = Packer(context)
    _push_all(packer, docs, sorted(cut))
    n = packer.available()
    assert n == max(0, (len(stream) - 1) // context)
    if n:
        seqs = packer.take(n)
        assert seqs.shape == (n, context + 1)
        for i in range(n):  # consecutive sequences overlap by one token: every token is a target once
            assert np.array_equal(seqs[i], stream[i * context: i * context + context + 1])


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 50), min_size=2, max_size=25), context=st.integers(2, 13),
       first=st.integers(1, 6))
def test_a_packer_resumed_at_the_cursor_continues_exactly(lengths, context, first):
    docs = _docs(lengths)
    whole = Packer(context)
    _push_all(whole, docs, [])
    total = whole.available()
    if total <= first:
        return
    expected = whole.take(total)[first:]

    interrupted = Packer(context)
    _push_all(interrupted, docs, [len(docs) // 2])
    interrupted.take(first)
    cursor = interrupted.cursor
    # A new run starts at the cursor's document (the dataset skips earlier records) and drops its first tokens.
    resumed = Packer(context, skip=cursor)
    _push_all(resumed, docs[cursor.seq:], [], first_seq=cursor.seq)
    got = resumed.take(resumed.available())
    assert np.array_equal(got, expected[: len(got)])
    assert len(got) == len(expected)


def test_tokenize_documents_holdout_and_start(tmp_path):
    from tokenizers import Tokenizer

    from train.models import train_bpe

    texts = [f"document number {i} says hello world" for i in range(200)]
    tok = train_bpe(iter(texts), vocab_size=300)
    ids = [f"doc-{i}" for i in range(200)]
    batch = batch_of(texts, ids=ids)
    eos = tok.token_to_id("<|endoftext|>")
    train = TokenizeDocuments(tok.to_str(), eos, "train", 0.2)(batch)
    held = TokenizeDocuments(tok.to_str(), eos, "eval", 0.2)(batch)
    seqs_train, seqs_held = set(train["_seq"].to_pylist()), set(held["_seq"].to_pylist())
    assert not seqs_train & seqs_held and len(seqs_train | seqs_held) == 200
    assert 15 <= len(seqs_held) <= 65  # ~20%
    expected_held = in_holdout(pa.array(ids), 0.2)
    assert sorted(seqs_held) == [i for i in range(200) if expected_held[i]]
    first = train["tokens"][0].as_py()
    assert first[-1] == eos and Tokenizer.from_str(tok.to_str()).decode(first[:-1]).strip() == texts[sorted(seqs_train)[0]]
    later = TokenizeDocuments(tok.to_str(), eos, "all", 0.0, start=(0, 150))(batch)
    assert later["_seq"].to_pylist() == list(range(150, 200))
    rejected = batch_of(["kept text", "gone"], rejected_by=[None, "c4.lorem_ipsum"])
    assert TokenizeDocuments(tok.to_str(), eos, "all", 0.0)(rejected)["_seq"].to_pylist() == [0]


def test_workers_leave_cpus_to_the_feed():
    plan = plan_workers(2, "auto", cluster_cpus=2, cluster_gpus=0)
    assert plan.workers == 2 and not plan.use_gpu
    assert plan.cpus_per_worker == 0.5 and plan.feed_cpus == 1 and plan.threads_per_worker == 1
    assert plan_workers(None, "auto", 16, 4).workers == 4
    gpu = plan_workers(None, "auto", 16, 4)
    assert gpu.use_gpu and gpu.workers * gpu.cpus_per_worker + gpu.feed_cpus <= 16
    # 8-GPU nodes with 16 CPUs each beside CPU nodes: a GPU worker asks for 2 CPUs, so the group fits them.
    node = plan_workers(None, "auto", cluster_cpus=2 * 64 + 16, cluster_gpus=8, cpus_per_gpu=2)
    assert node.workers == 8 and node.cpus_per_worker == 2
    with pytest.raises(TrainInputError, match="do not fit"):
        plan_workers(3, "cpu", cluster_cpus=2, cluster_gpus=0, feed_cpus=1, cpus_per_worker=1)
    with pytest.raises(TrainInputError, match="no GPU"):
        plan_workers(1, "cuda", 2, 0)


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    lrs = [cosine_with_warmup(s, warmup=10, total=100, min_ratio=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert cosine_with_warmup(100, warmup=10, total=100, min_ratio=0.1) == pytest.approx(0.1)


def test_a_checkpoint_caught_mid_copy_is_never_resumed_from(tmp_path):
    """Ray copies a checkpoint into storage file by file; a kill mid-copy leaves a truncated file.
    Only a checkpoint whose files all have the sizes its state.json recorded counts."""
    torch = pytest.importorskip("torch")
    root = tmp_path / "checkpoints" / "run"
    for step in (4, 8, 12):
        d = root / f"checkpoint_{step:06d}"
        d.mkdir(parents=True)
        write_checkpoint(str(d), model_state={"w": torch.full((64,), float(step))}, optimizer_state={},
                         scheduler_state={}, state={"step": step})
    assert latest_checkpoint(str(tmp_path / "checkpoints"))[1]["step"] == 12
    weights = root / "checkpoint_000012" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:100])  # the weights were still being copied
    state8 = root / "checkpoint_000008" / "state.json"
    state8.write_text(state8.read_text()[:10])  # state.json itself half-written
    found = latest_checkpoint(str(tmp_path / "checkpoints"))
    assert found is not None and found[1]["step"] == 4
    assert found[0].endswith("checkpoint_000004")


def test_cursor_round_trips():
    c = Cursor(2, 3, 40, 7)
    assert Cursor.from_dict(json.loads(json.dumps(c.as_dict()))) == c


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, before any work (no Ray started).


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cluster.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    """A real (untrained) Hugging Face causal-LM directory with a 64-position limit."""
    from transformers import LlamaConfig, LlamaForCausalLM

    d = tmp_path_factory.mktemp("tiny_lm")
    cfg = LlamaConfig(vocab_size=50304, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64)
    LlamaForCausalLM(cfg).save_pretrained(d)
    return d


def _one_line_exit_2(result, *needles):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("crawlsift: error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_training_input_is_one_line_and_exit_2(tmp_path, crawl_dir, tiny_lm_dir):
    good = str(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz")
    tokenizer = str(crawl_dir.parent / "tokenizer" / "gpt-neo-test-tokenizer.json")
    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text("".join(json.dumps({"body": f"words {i}"}) + "\n" for i in range(5)))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    not_model = tmp_path / "not_a_model"
    not_model.mkdir()
    (not_model / "config.json").write_text("{}")
    out = str(tmp_path / "out")

    _one_line_exit_2(_cli("train", "lm", "--input", str(no_text), "--output", out, "--tokenizer", tokenizer), "no text column")
    _one_line_exit_2(_cli("train", "lm", "--input", str(empty), "--output", out, "--tokenizer", tokenizer), "no readable documents")
    _one_line_exit_2(_cli("train", "lm", "--input", good, "--output", out, "--model", str(tiny_lm_dir), "--context", "128"),
                     "larger than the model's 64 positions")
    _one_line_exit_2(_cli("train", "lm", "--input", good, "--output", out, "--resume", "--tokenizer", tokenizer), "no checkpoint")
    _one_line_exit_2(_cli("train", "lm", "--input", good, "--output", out, "--model", str(not_model)), "no weights")
    _one_line_exit_2(_cli("train", "lm", "--input", good, "--output", out, "--model", str(tmp_path)), "no config.json")

    one_class = tmp_path / "one_class.jsonl"
    one_class.write_text("".join(json.dumps({"text": f"text {i}", "label": "news"}) + "\n" for i in range(10)))
    _one_line_exit_2(_cli("train", "classifier", "--input", str(one_class), "--label-field", "label", "--output", out),
                     "only one class")
    _one_line_exit_2(_cli("train", "classifier", "--input", str(one_class), "--label-field", "stars", "--output", out),
                     "no label field 'stars'")
    _one_line_exit_2(_cli("train", "classifier", "--input", str(no_text), "--label-field", "body", "--output", out),
                     "no text field")


def test_a_live_stream_checkpoint_is_not_resumed_onto_kept(tmp_path, crawl_dir):
    from train.lm import LMConfig, prepare

    ckpt = tmp_path / "out" / "checkpoints" / "run-1" / "checkpoint_1"
    ckpt.mkdir(parents=True)
    (ckpt / "model.pt").write_bytes(b"")
    (ckpt / "optimizer.pt").write_bytes(b"")
    (ckpt / "state.json").write_text(json.dumps({"step": 3, "mode": "live", "cursor": None}))
    c = LMConfig(input=[str(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz")], output=str(tmp_path / "out"),
                 resume=True, tokenizer=str(crawl_dir.parent / "tokenizer" / "gpt-neo-test-tokenizer.json"))
    with pytest.raises(TrainInputError, match="live kept stream"):
        prepare(c)


def test_a_damaged_compressed_labeled_file_is_one_input_error(tmp_path):
    """Labeled sets are read whole: a cut gzip file is a TrainInputError naming the file and where
    the stream ended (not a TypeError from the reader's in-band damage marker)."""
    import gzip

    from train.labeled import LabelSpec, read_labeled

    rows = "".join(f"{'NA' if i % 2 else 'OP'}\tdocument number {i} with some words\n" for i in range(2000))
    data = gzip.compress(rows.encode())
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TrainInputError, match="cut.tsv.gz: gzip stream ends inside a gzip member"):
        read_labeled([str(path)], LabelSpec())
