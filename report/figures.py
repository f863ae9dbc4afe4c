"""The report's figures: matplotlib, rendered to SVG text and inlined in the page.

Every id inside a figure's SVG (clip paths, glyph and marker definitions) gets a per-figure prefix,
and every reference to it (``url(#…)``, ``href="#…"``) follows, so several inline SVGs never clash
on element ids in one HTML document."""

from __future__ import annotations

import io
import re

import numpy as np

KEPT, HERE, LATER = "#2b7bba", "#d7301f", "#9a9a9a"
RUN_A, RUN_B = "#2b7bba", "#e66101"
_ID = re.compile(r'\bid="([^"]+)"')
_counter = [0]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({
        "svg.fonttype": "none",  # text as text: smaller, searchable, no glyph paths
        "svg.hashsalt": "crawlsift-report",  # deterministic ids
        "font.size": 9, "axes.titlesize": 10, "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.25, "legend.frameon": False, "legend.fontsize": 8,
    })
    import matplotlib.pyplot as plt

    return plt


def unique_ids(svg: str, prefix: str) -> str:
    """Prefix every id defined in ``svg`` and every reference to it."""
    ids = set(_ID.findall(svg))
    if not ids:
        return svg

    def ref(m):
        name = m.group(2)
        return f"{m.group(1)}{prefix}-{name}" if name in ids else m.group(0)

    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"(url\(#)([^)\s]+)", lambda m: ref(m) + "", svg)
    svg = re.sub(r'((?:xlink:)?href="#)([^"]+)', ref, svg)
    return svg


def to_svg(fig, name: str) -> str:
    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = svg[svg.find("<svg"):]
    _counter[0] += 1
    prefix = "f" + re.sub(r"[^A-Za-z0-9_-]", "-", name) + f"-{_counter[0]}"
    svg = unique_ids(svg, prefix)
    # The natural size stays (so text is the same size in every figure); CSS only caps the width.
    return svg.replace("<svg", f'<svg class="fig" data-figure="{name}" role="img"', 1)


def _short(label: str, n: int = 28) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def funnel(rows: list[dict], totals: dict) -> str:
    plt = _plt()
    labels = ["input"] + [r["stage"] for r in rows if r["documents_in"] is not None]
    remaining = [totals["documents"]] + [r["documents_in"] - r["rejected"] for r in rows if r["documents_in"] is not None]
    removed = [0] + [r["rejected"] for r in rows if r["documents_in"] is not None]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(labels) + 0.8))
    y = np.arange(len(labels))[::-1]
    ax.barh(y, remaining, color=KEPT, label="documents left")
    ax.barh(y, removed, left=remaining, color=HERE, alpha=0.8, label="removed by this stage")
    top = max(remaining[0], 1)
    for yi, left, rem in zip(y, remaining, removed):
        ax.text(left + rem + top * 0.01, yi, f"{left:,}" + (f"  (−{rem:,})" if rem else ""), va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.set_xlim(0, top * 1.25)
    ax.set_xlabel("documents")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower right")
    return to_svg(fig, "funnel")


def metric(column: str, m: dict, title: str | None = None) -> str:
    plt = _plt()
    edges = np.asarray(m["edges"])
    fig, ax = plt.subplots(figsize=(4.2, 2.5))
    for group, color, fill in (("kept", KEPT, True), ("rejected here", HERE, True), ("rejected later", LATER, False)):
        counts = np.asarray(m["counts"][group])
        if counts.sum() == 0:
            continue
        label = {"kept": "kept", "rejected here": f"rejected by\n{m['stage']}", "rejected later": "rejected\nlater"}[group]
        ax.stairs(counts, edges, color=color, fill=fill, alpha=0.35 if fill else 1.0, label=f"{label} ({counts.sum():,})")
        if fill:
            ax.stairs(counts, edges, color=color, linewidth=1.2)
    for t in m["thresholds"]:
        if not edges[0] <= t["value"] <= edges[-1]:
            continue  # beyond the data (e.g. max_chars 1e6): named in the caption, not drawn
        ax.axvline(t["value"], color="black", linestyle="--", linewidth=1)
        ax.annotate(f"{t['param']} = {t['value']:g}", (t["value"], 1), xycoords=("data", "axes fraction"),
                    xytext=(3, -2), textcoords="offset points", va="top", fontsize=8, annotation_clip=True)
    if m["scale"] == "log":
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_title(title or column, loc="left")
    ax.set_ylabel("documents")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5)
    return to_svg(fig, f"metric-{column}")


