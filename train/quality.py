"""Train the fastText quality classifier the ``quality`` stage uses (DCLM recipe).

    python -m train.quality train --positive GLOB... --negative GLOB... --output model.bin
    python -m train.quality bootstrap --run OUT_DIR --output model.bin

``train``: positives (``__label__hq``) and negatives (``__label__lq``) from any inputs the readers
take (JSONL/Parquet/WARC/WET/TSV, local or object storage, including a crawlsift run's own
kept/ and rejected/ Parquet). ``bootstrap``: the first model without outside data, trained to tell a
crawlsift run's kept documents (positive) from its rejected ones (negative).

The recipe is DCLM's (Li et al. 2024, "DataComp-LM"; ``mlfoundations/dclm``
``baselines/train_fasttext_classifier.py`` and ``baselines/README.md``): supervised fastText,
``wordNgrams=2`` (unigrams + bigrams: their OH-2.5+ELI5 model is the "bigram" one), every other
hyperparameter at the script's default: ``lr=0.1``, ``dim=100``, ``ws=5``, ``epoch=5``,
``minCount=1`` ("we did not deviate from their default values"). DCLM names the negative label
``__label__cc``; here it is ``__label__lq`` (the stage scores P(``__label__hq``) and reads either).

Differences from DCLM's script, each for reproducibility or a fair evaluation:

* Text goes through ``filters.quality.preprocess`` (DCLM's ``" ".join(t.strip().splitlines())``,
  no lower-casing), the very function the stage scores with; tokens that begin with ``__label__``
  (which fastText would read as labels) are dropped, as fastText drops them at prediction time.
* Empty documents are dropped, exact duplicates (after preprocessing) are kept once per side, and
  a text found on both sides is dropped from both (it can only teach noise); all are counted.
* Classes are balanced by down-sampling the larger side (deterministically: the documents with the
  smallest ``xxh3(id, seed)``), then split into train and held-out by ``xxh3(id, seed)`` (not by a
  random state), so a rerun on the same inputs makes the same split. ``id`` is the record's own id
  where it has one (JSONL/Parquet id field, WARC-Record-ID; for a crawlsift run, the pipeline's
  id), so moving the files changes nothing; a record without one falls back to the reader's id,
  a hash of its path and position; the training order is a
  deterministic shuffle (fastText reads its file in order, so sorted labels would bias SGD).
* ``thread=1`` by default: fastText's lock-free multi-threaded SGD is not deterministic; with one
  thread and a seed the model file is the same bytes on every run. ``threads`` trades that for
  speed.

The model is written atomically (temp file, rename) to ``output`` and a report to
``<output>.report.json``: counts at every step, held-out precision/recall/F1 per class at
P(hq) >= 0.5, ROC AUC, and the distribution of P(hq) per class (deciles and a 10-bin histogram).
Memory: documents are streamed to temporary files as they are read; only per-document hashes and
offsets stay in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from filters.quality import HQ_LABEL, LQ_LABEL, load_fasttext, preprocess_expr, score_lines

# DCLM's fastText recipe (see the module docstring for the sources).
# ``bucket`` is fastText's default (2,000,000 hash buckets for the word n-grams): the model file is
# about (vocabulary + bucket) x dim x 4 bytes, ~0.8 GB at the defaults, as DCLM's released model.
DCLM_DEFAULTS = {"dim": 100, "epoch": 5, "lr": 0.1, "word_ngrams": 2, "min_count": 1, "ws": 5, "bucket": 2_000_000}
# A crawlsift run's rejection reasons that are not about the document's quality: a near-duplicate
# of a kept document is as good as the copy that was kept, so as a negative it would be label noise.
BOOTSTRAP_EXCLUDE = ("dedup.",)
DECISION = 0.5  # P(hq) at which the held-out metrics call a document hq (balanced classes)

# fastText splits tokens on these bytes only; a token starting with __label__ is a label to it.
_FT_SPACE = " \t\x0b\x0c\x00"
_LABEL_TOKEN = f"(^|[{_FT_SPACE}])__label__[^{_FT_SPACE}]*"


class TrainingError(ValueError):
    """Inputs that cannot make a model (a side with no documents): one line for the user."""


# ---------------------------------------------------------------------------------------------
# Reading


def iter_documents(
    patterns: Sequence[str],
    *,
    text_field: str = "auto",
    exclude_reasons: Sequence[str] = (),
    batch_size: int = 10_000,
    counts: dict | None = None,
) -> Iterator[tuple[list[str], pl.Series]]:
    """``(keys, texts)`` batches of every readable document in ``patterns``, read with
    ``ingest.readers`` (unreadable records and non-document WARC records are left out and
    counted). For Parquet with a ``rejected_by`` column (a crawlsift run's rejected/ parts), rows
    whose reason starts with one of ``exclude_reasons`` are left out too."""
    from ingest.readers import InputSpec, read_file, resolve_inputs

    counts = counts if counts is not None else {}
    spec = InputSpec(paths=tuple(patterns), text_field=text_field)
    for file in resolve_inputs(list(patterns)):
        reasons = _parquet_reasons(file.path) if exclude_reasons else None
        for batch in read_file(file, spec, batch_size):
            is_doc = pc.is_null(batch.column("rejected_by")).to_numpy(zero_copy_only=False)
            counts["unreadable_or_skipped"] = counts.get("unreadable_or_skipped", 0) + int((~is_doc).sum())
            if reasons is not None:
                row_reasons = pc.take(reasons, batch.column("_seq"))
                excluded = np.zeros(batch.num_rows, dtype=bool)
                for prefix in exclude_reasons:
                    excluded |= pc.fill_null(pc.starts_with(row_reasons, prefix), False).to_numpy(zero_copy_only=False)
                counts["excluded_by_reason"] = counts.get("excluded_by_reason", 0) + int((excluded & is_doc).sum())
                is_doc &= ~excluded
            if not is_doc.any():
                continue
            docs = batch.filter(pa.array(is_doc)) if not is_doc.all() else batch
            counts["documents_read"] = counts.get("documents_read", 0) + docs.num_rows
            # The record's own id where it has one (stable when the files move: a run directory
            # copied elsewhere splits the same way), else the reader's id.
            keys = pc.coalesce(docs.column("source_id"), docs.column("id")).to_pylist()
            yield keys, pl.Series("text", docs.column("text"), dtype=pl.String)


def _parquet_reasons(path: str) -> pa.Array | None:
    """The ``rejected_by`` column of a Parquet file (None for other files or without it)."""
    import pyarrow.parquet as pq

    from ingest.readers import detect_format, filesystem_for

    if detect_format(path) != "parquet":
        return None
    fs, inner = filesystem_for(path)
    with fs.open_input_file(inner) as f:
        pf = pq.ParquetFile(f)
        if "rejected_by" not in pf.schema_arrow.names:
            return None
        return pf.read(columns=["rejected_by"]).column("rejected_by").combine_chunks()


# ---------------------------------------------------------------------------------------------
# One side of the training set, spooled to disk


@dataclass
class _Side:
    label: str
    path: str
    counts: dict = field(default_factory=dict)
    ids: list = field(default_factory=list)
    text_hash: list = field(default_factory=list)
    offsets: list = field(default_factory=list)

    def collect(self, batches: Iterator[tuple[list[str], pl.Series]]) -> None:
        """Spool every document's training line; keep its id, text hash and offset."""
        seen: set[int] = set()
        empty = dupes = 0
        with open(self.path, "wb") as out:
            for ids, texts in batches:
                lines = training_lines(texts)
                for doc_id, line in zip(ids, lines):
                    if not line:
                        empty += 1
                        continue
                    h = xxhash.xxh3_64_intdigest(line)
                    if h in seen:
                        dupes += 1
                        continue
                    seen.add(h)
                    self.ids.append(doc_id)
                    self.text_hash.append(h)
                    self.offsets.append(out.tell())
                    out.write(line)
                    out.write(b"\n")
        self.counts["empty"] = empty
        self.counts["duplicates"] = dupes

    def read_lines(self, rows: np.ndarray) -> list[bytes]:
        """The spooled lines at ``rows`` (indices into this side), in that order."""
        out = []
        with open(self.path, "rb") as f:
            for r in rows:
                f.seek(self.offsets[r])
                out.append(f.readline().rstrip(b"\n"))
        return out


def training_lines(texts: pl.Series) -> list[bytes]:
    """Preprocessed text (the stage's ``preprocess``) minus ``__label__`` tokens, as UTF-8."""
    expr = preprocess_expr(pl.col("text")).str.replace_all(_LABEL_TOKEN, "$1").str.strip_chars(_FT_SPACE + "\n\r")
    return texts.to_frame("text").select(expr.cast(pl.Binary)).to_series().to_list()


def _capped(batches, max_docs: int | None, counts: dict):
    """Stop a document stream after ``max_docs`` documents (cutting the last batch)."""
    if max_docs is None:
        yield from batches
        return
    taken = 0
    for ids, texts in batches:
        if taken + len(ids) > max_docs:
            keep = max_docs - taken
            ids, texts = ids[:keep], texts.head(keep)
        taken += len(ids)
        yield ids, texts
        if taken >= max_docs:
            break
    counts["documents_read"] = taken


def _hash01(ids: list[str], seed: int, salt: bytes) -> np.ndarray:
    """A deterministic uniform number in [0, 1) per id."""
    return np.array([xxhash.xxh3_64_intdigest(salt + i.encode(), seed=seed) for i in ids], dtype=np.float64) / 2.0**64


# ---------------------------------------------------------------------------------------------
# Metrics


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U, ties counted half). None without both classes."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average rank (1-based) for each run of tied scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(scores)]))
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _class_metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((pred & truth).sum())
    fp = int((pred & ~truth).sum())
    fn = int((~pred & truth).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 6), "recall": round(recall, 6), "f1": round(f1, 6), "support": int(truth.sum())}


