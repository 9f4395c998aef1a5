"""`s1kit eval` with the baselines wired in, conditional prompts, synthetic tasks, revisions, the CLI."""

import json
import logging

import pytest

from s1kit.backends.hf import HFBackend
from s1kit.eval.benchmarks import benchmark_source, load_benchmark
from s1kit.eval.grade import grade
from s1kit.eval.run import EvalConfig, run_eval
from s1kit.forcing import BudgetPolicy, ConfigError

from ..conftest import BENCHMARKS


def _samples(path):
    return [json.loads(line) for line in (path / "samples.jsonl").read_text().splitlines()]


def test_eval_runs_majority_voting_and_rejection_sampling_next_to_the_sweep(stopping_model, qwen_tokenizer, tmp_path):
    backend = HFBackend(stopping_model, qwen_tokenizer, batch_size=8)
    cfg = EvalConfig(model="tiny", benchmarks=("synth:gcd+sort_digits",), synth_n=2, budgets=("8", "30"),
                     waits=("0",), majority_n=4, majority_budget=20, rejection_budgets=("10", "30"),
                     rejection_max_attempts=3, output_dir=str(tmp_path), chat_template="chatml", progress=False)
    policy = BudgetPolicy(max_answer_tokens=6, seed=5)
    results = run_eval(cfg, policy, backend=backend)
    samples = _samples(tmp_path)
    by_method = {m: [s for s in samples if s["method"] == m]
                 for m in ("budget_forcing", "majority_voting", "rejection_sampling")}
    assert [len(v) for v in by_method.values()] == [4 * 2, 4 * 4, 4 * 2]
    assert {s["sample"] for s in by_method["majority_voting"]} == {0, 1, 2, 3}
    assert all(s["thinking_tokens"] <= 20 for s in by_method["majority_voting"])
    for s in by_method["rejection_sampling"]:
        assert 1 <= s["attempts"] <= 3
        if s["thinking_tokens"] is None:  # none fit: counted, incorrect, never a capped sample
            assert s["attempts"] == 3 and s["grade_tier"] == "no_sample_fit" and not s["correct"]
        else:
            assert s["thinking_tokens"] <= s["budget"] and not s["forced_end"]

    methods = results["benchmarks"]["synth:gcd+sort_digits"]["methods"]
    assert set(methods) == {"budget_forcing", "majority_voting", "rejection_sampling"}
    for m in methods.values():
        assert 0 <= m["control"] <= 1 and 0 <= m["performance"] <= 1
        assert all(p["ci_low"] <= p["accuracy"] <= p["ci_high"] for p in m["points"])
    assert [p["k"] for p in methods["majority_voting"]["points"]] == [1, 2, 4]
    maj = methods["majority_voting"]["points"]
    assert maj[2]["mean_thinking_tokens"] == pytest.approx(
        sum(s["thinking_tokens"] for s in by_method["majority_voting"]) / 4)
    rej = methods["rejection_sampling"]["points"]
    assert [p["budget"] for p in rej] == [10, 30] and all(p["kept"] + p["none_fit"] == 4 for p in rej)
    assert methods["rejection_sampling"]["control"] == pytest.approx(sum(p["kept"] for p in rej) / 8)

    report = (tmp_path / "report.md").read_text()
    assert "| method | Control % |" in report and "### majority_voting" in report and "| k | n |" in report
    assert "mean attempts" in report and "parallel_vs_sequential.png" in report
    assert (tmp_path / "parallel_vs_sequential.png").stat().st_size > 1000
    assert "<h3>rejection_sampling</h3>" in (tmp_path / "report.html").read_text()
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["config"]["majority_n"] == 4 and on_disk["grading"]

    # a second run finds everything on disk: same rows, same results
    again = run_eval(cfg, policy, backend=backend)
    assert _samples(tmp_path) == samples and again["benchmarks"] == results["benchmarks"]


