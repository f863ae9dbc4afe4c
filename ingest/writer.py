"""Writers: the output directory, its atomic files, and the per-file account that makes reruns resume.

```
out/
  kept/part-<file key>-<first row>.parquet      documents no stage rejected (zstd Parquet)
  rejected/part-<file key>-<first row>.parquet  the others, with rejected_by
  errors.jsonl                                  unreadable records and repairs, located
  summary.json                                  the account
  _state/run.json                               the config fingerprint a rerun must match
  _state/done/<file key>.json                   one per finished input: its whole account
  _state/errors/<file key>-<first row>.jsonl    error fragments, merged into errors.jsonl
```

Every file is written to a temporary name and renamed into place, so a killed run leaves either a
whole file or none. An input counts as finished only when its ``done`` manifest exists; a rerun
deletes any parts of unfinished inputs before processing them again, so no shard is written twice.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ingest.readers import filesystem_for
from ingest.schema import SKIPPED_PREFIX, UNREADABLE_PREFIX, output_columns

STAGE_SECONDS_PREFIX = "_sec_"
STATS_SCHEMA = pa.schema(
    [
        pa.field("file", pa.int32()),
        pa.field("first_seq", pa.int64()),
        pa.field("rows", pa.int64()),
        pa.field("last_seq", pa.int64()),  # -1 unless this group holds the file's last row
        pa.field("account", pa.string()),  # JSON: see group_account
    ]
)


class OutputDir:
    def __init__(self, uri: str):
        self.uri = uri
        self.fs, self.root = filesystem_for(uri)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def makedirs(self, *extra: str) -> None:
        for sub in ("kept", "rejected", "_state/done", "_state/errors", *extra):
            self.fs.create_dir(self.path(sub), recursive=True)

    def write_bytes(self, rel: str, data: bytes) -> None:
        final = self.path(rel)
        tmp = _tmp_name(final)
        with self.fs.open_output_stream(tmp, compression=None) as f:
            f.write(data)
        self.fs.move(tmp, final)

    def write_json(self, rel: str, obj) -> None:
        self.write_bytes(rel, json.dumps(obj, indent=2, sort_keys=False, default=str).encode() + b"\n")

    def read_json(self, rel: str):
        try:
            with self.fs.open_input_stream(self.path(rel)) as f:
                return json.loads(f.read())
        except (FileNotFoundError, OSError):
            return None

    def write_parquet(self, rel: str, table: pa.Table) -> None:
        final = self.path(rel)
        tmp = _tmp_name(final)
        pq.write_table(table, tmp, filesystem=self.fs, compression="zstd")
        self.fs.move(tmp, final)

    def list(self, rel: str) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(self.path(rel), allow_not_found=True))
        return sorted(i.path for i in infos if i.type == pafs.FileType.File)

    def delete(self, path: str) -> None:
        self.fs.delete_file(path)

    def remove_parts_of(self, file_key: str, subdirs=("kept", "rejected", "_state/errors"), from_seq: int = 0) -> int:
        """Delete the parts and error fragments of one unfinished input before redoing it: all of
        them, or (resuming inside the file) those from row ``from_seq`` on, and any temporary file."""
        removed = 0
        for sub in subdirs:
            for path in self.list(sub):
                name = path.rsplit("/", 1)[-1]
                if name.startswith(f".tmp-part-{file_key}-"):
                    pass
                elif name.startswith((f"part-{file_key}-", f"{file_key}-")):
                    if _first_seq(name) < from_seq:
                        continue
                else:
                    continue
                self.delete(path)
                removed += 1
        return removed


def write_progress(out: OutputDir, progress_dir: str, key: str, path: str, size: int, rows: int, account: dict) -> None:
    """An unfinished input's checkpoint: its first ``rows`` rows are written, with this account;
    a rerun of the same config resumes the input there (``cluster.run.resume_point``)."""
    out.write_json(f"{progress_dir}/{key}.json", {"path": path, "size": size, "rows": rows, "account": account})


def _first_seq(name: str) -> int:
    """The first row of a part or error fragment, from its name (``...-<12 digits>.<ext>``)."""
    stem = name.split(".", 1)[0]
    try:
        return int(stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _tmp_name(final: str) -> str:
    head, _, name = final.rpartition("/")
    return f"{head}/.tmp-{name}.{uuid.uuid4().hex[:8]}"


def write_batch(table: pa.Table, out: OutputDir, file_keys: dict[int, str], paths: dict[int, str]) -> pa.Table:
    """Write one processed batch: kept and rejected Parquet parts and an error fragment per input
    file in it; return one stats row per input file for the driver's account."""
    stats = []
    # Transient columns (``__``: words one stage hands to the next) are not part of a document.
    table = table.select([c for c in table.column_names if not c.startswith("__")])
    files = table.column("_file").to_numpy()
    for file_index in np.unique(files):
        group = table.filter(pa.array(files == file_index)) if len(np.unique(files)) > 1 else table
        stats.append(_write_group(group, out, file_keys[int(file_index)], paths[int(file_index)]))
    return pa.Table.from_pylist(stats, schema=STATS_SCHEMA)


