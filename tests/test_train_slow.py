"""Long or GPU-only trainer checks: ``make test-slow`` / ``make test-gpu`` (never in ``make test``)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_ablation_on_the_real_crawl_writes_both_runs_on_the_same_eval(ray_local, crawl_dir, tmp_path):
    """Raw vs filtered on the shared crawl at the tiny size: both runs see the same token budget and
    are scored on the same held-out kept text (the figure itself is in README, whichever way it goes)."""
    from cluster.config import build_config
    from cluster.run import run_pipeline
    from train.ablate import ablate

    run = tmp_path / "run"
    run_pipeline(build_config({}, inputs=[str(crawl_dir / "jsonl" / "*")], output=str(run)), progress=False)
    report = ablate([str(crawl_dir / "jsonl" / "*")], str(run), str(tmp_path / "ablation"), max_steps=60, context=128,
                    batch_size=8, workers=1, quiet=True)
    assert report["raw"]["tokens_seen"] == report["filtered"]["tokens_seen"] == 60 * 8 * 128
    assert report["eval"]["tokens"] > 0
    saved = json.loads((tmp_path / "ablation" / "ablation.json").read_text())
    assert saved["eval_loss_difference"] == pytest.approx(report["raw"]["eval_loss"] - report["filtered"]["eval_loss"])
    assert (tmp_path / "ablation" / "ablation.png").stat().st_size > 10_000


@pytest.mark.gpu
def test_bf16_training_on_a_gpu_logs_mfu(crawl_dir, tmp_path):
    import ray

    from train.lm import LMConfig, train_lm

    ray.init(include_dashboard=False, logging_level="ERROR", ignore_reinit_error=True)
    try:
        train_lm(LMConfig(input=[str(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz")], output=str(tmp_path),
                          tokenizer=str(crawl_dir.parent / "tokenizer" / "gpt-neo-test-tokenizer.json"), device="cuda",
                          max_steps=20, log_every=5, context=256, quiet=True))
    finally:
        ray.shutdown()
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < m["mfu"] < 1 for m in metrics)
