"""``crawlsift export``: a run's kept documents as tokenised training shards.

``--format megatron`` writes Megatron-LM's indexed dataset (``MMapIndexedDataset``: the format
Megatron-LM, NeMo and GPT-NeoX trainers read), one ``<prefix>_<k>.bin`` / ``<prefix>_<k>.idx`` pair
per shard, one sequence per document, as ``tools/preprocess_data.py --append-eod`` would:

* ``.bin``: every document's token ids, end to end, little-endian, ``uint16`` when the
  vocabulary has fewer than 65,500 ids, else ``int32`` (Megatron's ``DType.optimal_dtype``);
* ``.idx``: ``b"MMIDIDX\\x00\\x00"``, version ``<Q`` 1, dtype code ``<B`` (uint16 8, int32 4),
  sequence count ``<Q``, document count ``<Q`` (sequences + 1), then the sequence lengths
  (int32), their byte offsets into ``.bin`` (int64) and the document indices (int64, 0..n).

Documents are taken in the run's part order (sorted part names: input file, then batch), so an
export is reproducible; tokenised with the trainer's tokenizer loader (``train.feed``), ids
without special tokens plus the tokenizer's end-of-text id (``--no-eod`` leaves it out). A shard
is closed at the first document boundary past ``--max-shard-tokens``.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np

INDEX_HEADER = b"MMIDIDX\x00\x00"
DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}


class ExportError(ValueError):
    """A bad export request: the message is the one line the user sees."""


def write_index(path: Path, lengths: np.ndarray, dtype: np.dtype) -> None:
    lengths = np.asarray(lengths, dtype=np.int32)
    pointers = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths) > 1:
        np.cumsum(lengths[:-1].astype(np.int64) * dtype.itemsize, out=pointers[1:])
    documents = np.arange(len(lengths) + 1, dtype=np.int64)
    with open(path, "wb") as f:
        f.write(INDEX_HEADER)
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", DTYPE_CODES[dtype]))
        f.write(struct.pack("<Q", len(lengths)))
        f.write(struct.pack("<Q", len(documents)))
        f.write(lengths.tobytes(order="C"))
        f.write(pointers.tobytes(order="C"))
        f.write(documents.tobytes(order="C"))


def export_megatron(run_dir: str, output_prefix: str, tokenizer: str, *, append_eod: bool = True,
                    max_shard_tokens: int = 1 << 30, batch_size: int = 1000, say=None) -> dict:
    import pyarrow.parquet as pq

    from train.feed import _tokenizer
    from train.models import eos_id_of

    kept = Path(run_dir) / "kept"
    parts = sorted(kept.glob("*.parquet")) if kept.is_dir() else []
    if not parts:
        raise ExportError(f"{run_dir}: no kept/*.parquet (give the output directory of a finished run)")
    if not Path(tokenizer).is_file():
        raise ExportError(f"tokenizer file not found: {tokenizer}")
    tok = _tokenizer(Path(tokenizer).read_text(encoding="utf-8"))
    try:
        eos = eos_id_of(tok) if append_eod else None
    except ValueError as exc:  # no end-of-text token in this tokenizer
        raise ExportError(f"{tokenizer}: {exc}; or pass --no-eod") from None
    dtype = np.dtype(np.uint16) if tok.get_vocab_size(with_added_tokens=True) < 65_500 else np.dtype(np.int32)
    Path(output_prefix).parent.mkdir(parents=True, exist_ok=True)
    shards, lengths, shard_tokens, bin_file = [], [], 0, None
    documents = tokens = 0
    start = time.monotonic()

    def close():
        nonlocal bin_file, lengths, shard_tokens
        if bin_file is not None:
            bin_file.close()
            write_index(Path(shards[-1] + ".idx"), np.array(lengths), dtype)
        bin_file, lengths, shard_tokens = None, [], 0

    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_size, columns=["text"]):
            texts = [t or "" for t in batch.column(0).to_pylist()]
            for enc in tok.encode_batch_fast(texts, add_special_tokens=False):
                ids = enc.ids + ([eos] if eos is not None else [])
                if bin_file is None:
                    shards.append(f"{output_prefix}_{len(shards)}")
                    bin_file = open(shards[-1] + ".bin", "wb")
                bin_file.write(np.asarray(ids, dtype=dtype).tobytes())
                lengths.append(len(ids))
                shard_tokens += len(ids)
                documents += 1
                tokens += len(ids)
                if shard_tokens >= max_shard_tokens:
                    close()
            if say:
                say(f"export: {documents:,} documents, {tokens:,} tokens ({tokens / max(time.monotonic() - start, 1e-9):,.0f}/s)")
    close()
    report = {"format": "megatron", "shards": shards, "documents": documents, "tokens": tokens,
              "dtype": str(dtype), "append_eod": append_eod, "eod_id": eos, "tokenizer": str(tokenizer),
              "run": str(run_dir), "seconds": round(time.monotonic() - start, 3)}
    Path(f"{output_prefix}.export.json").write_text(json.dumps(report, indent=2))
    return report


def read_megatron(prefix: str) -> list[np.ndarray]:
    """The sequences of one ``.bin``/``.idx`` pair (for checks; trainers memory-map it)."""
    raw = Path(prefix + ".idx").read_bytes()
    if raw[:9] != INDEX_HEADER:
        raise ExportError(f"{prefix}.idx: not a Megatron index")
    version, code, count, _ = struct.unpack_from("<QBQQ", raw, 9)
    if version != 1:
        raise ExportError(f"{prefix}.idx: index version {version}, expected 1")
    dtype = {v: k for k, v in DTYPE_CODES.items()}[code]
    lengths = np.frombuffer(raw, np.int32, count, 34)
    pointers = np.frombuffer(raw, np.int64, count, 34 + 4 * count)
    data = np.fromfile(prefix + ".bin", dtype=dtype)
    return [data[p // dtype.itemsize: p // dtype.itemsize + n] for p, n in zip(pointers, lengths)]


def main(argv: list[str] | None = None) -> int:
    from filters.tokens import SHARED_TOKENIZER

    p = argparse.ArgumentParser(prog="crawlsift export", description=__doc__.split("\n\n")[0])
    p.add_argument("run", metavar="RUN_DIR", help="a finished run's output directory (its kept/ is exported)")
    p.add_argument("--format", choices=["megatron"], default="megatron")
    p.add_argument("--output", required=True, metavar="PREFIX", help="shards are PREFIX_0.bin/.idx, PREFIX_1...")
    p.add_argument("--tokenizer", default=str(SHARED_TOKENIZER), help="a tokenizer.json (default: the shared one)")
    p.add_argument("--no-eod", action="store_true", help="do not append the end-of-text id to each document")
    p.add_argument("--max-shard-tokens", type=int, default=1 << 30)
    args = p.parse_args(argv)
    try:
        report = export_megatron(args.run, args.output, args.tokenizer, append_eod=not args.no_eod,
                                 max_shard_tokens=args.max_shard_tokens,
                                 say=lambda line: print(line, file=sys.stderr, flush=True))
    except ExportError as exc:
        print(f"crawlsift: error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {report['documents']:,} documents, {report['tokens']:,} tokens ({report['dtype']}) into "
          f"{len(report['shards'])} shard(s): {', '.join(s + '.bin/.idx' for s in report['shards'])}")
    return 0
