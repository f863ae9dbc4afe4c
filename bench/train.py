"""``python -m bench.train`` (or ``python -m bench train``): what Ray Train and the Ray Data feed cost.

Three figures on the real crawl (../shared/data/crawl/jsonl) with the shared GPT-NeoX tokenizer:

* ``train lm`` through Ray Train (1 CPU worker, its torch threads set explicitly) in tokens/s, steady
  state (the first logging window, with start-up and the first batches, is left out);
* a bare PyTorch loop on the same model, the same packed batches, optimizer and thread count, in a
  fresh process: the goal is Ray Train >= 0.9x of it;
* the feed alone (Ray Data read + tokenize, rank 0's packer) in tokens/s on the CPU it is given:
  the goal is >= 5x what one trainer consumes.

    python -m bench.train [--steps 60] [--context 256] [--batch-size 8] [--arch tiny] [--json bench/results/train.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _inputs() -> list[str]:
    files = sorted(str(p) for p in (DATA / "crawl" / "jsonl").iterdir())
    if not files:
        sys.exit(f"no crawl data in {DATA / 'crawl' / 'jsonl'}")
    return files


def _bare_loop(model_config: dict, batches, threads: int, lr: float, warm: int) -> dict:
    """The same step as the trainer's (forward, cross-entropy, backward, clip, AdamW, schedule), no Ray."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForCausalLM

    from train.loop import adamw_param_groups, cosine_with_warmup

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig.from_dict(model_config))
    model.train()
    opt = torch.optim.AdamW(adamw_param_groups(model, 0.1), lr=lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, warmup=3, total=len(batches)))
    start, tokens = None, 0
    for i, rows in enumerate(batches):
        if i == warm:
            start = time.perf_counter()
        seq = torch.from_numpy(np.asarray(rows)).long()
        logits = model(input_ids=seq[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), seq[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if i >= warm:
            tokens += seq.shape[0] * (seq.shape[1] - 1)
    return {"tokens_per_s": tokens / (time.perf_counter() - start), "steps_timed": len(batches) - warm}


def _feed_rate(p, context: int, seconds_cap: float = 60.0) -> dict:
    """Ray Data read + tokenize for the whole input, then rank 0's packing, on the feed's CPU."""
    from train.feed import Packer
    from train.lm import build_datasets

    from ray.data import ExecutionOptions, ExecutionResources

    ds = build_datasets(p)["train"]
    # The feed's share of the cluster when training: feed_cpus (1) CPU.
    ds.context.execution_options = ExecutionOptions(resource_limits=ExecutionResources(cpu=1), preserve_order=True)
    packer = Packer(context)
    start = time.perf_counter()
    tokens = docs = 0
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        if batch.num_rows:
            packer.push(batch["tokens"].combine_chunks(), batch["_file"].to_numpy(), batch["_seq"].to_numpy())
            tokens += sum(len(x) for x in batch["tokens"].to_pylist())
            docs += batch.num_rows
        n = packer.available()
        if n:
            packer.take(n)
        if time.perf_counter() - start > seconds_cap:
            break
    elapsed = time.perf_counter() - start
    return {"tokens_per_s": tokens / elapsed, "documents": docs, "tokens": tokens, "seconds": elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--arch", default="tiny")
    parser.add_argument("--json", default="bench/results/train.json")
    args = parser.parse_args(argv)

    import ray

    from train.feed import Cursor, GlobalBatches
    from train.lm import LMConfig, build_datasets, prepare, quiet_data_progress, train_lm

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    quiet_data_progress()
    tokenizer = str(DATA / "tokenizer" / "gpt-neo-test-tokenizer.json")
    log_every = max(1, args.steps // 6)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = LMConfig(input=_inputs(), output=f"{tmp}/lm", tokenizer=tokenizer, arch=args.arch, workers=1, context=args.context,
                       batch_size=args.batch_size, max_steps=args.steps, log_every=log_every, eval_every=args.steps,
                       checkpoint_every=args.steps, quiet=True)
        p = prepare(cfg)
        print(f"bench.train: Ray Train, 1 CPU worker, {args.arch}, context {args.context}, batch {args.batch_size}, "
              f"{args.steps} steps", file=sys.stderr)
        t0 = time.perf_counter()
        train_lm(cfg, prepared=p)
        wall = time.perf_counter() - t0
        metrics = [json.loads(line) for line in Path(f"{tmp}/lm/metrics.jsonl").read_text().splitlines()]
        ray_rate = statistics.median(m["tokens_per_s"] for m in metrics[1:])

        # The bare loop trains on the very batches the feed produced (same order).
        shard = build_datasets(p)["train"].iterator()
        feed = GlobalBatches(shard, args.context, Cursor())
        batches = [feed.next(args.batch_size) for _ in range(args.steps)]
        del feed, shard  # its iterator must not outlive the Ray session
        print("bench.train: bare PyTorch loop, fresh process, 1 thread", file=sys.stderr)
        with get_context("spawn").Pool(1) as pool:
            bare = pool.apply(_bare_loop, (p.model_config, batches, 1, cfg.lr, log_every))
        print("bench.train: the feed alone (Ray Data read + tokenize, packing)", file=sys.stderr)
        feed_rate = _feed_rate(p, args.context)
    ray.shutdown()

    result = {
        "model": args.arch, "context": args.context, "batch_size": args.batch_size, "steps": args.steps,
        "ray_train_tokens_per_s": round(ray_rate, 1),
        "ray_train_wall_s_incl_startup": round(wall, 1),
        "bare_loop_tokens_per_s": round(bare["tokens_per_s"], 1),
        "ray_over_bare": round(ray_rate / bare["tokens_per_s"], 3),
        "feed_tokens_per_s": round(feed_rate["tokens_per_s"], 1),
        "feed_over_trainer": round(feed_rate["tokens_per_s"] / ray_rate, 1),
        "feed_documents": feed_rate["documents"],
        "threads_per_worker": 1,
    }
    from transformers import LlamaConfig, LlamaForCausalLM

    result["parameters"] = sum(x.numel() for x in LlamaForCausalLM(LlamaConfig.from_dict(p.model_config)).parameters())
    print(f"{'path':<44}{'tokens/s':>12}{'ratio':>10}")
    print(f"{'train lm via Ray Train (1 worker, 1 thread)':<44}{ray_rate:>12,.0f}{result['ray_over_bare']:>9.3f}x")
    print(f"{'bare PyTorch loop (same batches, 1 thread)':<44}{bare['tokens_per_s']:>12,.0f}{1:>9.3f}x")
    print(f"{'feed: Ray Data read+tokenize, pack (1 CPU)':<44}{feed_rate['tokens_per_s']:>12,.0f}"
          f"{result['feed_over_trainer']:>9.1f}x the trainer")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