def write_intermediate(table: pa.Table, out: OutputDir, parts_dir: str, file_keys: dict[int, str]) -> pa.Table:
    """A segment boundary (before a global stage's reduce): every row, all columns, one part per
    input file in the batch; stats rows carry only the completion bookkeeping."""
    stats = []
    # Transient columns (``__``: words one stage hands to the next) are not part of a document.
    table = table.select([c for c in table.column_names if not c.startswith("__")])
    files = table.column("_file").to_numpy()
    for file_index in np.unique(files):
        group = table.filter(pa.array(files == file_index)) if len(np.unique(files)) > 1 else table
        seq = group.column("_seq").to_numpy()
        last = group.column("_last").to_numpy(zero_copy_only=False)
        out.write_parquet(f"{parts_dir}/part-{file_keys[int(file_index)]}-{int(seq.min()):012d}.parquet", group)
        stats.append({
            "file": int(file_index),
            "first_seq": int(seq.min()),
            "rows": group.num_rows,
            "last_seq": int(seq[last].max()) if last.any() else -1,
            "account": json.dumps({"documents": int(pc.sum(pc.is_null(group.column("rejected_by"))).as_py() or 0)}),
        })
    return pa.Table.from_pylist(stats, schema=STATS_SCHEMA)


def _write_group(group: pa.Table, out: OutputDir, file_key: str, path: str) -> dict:
    seq = group.column("_seq").to_numpy()
    first_seq = int(seq.min())
    name = f"part-{file_key}-{first_seq:012d}"
    rejected_by = group.column("rejected_by")
    unreadable = pc.fill_null(pc.starts_with(rejected_by, UNREADABLE_PREFIX), False).to_numpy(zero_copy_only=False)
    skipped = pc.fill_null(pc.starts_with(rejected_by, SKIPPED_PREFIX), False).to_numpy(zero_copy_only=False)
    kept_mask = pc.is_null(rejected_by).to_numpy(zero_copy_only=False)
    is_document = ~(unreadable | skipped)
    columns = output_columns(group)
    kept = group.filter(pa.array(kept_mask)).select(columns)
    rejected = group.filter(pa.array(is_document & ~kept_mask)).select(columns)
    if kept.num_rows:
        out.write_parquet(f"kept/{name}.parquet", kept)
    if rejected.num_rows:
        out.write_parquet(f"rejected/{name}.parquet", rejected)

    errors = _error_records(group, path)
    if errors:
        out.write_bytes(f"_state/errors/{file_key}-{first_seq:012d}.jsonl", b"".join(orjson.dumps(e) + b"\n" for e in errors))

    text_bytes = pc.fill_null(pc.binary_length(group.column("text")), 0).to_numpy(zero_copy_only=False)
    counts = {row["values"]: row["counts"] for row in pc.value_counts(rejected_by.drop_null()).to_pylist()}
    account = {
        "documents": int(is_document.sum()),
        "kept": int(kept_mask.sum()),
        "rejected": {r: n for r, n in counts.items() if not r.startswith((UNREADABLE_PREFIX, SKIPPED_PREFIX))},
        "unreadable": {r[len(UNREADABLE_PREFIX) :]: n for r, n in counts.items() if r.startswith(UNREADABLE_PREFIX)},
        "skipped": {r[len(SKIPPED_PREFIX) :]: n for r, n in counts.items() if r.startswith(SKIPPED_PREFIX)},
        "repaired": dict(Counter(e["reason"] for e in errors if e["action"] == "repaired")),
        "bytes_in": int(text_bytes[is_document].sum()),
        "bytes_kept": int(text_bytes[kept_mask].sum()),
        **_token_totals(group, kept_mask),
        "stage_seconds": {
            name[len(STAGE_SECONDS_PREFIX) :]: float(pc.sum(group.column(name)).as_py() or 0.0)
            for name in group.column_names
            if name.startswith(STAGE_SECONDS_PREFIX)
        },
    }
    last = group.column("_last").to_numpy(zero_copy_only=False)
    return {
        "file": int(group.column("_file")[0].as_py()),
        "first_seq": first_seq,
        "rows": group.num_rows,
        "last_seq": int(seq[last].max()) if last.any() else -1,
        "account": json.dumps(account),
    }


