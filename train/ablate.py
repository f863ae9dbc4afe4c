"""``crawlsift ablate``: does filtering pay? The same small LM, seed, tokenizer and token budget,
trained once on the raw input and once on the pipeline's kept output, both evaluated on the same
held-out clean text (the kept documents whose id falls in the held-out slice; neither run trains on
them). This is the DCLM / FineWeb way of judging a filter, at a scale a laptop can run.

Writes ``ablation.json`` (both eval losses and perplexities, the budget, the scale) and
``ablation.png`` (both loss curves, eval points marked) in ``output``; each run's own outputs are in
``output/raw`` and ``output/filtered``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from train.lm import LMConfig, prepare, train_lm
from train.models import TrainInputError


def add_ablate_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", action="append", metavar="GLOB", required=True, help="the raw input")
    p.add_argument("--kept", metavar="DIR", help="a finished crawlsift run over the same input (default: run the default recipe now)")
    p.add_argument("--output", metavar="DIR", required=True)
    p.add_argument("--arch", choices=["tiny", "small", "base"], default="tiny")
    p.add_argument("--tokenizer", metavar="PATH", help="tokenizer.json shared by both runs (default: BPE trained on the raw input)")
    p.add_argument("--max-steps", type=int, default=300)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-fraction", type=float, default=0.1, help="share of kept documents held out as the clean eval set")
    p.add_argument("--eval-sequences", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--address", help="join this Ray cluster instead of starting one")
    p.add_argument("--quiet", action="store_true")


def main_from_args(args) -> int:
    from cluster.run import init_ray

    kept = args.kept
    if kept is None:
        kept = str(Path(args.output) / "pipeline")
        from cluster.config import build_config
        from cluster.run import run_pipeline

        config = build_config({}, inputs=args.input, output=kept)
        init_ray(args.address)
        if not args.quiet:
            print(f"crawlsift ablate: filtering the input with the default recipe into {kept}/", file=sys.stderr)
        run_pipeline(config, progress=not args.quiet)
    else:
        init_ray(args.address)
    result = ablate(args.input, kept, args.output, arch=args.arch, tokenizer=args.tokenizer, max_steps=args.max_steps,
                    context=args.context, batch_size=args.batch_size, workers=args.workers, lr=args.lr,
                    eval_fraction=args.eval_fraction, eval_sequences=args.eval_sequences, seed=args.seed, quiet=args.quiet)
    print(format_ablation(result))
    return 0


def kept_files(run_dir: str) -> list[str]:
    kept = Path(run_dir) / "kept"
    files = sorted(str(p) for p in kept.glob("*.parquet"))
    if not files:
        raise TrainInputError(f"--kept {run_dir}: no kept/*.parquet (not a finished crawlsift run)")
    return files


def ablate(raw_input: list[str], run_dir: str, output: str, *, arch: str = "tiny", tokenizer: str | None = None,
           max_steps: int = 300, context: int = 256, batch_size: int = 8, workers: int | None = None, lr: float = 1e-3,
           eval_fraction: float = 0.1, eval_sequences: int = 64, seed: int = 0, quiet: bool = False) -> dict:
    from train.loop import plot_curves, read_jsonl

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    filtered = kept_files(run_dir)
    common = dict(arch=arch, max_steps=max_steps, context=context, batch_size=batch_size, workers=workers, lr=lr,
                  eval_fraction=eval_fraction, eval_sequences=eval_sequences, eval_input=filtered, eval_holdout_only=True,
                  seed=seed, checkpoint_every=max_steps, eval_every=max(1, max_steps // 5), log_every=max(1, max_steps // 30),
                  overwrite=True, quiet=quiet)
    raw_cfg = LMConfig(input=list(raw_input), output=str(out / "raw"), tokenizer=tokenizer, **common)
    raw_prep = prepare(raw_cfg)
    if tokenizer is None:  # one tokenizer for both runs: the one trained on the raw input
        tok_path = out / "tokenizer.json"
        tok_path.write_text(raw_prep.tokenizer_json)
        tokenizer = str(tok_path)
    filt_cfg = LMConfig(input=filtered, output=str(out / "filtered"), tokenizer=tokenizer, **common)
    filt_prep = prepare(filt_cfg)
    results = {}
    for name, cfg, prep in (("raw", raw_cfg, raw_prep), ("filtered", filt_cfg, filt_prep)):
        if not quiet:
            print(f"crawlsift ablate: training on the {name} input", file=sys.stderr)
        results[name] = train_lm(cfg, prepared=prep)
    report = {
        "scale": {"arch": arch, "max_steps": max_steps, "context": context, "batch_size_per_worker": batch_size,
                  "tokens_per_run": results["raw"]["tokens_seen"], "seed": seed},
        "eval": {"text": "held-out kept documents (id hash < eval_fraction), in neither training set",
                 "eval_fraction": eval_fraction, "tokens": results["raw"]["eval_tokens"]},
        "raw": {k: results["raw"][k] for k in ("eval_loss", "perplexity", "tokens_seen", "data_exhausted")},
        "filtered": {k: results["filtered"][k] for k in ("eval_loss", "perplexity", "tokens_seen", "data_exhausted")},
    }
    report["eval_loss_difference"] = report["raw"]["eval_loss"] - report["filtered"]["eval_loss"]
    report["perplexity_ratio_raw_over_filtered"] = math.exp(report["eval_loss_difference"])
    (out / "ablation.json").write_text(json.dumps(report, indent=2))
    series, points = {}, {}
    for name in ("raw", "filtered"):
        m = read_jsonl(str(out / name / "metrics.jsonl"))
        e = read_jsonl(str(out / name / "eval_history.jsonl"))
        series[f"{name}: train loss"] = ([r["step"] for r in m], [r["loss"] for r in m])
        points[f"{name}: eval loss (clean held-out)"] = ([r["step"] for r in e], [r["eval_loss"] for r in e])
    plot_curves(str(out / "ablation.png"), series, points=points, xlabel="step", ylabel="cross-entropy (nats/token)",
                title=f"raw vs filtered, {arch}, {report['raw']['tokens_seen']:,} tokens each")
    return report


def format_ablation(r: dict) -> str:
    lines = [f"{'training data':<14}{'eval loss':>12}{'perplexity':>14}{'tokens':>14}"]
    for name in ("raw", "filtered"):
        x = r[name]
        lines.append(f"{name:<14}{x['eval_loss']:>12.4f}{x['perplexity']:>14.2f}{x['tokens_seen']:>14,}")
    better = "filtered" if r["eval_loss_difference"] > 0 else "raw"
    lines.append(f"eval on {r['eval']['tokens']:,} tokens of held-out kept text; {better} is better by "
                 f"{abs(r['eval_loss_difference']):.4f} nats/token (perplexity ratio raw/filtered {r['perplexity_ratio_raw_over_filtered']:.3f})")
    return "\n".join(lines)
