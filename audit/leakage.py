"""Duplicates and leakage between splits, with crawlsift's own dedup functions (dedup/components.py,
dedup/minhash.py), run on the one labeled table in memory.

* exact: ``exact_keys`` (xxh3-128 of the whitespace-normalised text, as ``exact_dedup``);
* near: MinHash-LSH as ``minhash_dedup`` (word 5-grams, 14 bands x 8 rows = 112 permutations,
  FineWeb's), every candidate edge then checked by the true Jaccard of the two shingle sets
  (``pair_jaccard``) and kept at >= ``verify_jaccard``.

Clusters are the connected components of both edge kinds (``connected_components``), each named
by its first row in input order. A cluster that holds rows of two splits is a leak: every member
is ``is_leak``; a cluster whose members carry different labels is a label conflict. Leaked pairs
are reported as (train row, the cluster's first held-out row) with that pair's true Jaccard
(1.0 for exact copies); a chain of edges can make it lower than the threshold, and the report
shows it as measured.

Fine-tuning sets are 10^3-10^6 rows: one process holds them. A corpus-scale set would run the
same stages through ``crawlsift run`` (dedup/driver.py), whose shuffle scales past memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dedup.components import candidate_edges, connected_components, exact_keys, pair_jaccard
from dedup.minhash import BANDS, NGRAM, ROWS, SEED, has_shingles, lsh_band_keys, minhash_signatures, shingle_hashes

HELD_OUT = ("validation", "test")


@dataclass(frozen=True)
class LeakConfig:
    """``verify_jaccard`` 0.7: just under the 14 x 8 banding's threshold (0.72, where a pair
    becomes a candidate with probability ~1/2, ``dedup.minhash.threshold_curve``), so a reported
    near pair is one the LSH was built to catch, and no pair below it is called a duplicate.
    ``ngram``/``bands``/``rows``/``seed``: ``MinHashDedup``'s defaults (FineWeb)."""

    verify_jaccard: float = 0.7
    ngram: int = NGRAM
    bands: int = BANDS
    rows: int = ROWS
    seed: int = SEED


@dataclass
class LeakResult:
    cluster: np.ndarray  # int64 (rows,): first row of the duplicate cluster, -1 = no duplicate
    exact_of: np.ndarray  # int64 (rows,): first row of the exact group (itself when first)
    is_leak: np.ndarray  # bool (rows,)
    label_conflict: np.ndarray  # bool (rows,): in a cluster with more than one label
    pairs: dict  # kind -> (a, b, jaccard) int64/int64/float64 arrays
    near_edges: int


def find_duplicates(texts, splits: np.ndarray | None, labels: np.ndarray, c: LeakConfig = LeakConfig()) -> LeakResult:
    """Exact and near-duplicate clusters of ``texts`` (a pyarrow string column or list),
    leaks across ``splits`` (object array of train/validation/test, or None) and label conflicts."""
    n = len(labels)
    keys = exact_keys(texts)
    # Exact groups: sort by key, link each row to its group's first row.
    idx = np.lexsort((np.arange(n), keys[:, 1], keys[:, 0]))
    k = keys[idx]
    new = np.ones(n, dtype=bool)
    new[1:] = (k[1:] != k[:-1]).any(axis=1)
    first = idx[np.flatnonzero(new)][np.cumsum(new) - 1]
    exact_of = np.empty(n, dtype=np.int64)
    exact_of[idx] = first
    ea = np.flatnonzero(exact_of != np.arange(n))
    eb = exact_of[ea]

    offsets, hashes = shingle_hashes(texts, c.ngram)
    sig = minhash_signatures(offsets, hashes, c.bands * c.rows, c.seed)
    band_keys = lsh_band_keys(sig, c.bands, c.rows)
    na, nb = candidate_edges(band_keys, valid=has_shingles(offsets))
    # Exact copies are already linked; only pairs that are not exact copies need a Jaccard.
    other = exact_of[na] != exact_of[nb]
    na, nb = na[other], nb[other]
    jac = pair_jaccard(offsets, hashes, na, nb)
    keep = jac >= c.verify_jaccard
    na, nb = na[keep], nb[keep]

    root = connected_components(n, np.concatenate([ea, na]), np.concatenate([eb, nb]))
    size = np.bincount(root, minlength=n)
    in_cluster = size[root] > 1
    cluster = np.where(in_cluster, root, -1)

    label_codes = np.unique(labels, return_inverse=True)[1]
    conflict = _spans(root, label_codes) & in_cluster
    if splits is None:
        is_leak = np.zeros(n, dtype=bool)
        leak_pairs = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    else:
        split_codes = np.unique(splits.astype(str), return_inverse=True)[1]
        is_leak = _spans(root, split_codes) & in_cluster
        leak_pairs = _leak_pairs(root, is_leak, splits, offsets, hashes, exact_of)
    pairs = {
        "exact": (ea, eb, np.ones(len(ea))),
        "near": (na, nb, jac[keep]),
        "leak": leak_pairs,
    }
    return LeakResult(cluster, exact_of, is_leak, conflict, pairs, int(len(na)))


def _spans(root: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per row: does its cluster hold more than one distinct value of ``codes``?"""
    lo = np.full(len(root), np.iinfo(np.int64).max)
    hi = np.full(len(root), -1)
    np.minimum.at(lo, root, codes)
    np.maximum.at(hi, root, codes)
    return lo[root] != hi[root]


def _leak_pairs(root, is_leak, splits, offsets, hashes, exact_of):
    """(train-or-validation row, the cluster's first row of a later split, Jaccard): each row that
    a cleaned set would drop, beside the held-out row it copies (test outranks validation,
    validation outranks train)."""
    rank = np.select([splits == "test", splits == "validation"], [2, 1], 0)
    rows = np.flatnonzero(is_leak)
    # Per cluster, the highest split present and its first row.
    best = np.full(len(root), -1)
    np.maximum.at(best, root[rows], rank[rows])
    target = np.full(len(root), -1, dtype=np.int64)
    for r in rows[::-1]:  # reverse: the first row in input order wins (leaked rows only)
        if rank[r] == best[root[r]]:
            target[root[r]] = r
    a = rows[rank[rows] < best[root[rows]]]
    b = target[root[a]]
    jac = pair_jaccard(offsets, hashes, a, b)
    jac[exact_of[a] == exact_of[b]] = 1.0
    return a.astype(np.int64), b, jac


def leaked_rows_to_drop(root_or_cluster: np.ndarray, is_leak: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """bool (rows,): the leaked rows a cleaned set leaves out: within each leaking cluster, the
    rows of every split below the highest one present (test > validation > train). Test rows are
    never dropped; train rows go first."""
    rank = np.select([splits == "test", splits == "validation"], [2, 1], 0)
    best = np.full(len(splits), -1)
    rows = np.flatnonzero(is_leak)
    np.maximum.at(best, root_or_cluster[rows], rank[rows])
    out = np.zeros(len(splits), dtype=bool)
    out[rows] = rank[rows] < best[root_or_cluster[rows]]
    return out
