"""The bundled synthetic crawl (ingest/sample.py): deterministic, well formed in both formats,
and labelled truthfully. The checks re-derive every label from the files themselves, with two
independent WARC parsers and an independent shingle Jaccard, rather than trusting the generator."""

from __future__ import annotations

import gzip
import html
import json
import re
import zlib
from collections import Counter
from pathlib import Path

import orjson
import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType
from warcio.archiveiterator import ArchiveIterator as WarcioIterator

from ingest.sample import CORRUPTIONS, LABELS, main, write_sample

DOCS = 2000
SHARD = 150  # small, so that both formats get several shards
NON_ENGLISH = {"zh", "ja", "ru", "de", "fr", "es", "ar", "hi"}
ARTICLE = re.compile(r"<article>(.*?)</article>", re.S)
PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.S)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict, list[dict]]:
    out = tmp_path_factory.mktemp("sample")
    manifest = write_sample(out, DOCS, seed=0, shard_docs=SHARD)
    labels = [orjson.loads(line) for line in (out / "labels.jsonl").read_bytes().splitlines()]
    return out, manifest, labels


def jsonl_lines(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).split(b"\n")[:-1]


def article_text(page: bytes) -> str:
    """The document text back from a page: the article's <p> elements, as the module documents."""
    article = ARTICLE.search(page.decode("utf-8")).group(1)
    return "\n\n".join(html.unescape(p.replace("<br>\n", "\n")) for p in PARAGRAPH.findall(article))


def fastwarc_records(path: Path) -> list:
    with open(path, "rb") as f:
        records = []
        for r in ArchiveIterator(f, record_types=WarcRecordType.any_type, parse_http=False):
            digest_ok = r.verify_block_digest(consume=False)
            records.append((r.record_type, dict(r.headers), r.reader.read(), digest_ok))
        return records


def texts_by_source_id(out: Path, labels: list[dict]) -> dict[str, str]:
    """Every document's text, read from the files: JSONL ``text``, or the WARC page's article."""
    texts = {}
    for name in {entry["file"] for entry in labels}:
        if name.endswith(".jsonl.gz"):
            for line in jsonl_lines(out / name):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if "text" in record:
                    texts[record["id"]] = record["text"]
        else:
            for kind, headers, block, _ in fastwarc_records(out / name):
                if kind == WarcRecordType.response and b"text/html" in block.split(b"\r\n\r\n", 1)[0]:
                    texts[headers["WARC-Record-ID"]] = article_text(block.split(b"\r\n\r\n", 1)[1])
    return texts


def jaccard_5gram(a: str, b: str) -> float:
    def shingles(text: str) -> set:
        w = text.lower().split()
        return {tuple(w[i : i + 5]) for i in range(len(w) - 4)}

    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_same_seed_same_bytes_other_seed_differs(sample, tmp_path):
    out, manifest, _ = sample
    again = write_sample(tmp_path / "again", DOCS, seed=0, shard_docs=SHARD)
    other = write_sample(tmp_path / "other", DOCS, seed=1, shard_docs=SHARD)
    assert again == manifest
    for name in [*manifest["files"], "labels.jsonl"]:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    assert (tmp_path / "other" / "labels.jsonl").read_bytes() != (out / "labels.jsonl").read_bytes()
    assert (tmp_path / "other" / "crawl-00000.jsonl.gz").read_bytes() != (out / "crawl-00000.jsonl.gz").read_bytes()


def test_labels_cover_every_record_and_category(sample):
    out, manifest, labels = sample
    assert len(labels) == DOCS
    counts = Counter(entry["label"] for entry in labels)
    assert set(counts) == set(LABELS)
    assert counts == manifest["labels"]
    assert manifest["documents"] + manifest["corrupt_records"] == DOCS
    assert counts["corrupt"] == manifest["corrupt_records"] >= 3
    assert counts["clean"] == max(counts.values())
    assert NON_ENGLISH <= {e["lang"] for e in labels if e["label"] == "non_english"}
    ids = [e["source_id"] for e in labels if e["source_id"] is not None]
    assert len(ids) == len(set(ids)) == manifest["documents"]
    assert sorted(p.name for p in out.glob("crawl-*")) == manifest["files"]
    warc_docs = sum(e["file"].endswith(".warc.gz") for e in labels)
    assert 0.15 * DOCS < warc_docs < 0.25 * DOCS