def test_conditional_prompt_mode_states_the_budget_in_each_prompt(stopping_model, qwen_tokenizer, tmp_path):
    import s1kit.eval.methods as run_mod

    seen = []
    backend = HFBackend(stopping_model, qwen_tokenizer, batch_size=4)

    real = run_mod._prompts

    def spy(cfg, backend, todo, budget=None):
        out = real(cfg, backend, todo, budget)
        seen.extend(qwen_tokenizer.decode(p) for p in out)
        return out

    cfg = EvalConfig(model="tiny", benchmarks=("synth:gcd",), synth_n=2, budgets=("8", "16"), prompt_mode="token",
                     output_dir=str(tmp_path), chat_template="chatml", progress=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_mod, "_prompts", spy)
        results = run_eval(cfg, BudgetPolicy(max_answer_tokens=4), backend=backend)
    assert sum("Think for up to 8 tokens." in p for p in seen) == 2
    assert sum("Think for up to 16 tokens." in p for p in seen) == 2
    bf = results["benchmarks"]["synth:gcd"]["methods"]["budget_forcing"]
    assert bf["label"] == "token-conditional + budget forcing" and len(bf["points"]) == 2
    assert all(s["thinking_tokens"] <= s["budget"] for s in _samples(tmp_path))

    step = EvalConfig(model="t", budgets=("64", "128"), prompt_mode="step", tokens_per_step=32)
    assert [step.prompt_value(b) for b in (64, 128)] == [2, 4]
    klass = EvalConfig(model="t", budgets=("64", "512"), prompt_mode="class")
    assert [klass.prompt_value(b) for b in (64, 512)] == ["short", "long"]
    custom = EvalConfig(model="t", budgets=("64",), prompt_mode="token", prompt_template="{question} [{value}]")
    assert custom.prompt_template.format(question="Q", value=custom.prompt_value(64)) == "Q [64]"


@pytest.mark.parametrize("bad, field", [
    (dict(majority_n=-1), "majority_n"),
    (dict(majority_temperature=0.0), "majority_temperature"),
    (dict(majority_budget=0), "majority_budget"),
    (dict(rejection_budgets=("0",)), "rejection_budgets"),
    (dict(rejection_budgets=("x",)), "rejection_budgets"),
    (dict(rejection_max_attempts=0), "rejection_max_attempts"),
    (dict(rejection_temperature=-1.0), "rejection_temperature"),
    (dict(prompt_mode="vibes", budgets=("8",)), "prompt_mode"),
    (dict(prompt_mode="class", budgets=("8", "16", "32")), "budgets"),
    (dict(prompt_mode="token"), "budgets"),
    (dict(prompt_mode="token", budgets=("8",), prompt_template="no slots"), "prompt_template"),
    (dict(prompt_template="{question} {value}"), "prompt_template"),
    (dict(tokens_per_step=0), "tokens_per_step"),
    (dict(synth_n=0), "synth_n"),
    (dict(judge_model="j", judge_when="never"), "judge_when"),
])
def test_eval_config_rejects_bad_values_naming_the_field(bad, field):
    with pytest.raises(ConfigError, match=field):
        EvalConfig(model="tiny", **bad)


def test_synth_benchmark_is_seeded_interleaved_and_graded_by_kind():
    rows = load_benchmark("synth", synth_n=3, synth_seed=7)
    from s1kit.synth.tasks import FAMILIES, generate

    assert len(rows) == 3 * len(FAMILIES) and len({r["id"] for r in rows}) == len(rows)
    assert [r["family"] for r in rows[:len(FAMILIES)]] == list(FAMILIES)  # interleaved: --limit keeps all
    assert rows == load_benchmark("synth", synth_n=3, synth_seed=7)
    assert rows != load_benchmark("synth", synth_n=3, synth_seed=8)
    gcd = load_benchmark("synth:gcd", synth_n=3, synth_seed=7)
    assert [r["answer"] for r in gcd] == [p.answer for p in generate("gcd", 3, seed=7)]
    sort_rows = load_benchmark("synth:sort_digits", synth_n=4)
    assert {r["kind"] for r in sort_rows} == {"exact"} and {r["kind"] for r in gcd} == {"integer"}
    gold = sort_rows[0]["answer"]
    assert grade(f"Answer: {gold}", gold, "exact").correct
    assert not grade(f"Answer: {gold.split(' ', 1)[1]}", gold, "exact").correct  # a dropped digit


