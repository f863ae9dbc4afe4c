"""``python -m bench`` (or ``crawlsift bench``): the throughput table for reading, writing and every
registered stage, on the real crawl in ../shared/data/crawl when present, else on the sample.

    python -m bench [--data DIR] [--repeat 3] [--stages length,...] [--no-ray] [--json bench/results/bench.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from bench.harness import (
    corpus_paths,
    cpu_count,
    format_table,
    in_fresh_process,
    measure_gzip_floor,
    measure_ray_end_to_end,
    measure_read,
    measure_read_write,
    measure_reader_on_gzip,
    measure_stage,
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # python -m bench train: the trainer's benchmark
        from bench.train import main as train_main

        return train_main(argv[1:])
    if argv[:1] == ["cli"]:  # python -m bench cli: the whole CLI against its stages alone
        from bench.cli import main as cli_main

        return cli_main(argv[1:])
    from cluster.registry import STAGES

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="corpus folder (default: ../shared/data/crawl, else the sample)")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats; the best is reported")
    parser.add_argument("--stages", help="comma-separated stages (default: every registered stage)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray end-to-end row")
    parser.add_argument("--json", default="bench/results/bench.json", help="where to write the JSON results")
    args = parser.parse_args(argv)

    paths, corpus = corpus_paths(args.data)
    # Every stage that runs with its defaults (model stages need a model_path: python -m bench.langid
    # and tests/test_quality.py measure those), in the default recipe's order.
    from cluster.config import DEFAULT_STAGES

    stages = args.stages.split(",") if args.stages else [s for s in DEFAULT_STAGES if s in STAGES]
    print(f"corpus: {corpus} ({len(paths)} files); one core per measurement; best of {args.repeat}", file=sys.stderr)

    results = [
        in_fresh_process(measure_gzip_floor, paths, args.repeat),
        in_fresh_process(measure_reader_on_gzip, paths, args.repeat),
        in_fresh_process(measure_read, paths, args.repeat, "read: all inputs (JSONL, TSV, WARC, WET)"),
        in_fresh_process(measure_read_write, paths, args.repeat),
    ]
    results += [in_fresh_process(measure_stage, paths, args.repeat, name) for name in stages]
    if not args.no_ray:
        results.append(in_fresh_process(measure_ray_end_to_end, paths, stages, pin=False))

    print(format_table(results))
    floor, reader = results[0], results[1]
    ratio = floor.mb_per_s / reader.mb_per_s if reader.mb_per_s else float("nan")
    print(
        f"\ngzip JSONL: reader {reader.mb_per_s:.1f} MB/s vs floor {floor.mb_per_s:.1f} MB/s "
        f"(floor/reader = {ratio:.2f}x; Polars read_ndjson on plain bytes: {floor.extra['polars_read_ndjson_mb_per_s']} MB/s)"
    )
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "corpus": corpus,
                    "files": len(paths),
                    "cpus": cpu_count(),
                    "python": platform.python_version(),
                    "repeat": args.repeat,
                    "results": [r.row() for r in results],
                },
                indent=2,
            )
        )
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
