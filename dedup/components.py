"""From LSH buckets to duplicate clusters, and exact-duplicate keys: the reduce side of
deduplication, as NumPy functions of int arrays (no Python loop per document or edge).

::

    a, b = candidate_edges(band_keys, order=order, valid=has_shingles(offsets))
    a, b = verify_pairs(offsets, hashes, a, b, threshold=0.8)[:2]     # optional
    keep = representatives(len(docs), a, b, order=order)              # kept doc per doc
    # or all three at once: near_duplicates(band_keys, order, verify_jaccard=0.8, shingles=(offsets, hashes))

Buckets become a *star* per bucket, every member linked to the bucket's anchor (its member with
the smallest order key), not all pairs: a bucket of k documents costs k - 1 edges, and the
connected components are the same as with all pairs. Components are found with a compact
union-find over int arrays (hooking roots onto the smaller root, then full path compression by
pointer jumping, repeated until no edge joins two components; O(log n) rounds in practice),
and every component keeps its document with the smallest order key.

Order keys decide which copy survives. They should be unique (e.g. ``_file << 40 | _seq``, or a
crawl date followed by such a position): then every result here is independent of the order the
documents come in. With ties, the earlier input position wins.
"""

from __future__ import annotations

import functools

import numpy as np

from dedup.minhash import lsh_band_keys, word_chunks


def order_ranks(n: int, order: np.ndarray | None = None) -> np.ndarray:
    """Rank (0..n-1) of every document by its order key, ties by input position; with no keys,
    the input position itself."""
    if order is None:
        return np.arange(n, dtype=np.int64)
    order = np.asarray(order)
    if len(order) != n:
        raise ValueError(f"{len(order)} order keys for {n} documents")
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(order, kind="stable")] = np.arange(n, dtype=np.int64)
    return ranks


