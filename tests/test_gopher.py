"""gopher_quality and gopher_repetition: every rule just inside and just outside its threshold, the
degenerate documents, the stage contract (Hypothesis), the word tokenizer against spaCy, and the
decisions against datatrove's filters on real crawl text."""

from __future__ import annotations

import importlib

import gzip
import random
import re
import resource
import time
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filters import gopher
from filters.gopher import (
    STOP_WORDS,
    GopherQualityFilter,
    GopherRepetitionFilter,
    duplicated_ngram_chars,
    special_cases,
    spacy_en_words,
)
from ingest.schema import batch_of

# --- helpers ----------------------------------------------------------------------------------


def batch(texts, rejected=None, lang=None):
    table = batch_of(texts, rejected_by=rejected)
    if lang is not None:
        table = table.append_column("lang", pa.array(lang, pa.string()))
    return table


def reasons(stage, texts, **kwargs):
    return stage(batch(texts, **kwargs)).column("rejected_by").to_pylist()


def words(text: str) -> list[str]:
    return spacy_en_words(pl.Series([text])).get_column("word").to_list()


PROSE = ["the", "river", "and", "stone", "walk", "with", "quiet", "paper", "light", "green"]


def prose(n: int, vocabulary=PROSE) -> list[str]:
    return [vocabulary[i % len(vocabulary)] for i in range(n)]


def unique_words(n: int, start: int = 0) -> list[str]:
    """Distinct lowercase words: no n-gram of them repeats."""
    out = []
    for i in range(start, start + n):
        word, k = "", i
        while True:
            word += "bcdfghjklmnpqrstvwxz"[k % 20]
            k //= 20
            if k == 0:
                break
        out.append("w" + word)
    return out


# --- gopher_quality: each rule just inside / just outside ------------------------------------


Q = "gopher_quality."


def test_word_count_bounds():
    stage = GopherQualityFilter()
    assert reasons(stage, [" ".join(prose(49)), " ".join(prose(50))]) == [Q + "too_few_words", None]
    # Punctuation is a word of its own but not a "non-symbol" word: 49 words and 10 commas are 49.
    assert reasons(stage, [" ".join(w + "," for w in prose(49))])[0] == Q + "too_few_words"
    assert reasons(stage, [" ".join(prose(100_000)), " ".join(prose(100_001))]) == [None, Q + "too_many_words"]


def test_mean_word_length_bounds():
    stage = GopherQualityFilter()
    three = ["the", "and"] + ["cat"] * 58  # mean exactly 3
    two = ["the", "and", "at"] + ["cat"] * 57
    ten = ["the", "and"] + ["abcdefghijk"] * 14 + ["abcdefghij"] * 44  # 600 characters / 60 words
    eleven = ["the", "and"] + ["abcdefghijk"] * 15 + ["abcdefghij"] * 43
    texts = [" ".join(t) for t in (three, two, ten, eleven)]
    assert reasons(stage, texts) == [None, Q + "mean_word_length_low", None, Q + "mean_word_length_high"]


@pytest.mark.parametrize("symbol, rule", [("#", "hash_ratio"), ("...", "ellipsis_ratio"), ("…", "ellipsis_ratio")])
def test_symbol_to_word_ratio(symbol, rule):
    # Each symbol is a word of its own: 6 symbols among 60 words is 0.1 (kept), 7 among 61 is not.
    def text(k):
        body = prose(54)
        for i in range(k):
            body.insert(3 + 7 * i, symbol)
        return " ".join(body)

    assert reasons(GopherQualityFilter(), [text(6), text(7)]) == [None, Q + rule]


def test_bullet_lines():
    line = " ".join(prose(8))
    bullets = ["- " + line, "• " + line, "  - " + line, "\u3000• " + line, "-" + line]
    def text(k):
        return "\n".join([bullets[i % len(bullets)] for i in range(k)] + [line] * (10 - k))

    assert reasons(GopherQualityFilter(), [text(9), text(10)]) == [None, Q + "bullet_lines"]


def test_ellipsis_lines():
    line = " ".join(prose(8))
    endings = [" ...", "...", "…  ", "....\t"]
    def text(k):
        return "\r\n".join([line + endings[i % len(endings)] for i in range(k)] + [line] * (10 - k))

    assert reasons(GopherQualityFilter(), [text(3), text(4)]) == [None, Q + "ellipsis_lines"]


def test_alpha_words():
    # 15 numbers among 75 words: 80% have a letter (kept); 16 among 76: fewer.
    def text(k):
        body = prose(60)
        for i in range(k):
            body.insert(2 + 3 * i, "123")
        return " ".join(body)

    assert reasons(GopherQualityFilter(), [text(15), text(16)]) == [None, Q + "alpha_words"]


