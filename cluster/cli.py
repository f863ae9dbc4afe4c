"""``crawlsift``: the command line.

    crawlsift run [--input GLOB ...] [--output DIR] [--config pipeline.yaml] [--recipe NAME] [--stages a,b,c] [--set S.P=V]
                  [--format jsonl|parquet|warc|wet] [--address ADDR] [--overwrite]
    crawlsift sample --output DIR [--docs N] [--seed S]
    crawlsift stages | crawlsift recipes [NAME]
    crawlsift quality train --positive GLOB... --negative GLOB... --output model.bin
    crawlsift quality bootstrap --run OUT_DIR --output model.bin
    crawlsift train lm --input GLOB --output DIR [--arch tiny|small|base | --model DIR] [--tokenizer PATH] ...
    crawlsift train classifier --input GLOB --label-field NAME --output DIR [--regression] ...
    crawlsift ablate --input GLOB --output DIR [--kept DIR] ...
    crawlsift report OUTPUT_DIR [-o FILE] | crawlsift report --compare RUN_A RUN_B [-o FILE]
    crawlsift export RUN_DIR --format megatron --output PREFIX [--tokenizer tokenizer.json]
    crawlsift audit --input GLOB --label-field NAME --output DIR [...]
    crawlsift bench [...]

Errors in the config or the inputs are one line on stderr and exit status 2, before any work.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cluster.config import ConfigError, build_config, load_yaml, stage_catalogue
from cluster.recipes import DEFAULT_RECIPE, RecipeError, describe_recipe, load_recipe, recipe_names

SAMPLE_DIR = "crawlsift-sample"
SAMPLE_OUTPUT = "crawlsift-out"  # also the default --output
SAMPLE_DOCS = 5000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crawlsift", description="Streaming filters for LLM training data on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline (no arguments: the bundled sample corpus)")
    run.add_argument("--input", action="append", metavar="GLOB", help="input path, glob or URI (repeatable)")
    run.add_argument("--output", metavar="DIR", help="output directory or URI")
    run.add_argument("--config", metavar="YAML", help="pipeline config file")
    run.add_argument("--recipe", metavar="NAME|YAML",
                     help=f"a named recipe ({', '.join(recipe_names())}; default {DEFAULT_RECIPE}) or a recipe file; "
                          "see `crawlsift recipes`")
    run.add_argument("--stages", metavar="A,B,C", help="run these stages with their defaults (overrides the config's and the recipe)")
    run.add_argument("--set", action="append", metavar="STAGE.PARAM=VALUE", dest="settings",
                     help="change one parameter of the recipe's (or --stages') stage, e.g. fineweb.char_duplicates_ratio=0.1 (repeatable)")
    run.add_argument("--format", choices=["auto", "jsonl", "parquet", "warc", "wet", "tsv"], help="input format (default: auto)")
    run.add_argument("--batch-size", type=int, help="documents per batch (default 10000)")
    run.add_argument("--address", help="join this Ray cluster ('auto' or ray://host:10001) instead of starting one")
    run.add_argument("--overwrite", action="store_true", help="discard a previous run in --output instead of resuming it")
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")

    sample = sub.add_parser("sample", help="write the synthetic mixed-quality sample crawl")
    sample.add_argument("--output", required=True, metavar="DIR")
    sample.add_argument("--docs", type=int, default=SAMPLE_DOCS)
    sample.add_argument("--seed", type=int, default=0)

    sub.add_parser("stages", help="list the registered stages and their parameters")
    recipes = sub.add_parser("recipes", help="list the named recipes, or show one (stages, source, differences)")
    recipes.add_argument("name", nargs="?", help="a recipe name or file")

    quality = sub.add_parser("quality", help="train a fastText quality model (train | bootstrap; see --help)")
    quality.add_argument("rest", nargs=argparse.REMAINDER)

    train = sub.add_parser("train", help="train a model on Ray Train: lm | classifier")
    train_sub = train.add_subparsers(dest="job", required=True)
    _add_lm_flags(train_sub.add_parser("lm", help="train a causal LM on filtered text"))
    from train.finetune import add_classifier_flags

    add_classifier_flags(train_sub.add_parser("classifier", help="fine-tune an encoder classifier on labeled text"))

    ablate = sub.add_parser("ablate", help="the same small LM trained on raw vs filtered input, same budget")
    from train.ablate import add_ablate_flags

    add_ablate_flags(ablate)

    from cluster.submit import add_jobs_flags, add_submit_flags

    add_submit_flags(sub.add_parser("submit", help="run a pipeline on a Ray cluster as a detached job (Job Submission API)"))
    add_jobs_flags(sub.add_parser("jobs", help="list | status | logs | stop the cluster's jobs"))

    export = sub.add_parser("export", help="a run's kept documents as tokenised Megatron .bin/.idx shards (see --help)")
    export.add_argument("rest", nargs=argparse.REMAINDER)
    report = sub.add_parser("report", help="rebuild a run's report.html, or --compare two runs (see --help)")
    report.add_argument("rest", nargs=argparse.REMAINDER)

    audit = sub.add_parser("audit", help="audit labeled data: label noise, leakage between splits, imbalance (see --help)")
    audit.add_argument("rest", nargs=argparse.REMAINDER)

    bench = sub.add_parser("bench", help="throughput benchmarks (same as python -m bench)")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _add_lm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", action="append", metavar="GLOB", help="text to train on: a run's kept/ or any input the readers take")
    p.add_argument("--output", metavar="DIR")
    p.add_argument("--config", metavar="YAML", help="train.yaml: the options below by name (flags win)")
    p.add_argument("--model", metavar="DIR", help="a local Hugging Face causal-LM checkpoint to continue from")
    p.add_argument("--arch", choices=["tiny", "small", "base"], help="from scratch: ~7M, ~125M or ~350M parameters")
    p.add_argument("--tokenizer", metavar="PATH", help="tokenizer.json (default: the model's, else one trained on the input)")
    p.add_argument("--eval-input", action="append", metavar="GLOB", help="evaluate on this text instead of a held-out slice")
    p.add_argument("--workers", type=int, help="Ray Train workers (default: one per GPU, else 1)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--max-steps", type=int)
    p.add_argument("--context", type=int, help="tokens per sequence")
    p.add_argument("--batch-size", type=int, help="sequences per worker per micro-batch")
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--fsdp", action="store_true", default=None, help="shard the model with FSDP2 instead of DDP")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model (GPU)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", default=None, help="continue from the last checkpoint in --output")
    p.add_argument("--overwrite", action="store_true", default=None, help="discard a previous run in --output")
    p.add_argument("--address", help="join this Ray cluster instead of starting one")
    p.add_argument("--quiet", action="store_true", default=None)


LM_FLAGS = ("input", "output", "model", "arch", "tokenizer", "eval_input", "workers", "device", "max_steps", "context",
            "batch_size", "grad_accum", "lr", "checkpoint_every", "eval_every", "log_every", "fsdp", "compile", "seed",
            "resume", "overwrite", "quiet")


def _train_lm(args) -> int:
    from cluster.run import init_ray
    from train.lm import config_from, train_lm

    data = load_yaml(args.config) if args.config else {}
    data = data.get("train", data)
    data.update({k: getattr(args, k) for k in LM_FLAGS if getattr(args, k) is not None})
    config = config_from(data, args.config or "flags")
    from train.lm import prepare

    prepared = prepare(config)  # every input error, before Ray starts
    init_ray(args.address)
    train_lm(config, prepared=prepared)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra: list[str] = []
    if argv[:1] in (["bench"], ["quality"], ["audit"], ["report"], ["export"]):  # their own parsers take every following argument
        from audit.cli import main as audit_main
        from bench.__main__ import main as bench_main
        from report.cli import main as report_main
        from train.export import main as export_main
        from train.quality import main as quality_main

        own = {"bench": bench_main, "quality": quality_main, "audit": audit_main, "report": report_main,
               "export": export_main}[argv[0]]
        try:
            return own(argv[1:])
        except ConfigError as exc:
            print(f"crawlsift: error: {exc}", file=sys.stderr)
            return 2
    if argv[:1] == ["submit"] and "--" in argv:  # submit ... -- FLAGS: FLAGS go to the job's command
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = _parser().parse_args(argv)
    args.extra = extra
    from cluster.submit import SubmitError
    from train.models import TrainInputError

    try:
        if args.command == "submit":
            from cluster.submit import submit

            return submit(args)
        if args.command == "jobs":
            from cluster.submit import jobs

            return jobs(args)
        if args.command == "train":
            if args.job == "lm":
                return _train_lm(args)
            from train.finetune import main_from_args

            return main_from_args(args)
        if args.command == "ablate":
            from train.ablate import main_from_args

            return main_from_args(args)
        if args.command == "run":
            return _run(args)
        if args.command == "sample":
            return _sample(args.output, args.docs, args.seed)
        if args.command == "stages":
            print(json.dumps(stage_catalogue(), indent=2, default=str))
            return 0
        if args.command == "recipes":
            return _recipes(args.name)
        if args.command == "quality":
            from train.quality import main as quality_main

            return quality_main(args.rest)
        if args.command == "bench":
            from bench.__main__ import main as bench_main

            return bench_main(args.rest)
    except (ConfigError, TrainInputError, SubmitError) as exc:
        print(f"crawlsift: error: {exc}", file=sys.stderr)
        _exit_now_if_abandoned(2)
        return 2
    except KeyboardInterrupt:
        print("crawlsift: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a model missing on a worker node arrives wrapped by Ray
        line = model_unavailable_line(exc)
        if line is None:
            raise
        print(f"crawlsift: error: {line}; the model must be readable on every node (object storage or the job's "
              "working directory); rerun to resume", file=sys.stderr)
        return 2
    return 0


def _compile_kernels_once(config, say: bool) -> None:
    """First run on a machine: compile the Gopher stages' Numba kernels here, saying so, before Ray
    starts, so the workers load them from Numba's cache instead of compiling silently."""
    from filters.warmup import STAGES_WITH_KERNELS, kernels_cached, warm_up

    if not any(s.name in STAGES_WITH_KERNELS for s in config.stages) or kernels_cached():
        return
    if say:
        print("compiling the Gopher stages' Numba kernels (first run on this machine; cached afterwards) ...",
              file=sys.stderr, flush=True)
    seconds = warm_up()
    if say:
        print(f"kernels compiled in {seconds:.1f}s", file=sys.stderr, flush=True)