def bucket_rows(band_keys: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The (key, doc) rows of an LSH table: ``band_keys`` (docs, bands) flattened, documents
    with ``valid`` False left out. By default the documents without shingles are left out: their
    all-max signature has fixed band keys (``empty_band_keys``) that would put every empty
    document in one bucket. Band indices are mixed into the keys (``lsh_band_keys``), so the key
    alone identifies a bucket: the shape a hash-partitioned reduce takes (partition on ``key``)."""
    keys = np.ascontiguousarray(band_keys, dtype=np.uint64)
    docs, bands = keys.shape
    if valid is None:
        valid = ~is_empty_signature(keys)
    doc = np.repeat(np.arange(docs, dtype=np.int64), bands)
    keys = keys.ravel()
    keep = np.repeat(np.asarray(valid, dtype=bool), bands)
    return keys[keep], doc[keep]


def is_empty_signature(band_keys: np.ndarray) -> np.ndarray:
    """bool (docs,): rows of band keys that come from the all-max signature of a document with
    no shingles (for any row count and signature width)."""
    keys = np.asarray(band_keys, dtype=np.uint64)
    empty = np.zeros(len(keys), dtype=bool)
    for reference in empty_band_keys(keys.shape[1]):
        empty |= (keys == reference).all(axis=1)
    return empty


@functools.lru_cache(maxsize=8)
def empty_band_keys(bands: int, rows_options: tuple[int, ...] = (8, 4, 5, 6, 7, 9, 10, 12, 16, 20)) -> tuple[np.ndarray, ...]:
    """Band keys of the all-max signature (uint32 and uint64 widths), for common row counts."""
    out = []
    for rows in rows_options:
        for dtype in (np.uint32, np.uint64):
            sig = np.full((1, bands * rows), np.iinfo(dtype).max, dtype=dtype)
            out.append(lsh_band_keys(sig, bands, rows)[0])
    return tuple(out)


def star_edges(keys: np.ndarray, docs: np.ndarray, ranks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate edges from bucket rows: every document sharing a key with others is linked to
    the bucket's anchor, the member with the smallest rank (``ranks[doc]``; default the doc
    number itself). Returns ``(doc, anchor)`` int64 arrays, deduplicated, ``doc != anchor``.

    ``docs`` may be any int64 document ids (e.g. global ids in a distributed reduce) when
    ``ranks`` is None: the smallest id anchors the bucket."""
    keys = np.asarray(keys, dtype=np.uint64)
    docs = np.asarray(docs, dtype=np.int64)
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rank = docs if ranks is None else np.asarray(ranks, dtype=np.int64)[docs]
    idx = np.lexsort((rank, keys))
    k, d = keys[idx], docs[idx]
    new = np.ones(len(k), dtype=bool)
    new[1:] = k[1:] != k[:-1]
    group = np.cumsum(new) - 1
    anchor = d[np.flatnonzero(new)][group]
    edge = d != anchor
    a, b = d[edge], anchor[edge]
    if not len(a):
        return a, b
    # The same pair from several bands: keep one.
    idx = np.lexsort((b, a))
    a, b = a[idx], b[idx]
    new = np.ones(len(a), dtype=bool)
    new[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[new], b[new]


def candidate_edges(band_keys: np.ndarray, order: np.ndarray | None = None,
                    valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate duplicate edges within one batch: documents sharing a bucket in any band, each
    linked to the bucket's anchor (smallest order key). ``band_keys`` from ``lsh_band_keys``;
    ``valid`` (e.g. ``has_shingles``) defaults to "has a non-empty signature". Returns
    ``(doc, anchor)`` row indices (int64)."""
    keys, docs = bucket_rows(band_keys, valid)
    return star_edges(keys, docs, order_ranks(len(band_keys), order))


def connected_components(n: int, a: np.ndarray, b: np.ndarray, ranks: np.ndarray | None = None) -> np.ndarray:
    """Component label of each of ``n`` nodes given undirected edges (a[i], b[i]): the label is
    the node of the component with the smallest rank (default: smallest index), so it is also
    the document a cluster keeps. int64 (n,).

    Union-find on arrays: each round hooks every edge's larger root onto its smaller root
    (``np.minimum.at``) and then compresses every path by pointer jumping
    (``parent = parent[parent]`` to a fixed point); rounds repeat until no edge spans two
    components. Parents only decrease, so it terminates; chains of length L take O(log L)
    rounds."""
    r = np.arange(n, dtype=np.int64) if ranks is None else np.asarray(ranks, dtype=np.int64)
    if ranks is not None:
        # Work on ranks (a permutation of 0..n-1), so that "smallest root" is "smallest rank".
        by_rank = np.empty(n, dtype=np.int64)
        by_rank[r] = np.arange(n, dtype=np.int64)
        a, b = r[np.asarray(a, dtype=np.int64)], r[np.asarray(b, dtype=np.int64)]
    else:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    parent = np.arange(n, dtype=np.int64)
    while len(a):
        pa_, pb = parent[a], parent[b]
        differ = pa_ != pb
        if not differ.any():
            break
        # Edges already inside one component never matter again.
        a, b, pa_, pb = a[differ], b[differ], pa_[differ], pb[differ]
        np.minimum.at(parent, np.maximum(pa_, pb), np.minimum(pa_, pb))
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent if ranks is None else by_rank[parent[r]]


def components_of_edges(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of edges between arbitrary int64 ids (e.g. global order keys in a
    distributed reduce): ``(node, label)`` for every id that appears, label = the smallest id of
    its component. Its output, read as edges ``node - label``, has the same components as its
    input: partial results of disjoint edge sets can be merged by running it again on their
    union (the building block of a hash-to-min / star-contraction rounds across partitions)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    labels = connected_components(len(nodes), inverse[: len(a)], inverse[len(a) :])
    return nodes, nodes[labels]


def representatives(n: int, a: np.ndarray, b: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """For each of ``n`` documents, the index of the document its cluster keeps (itself when it
    is kept): the member with the smallest order key (ties: earliest). int64 (n,). A document
    is a duplicate exactly where ``rep != arange(n)``."""
    ranks = None if order is None else order_ranks(n, order)
    return connected_components(n, a, b, ranks)


def near_duplicates(band_keys: np.ndarray, order: np.ndarray | None = None, valid: np.ndarray | None = None,
                    verify_jaccard: float | None = None,
                    shingles: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """One batch end to end: LSH candidates -> (optionally) verified pairs -> clusters. Returns
    for each document the index of the document its cluster keeps (itself when kept), int64.

    ``verify_jaccard``: drop candidate edges whose true shingle Jaccard is below it before
    merging (needs ``shingles=(offsets, hashes)`` from ``shingle_hashes``). Edges are
    document-to-anchor, so verification compares each member with its bucket's anchor."""
    a, b = candidate_edges(band_keys, order, valid)
    if verify_jaccard is not None:
        if shingles is None:
            raise ValueError("verify_jaccard needs shingles=(offsets, hashes)")
        a, b, _ = verify_pairs(shingles[0], shingles[1], a, b, verify_jaccard)
    return representatives(len(band_keys), a, b, order)


def verify_pairs(offsets: np.ndarray, hashes: np.ndarray, a: np.ndarray, b: np.ndarray,
                 threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the candidate pairs whose true shingle-set Jaccard is >= ``threshold``.

    Returns ``(a, b, jaccard)`` of the kept pairs. Exact and vectorised over all pairs: every
    document's shingle set (sorted unique hashes) is materialised once, then the pairs' two sets
    are concatenated, tagged with the pair number and sorted, and equal neighbours counted.
    Cost: O(S log S) for the sets of the S shingles involved, plus O(P log P) where
    P = sum over pairs of |A| + |B| (a pair of two 1 000-shingle documents costs ~2 000 sorted
    entries, ~16 bytes each): cheap for candidate pairs, quadratic if fed all pairs."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    jac = pair_jaccard(offsets, hashes, a, b)
    keep = jac >= threshold
    return a[keep], b[keep], jac[keep]


def pair_jaccard(offsets: np.ndarray, hashes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Jaccard of the shingle sets of documents a[i] and b[i] (float64; 0 if both empty)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if not len(a):
        return np.zeros(0, dtype=np.float64)
    # Shingle sets of the documents involved only.
    involved = np.unique(np.concatenate([a, b]))
    counts = offsets[involved + 1] - offsets[involved]
    gathered = np.asarray(hashes, dtype=np.uint64)[_ranges(offsets[involved], counts)]
    set_off, h = shingle_sets(np.concatenate([[0], np.cumsum(counts)]), gathered)
    size = np.diff(set_off)
    ia, ib = np.searchsorted(involved, a), np.searchsorted(involved, b)
    # Both sets of every pair side by side, tagged with the pair number: a shingle in both
    # appears twice within its pair once sorted.
    vals = h[np.concatenate([_ranges(set_off[ia], size[ia]), _ranges(set_off[ib], size[ib])])]
    tags = np.concatenate([np.repeat(np.arange(len(a)), size[ia]), np.repeat(np.arange(len(a)), size[ib])])
    order = np.lexsort((vals, tags))
    vals, tags = vals[order], tags[order]
    same = (vals[1:] == vals[:-1]) & (tags[1:] == tags[:-1])
    inter = np.bincount(tags[1:][same], minlength=len(a)).astype(np.float64)
    union = size[ia] + size[ib] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def rank_sets(set_off: np.ndarray, set_hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sets (sorted, unique: ``shingle_sets``) as one ascending key array for ``set_jaccard``:
    ``(ranks, keys)``, the distinct hashes sorted, and for every entry of set s
    ``s * len(ranks) + rank of its hash``. Keys ascend within a set (its hashes do) and from set
    to set, so one ``searchsorted`` finds a (set, hash) pair among all sets. One sort."""
    set_off = np.asarray(set_off, dtype=np.int64)
    set_hashes = np.asarray(set_hashes, dtype=np.uint64)[set_off[0]:set_off[-1]]
    ranks = np.unique(set_hashes)
    owner = np.repeat(np.arange(len(set_off) - 1, dtype=np.int64), np.diff(set_off))
    return ranks, owner * max(len(ranks), 1) + np.searchsorted(ranks, set_hashes)


def set_jaccard(a_off: np.ndarray, a_hashes: np.ndarray, b_rows: np.ndarray,
                set_off: np.ndarray, set_hashes: np.ndarray,
                ranked: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Exact Jaccard of pair i's own set ``a_hashes[a_off[i]:a_off[i+1]]`` with set ``b_rows[i]``
    of ``(set_off, set_hashes)``, float64 (0 if both empty). Every set must be sorted and unique
    (``shingle_sets``): then no pair's hashes need sorting, as ``pair_jaccard`` does; each ``a``
    hash is looked up among the ``b`` sets' keys (``rank_sets``; pass ``ranked`` when checking
    many batches of pairs against the same sets) with two binary searches."""
    a_off = np.asarray(a_off, dtype=np.int64)
    b_rows = np.asarray(b_rows, dtype=np.int64)
    if not len(b_rows):
        return np.zeros(0, dtype=np.float64)
    ranks, keys = ranked if ranked is not None else rank_sets(set_off, set_hashes)
    a_len = np.diff(a_off)
    a_hashes = np.asarray(a_hashes, dtype=np.uint64)[a_off[0]:a_off[-1]]
    size = max(len(ranks), 1)
    rank = np.minimum(np.searchsorted(ranks, a_hashes), size - 1)
    # A hash no b set has is in no intersection; the others are looked up in their pair's set.
    known = ranks[rank] == a_hashes if len(ranks) else np.zeros(len(a_hashes), dtype=bool)
    wanted = np.repeat(b_rows, a_len) * size + rank
    position = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    found = known & (keys[position] == wanted) if len(keys) else known
    pair = np.repeat(np.arange(len(b_rows), dtype=np.int64), a_len)
    inter = np.bincount(pair[found], minlength=len(b_rows)).astype(np.float64)
    union = a_len + (set_off[b_rows + 1] - set_off[b_rows]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def shingle_sets(offsets: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every document's shingle multiset (``shingle_hashes`` layout) as a set: its hashes sorted,
    repeats dropped. Returns ``(offsets, hashes)`` in the same layout. One sort of all hashes."""
    offsets = np.asarray(offsets, dtype=np.int64)
    docs = len(offsets) - 1
    owner = np.repeat(np.arange(docs, dtype=np.int64), np.diff(offsets))
    h = np.asarray(hashes, dtype=np.uint64)
    idx = _by_owner_then_hash(owner, h, docs)
    owner, h = owner[idx], h[idx]
    first = np.ones(len(h), dtype=bool)
    first[1:] = (owner[1:] != owner[:-1]) | (h[1:] != h[:-1])
    owner, h = owner[first], h[first]
    out = np.zeros(docs + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=docs), out=out[1:])
    return out, h


def _by_owner_then_hash(owner: np.ndarray, h: np.ndarray, docs: int) -> np.ndarray:
    """The order sorting by (owner, hash), ``owner`` in 0..docs-1. One argsort of one uint64 key,
    the owner in the top bits and the hash's top bits below (cheaper than ``lexsort``'s two
    passes); hashes equal in those top bits can stay out of order within an owner, which is
    checked for (it takes ~2^-40 odds per pair of a document's shingles), then ``lexsort``."""
    bits = max(1, int(docs).bit_length())
    if bits <= 32:
        key = (owner.astype(np.uint64) << np.uint64(64 - bits)) | (h >> np.uint64(bits))
        idx = np.argsort(key, kind="stable")
        ho, oo = h[idx], owner[idx]
        if np.all((oo[1:] != oo[:-1]) | (ho[1:] >= ho[:-1])):
            return idx
    return np.lexsort((h, owner))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) for every (s, n), vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    out = np.arange(total, dtype=np.int64)
    out += np.repeat(np.asarray(starts, dtype=np.int64) - (np.cumsum(lengths) - lengths), lengths)
    return out


# ---------------------------------------------------------------------------------------------
# Exact duplicates


def exact_keys(texts, *, lowercase: bool = False) -> np.ndarray:
    """128-bit key of every document's normalised text, as uint64 array of shape (docs, 2)
    (the xxh3_128 digest's big-endian halves: ``[:, 0]`` high, ``[:, 1]`` low).

    Normalisation: every run of whitespace (the set ``shingle_hashes`` splits on:
    ``str.split()``'s whitespace plus the ASCII control characters) becomes one space, leading
    and trailing whitespace is dropped: ``" ".join(text.split())`` in Python terms. Case is kept
    unless ``lowercase`` (then folded as for the shingles). Null text hashes as "".

    The normalisation is vectorised over the batch (NumPy over the Arrow bytes); the hash is one
    ``xxh3_128`` C call per document over its normalised bytes (~0.2 us + ~0.1 ns/byte): Arrow,
    Polars and NumPy have no columnar 128-bit hash, and Polars' 64-bit ``hash`` is not stable
    across Polars versions, so it cannot key a dedup index that outlives one run."""
    import xxhash

    docs, chunks = word_chunks(texts, lowercase)
    out = np.empty((docs, 2), dtype=np.uint64)
    digest = xxhash.xxh3_128_digest
    for d0, d1, x, nb, starts, ends, word_off in chunks:
        words = np.diff(word_off)
        # Kept: the words' bytes and, after every word but a document's last, one space.
        keep = x[:nb] > 32
        gap = np.ones(len(starts), dtype=bool)
        gap[word_off[1:][words > 0] - 1] = False
        gaps = ends[gap]
        keep[gaps] = True
        x[gaps] = 32
        y = np.ascontiguousarray(x[:nb][keep])
        letters = np.concatenate([[0], np.cumsum(ends - starts)])
        kept = letters[word_off[1:]] - letters[word_off[:-1]] + np.maximum(words - 1, 0)
        new_off = np.concatenate([[0], np.cumsum(kept)]).tolist()
        mv = memoryview(y)
        digests = b"".join([digest(mv[s:e]) for s, e in zip(new_off[:-1], new_off[1:])])
        out[d0:d1] = np.frombuffer(digests, dtype=">u8").reshape(-1, 2)
    return out


def exact_duplicates(keys: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """For exact keys (docs, 2), the index of the document kept for each (smallest order key
    among identical keys; itself when kept). int64 (docs,)."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    n = len(keys)
    ranks = order_ranks(n, order)
    idx = np.lexsort((ranks, keys[:, 1], keys[:, 0]))
    k = keys[idx]
    new = np.ones(n, dtype=bool)
    new[1:] = (k[1:] != k[:-1]).any(axis=1)
    group = np.cumsum(new) - 1
    rep = np.empty(n, dtype=np.int64)
    rep[idx] = idx[np.flatnonzero(new)][group]
    return rep


__all__ = [
    "bucket_rows", "candidate_edges", "components_of_edges", "connected_components", "empty_band_keys",
    "exact_duplicates", "exact_keys", "is_empty_signature", "near_duplicates", "order_ranks", "pair_jaccard",
    "rank_sets", "representatives", "set_jaccard", "shingle_sets", "star_edges", "verify_pairs",
]
