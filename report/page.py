"""report.html: one offline page (no script, no external stylesheet, font or image) drawn from the
collected data. Every string that comes from the crawl or the config goes through ``e`` (html.escape):
documents are web pages and hold markup."""

from __future__ import annotations

import html
import json

from report import figures

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa;line-height:1.4}
main{max-width:1180px;margin:0 auto;padding:0 24px 48px}
header.top{background:#fff;border-bottom:1px solid #ddd;padding:14px 24px 10px;margin-bottom:10px}
header.top h1{margin:0 0 4px;font-size:22px}
.sub{color:#666;font-size:13px;word-break:break-all}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:6px 24px;z-index:2;font-size:14px}
nav a{margin-right:14px;color:#1b5e9a;text-decoration:none;white-space:nowrap}
nav a:hover{text-decoration:underline}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:6px 18px 14px;margin:14px 0;scroll-margin-top:44px}
h2{font-size:19px;margin:10px 0 6px}h3{font-size:15px;margin:14px 0 4px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:150px}
.card b{display:block;font-size:22px}.card span{color:#666;font-size:12px}
.card.kept b{color:#2b7bba}.card.rej b{color:#c0392b}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
td,th{border-bottom:1px solid #e6e6e6;padding:3px 10px;text-align:left;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:34px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.stage td{background:#f6f9fc;font-weight:600;border-top:2px solid #d5dde6}
tr.rule td:nth-child(2){padding-left:22px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(470px,1fr));gap:10px 18px}
figure{margin:6px 0}figcaption{font-size:12px;color:#555;margin-top:2px}
svg.fig{max-width:100%;height:auto;display:block}
.numbers{font-size:14px;margin:4px 0 8px}.numbers b{font-variant-numeric:tabular-nums}
details{margin:4px 0}summary{cursor:pointer;font-weight:600;font-size:14px}
.doc{border:1px solid #e3e3e3;border-left:4px solid #c0392b;border-radius:4px;margin:8px 0;padding:6px 10px;background:#fff}
.doc.kept{border-left-color:#2b7bba}
.meta{font-size:12px;color:#555;overflow-wrap:anywhere}.meta code{background:#f3f3f3;padding:0 3px}
pre.text{white-space:pre-wrap;word-break:break-word;font-size:12.5px;max-height:180px;overflow:auto;margin:6px 0 2px;
 background:#fcfcfc;padding:6px;font-family:ui-monospace,Menlo,Consolas,monospace}
mark{background:#ffe08a;padding:0 1px}
.note{font-size:12px;color:#666}
pre.config{font-size:12px;background:#f6f6f6;padding:8px;max-height:400px;overflow:auto}
"""


def e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def pct(x) -> str:
    return "–" if x is None else f"{x:.1%}" if x >= 0.001 or x == 0 else f"{x:.2%}"


def num(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return f"{x:,}"


def table(header: list[str], rows: list[list], numeric: set[int] = frozenset(), cls: str = "") -> str:
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{e(h)}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{e(v)}</td>' for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def highlighted(text: str, spans: list) -> str:
    merged: list[list[int]] = []
    for s, t in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], t)
        else:
            merged.append([s, t])
    out, pos = [], 0
    for s, t in merged:
        out.append(e(text[pos:s]))
        out.append(f"<mark>{e(text[s:t])}</mark>")
        pos = t
    out.append(e(text[pos:]))
    return "".join(out)


def _figure(svg: str, caption: str = "", wide: bool = False) -> str:
    return f'<figure class="{"wide" if wide else ""}">{svg}' + (f"<figcaption>{caption}</figcaption>" if caption else "") + "</figure>"


SECTIONS = [("summary", "Summary"), ("funnel", "Funnel"), ("unreadable", "Unreadable"), ("distributions", "Distributions"),
            ("dimensions", "Quality dimensions"), ("samples", "Rejected samples"), ("kept-sample", "Kept sample"),
            ("config", "Config")]


def render(d: dict) -> str:
    t = d["totals"]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>crawlsift report</title><style>{STYLE}</style></head><body>",
             "<header class='top'><h1>crawlsift data-quality report</h1>"
             f"<div class='sub'>run <code>{e(d['run'].get('output'))}</code> · inputs {e(', '.join(d['run'].get('inputs') or []))}"
             f" · {num(d['run'].get('input_files'))} files · wall time {num(d['run'].get('wall_seconds'))} s</div></header>",
             "<nav>" + "".join(f"<a href='#{k}'>{e(v)}</a>" for k, v in SECTIONS) + "</nav><main>"]
    parts.append(_summary(d))
    parts.append(_funnel(d))
    parts.append(_unreadable(d))
    parts.append(_distributions(d))
    parts.append(_dimensions(d))
    parts.append(_samples(d))
    parts.append(_kept(d))
    parts.append("<section id='config'><h2>Config</h2><details><summary>the run's pipeline config (from summary.json)</summary>"
                 f"<pre class='config'>{e(json.dumps(d['config'], indent=2))}</pre></details>"
                 f"<p class='note'>Every number and series on this page is in <code>report_data.json</code> beside it. "
                 f"Read {d['collection']['text_row_groups_read']} of {d['collection']['row_groups']} row groups' text for the samples "
                 f"(seeded reservoir, seed {d['collection']['seed']}); everything else from the metric columns only.</p></section>")
    parts.append("</main></body></html>\n")
    del t
    return "".join(parts)


def _summary(d: dict) -> str:
    t = d["totals"]
    n = t["input_documents"] or 1
    cards = [("", num(t["input_documents"]), "documents in"),
             ("kept", num(t["kept"]), f"kept · {pct(t['kept'] / n)}"),
             ("rej", num(t["rejected"]), f"rejected · {pct(t['rejected'] / n)}"),
             ("", num(t["unreadable"]), f"unreadable · {pct(t['unreadable'] / n)}")]
    if t.get("bytes_in"):
        cards.append(("", f"{t['bytes_in'] / 1e6:,.1f} MB", f"text in · {t['bytes_kept'] / 1e6:,.1f} MB kept "
                      f"({pct(t['bytes_kept'] / t['bytes_in'])})"))
    html_cards = "".join(f"<div class='card {c}'><b>{v}</b><span>{e(label)}</span></div>" for c, v, label in cards)
    top = "".join(f"<li><code>{e(r)}</code>: <b>{num(c)}</b> ({pct(s)} of input)</li>" for r, c, s in t["top_reasons"])
    return (f"<section id='summary'><h2>Summary</h2><div class='cards'>{html_cards}</div>"
            f"<div class='numbers'>The three biggest reasons:<ol>{top}</ol></div></section>")


def _funnel(d: dict) -> str:
    t = d["totals"]
    rows = []
    more_after = 6
    for s in d["funnel"]:
        rows.append(f"<tr class='stage' data-stage='{e(s['stage'])}' data-rejected='{s['rejected']}'><td>{e(s['stage'])}</td>"
                    f"<td>{num(s['documents_in'])} in</td><td class=num>{num(s['rejected'])}</td>"
                    f"<td class=num>{pct(s['share_of_input'])}</td><td class=num>{pct(s['share_of_stage'])}</td>"
                    f"<td class=num>{num(s['seconds'])}</td></tr>")
        rules = s["rules"]

        def rule_row(r):
            return (f"<tr class='rule' data-reason='{e(r['reason'])}' data-count='{r['count']}'><td></td><td><code>{e(r['reason'])}</code></td>"
                    f"<td class=num>{num(r['count'])}</td><td class=num>{pct(r['share_of_input'])}</td>"
                    f"<td class=num>{pct(r['share_of_stage'])}</td><td></td></tr>")

        rows += [rule_row(r) for r in rules[:more_after]]
        if len(rules) > more_after:
            rest = rules[more_after:]
            inner = "".join(rule_row(r) for r in rest)
            rows.append(f"<tr><td></td><td colspan=5><details><summary>{len(rest)} more rules of {e(s['stage'])} "
                        f"({num(sum(r['count'] for r in rest))} documents)</summary><table>{inner}</table></details></td></tr>")
    n = t["input_documents"] or 1
    rows.append(f"<tr class='stage' data-kept='{t['kept']}'><td>kept</td><td></td><td class=num>{num(t['kept'])}</td>"
                f"<td class=num>{pct(t['kept'] / n)}</td><td></td><td></td></tr>")
    head = ("<thead><tr><th>stage</th><th>rule</th><th class=num>documents</th><th class=num>% of input</th>"
            "<th class=num>% of stage input</th><th class=num>seconds</th></tr></thead>")
    fig = figures.funnel(d["funnel"], t)
    return (f"<section id='funnel'><h2>Funnel</h2><p class='numbers'><b>{num(t['input_documents'])}</b> input documents "
            f"(<b>{num(t['unreadable'])}</b> unreadable, <b>{num(t['skipped_records'])}</b> records that are not documents skipped, "
            f"<b>{num(t['repaired'])}</b> repaired and kept flowing). Stages in run order; within a stage, rules largest first.</p>"
            f"{_figure(fig, 'Documents left after each stage; red: removed by that stage.', wide=True)}"
            f"<table class='funnel' data-input='{t['input_documents']}'>{head}<tbody>{''.join(rows)}</tbody></table></section>")


def _unreadable(d: dict) -> str:
    u = d["unreadable"]
    err = u["errors"]
    n = d["totals"]["input_documents"] or 1
    parts = ["<section id='unreadable'><h2>Unreadable records</h2>"]
    if u["by_reason"]:
        parts.append(table(["reason", "records", "% of input"],
                           [[r, num(c), pct(c / n)] for r, c in sorted(u["by_reason"].items(), key=lambda x: -x[1])], {1, 2}))
    else:
        parts.append("<p>None.</p>")
    if u["skipped_records"]:
        parts.append("<h3>Records that are not documents (skipped)</h3>")
        parts.append(table(["record type", "records"], [[r, num(c)] for r, c in sorted(u["skipped_records"].items(), key=lambda x: -x[1])], {1}))
    if u["repaired"]:
        parts.append("<h3>Repaired, kept flowing</h3>")
        parts.append(table(["repair", "records"], [[r, num(c)] for r, c in u["repaired"].items()], {1}))
    if err["by_file"]:
        parts.append("<h3>By file (errors.jsonl)</h3>")
        parts.append(table(["file", "records", "what"], [[f, num(c), ", ".join(f"{k} {v}" for k, v in w.items())]
                                                         for f, c, w in err["by_file"][:30]], {1}))
    if err["first"]:
        parts.append(f"<h3>The first {len(err['first'])} located errors</h3>")
        parts.append(table(["file", "position", "reason", "action", "detail"],
                           [[x["file"], x["position"], x["reason"], x["action"], x["detail"]] for x in err["first"]]))
    parts.append("</section>")
    return "".join(parts)


def _distributions(d: dict) -> str:
    figs = []
    for c, m in d["metrics"].items():
        th = ", ".join(f"{x['param']} {x['value']:g}" + ("" if m["edges"][0] <= x["value"] <= m["edges"][-1] else " (beyond the data)")
                       for x in m["thresholds"]) or "no threshold"
        mean = m["mean"]
        cap = (f"{e(c)} (stage {e(m['stage'])}; {e(th)}). Mean kept {num(mean['kept'])}, "
               f"rejected by this stage {num(mean['rejected here'])}.")
        figs.append(_figure(figures.metric(c, m), cap))
    flags = "".join(f"<li><code>{e(c)}</code>: true for {num(v['true'])} of {num(v['seen'])} documents</li>"
                    for c, v in d["flags"].items())
    return ("<section id='distributions'><h2>Distributions</h2><p class='numbers'>Every metric column the run computed, with the "
            "threshold from the run's config as a dashed line. Blue: kept; red: rejected by the stage that computed the metric; "
            "grey line: passed this stage but rejected by a later one. A metric exists for the documents that reached its stage. "
            "Counts (words, characters) on a log axis.</p>"
            f"<div class='grid'>{''.join(figs)}</div>" + (f"<ul class='note'>{flags}</ul>" if flags else "") + "</section>")


def _dimensions(d: dict) -> str:
    dim = d["dimensions"]
    t = d["totals"]
    parts = ["<section id='dimensions'><h2>Quality dimensions</h2>",
             "<p class='note'>The five dimensions of data quality: distribution and imbalance, noise, diversity, timeliness, "
             "privacy. Each with its figure and its number.</p>"]
    dist = dim["distribution"]
    parts.append("<h3 id='dim-distribution'>1. Distribution and imbalance</h3>")
    parts.append(f"<p class='numbers'>{num(dist['languages_distinct'])} languages in the input "
                 f"(imbalance ratio largest/smallest <b>{num(dist['language_imbalance_ratio'])}</b>); "
                 f"{num(dist['domains_distinct_kept'])} domains kept of {num(dist['domains_distinct_input'])}; "
                 f"top domain share of kept <b>{pct(dist['top_domain_share_kept'])}</b>, top 10 "
                 f"<b>{pct(dist['top10_domain_share_kept'])}</b>; effective number of domains (exp entropy) "
                 f"<b>{num(dist['domain_effective_number_kept'])}</b>; documents without a URL (not counted as a domain): "
                 f"{num(dist['documents_without_url_kept'])} kept of {num(dist['documents_without_url_input'])}.</p>")
    figs = [figures.bars(dist["languages_kept"], "Languages (top 15)", "languages", second=dist["languages_rejected"]),
            figures.bars(dist["domains_kept"], "Domains of kept documents (top 15)", "domains"),
            figures.bars(dist["tlds_kept"], "Top-level domains", "tlds", second=dist["tlds_input"], labels=("kept", "input")),
            figures.bars(dist["sources_kept"], "Input files", "sources", second=dist["sources_rejected"])]
    parts.append("<div class='grid'>" + "".join(_figure(f) for f in figs) + "</div>")

    noise = dim["noise"]
    parts.append("<h3 id='dim-noise'>2. Noise</h3>")
    parts.append(f"<p class='numbers'>Rejected <b>{pct(t['rejected'] / (t['documents'] or 1))}</b> of readable documents; "
                 f"boilerplate lines removed (c4) <b>{num(noise['boilerplate_lines_removed'])}</b> in "
                 f"{num(noise['boilerplate_docs'])} documents ({num(noise['boilerplate_chars_removed'])} characters); "
                 f"normalization changed {num(noise['normalize_changed_docs'])} documents; invalid UTF-8 repaired "
                 f"{num(noise['invalid_utf8_repaired'])}; in the kept sample of {num(noise['sample_documents'])} documents: "
                 f"{num(noise['sample_replacement_chars'])} replacement characters (U+FFFD) in {num(noise['sample_replacement_docs'])} "
                 f"documents, mojibake patterns in {num(noise['sample_mojibake_docs'])} (fix_mojibake "
                 f"{e(noise['fix_mojibake'])}).</p>")
    parts.append(_figure(figures.bars([[r, s] for r, _, s in noise["rule_share"]], "Share of readable documents rejected per rule (top 15)",
                                      "noise", color=figures.HERE, xlabel="share of documents", percent=True), wide=True))

    div = dim["diversity"]
    parts.append("<h3 id='dim-diversity'>3. Diversity</h3>")
    grams = div.get("distinct_ngram_ratio") or {}
    dup_rows = [[st, num(c["removed"]), pct(c["rate"]), num(c["clusters"]),
                 ", ".join(f"{n}×" for _, n in c["largest"][:5]) or "–"] for st, c in div["duplicates"].items()]
    parts.append(f"<p class='numbers'>On {num(div.get('documents'))} kept documents: distinct n-gram ratio "
                 f"1-gram <b>{num(grams.get('1'))}</b>, 2-gram <b>{num(grams.get('2'))}</b>, 3-gram <b>{num(grams.get('3'))}</b>; "
                 f"compression ratio (raw / zlib) <b>{num(div.get('compression_ratio'))}</b> (higher: more repetitive).</p>")
    if dup_rows:
        parts.append(table(["dedup stage", "removed", "near-duplicate rate", "clusters", "largest clusters"], dup_rows, {1, 2, 3}))
    figs = []
    if div.get("compression_per_doc"):
        c = div["compression_per_doc"]
        figs.append(figures.histogram(c["edges"], c["counts"], "Compression ratio per kept document", "compression",
                                      "raw bytes / zlib bytes"))
    sizes = [(st, c["size_histogram"]) for st, c in div["duplicates"].items() if c["size_histogram"]]
    for st, hist in sizes:
        figs.append(figures.bars([[f"{s} copies", n] for s, n in hist], f"Cluster sizes ({st})", f"clusters-{st}", xlabel="clusters"))
    if figs:
        parts.append("<div class='grid'>" + "".join(_figure(f) for f in figs) + "</div>")

    tm = dim["timeliness"]
    parts.append("<h3 id='dim-timeliness'>4. Timeliness</h3>")
    if tm["months_kept"] or tm["months_rejected"]:
        allm = [m for m, _ in tm["months_kept"] + tm["months_rejected"]]
        parts.append(f"<p class='numbers'>Crawl dates from <b>{e(min(allm))}</b> to <b>{e(max(allm))}</b>; without a date: "
                     f"{num(tm['no_date_kept'])} kept, {num(tm['no_date_rejected'])} rejected.</p>")
        parts.append(_figure(figures.months(tm["months_kept"], tm["months_rejected"], "Documents per crawl month"), wide=True))
    else:
        parts.append("<p>No crawl dates in this run.</p>")

    pv = dim["privacy"]
    parts.append("<h3 id='dim-privacy'>5. Privacy and ethics</h3>")
    pii = pv["pii"]
    if pii:
        parts.append(f"<p class='numbers'>PII {e(pv['mode'] or '')} (types {e(', '.join(pv['types'] or []))}): "
                     + "; ".join(f"<b>{num(v['sum'])}</b> {e(k)} in {num(v['docs'])} documents" for k, v in pii.items())
                     + f". Flagged-word filter rejected {num(pv['word_filter_rejected'])}; URL filter rejected "
                     f"{num(pv['url_filter_rejected'])}.</p>")
        parts.append(_figure(figures.bars([[k, v["sum"]] for k, v in sorted(pii.items(), key=lambda x: -x[1]["sum"])],
                                          "PII found by kind", "pii", second=[[k, v["docs"]] for k, v in pii.items()],
                                          labels=("found", "documents"), xlabel="count")))
    else:
        parts.append("<p>The run had no PII stage.</p>")
    parts.append("</section>")
    return "".join(parts)


def _doc(doc: dict, kept: bool = False) -> str:
    values = " ".join(f"<code>{e(k)}={e(v)}</code>" for k, v in doc["values"].items())
    where = f" · shown from character {num(doc['snippet_start'])}" if doc["snippet_start"] else ""
    more = "…" if doc["snippet_start"] + len(doc["snippet"]) < doc["chars"] else ""
    hl = "" if kept else (" · <mark>highlighted</mark>: what triggered the rule" if doc["highlight"] else "")
    return (f"<div class='doc{' kept' if kept else ''}'><div class='meta'><b>{e(doc['id'])}</b> · {e(doc['url'] or 'no url')}"
            f" · {num(doc['chars'])} characters{where}{hl}<br>{values}</div>"
            f"<pre class='text'>{'…' if doc['snippet_start'] else ''}{highlighted(doc['snippet'], doc['spans'])}{more}</pre></div>")


def _samples(d: dict) -> str:
    samples = {k: v for k, v in d["samples"].items() if not k.startswith("__")}
    top = {r for r, _, _ in d["totals"]["top_reasons"]}
    order = [r["reason"] for s in d["funnel"] for r in s["rules"]]
    parts = ["<section id='samples'><h2>Rejected samples</h2><p class='note'>For each reason up to "
             f"{d['collection']['samples_per_reason']} rejected documents (chosen by a seeded hash of the id), with the "
             "metric values of the rejecting stage; the part that triggered the rule is highlighted where it can be located. "
             "Text is shown as text: markup in a document never runs here.</p>"]
    stage = stage_seen = None
    shown_in_stage, open_more = 0, False
    order = [r for r in order if r in samples]
    for reason in order:
        s = samples.get(reason)
        if s is None:
            continue
        st = reason.split(".", 1)[0]
        if st != stage:
            parts.append(f"<h3>{e(st)}</h3>")
            stage = st
        docs = "".join(_doc(x) for x in s["docs"]) or "<p class='note'>No sample read (text budget spent).</p>"
        shown_in_stage = shown_in_stage + 1 if st == stage_seen else 1
        if st != stage_seen:
            stage_seen = st
        if shown_in_stage == 7:
            rest = [r for r in order if r.split(".", 1)[0] == st and r in samples][6:]
            parts.append(f"<details><summary>{len(rest)} more reasons of {e(st)}</summary><div style='margin-left:18px'>")
            open_more = True
        parts.append(f"<details{' open' if reason in top else ''}><summary><code>{e(reason)}</code> — {_docs(s['total'])}, "
                     f"{len(s['docs'])} shown</summary>{docs}</details>")
        nxt = order[order.index(reason) + 1] if order.index(reason) + 1 < len(order) else None
        if open_more and (nxt is None or nxt.split(".", 1)[0] != st):
            parts.append("</div></details>")
            open_more = False
    parts.append("</section>")
    return "".join(parts)


def _docs(n: int) -> str:
    return f"{num(n)} document" + ("" if n == 1 else "s")


def _kept(d: dict) -> str:
    s = d["samples"].get("__kept__", {"docs": [], "total": 0})
    docs = "".join(_doc(x, kept=True) for x in s["docs"])
    return (f"<section id='kept-sample'><h2>Kept sample</h2><p class='note'>{len(s['docs'])} of {num(s['total'])} kept documents "
            f"at random (seeded), to judge precision.</p>{docs}</section>")
