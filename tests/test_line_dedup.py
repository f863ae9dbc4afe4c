"""line_dedup: lines (or paragraphs) repeated across the corpus are cut, the first occurrence in
input order stays; as a global stage on a multi-worker local Ray, identical across worker counts."""

from __future__ import annotations

import collections
import tempfile

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.config import ConfigError, build_config
from cluster.run import run_pipeline
from dedup.lines import LineDedup, piece_keys
from dedup.shuffle import load_decisions, reduce_partition, scatter
from ingest.schema import batch_of


def reference(docs: list[str], sep: str = "\n", max_occurrences: int = 1, lowercase: bool = False) -> list[tuple[str, int]]:
    """The rule in plain Python: count every normalised piece over the corpus; a piece seen more
    than ``max_occurrences`` times keeps only its first occurrence (documents, then pieces, in order)."""
    def norm(piece):
        return " ".join((piece.lower() if lowercase else piece).split())

    counts = collections.Counter(norm(p) for d in docs for p in d.split(sep) if norm(p))
    seen, out = set(), []
    for d in docs:
        kept, removed = [], 0
        for p in d.split(sep):
            key = norm(p)
            if key and counts[key] > max_occurrences and key in seen:
                removed += 1
                continue
            seen.add(key)
            kept.append(p)
        out.append((sep.join(kept), removed))
    return out


