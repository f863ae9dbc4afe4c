"""End-to-end deduplication at growing corpus sizes: runtime and peak RSS of every process.

    python -m bench.dedup_scale [--docs 100000 1000000] [--stages exact_dedup,minhash_dedup]
    python -m bench.dedup_scale --reduce-rows 1000000 2500000    # one reduce partition alone
                                [--params '{"minhash_dedup": {"verify_jaccard": 0.8}}']

For each size, the sample generator writes N documents (cached in $TMPDIR), then the CLI runs the
stages through a local Ray cluster in a child process. A sampler polls the RSS of that process
and all its descendants (driver, raylet, workers) every 0.2 s and reports the largest single
process (and the peak of each process name) and the largest total. Memory bounded by the batch and partition sizes shows as a
per-process peak that does not grow with N. Writes ``bench/results/dedup_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path



def sample_dir(docs: int) -> Path:
    from ingest.sample import write_sample

    path = Path(tempfile.gettempdir()) / f"crawlsift-scale-{docs}"
    if not (path / "labels.jsonl").exists():
        write_sample(path, docs=docs, seed=0, warc_fraction=0.0, shard_docs=50_000)
    return path


def _tree_rss_kb(root: int) -> list[tuple[int, str]]:
    """(RSS kB, command name) of ``root`` and all its descendants, from one ``ps`` listing."""
    listing = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,rss=,comm="], capture_output=True, text=True).stdout
    rows = []
    for line in listing.splitlines():
        fields = line.split(None, 3)
        if len(fields) == 4:
            rows.append((int(fields[0]), int(fields[1]), int(fields[2]), fields[3].strip()))
    children: dict[int, list[int]] = {}
    for pid, ppid, _, _ in rows:
        children.setdefault(ppid, []).append(pid)
    rss = {pid: (kb, name) for pid, _, kb, name in rows}
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return [rss[p] for p in tree if p in rss]


def run_measured(command: list[str]) -> dict:
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak_total = 0
    peak_by_name: dict[str, int] = {}  # largest RSS of one process, per process name (ray::<task>, raylet, ...)
    while proc.poll() is None:
        rss = _tree_rss_kb(proc.pid)
        for kb, name in rss:
            peak_by_name[name] = max(peak_by_name.get(name, 0), kb * 1024)
        peak_total = max(peak_total, sum(k for k, _ in rss) * 1024)
        time.sleep(0.2)
    peak_name, peak_one = max(peak_by_name.items(), key=lambda item: item[1], default=("", 0))
    out = proc.stdout.read()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}")
    return {"seconds": time.monotonic() - start, "peak_process_mb": peak_one / 1e6, "peak_process": peak_name,
            "peak_total_mb": peak_total / 1e6,
            "peak_by_process_mb": {k: round(v / 1e6) for k, v in sorted(peak_by_name.items(), key=lambda i: -i[1])},
            "summary": json.loads(out)}


def reduce_partition_peak(stage_name: str, rows: int) -> dict:
    """Peak RSS of one reduce ``decide`` over ``rows`` synthetic key rows shaped like the
    pipeline's (sample-style ids, 50,000 rows per input file; exact: ~10% duplicate keys; MinHash:
    14 band keys per document, ~20% of them shared), in this (fresh) process."""
    import resource

    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(0)
    position = np.arange(rows)
    ids = pa.array([f"crawl-{i // 50_000:05d}.jsonl.gz:{i % 50_000:08d}" for i in range(rows)])
    if stage_name == "exact_dedup":
        from dedup.exact import ExactDedup

        key = rng.integers(0, int(rows / 1.1), rows).astype(np.uint64)
        table = pa.table({"id": ids, "_file": pa.array(position // 50_000, pa.int32()), "_seq": position % 50_000,
                          "exact_dedup_key_hi": key * np.uint64(7919), "exact_dedup_key_lo": key,
                          "exact_dedup_priority": pa.nulls(rows, pa.float64()), "_pkey": key})
        stage = ExactDedup()
    else:
        from dedup.near import MinHashDedup

        table = pa.table({"id": ids, "_order": position // 14,
                          "_pkey": rng.integers(0, int(rows * 0.8), rows).astype(np.uint64)})
        stage = MinHashDedup()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    decided = stage.decide(table)
    return {"stage": stage_name, "rows": rows, "rows_in_mb": table.nbytes / 1e6, "output_rows": decided.num_rows,
            "rss_before_mb": before, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def print_reduce_peaks(row_counts: list[int]) -> None:
    from bench.harness import in_fresh_process

    print("| stage | key rows in the partition | rows MB | RSS before decide MB | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for stage_name in ("exact_dedup", "minhash_dedup"):
        for rows in row_counts:
            r = in_fresh_process(reduce_partition_peak, stage_name, rows, pin=False)
            print(f"| {stage_name} | {rows:,} | {r['rows_in_mb']:,.0f} | {r['rss_before_mb']:,.0f} | {r['peak_mb']:,.0f} |", flush=True)


def _next_largest(row: dict, count: int = 3) -> str:
    return ", ".join(f"{name} {mb:,}" for name, mb in list(row["peak_by_process_mb"].items())[1:count + 1])


def _stage_args(stages: str, params: dict, tmp: str) -> list[str]:
    """CLI arguments selecting ``stages``: ``--stages`` alone runs the defaults; parameters go
    through a config file (the CLI takes stage parameters only there)."""
    names = [s.strip() for s in stages.split(",") if s.strip()]
    if not params:
        return ["--stages", ",".join(names)]
    unknown = set(params) - set(names)
    if unknown:
        raise SystemExit(f"--params names stages not in --stages: {', '.join(sorted(unknown))}")
    config = Path(tmp) / "pipeline.yaml"
    config.write_text(json.dumps({"stages": [{name: params.get(name, {})} for name in names]}))  # JSON is YAML
    return ["--config", str(config)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dedup_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--stages", default="exact_dedup,minhash_dedup")
    parser.add_argument("--params", type=json.loads, default={}, metavar="JSON",
                        help="stage parameters, e.g. '{\"minhash_dedup\": {\"verify_jaccard\": 0.8}}'")
    parser.add_argument("--json", default="bench/results/dedup_scale.json")
    parser.add_argument("--reduce-rows", type=int, nargs="+",
                        help="instead: peak RSS of one reduce partition of this many key rows, each in a fresh process")
    args = parser.parse_args(argv)
    if args.reduce_rows:
        print_reduce_peaks(args.reduce_rows)
        return 0
    rows = []
    print(f"stages: {args.stages}" + (f"; params: {json.dumps(args.params)}" if args.params else ""))
    print("| documents | seconds | docs/s | rejected (by reason) | peak RSS one process MB | next largest MB | peak RSS all MB |")
    print("|---:|---:|---:|---|---:|---|---:|")
    for docs in args.docs:
        src = sample_dir(docs)
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "cluster.cli", "run", "--quiet", "--json", "--input", f"{src}/crawl-*.jsonl.gz",
                       "--output", f"{out}/run", *_stage_args(args.stages, args.params, out)]
            result = run_measured(command)
        summary = result.pop("summary")
        rejected = summary["rejected"]
        row = {"documents": summary["input_documents"], "stages": args.stages, "params": args.params, **result, "rejected": rejected,
               "stage_seconds": {k: v.get("seconds") for k, v in summary.get("stages", {}).items()}}
        rows.append(row)
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(rejected.items()))
        print(f"| {row['documents']:,} | {row['seconds']:.1f} | {row['documents'] / row['seconds']:,.0f} | "
              f"{reasons} | {row['peak_process_mb']:,.0f} ({row['peak_process']}) | {_next_largest(row)} | "
              f"{row['peak_total_mb']:,.0f} |", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
