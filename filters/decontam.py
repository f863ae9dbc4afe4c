"""Decontamination: reject documents that share a long word n-gram with an evaluation set.

Training text that contains a benchmark's questions or answers inflates that benchmark's score.
GPT-3 (Brown et al. 2020, Appendix C) and NeMo Curator's ``TaskDecontamination`` remove training
documents sharing a 13-gram with a task; this stage does the same against evaluation files the user
names (JSONL, Parquet, TSV: anything the readers take).

Both sides are cut into word n-grams by crawlsift's MinHash shingler (``dedup.minhash``: lower
case, punctuation and symbols as spaces, Unicode whitespace; the same 64-bit word-mix hash), so a
match survives case, punctuation and spacing changes. The evaluation n-grams are a sorted array of
hashes (8 bytes each) built once per worker process; a batch's n-grams are looked up by binary
search over the whole batch at once. An evaluation item shorter than ``ngram`` words but at least
``min_words`` long is matched whole (as NeMo Curator matches short task items), by cutting the
documents at that length too.

Reason ``decontam.overlap``. Annotations on rejected documents: ``decontam_benchmark`` (the file
the first matching item came from, and the item's row), ``decontam_ngram`` (the first matching
n-gram of the document, normalised) and ``decontam_matches`` (how many of the document's n-grams
are in the evaluation set).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.minhash import shingle_hashes, word_chunks
from filters.base import Stage, judge_active

_TABLES: dict[tuple, tuple[np.ndarray, np.ndarray, list[str], dict[int, tuple[np.ndarray, np.ndarray]]]] = {}


@dataclass(frozen=True)
class Decontaminate(Stage):
    """Reject documents sharing a word ``ngram`` with an evaluation set (see the module docstring).

    Defaults: ``ngram`` 13 (GPT-3's and NeMo Curator's), ``min_words`` 8 (NeMo Curator's
    ``min_ngram_size``), ``min_matches`` 1 (any shared n-gram rejects, as both). ``benchmarks``:
    evaluation files or globs (required); ``text_field``: the field holding the text (``auto``: the
    readers' usual names; give e.g. ``question`` for a QA set).
    """

    name: ClassVar[str] = "decontam"

    benchmarks: tuple[str, ...] = ()
    text_field: str = "auto"
    ngram: int = 13
    min_words: int = 8
    min_matches: int = 1

    def __post_init__(self):
        if isinstance(self.benchmarks, str):
            object.__setattr__(self, "benchmarks", (self.benchmarks,))
        object.__setattr__(self, "benchmarks", tuple(self.benchmarks))
        if not self.benchmarks:
            raise ValueError("decontam: benchmarks is required (evaluation files: JSONL, Parquet, TSV)")
        if self.ngram < 1 or self.min_words < 1 or self.min_words > self.ngram or self.min_matches < 1:
            raise ValueError("decontam: need 1 <= min_words <= ngram and min_matches >= 1")
        from ingest.readers import InputError, resolve_inputs

        try:
            files = resolve_inputs(list(self.benchmarks))
        except InputError as exc:
            raise ValueError(f"decontam.benchmarks: {exc}") from None
        object.__setattr__(self, "_files", tuple(f.path for f in files))

    def setup(self) -> None:
        self._table()

    def _table(self):
        """(sorted n-gram hashes, the item each came from, item names, {short length: (hashes, items)})."""
        key = (self._files, self.text_field, self.ngram, self.min_words)
        if key not in _TABLES:
            _TABLES[key] = _evaluation_ngrams(self._files, self.text_field, self.ngram, self.min_words)
        return _TABLES[key]

    def __call__(self, table: pa.Table) -> pa.Table:
        return judge_active(table, self._judge, {"decontam_matches": pa.int32(), "decontam_benchmark": pa.string(),
                                                 "decontam_ngram": pa.string(), "rejected_by": pa.string()})

    def _judge(self, rows: pa.Table) -> dict:
        text = rows.column("text")
        n = len(text)
        hashes, items, names, short = self._table()
        matches = np.zeros(n, dtype=np.int64)
        # The first match of each document: its item, n-gram length and shingle position (-1: none).
        first_item = np.full(n, -1, dtype=np.int64)
        first_length = np.zeros(n, dtype=np.int64)
        first_position = np.zeros(n, dtype=np.int64)
        for length, (table_h, table_items) in [(self.ngram, (hashes, items))] + sorted(short.items()):
            offsets, doc_h = shingle_hashes(text, length, True, strip_punctuation=True)
            if not len(table_h) or not len(doc_h):
                continue
            at = np.minimum(np.searchsorted(table_h, doc_h), len(table_h) - 1)
            hits = np.flatnonzero(table_h[at] == doc_h)
            owner = np.repeat(np.arange(n), np.diff(offsets))[hits]
            matches += np.bincount(owner, minlength=n)
            docs, earliest = np.unique(owner, return_index=True)  # hits are in text order
            new = first_item[docs] < 0
            docs, positions = docs[new], hits[earliest[new]]
            first_item[docs] = table_items[at[positions]]
            first_length[docs] = length
            first_position[docs] = positions - offsets[docs]
        rejected = matches >= self.min_matches
        bench = np.full(n, None, dtype=object)
        gram = np.full(n, None, dtype=object)
        for d in np.flatnonzero(rejected & (first_item >= 0)):  # the rejected documents only
            bench[d] = names[first_item[d]]
            gram[d] = _ngram_text(text[int(d)].as_py(), int(first_length[d]), int(first_position[d]))
        return {
            "rejected_by": pc.if_else(pa.array(rejected), pa.scalar("decontam.overlap"), pa.scalar(None, pa.string())),
            "decontam_matches": pa.array(matches.astype(np.int32)),
            "decontam_benchmark": pa.array(bench, pa.string()),
            "decontam_ngram": pa.array(gram, pa.string()),
        }


def _ngram_text(text: str, length: int, position: int) -> str:
    """The document's ``position``-th word ``length``-gram, as the shingler normalised it."""
    _, chunks = word_chunks(pa.array([text]), True, True)
    for chunk in chunks:
        starts, ends = chunk.starts, chunk.ends
        last = min(position + length, len(starts)) - 1
        return bytes(chunk.bytes[starts[position]:ends[last]]).decode("utf-8", "replace")
    return ""


def _evaluation_ngrams(files: tuple[str, ...], text_field: str, ngram: int, min_words: int):
    """Every evaluation item's word n-grams as sorted hashes with their item; items shorter than
    ``ngram`` (>= ``min_words`` words) whole, grouped by length."""
    from ingest.readers import InputSpec, read_file, resolve_inputs

    spec = InputSpec(paths=files, text_field=text_field)
    texts, names = [], []
    for f in resolve_inputs(list(files)):
        row = 0
        for batch in read_file(f, spec, 10_000):
            ok = pc.is_null(batch.column("rejected_by"))
            for t in batch.filter(ok).column("text").to_pylist():
                if t:
                    texts.append(t)
                    names.append(f"{Path(f.path).name}:{row}")
                row += 1
    if not texts:
        raise ValueError(f"decontam: no text read from the evaluation files {', '.join(files)} "
                         f"(text_field {text_field!r})")
    column = pa.array(texts, pa.large_string())
    offsets, hashes = shingle_hashes(column, ngram, True, strip_punctuation=True)
    items = np.repeat(np.arange(len(texts)), np.diff(offsets))
    # A text shorter than ngram has one shingle of all its words: only kept at >= min_words.
    words = _word_counts(column)
    long_enough = words[items] >= ngram
    short = {}
    for length in range(min_words, ngram):
        which = np.flatnonzero(words == length)
        if len(which):
            o, h = shingle_hashes(column.take(pa.array(which)), length, True, strip_punctuation=True)
            short[length] = _sorted(h, which[np.repeat(np.arange(len(which)), np.diff(o))])
    return (*_sorted(hashes[long_enough], items[long_enough]), names, short)


def _word_counts(column: pa.Array) -> np.ndarray:
    offsets, _ = shingle_hashes(column, 1, True, strip_punctuation=True)
    return np.diff(offsets)


def _sorted(hashes: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(hashes, kind="stable")
    return hashes[order], items[order]