def test_stop_words():
    base = ["river", "stone", "walk", "quiet", "paper"] * 12
    one = " ".join(["the"] + base + ["the"])
    two = " ".join(["the"] + base + ["and"])
    capitalised = " ".join(["The"] + base + ["And"])  # datatrove matches case-sensitively
    assert reasons(GopherQualityFilter(), [one, two, capitalised]) == [Q + "stop_words", None, Q + "stop_words"]
    assert reasons(GopherQualityFilter(min_stop_words=1), [one])[0] is None


def test_rule_order_and_switches():
    short_and_hashy = "# # # # the and river"
    assert reasons(GopherQualityFilter(), [short_and_hashy]) == [Q + "too_few_words"]
    assert reasons(GopherQualityFilter(min_doc_words=None), [short_and_hashy]) == [Q + "hash_ratio"]
    assert reasons(GopherQualityFilter(min_doc_words=None, max_symbol_word_ratio=None), [short_and_hashy]) == [Q + "alpha_words"]
    off = GopherQualityFilter(min_doc_words=None, max_symbol_word_ratio=None, max_non_alpha_words_ratio=None)
    assert reasons(off, [short_and_hashy]) == [None]


def test_parameters_are_validated():
    for bad in (
        dict(min_doc_words=-1),
        dict(min_doc_words=10, max_doc_words=5),
        dict(max_avg_word_length=2, min_avg_word_length=3),
        dict(max_bullet_lines_ratio=1.5),
        dict(max_non_alpha_words_ratio="0.8"),
        dict(min_stop_words=3, stop_words=("the", "and")),
        dict(word_rule_languages=[""]),
        dict(spaceless_threshold=2),
    ):
        with pytest.raises(ValueError):
            GopherQualityFilter(**bad)
    for bad in (
        dict(dup_line_frac=-0.1),
        dict(top_n_grams=[(0, 0.2)]),
        dict(dup_n_grams=[(5, 2.0)]),
        dict(dup_n_grams=[(5, 0.1), (5, 0.2)]),
    ):
        with pytest.raises(ValueError):
            GopherRepetitionFilter(**bad)
    # Lists (as YAML gives them) become tuples: the stage stays hashable and comparable.
    stage = GopherRepetitionFilter(top_n_grams=[[2, 0.25]], dup_n_grams=[])
    assert stage.top_n_grams == ((2, 0.25),) and stage.dup_n_grams == ()
    assert GopherQualityFilter(stop_words=["a", "b"]).stop_words == ("a", "b")


# --- language awareness -----------------------------------------------------------------------

CHINESE = "我们今天去公园散步，天气很好，阳光明媚。" * 8 + "孩子们在草地上玩耍，老人们在树下下棋。" * 8


def test_spaceless_scripts_are_exempt_from_the_word_rules():
    table = GopherQualityFilter()(batch([CHINESE, " ".join(prose(60))]))
    assert table.column("rejected_by").to_pylist() == [None, None]
    assert table.column("gopher_quality_word_rules").to_pylist() == [False, True]
    # datatrove's behaviour: English rules for every text.
    assert reasons(GopherQualityFilter(spaceless_threshold=None), [CHINESE]) == [Q + "too_few_words"]
    # The line rules still apply to them.
    listing = "\n".join("• " + CHINESE[:20] for _ in range(10))
    assert reasons(GopherQualityFilter(), [listing]) == [Q + "bullet_lines"]
    # A few Chinese words in English prose do not exempt it.
    assert reasons(GopherQualityFilter(), [" ".join(prose(20)) + " 公园散步"]) == [Q + "too_few_words"]


def test_lang_column_decides_when_present():
    english_short = "the river and the stone"
    german = " ".join(["der", "Fluss", "und", "die", "Steine", "sind", "ruhig", "heute"] * 8)
    texts = [english_short, english_short, german, german, CHINESE, CHINESE, "", CHINESE]
    lang = ["en", "zh", "de", "en", None, "en", "und", "und"]
    got = reasons(GopherQualityFilter(), texts, lang=lang)
    assert got == [
        Q + "too_few_words",  # English: word rules
        None,  # labelled Chinese: exempt
        None,  # German: word rules, but the English stop-word list is not applied
        Q + "stop_words",  # the same text labelled English
        None,  # no label: by script
        Q + "too_few_words",  # labelled English: the label wins
        Q + "too_few_words",  # langid's "und" (nothing to identify): by script
        None,
    ]
    assert reasons(GopherQualityFilter(stop_word_languages=None), [german], lang=["de"]) == [Q + "stop_words"]
    assert reasons(GopherQualityFilter(word_rule_languages=None), [CHINESE], lang=["en"]) == [None]  # by script


# --- gopher_repetition ------------------------------------------------------------------------

R = "gopher_repetition."
OFF = dict(
    dup_line_frac=None, dup_para_frac=None, dup_line_char_frac=None, dup_para_char_frac=None, top_n_grams=(), dup_n_grams=()
)


def only(**rule) -> GopherRepetitionFilter:
    return GopherRepetitionFilter(**{**OFF, **rule})


