"""Throughput harness: documents/s and MB/s per core, and peak RSS, for each piece of the pipeline.

Each measurement runs in a fresh spawned process on one core, so its peak RSS is its own and no
Ray scheduling hides in the figure; the Ray end-to-end run is measured apart, with its start-up
reported separately. MB are megabytes (1e6) of UTF-8 document text unless a row says otherwise.
Every timing is the best of ``repeat`` runs, the usual way to read through a shared, noisy machine.
"""

from __future__ import annotations

import glob
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_CRAWL = ROOT.parent / "shared" / "data" / "crawl"


@dataclass
class Result:
    name: str
    documents: int
    mbytes: float
    seconds: float
    peak_rss_mb: float
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.seconds if self.seconds else float("nan")

    @property
    def mb_per_s(self) -> float:
        return self.mbytes / self.seconds if self.seconds else float("nan")

    def row(self) -> dict:
        return {
            "name": self.name,
            "documents": self.documents,
            "mb": round(self.mbytes, 3),
            "seconds": round(self.seconds, 4),
            "docs_per_s_per_core": round(self.docs_per_s, 1),
            "mb_per_s_per_core": round(self.mb_per_s, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "note": self.note,
            **self.extra,
        }


def corpus_paths(data: str | None) -> tuple[list[str], str]:
    """The real crawl when present, else the bundled sample (generated on demand)."""
    base = Path(data) if data else SHARED_CRAWL
    if base.is_dir():
        paths = sorted(glob.glob(str(base / "jsonl" / "*")) + glob.glob(str(base / "warc" / "*")))
        if not paths:
            paths = sorted(glob.glob(str(base / "*")))
        return paths, f"real crawl: {base}"
    from ingest.sample import write_sample

    sample = Path(tempfile.gettempdir()) / "crawlsift-bench-sample"
    if not (sample / "labels.jsonl").exists():
        write_sample(sample, docs=20000, seed=0)
    return sorted(str(p) for p in sample.glob("crawl-*")), f"sample: {sample}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pin_one_core() -> None:
    """Per-core figures mean one core: pin the process and keep Polars/Arrow to one thread.
    (Must run before polars/pyarrow start their thread pools, i.e. before they are imported.)
    The core is the first one this process may use, or ``CRAWLSIFT_BENCH_CORE`` (so that two
    benchmarks run side by side do not share one core)."""
    os.environ["POLARS_MAX_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        wanted = int(os.environ.get("CRAWLSIFT_BENCH_CORE", allowed[0]))
        os.sched_setaffinity(0, {wanted if wanted in allowed else allowed[0]})
    import pyarrow

    pyarrow.set_cpu_count(1)
    pyarrow.set_io_thread_count(1)


def in_fresh_process(fn, *args, pin: bool = True) -> Result:
    initializer = pin_one_core if pin else None
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"), initializer=initializer) as pool:
        return pool.submit(fn, *args).result()


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# --- measurements (run in a child process) ------------------------------------------------------


def _read_all(paths, batch_size=10_000):
    import pyarrow as pa

    from ingest.readers import InputSpec, read_file, resolve_inputs

    files = resolve_inputs(paths)
    return pa.concat_tables([b for f in files for b in read_file(f, InputSpec(), batch_size)])


def _text_stats(table):
    import pyarrow.compute as pc

    docs = table.filter(pc.is_null(table.column("rejected_by")))
    return docs.num_rows, (pc.sum(pc.binary_length(docs.column("text"))).as_py() or 0) / 1e6


def measure_read(paths: list[str], repeat: int, label: str) -> Result:
    table = _read_all(paths)
    documents, mb = _text_stats(table)
    seconds = best_of(repeat, lambda: _read_all(paths))
    return Result(label, documents, mb, seconds, peak_rss_mb())


def measure_read_write(paths: list[str], repeat: int) -> Result:
    from ingest.readers import InputSpec, read_file, resolve_inputs
    from ingest.writer import OutputDir, write_batch

    files = resolve_inputs(paths)
    keys = {f.index: f.key for f in files}
    names = {f.index: f.path for f in files}

    def go():
        with tempfile.TemporaryDirectory() as tmp:
            out = OutputDir(tmp)
            out.makedirs()
            for f in files:
                for batch in read_file(f, InputSpec(), 10_000):
                    write_batch(batch, out, keys, names)

    documents, mb = _text_stats(_read_all(paths))
    return Result("read + write (all inputs, no stages)", documents, mb, best_of(repeat, go), peak_rss_mb())


def measure_stage(paths: list[str], repeat: int, stage_name: str) -> Result:
    from cluster.config import build_config

    table = _read_all(paths)
    (stage,) = build_config({}, inputs=paths, output="unused", stages=[stage_name], resolve=False).stages
    stage.setup()
    documents, mb = _text_stats(table)
    # A global stage's per-batch work is its key computation; its reduce is measured end to end.
    step = stage.map if getattr(stage, "is_global", False) else stage
    seconds = best_of(repeat, lambda: step(table))
    label = f"stage: {stage_name}" + (" (keys; reduce in the Ray row)" if step is not stage else "")
    return Result(label, documents, mb, seconds, peak_rss_mb())


def measure_gzip_floor(paths: list[str], repeat: int) -> Result:
    """The floor for gzip JSONL on one core: zlib decompress + orjson parse of every line, and
    Polars' read_ndjson on the decompressed bytes (no per-record work at all)."""
    import gzip

    import orjson
    import polars as pl

    gz = [p for p in paths if p.endswith((".jsonl.gz", ".json.gz"))]
    raw = [open(p, "rb").read() for p in gz]
    plain = [gzip.decompress(r) for r in raw]
    documents = sum(d.count(b"\n") for d in plain)
    mb = sum(len(d) for d in plain) / 1e6

    def parse():
        for r in raw:
            for line in gzip.decompress(r).split(b"\n"):
                if line:
                    orjson.loads(line)

    def polars_only():
        for d in plain:
            pl.read_ndjson(d)

    parse_s = best_of(repeat, parse)
    polars_s = best_of(repeat, polars_only)
    return Result(
        "floor: gzip JSONL decompress + orjson parse",
        documents,
        mb,
        parse_s,
        peak_rss_mb(),
        note="MB of decompressed JSONL",
        extra={"polars_read_ndjson_mb_per_s": round(mb / polars_s, 1), "gzip_files": len(gz)},
    )


def measure_reader_on_gzip(paths: list[str], repeat: int) -> Result:
    """crawlsift's reader on the same gzip JSONL files as the floor, in the floor's units."""
    import gzip

    gz = [p for p in paths if p.endswith((".jsonl.gz", ".json.gz"))]
    mb = sum(len(gzip.decompress(open(p, "rb").read())) for p in gz) / 1e6
    table = _read_all(gz)
    seconds = best_of(repeat, lambda: _read_all(gz))
    return Result("read: gzip JSONL only (crawlsift reader)", table.num_rows, mb, seconds, peak_rss_mb(), note="MB of decompressed JSONL")


def measure_ray_end_to_end(paths: list[str], stages: list[str]) -> Result:
    """The whole CLI path through a local Ray cluster; Ray start-up is reported apart."""
    import ray

    from cluster.config import build_config
    from cluster.run import init_ray, run_pipeline

    start = time.perf_counter()
    init_ray(None)
    startup = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as warm, tempfile.TemporaryDirectory() as tmp:
        # The first run also starts Ray's worker processes; time the second, warm one.
        start = time.perf_counter()
        run_pipeline(build_config({}, inputs=paths, output=warm, stages=stages), progress=False)
        first = time.perf_counter() - start
        config = build_config({}, inputs=paths, output=tmp, stages=stages)
        start = time.perf_counter()
        summary = run_pipeline(config, progress=False)
        seconds = time.perf_counter() - start
    cpus = int(ray.cluster_resources().get("CPU", 1))
    ray.shutdown()
    result = Result(
        f"ray end-to-end ({', '.join(stages)}), per core",
        summary["input_documents"],
        summary["bytes_in"] / 1e6,
        seconds * cpus,  # per core: wall time x cores used
        peak_rss_mb(),
        note=f"{cpus} CPUs, warm wall {seconds:.2f}s; apart: Ray start-up {startup:.1f}s, first (cold-worker) run {first:.1f}s",
        extra={"ray_startup_s": round(startup, 2), "cold_run_s": round(first, 3), "wall_s": round(seconds, 3), "cpus": cpus},
    )
    return result


def format_table(results: list[Result]) -> str:
    head = f"| {'measurement':<48} | {'docs':>7} | {'docs/s/core':>11} | {'MB/s/core':>9} | {'peak RSS MB':>11} | note"
    lines = [head, "|" + "|".join("-" * n for n in (50, 9, 13, 11, 13, 6))]
    for r in results:
        lines.append(
            f"| {r.name:<48} | {r.documents:>7,} | {r.docs_per_s:>11,.0f} | {r.mb_per_s:>9,.1f} | {r.peak_rss_mb:>11,.0f} | {r.note}"
        )
    return "\n".join(lines)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
