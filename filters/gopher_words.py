"""Compiled (Numba) kernels of the Gopher stages: ``filters.gopher.spacy_en_words`` (spaCy's English
tokenizer as loops over the bytes of a whole batch, without a string per chunk or a Python step per
document), and datatrove's n-gram loops of ``gopher_repetition`` over hashed n-grams (at the end).

The text arrives as one Arrow string column: ``data`` (its UTF-8 bytes, uint8) and ``offsets``
(int64, one more than the documents). A *chunk* is a maximal run of code points that are not
whitespace (``CLASS_SPACE``); chunks are kept as byte spans of ``data``. Character classes are one
uint16 bit set per code point (``classes``, built once from the regex classes of
``filters.gopher`` by the regex engine itself, so that both paths agree code point for code point).

Only the chunks that some rule may split (``needs``) go to the tokenizer, each distinct one once;
every other chunk is one word. The tokenizer (``peel_affixes``, then ``finish_tokens``) follows the
Polars formulation of ``filters.gopher._tokenize_chunks`` step for step; between the two, the URL
rule runs as a regex on the cores that have a "." (``has_dot``). How that formulation differs from
spaCy is said in ``filters.gopher``'s docstring; the kernels add no difference of their own.
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


@njit(cache=True, nogil=True, inline="always")
def _fnv(data, lo, hi):
    h = _FNV_OFFSET
    for i in range(lo, hi):
        h = (h ^ np.uint64(data[i])) * _FNV_PRIME
    return h


@njit(cache=True, nogil=True, inline="always")
def _head_slot(data, lo, hi):
    """A byte string's slot in a 32k filter: its length (up to 31) and first and last bytes."""
    return (min(hi - lo, 31) << 10) | ((np.int64(data[lo]) & 31) << 5) | (np.int64(data[hi - 1]) & 31)


@njit(cache=True, nogil=True)
def chunk_spans(data, offsets, classes, key_data, key_offsets):
    """Every chunk of every document, in document then text order: its document, byte span, and
    whether the tokenizer must see it (``needs``), with its FNV hash where it does. A chunk of
    letters and digits only is one word unless it is a special case (one of the keys, UTF-8 in
    ``key_data``/``key_offsets``: looked up by hash, so that a collision only sends a chunk to the
    tokenizer, which answers exactly) or it may end with a unit after a digit ("5km": it has an
    ASCII digit and does not end with one)."""
    keys = len(key_offsets) - 1
    special_hashes = np.sort(span_hashes(key_data, key_offsets[:-1], key_offsets[1:]))
    # Most chunks are no special case: their length and first and last bytes turn them away
    # before any hashing.
    special_heads = np.zeros(32 << 10, dtype=np.bool_)
    for t in range(keys):
        special_heads[_head_slot(key_data, key_offsets[t], key_offsets[t + 1])] = True
    n = _count_chunks(data, offsets, classes)
    doc = np.empty(n, dtype=np.uint32)
    start = np.empty(n, dtype=np.int64)
    stop = np.empty(n, dtype=np.int64)
    hashes = np.zeros(n, dtype=np.uint64)
    needs = np.empty(n, dtype=np.bool_)
    k = -1
    for d in range(len(offsets) - 1):
        inside = False
        i = offsets[d]
        end = offsets[d + 1]
        plain = True
        digit = False
        last_digit = False
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
                special = False
                hashed = False
                h = _FNV_OFFSET
                if plain and special_heads[_head_slot(data, start[k], at)]:
                    h = _fnv(data, start[k], at)
                    hashed = True
                    j = np.searchsorted(special_hashes, h)
                    special = j < len(special_hashes) and special_hashes[j] == h
                needs[k] = not plain or special or (digit and not last_digit)
                if needs[k]:
                    hashes[k] = h if hashed else _fnv(data, start[k], at)
            if not space:
                if not inside:
                    k += 1
                    doc[k] = d
                    start[k] = at
                    plain = True
                    digit = False
                plain = plain and (classes[cp] & CLASS_PLAIN) != 0
                last_digit = 48 <= cp <= 57
                digit = digit or last_digit
            inside = not space
            if at >= end:
                break
    return doc, start, stop, hashes, needs


@njit(cache=True, nogil=True, inline="always")
def _equal_runs(x, x0, y, y0, n):
    """x[x0:x0 + n] == y[y0:y0 + n], element by element."""
    for i in range(n):
        if x[x0 + i] != y[y0 + i]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _same_tokens(cps, lo, hi, table_cps, table_offsets, t):
    """cps[lo:hi] is string ``t`` of the table ``table_cps``/``table_offsets``."""
    a = table_offsets[t]
    return table_offsets[t + 1] - a == hi - lo and _equal_runs(table_cps, a, cps, lo, hi - lo)