def _distribution(scores: np.ndarray) -> dict:
    if len(scores) == 0:
        return {"n": 0}
    hist, _ = np.histogram(scores, bins=10, range=(0.0, 1.0))
    return {
        "n": int(len(scores)),
        "mean": round(float(scores.mean()), 6),
        "deciles": [round(float(q), 6) for q in np.quantile(scores, np.linspace(0, 1, 11))],
        "histogram_counts": hist.tolist(),
        "histogram_edges": [round(float(e), 1) for e in np.linspace(0, 1, 11)],
    }


def evaluate(scores: np.ndarray, is_hq: np.ndarray, decision: float = DECISION) -> dict:
    """Held-out metrics: per-class precision/recall/F1 at P(hq) >= ``decision``, accuracy, ROC
    AUC and the P(hq) distribution of each class."""
    scores = np.asarray(scores, dtype=np.float64)
    is_hq = np.asarray(is_hq, dtype=bool)
    pred = scores >= decision
    return {
        "documents": int(len(scores)),
        "decision_threshold": decision,
        "accuracy": round(float((pred == is_hq).mean()), 6) if len(scores) else None,
        "roc_auc": roc_auc(scores, is_hq),
        "per_class": {HQ_LABEL: _class_metrics(pred, is_hq), LQ_LABEL: _class_metrics(~pred, ~is_hq)},
        "score_distribution": {HQ_LABEL: _distribution(scores[is_hq]), LQ_LABEL: _distribution(scores[~is_hq])},
    }


