"""Readers on real crawl files and on every kind of bad input: nothing raises, nothing is lost."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.readers import InputSpec, detect_format, read_file, resolve_inputs
from ingest.schema import BATCH_SCHEMA


def read_all(path, spec=InputSpec(), batch_size=1000) -> pa.Table:
    (f,) = resolve_inputs([str(path)])
    batches = list(read_file(f, spec, batch_size))
    for b in batches:
        assert b.schema.equals(BATCH_SCHEMA)
    table = pa.concat_tables(batches)
    # Bookkeeping the driver relies on: contiguous sequence numbers, exactly one last row.
    assert table.column("_seq").to_pylist() == list(range(table.num_rows))
    assert table.column("_last").to_pylist() == [False] * (table.num_rows - 1) + [True]
    return table


def reasons(table) -> dict:
    return {r["values"]: r["counts"] for r in table.column("rejected_by").value_counts().to_pylist()}


def write_jsonl(path: Path, records, opener=open):
    with opener(path, "wb") as f:
        for r in records:
            f.write(r if isinstance(r, bytes) else orjson.dumps(r))
            f.write(b"\n")


# --- real crawl files -------------------------------------------------------------------------


def test_real_jsonl_shards_read_completely(crawl_dir):
    for name, expected in [
        ("olmo_c4-sample.00000-of-00001.json.gz", 1000),
        ("dolma_CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", 697),
        ("chinesewebtext_2021-43_cleared1.jsonl", 100),  # cc_net layout: text in raw_content
        ("hplt_release1.2_wide15_sample_zh.tsv.zst", 1000),  # warc2text TSV, base64 text
    ]:
        table = read_all(crawl_dir / "jsonl" / name)
        assert reasons(table) == {None: expected}, name
        texts = table.column("text").to_pylist()
        assert sum(bool(t.strip()) for t in texts) >= 0.9 * len(texts), name


def test_hplt_records_without_text_and_invalid_utf8_are_located(crawl_dir):
    table = read_all(crawl_dir / "jsonl" / "hplt_sample100_CC.jsonl.zst")
    assert reasons(table) == {None: 98, "unreadable.no_text": 2}
    details = dict(zip(table.column("source").to_pylist(), table.column("_detail").to_pylist()))
    repaired = [s for s, d in details.items() if d and d.startswith("invalid_utf8")]
    assert len(repaired) == 1 and repaired[0].endswith(":82")


def test_warc_html_responses_become_documents_and_the_rest_is_skipped_by_type(crawl_dir):
    table = read_all(crawl_dir / "warc" / "dolma_sample-0000.warc.gz")
    assert reasons(table) == {
        None: 22,
        "skipped.warc_warcinfo": 1,
        "skipped.warc_request": 22,
        "skipped.warc_metadata": 1,
        "skipped.warc_resource": 2,
    }
    docs = table.filter(pa.compute.is_null(table.column("rejected_by")))
    assert all(u.startswith("http") for u in docs.column("url").to_pylist())
    assert all(i.startswith("<urn:uuid:") for i in docs.column("source_id").to_pylist())
    assert docs.column("crawl_date").null_count == 0


def test_clueweb_quirks_bare_lf_headers_and_no_content_type(crawl_dir):
    table = read_all(crawl_dir / "warc" / "resiliparse_clueweb-quirk.warc.gz")
    assert reasons(table) == {None: 29, "skipped.warc_warcinfo": 1}
    texts = table.column("text").drop_null().to_pylist()
    # EUC-JP pages decoded to Japanese text, not mojibake.
    assert sum(any("\u3040" <= c <= "\u30ff" for c in t) for t in texts) >= 20


def test_wet_conversion_record_is_a_document(crawl_dir):
    table = read_all(crawl_dir / "warc" / "whirlwind.warc.wet.gz")
    assert reasons(table) == {None: 1, "skipped.warc_warcinfo": 1}
    assert "Escopete" in table.column("text")[1].as_py()


def test_clipped_warc_record_is_unreadable_and_located(crawl_dir):
    table = read_all(crawl_dir / "warc" / "resiliparse_clipped.warc.gz")
    assert reasons(table) == {"unreadable.truncated_record": 1}
    assert "75207 of its 88275" in table.column("_detail")[0].as_py()


# --- ids --------------------------------------------------------------------------------------


def test_colliding_source_ids_across_files_are_namespaced_and_stable(tmp_path):
    for name in ("a.jsonl", "b.jsonl"):
        write_jsonl(tmp_path / name, [{"id": str(i), "text": f"{name} {i}"} for i in range(3)])
    write_jsonl(tmp_path / "c.jsonl", [{"text": "no id here"}, {"id": "x", "text": "1"}, {"id": "x", "text": "2"}])
    ids = []
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        first = read_all(tmp_path / name).column("id").to_pylist()
        assert read_all(tmp_path / name).column("id").to_pylist() == first  # stable across reruns
        ids += first
    assert len(ids) == len(set(ids)) == 9
    a = read_all(tmp_path / "a.jsonl")
    assert a.column("source_id").to_pylist() == ["0", "1", "2"]


# --- bad input --------------------------------------------------------------------------------


def test_broken_json_line_and_missing_text_are_located_and_neighbours_flow(tmp_path):
    good = [{"id": str(i), "text": f"document {i}"} for i in range(5)]
    lines = [orjson.dumps(good[0]), b'{"id": "1", "text": "trunc', orjson.dumps(good[2]), b'{"id": "3"}', b"[1, 2]", orjson.dumps(good[4])]
    write_jsonl(tmp_path / "bad.jsonl", lines)
    table = read_all(tmp_path / "bad.jsonl")
    assert reasons(table) == {None: 3, "unreadable.bad_json": 2, "unreadable.no_text": 1}
    sources = dict(zip(table.column("source").to_pylist(), table.column("rejected_by").to_pylist()))
    assert sources[f"{tmp_path / 'bad.jsonl'}:2"] == "unreadable.bad_json"
    assert sources[f"{tmp_path / 'bad.jsonl'}:4"] == "unreadable.no_text"


def test_invalid_utf8_is_repaired_not_lost(tmp_path):
    write_jsonl(tmp_path / "u.jsonl", [b'{"id": "a", "text": "caf\xc3\xa9 \xff\xfe ok"}', orjson.dumps({"text": "fine"})])
    table = read_all(tmp_path / "u.jsonl")
    assert reasons(table) == {None: 2}
    assert table.column("text")[0].as_py() == "caf\u00e9 \ufffd\ufffd ok"
    assert table.column("_detail")[0].as_py().startswith("invalid_utf8")


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    write_jsonl(path, [{"id": str(i), "text": "word " * 50} for i in range(2000)], opener=gzip.open)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    table = read_all(path)
    r = reasons(table)
    assert r["unreadable.truncated_compressed_stream"] == 1
    assert 0 < r[None] < 2000
    # Everything read before the cut is intact and in order.
    assert table.column("source_id").to_pylist()[: r[None]] == [str(i) for i in range(r[None])]


def test_zstd_and_plain_jsonl_read_the_same(tmp_path):
    records = [{"id": str(i), "text": f"t{i}", "url": f"https://x/{i}", "date": "2024-01-02T03:04:05Z"} for i in range(50)]
    write_jsonl(tmp_path / "p.jsonl", records)
    (tmp_path / "z.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress((tmp_path / "p.jsonl").read_bytes()))
    p, z = read_all(tmp_path / "p.jsonl"), read_all(tmp_path / "z.jsonl.zst")
    for column in ("text", "url", "source_id", "crawl_date"):
        assert p.column(column).to_pylist() == z.column(column).to_pylist()
    assert p.column("crawl_date")[0].as_py().year == 2024


def test_field_mapping_including_nested_paths(tmp_path):
    write_jsonl(tmp_path / "m.jsonl", [{"doc": {"body": "hello"}, "key": "k1", "meta": {"link": "https://a"}}])
    spec = InputSpec(text_field="doc.body", id_field="key", url_field="meta.link")
    table = read_all(tmp_path / "m.jsonl", spec)
    assert table.column("text").to_pylist() == ["hello"]
    assert table.column("source_id").to_pylist() == ["k1"]
    assert table.column("url").to_pylist() == ["https://a"]


def test_truncated_warc_and_corrupt_gzip_member(crawl_dir, tmp_path):
    data = (crawl_dir / "warc" / "dolma_sample-0000.warc.gz").read_bytes()
    whole = reasons(read_all(crawl_dir / "warc" / "dolma_sample-0000.warc.gz"))

    (tmp_path / "cut.warc.gz").write_bytes(data[: len(data) // 2])
    cut = reasons(read_all(tmp_path / "cut.warc.gz"))
    assert sum(v for k, v in cut.items() if (k or "").startswith("unreadable")) == 1
    assert 0 < cut[None] < whole[None]

    # Zero out bytes inside one member in the middle: only that record is lost, reading resumes
    # at the next gzip member.
    bad = bytearray(data)
    middle = len(data) // 3
    bad[middle : middle + 200] = bytes(200)
    (tmp_path / "corrupt.warc.gz").write_bytes(bytes(bad))
    corrupt = reasons(read_all(tmp_path / "corrupt.warc.gz"))
    assert corrupt.get("unreadable.corrupt_record", 0) >= 1
    total_after = sum(v for k, v in corrupt.items() if not k or not k.startswith("unreadable"))
    assert total_after >= sum(whole.values()) - 3  # at most the damaged member's neighbours


def test_unsupported_format_is_one_located_record(tmp_path):
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04 binary")
    table = read_all(tmp_path / "notes.docx")
    assert reasons(table) == {"unreadable.unsupported_format": 1}


def test_parquet_input_with_custom_fields(tmp_path):
    pq.write_table(pa.table({"content": ["a", None, "c"], "uid": ["1", "2", "3"]}), tmp_path / "x.parquet")
    table = read_all(tmp_path / "x.parquet", InputSpec(text_field="content", id_field="uid"))
    assert reasons(table) == {None: 2, "unreadable.no_text": 1}
    assert table.column("source_id").to_pylist() == ["1", "2", "3"]


def test_globs_directories_and_file_uris_resolve_the_same(tmp_path):
    for name in ("a.jsonl", "b.jsonl", "sub/c.jsonl"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_jsonl(tmp_path / name, [{"text": "x"}])
    by_glob = [f.path for f in resolve_inputs([str(tmp_path / "*.jsonl")])]
    assert [Path(p).name for p in by_glob] == ["a.jsonl", "b.jsonl"]
    by_dir = [f.path for f in resolve_inputs([str(tmp_path)])]
    assert len(by_dir) == 3
    by_uri = [f.path for f in resolve_inputs([f"file://{tmp_path}/*.jsonl"])]
    assert [Path(p).name for p in by_uri] == ["a.jsonl", "b.jsonl"]


def test_format_detection_by_name_and_content():
    assert detect_format("x/CC-MAIN-1.warc.wet.gz") == "wet"
    assert detect_format("x/a.warc.gz") == "warc"
    assert detect_format("a.json.gz") == "jsonl"
    assert detect_format("data.bin", b"WARC/1.0\r\n") == "warc"
    assert detect_format("data.bin", b"PK\x03\x04") is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=30)), max_size=30), st.integers(1, 7))
def test_property_every_jsonl_line_is_accounted_for(tmp_path_factory, items, batch_size):
    """Any mix of good records and junk lines: each non-blank line is exactly one row."""
    path = tmp_path_factory.mktemp("prop") / "p.jsonl"
    lines = [orjson.dumps({"text": x}) if isinstance(x, str) else x.replace(b"\n", b" ") for x in items]
    path.write_bytes(b"\n".join(lines) + b"\n")
    nonblank = sum(1 for line in lines if line.strip())
    table = read_all(path, batch_size=batch_size) if nonblank else None
    if table is None:
        return
    documents = table.filter(pa.compute.invert(pa.compute.fill_null(pa.compute.starts_with(table.column("rejected_by"), "skipped."), False)))
    assert documents.num_rows == nonblank
    good = [x for x in items if isinstance(x, str)]
    assert table.column("text").drop_null().to_pylist()[: len(good)] == good[: len(table.column("text").drop_null())]


# --- Damaged compressed streams: nothing decodable is lost ---------------------------------------

C4_SHARD = Path(__file__).resolve().parents[2] / "shared" / "data" / "crawl" / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz"


def _c4_lines(n: int) -> list[bytes]:
    return gzip.decompress(C4_SHARD.read_bytes()).split(b"\n")[:n]


def _stdlib_lines(path: Path, opener) -> list[bytes]:
    """The lines Python's own decompressor yields before its error."""
    got = []
    try:
        with opener(path, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):
                    got.append(line[:-1])
    except Exception:  # noqa: BLE001 - the damage
        pass
    return got


