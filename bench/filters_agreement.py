"""Keep/reject agreement of crawlsift's heuristic stages with datatrove's filters on the real crawl,
and each stage's throughput next to datatrove's, one stage at a time.

    python -m bench.filters_agreement [--stages gopher_quality,gopher_repetition] [--data DIR]
                                      [--limit N] [--examples 2] [--repeat 3]
                                      [--json bench/results/filters_agreement.json]

Every document of the corpus (``../shared/data/crawl``: the JSONL shards and the WARC files, read
by crawlsift's readers; unreadable and non-document records left out) goes through our stage as
one Arrow batch, and through datatrove's filter one ``Document`` at a time, the way its pipeline
calls ``filter``. Each stage is judged alone (not chained), on all documents.

Printed per stage: documents, keep/reject agreement, and among the documents both reject, how
often the reason is the same (datatrove's reason mapped to our rule name); then every class of
disagreement, as (our reason, datatrove's reason), with its count and example snippets. A stage
whose defaults deliberately differ from datatrove (``gopher_quality`` exempts scripts written
without spaces from its English word rules) is measured twice: as configured by default, and with
``as_datatrove`` overrides that turn the deliberate difference off, so that what is left is the
implementation's own disagreement.

Timing (one core: process pinned, Polars and Arrow on one thread; best of ``--repeat`` for ours,
one pass for datatrove, whose word tokenizer is loaded and warmed up first): documents/s and MB/s
of UTF-8 text.

Adding a stage: one entry in ``COMPARISONS``, e.g.
``"c4": Comparison(C4Filter, datatrove("C4QualityFilter"), {"line_too_short": "..."})``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Mapping, NamedTuple


def datatrove(class_name: str, **kwargs) -> Callable[[], object]:
    """A factory of datatrove's filter ``class_name`` (imported when called: datatrove is a bench
    dependency only)."""

    def make():
        from datatrove.pipeline import filters

        return getattr(filters, class_name)(**kwargs)

    return make


class Comparison(NamedTuple):
    ours: Callable[..., object]  # our stage class (or factory); called with the overrides
    theirs: Callable[[], object]  # factory of datatrove's filter
    # datatrove's reason -> our rule name (a reason not listed is compared as is), or a function
    reasons: Mapping[str, str] | Callable[[str], str] = {}
    # parameters that make our stage follow datatrove where its defaults deliberately do not
    as_datatrove: Mapping[str, object] = {}


def _gopher_repetition_reason(reason: str) -> str:
    if reason.startswith("duplicated_") and reason.endswith("_n_grams"):
        return f"dup_{reason.split('_')[1]}_gram"
    return reason


def _gopher_quality():
    from filters.gopher import GopherQualityFilter

    return GopherQualityFilter


def _gopher_repetition():
    from filters.gopher import GopherRepetitionFilter

    return GopherRepetitionFilter


def _lazy(load: Callable[[], type]) -> Callable[..., object]:
    return lambda **overrides: load()(**overrides)


GOPHER_QUALITY_REASONS = {
    "gopher_short_doc": "too_few_words",
    "gopher_long_doc": "too_many_words",
    "gopher_below_avg_threshold": "mean_word_length_low",
    "gopher_above_avg_threshold": "mean_word_length_high",
    "gopher_too_many_hashes": "hash_ratio",
    "gopher_too_many_ellipsis": "ellipsis_ratio",
    "gopher_too_many_bullets": "bullet_lines",
    "gopher_too_many_end_ellipsis": "ellipsis_lines",
    "gopher_below_alpha_threshold": "alpha_words",
    "gopher_enough_stop_words": "stop_words",
}

COMPARISONS: dict[str, Comparison] = {
    "gopher_quality": Comparison(
        _lazy(_gopher_quality), datatrove("GopherQualityFilter"), GOPHER_QUALITY_REASONS, {"spaceless_threshold": None}
    ),
    "gopher_repetition": Comparison(_lazy(_gopher_repetition), datatrove("GopherRepetitionFilter"), _gopher_repetition_reason),
    # c4 and fineweb use datatrove's reason names; both exempt space-less scripts from word rules.
    "c4": Comparison(_lazy(lambda: __import__("filters.c4", fromlist=["C4Filter"]).C4Filter), datatrove("C4QualityFilter"), {}, {"spaceless_threshold": None}),
    "fineweb": Comparison(_lazy(lambda: __import__("filters.fineweb", fromlist=["FineWebFilter"]).FineWebFilter), datatrove("FineWebQualityFilter"), {}, {"spaceless_threshold": None}),
}


# --- measurement ----------------------------------------------------------------------------------


def load_documents(paths: list[str], limit: int | None = None):
    """The corpus' documents as one Arrow table (unreadable and skipped records left out)."""
    import pyarrow.compute as pc

    from bench.harness import _read_all

    table = _read_all(paths)
    table = table.filter(pc.is_null(table.column("rejected_by")))
    return table.slice(0, limit) if limit else table


