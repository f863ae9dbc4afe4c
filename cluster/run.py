"""The driver: resume bookkeeping, Ray start-up, progress, and the final account."""

from __future__ import annotations

import html
import json
import logging
import os
import sys
import time
from collections import defaultdict

import pyarrow.fs as pafs

from cluster.board import ProgressBoard
from cluster.config import ConfigError, PipelineConfig
from cluster.plan import GlobalMap, _ReadParts, build_dataset
from dedup.driver import run_global_reduce
from filters.base import GlobalStage, Stage
from ingest.readers import InputFile
from ingest.writer import OutputDir, merge_accounts, write_progress


HEARTBEAT_S = 30.0


class Progress:
    """The progress line on stderr: rewritten in place on a terminal (every 0.5 s), one line every
    5 s in a log file. Documents, kept, MB read of the total and MB/s, the slowest stages' rates
    (documents per second of that stage's time) and an ETA from the bytes read; the final line once."""

    def __init__(self, total_files: int, total_bytes: int = 0, stream=sys.stderr, every: float | None = None,
                 label: str = "", already_bytes: int = 0):
        import threading

        self.total_files = total_files
        self.total_bytes = total_bytes
        self.already_bytes = already_bytes  # inputs finished by an earlier run
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        if every is None and os.environ.get("CRAWLSIFT_PROGRESS_EVERY"):
            every = float(os.environ["CRAWLSIFT_PROGRESS_EVERY"])
        self.every = every if every is not None else (0.5 if self.tty else 5.0)
        self.start = time.monotonic()
        self.last = 0.0
        self.last_line = ""
        self.files_done = 0
        self.board: dict = {}
        self.lock = threading.Lock()

    def update(self, files_done: int | None = None, documents: int | None = None, kept: int | None = None,
               unreadable: int | None = None, force: bool = False, board: dict | None = None) -> None:
        with self.lock:
            if files_done is not None:
                self.files_done = files_done
            if board is not None:
                self.board = board
            elif documents is not None:  # no board: the driver's own counts
                self.board = {**self.board, "documents": documents, "kept": kept, "unreadable": unreadable}
            now = time.monotonic()
            if not force and now - self.last < self.every:
                return
            line = self.line(now - self.start)
            news = line.split("] ", 1)[-1]
            if news == self.last_line.split("] ", 1)[-1] and (force or now - self.last < HEARTBEAT_S):
                return  # nothing moved: a line again only as a heartbeat
            self.last, self.last_line = now, line
            self.stream.write(("\r\x1b[K" + line) if self.tty else line + "\n")
            self.stream.flush()

    def line(self, elapsed: float) -> str:
        elapsed = max(elapsed, 1e-9)
        b = self.board
        documents = b.get("documents", 0)
        parts = [f"[{elapsed:7.1f}s] {self.label}files {self.files_done}/{self.total_files}",
                 f"documents {documents:,} ({documents / elapsed:,.0f}/s)",
                 f"kept {b.get('kept', 0):,}", f"unreadable {b.get('unreadable', 0):,}"]
        read = b.get("bytes_read")
        if read and self.total_bytes:
            parts.append(f"read {(read + self.already_bytes) / 1e6:,.1f}/{self.total_bytes / 1e6:,.1f} MB "
                         f"({read / 1e6 / elapsed:,.1f} MB/s)")
            left = self.total_bytes - self.already_bytes - read
            if left > 0:
                parts.append(f"ETA {_clock(elapsed * left / read)}")
        seconds = {k: v for k, v in b.get("stage_seconds", {}).items() if v > 0}
        if seconds and documents:
            slowest = sorted(seconds.items(), key=lambda kv: -kv[1])[:2]
            parts.append("slowest " + ", ".join(f"{name} {documents / sec:,.0f}/s" for name, sec in slowest))
        return " | ".join(parts)

    def close(self) -> None:
        if self.tty and self.last_line:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class _BoardWatcher:
    """Polls the board actor into the progress line while the driver waits on the dataset."""

    def __init__(self, meter: Progress | None, board):
        import threading

        self.meter, self.board = meter, board
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True) if meter and board is not None else None

    def _run(self):
        import ray

        while not self.stop.wait(min(self.meter.every, 1.0)):
            try:
                self.meter.update(board=ray.get(self.board.snapshot.remote(), timeout=10))
            except Exception:  # noqa: BLE001 - the line is a nicety; the run goes on without it
                pass

    def __enter__(self):
        if self.thread:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread:
            self.thread.join()
        if self.meter and self.board is not None:
            import ray

            try:
                self.meter.update(board=ray.get(self.board.snapshot.remote(), timeout=10))
            except Exception:  # noqa: BLE001
                pass


