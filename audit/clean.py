"""The cleaned set and its account: every audited row is kept, relabelled or dropped, with one
reason, and the counts add up (rows left out at read time are counted by their reason too).

Decision order per row (the first that applies):

1. ``leak``: a leaked row below the highest split of its cluster (test > validation > train):
   removed from train (and validation), never from test;
2. ``duplicate``: a later exact or near copy within the same split and label: one copy is kept
   (the first in input order), the others dropped;
3. ``label_issue``: flagged by confident learning: ``--fix drop`` drops it, ``relabel`` gives it the
   suggested label, ``none`` keeps it as it is. Test rows are never changed (a test set is fixed
   by a person, not by a model trained on the rest); their flags stay in audit.parquet. With
   ``--fix-scope large`` (the default) only flags whose given label is a *large* class are fixed:
   a class with at least the mean share of the audited rows (1 / number of classes); flags in the
   smaller classes stay as they are (and in audit.parquet, for a person). ``--fix-scope all``
   fixes every flag. With ``--fix-min-prob P`` only flags whose suggested label has out-of-fold
   probability >= P are fixed;
4. kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

FIXES = ("drop", "relabel", "none")
SCOPES = ("large", "all")


def decide(frame: pl.DataFrame, fix: str, min_prob: float = 0.0, scope: str = "large") -> pl.DataFrame:
    """``frame`` holds the audit columns (``split`` may be null, ``drop_leak``, ``first_in_split``,
    ``is_label_issue``, ``label``, ``suggested_label``). Returns id, action, reason, label, new_label."""
    if fix not in FIXES:
        raise ValueError(f"--fix {fix!r}: expected one of {', '.join(FIXES)}")
    if scope not in SCOPES:
        raise ValueError(f"--fix-scope {scope!r}: expected one of {', '.join(SCOPES)}")
    test = pl.col("split").fill_null("") == "test"
    # min_prob: fix only the flags whose suggested label the model is this sure of.
    flagged = (pl.col("is_label_issue") & ~test & (pl.col("suggested_label") != pl.col("label"))
               & (pl.col("suggested_label_prob") >= min_prob))
    if scope == "large":
        # bench.audit (clean): a fast model's flags in the small classes are mostly its bias towards
        # the large ones (right but hard rows); dropping them cost macro-F1, dropping only the
        # large classes' flags gained it (chosen by cross-validation inside the noisy pool).
        n_classes = frame["label"].n_unique()
        large = pl.len().over("label") * n_classes >= pl.len()
        flagged = flagged & large
    issue_action = {"drop": "dropped", "relabel": "relabelled", "none": "kept"}[fix]
    action = (pl.when(pl.col("drop_leak")).then(pl.lit("dropped"))
              .when(~pl.col("first_in_split")).then(pl.lit("dropped"))
              .when(flagged).then(pl.lit(issue_action))
              .otherwise(pl.lit("kept")))
    reason = (pl.when(pl.col("drop_leak")).then(pl.lit("leak"))
              .when(~pl.col("first_in_split")).then(pl.lit("duplicate"))
              .when(flagged).then(pl.lit("label_issue"))
              .otherwise(pl.lit(None, pl.String)))
    out = frame.with_columns(action.alias("action"), reason.alias("reason"))
    new_label = pl.when(pl.col("action") == "relabelled").then(pl.col("suggested_label")).otherwise(pl.col("label"))
    return out.with_columns(new_label.alias("new_label"))


def first_in_split(cluster: np.ndarray, splits: list, labels: list) -> np.ndarray:
    """bool (rows,): False for every row that repeats an earlier row of its duplicate cluster with
    the same split and label (the copies a cleaned set does not need twice)."""
    frame = pl.DataFrame({"c": cluster, "s": [s or "" for s in splits], "l": labels, "i": np.arange(len(cluster))})
    rank = frame.select(pl.int_range(pl.len()).over(["c", "s", "l"]).alias("r"))["r"].to_numpy()
    return (cluster < 0) | (rank == 0)


def write_clean(decided: pl.DataFrame, texts: pl.DataFrame, dropped_at_read: dict, out_dir: str) -> dict:
    """``clean.parquet`` (kept and relabelled rows: id, source_id, text, label, split),
    ``account.parquet`` (every audited row: id, action, reason, label, new_label) and
    ``account.json`` (the counts, which add up to the input rows)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full = decided.select("id", "action", "reason", "label", "new_label", "split")
    full.write_parquet(out / "account.parquet")
    kept = decided.filter(pl.col("action") != "dropped").join(texts, on="id", how="left", maintain_order="left")
    kept.select("id", "source_id", "text", pl.col("new_label").alias("label"), "split").write_parquet(out / "clean.parquet")
    counts = {a: int((decided["action"] == a).sum()) for a in ("kept", "relabelled", "dropped")}
    reasons = {r["reason"]: r["len"] for r in decided.filter(pl.col("reason").is_not_null())
               .group_by(["reason"]).len().sort("reason").to_dicts()}
    by_split = {}
    for r in decided.group_by(["split", "action"]).len().sort(["split", "action"]).to_dicts():
        by_split.setdefault(r["split"] or "all", {})[r["action"]] = r["len"]
    read_dropped = int(sum(dropped_at_read.values()))
    account = {
        "input_rows": decided.height + read_dropped,
        "audited_rows": decided.height,
        "left_out_at_read": dict(dropped_at_read),
        **counts,
        "reasons": reasons,
        "per_split": by_split,
        "output_rows": counts["kept"] + counts["relabelled"],
    }
    assert counts["kept"] + counts["relabelled"] + counts["dropped"] == decided.height
    (out / "account.json").write_text(json.dumps(account, indent=2) + "\n")
    return {**counts, "path": str(out), "reasons": reasons}
