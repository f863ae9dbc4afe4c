"""The langid stage: accuracy on gold-labelled multilingual web text, its reason codes and
thresholds, degenerate input, the model lifecycle (picklable, loaded once), and a real Ray run."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import filters.langid as langid_module
from filters.langid import LanguageID, bundled_model_path, load_fasttext
from tests.conftest import CRAWL, SHARED_DATA
from tests.test_length import batch

LINGUA = SHARED_DATA / "multilingual" / "lingua_sentences"
TURKU = SHARED_DATA / "multilingual" / "turkunlp_register"
ALL_LINGUA = ("ar", "de", "en", "es", "fa", "fi", "fr", "hi", "it", "ja", "ko", "nl", "pl", "pt", "ru", "sv", "tr", "uk", "vi", "zh")
MAJOR = ("en", "de", "fr", "es", "ru", "zh", "ja", "ar")
# Corpus -> language: given by the corpus, not by a model (shared/data/README.md).
TURKU_FILES = {
    "ArCORE_ar.tsv.gz": "ar", "CaCORE_ca.tsv.gz": "ca", "FinCORE_dev.tsv": "fi", "FrCORE_dev.tsv": "fr",
    "HiCORE_hi.tsv.gz": "hi", "IdCORE_id.tsv.gz": "id", "PtCORE_pt.tsv.gz": "pt", "SpaCORE_test.tsv": "es",
    "SvCORE_dev.tsv": "sv", "UrCORE_ur.tsv.gz": "ur",
}

ENGLISH = (
    "The committee met on Tuesday to discuss the budget for next year. Members agreed that the "
    "library needs a new roof before winter, and asked the treasurer to collect three quotes."
)
GERMAN = (
    "Der Ausschuss traf sich am Dienstag, um den Haushalt für das nächste Jahr zu besprechen. "
    "Die Mitglieder waren sich einig, dass die Bibliothek vor dem Winter ein neues Dach braucht."
)
FRENCH = "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine et de la bibliothèque."


@pytest.fixture(scope="module")
def stage():
    s = LanguageID()
    s.setup()
    return s


def sentences(lang: str, limit: int = 300) -> list[str]:
    lines = (LINGUA / f"{lang}.txt").read_text(encoding="utf-8", errors="replace").splitlines()
    return [line for line in lines if line.strip()][:limit]


def top_languages(stage: LanguageID, texts: list[str]) -> list[str]:
    langs, _ = stage.identify(pa.array(texts, pa.large_string()))
    return langs.to_pylist()


def share(got: list[str], lang: str) -> float:
    return sum(g == lang for g in got) / len(got)


# --- accuracy on real multilingual text --------------------------------------------------------


def test_accuracy_on_five_sentence_documents(stage):
    """Documents of 5 consecutive Leipzig web sentences (lines joined by newlines), all 20 languages."""
    for lang in ALL_LINGUA:
        s = sentences(lang, 500)
        docs = ["\n".join(s[i : i + 5]) for i in range(0, len(s) - 4, 5)]
        accuracy = share(top_languages(stage, docs), lang)
        assert accuracy >= (0.99 if lang in MAJOR else 0.97), (lang, accuracy)


def test_accuracy_on_single_sentences(stage):
    for lang in ALL_LINGUA:
        accuracy = share(top_languages(stage, sentences(lang)), lang)
        assert accuracy >= (0.93 if lang in MAJOR else 0.9), (lang, accuracy)


def test_accuracy_on_turkunlp_web_documents(stage):
    """Whole web documents from 10 language-specific crawls (first 80 per corpus)."""
    for name, lang in TURKU_FILES.items():
        raw = (TURKU / name).read_bytes()
        raw = gzip.decompress(raw) if name.endswith(".gz") else raw
        docs = [line.partition("\t")[2] for line in raw.decode("utf-8", errors="replace").splitlines()]
        docs = [d for d in docs if d.strip()][:80]
        accuracy = share(top_languages(stage, docs), lang)
        assert accuracy >= 0.95, (lang, accuracy)


def test_scores_equal_the_fasttext_python_api_on_crawl_text(stage):
    """Same input as datatrove's FastTextLID (newlines -> spaces, fastText's own predict wrapper)."""
    from ingest.readers import InputSpec, read_file, resolve_inputs

    (f,) = resolve_inputs([str(CRAWL / "jsonl" / "hplt_sample100_CC.jsonl.zst")])
    table = next(read_file(f, InputSpec(), 100))
    texts = [t for t in table.column("text").to_pylist() if t and t.strip()][:60]
    out = LanguageID(languages=[], max_chars=None)(batch(texts))
    model = load_fasttext(bundled_model_path())
    for text, lang, score in zip(texts, out.column("lang").to_pylist(), out.column("lang_score").to_pylist()):
        labels, probs = model.predict(text.replace("\n", " "), k=1)
        assert lang == labels[0].removeprefix("__label__")
        assert score == pytest.approx(min(float(probs[0]), 1.0), abs=1e-6)
    assert len(set(out.column("lang").to_pylist())) >= 5  # the HPLT sample is multilingual


# --- rules and reason codes ---------------------------------------------------------------------


def reasons(table) -> list:
    return table.column("rejected_by").to_pylist()


def test_reason_codes_and_annotations(stage):
    out = stage(batch([ENGLISH, GERMAN, FRENCH, "", "hello"]))
    assert reasons(out) == [None, "langid.de", "langid.fr", "langid.low_score", "langid.low_score"]
    langs = out.column("lang").to_pylist()
    scores = out.column("lang_score").to_pylist()
    assert langs[:4] == ["en", "de", "fr", "und"] and langs[4] == "en"
    assert scores[0] > 0.9 and scores[3] == 0.0 and scores[4] < 0.65
    assert out.schema.field("lang_score").type == pa.float32()
    assert out.schema.field("lang").type == pa.string()
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_languages_and_thresholds():
    texts = [ENGLISH, GERMAN, FRENCH]
    assert reasons(LanguageID(languages=["en", "de"])(batch(texts))) == [None, None, "langid.fr"]
    assert reasons(LanguageID(languages="de")(batch(texts))) == ["langid.en", None, "langid.fr"]
    english_score = LanguageID()(batch([ENGLISH])).column("lang_score")[0].as_py()
    # A per-language threshold above the document's score rejects it; other languages keep min_score.
    strict = LanguageID(languages=["en", "de"], min_score_by_lang={"en": min(1.0, english_score + 0.001)})
    assert reasons(strict(batch(texts))) == ["langid.low_score", None, "langid.fr"]
    assert reasons(LanguageID(min_score=0.0)(batch(["hello"]))) == [None]
    assert reasons(LanguageID(min_score=1.0)(batch([ENGLISH]))) == ["langid.low_score"]


def test_empty_languages_only_annotates():
    for languages in ([], None, ()):
        out = LanguageID(languages=languages)(batch([ENGLISH, GERMAN, "", "  \n "]))
        assert reasons(out) == [None] * 4
        assert out.column("lang").to_pylist() == ["en", "de", "und", "und"]


def test_rows_already_rejected_are_untouched(stage):
    out = stage(batch([GERMAN, ENGLISH, GERMAN], rejected=["length.too_short", None, "c4.lorem_ipsum"]))
    assert reasons(out) == ["length.too_short", None, "c4.lorem_ipsum"]
    assert out.column("lang").to_pylist() == [None, "en", None]
    assert out.column("lang_score").to_pylist()[0] is None and out.column("lang_score").to_pylist()[2] is None
    none_left = stage(batch([GERMAN], rejected=["length.too_short"]))
    assert reasons(none_left) == ["length.too_short"] and none_left.column("lang").to_pylist() == [None]


def test_degenerate_inputs_do_not_raise(stage):
    junk = bytes(range(256)).decode("latin-1")
    texts = [
        "", " ", "\n\n\t\r", "\x00", "\x00\x01\x02\x03\x7f", junk, "\ufffd" * 50, "\u3000\u2028",
        "😀" * 100, "a", "1234567890 " * 20, "<html><body></body></html>",
        ENGLISH + "\n" + GERMAN + "\n" + "这是一个中文句子。" * 5 + "\n" + "これは日本語の文です。",  # mixed
        ENGLISH * 3000,  # ~0.5 MB
        None,
    ]
    out = stage(batch(texts))
    assert out.num_rows == len(texts)
    langs = out.column("lang").to_pylist()
    assert langs[:4] == ["und"] * 4 and langs[-1] == "und"
    assert None not in langs
    assert all(r in (None, "langid.low_score") or r.startswith("langid.") for r in reasons(out))
    assert reasons(out)[-2] is None  # the long English document
    empty = stage(batch([]))
    assert empty.num_rows == 0 and "lang" in empty.column_names


def test_max_chars_reads_a_prefix_after_leading_whitespace():
    doc = " \n" * 500 + ENGLISH + " " + GERMAN * 20
    whole = LanguageID(languages=[], max_chars=None)(batch([doc]))
    prefix = LanguageID(languages=[], max_chars=len(ENGLISH))(batch([doc]))
    assert whole.column("lang")[0].as_py() == "de"
    assert prefix.column("lang")[0].as_py() == "en"


def test_default_reads_the_first_thousand_characters():
    """The default input is a 1,000-character prefix: text after it cannot change the answer."""
    english = (ENGLISH + " ") * (1000 // len(ENGLISH) + 1)
    doc = english + GERMAN * 50  # German outweighs the English prefix in the whole text
    default = LanguageID(languages=["en"])(batch([doc]))
    assert default.column("lang")[0].as_py() == "en" and reasons(default) == [None]
    assert default.column("lang_score")[0].as_py() == pytest.approx(
        LanguageID(languages=["en"])(batch([english[:1000]])).column("lang_score")[0].as_py(), abs=1e-6)
    whole = LanguageID(languages=["en"], max_chars=None)(batch([doc]))
    assert whole.column("lang")[0].as_py() == "de" and reasons(whole) == ["langid.de"]


def test_bad_parameters_are_value_errors(tmp_path):
    missing = str(tmp_path / "nope" / "lid.218.bin")
    with pytest.raises(ValueError, match="lid.218.bin"):
        LanguageID(model_path=missing)
    for bad in (dict(min_score=1.5), dict(min_score=-0.1), dict(min_score_by_lang={"en": 2}), dict(max_chars=0), dict(languages=[""])):
        with pytest.raises(ValueError):
            LanguageID(**bad)


def test_yaml_style_parameters_pass_the_config_checks(tmp_path):
    """What ``stages: [{langid: {...}}]`` gives once the lead registers the stage."""
    from cluster.config import ConfigError, _dataclass_from

    stage = _dataclass_from(LanguageID, {"languages": ["en", "de"], "min_score_by_lang": {"de": 0.8}, "max_chars": 2000}, "stages[1].langid")
    assert stage.max_chars == 2000
    assert _dataclass_from(LanguageID, {"max_chars": None}, "stages[1].langid").max_chars is None  # YAML null: whole text
    assert stage.languages == ("en", "de") and stage.min_score_by_lang == {"de": 0.8}
    assert stage.params()["languages"] == ("en", "de")
    with pytest.raises(ConfigError, match="nope.bin"):
        _dataclass_from(LanguageID, {"model_path": str(tmp_path / "nope.bin")}, "stages[1].langid")
    with pytest.raises(ConfigError, match="min_score"):
        _dataclass_from(LanguageID, {"min_score": "high"}, "stages[1].langid")


def test_own_model_path(tmp_path):
    copy = tmp_path / "my-lid.ftz"
    copy.write_bytes(Path(bundled_model_path()).read_bytes())
    out = LanguageID(model_path=str(copy))(batch([ENGLISH, GERMAN]))
    assert out.column("lang").to_pylist() == ["en", "de"]


# --- model lifecycle ----------------------------------------------------------------------------


def test_picklable_and_loads_once(monkeypatch):
    loads = []
    real = langid_module.load_fasttext

    def counting(path):
        loads.append(path)
        return real(path)

    monkeypatch.setattr(langid_module, "load_fasttext", counting)
    langid_module._shared_model.cache_clear()
    s = LanguageID(languages=["en", "de"], min_score_by_lang={"de": 0.8})
    assert pickle.loads(pickle.dumps(s)) == s and not loads  # pickling loads nothing
    s.setup()
    s.setup()
    s(batch([ENGLISH]))
    s(batch([GERMAN]))
    assert len(loads) == 1 and loads[0].endswith("lid.176.ftz")
    shipped = pickle.loads(pickle.dumps(s))  # a loaded stage still pickles, without the model
    assert shipped == s and shipped._model is None and len(pickle.dumps(s)) < 2000
    assert reasons(shipped(batch([GERMAN]))) == [None]  # lazy load on first call, no setup()
    assert len(loads) == 1  # every instance in a worker process shares the one model
    assert shipped.model is s.model
    # A stateless stage: it runs in the reading task (no actor pool, so no Ray actor warning).
    assert not LanguageID.stateful and LanguageID.num_cpus == 1 and LanguageID.name == "langid"
    langid_module._shared_model.cache_clear()


# --- through the Ray pipeline -------------------------------------------------------------------


def test_ray_pipeline_writes_lang_into_kept_parquet(ray_local, tmp_path):
    from cluster.config import build_config
    from cluster.run import run_pipeline

    shards = [CRAWL / "jsonl" / name for name in (
        "dolma_cc_en_head-0091.jsonl.gz", "dolma_cc_en_head-0174.jsonl.gz", "dolma_provided_documents_000.json.gz",
        "chinesewebtext_2021-43_cleared1.jsonl", "hplt_sample100_CC.jsonl.zst",
    )]
    config = build_config({"batch_size": 64}, inputs=[str(p) for p in shards], output=str(tmp_path / "out"), stages=["length"])
    config.stages.append(LanguageID())
    summary = run_pipeline(config, progress=False)
    assert summary["input_documents"] == summary["kept"] + sum(summary["rejected"].values()) + sum(summary["unreadable"].values())
    kept = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "out" / "kept").glob("*.parquet"))], promote_options="default")
    assert kept.num_rows == summary["kept"] >= 25
    assert set(kept.column("lang").to_pylist()) == {"en"}
    assert min(kept.column("lang_score").to_pylist()) >= 0.65
    assert summary["rejected"].get("langid.zh", 0) >= 90  # the ChineseWebText shard
    assert any(r.startswith("langid.") and r not in ("langid.zh", "langid.low_score") for r in summary["rejected"])
