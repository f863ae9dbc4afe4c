"""decontam: training documents that share a 13-gram with an evaluation set are rejected, with the
item and the n-gram recorded; case, punctuation and spacing do not hide a match; 12 shared words do
not make one; short items match whole. On real crawl documents."""

from __future__ import annotations

import json
import random
import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cluster.config import ConfigError, build_config
from filters.decontam import Decontaminate


@pytest.fixture(scope="module")
def crawl(crawl_dir):
    from bench.filters_agreement import load_documents

    table = load_documents([str(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz")])
    return table.filter(pc.greater(pc.utf8_length(table.column("text")), 600)).slice(0, 300)


def _eval_set(path, items):
    path.write_text("".join(json.dumps({"question": q}) + "\n" for q in items))
    return str(path)


def test_planted_passages_are_found_and_located(crawl, tmp_path):
    rng = random.Random(0)
    texts = crawl.column("text").to_pylist()
    planted = rng.sample(range(len(texts)), 20)
    items, expected = [], {}
    for k, i in enumerate(planted):
        words = texts[i].split()
        start = rng.randrange(0, len(words) - 30)
        passage = " ".join(words[start:start + 25])
        if k % 2:  # the evaluation copy differs in case and punctuation: still a match
            passage = passage.upper().replace(",", " ;")
        items.append(passage)
        expected[i] = k
    bench = _eval_set(tmp_path / "eval.jsonl", items + ["What is the capital of a country far away from here?"])
    stage = Decontaminate(benchmarks=(bench,), text_field="question")
    stage.setup()
    out = stage(crawl)
    rejected = {i for i, r in enumerate(out.column("rejected_by").to_pylist()) if r == "decontam.overlap"}
    assert set(expected) <= rejected
    assert len(rejected - set(expected)) <= 2  # only natural repeats of a planted passage elsewhere
    for i, k in expected.items():
        assert out.column("decontam_benchmark")[i].as_py() == f"eval.jsonl:{k}"
        gram = out.column("decontam_ngram")[i].as_py()
        plain = " ".join(re.sub(r"[^\w\s]", " ", texts[i].lower()).split())
        assert len(gram.split()) == 13 and " ".join(gram.split()) in plain
        assert out.column("decontam_matches")[i].as_py() >= 1


def test_twelve_shared_words_are_not_a_match_but_short_items_match_whole(crawl, tmp_path):
    text = crawl.column("text")[0].as_py()
    words = text.split()
    twelve = " ".join(words[5:17])  # 12 words of the document, inside a longer item of other words
    item = f"{twelve} completely unrelated closing words that never appear in the document at all"
    short = " ".join(words[40:49])  # a 9-word item: matched whole
    doc = pa.table({"text": [text], "rejected_by": pa.nulls(1, pa.string())})
    assert Decontaminate(benchmarks=(_eval_set(tmp_path / "a.jsonl", [item]),), text_field="question")(doc) \
        .column("rejected_by")[0].as_py() is None
    out = Decontaminate(benchmarks=(_eval_set(tmp_path / "b.jsonl", [short]),), text_field="question")(doc)
    assert out.column("rejected_by")[0].as_py() == "decontam.overlap"
    assert out.column("decontam_ngram")[0].as_py().split() == short.lower().replace(",", " ").replace(".", " ").split()
    # Shorter than min_words (8): never matched.
    out = Decontaminate(benchmarks=(_eval_set(tmp_path / "c.jsonl", [" ".join(words[40:45])]),), text_field="question")(doc)
    assert out.column("rejected_by")[0].as_py() is None


def test_config_errors_are_one_line(tmp_path):
    for params, words in [({}, "benchmarks is required"), ({"benchmarks": [str(tmp_path / "nope.jsonl")]}, "decontam.benchmarks"),
                          ({"benchmarks": ["x"], "min_words": 20}, "min_words <= ngram")]:
        with pytest.raises(ConfigError, match=words):
            build_config({"stages": [{"decontam": params}]}, inputs=["u"], output="u", resolve=False)
