"""``crawlsift report``: rebuild a run's report, or compare two runs.

    crawlsift report OUTPUT_DIR [-o FILE]
    crawlsift report --compare RUN_A RUN_B [-o FILE]

Errors are one line ``crawlsift: error: ...`` on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Usage(message)


class _Usage(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="crawlsift report", description="Build a run's data-quality report, or compare two runs.")
    p.add_argument("run", nargs="?", metavar="OUTPUT_DIR", help="a finished run's output directory")
    p.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="two runs side by side")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write the page (default: OUTPUT_DIR/report.html; "
                   "with --compare: compare.html in the current directory)")
    return p


def _fail(message: str) -> int:
    print(f"crawlsift: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except _Usage as exc:
        return _fail(str(exc))
    import report
    from report.data import NotARun

    start = time.monotonic()
    try:
        if args.compare:
            if args.run:
                return _fail("give either OUTPUT_DIR or --compare RUN_A RUN_B, not both")
            from report import compare

            run_a, run_b = args.compare
            a, b = report.collect(run_a), report.collect(run_b)
            page, data = compare.render(a, b, (run_a, run_b))
            path = args.output or "compare.html"
            with open(path, "w", encoding="utf-8") as f:
                f.write(page)
            side = os.path.splitext(path)[0] + "_data.json"
            with open(side, "w", encoding="utf-8") as f:
                json.dump(report._jsonable(data), f, indent=1, default=str)
        else:
            if not args.run:
                return _fail("give a run's OUTPUT_DIR, or --compare RUN_A RUN_B")
            path = report.build(args.run, args.output)
    except NotARun as exc:
        return _fail(str(exc))
    except (OSError, ValueError) as exc:
        return _fail(f"{type(exc).__name__}: {exc}".splitlines()[0])
    print(f"report: {path} ({time.monotonic() - start:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