def _new_board(show: bool):
    if not show:
        return None
    import ray

    return ray.remote(num_cpus=0)(ProgressBoard).remote()


def _print_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    logging.getLogger("ray").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Workers log at ERROR: without the dashboard, Ray Train's placement-group cleaner warns every few
    # seconds that the State API is unavailable, which is expected and says nothing about the job.
    kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=True, configure_logging=True,
                  logging_config=ray.LoggingConfig(log_level="ERROR"))
    if not address and os.environ.get("CRAWLSIFT_NUM_CPUS"):
        kwargs["num_cpus"] = int(os.environ["CRAWLSIFT_NUM_CPUS"])  # a local Ray of this many CPUs
    if address:
        # On an existing cluster the workers need this project's code: ship its packages.
        import cluster
        import dedup
        import filters
        import ingest
        import train

        kwargs["runtime_env"] = {"py_modules": [ingest, filters, dedup, train, cluster]}
        ray.init(address=address, **kwargs)
    else:
        ray.init(**kwargs)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _start_ray(address: str | None, say: bool) -> None:
    import ray

    if ray.is_initialized():
        return
    start = time.monotonic()
    if say:
        _print_line(f"starting Ray ({'joining ' + address if address else 'local'}) ...")
    init_ray(address)
    if say:
        _print_line(f"Ray ready in {time.monotonic() - start:.1f}s")


def run_pipeline(config: PipelineConfig, *, progress: bool = True, overwrite: bool = False) -> dict:
    """Process every input not yet finished in ``config.output``; return the summary (also
    written to summary.json). Raises ConfigError if the output holds a different run."""
    started = time.time()
    out = OutputDir(config.output)
    out.makedirs()
    state = out.read_json("_state/run.json")
    fingerprint = config.fingerprint()
    if state and state.get("fingerprint") != fingerprint and not overwrite:
        raise ConfigError(
            f"{config.output} holds a run with different settings (stages, fields or batch size); "
            "use a new --output, or --overwrite to discard it"
        )
    if overwrite and state:
        _clear(out)
        out.makedirs()
    out.write_json("_state/run.json", {"fingerprint": fingerprint, "config": config.describe()})

    files = config.files
    keys = {f.index: f.key for f in files}
    segments = split_segments(config.stages)
    trained = None
    run_seconds = 0.0
    processed = 0
    resumed_rows = 0
    redo_downstream = False  # set once anything upstream changed in this run
    source = None
    for i, (apply_from, stages, global_stage) in enumerate(segments):
        final = global_stage is None
        done_dir = "_state/done" if final else f"_state/seg{i}/done"
        parts_dir = None if final else f"_state/seg{i}/parts"
        out.makedirs(done_dir, progress_dir_for(done_dir), *([parts_dir] if parts_dir else []))
        pending = [f for f in files if redo_downstream or not _finished(out, f, done_dir)]
        # An unfinished input resumes at its checkpoint (inputs read from the raw files only; a
        # segment after a global stage is redone whole); its parts from there on are redone.
        points = {} if (source is not None or redo_downstream) else {
            f.index: p for f in pending if (p := resume_point(out, f, done_dir, config.batch_size))}
        for f in pending:
            start = points[f.index]["rows"] if f.index in points else 0
            out.remove_parts_of(f.key, ("kept", "rejected", "_state/errors") if final else (parts_dir,), from_seq=start)
            _remove(out, f"{done_dir}/{f.key}.json")
            if not start:
                _remove(out, f"{progress_dir_for(done_dir)}/{f.key}.json")
        resumed_rows += sum(p["rows"] for p in points.values())
        if pending:
            _start_ray(config.ray_address, progress)
            label = "" if len(segments) == 1 else f"segment {i + 1}/{len(segments)} "
            plan_stages = stages + ([GlobalMap(global_stage)] if global_stage else [])
            if final and not points and live_training(config, pending, files):
                seconds, trained = _process_live(config, pending, out, progress, len(files) - len(pending), plan_stages,
                                                 source=source, label=label)
                run_seconds += seconds
            else:
                run_seconds += _process(config, pending, out, progress, len(files) - len(pending), plan_stages,
                                        done_dir=done_dir, parts_dir=parts_dir, source=source, label=label,
                                        resumed=points)
            redo_downstream = True
            if final:
                processed = len(pending)
        if global_stage is not None:
            state_path = f"_state/seg{i}/reduce.json"
            if redo_downstream or out.read_json(state_path) is None:
                init_ray(config.ray_address)
                start = time.monotonic()
                parts = [p for p in out.list(parts_dir) if p.endswith(".parquet")]
                documents = sum((out.read_json(f"{done_dir}/{f.key}.json") or {}).get("rows", 0) for f in files)
                rejected = run_global_reduce(global_stage, out.fs, parts, out.path(f"_state/seg{i}"), keys, documents,
                                             report=_print_line if progress else None)
                out.write_json(state_path, {"stage": global_stage.name, "rejected": rejected,
                                            "seconds": time.monotonic() - start})
                redo_downstream = True
            source = _ReadParts(config.output, parts_dir, f"_state/seg{i}/decisions", global_stage, keys)

    summary = write_summary(config, out, files, wall_seconds=time.time() - started, processed=processed,
                            resumed_rows=resumed_rows)
    summary["processing_seconds"] = run_seconds
    if trained is not None:
        summary["train"] = trained
    return summary