def _decoded_lines(path: Path) -> tuple[list[bytes], list]:
    import pyarrow.fs as pafs

    from ingest.readers import StreamDamage, _decompressed_chunks, _iter_lines

    lines, damage = [], []
    for _, line in _iter_lines(_decompressed_chunks(pafs.LocalFileSystem(), str(path))):
        (damage if isinstance(line, StreamDamage) else lines).append(line)
    return lines, damage


def test_damage_in_the_middle_of_one_gzip_member_keeps_what_decodes(tmp_path):
    """The issue's case: 1,000 C4 documents in one gzip member, 2,000 random bytes written over the
    middle of the compressed file. Every document before the damage is read, the loss is one row
    that says where it began, and no line Python's gzip streams is missing."""
    import random

    lines = _c4_lines(1000)
    data = bytearray(gzip.compress(b"\n".join(lines) + b"\n"))
    mid = len(data) // 2
    data[mid:mid + 2000] = random.Random(1).randbytes(2000)
    path = tmp_path / "c4.jsonl.gz"
    path.write_bytes(bytes(data))

    table = read_all(path)
    r = reasons(table)
    assert r["unreadable.corrupt_compressed_stream"] == 1
    stdlib = _stdlib_lines(path, gzip.open)
    intact = [orjson.loads(line)["text"] for line in stdlib if line in set(lines)]
    assert len(intact) > 400  # about half the documents come before the damage
    kept_texts = set(table.filter(pa.compute.is_null(table.column("rejected_by"))).column("text").to_pylist())
    assert set(intact) <= kept_texts
    (detail,) = [d for d, why in zip(table.column("_detail").to_pylist(), table.column("rejected_by").to_pylist())
                 if why == "unreadable.corrupt_compressed_stream"]
    assert "compressed byte" in detail and "after line" in detail


