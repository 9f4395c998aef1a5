"""Lossless resume (issue 16): a refused rerun changes nothing, a last line without its newline is
completed (never glued onto), a malformed line in the middle is quarantined and the later rows
kept, and a model folder given as a relative or an absolute path is the same model; for
`s1kit generate`, `s1kit eval` and `s1kit distill`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from s1kit.cli import main
from s1kit.demo import build_demo_model

PROMPTS = ["What is 2+2?", "Sort 3 1 2.", "gcd(4, 6)?"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("demo") / "model")


def gen(model, inp, out, *extra):
    return main(["--log-level", "ERROR", "generate", "--model", str(model), "--input", str(inp), "--output",
                 str(out), "--chat-template", "chatml", "--max-thinking-tokens", "6", "--num-ignore", "1",
                 "--max-answer-tokens", "3", "--batch-size", "3", "--progress", "false", *extra])


@pytest.fixture(scope="module")
def first_run(model_dir, tmp_path_factory):
    """One real generate run: its input, output and settings record (each test copies them)."""
    root = tmp_path_factory.mktemp("first")
    inp = root / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"q{i}", "question": q}) + "\n" for i, q in enumerate(PROMPTS)))
    assert gen(model_dir, inp, root / "out.jsonl") == 0
    return root


def copy_run(first_run: Path, dest: Path) -> tuple[Path, Path]:
    for name in ("in.jsonl", "out.jsonl", "out.jsonl.settings.json"):
        shutil.copy(first_run / name, dest / name)
    return dest / "in.jsonl", dest / "out.jsonl"


def parse_all(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]  # raises on a glued line


def test_generate_refused_rerun_leaves_the_output_byte_identical(model_dir, first_run, tmp_path, capsys):
    inp, out = copy_run(first_run, tmp_path)
    rows = out.read_text().splitlines(keepends=True)
    # 64 lines, one bad line at line 11 (as the audit had it)
    lines = [json.dumps({**json.loads(rows[i % 3]), "id": f"x{i}"}) + "\n" for i in range(63)]
    lines.insert(10, "{not json\n")
    out.write_text("".join(lines))
    before = out.read_bytes()
    with pytest.raises(SystemExit) as exit_:
        gen(model_dir, inp, out, "--num-ignore", "3")
    assert exit_.value.code == 2
    assert "another policy" in capsys.readouterr().err
    assert out.read_bytes() == before  # nothing truncated, nothing appended
    assert not (tmp_path / "out.jsonl.quarantine.jsonl").exists()


def test_generate_completes_a_last_line_without_newline(model_dir, first_run, tmp_path):
    inp, out = copy_run(first_run, tmp_path)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + lines[1].rstrip("\n"))  # q2 missing; q1's row has lost its newline
    assert gen(model_dir, inp, out) == 0
    rows = parse_all(out)
    assert sorted(r["id"] for r in rows) == ["q0", "q1", "q2"]
    manifest = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())
    assert manifest["counts"]["already_done"] == 2 and manifest["counts"]["generated"] == 1


def test_generate_quarantines_a_malformed_middle_line_and_keeps_later_rows(model_dir, first_run, tmp_path):
    inp, out = copy_run(first_run, tmp_path)
    lines = out.read_text().splitlines(keepends=True)
    kept = [lines[0], lines[2]]
    out.write_text(lines[0] + '{"id": "q1", "sample": 0, "thin\n' + lines[2])
    assert gen(model_dir, inp, out) == 0
    rows = parse_all(out)
    assert sorted(r["id"] for r in rows) == ["q0", "q1", "q2"]
    assert out.read_text().startswith("".join(kept))  # the later row was not dropped
    manifest = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())
    assert manifest["counts"]["already_done"] == 2 and manifest["counts"]["generated"] == 1
    assert [q["line"] for q in manifest["quarantined"]] == [2]
    quarantine = parse_all(tmp_path / "out.jsonl.quarantine.jsonl")
    assert quarantine[0]["line"] == 2 and quarantine[0]["text"].startswith('{"id": "q1"')


def test_generate_relative_and_absolute_model_paths_agree(model_dir, first_run, tmp_path, monkeypatch):
    inp, out = copy_run(first_run, tmp_path)  # made with the absolute path
    monkeypatch.chdir(model_dir.parent)
    before = out.read_bytes()
    assert gen(Path("..") / model_dir.parent.name / model_dir.name, inp, out) == 0
    assert out.read_bytes() == before  # resumed: nothing left to do


# ---------------------------------------------------------------------------------------------
# eval
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eval_backend(stopping_model, qwen_tokenizer):
    from s1kit.backends.hf import HFBackend

    return HFBackend(stopping_model, qwen_tokenizer, batch_size=3)


def eval_run(backend, out: Path, **policy):
    from s1kit.eval.run import EvalConfig, run_eval
    from s1kit.forcing import BudgetPolicy

    cfg = EvalConfig(model="tiny", benchmarks=("synth:add_chain",), synth_n=3, budgets=("6",), waits=("0",),
                     batch_size=3, output_dir=str(out), chat_template="chatml", progress=False)
    return run_eval(cfg, BudgetPolicy(**{"max_answer_tokens": 3, **policy}), backend=backend)


def test_eval_resume_refusal_keeps_samples_and_quarantines_a_bad_middle_line(eval_backend, tmp_path):
    from s1kit.config import ConfigError

    eval_run(eval_backend, tmp_path)
    samples = tmp_path / "samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    assert len(lines) == 3
    samples.write_text(lines[0] + "{torn\n" + lines[2].rstrip("\n"))  # bad middle, lost final newline
    before = samples.read_bytes()
    with pytest.raises(ConfigError, match="policy"):
        eval_run(eval_backend, tmp_path, max_answer_tokens=5)
    assert samples.read_bytes() == before
    results = eval_run(eval_backend, tmp_path)
    rows = parse_all(samples)
    assert len(rows) == 3 and rows[:2] == [json.loads(lines[0]), json.loads(lines[2])]  # later row kept
    assert [q["line"] for q in results["quarantined"]] == [2]
    assert (tmp_path / "samples.jsonl.quarantine.jsonl").exists()


# ---------------------------------------------------------------------------------------------
# distill
# ---------------------------------------------------------------------------------------------


def test_distill_keeps_cache_rows_after_a_bad_line_and_completes_a_lost_newline(tmp_path):
    pytest.importorskip("fastapi")
    from s1kit.data.distill import DistillConfig, cache_path, run_distill
    from tests.data.teacher_server import TeacherServer

    inp = tmp_path / "q.jsonl"
    inp.write_text("".join(json.dumps({"id": f"q{i}", "question": f"question {i}"}) + "\n" for i in range(4)))
    with TeacherServer() as server:
        cfg = DistillConfig(input=str(inp), output=str(tmp_path / "out.jsonl"), base_url=server.url, model="t",
                            api_key_env=None, backoff_s=0.01, backoff_max_s=0.05, timeout_s=5.0, progress=False)
        assert run_distill(cfg)["counts"]["asked"] == 4
        cache = cache_path(cfg.output)
        lines = cache.read_text().splitlines(keepends=True)
        cache.write_text(lines[0] + "{half a rec\n" + lines[2] + lines[3].rstrip("\n"))
        again = run_distill(cfg)
    assert again["counts"]["asked"] == 1  # only the quarantined record is asked again
    assert [q["line"] for q in again["quarantined"]] == [2]
    assert len(parse_all(cache)) == 4 and len(parse_all(Path(cfg.output))) == 4
    assert os.path.exists(str(cache) + ".quarantine.jsonl")
