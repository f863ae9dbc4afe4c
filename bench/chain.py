"""The four heuristic quality stages chained alone, one core, in a given order: what a change to how
they share work (the Gopher words handed on the batch) costs, without datatrove's slow side.

    python -m bench.chain [--order qrcf] [--repeat 5] [--crawlsift-defaults] [--fineweb-word-counter regex|spacy]

``--order``: q = gopher_quality, r = gopher_repetition, c = c4, f = fineweb (``rqcf`` is the
fineweb recipe's order). Stages run with ``spaceless_threshold: null`` (datatrove's decisions)
unless ``--crawlsift-defaults``; fineweb counts words with ``--fineweb-word-counter`` (the stage's
default ``regex``; the fineweb recipe's ``spacy``); best of ``--repeat`` after one warm-up run, on
the real crawl.
Measure another checkout by running this file with that checkout first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--order", default="qrcf")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", help="corpus folder (default: ../shared/data/crawl)")
    parser.add_argument("--crawlsift-defaults", action="store_true")
    parser.add_argument("--fineweb-word-counter", choices=["regex", "spacy"], default="regex")
    args = parser.parse_args(argv)

    from bench.harness import corpus_paths, pin_one_core

    pin_one_core()
    from bench.filters_agreement import load_documents
    from filters.c4 import C4Filter
    from filters.fineweb import FineWebFilter
    from filters.gopher import GopherQualityFilter, GopherRepetitionFilter

    spaceless = {} if args.crawlsift_defaults else {"spaceless_threshold": None}
    make = {"q": lambda: GopherQualityFilter(**spaceless), "r": GopherRepetitionFilter,
            "c": lambda: C4Filter(**spaceless),
            "f": lambda: FineWebFilter(**spaceless, word_counter=args.fineweb_word_counter)}
    if not args.order or set(args.order) - set(make):
        parser.error("--order: letters of q, r, c, f")
    paths, corpus = corpus_paths(args.data)
    table = load_documents(paths)
    chain = [make[k]() for k in args.order]

    def run():
        out = table
        for stage in chain:
            out = stage(out)
        return out

    run()
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    print(f"{args.order} (fineweb words: {args.fineweb_word_counter}): {table.num_rows / best:,.0f} docs/s ({best:.3f} s, best of {args.repeat}; {corpus})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