def test_synth_levels_restrict_the_set_and_are_validated():
    hard = load_benchmark("synth:add_chain", synth_n=6, synth_seed=7, synth_levels=(4,))
    assert {r["level"] for r in hard} == {4}
    assert {r["level"] for r in load_benchmark("synth:add_chain", synth_n=8, synth_seed=7)} == {1, 2, 3, 4}
    assert EvalConfig(model="tiny", benchmarks=("synth",), synth_levels=("3", "4")).synth_levels == (3, 4)
    with pytest.raises(ConfigError, match="synth_levels"):
        EvalConfig(model="tiny", benchmarks=("synth",), synth_levels=(5,))
    assert not grade("Answer: 0 2 5", "2 5", "exact").correct  # not compared as integers (025 = 25)
    with pytest.raises(ConfigError, match="benchmarks"):
        load_benchmark("synth:nope")


def test_results_record_revision_source_and_hash(caplog):
    caplog.set_level(logging.WARNING)
    unpinned = benchmark_source("math500", None, None)
    assert unpinned["revision"] == "unpinned" and "unpinned" in caplog.text
    caplog.clear()
    pinned = benchmark_source("math500", None, "abc123")
    assert pinned["revision"] == "abc123" and pinned["source"] == "HuggingFaceH4/MATH-500" and not caplog.text
    assert benchmark_source("aime24", "x.jsonl", None)["revision"] == "local file"
    assert "seed=3" in benchmark_source("synth", None, None, synth_n=2, synth_seed=3)["revision"]


def test_eval_results_name_their_data(stopping_model, qwen_tokenizer, tmp_path):
    path = BENCHMARKS / "aime24.jsonl"
    if not path.exists():
        pytest.skip(f"no benchmark file at {path}")
    backend = HFBackend(stopping_model, qwen_tokenizer, batch_size=4)
    cfg = EvalConfig(model="tiny", benchmarks=("aime24", "synth:add_chain"), data=(f"aime24={path}",), limit=2,
                     synth_n=2, budgets=("6",), output_dir=str(tmp_path), chat_template="chatml", progress=False)
    results = run_eval(cfg, BudgetPolicy(max_answer_tokens=4), backend=backend)
    ds = results["datasets"]
    assert ds["aime24"]["revision"] == "local file" and ds["aime24"]["rows"] == 2
    assert ds["synth:add_chain"]["revision"].startswith("generated") and len(ds["synth:add_chain"]["sha256"]) == 64
    assert results["dataset_hashes"]["aime24"] == ds["aime24"]["sha256"]
    assert "local file" in (tmp_path / "report.md").read_text()


def test_cli_eval_help_shows_the_new_flags():
    from s1kit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    text = sub.choices["eval"].format_help()
    for flag in ("--majority-n", "--majority-temperature", "--majority-budget", "--rejection-budgets",
                 "--rejection-max-attempts", "--prompt-mode", "--prompt-template", "--tokens-per-step",
                 "--judge-model", "--judge-base-url", "--judge-api-key-env", "--judge-when", "--judge-cache",
                 "--synth-n", "--synth-seed", "--data-revision"):
        assert flag in text, flag
    args = parser.parse_args(["eval", "--model", "m", "--majority-n", "8", "--rejection-budgets", "64,128",
                              "--prompt-mode", "token", "--budgets", "64"])
    from s1kit.config import resolve

    cfg = resolve(EvalConfig, args, {}, "eval")
    assert (cfg.majority_n, cfg.rejection_budgets, cfg.prompt_mode) == (8, ("64", "128"), "token")


