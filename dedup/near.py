"""MinHash-LSH near-duplicate removal (Broder 1997), as FineWeb runs it (Penedo et al. 2024):
word 5-gram shingles, 112 permutations in 14 bands of 8 rows, one document kept per cluster.

map (streaming): shingles -> MinHash signature -> 14 band keys per still-kept document, in the
list column ``minhash_dedup_bands`` (null for documents with no shingle). reduce: rows (band key,
document) are hash-partitioned by band key; each partition links every bucket member to the
bucket's first document in input order (a star, not all pairs); the clusters are the connected
components of all partitions' edges, found by a partitioned run (dedup/graph.py: no process holds
all edges), and each keeps its first document in input order. Every other member is rejected as
``minhash_dedup.duplicate`` with the kept id in ``minhash_dedup_duplicate_of``.

By default candidate pairs are not verified (FineWeb does not verify either): the probability
that a pair of Jaccard s becomes a candidate is ``1 - (1 - s**rows)**bands`` (``threshold_curve``
prints it; threshold ~0.72 for 14 x 8), so some pairs well below it merge clusters.
``verify_jaccard=v`` checks every candidate edge by the true Jaccard of the two shingle sets
before merging (dedup/verify.py); see the class docstring for the semantics and the cost.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from dedup.components import shingle_sets, star_edges
from dedup.minhash import has_shingles, lsh_band_keys, minhash_signatures, shingle_hashes, threshold_curve
from filters.base import GlobalStage, scatter, set_column, active_mask
from filters.text import SPACELESS_CHAR

REASON = "minhash_dedup.duplicate"
# datatrove's NUMBERS_PATTERN (utils/text.py): digits of any script, one decimal part.
NUMBERS = r"\p{Nd}+([.,،٫⎖⎗⎘]\p{Nd}+)?"
# Scripts written without spaces between words (as filters.gopher's space-less test).
SPACELESS_CAPTURE = f"({SPACELESS_CHAR})"  # each such character becomes " $1 "


@functools.cache
def _diacritics_table() -> tuple[list[str], list[str]]:
    """Every BMP character whose NFD is a base followed by combining marks (Mn) -> the base, and
    every combining mark -> "": datatrove's NFD-then-drop-Mn as one Aho-Corasick pass (the same
    text as Polars' NFD on the real crawl, and cheaper; README has the figure). Hangul syllables are left whole (their NFD is
    jamo, not marks: the same on both sides of a comparison)."""
    marked, bare = [], []
    for cp in range(0x80, 0x10000):
        if 0xD800 <= cp < 0xE000 or 0xAC00 <= cp <= 0xD7A3:
            continue
        c = chr(cp)
        if unicodedata.category(c) == "Mn":
            marked.append(c)
            bare.append("")
            continue
        stripped = "".join(x for x in unicodedata.normalize("NFD", c) if unicodedata.category(x) != "Mn")
        if stripped != c:
            marked.append(c)
            bare.append(stripped)
    return marked, bare


def shingle_text(texts: pa.Array | pa.ChunkedArray, normalize_text: bool, spaceless_chars: bool) -> pa.Array:
    """The text the shingles are cut from.

    ``normalize_text``: datatrove's ``simplify_text`` as ``MinhashDedupSignature`` applies it
    (FineWeb): every number (digits of any script with one decimal part) -> "0", diacritics
    dropped (as NFD then removing combining marks); lower case, and punctuation and symbols as
    spaces, in the shingler (``lowercase``, ``strip_punctuation``). Template pages that differ only in dates,
    prices, counters or punctuation get the same shingles.
    ``spaceless_chars``: every character of a script written without spaces (Han, kana, Thai, Lao,
    Khmer, Myanmar, Tibetan) becomes a word of its own, so ``ngram`` consecutive characters make a
    shingle there (character 5-grams by default), instead of a whole clause being one "word"."""
    if not (normalize_text or spaceless_chars):
        return texts
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    series = pl.from_arrow(texts.cast(pa.large_string()))
    if normalize_text:  # lower case: the shingler's own (``lowercase``)
        marked, bare = _diacritics_table()
        series = series.str.replace_all(NUMBERS, "0").str.replace_many(marked, bare)
    if spaceless_chars:
        # Only the documents that hold such a character are rewritten (a scan costs ~1 ms per MB).
        rows = series.str.contains(SPACELESS_CHAR).fill_null(False).arg_true()
        if len(rows):
            series = series.scatter(rows, series.gather(rows).str.replace_all(SPACELESS_CAPTURE, " $1 "))
    return series.to_arrow()

FILE_SHIFT = 40  # order key = _file << 40 | _seq: unique and in input order for 2^40 rows per file


@dataclass(frozen=True)
class MinHashDedup(GlobalStage):
    """Near-duplicate removal by MinHash-LSH. Defaults as FineWeb (Penedo et al. 2024): word
    5-grams, 14 bands x 8 rows = 112 permutations; see the module docstring.

    ``normalize_text`` (default False; on in the ``fineweb`` recipe, as datatrove's
    ``MinhashDedupSignature`` which FineWeb ran): shingles of datatrove's simplified text (lower
    case, numbers -> 0, diacritics and punctuation dropped), see ``shingle_text``.
    ``spaceless_chars`` (default True, crawlsift's): Chinese, Japanese, Thai... are shingled as
    character ``ngram``-grams (FineWeb deduplicated those languages with word segmenters; a
    character n-gram needs no model and is the usual choice for CJK near-duplicate detection).

    ``verify_jaccard`` (default None: FineWeb's behaviour, no verification): when set to v in
    (0, 1], a candidate edge is kept only if the true Jaccard of its two documents' sets of
    ``ngram`` shingles (the same shingles as the signatures, ``lowercase`` alike) is >= v, and the
    clusters are the connected components of the kept edges. The candidate edges are the buckets'
    stars: each bucket member is compared with its bucket's *anchor* (the bucket's first document
    in input order), never with the other members. So a document that shares a bucket only with
    an anchor it is not similar enough to stays apart, even if it is >= v similar to another
    member of that bucket; and, as without verification, a chain of kept edges can join two
    documents whose own Jaccard is below v. Exactly as ``dedup.components.near_duplicates(...,
    verify_jaccard=v)`` on one batch.

    Cost, only when set: after the band reduce, the part files holding candidate documents are
    read again and those documents shingled again from their text (about the map's shingling
    time, for the candidates only); each candidate's sorted set (8 bytes per distinct shingle)
    is written once per distinct edge it is the member of and once if it is an anchor; each
    member shingle is then looked up in its anchor's set (a binary search over the ranked
    anchor hashes, ranked by one sort per slice of edges). Non-candidates cost nothing; the map
    and its part files are the same as without verification. The cost grows with the candidate
    edges times their set sizes: ``python -m bench.dedup_scale --docs N --stages minhash_dedup
    --params '{"minhash_dedup": {"verify_jaccard": 0.8}}'`` measures it (figures in README)."""

    name = "minhash_dedup"
    resolves_globally = True

    ngram: int = 5
    bands: int = 14
    rows: int = 8
    seed: int = 1
    lowercase: bool = True
    verify_jaccard: float | None = None
    normalize_text: bool = False
    spaceless_chars: bool = True

    def __post_init__(self):
        if self.ngram < 1 or self.bands < 1 or self.rows < 1:
            raise ValueError("ngram, bands and rows must be >= 1")
        if self.verify_jaccard is not None and not 0 < self.verify_jaccard <= 1:
            raise ValueError(f"verify_jaccard must be in (0, 1] (a Jaccard similarity) or null, got {self.verify_jaccard!r}")

    def verify_threshold(self) -> float | None:
        return self.verify_jaccard

    def shingles(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, hashes) of each document's shingles, after ``shingle_text``."""
        texts = shingle_text(texts, self.normalize_text, self.spaceless_chars)
        return shingle_hashes(texts, self.ngram, self.lowercase or self.normalize_text,
                              strip_punctuation=self.normalize_text)

    def shingle_sets(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """The sets the signatures were computed from (same shingles as ``map``), sorted."""
        return shingle_sets(*self.shingles(texts))

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
            offsets, hashes = self.shingles(table.column("text").take(rows))
            signatures = minhash_signatures(offsets, hashes, self.bands * self.rows, self.seed)
            keys = lsh_band_keys(signatures, self.bands, self.rows)
            # Documents without a shingle all share one signature: they are no one's duplicate.
            empty = pa.array(~has_shingles(offsets))
            values = pa.FixedSizeListArray.from_arrays(pa.array(keys.ravel()), self.bands, mask=empty)
        column = scatter(pa.nulls(table.num_rows, list_type), mask, values)
        return set_column(table, "minhash_dedup_bands", column)

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
