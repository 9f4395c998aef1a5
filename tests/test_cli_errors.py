"""Every bad input of issue 16's "Command line" list is one line `s1kit: error: …` naming the path or
field and what is wrong, exit status 2, before any model is loaded (no traceback)."""

from __future__ import annotations

import json

import pytest

from s1kit.cli import main
from s1kit.config import ConfigError, check_model_path


@pytest.fixture
def fake_model(tmp_path):
    """A folder that passes the model checks but cannot load: any error must come first."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "hi"}) + "\n")
    return path


def fails(capsys, argv, *needles):
    with pytest.raises(SystemExit) as exit_:
        main(["--log-level", "ERROR", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("s1kit: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def generate(model, *extra, inp=None, out=None):
    args = ["generate", "--model", str(model)]
    args += ["--input", str(inp)] if inp is not None else ["--prompt", "hi"]
    return args + ["--output", str(out)] * (out is not None) + list(extra)


@pytest.mark.parametrize("text, needle", [
    ("generate: [1, 2\n", "valid YAML"),
    ("generate:\n\tbatch_size: 2\n", "valid YAML (line 2"),  # a tab
    ("policy: 5\n", "policy=5"),
    ("generat:\n  batch_size: 2\n", "known section"),
    ("policy:\n  temperature: .nan\n", "policy.temperature"),
])
def test_bad_recipes(capsys, tmp_path, fake_model, text, needle):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    line = fails(capsys, [*generate(fake_model), "--config", str(recipe)], needle, str(recipe) if "YAML" in needle
                 or "section" in needle else "")
    if "section" in needle:
        assert "generate, policy, preset" in line


def test_missing_config_file(capsys, tmp_path, fake_model):
    fails(capsys, [*generate(fake_model), "--config", str(tmp_path / "nope.yaml")], "nope.yaml", "does not exist")


def test_model_folder_missing_empty_or_a_file(capsys, tmp_path):
    fails(capsys, generate(tmp_path / "missing"), "model=", "does not exist")
    fails(capsys, generate("./no-such-model-here"), "does not exist")
    (tmp_path / "empty").mkdir()
    fails(capsys, generate(tmp_path / "empty"), "empty")
    (tmp_path / "weights.bin").write_bytes(b"x")
    fails(capsys, generate(tmp_path / "weights.bin"), "it is a file")


def test_hub_ids_and_gguf_files_pass_the_model_check(tmp_path):
    check_model_path("model", "some-org/some-model")  # left to the loader (real Hub loading remains)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    check_model_path("model", str(gguf))
    with pytest.raises(ConfigError, match="does not exist"):
        check_model_path("model", str(tmp_path / "absent.gguf"))


def test_input_and_output_paths(capsys, tmp_path, fake_model, prompts):
    fails(capsys, generate(fake_model, inp=tmp_path / "absent.jsonl"), "input=", "does not exist")
    fails(capsys, generate(fake_model, inp=tmp_path), "input=", "directory")
    fails(capsys, generate(fake_model, inp=prompts, out=tmp_path), "output=", "directory")
    fails(capsys, generate(fake_model, inp=prompts, out=prompts / "out.jsonl"), "output=", "is a file")


@pytest.mark.parametrize("flag, value", [("--temperature", "nan"), ("--top-p", "nan"), ("--temperature", "inf"),
                                         ("--top-p", "Infinity")])
def test_non_finite_numbers(capsys, fake_model, flag, value):
    fails(capsys, [*generate(fake_model), flag, value], flag, "finite")


def test_no_prefix_matching_of_flags(capsys, fake_model):
    fails(capsys, [*generate(fake_model), "--max-thinking", "5"], "--max-thinking")


def test_eval_paths(capsys, tmp_path, fake_model):
    base = ["eval", "--model", str(fake_model), "--benchmarks", "math500"]
    fails(capsys, [*base, "--data", f"math500={tmp_path / 'absent.jsonl'}"], "data=", "does not exist")
    (tmp_path / "file").write_text("x")
    fails(capsys, [*base, "--output-dir", str(tmp_path / "file")], "output_dir=", "is a file")


def test_distill_bad_input(capsys, tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_bytes(b'{"id": "a", "question": "q"}\n\xff\xfe\n')
    base = ["distill", "--model", "t", "--output", str(tmp_path / "o.jsonl"), "--progress", "false"]
    fails(capsys, [*base, "--input", str(tmp_path / "absent.jsonl")], "input=", "does not exist")
    fails(capsys, [*base, "--input", str(bad)], "input=")


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    from s1kit.demo import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("demo") / "model")


def test_invalid_utf8_rows_are_skipped_and_an_empty_input_is_counted(demo_model, tmp_path, caplog, capsys):
    bad, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    bad.write_bytes(b'{"id": "a", "prompt": "caf\xe9"}\n')  # latin-1, not UTF-8
    assert main(["--log-level", "ERROR", *generate(demo_model, "--progress", "false", inp=bad, out=out)]) == 0
    row = json.loads(out.read_text())
    assert row["finish_reason"] == "skipped" and row["skipped"].startswith("invalid UTF-8")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    caplog.set_level("WARNING")
    assert main([*generate(demo_model, "--progress", "false", inp=empty, out=tmp_path / "o2.jsonl")]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["rows"] == 0
    assert "holds no prompts" in caplog.text
