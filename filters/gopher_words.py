"""Compiled (Numba) kernels of ``filters.gopher.spacy_en_words``: the work that is one pass over the
bytes of a batch, done without building a string per chunk.

The text arrives as one Arrow string column: ``data`` (its UTF-8 bytes, uint8) and ``offsets``
(int64, one more than the documents). A *chunk* is a maximal run of code points that are not
whitespace (``CLASS_SPACE``); chunks are kept as byte spans of ``data``. Character classes are one
uint16 bit set per code point (``classes``, built once from the regex classes of
``filters.gopher`` by the regex engine itself, so that both paths agree code point for code point).

Only the chunks that some rule may split (``needs``) go to the tokenizer, each distinct one once;
every other chunk is one word.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Bits of the per-code-point class table.
CLASS_SPACE = 1  # Python's str.isspace: separates chunks
CLASS_PLAIN = 2  # \p{L} or \p{N}: a chunk of these only is one word (but see ``chunk_spans``)

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True, inline="always")
def _decode(data, i):
    """The code point at byte ``i`` of valid UTF-8 and the index of the next one."""
    b = np.int64(data[i])
    if b < 0x80:
        return b, i + 1
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), i + 2
    if b < 0xF0:
        return ((b & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6) | (np.int64(data[i + 2]) & 0x3F), i + 3
    return (
        ((b & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12) | ((np.int64(data[i + 2]) & 0x3F) << 6)
        | (np.int64(data[i + 3]) & 0x3F)
    ), i + 4


@njit(cache=True, nogil=True)
def span_hashes(data, starts, ends):
    """FNV-1a (64-bit) of each byte span."""
    out = np.empty(len(starts), dtype=np.uint64)
    for k in range(len(starts)):
        h = _FNV_OFFSET
        for i in range(starts[k], ends[k]):
            h = (h ^ np.uint64(data[i])) * _FNV_PRIME
        out[k] = h
    return out


@njit(cache=True, nogil=True)
def _count_chunks(data, offsets, classes):
    count = 0
    for d in range(len(offsets) - 1):
        inside = False
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            cp, i = _decode(data, i)
            space = (classes[cp] & CLASS_SPACE) != 0
            if not space and not inside:
                count += 1
            inside = not space
    return count


@njit(cache=True, nogil=True)
def chunk_spans(data, offsets, classes, special_hashes):
    """Every chunk of every document, in document then text order: its document, byte span, FNV
    hash, and whether the tokenizer must see it (``needs``). A chunk of letters and digits only is
    one word unless it is a special case (its hash among ``special_hashes``, sorted; a collision
    only sends a chunk to the tokenizer, which answers exactly) or it may end with a unit after a
    digit ("5km": it has an ASCII digit and does not end with one)."""
    n = _count_chunks(data, offsets, classes)
    doc = np.empty(n, dtype=np.uint32)
    start = np.empty(n, dtype=np.int64)
    stop = np.empty(n, dtype=np.int64)
    hashes = np.empty(n, dtype=np.uint64)
    needs = np.empty(n, dtype=np.bool_)
    k = -1
    for d in range(len(offsets) - 1):
        inside = False
        i = offsets[d]
        end = offsets[d + 1]
        plain = True
        digit = False
        last_digit = False
        h = _FNV_OFFSET
        while True:
            at = i
            if i < end:
                cp, i = _decode(data, i)
                space = (classes[cp] & CLASS_SPACE) != 0
            else:
                cp = 0
                space = True
            if inside and space:  # the chunk ends before ``at``
                stop[k] = at
                hashes[k] = h
                special = False
                if plain:
                    j = np.searchsorted(special_hashes, h)
                    special = j < len(special_hashes) and special_hashes[j] == h
                needs[k] = not plain or special or (digit and not last_digit)
            if not space:
                if not inside:
                    k += 1
                    doc[k] = d
                    start[k] = at
                    plain = True
                    digit = False
                    h = _FNV_OFFSET
                for b in range(at, i):
                    h = (h ^ np.uint64(data[b])) * _FNV_PRIME
                plain = plain and (classes[cp] & CLASS_PLAIN) != 0
                last_digit = 48 <= cp <= 57
                digit = digit or last_digit
            inside = not space
            if at >= end:
                break
    return doc, start, stop, hashes, needs


@njit(cache=True, nogil=True)
def _same_bytes(data, a0, a1, b0, b1):
    if a1 - a0 != b1 - b0:
        return False
    for i in range(a1 - a0):
        if data[a0 + i] != data[b0 + i]:
            return False
    return True


@njit(cache=True, nogil=True)
def distinct_spans(data, start, stop, hashes, needs):
    """Number the distinct byte strings among the spans with ``needs`` (exact: equal hashes are
    compared byte for byte): ``uid`` per span (-1 where not needed) and, per distinct string, the
    first span that has it."""
    wanted = 0
    for k in range(len(needs)):
        wanted += needs[k]
    size = 16
    while size < 2 * wanted:
        size *= 2
    mask = np.uint64(size - 1)
    slots = np.full(size, -1, dtype=np.int64)  # uid in each slot
    first = np.empty(wanted, dtype=np.int64)
    uid = np.full(len(needs), -1, dtype=np.int64)
    distinct = 0
    for k in range(len(needs)):
        if not needs[k]:
            continue
        h = hashes[k]
        slot = np.int64(h & mask)
        while True:
            u = slots[slot]
            if u < 0:
                slots[slot] = distinct
                first[distinct] = k
                uid[k] = distinct
                distinct += 1
                break
            r = first[u]
            if hashes[r] == h and _same_bytes(data, start[r], stop[r], start[k], stop[k]):
                uid[k] = u
                break
            slot = (slot + 1) & (size - 1)
    return uid, first[:distinct]


@njit(cache=True, nogil=True)
def gather_spans(data, start, stop):
    """The spans as a new string column: (offsets, bytes)."""
    offsets = np.empty(len(start) + 1, dtype=np.int64)
    offsets[0] = 0
    for k in range(len(start)):
        offsets[k + 1] = offsets[k] + stop[k] - start[k]
    out = np.empty(offsets[-1], dtype=np.uint8)
    for k in range(len(start)):
        out[offsets[k]:offsets[k + 1]] = data[start[k]:stop[k]]
    return offsets, out


@njit(cache=True, nogil=True)
def _each_word(data, start, stop, uid, tok_data, tok_offsets, emit, word_doc, word_offsets, word_data, doc):
    """Walk the words in order: a chunk without tokens is one word; the others are the
    space-separated tokens of their distinct chunk. Counts (words, bytes) when ``emit`` is False,
    else writes them."""
    words = 0
    size = 0
    for k in range(len(start)):
        u = uid[k]
        if u < 0:
            if emit:
                word_doc[words] = doc[k]
                word_data[size:size + stop[k] - start[k]] = data[start[k]:stop[k]]
                word_offsets[words + 1] = size + stop[k] - start[k]
            words += 1
            size += stop[k] - start[k]
            continue
        i = tok_offsets[u]
        end = tok_offsets[u + 1]
        while i < end:
            while i < end and tok_data[i] == 32:
                i += 1
            j = i
            while j < end and tok_data[j] != 32:
                j += 1
            if j > i:
                if emit:
                    word_doc[words] = doc[k]
                    word_data[size:size + j - i] = tok_data[i:j]
                    word_offsets[words + 1] = size + j - i
                words += 1
                size += j - i
            i = j
    return words, size


@njit(cache=True, nogil=True)
def assemble_words(data, doc, start, stop, uid, tok_data, tok_offsets):
    """The words of every chunk in order, as (document per word, offsets, bytes); ``tok_*`` hold
    each distinct chunk's tokens, separated by spaces."""
    empty_u32 = np.empty(0, dtype=np.uint32)
    empty_i64 = np.empty(1, dtype=np.int64)
    empty_u8 = np.empty(0, dtype=np.uint8)
    words, size = _each_word(data, start, stop, uid, tok_data, tok_offsets, False, empty_u32, empty_i64, empty_u8, doc)
    word_doc = np.empty(words, dtype=np.uint32)
    word_offsets = np.empty(words + 1, dtype=np.int64)
    word_offsets[0] = 0
    word_data = np.empty(size, dtype=np.uint8)
    _each_word(data, start, stop, uid, tok_data, tok_offsets, True, word_doc, word_offsets, word_data, doc)
    return word_doc, word_offsets, word_data