def run_ours(stage, table, repeat: int) -> tuple[list[str | None], float]:
    """Our reasons (rule name without the stage prefix, None = kept) and the best time."""
    stage.setup()
    out = stage(table)  # warm-up: regex compilation, Polars thread pool
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = stage(table)
        best = min(best, time.perf_counter() - start)
    reasons = [None if r is None else r.split(".", 1)[1] for r in out.column("rejected_by").to_pylist()]
    return reasons, best


def run_datatrove(make_filter, texts: list[str], ids: list[str]) -> tuple[list[str | None], float]:
    """datatrove's reasons (None = kept; "rejected" when it gives no reason) and its time."""
    from datatrove.data import Document

    filt = make_filter()
    filt.filter(Document(text="Warm up the word tokenizer, please. " * 30, id="warm-up"))
    reasons = []
    start = time.perf_counter()
    for text, doc_id in zip(texts, ids):
        result = filt.filter(Document(text=text, id=doc_id))
        if isinstance(result, tuple):
            reasons.append(None if result[0] else (result[1] or "rejected"))
        else:
            reasons.append(None if result else "rejected")
    return reasons, time.perf_counter() - start


def compare(ours: list[str | None], theirs: list[str | None], reasons) -> dict:
    mapped = [None if r is None else (reasons(r) if callable(reasons) else reasons.get(r, r)) for r in theirs]
    n = len(ours)
    keep_agree = sum((a is None) == (b is None) for a, b in zip(ours, mapped))
    both_reject = [(a, b) for a, b in zip(ours, mapped) if a is not None and b is not None]
    classes = defaultdict(list)
    for i, (a, b) in enumerate(zip(ours, mapped)):
        if a != b:
            classes[(a, b)].append(i)
    return {
        "documents": n,
        "keep_reject_agreement": keep_agree / n if n else 1.0,
        "both_reject": len(both_reject),
        "same_reason_when_both_reject": (sum(a == b for a, b in both_reject) / len(both_reject)) if both_reject else 1.0,
        "exact_agreement": sum(a == b for a, b in zip(ours, mapped)) / n if n else 1.0,
        "rejected_ours": sum(a is not None for a in ours),
        "rejected_datatrove": sum(b is not None for b in mapped),
        "disagreements": {f"{a} | {b}": rows for (a, b), rows in sorted(classes.items(), key=lambda kv: -len(kv[1]))},
        "datatrove_reasons": dict(Counter(mapped)),
    }


def snippet(text: str, width: int = 110) -> str:
    flat = " ".join(text.split())
    return flat[:width] + ("…" if len(flat) > width else "")


