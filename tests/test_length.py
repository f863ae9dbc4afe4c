"""The length stage at its boundaries, and the RuleFilter contract it shares with later stages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters.length import LengthFilter
from ingest.schema import batch_of


# Unicode's White_Space property, the whitespace of Polars' (Rust) string functions. Python's
# str.split() also splits on the ASCII separators \x1c-\x1f, which are not White_Space.
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"


def unicode_words(text: str) -> list[str]:
    return "".join(" " if c in WHITE_SPACE else c for c in text).split(" ")


def batch(texts, rejected=None):
    n = len(texts)
    return batch_of(texts, rejected_by=rejected)


def reasons(table):
    return table.column("rejected_by").to_pylist()


def test_char_bounds_just_inside_and_outside():
    stage = LengthFilter(min_chars=5, max_chars=10)
    out = stage(batch(["abcd", "abcde", "abcdefghij", "abcdefghijk"]))
    assert reasons(out) == ["length.too_short", None, None, "length.too_long"]


def test_word_bounds_just_inside_and_outside():
    stage = LengthFilter(min_words=3, max_words=4)
    out = stage(batch(["a b", "a b c", "a\tb\nc  d", "a b c d e"]))
    assert reasons(out) == ["length.too_few_words", None, None, "length.too_many_words"]
    assert out.column("length_words").to_pylist() == [2, 3, 4, 5]


def test_degenerate_documents():
    big = "x" * (10 << 20)  # 10 MB on one line
    out = LengthFilter()(batch(["", "   \n\t ", "#$%&!", "one line", big]))
    assert reasons(out) == ["length.too_short", "length.too_short", None, None, "length.too_long"]


def test_rows_rejected_earlier_keep_their_reason_and_are_not_judged():
    out = LengthFilter(min_chars=100)(batch(["short", "short"], rejected=["earlier.rule", None]))
    assert reasons(out) == ["earlier.rule", "length.too_short"]
    assert out.column("length_chars").to_pylist() == [None, 5]


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError, match="min_chars"):
        LengthFilter(min_chars=10, max_chars=5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=60)), min_size=1, max_size=40), st.integers(0, 30), st.integers(0, 8))
def test_property_rows_kept_in_order_and_reasons_match_python(items, min_chars, min_words):
    texts = [t if t is not None else "" for t in items]
    prior = [None if t is not None else "earlier.rule" for t in items]
    out = LengthFilter(min_chars=min_chars, min_words=min_words)(batch(texts, prior))
    assert out.num_rows == len(texts)
    assert out.column("id").to_pylist() == [f"d{i}" for i in range(len(texts))]
    for text, before, after in zip(texts, prior, reasons(out)):
        if before is not None:
            assert after == before
        elif len(text.strip(WHITE_SPACE)) < min_chars:
            assert after == "length.too_short"
        elif len([w for w in unicode_words(text) if w]) < min_words:
            assert after == "length.too_few_words"
        else:
            assert after is None