def live_training(config: PipelineConfig, pending: list[InputFile], files: list[InputFile]) -> bool:
    """Train on the live kept stream only when the whole final segment runs now: a resumed run's
    finished inputs are not in the stream, so it trains on kept/ after the filters instead."""
    train = config.train
    return train is not None and getattr(train, "live", False) and not train.resume and len(pending) == len(files)


def split_segments(stages: list[Stage]) -> list[tuple[GlobalStage | None, list[Stage], GlobalStage | None]]:
    """Cut the stage list at each global stage: (global stage whose decisions this segment
    applies first, its plain stages, global stage whose keys it computes last)."""
    segments, current, apply_from = [], [], None
    for stage in stages:
        if getattr(stage, "is_global", False):
            segments.append((apply_from, current, stage))
            current, apply_from = [], stage
        else:
            current.append(stage)
    segments.append((apply_from, current, None))
    return segments


def _finished(out: OutputDir, f: InputFile, done_dir: str = "_state/done") -> bool:
    manifest = out.read_json(f"{done_dir}/{f.key}.json")
    return bool(manifest) and manifest.get("path") == f.path and manifest.get("size") == f.size


def _remove(out: OutputDir, rel: str) -> None:
    try:
        out.delete(out.path(rel))
    except (FileNotFoundError, OSError):
        pass


def _clear(out: OutputDir) -> None:
    for sub in ("kept", "rejected"):
        for path in out.list(sub):
            out.delete(path)
    if out.fs.get_file_info(out.path("_state")).type == pafs.FileType.Directory:
        out.fs.delete_dir(out.path("_state"))


