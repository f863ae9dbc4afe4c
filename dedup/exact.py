"""Exact deduplication: documents whose normalized text is equal keep one copy.

The key is xxHash3-128 of the text with whitespace runs collapsed to one space and the ends
stripped (``dedup.components.exact_keys``), so re-wrapped copies of a page match; case is kept
unless ``lowercase``. The first document in input order (or the one with the highest
``priority_column`` value, input order breaking ties) is kept; every other copy is rejected as
``exact_dedup.duplicate`` with the kept document's id in ``exact_dedup_duplicate_of``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from dedup.components import exact_keys
from filters.base import GlobalStage, scatter, set_column, active_mask

REASON = "exact_dedup.duplicate"


@dataclass(frozen=True)
class ExactDedup(GlobalStage):
    """Keep one document per exact (normalized) text. See the module docstring."""

    name = "exact_dedup"

    lowercase: bool = False
    # A numeric column (e.g. quality_score) whose highest value wins within a duplicate set.
    priority_column: str | None = None

    def key_columns(self) -> list[str]:
        return ["exact_dedup_key_hi", "exact_dedup_key_lo", "exact_dedup_priority"]

    def map(self, table: pa.Table) -> pa.Table:
        mask = active_mask(table)
        rows = np.flatnonzero(mask)
        keys = exact_keys(table.column("text").take(rows), lowercase=self.lowercase)
        hi = scatter(pa.nulls(table.num_rows, pa.uint64()), mask, pa.array(keys[:, 0]))
        lo = scatter(pa.nulls(table.num_rows, pa.uint64()), mask, pa.array(keys[:, 1]))
        if self.priority_column:
            if self.priority_column not in table.column_names:
                raise ValueError(f"exact_dedup.priority_column {self.priority_column!r} is not a column of the batch")
            priority = table.column(self.priority_column).cast(pa.float64())
        else:
            priority = pa.nulls(table.num_rows, pa.float64())
        table = set_column(table, "exact_dedup_key_hi", hi)
        table = set_column(table, "exact_dedup_key_lo", lo)
        return set_column(table, "exact_dedup_priority", priority)

    def shuffle_rows(self, keys: pa.Table) -> pa.Table:
        return keys.append_column("_pkey", keys.column("exact_dedup_key_lo"))

    def decide(self, keys: pa.Table) -> pa.Table:
        """All key rows of one hash partition -> the rejected ones (id, _file, rejected_by,
        exact_dedup_duplicate_of)."""
        frame = pl.from_arrow(keys.drop(["_pkey"])).with_columns(pl.col("exact_dedup_priority").fill_null(float("-inf")))
        ordered = frame.sort(
            ["exact_dedup_key_hi", "exact_dedup_key_lo", "exact_dedup_priority", "_file", "_seq"],
            descending=[False, False, True, False, False],
        )
        group = ["exact_dedup_key_hi", "exact_dedup_key_lo"]
        decided = ordered.with_columns(
            pl.col("id").first().over(group).alias("exact_dedup_duplicate_of"),
            pl.int_range(pl.len()).over(group).alias("_rank"),
        ).filter(pl.col("_rank") > 0)
        return decided.select(
            "id", "_file", pl.lit(REASON).alias("rejected_by"), "exact_dedup_duplicate_of"
        ).to_arrow()
