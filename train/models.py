"""Models and tokenizers for the training jobs: local only, nothing is downloaded.

A causal LM is either a local Hugging Face checkpoint directory or a Llama-style architecture
built from a ``transformers.LlamaConfig`` (``ARCHITECTURES``). A tokenizer is the checkpoint's
own, a ``tokenizer.json`` file, or a byte-level BPE trained on the run's input with
``tokenizers`` and saved with the run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


class TrainInputError(ValueError):
    """A bad training input or option: the message is the one line the user sees (exit 2)."""


@dataclass(frozen=True)
class Architecture:
    """A Llama-style decoder: pre-norm RMSNorm, SwiGLU MLP, rotary positions, tied embeddings."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    kv_heads: int | None = None


# Sizes by parameter count with a 50k vocabulary (tied input/output embeddings):
# tiny ~7M (test-sized); small ~125M and base ~350M follow GPT-2/GPT-3's small and medium widths
# and depths (Radford et al. 2019; Brown et al. 2020, table 2.1) with Llama's 8/3 x SwiGLU MLP.
ARCHITECTURES = {
    "tiny": Architecture(hidden=128, layers=2, heads=4, intermediate=384),
    "small": Architecture(hidden=768, layers=12, heads=12, intermediate=2048),
    "base": Architecture(hidden=1024, layers=24, heads=16, intermediate=2816),
}


def llama_config(arch: str, vocab_size: int, context: int, eos_id: int, bos_id: int | None = None):
    from transformers import LlamaConfig

    if arch not in ARCHITECTURES:
        raise TrainInputError(f"--arch {arch!r}: expected one of {', '.join(ARCHITECTURES)}")
    a = ARCHITECTURES[arch]
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=a.hidden,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.kv_heads or a.heads,
        intermediate_size=a.intermediate,
        max_position_embeddings=context,
        tie_word_embeddings=True,
        eos_token_id=eos_id,
        bos_token_id=eos_id if bos_id is None else bos_id,
        pad_token_id=eos_id,
        attn_implementation="sdpa",
    )


def check_model_dir(path: str, kind: str = "causal", flag: str = "--model") -> dict:
    """The config.json of a local HF checkpoint directory, or TrainInputError naming ``flag`` and what
    is missing."""
    p = Path(path)
    if not p.is_dir():
        raise TrainInputError(f"{flag} {path}: not a directory")
    cfg_file = p / "config.json"
    if not cfg_file.is_file():
        raise TrainInputError(f"{flag} {path}: not a Hugging Face model directory (no config.json)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except ValueError:
        raise TrainInputError(f"{flag} {path}: config.json is not valid JSON") from None
    if not any((p / name).is_file() for name in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                                                  "pytorch_model.bin.index.json")):
        raise TrainInputError(f"{flag} {path}: no weights (model.safetensors or pytorch_model.bin)")
    if "model_type" not in cfg:
        raise TrainInputError(f"{flag} {path}: config.json has no model_type")
    if kind == "causal":
        archs = cfg.get("architectures") or []
        if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
            raise TrainInputError(f"{flag} {path}: a {archs[0]}, not a causal LM")
    return cfg


def model_context_limit(cfg: dict) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(cfg.get(key), int):
            return cfg[key]
    return None


# ---------------------------------------------------------------------------------------------
# Tokenizers

EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "[SEP]")


def load_tokenizer_file(path: str):
    """A ``tokenizers.Tokenizer`` from a tokenizer.json file or a directory holding one."""
    from tokenizers import Tokenizer

    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise TrainInputError(f"--tokenizer {path}: no tokenizer.json there")
    try:
        return Tokenizer.from_file(str(p))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed files
        raise TrainInputError(f"--tokenizer {path}: not a tokenizers JSON file ({str(exc).splitlines()[0][:120]})") from None


def eos_id_of(tokenizer) -> int:
    """The end-of-text token of a ``tokenizers.Tokenizer``: the one named in a post-processor or the
    first known end-of-text spelling among the special tokens."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    for name in EOS_CANDIDATES:
        if name in vocab:
            return vocab[name]
    raise TrainInputError(f"the tokenizer has no end-of-text token (looked for {', '.join(EOS_CANDIDATES)})")


def train_bpe(texts, vocab_size: int = 8192):
    """A byte-level BPE (GPT-2 style pre-tokenization) trained on ``texts``, with ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_hf_tokenizer(tokenizer, directory: str | os.PathLike) -> None:
    """Save a ``tokenizers.Tokenizer`` as a Hugging Face fast tokenizer (loads with AutoTokenizer)."""
    from transformers import PreTrainedTokenizerFast

    eos = tokenizer.id_to_token(eos_id_of(tokenizer))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=eos, bos_token=eos, unk_token=eos, pad_token=eos)
    fast.save_pretrained(str(directory))
