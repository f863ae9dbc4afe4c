"""The heuristic quality stages chained, side by side with datatrove's filters, same documents,
same process, one core.

    python -m bench.filters [--stages gopher_quality,gopher_repetition,c4,fineweb] [--repeat 2] [--limit N]
                            [--crawlsift-defaults]

crawlsift runs each stage over whole Arrow batches; datatrove runs its filters per document in
Python (``BaseFilter.filter(doc)``), the way its pipeline calls them. Both chains see the documents
the previous filter kept, so the work is the same: the stages run with ``spaceless_threshold:
null`` (datatrove's decisions on every document; ``--crawlsift-defaults`` keeps crawlsift's
exemption of space-less scripts, which changes what is judged). Both sides get the same treatment:
one untimed warm-up pass over all documents (compiled kernels, regexes, spaCy's tokenizer), then
``--repeat`` timed passes, the best reported. Writes ``bench/results/filters.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.harness import corpus_paths, peak_rss_mb

QUALITY_CHAIN = ("gopher_quality", "gopher_repetition", "c4", "fineweb")


# Our stage -> the datatrove filter it reproduces (datatrove.pipeline.filters).
DATATROVE_CLASSES = {
    "gopher_quality": "GopherQualityFilter",
    "gopher_repetition": "GopherRepetitionFilter",
    "c4": "C4QualityFilter",
    "fineweb": "FineWebQualityFilter",
}


def datatrove_filter(name: str, **kwargs):
    from datatrove.pipeline import filters as dt

    return getattr(dt, DATATROVE_CLASSES[name])(**kwargs)


def load_documents(paths: list[str], limit: int | None):
    """The real crawl's documents (every format the readers take), as one Arrow table."""
    import pyarrow.compute as pc

    from bench.harness import _read_all

    table = _read_all(paths)
    table = table.filter(pc.is_null(table.column("rejected_by")))
    return table.slice(0, limit) if limit else table


def run_crawlsift(table, stage_names, repeat: int, as_datatrove: bool = True) -> tuple[float, object, float]:
    """Best seconds of ``repeat`` chain runs, the last output, and the seconds of the first (warm-up) run."""
    from cluster.config import build_config
    from cluster.registry import stage_class

    settings = [f"{n}.spaceless_threshold=null" for n in stage_names
                if as_datatrove and "spaceless_threshold" in stage_class(n).parameters()]
    stages = build_config({}, inputs=["unused"], output="unused", stages=list(stage_names), settings=settings,
                          resolve=False).stages
    for stage in stages:
        stage.setup()

    def chain():
        out = table
        for stage in stages:
            out = stage(out)
        return out

    start = time.perf_counter()
    chain()  # warm-up: compiled kernels loaded (or compiled, with an empty Numba cache), regexes, thread pool
    first_call = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = chain()
        best = min(best, time.perf_counter() - start)
    return best, out, first_call


def run_datatrove(table, stage_names, repeat: int) -> tuple[float, list[bool]]:
    from datatrove.data import Document

    filters = [datatrove_filter(n) for n in stage_names]
    texts = table.column("text").to_pylist()
    ids = table.column("id").to_pylist()
    for f in filters:  # load tokenizers outside the timing
        f.filter(Document(text="Warm up the word tokenizer. " * 20, id="warm"))

    def chain():
        kept = []
        for text, doc_id in zip(texts, ids):
            doc = Document(text=text, id=doc_id)
            ok = True
            for f in filters:
                result = f.filter(doc)
                if not (result[0] if isinstance(result, tuple) else result):
                    ok = False
                    break
            kept.append(ok)
        return kept

    chain()  # the same untimed warm-up pass crawlsift gets
    best = float("inf")
    kept = None
    for _ in range(repeat):
        start = time.perf_counter()
        kept = chain()
        best = min(best, time.perf_counter() - start)
    return best, kept


