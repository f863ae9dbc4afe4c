"""Readers: one input file in, Arrow batches in the document schema out.

Every reader is a generator over one file that yields ``pyarrow.Table`` batches in
``BATCH_SCHEMA``. Bad input never raises out of a reader: a record that cannot be read becomes a
row whose ``rejected_by`` is ``unreadable.<reason>`` (text null, the reason detail in ``_detail``),
so it travels with the documents around it and the account stays exact. WARC records that are not
documents (requests, metadata, images, redirects) become ``skipped.<kind>`` rows, counted apart
from documents.

Ids: a record's own id is kept in ``source_id``; ``id`` is that id namespaced by the input file
(``<file key>/<source id>``) so two shards that both number their records from 0 never collide.
A record with no id gets ``xxh3_128(source)`` where source is ``<path>:<position>``.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import functools
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import xxhash

from ingest.schema import BATCH_SCHEMA, SKIPPED_PREFIX, UNREADABLE_PREFIX

FORMATS = ("auto", "jsonl", "parquet", "warc", "wet", "tsv")
COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2"}

# Field names tried, in order, when a field is "auto": the layouts of Dolma, C4, cc_net
# (raw_content), HPLT warc2text (t, u, ts) and RedPajama.
AUTO_FIELDS = {
    "text": ("text", "raw_content", "content", "t"),
    "id": ("id", "doc_id", "uuid"),
    "url": ("url", "u", "metadata.url", "metadata.warc_url", "source_url"),
    "date": ("crawl_date", "date", "date_download", "created", "ts", "timestamp", "metadata.warc_date"),
}


@dataclass(frozen=True)
class InputSpec:
    """How to read the inputs. Field names may be dotted paths into nested records
    (``metadata.url``); ``auto`` tries the common layouts listed in ``AUTO_FIELDS``."""

    paths: tuple[str, ...] = ()
    format: str = "auto"
    text_field: str = "auto"
    id_field: str = "auto"
    url_field: str = "auto"
    date_field: str = "auto"
    # Records larger than this are unreadable.too_large rather than a worker's memory blow-up.
    max_record_bytes: int = 64 << 20
    # HTML responses: Resiliparse main-content extraction (see README for the measured choice).
    html_main_content: bool = True
    # TSV: column names in order, no header row. The default is HPLT warc2text's layout
    # (url, base64 text); a text cell that is strict base64 of UTF-8 is decoded (spaces make
    # ordinary prose never valid base64).
    tsv_columns: tuple[str, ...] = ("url", "text")

    def candidates(self, kind: str) -> tuple[str, ...]:
        name = getattr(self, f"{kind}_field")
        return AUTO_FIELDS[kind] if name == "auto" else (name,)


@dataclass(frozen=True)
class InputFile:
    index: int
    path: str  # as resolved: a local absolute path or a URI
    size: int

    @property
    def key(self) -> str:
        """Stable short name of this input, used in ids and output file names."""
        return xxhash.xxh3_64_hexdigest(self.path.encode())


# ---------------------------------------------------------------------------------------------
# Resolving inputs: local paths, globs and any pyarrow/fsspec filesystem URI, one code path.


class InputError(ValueError):
    """An input path that matches nothing, or a filesystem that cannot be reached."""


# Every remote filesystem gets timeouts and retries (pyarrow's defaults let an unreachable GCS
# endpoint retry for 15 minutes): connect and request timeouts, AWS's standard retry strategy
# (exponential backoff with jitter on throttling and 5xx) for S3, a retry time limit for GCS. A URI's
# own query (``?connect_timeout=30&retries=10``) overrides them.
REMOTE_CONNECT_TIMEOUT_S = 10.0
REMOTE_REQUEST_TIMEOUT_S = 60.0
REMOTE_RETRIES = 5
GCS_RETRY_LIMIT_S = 10.0
# Listing the inputs must answer within this long (``$CRAWLSIFT_REMOTE_TIMEOUT``), or the run stops
# with one line before any work.
REMOTE_LIST_TIMEOUT_S = 60.0

_S3_TEXT = ("access_key", "secret_key", "session_token", "region", "scheme", "endpoint_override", "role_arn",
            "session_name", "external_id", "tls_ca_file_path")
_S3_FLAGS = ("anonymous", "force_virtual_addressing", "allow_bucket_creation", "allow_bucket_deletion")
_GCS_TEXT = ("scheme", "endpoint_override", "project_id", "access_token", "target_service_account")
_SECRET_KEYS = ("secret_key", "session_token", "access_token")


def filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path for a local path or URI (s3://, gs://, ...).
    S3 and GCS are built here with timeouts and retries (options from the URI's query, as pyarrow's
    ``from_uri`` takes them); schemes pyarrow lacks (e.g. memory://, az://) go through fsspec."""
    if "://" not in uri:
        import os

        return pafs.LocalFileSystem(), os.path.abspath(uri)
    scheme, _, rest = uri.partition("://")
    rest, _, query = rest.partition("?")
    if scheme == "s3":
        return _s3_filesystem(rest.split("/", 1)[0], query), rest.rstrip("/") or rest
    if scheme in ("gs", "gcs"):
        return _gcs_filesystem(query), rest.rstrip("/") or rest
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import fsspec

        return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem(scheme))), rest