def _exit_now_if_abandoned(code: int) -> None:
    """Leave at once when a remote listing that gave no answer is still running (see readers)."""
    from ingest.readers import abandoned_remote_calls

    if abandoned_remote_calls():
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def model_unavailable_line(exc: BaseException) -> str | None:
    """The one line a ``ModelUnavailable`` raised in a worker carries, however Ray wrapped it."""
    from cluster.plan import MODEL_UNAVAILABLE

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if MODEL_UNAVAILABLE in text:
            return text.split(MODEL_UNAVAILABLE, 1)[1].splitlines()[0].strip()
        exc = exc.__cause__ or exc.__context__
    return None


def _recipes(name: str | None) -> int:
    if name:
        try:
            print(describe_recipe(load_recipe(name)))
        except RecipeError as exc:
            raise ConfigError(str(exc)) from None
        return 0
    for n in recipe_names():
        r = load_recipe(n)
        print(f"{n:10} {r.title}{'  [default]' if n == DEFAULT_RECIPE else ''}\n{'':10} {' -> '.join(next(iter(s)) for s in r.stages)}")
    return 0


def _sample(output: str, docs: int, seed: int) -> int:
    from ingest.sample import write_sample

    manifest = write_sample(output, docs=docs, seed=seed)
    print(f"wrote {manifest['documents']:,} documents (+{manifest.get('corrupt_records', 0)} corrupt records) to {output}")
    return 0


