"""The data-quality report (issue 15): built from a real run over ../shared/data/crawl, checked as
data, as HTML, and in headless Chromium (Playwright driving the system Chromium).

Browser tests carry the ``browser`` marker and run in the default suite (``make test`` installs
Chromium from Debian's packages when it is missing). Without Chromium or Playwright they are
skipped with a reason that ``-ra`` prints at the end of every run, in capitals."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from report import build
from report.cli import main as report_main
from report.figures import unique_ids

CHROMIUM = os.environ.get("CRAWLSIFT_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path("/tmp/report-shots")
STAGES = ["normalize", "length", "langid", "gopher_repetition", "gopher_quality", "c4", "fineweb", "exact_dedup", "pii"]
SCRIPT = "<script>alert(1)</script>"

browser = pytest.mark.browser


def _browser_missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "BROWSER TESTS DID NOT RUN: playwright is not installed (.venv/bin/pip install playwright)"
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return f"BROWSER TESTS DID NOT RUN: no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


needs_browser = pytest.mark.skipif(_browser_missing() is not None, reason=_browser_missing() or "")


def _hostile_input(folder: Path) -> Path:
    """English documents whose text and URL carry markup: one rejected by c4's curly-bracket rule
    (a rare reason, so it is always among the samples), one kept."""
    prose = ("The committee met on Tuesday to discuss the new budget for the library and the school. "
             "Members agreed that the reading room should open earlier in the morning, and that the "
             "children's section needs more books about science and history. A vote was held and the "
             "proposal passed with a clear majority. The next meeting will take place in the spring, "
             "when the final numbers are known and the builders have finished their work on the roof. ")
    more = ("After the meeting, several parents stayed to talk with the teachers about the plans for the summer. "
            "They asked whether the garden behind the school could be used for lessons, and the head teacher said "
            "she would look into it. Everyone was pleased with how the evening went, and the tea was very good. "
            "Local newspapers reported on the decision the following week, with photographs of the old building. ")
    docs = [
        {"id": "hostile-curly", "url": "http://hostile.example/<img src=x onerror=alert(2)>",
         "text": f"{prose}\nThe page said {SCRIPT} and then {{ this }} was printed.\n{more}"},
        {"id": "hostile-kept", "url": "http://hostile.example/kept", "text": f"{prose}\nIt also said &lt;b&gt; {SCRIPT} there.\n{more}"},
    ]
    path = folder / "hostile.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _run(out: Path, inputs: list[str], data: dict | None = None) -> Path:
    from cluster.config import build_config
    from cluster.run import run_pipeline

    data = data or {}
    config = build_config(data, inputs=inputs, output=str(out), stages=None if "stages" in data else STAGES)
    run_pipeline(config, progress=False)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, crawl_dir, ray_local):
    base = tmp_path_factory.mktemp("report")
    hostile = _hostile_input(base)
    inputs = [str(crawl_dir / "jsonl" / "*"), str(crawl_dir / "warc" / "*"), str(hostile)]
    a = _run(base / "run_a", inputs)
    stricter = {"stages": [{s: ({"min_doc_words": 150} if s == "gopher_quality" else {"min_num_sentences": 8} if s == "c4" else {})}
                           for s in STAGES]}
    b = _run(base / "run_b", inputs, stricter)
    return base, a, b


@pytest.fixture(scope="module")
def built(runs):
    base, a, _ = runs
    page = build(str(a))
    return a, Path(page), json.loads((a / "report_data.json").read_text()), json.loads((a / "summary.json").read_text())


def test_report_numbers_match_the_account(built):
    run, page, data, summary = built
    assert page == run / "report.html" and page.stat().st_size > 10_000
    assert data["totals"]["input_documents"] == summary["input_documents"]
    assert data["totals"]["kept"] == summary["kept"]
    funnel = {r["reason"]: r["count"] for s in data["funnel"] for r in s["rules"]}
    assert funnel == summary["rejected"]
    assert [s["stage"] for s in data["funnel"]] == list(summary["stages"])  # run order
    for s in data["funnel"]:
        counts = [r["count"] for r in s["rules"]]
        assert counts == sorted(counts, reverse=True)  # largest first within a stage
    top = sorted(summary["rejected"].items(), key=lambda x: (-x[1], x[0]))[:3]
    assert [r for r, _, _ in data["totals"]["top_reasons"]] == [r for r, _ in top]
    # Distributions: every metric column, kept + rejected adding up to the documents that reached it.
    m = data["metrics"]["lang_score"]
    assert m["thresholds"][0]["value"] == 0.65 and m["stage"] == "langid"
    assert sum(m["n"].values()) == summary["stages"]["langid"]["documents_in"]
    assert sum(m["counts"]["rejected here"]) == summary["stages"]["langid"]["rejected"]
    words = data["metrics"]["gopher_quality_words"]
    assert [t["value"] for t in words["thresholds"]][0] == 50
    for col in ("length_chars", "c4_sentences", "fineweb_line_punct_ratio", "pii_emails"):
        assert col in data["metrics"]
    # Samples: bounded per reason, every reason with a sample, text read from few row groups.
    for reason, s in data["samples"].items():
        assert len(s["docs"]) <= (10 if reason == "__kept__" else 5)
    assert set(summary["rejected"]) <= set(data["samples"])
    assert data["collection"]["text_row_groups_read"] <= 24
    curly = data["samples"]["c4.curly_bracket"]["docs"]
    hostile = [d for d in curly if d["id"].endswith("hostile-curly")]
    assert hostile and hostile[0]["highlight"] and any(hostile[0]["snippet"][s:e] in "{}" for s, e in hostile[0]["spans"])
    dims = data["dimensions"]
    assert dims["distribution"]["languages_kept"][0][0] == "en"
    assert dims["timeliness"]["months_kept"] and dims["privacy"]["pii"]
    assert 0 < dims["diversity"]["distinct_ngram_ratio"]["1"] < 1 and dims["diversity"]["compression_ratio"] > 1


def test_page_escapes_crawled_text_and_ids_are_unique(built):
    _, page, _, _ = built
    text = page.read_text()
    assert "<script" not in text.lower()  # neither ours nor the crawl's
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(2)&gt;" in text
    ids = re.findall(r'\bid="([^"]+)"', text) + re.findall(r"\bid='([^']+)'", text)
    assert len(ids) == len(set(ids)) and len(ids) > 100
    assert "http://" not in re.sub(r"<pre class='text'>.*?</pre>|<div class='meta'>.*?</div>|<pre class='config'>.*?</pre>|"
                                   r"<td>[^<]*</td>|<code>[^<]*</code>|xmlns(:xlink)?=\"[^\"]*\"", "", text, flags=re.S)


def test_svg_ids_prefixed_per_figure():
    svg = ('<svg><defs><clipPath id="p1"><rect/></clipPath><path id="m2"/></defs>'
           '<g clip-path="url(#p1)"><use xlink:href="#m2"/><a href="#elsewhere"/></g></svg>')
    a, b = unique_ids(svg, "fa"), unique_ids(svg, "fb")
    ids_a, ids_b = set(re.findall(r'id="([^"]+)"', a)), set(re.findall(r'id="([^"]+)"', b))
    assert ids_a == {"fa-p1", "fa-m2"} and not ids_a & ids_b
    assert 'url(#fa-p1)' in a and 'xlink:href="#fa-m2"' in a and 'href="#elsewhere"' in a


def test_cli_rebuilds_and_refuses_a_non_run(built, tmp_path, capsys):
    run, _, _, _ = built
    out = tmp_path / "again.html"
    assert report_main([str(run), "-o", str(out)]) == 0
    assert out.stat().st_size > 10_000
    capsys.readouterr()
    assert report_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("crawlsift: error:") and "not a finished crawlsift run" in err[0]
    assert report_main([]) == 2
    assert report_main(["--compare", str(run)]) == 2


def test_compare_two_threshold_settings(runs, tmp_path):
    _, a, b = runs
    out = tmp_path / "compare.html"
    assert report_main(["--compare", str(a), str(b), "-o", str(out)]) == 0
    data = json.loads((tmp_path / "compare_data.json").read_text())
    diff = {d["param"]: (d["a"], d["b"]) for d in data["config_differences"]}
    assert diff["stages.gopher_quality.min_doc_words"] == (50, 150)
    assert diff["stages.c4.min_num_sentences"] == (5, 8)
    rules = {r["reason"]: r for r in data["rules"]}
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    words = rules["gopher_quality.too_few_words"]
    assert (words["a"], words["b"]) == (sa["rejected"]["gopher_quality.too_few_words"], sb["rejected"]["gopher_quality.too_few_words"])
    assert words["delta"] > 0 and data["totals"]["kept"]["b"] < data["totals"]["kept"]["a"]
    page = out.read_text()
    assert "data-reason='gopher_quality.too_few_words'" in page and f"data-delta='{words['delta']}'" in page
    assert page.count("<svg") == len(data["metrics"]) + 1  # an overlay per metric + the per-rule change


@needs_browser
@browser
def test_page_in_headless_chromium(built, tmp_path):
    from playwright.sync_api import sync_playwright

    _, page_path, data, summary = built
    SHOTS.mkdir(parents=True, exist_ok=True)
    url = page_path.resolve().as_uri()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                     args=["--no-sandbox"])
        page = chromium.new_page(viewport={"width": 1366, "height": 900})
        errors, requests, dialogs = [], [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda r: requests.append(r.url) if r.url != url else None)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url, wait_until="load")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # everything laid out
        page.wait_for_timeout(200)
        assert errors == [] and requests == [] and dialogs == []

        sizes = page.eval_on_selector_all("svg.fig", "els => els.map(e => [e.dataset.figure, e.getBoundingClientRect().width, "
                                                      "e.getBoundingClientRect().height])")
        assert len(sizes) >= len(data["metrics"]) + 5
        assert all(w > 50 and h > 50 for _, w, h in sizes), [s for s in sizes if not (s[1] > 50 and s[2] > 50)]

        rows = page.eval_on_selector_all("tr.rule", "els => els.map(e => [e.dataset.reason, e.dataset.count, e.cells[2].textContent])")
        assert {r: int(c) for r, c, _ in rows} == summary["rejected"]
        assert all(int(shown.replace(",", "")) == int(c) for _, c, shown in rows)
        stages = page.eval_on_selector_all("tr.stage[data-stage]", "els => els.map(e => [e.dataset.stage, +e.dataset.rejected])")
        assert stages == [[n, s["rejected"]] for n, s in summary["stages"].items()]
        assert page.get_attribute("tr.stage[data-kept]", "data-kept") == str(summary["kept"])

        ids = page.evaluate("Array.from(document.querySelectorAll('[id]')).map(e => e.id)")
        assert len(ids) == len(set(ids))
        # The crawled <script> is text on the page, not an element; nothing ran.
        assert page.evaluate("document.querySelectorAll('script').length") == 0
        assert page.locator("pre.text", has_text=SCRIPT).count() >= 1
        assert dialogs == []

        for name in ("full",):
            shot = tmp_path / f"report-{name}.png"
            page.screenshot(path=str(shot), full_page=True)
            shutil.copy(shot, SHOTS / shot.name)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = false)")
        for anchor in ("summary", "funnel", "distributions", "dimensions", "samples"):
            page.goto(f"{url}#{anchor}")
            shot = tmp_path / f"report-{anchor}.png"
            page.screenshot(path=str(shot))
            shutil.copy(shot, SHOTS / shot.name)
        chromium.close()


@needs_browser
@browser
def test_compare_page_in_headless_chromium(runs, tmp_path):
    from playwright.sync_api import sync_playwright

    _, a, b = runs
    out = tmp_path / "compare.html"
    assert report_main(["--compare", str(a), str(b), "-o", str(out)]) == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                     args=["--no-sandbox"])
        page = chromium.new_page(viewport={"width": 1366, "height": 900})
        errors, requests = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: requests.append(r.url) if r.url != out.as_uri() else None)
        page.goto(out.as_uri())
        assert errors == [] and requests == []
        sizes = page.eval_on_selector_all("svg.fig", "els => els.map(e => e.getBoundingClientRect().width * e.getBoundingClientRect().height)")
        assert sizes and all(s > 0 for s in sizes)
        ids = page.evaluate("Array.from(document.querySelectorAll('[id]')).map(e => e.id)")
        assert len(ids) == len(set(ids))
        page.screenshot(path=str(tmp_path / "compare-full.png"), full_page=True)
        shutil.copy(tmp_path / "compare-full.png", SHOTS / "compare-full.png")
        chromium.close()
