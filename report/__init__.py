"""The data-quality report of a run: ``report.html`` (one offline page) and ``report_data.json``.

    import report
    report.build(run_dir) -> path of the written report.html

``crawlsift report OUTPUT_DIR`` rebuilds it; ``crawlsift report --compare RUN_A RUN_B`` sets two
runs side by side (``report.cli.main``)."""

from __future__ import annotations

import json

from report.data import NotARun, collect

__all__ = ["build", "collect", "NotARun", "render", "write"]


def render(data: dict) -> str:
    from report.page import render as _render

    return _render(data)


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def write(run_dir: str, data: dict, page: str, output: str | None = None) -> str:
    """Write the page (to ``output`` or ``run_dir/report.html``) and ``report_data.json`` beside
    the run; return the page's path."""
    from ingest.writer import OutputDir

    out = OutputDir(run_dir)
    out.write_bytes("report_data.json", json.dumps(_jsonable(data), indent=1, default=str).encode() + b"\n")
    if output is None:
        out.write_bytes("report.html", page.encode())
        return out.path("report.html")
    with open(output, "w", encoding="utf-8") as f:
        f.write(page)
    return output


def build(run_dir: str, output: str | None = None) -> str:
    """Collect the run's numbers, render the page, write report.html and report_data.json into
    ``run_dir`` (or the page to ``output``). Returns the page's path. Raises NotARun."""
    data = collect(run_dir)
    return write(run_dir, data, render(data), output)
