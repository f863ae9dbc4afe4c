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
* ``ensemble``: the mean of the two models' probabilities.

What was compared to choose the default (model, ``filter_by`` rule and ranking score) is in
``audit/README_section.md`` and ``bench/results/audit.json`` (``python -m bench.audit``).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass

import numpy as np

MODELS = ("linear", "fasttext", "ensemble")
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
    same reasoning as langid's prefix) at no measured loss. ``n_features`` 2**20: scikit-learn's
    ``HashingVectorizer`` default. ``alpha`` 1e-5 and ``epochs`` 30: the L2 penalty
    and passes of the SGD logistic regression, the best of those tried in the bench
    (scikit-learn's default alpha 1e-4 underfits a few thousand unit-norm TF-IDF rows). fastText: ``epoch`` 25 and ``lr`` 0.5 as fastText's
    tutorial for small supervised sets, ``minn``/``maxn`` 2-4 as the linear model's char n-grams."""

    folds: int = 5
    model: str = "linear"
    rule: str = "prune_by_noise_rate"
    score: str = "self_confidence"
    seed: int = 0
    max_chars: int = 3000
    n_features: int = 1 << 20
    alpha: float = 1e-5
    epochs: int = 30
    ft_epoch: int = 25
    ft_lr: float = 0.5
    ft_dim: int = 64

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"--model {self.model!r}: expected one of {', '.join(MODELS)}")
        if self.rule not in RULES:
            raise ValueError(f"--rule {self.rule!r}: expected one of {', '.join(RULES)}")
        if self.score not in SCORES:
            raise ValueError(f"--score {self.score!r}: expected one of {', '.join(SCORES)}")
        if self.folds < 2:
            raise ValueError(f"--folds {self.folds}: needs at least 2")


@dataclass
class NoiseResult:
    probs: np.ndarray  # (rows, classes) out-of-fold
    label_quality: np.ndarray  # (rows,) 0-1, low = likely wrong
    is_label_issue: np.ndarray  # (rows,) bool
    suggested: np.ndarray  # (rows,) class index
    oof_accuracy: float


def hashed_features(texts: list[str], c: NoiseConfig):
    """TF-IDF over hashed char 1-4-grams (within words) plus word 1-2-grams, L2-normalised.
    The IDF is fitted on all rows: unsupervised (no label seen), so it leaks nothing into the
    out-of-fold probabilities."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

    texts = [t[: c.max_chars] for t in texts]
    half = c.n_features // 2
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=(1, 4), n_features=half, alternate_sign=False, norm=None)
    words = HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=half, alternate_sign=False, norm=None)
    x = sp.hstack([chars.transform(texts), words.transform(texts)], format="csr")
    return TfidfTransformer(sublinear_tf=True).fit_transform(x)


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
        clf = SGDClassifier(loss="log_loss", alpha=c.alpha, max_iter=c.epochs, tol=None, random_state=c.seed)
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


def out_of_fold_probabilities(texts: list[str], y: np.ndarray, n_classes: int, c: NoiseConfig) -> np.ndarray:
    """(rows, classes): each row's class probabilities from the fold model that did not train on it."""
    folds = _folds(y, c.folds, c.seed)
    parts = []
    if c.model in ("linear", "ensemble"):
        parts.append(linear_oof(hashed_features(texts, c), y, n_classes, c, folds))
    if c.model in ("fasttext", "ensemble"):
        parts.append(fasttext_oof(texts, y, n_classes, c, folds))
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