def _query_options(query: str, text: tuple, flags: tuple, scheme: str) -> tuple[dict, dict]:
    from urllib.parse import parse_qsl

    options, tuning = {}, {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in text:
            options[key] = value
        elif key in flags:
            options[key] = value.lower() in ("1", "true", "yes")
        elif key in ("connect_timeout", "request_timeout", "retries", "retry_time_limit"):
            try:
                tuning[key] = float(value)
            except ValueError:
                raise InputError(f"{scheme}:// option {key}={value!r} is not a number") from None
        else:
            raise InputError(f"{scheme}:// URI has an unknown option {key!r} "
                             f"(known: {', '.join(sorted(text + flags))}, connect_timeout, request_timeout, retries)")
    return options, tuning


@functools.lru_cache(maxsize=64)
def _s3_filesystem(bucket: str, query: str) -> pafs.S3FileSystem:
    import os

    options, tuning = _query_options(query, _S3_TEXT, _S3_FLAGS, "s3")
    if "region" not in options and "endpoint_override" not in options:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        options["region"] = region or pafs.resolve_s3_region(bucket)
    try:
        return pafs.S3FileSystem(
            **options,
            connect_timeout=tuning.get("connect_timeout", REMOTE_CONNECT_TIMEOUT_S),
            request_timeout=tuning.get("request_timeout", REMOTE_REQUEST_TIMEOUT_S),
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=int(tuning.get("retries", REMOTE_RETRIES))),
        )
    except (ValueError, TypeError) as exc:
        raise InputError(f"s3:// options: {exc}") from None


@functools.lru_cache(maxsize=64)
def _gcs_filesystem(query: str) -> pafs.GcsFileSystem:
    from datetime import timedelta

    options, tuning = _query_options(query, _GCS_TEXT, ("anonymous",), "gs")
    limit = tuning.get("retry_time_limit", GCS_RETRY_LIMIT_S)
    try:
        return pafs.GcsFileSystem(**options, retry_time_limit=timedelta(seconds=limit))
    except (ValueError, TypeError) as exc:
        raise InputError(f"gs:// options: {exc}") from None


def redact(uri: str) -> str:
    """A URI fit for a message or a log: secret query values replaced."""
    if "?" not in uri:
        return uri
    base, _, query = uri.partition("?")
    parts = [f"{k}=***" if k in _SECRET_KEYS else f"{k}={v}" for k, _, v in (p.partition("=") for p in query.split("&"))]
    return f"{base}?{'&'.join(parts)}"


def _display(fs: pafs.FileSystem, path: str, uri: str) -> str:
    """The name a file goes by in ids, sources and errors: its local path, or its URI with the
    pattern's query (endpoint_override=..., region=...) kept so workers can reopen it."""
    if isinstance(fs, pafs.LocalFileSystem) and "://" not in uri:
        return path
    scheme = uri.split("://", 1)[0]
    query = uri.split("?", 1)[1] if "?" in uri else ""
    return f"{scheme}://{path}" + (f"?{query}" if query else "")


def resolve_inputs(patterns: list[str] | tuple[str, ...]) -> list[InputFile]:
    """Expand globs and directories into a sorted, de-duplicated list of files.
    Raises InputError (one line) naming the first pattern that matches nothing, cannot be listed
    (unreachable endpoint, missing bucket, denied), or gives no answer within
    ``REMOTE_LIST_TIMEOUT_S``."""
    found: dict[str, int] = {}
    for pattern in patterns:
        if "://" in pattern:
            matches, fs = _with_deadline(lambda p=pattern: _matches(p), _remote_timeout(), f"cannot list {redact(pattern)}")
        else:
            matches, fs = _matches(pattern)
        if not matches:
            raise InputError(f"input path not found: {redact(pattern)}{_missing_bucket(fs, pattern)}")
        for p, size in matches:
            found.setdefault(_display(fs, p, pattern), size)
    return [InputFile(i, p, s) for i, (p, s) in enumerate(sorted(found.items()))]


def check_remote_output(uri: str) -> None:
    """An output on object storage must be reachable and its bucket must exist, checked before any
    work (InputError, one line), not found by the writer after the run has started."""
    if "://" not in uri:
        return

    def probe():
        fs, path = filesystem_for(uri)
        try:
            fs.get_file_info(path)
            bucket = path.split("/", 1)[0]
            if isinstance(fs, (pafs.S3FileSystem, pafs.GcsFileSystem)) and fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise InputError(f"output {redact(uri)}: bucket {bucket!r} does not exist, or these credentials cannot see it")
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot reach the output {redact(uri)}: {remote_cause(exc)}") from None

    _with_deadline(probe, _remote_timeout(), f"cannot reach the output {redact(uri)}")


def _matches(pattern: str) -> tuple[list[tuple[str, int]], pafs.FileSystem]:
    try:
        fs, path = filesystem_for(pattern)
        return (_glob(fs, path) if any(c in path for c in "*?[") else _expand(fs, path)), fs
    except InputError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot list {redact(pattern)}: {remote_cause(exc)}") from None


def _missing_bucket(fs: pafs.FileSystem, pattern: str) -> str:
    """Why a remote pattern matched nothing, when the reason is its bucket."""
    if "://" not in pattern or isinstance(fs, pafs.LocalFileSystem):
        return ""
    bucket = pattern.split("://", 1)[1].split("?", 1)[0].split("/", 1)[0]
    try:
        missing = fs.get_file_info(bucket).type == pafs.FileType.NotFound
    except Exception:  # noqa: BLE001 - the listing already answered; this only adds a reason
        return ""
    return f" (bucket {bucket!r} does not exist, or these credentials cannot see it)" if missing else ""


