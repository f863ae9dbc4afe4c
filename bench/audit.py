"""``python -m bench.audit``: what ``crawlsift audit`` finds, measured against planted truth on the real
TurkuNLP register data (../shared/data/multilingual/turkunlp_register, all ten languages, main
registers, hybrid rows dropped: 2,430 documents, 9 classes), and how fast it runs.

    python -m bench.audit [--sections noise,models,clean,leak,speed] [--speed-rows 10000,100000]

* noise: flip a seeded 5%, 10%, 20% of labels (each to a uniformly drawn other class); for each,
  precision and recall of ``is_label_issue`` against the flipped rows and precision at k
  (k = rows flipped) of the ``label_quality`` ranking, next to the baseline from the same
  out-of-fold probabilities (flag: predicted label != given; rank: the given label's probability);
* models: at 10%, the linear model, fastText and their mean, under each cleanlab rule and score;
* clean: a classifier (the linear model) trained on the 20%-noise pool and on its cleaned version
  (``--fix drop`` and ``relabel``), macro-F1 on the same untouched held-out 20% (true labels);
* leak: exact copies and light edits of test rows placed in train: recall of the planted pairs
  and leaks reported among the other rows;
* speed: the whole audit (``crawlsift audit`` in a fresh process: read, noise, leakage, langid,
  page, clean set) at 10k and 100k rows: rows/s and peak RSS. Rows are the real documents
  repeated, every repeat after the first with ~10% of its words dropped at random (so they are
  near, not exact, copies) and a seeded label.

Results are merged into bench/results/audit.json (one key per section).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REGISTER = ROOT.parent / "shared" / "data" / "multilingual" / "turkunlp_register"
RESULTS = ROOT / "bench" / "results" / "audit.json"
# FinCORE spells its registers out; the others use the CORE codes.
FINCORE = {"Narrative": "NA", "Info-Persuasion": "IP", "D-Informational": "IN", "Opinion": "OP", "How-to": "HI",
           "Discussion": "ID"}
SPEC = dict(label_field="label", label_pattern="[A-Z][A-Za-z-]*", multi_label="drop", label_map=FINCORE)


def register():
    from train.labeled import LabelSpec, read_labeled

    data = read_labeled([str(REGISTER / "*")], LabelSpec(**SPEC))
    texts = data.table["text"].to_pylist()
    labels = data.table["label"].to_pylist()
    classes = sorted(set(labels))
    return texts, np.array([classes.index(x) for x in labels]), classes


def flip(y: np.ndarray, share: float, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(y), int(round(share * len(y))), replace=False)
    noisy = y.copy()
    noisy[rows] = (y[rows] + rng.integers(1, k, len(rows))) % k  # a uniformly drawn other class
    truth = np.zeros(len(y), dtype=bool)
    truth[rows] = True
    return noisy, truth


def scores(truth: np.ndarray, flagged: np.ndarray, quality: np.ndarray) -> dict:
    k = int(truth.sum())
    hit = int((flagged & truth).sum())
    return {"flagged": int(flagged.sum()), "precision": round(hit / max(int(flagged.sum()), 1), 3),
            "recall": round(hit / k, 3), "precision_at_k": round(float(truth[np.argsort(quality, kind="stable")[:k]].mean()), 3)}


def baseline(y: np.ndarray, probs: np.ndarray, truth: np.ndarray) -> dict:
    return scores(truth, probs.argmax(axis=1) != y, probs[np.arange(len(y)), y])


def noise_section(texts, y, classes, shares=(0.05, 0.10, 0.20)) -> dict:
    from audit.noise import NoiseConfig, confident_learning, out_of_fold_probabilities

    c = NoiseConfig()
    out = {"rows": len(y), "classes": len(classes), "model": c.model, "rule": c.rule, "score": c.score, "folds": c.folds}
    for share in shares:
        noisy, truth = flip(y, share, len(classes), seed=int(share * 100))
        start = time.perf_counter()
        probs = out_of_fold_probabilities(texts, noisy, len(classes), c)
        r = confident_learning(noisy, probs, c)
        out[f"{share:.0%}"] = {"flipped": int(truth.sum()), "audit": scores(truth, r.is_label_issue, r.label_quality),
                               "baseline": baseline(noisy, probs, truth), "oof_accuracy_vs_true": round(float((r.suggested == y).mean()), 3),
                               "seconds": round(time.perf_counter() - start, 1)}
        print(f"noise {share:.0%}: {json.dumps(out[f'{share:.0%}'])}", flush=True)
    return out


def models_section(texts, y, classes) -> dict:
    from audit.noise import NoiseConfig, _folds, confident_learning, fasttext_oof, hashed_features, linear_oof

    noisy, truth = flip(y, 0.10, len(classes), seed=10)
    c = NoiseConfig()
    folds = _folds(noisy, c.folds, c.seed)
    probs, seconds = {}, {}
    start = time.perf_counter()
    probs["linear"] = linear_oof(hashed_features(texts, c), noisy, len(classes), c, folds)
    seconds["linear"] = time.perf_counter() - start
    start = time.perf_counter()
    probs["fasttext"] = fasttext_oof(texts, noisy, len(classes), c, folds)
    seconds["fasttext"] = time.perf_counter() - start
    probs["ensemble"] = (probs["linear"] + probs["fasttext"]) / 2
    seconds["ensemble"] = seconds["linear"] + seconds["fasttext"]
    out = {}
    for model, p in probs.items():
        row = {"seconds": round(seconds[model], 1), "oof_accuracy_vs_true": round(float((p.argmax(1) == y).mean()), 3),
               "baseline": baseline(noisy, p, truth)}
        for rule in ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given"):
            for score in ("self_confidence", "normalized_margin"):
                r = confident_learning(noisy, p, NoiseConfig(rule=rule, score=score))
                row[f"{rule}/{score}"] = scores(truth, r.is_label_issue, r.label_quality)
        out[model] = row
        print(f"model {model}: {json.dumps(row)}", flush=True)
    return out


def clean_section(texts, y, classes) -> dict:
    """Train on the 20%-noise pool vs its cleaned versions; macro-F1 on the untouched held-out 20%."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    from audit.noise import NoiseConfig, confident_learning, hashed_features, out_of_fold_probabilities

    c = NoiseConfig()
    idx = np.arange(len(y))
    pool, held = train_test_split(idx, test_size=0.2, random_state=0, stratify=y)
    noisy, truth = flip(y[pool], 0.20, len(classes), seed=20)
    pool_texts = [texts[i] for i in pool]
    r = confident_learning(noisy, out_of_fold_probabilities(pool_texts, noisy, len(classes), c), c)
    x = hashed_features(texts, c)

    def f1(rows: np.ndarray, labels: np.ndarray, weight) -> float:
        clf = SGDClassifier(loss="log_loss", alpha=c.alpha, max_iter=c.epochs, tol=None, random_state=0, class_weight=weight)
        clf.fit(x[pool[rows]], labels)
        return round(float(f1_score(y[held], clf.predict(x[held]), average="macro")), 4)

    everything = np.arange(len(pool))
    keep = ~r.is_label_issue
    relabelled = np.where(r.is_label_issue, r.suggested, noisy)
    # A stricter fix: only flagged rows whose suggested label has probability >= 0.8.
    sure = r.is_label_issue & (r.probs.max(axis=1) >= 0.8)
    out = {"pool_rows": len(pool), "held_out_rows": len(held), "flipped": int(truth.sum()),
           "dropped": int((~keep).sum()), "flips_left_after_drop": int((truth & keep).sum()),
           "wrong_labels_after_relabel": int((relabelled != y[pool]).sum()),
           "confident_fixes": int(sure.sum()), "confident_fix_precision": round(float((sure & truth).sum() / max(sure.sum(), 1)), 3)}
    for weight in (None, "balanced"):
        out[f"macro_f1_class_weight_{weight}"] = {
            "true_labels": f1(everything, y[pool], weight), "noisy_20pct": f1(everything, noisy, weight),
            "cleaned_drop": f1(everything[keep], noisy[keep], weight), "cleaned_relabel": f1(everything, relabelled, weight),
            "confident_drop": f1(everything[~sure], noisy[~sure], weight),
            "confident_relabel": f1(everything, np.where(sure, r.suggested, noisy), weight)}
    print(f"clean: {json.dumps(out)}", flush=True)
    return out


