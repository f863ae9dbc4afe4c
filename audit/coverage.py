"""Imbalance and coverage: counts and shares per class and split, the imbalance ratio, classes too
small to learn, too-short texts, and each class's languages (crawlsift's langid stage, lid.176)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class CoverageConfig:
    """``min_class_rows`` 10: twice the default K of the cross-validation, so that a class
    appears in every training fold at least twice (fewer and its out-of-fold scores come from
    models that hardly saw it). ``min_words`` 5: one full word 5-gram shingle, the unit of the
    near-duplicate search; shorter texts carry too little to classify or compare.
    ``langid_max_chars`` 1,000: the langid stage's own default prefix (filters/langid.py)."""

    min_class_rows: int = 10
    min_words: int = 5
    langid: bool = True
    langid_max_chars: int = 1000


def languages(texts) -> tuple[list[str], np.ndarray]:
    """lid.176's top language and score per text, through the pipeline's langid stage (no
    language rejected: ``languages=None`` only annotates)."""
    from filters.langid import LanguageID

    stage = LanguageID(languages=None)
    langs, scores = stage.identify(texts)
    return langs.to_pylist(), scores


def coverage(frame: pl.DataFrame, dropped_at_read: dict, c: CoverageConfig = CoverageConfig()) -> tuple[dict, pl.DataFrame]:
    """``frame`` has ``label``, ``split`` (may be null), ``text``, and ``lang`` when langid ran.
    Returns (the numbers for audit.json, frame with ``words``, ``too_short``, ``lang_outlier``)."""
    frame = frame.with_columns(pl.col("text").str.split(" ").list.len().alias("_ws"),
                               pl.col("text").str.extract_all(r"\S+").list.len().alias("words"))
    frame = frame.drop("_ws").with_columns((pl.col("words") < c.min_words).alias("too_short"))
    n = frame.height
    per_class = (frame.group_by("label").agg(pl.len().alias("rows"), pl.col("too_short").sum().alias("too_short"))
                 .with_columns((pl.col("rows") / n).alias("share")).sort(["rows", "label"], descending=[True, False]))
    counts = per_class["rows"].to_list()
    out = {
        "rows": n,
        "classes": per_class.height,
        "per_class": per_class.to_dicts(),
        "imbalance_ratio": (max(counts) / min(counts)) if counts else None,
        "too_small_classes": per_class.filter(pl.col("rows") < c.min_class_rows)["label"].to_list(),
        "min_class_rows": c.min_class_rows,
        "too_short_rows": int(frame["too_short"].sum()),
        "min_words": c.min_words,
        "empty_text_rows": int(dropped_at_read.get("empty_text", 0)),
        "unlabeled_rows": int(dropped_at_read.get("no_label", 0)),
    }
    if frame["split"].null_count() < n:
        by_split = frame.group_by(["split", "label"]).agg(pl.len().alias("rows")).sort(["split", "label"])
        totals = frame.group_by("split").agg(pl.len().alias("rows")).sort("split")
        out["per_split"] = {r["split"]: r["rows"] for r in totals.to_dicts()}
        out["per_split_class"] = {}
        for r in by_split.to_dicts():
            out["per_split_class"].setdefault(r["split"], {})[r["label"]] = r["rows"]
        # A class missing from a held-out split cannot be evaluated there.
        out["classes_missing_from_split"] = {
            s: sorted(set(per_class["label"]) - set(out["per_split_class"].get(s, {}))) for s in out["per_split"]
        }
    if "lang" in frame.columns:
        counts_by = frame.group_by(["label", "lang"]).agg(pl.len().alias("rows")).sort(["label", "rows", "lang"],
                                                                                          descending=[False, True, False])
        majority = counts_by.group_by("label", maintain_order=True).first().select("label", pl.col("lang").alias("class_lang"))
        frame = frame.join(majority, on="label", how="left", maintain_order="left")
        frame = frame.with_columns((pl.col("lang") != pl.col("class_lang")).alias("lang_outlier"))
        out["languages_per_class"] = {}
        for r in counts_by.to_dicts():
            out["languages_per_class"].setdefault(r["label"], {})[r["lang"]] = r["rows"]
        out["class_majority_language"] = dict(zip(majority["label"].to_list(), majority["class_lang"].to_list()))
        out["lang_outlier_rows"] = int(frame["lang_outlier"].sum())
    return out, frame
