"""``crawlsift train lm``: a causal LM trained on filtered text with Ray Train (``TorchTrainer``).

One worker per GPU (DDP; FSDP2 with ``fsdp: true``), or CPU workers (gloo, fp32) where there is no
GPU. The data arrives through the feed in ``train/feed.py`` (Ray Data -> rank 0 -> broadcast), so
every rank takes the same steps and a checkpoint resumes at the exact next token.

Outputs in ``output``: ``metrics.jsonl`` (step, loss, lr, tokens_seen, tokens_per_s, world_size;
``mfu`` on GPU), ``eval.json`` (eval_loss, perplexity, step), ``model/`` (a Hugging Face directory
``AutoModelForCausalLM.from_pretrained`` loads, with its tokenizer), ``loss.png``, and
``checkpoints/`` (Ray Train's storage: model, optimizer, scheduler, step and data cursor).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from train.models import TrainInputError

DEFAULT_TOKENIZER_CHARS = 20_000_000


@dataclass
class LMConfig:
    """Every option of ``train lm`` (the CLI flags and the ``train:`` config keys are these names).

    Optimizer defaults follow common small-LM practice (nanoGPT / Llama): AdamW betas (0.9, 0.95),
    weight decay 0.1 on matrices, gradient clipping at 1.0, linear warm-up then cosine decay to 10%
    of the peak learning rate."""

    input: list[str] = field(default_factory=list)
    output: str = ""
    model: str | None = None  # a local HF causal-LM directory; None = build ``arch`` from scratch
    arch: str = "tiny"
    tokenizer: str | None = None  # tokenizer.json path/dir; None = the model's, else trained on the input
    tokenizer_vocab: int = 8192  # vocabulary of a tokenizer trained on the input
    format: str = "auto"
    text_field: str = "auto"
    workers: int | None = None  # None: one per GPU, or 1 CPU worker
    device: str = "auto"
    feed_cpus: float | None = None
    cpus_per_worker: float | None = None
    fsdp: bool = False
    compile: bool = False
    max_steps: int = 200
    max_epochs: int | None = None  # None: repeat the data until max_steps
    context: int = 256
    batch_size: int = 8  # sequences per worker per micro-batch
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int | None = None  # None: 5% of max_steps
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    eval_every: int = 50
    eval_fraction: float = 0.02
    eval_sequences: int = 32
    eval_input: list[str] | None = None
    eval_holdout_only: bool = False  # with eval_input: only its held-out slice (the ablation's clean eval text)
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    max_failures: int = 0
    resume: bool = False
    overwrite: bool = False
    quiet: bool = False
    # In a pipeline's train: section: train on the kept stream as the filters produce it (a fresh run),
    # rather than on kept/ after they finish.
    live: bool = True


def config_from(data: dict, where: str = "train") -> LMConfig:
    """An LMConfig from a mapping (YAML ``train:`` section or ``--config``), names checked."""
    fields = {f.name: f for f in dataclasses.fields(LMConfig)}
    bad = sorted(set(data) - set(fields))
    if bad:
        raise TrainInputError(f"unknown key {bad[0]!r} in {where} (expected one of: {', '.join(fields)})")
    values = dict(data)
    for key in ("input", "eval_input"):
        if isinstance(values.get(key), str):
            values[key] = [values[key]]
    return LMConfig(**values)


def section_config(data: dict, run_output: str) -> LMConfig:
    """The ``train:`` section of a pipeline config, checked before the pipeline starts: the input is
    the run's kept output, the output defaults to ``<run output>/train``."""
    from train.models import check_model_dir, load_tokenizer_file

    if not isinstance(data, dict):
        raise TrainInputError(f"train must be a mapping of train lm options, got {type(data).__name__}")
    if "input" in data:
        raise TrainInputError("train.input: the train section trains on the run's kept output; remove input")
    c = config_from({**data, "input": [f"{run_output}/kept"], "output": data.get("output") or f"{run_output}/train"},
                    where="train")
    check_options(c)
    if c.model:
        check_model_dir(c.model, "causal")
    if c.tokenizer:
        load_tokenizer_file(c.tokenizer)
    return c