@njit(cache=True, nogil=True)
def _same_bytes(data, a0, a1, b0, b1):
    return a1 - a0 == b1 - b0 and _equal_runs(data, a0, data, b0, a1 - a0)


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
def _each_word(data, doc, start, stop, uid, tok_data, tok_start, tok_stop, tok_offsets, emit, word_doc, word_offsets,
               word_data):
    """Walk the words in order: a chunk without ``uid`` is one word; the others are the tokens of
    their distinct chunk (byte spans of ``tok_data``). Counts (words, bytes) when ``emit`` is False,
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
        for t in range(tok_offsets[u], tok_offsets[u + 1]):
            i, j = tok_start[t], tok_stop[t]
            if emit:
                word_doc[words] = doc[k]
                word_data[size:size + j - i] = tok_data[i:j]
                word_offsets[words + 1] = size + j - i
            words += 1
            size += j - i
    return words, size


@njit(cache=True, nogil=True)
def assemble_words(data, doc, start, stop, uid, tok_data, tok_start, tok_stop, tok_offsets):
    """The words of every chunk in order, as (document per word, offsets, bytes); the tokens of
    distinct chunk u are the byte spans ``tok_start/tok_stop[tok_offsets[u]:tok_offsets[u + 1]]``
    of ``tok_data``."""
    args = (data, doc, start, stop, uid, tok_data, tok_start, tok_stop, tok_offsets)
    words, size = _each_word(*args, False, np.empty(0, dtype=np.uint32), np.empty(1, dtype=np.int64),
                             np.empty(0, dtype=np.uint8))
    word_doc = np.empty(words, dtype=np.uint32)
    word_offsets = np.empty(words + 1, dtype=np.int64)
    word_offsets[0] = 0
    word_data = np.empty(size, dtype=np.uint8)
    _each_word(*args, True, word_doc, word_offsets, word_data)
    return word_doc, word_offsets, word_data


# --- the tokenizer: spaCy's affix loop, special cases and infixes on the distinct chunks ---------
#
# Each distinct chunk is decoded to code points (``cps``, with ``cp_offsets`` per chunk). Positions
# are code point indices into ``cps``; a chunk's tokens are (start, stop) pairs of positions, int32
# (there is at most one token per code point: these arrays are the big ones; a batch's distinct
# chunks hold fewer than 2**31 code points, ``MAX_CODE_POINTS``).
MAX_CODE_POINTS = 2**31 - 1

CLASS_PREFIX = 4  # a one-character prefix: spaCy's prefix list less "..+", "US$", "C$", "A$", "+"
CLASS_SUFFIX = 8  # a one-character suffix (the fixed list)
CLASS_DOT_CONTEXT = 16  # a character after which "." is a suffix
CLASS_UPPER = 32  # ALPHA_UPPER (two of them before "." make it a suffix)
CLASS_LOWER_QUOTE = 64  # before the "." infix
CLASS_UPPER_QUOTE = 128  # after the "." infix
CLASS_ALPHA = 256
CLASS_ALPHA_DIGIT = 512
CLASS_ICON = 1024
CLASS_INFIX = 2048  # a character some infix rule splits at (``_INFIX_ANY``)
# gopher_quality's counts
CLASS_PUNCTUATION = 4096  # datatrove's PUNCTUATION_SET: a word of these only is a "symbol" word
CLASS_LETTER = 8192  # \p{L}
CLASS_SPACELESS = 16384  # a script written without spaces (``_SPACELESS_CHAR``)
CLASS_LETTER_MARK = 32768  # \p{L} or \p{M}

_DOT = 0x2E
_ELLIPSIS = 0x2026
_PLUS = 0x2B
_MAX_AFFIX_ROUNDS = 12


@njit(cache=True, nogil=True)
def decode_spans(data, offsets):
    """The code points of each string of a column: (cps, cp_offsets, byte position of every code
    point and of each string's end)."""
    n = len(offsets) - 1
    cps = np.empty(offsets[-1] - offsets[0], dtype=np.int32)
    byte_at = np.empty(offsets[-1] - offsets[0] + 1, dtype=np.int64)
    cp_offsets = np.empty(n + 1, dtype=np.int64)
    m = 0
    for k in range(n):
        cp_offsets[k] = m
        i = offsets[k]
        while i < offsets[k + 1]:
            byte_at[m] = i
            cp, i = _decode(data, i)
            cps[m] = cp
            m += 1
    cp_offsets[n] = m
    byte_at[m] = offsets[n]
    return cps[:m], cp_offsets, byte_at[: m + 1]


@njit(cache=True, nogil=True, inline="always")
def _has(classes, cp, bit):
    return (classes[cp] & bit) != 0


@njit(cache=True, nogil=True, inline="always")
def _cp_hash(cps, lo, hi):
    h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(hi - lo)
    for i in range(lo, hi):
        h = (h ^ np.uint64(cps[i])) * np.uint64(0x100000001B3)
    return h


@njit(cache=True, nogil=True, inline="always")
def filter_slot(first, length):
    """A string's slot in a lookup table's filter: its length (up to 63) and first code point."""
    return (min(length, 63) << 12) | (first & 4095)


@njit(cache=True, nogil=True, inline="always")
def _find_string(cps, lo, hi, table_filter, table_hash, table_index, table_cps, table_offsets):
    """The index of the string cps[lo:hi] in a table of strings (``table_cps``/``table_offsets``,
    looked up by ``_cp_hash``: ``table_hash`` sorted, ``table_index`` alongside), or -1. Most
    strings are not in the table: ``table_filter`` (``filter_slot``) turns them away first."""
    if hi <= lo or not table_filter[filter_slot(cps[lo], hi - lo)]:
        return -1
    h = _cp_hash(cps, lo, hi)
    j = np.searchsorted(table_hash, h)
    while j < len(table_hash) and table_hash[j] == h:
        t = table_index[j]
        if _same_tokens(cps, lo, hi, table_cps, table_offsets, t):
            return t
        j += 1
    return -1


@njit(cache=True, nogil=True, inline="always")
def _prefix_length(cps, lo, hi, classes):
    """spaCy's prefix at the start of cps[lo:hi] (``_PREFIX``): its length, 0 if none."""
    if hi <= lo:
        return 0
    c = cps[lo]
    if c == _DOT and hi - lo >= 2 and cps[lo + 1] == _DOT:
        i = lo + 2
        while i < hi and cps[i] == _DOT:
            i += 1
        return i - lo
    if hi - lo >= 3 and c == 0x55 and cps[lo + 1] == 0x53 and cps[lo + 2] == 0x24:  # US$
        return 3
    if hi - lo >= 2 and (c == 0x43 or c == 0x41) and cps[lo + 1] == 0x24:  # C$, A$
        return 2
    if _has(classes, c, CLASS_PREFIX):
        return 1
    if c == _PLUS and (hi - lo == 1 or not (0x30 <= cps[lo + 1] <= 0x39)):
        return 1
    return 0


@njit(cache=True, nogil=True, inline="always")
def _units_after_digit(cps, lo, hi, unit_filter, unit_hash, unit_index, unit_cps, unit_offsets, max_unit):
    """``_SUFFIX_AFTER_DIGIT`` on cps[lo:hi]: the length of the unit (or currency, or "+") ending it
    after an ASCII digit, the leftmost such digit deciding; 0 if none."""
    for i in range(max(lo, hi - 1 - max_unit), hi - 1):
        if 0x30 <= cps[i] <= 0x39 and _find_string(cps, i + 1, hi, unit_filter, unit_hash, unit_index, unit_cps, unit_offsets) >= 0:
            return hi - i - 1
    return 0


@njit(cache=True, nogil=True, inline="always")
def _suffix_length(cps, lo, hi, classes, unit_filter, unit_hash, unit_index, unit_cps, unit_offsets, max_unit):
    """spaCy's suffix at the end of cps[lo:hi]: the longest of ``_SUFFIX_FIXED``,
    ``_SUFFIX_AFTER_DIGIT`` and ``_SUFFIX_DOT`` (each the leftmost match ending there); 0 if none."""
    n = hi - lo
    if n <= 0:
        return 0
    best = 0
    last = cps[hi - 1]
    # fixed: a run of 2+ dots, "……", "'s", or one character of the list
    dots = 0
    while dots < n and cps[hi - 1 - dots] == _DOT:
        dots += 1
    if dots >= 2:
        best = dots
    elif n >= 2 and last == _ELLIPSIS and cps[hi - 2] == _ELLIPSIS:
        best = 2
    elif n >= 2 and (last == 0x73 or last == 0x53) and (cps[hi - 2] == 0x27 or cps[hi - 2] == 0x2019):
        best = 2
    elif _has(classes, last, CLASS_SUFFIX):
        best = 1
    units = _units_after_digit(cps, lo, hi, unit_filter, unit_hash, unit_index, unit_cps, unit_offsets, max_unit)
    if units > best:
        best = units
    if best == 0 and last == _DOT and n >= 2:
        before = cps[hi - 2]
        if _has(classes, before, CLASS_DOT_CONTEXT):
            best = 1
        elif n >= 3:
            first = cps[hi - 3]
            if first == 0xB0 and (before == 0x46 or before == 0x66 or before == 0x43 or before == 0x63
                                  or before == 0x4B or before == 0x6B):
                best = 1
            elif _has(classes, first, CLASS_UPPER) and _has(classes, before, CLASS_UPPER):
                best = 1
    return best


@njit(cache=True, nogil=True)
def _bulk_prefix_token(cps, i, hi, classes):
    """``_BULK_PREFIX_TOKEN`` at cps[i]: its length, 0 if none ("+" whatever follows)."""
    if cps[i] == _PLUS:
        return 1
    return _prefix_length(cps, i, hi, classes)


@njit(cache=True, nogil=True)
def _bulk_suffix_token(cps, i, hi, classes):
    """``_BULK_SUFFIX_TOKEN`` at cps[i] (the first alternative that matches): its length, 0 if none."""
    c = cps[i]
    if c == _DOT:
        j = i + 1
        while j < hi and cps[j] == _DOT:
            j += 1
        return j - i  # "..+", or "." alone
    if c == _ELLIPSIS and i + 1 < hi and cps[i + 1] == _ELLIPSIS:
        return 2
    if (c == 0x27 or c == 0x2019) and i + 1 < hi and (cps[i + 1] == 0x73 or cps[i + 1] == 0x53):
        return 2
    if _has(classes, c, CLASS_SUFFIX):
        return 1
    return 0


@njit(cache=True, nogil=True)
def _peel_bulk(cps, lo, hi, classes, tok_lo, tok_hi, pre_at, suf_at):
    """``_peel_bulk`` on cps[lo:hi]: every prefix token from the start, then the shortest core whose
    remainder is all suffix tokens. Writes the tokens; returns (lo, hi, pre_at, suf_at)."""
    while lo < hi:
        m = _bulk_prefix_token(cps, lo, hi, classes)
        if m == 0:
            break
        tok_lo[pre_at] = lo
        tok_hi[pre_at] = lo + m
        pre_at += 1
        lo += m
    # parses[i - lo]: cps[i:hi] is a sequence of suffix tokens
    parses = np.zeros(hi - lo + 1, dtype=np.bool_)
    parses[hi - lo] = True
    for i in range(hi - 1, lo - 1, -1):
        c = cps[i]
        ok = (c == _DOT or _has(classes, c, CLASS_SUFFIX)) and parses[i + 1 - lo]
        if not ok and i + 2 <= hi and parses[i + 2 - lo]:
            d = cps[i + 1]
            ok = (c == _ELLIPSIS and d == _ELLIPSIS) or ((c == 0x27 or c == 0x2019) and (d == 0x73 or d == 0x53))
        parses[i - lo] = ok
    core_end = lo
    while not parses[core_end - lo]:
        core_end += 1
    # the suffix tokens as a left-to-right scan finds them; stored innermost first
    count = 0
    i = core_end
    while i < hi:
        m = _bulk_suffix_token(cps, i, hi, classes)
        i += max(m, 1)
        count += 1
    first = suf_at - count + 1
    i = core_end
    j = first
    while i < hi:
        m = max(_bulk_suffix_token(cps, i, hi, classes), 1)
        tok_lo[j] = i
        tok_hi[j] = i + m
        j += 1
        i += m
    return lo, core_end, pre_at, suf_at - count


@njit(cache=True, nogil=True)
def peel_affixes(cps, cp_offsets, classes, special_filter, special_hash, special_index, special_cps, special_offsets,
                 unit_filter, unit_hash, unit_index, unit_cps, unit_offsets, max_unit):
    """spaCy's ``Tokenizer._split_affixes`` on each chunk, with its special-case checks, as
    ``_peel_round`` and ``_peel_bulk`` do it. Per chunk k (positions cp_offsets[k]:cp_offsets[k+1]):
    the prefix tokens at ``tok_*[base:base + n_pre[k]]``, the suffix tokens (in text order) at
    ``tok_*[end - n_suf[k]:end]``, the core ``core_lo[k]:core_hi[k]``."""
    n = len(cp_offsets) - 1
    tok_lo = np.empty(len(cps), dtype=np.int32)
    tok_hi = np.empty(len(cps), dtype=np.int32)
    n_pre = np.zeros(n, dtype=np.int64)
    n_suf = np.zeros(n, dtype=np.int64)
    core_lo = np.empty(n, dtype=np.int64)
    core_hi = np.empty(n, dtype=np.int64)
    for k in range(n):
        lo = cp_offsets[k]
        hi = cp_offsets[k + 1]
        pre_at = lo  # next prefix token's slot
        suf_at = hi - 1  # next suffix token's slot (filled downwards)
        special = _find_string(cps, lo, hi, special_filter, special_hash, special_index, special_cps, special_offsets) >= 0
        more = not special and (
            _prefix_length(cps, lo, hi, classes) > 0
            or _suffix_length(cps, lo, hi, classes, unit_filter, unit_hash, unit_index, unit_cps, unit_offsets, max_unit) > 0
        )
        rounds = 0
        while more and rounds < _MAX_AFFIX_ROUNDS:
            rounds += 1
            p = _prefix_length(cps, lo, hi, classes)
            s = _suffix_length(cps, lo + p, hi, classes, unit_filter, unit_hash, unit_index, unit_cps, unit_offsets, max_unit)
            case_a = p > 0 and lo + p < hi and _find_string(
                cps, lo + p, hi, special_filter, special_hash, special_index, special_cps, special_offsets) >= 0
            case_b = not case_a and s > 0 and hi - s > lo and _find_string(
                cps, lo, hi - s, special_filter, special_hash, special_index, special_cps, special_offsets) >= 0
            if p > 0 and not case_b:
                tok_lo[pre_at] = lo
                tok_hi[pre_at] = lo + p
                pre_at += 1
            if s > 0 and not case_a:
                tok_lo[suf_at] = hi - s
                tok_hi[suf_at] = hi
                suf_at -= 1
            if case_a:
                lo += p
            elif case_b:
                hi -= s
            else:
                lo += p
                hi -= s
            more = (not case_a and not case_b and (p > 0 or s > 0) and hi > lo
                    and _find_string(cps, lo, hi, special_filter, special_hash, special_index, special_cps, special_offsets) < 0)
        if more:
            lo, hi, pre_at, suf_at = _peel_bulk(cps, lo, hi, classes, tok_lo, tok_hi, pre_at, suf_at)
        n_pre[k] = pre_at - cp_offsets[k]
        n_suf[k] = cp_offsets[k + 1] - 1 - suf_at
        core_lo[k] = lo
        core_hi[k] = hi
    return tok_lo, tok_hi, n_pre, n_suf, core_lo, core_hi


# spaCy's hyphens, in its order (the alternation is tried in this order): "-", "–", "—", "--", "---",
# "——", "~", as code points with offsets.
_HYPHEN_CPS = np.array([0x2D, 0x2013, 0x2014, 0x2D, 0x2D, 0x2D, 0x2D, 0x2D, 0x2014, 0x2014, 0x7E], dtype=np.int64)
_HYPHEN_OFFSETS = np.array([0, 1, 2, 3, 5, 8, 10, 11], dtype=np.int64)
_HYPHEN_RULE = 3  # the index of the hyphen rule in ``_INFIX_CONTEXT``


@njit(cache=True, nogil=True, inline="always")
def _is_infix_char(rule, c):
    """The one-character infix of the context rules 0, 1, 2 and 4 of ``_INFIX_CONTEXT``."""
    if rule == 0:
        return c == 0x2B or c == 0x2D or c == 0x2A or c == 0x5E  # + - * ^
    if rule == 1:
        return c == _DOT
    if rule == 2:
        return c == 0x2C
    return c == 0x3A or c == 0x3C or c == 0x3E or c == 0x3D or c == 0x2F  # : < > = /


@njit(cache=True, nogil=True, inline="always")
def _starts_infix(rule, c):
    """Whether an infix of context rule ``rule`` can start with ``c`` (a cheap test first)."""
    if rule == _HYPHEN_RULE:
        return c == 0x2D or c == 0x2013 or c == 0x2014 or c == 0x7E
    return _is_infix_char(rule, c)


@njit(cache=True, nogil=True, inline="always")
def _context_before(rule, c, classes):
    if rule == 0:
        return 0x30 <= c <= 0x39
    if rule == 1:
        return _has(classes, c, CLASS_LOWER_QUOTE)
    if rule == 2:
        return _has(classes, c, CLASS_ALPHA)
    return _has(classes, c, CLASS_ALPHA_DIGIT)


@njit(cache=True, nogil=True, inline="always")
def _context_after(rule, c, classes):
    if rule == 0:
        return 0x30 <= c <= 0x39 or c == 0x2D
    if rule == 1:
        return _has(classes, c, CLASS_UPPER_QUOTE)
    return _has(classes, c, CLASS_ALPHA)


@njit(cache=True, nogil=True, inline="always")
def _infix_length(cps, i, hi, cut, lo, rule, classes):
    """The infix of context rule ``rule`` at cps[i], followed by its context character with no cut
    in between: its length, 0 if none (the hyphens: the first alternative that fits)."""
    if rule == _HYPHEN_RULE:
        for a in range(len(_HYPHEN_OFFSETS) - 1):
            m = _HYPHEN_OFFSETS[a + 1] - _HYPHEN_OFFSETS[a]
            if i + m >= hi:
                continue
            ok = True
            for t in range(m):
                if cps[i + t] != _HYPHEN_CPS[_HYPHEN_OFFSETS[a] + t] or (t > 0 and cut[i + t - lo]):
                    ok = False
                    break
            if ok and not cut[i + m - lo] and _context_after(rule, cps[i + m], classes):
                return m
        return 0
    if i + 1 < hi and _is_infix_char(rule, cps[i]) and not cut[i + 1 - lo] and _context_after(rule, cps[i + 1], classes):
        return 1
    return 0


@njit(cache=True, nogil=True)
def _split_infixes(cps, lo, hi, classes, cut):
    """``_split_infixes`` on the core cps[lo:hi]: sets ``cut[j - lo]`` where a token boundary falls
    before position j. Each replace_all pass of the Polars path is a left-to-right scan that resumes
    after each match; a match never spans a boundary (the inserted spaces match no rule)."""
    cut[: hi - lo + 1] = False
    for i in range(lo, hi + 1):
        if i == hi:
            return  # no character any rule splits at (most cores)
        if _has(classes, cps[i], CLASS_INFIX):
            break
    i = lo
    while i < hi:  # "..+", "…", icons
        c = cps[i]
        if c == _DOT and i + 1 < hi and cps[i + 1] == _DOT:
            j = i + 2
            while j < hi and cps[j] == _DOT:
                j += 1
            cut[i - lo] = True
            cut[j - lo] = True
            i = j
        elif c == _ELLIPSIS or _has(classes, c, CLASS_ICON):
            cut[i - lo] = True
            cut[i + 1 - lo] = True
            i += 1
        else:
            i += 1
    for rule in range(5):
        for _ in range(2):  # the context is consumed: a second pass for shared context (a-b-c)
            i = lo
            while i < hi:
                m = 0
                if (i + 1 < hi and _starts_infix(rule, cps[i + 1]) and not cut[i + 1 - lo]
                        and _context_before(rule, cps[i], classes)):
                    m = _infix_length(cps, i + 1, hi, cut, lo, rule, classes)
                if m > 0:
                    cut[i + 1 - lo] = True
                    cut[i + 1 + m - lo] = True
                    i += m + 2
                else:
                    i += 1


@njit(cache=True, nogil=True)
def _merge_specials(cps, tok_lo, tok_hi, a, b, out_lo, out_hi, at, merge_hash, merge_pattern, pattern_tokens,
                    token_cps, token_offsets, replacement_tokens, replacement_lengths):
    """spaCy's second pass (``_special_merges``) over the tokens ``tok_*[a:b]`` of one chunk: at each
    token, the first pattern (longest first) whose tokens follow there is replaced by its special
    tokens; then the scan goes on after it. Writes the tokens at ``out_*[at:]``; returns the end."""
    i = a
    while i < b:
        h = _cp_hash(cps, tok_lo[i], tok_hi[i])
        j = np.searchsorted(merge_hash, h)
        matched = -1
        while j < len(merge_hash) and merge_hash[j] == h:
            p = merge_pattern[j]
            first, last = pattern_tokens[p], pattern_tokens[p + 1]
            if last - first <= b - i:
                ok = True
                for t in range(last - first):
                    if not _same_tokens(cps, tok_lo[i + t], tok_hi[i + t], token_cps, token_offsets, first + t):
                        ok = False
                        break
                if ok:
                    matched = p
                    break
            j += 1
        if matched < 0:
            out_lo[at] = tok_lo[i]
            out_hi[at] = tok_hi[i]
            at += 1
            i += 1
            continue
        start = tok_lo[i]
        for t in range(replacement_tokens[matched], replacement_tokens[matched + 1]):
            out_lo[at] = start
            out_hi[at] = start + replacement_lengths[t]
            start = out_hi[at]
            at += 1
        i += pattern_tokens[matched + 1] - pattern_tokens[matched]
    return at


@njit(cache=True, nogil=True)
def finish_tokens(cps, cp_offsets, classes, tok_lo, tok_hi, n_pre, n_suf, core_lo, core_hi, url,
                  special_filter, special_hash, special_index, special_cps, special_offsets, special_tokens, special_lengths,
                  merge_hash, merge_pattern, pattern_tokens, token_cps, token_offsets, replacement_tokens,
                  replacement_lengths):
    """Each chunk's tokens after ``peel_affixes``: the prefixes, the core (nothing when empty, a
    special case's tokens, one token when a URL (``url``), else split at its infixes), the
    suffixes; then the special cases re-merged. Returns (token start, token stop, offsets per
    chunk), positions into ``cps``."""
    n = len(cp_offsets) - 1
    out_lo = np.empty(len(cps), dtype=np.int32)
    out_hi = np.empty(len(cps), dtype=np.int32)
    offsets = np.zeros(n + 1, dtype=np.int64)
    # the chunk's tokens before the merges
    seq_lo = np.empty(len(cps), dtype=np.int32)
    seq_hi = np.empty(len(cps), dtype=np.int32)
    longest = 0
    for k in range(n):
        longest = max(longest, cp_offsets[k + 1] - cp_offsets[k])
    cut = np.zeros(longest + 1, dtype=np.bool_)
    at = 0
    for k in range(n):
        base, end = cp_offsets[k], cp_offsets[k + 1]
        m = base
        for t in range(base, base + n_pre[k]):
            seq_lo[m] = tok_lo[t]
            seq_hi[m] = tok_hi[t]
            m += 1
        lo, hi = core_lo[k], core_hi[k]
        if hi > lo:
            key = _find_string(cps, lo, hi, special_filter, special_hash, special_index, special_cps, special_offsets)
            if key >= 0:
                start = lo
                for t in range(special_tokens[key], special_tokens[key + 1]):
                    seq_lo[m] = start
                    seq_hi[m] = start + special_lengths[t]
                    start = seq_hi[m]
                    m += 1
            elif url[k]:
                seq_lo[m] = lo
                seq_hi[m] = hi
                m += 1
            else:
                _split_infixes(cps, lo, hi, classes, cut)
                start = lo
                for j in range(lo + 1, hi + 1):
                    if j == hi or cut[j - lo]:
                        if j > start:
                            seq_lo[m] = start
                            seq_hi[m] = j
                            m += 1
                        start = j
        for t in range(end - n_suf[k], end):
            seq_lo[m] = tok_lo[t]
            seq_hi[m] = tok_hi[t]
            m += 1
        at = _merge_specials(cps, seq_lo, seq_hi, base, m, out_lo, out_hi, at, merge_hash, merge_pattern,
                             pattern_tokens, token_cps, token_offsets, replacement_tokens, replacement_lengths)
        offsets[k + 1] = at
    return out_lo[:at], out_hi[:at], offsets


@njit(cache=True, nogil=True)
def has_dot(cps, lo, hi):
    """Whether each cps[lo[k]:hi[k]] holds a "." (a URL needs one)."""
    out = np.zeros(len(lo), dtype=np.bool_)
    for k in range(len(lo)):
        for i in range(lo[k], hi[k]):
            if cps[i] == _DOT:
                out[k] = True
                break
    return out


@njit(cache=True, nogil=True)
def string_hashes(cps, offsets):
    """``_cp_hash`` of each string of a table (code points with offsets)."""
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    for k in range(len(offsets) - 1):
        out[k] = _cp_hash(cps, offsets[k], offsets[k + 1])
    return out


# --- gopher_repetition: datatrove's n-gram loops over hashed n-grams --------------------------


# Each document's n-grams get a hash table of their own, sized to them (kept in cache; one table of
# the batch's size would miss the cache at nearly every step). Entries are in text order, so a
# document's are contiguous.


@njit(cache=True, nogil=True)
def _document_bounds(doc):
    """Start of each run of equal ``doc`` values, and the end."""
    bounds = [0]
    for i in range(1, len(doc)):
        if doc[i] != doc[i - 1]:
            bounds.append(i)
    bounds.append(len(doc))
    return np.array(bounds, dtype=np.int64)


@njit(cache=True, nogil=True)
def _tables(doc):
    """Reusable table storage for the largest document: (used flag, hash, per-slot scratch)."""
    bounds = _document_bounds(doc)
    largest = 0
    for b in range(len(bounds) - 1):
        largest = max(largest, bounds[b + 1] - bounds[b])
    size = 16
    while size < 2 * largest:
        size *= 2
    return bounds, np.zeros(size, dtype=np.bool_), np.zeros(size, dtype=np.uint64), np.zeros(size, dtype=np.int64)


@njit(cache=True, nogil=True, inline="always")
def _mask_for(count):
    size = 16
    while size < 2 * count:
        size *= 2
    return size - 1


@njit(cache=True, nogil=True, inline="always")
def _slot_of(used, grams, g, mask):
    """The slot of n-gram hash ``g`` in one document's open-addressing table."""
    slot = np.int64((g ^ (g >> np.uint64(31))) & np.uint64(mask))
    while used[slot] and grams[slot] != g:
        slot = (slot + 1) & mask
    return slot


@njit(cache=True, nogil=True)
def duplicate_loop(doc, gram, position, chars, n, n_docs):
    """datatrove's ``find_all_duplicate`` loop on every document: the n-grams in text order (their
    document, hash, start among the batch's words, characters); one seen before in its document
    adds its characters and the loop jumps ``n`` words ahead, the n-grams jumped over not being
    marked seen. The n-grams that occur once may be left out (they are never seen again)."""
    bounds, used, grams, _ = _tables(doc)
    out = np.zeros(n_docs, dtype=np.float64)
    for b in range(len(bounds) - 1):
        lo, hi = bounds[b], bounds[b + 1]
        mask = _mask_for(hi - lo)
        resume = -1
        for i in range(lo, hi):
            if position[i] < resume:
                continue  # jumped over
            slot = _slot_of(used, grams, gram[i], mask)
            if used[slot]:
                out[doc[i]] += chars[i]
                resume = position[i] + n
            else:
                used[slot] = True
                grams[slot] = gram[i]
        used[: mask + 1] = False
    return out


@njit(cache=True, nogil=True)
def top_ngram(doc, gram, position, chars, n_docs):
    """datatrove's ``find_top_duplicate`` on every document: the characters of the most frequent
    n-gram times its count, the first to appear among equally frequent ones (0 without n-grams)."""
    bounds, used, grams, count = _tables(doc)
    first = np.zeros(len(used), dtype=np.int64)  # the entry of each n-gram's first occurrence
    out = np.zeros(n_docs, dtype=np.float64)
    for b in range(len(bounds) - 1):
        lo, hi = bounds[b], bounds[b + 1]
        mask = _mask_for(hi - lo)
        for i in range(lo, hi):
            slot = _slot_of(used, grams, gram[i], mask)
            if not used[slot]:
                used[slot] = True
                grams[slot] = gram[i]
                first[slot] = i
                count[slot] = 0
            count[slot] += 1
        best_count, best_position = 0, 0
        for slot in range(mask + 1):
            if not used[slot]:
                continue
            c, p = count[slot], position[first[slot]]
            if c > best_count or (c == best_count and p < best_position):
                best_count, best_position = c, p
                out[doc[lo]] = chars[first[slot]] * c
        used[: mask + 1] = False
    return out


@njit(cache=True, nogil=True)
def repeated(doc, gram):
    """Whether each n-gram hash occurs more than once in its document."""
    bounds, used, grams, count = _tables(doc)
    slots = np.empty(len(doc), dtype=np.int64)
    out = np.empty(len(doc), dtype=np.bool_)
    for b in range(len(bounds) - 1):
        lo, hi = bounds[b], bounds[b + 1]
        mask = _mask_for(hi - lo)
        for i in range(lo, hi):
            slot = _slot_of(used, grams, gram[i], mask)
            if not used[slot]:
                used[slot] = True
                grams[slot] = gram[i]
                count[slot] = 0
            count[slot] += 1
            slots[i] = slot
        for i in range(lo, hi):
            out[i] = count[slots[i]] > 1
        used[: mask + 1] = False
    return out


# --- gopher_quality: counts per word and per text ---------------------------------------------


@njit(cache=True, nogil=True)
def word_counts(word_doc, offsets, data, classes, n_docs):
    """Per document: its words that are not symbol words (some character outside datatrove's
    punctuation), their characters (code points), and its words with a letter."""
    non_symbol = np.zeros(n_docs, dtype=np.int64)
    non_symbol_chars = np.zeros(n_docs, dtype=np.float64)
    alpha = np.zeros(n_docs, dtype=np.int64)
    for w in range(len(word_doc)):
        i = offsets[w]
        chars = 0
        symbol = True
        letter = False
        while i < offsets[w + 1]:
            cp, i = _decode(data, i)
            chars += 1
            symbol = symbol and _has(classes, cp, CLASS_PUNCTUATION)
            letter = letter or _has(classes, cp, CLASS_LETTER)
        d = word_doc[w]
        if not symbol:
            non_symbol[d] += 1
            non_symbol_chars[d] += chars
        alpha[d] += letter
    return non_symbol, non_symbol_chars, alpha


@njit(cache=True, nogil=True)
def script_counts(data, offsets, classes):
    """Per text: its characters (code points), those of a script written without spaces, and its
    letters and marks."""
    n = len(offsets) - 1
    chars = np.zeros(n, dtype=np.int64)
    spaceless = np.zeros(n, dtype=np.int64)
    letters = np.zeros(n, dtype=np.int64)
    for d in range(n):
        i = offsets[d]
        while i < offsets[d + 1]:
            cp, i = _decode(data, i)
            chars[d] += 1
            spaceless[d] += _has(classes, cp, CLASS_SPACELESS)
            letters[d] += _has(classes, cp, CLASS_LETTER_MARK)
    return chars, spaceless, letters