def remote_cause(exc: BaseException) -> str:
    """The part of a storage client's error a person needs, on one line."""
    text = " ".join(str(exc).split())
    for marker in ("Details: ", "AWS Error "):
        if marker in text:
            text = text[text.index(marker) + len(marker):]
            break
    return text[:300] or type(exc).__name__


def _remote_timeout() -> float:
    import os

    try:
        return float(os.environ.get("CRAWLSIFT_REMOTE_TIMEOUT", REMOTE_LIST_TIMEOUT_S))
    except ValueError:
        return REMOTE_LIST_TIMEOUT_S


_ABANDONED: list = []


def abandoned_remote_calls() -> bool:
    """Whether a remote call given up on is still running: pyarrow's S3 shutdown at exit would wait
    for it, so the CLI leaves with ``os._exit`` instead."""
    return any(t.is_alive() for t in _ABANDONED)


def _with_deadline(fn, seconds: float, what: str):
    """``fn()`` in a daemon thread: its result, its exception, or an InputError after ``seconds``
    (a client that keeps retrying is left behind; the process is about to stop with exit 2)."""
    import threading

    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="crawlsift-list-inputs", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        _ABANDONED.append(thread)
        raise InputError(f"{what}: no answer within {seconds:.0f} s "
                         "(check the endpoint, the network and the credentials)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _expand(fs: pafs.FileSystem, path: str) -> list[tuple[str, int]]:
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [(path, info.size)]
    if info.type == pafs.FileType.Directory:
        listing = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        return [(i.path, i.size) for i in listing if i.type == pafs.FileType.File and not _hidden(i.path)]
    return []


def _hidden(path: str) -> bool:
    return any(part.startswith((".", "_")) for part in path.replace("\\", "/").split("/")[-1:])


def _glob(fs: pafs.FileSystem, pattern: str) -> list[tuple[str, int]]:
    parts = pattern.split("/")
    fixed = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    base = "/".join(fixed) or "/"
    recursive = "**" in pattern or len(fixed) < len(parts) - 1
    try:
        listing = fs.get_file_info(pafs.FileSelector(base, recursive=recursive, allow_not_found=True))
    except FileNotFoundError:
        return []
    return [
        (i.path, i.size)
        for i in listing
        if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, pattern.replace("**/", "*"))
    ]


def detect_format(path: str, head: bytes = b"") -> str | None:
    """The reader for a file, by name and, failing that, by its first bytes (None: no reader)."""
    name = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if ".wet" in name.rsplit("/", 1)[-1]:
        return "wet"
    if name.endswith((".warc", ".wat", ".arc")):
        return "warc"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".tsv"):
        return "tsv"
    head = head.lstrip()
    if head.startswith(b"WARC/"):
        return "warc"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"{"):
        return "jsonl"
    return None


def no_reader_for_any(files: list[InputFile], spec: InputSpec, max_heads: int = 32) -> str | None:
    """Why no input can be read (one line), or None when at least one can (or when too many files have
    unknown names to look inside them all: the run counts those as unsupported_format rows)."""
    if spec.format != "auto" or not files:
        return None
    unknown = [f for f in files if detect_format(f.path) is None]
    if len(unknown) < len(files) or len(unknown) > max_heads:
        return None
    for f in unknown:
        try:
            fs, path = filesystem_for(f.path)
            with fs.open_input_stream(path, compression=None) as stream:
                head = _decompressed_head(path, stream.read(64 << 10))
        except Exception:  # noqa: BLE001 - an unreadable file is counted by the run, not judged here
            return None
        if detect_format(f.path, head) is not None:
            return None
    return (f"no input any reader takes: {len(files)} file(s), e.g. {files[0].path} "
            "(JSONL, JSON, TSV, Parquet, WARC/WET, optionally .gz/.zst; or set input.format)")


# ---------------------------------------------------------------------------------------------
# Batch building.


