"""The one document schema every reader produces and every stage receives.

A batch is a ``pyarrow.Table`` with these columns, in this order, followed by any annotation
columns stages add (each named after its stage, e.g. ``langid_score``). Columns whose names start
with an underscore are the pipeline's own bookkeeping (which input file a row came from, its
position there, per-stage timings); they never reach the output files.
"""

from __future__ import annotations

import pyarrow as pa

DOCUMENT_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.large_string()),
    pa.field("url", pa.string()),
    # "<input path>:<position>": line number (1-based) for JSONL, record byte offset for WARC/WET,
    # row index (0-based) for Parquet.
    pa.field("source", pa.string(), nullable=False),
    # The record's own id in its input file, before namespacing (JSONL/Parquet id field, WARC-Record-ID).
    pa.field("source_id", pa.string()),
    pa.field("crawl_date", pa.timestamp("us", tz="UTC")),
    # null = kept; otherwise "<stage>.<rule>" of the first rule that rejected the document.
    pa.field("rejected_by", pa.string()),
]

# Bookkeeping columns: the input file's index in the run, the row's sequence number within that
# file (every emitted row, documents and unreadable records alike), whether it is the file's last
# row, and the reason detail for unreadable rows.
BOOKKEEPING_FIELDS = [
    pa.field("_file", pa.int32(), nullable=False),
    pa.field("_seq", pa.int64(), nullable=False),
    pa.field("_last", pa.bool_(), nullable=False),
    pa.field("_detail", pa.string()),
]

DOCUMENT_SCHEMA = pa.schema(DOCUMENT_FIELDS)
BATCH_SCHEMA = pa.schema(DOCUMENT_FIELDS + BOOKKEEPING_FIELDS)

# rejected_by prefixes that mark a row which is not a document that stages may look at.
UNREADABLE_PREFIX = "unreadable."  # counted in the account: input that could not be read
SKIPPED_PREFIX = "skipped."  # not a document at all (a WARC request record): counted apart
REPAIRED_PREFIX = "repaired."  # only in errors.jsonl: a document that flowed on after a repair


def empty_batch() -> pa.Table:
    return BATCH_SCHEMA.empty_table()


def output_columns(table: pa.Table) -> list[str]:
    """The columns written to kept/ and rejected/: documents and stage annotations, no bookkeeping."""
    return [name for name in table.column_names if not name.startswith("_")]


def batch_of(texts, *, rejected_by=None, ids=None, urls=None) -> pa.Table:
    """A batch in ``BATCH_SCHEMA`` from plain texts (one input file, rows in order): how to call
    a stage directly, outside a pipeline run."""
    n = len(texts)
    return pa.Table.from_pydict(
        {
            "id": ids or [f"d{i}" for i in range(n)],
            "text": texts,
            "url": urls or [None] * n,
            "source": [f"batch:{i}" for i in range(n)],
            "source_id": [None] * n,
            "crawl_date": [None] * n,
            "rejected_by": rejected_by or [None] * n,
            "_file": [0] * n,
            "_seq": list(range(n)),
            "_last": [False] * n,
            "_detail": [None] * n,
        },
        schema=BATCH_SCHEMA,
    )
