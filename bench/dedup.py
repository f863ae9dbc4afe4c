"""MinHash deduplication, side by side with datasketch and rensa: throughput on real crawl text,
LSH quality against true Jaccard, peak memory.

    python -m bench.dedup [--docs 20000] [--repeat 2] [--quality-docs 1500] [--json bench/results/dedup.json]

(a) Throughput, documents/s and MB/s per core from raw text to signatures (shingling included):
    crawlsift ``shingle_hashes -> minhash_signatures -> lsh_band_keys`` over Arrow batches of
    4096 documents; datasketch ``MinHash(num_perm=112)`` per document after the usual Python
    word-5-gram shingling (``text.lower().split()``), ``update_batch``; rensa ``RMinHash(112, 1)``
    per document after the same shingling, and rensa's bulk ``digest_matrix_from_token_sets``.
    All in one process pinned to one core, the tools taking turns round by round, each timed in
    CPU seconds (best of --repeat; wall seconds recorded too): a shared, busy machine slows all
    of them alike. The same on the English-like documents only; kernel-only rows (signatures
    from the same precomputed shingle hashes: NumPy vs rensa's Rust); exact-duplicate keys.
    Corpus: every document of ../shared/data/crawl/jsonl, repeated to ``--docs``. Peak RSS: one
    run of each tool in its own fresh process (and its growth once the corpus is loaded).
(b) Quality: precision and recall of duplicate pairs (pairs sharing >= 1 LSH bucket) against
    true word-5-gram Jaccard >= the S-curve threshold (1/14)^(1/8) = 0.719, for crawlsift and for
    datasketch's ``MinHashLSH(threshold, num_perm=112, params=(14, 8))`` on the same documents,
    (1) on the sample generator's labelled near/exact duplicates (JSONL part, seed 1) and
    (2) on planted edits of real crawl documents (copies with random word substitutions and
    deletions aimed at Jaccard 0.5..0.95, true Jaccard measured). The candidate rate per Jaccard
    bin is printed next to the theoretical curve 1 - (1 - s^8)^14. Then what crawlsift's clusters
    remove, candidates merged as they are (FineWeb) and with ``verify_jaccard`` = the threshold:
    removed documents, the share of them truly >= the threshold to the copy kept for them, and
    the share of planted copies removed above and below the threshold.
Writes ``bench/results/dedup.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import SHARED_CRAWL, cpu_count, in_fresh_process, peak_rss_mb

NUM_PERM, BANDS, ROWS, NGRAM = 112, 14, 8, 5


# ---------------------------------------------------------------------------------------------
# Corpus


def real_texts(limit_docs: int | None = None) -> list[str]:
    """Every non-empty document of the real crawl's JSONL folder (all formats the readers take
    there), in file order; repeated to ``limit_docs`` when given."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ingest.readers import InputSpec, read_file, resolve_inputs

    files = resolve_inputs([str(SHARED_CRAWL / "jsonl")])
    table = pa.concat_tables([b for f in files for b in read_file(f, InputSpec(), 10_000)])
    table = table.filter(pc.is_null(table.column("rejected_by")))
    texts = [t for t in table.column("text").to_pylist() if t and t.strip()]
    if limit_docs:
        texts = (texts * (limit_docs // len(texts) + 1))[:limit_docs]
    return texts


def python_shingles(text: str, n: int = NGRAM) -> list[str]:
    """The usual Python shingling peers are fed: lower-case, whitespace words, word n-grams."""
    words = text.lower().split()
    if len(words) < n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def _mb(texts: list[str]) -> float:
    return sum(len(t.encode()) for t in texts) / 1e6


# ---------------------------------------------------------------------------------------------
# (a) throughput: every tool in one process pinned to one core, in interleaved rounds


BATCH = 4096  # documents per call: the size of a Ray Data batch


def english(texts: list[str]) -> list[str]:
    """Documents whose first 500 characters are >= 95 % ASCII (the English-like part)."""
    return [t for t in texts if sum(c.isascii() for c in t[:500]) >= 0.95 * min(len(t), 500)]


def _tools(texts: list[str]) -> dict:
    """name -> (callable over the corpus, note). Each callable computes signatures (and, for
    crawlsift, LSH band keys) of every document from its raw text."""
    import pyarrow as pa
    from datasketch import MinHash
    from rensa import RMinHash

    from dedup.minhash import lsh_band_keys, minhash_signatures, shingle_hashes

    column = pa.array(texts, type=pa.large_string())
    # Numba compiles the signature kernel on first use (or loads it from its disk cache): a
    # once-per-process cost, paid here rather than inside a timed round.
    minhash_signatures(*shingle_hashes(column.slice(0, 10)), NUM_PERM)

    def crawlsift():
        for i in range(0, len(column), BATCH):
            offsets, hashes = shingle_hashes(column.slice(i, BATCH))
            lsh_band_keys(minhash_signatures(offsets, hashes, NUM_PERM), BANDS, ROWS)

    def datasketch():
        for text in texts:
            m = MinHash(num_perm=NUM_PERM)
            m.update_batch([s.encode("utf-8") for s in python_shingles(text)])

    def rensa():
        for text in texts:
            m = RMinHash(num_perm=NUM_PERM, seed=1)
            m.update(python_shingles(text))
            m.digest()

    def datasketch_xxh64():
        import xxhash

        for text in texts:
            m = MinHash(num_perm=NUM_PERM, hashfunc=xxhash.xxh64_intdigest, scheme="affine64")
            m.update_batch([s.encode("utf-8") for s in python_shingles(text)])

    def rensa_bulk():
        for i in range(0, len(texts), BATCH):
            RMinHash.digest_matrix_from_token_sets([python_shingles(t) for t in texts[i : i + BATCH]], NUM_PERM, 1)

    return {
        "crawlsift text -> signatures + band keys": (crawlsift, f"shingle_hashes + minhash_signatures (affine32) + lsh_band_keys, {BATCH}-doc batches"),
        "datasketch MinHash(112) per doc, update_batch": (datasketch, "Python shingling, default sha1 hashfunc (datasketch 2.x, affine32)"),
        "rensa RMinHash(112) per doc": (rensa, "same Python shingling"),
        "rensa digest_matrix_from_token_sets (bulk)": (rensa_bulk, f"same Python shingling, rensa's bulk API, {BATCH}-doc batches"),
        "datasketch MinHash(112, hashfunc=xxh64) per doc": (datasketch_xxh64, "datasketch's fast configuration: xxhash's xxh64 instead of sha1 (64-bit hashes need its affine64 scheme)"),
    }


def _timed_rounds(jobs: dict, repeat: int) -> dict:
    """Best CPU seconds (and the wall seconds of that run) of every job, the jobs taking turns
    round by round so that a busy machine weighs on all of them alike."""
    best = {name: (float("inf"), 0.0) for name in jobs}
    for _ in range(repeat):
        for name, fn in jobs.items():
            cpu0, wall0 = time.process_time(), time.perf_counter()
            fn()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            if cpu < best[name][0]:
                best[name] = (cpu, wall)
    return best


def throughput(docs: int, repeat: int) -> list[dict]:
    """Runs in a fresh process pinned to one core (bench.harness.pin_one_core)."""
    import numpy as np
    import pyarrow as pa
    import xxhash
    from rensa import RMinHash

    from dedup.components import exact_keys
    from dedup.minhash import minhash_signatures, shingle_hashes

    texts = real_texts(docs)
    en = english(real_texts())
    en = (en * (docs // max(len(en), 1) + 1))[: docs // 2]
    rows = []

    def add(name, corpus, cpu_wall, note="", **extra):
        cpu, wall = cpu_wall
        rows.append({"name": name, "documents": len(corpus), "mb": _mb(corpus), "seconds": cpu, "wall_seconds": wall,
                     "note": note, **extra})

    # Warm-up: Unicode tables, permutation parameters, imports.
    for fn, _ in _tools(texts[:200]).values():
        fn()
    tools = _tools(texts)
    best = _timed_rounds({name: fn for name, (fn, _) in tools.items()}, repeat)
    for name, (_, note) in tools.items():
        add(name, texts, best[name], note)

    # The same two on the English-like documents only (whitespace words are what the
    # shingling is made for; CJK text is half of the real crawl's bytes but few "words").
    en_tools = _tools(en)
    picked = {f"{name} [English-like docs]": en_tools[name][0] for name in list(en_tools)[:2]}
    best = _timed_rounds(picked, repeat)
    for name in picked:
        add(name, en, best[name], "documents >= 95 % ASCII, repeated")

    # Kernels: signatures from the same precomputed shingle hashes.
    offsets, hashes = shingle_hashes(pa.array(texts, type=pa.large_string()))
    h = np.ascontiguousarray(hashes)
    o = np.ascontiguousarray(offsets.astype(np.uint64))
    kernels = {
        "kernel: crawlsift minhash_signatures (affine32, compiled)": lambda: minhash_signatures(offsets, hashes, NUM_PERM),
        "kernel: crawlsift minhash_signatures (affine32, numpy)": lambda: minhash_signatures(offsets, hashes, NUM_PERM, kernel="numpy"),
        "kernel: crawlsift minhash_signatures (legacy)": lambda: minhash_signatures(offsets, hashes, NUM_PERM, scheme="legacy"),
        "kernel: rensa digest_matrix_from_flat_token_hashes": lambda: RMinHash.digest_matrix_from_flat_token_hashes(h, o, NUM_PERM, 1),
    }
    best = _timed_rounds(kernels, repeat)
    for name in kernels:
        add(name, texts, best[name], f"{len(hashes):,} shingle hashes given",
            ns_per_shingle_perm=round(best[name][0] / (len(hashes) * NUM_PERM) * 1e9, 3))

    # Exact-duplicate keys.
    column = pa.array(texts, type=pa.large_string())
    exact = {
        "exact_keys (normalise + xxh3_128)": lambda: [exact_keys(column.slice(i, BATCH)) for i in range(0, len(column), BATCH)],
        "python: xxh3_128(' '.join(t.split())) per doc": lambda: [xxhash.xxh3_128_intdigest(" ".join(t.split()).encode()) for t in texts],
    }
    best = _timed_rounds(exact, repeat)
    for name in exact:
        add(name, texts, best[name])
    return rows


def end_to_end(docs: int) -> dict:
    """Near-duplicate removal end to end on the same documents, one core: crawlsift's
    ``minhash_dedup`` as the ``fineweb`` recipe runs it (datatrove's text normalisation, 5-grams,
    14 x 8) -- signatures and band keys, candidate pairs, clusters -- and datatrove's FineWeb MinHash
    pipeline (``MinhashDedupSignature -> MinhashDedupBuckets -> MinhashDedupCluster ->
    MinhashDedupFilter``, ``LocalPipelineExecutor`` with one worker; the buckets step as 14 tasks, as it requires), with the documents removed by
    each and how many both remove. Runs in a fresh process pinned to one core."""
    import logging
    import tempfile

    import numpy as np
    import pyarrow as pa
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter,
                                          MinhashDedupSignature)
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.logging import logger as dt_logger

    from dedup.components import near_duplicates
    from dedup.near import MinHashDedup

    dt_logger.remove()
    logging.disable(logging.INFO)
    texts = real_texts(docs)
    table = pa.table({"text": pa.array(texts, pa.large_string()), "rejected_by": pa.nulls(len(texts), pa.string())})
    stage = MinHashDedup(normalize_text=True)
    stage.map(table.slice(0, 100))  # warm: compiled kernels, Unicode tables

    cpu0, wall0 = time.process_time(), time.perf_counter()
    keys = stage.map(table).column("minhash_dedup_bands").combine_chunks()
    valid = keys.is_valid().to_numpy(zero_copy_only=False)
    bands = np.zeros((len(texts), BANDS), dtype=np.uint64)
    bands[valid] = keys.drop_null().flatten().to_numpy().reshape(-1, BANDS)
    keep = near_duplicates(bands, valid=valid)
    ours_cpu, ours_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    ours_removed = {i for i, root in enumerate(keep) if root != i}

    documents = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    config = MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS)
    with tempfile.TemporaryDirectory(prefix="bench-dt-minhash-") as tmp:
        def run(pipeline, name, tasks=1):
            LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{tmp}/logs/{name}").run()

        kept_ids = []

        def collect(data, rank=0, world_size=1):
            for doc in data:
                kept_ids.append(doc.id)
                yield doc

        cpu0, wall0 = time.process_time(), time.perf_counter()
        run([documents, MinhashDedupSignature(output_folder=f"{tmp}/sigs", config=config)], "sigs")
        # One task per bucket, as datatrove requires (run one after another on this core).
        run([MinhashDedupBuckets(input_folder=f"{tmp}/sigs", output_folder=f"{tmp}/buckets", config=config)], "buckets", BANDS)
        run([MinhashDedupCluster(input_folder=f"{tmp}/buckets", output_folder=f"{tmp}/remove", config=config)], "cluster")
        run([documents, MinhashDedupFilter(input_folder=f"{tmp}/remove"), collect], "filter")
        theirs_cpu, theirs_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    theirs_removed = set(range(len(texts))) - {int(i) for i in kept_ids}
    return {"documents": len(texts), "mb": _mb(texts),
            "crawlsift": {"cpu_seconds": round(ours_cpu, 3), "wall_seconds": round(ours_wall, 3), "removed": len(ours_removed)},
            "datatrove": {"cpu_seconds": round(theirs_cpu, 3), "wall_seconds": round(theirs_wall, 3), "removed": len(theirs_removed)},
            "removed_by_both": len(ours_removed & theirs_removed),
            "speedup_wall": round(theirs_wall / ours_wall, 1)}


def format_end_to_end(r: dict) -> str:
    c, d = r["crawlsift"], r["datatrove"]
    return (f"\nEnd to end, {r['documents']:,} real documents ({r['mb']:.1f} MB), one core: crawlsift minhash_dedup "
            f"(fineweb recipe settings) {c['wall_seconds']:.2f} s wall, {c['removed']:,} removed; datatrove's FineWeb MinHash "
            f"stages {d['wall_seconds']:.2f} s wall, {d['removed']:,} removed ({r['speedup_wall']}x); removed by both "
            f"{r['removed_by_both']:,}")


def peak_memory(tool: str, docs: int) -> dict:
    """Peak RSS of one run of ``tool`` over the corpus in a fresh process, and its growth over
    the process's RSS once the corpus is loaded (the tool's own working memory)."""
    import resource

    texts = real_texts(docs)
    jobs = _tools(texts)
    fn = jobs[tool][0]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fn()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mb": round(after, 1), "working_mb": round(after - before, 1)}


# ---------------------------------------------------------------------------------------------
# (b) quality


def _all_bucket_pairs(band_keys, valid):
    """Every pair of documents sharing at least one bucket (not just star edges): (a, b), a < b."""
    import numpy as np

    from dedup.components import bucket_rows

    keys, docs = bucket_rows(band_keys, valid)
    idx = np.lexsort((docs, keys))
    keys, docs = keys[idx], docs[idx]
    pairs = []
    d = 1
    while d < len(keys):
        same = keys[d:] == keys[:-d]
        if not same.any():
            break
        pairs.append(np.stack([docs[:-d][same], docs[d:][same]], axis=1))
        d += 1
    if not pairs:
        return set()
    allp = np.concatenate(pairs)
    allp.sort(axis=1)
    return set(map(tuple, np.unique(allp, axis=0).tolist()))


def _crawlsift_pairs(texts):
    import pyarrow as pa

    from dedup.minhash import has_shingles, lsh_band_keys, minhash_signatures, shingle_hashes

    offsets, hashes = shingle_hashes(pa.array(texts, type=pa.large_string()))
    keys = lsh_band_keys(minhash_signatures(offsets, hashes), BANDS, ROWS)
    return _all_bucket_pairs(keys, has_shingles(offsets)), offsets, hashes


def _datasketch_pairs(texts, threshold):
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, params=(BANDS, ROWS))
    sketches = []
    for i, text in enumerate(texts):
        shingles = python_shingles(text)
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch([s.encode("utf-8") for s in shingles])
        sketches.append(m if shingles else None)
        if shingles:
            lsh.insert(i, m)
    pairs = set()
    for i, m in enumerate(sketches):
        if m is not None:
            pairs.update((min(i, j), max(i, j)) for j in lsh.query(m) if j != i)
    return pairs


def quality(texts, planted, threshold):
    """Precision/recall of candidate pairs for crawlsift and datasketch on ``texts``; ``planted``
    are the known (a, b) duplicate pairs whose candidate rate is compared with the S-curve."""
    import numpy as np

    from dedup.components import pair_jaccard
    from dedup.minhash import candidate_probability

    ours, offsets, hashes = _crawlsift_pairs(texts)
    theirs = _datasketch_pairs(texts, threshold)
    planted = {(min(a, b), max(a, b)) for a, b in planted}
    universe = sorted(ours | theirs | planted)
    ua = np.array([p[0] for p in universe], dtype=np.int64)
    ub = np.array([p[1] for p in universe], dtype=np.int64)
    jac = dict(zip(universe, pair_jaccard(offsets, hashes, ua, ub).tolist()))
    truth = {p for p in universe if jac[p] >= threshold}
    out = {"documents": len(texts), "threshold": round(threshold, 4), "true_pairs": len(truth),
           "planted_pairs": len(planted)}
    for name, found in (("crawlsift", ours), ("datasketch", theirs)):
        tp = len(found & truth)
        out[name] = {
            "candidate_pairs": len(found),
            "precision": round(tp / len(found), 4) if found else None,
            "recall": round(tp / len(truth), 4) if truth else None,
            "recall_planted_above_threshold": _ratio(found, {p for p in planted if jac[p] >= threshold}),
            "candidates_below_0.5": sum(1 for p in found if jac[p] < 0.5),
        }
    # Candidate rate of the planted pairs per Jaccard bin, next to the curve.
    pj = np.array([jac[p] for p in sorted(planted)])
    hit_ours = np.array([p in ours for p in sorted(planted)])
    hit_theirs = np.array([p in theirs for p in sorted(planted)])
    bins = []
    for lo in np.arange(0.45, 1.0001, 0.05):
        hi = lo + 0.05 if lo < 0.999 else 1.0001
        m = (pj >= lo) & (pj < hi)
        if not m.any():
            continue
        p = candidate_probability(pj[m], BANDS, ROWS)
        bins.append({"jaccard": f"{lo:.2f}-{min(hi, 1.0):.2f}", "pairs": int(m.sum()),
                     "theory": round(float(p.mean()), 3), "theory_sd": round(float(np.sqrt((p * (1 - p)).sum()) / m.sum()), 3),
                     "crawlsift": round(float(hit_ours[m].mean()), 3), "datasketch": round(float(hit_theirs[m].mean()), 3)})
    out["curve"] = bins
    p = candidate_probability(pj, BANDS, ROWS)
    sd = float(np.sqrt((p * (1 - p)).sum()))
    out["planted_hits"] = {"theory": round(float(p.sum()), 1), "sd": round(sd, 1),
                           "crawlsift": int(hit_ours.sum()), "datasketch": int(hit_theirs.sum())}
    out["removals"] = removals(offsets, hashes, planted, threshold)
    return out


def removals(offsets, hashes, planted, threshold) -> dict:
    """What crawlsift's clusters remove, without and with ``verify_jaccard=threshold``: of the
    removed documents, the share whose true Jaccard with the copy kept for them is >= the
    threshold (removal precision; a chain of edges can join less similar documents), and the
    share of planted copies at or above / below the threshold that are removed."""
    import numpy as np

    from dedup.components import near_duplicates, pair_jaccard
    from dedup.minhash import has_shingles, lsh_band_keys, minhash_signatures

    keys = lsh_band_keys(minhash_signatures(offsets, hashes), BANDS, ROWS)
    copies = np.array(sorted(max(p) for p in planted), dtype=np.int64)
    originals = np.array([min(p) for p in sorted(planted, key=max)], dtype=np.int64)
    similar = pair_jaccard(offsets, hashes, copies, originals) >= threshold
    out = {}
    for name, verify in (("candidates merged", None), (f"verify_jaccard={threshold:.3f}", threshold)):
        start = time.perf_counter()
        rep = near_duplicates(keys, valid=has_shingles(offsets), verify_jaccard=verify, shingles=(offsets, hashes))
        seconds = time.perf_counter() - start
        removed = np.flatnonzero(rep != np.arange(len(rep)))
        behind = pair_jaccard(offsets, hashes, removed, rep[removed]) >= threshold
        gone = rep[copies] != copies
        out[name] = {"removed": len(removed), "removal_precision": round(float(behind.mean()), 4) if len(removed) else None,
                     "planted_removed_at_or_above": round(float(gone[similar].mean()), 4) if similar.any() else None,
                     "planted_removed_below": round(float(gone[~similar].mean()), 4) if (~similar).any() else None,
                     "seconds": round(seconds, 2)}
    return out


def _ratio(found, wanted):
    return round(len(found & wanted) / len(wanted), 4) if wanted else None


def quality_sample(threshold: float) -> dict:
    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc

    from ingest.readers import InputSpec, read_file, resolve_inputs
    from ingest.sample import write_sample

    with tempfile.TemporaryDirectory() as tmp:
        write_sample(tmp, docs=3000, seed=1)
        labels = [orjson.loads(line) for line in (Path(tmp) / "labels.jsonl").read_bytes().splitlines()]
        files = resolve_inputs([str(Path(tmp) / "*.jsonl.gz")])
        table = pa.concat_tables([b for f in files for b in read_file(f, InputSpec(), 10_000)])
    table = table.filter(pc.is_null(table.column("rejected_by")))
    texts = table.column("text").to_pylist()
    row = {sid: i for i, sid in enumerate(table.column("source_id").to_pylist())}
    planted = [(row[x["source_id"]], row[x["dup_of"]]) for x in labels
               if x["label"] in ("near_duplicate", "exact_duplicate") and x["source_id"] in row and x["dup_of"] in row]
    out = quality(texts, planted, threshold)
    out["corpus"] = "ingest.sample write_sample(docs=3000, seed=1), JSONL documents; planted = labelled near + exact duplicates"
    return out


def planted_edits(texts: list[str], originals: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int]]]:
    """Copies of ``originals`` real documents (>= 60 words) with random word substitutions and
    deletions, the edit count aimed at a Jaccard drawn from 0.5..0.95 (each edit replaces about
    5 of the ~N shingles: k ~ N (1 - J) / (5 (1 + J))). Returns the corpus (all real documents,
    then the copies) and the (original, copy) pairs; their true Jaccard is measured later."""
    import random

    rng = random.Random(seed)
    candidates = [i for i, t in enumerate(texts) if len(t.split()) >= 60]
    rng.shuffle(candidates)
    vocabulary = sorted({w for t in texts[:500] for w in t.split() if w.isalpha()})
    corpus, pairs = list(texts), []
    for i in candidates[:originals]:
        words = texts[i].split()
        target = rng.uniform(0.5, 0.95)
        n = len(words) - NGRAM + 1
        k = max(1, round(n * (1 - target) / (NGRAM * (1 + target))))
        for pos in sorted(rng.sample(range(len(words)), min(k, len(words) // 2)), reverse=True):
            if rng.random() < 0.5:
                words[pos] = rng.choice(vocabulary)
            else:
                del words[pos]
        pairs.append((i, len(corpus)))
        corpus.append(" ".join(words))
    return corpus, pairs


def quality_real(threshold: float, originals: int) -> dict:
    texts = real_texts()
    corpus, pairs = planted_edits(texts, originals)
    out = quality(corpus, pairs, threshold)
    out["corpus"] = (f"{len(texts)} real crawl documents + {len(pairs)} edited copies "
                     "(random word substitutions/deletions aimed at Jaccard 0.5..0.95)")
    return out


def _quality_entry(threshold, originals):
    return {"sample": quality_sample(threshold), "real_planted": quality_real(threshold, originals), "peak_rss_mb": round(peak_rss_mb(), 1)}


# ---------------------------------------------------------------------------------------------


def format_table(rows: list[dict]) -> str:
    head = f"| {'measurement':<62} | {'docs':>6} | {'docs/s/core':>11} | {'MB/s/core':>9} | {'peak RSS MB':>11} | {'working MB':>10} | note"
    lines = [head, "|" + "|".join("-" * n for n in (64, 8, 13, 11, 13, 12, 6))]
    for r in rows:
        rss = f"{r['peak_rss_mb']:>11,.0f}" if r.get("peak_rss_mb") is not None else f"{'':>11}"
        work = f"{r['working_mb']:>10,.0f}" if r.get("working_mb") is not None else f"{'':>10}"
        lines.append(f"| {r['name']:<62} | {r['documents']:>6,} | {r['docs_per_s_per_core']:>11,.0f} | "
                     f"{r['mb_per_s_per_core']:>9,.2f} | {rss} | {work} | {r.get('note', '')}")
    return "\n".join(lines)


def format_quality(name: str, q: dict) -> str:
    lines = [f"\n{name}: {q['corpus']}",
             f"  {q['documents']} documents, threshold {q['threshold']}, {q['true_pairs']} pairs with Jaccard >= threshold"]
    for tool in ("crawlsift", "datasketch"):
        r = q[tool]
        lines.append(f"  {tool:<10} candidates {r['candidate_pairs']:>5}  precision {r['precision']}  recall {r['recall']}  "
                     f"(planted >= threshold: {r['recall_planted_above_threshold']}; candidates with J < 0.5: {r['candidates_below_0.5']})")
    h = q["planted_hits"]
    lines.append(f"  planted pairs in a common bucket: theory {h['theory']} +- {h['sd']}, crawlsift {h['crawlsift']}, datasketch {h['datasketch']}")
    for name, r in q.get("removals", {}).items():
        lines.append(f"  crawlsift clusters, {name}: {r['removed']} documents removed, {r['removal_precision']} of them with "
                     f"Jaccard >= threshold to the copy kept; planted copies removed: {r['planted_removed_at_or_above']} "
                     f"at/above threshold, {r['planted_removed_below']} below ({r['seconds']} s)")
    lines.append(f"  {'Jaccard':<10} {'pairs':>5} {'theory':>7} {'crawlsift':>9} {'datasketch':>10}")
    for b in q["curve"]:
        lines.append(f"  {b['jaccard']:<10} {b['pairs']:>5} {b['theory']:>7.3f} {b['crawlsift']:>9.3f} {b['datasketch']:>10.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dedup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20_000, help="documents for throughput (real crawl, repeated); default 20000")
    parser.add_argument("--repeat", type=int, default=2, help="timing rounds; the best is reported (default 2)")
    parser.add_argument("--quality-docs", type=int, default=1500, help="real documents given an edited copy (default 1500)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--end-to-end-docs", type=int, default=5000,
                        help="documents for the end-to-end comparison with datatrove's MinHash stages (default 5000)")
    parser.add_argument("--json", default="bench/results/dedup.json")
    args = parser.parse_args(argv)

    from dedup.minhash import threshold_curve

    curve = threshold_curve(BANDS, ROWS)
    threshold = curve["threshold"]
    print(f"MinHash LSH {BANDS} bands x {ROWS} rows = {NUM_PERM} permutations, word {NGRAM}-grams; "
          f"threshold (1/b)^(1/r) = {threshold:.3f}", flush=True)
    print("S-curve P(candidate | s): " + ", ".join(f"{s:.2f}:{p:.3f}" for s, p in zip(curve["jaccard"], curve["probability"]) if s >= 0.4), flush=True)

    rows = in_fresh_process(throughput, args.docs, args.repeat)
    for r in rows:
        r["docs_per_s_per_core"] = r["documents"] / r["seconds"]
        r["mb_per_s_per_core"] = r["mb"] / r["seconds"]
    tools = list(rows[i]["name"] for i in range(4))
    for r in rows[:4]:
        r.update(in_fresh_process(peak_memory, r["name"], args.docs))
    by = {r["name"]: r for r in rows}
    ours = by[tools[0]]["docs_per_s_per_core"]
    ours_en = by[tools[0] + " [English-like docs]"]["docs_per_s_per_core"]
    speedup = {
        "vs_datasketch": round(ours / by[tools[1]]["docs_per_s_per_core"], 1),
        "vs_rensa": round(ours / by[tools[2]]["docs_per_s_per_core"], 2),
        "vs_rensa_bulk": round(ours / by[tools[3]]["docs_per_s_per_core"], 2),
        "vs_datasketch_english_like": round(ours_en / by[tools[1] + " [English-like docs]"]["docs_per_s_per_core"], 1),
        "vs_datasketch_xxh64": round(ours / by[rows[4]["name"]]["docs_per_s_per_core"], 1),
    }
    print()
    print(format_table(rows))
    print(f"\ncrawlsift text -> signatures, same documents, one core each: {speedup['vs_datasketch']}x datasketch "
          f"({speedup['vs_datasketch_english_like']}x on the English-like documents), {speedup['vs_rensa']}x rensa per doc, "
          f"{speedup['vs_rensa_bulk']}x rensa bulk. Rates are per CPU-second of one pinned process (best of {args.repeat} "
          "interleaved rounds); wall seconds are in the JSON.", flush=True)

    print(f"datasketch's fast configuration (hashfunc=xxh64): crawlsift is {speedup['vs_datasketch_xxh64']}x it.", flush=True)
    peers = in_fresh_process(end_to_end, min(args.docs, args.end_to_end_docs))
    print(format_end_to_end(peers), flush=True)

    quality_out = None
    if not args.skip_quality:
        quality_out = in_fresh_process(_quality_entry, threshold, args.quality_docs)
        print(format_quality("Quality (1) sample generator", quality_out["sample"]))
        print(format_quality("Quality (2) planted edits of real crawl text", quality_out["real_planted"]))

    payload = {
        "benchmark": "dedup",
        "command": "python -m bench.dedup " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": cpu_count()},
        "config": {"num_perm": NUM_PERM, "bands": BANDS, "rows": ROWS, "ngram": NGRAM, "threshold": round(threshold, 4),
                   "docs": args.docs, "repeat": args.repeat, "batch": BATCH, "timing": "CPU seconds, best of interleaved rounds"},
        "curve": curve,
        "throughput": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        "speedup": speedup,
        "end_to_end": peers,
        "quality": quality_out,
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
