"""Bad configs stop before any work with one line naming the problem."""

from __future__ import annotations

import pytest

from cluster.cli import main


def run_cli(capsys, *args):
    code = main(["run", *args])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.fixture
def good_input(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "hello world"}\n')
    return str(tmp_path / "in.jsonl")


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("inptu: {paths: [x]}\n", "unknown key 'inptu' at top level"),
        ("stages:\n  - gopher_qualty: {}\n", "stages[0]: unknown stage 'gopher_qualty'"),
        ("stages:\n  - length: {min_char: 3}\n", "unknown parameter 'min_char' in stages[0].length"),
        ("stages:\n  - length: {min_chars: many}\n", "stages[0].length.min_chars must be int"),
        ("stages:\n  - length: {min_chars: 10, max_chars: 5}\n", "stages[0].length: need 0 <= min_chars <= max_chars"),
        ("stages:\n  - minhash_dedup: {verify_jaccard: 1.5}\n", "stages[0].minhash_dedup: verify_jaccard must be in (0, 1]"),
        ("stages:\n  - minhash_dedup: {verify_jaccard: high}\n", "stages[0].minhash_dedup.verify_jaccard must be a number"),
        ("batch_size: 0\n", "batch_size must be a positive integer"),
        ("input: {format: csv}\n", "input.format: 'csv' is not one of"),
        ("output: {dir: x}\n", "unknown key 'dir' in output"),
        ("stages: {length: {}}\n", "stages must be a list"),
        ("input: {paths: [x]\n", "not valid YAML at line"),
    ],
)
def test_each_config_error_is_one_clear_line(tmp_path, capsys, good_input, yaml_text, expected):
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml_text)
    code, err = run_cli(capsys, "--config", str(config), "--input", good_input, "--output", str(tmp_path / "out"))
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("crawlsift: error: ") and expected in err, err
    assert not (tmp_path / "out").exists()  # stopped before any work


def test_missing_input_path_names_it(tmp_path, capsys):
    code, err = run_cli(capsys, "--input", str(tmp_path / "nope/*.jsonl"), "--output", str(tmp_path / "out"))
    assert code == 2 and err == f"crawlsift: error: input path not found: {tmp_path / 'nope/*.jsonl'}"


def test_missing_config_file(tmp_path, capsys):
    code, err = run_cli(capsys, "--config", str(tmp_path / "none.yaml"))
    assert code == 2 and "config file not found" in err and len(err.splitlines()) == 1


def test_unknown_stage_in_flag(tmp_path, capsys, good_input):
    code, err = run_cli(capsys, "--input", good_input, "--output", str(tmp_path / "o"), "--stages", "length,nope")
    assert code == 2 and "unknown stage 'nope'" in err


def test_no_output_in_a_config_built_without_the_cli(good_input):
    from cluster.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="no output"):
        build_config({"input": {"paths": [good_input]}})


def test_yaml_config_is_parsed_into_stages_and_fields(tmp_path, good_input):
    from cluster.config import build_config, load_yaml

    config = tmp_path / "p.yaml"
    config.write_text(
        f"input: {{paths: [{good_input}], format: jsonl, text_field: body, id_field: key}}\n"
        f"output: {{path: {tmp_path / 'out'}}}\n"
        "stages:\n  - length: {min_chars: 3, max_words: 100}\n"
        "batch_size: 500\n"
    )
    built = build_config(load_yaml(str(config)))
    assert built.input.text_field == "body" and built.input.id_field == "key" and built.input.format == "jsonl"
    assert [(s.name, s.min_chars, s.max_words) for s in built.stages] == [("length", 3, 100)]
    assert built.batch_size == 500 and len(built.files) == 1


def test_a_directory_no_reader_takes_is_one_line_exit_2(tmp_path, capsys):
    from cluster.cli import main

    src = tmp_path / "pictures"
    src.mkdir()
    (src / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (src / "notes.bin").write_bytes(bytes(range(256)))
    assert main(["run", "--input", str(src), "--output", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("crawlsift: error: no input any reader takes: 2 file(s)")
    assert not (tmp_path / "out").exists()
    # One unsupported file among good ones is still a counted row (the run goes on), not an input error.
    (src / "good.jsonl").write_text('{"text": "hello world"}\n')
    from cluster.config import build_config

    assert len(build_config({}, inputs=[str(src)], output=str(tmp_path / "out")).files) == 3