def _light_edit(text: str, rng) -> str:
    words = text.split()
    for i in rng.choice(len(words), min(3, len(words)), replace=False):
        words[i] = "edited"
    return " ".join(words)


def leak_section(texts, y, classes, planted: int = 100) -> dict:
    from audit.leakage import find_duplicates

    rng = np.random.default_rng(1)
    n = len(texts)
    splits = rng.choice(["train", "validation", "test"], n, p=[0.7, 0.15, 0.15])
    tests = np.flatnonzero((splits == "test") & (np.array([len(t.split()) for t in texts]) >= 100))
    sources = rng.choice(tests, planted, replace=False)
    copies = [texts[i] if j % 2 == 0 else _light_edit(texts[i], rng) for j, i in enumerate(sources)]
    all_texts = texts + copies
    all_splits = np.concatenate([splits, np.full(planted, "train")]).astype(object)
    labels = np.concatenate([y, y[sources]]).astype(str)
    start = time.perf_counter()
    d = find_duplicates(all_texts, all_splits, labels)
    seconds = time.perf_counter() - start
    a, b, jac = d.pairs["leak"]
    found = {(int(p), int(q)) for p, q in zip(a, b)}
    planted_pairs = {(n + j, int(i)) for j, i in enumerate(sources)}
    planted_rows = set(range(n, n + planted)) | {int(i) for i in sources}
    exact_hit = sum((n + j, int(i)) in found for j, i in enumerate(sources) if j % 2 == 0)
    edit_hit = sum((n + j, int(i)) in found for j, i in enumerate(sources) if j % 2 == 1)
    out = {"rows": len(all_texts), "planted_pairs": planted, "recall": round(len(found & planted_pairs) / planted, 3),
           "recall_exact": round(exact_hit / (planted / 2), 3), "recall_light_edit": round(edit_hit / (planted / 2), 3),
           "other_leaked_rows": int(sum(1 for i in np.flatnonzero(d.is_leak) if int(i) not in planted_rows)),
           "natural_duplicate_rows": int((d.cluster[:n] >= 0).sum()) - planted,
           "min_planted_jaccard": round(float(min(j for p, q, j in zip(a, b, jac) if (int(p), int(q)) in planted_pairs)), 3),
           "seconds": round(seconds, 2)}
    print(f"leak: {json.dumps(out)}", flush=True)
    return out


