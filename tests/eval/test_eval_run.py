"""`s1kit eval` end to end on the real MATH500 file: samples, results, plot, report, resume."""

import json
from dataclasses import replace

import pytest

from s1kit.backends.hf import HFBackend
from s1kit.eval.benchmarks import load_benchmark
from s1kit.eval.run import EvalConfig, run_eval
from s1kit.forcing import BudgetPolicy

from ..conftest import BENCHMARKS


@pytest.fixture
def math500():
    path = BENCHMARKS / "math500.jsonl"
    if not path.exists():
        pytest.skip(f"no benchmark file at {path}")
    return str(path)


def test_benchmarks_load_from_local_files():
    for name, n in [("math500", 500), ("aime24", 30), ("aime25", 30), ("amc23", 40)]:
        path = BENCHMARKS / f"{name}.jsonl"
        if not path.exists():
            pytest.skip(f"no benchmark file at {path}")
        rows = load_benchmark(name, str(path))
        assert len(rows) == n and len({r["id"] for r in rows}) == n
        assert all(r["question"] and r["answer"] for r in rows)


def test_gpqa_choices_are_shuffled_per_question_and_gold_is_a_letter(tmp_path):
    path = tmp_path / "gpqa.jsonl"
    rows = [{"Record ID": f"r{i}", "Question": f"Q{i}?", "Correct Answer": "right", "Incorrect Answer 1": "w1",
             "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3"} for i in range(12)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    got = load_benchmark("gpqa_diamond", str(path))
    assert {r["answer"] for r in got} > {"A"}  # not always the first choice
    for r in got:
        assert r["choices"][r["answer"]] == "right"
        assert f"{r['answer']}) right" in r["question"]
    assert got == load_benchmark("gpqa_diamond", str(path))  # seeded per question


def test_eval_sweep_writes_graded_samples_results_plot_and_report(stopping_model, qwen_tokenizer, math500, tmp_path):
    backend = HFBackend(stopping_model, qwen_tokenizer, batch_size=4)
    cfg = EvalConfig(model="tiny", benchmarks=("math500",), data=(f"math500={math500}",), limit=5,
                     budgets=("8", "40"), waits=("0", "2"), output_dir=str(tmp_path), chat_template="chatml",
                     progress=False)
    policy = BudgetPolicy(max_answer_tokens=8)
    results = run_eval(cfg, policy, backend=backend)
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 5 * 2 * 2
    assert all(s["grade_tier"] and s["thinking_tokens"] <= s["budget"] for s in samples)
    res = results["benchmarks"]["math500"]
    assert len(res["points"]) == 4 and res["control"] == 1.0
    assert (tmp_path / "scaling.png").stat().st_size > 1000
    assert "| budget | waits |" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["dataset_hashes"]["math500"]

    # crash: the last problem's rows are half written -> rerun regenerates it, no duplicates
    lines = (tmp_path / "samples.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "samples.jsonl").write_text("".join(lines[:-3]) + lines[-3][:20])
    again = run_eval(cfg, policy, backend=backend)
    resumed = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    key = lambda s: (s["id"], s["budget"], s["waits"])  # noqa: E731
    assert sorted(map(key, resumed)) == sorted(map(key, samples))
    assert {key(s): s["answer_text"] for s in resumed} == {key(s): s["answer_text"] for s in samples}
    assert again["benchmarks"] == results["benchmarks"]


def test_resume_with_another_policy_or_model_is_refused(stopping_model, qwen_tokenizer, math500, tmp_path):
    from s1kit.config import ConfigError

    backend = HFBackend(stopping_model, qwen_tokenizer, batch_size=4)
    cfg = EvalConfig(model="m", benchmarks=("math500",), data=(f"math500={math500}",), limit=2,
                     budgets=("8",), output_dir=str(tmp_path), chat_template="chatml", progress=False)
    policy = BudgetPolicy(max_thinking_tokens=8, max_answer_tokens=4)
    run_eval(cfg, policy, backend=backend)
    samples = (tmp_path / "samples.jsonl").read_text()
    with pytest.raises(ConfigError, match=r"output_dir=.*policy"):  # another answer cap: other rows
        run_eval(cfg, BudgetPolicy(max_thinking_tokens=8, max_answer_tokens=6), backend=backend)
    with pytest.raises(ConfigError, match=r"output_dir=.*model"):
        run_eval(replace(cfg, model="another"), policy, backend=backend)
    assert (tmp_path / "samples.jsonl").read_text() == samples  # nothing was mixed in
    more = run_eval(replace(cfg, budgets=("4", "8"), batch_size=2), policy, backend=backend)  # new points are fine
    assert [p["budget"] for p in more["benchmarks"]["math500"]["points"]] == [4, 8]