class BatchBuilder:
    """Accumulates rows for one input file and cuts them into tables of ``batch_size`` rows.
    Assigns every row its sequence number and id; keeps source ids unique within the file."""

    def __init__(self, file: InputFile, batch_size: int, start: int = 0):
        self.file = file
        self.batch_size = batch_size
        self.start = start  # rows before this one were processed by an earlier run: numbered, not kept
        self.seq = 0
        self.seen_ids: set[str] = set()
        self._rows: dict[str, list] = {f.name: [] for f in BATCH_SCHEMA}
        self.source = None  # the open input stream, when its position says how far the file is read
        self.rows_fraction = None  # or, for Parquet, the share of the file's rows read

    def bytes_read(self) -> int | None:
        """How far into the (compressed) file reading has got, for progress and ETAs."""
        if self.rows_fraction is not None:
            return int(self.rows_fraction * self.file.size)
        try:
            return int(self.source.tell()) if self.source is not None else None
        except Exception:  # noqa: BLE001 - a closed or unseekable stream: no estimate
            return None

    def _add(self, position, source_id, text, url, date, rejected_by, detail) -> None:
        source = f"{self.file.path}:{position}"
        if source_id is None:
            doc_id = xxhash.xxh3_128_hexdigest(source.encode())
        else:
            source_id = str(source_id)
            doc_id = f"{self.file.key}/{source_id}"
            if source_id in self.seen_ids:  # the same id twice in one file: both are kept, apart
                doc_id = f"{doc_id}#{position}"
            else:
                self.seen_ids.add(source_id)
        if self.seq < self.start:
            self.seq += 1
            return
        r = self._rows
        r["id"].append(doc_id)
        r["text"].append(text)
        r["url"].append(url)
        r["source"].append(source)
        r["source_id"].append(source_id)
        r["crawl_date"].append(date)
        r["rejected_by"].append(rejected_by)
        r["_file"].append(self.file.index)
        r["_seq"].append(self.seq)
        r["_last"].append(False)
        r["_detail"].append(detail)
        self.seq += 1

    def document(self, position, text: str, *, source_id=None, url=None, date=None, repair=None):
        self._add(position, source_id, text, url, date, None, repair)

    def unreadable(self, position, reason: str, detail: str, *, source_id=None):
        self._add(position, source_id, None, None, None, UNREADABLE_PREFIX + reason, detail[:500])

    def skipped(self, position, kind: str, *, source_id=None):
        self._add(position, source_id, None, None, None, SKIPPED_PREFIX + kind, None)

    @property
    def skipping(self) -> bool:
        """Whether the next row is one an earlier run already processed (resume inside a file)."""
        return self.seq < self.start

    def full(self) -> bool:
        # One row more than a batch is held back, so the file's last row always lands in the
        # final flush and can carry the end-of-file mark.
        return len(self._rows["id"]) > self.batch_size

    def flush(self, last: bool = False) -> pa.Table | None:
        n = len(self._rows["id"])
        if n == 0 and not last:
            return None
        if n == 0:  # an input with no records at all still tells the driver it is finished
            self.skipped(0, "empty_input")
        rows, cut = self._rows, len(self._rows["id"]) if last else self.batch_size
        if last:
            rows["_last"][-1] = True
        table = pa.Table.from_pydict({k: v[:cut] for k, v in rows.items()}, schema=BATCH_SCHEMA)
        self._rows = {k: v[cut:] for k, v in rows.items()}
        return table


def read_file(file: InputFile, spec: InputSpec, batch_size: int, on_progress=None, start: int = 0) -> Iterator[pa.Table]:
    """Yield the batches of one input file. Never raises for bad input (see module doc).
    ``on_progress(file index, compressed bytes read or None)`` is called before each batch.
    ``start``: the first row to yield (a multiple of ``batch_size``: an earlier run's checkpoint);
    the rows before it are read and numbered as always, so ids and batch boundaries do not move."""
    builder = BatchBuilder(file, batch_size, start)
    try:
        fs, path = filesystem_for(file.path)
        fmt = spec.format
        if fmt == "auto":
            with fs.open_input_stream(path, compression=None) as f:
                head = _decompressed_head(path, f.read(64 << 10))
            fmt = detect_format(file.path, head)
        if fmt is None:
            builder.unreadable(0, "unsupported_format", f"no reader takes {file.path.rsplit('/', 1)[-1]!r}")
        else:
            reader = {"jsonl": _read_jsonl, "parquet": _read_parquet, "warc": _read_warc, "wet": _read_warc, "tsv": _read_tsv}[fmt]
            for table in reader(fs, path, spec, builder):
                if on_progress is not None:
                    on_progress(file.index, builder.bytes_read())
                yield table
    except Exception as exc:  # noqa: BLE001 - whatever a broken file throws, it is one located record
        builder.unreadable(builder.seq, "read_error", f"{type(exc).__name__}: {exc}")
    table = builder.flush(last=True)
    if on_progress is not None:
        on_progress(file.index, file.size)
    if table is not None:
        yield table


class ReadFiles:
    """Ray Data ``map_batches`` UDF over a batch of input-file descriptors (``file_items``):
    yields each file's document batches, in file order. ``board``: a progress actor told how far
    each file is read (fire and forget; the account does not depend on it)."""

    def __init__(self, spec: InputSpec, batch_size: int, board=None):
        self.spec = spec
        self.batch_size = batch_size
        self.board = board

    def __call__(self, files: pa.Table):
        post = (lambda index, done: self.board.read.remote(index, done)) if self.board is not None else None
        for row in files.to_pylist():
            yield from read_file(InputFile(row["index"], row["path"], row["size"]), self.spec, self.batch_size, post,
                                 start=row.get("start") or 0)


def file_items(files: list[InputFile], starts: dict[int, int] | None = None) -> list[dict]:
    """The rows ``ReadFiles`` takes: one per input file, with the row to start at (resume)."""
    starts = starts or {}
    return [{"index": f.index, "path": f.path, "size": f.size, "start": starts.get(f.index, 0)} for f in files]


def _decompressed_head(path: str, raw: bytes) -> bytes:
    try:
        if raw[:2] == b"\x1f\x8b":
            return zlib.decompressobj(wbits=47).decompress(raw, 4096)
        if raw[:4] == b"\x28\xb5\x2f\xfd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj().decompress(raw)[:4096]
        if raw[:3] == b"BZh":
            return _bz2_decompressobj().decompress(raw, 4096)
    except Exception:  # noqa: BLE001 - sniffing only
        return b""
    return raw[:4096]


