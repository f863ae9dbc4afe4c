"""The token feed: documents -> tokens -> packed sequences, streamed from Ray Data to Ray Train,
deterministic and resumable at the exact next token.

How it works:

* Ray Data reads the inputs (any reader crawlsift has, or a run's kept/ Parquet) and tokenizes
  in ``map_batches`` tasks (HF ``tokenizers``, ``encode_batch``), with ``preserve_order`` so the
  document stream has one order on every run. Each document's tokens end with EOS.
* The dataset reaches the trainer through ``datasets=`` / ``ray.train.get_dataset_shard`` *unsplit*,
  and only rank 0 iterates it: it packs the token stream into ``context + 1``-token sequences
  (``Packer``: a carry buffer, so nothing is dropped at batch boundaries; consecutive sequences
  overlap by one token so every token is a target once) and broadcasts each global micro-batch
  (``world x batch`` sequences, int32) to the ranks, which take their rows. Every rank therefore
  takes the same number of steps by construction, and a step's sequences do not depend on
  scheduling. The broadcast is ~1/10,000 of a step's gradient all-reduce at 125M parameters.
* The position of the next unconsumed token is a ``Cursor`` (epoch, input file, record, token
  offset) saved in every checkpoint. A resumed run builds a second dataset that skips the files
  before the cursor and, in the tokenize task, the records before it, and the packer drops the
  cursor document's first ``offset`` tokens: the run continues at exactly the next token without
  tokenizing what it already trained on. Ray's own iterator cannot do this: its position is lost on
  restart.

A held-out slice (documents whose id hashes below ``eval_fraction``) never enters training and gives
the eval sequences; ``eval_input`` replaces it with separate text (the ablation's clean eval set).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from ingest.readers import InputFile, InputSpec, ReadFiles, file_items

HOLDOUT_BUCKETS = 1 << 20


@dataclass(frozen=True)
class Cursor:
    """The next token the trainer has not consumed: token ``offset`` of record ``seq`` of input
    ``file`` in pass ``epoch`` over the data."""

    epoch: int = 0
    file: int = 0
    seq: int = 0
    offset: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Cursor:
        return cls(**d) if d else cls()


def in_holdout(ids: pa.Array, fraction: float) -> np.ndarray:
    """Deterministic held-out membership by a hash of the document id (stable across reruns and
    across raw input vs a run's kept/ output, which keeps ids)."""
    if fraction <= 0:
        return np.zeros(len(ids), dtype=bool)
    cut = int(fraction * HOLDOUT_BUCKETS)
    hashes = np.fromiter((xxhash.xxh64_intdigest(i) & (HOLDOUT_BUCKETS - 1) for i in ids.to_pylist()),
                         dtype=np.int64, count=len(ids))
    return hashes < cut


_TOKENIZERS: dict[int, object] = {}


def _tokenizer(tokenizer_json: str):
    key = hash(tokenizer_json)
    tok = _TOKENIZERS.get(key)
    if tok is None:
        import os

        # One thread per task: Ray Data runs as many tokenize tasks as the feed has CPUs; the Rust
        # thread pool would otherwise spread each task over every core, on top of the trainers.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        from tokenizers import Tokenizer

        tok = _TOKENIZERS[key] = Tokenizer.from_str(tokenizer_json)
    return tok


class TokenizeDocuments:
    """map_batches UDF: document batch -> ``tokens`` (list<int32>, EOS appended), ``_file``, ``_seq``.

    Keeps only readable, not-rejected documents of the requested ``part`` ("train": outside the
    holdout, "eval": inside it, "all": both) at or after ``start`` (file, seq)."""

    def __init__(self, tokenizer_json: str, eos_id: int, part: str = "train", holdout: float = 0.0,
                 start: tuple[int, int] | None = None, max_chars: int | None = None, mark_holdout: bool = False):
        self.mark_holdout = mark_holdout  # keep both parts and say which (the live kept stream feeds both)
        self.tokenizer_json = tokenizer_json
        self.eos_id = eos_id
        self.part = part
        self.holdout = holdout
        self.start = start
        self.max_chars = max_chars

    def __call__(self, batch: pa.Table) -> pa.Table:
        keep = pc.and_(pc.is_valid(batch["text"]), pc.is_null(batch["rejected_by"])) if "rejected_by" in batch.column_names \
            else pc.is_valid(batch["text"])
        keep = np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)
        held = None
        if self.mark_holdout:
            held = in_holdout(batch["id"].combine_chunks(), self.holdout)
        elif self.part != "all" and self.holdout > 0:
            held = in_holdout(batch["id"].combine_chunks(), self.holdout)
            keep &= held if self.part == "eval" else ~held
            held = None
        if self.start is not None:
            files = batch["_file"].to_numpy()
            seqs = batch["_seq"].to_numpy()
            keep &= (files > self.start[0]) | ((files == self.start[0]) & (seqs >= self.start[1]))
        batch = batch.filter(pa.array(keep))
        if held is not None:
            held = held[keep]
        texts = batch["text"].to_pylist()
        if self.max_chars:
            texts = [t[: self.max_chars] for t in texts]
        encodings = _tokenizer(self.tokenizer_json).encode_batch_fast(texts, add_special_tokens=False) if texts else []
        lengths = np.fromiter((len(e.ids) + 1 for e in encodings), dtype=np.int64, count=len(encodings))
        flat = np.empty(int(lengths.sum()), dtype=np.int32)
        ends = np.cumsum(lengths)
        for e, end, n in zip(encodings, ends, lengths):
            flat[end - n: end - 1] = e.ids
        flat[ends - 1] = self.eos_id
        offsets = np.concatenate([[0], ends]).astype(np.int64)
        tokens = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.int32()))
        columns = {"tokens": tokens, "_file": batch["_file"], "_seq": batch["_seq"]}
        if held is not None:
            columns["_holdout"] = pa.array(held, type=pa.bool_())
        return pa.table(columns)


