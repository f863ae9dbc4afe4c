"""fastText quality classifier: the DCLM-Baseline model filter (Li et al. 2024, "DataComp-LM").

A supervised fastText model (word unigrams + bigrams) trained to tell "high quality" text
(``__label__hq``) from ordinary crawl (``__label__lq``; DCLM's own models call it ``__label__cc``,
which works too) scores every document with P(hq); the stage keeps the best ones. Models come from
``python -m train.quality train|bootstrap`` (see ``train/quality.py``) or any fastText binary
classifier with an ``__label__hq`` label, e.g. DCLM's released
``openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin``.

Text given to the model is ``preprocess``: DCLM's ``" ".join(text.strip().splitlines())``
(``baselines/mappers/enrichers/quality_prediction_enrichers_calc_fasttext.py``), i.e. line breaks
become spaces, nothing is lower-cased, and fastText's own end-of-line token is appended as
``model.predict`` does. Training (``train/quality.py``) uses this very function, so the two agree.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import GlobalStage, Stage, scatter, set_column, active_mask
from filters.text import LINE_BREAK, PY_WHITESPACE

HQ_LABEL = "__label__hq"
LQ_LABEL = "__label__lq"

# Python's str.isspace() characters (what DCLM's ``text.strip()`` removes) and the line boundaries
# of str.splitlines() (what its ``" ".join(...splitlines())`` turns into one space each; "\r\n"
# counts once).
_PY_WHITESPACE = PY_WHITESPACE
_LINE_BREAK = LINE_BREAK

# DCLM-Baseline keeps the top 10% of documents by this classifier's score (Li et al. 2024, §4.4;
# their released config thresholds the OH-2.5+ELI5 model at 0.018112, its top-10% point).
DEFAULT_KEEP_TOP = 0.1


def preprocess_expr(col: pl.Expr) -> pl.Expr:
    """The model input of a text column, as a Polars expression (null -> "")."""
    return col.fill_null("").str.strip_chars(_PY_WHITESPACE).str.replace_all(_LINE_BREAK, " ")


def preprocess(texts) -> list[str]:
    """DCLM's text preprocessing, columnar: ``" ".join(t.strip().splitlines())`` for each text
    (a ``pyarrow``/``polars`` column or a list of str). Shared by training and scoring."""
    series = texts if isinstance(texts, pl.Series) else pl.Series("text", texts, dtype=pl.String)
    return series.to_frame("text").select(preprocess_expr(pl.col("text"))).to_series().to_list()


def model_lines(texts) -> list[bytes]:
    """What the model reads for each text: the preprocessed line plus fastText's end-of-line,
    as UTF-8 bytes (pybind hands bytes to C++ without re-encoding)."""
    series = texts if isinstance(texts, pl.Series) else pl.Series("text", texts, dtype=pl.String)
    frame = series.to_frame("text").select((preprocess_expr(pl.col("text")) + "\n").cast(pl.Binary))
    return frame.to_series().to_list()


def load_fasttext(path: str):
    """``fasttext.load_model`` without its stderr chatter."""
    import fasttext

    with contextlib.redirect_stderr(io.StringIO()):
        return fasttext.load_model(path)


def score_lines(model, lines: list[bytes], positive_label: str = HQ_LABEL) -> np.ndarray:
    """P(``positive_label``) per model line (float64, clipped to [0, 1]).

    One C++ ``predict`` call per line with ``k=-1`` (all labels), through the low-level binding
    ``model.f.predict(text, k, threshold, on_unicode_error)``: ``model.predict`` breaks on NumPy 2
    and ``multilinePredict`` builds a NumPy array per line (slower, measured). fastText reports
    ``exp(log(p + 1e-5))``, so a probability can exceed 1 by 1e-5: clipped."""
    predict = model.f.predict
    out = np.empty(len(lines), dtype=np.float64)
    for i, line in enumerate(lines):
        score = 0.0
        for prob, label in predict(line, -1, 0.0, "strict"):
            if label == positive_label:
                score = prob
                break
        out[i] = score
    return np.clip(out, 0.0, 1.0, out=out)


class ScoreSample:
    """A fixed-size uniform sample of the scores a worker has judged, for ``keep_top``.

    A bottom-k sample (Cohen & Kaplan 2007, "Summarizing data using bottom-k sketches"): of every
    document seen, keep the ``size`` whose ``xxh3_64(id)`` is smallest, with their scores. The
    documents kept are a uniform sample without replacement of all documents seen, and the *set*
    is a function of the documents seen only, not of their order; two samples merge by keeping the
    smallest keys of their union (so a later global pass can combine the workers'). The
    top-``q`` threshold is the ``ceil(q * s)``-th largest score of the ``s`` sampled: exact while
    fewer than ``size`` documents have been seen, and afterwards off in kept fraction by about
    ``sqrt(q (1 - q) / size)`` (0.2 points for q = 0.1 and the default 20,000), whatever the
    shape of the distribution (a grid histogram fails when a model squeezes its scores into a
    narrow band, which small training sets do: see train/quality.py). Memory: 12 bytes x size.
    """

    def __init__(self, size: int = 20_000):
        self.size = int(size)
        self.keys = np.empty(0, dtype=np.uint64)
        self.scores = np.empty(0, dtype=np.float32)
        self.seen = 0

    def add(self, keys: np.ndarray, scores: np.ndarray) -> None:
        self.seen += len(keys)
        keys = np.concatenate([self.keys, np.asarray(keys, dtype=np.uint64)])
        scores = np.concatenate([self.scores, np.asarray(scores, dtype=np.float32)])
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            keys, scores = keys[keep], scores[keep]
        self.keys, self.scores = keys, scores

    def merge(self, other: "ScoreSample") -> None:
        seen = self.seen + other.seen
        self.add(other.keys, other.scores)
        self.seen = seen

    def top_threshold(self, fraction: float) -> float:
        """The score at or above which ``fraction`` of the sample lies (ties all count as above;
        0.0 for an empty sample or ``fraction`` >= 1)."""
        n = len(self.scores)
        if n == 0 or fraction >= 1.0:
            return 0.0
        k = min(n, max(1, int(np.ceil(fraction * n))))
        return float(np.partition(self.scores, n - k)[n - k])


def id_keys(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``xxh3_64`` of each document id: the stable per-document key the sample ranks by."""
    import xxhash

    h = xxhash.xxh3_64_intdigest
    return np.fromiter((h(i.encode()) for i in ids.to_pylist()), dtype=np.uint64, count=len(ids))


@dataclass(frozen=True)
class QualityClassifier(Stage):
    """Score documents with a fastText quality model; reject the low scorers.

    Columns written for every judged document (null on rows an earlier stage rejected):
    ``quality_score`` (float32, P(hq)) and ``quality_threshold`` (float32, the bar it was judged
    against), so the account is exact: a document with text is kept iff
    ``quality_score >= quality_threshold``. Reason code: ``quality.low_score``. A document with no
    text (empty, null, whitespace only) is not shown to the model: score 0, always rejected, and
    not counted by ``keep_top``.

    The rule is one of:

    * ``threshold`` (a P(hq) in [0, 1]): reject below it. Deterministic and reproducible; use it
      for production runs. A fixed probability is model-specific (DCLM's 0.018112 is the top-10%
      point of their OH-2.5+ELI5 model on their pool and means nothing for another model).
    * ``keep_top`` (a fraction in (0, 1]): keep the top fraction of the documents this stage
      judges, as DCLM-Baseline keeps the top 10% (Li et al. 2024). **This is the default (0.1)
      when neither is given.** ``keep_top_mode``:

      - ``global`` (default): in a run, the stage is a global stage (``QualityTopFraction``): every
        document is scored and written once, the driver takes the exact top-``keep_top`` score of
        all of them (``ceil(q * n)``-th largest; ties at the bar all kept) and stores it with the
        run, and every document is judged against that one bar. Which documents survive is a
        function of the documents alone: the same whatever the scheduling, the number of workers
        or a resume. Cost: one more segment (the scored documents are written as parts and read
        back, as for a dedup stage) and one float per document read by the driver.
      - ``streaming`` (opt-in, and what a direct call on batches does): the estimate below.

      Streaming: a stage sees one batch at a time and must not gather
      every score on one process, so each actor holds a ``ScoreSample`` (a bottom-k uniform
      sample of ``keep_top_sample`` scores keyed by a hash of the document id, see its
      docstring), adds each batch to it first and then judges the batch against the sample's
      current top-``keep_top`` score. Consequences, stated plainly:

      - Warm-up: the first batch is judged against its own exact quantile (``keep_top`` of it
        kept, up to ties), later batches against a uniform sample of everything the actor has
        judged so far. Once the sample is full the kept fraction is off by about
        sqrt(q(1-q)/keep_top_sample), 0.2 points for q = 0.1.
      - Per-actor streams: each actor keeps about ``keep_top`` of what it sees, so the run keeps
        about ``keep_top`` overall even when actors see different material; but *which*
        documents pass depends on the actor and on batch order (documents in a batch routed to an
        actor that saw better text face a higher bar). It is not bit-reproducible across runs or
        resumes with more than one actor. If inputs are sorted by quality (not exchangeable), the
        early batches' bar differs from the final one.
      - Ties: documents with exactly the threshold score are all kept, so the kept fraction is
        at least ``keep_top`` and can exceed it by the size of a block of identical scores at
        the bar (fastText gives every document with no in-vocabulary word the same score: put
        language ID before this stage, as DCLM does).
      - Rows rejected by an earlier stage are neither judged nor counted; neither are documents
        with no text (so ``keep_top`` is a fraction of the documents with text).

      Reproducible alternative: run once with ``keep_top``, read the ``quality_threshold`` the
      actors converged to (last batches), and rerun with that fixed ``threshold``.

    ``model_path``: a fastText binary classifier (local path or a URI pyarrow/fsspec opens; a
    remote model is copied to a local temporary file once per worker). Required; a missing file is
    a config error. ``positive_label``: the label whose probability is the score.
    """

    name: ClassVar[str] = "quality"
    stateful: ClassVar[bool] = True
    num_cpus: ClassVar[float] = 1

    model_path: str = ""
    threshold: float | None = None
    keep_top: float | None = None
    positive_label: str = HQ_LABEL
    keep_top_sample: int = 20_000
    keep_top_mode: str = "global"

    def __post_init__(self):
        if not self.model_path or not isinstance(self.model_path, str):
            raise ValueError("quality: model_path is required (a fastText model, e.g. from `python -m train.quality`)")
        if not _model_exists(self.model_path):
            raise ValueError(f"quality: model file not found: {self.model_path}")
        if self.threshold is not None and self.keep_top is not None:
            raise ValueError("quality: give threshold or keep_top, not both")
        if self.threshold is not None and not (isinstance(self.threshold, (int, float)) and 0.0 <= self.threshold <= 1.0):
            raise ValueError(f"quality: threshold must be a probability in [0, 1], got {self.threshold!r}")
        if self.keep_top is not None and not (isinstance(self.keep_top, (int, float)) and 0.0 < self.keep_top <= 1.0):
            raise ValueError(f"quality: keep_top must be a fraction in (0, 1], got {self.keep_top!r}")
        if isinstance(self.keep_top_sample, bool) or not isinstance(self.keep_top_sample, int) or self.keep_top_sample < 1:
            raise ValueError(f"quality: keep_top_sample must be a positive integer, got {self.keep_top_sample!r}")
        if self.keep_top_mode not in ("global", "streaming"):
            raise ValueError(f"quality: keep_top_mode must be 'global' or 'streaming', got {self.keep_top_mode!r}")
        object.__setattr__(self, "_model", None)
        object.__setattr__(self, "_sample", None)

    def for_plan(self) -> Stage:
        """The stage a run executes: ``QualityTopFraction`` for a global ``keep_top``, else this."""
        kind, _ = self.rule
        return QualityTopFraction(self) if kind == "keep_top" and self.keep_top_mode == "global" else self

    @property
    def rule(self) -> tuple[str, float]:
        """``("threshold", t)`` or ``("keep_top", q)``: the rule in force."""
        if self.threshold is not None:
            return "threshold", float(self.threshold)
        return "keep_top", float(self.keep_top if self.keep_top is not None else DEFAULT_KEEP_TOP)

    # --- model lifecycle ------------------------------------------------------------------------

    def setup(self) -> None:
        """Load the model (once per worker; a no-op when loaded) and start an empty score sample."""
        if self._model is None:
            local = _local_copy(self.model_path)
            try:
                object.__setattr__(self, "_model", load_fasttext(local))
            finally:
                if local != self.model_path:  # fastText holds the model in memory: the copy can go
                    os.unlink(local)
            labels = self._model.get_labels()
            if self.positive_label not in labels:
                raise ValueError(f"quality: {self.model_path} has no label {self.positive_label!r} (labels: {labels})")
        if self._sample is None:
            object.__setattr__(self, "_sample", ScoreSample(self.keep_top_sample))

    @property
    def model(self):
        self.setup()
        return self._model

    @property
    def sample(self) -> ScoreSample:
        self.setup()
        return self._sample

    def __getstate__(self) -> dict:
        # The model is a C++ object and the score sample is per worker: neither is shipped.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__["_model"] = None
        self.__dict__["_sample"] = None

    # --- the batch transform --------------------------------------------------------------------

    def score(self, text: pa.Array | pa.ChunkedArray | list) -> np.ndarray:
        """P(hq) per text (float64); no text (empty, null, whitespace only) -> 0.0."""
        return self._score(text)[0]

    def _score(self, text) -> tuple[np.ndarray, np.ndarray]:
        """(P(hq), has_text) per text. One Polars pass prepares the model's lines; the loop is
        the model call itself."""
        series = pl.Series("text", text, dtype=pl.String)
        frame = series.to_frame("text").select(preprocess_expr(pl.col("text")).alias("line")).select(
            (pl.col("line") != "").alias("has_text"),
            (pl.col("line") + "\n").cast(pl.Binary).alias("line"),
        )
        has_text = frame.get_column("has_text").to_numpy()
        lines = frame.get_column("line")
        scores = np.zeros(len(series))
        if has_text.all():
            scores[:] = score_lines(self.model, lines.to_list(), self.positive_label)
        elif has_text.any():
            scores[has_text] = score_lines(self.model, lines.filter(pl.Series(has_text)).to_list(), self.positive_label)
        return scores, has_text

    def __call__(self, table: pa.Table) -> pa.Table:
        mask = active_mask(table)
        n = table.num_rows
        reasons = pa.nulls(n, pa.string())
        score_col = pa.nulls(n, pa.float32())
        threshold_col = pa.nulls(n, pa.float32())
        if mask.any():
            text = table.column("text") if mask.all() else table.column("text").filter(pa.array(mask))
            scores, has_text = self._score(text)
            scores = scores.astype(np.float32)
            kind, value = self.rule
            if kind == "keep_top":
                ids = table.column("id") if mask.all() else table.column("id").filter(pa.array(mask))
                self.sample.add(id_keys(ids.filter(pa.array(has_text))), scores[has_text])
                value = self.sample.top_threshold(value)
            bar = np.float32(value)
            # Decided on the float32 values written, so the two columns tell the decision exactly
            # (a document with no text is rejected whatever the bar).
            low = (scores < bar) | ~has_text
            judged_reasons = pc.if_else(pa.array(low), pa.scalar("quality.low_score"), pa.scalar(None, pa.string()))
            reasons = scatter(reasons, mask, judged_reasons)
            score_col = scatter(score_col, mask, pa.array(scores, pa.float32()))
            threshold_col = scatter(threshold_col, mask, pa.array(np.full(len(scores), bar), pa.float32()))
        rejected = pc.coalesce(table.column("rejected_by"), reasons)
        table = table.set_column(table.schema.get_field_index("rejected_by"), "rejected_by", rejected)
        table = set_column(table, "quality_score", score_col)
        return set_column(table, "quality_threshold", threshold_col)


@dataclass(frozen=True)
class QualityTopFraction(GlobalStage):
    """``quality`` with ``keep_top`` over the whole run (``keep_top_mode: global``; see
    ``QualityClassifier``): ``map`` scores the documents (``quality_score``; null for a document
    with no text), the driver's reduce takes the exact top-``keep_top`` bar of every score and
    writes it beside each input file's decisions, ``apply`` judges every document against it."""

    name: ClassVar[str] = "quality"
    stateful: ClassVar[bool] = True
    num_cpus: ClassVar[float] = 1
    apply_always: ClassVar[bool] = True
    reduce_description: ClassVar[str] = "exact top-fraction bar of every score, in the driver"

    classifier: QualityClassifier

    def params(self) -> dict:
        return self.classifier.params()

    @property
    def model_path(self) -> str:
        return self.classifier.model_path

    def setup(self) -> None:
        self.classifier.setup()

    def key_columns(self) -> list[str]:
        return ["quality_score"]

    def map(self, table: pa.Table) -> pa.Table:
        mask = active_mask(table)
        column = pa.nulls(table.num_rows, pa.float32())
        if mask.any():
            text = table.column("text") if mask.all() else table.column("text").filter(pa.array(mask))
            scores, has_text = self.classifier._score(text)
            column = scatter(column, mask, pa.array(scores.astype(np.float32), pa.float32(), mask=~has_text))
        return set_column(table, "quality_score", column)

    def reduce_here(self, fs, parts: list[str], work_dir: str, file_keys: dict[int, str], report) -> int:
        """The bar: the ``ceil(q * n)``-th largest of the n scores of documents with text that
        reached this stage; written as ``decisions/<file key>/bar.parquet`` for every input."""
        import pyarrow.parquet as pq

        scores = []
        no_text = 0
        for part in parts:
            t = pq.read_table(part, columns=["rejected_by", "quality_score"], filesystem=fs)
            active = t.filter(pc.is_null(t.column("rejected_by"))).column("quality_score")
            no_text += active.null_count
            scores.append(active.drop_null().to_numpy().astype(np.float32))
        scores = np.concatenate(scores) if scores else np.empty(0, np.float32)
        _, fraction = self.classifier.rule
        n = len(scores)
        if n == 0 or fraction >= 1.0:
            bar = np.float32(0.0)
        else:
            k = min(n, max(1, int(np.ceil(fraction * n))))
            bar = np.float32(np.partition(scores, n - k)[n - k])
        rejected = int((scores < bar).sum()) + no_text
        decisions_dir = f"{work_dir}/decisions"
        bar_table = pa.table({"id": pa.array([""]), "quality_threshold": pa.array([bar], pa.float32())})
        for key in set(file_keys.values()):
            fs.create_dir(f"{decisions_dir}/{key}", recursive=True)
            pq.write_table(bar_table, f"{decisions_dir}/{key}/bar.parquet", filesystem=fs)
        if report:
            report(f"quality: top {fraction:g} of {n:,} scored documents: bar {float(bar):.6f}; "
                   f"{rejected:,} rejected ({no_text:,} without text)")
        return rejected

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        mask = active_mask(table)
        n = table.num_rows
        if decisions is None or decisions.num_rows == 0:
            raise RuntimeError("quality: no top-fraction bar stored for this input; rerun with --overwrite")
        bar = np.float32(decisions.column("quality_threshold")[0].as_py())
        score = table.column("quality_score") if "quality_score" in table.column_names else pa.nulls(n, pa.float32())
        values = score.to_numpy(zero_copy_only=False).astype(np.float32)  # null -> nan
        has_text = ~np.isnan(values)
        low = mask & (~has_text | (np.nan_to_num(values, nan=0.0) < bar))
        reasons = pc.if_else(pa.array(low), pa.scalar("quality.low_score"), pa.scalar(None, pa.string()))
        rejected = pc.coalesce(table.column("rejected_by"), reasons)
        table = table.set_column(table.schema.get_field_index("rejected_by"), "rejected_by", rejected)
        filled = np.where(has_text, values, 0.0).astype(np.float32)
        table = set_column(table, "quality_score", pa.array(filled, pa.float32(), mask=~mask))
        return set_column(table, "quality_threshold", pa.array(np.full(n, bar, np.float32), pa.float32(), mask=~mask))


def _model_exists(path: str) -> bool:
    if "://" not in path:
        return os.path.isfile(path)
    from ingest.readers import filesystem_for

    try:
        import pyarrow.fs as pafs

        fs, inner = filesystem_for(path)
        return fs.get_file_info(inner).type == pafs.FileType.File
    except Exception:  # noqa: BLE001 - unreachable store: say "not found" at config time
        return False


def _local_copy(path: str) -> str:
    """A local file for fastText's loader: the path itself, or a copy of a remote model."""
    if "://" not in path:
        return path
    from ingest.readers import filesystem_for

    fs, inner = filesystem_for(path)
    fd, local = tempfile.mkstemp(prefix="crawlsift-quality-", suffix=".bin")
    with os.fdopen(fd, "wb") as out, fs.open_input_stream(inner) as src:
        shutil.copyfileobj(src, out, length=16 << 20)
    return local
