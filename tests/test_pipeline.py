"""End to end on a real local Ray runtime: the account is exact, ids are stable, bad input is
located, and a killed run resumes to the same result."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cluster.config import build_config
from cluster.run import run_pipeline

ROOT = Path(__file__).resolve().parents[1]


def run(inputs, output, stages=("length",), **data):
    config = build_config(data, inputs=[str(p) for p in inputs], output=str(output), stages=list(stages))
    return run_pipeline(config, progress=False)


def read_dir(path: Path):
    files = sorted(path.glob("*.parquet"))
    return pq.read_table(files) if files else None


def assert_account_exact(out: Path, summary: dict) -> tuple[list[str], list[str]]:
    assert summary["input_documents"] == summary["kept"] + sum(summary["rejected"].values()) + sum(summary["unreadable"].values())
    kept, rejected = read_dir(out / "kept"), read_dir(out / "rejected")
    kept_ids = kept.column("id").to_pylist() if kept else []
    rejected_ids = rejected.column("id").to_pylist() if rejected else []
    assert len(kept_ids) == summary["kept"]
    assert len(rejected_ids) == sum(summary["rejected"].values())
    every = kept_ids + rejected_ids
    assert len(every) == len(set(every)), "an id appears twice across kept/ and rejected/"
    if kept:
        assert kept.column("rejected_by").null_count == kept.num_rows
        assert not any(c.startswith("_") for c in kept.column_names)
    if rejected:
        reasons = rejected.column("rejected_by").value_counts().to_pylist()
        assert {r["values"]: r["counts"] for r in reasons} == summary["rejected"]
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sum(1 for e in errors if e["action"] == "skipped") == sum(summary["unreadable"].values())
    return kept_ids, rejected_ids


def test_real_crawl_end_to_end(ray_local, crawl_dir, tmp_path):
    inputs = [crawl_dir / "jsonl" / "*", crawl_dir / "warc" / "*"]
    summary = run(inputs, tmp_path / "a", stages=["length"])
    kept_ids, rejected_ids = assert_account_exact(tmp_path / "a", summary)
    # 2,927 JSONL/TSV documents and 86 HTML responses + 1 WET conversion, less 2 HPLT records with
    # no text and 1 clipped WARC record, which are unreadable.
    assert summary["input_documents"] == 2927 + 85 + 1
    assert summary["unreadable"] == {"no_text": 2, "truncated_record": 1}
    assert summary["skipped_records"]["warc_request"] == 55
    assert summary["repaired"] == {"invalid_utf8": 1}
    assert summary["stages"]["length"]["documents_in"] == summary["input_documents"] - 3
    assert summary["bytes_kept"] <= summary["bytes_in"]
    saved = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert saved["kept"] == summary["kept"] and (tmp_path / "a" / "report.html").stat().st_size > 0

    # A rerun into a new directory gives the same ids to the same documents.
    again = run(inputs, tmp_path / "b", stages=["length"])
    kept_b, rejected_b = assert_account_exact(tmp_path / "b", again)
    assert sorted(kept_b) == sorted(kept_ids) and sorted(rejected_b) == sorted(rejected_ids)

    # Rerunning over the finished directory does no work and keeps the account.
    resumed = run(inputs, tmp_path / "a", stages=["length"])
    assert resumed["input_files_processed_this_run"] == 0
    assert resumed["kept"] == summary["kept"]


def test_bad_input_directory(ray_local, crawl_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = [{"id": f"g{i}", "text": f"good document number {i} " * 5} for i in range(300)]
    with gzip.open(src / "good.jsonl.gz", "wb") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in good[:100]))
    # A truncated gzip file: the records before the cut still flow.
    with gzip.open(src / "cut.jsonl.gz", "wb") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in good[100:200]) * 40)
    data = (src / "cut.jsonl.gz").read_bytes()
    (src / "cut.jsonl.gz").write_bytes(data[: len(data) * 2 // 3])
    # A broken JSON line and invalid UTF-8 among good lines.
    lines = [orjson.dumps(r) for r in good[200:300]]
    lines[10] = b'{"id": "broken", "text": "no end'
    lines[20] = b'{"id": "badutf8", "text": "bad \xff byte"}'
    (src / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    # A truncated WARC file and a file no reader takes.
    warc = (crawl_dir / "warc" / "dolma_sample-0001.warc.gz").read_bytes()
    (src / "cut.warc.gz").write_bytes(warc[: len(warc) // 2])
    (src / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))

    summary = run([src], tmp_path / "out", stages=["length"])
    assert_account_exact(tmp_path / "out", summary)
    assert summary["unreadable"] == {
        "bad_json": 1,
        "truncated_compressed_stream": 1,
        "truncated_record": 1,
        "unsupported_format": 1,
    }
    assert summary["repaired"] == {"invalid_utf8": 1}
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    located = {(Path(e["file"]).name, e["reason"]): e["position"] for e in errors}
    assert located[("mixed.jsonl", "bad_json")] == "11"
    assert located[("mixed.jsonl", "invalid_utf8")] == "21"
    assert ("image.png", "unsupported_format") in located
    # No good document is lost: all 100 + 99 (+ the repaired one) from the intact files, and every
    # complete line before the cut of the truncated file.
    kept = read_dir(tmp_path / "out" / "kept")
    source_ids = set(kept.column("source_id").to_pylist())
    assert {f"g{i}" for i in range(100)} <= source_ids
    assert {r["id"] for r in good[200:300]} - {"g210", "g220"} <= source_ids
    assert "badutf8" in source_ids
    cut_docs = pc.sum(pc.starts_with(kept.column("source"), str(src / "cut.jsonl.gz"))).as_py()
    assert cut_docs > 100
    warc_docs = pc.sum(pc.starts_with(kept.column("source"), str(src / "cut.warc.gz"))).as_py()
    assert warc_docs > 0


def _make_shards(directory: Path, crawl_dir: Path, shards: int, docs: int) -> None:
    directory.mkdir()
    with gzip.open(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz") as f:
        texts = [orjson.loads(line)["text"] for line in f]
    for s in range(shards):
        rows = [{"id": str(i), "text": texts[(s * docs + i) % len(texts)][: 200 + (i % 7) * 300]} for i in range(docs)]
        (directory / f"shard-{s:03d}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "cluster.cli", "run", "--quiet", *args]


def _clean_run_then_killed_run(tmp_path: Path, args: list[str], ready) -> tuple[Path, Path, object]:
    """The run ``args`` describe, uninterrupted into ``clean/``, then again into ``resumed/``, killed
    (SIGKILL to the driver and its Ray processes) as soon as ``ready(resumed)`` returns something
    truthy; returns (clean, resumed, what ``ready`` returned last)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    clean, out = tmp_path / "clean", tmp_path / "resumed"
    subprocess.run(_cli(*args, "--output", str(clean)), check=True, env=env, cwd=ROOT, capture_output=True)
    proc = subprocess.Popen(_cli(*args, "--output", str(out)), env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, seen = time.monotonic() + 240, None
    while time.monotonic() < deadline and proc.poll() is None:
        seen = ready(out)
        if seen:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return clean, out, seen


def _rerun(args: list[str], out: Path) -> None:
    subprocess.run(_cli(*args, "--output", str(out)), check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                   capture_output=True)


@pytest.mark.parametrize("stages", [
    pytest.param("  - length: {min_words: 60}\n", id="streaming"),
    pytest.param("  - length: {min_words: 60}\n  - exact_dedup: {}\n", id="with-global-stage", marks=pytest.mark.slow),
])
def test_killed_run_resumes_to_the_same_account(crawl_dir, tmp_path, stages):
    """SIGKILL the whole run (driver and Ray) after some inputs finished their last segment; the
    rerun redoes only the rest, writes no shard twice, and its account equals an uninterrupted
    run's. With a global stage the kill lands after its reduce, in the segment that applies it."""
    shards = tmp_path / "shards"
    _make_shards(shards, crawl_dir, shards=24, docs=1500)
    config = tmp_path / "p.yaml"
    config.write_text(f"stages:\n{stages}batch_size: 200\nparallelism: 1\n")
    args = ["--config", str(config), "--input", str(shards / "*.jsonl")]
    done_dir = tmp_path / "resumed" / "_state" / "done"

    def three_done(out):
        return done_dir.is_dir() and len(list(done_dir.glob("*.json"))) >= 3

    clean, out, _ = _clean_run_then_killed_run(tmp_path, args, three_done)
    finished_before = len(list(done_dir.glob("*.json")))
    assert 3 <= finished_before < 24, f"kill landed after {finished_before} of 24 inputs; the test needs a mid-run kill"

    _rerun(args, out)
    a = json.loads((clean / "summary.json").read_text())
    b = json.loads((out / "summary.json").read_text())
    assert b["input_files_processed_this_run"] == 24 - finished_before
    for key in ("input_documents", "kept", "rejected", "unreadable", "bytes_in", "bytes_kept"):
        assert a[key] == b[key], key
    assert_account_exact(out, b)
    assert sorted(p.name for p in (out / "kept").iterdir()) == sorted(p.name for p in (clean / "kept").iterdir())
    assert not list(out.rglob(".tmp-*"))


def test_killed_mid_file_resumes_inside_the_file(crawl_dir, tmp_path):
    """One large input, SIGKILL while it is half done: the rerun continues from the file's last
    checkpoint (the rows written contiguously from its start) instead of redoing it, and ends with the
    account, the part files and the kept ids of an uninterrupted run."""
    shards = tmp_path / "shards"
    _make_shards(shards, crawl_dir, shards=1, docs=6000)
    config = tmp_path / "p.yaml"
    config.write_text("stages:\n  - gopher_repetition: {}\n  - gopher_quality: {}\nbatch_size: 200\nparallelism: 1\n")
    args = ["--config", str(config), "--input", str(shards / "*.jsonl")]

    def thousand_rows_checkpointed(out):
        points = list((out / "_state" / "progress").glob("*.json")) if (out / "_state" / "progress").is_dir() else []
        try:
            rows = json.loads(points[0].read_text())["rows"] if points else None
        except (ValueError, OSError):  # caught mid-rename
            return None
        return rows if rows and rows >= 1000 else None

    clean, out, checkpoint = _clean_run_then_killed_run(tmp_path, args, thousand_rows_checkpointed)
    assert checkpoint and 1000 <= checkpoint < 6000, f"no mid-file kill (checkpoint {checkpoint})"
    assert not list((out / "_state" / "done").glob("*.json"))

    _rerun(args, out)
    a = json.loads((clean / "summary.json").read_text())
    b = json.loads((out / "summary.json").read_text())
    assert b["rows_resumed_from_checkpoints"] >= checkpoint and b["rows_resumed_from_checkpoints"] % 200 == 0
    for key in ("input_documents", "kept", "rejected", "unreadable", "bytes_in", "bytes_kept"):
        assert a[key] == b[key], key
    assert_account_exact(out, b)
    assert sorted(p.name for p in (out / "kept").iterdir()) == sorted(p.name for p in (clean / "kept").iterdir())
    assert sorted(read_dir(out / "kept").column("id").to_pylist()) == sorted(read_dir(clean / "kept").column("id").to_pylist())
    assert not list(out.rglob(".tmp-*"))


def test_sample_corpus_ground_truth(ray_local, tmp_path):
    """The bundled sample through the CLI's default path: every labelled document is accounted
    for once, empty pages are rejected by length, corrupt records are located where they are."""
    from ingest.sample import write_sample

    write_sample(tmp_path / "sample", docs=2000, seed=3)
    summary = run([tmp_path / "sample" / "crawl-*"], tmp_path / "out", stages=["length"])
    assert_account_exact(tmp_path / "out", summary)
    labels = [json.loads(line) for line in (tmp_path / "sample" / "labels.jsonl").read_text().splitlines()]
    kept, rejected = read_dir(tmp_path / "out" / "kept"), read_dir(tmp_path / "out" / "rejected")
    outcome = dict(zip(kept.column("source_id").to_pylist(), [None] * kept.num_rows))
    outcome.update(zip(rejected.column("source_id").to_pylist(), rejected.column("rejected_by").to_pylist()))
    documents = [lab for lab in labels if lab["label"] != "corrupt"]
    repaired = sum(1 for lab in labels if lab.get("corruption") == "invalid_utf8")  # flows on, repaired
    assert {lab["source_id"] for lab in documents} <= set(outcome)
    assert len(outcome) == len(documents) + repaired
    # Empty JSONL records are rejected; an "empty" WARC page still has its <title>/<h1> text.
    empty = [lab for lab in documents if lab["label"] == "empty" and lab["file"].endswith(".jsonl.gz")]
    assert empty and all(outcome[lab["source_id"]] == "length.too_short" for lab in empty)
    errors = {(Path(e["file"]).name, e["position"]): e["reason"] for e in map(json.loads, (tmp_path / "out" / "errors.jsonl").read_text().splitlines())}
    expected = {"truncated_json": "bad_json", "missing_text": "no_text", "invalid_utf8": "invalid_utf8"}
    for lab in labels:
        if lab["label"] == "corrupt":
            assert errors[(lab["file"], str(lab["position"]))] == expected[lab["corruption"]]


def test_progress_moves_inside_a_file_and_ends_once(crawl_dir, tmp_path):
    """In a log file (stderr not a terminal): a first line before Ray starts, lines that move while
    the one input is still being read (documents and MB read), the final line printed once, and no
    Ray error-level line from langid."""
    import os
    import subprocess
    import sys
    import time

    shard = crawl_dir / "jsonl" / "dolma_CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
    env = {**os.environ, "CRAWLSIFT_PROGRESS_EVERY": "0.2"}
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "cluster.cli", "run", "--input", str(shard), "--output", str(tmp_path / "o"),
                             "--stages", "langid,gopher_repetition,gopher_quality,c4", "--batch-size", "20"],
                            cwd=Path(__file__).resolve().parents[1], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    first = proc.stderr.readline()
    first_after = time.time() - started
    rest = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, rest[-3000:]
    assert first.startswith("crawlsift: 1 input file(s), 1.2 MB") and first_after < 15, (first, first_after)
    lines = [line for line in rest.splitlines() if line.startswith("[")]
    inside = [line for line in lines if "files 0/1" in line and "documents 0 " not in line]
    assert inside, rest[-3000:]  # documents counted before the file ended
    assert any("read " in line and " MB" in line for line in lines), rest[-3000:]
    assert "starting Ray" in rest and "Ray ready in" in rest
    assert all(a != b for a, b in zip(lines, lines[1:]))
    assert "core_worker" not in rest and " E " not in rest  # no Ray error-level line (langid has no actor pool)
    assert "files 1/1" in lines[-1] and sum("files 1/1" in line for line in lines) == 1
