"""The training jobs on a real local Ray (2 CPUs, Ray Train V2, gloo) and real text: a tiny LM learns
with 2 workers; a run killed by SIGKILL after a checkpoint and resumed ends with the same weights as
an uninterrupted one; the classifier beats the majority class and its model loads in the
``model_classifier`` stage; a pipeline's ``train:`` section trains on that run's kept output."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train.loop import latest_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


@pytest.fixture(scope="module")
def lm_args(crawl_dir):
    """A small real-text LM job: C4 and Common Crawl documents, the shared GPT-NeoX tokenizer."""
    return dict(
        input=[str(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz"),
               str(crawl_dir / "jsonl" / "dolma_cc_en_head-0091.jsonl.gz")],
        tokenizer=str(crawl_dir.parent / "tokenizer" / "gpt-neo-test-tokenizer.json"),
        workers=2, context=64, batch_size=4, log_every=4, quiet=True,
    )


STEPS = dict(max_steps=12, checkpoint_every=4, eval_every=12)


def _train_lm_command(out, lm_args, *before) -> list[str]:
    """The job ``LMConfig(**STEPS, **lm_args)`` describes, as a CLI process (which a test can kill)."""
    flags = ["--output", str(out)]
    for key, value in {**lm_args, **STEPS}.items():
        if key == "input":
            flags += [arg for path in value for arg in ("--input", path)]
        elif key == "quiet":
            flags += ["--quiet"] if value else []
        else:
            flags += [f"--{key.replace('_', '-')}", str(value)]
    return [sys.executable, "-m", "cluster.cli", "train", "lm", *before, *flags]


def test_tiny_lm_learns_with_two_ray_train_workers(ray_local, lm_args, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.lm import LMConfig, train_lm

    out = tmp_path / "lm"
    final = train_lm(LMConfig(output=str(out), max_steps=40, eval_every=20, checkpoint_every=20, lr=2e-3, **lm_args))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(4, 41, 4))
    assert {"step", "loss", "lr", "tokens_seen", "tokens_per_s", "world_size"} <= set(metrics[0])
    assert all(m["world_size"] == 2 for m in metrics)
    assert metrics[-1]["tokens_seen"] == 40 * 2 * 4 * 64
    assert metrics[-1]["loss"] < metrics[0]["loss"] - 1.0, metrics  # it learns
    evals = [json.loads(line) for line in (out / "eval_history.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [20, 40] and evals[1]["eval_loss"] < evals[0]["eval_loss"]
    assert final["eval_loss"] < math.log(50280) - 1.0 and final["perplexity"] == pytest.approx(math.exp(final["eval_loss"]))
    assert json.loads((out / "eval.json").read_text())["step"] == 40
    assert (out / "loss.png").stat().st_size > 10_000
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tok = AutoTokenizer.from_pretrained(out / "model")
    ids = tok("The weather today is", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=5, do_sample=False).shape[1] == ids.shape[1] + 5


@pytest.fixture(scope="module")
def reference_run(ray_local, lm_args, tmp_path_factory):
    """The uninterrupted DDP run of ``STEPS`` that the resumed, restarted and FSDP runs must equal."""
    from train.lm import LMConfig, train_lm

    reference = tmp_path_factory.mktemp("uninterrupted")
    train_lm(LMConfig(output=str(reference), **STEPS, **lm_args))
    return reference


@pytest.mark.slow
def test_fsdp2_on_cpu_takes_the_same_steps_as_ddp(reference_run, lm_args, tmp_path):
    """``fsdp: true`` shards every decoder layer (FSDP2, gloo on CPU): the same data, the same
    optimiser steps, so the same weights and eval loss as DDP up to float summation order."""
    from train.lm import LMConfig, train_lm

    out = tmp_path / "fsdp"
    final = train_lm(LMConfig(output=str(out), fsdp=True, **STEPS, **lm_args))
    ref = json.loads((reference_run / "eval.json").read_text())
    assert final["step"] == ref["step"] == 12 and final["tokens_seen"] == ref["tokens_seen"]
    assert final["eval_loss"] == pytest.approx(ref["eval_loss"], abs=1e-4)
    a, b = _weights(reference_run / "model"), _weights(out / "model")
    assert a.keys() == b.keys()  # a full, unsharded Hugging Face checkpoint, not shards
    for name in a:
        assert a[name].shape == b[name].shape
        assert (a[name] - b[name]).abs().max().item() <= 1e-4, name


def test_sigkill_after_a_checkpoint_then_resume_ends_with_the_same_weights(reference_run, lm_args, tmp_path):
    reference = reference_run
    out = tmp_path / "killed"
    cmd = _train_lm_command(out, lm_args)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        found = latest_checkpoint(str(out / "checkpoints"))  # Ray may be mid-copy: complete ones only
        if found and found[1]["step"] >= 8:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = found[1]["step"]
            break
        time.sleep(0.1)
    proc.wait(timeout=60)
    assert killed_at is not None and killed_at < 12, f"no checkpoint before the end: {proc.stderr.read().decode()[-2000:]}"
    assert not (out / "model").exists()  # it really died before the end

    resumed = subprocess.run([c for c in cmd if c != "--quiet"] + ["--resume"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at step {killed_at}" in resumed.stderr
    a, b = _weights(reference / "model"), _weights(out / "model")
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max().item() <= 1e-5, name
    ref_eval = json.loads((reference / "eval.json").read_text())
    got_eval = json.loads((out / "eval.json").read_text())
    assert got_eval["step"] == ref_eval["step"] == 12 and got_eval["tokens_seen"] == ref_eval["tokens_seen"]
    assert got_eval["eval_loss"] == pytest.approx(ref_eval["eval_loss"], abs=1e-5)
    steps_logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps_logged == [4, 8, 12]  # the killed run's lines past the checkpoint are not repeated


@pytest.mark.slow
def test_a_killed_training_worker_is_restarted_from_the_last_checkpoint(reference_run, lm_args, tmp_path):
    """A training worker killed inside a run: Ray Train restarts the group from the last checkpoint
    (FailureConfig) and rank 0 rebuilds the feed at the cursor: the same final weights as without."""
    a = _weights(reference_run / "model")
    restarted = tmp_path / "worker_killed"
    config = tmp_path / "train.yaml"
    config.write_text(json.dumps({"max_failures": 2}))
    before = _train_worker_pids()
    cmd_restart = _train_lm_command(restarted, lm_args, "--config", str(config))
    proc = subprocess.Popen(cmd_restart, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, victim = time.time() + 240, None
    while time.time() < deadline and proc.poll() is None:
        states = [json.loads(p.read_text()) for p in restarted.glob("checkpoints/*/checkpoint_*/state.json")]
        fresh = _train_worker_pids() - before
        if any(s["step"] >= 4 for s in states) and fresh:
            victim = max(fresh)
            os.kill(victim, signal.SIGKILL)
            killed, checkpointed = time.time(), max(s["step"] for s in states)
            break
        time.sleep(0.1)
    _, err = proc.communicate(timeout=300)
    assert victim is not None, err.decode()[-2000:]
    print("\nfault figures: training-worker-killed: "
          + json.dumps({"last_checkpoint_step": checkpointed, "final_step": 12, "finished_after_kill_s": round(time.time() - killed, 1)}))
    assert proc.returncode == 0, err.decode()[-3000:]
    c = _weights(restarted / "model")
    for name in a:
        assert (a[name] - c[name]).abs().max().item() <= 1e-5, name
    assert json.loads((restarted / "eval.json").read_text())["step"] == 12


def _train_worker_pids() -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines() if "RayTrainWorker" in line and "IDLE" not in line}


REGISTER = "multilingual/turkunlp_register"


def test_register_classifier_beats_the_majority_class_and_loads_as_a_stage(ray_local, crawl_dir, tmp_path):
    from filters.model_classifier import ModelClassifier
    from ingest.schema import batch_of
    from train.finetune import ClassifierConfig, prepare_classifier, train_classifier

    data = crawl_dir.parent / REGISTER
    # CORE registers: upper-case main registers, lower-case sub-registers ignored, hybrids dropped.
    c = ClassifierConfig(input=[str(data / "SvCORE_dev.tsv"), str(data / "FrCORE_dev.tsv")], output=str(tmp_path / "clf"),
                         label_field="label", label_pattern="[A-Z]+", multi_label="drop", epochs=2, max_length=48,
                         lr=1e-4, batch_size=16, workers=2, quiet=True)
    prepared = prepare_classifier(c)
    assert prepared.dropped["multi_label"] > 50 and set(prepared.labels) >= {"NA", "IN", "IP", "OP", "ID", "HI"}
    report = train_classifier(c, prepared=prepared)
    saved = json.loads((tmp_path / "clf" / "report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert {"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion"} <= set(report)
    assert sum(map(sum, report["confusion"]["matrix"])) == report["eval_rows"] == prepared.eval.num_rows
    # Stated margin: macro-F1 at least 0.05 above always predicting the majority class.
    assert report["macro_f1"] >= report["majority_baseline"]["macro_f1"] + 0.05, report

    stage = ModelClassifier(model_path=str(tmp_path / "clf" / "model"), score_label="IN", threshold=0.0, device="cpu")
    stage.setup()
    texts = prepared.eval["text"].to_pylist()[:8]
    scored = stage(batch_of(texts))
    scores = scored["model_classifier_score"].to_pylist()
    assert len(scores) == 8 and all(0.0 <= s <= 1.0 for s in scores)


def test_pipeline_train_section_trains_on_the_live_kept_stream(ray_local, crawl_dir, tmp_path):
    """One `crawlsift run`: the final segment's kept documents stream into the trainer as the filters
    produce them (no read of kept/), the account stays exact; a rerun over the finished run trains on
    kept/ instead."""
    import pyarrow.parquet as pq
    import yaml

    from cluster.cli import main

    config = {
        "input": {"paths": [str(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz")]},
        "output": {"path": str(tmp_path / "run")},
        "stages": ["length", {"c4": {}}],
        "train": {"tokenizer": str(crawl_dir.parent / "tokenizer" / "gpt-neo-test-tokenizer.json"), "workers": 1,
                  "max_steps": 6, "context": 64, "batch_size": 4, "log_every": 3, "eval_every": 6, "checkpoint_every": 6},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path), "--quiet"]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    kept_rows = sum(pq.read_metadata(p).num_rows for p in (run / "kept").glob("*.parquet"))
    assert 0 < summary["kept"] == kept_rows < summary["input_documents"]
    assert summary["input_documents"] == summary["kept"] + summary["rejected_total"] + summary["unreadable_total"]
    final = json.loads((run / "train" / "eval.json").read_text())
    assert final["step"] == 6 and final["tokens_seen"] == 6 * 4 * 64 and final["eval_tokens"] > 0
    states = [json.loads(p.read_text()) for p in (run / "train").glob("checkpoints/*/checkpoint_*/state.json")]
    assert states and all(s["mode"] == "live" for s in states)
    assert (run / "train" / "model" / "model.safetensors").is_file()

    # The run is finished: training again (overwrite) reads kept/.
    config["train"]["overwrite"] = True
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path), "--quiet"]) == 0
    states = [json.loads(p.read_text()) for p in (run / "train").glob("checkpoints/*/checkpoint_*/state.json")]
    assert states and all(s["mode"] == "files" for s in states)
    assert json.loads((run / "train" / "eval.json").read_text())["step"] == 6

    bad = dict(config, train={**config["train"], "overwrite": False, "context": "long"})
    path.write_text(yaml.safe_dump(bad))
    assert main(["run", "--config", str(path), "--output", str(tmp_path / "never"), "--quiet"]) == 2
    assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_regression_head_fineweb_edu_style_loads_as_a_stage(ray_local, crawl_dir, tmp_path):
    """--regression on human quality judgements: a document's score is 5 x the share of its lines
    that TurkuNLP annotators marked clean (0-5, FineWeb-Edu's scale); the saved model scores documents
    in model_classifier with its keep rule round(score) >= 3."""
    from filters.model_classifier import ModelClassifier
    from ingest.schema import batch_of
    from train.finetune import ClassifierConfig, train_classifier

    rows = []
    for path in sorted((crawl_dir.parent / "quality" / "turkunlp_text_quality").glob("*/*.json")):
        for doc in json.loads(path.read_text()):
            labels = [int(x) for x in doc["labels"]]
            rows.append({"text": "\n".join(doc["text"]), "score": round(5 * sum(labels) / len(labels), 3)})
    data = tmp_path / "scored.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = train_classifier(ClassifierConfig(input=[str(data)], output=str(tmp_path / "edu"), label_field="score",
                                               regression=True, epochs=1, max_length=64, workers=1, quiet=True))
    assert report["task"] == "regression" and report["eval_rows"] == round(0.2 * len(rows))
    assert report["mse"] > 0 and 0 <= report["keep_f1"] <= 1
    stage = ModelClassifier(model_path=str(tmp_path / "edu" / "model"), device="cpu")
    stage.setup()
    out = stage(batch_of([rows[0]["text"], rows[1]["text"]]))
    assert out["model_classifier_score"].null_count == 0
    keep = [r is None for r in out["rejected_by"].to_pylist()]
    assert keep == [round(s) >= 3 for s in out["model_classifier_score"].to_pylist()]


@pytest.mark.slow
def test_training_to_object_storage_checkpoints_and_resumes_there(ray_local, lm_args, s3_server, tmp_path):
    """--output s3://...: checkpoints through Ray Train's storage filesystem, metrics, eval and the
    model pushed there; --resume finds the last checkpoint in the bucket (a real S3 server, moto)."""
    import pyarrow.fs as pafs
    from transformers import AutoModelForCausalLM

    from train.lm import LMConfig, train_lm

    uri = f"s3://crawl/lm?{s3_server}"
    args = {**lm_args, "workers": 1, "log_every": 3}
    train_lm(LMConfig(output=uri, max_steps=6, checkpoint_every=3, eval_every=6, **args))
    final = train_lm(LMConfig(output=uri, max_steps=9, checkpoint_every=3, eval_every=9, resume=True, **args))
    assert final["step"] == 9 and final["tokens_seen"] == 9 * 4 * 64
    fs, root = pafs.FileSystem.from_uri(uri)

    def read(rel):
        with fs.open_input_stream(f"{root}/{rel}") as f:
            return f.read().decode()

    assert [json.loads(line)["step"] for line in read("metrics.jsonl").splitlines()] == [3, 6, 9]
    assert json.loads(read("eval.json"))["step"] == 9
    states = [i.path for i in fs.get_file_info(pafs.FileSelector(f"{root}/checkpoints", recursive=True))
              if i.path.endswith("state.json")]
    assert states
    (tmp_path / "model").mkdir()
    pafs.copy_files(f"{root}/model", str(tmp_path / "model"), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "model").config.model_type == "llama"
    assert fs.get_file_info(f"{root}/loss.png").size > 10_000