def test_duplicate_paragraph_and_line_fractions():
    def paragraphs(dups, sep):
        unique = [" ".join(unique_words(6, start=10 * i)) for i in range(10 - dups - 1)]
        return sep.join(unique + ["same words here"] * (dups + 1))

    # 3 repeats among 10 paragraphs is 0.3 (kept); 4 is not.
    stage = only(dup_para_frac=0.3)
    assert reasons(stage, [paragraphs(3, "\n\n"), paragraphs(4, "\n\n\n")]) == [None, R + "dup_para_frac"]
    stage = only(dup_line_frac=0.3)
    assert reasons(stage, [paragraphs(3, "\n"), paragraphs(4, "\n")]) == [None, R + "dup_line_frac"]
    # A single newline does not separate paragraphs; \r\n\r\n does not either (no \n\n in it).
    assert reasons(only(dup_para_frac=0.3), [paragraphs(4, "\n"), paragraphs(4, "\r\n\r\n")]) == [None, None]
    # Leading and trailing newlines make empty lines, which repeat: 4 repeats among 12 lines.
    assert reasons(only(dup_line_frac=0.3), ["\n" + paragraphs(3, "\n") + "\n"]) == [R + "dup_line_frac"]


def boundary(prefix: str, value, threshold: float, pad: str = "q") -> tuple[str, str]:
    """(just inside, just outside): ``prefix`` + the shortest run of ``pad`` for which
    value(text) / len(text) <= threshold, and the same one character shorter. ``prefix`` ends in a
    word of its own that the padding lengthens, so that the value does not change."""
    assert value(prefix) / len(prefix) > threshold
    constant = value(prefix)
    k = 1
    while constant / (len(prefix) + k) > threshold:
        k += 1
    inside, outside = prefix + pad * k, prefix + pad * (k - 1)
    assert value(inside) == value(outside) == constant
    assert value(inside) / len(inside) <= threshold < value(outside) / len(outside)
    return inside, outside


def test_duplicate_character_fractions():
    dt = importlib.import_module("datatrove.pipeline.filters.gopher_repetition_filter")
    block = " ".join(unique_words(12))
    para_text = f"{block}\n\n{block}\n\nfiller w"
    inside, outside = boundary(para_text, lambda t: dt.find_duplicates(re.split(r"\n{2,}", t.strip()))[1], 0.2)
    assert reasons(only(dup_para_char_frac=0.2), [inside, outside]) == [None, R + "dup_para_char_frac"]
    line_text = f"{block}\n{block}\nfiller w"
    inside, outside = boundary(line_text, lambda t: dt.find_duplicates(re.split("\n+", t))[1], 0.2)
    assert reasons(only(dup_line_char_frac=0.2), [inside, outside]) == [None, R + "dup_line_char_frac"]


@pytest.mark.parametrize("n, threshold", [(2, 0.2), (3, 0.18), (4, 0.16)])
def test_top_ngram_fraction(n, threshold):
    dt = importlib.import_module("datatrove.pipeline.filters.gopher_repetition_filter")
    gram = unique_words(n, start=900)
    filler = unique_words(40)
    text = " ".join(w for i in range(10) for w in gram + filler[i : i + 1]) + " w"

    def value(t):
        return dt.find_top_duplicate(dt.get_n_grams(t.split(), n))

    inside, outside = boundary(text, value, threshold)
    assert words(inside) == inside.split() and words(outside) == outside.split()
    assert reasons(only(top_n_grams=((n, threshold),)), [inside, outside]) == [None, R + f"top_{n}_gram"]


@pytest.mark.parametrize("n, threshold", [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)])
def test_duplicated_ngram_fraction(n, threshold):
    dt = importlib.import_module("datatrove.pipeline.filters.gopher_repetition_filter")
    block = unique_words(n + 3, start=500)
    text = " ".join(block + unique_words(5) + block + block[: n - 1]) + " w"

    def value(t):
        return dt.find_all_duplicate(t.split(), n)

    inside, outside = boundary(text, value, threshold)
    assert words(inside) == inside.split() and words(outside) == outside.split()
    assert reasons(only(dup_n_grams=((n, threshold),)), [inside, outside]) == [None, R + f"dup_{n}_gram"]


def test_repetition_rule_order():
    line = " ".join(unique_words(8))
    text = "\n\n".join([line] * 5)  # repeats everything: the paragraph rule comes first
    assert reasons(GopherRepetitionFilter(), [text, ""]) == [R + "dup_para_frac", R + "empty"]
    assert reasons(GopherRepetitionFilter(dup_para_frac=None), [text]) == [R + "dup_para_char_frac"]


