"""`s1kit generate`: JSONL in, one row per sample out, resumable, bad input reported not lost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from s1kit.cli import main
from s1kit.demo import build_demo_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("demo") / "model")


def read_rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def write_input(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def gen(model_dir, inp, out, *extra):
    return main(["--log-level", "ERROR", "generate", "--model", str(model_dir), "--input", str(inp), "--output",
                 str(out), "--chat-template", "chatml", "--max-thinking-tokens", "40", "--num-ignore", "1",
                 "--max-answer-tokens", "8", "--batch-size", "3", "--progress", "false", *extra])


def test_bad_rows_are_reported_and_nothing_is_lost(model_dir, tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, [
        json.dumps({"id": "a", "question": "What is 2+2?", "answer": "4"}),
        "{not json",
        json.dumps({"id": "b", "prompt": "   "}),
        json.dumps({"id": "c", "text": "no prompt field"}),
        json.dumps(["a", "list"]),
        json.dumps({"id": "d", "problem": "x" * 3000}),  # longer than the 2048-token context
        json.dumps({"id": "e", "problem": "Sort 3 1 2."}),
    ])
    assert gen(model_dir, inp, out) == 0
    rows = {r["id"]: r for r in read_rows(out)}
    assert set(rows) == {"a", "line-2", "b", "c", "line-5", "d", "e"}
    assert rows["line-2"]["skipped"].startswith("malformed JSON")
    assert rows["b"]["skipped"] == "empty prompt"
    assert rows["c"]["skipped"] == "no prompt field"
    assert rows["d"]["skipped"].startswith("prompt too long")
    assert rows["a"]["answer"] == "4" and rows["a"]["thinking_tokens"] <= 40
    for key in ("prompt", "thinking", "answer_text", "thinking_tokens", "answer_tokens", "waits_injected",
                "forced_end", "finish_reason"):
        assert key in rows["e"]
    manifest = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())
    assert manifest["counts"] == {"rows": 7, "already_done": 0, "generated": 2, "skipped": 5}
    assert manifest["skip_reasons"]["prompt too long"] == 1


def test_rerun_resumes_without_duplicates_and_cuts_a_torn_line(model_dir, tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, [json.dumps({"id": f"q{i}", "question": f"What is {i}+{i}?"}) for i in range(6)])
    assert gen(model_dir, inp, out) == 0
    full = {r["id"]: r for r in read_rows(out)}
    # simulate a crash: keep two rows and half of a third
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    assert gen(model_dir, inp, out) == 0
    rows = read_rows(out)
    assert len(rows) == 6 and len({r["id"] for r in rows}) == 6
    assert {r["id"]: r for r in rows} == full  # greedy: the resumed rows are identical
    assert gen(model_dir, inp, out) == 0  # nothing left to do
    assert len(read_rows(out)) == 6


def test_resume_with_other_settings_is_refused_naming_them(model_dir, tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, [json.dumps({"id": f"q{i}", "question": f"What is {i}+{i}?"}) for i in range(3)])
    assert gen(model_dir, inp, out) == 0
    rows = out.read_text()
    with pytest.raises(SystemExit):  # another thinking cap: its rows would be mixed in silently
        gen(model_dir, inp, out, "--max-thinking-tokens", "7")
    err = capsys.readouterr().err
    assert "output=" in err and "policy" in err
    assert out.read_text() == rows  # nothing was appended
    assert gen(model_dir, inp, out, "--batch-size", "2") == 0  # speed settings may change


def test_unknown_policy_key_in_recipe_fails_naming_it(model_dir, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("policy:\n  max_thinking_tokenz: 5\n")
    with pytest.raises(SystemExit):
        main(["generate", "--config", str(recipe), "--model", str(model_dir), "--prompt", "hi"])
    assert "max_thinking_tokenz" in capsys.readouterr().err


def test_bad_flag_value_fails_naming_the_field(model_dir, capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--model", str(model_dir), "--prompt", "hi", "--min-thinking-tokens", "-2"])
    assert "min_thinking_tokens=-2" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["generate", "eval"])
def test_help_documents_every_field(verb):
    out = subprocess.run([sys.executable, "-m", "s1kit.cli", verb, "--help"], capture_output=True, text=True,
                         check=True).stdout
    from dataclasses import fields

    from s1kit.eval.run import EvalConfig
    from s1kit.forcing import BudgetPolicy
    from s1kit.generate import GenerateConfig

    stage = GenerateConfig if verb == "generate" else EvalConfig
    for f in (*fields(stage), *fields(BudgetPolicy)):
        assert "--" + f.name.replace("_", "-") in out


def test_command_line_prompts_and_recipe_defaults(model_dir, tmp_path):
    recipe = tmp_path / "r.yaml"
    out = tmp_path / "o.jsonl"
    recipe.write_text(f"generate:\n  chat_template: chatml\n  output: {out}\npolicy:\n  max_thinking_tokens: 12\n"
                      "  max_answer_tokens: 3\n")
    assert main(["--log-level", "ERROR", "generate", "--config", str(recipe), "--model", str(model_dir),
                 "--prompt", "one,two", "--max-answer-tokens", "2", "--progress", "false"]) == 0
    rows = read_rows(out)
    assert sorted(r["prompt"].split("user\n")[1].split("<|im_end|>")[0] for r in rows) == ["one", "two"]
    assert all(r["thinking_tokens"] <= 12 and r["answer_tokens"] <= 2 for r in rows)