class FileAccount:
    """Collects the sink's stats rows and writes each input's done manifest once all its rows are in,
    and, as batches arrive, a checkpoint of each unfinished input (``progress/<key>.json``: how many
    rows from its start are written, and their account), from which a rerun resumes inside the file.
    Used by the driver's loop, or as a Ray actor the sink reports to when the driver is busy training
    on the kept stream. ``resumed``: per input index, the checkpoint this run started from."""

    def __init__(self, output: str, pending: list[InputFile], done_dir: str, already_done: int,
                 resumed: dict[int, dict] | None = None, write_progress: bool = True):
        self.output = output
        self.write_progress = write_progress  # False when the sink checkpoints in the reading task
        self.by_index = {f.index: f for f in pending}
        self.done_dir = done_dir
        self.progress_dir = progress_dir_for(done_dir)
        self.ranges: dict[int, dict[int, tuple[int, dict]]] = defaultdict(dict)  # first_seq -> (rows, account)
        self.checkpoint: dict[int, tuple[int, dict]] = {}  # rows covered from the start, their account
        self.last_seq: dict[int, int] = {}
        self.done = already_done
        self.documents = self.kept = self.unreadable = 0
        self._out = None
        for index, point in (resumed or {}).items():
            self.checkpoint[index] = (point["rows"], point["account"])

    def add(self, stats) -> None:
        if self._out is None:
            self._out = OutputDir(self.output)
        moved = set()
        for row in stats.to_pylist():
            account = json.loads(row["account"])
            index = row["file"]
            self.ranges[index][row["first_seq"]] = (row["rows"], account)
            self.documents += account["documents"] + sum(account.get("unreadable", {}).values())
            self.kept += account.get("kept", account["documents"])
            self.unreadable += sum(account.get("unreadable", {}).values())
            if row["last_seq"] >= 0:
                self.last_seq[index] = row["last_seq"]
            moved.add(index)
        for index in moved:
            covered, account = self.checkpoint.get(index, (0, None))
            ranges = self.ranges[index]
            merged = [account] if account else []
            while covered in ranges:  # the rows written contiguously from the start
                rows, part = ranges.pop(covered)
                merged.append(part)
                covered += rows
            if covered == self.checkpoint.get(index, (0, None))[0]:
                continue
            self.checkpoint[index] = (covered, merge_accounts(merged))
            f = self.by_index[index]
            if index in self.last_seq and covered == self.last_seq[index] + 1:
                _finish_file(self._out, f, [self.checkpoint.pop(index)[1]], covered, self.done_dir)
                _remove(self._out, f"{self.progress_dir}/{f.key}.json")
                self.done += 1
            elif self.write_progress:
                write_progress(self._out, self.progress_dir, f.key, f.path, f.size, covered, self.checkpoint[index][1])

    def progress(self) -> tuple[int, int, int, int]:
        return self.done, self.documents, self.kept, self.unreadable


def progress_dir_for(done_dir: str) -> str:
    return done_dir.rsplit("/", 1)[0] + "/progress"


def resume_point(out: OutputDir, f: InputFile, done_dir: str, batch_size: int) -> dict | None:
    """An unfinished input's checkpoint from an earlier run of the same config, if it is usable."""
    point = out.read_json(f"{progress_dir_for(done_dir)}/{f.key}.json")
    if not point or point.get("path") != f.path or point.get("size") != f.size:
        return None
    rows = point.get("rows", 0)
    if rows <= 0 or rows % batch_size:
        return None
    return point


def _meter(config: PipelineConfig, pending: list[InputFile], label: str) -> Progress:
    todo = {f.index for f in pending}
    return Progress(len(config.files), sum(f.size for f in config.files), label=label,
                    already_bytes=sum(f.size for f in config.files if f.index not in todo))


def _process(config: PipelineConfig, pending: list[InputFile], out: OutputDir, show: bool, already_done: int,
             stages: list[Stage], *, done_dir: str, parts_dir: str | None, source, label: str,
             resumed: dict[int, dict] | None = None) -> float:
    board = _new_board(show)
    ds = build_dataset(
        pending,
        config.input,
        stages,
        config.output,
        batch_size=config.batch_size,
        parallelism=config.parallelism,
        source=source,
        intermediate_dir=parts_dir,
        board=board,
        starts={i: p["rows"] for i, p in (resumed or {}).items()},
    )
    account = FileAccount(config.output, pending, done_dir, already_done, resumed,
                          write_progress=any(s.stateful for s in stages) or source is not None)
    meter = _meter(config, pending, label) if show else None
    start = time.monotonic()
    with _BoardWatcher(meter, board):
        for stats in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            account.add(stats)
            if meter:
                meter.update(account.done)  # the counts come from the board
    if meter:
        done, documents, kept, unreadable = account.progress()
        meter.update(done, force=True, board={**meter.board, "documents": documents, "kept": kept, "unreadable": unreadable})
        meter.close()
    _check_finished(out, pending, done_dir)
    return time.monotonic() - start


def _check_finished(out: OutputDir, pending: list[InputFile], done_dir: str) -> None:
    unfinished = [f.path for f in pending if not _finished(out, f, done_dir)]
    if unfinished:
        raise RuntimeError(f"{len(unfinished)} input(s) did not finish, e.g. {unfinished[0]}; rerun to resume")


