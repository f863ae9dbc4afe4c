"""One audit end to end: read and check the input (before any work), score the labels, find the
duplicates and leaks, count the coverage, write audit.parquet / audit.json / audit.html and,
when asked, the cleaned set."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from audit.clean import decide, first_in_split, write_clean
from audit.coverage import CoverageConfig, coverage, languages
from audit.leakage import HELD_OUT, LeakConfig, find_duplicates, leaked_rows_to_drop
from audit.noise import NoiseConfig, audit_noise

SPLITS = ("train",) + HELD_OUT


@dataclass
class AuditConfig:
    input: list[str]
    output: str
    label_field: str
    text_field: str = "text"
    split_field: str | None = None
    id_field: str | None = None
    tsv_columns: tuple[str, ...] = ("label", "text")
    label_pattern: str | None = None
    multi_label: str = "drop"
    label_map: dict = field(default_factory=dict)
    write_clean: str | None = None
    fix: str = "drop"
    fix_min_prob: float = 0.0
    fix_scope: str = "large"
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    leak: LeakConfig = field(default_factory=LeakConfig)
    coverage: CoverageConfig = field(default_factory=CoverageConfig)

    @classmethod
    def from_args(cls, a) -> "AuditConfig":
        from audit.cli import AuditInputError, _json_arg

        if a.encoder:
            from train.models import check_model_dir

            check_model_dir(a.encoder, kind="encoder", flag="--encoder")
        if a.finetune_epochs < 1:
            raise AuditInputError(f"--finetune-epochs {a.finetune_epochs}: needs at least 1")
        return cls(
            input=a.input, output=a.output, label_field=a.label_field, text_field=a.text_field, split_field=a.split_field,
            id_field=a.id_field, tsv_columns=tuple(s.strip() for s in a.tsv_columns.split(",")),
            label_pattern=a.label_pattern, multi_label=a.multi_label, label_map=_json_arg(a.label_map, "--label-map"),
            write_clean=a.write_clean, fix=a.fix, fix_min_prob=a.fix_min_prob, fix_scope=a.fix_scope,
            noise=NoiseConfig(folds=a.folds, model=a.model, rule=a.rule, score=a.score, seed=a.seed, progress=not a.quiet,
                              encoder_path=a.encoder, finetune_epochs=a.finetune_epochs),
            coverage=CoverageConfig(langid=not a.no_langid),
        )


def load(c: AuditConfig):
    """The labeled rows as a Polars frame (id, source_id, text, label, split) and the rows left
    out at read time by reason. Raises AuditInputError / TrainInputError (one line) on bad input."""
    from audit.cli import AuditInputError
    from train.labeled import LabelSpec, read_labeled

    spec = LabelSpec(text_field=c.text_field, label_field=c.label_field, split_field=c.split_field, id_field=c.id_field,
                     tsv_columns=c.tsv_columns, label_pattern=c.label_pattern, multi_label=c.multi_label,
                     label_map=c.label_map)
    data = read_labeled(c.input, spec)
    frame = pl.from_arrow(data.table)
    classes = frame["label"].unique().sort().to_list()
    if len(classes) < 2:
        raise AuditInputError(f"--label-field {c.label_field}: only one class ({classes[0]!r}) in {frame.height} rows; "
                              "an audit needs two or more")
    if c.split_field:
        bad = frame.filter(pl.col("split").is_null() | ~pl.col("split").is_in(SPLITS))["split"].unique().to_list()
        if bad:
            shown = ", ".join(repr(b) for b in bad[:3])
            raise AuditInputError(f"--split-field {c.split_field}: value {shown} is not one of {' / '.join(SPLITS)}")
    if c.noise.folds > frame.height:
        raise AuditInputError(f"--folds {c.noise.folds}: more folds than the {frame.height} labeled rows")
    return frame, data.dropped, classes


def run_audit(c: AuditConfig) -> dict:
    timings = {}
    t = time.monotonic()
    frame, dropped, classes = load(c)
    out = Path(c.output)
    out.mkdir(parents=True, exist_ok=True)
    timings["read_s"] = time.monotonic() - t

    t = time.monotonic()
    texts = frame["text"].to_list()
    y = frame["label"].cast(pl.Enum(classes)).to_physical().to_numpy().astype(np.int64)
    noise = audit_noise(texts, y, len(classes), c.noise)
    timings["noise_s"] = time.monotonic() - t

    t = time.monotonic()
    splits = frame["split"].to_numpy() if c.split_field else None
    labels = frame["label"].to_numpy()
    dup = find_duplicates(frame["text"].to_arrow(), splits, labels, c.leak)
    timings["leakage_s"] = time.monotonic() - t

    t = time.monotonic()
    if c.coverage.langid:
        lang, lang_score = languages(frame["text"].to_arrow())
        frame = frame.with_columns(pl.Series("lang", lang, pl.String), pl.Series("lang_score", lang_score))
    cov, frame = coverage(frame, dropped, c.coverage)
    timings["coverage_s"] = time.monotonic() - t

    classes_arr = np.array(classes, dtype=object)
    frame = frame.with_columns(
        pl.Series("suggested_label", classes_arr[noise.suggested].tolist(), pl.String),
        pl.Series("label_quality", noise.label_quality),
        pl.Series("given_label_prob", noise.probs[np.arange(len(y)), y]),
        pl.Series("suggested_label_prob", noise.probs.max(axis=1)),
        pl.Series("is_label_issue", noise.is_label_issue),
        pl.Series("duplicate_cluster", np.where(dup.cluster >= 0, dup.cluster, -1)).replace(-1, None),
        pl.Series("exact_duplicate_of", np.where(dup.exact_of != np.arange(len(y)), dup.exact_of, -1)).replace(-1, None),
        pl.Series("is_leak", dup.is_leak),
        pl.Series("label_conflict", dup.label_conflict),
    )
    drop_leak = leaked_rows_to_drop(np.where(dup.cluster >= 0, dup.cluster, np.arange(len(y))), dup.is_leak,
                                    splits if splits is not None else np.full(len(y), "train", dtype=object))
    first = first_in_split(dup.cluster, frame["split"].to_list(), frame["label"].to_list())
    frame = frame.with_columns(pl.Series("drop_leak", drop_leak), pl.Series("first_in_split", first))
    decided = decide(frame, c.fix, c.fix_min_prob, c.fix_scope)
    frame = frame.with_columns(decided["action"].alias("clean_action"), decided["reason"].alias("clean_reason"))

    summary = _summary(frame, dup, noise, cov, classes, dropped, c)
    summary["timings"] = {k: round(v, 2) for k, v in timings.items()}
    if c.write_clean:
        summary["clean"] = write_clean(decided, frame.select("id", "source_id", "text"), dropped, c.write_clean)
    columns = ["id", "source_id", "label", "suggested_label", "label_quality", "is_label_issue", "given_label_prob",
               "suggested_label_prob", "duplicate_cluster", "exact_duplicate_of", "is_leak", "label_conflict", "split",
               "words", "too_short"] + (["lang", "lang_score", "lang_outlier"] if "lang" in frame.columns else []) + [
               "clean_action", "clean_reason"]
    # Cluster numbers are row positions; as ids they survive a reorder of the file.
    ids = frame["id"].to_numpy().astype(object)
    frame = frame.with_columns(
        pl.Series("duplicate_cluster", np.where(dup.cluster >= 0, ids[np.maximum(dup.cluster, 0)], None).tolist(), pl.String),
        pl.Series("exact_duplicate_of", np.where(dup.exact_of != np.arange(len(y)), ids[dup.exact_of], None).tolist(), pl.String),
    )
    frame.select(columns).write_parquet(out / "audit.parquet")
    (out / "audit.json").write_text(json.dumps(summary, indent=2, default=_jsonable) + "\n")
    from audit.page import write_page

    write_page(out / "audit.html", frame, summary, dup, classes)
    return summary


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    raise TypeError(type(v).__name__)


def _summary(frame: pl.DataFrame, dup, noise, cov: dict, classes: list, dropped: dict, c: AuditConfig) -> dict:
    n = frame.height
    given = frame["label"].to_list()
    sugg = frame["suggested_label"].to_list()
    confusion = [[0] * len(classes) for _ in classes]
    index = {k: i for i, k in enumerate(classes)}
    for g, s in zip(given, sugg):
        confusion[index[g]][index[s]] += 1
    per_class_issues = frame.group_by("label").agg(pl.col("is_label_issue").sum().alias("issues"),
                                                   pl.col("label_quality").mean().alias("mean_quality")).sort("label")
    leak_pairs = dup.pairs["leak"]
    return {
        "rows": n,
        "input": c.input,
        "left_out_at_read": dict(dropped),
        "classes": classes,
        "noise": {
            "model": c.noise.model, "folds": c.noise.folds, "rule": c.noise.rule, "score": c.noise.score,
            "issues": int(noise.is_label_issue.sum()), "issue_share": float(noise.is_label_issue.mean()),
            "oof_accuracy": noise.oof_accuracy,
            "per_class": per_class_issues.to_dicts(),
            "confusion_given_vs_suggested": {"labels": classes, "matrix": confusion},
        },
        "leakage": {
            "verify_jaccard": c.leak.verify_jaccard,
            "exact_pairs": len(dup.pairs["exact"][0]),
            "near_pairs": dup.near_edges,
            "clusters": int(len(np.unique(dup.cluster[dup.cluster >= 0]))),
            "duplicate_rows": int((dup.cluster >= 0).sum()),
            "leaked_rows": int(dup.is_leak.sum()),
            "leak_pairs": int(len(leak_pairs[0])),
            "label_conflict_rows": int(dup.label_conflict.sum()),
            "rows_dropped_for_leak": int(frame["drop_leak"].sum()),
        },
        "coverage": cov,
    }