@dataclass(frozen=True)
class StreamDamage:
    """Where a compressed stream could not be decoded, yielded in-band between decoded chunks.

    ``offset``: the compressed byte at which decoding failed (every byte decoded before it has been
    yielded). ``resumed_at``: the compressed offset of the next gzip member / zstd frame / bz2
    stream decoding went on from, or None when the rest of the file was lost. ``truncated``: the
    file ended inside a member (cut short) rather than holding bytes its codec rejects."""

    codec: str
    offset: int
    resumed_at: int | None
    message: str
    truncated: bool = False

    @property
    def reason(self) -> str:
        return "truncated_compressed_stream" if self.truncated else "corrupt_compressed_stream"

    def describe(self, last_good_line: int) -> str:
        where = f"{self.codec} stream damaged at compressed byte {self.offset}, after line {last_good_line}: {self.message}"
        if self.truncated:
            return f"{self.codec} stream ends inside a {_UNIT[self.codec]} at compressed byte {self.offset}, after line {last_good_line}; the rest of the file is lost"
        if self.resumed_at is None:
            return f"{where}; the rest of the file is lost"
        return (f"{where}; compressed bytes {self.offset}-{self.resumed_at} lost, reading resumed at the next "
                f"{_UNIT[self.codec]} (line numbers after this row count from here)")


def _codec(path: str, magic: bytes) -> str | None:
    """Compression by file name when the name says, else by magic number."""
    name = path.lower()
    for suffix, codec in COMPRESSION_SUFFIXES.items():
        if name.endswith(suffix):
            return codec
    if name.endswith((".jsonl", ".json", ".ndjson", ".tsv", ".txt")):
        return None
    for codec, head in _MAGIC.items():
        if magic.startswith(head):
            return codec
    return None


def _zstd_decompressobj():
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj()


def _bz2_decompressobj():
    import bz2

    return bz2.BZ2Decompressor()


# What starts a gzip member (with deflate), a zstd frame and a bz2 stream: where decoding can
# resume after damage. A false match inside compressed data (2^-24 per byte) fails at once and the
# search goes on.
_MAGIC = {"gzip": b"\x1f\x8b\x08", "zstd": b"\x28\xb5\x2f\xfd", "bz2": b"BZh"}
_UNIT = {"gzip": "gzip member", "zstd": "zstd frame", "bz2": "bz2 stream"}
_NEW_DECODER = {"gzip": lambda: zlib.decompressobj(wbits=47), "zstd": _zstd_decompressobj, "bz2": _bz2_decompressobj}
# Compressed bytes per decoder call. A codec raises without returning the output of the call that
# hit the damage; zlib's state can be copied, so gzip re-decodes a failed step byte by byte and loses
# nothing decodable; zstd and bz2 emit whole blocks, so small steps lose at most one block's output.
_STEP = {"gzip": 64 << 10, "zstd": 16 << 10, "bz2": 8 << 10}
# bz2 output per call: libbz2 raises a bad block or stream CRC without returning what it had
# decoded, so it is drained a kilobyte at a time (Python's bz2 module reads 8 KB at a time).
_PIECE = 1 << 10


def _decompressed_chunks(fs: pafs.FileSystem, path: str, chunk_bytes: int = 1 << 20,
                         builder: BatchBuilder | None = None) -> Iterator[bytes | StreamDamage]:
    """The file's decompressed bytes, chunk by chunk, with a ``StreamDamage`` in-band wherever the
    compressed stream is damaged or cut short. Everything decodable before damage is yielded; after
    it, decoding resumes at the next gzip member / zstd frame / bz2 stream if there is one.
    Multi-member gzip, multi-frame zstd and multi-stream bz2 are read to the end."""
    with fs.open_input_stream(path, compression=None) as raw:
        if builder is not None:
            builder.source = raw
        first = raw.read(chunk_bytes)
        codec = _codec(path, first)
        if codec is None:
            chunk = first
            while chunk:
                yield chunk
                chunk = raw.read(chunk_bytes)
            return
        yield from _decode(codec, first, lambda: raw.read(chunk_bytes))


def _decode(codec: str, first: bytes, read) -> Iterator[bytes | StreamDamage]:
    step_bytes, new, magic = _STEP[codec], _NEW_DECODER[codec], _MAGIC[codec]
    buf, base, pos = first, 0, 0  # buf holds the compressed bytes from absolute offset ``base``
    decoder, fed = new(), False
    pending = None  # damage not yet reported: merged with a failure right after resuming
    while True:
        if pos >= len(buf):
            more = read()
            if not more:
                break
            base, buf, pos = base + len(buf), more, 0
        if decoder.eof:
            decoder, fed = new(), False
        step = buf[pos:pos + step_bytes]
        saved = decoder.copy() if codec == "gzip" else None
        try:
            if codec == "bz2":  # drained in small pieces, so a bad stream CRC costs nothing decoded before it
                out = decoder.decompress(step, _PIECE)
                while not (decoder.eof or decoder.needs_input):
                    if out:
                        if pending:
                            yield pending
                            pending = None
                        yield out
                        fed = True
                    out = decoder.decompress(b"", _PIECE)
            else:
                out = decoder.decompress(step)
        except Exception as exc:  # noqa: BLE001 - zlib.error, zstandard.ZstdError, OSError from bz2
            bad = 0
            if saved is not None:
                out, bad, ended = _salvage(saved, step)
                if out:
                    if pending:
                        yield pending
                        pending = None
                    yield out
                if ended:  # the member ended cleanly inside the step; the damage is in what follows
                    decoder, pos = saved, pos + bad
                    continue
            failed = base + pos + bad
            found = _find_magic(magic, buf, pos + bad + 1, read)
            if found is None:
                yield pending or StreamDamage(codec, failed, None, _first_line(exc))
                return
            buf, delta, pos = found
            base += delta
            if pending is None:
                pending = StreamDamage(codec, failed, base + pos, _first_line(exc))
            else:
                pending = StreamDamage(codec, pending.offset, base + pos, pending.message)
            decoder, fed = new(), False
            continue
        fed = fed or bool(step)
        if out:
            if pending:
                yield pending
                pending = None
            yield out
        pos += len(step) - (len(decoder.unused_data) if decoder.eof else 0)
    if pending:
        yield pending
    elif fed and not decoder.eof:
        yield StreamDamage(codec, base + len(buf), None, "the stream ends before its end-of-stream marker", truncated=True)