def check_options(c: LMConfig) -> None:
    """Types and ranges of every option (no file is opened)."""
    positive = ("max_steps", "context", "batch_size", "grad_accum", "log_every", "eval_every", "eval_sequences",
                "checkpoint_every", "keep_checkpoints", "tokenizer_vocab")
    for name in positive:
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise TrainInputError(f"{name} must be a positive integer, got {v!r}")
    if not 0 <= c.eval_fraction < 1:
        raise TrainInputError(f"eval_fraction must be in [0, 1), got {c.eval_fraction}")
    if c.lr <= 0:
        raise TrainInputError(f"lr must be > 0, got {c.lr}")
    if not c.input:
        raise TrainInputError("no input: give --input GLOB")
    if not c.output:
        raise TrainInputError("no output: give --output DIR")
    if c.eval_fraction == 0 and not c.eval_input:
        raise TrainInputError("eval_fraction 0 needs --eval-input: there is nothing to evaluate on")


# ---------------------------------------------------------------------------------------------
# Driver side: validate everything, then start Ray Train.


@dataclass
class Prepared:
    config: LMConfig
    files: list
    eval_files: list | None
    spec: object
    tokenizer_json: str
    eos_id: int
    vocab_size: int
    model_config: dict | None  # for a from-scratch model (LlamaConfig.to_dict())
    resume_from: str | None
    resume_state: dict | None
    fingerprint: str


def _input_fingerprint(files) -> str:
    body = json.dumps([[f.path, f.size] for f in files])
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def preflight_documents(files, spec, *, what: str = "input", per_file: int = 1000, max_files: int = 8) -> int:
    """Documents found in the first records of the first files: TrainInputError when there are none
    (no text column, or nothing readable), before any Ray work."""
    from ingest.readers import read_file

    found, no_text = 0, None
    for f in files[:max_files]:
        for batch in read_file(f, spec, per_file):
            reasons = batch["rejected_by"].to_pylist()
            found += sum(r is None and t is not None for r, t in zip(reasons, batch["text"].to_pylist()))
            details = batch["_detail"].to_pylist()
            for r, d in zip(reasons, details):
                if r == "unreadable.no_text" and no_text is None:
                    no_text = f"{f.path}: {d}"
            break  # the first batch of each file is enough to tell
        if found:
            return found
    if no_text:
        raise TrainInputError(f"{what} has no text column: {no_text} (set --text-field)")
    raise TrainInputError(f"{what} holds no readable documents ({len(files)} file(s), e.g. {files[0].path})")


def _resolve_files(patterns, c: LMConfig, what: str):
    from ingest.readers import InputError, InputSpec, resolve_inputs

    try:
        files = resolve_inputs(list(patterns))
    except InputError as exc:
        raise TrainInputError(str(exc)) from None
    if not files:
        raise TrainInputError(f"{what} {patterns[0]}: no files")
    spec = InputSpec(paths=tuple(patterns), format=c.format, text_field=c.text_field)
    preflight_documents(files, spec, what=f"{what} {patterns[0]}")
    return files, spec


def _train_tokenizer(files, spec, c: LMConfig):
    from ingest.readers import read_file
    from train.feed import in_holdout
    from train.models import train_bpe

    def texts():
        budget = DEFAULT_TOKENIZER_CHARS
        for f in files:
            for batch in read_file(f, spec, 1000):
                ok = [r is None and t is not None for r, t in zip(batch["rejected_by"].to_pylist(), batch["text"].to_pylist())]
                held = in_holdout(batch["id"].combine_chunks(), c.eval_fraction)
                for text, good, h in zip(batch["text"].to_pylist(), ok, held):
                    if good and not h:
                        yield text
                        budget -= len(text)
                        if budget <= 0:
                            return

    return train_bpe(texts(), vocab_size=c.tokenizer_vocab)


