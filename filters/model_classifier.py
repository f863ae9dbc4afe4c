"""Any Hugging Face sequence-classification model as a filter (FineWeb-Edu style).

The FineWeb-Edu recipe (Penedo et al. 2024, "The FineWeb Datasets"; model card of
``HuggingFaceFW/fineweb-edu-classifier``): a BERT-style encoder with a one-logit regression head
scores each document's educational value on a 0-5 scale; the score is clamped to [0, 5] and
rounded to an integer (``int(round(max(0, min(score, 5))))``), and FineWeb-Edu keeps documents
whose rounded score is >= 3 (FineWeb-Edu-score-2 keeps >= 2). The card tokenizes with
``truncation=True`` (the encoder's 512 tokens).

Any other ``AutoModelForSequenceClassification`` checkpoint works the same way: with a
multi-class head the score is the softmax probability of ``score_label``.

Offline by construction: the model is read from a directory (``model_path``) with
``local_files_only=True`` and ``HF_HUB_OFFLINE=1``; nothing is ever downloaded from a hub. A
``model_path`` on object storage (``s3://bucket/models/edu?endpoint_override=...``, any URI pyarrow or
fsspec opens) is copied once per node into a local cache, so every node of a cluster reads the same
model without a shared filesystem.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import Stage, judge_active

DEVICES = ("auto", "cpu", "cuda")
# Texts are cut to max_length x this many characters before tokenizing: a token spans at least one
# character and English WordPiece/BPE tokens average ~4, so the cut never shortens what the model
# sees in practice, and a megabyte page is not tokenized whole only to be truncated.
CHARS_PER_TOKEN_BOUND = 16
FINEWEB_EDU_THRESHOLD = 3.0  # int-rounded score >= 3 (FineWeb-Edu)
PROBABILITY_THRESHOLD = 0.5


@dataclass(frozen=True)
class ModelClassifier(Stage):
    """Score documents with a local Hugging Face sequence-classification model; reject below a
    threshold.

    ``model_classifier_score`` (float32; null on rows an earlier stage rejected):

    * one-logit head (regression, e.g. FineWeb-Edu's classifier): the raw logit;
    * two or more labels: softmax probability of ``score_label`` (an index, or a label name from
      the model's ``id2label``; default 1, the positive class of a binary head).

    The keep rule: for a regression head with ``round_score`` (default), keep iff
    ``round(score) >= threshold`` (round half to even, as Python's ``round`` in the FineWeb-Edu
    card; clamping to [0, 5] changes no comparison with a threshold inside that range); otherwise
    keep iff ``score >= threshold``. ``threshold`` None: 3 for a regression head (FineWeb-Edu's
    ``int_score >= 3``), 0.5 for a probability. Reason code: ``model_classifier.low_score``.
    Documents with no text are scored like any other (the model sees only special tokens).

    Inference: the judged texts are cut to ``max_length`` x 16 characters, sorted by length (so a
    batch pads little), tokenized and run ``batch_size`` at a time under ``torch.inference_mode``,
    truncated to ``max_length`` tokens; scores go back to the original order.

    ``device``: ``cuda`` (bf16 weights and activations), ``cpu`` (float32), or ``auto`` (CUDA when
    the worker sees a GPU, else CPU; in a Ray actor that means only when it reserved one, since
    Ray sets ``CUDA_VISIBLE_DEVICES=""`` for an actor with ``num_gpus=0``). ``num_gpus``: GPUs each actor reserves from Ray; None = 1
    with ``device: cuda``, 0 otherwise (so ``auto`` never waits for a GPU a cluster lacks). The
    plan reads ``stage.num_gpus`` from the instance, which this sets.
    """

    name: ClassVar[str] = "model_classifier"
    stateful: ClassVar[bool] = True
    num_cpus: ClassVar[float] = 1

    model_path: str = ""
    threshold: float | None = None
    round_score: bool = True
    score_label: int | str = 1
    batch_size: int = 32
    max_length: int = 512
    device: str = "auto"
    gpus: float | None = None

    def __post_init__(self):
        if not self.model_path or not isinstance(self.model_path, str):
            raise ValueError("model_classifier: model_path is required (a Hugging Face model directory or its URI)")
        if not _has_config(self.model_path):
            raise ValueError(f"model_classifier: no Hugging Face model (config.json) in {self.model_path}")
        if self.device not in DEVICES:
            raise ValueError(f"model_classifier: device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for key in ("batch_size", "max_length"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model_classifier: {key} must be a positive integer, got {value!r}")
        if self.gpus is not None and (isinstance(self.gpus, bool) or not isinstance(self.gpus, (int, float)) or self.gpus < 0):
            raise ValueError(f"model_classifier: gpus must be >= 0, got {self.gpus!r}")
        gpus = self.gpus if self.gpus is not None else (1.0 if self.device == "cuda" else 0.0)
        object.__setattr__(self, "num_gpus", float(gpus))  # per instance: what the plan reserves
        object.__setattr__(self, "_runtime", None)

    # --- model lifecycle ------------------------------------------------------------------------

    def setup(self) -> None:
        """Load tokenizer and model once per worker (a no-op when loaded)."""
        if self._runtime is not None:
            return
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("model_classifier: device 'cuda' but this worker sees no CUDA device")
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        if device == "cpu":
            torch.set_num_threads(max(1, int(self.num_cpus)))
        local = local_model_dir(self.model_path)
        tokenizer = AutoTokenizer.from_pretrained(local, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(local, local_files_only=True, dtype=dtype)
        model.to(device).eval()
        num_labels = int(model.config.num_labels)
        label_index = None
        if num_labels > 1:
            label_index = self.score_label
            if isinstance(label_index, str):
                names = {str(v): int(k) for k, v in (model.config.id2label or {}).items()}
                if label_index not in names:
                    raise ValueError(f"model_classifier: no label {label_index!r} in {self.model_path} (labels: {sorted(names)})")
                label_index = names[label_index]
            if not 0 <= int(label_index) < num_labels:
                raise ValueError(f"model_classifier: score_label {self.score_label!r} outside the model's {num_labels} labels")
        regression = num_labels == 1
        threshold = self.threshold
        if threshold is None:
            threshold = FINEWEB_EDU_THRESHOLD if regression else PROBABILITY_THRESHOLD
        object.__setattr__(self, "_runtime", {
            "torch": torch, "tokenizer": tokenizer, "model": model, "device": device,
            "label": None if label_index is None else int(label_index), "regression": regression,
            "threshold": float(threshold),
        })

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_runtime"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__["_runtime"] = None

    @property
    def effective_threshold(self) -> float:
        self.setup()
        return self._runtime["threshold"]

    # --- the batch transform --------------------------------------------------------------------

    def score(self, text: pa.Array | pa.ChunkedArray | list) -> np.ndarray:
        """The score of every text (float32), in order."""
        self.setup()
        rt = self._runtime
        torch, tokenizer, model = rt["torch"], rt["tokenizer"], rt["model"]
        frame = pl.Series("text", text, dtype=pl.String).to_frame("text").select(
            pl.col("text").fill_null("").str.slice(0, self.max_length * CHARS_PER_TOKEN_BOUND).alias("t"),
        ).with_columns(pl.col("t").str.len_bytes().alias("n"))
        order = np.argsort(frame.get_column("n").to_numpy(), kind="stable")
        texts = frame.get_column("t").to_list()
        out = np.empty(len(texts), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                enc = tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                max_length=self.max_length, return_tensors="pt")
                enc = {k: v.to(rt["device"]) for k, v in enc.items()}
                logits = model(**enc).logits.float()
                if rt["regression"]:
                    values = logits[:, 0]
                else:
                    values = torch.softmax(logits, dim=-1)[:, rt["label"]]
                out[rows] = values.cpu().numpy()
        return out

    def __call__(self, table: pa.Table) -> pa.Table:
        return judge_active(table, self._judge, {"rejected_by": pa.string(), "model_classifier_score": pa.float32()})

    def _judge(self, rows: pa.Table) -> dict:
        scores = self.score(rows.column("text"))
        rt = self._runtime
        judged = np.round(scores) if (rt["regression"] and self.round_score) else scores
        low = judged < np.float32(rt["threshold"])
        return {"rejected_by": pc.if_else(pa.array(low), pa.scalar(f"{self.name}.low_score"), pa.scalar(None, pa.string())),
                "model_classifier_score": pa.array(scores, pa.float32())}


def _split_uri(uri: str) -> tuple[str, str]:
    """(directory URI without its query, query) so file names can be joined to the directory."""
    base, _, query = uri.partition("?")
    return base.rstrip("/"), query


def _has_config(path: str) -> bool:
    if "://" not in path:
        return os.path.isfile(os.path.join(path, "config.json"))
    import pyarrow.fs as pafs

    from ingest.readers import filesystem_for

    base, query = _split_uri(path)
    try:
        fs, inner = filesystem_for(f"{base}/config.json" + (f"?{query}" if query else ""))
        return fs.get_file_info(inner).type == pafs.FileType.File
    except Exception:  # noqa: BLE001 - an unreachable store is "no model there" at config time
        return False


def model_cache_dir() -> str:
    return os.environ.get("CRAWLSIFT_MODEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "crawlsift", "models")


def local_model_dir(path: str) -> str:
    """A local directory holding the model: ``path`` itself, or this node's cached copy of a remote
    directory (keyed by its URI; written to a temporary name and renamed, so concurrent workers on
    one node never read a half-copied model)."""
    if "://" not in path:
        return path
    import pyarrow.fs as pafs

    from ingest.readers import filesystem_for

    base, query = _split_uri(path)
    target = os.path.join(model_cache_dir(), hashlib.sha256(base.encode()).hexdigest()[:16])
    if os.path.isfile(os.path.join(target, "config.json")):
        return target
    fs, root = filesystem_for(path)
    os.makedirs(model_cache_dir(), exist_ok=True)
    partial = tempfile.mkdtemp(prefix=".partial-", dir=model_cache_dir())
    try:
        for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
            if info.type != pafs.FileType.File:
                continue
            local = os.path.join(partial, os.path.relpath(info.path, root))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with fs.open_input_stream(info.path) as src, open(local, "wb") as out:
                shutil.copyfileobj(src, out, length=16 << 20)
        try:
            os.rename(partial, target)
        except OSError:  # another worker on this node finished first
            shutil.rmtree(partial, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target
