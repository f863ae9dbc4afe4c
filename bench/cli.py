"""The whole CLI against its stages alone, on one core: ``python -m bench cli``.

    python -m bench cli [--docs 20100] [--stages gopher_repetition,gopher_quality,c4,fineweb] [--repeat 2]

Builds a corpus of real Common Crawl / C4 documents from ../shared/data/crawl/jsonl (repeated with
new ids to ``--docs`` documents, in two gzip JSONL files), then measures in one run:

* chain only: the stages over the corpus's Arrow batches in one process pinned to one core
  (Polars and Arrow on one thread), reading not timed;
* the CLI: ``crawlsift run`` as a user runs it, pinned to the same core (``taskset``) with a local
  Ray of one CPU (``CRAWLSIFT_NUM_CPUS=1``); Ray start-up (the CLI's "Ray ready in" line) reported
  apart, and the rate both with and without it;
* the CLI with ``--stages length`` alone: what reading, Ray and writing cost.

Writes ``bench/results/cli.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import SHARED_CRAWL, in_fresh_process

QUALITY_CHAIN = ("gopher_repetition", "gopher_quality", "c4", "fineweb")
# CRAWLSIFT_BENCH_ROOT: measure another checkout's CLI (e.g. the commit before a change) with this bench.
ROOT = Path(os.environ.get("CRAWLSIFT_BENCH_ROOT") or Path(__file__).resolve().parents[1])


def build_corpus(target: Path, docs: int, files: int = 2) -> list[str]:
    """``docs`` real documents (the English JSONL of the shared crawl, repeated with new ids)."""
    import orjson

    from ingest.readers import InputSpec, read_file, resolve_inputs

    sources = [str(p) for p in sorted((SHARED_CRAWL / "jsonl").glob("*.gz")) if "dolma" in p.name or "c4" in p.name]
    rows = []
    for f in resolve_inputs(sources):
        for batch in read_file(f, InputSpec(), 10_000):
            for text, url in zip(batch.column("text").to_pylist(), batch.column("url").to_pylist()):
                if text:
                    rows.append({"text": text, "url": url})
    target.mkdir(parents=True, exist_ok=True)
    paths, per_file = [], -(-docs // files)
    for i in range(files):
        path = target / f"cc-{i}.jsonl.gz"
        with gzip.open(path, "wb", compresslevel=6) as out:
            for n in range(i * per_file, min(docs, (i + 1) * per_file)):
                row = rows[n % len(rows)]
                out.write(orjson.dumps({"id": f"d{n}", **row}) + b"\n")
        paths.append(str(path))
    return paths


def chain_only(paths: list[str], stages: list[str], repeat: int) -> dict:
    """Docs/s of the stages alone (child process, one core)."""
    from bench.harness import _read_all, best_of
    from cluster.config import build_config
    from cluster.plan import run_stage

    table = _read_all(paths)
    batches = [table.slice(i, 10_000) for i in range(0, table.num_rows, 10_000)]
    built = build_config({}, inputs=paths, output="unused", stages=stages, resolve=False).stages

    def go():
        for b in batches:
            for stage in built:
                b = run_stage(stage, b)

    go()  # warm: kernels loaded, caches filled
    seconds = best_of(repeat, go)
    return {"documents": table.num_rows, "seconds": round(seconds, 3), "docs_per_s": round(table.num_rows / seconds, 1)}


def cli_run(paths: list[str], stages: list[str], core: int) -> dict:
    out = tempfile.mkdtemp(prefix="crawlsift-bench-cli-")
    env = {**os.environ, "CRAWLSIFT_NUM_CPUS": "1", "POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = ["taskset", "-c", str(core), sys.executable, "-m", "cluster.cli", "run", "--output", out,
           "--stages", ",".join(stages), "--overwrite"]
    for p in paths:
        cmd += ["--input", p]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    ready = re.search(r"Ray ready in ([0-9.]+)s", done.stderr)
    ray_ready = float(ready.group(1)) if ready else 0.0  # a CLI that does not say: counted in the rate
    summary = json.loads((Path(out) / "summary.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    docs = summary["input_documents"]
    return {"documents": docs, "wall_s": round(wall, 2), "ray_startup_s": ray_ready,
            "docs_per_s": round(docs / wall, 1), "docs_per_s_without_ray_startup": round(docs / (wall - ray_ready), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20_100)
    parser.add_argument("--stages", default=",".join(QUALITY_CHAIN))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", default="bench/results/cli.json")
    args = parser.parse_args(argv)
    stages = args.stages.split(",")
    corpus = Path(tempfile.gettempdir()) / f"crawlsift-bench-cli-{args.docs}"
    paths = sorted(str(p) for p in corpus.glob("cc-*.jsonl.gz")) or build_corpus(corpus, args.docs)
    core = sorted(os.sched_getaffinity(0))[0]
    size = sum(os.path.getsize(p) for p in paths) / 1e6
    print(f"corpus: {args.docs:,} documents, {size:.1f} MB gzip JSONL in {corpus}; one core (#{core})", file=sys.stderr)
    chain = in_fresh_process(chain_only, paths, stages, args.repeat)
    cli = min((cli_run(paths, stages, core) for _ in range(args.repeat)), key=lambda r: r["wall_s"])
    length = min((cli_run(paths, ["length"], core) for _ in range(args.repeat)), key=lambda r: r["wall_s"])
    ratio = cli["docs_per_s_without_ray_startup"] / chain["docs_per_s"]
    result = {"corpus_documents": args.docs, "corpus_mb": round(size, 1), "stages": stages, "chain_only": chain,
              "cli": cli, "cli_length_only": length, "cli_over_chain_without_ray_startup": round(ratio, 3),
              "cli_over_chain_with_ray_startup": round(cli["docs_per_s"] / chain["docs_per_s"], 3)}
    print(f"chain only ({', '.join(stages)}): {chain['docs_per_s']:,.0f} docs/s")
    print(f"CLI: {cli['docs_per_s']:,.0f} docs/s in {cli['wall_s']:.1f}s wall; {cli['docs_per_s_without_ray_startup']:,.0f} docs/s "
          f"without Ray start-up ({cli['ray_startup_s']:.1f}s)  -> {ratio:.2f}x the chain")
    print(f"CLI --stages length: {length['docs_per_s']:,.0f} docs/s ({length['wall_s']:.1f}s wall, Ray {length['ray_startup_s']:.1f}s)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