def _token_totals(group: pa.Table, kept_mask: np.ndarray) -> dict:
    """``tokens_kept`` / ``tokens_counted`` when the ``tokens`` stage ran."""
    if "tokens" not in group.column_names:
        return {}
    tokens = pc.fill_null(group.column("tokens"), 0).to_numpy(zero_copy_only=False)
    return {"tokens_kept": int(tokens[kept_mask].sum()), "tokens_counted": int(tokens.sum())}


def _error_records(group: pa.Table, path: str) -> list[dict]:
    """Unreadable rows and repaired documents, located by file and position."""
    detail = group.column("_detail")
    rows = np.flatnonzero(pc.is_valid(detail).to_numpy(zero_copy_only=False))
    records = []
    for i in rows:
        reason = group.column("rejected_by")[int(i)].as_py()
        source = group.column("source")[int(i)].as_py()
        position = source[len(path) + 1 :] if source.startswith(path + ":") else source.rsplit(":", 1)[-1]
        unreadable = reason is not None and reason.startswith(UNREADABLE_PREFIX)
        note = detail[int(i)].as_py()
        records.append(
            {
                "file": path,
                "position": position,
                "reason": reason[len(UNREADABLE_PREFIX) :] if unreadable else note.split(":", 1)[0],
                "detail": note,
                "action": "skipped" if unreadable else "repaired",
                "id": group.column("id")[int(i)].as_py(),
                "seq": int(group.column("_seq")[int(i)].as_py()),
            }
        )
    return records


def merge_accounts(accounts) -> dict:
    """Sum per-group (or per-file) accounts into one."""
    total = {
        "documents": 0,
        "kept": 0,
        "rejected": Counter(),
        "unreadable": Counter(),
        "skipped": Counter(),
        "repaired": Counter(),
        "bytes_in": 0,
        "bytes_kept": 0,
        "stage_seconds": Counter(),
    }
    tokens: Counter = Counter()  # only when the tokens stage ran
    for account in accounts:
        for key, value in account.items():
            if isinstance(total.get(key), Counter):
                total[key].update(value)
            elif key in ("tokens_kept", "tokens_counted"):
                tokens[key] += value
            elif key in total:
                total[key] += value
    total.update(tokens)
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in total.items()}
