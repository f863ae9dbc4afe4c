"""audit.html: one offline file (no script, no stylesheet or font from the network), in the plain
style of the run report: the per-class table, the given-vs-suggested confusion, the worst-scored
rows first, the leaked pairs side by side. Figures are matplotlib SVG inlined. Every string that
comes from the data goes through ``html.escape`` (texts are web pages: they hold markup)."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import numpy as np
import polars as pl

# Rows shown in the worst-first table and the leaked pairs (the full lists are in audit.parquet).
WORST_ROWS = 50
LEAK_PAIRS = 30
SNIPPET = 400

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;vertical-align:top}th{background:#f3f3f3}
.num{text-align:right}.txt{max-width:520px;white-space:pre-wrap;word-break:break-word}h2{margin-top:1.6em}"""


def e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    svg = buf.getvalue()
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)  # RDF/Dublin Core namespace URLs: not needed
    return svg[svg.find("<svg"):]  # drop the XML prolog and DOCTYPE (its URL is never fetched, but no URL at all is plainer)


def figures(frame: pl.DataFrame, classes: list) -> str:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: smaller, and no embedded glyph paths
    import matplotlib.pyplot as plt

    counts = frame.group_by("label").len().sort("len", descending=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    axes[0].bar(range(counts.height), counts["len"].to_list())
    axes[0].set_xticks(range(counts.height), counts["label"].to_list(), rotation=45, ha="right")
    axes[0].set_title("rows per class")
    q = frame["label_quality"].to_numpy()
    flagged = frame["is_label_issue"].to_numpy()
    bins = np.linspace(0, 1, 26)
    axes[1].hist([q[~flagged], q[flagged]], bins=bins, stacked=True, label=["not flagged", "flagged"])
    axes[1].set_title("label quality (low = likely wrong)")
    axes[1].legend()
    return _svg(fig)


def _table(header: list[str], rows: list[list], num: set[int] = frozenset(), txt: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = ' class="num"' if i in num else ' class="txt"' if i in txt else ""
            if isinstance(v, float):
                v = f"{v:.3f}"
            cells.append(f"<td{cls}>{e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def write_page(path: Path, frame: pl.DataFrame, summary: dict, dup, classes: list) -> None:
    n = summary["noise"]
    cov = summary["coverage"]
    leak = summary["leakage"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>crawlsift audit</title><style>{STYLE}</style></head><body>",
             "<h1>crawlsift audit</h1>",
             f"<p>{summary['rows']:,} rows, {len(classes)} classes; input {e(', '.join(summary['input']))}. "
             f"Left out at read: {e(summary['left_out_at_read'] or 'none')}.</p>",
             f"<p>Label noise: model <b>{e(n['model'])}</b>, {n['folds']}-fold out-of-fold probabilities, cleanlab "
             f"<code>{e(n['rule'])}</code> / <code>{e(n['score'])}</code>: {n['issues']:,} rows flagged "
             f"({n['issue_share']:.1%}); out-of-fold accuracy against the given labels {n['oof_accuracy']:.3f}.</p>",
             f"<p>Duplicates: {leak['duplicate_rows']:,} rows in {leak['clusters']:,} clusters (exact, and MinHash near "
             f"duplicates verified at Jaccard &ge; {leak['verify_jaccard']}); {leak['leaked_rows']:,} rows in clusters "
             f"that span splits; {leak['label_conflict_rows']:,} rows in clusters with conflicting labels.</p>",
             figures(frame, classes)]

    per_issue = {r["label"]: r for r in n["per_class"]}
    langs = cov.get("languages_per_class", {})
    rows = []
    for r in cov["per_class"]:
        lab = r["label"]
        top = ", ".join(f"{k} {v}" for k, v in list(langs.get(lab, {}).items())[:3])
        rows.append([lab, r["rows"], f"{r['share']:.1%}", per_issue[lab]["issues"], per_issue[lab]["mean_quality"],
                     r["too_short"], top])
    parts.append("<h2>Per class</h2>")
    parts.append(f"<p>Imbalance ratio (largest / smallest class) {cov['imbalance_ratio']:.1f}. Too small "
                 f"(&lt; {cov['min_class_rows']} rows): {e(', '.join(cov['too_small_classes']) or 'none')}. "
                 f"Too short (&lt; {cov['min_words']} words): {cov['too_short_rows']}. Empty texts: "
                 f"{cov['empty_text_rows']}. Unlabeled rows: {cov['unlabeled_rows']}."
                 + (f" Rows whose language differs from their class's majority: {cov['lang_outlier_rows']}." if "lang_outlier_rows" in cov else "")
                 + "</p>")
    parts.append(_table(["class", "rows", "share", "flagged", "mean quality", "too short", "languages"], rows, num={1, 2, 3, 4, 5}))
    if "per_split_class" in cov:
        splits = list(cov["per_split_class"])
        parts.append("<h3>Per split</h3>")
        parts.append(_table(["class"] + splits, [[lab] + [cov["per_split_class"][s].get(lab, 0) for s in splits] for lab in classes],
                            num=set(range(1, len(splits) + 1))))

    conf = n["confusion_given_vs_suggested"]
    parts.append("<h2>Given (rows) vs suggested (columns) label</h2>")
    parts.append(_table(["given \\ suggested"] + conf["labels"], [[lab] + row for lab, row in zip(conf["labels"], conf["matrix"])],
                        num=set(range(1, len(classes) + 1))))

    worst = frame.sort("label_quality").head(WORST_ROWS)
    parts.append(f"<h2>The {WORST_ROWS} lowest label-quality rows</h2>")
    parts.append(_table(["id", "split", "given", "suggested", "quality", "flagged", "text"],
                        [[r["id"], r["split"], r["label"], r["suggested_label"], r["label_quality"], r["is_label_issue"],
                          r["text"][:SNIPPET]] for r in worst.select("id", "split", "label", "suggested_label", "label_quality",
                                                                     "is_label_issue", "text").to_dicts()],
                        num={4}, txt={6}))

    a, b, jac = dup.pairs["leak"]
    parts.append(f"<h2>Leaked pairs ({len(a):,}; first {LEAK_PAIRS})</h2>")
    if len(a):
        ids, sp, lab, text = (frame[c].to_list() for c in ("id", "split", "label", "text"))
        order = np.argsort(-jac, kind="stable")[:LEAK_PAIRS]
        parts.append(_table(["Jaccard", "row", "its copy in a later split"],
                            [[float(jac[i]), f"{ids[a[i]]} [{sp[a[i]]}, {lab[a[i]]}]\n{text[a[i]][:SNIPPET]}",
                              f"{ids[b[i]]} [{sp[b[i]]}, {lab[b[i]]}]\n{text[b[i]][:SNIPPET]}"] for i in order],
                            num={0}, txt={1, 2}))
    else:
        parts.append("<p>None.</p>")
    conflicts = frame.filter(pl.col("label_conflict")).sort(["duplicate_cluster", "id"]).head(LEAK_PAIRS)
    parts.append(f"<h2>Duplicates with conflicting labels ({leak['label_conflict_rows']:,} rows; first {LEAK_PAIRS})</h2>")
    parts.append(_table(["cluster", "id", "split", "label", "text"],
                        [[r["duplicate_cluster"], r["id"], r["split"], r["label"], r["text"][:SNIPPET]]
                         for r in conflicts.select("duplicate_cluster", "id", "split", "label", "text").to_dicts()], txt={4}))
    parts.append("</body></html>\n")
    path.write_text("".join(parts), encoding="utf-8")
