"""Reliability: a grader that overruns or crashes never stops a run; an interrupted run resumes
to the same results (in-process simulated crashes at random points; a real kill -9 is slow)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s1kit.backends.hf import HFBackend
from s1kit.eval import grade as grader
from s1kit.eval import verification
from s1kit.eval.run import EvalConfig, grade_sample, run_eval
from s1kit.forcing import BudgetPolicy

ROOT = Path(__file__).resolve().parents[2]


def _sleepy_verdict(gold, pred, timeout_s):  # runs in the grader's worker process
    time.sleep(60)


def _dying_verdict(gold, pred, timeout_s):  # runs in the grader's worker process
    os._exit(3)


PROBLEM = {"benchmark": "t", "id": "p1", "kind": "math", "answer": "\\frac{1}{2}", "question": "Half?"}


def test_grader_overrun_and_worker_crash_are_recorded_with_reasons(monkeypatch):
    pytest.importorskip("math_verify")
    monkeypatch.setattr(verification, "_symbolic_verdict", _sleepy_verdict)
    slow = grade_sample("Answer: $0.5$", PROBLEM, timeout_s=0.5)
    assert (slow["correct"], slow["grade_tier"]) == (False, "timeout") and "worker killed" in slow["grade_reason"]
    monkeypatch.setattr(verification, "_symbolic_verdict", _dying_verdict)
    dead = grade_sample("Answer: $0.5$", PROBLEM, timeout_s=5.0)
    assert (dead["correct"], dead["grade_tier"]) == (False, "error") and "died" in dead["grade_reason"]
    monkeypatch.undo()
    # the worker was replaced: the next sample grades normally
    assert grade_sample("Answer: $0.5$", PROBLEM, timeout_s=10.0)["correct"]
    # a grader exception (a malformed gold) is an "error" row, not a crash
    bad = grade_sample("Answer: 3", {**PROBLEM, "kind": "integer", "answer": "x"}, timeout_s=1.0)
    assert bad["grade_tier"] == "error" and "not an integer" in bad["grade_reason"]


def test_run_goes_on_past_a_sample_whose_grading_fails(stopping_model, qwen_tokenizer, tmp_path, monkeypatch):
    real = grader.grade
    victim = "gcd-1234-1"

    def flaky(text, gold, kind="math", timeout_s=5.0, judge=None, question=""):
        if question.startswith("What is gcd(") and gold == flaky.gold:
            raise RuntimeError("grader blew up")
        return real(text, gold, kind, timeout_s, judge, question)

    from s1kit.eval.benchmarks import load_benchmark

    flaky.gold = next(r["answer"] for r in load_benchmark("synth:gcd", synth_n=3) if r["id"] == victim)
    monkeypatch.setattr(grader, "grade", flaky)
    cfg = EvalConfig(model="tiny", benchmarks=("synth:gcd",), synth_n=3, budgets=("6", "12"),
                     output_dir=str(tmp_path), chat_template="chatml", progress=False)
    results = run_eval(cfg, BudgetPolicy(max_answer_tokens=4), backend=HFBackend(stopping_model, qwen_tokenizer))
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 2
    failed = [r for r in rows if r["grade_tier"] == "error"]
    assert failed and all("grader blew up" in r["grade_reason"] and not r["correct"] for r in failed)
    assert any(r["grade_tier"] != "error" for r in rows)
    assert results["grading"]["error"] == len(failed)
    assert sum(p["n"] for p in results["benchmarks"]["synth:gcd"]["points"]) == 6


class _Killed(BaseException):
    """Stands in for kill -9: nothing after it runs (BaseException: no handler swallows it)."""


def _eval_cfg(out: Path) -> EvalConfig:
    return EvalConfig(model="tiny", benchmarks=("synth:add_chain+gcd",), synth_n=2, budgets=("8", "24"),
                      waits=("0", "1"), majority_n=2, majority_budget=8, rejection_budgets=("8",),
                      rejection_max_attempts=2, batch_size=2, output_dir=str(out), chat_template="chatml",
                      progress=False)


POLICY = BudgetPolicy(max_answer_tokens=4, seed=3, top_k=20)


def _rows(out: Path) -> list[dict]:
    return sorted((json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()),
                  key=lambda r: json.dumps(r, sort_keys=True))


def test_crash_at_a_random_point_resumes_to_the_same_results(stopping_model, qwen_tokenizer, tmp_path, monkeypatch):
    from s1kit.generate import RowWriter

    backend = HFBackend(stopping_model, qwen_tokenizer, batch_size=2)
    reference = run_eval(_eval_cfg(tmp_path / "ref"), POLICY, backend=backend)
    want = _rows(tmp_path / "ref")
    total = len(want)
    real_write = RowWriter.write
    rng = random.Random(os.getpid())  # a different point each run; the message names it
    for trial in range(1):
        out = tmp_path / f"crash{trial}"
        crash_after = rng.randrange(1, total)
        written = {"n": 0}

        def dying_write(self, row, crash_after=crash_after, written=written):
            if written["n"] == crash_after:  # a torn half line, then the process is gone
                self.fh.write(json.dumps(row)[:17])
                self.fh.flush()
                raise _Killed
            written["n"] += 1
            real_write(self, row)

        monkeypatch.setattr(RowWriter, "write", dying_write)
        with pytest.raises(_Killed):
            run_eval(_eval_cfg(out), POLICY, backend=backend)
        monkeypatch.setattr(RowWriter, "write", real_write)
        again = run_eval(_eval_cfg(out), POLICY, backend=backend)
        assert _rows(out) == want, f"crash after {crash_after} rows"
        assert again["benchmarks"] == reference["benchmarks"]


def _child(out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(Path(__file__).with_name("eval_child.py")), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_kill_9_at_a_random_point_resumes_to_the_same_results(tmp_path):
    """Three processes (~1 minute on 2 shared cores): a reference run, a run killed with SIGKILL
    once a random number of rows is on disk, and its resumption."""
    if not (ROOT.parent / "shared" / "tokenizers" / "qwen" / "tokenizer.json").exists():
        pytest.skip("the offline Qwen tokenizer is not in ../shared")
    ref = _child(tmp_path / "ref")
    assert ref.wait(timeout=600) == 0, ref.stderr.read().decode()[-2000:]
    want = _rows(tmp_path / "ref")
    kill_at = random.Random(os.getpid()).randrange(1, len(want))
    out = tmp_path / "killed"
    victim = _child(out)
    samples = out / "samples.jsonl"
    deadline = time.time() + 600
    while victim.poll() is None and time.time() < deadline:
        if samples.exists() and samples.read_bytes().count(b"\n") >= kill_at:
            victim.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert victim.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "results.json").exists()
    resumed = _child(out)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()[-2000:]
    assert _rows(out) == want, f"killed after {kill_at} rows"
    got = json.loads((out / "results.json").read_text())["benchmarks"]
    assert got == json.loads((tmp_path / "ref" / "results.json").read_text())["benchmarks"]