def _loop(words, n):
    """datatrove's find_all_duplicate with n-grams compared as word sequences (our definition)."""
    seen, i, chars = set(), 0, 0
    while i < len(words) - n + 1:
        gram = tuple(words[i : i + n])
        if gram in seen:
            chars += sum(len(w) for w in gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(["a", "bb", "ccc"]), max_size=60), min_size=1, max_size=4),
    st.integers(2, 7),
    st.booleans(),
)
def test_duplicated_ngram_chars_is_datatrove_loop(docs, n, repeated_only):
    """The compiled loop over hashed n-grams equals datatrove's over words, including where a
    jumped-over n-gram's first occurrence matters (small vocabularies make that common); given all
    n-grams or, as the stage does, only those that occur twice or more."""
    vocabulary = {"a": 1, "bb": 2, "ccc": 3}
    doc = np.repeat(np.arange(len(docs)), [len(d) for d in docs]).astype(np.int64)
    flat = [w for d in docs for w in d]
    ids = np.array([vocabulary[w] for w in flat], dtype=np.uint64)
    lengths = np.array([len(w) for w in flat], dtype=np.int64)
    ends = np.cumsum([len(d) for d in docs])[doc] if len(flat) else doc
    position = np.arange(len(flat))
    position = position[position + n <= ends]
    gram = np.zeros(len(position), dtype=np.uint64)
    chars = np.zeros(len(position), dtype=np.int64)
    for k in range(n):
        gram = gram * np.uint64(1000003) + ids[position + k]
        chars += lengths[position + k]
    if repeated_only:
        keep = pl.DataFrame({"d": doc[position], "g": gram}).select(pl.len().over("d", "g") > 1).to_series().to_numpy()
        position, gram, chars = position[keep], gram[keep], chars[keep]
    got = duplicated_ngram_chars(doc[position], gram, position, chars, n, len(docs))
    assert got.tolist() == [_loop(d, n) for d in docs]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "bb", "ccc", "dddd"]), max_size=40), min_size=1, max_size=4), st.integers(1, 4))
def test_top_ngram_chars_is_datatroves_most_common(docs, n):
    """The compiled count equals ``Counter.most_common(1)`` over the n-grams (ties: the first seen),
    its words joined by spaces, times its count."""
    from collections import Counter

    vocabulary = {"a": 1, "bb": 2, "ccc": 3, "dddd": 4}
    doc, gram, position, chars, start = [], [], [], [], 0
    want = []
    for d, words_ in enumerate(docs):
        grams = [tuple(words_[i:i + n]) for i in range(len(words_) - n + 1)]
        for i, g in enumerate(grams):
            doc.append(d)
            gram.append(sum(vocabulary[w] * 10 ** (2 * k) for k, w in enumerate(g)))
            position.append(start + i)
            chars.append(len(" ".join(g)))
        start += len(words_)
        top = Counter(grams).most_common(1)
        want.append(len(" ".join(top[0][0])) * top[0][1] if top else 0)
    got = gopher.top_ngram_chars(np.array(doc, dtype=np.int64), np.array(gram, dtype=np.uint64),
                                 np.array(position, dtype=np.int64), np.array(chars, dtype=np.int64), len(docs))
    assert got.tolist() == want


# --- degenerate documents ---------------------------------------------------------------------

DEGENERATE = [
    "", " ", "\n", "\n\n\n", " \t\u3000\x1c ", "word", "one single line without end", "#", "...", "•\n•\n•", "!!!! ### ...",
    "\x00\x01", "((((((((((((((((((((((x))))))))))))))))))))))", "a\r\nb\r\n",
]


def test_degenerate_documents_match_datatrove():
    dt = importlib.import_module("datatrove.pipeline.filters")
    from datatrove.data import Document

    ours_q = reasons(GopherQualityFilter(), DEGENERATE)
    ours_r = reasons(GopherRepetitionFilter(), DEGENERATE)
    quality, repetition = dt.GopherQualityFilter(), dt.GopherRepetitionFilter()
    for text, q, r in zip(DEGENERATE, ours_q, ours_r):
        theirs = quality.filter(Document(text=text, id="x"))
        assert (q is None) == (theirs is True), (text, q, theirs)
        theirs = repetition.filter(Document(text=text, id="x"))
        assert (r is None) == (theirs is True), (text, r, theirs)
    assert ours_q[0] == Q + "too_few_words" and ours_r[0] == R + "empty"


def test_ten_megabytes_on_one_line():
    rng = random.Random(0)
    vocabulary = ["".join(rng.choice("etaoinshrdlu") for _ in range(rng.randint(2, 9))) for _ in range(20_000)]
    text = " ".join(rng.choice(vocabulary) for _ in range(1_800_000))[:10_000_000]
    for stage, expected in ((GopherQualityFilter(), Q + "too_many_words"), (GopherRepetitionFilter(), None)):
        start = time.perf_counter()
        out = stage(batch([text, "short"]))
        assert time.perf_counter() - start < 10
        assert out.column("rejected_by").to_pylist()[0] == expected
    symbols = "!?#" * 300_000  # one chunk of 900,000 affixes
    start = time.perf_counter()
    assert reasons(GopherQualityFilter(), [symbols]) == [Q + "too_few_words"]
    assert reasons(GopherRepetitionFilter(), [symbols]) == [R + "top_2_gram"]
    assert time.perf_counter() - start < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 < 3000  # MB