def report(name: str, label: str, result: dict, texts: list[str], sources: list[str], examples: int) -> None:
    print(f"\n## {name} ({label})")
    print(f"documents {result['documents']:,}; rejected: ours {result['rejected_ours']:,}, "
          f"datatrove {result['rejected_datatrove']:,}")
    print(f"keep/reject agreement {result['keep_reject_agreement']:.2%}; same reason where both reject "
          f"{result['same_reason_when_both_reject']:.2%} of {result['both_reject']:,}; "
          f"same outcome and reason {result['exact_agreement']:.2%}")
    if not result["disagreements"]:
        print("no disagreement")
        return
    print("disagreements (ours | datatrove's, mapped to our names; None = kept):")
    for key, rows in result["disagreements"].items():
        print(f"  {len(rows):5d}  {key}")
        for i in rows[:examples]:
            print(f"         {sources[i].rsplit('/', 1)[-1]}: {snippet(texts[i])}")


def main(argv: list[str] | None = None) -> int:
    from bench.harness import pin_one_core

    pin_one_core()
    import pyarrow.compute as pc

    from bench.harness import corpus_paths

    parser = argparse.ArgumentParser(prog="python -m bench.filters_agreement", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", default=",".join(COMPARISONS), help=f"comma-separated, of: {', '.join(COMPARISONS)}")
    parser.add_argument("--data", help="corpus folder (default: ../shared/data/crawl)")
    parser.add_argument("--limit", type=int, help="only the first N documents")
    parser.add_argument("--examples", type=int, default=2, help="example snippets per class of disagreement")
    parser.add_argument("--repeat", type=int, default=3, help="repeats for our stage's timing (best is reported)")
    parser.add_argument("--json", default="bench/results/filters_agreement.json")
    args = parser.parse_args(argv)

    names = [s for s in args.stages.split(",") if s]
    unknown = [s for s in names if s not in COMPARISONS]
    if unknown:
        parser.error(f"no datatrove comparison for {', '.join(unknown)} (known: {', '.join(COMPARISONS)})")
    paths, corpus = corpus_paths(args.data)
    table = load_documents(paths, args.limit)
    texts = table.column("text").to_pylist()
    ids = table.column("id").to_pylist()
    sources = table.column("source").to_pylist()
    mb = (pc.sum(pc.binary_length(table.column("text"))).as_py() or 0) / 1e6
    print(f"corpus: {corpus}: {len(texts):,} documents, {mb:.1f} MB of text ({len(paths)} files)")

    results = {"corpus": corpus, "documents": len(texts), "mb": mb, "stages": {}}
    for name in names:
        comparison = COMPARISONS[name]
        theirs, theirs_s = run_datatrove(comparison.theirs, texts, ids)
        configs = [("defaults", {})]
        if comparison.as_datatrove:
            label = "as datatrove: " + ", ".join(f"{k}={v}" for k, v in comparison.as_datatrove.items())
            configs.append((label, dict(comparison.as_datatrove)))
        stage_results = {}
        for label, overrides in configs:
            ours, ours_s = run_ours(comparison.ours(**overrides), table, args.repeat)
            result = compare(ours, theirs, comparison.reasons)
            report(name, label, result, texts, sources, args.examples)
            result["seconds"] = ours_s
            stage_results[label] = result
            if not overrides:
                print(f"throughput, one core: ours {len(texts) / ours_s:,.0f} docs/s ({mb / ours_s:.2f} MB/s, {ours_s:.2f} s); "
                      f"datatrove {len(texts) / theirs_s:,.0f} docs/s ({mb / theirs_s:.2f} MB/s, {theirs_s:.2f} s); "
                      f"{theirs_s / ours_s:.1f}x")
        results["stages"][name] = {"datatrove_seconds": theirs_s, **stage_results}
    if args.json:  # merged into what earlier runs wrote for other stages
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        earlier = json.loads(path.read_text()) if path.exists() else {}
        if earlier.get("corpus") == corpus and earlier.get("documents") == len(texts):
            results["stages"] = {**earlier.get("stages", {}), **results["stages"]}
        path.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