def test_damage_in_one_member_costs_only_that_member(tmp_path):
    """Multi-member gzip, multi-stream bz2, multi-frame zstd (as sharded writers produce): damage in
    the second of four members; the first, third and fourth members are read whole."""
    import bz2
    import random

    lines = _c4_lines(400)
    parts = [b"\n".join(lines[i:i + 100]) + b"\n" for i in range(0, 400, 100)]
    for suffix, compress in ((".gz", gzip.compress), (".bz2", bz2.compress),
                             (".zst", lambda d: zstandard.ZstdCompressor(write_checksum=True).compress(d))):
        members = [compress(p) for p in parts]
        blob = bytearray(b"".join(members))
        at = len(members[0]) + len(members[1]) // 2
        blob[at:at + 64] = random.Random(3).randbytes(64)
        path = tmp_path / f"m.jsonl{suffix}"
        path.write_bytes(bytes(blob))
        got, damage = _decoded_lines(path)
        assert len(damage) == 1 and damage[0].resumed_at == len(members[0]) + len(members[1]), (suffix, damage)
        assert got[:100] == lines[:100] and got[-200:] == lines[200:], suffix
        assert damage[0].offset >= len(members[0])


@settings(max_examples=30, deadline=None)
@given(codec=st.sampled_from(["gzip", "bz2"]), members=st.integers(1, 3), where=st.floats(0, 1),
       length=st.integers(1, 3000), seed=st.integers(0, 2**16))
