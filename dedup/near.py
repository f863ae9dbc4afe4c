"""MinHash-LSH near-duplicate removal (Broder 1997), as FineWeb runs it (Penedo et al. 2024):
word 5-gram shingles, 112 permutations in 14 bands of 8 rows, one document kept per cluster.

map (streaming): shingles -> MinHash signature -> 14 band keys per still-kept document, in the
list column ``minhash_dedup_bands`` (null for documents with no shingle). reduce: rows (band key,
document) are hash-partitioned by band key; each partition links every bucket member to the
bucket's first document in input order (a star, not all pairs); the clusters are the connected
components of all partitions' edges, found by a partitioned run (dedup/graph.py: no process holds
all edges), and each keeps its first document in input order. Every other member is rejected as
``minhash_dedup.duplicate`` with the kept id in ``minhash_dedup_duplicate_of``.

Candidate pairs are not re-verified by true Jaccard: the reduce has band keys, not shingles
(FineWeb does not verify either); ``dedup.components.verify_pairs`` does it where the shingles
are at hand (one batch). The probability that a pair of Jaccard s becomes a candidate is
``1 - (1 - s**rows)**bands``; ``threshold_curve`` prints it (threshold ~0.72 for 14 x 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from dedup.components import star_edges
from dedup.minhash import has_shingles, lsh_band_keys, minhash_signatures, shingle_hashes, threshold_curve
from filters.base import GlobalStage, _scatter, _set_or_append, active_mask

REASON = "minhash_dedup.duplicate"
FILE_SHIFT = 40  # order key = _file << 40 | _seq: unique and in input order for 2^40 rows per file


@dataclass(frozen=True)
class MinHashDedup(GlobalStage):
    """Near-duplicate removal by MinHash-LSH. Defaults as FineWeb (Penedo et al. 2024): word
    5-grams, 14 bands x 8 rows = 112 permutations; see the module docstring."""

    name = "minhash_dedup"
    resolves_globally = True

    ngram: int = 5
    bands: int = 14
    rows: int = 8
    seed: int = 1
    lowercase: bool = True

    def __post_init__(self):
        if self.ngram < 1 or self.bands < 1 or self.rows < 1:
            raise ValueError("ngram, bands and rows must be >= 1")

    @property
    def shuffle_rows_per_document(self) -> float:
        return self.bands

    def threshold_curve(self) -> dict:
        return threshold_curve(self.bands, self.rows)

    def key_columns(self) -> list[str]:
        return ["minhash_dedup_bands"]

    def map(self, table: pa.Table) -> pa.Table:
        mask = active_mask(table)
        rows = np.flatnonzero(mask)
        list_type = pa.list_(pa.uint64(), self.bands)
        values = pa.nulls(len(rows), list_type)
        if len(rows):
            offsets, hashes = shingle_hashes(table.column("text").take(rows), self.ngram, self.lowercase)
            signatures = minhash_signatures(offsets, hashes, self.bands * self.rows, self.seed)
            keys = lsh_band_keys(signatures, self.bands, self.rows)
            # Documents without a shingle all share one signature: they are no one's duplicate.
            empty = pa.array(~has_shingles(offsets))
            values = pa.FixedSizeListArray.from_arrays(pa.array(keys.ravel()), self.bands, mask=empty)
        column = _scatter(pa.nulls(table.num_rows, list_type), mask, values)
        return _set_or_append(table, "minhash_dedup_bands", column)

    def shuffle_rows(self, keys: pa.Table) -> pa.Table:
        frame = pl.from_arrow(keys).filter(pl.col("minhash_dedup_bands").is_not_null())
        return frame.select(
            "id",
            ((pl.col("_file").cast(pl.Int64) * (1 << FILE_SHIFT)) + pl.col("_seq")).alias("_order"),
            pl.col("minhash_dedup_bands").arr.to_list().alias("_pkey"),
        ).explode("_pkey").to_arrow()

    def decide(self, rows: pa.Table) -> pa.Table:
        """One partition -> star edges (doc, anchor) between documents sharing a band key."""
        order = rows.column("_order").to_numpy()
        doc, anchor = star_edges(rows.column("_pkey").to_numpy(), order)
        ids = pl.DataFrame({"order": order, "id": rows.column("id").to_numpy(zero_copy_only=False)}).unique("order")
        edges = pl.DataFrame({"a": doc, "b": anchor})
        edges = edges.join(ids.rename({"order": "a", "id": "a_id"}), on="a").join(ids.rename({"order": "b", "id": "b_id"}), on="b")
        return edges.to_arrow()

    def resolve(self, members: pa.Table) -> pa.Table:
        """Cluster members (``order``, ``root``, ``id``, ``root_id``: every document but its
        cluster's first in input order) -> each is a duplicate of the first."""
        return pl.from_arrow(members).select(
            "id",
            (pl.col("order") // (1 << FILE_SHIFT)).cast(pl.Int32).alias("_file"),
            pl.lit(REASON).alias("rejected_by"),
            pl.col("root_id").alias("minhash_dedup_duplicate_of"),
        ).to_arrow()
