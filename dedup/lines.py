"""Line (or paragraph) deduplication across the corpus, as CCNet (Wenzek et al. 2020, §3.2: lines
hashed after normalisation, repeats removed) and Dolma (Soldaini et al. 2024: paragraph-level
dedup with a Bloom filter) do it: boilerplate that recurs across pages (navigation, cookie
banners, footers, "Share this:") goes, the prose around it stays.

map (streaming): each still-kept document's text is cut into pieces (``unit: line`` splits at
``\\n``, ``unit: paragraph`` at ``\\n\\n``); each piece with at least ``min_words`` words gets a
64-bit key of its whitespace-normalised words (case folded if ``lowercase``), in the list column
``line_dedup_keys`` beside the pieces' indices ``line_dedup_pieces``. reduce: rows (key,
document, piece) are hash-partitioned by key, so all copies of a piece meet in one partition;
a key seen more than ``max_occurrences`` times keeps its first occurrence in input order
(file, record, piece) and every later one is removed. apply (streaming): the removed pieces are
cut out of the text (the others are joined back with the same separator, so nothing else
changes), ``line_dedup_removed`` counts them and ``line_dedup_chars_removed`` their characters.
A document left with no words is rejected as ``line_dedup.empty``.

The key: each word's bytes hashed as in ``dedup.minhash`` (NumPy, identical on every platform
and release), each word hash mixed with its position in the piece (``fmix64(h ^ i * P)``),
summed, and mixed with the word count. Two different pieces share a key with probability
~2**-64 per pair, and must also have the same word count: at Common Crawl scale (~1e11 lines)
that is well under one false match in expectation. Pieces with fewer than ``min_words`` words
(blank lines, by default) are neither counted nor removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from dedup.minhash import fmix64, word_chunks, word_hashes
from filters.base import GlobalStage, set_column, active_mask

REASON = "line_dedup.empty"
UNITS = {"line": "\n", "paragraph": "\n\n"}
_POSITION_MULT = np.uint64(0xC2B2AE3D27D4EB4F)  # xxHash's PRIME64_2: odd, so i -> i * P is a bijection
_COUNT_MULT = np.uint64(0x165667B19E3779F9)  # PRIME64_5


def piece_keys(pieces, lowercase: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The key (uint64) and word count (int64) of every piece of text; a piece without words
    has key 0 and count 0. Words are ``str.split()``'s (see ``dedup.minhash``)."""
    n, chunks = word_chunks(pieces, lowercase)
    keys = np.zeros(n, dtype=np.uint64)
    counts = np.zeros(n, dtype=np.int64)
    for d0, d1, x, _, starts, ends, word_off in chunks:
        words = np.diff(word_off)
        counts[d0:d1] = words
        if len(starts) == 0:
            continue
        h = word_hashes(x, starts, ends)
        position = np.arange(len(h), dtype=np.int64) - np.repeat(word_off[:-1], words)
        with np.errstate(over="ignore"):
            h ^= position.astype(np.uint64) * _POSITION_MULT
            fmix64(h, out=h)
            some = np.flatnonzero(words > 0)
            summed = np.add.reduceat(h, word_off[:-1][some])
            summed ^= words[some].astype(np.uint64) * _COUNT_MULT
        keys[d0 + some] = fmix64(summed, out=summed)
    return keys, counts