def _curve_line(stage) -> str:
    """The LSH S-curve of a MinHash stage: P(a pair of Jaccard s becomes a candidate)."""
    curve = stage.threshold_curve()
    points = {round(j, 2): p for j, p in zip(curve["jaccard"], curve["probability"]) if round(j, 2) in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)}
    shown = ", ".join(f"P({j:g})={p:.3f}" for j, p in points.items())
    return f"{stage.name}: {curve['bands']} bands x {curve['rows']} rows, threshold ~{curve['threshold']:.2f}; {shown}"


def _run(args) -> int:
    from cluster.plan import describe_plan
    from cluster.run import account_table, run_pipeline

    data = load_yaml(args.config) if args.config else {}
    inputs, output = args.input, args.output
    if not args.config and not inputs:
        # No arguments: the bundled sample, generated on first use.
        if not Path(SAMPLE_DIR, "labels.jsonl").exists():
            print(f"generating the sample corpus in {SAMPLE_DIR}/ ...", file=sys.stderr)
            _sample(SAMPLE_DIR, SAMPLE_DOCS, 0)
        inputs = [f"{SAMPLE_DIR}/*.jsonl.gz", f"{SAMPLE_DIR}/*.warc.gz"]
        output = output or SAMPLE_OUTPUT
    if not output and not (data.get("output") or {}).get("path"):
        output = SAMPLE_OUTPUT
        print(f"crawlsift: no --output given; writing to {output}/", file=sys.stderr)
    if args.batch_size is not None:
        data = {**data, "batch_size": args.batch_size}
    config = build_config(
        data,
        inputs=inputs,
        output=output,
        stages=[s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None,
        input_format=args.format,
        address=args.address,
        recipe=args.recipe,
        settings=args.settings,
    )
    if not args.quiet:
        print(
            f"crawlsift: {len(config.files)} input file(s), {sum(f.size for f in config.files) / 1e6:,.1f} MB "
            f"-> {config.output}; {'recipe ' + config.recipe + ', ' if config.recipe else ''}stages: "
            f"{', '.join(s.name for s in config.stages) or '(none)'}",
            file=sys.stderr,
        )
        print("plan: " + " -> ".join(describe_plan(config.stages)), file=sys.stderr)
        for stage in config.stages:
            if hasattr(stage, "threshold_curve"):
                print(_curve_line(stage), file=sys.stderr)
    _compile_kernels_once(config, say=not args.quiet)
    summary = run_pipeline(config, progress=not args.quiet, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(account_table(summary))
        print(f"\noutput: {config.output.rstrip('/')}/kept, rejected, errors.jsonl, summary.json, report.html, report_data.json")
    if config.train is not None and "train" not in summary:  # not trained on the live stream: on kept/ now
        from train.lm import train_lm

        if not args.quiet:
            print(f"crawlsift: training on the kept output -> {config.train.output}", file=sys.stderr)
        summary["train"] = train_lm(config.train)  # same Ray session as the filters
    if config.train is not None and args.json:
        print(json.dumps({"train": summary["train"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