# --- the stage contract -----------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80) | st.sampled_from(
    ["the river and the stone " * 12, "- a\n- a\n- a", "x... y...\nz…", "中文文本，没有空格。" * 5, "a b a b a b c"]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(TEXT, st.booleans()), min_size=1, max_size=6))
def test_stage_contract(rows):
    texts = [t for t, _ in rows]
    before = ["earlier.rule" if r else None for _, r in rows]
    for stage in (GopherQualityFilter(), GopherRepetitionFilter()):
        table = batch(texts, rejected=before)
        out = stage(table)
        again = stage(table)
        assert out.equals(again)  # deterministic
        assert out.num_rows == table.num_rows and out.column("id").equals(table.column("id"))
        got = out.column("rejected_by").to_pylist()
        for i, earlier in enumerate(before):
            if earlier:
                assert got[i] == earlier  # untouched
                for name in stage.annotation_types:
                    assert out.column(name)[i].as_py() is None
            else:
                assert got[i] is None or got[i].startswith(stage.name + ".")
                # a document's fate does not depend on its batch
                assert got[i] == stage(batch([texts[i]])).column("rejected_by")[0].as_py()


# --- the word tokenizer against spaCy ---------------------------------------------------------

TRICKY = [
    "Don't stop: it's 5pm-close! I'm sure you're right (e.g. U.S. law).",
    "Visit https://example.com/a-b?c=d, or www.test.org... then email me@x.io",
    "Prices: $5, US$10, 5km/h, 3.14, 1,000, 50%, 10a.m. and 2-3 days; x*y^2",
    "well-known and/or self--aware ~approx O'Neill's 'quoted' \"double\" «guillemets»",
    "emoticons :) :-( <3 word): (a). ''wiki'' hello:P C++ A.B.C. ABC. Mr. Smith",
    "中文，混合English文字。日本語のテキスト…… 한국어 텍스트",
    "trailing.... dots..a..b a.B end.The 5.4M £3 ©2020 ™ → ⟶ 🙂 emoji",
    "can't won't shouldn't've y'all gonna wanna ma'am o'clock 'cause",
    "((((((((((((((((((((x)))))))))))))))))))). \"'(word)'\" [[x]] !!!??? --- ...!",
    "İstanbul'da ΑΘΗΝΑ. Москва, 2020г. naïve café-bar résumé—done 3×4 x²",
]


def test_tokenizer_matches_spacy_on_tricky_text():
    spacy = importlib.import_module("spacy")
    nlp = spacy.blank("en")
    for text in TRICKY:
        assert words(text) == [t.text for t in nlp(text) if t.text.strip()], text


def test_embedded_tables_match_spacy_and_datatrove():
    importlib.import_module("spacy")
    import spacy
    from spacy.lang import char_classes
    from spacy.symbols import ORTH

    rules = spacy.blank("en").tokenizer.rules
    assert special_cases() == {key: [t[ORTH] for t in tokens] for key, tokens in rules.items()}
    from filters import gopher

    everything = pl.Series([chr(c) for c in range(0x30000) if not 0xD800 <= c < 0xE000])
    python = pl.Series([chr(c) for c in range(0x30000) if not 0xD800 <= c < 0xE000]).to_list()

    def same(ours: str, theirs: str) -> None:
        got = everything.str.contains(f"^[{ours}]$").to_numpy()
        pattern = re.compile(f"[{theirs}]")
        want = np.array([bool(pattern.fullmatch(c)) for c in python])
        assert (got == want).all(), [hex(ord(python[i])) for i in np.flatnonzero(got != want)[:10]]

    same(gopher._SPACY_ICONS, char_classes.ICONS)
    same(gopher._ALPHA, char_classes.ALPHA)
    from datatrove.utils.text import PUNCTUATION_SET

    got = everything.str.contains(f"^[{gopher._DATATROVE_PUNCTUATION}]$").to_numpy()
    assert {python[i] for i in np.flatnonzero(got)} == PUNCTUATION_SET
    assert STOP_WORDS == tuple(__import__("datatrove.pipeline.filters.gopher_quality_filter", fromlist=["STOP_WORDS"]).STOP_WORDS)


# --- agreement with datatrove on real crawl text ----------------------------------------------

ENGLISH_SHARDS = (
    "olmo_c4-sample.00000-of-00001.json.gz",
    "dolma_cc_en_head-0091.jsonl.gz",
    "dolma_cc_en_head-0174.jsonl.gz",
    "dolma_provided_documents_000.json.gz",
)


def _english_documents(crawl_dir: Path) -> list[str]:
    texts = []
    for name in ENGLISH_SHARDS:
        with gzip.open(crawl_dir / "jsonl" / name) as f:
            texts += [orjson.loads(line)["text"] for line in f if line.strip()]
    return texts


