"""The fastText quality classifier: what a bootstrapped model is worth next to one trained on
curated positives, and the ``quality`` stage's throughput per core.

    python -m bench.quality [--bucket 2000000] [--json bench/results/quality.json]

1. Bootstrap (no outside data): the default recipe runs on the real crawl (``../shared/data/crawl``,
   through the CLI on local Ray); ``crawlsift quality bootstrap`` trains kept (positive) vs
   rejected (negative) with DCLM's hyperparameters; its held-out AUC is on the run's own split.
2. Curated: positives are C4 documents (the OLMo C4 sample, already cleaned) plus the main-text
   lines of the TurkuNLP English text-quality set's *train* split; negatives are that split's lines
   a person labelled as noise (navigation, widgets, cookie notes), grouped by page into documents
   of up to ten lines.
3. Both models are scored on the same human judgement they never saw: the TurkuNLP *dev + test*
   splits, main-text vs noise documents built the same way. That AUC is the comparison.
4. Throughput: the ``quality`` stage (bootstrapped model) on the crawl's documents, one core, next
   to the bare ``model.f.predict`` loop over the same preprocessed lines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CRAWL = SHARED / "crawl"
C4 = CRAWL / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz"
TURKU = SHARED / "quality" / "turkunlp_text_quality" / "en"


def turku_documents(splits: tuple[str, ...]) -> dict[str, list[str]]:
    """Main-text ("1") and noise ("0") lines of each page, in documents of <= 10 lines."""
    out = {"1": [], "0": []}
    for split in splits:
        for doc in json.loads((TURKU / f"{split}.json").read_text()):
            for label in ("1", "0"):
                lines = [t for t, lab in zip(doc["text"], doc["labels"]) if lab == label and t.strip()]
                out[label] += ["\n".join(lines[c : c + 10]) for c in range(0, len(lines), 10)]
    return out


def write_jsonl(path: Path, texts: list[str]) -> str:
    path.write_text("".join(json.dumps({"id": f"{path.stem}-{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", type=int, default=2_000_000, help="fastText hash buckets (DCLM: 2,000,000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default="bench/results/quality.json")
    args = parser.parse_args(argv)

    import numpy as np

    from train.quality import bootstrap_quality_model, roc_auc, train_quality_model

    result: dict = {"bucket": args.bucket}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = tmp / "run"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cluster.cli", "run", "--quiet", "--json", "--input", str(CRAWL / "jsonl" / "*"),
                        "--input", str(CRAWL / "warc" / "*"), "--output", str(run)], check=True, stdout=subprocess.DEVNULL)
        boot_model = str(tmp / "bootstrap.bin")
        boot = bootstrap_quality_model(str(run), boot_model, bucket=args.bucket)
        result["bootstrap"] = {"counts": boot["counts"], "held_out_auc": boot["held_out"]["roc_auc"],
                               "seconds": round(time.perf_counter() - start, 1)}

        train = turku_documents(("train",))
        curated_model = str(tmp / "curated.bin")
        curated = train_quality_model([str(C4), write_jsonl(tmp / "turku_main.jsonl", train["1"])],
                                      [write_jsonl(tmp / "turku_noise.jsonl", train["0"])], curated_model,
                                      test_fraction=0.1, bucket=args.bucket)
        result["curated"] = {"counts": curated["counts"], "held_out_auc": curated["held_out"]["roc_auc"]}

        from filters.quality import QualityClassifier

        held = turku_documents(("dev", "test"))
        texts = held["1"] + held["0"]
        truth = np.array([True] * len(held["1"]) + [False] * len(held["0"]))
        from ingest.schema import batch_of

        for name, path in (("bootstrap", boot_model), ("curated", curated_model)):
            scores = QualityClassifier(model_path=path, threshold=0.0)(batch_of(texts)).column("quality_score").to_numpy()
            result[name]["turku_dev_test_auc"] = roc_auc(scores, truth)
        result["turku_dev_test"] = {"main_text_docs": len(held["1"]), "noise_docs": len(held["0"])}

        # Throughput, one core: the stage vs the bare predict loop over its own preprocessed lines.
        import pyarrow.compute as pc

        from bench.langid import crawl_table
        from filters.quality import model_lines

        table = crawl_table(None)
        mb = pc.sum(pc.binary_length(table.column("text"))).as_py() / 1e6
        stage = QualityClassifier(model_path=boot_model, threshold=0.5)
        stage.setup()
        lines = model_lines(table.column("text"))
        predict = stage.model.f.predict
        timings = {"stage": [], "floor": []}
        for _ in range(args.repeat):
            t0 = time.process_time()
            stage(table)
            timings["stage"].append(time.process_time() - t0)
            t0 = time.process_time()
            [predict(line, 2, 0.0, "strict") for line in lines]
            timings["floor"].append(time.process_time() - t0)
        best = {k: min(v) for k, v in timings.items()}
        result["throughput"] = {
            "documents": table.num_rows, "mb": round(mb, 2),
            "stage_docs_per_s": round(table.num_rows / best["stage"]), "stage_mb_per_s": round(mb / best["stage"], 2),
            "floor_docs_per_s": round(table.num_rows / best["floor"]), "stage_overhead": round(best["stage"] / best["floor"] - 1, 3),
        }
    result["peak_rss_mb"] = round(peak_rss_mb())
    b, c, t = result["bootstrap"], result["curated"], result["throughput"]

    def sizes(counts: dict) -> str:
        return " / ".join(f"{counts[label]['train']:,}" for label in sorted(counts))
    print("| model | trained on | held-out AUC (own split) | AUC on TurkuNLP dev+test (human labels) |")
    print("|---|---|---|---|")
    print(f"| bootstrap | the crawl's kept vs rejected (train docs hq / lq: {sizes(b['counts'])}) | {b['held_out_auc']:.3f} | {b['turku_dev_test_auc']:.3f} |")
    print(f"| curated | C4 + TurkuNLP main text vs TurkuNLP noise, train split ({sizes(c['counts'])}) | {c['held_out_auc']:.3f} | {c['turku_dev_test_auc']:.3f} |")
    print(f"quality stage, one core: {t['stage_docs_per_s']:,} docs/s ({t['stage_mb_per_s']} MB/s) on {t['documents']:,} crawl "
          f"documents; bare predict loop {t['floor_docs_per_s']:,} docs/s (stage overhead {t['stage_overhead']:+.1%})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    from bench.harness import pin_one_core

    pin_one_core()
    raise SystemExit(main())