# ---------------------------------------------------------------------------------------------
# Training


def train_quality_model(
    positive: Sequence[str],
    negative: Sequence[str],
    output: str,
    *,
    text_field: str = "auto",
    dim: int = DCLM_DEFAULTS["dim"],
    epoch: int = DCLM_DEFAULTS["epoch"],
    lr: float = DCLM_DEFAULTS["lr"],
    word_ngrams: int = DCLM_DEFAULTS["word_ngrams"],
    min_count: int = DCLM_DEFAULTS["min_count"],
    ws: int = DCLM_DEFAULTS["ws"],
    bucket: int | str = DCLM_DEFAULTS["bucket"],
    quantize: bool = False,
    test_fraction: float = 0.1,
    seed: int = 0,
    max_docs: int | None = None,
    threads: int = 1,
    balance: bool = True,
    exclude_reasons: Sequence[str] = (),
    _extra_report: dict | None = None,
) -> dict:
    """Train a fastText hq-vs-lq classifier; write ``output`` and ``<output>.report.json``;
    return the report. ``positive``/``negative``: paths, globs or URIs the readers take.
    ``max_docs``: read at most this many documents per side. ``exclude_reasons``: leave out rows
    of crawlsift rejected/ Parquet whose ``rejected_by`` starts with one of these. ``bucket="auto"``:
    as many word-n-gram buckets as the training text has distinct word bigrams (a power of two,
    2^14 to DCLM's 2,000,000), so a small corpus does not get a 0.8 GB model. ``quantize``: also
    compress the model with fastText's product quantisation (``model.quantize``, as lid.176.ftz;
    vocabulary cut to 100,000 entries, retrained), keep that one, and report both sizes and
    held-out scores."""
    if isinstance(positive, str):
        positive = [positive]
    if isinstance(negative, str):
        negative = [negative]
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    started = time.time()
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    if bucket != "auto" and (isinstance(bucket, bool) or not isinstance(bucket, int) or bucket < 1):
        raise ValueError(f"bucket must be a positive integer or 'auto', got {bucket!r}")

    with tempfile.TemporaryDirectory(prefix="crawlsift-quality-") as work:
        sides = {}
        for label, patterns in ((HQ_LABEL, positive), (LQ_LABEL, negative)):
            side = _Side(label, os.path.join(work, label.removeprefix("__label__") + ".txt"))
            counts: dict = {}
            batches = iter_documents(patterns, text_field=text_field, exclude_reasons=exclude_reasons, counts=counts)
            side.collect(_capped(batches, max_docs, counts))
            side.counts = {**counts, **side.counts}
            side.counts.setdefault("documents_read", 0)
            sides[label] = side

        hq, lq = sides[HQ_LABEL], sides[LQ_LABEL]
        conflicts = set(hq.text_hash) & set(lq.text_hash)
        selected = {}
        for side in (hq, lq):
            keep = np.array([h not in conflicts for h in side.text_hash], dtype=bool)
            side.counts["on_both_sides"] = int((~keep).sum())
            side.counts["usable"] = int(keep.sum())
            selected[side.label] = np.flatnonzero(keep)
            if not keep.any():
                where = positive if side is hq else negative
                raise TrainingError(f"no usable {side.label} documents in {', '.join(where)} (counts: {side.counts})")

        n_min = min(len(selected[HQ_LABEL]), len(selected[LQ_LABEL]))
        for side in (hq, lq):
            rows = selected[side.label]
            if balance and len(rows) > n_min:
                rank = _hash01([side.ids[r] for r in rows], seed, b"balance:")
                rows = np.sort(rows[np.argsort(rank, kind="stable")[:n_min]])
            side.counts["after_balancing"] = int(len(rows))
            is_test = _hash01([side.ids[r] for r in rows], seed, b"split:") < test_fraction
            side.counts["train"] = int((~is_test).sum())
            side.counts["held_out"] = int(is_test.sum())
            selected[side.label] = (rows[~is_test], rows[is_test])

        # Training file: both sides interleaved in a deterministic shuffled order.
        train_path = os.path.join(work, "train.txt")
        examples = [(side, r) for side in (hq, lq) for r in selected[side.label][0]]
        order = _hash01([f"{side.label}:{side.ids[r]}" for side, r in examples], seed, b"order:").argsort(kind="stable")
        with open(train_path, "wb") as out, open(hq.path, "rb") as f_hq, open(lq.path, "rb") as f_lq:
            files = {HQ_LABEL: f_hq, LQ_LABEL: f_lq}
            for i in order:
                side, r = examples[i]
                f = files[side.label]
                f.seek(side.offsets[r])
                out.write(side.label.encode() + b" " + f.readline())

        if bucket == "auto":
            bucket = _buckets_for(train_path)
        hyper = {"dim": dim, "epoch": epoch, "lr": lr, "wordNgrams": word_ngrams, "minCount": min_count, "ws": ws,
                 "bucket": bucket, "thread": threads, "seed": seed, "quantize": quantize}

        # Written next to ``output`` under a temporary name, renamed into place once evaluated.
        model_tmp = os.path.join(out_dir, f".tmp-{os.path.basename(output)}.{uuid.uuid4().hex[:8]}")
        quantized_tmp = model_tmp + ".ftz" if quantize else None
        try:
            t0 = time.time()
            fit_fasttext(train_path, model_tmp, dict(
                lr=lr, dim=dim, ws=ws, epoch=epoch, minCount=min_count, wordNgrams=word_ngrams, bucket=bucket,
                thread=threads, seed=seed, verbose=0,
            ), quantized_path=quantized_tmp)
            train_seconds = time.time() - t0
            # Held-out evaluation with the stage's own scoring function.
            held_out = _held_out(load_fasttext(model_tmp), hq, lq, selected)
            sizes = {"model_bytes": os.path.getsize(model_tmp)}
            if quantized_tmp:
                unquantized = {"model_bytes": sizes["model_bytes"], "held_out": held_out}
                held_out = _held_out(load_fasttext(quantized_tmp), hq, lq, selected)
                sizes = {"model_bytes": os.path.getsize(quantized_tmp), "before_quantization": unquantized}
                os.replace(quantized_tmp, output)
            else:
                os.replace(model_tmp, output)
        finally:
            for path in (model_tmp, quantized_tmp):
                if path and os.path.exists(path):
                    os.unlink(path)

    report = {
        "model": os.path.abspath(output),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": {"positive": HQ_LABEL, "negative": LQ_LABEL},
        "recipe": "DCLM fastText quality classifier (Li et al. 2024): supervised fastText, word bigrams",
        "hyperparameters": hyper,
        "preprocessing": "DCLM: ' '.join(text.strip().splitlines()), no lower-casing; __label__ tokens dropped; "
        "empty documents dropped; exact duplicates kept once per side; texts on both sides dropped",
        "inputs": {"positive": list(positive), "negative": list(negative), "text_field": text_field,
                   "exclude_reasons": list(exclude_reasons), "max_docs_per_side": max_docs},
        "split": {"method": "xxh3_64(record id, else reader id; seed) / 2**64 < test_fraction", "test_fraction": test_fraction, "seed": seed},
        "balance": "down-sample the larger side to the smaller: smallest xxh3_64(id, seed)" if balance else "none",
        "counts": {HQ_LABEL: hq.counts, LQ_LABEL: lq.counts},
        "held_out": held_out,
        **sizes,
        "train_seconds": round(train_seconds, 3),
        "total_seconds": round(time.time() - started, 3),
    }
    if _extra_report:
        report.update(_extra_report)
    _write_json_atomic(output + ".report.json", report)
    return report