def test_agreement_with_datatrove_on_english_crawl(crawl_dir):
    """C4 and Dolma's English shards (1,030 documents): the same word lists as spaCy, and the same
    keep/reject decision (and reason) as datatrove's filters on at least 99% of the documents."""
    importlib.import_module("datatrove")
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter as DTQuality
    from datatrove.pipeline.filters import GopherRepetitionFilter as DTRepetition
    from datatrove.utils.text import split_into_words

    from bench.filters_agreement import COMPARISONS, compare

    texts = _english_documents(crawl_dir)
    assert len(texts) > 1000
    theirs_q, theirs_r, same_words = [], [], 0
    ours_words = spacy_en_words(pl.Series(texts)).group_by("doc", maintain_order=True).agg("word")
    ours_words = dict(zip(ours_words.get_column("doc").to_list(), ours_words.get_column("word").to_list()))
    quality, repetition = DTQuality(), DTRepetition()
    for i, text in enumerate(texts):
        same_words += ours_words.get(i, []) == split_into_words(text)
        for filt, out in ((quality, theirs_q), (repetition, theirs_r)):  # both hit spaCy's cache
            result = filt.filter(Document(text=text, id=str(i)))
            out.append(None if result is True else result[1])
    assert same_words / len(texts) >= 0.99
    stages = (("gopher_quality", GopherQualityFilter(), theirs_q), ("gopher_repetition", GopherRepetitionFilter(), theirs_r))
    for name, stage, theirs in stages:
        ours = [None if r is None else r.split(".", 1)[1] for r in reasons(stage, texts)]
        result = compare(ours, theirs, COMPARISONS[name].reasons)
        assert result["keep_reject_agreement"] >= 0.99, (name, result["disagreements"])
        assert result["same_reason_when_both_reject"] >= 0.99, (name, result["disagreements"])
        assert 0.05 < result["rejected_ours"] / len(texts) < 0.95  # the test has teeth


# --- the tokenizer's shortcuts ------------------------------------------------------------------

_SUFFIXES = list(",;:!?)]}>\"'”’»…。，") + ["'s", "’S", ".", "'", "%"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(
    st.lists(st.sampled_from(list("abcxyzABCXYZ0123459éßİΑωЖж中文") + ["dont", "km", "Mr", "e", "U", "S", "gonna"]),
             min_size=1, max_size=4),
    st.sampled_from(_SUFFIXES + [""]),
), min_size=1, max_size=30))
def test_plain_word_and_suffix_equals_the_affix_loop(pairs):
    """spacy_en_words on "word," and "word." (most of the chunks a rule splits) must answer as the
    Polars affix loop (``_tokenize_chunks``), special cases ("dont,", "Mr.", "e.") and units ("5km.")
    included."""
    chunks = ["".join(core) + suffix for core, suffix in pairs]
    fast = spacy_en_words(pl.Series(chunks)).group_by("doc", maintain_order=True).agg("word")
    got = dict(zip(fast.get_column("doc").to_list(), fast.get_column("word").to_list()))
    slow = gopher._tokenize_chunks(pl.Series(chunks)).str.split(" ").to_list()
    for i, chunk in enumerate(chunks):
        assert got.get(i, []) == [w for w in slow[i] if w], chunk


def _polars_words(texts: list[str]) -> dict[int, list[str]]:
    """The reference path: chunks by regex, every chunk through the Polars affix loop
    (``_tokenize_chunks``)."""
    chunks = pl.DataFrame({"text": texts}, schema={"text": pl.String}).select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("doc"), pl.col("text").str.extract_all(gopher._CHUNK).alias("chunk")
    ).explode("chunk").drop_nulls("chunk")
    tokens = gopher._tokenize_chunks(chunks.get_column("chunk")).str.split(" ").to_list()
    out: dict[int, list[str]] = {}
    for doc, chunk_tokens in zip(chunks.get_column("doc").to_list(), tokens):
        out.setdefault(doc, []).extend(t for t in chunk_tokens if t)
    return out


def _compiled_words(texts: list[str]) -> dict[int, list[str]]:
    words = spacy_en_words(pl.Series(texts, dtype=pl.String)).group_by("doc", maintain_order=True).agg("word")
    return dict(zip(words.get_column("doc").to_list(), words.get_column("word").to_list()))


_PIECES = (
    list("abcxyzABCXYZ0123459éßİΑωЖж中文ـ") + list(".,:;!?()[]{}<>_#*&'\"`‘’“”«»…-–—~+^/=%$£€§©™→🙂°²|@")
    + ["..", "...", "……", "'s", "’S", "n't", "US$", "C$", "A$", "km", "m/s", "km/h", "°C", "Mr", "e", "U", "S",
       "gonna", "dont", "Dont", "http://", "https://", "www.", ".com", ".org", "ex", "192.168.1.1", ":)", ":-(",
       "<3", "''", "a.", "---", "--", "——", "a-b", "E.g", "i.e."]
)
_AFFIXES = list("()[]{}<>\"'`‘’“”«»…,;:!?.%$£€§") + ["..", "'s", "US$"]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=10).map("".join),
    st.tuples(  # more stacked affixes than the affix loop's rounds: the bulk peel
        st.lists(st.sampled_from(_AFFIXES), max_size=16), st.lists(st.sampled_from(_PIECES), max_size=3),
        st.lists(st.sampled_from(_AFFIXES), max_size=16),
    ).map(lambda t: "".join(t[0] + t[1] + t[2])).filter(bool),
), min_size=1, max_size=25))
def test_compiled_tokenizer_equals_the_polars_path(chunks):
    """The compiled tokenizer (``filters.gopher_words``) against the Polars affix loop it replaces,
    on chunks made of affixes, special cases, units, URLs, infixes and letters of several scripts."""
    assert _compiled_words(chunks) == _polars_words(chunks)