def prepare(c: LMConfig, live_files=None, live_spec=None) -> Prepared:
    """Everything that can be wrong is found here, before Ray starts: one TrainInputError line.
    ``live_files``: the pipeline's raw inputs when training on its live kept stream (the kept output
    does not exist yet; a tokenizer to train comes from the raw text)."""
    from train.loop import RunDir, latest_checkpoint_in
    from train.models import (check_model_dir, eos_id_of, llama_config, load_tokenizer_file, model_context_limit)

    check_options(c)
    run = RunDir(c.output)
    ckpt_root = f"{c.output.split('?')[0].rstrip('/')}/checkpoints"
    resume_from = resume_state = None
    try:
        found = latest_checkpoint_in(run)
    except OSError as exc:
        raise TrainInputError(f"--output {c.output}: cannot be reached ({str(exc).splitlines()[0][:160]})") from None
    if c.resume:
        if found is None:
            raise TrainInputError(f"--resume: no checkpoint in {ckpt_root}")
        resume_from, resume_state = found
        if resume_state.get("mode") == "live":
            raise TrainInputError(f"the checkpoints in {ckpt_root} were taken on a pipeline's live kept stream, whose "
                                  "positions do not map onto kept/; set overwrite: true to train again from kept/")
    elif found is not None and not c.overwrite:
        raise TrainInputError(f"{c.output} holds a training run; use --resume to continue it or --overwrite to replace it")

    model_cfg = None
    if c.model:
        model_cfg = check_model_dir(c.model, "causal")
        limit = model_context_limit(model_cfg)
        if limit is not None and c.context > limit:
            raise TrainInputError(f"--context {c.context} is larger than the model's {limit} positions ({c.model})")
    elif c.arch not in ("tiny", "small", "base"):
        raise TrainInputError(f"--arch {c.arch!r}: expected tiny, small or base")

    if live_files is not None:
        files, spec = live_files, live_spec
    else:
        files, spec = _resolve_files(c.input, c, "--input")
    eval_files = None
    if c.eval_input:
        eval_files, _ = _resolve_files(c.eval_input, c, "--eval-input")

    if c.tokenizer:
        tok = load_tokenizer_file(c.tokenizer)
    elif c.model and (Path(c.model) / "tokenizer.json").is_file():
        tok = load_tokenizer_file(c.model)
    elif resume_from and run.pull("tokenizer/tokenizer.json"):
        tok = load_tokenizer_file(run.local("tokenizer"))
    else:
        tok = None
    eos_id = eos_id_of(tok) if tok is not None else None
    if tok is None:
        if not c.quiet:
            print(f"crawlsift: training a {c.tokenizer_vocab:,}-token BPE tokenizer on the input", file=sys.stderr)
        tok = _train_tokenizer(files, spec, c)
        eos_id = eos_id_of(tok)
    vocab = tok.get_vocab_size(with_added_tokens=True)

    built = None
    if c.model:
        model_vocab = model_cfg.get("vocab_size")
        if isinstance(model_vocab, int) and vocab > model_vocab:
            raise TrainInputError(f"the tokenizer has {vocab:,} tokens but the model's vocabulary is {model_vocab:,}")
    else:
        # Round the embedding up to a multiple of 64 (faster matmuls; unused rows cost nothing).
        built = llama_config(c.arch, int(math.ceil(vocab / 64) * 64), c.context, eos_id).to_dict()

    fingerprint = _input_fingerprint(files)
    if resume_state and live_files is None and resume_state.get("input_fingerprint") not in (None, fingerprint):
        raise TrainInputError("--resume: the input files differ from the checkpointed run's (paths or sizes)")
    return Prepared(c, files, eval_files, spec, tok.to_str(), eos_id, vocab, built, resume_from, resume_state, fingerprint)


