"""``python -m bench.audit``: what ``crawlsift audit`` finds, measured against planted truth on the real
TurkuNLP register data (../shared/data/multilingual/turkunlp_register, all ten languages, main
registers, hybrid rows dropped: 2,430 documents, 9 classes), and how fast it runs.

    python -m bench.audit [--sections noise,clean,leak,speed,crawl,finetune] [--speed-rows 10000,100000]
                          [--speed-model linear+e5]

* noise: flip a seeded 5%, 10%, 20% of labels (each to a uniformly drawn other class); for each,
  precision and recall of ``is_label_issue`` against the flipped rows and precision at k
  (k = rows flipped) of the ``label_quality`` ranking, next to the baseline from the same
  out-of-fold probabilities (flag: predicted label != given; rank: the given label's probability);
  every model (linear, fastText, their mean, the frozen MiniLM encoder, linear+encoder, the frozen
  multilingual-e5-small, linear+e5) at every rate, and
  at 10% every model under each cleanlab rule and score (``models_at_10pct``);
* finetune (not in the default sections: K fine-tunes, ~30 minutes on 2 CPU cores): ``--model
  finetune`` at 10% flips beside the linear model on the same folds;
* clean: a classifier (the linear model) trained on the 20%-noise pool and on its cleaned versions
  (each ``--fix`` / ``--fix-scope`` / ``--fix-min-prob`` rule), macro-F1 on the same untouched
  held-out 20% (true labels); the rule chosen by cross-validation inside the pool; three seeds;
* crawl: ``crawlsift run`` on four real crawl files, its kept vs rejected texts audited as labels;
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
import os
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


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


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


NOISE_MODELS = ("linear", "fasttext", "ensemble", "encoder", "linear+encoder", "e5", "linear+e5")


def model_probabilities(texts, noisy, k, c, cache: dict) -> dict:
    """{model: (out-of-fold probabilities, seconds)} for every model on the same folds. The encoder's
    embeddings see no label: computed once per text set and reused (their time is counted in each
    encoder model's seconds)."""
    from audit.noise import _folds, e5_embeddings, encoder_embeddings, encoder_oof, fasttext_oof, hashed_features, linear_oof

    folds = _folds(noisy, c.folds, c.seed)
    probs, seconds = {}, {}
    start = time.perf_counter()
    probs["linear"] = linear_oof(hashed_features(texts, c), noisy, k, c, folds)
    seconds["linear"] = time.perf_counter() - start
    start = time.perf_counter()
    probs["fasttext"] = fasttext_oof(texts, noisy, k, c, folds, threads=c.threads)
    seconds["fasttext"] = time.perf_counter() - start
    if "embeddings" not in cache:
        start = time.perf_counter()
        cache["embeddings"] = encoder_embeddings(texts, c)
        cache["embed_s"] = time.perf_counter() - start
    start = time.perf_counter()
    probs["encoder"] = encoder_oof(cache["embeddings"], noisy, k, c, folds)
    seconds["encoder"] = time.perf_counter() - start + cache["embed_s"]
    if "e5" not in cache:
        start = time.perf_counter()
        cache["e5"] = e5_embeddings(texts, c)
        cache["e5_s"] = time.perf_counter() - start
    start = time.perf_counter()
    probs["e5"] = encoder_oof(cache["e5"], noisy, k, c, folds, inverse_penalty=c.e5_c)
    seconds["e5"] = time.perf_counter() - start + cache["e5_s"]
    probs["linear+e5"] = (probs["linear"] + probs["e5"]) / 2
    seconds["linear+e5"] = seconds["linear"] + seconds["e5"]
    probs["ensemble"] = (probs["linear"] + probs["fasttext"]) / 2
    seconds["ensemble"] = seconds["linear"] + seconds["fasttext"]
    probs["linear+encoder"] = (probs["linear"] + probs["encoder"]) / 2
    seconds["linear+encoder"] = seconds["linear"] + seconds["encoder"]
    return {m: (probs[m], seconds[m]) for m in NOISE_MODELS}


def noise_section(texts, y, classes, shares=(0.05, 0.10, 0.20)) -> tuple[dict, dict]:
    """Every model at every flip rate (default rule and score), and at 10% every model under each
    cleanlab rule and ranking score. Returns (noise, models_at_10pct)."""
    from audit.noise import NoiseConfig, confident_learning

    c = NoiseConfig()
    cache: dict = {}
    out = {"rows": len(y), "classes": len(classes), "default_model": c.model, "rule": c.rule, "score": c.score,
           "folds": c.folds, "models": list(NOISE_MODELS)}
    models = {}
    for share in shares:
        noisy, truth = flip(y, share, len(classes), seed=int(share * 100))
        row = {"flipped": int(truth.sum())}
        for model, (p, seconds) in model_probabilities(texts, noisy, len(classes), c, cache).items():
            r = confident_learning(noisy, p, c)
            row[model] = {"audit": scores(truth, r.is_label_issue, r.label_quality), "baseline": baseline(noisy, p, truth),
                          "oof_accuracy_vs_true": round(float((r.suggested == y).mean()), 3), "seconds": round(seconds, 1)}
            print(f"noise {share:.0%} {model}: {json.dumps(row[model])}", flush=True)
            if share == 0.10:
                m = {"seconds": row[model]["seconds"], "oof_accuracy_vs_true": row[model]["oof_accuracy_vs_true"],
                     "baseline": row[model]["baseline"]}
                for rule in ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given"):
                    for score in ("self_confidence", "normalized_margin"):
                        rr = confident_learning(noisy, p, NoiseConfig(rule=rule, score=score))
                        m[f"{rule}/{score}"] = scores(truth, rr.is_label_issue, rr.label_quality)
                models[model] = m
        out[f"{share:.0%}"] = row
    out["embed_seconds"] = round(cache.get("embed_s", 0.0), 1)
    out["e5_embed_seconds"] = round(cache.get("e5_s", 0.0), 1)
    return out, models


def finetune_section(texts, y, classes, share: float = 0.10) -> dict:
    """``--model finetune`` (K fine-tunes of the trainer's MiniLM, the costly model) at one flip rate,
    beside the linear model and their mean on the same flips and folds as the noise section."""
    import torch

    from audit.noise import NoiseConfig, _folds, confident_learning, finetune_oof, hashed_features, linear_oof

    c = NoiseConfig(progress=True)
    noisy, truth = flip(y, share, len(classes), seed=int(share * 100))
    folds = _folds(noisy, c.folds, c.seed)
    start = time.perf_counter()
    ft = finetune_oof(texts, noisy, len(classes), c, folds)
    ft_s = time.perf_counter() - start
    lin = linear_oof(hashed_features(texts, c), noisy, len(classes), c, folds)
    out = {"flipped": int(truth.sum()), "device": "cuda" if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
           "epochs": c.finetune_epochs, "max_tokens": c.finetune_max_tokens, "finetune_seconds": round(ft_s, 1)}
    for name, p in (("finetune", ft), ("linear+finetune", (lin + ft) / 2), ("linear", lin)):
        r = confident_learning(noisy, p, c)
        out[name] = {"audit": scores(truth, r.is_label_issue, r.label_quality), "baseline": baseline(noisy, p, truth),
                     "oof_accuracy_vs_true": round(float((r.suggested == y).mean()), 3)}
        print(f"finetune {share:.0%} {name}: {json.dumps(out[name])}", flush=True)
    return out


# The cleaning rules compared: (name, --fix, --fix-scope, --fix-min-prob).
CLEAN_RULES = (("drop_all", "drop", "all", 0.0), ("relabel_all", "relabel", "all", 0.0),
               ("drop_min_prob_0.8", "drop", "all", 0.8), ("relabel_min_prob_0.8", "relabel", "all", 0.8),
               ("drop_large", "drop", "large", 0.0), ("relabel_large", "relabel", "large", 0.0))


def _cleaned(noisy_names: list, probs: np.ndarray, flags: np.ndarray, classes: list, fix: str, scope: str,
             min_prob: float):
    """The rows kept and their labels, by audit.clean.decide itself (the code ``--write-clean`` runs)."""
    import polars as pl

    from audit.clean import decide

    n = len(noisy_names)
    frame = pl.DataFrame({"id": [str(i) for i in range(n)], "label": noisy_names,
                          "suggested_label": [classes[i] for i in probs.argmax(axis=1)],
                          "suggested_label_prob": probs.max(axis=1), "is_label_issue": flags,
                          "split": pl.Series([None] * n, dtype=pl.String), "drop_leak": np.zeros(n, bool),
                          "first_in_split": np.ones(n, bool)})
    d = decide(frame, fix, min_prob, scope)
    keep = (d["action"] != "dropped").to_numpy()
    labels = np.array([classes.index(v) for v in d["new_label"].to_list()])
    return np.flatnonzero(keep), labels[keep]


def clean_section(texts, y, classes, seeds=(0, 1, 2)) -> dict:
    """Train on the 20%-noise pool vs its cleaned versions; macro-F1 on the untouched held-out 20%
    (true labels). The rule is chosen on the pool only: 5-fold cross-validation inside the pool
    (train on the cleaned rows of 4/5, macro-F1 against the pool's true labels on the other 1/5);
    the held-out split is used only to report. Repeated for three pool/held-out splits and flip
    seeds; the first is the headline."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from audit.noise import NoiseConfig, confident_learning, hashed_features, out_of_fold_probabilities

    c = NoiseConfig()
    x = hashed_features(texts, c)
    k = len(classes)
    out = {"classifier": "SGD logistic on the audit's hashed TF-IDF features", "selection": "5-fold CV inside the pool",
           "rules": {name: f"--fix {fix} --fix-scope {scope}" + (f" --fix-min-prob {p}" if p else "")
                     for name, fix, scope, p in CLEAN_RULES}}
    for seed in seeds:
        pool, held = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed, stratify=y)
        noisy, truth = flip(y[pool], 0.20, k, seed=20 + seed)
        r = confident_learning(noisy, out_of_fold_probabilities([texts[i] for i in pool], noisy, k, c), c)
        inner = list(StratifiedKFold(5, shuffle=True, random_state=seed + 1).split(pool, noisy))

        def f1(rows: np.ndarray, labels: np.ndarray, weight) -> tuple[float, float]:
            def fit(rr, ll):
                return SGDClassifier(loss="log_loss", alpha=c.alpha, max_iter=c.epochs, tol=None, random_state=0,
                                     class_weight=weight, n_jobs=c.threads).fit(x[pool[rr]], ll)
            sel = []
            for tr, te in inner:
                m = np.isin(rows, tr)
                sel.append(f1_score(y[pool[te]], fit(rows[m], labels[m]).predict(x[pool[te]]), average="macro"))
            held_f1 = f1_score(y[held], fit(rows, labels).predict(x[held]), average="macro")
            return round(float(np.mean(sel)), 4), round(float(held_f1), 4)

        everything = np.arange(len(pool))
        names = [classes[i] for i in noisy]
        versions = {"true_labels": (everything, y[pool]), "noisy_20pct": (everything, noisy)}
        counts = {}
        for name, fix, scope, p in CLEAN_RULES:
            rows, labels = _cleaned(names, r.probs, r.is_label_issue, classes, fix, scope, p)
            versions[name] = (rows, labels)
            changed = (len(pool) - len(rows)) if fix == "drop" else int((labels != noisy).sum())
            wrong_left = int((labels != y[pool][rows]).sum())
            counts[name] = {"rows_changed": changed, "wrong_labels_left": wrong_left}
        res = {"pool_rows": len(pool), "held_out_rows": len(held), "flipped": int(truth.sum()),
               "flagged": int(r.is_label_issue.sum()), "flag_precision": round(float((r.is_label_issue & truth).sum()
                                                                                    / max(r.is_label_issue.sum(), 1)), 3),
               "counts": counts}
        for weight in (None, "balanced"):
            table = {name: f1(rows, labels, weight) for name, (rows, labels) in versions.items()}
            res[f"class_weight_{weight}"] = {
                "pool_cv_macro_f1": {n: v[0] for n, v in table.items()},
                "held_out_macro_f1": {n: v[1] for n, v in table.items()},
                "chosen_on_pool": max(CLEAN_RULES, key=lambda rule: table[rule[0]][0])[0]}
        out[f"seed_{seed}"] = res
        print(f"clean seed {seed}: {json.dumps(res)}", flush=True)
    for weight in (None, "balanced"):
        key = f"class_weight_{weight}"
        held = {n: round(float(np.mean([out[f"seed_{s}"][key]["held_out_macro_f1"][n] for s in seeds])), 4)
                for n in out[f"seed_{seeds[0]}"][key]["held_out_macro_f1"]}
        out[f"mean_over_seeds_{key}"] = held
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


def speed_section(texts, y, classes, sizes, model: str = "linear") -> dict:
    """Keyed by row count (the default model) or "ROWS MODEL"."""
    out = {"note": "rows beyond the 2,430 real documents are repeats with ~10% of words dropped at random",
           "machine": f"{os.cpu_count()} CPUs, shared"}
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
            path = Path(tmp) / "in.parquet"
            speed_inputs(texts, y, classes, rows, path)
            cmd = [sys.executable, "-c", "import sys, resource; from audit.cli import main; rc = main(sys.argv[1:]); "
                   "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)",
                   "--input", str(path), "--label-field", "label", "--split-field", "split", "--output", f"{tmp}/out",
                   "--write-clean", f"{tmp}/clean", "--model", model, "--quiet"]
            key = str(rows) if model == "linear" else f"{rows} {model}"
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                out[key] = {"error": proc.stderr[-500:]}
                continue
            rss = int(proc.stdout.split("PEAK_RSS_KB")[1].split()[0]) / 1024
            timings = json.loads((Path(tmp) / "out" / "audit.json").read_text())["timings"]
            out[key] = {"seconds": round(wall, 1), "rows_per_s": round(rows / wall, 1), "peak_rss_mb": round(rss),
                        "stages_s": timings}
            print(f"speed {key}: {json.dumps(out[key])}", flush=True)
    return out


CRAWL = ROOT.parent / "shared" / "data" / "crawl" / "jsonl"
CRAWL_FILES = ("olmo_c4-sample.00000-of-00001.json.gz", "dolma_CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz",
               "hplt_sample100_CC.jsonl.zst", "chinesewebtext_2021-43_cleared1.jsonl")


def crawl_section(share: float = 0.10) -> dict:
    """Kept vs rejected of a real run: ``crawlsift run`` (default recipe) on four files of the real
    crawl (C4, Common Crawl via dolma, HPLT, ChineseWebText: ~1,900 documents), then a labeled set
    of its output (text from kept/ and rejected/, label ``kept`` / ``rejected``, the run's ids)
    audited by ``crawlsift audit``: what it flags on the run's own decisions, and, with a seeded
    ``share`` of the decisions flipped, how many of the flips it finds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = {"files": list(CRAWL_FILES)}
    with tempfile.TemporaryDirectory(prefix="bench-audit-crawl-") as tmp:
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "cluster.cli", "run", "--output", str(run), "--quiet", "--json"]
        for f in CRAWL_FILES:
            cmd += ["--input", str(CRAWL / f)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        out["run_seconds"] = round(time.perf_counter() - start, 1)
        out["run_exit_code"] = proc.returncode
        if not (run / "summary.json").exists():
            return {**out, "error": (proc.stderr or proc.stdout)[-800:]}
        if proc.returncode != 0:  # recorded: the run's output is complete (summary.json), its exit was not 0
            out["run_stderr_tail"] = proc.stderr[-300:]
        parts = {}
        for name in ("kept", "rejected"):
            t = pq.read_table(sorted((run / name).glob("*.parquet")), columns=["id", "text", "rejected_by"])
            parts[name] = t
        kept, rejected = parts["kept"], parts["rejected"]
        reasons = {}
        for r in rejected["rejected_by"].to_pylist():
            stage = r.split(".")[0]
            reasons[stage] = reasons.get(stage, 0) + 1
        out.update({"kept": kept.num_rows, "rejected": rejected.num_rows, "rejected_by_stage": reasons})
        ids = kept["id"].to_pylist() + rejected["id"].to_pylist()
        texts = kept["text"].to_pylist() + rejected["text"].to_pylist()
        given = np.array([0] * kept.num_rows + [1] * rejected.num_rows)
        stage = ["kept"] * kept.num_rows + [r.split(".")[0] for r in rejected["rejected_by"].to_pylist()]
        names = np.array(["kept", "rejected"])

        def audit(labels: np.ndarray, tag: str) -> tuple[dict, "pa.Table"]:
            path = Path(tmp) / f"{tag}.parquet"
            pq.write_table(pa.table({"id": ids, "text": texts, "label": names[labels].tolist()}), path)
            cmd = [sys.executable, "-m", "cluster.cli", "audit", "--input", str(path), "--label-field", "label", "--id-field", "id",
                   "--output", f"{tmp}/{tag}", "--quiet"]
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-800:])
            summary = json.loads((Path(tmp) / tag / "audit.json").read_text())
            return {"seconds": round(seconds, 1), "oof_accuracy": round(summary["noise"]["oof_accuracy"], 3),
                    "issues": summary["noise"]["issues"], "duplicate_rows": summary["leakage"]["duplicate_rows"],
                    "label_conflict_rows": summary["leakage"]["label_conflict_rows"],
                    "imbalance_ratio": round(summary["coverage"]["imbalance_ratio"], 2)}, \
                pq.read_table(Path(tmp) / tag / "audit.parquet")

        position = {i: n for n, i in enumerate(ids)}

        def rows_of(table) -> np.ndarray:
            # The audited rows (rows with empty text are left out at read) by their source id.
            return np.array([position[i] for i in table["source_id"].to_pylist()])

        as_run, table = audit(given, "as_run")
        flags = np.array(table["is_label_issue"].to_pylist())
        audited = rows_of(table)
        as_run["audited_rows"] = len(audited)
        by = {}
        for r_, f in zip(audited, flags):
            if f:
                by[stage[r_]] = by.get(stage[r_], 0) + 1
        as_run["issues_by_given_decision"] = by
        # The five lowest-quality rows, to say what kind of disagreement the audit finds.
        q = np.array(table["label_quality"].to_pylist())
        as_run["worst"] = [{"stage": stage[audited[i]], "label_quality": round(float(q[i]), 3),
                            "text": " ".join(texts[audited[i]][:160].split())} for i in np.argsort(q, kind="stable")[:5]]
        out["as_run"] = as_run
        print(f"crawl as run: {json.dumps({k: v for k, v in as_run.items() if k != 'worst'})}", flush=True)
        noisy, truth = flip(given, share, 2, seed=30)
        planted, table = audit(noisy, "planted")
        flags = np.array(table["is_label_issue"].to_pylist())
        q = np.array(table["label_quality"].to_pylist())
        truth = truth[rows_of(table)]
        planted.update({"flipped": int(truth.sum()), **scores(truth, flags, q)})
        out[f"planted_{share:.0%}"] = planted
        print(f"crawl planted: {json.dumps(planted)}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.audit")
    p.add_argument("--sections", default="noise,clean,leak,speed,crawl")
    p.add_argument("--speed-rows", default="10000,100000")
    p.add_argument("--speed-model", default="linear", help="the audit's --model in the speed section")
    args = p.parse_args(argv)
    texts, y, classes = register()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    sections = args.sections.split(",")
    for name in sections:
        if name == "noise":
            results["noise"], results["models_at_10pct"] = noise_section(texts, y, classes)
        elif name == "finetune":
            results["finetune_10pct"] = finetune_section(texts, y, classes)
        elif name == "clean":
            results["clean"] = clean_section(texts, y, classes)
        elif name == "leak":
            results["leak"] = leak_section(texts, y, classes)
        elif name == "crawl":
            results["crawl"] = crawl_section()
        elif name == "speed":
            # Merged per size, so 10k and 100k can be run (and rerun) apart.
            results["speed"] = {**results.get("speed", {}),
                                **speed_section(texts, y, classes, [int(s) for s in args.speed_rows.split(",")],
                                                  args.speed_model)}
        write_results(RESULTS, results)
    print(f"-> {RESULTS} (this process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