def test_jsonl_shards_hold_the_labelled_records(sample):
    out, manifest, labels = sample
    by_file: dict[str, list[dict]] = {}
    for entry in labels:
        by_file.setdefault(entry["file"], []).append(entry)
    for name in (n for n in manifest["files"] if n.endswith(".jsonl.gz")):
        lines = jsonl_lines(out / name)
        assert len(lines) == len(by_file[name]) <= SHARD
        for line, entry in zip(lines, by_file[name]):
            if entry["label"] == "corrupt":
                continue
            record = orjson.loads(line)
            assert list(record) == ["id", "text", "url", "date"]
            assert record["id"] == entry["source_id"] and re.fullmatch(r"doc-\d{9}", record["id"])
            assert record["url"].startswith("https://")
            assert re.fullmatch(r"2024-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["date"])
            text = record["text"]
            if entry["label"] == "clean":
                assert 80 <= len(text.split()) <= 1500 and text[-1] in ".!?"
            elif entry["label"] == "empty":
                assert not text.strip()
            elif entry["label"] == "very_long":
                assert 200_000 <= len(text) <= 500_100


def test_warc_is_valid_for_fastwarc(sample):
    out, manifest, labels = sample
    warc_files = [n for n in manifest["files"] if n.endswith(".warc.gz")]
    assert len(warc_files) > 1
    for name in warc_files:
        records = fastwarc_records(out / name)
        assert records[0][0] == WarcRecordType.warcinfo
        assert all(digest_ok for *_, digest_ok in records)
        html_ids, png = [], 0
        for (kind, headers, block, _), following in zip(records, records[1:] + [None]):
            assert headers["WARC-Record-ID"].startswith("<urn:uuid:")
            assert int(headers["Content-Length"]) == len(block)
            if kind == WarcRecordType.request:
                assert following[0] == WarcRecordType.response
                assert headers["WARC-Concurrent-To"] == following[1]["WARC-Record-ID"]
            if kind == WarcRecordType.response:
                http_head = block.split(b"\r\n\r\n", 1)[0]
                assert http_head.startswith(b"HTTP/1.1 200 OK\r\n")
                assert headers["Content-Type"] == "application/http; msgtype=response"
                if b"Content-Type: text/html; charset=utf-8" in http_head:
                    html_ids.append(headers["WARC-Record-ID"])
                else:
                    png += b"Content-Type: image/png" in http_head
        assert html_ids == [e["source_id"] for e in labels if e["file"] == name]
        assert png >= 1
        assert sum(kind == WarcRecordType.metadata for kind, *_ in records) == 1
        # one gzip member per record, as Common Crawl writes them
        assert _gzip_members((out / name).read_bytes()) == len(records)


def _gzip_members(data: bytes) -> int:
    members = 0
    while data:
        inflater = zlib.decompressobj(31)
        inflater.decompress(data)
        assert inflater.eof
        data = inflater.unused_data
        members += 1
    return members


def test_warc_is_valid_for_warcio(sample):
    out, manifest, labels = sample
    pages = 0
    for name in (n for n in manifest["files"] if n.endswith(".warc.gz")):
        with open(out / name, "rb") as f:
            for record in WarcioIterator(f, check_digests="raise"):
                body = record.content_stream().read()
                if record.rec_type == "response" and record.http_headers.get_header("Content-Type").startswith("text/html"):
                    pages += 1
                    assert body.startswith(b"<!DOCTYPE html>") and b"<nav" in body and b"<script" in body
    assert pages == sum(e["file"].endswith(".warc.gz") for e in labels)


def test_duplicates_measured_from_the_files(sample):
    out, _, labels = sample
    texts = texts_by_source_id(out, labels)
    near = [e for e in labels if e["label"] == "near_duplicate"]
    assert near
    for entry in near:
        measured = jaccard_5gram(texts[entry["source_id"]], texts[entry["dup_of"]])
        assert measured == pytest.approx(entry["jaccard"], abs=1e-12)
        assert 0.5 <= measured <= 0.95
    exact = [e for e in labels if e["label"] == "exact_duplicate"]
    for entry in exact:
        assert texts[entry["source_id"]] == texts[entry["dup_of"]] and entry["jaccard"] == 1.0
    originals = {e["source_id"]: e for e in labels}
    position = {e["source_id"]: i for i, e in enumerate(labels) if e["source_id"]}
    for entry in near + exact:
        assert originals[entry["dup_of"]]["label"] == "clean"
        assert position[entry["dup_of"]] < position[entry["source_id"]]
    assert any(e["file"] != originals[e["dup_of"]]["file"] for e in near + exact)  # across shards/formats


def test_corrupt_lines_are_what_labels_say(sample):
    out, _, labels = sample
    corrupt = [e for e in labels if e["label"] == "corrupt"]
    assert {e["corruption"] for e in corrupt} == set(CORRUPTIONS)
    for entry in corrupt:
        assert entry["source_id"] is None and entry["file"].endswith(".jsonl.gz")
        line = jsonl_lines(out / entry["file"])[entry["position"] - 1]
        if entry["corruption"] == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                line.decode("utf-8")
        elif entry["corruption"] == "truncated_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line.decode("utf-8"))
        else:
            record = json.loads(line)
            assert "text" not in record and "id" in record


def test_rerun_replaces_a_bigger_sample_and_cli_prints_one_line(tmp_path, capsys):
    reported = []
    write_sample(tmp_path, 400, seed=3, shard_docs=50, progress=reported.append)
    assert reported == [400]
    assert main(["--output", str(tmp_path), "--docs", "120", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and "corrupt" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crawl-00000.jsonl.gz", "crawl-00000.warc.gz", "labels.jsonl"]
    assert len((tmp_path / "labels.jsonl").read_bytes().splitlines()) == 120
