"""What MinHash shingles are cut from: datatrove's text normalisation (template pages that differ
only in numbers, dates, prices, punctuation or accents) and character n-grams for scripts written
without spaces (Chinese, Japanese), on real text."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest

from dedup.components import near_duplicates, shingle_sets
from dedup.near import MinHashDedup, shingle_text


def jaccard(stage: MinHashDedup, a: str, b: str) -> float:
    offsets, hashes = stage.shingle_sets(pa.array([a, b]))
    x, y = set(hashes[offsets[0]:offsets[1]].tolist()), set(hashes[offsets[1]:offsets[2]].tolist())
    return len(x & y) / len(x | y)


def clusters(stage: MinHashDedup, texts: list[str]) -> np.ndarray:
    keys = stage.map(pa.table({"text": pa.array(texts), "rejected_by": pa.nulls(len(texts), pa.string())}))
    bands = np.array(keys.column("minhash_dedup_bands").to_pylist(), dtype=np.uint64)
    return near_duplicates(bands)


TEMPLATE = ("Listing {n} of {total}: the {item} costs {price} EUR, posted on {date}. "
            "Free delivery within {days} days; call {phone} to order{punct} Stock is updated every morning and "
            "our shop in the old town is open from Monday to Saturday for collection.")


def _page(rng: random.Random, accents: bool) -> str:
    return TEMPLATE.format(n=rng.randint(1, 999), total=rng.randint(1000, 9999), item="café crème" if accents else "cafe creme",
                           price=f"{rng.randint(1, 99)},{rng.randint(10, 99)}", date=f"{rng.randint(1, 28)}.{rng.randint(1, 12)}.2024",
                           days=rng.randint(2, 9), phone=f"+33 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                           punct=rng.choice([".", "!", " -", ";"]))


def test_template_pages_differing_in_numbers_punctuation_and_accents_are_duplicates_only_when_normalised():
    rng = random.Random(0)
    pages = [_page(rng, accents=i % 2 == 0) for i in range(6)]
    plain, normalised = MinHashDedup(), MinHashDedup(normalize_text=True)
    assert all(jaccard(normalised, pages[0], p) == 1.0 for p in pages[1:])
    assert max(jaccard(plain, pages[0], p) for p in pages[1:]) < 0.6
    assert (clusters(normalised, pages) == 0).all()  # one cluster, the first page kept
    assert (clusters(plain, pages) == np.arange(len(pages))).all()  # each its own
    # Text that differs in its words stays apart after normalisation.
    other = "A different shop sells bread and honey near the station, open every day of the week."
    assert jaccard(normalised, pages[0], other) == 0.0


def test_normalised_text_follows_datatrove_simplify_text():
    from datatrove.utils.text import simplify_text

    texts = ["Prix: 12,50 € le 3 mars — Crème brûlée!", "Ünïcödé 2024-05-01 naïve façade", "Ελληνικά τόνος 3.14"]
    ours = shingle_text(pa.array(texts), normalize_text=True, spaceless_chars=False).to_pylist()
    for mine, text in zip(ours, texts):
        stage = MinHashDedup(normalize_text=True, ngram=1)
        # Same words once the shingler has lower-cased and split off punctuation and symbols.
        off, h = stage.shingle_sets(pa.array([mine]))
        # datatrove keeps symbols such as "€" as words; crawlsift's shingler drops Unicode symbols
        # (S*) with punctuation.
        theirs = " ".join(w for w in simplify_text(text).split() if w != "€")
        ref = MinHashDedup(ngram=1, spaceless_chars=False).shingle_sets(pa.array([theirs]))
        assert set(h.tolist()) == set(ref[1].tolist()), (mine, theirs)


@pytest.fixture(scope="module")
def chinese_pages(crawl_dir) -> list[str]:
    lines = (crawl_dir / "jsonl" / "chinesewebtext_2021-43_cleared1.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["raw_content"] for line in lines[:200]]
    return [t for t in texts if 300 <= len(t) <= 3000][:20]


def test_chinese_near_duplicates_are_found_with_character_shingles(chinese_pages):
    rng = random.Random(1)
    edited = []
    for text in chinese_pages:
        chars = list(text)
        for i in rng.sample(range(len(chars)), max(1, len(chars) // 200)):  # ~0.5% of characters changed
            chars[i] = "的"
        edited.append("".join(chars))
    by_char, by_word = MinHashDedup(), MinHashDedup(spaceless_chars=False)
    char_j = [jaccard(by_char, a, b) for a, b in zip(chinese_pages, edited)]
    word_j = [jaccard(by_word, a, b) for a, b in zip(chinese_pages, edited)]
    assert min(char_j) > 0.8  # a few changed characters cost a few 5-grams each
    assert np.median(word_j) < 0.5  # a clause between spaces is one "word": one change loses it whole
    n = len(chinese_pages)
    found = clusters(by_char, chinese_pages + edited)
    assert (found[n:] == np.arange(n)).mean() >= 0.9  # each edited copy joins its original
    assert (found[:n] == np.arange(n)).all()  # distinct pages stay apart
    assert (clusters(by_word, chinese_pages + edited)[n:] == np.arange(n)).mean() < 0.5


def test_pairs_near_the_threshold():
    """14 bands x 8 rows: the S-curve's threshold is ~0.72; pairs well above are caught, well below are not."""
    stage = MinHashDedup()
    rng = random.Random(2)
    words = [f"w{rng.randrange(10**9)}" for _ in range(600)]
    caught = {}
    for target in (0.95, 0.5):
        keep = int(len(words) * target)
        copy = words[:keep] + [f"x{rng.randrange(10**9)}" for _ in range(len(words) - keep)]
        j = jaccard(stage, " ".join(words), " ".join(copy))
        caught[target] = (j, clusters(stage, [" ".join(words), " ".join(copy)])[1] == 0)
    assert caught[0.95][0] > 0.85 and caught[0.95][1]
    assert caught[0.5][0] < 0.5 and not caught[0.5][1]


def test_shingle_sets_after_normalisation_match_the_map(chinese_pages):
    """Verification re-shingles candidates: it must see the same shingles the signatures saw."""
    stage = MinHashDedup(normalize_text=True, verify_jaccard=0.8)
    texts = pa.array(chinese_pages[:5] + [_page(random.Random(3), True)])
    offsets, hashes = stage.shingles(texts)
    assert shingle_sets(offsets, hashes)[1].tolist() == stage.shingle_sets(texts)[1].tolist()