def test_cli_eval_end_to_end_on_the_synthetic_benchmark(stopping_model, qwen_tokenizer, tmp_path, capsys):
    from s1kit.cli import main

    model_dir = tmp_path / "model"
    stopping_model.save_pretrained(model_dir)
    qwen_tokenizer.save_pretrained(model_dir)
    out = tmp_path / "eval"
    rc = main(["eval", "--model", str(model_dir), "--benchmarks", "synth:add_chain", "--synth-n", "3",
               "--budgets", "6,12", "--waits", "0,1", "--majority-n", "2", "--rejection-budgets", "12",
               "--rejection-max-attempts", "2", "--chat-template", "chatml", "--max-answer-tokens", "4",
               "--top-k", "20", "--device", "cpu", "--dtype", "float32", "--progress", "false",
               "--output-dir", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert '"synth:add_chain"' in printed and "report:" in printed
    results = json.loads((out / "results.json").read_text())
    assert set(results["benchmarks"]["synth:add_chain"]["methods"]) == {
        "budget_forcing", "majority_voting", "rejection_sampling"}
    assert results["datasets"]["synth:add_chain"]["revision"] == "generated: n=3 per family, seed=1234, levels=all"
    assert len(_samples(out)) == 3 * 4 + 3 * 2 + 3


@pytest.mark.parametrize("recipe", ["eval-s1.yaml", "eval-synth.yaml", "eval-conditional.yaml"])
def test_eval_recipes_validate(recipe):
    from pathlib import Path

    from s1kit.config import from_dict, load_yaml

    path = Path(__file__).resolve().parents[2] / "recipes" / recipe
    text = path.read_text()
    assert "# Launch: s1kit eval --config recipes/" in text
    data = load_yaml(str(path))
    cfg = from_dict(EvalConfig, {**data["eval"], "model": "m"}, where="eval")
    policy = BudgetPolicy.from_dict({**BudgetPolicy.preset("s1").to_dict(), **data["policy"]})
    assert cfg.budget_list() and max(cfg.budget_list()) <= policy.max_thinking_tokens


def test_no_thinking_phase_is_one_plain_point(stopping_model, qwen_tokenizer, tmp_path):
    """A base model answering directly: max_thinking_tokens None and no budgets."""
    backend = HFBackend(stopping_model, qwen_tokenizer, batch_size=4)
    cfg = EvalConfig(model="tiny", benchmarks=("synth:gcd",), synth_n=3, output_dir=str(tmp_path),
                     chat_template="chatml", progress=False)
    results = run_eval(cfg, BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=5), backend=backend)
    rows = _samples(tmp_path)
    assert len(rows) == 3 and all(r["budget"] is None and r["thinking_tokens"] == 0 for r in rows)
    res = results["benchmarks"]["synth:gcd"]
    assert len(res["points"]) == 1 and res["scaling_per_1k_tokens"] is None
    assert run_eval(cfg, BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=5), backend=backend)[
        "benchmarks"] == results["benchmarks"]  # resumes: nothing regenerated
    assert _samples(tmp_path) == rows
    with pytest.raises(ConfigError, match="waits"):
        run_eval(EvalConfig(model="t", benchmarks=("synth:gcd",), synth_n=1, waits=("1",),
                            output_dir=str(tmp_path / "other"), progress=False),
                 BudgetPolicy(max_thinking_tokens=None), backend=backend)


def test_a_sampled_sweep_runs_every_point_as_its_own_request(stopping_model, qwen_tokenizer, tmp_path):
    """The shared-prefix sweep is greedy only: with temperature > 0 a backend that has the
    ``prefix_sweep`` capability still gets one seeded request per (budget, waits) point."""
    backend = HFBackend(stopping_model, qwen_tokenizer, batch_size=8)
    calls = []
    backend.sweep_chunk = lambda *args, **kwargs: calls.append(args)  # must not be used
    cfg = EvalConfig(model="tiny", benchmarks=("synth:gcd+sort_digits",), synth_n=1, budgets=("8", "20"),
                     waits=("0", "1"), output_dir=str(tmp_path), chat_template="chatml", progress=False)
    run_eval(cfg, BudgetPolicy(max_answer_tokens=4, temperature=0.8, seed=3), backend=backend)
    samples = [s for s in _samples(tmp_path) if s["method"] == "budget_forcing"]
    assert not calls and len(samples) == 2 * 4
    assert {(s["budget"], s["waits"]) for s in samples} == {(8, 0), (8, 1), (20, 0), (20, 1)}