def _salvage(decoder, step: bytes) -> tuple[bytes, int, bool]:
    """Re-decode a failed step one byte at a time from the state before it: (everything decodable,
    bytes consumed, whether the member ended cleanly there rather than at a damaged byte)."""
    out = []
    for i in range(len(step)):
        try:
            out.append(decoder.decompress(step[i:i + 1]))
        except Exception:  # noqa: BLE001 - the damaged byte
            return b"".join(out), i, False
        if decoder.eof:
            return b"".join(out), i + 1, True
    return b"".join(out), len(step), False


def _find_magic(magic: bytes, buf: bytes, start: int, read) -> tuple[bytes, int, int] | None:
    """The next ``magic`` at or after ``buf[start:]`` (reading on as needed): (buffer, its base
    offset delta, position in it) as the decode loop keeps them; None at the end of the file."""
    base = 0
    while True:
        at = buf.find(magic, start)
        if at >= 0:
            return buf, base, at
        keep = buf[-(len(magic) - 1):] if len(buf) >= len(magic) - 1 else buf
        more = read()
        if not more:
            return None
        base += len(buf) - len(keep)
        buf, start = keep + more, 0


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


# ---------------------------------------------------------------------------------------------
# JSONL


def _get(record: dict, names: tuple[str, ...]):
    for name in names:
        value = record
        for key in name.split("."):
            if not isinstance(value, dict) or key not in value:
                value = None
                break
            value = value[key]
        if value is not None:
            return value
    return None


def parse_date(value) -> datetime | None:
    """ISO-8601 strings (Z or offset), epoch seconds; anything else is None, not an error."""
    if value is None:
        return None
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=timezone.utc)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _iter_lines(chunks: Iterator[bytes | StreamDamage]) -> Iterator[tuple[int, bytes | StreamDamage]]:
    """(1-based line number, line bytes) over a stream of byte chunks; a ``StreamDamage`` takes a
    line number of its own (the partial line before it is part of the loss it reports)."""
    lineno = 0
    tail = b""
    for chunk in chunks:
        if isinstance(chunk, StreamDamage):
            tail = b""
            lineno += 1
            yield lineno, chunk
            continue
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            lineno += 1
            yield lineno, line
    if tail:
        yield lineno + 1, tail


def _read_jsonl(fs, path, spec: InputSpec, builder: BatchBuilder) -> Iterator[pa.Table]:
    text_names, id_names = spec.candidates("text"), spec.candidates("id")
    url_names, date_names = spec.candidates("url"), spec.candidates("date")
    for lineno, line in _iter_lines(_decompressed_chunks(fs, path, builder=builder)):
        if isinstance(line, StreamDamage):
            builder.unreadable(lineno, line.reason, line.describe(lineno - 1))
        elif line and not line.isspace():
            _jsonl_record(builder, spec, lineno, line, text_names, id_names, url_names, date_names)
        if builder.full():
            yield builder.flush()


def _jsonl_record(builder, spec, lineno, line, text_names, id_names, url_names, date_names) -> None:
    if len(line) > spec.max_record_bytes:
        builder.unreadable(lineno, "too_large", f"{len(line)} bytes > max_record_bytes={spec.max_record_bytes}")
        return
    repair = None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Invalid UTF-8: keep the document with U+FFFD in place of the bad bytes, and say so.
            decoded = line.decode("utf-8", errors="replace")
            repair = f"invalid_utf8: {exc.reason} at byte {exc.start}"
        try:
            record = orjson.loads(decoded)
        except orjson.JSONDecodeError as exc:
            builder.unreadable(lineno, "bad_json", str(exc))
            return
    if not isinstance(record, dict):
        builder.unreadable(lineno, "bad_json", f"a JSON {type(record).__name__}, not an object")
        return
    text = _get(record, text_names)
    source_id = _get(record, id_names)
    if not isinstance(text, str):
        what = "missing" if text is None else f"a {type(text).__name__}, not a string"
        builder.unreadable(lineno, "no_text", f"text field {'/'.join(text_names)} is {what}", source_id=source_id)
        return
    url = _get(record, url_names)
    builder.document(
        lineno,
        text,
        source_id=source_id,
        url=url if isinstance(url, str) else None,
        date=parse_date(_get(record, date_names)),
        repair=repair,
    )