def test_random_damage_never_loses_a_line_the_standard_library_decodes(tmp_path_factory, codec, members, where, length, seed):
    import bz2
    import random
    from collections import Counter

    lines = _c4_lines(240)
    compress, opener = (gzip.compress, gzip.open) if codec == "gzip" else (bz2.compress, bz2.open)
    step = len(lines) // members
    blob = bytearray(b"".join(compress(b"\n".join(lines[i:i + step]) + b"\n") for i in range(0, len(lines), step)))
    at = int(where * (len(blob) - 1))
    blob[at:at + length] = random.Random(seed).randbytes(min(length, len(blob) - at))
    path = tmp_path_factory.mktemp("damage") / f"d.jsonl.{'gz' if codec == 'gzip' else 'bz2'}"
    path.write_bytes(bytes(blob))
    got, damage = _decoded_lines(path)
    missing = Counter(_stdlib_lines(path, opener)) - Counter(got)
    assert not missing, (codec, at, length, len(missing))
    table = read_all(path)  # and the reader's account holds: every line and every loss is one row
    assert table.num_rows == len([line for line in got if line.strip()]) + len(damage)


WARC_SAMPLE = C4_SHARD.parents[1] / "warc" / "dolma_sample-0000.warc.gz"


def _warc_rows(path: Path) -> list[tuple]:
    table = read_all(path)
    return list(zip(table.column("source_id").to_pylist(), table.column("rejected_by").to_pylist()))


