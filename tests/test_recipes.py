"""Named recipes: what `--recipe` builds, that the default is FineWeb's filter chain (the c4 terminal-
punctuation rule off, so fineweb's line-punctuation rule can fire), settings, errors, and (slow) the
default chain's decisions and kept text against datatrove's FineWeb chain on the real crawl."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from cluster.config import ConfigError, build_config
from cluster.recipes import load_recipe, recipe_names


def _stages(**kw):
    return build_config(kw.pop("data", {}), inputs=["unused"], output="unused", resolve=False, **kw).stages


def test_every_bundled_recipe_builds_and_states_its_source_and_differences(tmp_path):
    assert set(recipe_names()) >= {"fineweb", "c4", "gopher", "dclm"}
    model = tmp_path / "q.bin"
    model.write_bytes(b"")  # the quality stage checks the file exists when built and loads it only to run
    for name in recipe_names():
        recipe = load_recipe(name)
        assert recipe.source and recipe.differences, name
        settings = [f"{k}={model}" for k in recipe.requires]
        built = _stages(recipe=name, settings=settings)
        assert [s.name for s in built] == [next(iter(s)) for s in recipe.stages]
    (mh,) = [s for s in _stages(recipe="gopher") if s.name == "minhash_dedup"]
    assert (mh.ngram, mh.bands * mh.rows) == (13, 450)  # MassiveText: 13-grams, 450 hashes


def test_default_is_fineweb_with_c4_terminal_punctuation_off():
    config = build_config({}, inputs=["unused"], output="unused", resolve=False)
    assert config.recipe == "fineweb" and config.describe()["recipe"] == "fineweb"
    names = [s.name for s in config.stages]
    assert names == ["url_filter", "langid", "gopher_repetition", "gopher_quality", "c4", "fineweb", "minhash_dedup", "pii"]
    assert config.stages[0].blocklist == "ut1" and config.stages[0].fineweb_url_words
    c4 = config.stages[names.index("c4")]
    assert c4.filter_no_terminal_punct is False
    assert config.stages[names.index("pii")].types == ("email", "ip")
    # A config's own stage list is not a recipe.
    assert build_config({"stages": ["length"]}, inputs=["u"], output="u", resolve=False).recipe is None


def test_settings_change_one_parameter_and_bad_ones_are_one_line():
    (fw,) = [s for s in _stages(settings=["fineweb.char_duplicates_ratio=0.1"]) if s.name == "fineweb"]
    assert fw.char_duplicates_ratio == 0.1
    (c4,) = [s for s in _stages(data={"recipe": "c4", "set": {"c4.min_num_sentences": 3}}) if s.name == "c4"]
    assert c4.min_num_sentences == 3 and c4.filter_no_terminal_punct is True  # C4 itself keeps the rule
    assert _stages(stages=["length"], settings=["length.min_chars=7"])[0].min_chars == 7
    for kw, words in [
        (dict(recipe="nope"), "unknown recipe 'nope'"),
        (dict(settings=["fineweb.nope=1"]), "unknown parameter 'nope'"),
        (dict(settings=["xx.y=1"]), "has no stage 'xx'"),
        (dict(settings=["noequals"]), "expected STAGE.PARAM=VALUE"),
        (dict(recipe="dclm"), "needs quality.model_path"),
        (dict(data={"recipe": "c4", "stages": ["length"]}), "either recipe or stages"),
    ]:
        with pytest.raises(ConfigError, match=words.replace("(", r"\(")) as exc:
            _stages(**kw)
        assert "\n" not in str(exc.value)


def test_cli_recipe_errors_exit_2_and_recipes_lists_them(tmp_path, capsys):
    from cluster.cli import main

    assert main(["run", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--recipe", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown recipe 'nope'" in err[0]
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("fineweb", "c4", "gopher", "dclm")) and "[default]" in out
    assert main(["recipes", "fineweb"]) == 0
    assert "filter_no_terminal_punct=False" in capsys.readouterr().out


def test_zero_threshold_from_datatrove_is_warned(capsys):
    _stages(data={"stages": [{"gopher_quality": {"max_symbol_word_ratio": 0}}]})
    assert "max_symbol_word_ratio = 0 is a live threshold" in capsys.readouterr().err
    _stages(data={"stages": [{"gopher_quality": {"max_symbol_word_ratio": 0.2}}]})
    assert capsys.readouterr().err == ""


def _english_chain(crawl_dir, settings):
    from bench.filters_agreement import load_documents
    from cluster.plan import run_stage

    table = load_documents(sorted(str(p) for p in (crawl_dir / "jsonl").glob("*")))
    stages = _stages(settings=settings)
    for stage in stages:
        if getattr(stage, "resolves_globally", False):
            break
        stage.setup()
        table = run_stage(stage, table)
    return table.column("rejected_by").to_pylist(), table


def test_terminal_punctuation_rule_off_lets_fineweb_line_punct_fire_and_keeps_more_text(crawl_dir):
    """The issue's point, on the real crawl: with c4's terminal-punctuation line rule on, every kept
    line ends in punctuation and fineweb.line_punct_ratio can never reject; FineWeb's setting keeps
    more text."""
    fineweb_reasons, fineweb_table = _english_chain(crawl_dir, [])
    c4_reasons, c4_table = _english_chain(crawl_dir, ["c4.filter_no_terminal_punct=true"])
    assert fineweb_reasons.count("fineweb.line_punct_ratio") > 0
    assert c4_reasons.count("fineweb.line_punct_ratio") == 0

    def kept_chars(table):
        kept = table.filter(pc.is_null(table.column("rejected_by")))
        return pc.sum(pc.utf8_length(kept.column("text"))).as_py()

    assert kept_chars(fineweb_table) > kept_chars(c4_table)


@pytest.mark.slow
def test_default_recipe_agrees_with_datatrove_fineweb_chain(crawl_dir):
    from bench.recipe_agreement import agreement

    result = agreement("fineweb", str(crawl_dir))
    assert result["english_documents"] > 1000 and result["chain"] == ["gopher_repetition", "gopher_quality", "c4", "fineweb"]
    assert result["keep_reject_agreement"] >= 0.995
    assert result["same_rejecting_stage"] >= 0.995
    assert result["kept_text_identical"] >= 0.995
    # Every disagreement is listed with what a reader needs to explain it.
    assert all(row["id"] and row["source"] and "text" in row
               for rows in result["disagreements"].values() for row in rows)