_SEPARATORS = list(gopher.PY_WHITESPACE) + ["\u200b", "\ufeff", "\x00", "a"]  # the last four are no whitespace


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.one_of(st.sampled_from(_PIECES), st.sampled_from(_SEPARATORS)), max_size=30).map("".join),
                min_size=1, max_size=8))
def test_compiled_chunks_equal_the_regex_chunks(texts):
    """Chunks (runs of non-whitespace, Python's ``str.isspace``) and the plain-word shortcut, against
    the regex path; empty texts have no words."""
    assert _compiled_words(texts) == _polars_words(texts)


def test_compiled_tokenizer_equals_the_polars_path_on_the_whole_crawl(crawl_dir):
    """Every document of the real crawl (all formats, half of it Chinese): the same words, in the
    same order, from the compiled tokenizer as from the Polars path it replaced."""
    from bench.filters import load_documents
    from bench.harness import corpus_paths

    table = load_documents(corpus_paths(str(crawl_dir))[0], None)
    texts = table.column("text").to_pylist()
    assert len(texts) > 3000
    compiled, polars = _compiled_words(texts), _polars_words(texts)
    assert sum(map(len, compiled.values())) > 1_000_000
    assert compiled == polars


def test_compiled_tokenizer_on_empty_and_null_batches():
    assert spacy_en_words(pl.Series([], dtype=pl.String)).height == 0
    out = spacy_en_words(pl.Series([None, "", "  ", "a, b"], dtype=pl.String))
    assert out.get_column("doc").to_list() == [3, 3, 3] and out.get_column("word").to_list() == ["a", ",", "b"]
    assert out.schema == pl.Schema({"doc": pl.UInt32, "word": pl.String})


def test_second_gopher_stage_reuses_words_only_for_unchanged_text(crawl_dir, monkeypatch):
    """The words travel on the batch (``__words``, ``__words_key``): gopher_repetition after
    gopher_quality tokenizes only the rows whose text changed in between; its answers equal a run
    that tokenizes everything; the columns never reach kept/ or rejected/."""
    import pyarrow as pa

    from ingest.schema import output_columns

    texts = _english_documents(crawl_dir)[:200]
    first = GopherQualityFilter()(batch_of(texts))
    assert {gopher.WORDS_COLUMN, gopher.WORDS_KEY_COLUMN} <= set(first.column_names)
    assert not any(c.startswith("__") for c in output_columns(first))
    kept = [i for i, r in enumerate(first.column("rejected_by").to_pylist()) if r is None]
    carried = first.column(gopher.WORDS_COLUMN).to_pylist()
    for i in kept[:20]:
        assert carried[i] == spacy_en_words(pl.Series([texts[i]])).get_column("word").to_list()
    # Rewrite one kept row's text, as a stage in between may.
    changed = list(first.column("text").to_pylist())
    changed[kept[0]] += " and then some more words."
    edited = first.set_column(first.schema.get_field_index("text"), "text", pa.array(changed, first.schema.field("text").type))
    tokenized = []
    real = gopher._assembled_words
    monkeypatch.setattr(gopher, "_assembled_words", lambda t: tokenized.append(len(t)) or real(t))
    chained = GopherRepetitionFilter()(edited)
    assert tokenized == [1]  # only the rewritten row
    monkeypatch.setattr(gopher, "_assembled_words", real)
    fresh = GopherRepetitionFilter()(edited.drop_columns([gopher.WORDS_COLUMN, gopher.WORDS_KEY_COLUMN]))
    assert chained.column("rejected_by").equals(fresh.column("rejected_by"))
    for name in fresh.column_names:
        if name.startswith("gopher_repetition_"):
            assert chained.column(name).equals(fresh.column(name)), name


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["alpha beta", "gamma", "alpha beta", "  ", "", "\t", "delta epsilon zeta"]),
                          st.sampled_from(["\n", "\n\n", "\n\n\n", "\n\n\n\n\n", " \n", "\n \n"])),
                max_size=12))
