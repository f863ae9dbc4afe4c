"""Token counts: how many tokens each document is for a given tokenizer, and the run's totals.

A data release is measured in tokens, not documents or bytes. This stage annotates every document
it sees with ``tokens`` (int32: the tokenizer's ids without special tokens, as a trainer feeds
them before appending its end-of-text token) and rejects nothing; summary.json then carries
``tokens_kept`` (the kept documents' sum) and ``tokens_counted`` (over every document the stage
saw). Put it last, after the filters, so the counts are of the text that is kept.

``tokenizer``: a local ``tokenizer.json`` (Hugging Face ``tokenizers``); null = the shared
GPT-NeoX-style tokenizer beside the repository (``../shared/data/tokenizer/``), if present.
Batched with ``encode_batch_fast`` (Rust, no offsets), one thread per task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from filters.base import Stage, judge_active

SHARED_TOKENIZER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tokenizer" / "gpt-neo-test-tokenizer.json"


@dataclass(frozen=True)
class TokenCount(Stage):
    """Annotate ``tokens`` per document (see the module docstring); rejects nothing."""

    name: ClassVar[str] = "tokens"
    annotation_types: ClassVar[dict] = {"tokens": pa.int32()}

    tokenizer: str | None = None

    def __post_init__(self):
        path = Path(self.tokenizer).expanduser() if self.tokenizer else SHARED_TOKENIZER
        if not path.is_file():
            raise ValueError(f"tokens: tokenizer file not found: {path}" + ("" if self.tokenizer else
                             " (give tokens.tokenizer: a tokenizer.json)"))
        object.__setattr__(self, "_path", str(path))

    def setup(self) -> None:
        self._encoder()

    def _encoder(self):
        from train.feed import _tokenizer

        return _tokenizer(Path(self._path).read_text(encoding="utf-8"))

    def __call__(self, table: pa.Table) -> pa.Table:
        return judge_active(table, self._count, self.annotation_types)

    def _count(self, rows: pa.Table) -> dict:
        texts = [t or "" for t in rows.column("text").to_pylist()]
        encodings = self._encoder().encode_batch_fast(texts, add_special_tokens=False)
        return {"tokens": pa.array([len(e.ids) for e in encodings], pa.int32())}
