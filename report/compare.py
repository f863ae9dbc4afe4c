"""Two runs side by side (say, two threshold settings): the account and each rule's count with the
difference, the config parameters that differ, and every metric's distribution of both runs on the
same axes."""

from __future__ import annotations

import json

from report import figures
from report.page import STYLE, _figure, e, num, pct, table


def _flat(obj, prefix="") -> dict:
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list) and obj and all(isinstance(x, dict) and len(x) == 1 for x in obj):
        for x in obj:  # the stages list: [{name: params}, ...]
            (k, v), = x.items()
            out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
    else:
        out[prefix] = json.dumps(obj) if isinstance(obj, (list, dict)) else obj
    return out


def compare_data(a: dict, b: dict, names: tuple[str, str]) -> dict:
    ra, rb = a["summary"]["rejected"], b["summary"]["rejected"]
    na, nb = a["totals"]["input_documents"] or 1, b["totals"]["input_documents"] or 1
    rules = []
    for r in sorted(set(ra) | set(rb)):
        x, y = ra.get(r, 0), rb.get(r, 0)
        rules.append({"reason": r, "a": x, "b": y, "delta": y - x, "share_a": x / na, "share_b": y / nb})
    rules.sort(key=lambda r: (-abs(r["delta"]), r["reason"]))
    stages = []
    for s in dict.fromkeys(list(a["summary"]["stages"]) + list(b["summary"]["stages"])):
        x = a["summary"]["stages"].get(s, {}).get("rejected")
        y = b["summary"]["stages"].get(s, {}).get("rejected")
        stages.append({"stage": s, "a": x, "b": y, "delta": (y or 0) - (x or 0)})
    fa, fb = _flat({"stages": a["config"].get("stages", [])}), _flat({"stages": b["config"].get("stages", [])})
    config = [{"param": k, "a": fa.get(k), "b": fb.get(k)} for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
    totals = {k: {"a": a["totals"][k], "b": b["totals"][k]} for k in ("input_documents", "kept", "rejected", "unreadable")}
    return {"names": list(names), "totals": totals, "rules": rules, "stages": stages, "config_differences": config,
            "metrics": list(a["metrics"]) + [m for m in b["metrics"] if m not in a["metrics"]]}


def render(a: dict, b: dict, names: tuple[str, str]) -> tuple[str, dict]:
    c = compare_data(a, b, names)
    A, B = names
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>crawlsift compare</title><style>{STYLE}</style></head><body>",
             f"<header class='top'><h1>crawlsift: two runs compared</h1><div class='sub'>A = <code>{e(A)}</code> · "
             f"B = <code>{e(B)}</code></div></header>",
             "<nav><a href='#totals'>Totals</a><a href='#config-diff'>Config differences</a><a href='#rules'>Per rule</a>"
             "<a href='#stages'>Per stage</a><a href='#distributions'>Distributions</a></nav><main>"]
    rows = []
    for k, v in c["totals"].items():
        d = v["b"] - v["a"]
        rows.append([k.replace("_", " "), num(v["a"]), num(v["b"]), f"{d:+,}"])
    parts.append("<section id='totals'><h2>Totals</h2>" + table(["", "A", "B", "B − A"], rows, {1, 2, 3}) + "</section>")
    parts.append("<section id='config-diff'><h2>Config differences</h2>"
                 + (table(["parameter", "A", "B"], [[x["param"], x["a"], x["b"]] for x in c["config_differences"]])
                    if c["config_differences"] else "<p>The stage settings are the same.</p>") + "</section>")
    def rule_rows(rules):
        return "".join(
        f"<tr data-reason='{e(r['reason'])}' data-a='{r['a']}' data-b='{r['b']}' data-delta='{r['delta']}'>"
        f"<td><code>{e(r['reason'])}</code></td><td class=num>{num(r['a'])}</td><td class=num>{pct(r['share_a'])}</td>"
        f"<td class=num>{num(r['b'])}</td><td class=num>{pct(r['share_b'])}</td><td class=num>{r['delta']:+,}</td></tr>"
        for r in rules)
    head = ("<thead><tr><th>rule</th><th class=num>A</th><th class=num>% of A's input</th><th class=num>B</th>"
            "<th class=num>% of B's input</th><th class=num>B − A</th></tr></thead>")
    changed = [r for r in c["rules"] if r["delta"]]
    same = [r for r in c["rules"] if not r["delta"]]
    parts.append("<section id='rules'><h2>Per rule</h2><p class='note'>Largest change first. Orange bars: B removes more; "
                 "blue: A removes more.</p>" + _figure(figures.compare_rules(c["rules"], ("A", "B")), wide=True)
                 + f"<table class='compare'>{head}<tbody>{rule_rows(changed)}</tbody></table>"
                 + (f"<details><summary>{len(same)} rules removed the same number in both runs</summary>"
                    f"<table class='compare'>{head}<tbody>{rule_rows(same)}</tbody></table></details>" if same else "")
                 + "</section>")
    parts.append("<section id='stages'><h2>Per stage</h2>" + table(
        ["stage", "A rejected", "B rejected", "B − A"],
        [[s["stage"], num(s["a"]), num(s["b"]), f"{s['delta']:+,}"] for s in c["stages"]], {1, 2, 3}) + "</section>")
    figs = [_figure(figures.compare_metric(m, a["metrics"].get(m), b["metrics"].get(m), ("A", "B")))
            for m in c["metrics"]]
    parts.append("<section id='distributions'><h2>Distributions</h2><p class='note'>Solid blue: A; dashed orange: B. "
                 "Lines: kept; shaded: rejected by the metric's stage; vertical lines: each run's threshold.</p>"
                 f"<div class='grid'>{''.join(figs)}</div></section>")
    parts.append("</main></body></html>\n")
    return "".join(parts), c