def test_paragraph_and_line_counts_are_datatroves(pieces):
    """Paragraphs (``re.split("\\n{2,}", text.strip())``) and lines (``re.split("\\n+", text)``),
    their repeats and repeated characters, as datatrove's ``find_duplicates`` counts them."""
    from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates

    text = "".join(p + sep for p, sep in pieces)
    if not text:
        return  # rejected as gopher_repetition.empty before any count is read
    frame = GopherRepetitionFilter(top_n_grams=(), dup_n_grams=()).prepare(pl.DataFrame({"text": [text]}))
    row = frame.row(0, named=True)
    paragraphs = re.split(r"\n{2,}", text.strip())
    lines = re.split(r"\n+", text)
    assert (row["_dup_paragraphs"], row["_dup_paragraph_chars"]) == find_duplicates(paragraphs)
    assert row["_paragraphs"] == max(len(paragraphs), 1)
    assert (row["_lines"], row["_dup_lines"], row["_dup_line_chars"]) == (len(lines), *find_duplicates(lines))


def test_numba_kernel_cache_check_follows_the_source(tmp_path, monkeypatch):
    """``crawlsift run`` compiles the kernels up front (saying so) exactly when Numba's cache is
    missing or older than the kernel source; ``make install`` fills it."""
    import os

    from filters import warmup

    source = tmp_path / "gopher_words.py"
    source.write_text("# kernels\n")
    monkeypatch.setattr(warmup, "KERNEL_SOURCES", (source,))
    assert not warmup.kernels_cached()  # no cache at all
    (tmp_path / "__pycache__").mkdir()
    index = tmp_path / "__pycache__" / "gopher_words._count-12.py311.nbi"
    index.write_text("")
    os.utime(index, (source.stat().st_mtime - 10,) * 2)
    assert not warmup.kernels_cached()  # compiled from an older source
    os.utime(index, (source.stat().st_mtime + 10,) * 2)
    assert warmup.kernels_cached()
    assert "filters.warmup" in (Path(__file__).resolve().parents[1] / "Makefile").read_text()


def test_quality_metric_columns_agree_with_the_decisions(crawl_dir):
    """The metric columns a report draws are the numbers the rules judged: on the real English
    crawl, every document rejected for a ratio rule has that ratio past its threshold, and every
    kept document (word rules on) has each ratio inside its threshold."""
    from filters.gopher import GopherQualityFilter

    stage = GopherQualityFilter()
    out = stage(batch_of(_english_documents(crawl_dir))).to_pylist()
    rules = {"mean_word_length_low": ("gopher_quality_mean_word_length", lambda v: v < 3),
             "mean_word_length_high": ("gopher_quality_mean_word_length", lambda v: v > 10),
             "hash_ratio": ("gopher_quality_hash_ratio", lambda v: v > 0.1),
             "ellipsis_ratio": ("gopher_quality_ellipsis_ratio", lambda v: v > 0.1),
             "bullet_lines": ("gopher_quality_bullet_lines_ratio", lambda v: v > 0.9),
             "ellipsis_lines": ("gopher_quality_ellipsis_lines_ratio", lambda v: v > 0.3),
             "alpha_words": ("gopher_quality_alpha_words_ratio", lambda v: v < 0.8),
             "stop_words": ("gopher_quality_stop_words", lambda v: v < 2)}
    seen = set()
    for row in out:
        reason = (row["rejected_by"] or "").removeprefix("gopher_quality.")
        if reason in rules:
            column, past = rules[reason]
            assert row[column] is not None and past(row[column]), (reason, row[column])
            seen.add(reason)
        elif row["rejected_by"] is None and row["gopher_quality_word_rules"]:
            for column, past in rules.values():
                assert row[column] is None or not past(row[column]), (column, row[column])
    assert {"alpha_words", "stop_words"} & seen  # the crawl exercises some ratio rules


def test_repetition_metric_columns_agree_with_the_decisions(crawl_dir):
    """gopher_repetition's fractions, as written for the report, are what its rules judged: past the
    threshold for the documents rejected by that rule, inside every threshold for kept ones."""
    from filters.gopher import GopherRepetitionFilter

    stage = GopherRepetitionFilter()
    limits = {"dup_line_frac": 0.3, "dup_para_frac": 0.3, "dup_line_char_frac": 0.2, "dup_para_char_frac": 0.2}
    limits.update({f"top_{n}_gram": f for n, f in stage.top_n_grams})
    limits.update({f"dup_{n}_gram": f for n, f in stage.dup_n_grams})
    out = stage(batch_of(_english_documents(crawl_dir))).to_pylist()
    assert {n for n in stage.annotation_types if not n.startswith("__")} == {f"gopher_repetition_{k}" for k in limits}
    rejected = 0
    for row in out:
        reason = (row["rejected_by"] or "").removeprefix("gopher_repetition.")
        if reason in limits:
            rejected += 1
            assert row[f"gopher_repetition_{reason}"] > limits[reason], (reason, row[f"gopher_repetition_{reason}"])
        elif row["rejected_by"] is None:
            for rule, limit in limits.items():
                value = row[f"gopher_repetition_{rule}"]
                assert value is None or value <= limit, (rule, value)
    assert rejected > 0
