"""Collect every number and series the report draws from a finished run directory.

What is read, and what is not:
- ``summary.json`` (the account) and ``errors.jsonl`` (streamed line by line);
- the Parquet parts under ``kept/`` and ``rejected/``: row-group statistics (min/max of each
  metric, for the histogram bins) and then, one record batch at a time, only the metric and
  annotation columns (column projection: never ``text``). Histograms are fixed-bin counters that
  add up across batches, so memory does not grow with the number of documents;
- the ``text`` column of at most ``MAX_TEXT_ROW_GROUPS`` row groups: the sample documents. Each
  reason keeps the ``CANDIDATES`` ids with the smallest seeded hash (a reproducible reservoir);
  the row groups to open are chosen greedily, rarest reason first, preferring row groups already
  opened, so a handful of row groups cover every reason. The diversity numbers (distinct n-grams,
  compression ratio, replacement characters, mojibake) are measured on the kept documents of the
  opened row groups (at most ``DIVERSITY_DOCS``).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections import Counter, defaultdict

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from report import highlight

SEED = 15  # the sampling hash's seed: the same run gives the same samples
SAMPLES_PER_REASON = 5
KEPT_SAMPLE = 10
CANDIDATES = 64
MAX_TEXT_ROW_GROUPS = 24
DIVERSITY_DOCS = 2000
SNIPPET_CHARS = 1200
FIRST_ERRORS = 10
BINS = 40
BATCH_ROWS = 65536

# Columns that are not metrics: keys, hashes, tie-breakers.
_NOT_METRIC = re.compile(r"(_key_hi|_key_lo|_bands|_keys|_priority|_hash)$")
# column -> [(stage, parameter, "min"|"max")]: a document is rejected below a min, above a max.
THRESHOLDS: dict[str, list[tuple[str, str, str]]] = {
    "length_chars": [("length", "min_chars", "min"), ("length", "max_chars", "max")],
    "length_words": [("length", "min_words", "min"), ("length", "max_words", "max")],
    "lang_score": [("langid", "min_score", "min")],
    "gopher_quality_words": [("gopher_quality", "min_doc_words", "min"), ("gopher_quality", "max_doc_words", "max")],
    "gopher_repetition_dup_line_frac": [("gopher_repetition", "dup_line_frac", "max")],
    "gopher_repetition_dup_para_frac": [("gopher_repetition", "dup_para_frac", "max")],
    "gopher_repetition_dup_line_char_frac": [("gopher_repetition", "dup_line_char_frac", "max")],
    "gopher_repetition_dup_para_char_frac": [("gopher_repetition", "dup_para_char_frac", "max")],
    "gopher_quality_mean_word_length": [("gopher_quality", "min_avg_word_length", "min"),
                                        ("gopher_quality", "max_avg_word_length", "max")],
    "gopher_quality_hash_ratio": [("gopher_quality", "max_symbol_word_ratio", "max")],
    "gopher_quality_ellipsis_ratio": [("gopher_quality", "max_symbol_word_ratio", "max")],
    "gopher_quality_bullet_lines_ratio": [("gopher_quality", "max_bullet_lines_ratio", "max")],
    "gopher_quality_ellipsis_lines_ratio": [("gopher_quality", "max_ellipsis_lines_ratio", "max")],
    "gopher_quality_alpha_words_ratio": [("gopher_quality", "max_non_alpha_words_ratio", "min")],
    "gopher_quality_stop_words": [("gopher_quality", "min_stop_words", "min")],
    "c4_sentences": [("c4", "min_num_sentences", "min")],
    "fineweb_line_punct_ratio": [("fineweb", "line_punct_thr", "min")],
    "fineweb_short_line_ratio": [("fineweb", "short_line_thr", "max")],
    "fineweb_char_dup_ratio": [("fineweb", "char_duplicates_ratio", "max")],
    "fineweb_list_ratio": [("fineweb", "new_line_ratio", "max")],
    "word_filter_ratio": [("word_filter", "max_flagged_ratio", "max")],
    "word_filter_count": [("word_filter", "min_flagged_count", "max")],
    "quality_score": [("quality", "threshold", "min")],
    "model_classifier_score": [("model_classifier", "threshold", "min")],
}
_OWNER_ALIASES = {"lang": "langid", "lang_score": "langid", "quality_score": "quality"}
GROUPS = ("kept", "rejected here", "rejected later")
_HOST = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/@?#]*@)?([^/:?#]+)"
_MOJIBAKE = re.compile("Ã[\u0080-\u00bf]|â€|Â[\u00a0-\u00bf]")


class NotARun(ValueError):
    """The directory is not a finished crawlsift run."""


def stage_params(summary: dict) -> tuple[list[str], dict[str, dict]]:
    names, params = [], {}
    for entry in summary.get("config", {}).get("stages", []):
        for name, p in entry.items():
            names.append(name)
            params[name] = p or {}
    if not names:
        names = list(summary.get("stages", {}))
    return names, params


def owner(column: str, stages: list[str]) -> str | None:
    if column in _OWNER_ALIASES:
        return _OWNER_ALIASES[column]
    best = None
    for s in stages:
        if column.startswith(s + "_") and (best is None or len(s) > len(best)):
            best = s
    return best


_NGRAM_COLUMN = re.compile(r"^gopher_repetition_(top|dup)_(\d+)_gram$")


def thresholds(column: str, params: dict[str, dict]) -> list[dict]:
    out = []
    ngram = _NGRAM_COLUMN.match(column)
    if ngram:  # gopher_repetition's per-n fractions: (n, fraction) pairs in top_n_grams / dup_n_grams
        param = f"{ngram.group(1)}_n_grams"
        for pair in params.get("gopher_repetition", {}).get(param) or []:
            if len(pair) == 2 and int(pair[0]) == int(ngram.group(2)):
                out.append({"stage": "gopher_repetition", "param": f"{param}[{int(pair[0])}]", "kind": "max",
                            "value": float(pair[1])})
    for stage, param, kind in THRESHOLDS.get(column, []):
        value = params.get(stage, {}).get(param)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append({"stage": stage, "param": param, "kind": kind, "value": float(value)})
    return out


def _is_metric(name: str, t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t)) and not _NOT_METRIC.search(name)


class _Part:
    def __init__(self, out, path: str, group: str):
        self.path = path
        self.group = group  # kept | rejected
        self.file = pq.ParquetFile(out.fs.open_input_file(path))
        self.schema = self.file.schema_arrow
        md = self.file.metadata
        self.rg_rows = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        self.rg_start = np.concatenate([[0], np.cumsum(self.rg_rows)]).astype(np.int64)

    def stats(self, column: str) -> tuple[float, float] | None:
        md = self.file.metadata
        j = self.schema.get_field_index(column)
        lo, hi = math.inf, -math.inf
        for i in range(md.num_row_groups):
            s = md.row_group(i).column(j).statistics
            if s is None or not s.has_min_max:
                if md.row_group(i).column(j).statistics is not None and s.null_count == md.row_group(i).num_rows:
                    continue
                return None
            lo, hi = min(lo, float(s.min)), max(hi, float(s.max))
        return (lo, hi) if lo <= hi else (math.inf, -math.inf)

    def row_group_of(self, row: int) -> int:
        return int(np.searchsorted(self.rg_start, row, side="right") - 1)


def _edges(lo: float, hi: float, integer: bool, marks: list[float]) -> tuple[np.ndarray, str]:
    finite = [m for m in marks if math.isfinite(m) and (m <= hi * 4 + 10)]  # a threshold far past the data stretches nothing
    lo = min([lo, *finite]) if finite else lo
    hi = max([hi, *finite]) if finite else hi
    if not math.isfinite(lo) or not math.isfinite(hi):
        return np.array([0.0, 1.0]), "linear"
    if integer and hi > 60 and lo >= 0:
        return np.unique(np.concatenate([[0.0], np.geomspace(1.0, hi + 1.0, BINS)])), "log"
    if integer:
        return np.arange(math.floor(lo), math.floor(hi) + 2) - 0.5, "linear"
    if hi <= lo:
        return np.array([lo - 0.5, lo + 0.5]), "linear"
    return np.linspace(lo, hi, BINS + 1), "linear"


def _counter_top(c: Counter, n: int) -> list[list]:
    return [[k, int(v)] for k, v in c.most_common(n)]


def collect(run_dir: str) -> dict:
    """Every number and series of the report for the run in ``run_dir`` (a path or URI)."""
    from ingest.writer import OutputDir

    out = OutputDir(run_dir)
    summary = out.read_json("summary.json")
    if not isinstance(summary, dict) or "stages" not in summary or "input_documents" not in summary:
        raise NotARun(f"{run_dir} is not a finished crawlsift run (no summary.json with an account)")
    stages, params = stage_params(summary)
    parts = [_Part(out, p, g) for g in ("kept", "rejected") for p in out.list(g) if p.endswith(".parquet")]

    # Which metric columns the run computed, and their integer-ness.
    metric_types: dict[str, pa.DataType] = {}
    bool_cols: set[str] = set()
    dup_cols: set[str] = set()
    for part in parts:
        for f in part.schema:
            if _is_metric(f.name, f.type):
                metric_types.setdefault(f.name, f.type)
            elif pa.types.is_boolean(f.type):
                bool_cols.add(f.name)
            elif f.name.endswith("_duplicate_of"):
                dup_cols.add(f.name)

    # Pass 1, metadata only: each metric's range from the row-group statistics.
    ranges: dict[str, list[float]] = {c: [math.inf, -math.inf] for c in metric_types}
    unknown: set[str] = set()
    for part in parts:
        for c in metric_types:
            if part.schema.get_field_index(c) < 0:
                continue
            r = part.stats(c)
            if r is None:
                unknown.add(c)
            else:
                ranges[c][0], ranges[c][1] = min(ranges[c][0], r[0]), max(ranges[c][1], r[1])
    if unknown:  # no statistics: one projected pass over just those columns
        for part in parts:
            cols = [c for c in unknown if part.schema.get_field_index(c) >= 0]
            for batch in part.file.iter_batches(batch_size=BATCH_ROWS, columns=cols):
                for c in cols:
                    v = batch.column(c).to_numpy(zero_copy_only=False).astype(float)
                    v = v[np.isfinite(v)]
                    if len(v):
                        ranges[c][0], ranges[c][1] = min(ranges[c][0], v.min()), max(ranges[c][1], v.max())

    metrics = {}
    for c, t in metric_types.items():
        th = thresholds(c, params)
        edges, scale = _edges(ranges[c][0], ranges[c][1], pa.types.is_integer(t), [x["value"] for x in th])
        metrics[c] = {"stage": owner(c, stages), "scale": scale, "edges": edges, "thresholds": th,
                      "counts": {g: np.zeros(len(edges) - 1, dtype=np.int64) for g in GROUPS},
                      "n": {g: 0 for g in GROUPS}, "sum": {g: 0.0 for g in GROUPS},
                      "beyond": 0}

    langs = {"kept": Counter(), "rejected": Counter()}
    domains_in, domains_kept = Counter(), Counter()
    sources = {"kept": Counter(), "rejected": Counter()}
    months = {"kept": Counter(), "rejected": Counter()}
    no_date = {"kept": 0, "rejected": 0}
    sums: dict[str, dict[str, int]] = defaultdict(lambda: {"sum": 0, "docs": 0, "seen": 0})
    bool_true: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    dup_roots: dict[str, Counter] = {c: Counter() for c in dup_cols}
    candidates: dict[str, list] = defaultdict(list)  # key -> [(hash, part index, row)]
    totals: Counter = Counter()

    # Pass 2: the metric columns, one batch at a time.
    base = ["id", "rejected_by", "lang", "url", "source", "crawl_date"]
    for pi, part in enumerate(parts):
        names = set(part.schema.names)
        cols = [c for c in base if c in names] + [c for c in metric_types if c in names] \
            + sorted(c for c in bool_cols | dup_cols if c in names)
        offset = 0
        for batch in part.file.iter_batches(batch_size=BATCH_ROWS, columns=cols):
            df = pl.from_arrow(batch)
            if isinstance(df, pl.Series):
                df = df.to_frame()
            n = df.height
            g = part.group
            if g == "kept" or "rejected_by" not in df.columns:
                key = pl.lit("__kept__") if g == "kept" else pl.lit("__unknown__")
                stage_of = np.array([""] * n, dtype=object)
            else:
                key = pl.col("rejected_by").fill_null("__unknown__")
            df = df.with_columns(key.alias("_key"), pl.int_range(offset, offset + n, dtype=pl.Int64).alias("_row"))
            if g == "rejected":
                stage_of = df.get_column("_key").str.split(".").list.first().to_numpy()
            masks = {"kept": np.full(n, g == "kept"), "rejected here": None, "rejected later": None}
            for c, m in metrics.items():
                if c not in df.columns:
                    continue
                v = df.get_column(c).cast(pl.Float64).to_numpy()
                ok = np.isfinite(v)
                if g == "kept":
                    groups = {"kept": ok}
                else:
                    here = stage_of == m["stage"]
                    groups = {"rejected here": ok & here, "rejected later": ok & ~here}
                for name, mask in groups.items():
                    x = v[mask]
                    if not len(x):
                        continue
                    h, _ = np.histogram(x, m["edges"])
                    m["counts"][name] += h
                    m["beyond"] += int(len(x) - h.sum())
                    m["n"][name] += int(len(x))
                    m["sum"][name] += float(x.sum())
            del masks
            for c in sorted(c for c in bool_cols if c in df.columns):
                s = df.get_column(c)
                bool_true[c][0] += int(s.sum() or 0)
                bool_true[c][1] += int(s.count())
            if "lang" in df.columns:
                for lang, cnt in df.group_by("lang").len().iter_rows():
                    langs[g][lang if lang is not None else "(none)"] += cnt
            if "url" in df.columns:
                hosts = df.select(pl.col("url").str.extract(_HOST, 1).str.to_lowercase()
                                  .str.replace(r"^www\.", "").fill_null("(no url)").alias("h")).group_by("h").len()
                for host, cnt in hosts.iter_rows():
                    domains_in[host] += cnt
                    if g == "kept":
                        domains_kept[host] += cnt
            if "source" in df.columns:
                name = pl.col("source").str.replace(r":\d+$", "").str.extract(r"([^/]+)$", 1).fill_null("(none)")
                for src, cnt in df.select(name.alias("s")).group_by("s").len().iter_rows():
                    sources[g][src] += cnt
            if "crawl_date" in df.columns:
                col = df.get_column("crawl_date")
                if col.dtype == pl.String:
                    col = col.str.to_datetime(strict=False)
                if col.dtype.is_temporal():
                    mo = col.dt.strftime("%Y-%m")
                    no_date[g] += int(mo.null_count())
                    for month, cnt in mo.drop_nulls().value_counts().iter_rows():
                        months[g][month] += cnt
            for c in ("pii_emails", "pii_ips", "pii_phones", "normalize_chars_changed", "c4_lines_removed",
                      "c4_chars_removed", "word_filter_count"):
                if c in df.columns:
                    s = df.get_column(c)
                    sums[c]["sum"] += int(s.sum() or 0)
                    sums[c]["docs"] += int((s > 0).sum() or 0)
                    sums[c]["seen"] += int(s.count())
            for c in dup_cols:
                if c in df.columns:
                    for root, cnt in df.get_column(c).drop_nulls().value_counts().iter_rows():
                        dup_roots[c][root] += cnt
            # The sampling reservoir: per reason, the CANDIDATES smallest seeded hashes of the id.
            hashed = df.select("_key", pl.col("id").hash(seed=SEED).alias("_h"), "_row") \
                .sort("_h").group_by("_key", maintain_order=True).head(CANDIDATES)
            for k, h, row in hashed.iter_rows():
                candidates[k].append((h, pi, row))
            for k, cnt in df.group_by("_key").len().iter_rows():
                totals[k] += cnt
            offset += n
        for k in list(candidates):
            candidates[k] = sorted(candidates[k])[:CANDIDATES]

    samples, diversity_texts, opened = _read_samples(parts, candidates, totals, params, metric_types, dup_cols)
    diversity = _diversity(diversity_texts)

    return _assemble(summary, stages, params, metrics, bool_true, langs, domains_in, domains_kept, sources,
                     months, no_date, dict(sums), dup_roots, samples, diversity, opened, parts, out)


def _read_samples(parts, candidates, totals, params, metric_types, dup_cols):
    """Pick the sample rows (greedy over row groups, bounded) and read their text."""
    opened: list[tuple[int, int]] = []
    chosen: dict[str, list[tuple[int, int]]] = {}
    order = sorted(candidates, key=lambda k: (k == "__kept__", totals[k], k))
    for k in order:
        need = KEPT_SAMPLE if k == "__kept__" else SAMPLES_PER_REASON
        cands = [(pi, row, parts[pi].row_group_of(row)) for _, pi, row in candidates[k]]
        picked: list[tuple[int, int]] = []
        while len(picked) < need:
            inside = [(pi, row) for pi, row, rg in cands if (pi, rg) in opened and (pi, row) not in picked]
            picked += inside[: need - len(picked)]
            if len(picked) >= need:
                break
            rest = [(pi, rg) for pi, row, rg in cands if (pi, rg) not in opened]
            if not rest or len(opened) >= MAX_TEXT_ROW_GROUPS:
                break
            opened.append(rest[0])
        chosen[k] = picked
    want: dict[tuple[int, int], list[tuple[str, int]]] = defaultdict(list)
    for k, rows in chosen.items():
        for pi, row in rows:
            want[(pi, parts[pi].row_group_of(row))].append((k, row))
    texts: dict[tuple[int, int], dict] = {}
    diversity: list[str] = []
    for pi, rg in opened:
        part = parts[pi]
        names = set(part.schema.names)
        cols = [c for c in ("id", "text", "url", "rejected_by", "lang") if c in names] \
            + [c for c in metric_types if c in names] + sorted(c for c in dup_cols if c in names)
        table = part.file.read_row_group(rg, columns=cols)
        start = int(part.rg_start[rg])
        for k, row in want.get((pi, rg), []):
            texts[(pi, row)] = table.slice(row - start, 1).to_pylist()[0]
        if part.group == "kept" and len(diversity) < DIVERSITY_DOCS:
            diversity += [t for t in table.column("text").to_pylist()[: DIVERSITY_DOCS - len(diversity)] if t]
        del table
    samples = {}
    for k, rows in chosen.items():
        docs = []
        for pi, row in rows:
            rec = texts.get((pi, row))
            if rec is None:
                continue
            docs.append(_sample_record(k, rec, params, metric_types, dup_cols))
        samples[k] = {"total": int(totals[k]), "docs": docs}
    return samples, diversity, opened


def _sample_record(key: str, rec: dict, params: dict, metric_types, dup_cols) -> dict:
    text = rec.get("text") or ""
    reason = rec.get("rejected_by") or ""
    stage = reason.split(".", 1)[0]
    spans = highlight.spans(reason, text, params.get(stage)) if reason else []
    start = max(0, spans[0][0] - 200) if spans else 0
    end = min(len(text), start + SNIPPET_CHARS)
    shown = [(max(s, start) - start, min(e, end) - start) for s, e in spans if e > start and s < end]
    values = {}
    for c in list(metric_types) + sorted(dup_cols) + ["lang"]:
        v = rec.get(c)
        if v is None:
            continue
        if c in ("length_words",) or c.startswith(stage + "_") or owner(c, [stage]) == stage or c == "lang" and stage == "langid":
            values[c] = round(v, 4) if isinstance(v, float) else v
    if "length_words" not in values and rec.get("length_words") is not None:
        values["length_words"] = rec["length_words"]
    return {"id": rec.get("id"), "url": rec.get("url"), "reason": reason or None, "values": values,
            "chars": len(text), "snippet_start": start, "snippet": text[start:end], "spans": shown,
            "highlight": bool(spans)}


def _diversity(texts: list[str]) -> dict:
    if not texts:
        return {"documents": 0}
    # Distinct word n-grams over all n-grams, on hashed lowercased words, in Polars (equal ratios
    # to Python sets of tuples, without a Python loop per word).
    words = (pl.DataFrame({"t": texts}, schema={"t": pl.String}).with_row_index("doc")
             .select("doc", pl.col("t").str.to_lowercase().str.extract_all(r"\S+").alias("w"))
             .explode("w").drop_nulls("w").select("doc", pl.col("w").hash(seed=0).alias("g0")))
    grams = {}
    for n in (1, 2, 3):
        ngrams = words.select(pl.col("g0"), *(pl.col("g0").shift(-k).over("doc").alias(f"g{k}")
                                              for k in range(1, n))).drop_nulls()
        grams[str(n)] = round(ngrams.n_unique() / ngrams.height, 4) if ngrams.height else None
    blob = "\n".join(texts).encode()
    per_doc = []
    for t in texts:
        b = t.encode()
        if len(b) >= 200:
            per_doc.append(len(b) / len(zlib.compress(b, 6)))
    edges = np.linspace(1.0, max(4.0, max(per_doc, default=4.0)), 31)
    hist, _ = np.histogram(per_doc, edges)
    replacement = sum(t.count("\ufffd") for t in texts)
    moji_docs = sum(1 for t in texts if _MOJIBAKE.search(t))
    return {"documents": len(texts), "distinct_ngram_ratio": grams,
            "compression_ratio": round(len(blob) / len(zlib.compress(blob, 6)), 3),
            "compression_per_doc": {"edges": edges.tolist(), "counts": hist.tolist()},
            "replacement_chars": replacement, "replacement_docs": sum(1 for t in texts if "\ufffd" in t),
            "mojibake_docs": moji_docs}


def _errors(out) -> dict:
    by_reason: Counter = Counter()
    by_file: dict[str, Counter] = defaultdict(Counter)
    first = []
    try:
        f = out.fs.open_input_stream(out.path("errors.jsonl"))
    except (FileNotFoundError, OSError):
        return {"by_reason": [], "by_file": [], "first": [], "total": 0}
    with f:
        data = f.read()
    for line in data.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        key = (e.get("action", "?"), e.get("reason", "?"))
        by_reason[key] += 1
        by_file[e.get("file", "?")][key] += 1
        if len(first) < FIRST_ERRORS:
            first.append({k: e.get(k) for k in ("file", "position", "reason", "action", "detail", "id")})
    return {"by_reason": [[a, r, n] for (a, r), n in by_reason.most_common()],
            "by_file": sorted(([f, sum(c.values()), {f"{a}:{r}": n for (a, r), n in c.items()}] for f, c in by_file.items()),
                              key=lambda x: -x[1]),
            "first": first, "total": sum(by_reason.values())}


def funnel(summary: dict) -> list[dict]:
    total = summary["input_documents"] or 1
    by_stage: dict[str, list] = defaultdict(list)
    for reason, n in summary["rejected"].items():
        by_stage[reason.split(".", 1)[0]].append((reason, n))
    rows = []
    for name, s in summary["stages"].items():
        din = s["documents_in"] or 0
        rules = sorted(by_stage.pop(name, []), key=lambda x: (-x[1], x[0]))
        rows.append({"stage": name, "documents_in": din, "rejected": s["rejected"], "seconds": s.get("seconds"),
                     "share_of_input": s["rejected"] / total, "share_of_stage": s["rejected"] / din if din else 0.0,
                     "rules": [{"reason": r, "count": n, "share_of_input": n / total, "share_of_stage": n / din if din else 0.0}
                               for r, n in rules]})
    for name, rules in by_stage.items():  # reasons of a stage the config no longer lists
        n = sum(c for _, c in rules)
        rows.append({"stage": name, "documents_in": None, "rejected": n, "seconds": None, "share_of_input": n / total,
                     "share_of_stage": None,
                     "rules": [{"reason": r, "count": c, "share_of_input": c / total, "share_of_stage": None}
                               for r, c in sorted(rules, key=lambda x: -x[1])]})
    return rows


def _assemble(summary, stages, params, metrics, bool_true, langs, domains_in, domains_kept, sources, months, no_date,
              sums, dup_roots, samples, diversity, opened, parts, out) -> dict:
    total = summary["input_documents"]
    documents = total - summary.get("unreadable_total", 0)
    top3 = sorted(summary["rejected"].items(), key=lambda x: (-x[1], x[0]))[:3]
    metric_out = {}
    for c, m in metrics.items():
        if not any(m["n"].values()):
            continue
        metric_out[c] = {"stage": m["stage"], "scale": m["scale"], "edges": [float(x) for x in m["edges"]],
                         "thresholds": m["thresholds"], "counts": {g: v.tolist() for g, v in m["counts"].items()},
                         "n": m["n"], "mean": {g: (m["sum"][g] / m["n"][g] if m["n"][g] else None) for g in GROUPS}}
    lang_all = langs["kept"] + langs["rejected"]
    lang_counts = [v for k, v in lang_all.items() if k != "(none)"]
    no_url = {"input": domains_in.pop("(no url)", 0), "kept": domains_kept.pop("(no url)", 0)}  # not a domain
    dom_total = sum(domains_in.values()) or 1
    kept_total = sum(domains_kept.values()) or 1
    p = np.array(list(domains_kept.values()), dtype=float) / kept_total if domains_kept else np.array([1.0])
    tlds_in, tlds_kept = Counter(), Counter()
    for d, n in domains_in.items():
        tlds_in[d.rsplit(".", 1)[-1] if "." in d else d] += n
    for d, n in domains_kept.items():
        tlds_kept[d.rsplit(".", 1)[-1] if "." in d else d] += n
    stage_in = {k: v["documents_in"] for k, v in summary["stages"].items()}
    clusters = {}
    for c, roots in dup_roots.items():
        st = c[: -len("_duplicate_of")]
        removed = sum(roots.values())
        sizes = Counter(v + 1 for v in roots.values())
        clusters[st] = {"removed": removed, "clusters": len(roots),
                        "rate": removed / stage_in[st] if stage_in.get(st) else None,
                        "largest": [[r, n + 1] for r, n in roots.most_common(10)],
                        "size_histogram": sorted([[s, n] for s, n in sizes.items()])}
    for st in ("exact_dedup", "minhash_dedup", "line_dedup"):
        if st in summary["stages"] and st not in clusters:
            s = summary["stages"][st]
            clusters[st] = {"removed": s["rejected"], "clusters": 0,
                            "rate": s["rejected"] / s["documents_in"] if s["documents_in"] else None,
                            "largest": [], "size_histogram": []}
    rule_share = [[r, n, n / documents if documents else 0.0] for r, n in
                  sorted(summary["rejected"].items(), key=lambda x: -x[1])]
    pii_stage = params.get("pii", {})
    return {
        "version": 1,
        "run": {"output": summary.get("config", {}).get("output"), "inputs": summary.get("config", {}).get("input", {}).get("paths"),
                "input_files": summary.get("input_files"), "wall_seconds": summary.get("wall_seconds")},
        "totals": {"input_documents": total, "documents": documents, "kept": summary["kept"],
                   "rejected": summary["rejected_total"], "unreadable": summary.get("unreadable_total", 0),
                   "skipped_records": sum(summary.get("skipped_records", {}).values()),
                   "repaired": sum(summary.get("repaired", {}).values()),
                   "bytes_in": summary.get("bytes_in"), "bytes_kept": summary.get("bytes_kept"),
                   "kept_share": summary["kept"] / total if total else 0.0,
                   "top_reasons": [[r, n, n / total if total else 0.0] for r, n in top3]},
        "funnel": funnel(summary),
        "unreadable": {"by_reason": summary.get("unreadable", {}), "skipped_records": summary.get("skipped_records", {}),
                       "repaired": summary.get("repaired", {}), "errors": _errors(out)},
        "metrics": metric_out,
        "flags": {c: {"true": t, "seen": s} for c, (t, s) in bool_true.items()},
        "dimensions": {
            "distribution": {
                "languages_kept": _counter_top(langs["kept"], 30), "languages_rejected": _counter_top(langs["rejected"], 30),
                "languages_distinct": len(lang_all),
                "language_imbalance_ratio": (max(lang_counts) / min(lang_counts)) if lang_counts else None,
                "domains_input": _counter_top(domains_in, 20), "domains_kept": _counter_top(domains_kept, 20),
                "documents_without_url_input": no_url["input"], "documents_without_url_kept": no_url["kept"],
                "domains_distinct_input": len(domains_in), "domains_distinct_kept": len(domains_kept),
                "top_domain_share_kept": (domains_kept.most_common(1)[0][1] / kept_total) if domains_kept else None,
                "top10_domain_share_kept": (sum(n for _, n in domains_kept.most_common(10)) / kept_total) if domains_kept else None,
                "top_domain_share_input": (domains_in.most_common(1)[0][1] / dom_total) if domains_in else None,
                "domain_effective_number_kept": float(np.exp(-(p * np.log(p)).sum())) if domains_kept else None,
                "tlds_input": _counter_top(tlds_in, 15), "tlds_kept": _counter_top(tlds_kept, 15),
                "sources_kept": _counter_top(sources["kept"], 30), "sources_rejected": _counter_top(sources["rejected"], 30),
            },
            "noise": {"rule_share": rule_share,
                      "normalize_changed_docs": sums.get("normalize_chars_changed", {}).get("docs"),
                      "normalize_chars_changed": sums.get("normalize_chars_changed", {}).get("sum"),
                      "boilerplate_lines_removed": sums.get("c4_lines_removed", {}).get("sum"),
                      "boilerplate_chars_removed": sums.get("c4_chars_removed", {}).get("sum"),
                      "boilerplate_docs": sums.get("c4_lines_removed", {}).get("docs"),
                      "invalid_utf8_repaired": summary.get("repaired", {}).get("invalid_utf8", 0),
                      "fix_mojibake": params.get("normalize", {}).get("fix_mojibake"),
                      "sample_replacement_chars": diversity.get("replacement_chars"),
                      "sample_replacement_docs": diversity.get("replacement_docs"),
                      "sample_mojibake_docs": diversity.get("mojibake_docs"),
                      "sample_documents": diversity.get("documents")},
            "diversity": {**diversity, "duplicates": clusters},
            "timeliness": {"months_kept": sorted(months["kept"].items()), "months_rejected": sorted(months["rejected"].items()),
                           "no_date_kept": no_date["kept"], "no_date_rejected": no_date["rejected"]},
            "privacy": {"mode": pii_stage.get("mode"), "types": pii_stage.get("types"),
                        "pii": {c[len("pii_"):]: v for c, v in sums.items() if c.startswith("pii_")},
                        "flagged_words": sums.get("word_filter_count"),
                        "url_filter_rejected": sum(n for r, n in summary["rejected"].items() if r.startswith("url_filter.")),
                        "word_filter_rejected": sum(n for r, n in summary["rejected"].items() if r.startswith("word_filter."))},
        },
        "samples": samples,
        "collection": {"parts": len(parts), "text_row_groups_read": len(opened),
                       "row_groups": sum(len(p.rg_rows) for p in parts),
                       "samples_per_reason": SAMPLES_PER_REASON, "kept_sample": KEPT_SAMPLE, "seed": SEED},
        "config": summary.get("config", {}),
        "summary": {k: v for k, v in summary.items() if k != "config"},
    }