def speed_inputs(texts, classes_idx, classes, rows: int, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(rows)
    out_t, out_l, out_s = [], [], []
    base = len(texts)
    for r in range(rows):
        i = r % base
        t = texts[i]
        if r >= base:  # a near copy: ~10% of the words dropped
            w = t.split()
            t = " ".join(np.array(w, dtype=object)[rng.random(len(w)) > 0.1])
        out_t.append(t or texts[i])
        out_l.append(classes[classes_idx[i]])
        out_s.append(rng.choice(["train", "validation", "test"], p=[0.8, 0.1, 0.1]).item())
    pq.write_table(pa.table({"text": out_t, "label": out_l, "split": out_s}), path)


def speed_section(texts, y, classes, sizes) -> dict:
    out = {"note": "rows beyond the 2,430 real documents are repeats with ~10% of words dropped at random",
           "machine": f"{__import__('os').cpu_count()} CPUs, shared"}
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
            path = Path(tmp) / "in.parquet"
            speed_inputs(texts, y, classes, rows, path)
            cmd = [sys.executable, "-c", "import sys, resource; from audit.cli import main; rc = main(sys.argv[1:]); "
                   "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)",
                   "--input", str(path), "--label-field", "label", "--split-field", "split", "--output", f"{tmp}/out",
                   "--write-clean", f"{tmp}/clean"]
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                out[str(rows)] = {"error": proc.stderr[-500:]}
                continue
            rss = int(proc.stdout.split("PEAK_RSS_KB")[1].split()[0]) / 1024
            timings = json.loads((Path(tmp) / "out" / "audit.json").read_text())["timings"]
            out[str(rows)] = {"seconds": round(wall, 1), "rows_per_s": round(rows / wall, 1), "peak_rss_mb": round(rss),
                              "stages_s": timings}
            print(f"speed {rows}: {json.dumps(out[str(rows)])}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.audit")
    p.add_argument("--sections", default="noise,models,clean,leak,speed")
    p.add_argument("--speed-rows", default="10000,100000")
    args = p.parse_args(argv)
    texts, y, classes = register()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    sections = args.sections.split(",")
    for name in sections:
        if name == "noise":
            results["noise"] = noise_section(texts, y, classes)
        elif name == "models":
            results["models_at_10pct"] = models_section(texts, y, classes)
        elif name == "clean":
            results["clean"] = clean_section(texts, y, classes)
        elif name == "leak":
            results["leak"] = leak_section(texts, y, classes)
        elif name == "speed":
            # Merged per size, so 10k and 100k can be run (and rerun) apart.
            results["speed"] = {**results.get("speed", {}),
                                **speed_section(texts, y, classes, [int(s) for s in args.speed_rows.split(",")])}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {RESULTS} (this process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