def _process_live(config: PipelineConfig, pending: list[InputFile], out: OutputDir, show: bool, already_done: int,
                  stages: list[Stage], *, source, label: str) -> tuple[float, dict]:
    """The final segment streamed straight into ``train lm``: the sink writes kept/rejected as usual,
    reports its stats to a ``FileAccount`` actor, and passes the kept documents on to the trainer, so
    the kept text is never read back. Returns (seconds, the trainer's final eval)."""
    import threading

    import ray

    from train.lm import train_live

    keeper = ray.remote(num_cpus=0)(FileAccount).remote(config.output, pending, "_state/done", already_done)
    ds = build_dataset(pending, config.input, stages, config.output, batch_size=config.batch_size,
                       parallelism=config.parallelism, source=source, keeper=keeper)
    meter = _meter(config, pending, label + "filter -> train ") if show else None
    stop = threading.Event()

    def report():
        while not stop.wait(1.0):
            meter.update(*ray.get(keeper.progress.remote()))

    watcher = threading.Thread(target=report, daemon=True) if meter else None
    if watcher:
        watcher.start()
    start = time.monotonic()
    try:
        final = train_live(config.train, ds, raw_files=config.files, spec=config.input, run_output=config.output)
    finally:
        stop.set()
        if watcher:
            watcher.join()
    if meter:
        meter.update(*ray.get(keeper.progress.remote()), force=True)
        meter.close()
    _check_finished(out, pending, "_state/done")
    return time.monotonic() - start, final


def _finish_file(out: OutputDir, f: InputFile, accounts: list[dict], rows: int, done_dir: str) -> None:
    manifest = {"path": f.path, "size": f.size, "rows": rows, "account": merge_accounts(accounts)}
    out.write_json(f"{done_dir}/{f.key}.json", manifest)


def write_summary(config: PipelineConfig, out: OutputDir, files: list[InputFile], *, wall_seconds: float, processed: int,
                  resumed_rows: int = 0) -> dict:
    manifests = [out.read_json(f"_state/done/{f.key}.json") for f in files]
    account = merge_accounts(m["account"] for m in manifests if m)
    unreadable_total = sum(account["unreadable"].values())
    rejected_total = sum(account["rejected"].values())
    for i, (_, _, global_stage) in enumerate(split_segments(config.stages)):
        state = out.read_json(f"_state/seg{i}/reduce.json") if global_stage else None
        if state:
            account["stage_seconds"][global_stage.name] = account["stage_seconds"].get(global_stage.name, 0.0) + state["seconds"]
    summary = {
        "input_files": len(files),
        "input_files_processed_this_run": processed,
        "rows_resumed_from_checkpoints": resumed_rows,
        "input_file_bytes": sum(f.size for f in files),
        "input_documents": account["documents"] + unreadable_total,
        "kept": account["kept"],
        "rejected": dict(sorted(account["rejected"].items())),
        "rejected_total": rejected_total,
        "unreadable": dict(sorted(account["unreadable"].items())),
        "unreadable_total": unreadable_total,
        "skipped_records": dict(sorted(account["skipped"].items())),
        "repaired": dict(sorted(account["repaired"].items())),
        "bytes_in": account["bytes_in"],
        "bytes_kept": account["bytes_kept"],
        **{k: account[k] for k in ("tokens_kept", "tokens_counted") if k in account},
        "wall_seconds": round(wall_seconds, 3),
        "stages": _stage_account(config, account),
        "config": config.describe(),
    }
    _merge_errors(out, files)
    out.write_json("summary.json", summary)
    _write_report(out, summary)
    return summary


def _write_report(out: OutputDir, summary: dict) -> None:
    """The run's report (report.build: figures, samples, the five dimensions). A report that cannot
    be built never fails a finished run: the account table is written instead and one line says why."""
    try:
        from report import build

        build(out.uri)
    except Exception as exc:  # noqa: BLE001 - the account is already safe in summary.json
        print(f"crawlsift: warning: the full report could not be built ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); report.html holds the account table; "
              f"rebuild with `crawlsift report {out.uri}`", file=sys.stderr)
        out.write_bytes("report.html", render_report(summary).encode())


