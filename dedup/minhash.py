"""MinHash signatures and LSH band keys over whole Arrow batches: the map side of near-duplicate
detection (Broder 1997; FineWeb, Penedo et al. 2024: word 5-grams, 112 permutations as
14 bands x 8 rows).

Pipeline, each step a vectorised function of a batch (no Python loop per document or shingle)::

    offsets, hashes = shingle_hashes(texts)              # word n-gram shingles -> uint64
    sigs = minhash_signatures(offsets, hashes)            # (docs, 112) uint32
    keys = lsh_band_keys(sigs)                            # (docs, 14)  uint64, one per band

Text normalisation (the shingle definition)
-------------------------------------------
A document is lower-cased and split on whitespace into words, and every run of ``n`` consecutive
words is one shingle: the set of ``" ".join(words[i:i+n])``. That is FineWeb's 5-gram definition
and exactly the measure ``ingest.sample`` builds its labelled near duplicates to
(``text.lower().split()``), so the sample's recorded Jaccard is the Jaccard these shingles see.
Precisely, the work is done on UTF-8 bytes with lookup tables built from Python's own Unicode
database:

* whitespace: everything ``str.split()`` splits on (ASCII ``\\t\\n\\v\\f\\r``, ``\\x1c``-``\\x1f``,
  space, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000), plus the
  other ASCII control characters U+0000-U+001F, which never carry words;
* lower-casing: ``str.lower()`` for every code point of the Basic Multilingual Plane whose lower
  case is one code point of the same UTF-8 length (ASCII, Latin-1, Latin Extended, Greek with
  its final sigma, Cyrillic, Armenian, Georgian, fullwidth Latin, ...). Not folded: the handful
  of mappings that change length (U+0130 'İ' -> 'i̇', U+212A KELVIN SIGN -> 'k', U+2126 OHM
  SIGN) and the supplementary planes (Deseret, Osage, Adlam...). On the real crawl in
  ../shared/data/crawl the words equal ``text.lower().split()``'s in every document without
  ASCII control characters (a test checks it);
* ``strip_punctuation=True`` (off by default) additionally turns Unicode punctuation (P*) and
  symbols (S*) of the BMP into spaces, close to datatrove's ``simplify_text(remove_punctuation=
  True)`` used by ``MinhashDedupSignature`` (which also maps digits to 0 and strips diacritics;
  crawlsift does not).
* a document with fewer than ``n`` words (but at least one) has one shingle: all of its words.
  A document with no words has no shingles; its signature is all-max (as an empty datasketch
  MinHash) and it must not be bucketed (see ``has_shingles``).

Whitespace-split words make no sense for scripts written without spaces (Chinese, Japanese,
Thai): there a "word" is a run of text between spaces, so such documents are compared as a few
long shingles. FineWeb deduplicated per language with language-specific word tokenizers; so
should a CJK pipeline (tokenise first, or use character n-grams).

Shingle hashes
--------------
``hashfunc="wordmix"`` (default) is computed in NumPy for the whole batch: each word's lowered
bytes are read as little-endian 8-byte lanes (the last one zero-padded), each lane ``j`` is
finalised with the MurmurHash3/xxHash avalanche ``fmix64(lane_j ^ j * P)`` and the word hash is
their sum mod 2**64 (a word of <= 8 bytes is thus ``fmix64`` of its bytes: injective, since
words hold no byte <= 0x20). A shingle's hash is the Horner combination of its word hashes mod
2**64 with a fixed odd multiplier, finalised by ``fmix64`` again. All arithmetic is explicit
uint64 wrap-around, so the values are the same on every platform and NumPy version (a test pins
them: signatures stored by one release stay comparable with the next).

``hashfunc="xxh64"`` is the reference: ``xxhash.xxh64_intdigest(" ".join(words).encode())`` per
shingle over the same words (the hash datatrove's ``MinhashDedupSignature`` applies to its
shingle strings), one C call per shingle from a Python loop: an order of magnitude slower, for
interoperability and tests. A callable ``bytes -> int`` (0 <= value < 2**64) may be given
likewise. Hashing every shingle string with xxh64 cannot be vectorised in NumPy, which is why it
is not the default.

Signatures and datasketch
-------------------------
``minhash_signatures`` implements datasketch's ``MinHash`` permutation schemes bit for bit, with
permutation parameters drawn the same way from ``np.random.RandomState(seed)``:

* ``"affine32"`` (default; datasketch >= 2.0's default): the shingle hash's low 32 bits, pre-mixed
  with the 32-bit MurmurHash3 finalizer, then ``a * h + b mod 2**32`` with odd ``a``: a bijection
  per permutation (no collision bias on large sets, datasketch issue #212). uint32 signatures.
* ``"affine64"``: the same on 64 bits. uint64 signatures.
* ``"legacy"`` (datasketch < 2.0, and the formula of datatrove's ``get_signature``):
  ``(a * h + b) mod (2**61 - 1)`` with ``a`` in [1, p), ``b`` in [0, p) and ``a * h + b``
  wrapping mod 2**64 first, as NumPy does in both libraries, truncated to 32 bits. Returned as
  uint32 (datasketch stores the same values in uint64).

So, for the same shingle hashes ``h`` of document ``i``::

    m = datasketch.MinHash(num_perm, seed=seed, scheme=scheme, hashfunc=lambda v: v)
    m.update_batch(h[offsets[i]:offsets[i+1]] & mask)     # mask: 2**32-1 for affine32
    m.hashvalues == minhash_signatures(offsets, h, num_perm, seed, scheme)[i]

(``tests/test_dedup_core.py`` checks this for all three schemes, and end to end from text with
``hashfunc="xxh64"`` against ``MinHash(hashfunc=xxh64)`` fed the same shingle strings.) The
default ``hashfunc`` of datasketch (SHA-1 of each shingle's bytes) is not reproduced: ~1 us per
shingle is the cost this module exists to avoid.

The default is affine32, not the Mersenne-prime formula, because it is the installed datasketch's
default, it is bijective, and it runs in 32-bit lanes: ~0.3 ns per (shingle, permutation) in
NumPy against ~2.5 ns for ``"legacy"``, whose uint64 multiply and modular fold dominate.

Cost (one core, real crawl text, ``python -m bench.dedup``): shingling ~5 ns per byte of text
(half of it the per-byte passes, half the per-word hashing), signatures ~0.3 ns per
(shingle, permutation), band keys negligible. Memory: the shingle hashes (8 bytes per word) of
the batch plus ~12 bytes per byte of a 2 MB text chunk and one (num_perm x 8192) block.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# FineWeb (Penedo et al. 2024) / datatrove MinhashConfig defaults: 5-gram shingles, 14 buckets of
# 8 hashes = 112 permutations, seed 1.
NGRAM = 5
BANDS = 14
ROWS = 8
NUM_PERM = BANDS * ROWS
SEED = 1
SCHEMES = ("affine32", "affine64", "legacy")

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
_MAX32 = np.uint64((1 << 32) - 1)
_U64 = np.uint64

# xxHash64 primes and the MurmurHash3 64-bit finalizer (also xxHash's avalanche shape).
_P1 = _U64(0x9E3779B185EBCA87)
_P2 = _U64(0xC2B2AE3D27D4EB4F)
_P4 = _U64(0x85EBCA77C2B2AE63)
_SHINGLE_MULT = _U64(0x9FB21C651E98DF25)  # odd: Horner multiplier combining word hashes
_BAND_SEED = _U64(0x2545F4914F6CDD1D)

_LANE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
# Text processed at a time by the tokenizer (bounds its temporaries: ~12 bytes per text byte).
_CHUNK_BYTES = 2 << 20
# Shingles per block in the signature kernel: a (num_perm, block) matrix of ~3.5 MB (uint32).
_SIG_BLOCK = 8192


# ---------------------------------------------------------------------------------------------
# Bit mixing (explicit uint64 wrap-around; NumPy never raises on unsigned overflow in arrays)


def fmix64(h: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: an avalanching bijection of uint64 (in place if ``out``)."""
    h = np.array(h, dtype=np.uint64, copy=True) if out is None else out
    h ^= h >> _U64(33)
    h *= _U64(0xFF51AFD7ED558CCD)
    h ^= h >> _U64(33)
    h *= _U64(0xC4CEB9FE1A85EC53)
    h ^= h >> _U64(33)
    return h


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer on uint32 (datasketch's affine32 pre-mix)."""
    h = h.astype(np.uint32, copy=True)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


# ---------------------------------------------------------------------------------------------
# Unicode tables (built once per process from Python's Unicode database)


@functools.lru_cache(maxsize=2)
def _bmp_tables(strip_punctuation: bool) -> tuple:
    """For the BMP above ASCII: ``lower`` (code point -> lower-case code point of the same UTF-8
    length, else itself) and ``sep`` (code point is whitespace, or punctuation/symbol when
    stripping); the ASCII byte table ``ascii_sep`` (bytes that separate words); and the table
    of UTF-8 lead bytes whose code points ever need rewriting (the others, e.g. the CJK
    ideographs' 0xE4-0xE9, are skipped without decoding)."""
    lower = np.arange(0x10000, dtype=np.uint32)
    sep = np.zeros(0x10000, dtype=bool)
    for cp in range(0x80, 0x10000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        lo = c.lower()
        if len(lo) == 1 and lo != c and _utf8_len(ord(lo)) == _utf8_len(cp):
            lower[cp] = ord(lo)
        if c.isspace() or (strip_punctuation and unicodedata.category(c)[0] in "PS"):
            sep[cp] = True
    ascii_sep = np.zeros(256, dtype=bool)
    ascii_sep[:33] = True  # controls and space
    if strip_punctuation:
        for b in range(33, 128):
            if unicodedata.category(chr(b))[0] in "PS":
                ascii_sep[b] = True
    touched = np.flatnonzero((lower != np.arange(0x10000)) | sep)
    lead_interest = np.zeros(256, dtype=bool)  # lead bytes whose code points may be rewritten
    lead_interest[np.where(touched < 0x800, 0xC0 | (touched >> 6), 0xE0 | (touched >> 12))] = True
    # The run of lead bytes around the CJK ideographs' (0xE4-0xE9) that never need rewriting.
    first = last = 0xE6
    while first > 0xC2 and not lead_interest[first - 1]:
        first -= 1
    while last < 0xF4 and not lead_interest[last + 1]:
        last += 1
    return lower, sep, ascii_sep, lead_interest, (first, last)


def _utf8_len(cp: int) -> int:
    return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


# ---------------------------------------------------------------------------------------------
# Input: text columns as (offsets, bytes) without copying


def _text_buffers(texts) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64 of len docs+1, data uint8) of a text column given as a pyarrow
    (Chunked)Array of string/large_string, a Polars Series or a list of str, with every document
    followed by one space (Arrow's ``binary_join_element_wise``, at memory speed) so that no
    word runs from one document into the next. Nulls are empty documents."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    elif not isinstance(texts, pa.Array):
        if hasattr(texts, "to_arrow"):  # polars.Series
            texts = texts.to_arrow()
            if isinstance(texts, pa.ChunkedArray):
                texts = texts.combine_chunks()
        else:
            texts = pa.array(list(texts), type=pa.large_string())
    if pa.types.is_binary(texts.type):
        texts = texts.cast(pa.large_binary())
    elif not (pa.types.is_large_string(texts.type) or pa.types.is_large_binary(texts.type)):
        try:  # string, string_view (Polars), dictionary-encoded strings
            texts = texts.cast(pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise TypeError(f"need a string column, got {texts.type}") from exc
    if texts.null_count:
        texts = pc.fill_null(texts, pa.scalar("", texts.type))
    empty, space = pa.scalar("", texts.type), pa.scalar(" ", texts.type)
    texts = pc.binary_join_element_wise(texts, empty, space)
    _, off_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[texts.offset : texts.offset + len(texts) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets, data


def _chunks(offsets: np.ndarray, limit: int | None = None) -> list[tuple[int, int]]:
    """Split documents [0, docs) into consecutive runs of about ``limit`` bytes (default
    ``_CHUNK_BYTES``), at least one document each."""
    limit = _CHUNK_BYTES if limit is None else limit
    docs = len(offsets) - 1
    out, d = [], 0
    while d < docs:
        e = int(np.searchsorted(offsets, offsets[d] + limit, side="right")) - 1
        e = min(max(e, d + 1), docs)
        out.append((d, e))
        d = e
    return out


def _load_chunk(data: np.ndarray, offsets: np.ndarray, d0: int, d1: int) -> tuple[np.ndarray, int, np.ndarray]:
    """Documents d0..d1-1 (each ending with its separating space, see ``_text_buffers``) copied
    into one writable buffer with 16 zero bytes of padding (8-byte loads past the end stay
    inside). Returns (buffer, bytes used, chunk-local document offsets)."""
    base = int(offsets[d0])
    nb = int(offsets[d1]) - base
    x = np.empty(nb + 16 + (-nb) % 8, dtype=np.uint8)  # a multiple of 8 bytes
    x[:nb] = data[base : base + nb]
    x[nb:] = 0
    return x, nb, offsets[d0 : d1 + 1] - base


# ---------------------------------------------------------------------------------------------
# Tokenizer: lower-case in place, find word spans


def _normalise(x: np.ndarray, nb: int, lowercase: bool, strip_punctuation: bool, doc_off: np.ndarray) -> None:
    """Rewrite the UTF-8 bytes ``x[:nb]`` in place: lower-case (if asked) and turn separators
    (whitespace; punctuation/symbols when stripping) into spaces, every byte of them.
    ``doc_off``: chunk-local document offsets (context for final sigma stays in its document)."""
    lower, sep, ascii_sep, lead_interest, skip_ranges = _bmp_tables(strip_punctuation)
    v = x[:nb]
    if lowercase:  # ASCII: v |= 32 where 'A' <= v <= 'Z' (multiply: NumPy has no SIMD uint8 shift)
        up = np.subtract(v, np.uint8(65))
        np.less(up, np.uint8(26), out=up.view(bool))
        np.multiply(up, np.uint8(32), out=up)
        np.bitwise_or(v, up, out=v)
    if strip_punctuation:
        v[ascii_sep[v]] = 32
    # Non-ASCII: code points of 2- and 3-byte sequences whose lead byte can need rewriting
    # (followed by valid continuation bytes; x is padded, so x[p + 2] always exists).
    high = np.zeros(len(x), dtype=bool)  # len(x) is a multiple of 8 (see _load_chunk)
    np.greater_equal(v, np.uint8(0xC2), out=high[:nb])
    count = np.count_nonzero(high)
    if count > nb >> 4:
        # Dense non-Latin text: drop in bulk the lead bytes of the CJK ideographs (0xE4-0xE9),
        # which never need rewriting, before listing positions.
        first, last = skip_ranges
        scratch = np.subtract(v, np.uint8(first))
        high[:nb] &= scratch > np.uint8(last - first)
        leads = np.flatnonzero(high)
    else:
        leads = _sparse_flatnonzero(high, count)
    if not len(leads):
        return
    leads = leads[lead_interest[x[leads]]]
    if not len(leads):
        return
    b0 = x[leads]
    b1 = x[leads + 1]
    two = b0 < 0xE0
    three = ~two
    cont1 = (b1 & 0xC0) == 0x80
    b2 = x[leads + 2]
    cont2 = (b2 & 0xC0) == 0x80
    ok2 = two & cont1
    ok3 = three & cont1 & cont2
    cp = np.where(
        ok2,
        ((b0.astype(np.uint32) & 0x1F) << 6) | (b1 & 0x3F),
        ((b0.astype(np.uint32) & 0x0F) << 12) | ((b1.astype(np.uint32) & 0x3F) << 6) | (b2 & 0x3F),
    )
    valid = ok2 | ok3
    is_sep = sep[cp] & valid
    if is_sep.any():
        p = leads[is_sep]
        x[p] = 32
        x[p + 1] = 32
        p3 = leads[is_sep & three]
        x[p3 + 2] = 32
    if lowercase:
        new = lower[cp]
        changed = (new != cp) & valid & ~is_sep
        sigma = np.flatnonzero(changed & (cp == 0x3A3))
        if len(sigma):
            new[sigma] = _final_sigma(x, leads[sigma], doc_off)
        if changed.any():
            p, n, t = leads[changed], new[changed], three[changed]
            p2, n2 = p[~t], n[~t]
            x[p2] = (0xC0 | (n2 >> 6)).astype(np.uint8)
            x[p2 + 1] = (0x80 | (n2 & 0x3F)).astype(np.uint8)
            p3, n3 = p[t], n[t]
            x[p3] = (0xE0 | (n3 >> 12)).astype(np.uint8)
            x[p3 + 1] = (0x80 | ((n3 >> 6) & 0x3F)).astype(np.uint8)
            x[p3 + 2] = (0x80 | (n3 & 0x3F)).astype(np.uint8)


def _sparse_flatnonzero(mask: np.ndarray, count: int) -> np.ndarray:
    """``np.flatnonzero`` of a sparse bool mask whose length is a multiple of 8: 8 bytes at a
    time first (``np.flatnonzero`` costs ~0.5 ns per element scanned, however few are set)."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    words = np.flatnonzero(mask.view(np.uint64))
    candidates = ((words << 3)[:, None] + np.arange(8)).ravel()
    return candidates[mask[candidates]]


def _final_sigma(x: np.ndarray, positions: np.ndarray, doc_off: np.ndarray) -> np.ndarray:
    """Lower case of the capital sigmas (U+03A3) at byte ``positions``: 'ς' at the end of a word,
    else 'σ', as ``str.lower()`` decides it (Unicode Final_Sigma), from up to 8 characters of
    context either side within the document. One Python call per capital sigma: they are rare
    outside all-caps Greek."""
    out = np.empty(len(positions), dtype=np.uint32)
    doc = np.searchsorted(doc_off, positions, side="right") - 1
    lo = np.maximum(positions - 32, doc_off[doc]).tolist()
    hi = np.minimum(positions + 34, doc_off[doc + 1]).tolist()
    for i, p in enumerate(positions.tolist()):
        left = bytes(x[lo[i] : p]).decode("utf-8", "ignore")[-8:]
        right = bytes(x[p + 2 : hi[i]]).decode("utf-8", "ignore")[:8]
        out[i] = ord((left + "\u03a3" + right).lower()[len(left)])
    return out


def _word_spans(x: np.ndarray, nb: int, doc_off: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Word [start, end) byte spans in a normalised chunk (separators are bytes <= 0x20; every
    document ends with one, see ``_load_chunk``) and the word offsets per document (docs+1)."""
    word = np.empty(nb + 1, dtype=bool)
    word[0] = False
    np.greater(x[:nb], np.uint8(32), out=word[1:])
    # Alternately a word's start and its end; the last byte is a separator, so they pair up.
    starts, ends = np.flatnonzero(word[1:] != word[:-1]).reshape(-1, 2).T.copy()
    word_off = np.searchsorted(starts, doc_off, side="left")
    return starts, ends, word_off


def word_hashes(x: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """uint64 hash of each word's bytes: the word read as little-endian 8-byte lanes (the last
    one zero-padded), ``sum_j fmix64(lane_j ^ j * P1) mod 2**64``. A word of <= 8 bytes is
    ``fmix64`` of its bytes, injective (words hold no zero byte). ``x`` must have 8 bytes of
    padding past the text."""
    lanes = np.ndarray((len(x) - 7,), dtype="<u8", buffer=x, strides=(1,))  # unaligned loads
    lengths = ends - starts
    acc = lanes[starts]
    acc &= _LANE_MASKS[np.minimum(lengths, 8)]
    fmix64(acc, out=acc)
    two = np.flatnonzero((lengths > 8) & (lengths <= 16))
    if len(two):  # the common case of one more lane: no segments to build
        k = lanes[starts[two] + 8]
        k &= _LANE_MASKS[lengths[two] - 8]
        k ^= _P1
        acc[two] += fmix64(k, out=k)
    longer = np.flatnonzero(lengths > 16)
    if len(longer):
        # Lanes 1.. of the longer words, all at once, word after word (j numbers them within
        # their word), summed per word with one reduceat.
        size = lengths[longer]
        extra = (size - 1) >> 3
        first = np.cumsum(extra) - extra
        lane = np.arange(int(first[-1] + extra[-1]), dtype=np.int64)
        lane -= np.repeat(first - 1, extra)
        pos = np.repeat(starts[longer], extra)
        pos += lane << 3
        k = lanes[pos]
        last = first + extra - 1
        k[last] &= _LANE_MASKS[size - (extra << 3)]
        k ^= lane.astype(np.uint64) * _P1
        fmix64(k, out=k)
        acc[longer] += np.add.reduceat(k, first)
    return acc


class WordChunk(NamedTuple):
    """Documents ``[first, end)`` of a batch, normalised in one buffer (see ``word_chunks``)."""

    first: int
    end: int
    bytes: np.ndarray  # the normalised UTF-8 bytes (``used`` of them), zero-padded
    used: int
    starts: np.ndarray  # each word's [start, end) byte span in ``bytes``
    ends: np.ndarray
    word_offsets: np.ndarray  # (end - first + 1,): document i's words are word_offsets[i]:word_offsets[i+1]


def word_chunks(texts, lowercase: bool = True, strip_punctuation: bool = False) -> tuple[int, Iterator[WordChunk]]:
    """The words of a text column, the way shingles, exact keys and line keys see them (the
    module docstring's normalisation), in runs of documents of ~2 MB each: ``(documents, chunks)``.
    ``word_hashes(chunk.bytes, chunk.starts, chunk.ends)`` hashes the words of a chunk."""
    offsets, data = _text_buffers(texts)

    def chunks() -> Iterator[WordChunk]:
        for d0, d1 in _chunks(offsets):
            x, nb, doc_off = _load_chunk(data, offsets, d0, d1)
            _normalise(x, nb, lowercase, strip_punctuation, doc_off)
            yield WordChunk(d0, d1, x, nb, *_word_spans(x, nb, doc_off))

    return len(offsets) - 1, chunks()



def _shingles_from_words(wh: np.ndarray, word_off: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle counts per document and the shingle hashes (document order) from word hashes."""
    counts_w = np.diff(word_off)
    total = len(wh)
    counts = np.where(counts_w >= n, counts_w - (n - 1), np.minimum(counts_w, 1))
    if total >= n:
        h = wh[: total - n + 1].copy()
        for k in range(1, n):
            h *= _SHINGLE_MULT
            h += wh[k : total - n + 1 + k]
        # Drop windows that cross a document end: the last n-1 positions of each document.
        valid = np.ones(total - n + 1, dtype=bool)
        tail = (word_off[1:, None] - np.arange(1, n)[None, :]).ravel()
        lo = np.repeat(word_off[:-1], n - 1)
        drop = tail[(tail >= lo) & (tail < total - n + 1)]
        valid[drop] = False
        h = h[valid]
    else:
        h = np.zeros(0, dtype=np.uint64)
    short = np.flatnonzero((counts_w > 0) & (counts_w < n))
    if len(short):
        # Documents with fewer than n words: one shingle of all their words (Horner as above).
        first = word_off[short]
        sh = wh[first].copy()
        for k in range(1, n - 1):
            more = counts_w[short] > k
            step = sh * _SHINGLE_MULT + wh[np.minimum(first + k, total - 1)]
            sh = np.where(more, step, sh)
        # Insert each at its document's place: index in the final order minus the short
        # documents' shingles before it, which `h` lacks.
        pos = (np.cumsum(counts) - counts)[short]
        h = np.insert(h, pos - np.arange(len(short)), sh)
    fmix64(h, out=h)
    return counts, h


def _reference_shingles(x: np.ndarray, starts: np.ndarray, ends: np.ndarray, word_off: np.ndarray, n: int,
                        hashfunc: Callable[[bytes], int]) -> tuple[np.ndarray, np.ndarray]:
    """Same shingles as the vectorised path, each hashed as ``hashfunc(" ".join(words))``."""
    buf = x.tobytes()
    counts, out = [], []
    s_list, e_list = starts.tolist(), ends.tolist()
    for d in range(len(word_off) - 1):
        w = [buf[s:e] for s, e in zip(s_list[word_off[d] : word_off[d + 1]], e_list[word_off[d] : word_off[d + 1]])]
        grams = [b" ".join(w[i : i + n]) for i in range(len(w) - n + 1)] if len(w) >= n else ([b" ".join(w)] if w else [])
        counts.append(len(grams))
        out.extend(hashfunc(g) for g in grams)
    return np.array(counts, dtype=np.int64), np.array(out, dtype=np.uint64)


def shingle_hashes(
    texts: pa.Array | pa.ChunkedArray | Sequence[str],
    n: int = NGRAM,
    lowercase: bool = True,
    *,
    strip_punctuation: bool = False,
    hashfunc: str | Callable[[bytes], int] = "wordmix",
) -> tuple[np.ndarray, np.ndarray]:
    """Word ``n``-gram shingles of every document, hashed to uint64 (see the module doc for the
    normalisation and the hash).

    Returns ``(offsets, hashes)``: ``offsets`` int64 of shape (docs + 1,), ``hashes`` uint64 of
    shape (offsets[-1],); document ``i``'s shingle hashes are ``hashes[offsets[i]:offsets[i+1]]``,
    in text order, repeats included (a multiset; MinHash does not care, ``np.unique`` makes it a
    set). FineWeb default n = 5.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    if isinstance(hashfunc, str) and hashfunc not in ("wordmix", "xxh64"):
        raise ValueError(f"hashfunc must be 'wordmix', 'xxh64' or a callable, got {hashfunc!r}")
    docs, chunks = word_chunks(texts, lowercase, strip_punctuation)
    counts_all: list[np.ndarray] = []
    hashes_all: list[np.ndarray] = []
    for _, _, x, _, starts, ends, word_off in chunks:
        if hashfunc == "wordmix":
            counts, h = _shingles_from_words(word_hashes(x, starts, ends), word_off, n)
        else:
            if hashfunc == "xxh64":
                import xxhash

                fn = xxhash.xxh64_intdigest
            else:
                fn = hashfunc
            counts, h = _reference_shingles(x, starts, ends, word_off, n, fn)
        counts_all.append(counts)
        hashes_all.append(h)
    out_offsets = np.zeros(docs + 1, dtype=np.int64)
    if docs:
        np.cumsum(np.concatenate(counts_all), out=out_offsets[1:])
    hashes = np.concatenate(hashes_all) if hashes_all else np.zeros(0, dtype=np.uint64)
    return out_offsets, hashes


def has_shingles(offsets: np.ndarray) -> np.ndarray:
    """bool (docs,): documents with at least one shingle. Only these may be bucketed: the others
    have the all-max signature and would all land in the same buckets."""
    return np.diff(offsets) > 0


# ---------------------------------------------------------------------------------------------
# Signatures


@functools.lru_cache(maxsize=16)
def permutations(num_perm: int = NUM_PERM, seed: int = SEED, scheme: str = "affine32") -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) permutation parameters, drawn exactly as datasketch's ``MinHash`` draws them
    from ``np.random.RandomState(seed)`` for the scheme (uint32 for affine32, else uint64)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        ab = np.array(
            [(gen.randint(1, MERSENNE_PRIME, dtype=np.uint64), gen.randint(0, MERSENNE_PRIME, dtype=np.uint64))
             for _ in range(num_perm)],
            dtype=np.uint64,
        ).T
        a, b = ab[0].copy(), ab[1].copy()
    else:
        width, dtype = (32, np.uint32) if scheme == "affine32" else (64, np.uint64)
        a = gen.randint(0, 1 << (width - 1), num_perm, dtype=dtype) * dtype(2) + dtype(1)
        b = gen.randint(0, 1 << width, num_perm, dtype=dtype)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def minhash_signatures(
    offsets: np.ndarray,
    hashes: np.ndarray,
    num_perm: int = NUM_PERM,
    seed: int = SEED,
    scheme: str = "affine32",
    *,
    block: int = _SIG_BLOCK,
    kernel: str = "compiled",
) -> np.ndarray:
    """MinHash signatures of every document: shape (docs, num_perm), uint32 for ``affine32`` and
    ``legacy``, uint64 for ``affine64``; equal to datasketch's ``MinHash(num_perm, seed,
    scheme=scheme).hashvalues`` for the same shingle hashes (module doc). Documents without
    shingles get the all-max signature.

    ``kernel="compiled"`` (default; affine32 only, the default scheme): one loop over documents,
    shingles and permutations compiled by Numba, the running minimum kept in the output row: no
    temporaries (faster than the NumPy kernel: `python -m bench.dedup`). ``kernel="numpy"`` (and the other schemes): vectorised
    over the batch, the (num_perm x shingles) matrix built ``block`` shingles at a time (bounded
    memory: num_perm * block * itemsize, ~3.5 MB by default) and min-reduced per document with
    ``np.minimum.reduceat``; a document spanning blocks is combined across them. Both give the
    same signatures (a test checks it).
    """
    a, b = permutations(num_perm, seed, scheme)
    offsets = np.asarray(offsets, dtype=np.int64)
    hashes = np.asarray(hashes, dtype=np.uint64)
    docs = len(offsets) - 1
    if kernel not in ("compiled", "numpy"):
        raise ValueError(f"kernel must be 'compiled' or 'numpy', got {kernel!r}")
    if scheme == "affine32" and kernel == "compiled":
        out = np.full((docs, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        if docs and len(hashes):
            _affine32_kernel()(offsets, _fmix32(hashes.astype(np.uint32)), a, b, out)
        return out
    if scheme == "affine32":
        dtype, hv = np.uint32, _fmix32(hashes.astype(np.uint32))  # low 32 bits
    elif scheme == "affine64":
        dtype, hv = np.uint64, fmix64(hashes)
    else:
        dtype, hv = np.uint32, hashes
    nonempty = np.flatnonzero(np.diff(offsets) > 0)
    starts = offsets[nonempty]
    ends = offsets[nonempty + 1]
    total = int(offsets[-1]) if docs else 0
    # Signatures of the documents with shingles, as columns: block [lo, hi) of the shingles
    # covers the consecutive columns i0..i1-1, so every write is a slice.
    sig = np.empty((num_perm, len(nonempty)), dtype=dtype)
    a_col, b_col = a[:, None], b[:, None]
    buf = np.empty((num_perm, block), dtype=np.uint64 if scheme == "legacy" else dtype)
    bounds = np.arange(0, total + block, block)
    bounds[-1] = total
    first_doc = np.searchsorted(ends, bounds[:-1], side="right")  # first doc ending after lo
    last_doc = np.searchsorted(starts, bounds[1:], side="left")  # docs starting before hi
    for lo, hi, i0, i1 in zip(bounds[:-1].tolist(), bounds[1:].tolist(), first_doc.tolist(), last_doc.tolist()):
        v = buf[:, : hi - lo]
        np.multiply(a_col, hv[None, lo:hi], out=v)  # wraps mod 2**width, as datasketch
        v += b_col
        if scheme == "legacy":
            _mod_mersenne(v)
            v &= _MAX32
        seg = starts[i0:i1] - lo
        seg[0] = max(seg[0], 0)
        red = np.minimum.reduceat(v, seg, axis=1)
        if starts[i0] < lo:  # continues a document begun in an earlier block
            np.minimum(red[:, 0], sig[:, i0], out=red[:, 0])
        sig[:, i0:i1] = red
    out = np.full((docs, num_perm), np.iinfo(dtype).max, dtype=dtype)
    out[nonempty] = sig.T
    return out


@functools.lru_cache(maxsize=1)
def _affine32_kernel():
    """The compiled affine32 kernel (Numba, imported and compiled on first use; cached on disk)."""
    from numba import njit

    @njit(cache=True, nogil=True, boundscheck=False)
    def affine32_min(offsets, hv, a, b, out):
        perms = a.shape[0]
        for d in range(offsets.shape[0] - 1):
            row = out[d]
            for s in range(offsets[d], offsets[d + 1]):
                x = hv[s]
                for p in range(perms):
                    # (a * x + b) mod 2**32, as datasketch's affine32 computes it
                    row[p] = min(row[p], np.uint32(a[p] * x + b[p]))

    return affine32_min


def _mod_mersenne(v: np.ndarray) -> None:
    """v %= 2**61 - 1 in place for uint64 v (exactly NumPy's ``%``, a few times faster)."""
    t = v >> _U64(61)
    v &= MERSENNE_PRIME
    v += t
    t = v >= MERSENNE_PRIME
    v -= t.astype(np.uint64) * MERSENNE_PRIME


# ---------------------------------------------------------------------------------------------
# LSH banding


def lsh_band_keys(signatures: np.ndarray, bands: int = BANDS, rows: int = ROWS) -> np.ndarray:
    """One uint64 key per (document, band): shape (docs, bands). Two documents share a key in band
    ``j`` exactly when their signatures agree on rows ``j*rows .. j*rows+rows-1`` (up to 64-bit
    hash collisions, ~docs^2 / 2^65 per band). The band index is mixed into the key, so keys of
    different bands never meet: a reduce may partition on the key alone.
    FineWeb: 14 bands x 8 rows of a 112-permutation signature."""
    sig = np.ascontiguousarray(signatures)
    docs, perms = sig.shape
    if bands * rows > perms:
        raise ValueError(f"{bands} bands x {rows} rows need {bands * rows} permutations, signatures have {perms}")
    sig = sig[:, : bands * rows]
    if sig.dtype == np.uint32 and rows % 2 == 0:
        words = np.ascontiguousarray(sig).view("<u8").reshape(docs, bands, rows // 2)
    else:
        words = sig.astype(np.uint64).reshape(docs, bands, rows)
    key = (np.arange(bands, dtype=np.uint64) + _U64(1)) * _BAND_SEED
    key = np.broadcast_to(key, (docs, bands)).copy()
    for k in range(words.shape[2]):
        key *= _SHINGLE_MULT
        key += fmix64(words[:, :, k])
    return fmix64(key, out=key)


def threshold_curve(bands: int = BANDS, rows: int = ROWS, grid: np.ndarray | Sequence[float] | None = None) -> dict:
    """The LSH S-curve: probability that two documents of Jaccard ``s`` share at least one band,
    ``1 - (1 - s**rows)**bands``, at ``grid`` (default 0, 0.05, ..., 1), and the approximate
    threshold ``(1/bands)**(1/rows)`` where the curve is steepest (0.719 for FineWeb's 14 x 8)."""
    s = np.linspace(0.0, 1.0, 21) if grid is None else np.asarray(grid, dtype=float)
    p = candidate_probability(s, bands, rows)
    return {
        "bands": bands,
        "rows": rows,
        "threshold": float((1.0 / bands) ** (1.0 / rows)),
        "jaccard": s.tolist(),
        "probability": p.tolist(),
    }


def candidate_probability(s: np.ndarray | float, bands: int = BANDS, rows: int = ROWS) -> np.ndarray:
    """P(share >= 1 band | Jaccard s) = 1 - (1 - s^rows)^bands."""
    s = np.asarray(s, dtype=float)
    return 1.0 - (1.0 - s**rows) ** bands


def signatures_from_text(texts, n: int = NGRAM, num_perm: int = NUM_PERM, seed: int = SEED,
                         scheme: str = "affine32", **shingle_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Convenience: ``(signatures, has_shingles)`` for a text column."""
    offsets, hashes = shingle_hashes(texts, n, **shingle_kwargs)
    return minhash_signatures(offsets, hashes, num_perm, seed, scheme), has_shingles(offsets)
