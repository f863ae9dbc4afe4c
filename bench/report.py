"""Building the report for large runs: seconds and peak RSS at 100k and 1M documents.

The run directories are synthesized (no pipeline run at that size fits this machine's budget):
Parquet parts of 10,000 rows each (one row group, like the writer's batches), split into kept/ and
rejected/, with the real output schema (id, text, url, source, crawl_date, rejected_by, and every
metric column of the default stages: length_*, lang/lang_score, gopher_quality_*, c4_*,
fineweb_*, exact_dedup keys, minhash bands, pii_*), values drawn from plausible distributions, the
reasons of a real run, and a matching summary.json (account, stages, config). Texts are short
(~400 characters of random words) to keep the synthetic run on disk small; the report reads text
from a bounded number of row groups only, so text length changes little.

    .venv/bin/python -m bench.report [--sizes 100000,1000000] [--keep DIR]

Each build runs in a fresh process (peak RSS is that process's ru_maxrss). Writes
bench/results/report.json."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PART_ROWS = 10_000
STAGES = ["normalize", "length", "langid", "gopher_repetition", "gopher_quality", "c4", "fineweb", "exact_dedup",
          "minhash_dedup", "pii"]
# (reason, share of documents) roughly as in the real crawl run; the rest is kept.
REASONS = [("length.too_short", 0.01), ("langid.zh", 0.2), ("langid.es", 0.03), ("langid.de", 0.02), ("langid.low_score", 0.03),
           ("gopher_repetition.top_4_gram", 0.01), ("gopher_repetition.dup_5_gram", 0.01), ("gopher_repetition.dup_line_frac", 0.006),
           ("gopher_quality.alpha_words", 0.045), ("gopher_quality.too_few_words", 0.035), ("gopher_quality.stop_words", 0.002),
           ("c4.too_few_sentences", 0.036), ("c4.curly_bracket", 0.002), ("fineweb.char_dup_ratio", 0.002),
           ("exact_dedup.duplicate", 0.005), ("minhash_dedup.duplicate", 0.01)]
WORDS = np.array("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
                 "data model crawl page report filter quality language document text web site news market city school music".split())


def _config(output: str) -> dict:
    from cluster.config import build_config

    return build_config({}, inputs=["/dev/null"], output=output, stages=STAGES, resolve=False).describe()


def synthesize(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "kept").mkdir(exist_ok=True)
    (root / "rejected").mkdir(exist_ok=True)
    order = {s: i for i, s in enumerate(STAGES)}
    names = [r for r, _ in REASONS]
    p = np.array([s for _, s in REASONS] + [1 - sum(s for _, s in REASONS)])
    rejected_counts: dict[str, int] = {}
    kept_total = 0
    bytes_in = bytes_kept = 0
    written = 0
    part = 0
    while written < n:
        m = min(PART_ROWS, n - written)
        reason_idx = rng.choice(len(p), size=m, p=p)
        reason = np.array(names + [None], dtype=object)[reason_idx]
        stage_idx = np.array([order[r.split(".")[0]] if r else len(STAGES) for r in reason])
        reached = lambda s: stage_idx >= order[s]  # noqa: E731
        words = rng.lognormal(5.3, 1.1, m).astype(np.int64)
        chars = (words * rng.normal(6.0, 0.6, m)).astype(np.int64).clip(0)
        text_words = rng.integers(0, len(WORDS), (m, 60))
        texts = [" ".join(WORDS[row]) + f" {i}." for i, row in enumerate(text_words)]
        ids = [f"{part:06d}/{written + i:09d}" for i in range(m)]
        def col(values, stage, t):
            return pa.array(np.where(reached(stage), values, np.nan).tolist() if t == pa.float64() else
                            [int(v) if ok else None for v, ok in zip(values, reached(stage))], type=t)
        table = pa.table({
            "id": pa.array(ids, pa.string()),
            "text": pa.array(texts, pa.large_string()),
            "url": pa.array([f"https://site{int(d)}.example.{['com', 'org', 'net', 'de', 'cn'][int(d) % 5]}/page/{i}"
                             for i, d in enumerate(rng.zipf(1.3, m) % 50_000)], pa.string()),
            "source": pa.array([f"/data/crawl/file-{part % 40:03d}.jsonl.gz:{i}" for i in range(m)], pa.string()),
            "source_id": pa.nulls(m, pa.string()),
            "crawl_date": pa.array((np.datetime64("2019-01-01") + rng.integers(0, 6 * 365, m).astype("timedelta64[D]"))
                                   .astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "rejected_by": pa.array(list(reason), pa.string()),
            "normalize_chars_changed": pa.array(rng.poisson(0.5, m), pa.int64()),
            "length_chars": pa.array(chars, pa.int64()),
            "length_words": pa.array(words, pa.int64()),
            "lang": pa.array([("zh" if r == "langid.zh" else "es" if r == "langid.es" else "de" if r == "langid.de" else "en")
                              if s >= order["langid"] else None for r, s in zip(reason, stage_idx)], pa.string()),
            "lang_score": pa.array(np.where(reached("langid"), rng.beta(12, 1.2, m), np.nan).tolist(), pa.float32()),
            "gopher_quality_words": col(words, "gopher_quality", pa.int64()),
            "gopher_quality_word_rules": pa.array([True if ok else None for ok in reached("gopher_quality")], pa.bool_()),
            "c4_lines_removed": col(rng.poisson(4, m), "c4", pa.int64()),
            "c4_chars_removed": col(rng.poisson(150, m), "c4", pa.int64()),
            "c4_sentences": col(rng.poisson(20, m), "c4", pa.int64()),
            "fineweb_line_punct_ratio": col(rng.beta(8, 1, m), "fineweb", pa.float64()),
            "fineweb_short_line_ratio": col(rng.beta(1, 15, m), "fineweb", pa.float64()),
            "fineweb_char_dup_ratio": col(rng.exponential(0.002, m), "fineweb", pa.float64()),
            "fineweb_list_ratio": col(rng.beta(2, 80, m), "fineweb", pa.float64()),
            "exact_dedup_key_hi": pa.array(rng.integers(0, 2**63, m).astype(np.uint64), pa.uint64()),
            "exact_dedup_key_lo": pa.array(rng.integers(0, 2**63, m).astype(np.uint64), pa.uint64()),
            "exact_dedup_priority": pa.nulls(m, pa.float64()),
            "pii_emails": col(rng.poisson(0.03, m), "pii", pa.int64()),
            "pii_ips": col(rng.poisson(0.002, m), "pii", pa.int64()),
            "pii_phones": col(rng.poisson(0.05, m), "pii", pa.int64()),
        })
        dup = np.array([r in ("exact_dedup.duplicate", "minhash_dedup.duplicate") for r in reason])
        table = table.append_column("minhash_dedup_duplicate_of", pa.array(
            [f"{part:06d}/{written + int(j):09d}" if d else None for d, j in zip(dup, rng.integers(0, m, m))], pa.string()))
        kept_mask = pa.array(reason_idx == len(names))
        for group, mask in (("kept", kept_mask), ("rejected", pa.compute.invert(kept_mask))):
            t = table.filter(mask)
            if t.num_rows:
                pq.write_table(t, root / group / f"part-{part:016x}-{0:012d}.parquet", compression="zstd")
        lens = np.array([len(t) for t in texts])
        bytes_in += int(lens.sum())
        bytes_kept += int(lens[reason_idx == len(names)].sum())
        for r in reason[reason_idx < len(names)]:
            rejected_counts[r] = rejected_counts.get(r, 0) + 1
        kept_total += int((reason_idx == len(names)).sum())
        written += m
        part += 1
    remaining = n
    stages = {}
    for s in STAGES:
        rej = sum(c for r, c in rejected_counts.items() if r.split(".")[0] == s)
        stages[s] = {"documents_in": remaining, "rejected": rej, "seconds": 0.0}
        remaining -= rej
    summary = {"input_files": 40, "input_files_processed_this_run": 40, "input_file_bytes": bytes_in,
               "input_documents": n, "kept": kept_total, "rejected": dict(sorted(rejected_counts.items())),
               "rejected_total": sum(rejected_counts.values()), "unreadable": {}, "unreadable_total": 0,
               "skipped_records": {}, "repaired": {}, "bytes_in": bytes_in, "bytes_kept": bytes_kept, "wall_seconds": 0.0,
               "stages": stages, "config": _config(str(root))}
    (root / "summary.json").write_text(json.dumps(summary, indent=1))
    (root / "errors.jsonl").write_text("")
    return root


_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
import report
path = report.build(sys.argv[1])
seconds = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import os
print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(rss, 1), "page_bytes": os.path.getsize(path),
                  "data_bytes": os.path.getsize(sys.argv[1] + "/report_data.json")}))
"""


def measure(run_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(run_dir)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--keep", help="synthesize under this directory and keep it")
    ap.add_argument("--out", default="bench/results/report.json")
    a = ap.parse_args(argv)
    results = []
    base = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench-report-"))
    for n in (int(x) for x in a.sizes.split(",")):
        run = base / f"run-{n}"
        t = time.perf_counter()
        if not (run / "summary.json").exists():
            synthesize(run, n)
        synth = time.perf_counter() - t
        disk = sum(f.stat().st_size for f in run.rglob("*.parquet"))
        r = measure(run)
        r.update({"documents": n, "parts": len(list(run.rglob("*.parquet"))), "parquet_mb": round(disk / 1e6, 1),
                  "synthesize_seconds": round(synth, 1)})
        print(json.dumps(r), flush=True)
        results.append(r)
        if not a.keep:
            import shutil

            shutil.rmtree(run)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"what": "report.build on a synthesized run directory (real output schema, "
                                               "10k-row parts, ~400-char texts); fresh process per size",
                                       "machine": f"{os.cpu_count()} CPUs", "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