def test_a_damaged_warc_record_costs_that_record_only(tmp_path):
    """Uncompressed and gzip WARC, real records: a garbled header costs one record; a damaged
    Content-Length (which swallows every record after it) costs nothing in an uncompressed file and
    one record in a member-per-record file; the account is one row per record either way."""
    raw = gzip.decompress(WARC_SAMPLE.read_bytes())
    starts = [m.start() for m in re.finditer(rb"WARC/1\.[01]\r\n", raw)]
    ok = tmp_path / "ok.warc"
    ok.write_bytes(raw)
    good = _warc_rows(ok)
    assert len(good) == len(starts)

    k = starts[len(starts) // 2]
    garbled = tmp_path / "garbled.warc"
    garbled.write_bytes(raw[:k] + b"GARBAGE!\r\n" + raw[k + 10:])
    rows = _warc_rows(garbled)
    assert len(rows) == len(good)  # the lost record is one located row
    assert [r for r in rows if r[1] == "unreadable.corrupt_record"] and len(set(good) - set(rows)) == 1

    at = raw.find(b"Content-Length:", k)
    swallowing = raw[:at] + b"Content-Length: 99999999" + raw[raw.find(b"\r\n", at):]
    (tmp_path / "swallow.warc").write_bytes(swallowing)
    assert len(_warc_rows(tmp_path / "swallow.warc")) == len(good)
    bounds = [m.start() for m in re.finditer(rb"WARC/1\.[01]\r\n", swallowing)] + [len(swallowing)]
    (tmp_path / "swallow.warc.gz").write_bytes(b"".join(gzip.compress(swallowing[a:b]) for a, b in zip(bounds, bounds[1:])))
    rows = _warc_rows(tmp_path / "swallow.warc.gz")
    assert len(rows) == len(good) and sum(r[1] == "unreadable.truncated_record" for r in rows) == 1


def test_damage_inside_a_single_member_gzip_warc_keeps_the_records_before_it(tmp_path):
    import random

    raw = gzip.decompress(WARC_SAMPLE.read_bytes())
    ok = tmp_path / "ok.warc"
    ok.write_bytes(raw)
    good = _warc_rows(ok)
    single = bytearray(gzip.compress(raw))
    mid = len(single) // 2
    single[mid:mid + 300] = random.Random(0).randbytes(300)
    path = tmp_path / "single.warc.gz"
    path.write_bytes(bytes(single))
    table = read_all(path)
    rows = list(zip(table.column("source_id").to_pylist(), table.column("rejected_by").to_pylist()))
    before = [r for r in rows if not (r[1] or "").startswith("unreadable")]
    assert 0 < len(before) < len(good) and before == good[:len(before)]
    assert len([d for d in table.column("_detail").to_pylist() if d and "rest of the file is lost" in d]) == 1