def run_stage(stage: LineDedup, docs: list[str], files: int = 1, partitions: int = 1) -> pa.Table:
    """map -> disk shuffle -> reduce -> apply, with the documents spread over ``files`` input files."""
    table = batch_of(docs)
    per_file = -(-len(docs) // files) if docs else 1
    table = table.set_column(table.schema.get_field_index("_file"), "_file",
                             pa.array([i // per_file for i in range(len(docs))], pa.int32()))
    mapped = stage.map(table)
    fs = pafs.LocalFileSystem()
    with tempfile.TemporaryDirectory() as tmp:
        keys = {i: f"f{i}" for i in range(files)}
        for i in range(files):
            rows = pa.array([j for j in range(len(docs)) if j // per_file == i], pa.int64())
            pq.write_table(mapped.take(rows), f"{tmp}/part-f{i}-0.parquet")
            scatter(stage, fs, f"{tmp}/part-f{i}-0.parquet", f"{tmp}/shuffle", partitions)
        for j in range(partitions):
            reduce_partition(stage, fs, f"{tmp}/shuffle", j, f"{tmp}/decisions", keys)
        decisions = [load_decisions(fs, f"{tmp}/decisions", k) for k in keys.values()]
    decisions = [d for d in decisions if d is not None]
    return stage.apply(mapped, pa.concat_tables(decisions) if decisions else None)


def test_keys_normalise_whitespace_and_keep_word_order():
    keys, words = piece_keys(pa.array(["a  b\tc", " a b c ", "A b c", "c b a", "a b", "", "   "]))
    assert keys[0] == keys[1] and len({keys[0], keys[2], keys[3], keys[4]}) == 4
    assert words.tolist() == [3, 3, 3, 3, 2, 0, 0] and keys[5] == keys[6] == 0
    lower, _ = piece_keys(pa.array(["a B c", "A b C"]), lowercase=True)
    assert lower[0] == lower[1]


def test_boilerplate_goes_first_occurrence_stays():
    docs = [
        "Home | About | Contact\nThe river rose overnight.\nAccept cookies",
        "Home | About | Contact\nA different story entirely.\n\nAccept   cookies",
        "Accept cookies\nHome | About | Contact",
        "A unique page.",
    ]
    out = run_stage(LineDedup(), docs)
    assert out.column("text").to_pylist() == [docs[0], "A different story entirely.\n", "", "A unique page."]
    assert out.column("line_dedup_removed").to_pylist() == [0, 2, 2, 0]
    assert out.column("rejected_by").to_pylist() == [None, None, "line_dedup.empty", None]
    assert out.column("line_dedup_chars_removed").to_pylist()[1] == len(docs[1]) - len("A different story entirely.\n")
    assert "line_dedup_keys" not in out.column_names  # keys never reach the output
    # A piece seen at most max_occurrences times is left alone.
    assert run_stage(LineDedup(max_occurrences=3), docs).column("text").to_pylist() == docs


def test_paragraph_unit_and_case_folding():
    docs = ["Intro para.\n\nShare this:\nTwitter", "Other intro.\n\nshare THIS:\ntwitter", "Share this:\nTwitter"]
    assert run_stage(LineDedup(unit="paragraph"), docs).column("text").to_pylist() == [docs[0], docs[1], ""]
    folded = run_stage(LineDedup(unit="paragraph", lowercase=True), docs).column("text").to_pylist()
    assert folded == [docs[0], "Other intro.", ""]


def test_rows_rejected_before_are_untouched():
    table = batch_of(["same line\nkeep", "same line"], rejected_by=["length.too_short", None])
    stage = LineDedup()
    mapped = stage.map(table)
    assert mapped.column("line_dedup_keys").to_pylist()[0] is None
    out = stage.apply(mapped, None)
    assert out.column("text").to_pylist() == ["same line\nkeep", "same line"]
    assert out.column("line_dedup_removed").to_pylist() == [None, 0]


PIECES = ["Home", "Menu | Login", "The quick fox.", "the quick  fox.", "Read more", "", "  ", "Unique words here"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(st.lists(st.sampled_from(PIECES), max_size=6).map("\n".join), min_size=1, max_size=12),
    max_occurrences=st.integers(1, 3),
    lowercase=st.booleans(),
    files=st.integers(1, 3),
    partitions=st.integers(1, 4),
)
def test_equals_the_plain_python_rule(docs, max_occurrences, lowercase, files, partitions):
    out = run_stage(LineDedup(max_occurrences=max_occurrences, lowercase=lowercase), docs, files, partitions)
    want = reference(docs, "\n", max_occurrences, lowercase)
    assert out.column("text").to_pylist() == [t for t, _ in want]
    assert out.column("line_dedup_removed").to_pylist() == [r for _, r in want]


def test_config_parameters_and_errors(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "x"}\n')
    config = build_config({"stages": [{"line_dedup": {"unit": "paragraph", "max_occurrences": 2}}]},
                          inputs=[str(tmp_path / "in.jsonl")], output=str(tmp_path / "out"))
    assert config.stages[0] == LineDedup(unit="paragraph", max_occurrences=2)
    for bad, message in (({"unit": "sentence"}, "unit"), ({"max_occurrences": 0}, "max_occurrences")):
        with pytest.raises(ConfigError, match=message):
            build_config({"stages": [{"line_dedup": bad}]}, inputs=[str(tmp_path / "in.jsonl")], output=str(tmp_path / "out"))


def test_pipeline_across_files_and_workers(ray_local, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    nav = "Home | News | Sport | Weather"
    files = {
        "a.jsonl": [f"{nav}\nStory one about the harbour.\nAll rights reserved.", "Unrelated page with its own words."],
        "b.jsonl": [f"{nav}\nStory two about the market.\nAll rights reserved.", f"{nav}\nAll rights reserved."],
        "c.jsonl": ["Story one about the harbour.\nA follow-up paragraph.", "x"],
    }
    for name, texts in files.items():
        (src / name).write_bytes(b"".join(orjson.dumps({"id": str(i), "text": t}) + b"\n" for i, t in enumerate(texts)))
    results = []
    for parallelism in (1, 2):
        out = tmp_path / f"out{parallelism}"
        config = build_config({"parallelism": parallelism, "batch_size": 1,
                               "stages": [{"length": {"min_chars": 2}}, {"line_dedup": {}}]},
                              inputs=[str(src)], output=str(out))
        summary = run_pipeline(config, progress=False)
        assert summary["input_documents"] == 6 == summary["kept"] + summary["rejected_total"] + summary["unreadable_total"]
        assert summary["rejected"] == {"length.too_short": 1, "line_dedup.empty": 1}
        rows = pq.read_table(sorted((out / "kept").glob("*.parquet"))).to_pylist()
        rows += pq.read_table(sorted((out / "rejected").glob("*.parquet"))).to_pylist()
        by_source = {r["source"].rsplit("/", 1)[-1]: r for r in rows}
        assert by_source["a.jsonl:1"]["text"] == files["a.jsonl"][0]  # first occurrences stay
        assert by_source["b.jsonl:1"]["text"] == "Story two about the market."
        assert by_source["b.jsonl:2"]["rejected_by"] == "line_dedup.empty"
        assert by_source["c.jsonl:1"]["text"] == "A follow-up paragraph."
        assert by_source["c.jsonl:2"]["line_dedup_removed"] is None  # rejected by length first
        assert not any(c.startswith("line_dedup_keys") or c == "line_dedup_pieces" for c in rows[0])
        results.append(sorted((r["id"], r["text"], r["rejected_by"]) for r in rows))
    assert results[0] == results[1]  # identical across worker counts