_FIT = """
import json, sys
import fasttext
args = json.loads(sys.argv[1])
model = fasttext.train_supervised(input=args["input"], **args["params"])
model.save_model(args["output"])
if args.get("quantized"):
    cutoff = min(100000, len(model.words))
    model.quantize(input=args["input"], qnorm=True, retrain=True, cutoff=cutoff, thread=args["params"]["thread"])
    model.save_model(args["quantized"])
"""


def _held_out(model, hq, lq, selected) -> dict:
    scores, truth = [], []
    for side in (hq, lq):
        held = selected[side.label][1]
        for start in range(0, len(held), 10_000):
            lines = [line + b"\n" for line in side.read_lines(held[start : start + 10_000])]
            scores.append(score_lines(model, lines, HQ_LABEL))
            truth.append(np.full(len(lines), side is hq))
    return evaluate(np.concatenate(scores) if scores else np.zeros(0), np.concatenate(truth) if truth else np.zeros(0, bool))


def _buckets_for(train_path: str, floor: int = 1 << 14, ceiling: int = DCLM_DEFAULTS["bucket"]) -> int:
    """Buckets for the word bigrams of the training file: its distinct bigrams (hashed, counted up
    to the ceiling), rounded up to a power of two, between ``floor`` and DCLM's 2,000,000. Beyond
    that many buckets every bigram already has its own row; more only grow the file."""
    seen: set[int] = set()
    with open(train_path, "rb") as f:
        for line in f:
            words = line.split()[1:]  # past the label
            seen.update(xxhash.xxh64_intdigest(a + b" " + b) for a, b in zip(words, words[1:]))
            if len(seen) >= ceiling:
                return ceiling
    size = floor
    while size < len(seen):
        size *= 2
    return min(size, ceiling)