# ---------------------------------------------------------------------------------------------
# TSV


def _read_tsv(fs, path, spec: InputSpec, builder: BatchBuilder) -> Iterator[pa.Table]:
    columns = spec.tsv_columns
    names = {kind: next((n for n in spec.candidates(kind) if n in columns), None) for kind in ("text", "id", "url", "date")}
    if names["text"] is None:
        builder.unreadable(0, "no_text", f"no text column ({'/'.join(spec.candidates('text'))}) in tsv_columns {list(columns)}")
        return
    for lineno, line in _iter_lines(_decompressed_chunks(fs, path, builder=builder)):
        if isinstance(line, StreamDamage):
            builder.unreadable(lineno, line.reason, line.describe(lineno - 1))
            continue
        if not line or line.isspace():
            continue
        text, repair = _decode_utf8(line.rstrip(b"\r"))
        cells = dict(zip(columns, text.split("\t")))
        body = cells.get(names["text"])
        if body is None:
            builder.unreadable(lineno, "no_text", f"row has {len(cells)} of {len(columns)} columns")
        else:
            builder.document(
                lineno,
                _maybe_base64(body),
                source_id=cells.get(names["id"]) if names["id"] else None,
                url=cells.get(names["url"]) if names["url"] else None,
                date=parse_date(cells.get(names["date"])) if names["date"] else None,
                repair=repair,
            )
        if builder.full():
            yield builder.flush()


