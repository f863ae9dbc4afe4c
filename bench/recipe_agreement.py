"""A recipe's filter chain against the datatrove filter chain it reproduces, document by document.

    python -m bench.recipe_agreement [--recipe fineweb] [--data DIR] [--examples 3]
                                     [--json bench/results/recipe_agreement.json]

The English documents of the corpus (``../shared/data/crawl`` by default: JSONL shards and WARC
files through crawlsift's readers) are those the recipe's own ``langid`` stage keeps (lid.176,
``en`` >= 0.65, as FineWeb's ``LanguageFilter``). They go through

* ours: the recipe's stages after ``langid`` up to its first global stage (for ``fineweb``:
  gopher_repetition -> gopher_quality -> c4 -> fineweb, with the recipe's parameters), on one
  Arrow batch;
* datatrove's: the same filters from ``datatrove.pipeline.filters`` in the same order, one
  ``Document`` at a time; a filter sees the text the previous one left (C4 rewrites it). For
  ``fineweb``: ``C4QualityFilter(filter_no_terminal_punct=False)``, as ``examples/fineweb.py``.

Compared per document: kept or rejected, which filter rejected, and the kept text (byte for byte).
Every disagreement is printed by class (our stage.rule | datatrove's filter.reason) with snippets.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from bench.filters import DATATROVE_CLASSES, datatrove_filter

def chain_of(recipe_name: str, settings: list[str] | None = None) -> tuple[object, list]:
    """The recipe's langid stage and the stages after it up to the first global one."""
    from cluster.config import build_config

    stages = build_config({}, inputs=["unused"], output="unused", recipe=recipe_name, settings=settings,
                          resolve=False).stages
    names = [s.name for s in stages]
    if "langid" not in names:
        raise SystemExit(f"recipe {recipe_name} has no langid stage")
    langid = stages[names.index("langid")]
    chain = []
    for stage in stages[names.index("langid") + 1:]:
        if getattr(stage, "resolves_globally", False) or stage.name not in DATATROVE_CLASSES:
            break
        chain.append(stage)
    return langid, chain


def datatrove_chain(chain: list) -> list[tuple[str, object]]:
    """Each stage's datatrove filter with the stage's parameters that datatrove also takes (the
    recipe's choices, e.g. c4's ``filter_no_terminal_punct``); crawlsift-only ones are left out."""
    from datatrove.pipeline import filters

    out = []
    for stage in chain:
        accepted = getattr(filters, DATATROVE_CLASSES[stage.name]).__init__.__code__.co_varnames
        kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in stage.params().items() if k in accepted}
        out.append((stage.name, datatrove_filter(stage.name, **kwargs)))
    return out


def run_datatrove(filters: list[tuple[str, object]], texts: list[str], ids: list[str]):
    """Per document: (None, final text) when every filter keeps it, else ("stage.reason", None)."""
    from datatrove.data import Document

    for _, f in filters:  # load spaCy's tokenizer before the loop
        f.filter(Document(text="Warm up the word tokenizer, please. " * 30, id="warm-up"))
    out = []
    for text, doc_id in zip(texts, ids):
        doc = Document(text=text, id=doc_id)
        outcome = None
        for name, f in filters:
            result = f.filter(doc)
            keep, reason = (result if isinstance(result, tuple) else (result, None))
            if not keep:
                outcome = f"{name}.{reason or 'rejected'}"
                break
        out.append((outcome, doc.text if outcome is None else None))
    return out


def run_ours(chain: list, table):
    from cluster.plan import run_stage

    for stage in chain:
        stage.setup()
        table = run_stage(stage, table)
    return list(zip(table.column("rejected_by").to_pylist(), table.column("text").to_pylist()))


def agreement(recipe_name: str = "fineweb", data: str | None = None, settings: list[str] | None = None) -> dict:
    import pyarrow.compute as pc

    from bench.filters_agreement import load_documents
    from bench.harness import corpus_paths
    from cluster.plan import run_stage

    paths, corpus = corpus_paths(data)
    table = load_documents(paths)
    langid, chain = chain_of(recipe_name, settings)
    langid.setup()
    judged = run_stage(langid, table)
    english = table.filter(pc.is_null(judged.column("rejected_by")))
    texts, ids = english.column("text").to_pylist(), english.column("id").to_pylist()
    sources = english.column("source").to_pylist()
    theirs = run_datatrove(datatrove_chain(chain), texts, ids)
    ours = run_ours(chain, english)
    classes: dict[str, list[int]] = defaultdict(list)
    same_outcome = same_stage = same_text = kept_both = 0
    for i, ((our_reason, our_text), (their_reason, their_text)) in enumerate(zip(ours, theirs)):
        our_stage = our_reason.split(".", 1)[0] if our_reason else None
        their_stage = their_reason.split(".", 1)[0] if their_reason else None
        same_outcome += (our_reason is None) == (their_reason is None)
        same_stage += our_stage == their_stage
        if our_reason is None and their_reason is None:
            kept_both += 1
            if our_text == their_text:
                same_text += 1
            else:
                classes["kept by both, text differs"].append(i)
        elif our_stage != their_stage:
            classes[f"{our_reason} | {their_reason}"].append(i)
    n = len(ours)
    return {
        "recipe": recipe_name, "corpus": corpus, "documents": table.num_rows, "english_documents": n,
        "chain": [s.name for s in chain],
        "kept_ours": sum(r is None for r, _ in ours), "kept_datatrove": sum(r is None for r, _ in theirs),
        "keep_reject_agreement": same_outcome / n if n else 1.0,
        "same_rejecting_stage": same_stage / n if n else 1.0,
        "kept_text_identical": same_text / kept_both if kept_both else 1.0,
        "disagreements": {k: [{"id": ids[i], "source": sources[i].rsplit("/", 1)[-1], "text": texts[i][:300]} for i in rows]
                          for k, rows in sorted(classes.items(), key=lambda kv: -len(kv[1]))},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recipe_agreement", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="fineweb")
    parser.add_argument("--set", action="append", dest="settings", metavar="STAGE.PARAM=VALUE")
    parser.add_argument("--data", help="corpus folder (default: ../shared/data/crawl)")
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--json", default="bench/results/recipe_agreement.json")
    args = parser.parse_args(argv)
    result = agreement(args.recipe, args.data, args.settings)
    print(f"recipe {result['recipe']}: {' -> '.join(result['chain'])} vs datatrove, on {result['english_documents']:,} "
          f"English documents of {result['documents']:,} ({result['corpus']})")
    print(f"kept: ours {result['kept_ours']:,}, datatrove {result['kept_datatrove']:,}; keep/reject agreement "
          f"{result['keep_reject_agreement']:.2%}; same rejecting filter {result['same_rejecting_stage']:.2%}; "
          f"kept text identical {result['kept_text_identical']:.2%}")
    for key, rows in result["disagreements"].items():
        print(f"  {len(rows):4d}  {key}")
        for row in rows[:args.examples]:
            print(f"        {row['source']} {row['id']}: {' '.join(row['text'].split())[:110]}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
