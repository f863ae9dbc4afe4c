"""The ``model_classifier`` stage on the offline default base (all-MiniLM-L6-v2 with a one-logit
head, FineWeb-Edu's shape): documents/s of real crawl text, CPU per core or one GPU.

    python -m bench.model_classifier [--docs 1000] [--device cpu|cuda] [--batch-size 32] [--max-length 512]

Documents: the real crawl's JSONL shards (``../shared/data/crawl/jsonl``, ~2,900 documents),
repeated in order when ``--docs`` asks for more (the GPU check uses 10,000). The head is
untrained (``train.classifier.classifier_from_encoder``); throughput does not depend on its
weights.

Rows, same documents, same process:

* stage: ``ModelClassifier.__call__`` on Arrow batches of 1,000 (cut to max_length x 16
  characters, sorted by length, tokenized and run ``--batch-size`` at a time);
* baseline: the loop of FineWeb-Edu's published annotation script shape: the tokenizer and the
  model over batches of ``--batch-size`` in input order (padding to the longest of each batch),
  same truncation, same dtype.

On CPU the process is pinned to one core and torch runs one thread: figures are per core.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import peak_rss_mb


def documents(n: int):
    import pyarrow as pa

    from bench.langid import crawl_table

    table = crawl_table(None).select(["text"])
    reps = -(-n // table.num_rows)
    return pa.concat_tables([table] * reps).slice(0, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_classifier", description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--json", default="bench/results/model_classifier.json")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        from bench.harness import pin_one_core

        pin_one_core()

    import numpy as np
    import pyarrow.compute as pc
    import torch

    from filters.model_classifier import ModelClassifier
    from ingest.schema import batch_of
    from train.classifier import classifier_from_encoder

    if args.device == "cpu":
        torch.set_num_threads(1)
    table = documents(args.docs)
    mb = pc.sum(pc.binary_length(table.column("text"))).as_py() / 1e6
    texts = table.column("text").to_pylist()
    result: dict = {"device": args.device, "documents": len(texts), "mb": round(mb, 3), "batch_size": args.batch_size,
                    "max_length": args.max_length, "python": sys.version.split()[0], "torch": torch.__version__}
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = classifier_from_encoder(Path(tmp) / "minilm-head", num_labels=1)
        stage = ModelClassifier(model_path=path, device=args.device, batch_size=args.batch_size, max_length=args.max_length)
        stage.setup()
        stage.score(texts[: args.batch_size * 2])  # warm-up: kernels, allocator
        if args.device == "cpu":
            torch.set_num_threads(1)  # setup() sets the stage's num_cpus; keep the bench per core
        start = time.perf_counter()
        scores = []
        for i in range(0, len(texts), 1000):
            out = stage(batch_of(texts[i : i + 1000]))
            scores += out.column("model_classifier_score").to_pylist()
        if args.device == "cuda":
            torch.cuda.synchronize()
        stage_s = time.perf_counter() - start
        rows = [{"tool": "crawlsift model_classifier stage (length-sorted batches)", "seconds": stage_s}]

        if not args.skip_baseline:
            rt = stage._runtime
            tok, model, device = rt["tokenizer"], rt["model"], rt["device"]
            start = time.perf_counter()
            base = []
            with torch.inference_mode():
                for i in range(0, len(texts), args.batch_size):
                    enc = tok(texts[i : i + args.batch_size], padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
                    enc = {k: v.to(device) for k, v in enc.items()}
                    base += model(**enc).logits.float()[:, 0].cpu().tolist()
            if args.device == "cuda":
                torch.cuda.synchronize()
            rows.append({"tool": "baseline: tokenizer + model, batches in input order", "seconds": time.perf_counter() - start})
            result["max_abs_score_diff_vs_baseline"] = float(np.max(np.abs(np.array(scores) - np.array(base))))
    for r in rows:
        r["docs_per_s"] = round(len(texts) / r["seconds"], 1)
        r["mb_per_s"] = round(mb / r["seconds"], 3)
        r["seconds"] = round(r["seconds"], 3)
    result["rows"] = rows
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    unit = "per core" if args.device == "cpu" else "one GPU"
    print(f"model_classifier on all-MiniLM-L6-v2 + 1-logit head, {args.device} ({unit}), {len(texts):,} real crawl documents "
          f"({mb:.1f} MB), batch {args.batch_size}, max_length {args.max_length}")
    print("| tool | docs/s | MB/s | seconds |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['tool']} | {r['docs_per_s']:,.1f} | {r['mb_per_s']:.3f} | {r['seconds']:.1f} |")
    if "max_abs_score_diff_vs_baseline" in result:
        print(f"max |score difference| stage vs baseline: {result['max_abs_score_diff_vs_baseline']:.1e}")
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