_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def _maybe_base64(cell: str) -> str:
    if len(cell) % 4 or not _BASE64.fullmatch(cell):
        return cell
    try:
        return base64.b64decode(cell, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return cell


# ---------------------------------------------------------------------------------------------
# Parquet


def _read_parquet(fs, path, spec: InputSpec, builder: BatchBuilder) -> Iterator[pa.Table]:
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        top = set(pf.schema_arrow.names)

        def pick(kind):
            return next((n for n in spec.candidates(kind) if n.split(".")[0] in top), None)

        fields = {kind: pick(kind) for kind in ("text", "id", "url", "date")}
        if fields["text"] is None:
            builder.unreadable(0, "no_text", f"no text column ({'/'.join(spec.candidates('text'))}) in {sorted(top)}")
            return
        columns = sorted({f.split(".")[0] for f in fields.values() if f})
        row = 0
        total_rows = max(1, pf.metadata.num_rows)
        for batch in pf.iter_batches(batch_size=builder.batch_size, columns=columns):
            builder.rows_fraction = min(1.0, (row + batch.num_rows) / total_rows)
            records = batch.to_pylist()
            for record in records:
                text = _get(record, (fields["text"],))
                source_id = _get(record, (fields["id"],)) if fields["id"] else None
                if not isinstance(text, str):
                    builder.unreadable(row, "no_text", "text is null", source_id=source_id)
                else:
                    url = _get(record, (fields["url"],)) if fields["url"] else None
                    date = _get(record, (fields["date"],)) if fields["date"] else None
                    builder.document(
                        row,
                        text,
                        source_id=source_id,
                        url=url if isinstance(url, str) else None,
                        date=date if isinstance(date, datetime) else parse_date(date),
                    )
                row += 1
                if builder.full():
                    yield builder.flush()


# ---------------------------------------------------------------------------------------------
# WARC / WET


HTML_TYPES = ("text/html", "application/xhtml+xml")


def _read_warc(fs, path, spec: InputSpec, builder: BatchBuilder) -> Iterator[pa.Table]:
    """Responses with HTML become documents (text extracted), WET conversion records become
    documents as they are, everything else is skipped by type. Damage costs only the damaged
    record: after a record that cannot be parsed, or one whose declared length runs past the end of
    the file (a damaged Content-Length swallows every record after it), reading resumes at the next
    gzip member (compressed WARC) or the next ``WARC/1.x`` header line (uncompressed). Within a
    single-member gzip WARC nothing after damage can be decoded: the rest of the file is lost, and
    the row says so."""
    from fastwarc.warc import ArchiveIterator

    with fs.open_input_file(path) as f:
        builder.source = f
        gzipped = f.read(2) == b"\x1f\x8b"
        resync, unit = (_next_gzip_member, "gzip member") if gzipped else (_next_warc_header, "WARC header")
        start = 0
        while True:
            f.seek(start)
            last_pos, error = None, None
            try:
                for record in ArchiveIterator(f, parse_http=False):
                    last_pos = start + record.stream_pos
                    whole = _warc_record(builder, spec, record, last_pos)
                    if builder.full():
                        yield builder.flush()
                    if not whole:
                        break
                else:
                    return
            except Exception as exc:  # noqa: BLE001 - fastwarc raises plain exceptions for corrupt members
                error = f"{type(exc).__name__}: {exc}"
            failed_at = last_pos if last_pos is not None else start
            found = resync(f, failed_at + 1)
            if error is not None:
                then = f"reading resumed at the next {unit}, byte {found}" if found is not None else "the rest of the file is lost"
                builder.unreadable(failed_at, "corrupt_record", f"{error} (in or after the record at offset {failed_at}); {then}")
            if found is None:
                return
            start = found


def _next_gzip_member(f, offset: int) -> int | None:
    """The offset of the next gzip member header (``1f 8b 08``) at or after ``offset``."""
    return _next_match(f, offset, _GZIP_MEMBER, 2)


def _next_warc_header(f, offset: int) -> int | None:
    """The offset of the next ``WARC/1.0`` / ``WARC/1.1`` version line at or after ``offset``."""
    return _next_match(f, offset, _WARC_VERSION_LINE, 16)


def _next_match(f, offset: int, pattern: re.Pattern, overlap: int) -> int | None:
    """The offset in seekable ``f`` of ``pattern``'s first match at or after ``offset``, read 1 MB at
    a time with ``overlap`` bytes carried between reads (at least the longest match minus one)."""
    f.seek(offset)
    carry = b""
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            return None
        data = carry + chunk
        hit = pattern.search(data)
        if hit:
            return offset - len(carry) + hit.start()
        offset += len(chunk)
        carry = data[-overlap:]


_GZIP_MEMBER = re.compile(re.escape(b"\x1f\x8b\x08"))
_WARC_VERSION_LINE = re.compile(rb"WARC/1\.[01]\r?\n")


def _warc_record(builder: BatchBuilder, spec: InputSpec, record, position: int) -> bool:
    """One record into the batch; False when its block is shorter than its declared length (the
    file was cut there, or a damaged Content-Length ran past the records after it)."""
    headers = record.headers
    warc_type = (headers.get("WARC-Type") or "unknown").lower()
    record_id = headers.get("WARC-Record-ID")
    if builder.skipping:  # processed by an earlier run: numbered (one row per record), not extracted
        builder.skipped(position, f"warc_{warc_type}", source_id=record_id)
        return record.reader.consume() >= record.content_length
    if warc_type not in ("response", "conversion"):
        builder.skipped(position, f"warc_{warc_type}", source_id=record_id)
        return record.reader.consume() >= record.content_length
    block = record.reader.read()
    if len(block) < record.content_length:
        builder.unreadable(
            position,
            "truncated_record",
            f"{warc_type} record has {len(block)} of its {record.content_length} bytes",
            source_id=record_id,
        )
        return False
    url = (headers.get("WARC-Target-URI") or "").strip("<>") or None  # WARC/1.1 drafts bracket it
    date = parse_date(headers.get("WARC-Date"))
    if warc_type == "conversion":
        text, repair = _decode_utf8(block)
        builder.document(position, text, source_id=record_id, url=url, date=date, repair=repair)
        return True
    status, http_headers, payload = _split_http(block)
    if status is None:
        builder.unreadable(position, "bad_http", "response block has no HTTP status line", source_id=record_id)
        return True
    if not 200 <= status < 300:
        builder.skipped(position, f"warc_http_{status // 100}xx", source_id=record_id)
        return True
    content_type = http_headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in HTML_TYPES:
        builder.skipped(position, "warc_response_not_html", source_id=record_id)
        return True
    payload = _content_decode(payload, http_headers.get("content-encoding", ""))
    if not content_type and not _looks_like_html(payload):
        builder.skipped(position, "warc_response_not_html", source_id=record_id)
        return True
    text = html_to_text(payload, http_headers.get("content-type", ""), spec.html_main_content)
    builder.document(position, text, source_id=record_id, url=url, date=date)
    return True


def _decode_utf8(data: bytes) -> tuple[str, str | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", errors="replace"), f"invalid_utf8: {exc.reason} at byte {exc.start}"


def _split_http(block: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """Status, lower-cased headers and payload of an HTTP response block. Tolerates bare LF
    line ends, which real crawls (ClueWeb09) have."""
    end = block.find(b"\r\n\r\n")
    sep = 4
    if end < 0 or (0 <= block.find(b"\n\n") < end):
        end, sep = block.find(b"\n\n"), 2
    if end < 0:
        end, sep = len(block), 0
    head = block[:end].decode("latin-1").replace("\r\n", "\n").split("\n")
    parts = head[0].split(None, 2)
    if len(parts) < 2 or not parts[0].upper().startswith("HTTP/") or not parts[1].isdigit():
        return None, {}, b""
    headers = {}
    for line in head[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, block[end + sep :]


def _content_decode(payload: bytes, encoding: str) -> bytes:
    """Undo gzip/deflate transfer encoding when the payload really is compressed (crawlers often
    store it decoded but keep the header)."""
    encoding = encoding.lower()
    try:
        if "gzip" in encoding and payload[:2] == b"\x1f\x8b":
            return zlib.decompressobj(wbits=47).decompress(payload)
        if "deflate" in encoding:
            return zlib.decompress(payload)
    except zlib.error:
        pass
    return payload


def _looks_like_html(payload: bytes) -> bool:
    head = payload[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in head or b"<body" in head


def html_to_text(payload: bytes, content_type: str = "", main_content: bool = True) -> str:
    """Plain text of an HTML page with Resiliparse: encoding from the HTTP header or detected,
    main-content extraction (drops navigation, headers, footers) by default."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLTree

    charset = None
    if "charset=" in content_type.lower():
        charset = content_type.lower().split("charset=", 1)[1].split(";")[0].strip().strip("\"'")
    html = bytes_to_str(payload, charset or detect_encoding(payload))
    tree = HTMLTree.parse(html)
    return extract_plain_text(tree, main_content=main_content, alt_texts=False, preserve_formatting=True)