@dataclass(frozen=True)
class LineDedup(GlobalStage):
    """Remove the lines (or paragraphs) that occur more than ``max_occurrences`` times across the
    corpus, keeping the first occurrence. See the module docstring.

    Parameters: ``unit`` ("line": split at ``\\n``, CCNet; "paragraph": at ``\\n\\n``, Dolma);
    ``max_occurrences`` (1: any repeat goes, CCNet's rule; N: a piece seen at most N times is
    left alone, above that only its first occurrence stays); ``lowercase`` (false: CCNet folds
    case, Dolma does not); ``min_words`` (1: blank pieces are never touched; raise it to spare
    short lines such as "Yes." in dialogue).
    Annotations: ``line_dedup_removed`` (pieces cut), ``line_dedup_chars_removed``.
    Reason code: ``line_dedup.empty`` (no words left).
    """

    name: ClassVar[str] = "line_dedup"
    # apply also runs on parts with nothing to remove: it drops the key columns and annotates.
    apply_always: ClassVar[bool] = True
    # Web pages run to a few dozen non-blank lines (fewer paragraphs): sizes the reduce partitions.
    shuffle_rows_per_document: ClassVar[float] = 32

    unit: str = "line"
    max_occurrences: int = 1
    lowercase: bool = False
    min_words: int = 1

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        for key, low in (("max_occurrences", 1), ("min_words", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")

    @property
    def separator(self) -> str:
        return UNITS[self.unit]

    def key_columns(self) -> list[str]:
        return ["line_dedup_keys", "line_dedup_pieces"]

    def _pieces(self, text: pa.Array | pa.ChunkedArray) -> pl.DataFrame:
        """One row per piece: ``doc`` (row of ``text``), ``piece`` (its index), ``s`` (the piece)."""
        split = pl.Series("s", text, dtype=pl.String).fill_null("").str.split(self.separator)
        sizes = split.list.len().to_numpy().astype(np.int64)
        doc = np.repeat(np.arange(len(sizes), dtype=np.uint32), sizes)
        piece = np.arange(len(doc), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return pl.DataFrame({"doc": doc, "piece": piece.astype(np.uint32), "s": split.explode()})

    def map(self, table: pa.Table) -> pa.Table:
        mask = active_mask(table)
        rows = np.flatnonzero(mask)
        n = table.num_rows
        key_type, piece_type = pa.list_(pa.uint64()), pa.list_(pa.uint32())
        keys_col, pieces_col = pa.nulls(n, key_type), pa.nulls(n, piece_type)
        if len(rows):
            pieces = self._pieces(table.column("text").take(rows))
            keys, words = piece_keys(pieces.get_column("s").to_arrow(), self.lowercase)
            counted = words >= self.min_words
            doc = pieces.get_column("doc").to_numpy()[counted]
            per_doc = np.bincount(doc, minlength=len(rows))
            offsets = np.zeros(n + 1, dtype=np.int32)
            full = np.zeros(n, dtype=np.int64)
            full[rows] = per_doc
            np.cumsum(full, out=offsets[1:])
            validity = pa.array(mask)
            keys_col = pa.ListArray.from_arrays(pa.array(offsets), pa.array(keys[counted]), mask=pc.invert(validity))
            pieces_col = pa.ListArray.from_arrays(
                pa.array(offsets), pa.array(pieces.get_column("piece").to_numpy()[counted]), mask=pc.invert(validity)
            )
        table = set_column(table, "line_dedup_keys", keys_col)
        return set_column(table, "line_dedup_pieces", pieces_col)

    def shuffle_rows(self, keys: pa.Table) -> pa.Table:
        frame = pl.from_arrow(keys).filter(pl.col("line_dedup_keys").list.len() > 0)
        return frame.select(
            "id", "_file", "_seq",
            pl.col("line_dedup_pieces").alias("piece"),
            pl.col("line_dedup_keys").alias("_pkey"),
        ).explode("piece", "_pkey").to_arrow()

    def decide(self, rows: pa.Table) -> pa.Table:
        """One partition: every copy after the first of a key seen more than ``max_occurrences``
        times -> (id, _file, piece)."""
        frame = pl.from_arrow(rows).sort("_pkey", "_file", "_seq", "piece")
        key = frame.get_column("_pkey").to_numpy()
        first = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, dtype=bool)
        starts = np.flatnonzero(first)
        sizes = np.diff(np.r_[starts, len(key)])
        removed = ~first & np.repeat(sizes > self.max_occurrences, sizes)
        return frame.filter(pl.Series(removed)).select(
            "id", pl.col("_file").cast(pl.Int32), pl.col("piece").cast(pl.UInt32)
        ).to_arrow()

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        n = table.num_rows
        judged = table.column("line_dedup_keys").is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
        table = table.drop([c for c in self.key_columns() if c in table.column_names])
        removed = np.zeros(n, dtype=np.int64)
        chars = np.zeros(n, dtype=np.int64)
        text = table.column("text")
        reasons = pa.nulls(n, pa.string())
        if decisions is not None and decisions.num_rows and n:
            ids = pl.from_arrow(table.select(["id"])).with_row_index("row")
            cuts = ids.join(pl.from_arrow(decisions.select(["id", "piece"])), on="id", how="inner")
            cuts = cuts.filter(pl.Series(judged[cuts.get_column("row").to_numpy()]))
            if cuts.height:
                rows = np.unique(cuts.get_column("row").to_numpy())
                old = text.take(pa.array(rows))
                pieces = self._pieces(old)
                local = pl.DataFrame({"row": rows.astype(np.uint32), "doc": np.arange(len(rows), dtype=np.uint32)})
                gone = cuts.join(local, on="row").select("doc", "piece")
                kept = pieces.join(gone, on=["doc", "piece"], how="anti", maintain_order="left")
                rebuilt = (
                    pl.DataFrame({"doc": np.arange(len(rows), dtype=np.uint32)})
                    .join(kept.group_by("doc", maintain_order=True).agg(pl.col("s").str.join(self.separator)),
                          on="doc", how="left", maintain_order="left")
                    .get_column("s").fill_null("")
                )
                counts = gone.group_by("doc").len()
                removed[rows[counts.get_column("doc").to_numpy()]] = counts.get_column("len").to_numpy()
                chars[rows] = pc.utf8_length(old).to_numpy(zero_copy_only=False) - rebuilt.str.len_chars().to_numpy()
                new_text = rebuilt.to_arrow().cast(text.type)
                change = np.zeros(n, dtype=bool)
                change[rows] = True
                text = pc.replace_with_mask(text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text,
                                            pa.array(change), new_text)
                empty = np.zeros(n, dtype=bool)
                empty[rows] = ~rebuilt.str.contains(r"\S").to_numpy()
                reasons = pc.if_else(pa.array(empty), pa.scalar(REASON), reasons)
        table = table.set_column(table.schema.get_field_index("text"), "text", text)
        rejected = pc.coalesce(table.column("rejected_by"), reasons)
        table = table.set_column(table.schema.get_field_index("rejected_by"), "rejected_by", rejected)
        table = set_column(table, "line_dedup_removed", pa.array(removed.astype(np.int32), mask=~judged))
        return set_column(table, "line_dedup_chars_removed", pa.array(chars, mask=~judged))