def quiet_data_progress() -> None:
    """Ray Data's per-operator progress bars would interleave with the trainer's own progress line."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def cluster_shape() -> dict:
    """Total CPUs and GPUs, and the fewest CPUs per GPU on any GPU node (what a GPU worker may ask for)."""
    import ray

    res = ray.cluster_resources()
    ratios = [n["Resources"].get("CPU", 0) / n["Resources"]["GPU"] for n in ray.nodes()
              if n.get("Alive") and n["Resources"].get("GPU", 0) > 0]
    return {"cluster_cpus": float(res.get("CPU", 1)), "cluster_gpus": float(res.get("GPU", 0)),
            "cpus_per_gpu": min(ratios) if ratios else None}


def build_datasets(p: Prepared, start=None) -> dict:
    from train.feed import Cursor, token_dataset

    c = p.config
    tok_args = dict(tokenizer_json=p.tokenizer_json, eos_id=p.eos_id)
    datasets = {"train": token_dataset(p.files, p.spec, part="train", holdout=c.eval_fraction, **tok_args)}
    if p.eval_files:
        part = "eval" if c.eval_holdout_only else "all"
        datasets["eval"] = token_dataset(p.eval_files, p.spec, part=part, holdout=c.eval_fraction, **tok_args)
    else:
        datasets["eval"] = token_dataset(p.files, p.spec, part="eval", holdout=c.eval_fraction, **tok_args)
    if start is not None and start != Cursor(epoch=start.epoch):
        datasets["train_resume"] = token_dataset(p.files, p.spec, part="train", holdout=c.eval_fraction, start=start, **tok_args)
    return datasets


def train_live(c: LMConfig, kept_stream, *, raw_files, spec, run_output: str) -> dict:
    """``train lm`` on a pipeline's kept stream (the final segment's sink passes kept documents on):
    tokenized in the stream, trained on as it arrives; held-out documents of the stream are the eval
    set unless ``eval_input`` is given; epochs after the first read the finished kept/."""
    from train.feed import TokenizeDocuments, token_dataset

    p = prepare(c, live_files=raw_files, live_spec=spec)
    tok = TokenizeDocuments(p.tokenizer_json, p.eos_id, part="all", holdout=c.eval_fraction, mark_holdout=True)
    datasets = {"train": kept_stream.map_batches(tok, batch_size=None, batch_format="pyarrow", zero_copy_batch=True)}
    if p.eval_files:
        part = "eval" if c.eval_holdout_only else "all"
        datasets["eval"] = token_dataset(p.eval_files, p.spec, p.tokenizer_json, p.eos_id, part=part, holdout=c.eval_fraction)
    return train_lm(c, datasets=datasets, prepared=p, live_kept_dir=f"{run_output}/kept")


def train_lm(c: LMConfig, *, datasets: dict | None = None, prepared: Prepared | None = None,
             live_kept_dir: str | None = None) -> dict:
    """Run the job on the current Ray (started if needed); returns the final eval record.
    ``datasets`` replaces the input's token datasets (``train_live``: a pipeline run's kept stream,
    whose later epochs come from ``live_kept_dir``)."""
    import ray
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from train.feed import Cursor
    from train.loop import plan_workers, plot_curves, read_jsonl

    p = prepared or prepare(c)
    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level="ERROR", logging_config=ray.LoggingConfig(log_level="ERROR"))
    quiet_data_progress()
    plan = plan_workers(c.workers, c.device, feed_cpus=c.feed_cpus, cpus_per_worker=c.cpus_per_worker, **cluster_shape())
    start = Cursor.from_dict(p.resume_state["cursor"]) if p.resume_state else None
    if datasets is None:
        datasets = build_datasets(p, start)
    from train.loop import RunDir

    run = RunDir(c.output)
    out = Path(run.local())  # the run directory, or the local working copy of a remote one
    out.mkdir(parents=True, exist_ok=True)
    if c.overwrite and not c.resume:
        for sub in ("checkpoints", "model"):
            run.delete(sub)
    tok_dir = out / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file() or not c.resume:
        from tokenizers import Tokenizer

        from train.models import save_hf_tokenizer

        tok_dir.mkdir(exist_ok=True)
        save_hf_tokenizer(Tokenizer.from_str(p.tokenizer_json), tok_dir)
        run.push("tokenizer")

    loop_config = {
        "cfg": dataclasses.asdict(c),
        "output": run.uri if run.remote else str(out),
        "model_config": p.model_config,
        "tokenizer_json": p.tokenizer_json,
        "eos_id": p.eos_id,
        "resume_from": p.resume_from,
        "fingerprint": p.fingerprint,
        "threads": plan.threads_per_worker,
        "files": [(f.index, f.path, f.size) for f in p.files],
        "spec": dataclasses.asdict(p.spec),
        "live_kept_dir": live_kept_dir,
        "live_eval": bool(live_kept_dir) and "eval" not in datasets,
    }
    if not c.quiet:
        print(f"crawlsift: train lm on {len(p.files)} file(s), {plan.describe()}"
              + (f"; resuming at step {p.resume_state['step']}" if p.resume_state else ""), file=sys.stderr)
    trainer = TorchTrainer(
        lm_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=plan.workers, use_gpu=plan.use_gpu,
                                     resources_per_worker={"CPU": plan.cpus_per_worker, **({"GPU": 1} if plan.use_gpu else {})}),
        run_config=RunConfig(
            name=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
            **run.ray_storage(),
            checkpoint_config=CheckpointConfig(num_to_keep=c.keep_checkpoints),
            # A live stream cannot be replayed from a cursor: a restarted group would re-run the filters.
            failure_config=FailureConfig(max_failures=0 if live_kept_dir else c.max_failures),
        ),
        datasets=datasets,
        # Unsplit: only rank 0 reads (and broadcasts), in one deterministic order.
        dataset_config=DataConfig(datasets_to_split=[], execution_options=ExecutionOptions(preserve_order=True)),
    )
    trainer.fit()

    for name in ("metrics.jsonl", "eval_history.jsonl", "eval.json"):
        run.pull(name)
    metrics = read_jsonl(str(out / "metrics.jsonl"))
    evals = read_jsonl(str(out / "eval_history.jsonl"))
    if metrics:
        plot_curves(str(out / "loss.png"),
                    {"train loss": ([m["step"] for m in metrics], [m["loss"] for m in metrics])},
                    points={"eval loss": ([e["step"] for e in evals], [e["eval_loss"] for e in evals])} if evals else None,
                    xlabel="step", ylabel="cross-entropy (nats/token)", title="crawlsift train lm")
        run.push("loss.png")
    final = json.loads((out / "eval.json").read_text())
    if not c.quiet:
        shown = "no eval text" if final["eval_loss"] is None else \
            f"eval loss {final['eval_loss']:.4f}, perplexity {final['perplexity']:.2f}"
        where = f"{c.output.split('?')[0].rstrip('/')}/model" if run.remote else out / "model"
        print(f"crawlsift: step {final['step']}: {shown}; model in {where}", file=sys.stderr)
    return final


# ---------------------------------------------------------------------------------------------
# Worker side


def _build_model(config: dict):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    cfg = config["cfg"]
    torch.manual_seed(cfg["seed"])
    if cfg["model"]:
        return AutoModelForCausalLM.from_pretrained(cfg["model"], torch_dtype=torch.float32, local_files_only=True)
    mc = LlamaConfig.from_dict(config["model_config"])
    mc._attn_implementation = "sdpa"
    return LlamaForCausalLM(mc)


def _flops_per_token(model, context: int) -> float:
    from train.loop import lm_flops_per_token

    mc = model.config
    n = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel()
    return lm_flops_per_token(n, mc.num_hidden_layers, mc.hidden_size, context, embedding_params=emb)


def lm_worker(config: dict) -> None:
    import numpy as np
    import ray.train
    import ray.train.torch
    import torch
    import torch.nn.functional as F
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                         set_state_dict)

    from ingest.readers import InputFile, InputSpec
    from train.feed import Cursor, GlobalBatches, collect_sequences, token_dataset
    from train.loop import (MetricsLog, RunDir, adamw_param_groups, fetch_checkpoint, all_reduce, broadcast_rows,
                            cosine_with_warmup, peak_flops, read_checkpoint, report_checkpoint, quiet_worker_logs, say, set_threads, world,
                            write_checkpoint)

    cfg = config["cfg"]
    run = RunDir(config["output"])
    out = run.local()
    set_threads(config["threads"])
    quiet_worker_logs()
    rank, size = world()
    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    model = _build_model(config)
    flops_per_token = _flops_per_token(model, cfg["context"])
    model.to(device)
    if cfg["fsdp"] and size > 1:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if on_gpu else None
        kwargs = {"mp_policy": mp} if mp else {}
        for layer in model.model.layers:
            fully_shard(layer, **kwargs)
        fully_shard(model, **kwargs)
        wrapped = model
    elif size > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if on_gpu else None)
    else:
        wrapped = model
    optimizer = torch.optim.AdamW(adamw_param_groups(model, cfg["weight_decay"]), lr=cfg["lr"], betas=(0.9, 0.95),
                                  eps=1e-8, fused=on_gpu)
    warmup = cfg["warmup_steps"] if cfg["warmup_steps"] is not None else max(1, int(0.05 * cfg["max_steps"]))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, warmup=warmup, total=cfg["max_steps"], min_ratio=cfg["min_lr_ratio"]))

    # Where to start: a checkpoint of this run (a restart after a failure) or the one --resume named.
    step, tokens_seen, cursor = 0, 0, Cursor()
    ckpt = ray.train.get_checkpoint()
    restarted = ckpt is not None
    ckpt_dir = None
    if ckpt is not None:
        ckpt_dir = ckpt.to_directory()
    elif config["resume_from"]:
        ckpt_dir = fetch_checkpoint(run, config["resume_from"])
    if ckpt_dir:
        state, model_state, opt = read_checkpoint(ckpt_dir)
        set_state_dict(wrapped, optimizer, model_state_dict=model_state, optim_state_dict=opt["optimizer"],
                       options=StateDictOptions(full_state_dict=True, strict=True))
        scheduler.load_state_dict(opt["scheduler"])
        step, tokens_seen, cursor = state["step"], state["tokens_seen"], Cursor.from_dict(state["cursor"])

    context = cfg["context"]
    per_rank = cfg["batch_size"]
    global_rows = per_rank * size
    # Live runs without eval text fill the eval set from the stream's held-out documents as they pass.
    live_eval = config["live_eval"]
    feed = None
    if rank == 0:
        full = ray.train.get_dataset_shard("train")
        resume_shard = None
        if restarted and cursor != Cursor(epoch=cursor.epoch):
            # A restart inside this run: the driver's datasets start elsewhere, so build the cursor's own.
            files = [InputFile(*f) for f in config["files"]]
            spec = InputSpec(**{**config["spec"], "paths": tuple(config["spec"]["paths"])})
            resume_shard = token_dataset(files, spec, config["tokenizer_json"], config["eos_id"], part="train",
                                         holdout=cfg["eval_fraction"], start=cursor).iterator()
        elif not restarted and config["resume_from"]:
            try:
                resume_shard = ray.train.get_dataset_shard("train_resume")
            except KeyError:
                resume_shard = None
        feed = GlobalBatches(full, context, cursor, resume_shard=resume_shard, max_epochs=cfg["max_epochs"],
                             next_epoch=_kept_epoch(config, cfg) if config["live_kept_dir"] else None,
                             eval_limit=cfg["eval_sequences"] if live_eval else 0)
        eval_rows = None if live_eval else collect_sequences(ray.train.get_dataset_shard("eval"), context, cfg["eval_sequences"])
    else:
        eval_rows = None
    if not live_eval:
        eval_rows = broadcast_rows(eval_rows, context + 1, device)

    if rank == 0 and ckpt_dir:
        run.pull("metrics.jsonl")
        run.pull("eval_history.jsonl")
    metrics_log = MetricsLog(os.path.join(out, "metrics.jsonl"), resume_step=step if ckpt_dir else None) if rank == 0 else None
    eval_log = MetricsLog(os.path.join(out, "eval_history.jsonl"), resume_step=step if ckpt_dir else None) if rank == 0 else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu else torch.autocast("cpu", enabled=False)
    forward = torch.compile(wrapped) if cfg["compile"] and on_gpu else wrapped
    peak = peak_flops(torch.cuda.get_device_name(device)) if on_gpu else None

    def loss_of(rows: np.ndarray):
        seq = torch.from_numpy(rows).to(device, dtype=torch.long, non_blocking=True)
        with autocast:
            logits = forward(input_ids=seq[:, :-1]).logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), seq[:, 1:].reshape(-1))

    def evaluate() -> dict:
        rows = broadcast_rows(feed.eval_rows() if rank == 0 else None, context + 1, device) if live_eval else eval_rows
        if rows is None or len(rows) == 0:
            return {"step": step, "eval_loss": None, "perplexity": None, "eval_tokens": 0}
        # Every rank runs the same number of forward passes (FSDP and DDP forwards are collective):
        # equal slices, the last padded with weight-0 rows.
        share = -(-len(rows) // size)
        weights = np.zeros(share * size, dtype=np.float64)
        weights[: len(rows)] = 1.0
        padded = np.concatenate([rows, np.repeat(rows[:1], share * size - len(rows), axis=0)])
        mine, mine_w = padded[rank * share: (rank + 1) * share], weights[rank * share: (rank + 1) * share]
        wrapped.eval()
        total = count = 0.0
        with torch.no_grad():
            for i in range(0, share, per_rank):
                seq = torch.from_numpy(mine[i: i + per_rank]).to(device, dtype=torch.long)
                with autocast:
                    logits = forward(input_ids=seq[:, :-1]).logits
                per_row = F.cross_entropy(logits.float().transpose(1, 2), seq[:, 1:], reduction="none").sum(dim=1)
                w = torch.from_numpy(mine_w[i: i + per_rank]).to(device)
                total += float((per_row.double() * w).sum())
                count += float(w.sum()) * context
        total, count = all_reduce([total, count], device)
        wrapped.train()
        loss = total / max(count, 1)
        return {"step": step, "eval_loss": loss, "perplexity": math.exp(min(loss, 50)), "eval_tokens": int(count)}

    def checkpoint_state() -> tuple[dict, dict]:
        return get_state_dict(wrapped, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def save(metrics: dict) -> None:
        model_state, optim_state = checkpoint_state()
        state = {"step": step, "tokens_seen": tokens_seen, "cursor": feed.cursor().as_dict() if feed else None,
                 "mode": "live" if config["live_kept_dir"] else "files",
                 "input_fingerprint": config["fingerprint"], "world_size": size, "global_batch": global_rows * cfg["grad_accum"]}
        report_checkpoint(metrics, lambda d: write_checkpoint(d, model_state=model_state, optimizer_state=optim_state,
                                                               scheduler_state=scheduler.state_dict(), state=state), rank)

    wrapped.train()
    window_start, window_tokens = time.perf_counter(), 0
    last_eval = None
    exhausted = False
    while step < cfg["max_steps"] and not exhausted:
        optimizer.zero_grad(set_to_none=True)
        losses = []
        for micro in range(cfg["grad_accum"]):
            rows = broadcast_rows(feed.next(global_rows) if rank == 0 else None, context + 1, device)
            if rows is None:
                exhausted = True
                break
            mine = rows[rank * per_rank: (rank + 1) * per_rank]
            sync = micro == cfg["grad_accum"] - 1 or not hasattr(wrapped, "no_sync")
            ctx_mgr = wrapped.no_sync() if not sync else contextlib.nullcontext()
            with ctx_mgr:
                loss = loss_of(mine)
                (loss / cfg["grad_accum"]).backward()
            losses.append(float(loss.detach()))
        if exhausted and len(losses) < cfg["grad_accum"]:
            break  # a partial step would differ between a resumed and an uninterrupted run
        torch.nn.utils.clip_grad_norm_(wrapped.parameters(), cfg["grad_clip"])
        optimizer.step()
        scheduler.step()
        step += 1
        step_tokens = global_rows * cfg["grad_accum"] * context
        tokens_seen += step_tokens
        window_tokens += step_tokens

        if step % cfg["log_every"] == 0 or step == cfg["max_steps"]:
            (loss_mean,) = all_reduce([sum(losses) / len(losses)], device, mean=True)
            elapsed = time.perf_counter() - window_start
            record = {"step": step, "loss": round(loss_mean, 6), "lr": scheduler.get_last_lr()[0], "tokens_seen": tokens_seen,
                      "tokens_per_s": round(window_tokens / max(elapsed, 1e-9), 1), "world_size": size}
            if peak:
                record["mfu"] = round(flops_per_token * record["tokens_per_s"] / (peak * size), 4)
            window_start, window_tokens = time.perf_counter(), 0
            if rank == 0:
                metrics_log.write(record)
                run.push("metrics.jsonl")
                if not cfg["quiet"]:
                    extra = f" | mfu {record['mfu']:.1%}" if "mfu" in record else ""
                    say(f"step {step}/{cfg['max_steps']} | loss {loss_mean:.4f} | lr {record['lr']:.2e} | "
                        f"{record['tokens_per_s']:,.0f} tokens/s{extra}")
        if step % cfg["eval_every"] == 0 and step != cfg["max_steps"]:
            last_eval = evaluate()
            if rank == 0:
                eval_log.write(last_eval)
                run.push("eval_history.jsonl")
                if not cfg["quiet"] and last_eval["eval_loss"] is not None:
                    say(f"eval at step {step}: loss {last_eval['eval_loss']:.4f}, perplexity {last_eval['perplexity']:.2f}")
        if step % cfg["checkpoint_every"] == 0 and step != cfg["max_steps"]:
            save({"step": step})

    if rank == 0 and config["live_kept_dir"]:
        feed.drain()  # the filters must run to the end and account for every document
    last_eval = evaluate()
    last_eval["tokens_seen"] = tokens_seen
    last_eval["data_exhausted"] = exhausted
    save({"step": step, "eval_loss": last_eval["eval_loss"]})
    full_state = get_model_state_dict(wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    _drop_tied_output(model, full_state)
    if rank == 0:
        eval_log.write(last_eval)
        model_dir = os.path.join(out, "model")
        model.save_pretrained(model_dir, state_dict=full_state, safe_serialization=True)
        from tokenizers import Tokenizer

        from train.models import save_hf_tokenizer

        save_hf_tokenizer(Tokenizer.from_str(config["tokenizer_json"]), model_dir)
        with open(os.path.join(out, "eval.json"), "w") as f:
            json.dump(last_eval, f, indent=2)
        for name in ("model", "eval_history.jsonl", "eval.json"):
            run.push(name)


def _drop_tied_output(model, state: dict) -> None:
    """A tied output projection is the input embedding: FSDP's gathered state holds it as a second
    tensor, which ``save_pretrained`` would write beside the embedding; the saved model ties it again."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return
    output = model.get_output_embeddings()
    name = next((n for n, m in model.named_modules() if m is output), None)
    if name and state.get(f"{name}.weight") is not None:
        state.pop(f"{name}.weight")


def _kept_epoch(config: dict, cfg: dict):
    """Epochs after the live pass: the finished kept/ of the run, tokenized like any input."""

    def shard():
        from ingest.readers import InputSpec, resolve_inputs
        from train.feed import token_dataset

        kept = config["live_kept_dir"]
        return token_dataset(resolve_inputs([kept]), InputSpec(paths=(kept,)), config["tokenizer_json"], config["eos_id"],
                             part="train", holdout=cfg["eval_fraction"]).iterator()

    return shard