def _stage_account(config: PipelineConfig, account: dict) -> dict:
    remaining = account["documents"]
    stages = {}
    for stage in config.stages:
        rejected = sum(n for reason, n in account["rejected"].items() if reason.split(".", 1)[0] == stage.name)
        stages[stage.name] = {
            "documents_in": remaining,
            "rejected": rejected,
            "seconds": round(account["stage_seconds"].get(stage.name, 0.0), 4),
        }
        remaining -= rejected
    return stages


def _merge_errors(out: OutputDir, files: list[InputFile]) -> None:
    keys = {f.key for f in files}
    chunks = []
    for path in out.list("_state/errors"):
        name = path.rsplit("/", 1)[-1]
        if name.split("-", 1)[0] in keys:
            with out.fs.open_input_stream(path) as f:
                chunks.append((name, f.read()))
    order = {f.key: f.index for f in files}
    chunks.sort(key=lambda c: (order[c[0].split("-", 1)[0]], c[0]))
    out.write_bytes("errors.jsonl", b"".join(data for _, data in chunks))


def account_table(summary: dict) -> str:
    """The account as a plain-text table (what the CLI prints at the end)."""
    n = summary["input_documents"] or 1
    lines = [
        f"{'input documents':<40}{summary['input_documents']:>12,}",
        f"{'  kept':<40}{summary['kept']:>12,}{summary['kept'] / n:>9.1%}",
        f"{'  rejected':<40}{summary['rejected_total']:>12,}{summary['rejected_total'] / n:>9.1%}",
    ]
    lines += [f"{'    ' + r:<40}{c:>12,}" for r, c in sorted(summary["rejected"].items(), key=lambda x: -x[1])]
    lines.append(f"{'  unreadable':<40}{summary['unreadable_total']:>12,}{summary['unreadable_total'] / n:>9.1%}")
    lines += [f"{'    ' + r:<40}{c:>12,}" for r, c in sorted(summary["unreadable"].items(), key=lambda x: -x[1])]
    if summary["skipped_records"]:
        lines.append(f"{'not documents (skipped records)':<40}{sum(summary['skipped_records'].values()):>12,}")
        lines += [f"{'    ' + r:<40}{c:>12,}" for r, c in sorted(summary["skipped_records"].items(), key=lambda x: -x[1])]
    if summary["repaired"]:
        lines.append(f"{'repaired, kept flowing':<40}{sum(summary['repaired'].values()):>12,}")
    mb_in, mb_kept = summary["bytes_in"] / 1e6, summary["bytes_kept"] / 1e6
    lines.append(f"{'text MB in / kept':<40}{mb_in:>12,.1f}{mb_kept:>9,.1f}")
    if "tokens_kept" in summary:
        lines.append(f"{'tokens counted / kept':<40}{summary['tokens_counted']:>12,}{summary['tokens_kept']:>9,}")
    lines.append("")
    lines.append(f"{'stage':<24}{'docs in':>12}{'rejected':>12}{'seconds':>10}")
    for name, s in summary["stages"].items():
        lines.append(f"{name:<24}{s['documents_in']:>12,}{s['rejected']:>12,}{s['seconds']:>10.2f}")
    lines.append(f"wall time {summary['wall_seconds']:.1f}s")
    return "\n".join(lines)


def render_report(summary: dict) -> str:
    """A single self-contained HTML page with the account."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>"
        for section in ("rejected", "unreadable", "skipped_records", "repaired")
        for k, v in [(f"{section}: {r}", c) for r, c in summary[section].items()]
    )
    stages = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{s['documents_in']:,}</td><td>{s['rejected']:,}</td><td>{s['seconds']:.2f}</td></tr>"
        for n, s in summary["stages"].items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>crawlsift report</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 12px;text-align:left}}</style></head><body>
<h1>crawlsift run</h1>
<p>{summary['input_documents']:,} input documents: {summary['kept']:,} kept, {summary['rejected_total']:,} rejected,
{summary['unreadable_total']:,} unreadable. {summary['bytes_in'] / 1e6:,.1f} MB of text in, {summary['bytes_kept'] / 1e6:,.1f} MB kept.</p>
<h2>Why documents were removed</h2><table>{rows}</table>
<h2>Stages</h2><table><tr><th>stage</th><th>documents in</th><th>rejected</th><th>seconds</th></tr>{stages}</table>
<pre>{html.escape(json.dumps(summary['config'], indent=2))}</pre></body></html>
"""
