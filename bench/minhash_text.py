"""What the MinHash shingle text costs: the ``minhash_dedup`` map (shingles, signatures, band
keys) on one core over the real crawl, with words only, with character shingles for space-less
scripts (the default) and with datatrove's text normalisation (the ``fineweb`` recipe).

    python -m bench.minhash_text [--data DIR] [--repeat 5]

Printed for the whole crawl and for its English documents (those ``langid`` keeps); best of
``--repeat`` after one warm-up call.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.minhash_text", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="corpus folder (default: ../shared/data/crawl)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from bench.harness import corpus_paths, pin_one_core

    pin_one_core()
    import pyarrow.compute as pc

    from bench.filters_agreement import load_documents
    from cluster.plan import run_stage
    from dedup.near import MinHashDedup
    from filters.langid import LanguageID

    paths, corpus = corpus_paths(args.data)
    table = load_documents(paths)
    langid = LanguageID()
    langid.setup()
    english = table.filter(pc.is_null(run_stage(langid, table).column("rejected_by")))
    print(f"corpus: {corpus}")
    for name, docs in ((f"all {table.num_rows:,}", table), (f"English {english.num_rows:,}", english)):
        for label, params in (("words only", {"spaceless_chars": False}), ("+ CJK characters (default)", {}),
                              ("+ normalize_text (fineweb)", {"normalize_text": True})):
            stage = MinHashDedup(**params)
            stage.map(docs)
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                stage.map(docs)
                best = min(best, time.perf_counter() - start)
            print(f"{name:14} {label:28} {docs.num_rows / best:9,.0f} docs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