def token_dataset(files: list[InputFile], spec: InputSpec, tokenizer_json: str, eos_id: int, *, part: str,
                  holdout: float, start: Cursor | None = None, read_batch: int = 1000, max_chars: int | None = None):
    """The lazy Ray Dataset of tokenized documents, in a deterministic order (read tasks one per
    input file; ``preserve_order`` is set by the trainer's DataConfig)."""
    import ray.data

    if start is not None and (start.file, start.seq) != (0, 0):
        files = [f for f in files if f.index >= start.file]
    ds = ray.data.from_items(file_items(files), override_num_blocks=max(1, len(files)))
    ds = ds.map_batches(ReadFiles(spec, read_batch), batch_size=1, batch_format="pyarrow")
    skip = (start.file, start.seq) if start is not None else None
    return ds.map_batches(TokenizeDocuments(tokenizer_json, eos_id, part, holdout, skip, max_chars),
                          batch_size=None, batch_format="pyarrow", zero_copy_batch=True)


class Packer:
    """Concatenates documents' tokens and cuts ``context + 1``-token sequences, advancing ``context``
    tokens per sequence. Remembers where each buffered token came from, so ``cursor`` is always the
    exact next unconsumed token."""

    def __init__(self, context: int, epoch: int = 0, skip: Cursor | None = None):
        self.context = context
        self.epoch = epoch
        self.skip = skip  # drop the first tokens of this document (a resumed cursor)
        self._segments: list[list] = []  # [file, seq, offset, tokens]
        self._buffered = 0
        self.tokens_in = 0
        self.documents_in = 0

    def push(self, tokens: pa.Array, files: np.ndarray, seqs: np.ndarray) -> None:
        offsets = tokens.offsets.to_numpy()
        values = tokens.values.to_numpy()
        for i in range(len(files)):
            arr = values[offsets[i]: offsets[i + 1]]
            start = 0
            if self.skip is not None and (int(files[i]), int(seqs[i])) == (self.skip.file, self.skip.seq):
                start = min(self.skip.offset, len(arr))
                self.skip = None
            if start < len(arr):
                self._segments.append([int(files[i]), int(seqs[i]), start, arr[start:]])
                self._buffered += len(arr) - start
            self.tokens_in += len(arr) - start
            self.documents_in += 1

    def available(self) -> int:
        """Full sequences that can be taken now."""
        return max(0, (self._buffered - 1) // self.context)

    def take(self, n: int) -> np.ndarray:
        """``n`` sequences as an int32 array [n, context + 1]."""
        need = n * self.context + 1
        assert need <= self._buffered, "take() beyond available()"
        parts, got = [], 0
        for seg in self._segments:
            if got >= need:
                break
            piece = seg[3][: need - got]
            parts.append(piece)
            got += len(piece)
        flat = np.concatenate(parts)
        self._advance(n * self.context)
        idx = np.arange(n)[:, None] * self.context + np.arange(self.context + 1)[None, :]
        return flat[idx]

    def _advance(self, count: int) -> None:
        self._buffered -= count
        while count:
            seg = self._segments[0]
            if len(seg[3]) <= count:
                count -= len(seg[3])
                self._segments.pop(0)
            else:
                seg[2] += count
                seg[3] = seg[3][count:]
                count = 0

    @property
    def cursor(self) -> Cursor | None:
        """Where the buffer starts; None when the buffer is empty (the next document is next)."""
        if not self._segments:
            return None
        f, s, o, _ = self._segments[0]
        return Cursor(self.epoch, f, s, o)


class GlobalBatches:
    """Rank 0's side of the feed: packs the shard's token stream and hands out global micro-batches;
    starts a new epoch (the full dataset) when the stream ends, up to ``max_epochs``."""

    def __init__(self, full_shard, context: int, start: Cursor, resume_shard=None, max_epochs: int | None = None,
                 prefetch_batches: int = 2, next_epoch=None, eval_limit: int = 0):
        self.full_shard = full_shard
        # Live runs: epochs after the first come from kept/ on disk (``next_epoch()`` gives the shard),
        # and the stream's held-out documents fill the eval set (up to ``eval_limit`` sequences).
        self.next_epoch = next_epoch
        self.eval_limit = eval_limit
        self.eval_packer = Packer(context) if eval_limit else None
        self._eval_rows = np.zeros((0, context + 1), dtype=np.int32)
        self.context = context
        self.max_epochs = max_epochs
        self.prefetch_batches = prefetch_batches
        self.packer = Packer(context, epoch=start.epoch, skip=start if start.offset else None)
        self._start = start
        first = resume_shard if resume_shard is not None else full_shard
        self._batches = self._iterate(first)
        self.exhausted = False

    def _iterate(self, shard):
        return iter(shard.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=self.prefetch_batches))

    def next(self, n: int) -> np.ndarray | None:
        """The next ``n`` sequences, or None when the data (and its allowed epochs) is exhausted."""
        while self.packer.available() < n:
            batch = next(self._batches, None)
            if batch is None:
                if self.max_epochs is not None and self.packer.epoch + 1 >= self.max_epochs or self.packer.documents_in == 0:
                    self.exhausted = True
                    return None
                # Epoch boundary: the carry continues (EOS-separated) into the next pass.
                self.packer.epoch += 1
                self._batches = self._iterate(self.next_epoch() if self.next_epoch else self.full_shard)
                continue
            self._push(batch, train=True)
        out = self.packer.take(n)
        return out

    def _push(self, batch, train: bool) -> None:
        if not batch.num_rows:
            return
        if "_holdout" in batch.column_names:
            held = batch["_holdout"].to_numpy(zero_copy_only=False)
            if self.eval_packer is not None and held.any() and self.eval_packer.available() < self.eval_limit:
                part = batch.filter(pa.array(held))
                self.eval_packer.push(part["tokens"].combine_chunks(), part["_file"].to_numpy(), part["_seq"].to_numpy())
            batch = batch.filter(pa.array(~held))
            if not batch.num_rows:
                return
        if train:
            self.packer.push(batch["tokens"].combine_chunks(), batch["_file"].to_numpy(), batch["_seq"].to_numpy())

    def drain(self) -> None:
        """Read the first pass to its end without training on it: a live stream must run to the end so
        the filters finish and account for every document; its held-out documents still fill the eval set."""
        if self.packer.epoch != 0 or self.exhausted:
            return
        for batch in self._batches:
            self._push(batch, train=False)
        self.exhausted = True

    def eval_rows(self) -> np.ndarray:
        """The live eval set so far: a fixed prefix that grows to ``eval_limit`` sequences."""
        if self.eval_packer is not None:
            n = min(self.eval_limit - len(self._eval_rows), self.eval_packer.available())
            if n > 0:
                self._eval_rows = np.concatenate([self._eval_rows, self.eval_packer.take(n)])
        return self._eval_rows

    def cursor(self) -> Cursor:
        """The next token not yet handed out (what a checkpoint stores)."""
        # The buffer keeps the overlap token of the last sequence, so it is empty only before the first
        # document: then the start is still next.
        return self.packer.cursor or self._start


def collect_sequences(shard, context: int, limit: int) -> np.ndarray:
    """Up to ``limit`` packed sequences from the start of a shard (the eval set)."""
    packer = Packer(context)
    for batch in shard.iter_batches(batch_format="pyarrow", batch_size=None):
        if batch.num_rows:
            packer.push(batch["tokens"].combine_chunks(), batch["_file"].to_numpy(), batch["_seq"].to_numpy())
        if packer.available() >= limit:
            break
    n = min(limit, packer.available())
    return packer.take(n) if n else np.zeros((0, context + 1), dtype=np.int32)
