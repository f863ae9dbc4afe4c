"""Labeled text for the classifier trainer (and the label audit): text, label and an optional split,
from JSONL (.gz/.zst), JSON arrays, Parquet or TSV, with a stated policy for multi-label rows.

Fine-tuning sets are small next to a crawl (10^3-10^6 rows), so they are read into one Arrow table on
the driver; the training itself streams it through Ray Data.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.readers import InputError, resolve_inputs
from train.models import TrainInputError

MULTI_LABEL_POLICIES = ("exact", "first", "drop")


@dataclass(frozen=True)
class LabelSpec:
    """How to read labels.

    ``label_pattern``: keep only the whitespace-separated label tokens that fully match this regex
    (TurkuNLP CORE registers: ``[A-Z]+`` keeps the main registers, drops the lower-case sub-registers).
    ``multi_label``: what a row with several (kept) tokens becomes: ``exact`` = the joined string is
    its own class, ``first`` = the first token, ``drop`` = the row is left out and counted.
    ``label_map``: rename labels after the policy (e.g. FinCORE's ``Narrative`` -> ``NA``)."""

    text_field: str = "text"
    label_field: str = "label"
    split_field: str | None = None
    id_field: str | None = None
    tsv_columns: tuple[str, ...] = ("label", "text")
    label_pattern: str | None = None
    multi_label: str = "exact"
    label_map: dict = field(default_factory=dict)


def add_labeled_flags(p, *, multi_label_default: str, split_help: str) -> None:
    """The flags that say where labeled text is and how to read its labels (``LabelSpec``'s fields
    plus --input/--output), shared by ``train classifier`` and ``audit``."""
    p.add_argument("--input", action="append", metavar="GLOB", required=True, help="labeled text (JSONL, JSON, Parquet, TSV)")
    p.add_argument("--output", metavar="DIR", required=True)
    p.add_argument("--label-field", required=True, metavar="NAME")
    p.add_argument("--text-field", default="text", metavar="NAME")
    p.add_argument("--split-field", metavar="NAME", help=f"a column of train / validation / test values ({split_help})")
    p.add_argument("--id-field", metavar="NAME", help="the input's own id column (-> source_id)")
    p.add_argument("--tsv-columns", default="label,text", help="TSV column names in order (default: label,text)")
    p.add_argument("--label-pattern", metavar="REGEX", help="keep only label tokens matching this, e.g. '[A-Z]+' for CORE main registers")
    policies = {"exact": "its own class (exact)", "first": "the first (first)", "drop": "dropped and counted (drop)"}
    p.add_argument("--multi-label", choices=list(MULTI_LABEL_POLICIES), default=multi_label_default,
                   help=f"a row with several label tokens: {', '.join(policies.values())}; default {multi_label_default}")


@dataclass
class LabeledSet:
    table: pa.Table  # id, source_id, text, label, split (null where no split column)
    dropped: dict  # reason -> rows left out
    files: int


def _open_text(fs, path: str) -> str:
    """The whole decompressed file. A labeled set is read whole, so a damaged compressed stream
    (which the crawl readers turn into a located row and read past) is an input error here."""
    from ingest.readers import StreamDamage, _decompressed_chunks

    chunks = []
    for chunk in _decompressed_chunks(fs, path):
        if isinstance(chunk, StreamDamage):
            lines = sum(c.count(b"\n") for c in chunks)
            raise TrainInputError(f"{path}: {chunk.describe(lines)}")
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _get(record: dict, name: str):
    value = record
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _records(fs, path: str, spec: LabelSpec):
    name = path.lower()
    if name.endswith(".parquet"):
        with fs.open_input_file(path) as f:
            yield from pq.read_table(f).to_pylist()
        return
    text = _open_text(fs, path)
    base = re.sub(r"\.(gz|zst|zstd|bz2)$", "", name)
    if base.endswith(".tsv"):
        for line in io.StringIO(text):
            line = line.rstrip("\n").rstrip("\r")
            if line.strip():
                yield dict(zip(spec.tsv_columns, line.split("\t")))
        return
    stripped = text.lstrip()
    if stripped.startswith("["):
        yield from json.loads(stripped)
        return
    for line in io.StringIO(text):
        if line.strip():
            yield json.loads(line)


def _label_of(raw, spec: LabelSpec) -> tuple[str | None, str | None]:
    """(label, None) or (None, reason it was dropped)."""
    if raw is None:
        return None, "no_label"
    if isinstance(raw, list):
        tokens = [str(t) for t in raw]
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        tokens = [str(raw)]
    else:
        tokens = str(raw).split()
    if spec.label_pattern:
        pattern = re.compile(spec.label_pattern)
        tokens = [t for t in tokens if pattern.fullmatch(t)]
    if not tokens:
        return None, "no_label"
    if len(tokens) > 1:
        if spec.multi_label == "drop":
            return None, "multi_label"
        label = tokens[0] if spec.multi_label == "first" else " ".join(tokens)
    else:
        label = tokens[0]
    return spec.label_map.get(label, label), None


def read_labeled(patterns: list[str], spec: LabelSpec) -> LabeledSet:
    """Every row of every file: TrainInputError (one line) on a missing path, a missing text or label
    column, or nothing left."""
    if spec.multi_label not in MULTI_LABEL_POLICIES:
        raise TrainInputError(f"--multi-label {spec.multi_label!r}: expected one of {', '.join(MULTI_LABEL_POLICIES)}")
    try:
        files = resolve_inputs(list(patterns))
    except InputError as exc:
        raise TrainInputError(str(exc)) from None
    from ingest.readers import filesystem_for

    rows = {"id": [], "source_id": [], "text": [], "label": [], "split": []}
    dropped: dict[str, int] = {}
    for f in files:
        fs, path = filesystem_for(f.path)
        seen_text = seen_label = False
        try:
            for i, rec in enumerate(_records(fs, path, spec)):
                if not isinstance(rec, dict):
                    dropped["not_a_record"] = dropped.get("not_a_record", 0) + 1
                    continue
                text = _get(rec, spec.text_field)
                if isinstance(text, list):  # TurkuNLP quality files: a document as a list of lines
                    text = "\n".join(str(t) for t in text)
                raw_label = _get(rec, spec.label_field)
                seen_text |= text is not None
                seen_label |= raw_label is not None
                if not isinstance(text, str) or not text.strip():
                    dropped["empty_text"] = dropped.get("empty_text", 0) + 1
                    continue
                label, reason = _label_of(raw_label, spec)
                if label is None:
                    dropped[reason] = dropped.get(reason, 0) + 1
                    continue
                source_id = _get(rec, spec.id_field) if spec.id_field else None
                rows["id"].append(f"{f.key}/{source_id if source_id is not None else i}")
                rows["source_id"].append(None if source_id is None else str(source_id))
                rows["text"].append(text)
                rows["label"].append(label)
                split = _get(rec, spec.split_field) if spec.split_field else None
                rows["split"].append(None if split is None else str(split))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TrainInputError(f"{f.path}: cannot read labeled records ({type(exc).__name__}: {str(exc)[:120]})") from None
        if not seen_text:
            raise TrainInputError(f"{f.path}: no text field {spec.text_field!r} (set --text-field)")
        if not seen_label:
            raise TrainInputError(f"{f.path}: no label field {spec.label_field!r} (set --label-field)")
    table = pa.table({k: pa.array(v, type=pa.string()) for k, v in rows.items()})
    if table.num_rows == 0:
        raise TrainInputError(f"{patterns[0]}: no labeled rows left ({dropped or 'empty input'})")
    return LabeledSet(table, dropped, len(files))