def fit_fasttext(train_path: str, model_path: str, params: dict, quantized_path: str | None = None) -> None:
    """``fasttext.train_supervised(input=train_path, **params)``, saved to ``model_path``, in a
    child process whose fresh allocations glibc fills with zeros.

    Why: fastText 0.9.2 initialises its input matrix in 10 blocks, one per training thread
    (``DenseMatrix::uniformThread``, block size ``m*n/10``), so with fewer than 10 threads most of
    the matrix, and with any thread count its last ``m*n mod 10`` values, are never written, and
    the Python wheel allocates it uninitialised. Whatever the heap held there ends up in the model:
    measured here, the same seed and one thread gave different models and sometimes
    ``RuntimeError: Encountered NaN``. ``MALLOC_PERTURB_=255`` (glibc: fill each allocation with
    ``~255`` = 0) makes those values zero, as on a fresh page, so training is deterministic and
    never starts from garbage."""
    env = dict(os.environ)
    env["MALLOC_PERTURB_"] = "255"
    tunables = "glibc.malloc.perturb=255"
    env["GLIBC_TUNABLES"] = f"{env['GLIBC_TUNABLES']}:{tunables}" if env.get("GLIBC_TUNABLES") else tunables
    payload = json.dumps({"input": train_path, "output": model_path, "params": params, "quantized": quantized_path})
    proc = subprocess.run([sys.executable, "-c", _FIT, payload], env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.isfile(model_path) or (quantized_path and not os.path.isfile(quantized_path)):
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise TrainingError(f"fastText training failed: {detail}")


def bootstrap_quality_model(run: str, output: str, *, exclude_reasons: Sequence[str] = BOOTSTRAP_EXCLUDE,
                            bucket: int | str = "auto", quantize: bool = True, **kwargs) -> dict:
    """The first model without outside data: a crawlsift run's kept documents (``<run>/kept``)
    are the positives, its rejected ones (``<run>/rejected``, minus reasons starting with
    ``exclude_reasons``, by default dedup's) the negatives. The model learns what the run's
    heuristics reject, generalised to vocabulary: as good as the teacher, no better. Sized to its
    data by default (``bucket="auto"``, quantised): a run is usually far smaller than DCLM's
    training set, and DCLM's 2M buckets gave an 810 MB model for 3,000 documents."""
    from ingest.readers import InputError, resolve_inputs

    run = run.rstrip("/")
    parts = {}
    for sub in ("kept", "rejected"):
        pattern = f"{run}/{sub}/*.parquet"
        try:
            resolve_inputs([pattern])
        except InputError:
            raise TrainingError(f"{run} has no {sub}/ Parquet parts: is it a crawlsift run's output directory?") from None
        parts[sub] = pattern
    summary = _read_json(os.path.join(run, "summary.json")) if "://" not in run else None
    extra = {"bootstrap": {"run": run, "run_rejected": (summary or {}).get("rejected"), "run_kept": (summary or {}).get("kept")}}
    return train_quality_model([parts["kept"]], [parts["rejected"]], output, exclude_reasons=exclude_reasons, _extra_report=extra,
                               bucket=bucket, quantize=quantize, **kwargs)


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json_atomic(path: str, obj) -> None:
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp-{os.path.basename(path)}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Command line


def _add_hyper(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", required=True, metavar="MODEL.bin", help="model file (the report goes to MODEL.bin.report.json)")
    p.add_argument("--dim", type=int, default=DCLM_DEFAULTS["dim"], help="word vector size (DCLM: 100)")
    p.add_argument("--epoch", type=int, default=DCLM_DEFAULTS["epoch"], help="epochs (DCLM: 5)")
    p.add_argument("--lr", type=float, default=DCLM_DEFAULTS["lr"], help="learning rate (DCLM: 0.1)")
    p.add_argument("--word-ngrams", type=int, default=DCLM_DEFAULTS["word_ngrams"], help="max word n-gram (DCLM: 2)")
    p.add_argument("--min-count", type=int, default=DCLM_DEFAULTS["min_count"], help="min word count (DCLM: 1)")
    p.add_argument("--bucket", type=_bucket_arg, default=None,
                   help="hash buckets for word n-grams, or 'auto' (= the training text's distinct bigrams); the model is "
                        "~bucket x dim x 4 bytes (train default: DCLM's 2,000,000; bootstrap default: auto)")
    p.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=None,
                   help="product-quantise the model (fastText .ftz; train default: no, bootstrap default: yes)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="held-out fraction, split by hash of id (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-docs", type=int, default=None, help="read at most N documents per side")
    p.add_argument("--threads", type=int, default=1, help="fastText threads (>1 is faster but not bit-reproducible)")
    p.add_argument("--no-balance", action="store_true", help="keep every document instead of down-sampling the larger side")
    p.add_argument("--text-field", default="auto", help="text field of JSONL/Parquet inputs (default: auto)")


def _bucket_arg(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a positive integer or 'auto', not {value!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.quality", description="Train the fastText quality classifier (DCLM recipe).")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="positives vs negatives from any inputs the readers take")
    train.add_argument("--positive", nargs="+", action="extend", required=True, metavar="GLOB")
    train.add_argument("--negative", nargs="+", action="extend", required=True, metavar="GLOB")
    train.add_argument("--exclude-reason", action="append", default=[], metavar="PREFIX",
                       help="skip rows of crawlsift rejected/ Parquet whose rejected_by starts with PREFIX")
    _add_hyper(train)
    boot = sub.add_parser("bootstrap", help="a crawlsift run's kept (positive) vs rejected (negative) documents")
    boot.add_argument("--run", required=True, metavar="DIR", help="the run's output directory")
    boot.add_argument("--exclude-reason", action="append", default=None, metavar="PREFIX",
                      help=f"rejection reasons left out of the negatives (default: {', '.join(BOOTSTRAP_EXCLUDE)})")
    _add_hyper(boot)
    args = parser.parse_args(argv)
    kwargs = dict(
        dim=args.dim, epoch=args.epoch, lr=args.lr, word_ngrams=args.word_ngrams, min_count=args.min_count,
        **({"bucket": args.bucket} if args.bucket is not None else {}),
        **({"quantize": args.quantize} if args.quantize is not None else {}),
        test_fraction=args.test_fraction, seed=args.seed, max_docs=args.max_docs, threads=args.threads,
        balance=not args.no_balance, text_field=args.text_field,
    )
    from ingest.readers import InputError

    try:
        if args.command == "train":
            report = train_quality_model(args.positive, args.negative, args.output, exclude_reasons=args.exclude_reason, **kwargs)
        else:
            exclude = BOOTSTRAP_EXCLUDE if args.exclude_reason is None else tuple(args.exclude_reason)
            report = bootstrap_quality_model(args.run, args.output, exclude_reasons=exclude, **kwargs)
    except (InputError, TrainingError, ValueError) as exc:
        print(f"train.quality: error: {exc}", file=sys.stderr)
        return 2
    print(summary_text(report))
    return 0


def summary_text(report: dict) -> str:
    c, h = report["counts"], report["held_out"]
    lines = [f"model  {report['model']}", f"report {report['model']}.report.json"]
    for label in (HQ_LABEL, LQ_LABEL):
        n = c[label]
        lines.append(
            f"{label:<12} read {n['documents_read']:>9,}  usable {n['usable']:>9,}  balanced {n['after_balancing']:>9,}"
            f"  train {n['train']:>9,}  held-out {n['held_out']:>7,}"
        )
    auc = h["roc_auc"]
    lines.append(f"held-out: {h['documents']:,} documents, accuracy {h['accuracy']}, ROC AUC {'n/a' if auc is None else f'{auc:.4f}'}")
    if "model_bytes" in report:
        size = f"model {report['model_bytes'] / 1e6:,.1f} MB (bucket {report['hyperparameters']['bucket']:,})"
        before = report.get("before_quantization")
        if before:
            b_auc = before["held_out"]["roc_auc"]
            size += (f"; before quantisation {before['model_bytes'] / 1e6:,.1f} MB, accuracy {before['held_out']['accuracy']}, "
                     f"ROC AUC {'n/a' if b_auc is None else f'{b_auc:.4f}'}")
        lines.append(size)
    for label, m in h["per_class"].items():
        lines.append(f"  {label:<12} precision {m['precision']:.3f}  recall {m['recall']:.3f}  F1 {m['f1']:.3f}  (n={m['support']})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
