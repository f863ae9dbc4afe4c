"""Document length bounds: the cheapest filter, and the first in most recipes."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from filters.base import RuleFilter


@dataclass(frozen=True)
class LengthFilter(RuleFilter):
    """Reject documents outside character and word-count bounds.

    Words are maximal runs of non-whitespace (``\\S+``, whitespace = Unicode White_Space), as a
    whitespace split counts them (Python's ``str.split`` also splits on \\x1c-\\x1f); a
    script written without spaces (Chinese, Japanese) counts as few "words", so the word bounds
    are off by default and ``min_chars`` carries the lower bound.

    Defaults: ``min_chars=1`` rejects empty and whitespace-only documents; ``max_chars`` of
    1,000,000 characters keeps the pathological tail (megabyte pages of debris) out of later stages;
    Gopher's word-count bounds (50..100,000, Rae et al. 2021) live in ``gopher_quality``.

    Reason codes: ``length.too_short``, ``length.too_long``, ``length.too_few_words``,
    ``length.too_many_words``.
    """

    name = "length"
    annotation_types = {"length_chars": pa.int64(), "length_words": pa.int64()}

    min_chars: int = 1
    max_chars: int = 1_000_000
    min_words: int = 0
    max_words: int | None = None

    def __post_init__(self):
        if self.min_chars < 0 or self.max_chars < self.min_chars:
            raise ValueError(f"need 0 <= min_chars <= max_chars, got {self.min_chars}, {self.max_chars}")
        if self.min_words < 0 or (self.max_words is not None and self.max_words < self.min_words):
            raise ValueError(f"need 0 <= min_words <= max_words, got {self.min_words}, {self.max_words}")

    def prepare(self, frame: pl.DataFrame) -> pl.DataFrame:
        # Whitespace-only text counts as empty: strip before measuring characters.
        return frame.with_columns(
            pl.col("text").str.strip_chars().str.len_chars().alias("length_chars"),
            pl.col("text").str.count_matches(r"\S+").alias("length_words"),
        )

    def rules(self) -> list[tuple[str, pl.Expr]]:
        rules = [
            ("too_short", pl.col("length_chars") < self.min_chars),
            ("too_long", pl.col("length_chars") > self.max_chars),
            ("too_few_words", pl.col("length_words") < self.min_words),
        ]
        if self.max_words is not None:
            rules.append(("too_many_words", pl.col("length_words") > self.max_words))
        return rules

    def annotations(self) -> dict[str, pl.Expr]:
        return {"length_chars": pl.col("length_chars"), "length_words": pl.col("length_words")}