def bars(items: list[list], title: str, name: str, color: str = KEPT, second: list[list] | None = None,
         labels: tuple[str, str] = ("kept", "rejected"), xlabel: str = "documents", percent: bool = False) -> str:
    """Horizontal bars, largest first (optionally a second series beside the first)."""
    plt = _plt()
    keys = [k for k, _ in items]
    if second:
        keys += [k for k, _ in second if k not in keys]
    keys = keys[:15]
    a = dict((k, v) for k, v in items)
    fig, ax = plt.subplots(figsize=(5.0, 0.24 * len(keys) + 0.9))
    y = np.arange(len(keys))[::-1]
    h = 0.4 if second else 0.7
    ax.barh(y + (h / 2 if second else 0), [a.get(k, 0) for k in keys], height=h, color=color, label=labels[0] if second else None)
    if second:
        b = dict((k, v) for k, v in second)
        ax.barh(y - h / 2, [b.get(k, 0) for k in keys], height=h, color=LATER, label=labels[1])
        ax.legend(loc="lower right")
    ax.set_yticks(y, [_short(str(k)) for k in keys])
    ax.grid(axis="y", visible=False)
    if percent:
        from matplotlib.ticker import PercentFormatter

        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left")
    return to_svg(fig, name)


def months(kept: list, rejected: list, title: str) -> str:
    plt = _plt()
    keys = sorted(set(k for k, _ in kept) | set(k for k, _ in rejected))
    a, b = dict(kept), dict(rejected)
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    x = np.arange(len(keys))
    ax.bar(x, [a.get(k, 0) for k in keys], color=KEPT, label="kept")
    ax.bar(x, [b.get(k, 0) for k in keys], bottom=[a.get(k, 0) for k in keys], color=LATER, label="rejected")
    step = max(1, len(keys) // 12)
    ax.set_xticks(x[::step], keys[::step], rotation=45, ha="right")
    ax.set_ylabel("documents")
    ax.set_title(title, loc="left")
    ax.legend()
    return to_svg(fig, "timeliness")


def histogram(edges: list, counts: list, title: str, name: str, xlabel: str, log_x: bool = False) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.0, 2.6))
    ax.stairs(counts, edges, color=KEPT, fill=True, alpha=0.5)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title, loc="left")
    return to_svg(fig, name)


def compare_metric(column: str, a: dict | None, b: dict | None, names: tuple[str, str]) -> str:
    """Kept and rejected of two runs on the same axes (each run's own bins)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 2.5))
    lo, hi, log = [], [], False
    for m, color, name, style in ((a, RUN_A, names[0], "-"), (b, RUN_B, names[1], "--")):
        if m is None:
            continue
        edges = np.asarray(m["edges"])
        lo.append(edges[0])
        hi.append(edges[-1])
        log = log or m["scale"] == "log"
        kept = np.asarray(m["counts"]["kept"])
        rej = np.asarray(m["counts"]["rejected here"])
        ax.stairs(kept, edges, color=color, linestyle=style, linewidth=1.4, label=f"{name}: kept ({kept.sum():,})")
        if rej.sum():
            ax.stairs(rej, edges, color=color, linestyle=style, fill=True, alpha=0.18,
                      label=f"{name}: rejected by\n{m['stage']} ({rej.sum():,})")
        for t in m["thresholds"]:
            ax.axvline(t["value"], color=color, linestyle=style, linewidth=1)
    if log:
        ax.set_xscale("symlog", linthresh=1)
    if lo:
        ax.set_xlim(min(lo), max(hi))
    ax.set_title(column, loc="left")
    ax.set_ylabel("documents")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5)
    return to_svg(fig, f"compare-{column}")


def compare_rules(rows: list[dict], names: tuple[str, str]) -> str:
    plt = _plt()
    rows = [r for r in rows if r["delta"]][:20]
    if not rows:
        rows = [{"reason": "(no rule changed)", "delta": 0}]
    fig, ax = plt.subplots(figsize=(6.5, 0.26 * len(rows) + 0.9))
    y = np.arange(len(rows))[::-1]
    d = [r["delta"] for r in rows]
    ax.barh(y, d, color=[RUN_B if v > 0 else RUN_A for v in d])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, [_short(r["reason"], 36) for r in rows])
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"documents removed: {names[1]} − {names[0]}")
    ax.set_title("Change per rule", loc="left")
    return to_svg(fig, "compare-rules")