def main(argv: list[str] | None = None) -> int:
    from bench.harness import pin_one_core

    pin_one_core()
    import pyarrow.compute as pc

    parser = argparse.ArgumentParser(prog="python -m bench.filters", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", default=",".join(QUALITY_CHAIN))
    parser.add_argument("--data", help="corpus folder (default: ../shared/data/crawl)")
    parser.add_argument("--repeat", type=int, default=2, help="timed passes for each side, after one warm-up pass (best is reported)")
    parser.add_argument("--crawlsift-defaults", action="store_true",
                        help="crawlsift's own defaults (space-less scripts exempt from word rules) instead of datatrove's decisions")
    parser.add_argument("--limit", type=int, help="only the first N documents")
    parser.add_argument("--json", default="bench/results/filters.json")
    args = parser.parse_args(argv)

    stage_names = [s for s in args.stages.split(",") if s]
    paths, corpus = corpus_paths(args.data)
    table = load_documents(paths, args.limit)
    documents = table.num_rows
    mb = (pc.sum(pc.binary_length(table.column("text"))).as_py() or 0) / 1e6
    print(f"corpus: {corpus}: {documents:,} documents, {mb:.1f} MB of text; stages: {', '.join(stage_names)}", file=sys.stderr)

    ours_s, out, first_call = run_crawlsift(table, stage_names, args.repeat, as_datatrove=not args.crawlsift_defaults)
    ours_kept = pc.is_null(out.column("rejected_by")).to_pylist()
    rss_after_ours = peak_rss_mb()
    theirs_s, theirs_kept = run_datatrove(table, stage_names, args.repeat)
    agreement = sum(a == b for a, b in zip(ours_kept, theirs_kept)) / max(documents, 1)

    rows = [
        ("crawlsift (whole batch: Polars + compiled kernels)", ours_s),
        ("datatrove (per document)", theirs_s),
    ]
    print(f"| chain: {' -> '.join(stage_names)} | docs/s/core | MB/s/core | seconds |")
    print("|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {documents / seconds:,.0f} | {mb / seconds:,.2f} | {seconds:.3f} |")
    speedup = theirs_s / ours_s
    tokenizer_s = None
    if {"gopher_quality", "gopher_repetition"} & set(stage_names):
        # The spaCy-equivalent word split the Gopher stages share, timed alone on the same text:
        # its share of the chain is where the remaining time goes.
        import polars as pl

        from filters.gopher import spacy_en_words

        text = pl.Series(table.column("text"))
        tokenizer_s = min(_timed(lambda: spacy_en_words(text)) for _ in range(args.repeat))
        print(f"| of which: spacy_en_words on every document, once | {documents / tokenizer_s:,.0f} | {mb / tokenizer_s:,.2f} "
              f"| {tokenizer_s:.3f} ({tokenizer_s / ours_s:.0%} of the chain) |")
    print(f"first chain call in this process (one chain run plus loading, or with an empty Numba cache compiling, the kernels): "
          f"{first_call:.1f} s")
    print(f"\nspeed-up {speedup:.1f}x per core; keep/reject agreement of the whole chain {agreement:.2%}; "
          f"peak RSS {rss_after_ours:.0f} MB after crawlsift's chain, {peak_rss_mb():.0f} MB after datatrove's")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "corpus": corpus, "documents": documents, "mb": mb, "stages": stage_names,
            "crawlsift_seconds": ours_s, "datatrove_seconds": theirs_s, "speedup": speedup,
            "crawlsift_docs_per_s": documents / ours_s, "crawlsift_mb_per_s": mb / ours_s,
            "datatrove_docs_per_s": documents / theirs_s, "datatrove_mb_per_s": mb / theirs_s,
            "repeats": args.repeat, "warm_up_passes": 1, "spaceless_threshold": None if not args.crawlsift_defaults else "crawlsift default",
            "chain_agreement": agreement, "first_call_seconds": first_call, "tokenizer_seconds": tokenizer_s, "peak_rss_mb": peak_rss_mb(),
        }, indent=2))
    return 0


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
