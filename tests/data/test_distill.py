"""Distillation against a real HTTP teacher on 127.0.0.1: parsing, retries, drops, cache, kill -9 resume."""

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

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from s1kit.config import ConfigError  # noqa: E402
from s1kit.data.distill import (DistillConfig, Malformed, retry_of, cache_key, cache_path,  # noqa: E402
                                load_cache, parse_chat_response, run_distill, split_thinking)
from tests.data.teacher_server import TeacherServer, completion_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-test-secret-never-logged"


def write_questions(path: Path, questions: list[str]) -> Path:
    with open(path, "w") as fh:
        for i, q in enumerate(questions):
            fh.write(json.dumps({"id": f"q{i}", "question": q, "source": "t", "metadata": {"k": i}}) + "\n")
    return path


def config(tmp_path: Path, url: str, questions: list[str], **kw) -> DistillConfig:
    values = dict(input=str(write_questions(tmp_path / "q.jsonl", questions)), output=str(tmp_path / "out.jsonl"),
                  base_url=url, model="teacher-1", api_key_env="S1KIT_TEST_KEY", concurrency=4, backoff_s=0.01,
                  backoff_max_s=0.05, timeout_s=1.0, max_retries=3, progress=False)
    values.update(kw)
    return DistillConfig(**values)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


# ---------------------------------------------------------------------------------------------
# parsing and pure helpers
# ---------------------------------------------------------------------------------------------


def test_split_thinking_reads_reasoning_content_and_inline_think():
    assert split_thinking({"reasoning_content": " r ", "content": " a "}) == ("r", "a")
    assert split_thinking({"reasoning": "r", "content": "a"}) == ("r", "a")  # vLLM's field name
    assert split_thinking({"content": "<think>\nstep 1\n</think>\n\nfinal"}) == ("step 1", "final")
    for message, reason in [({"content": "no trace"}, "no_thinking"),
                            ({"content": "<think>x</think>"}, "empty_attempt"),
                            ({"reasoning_content": "  ", "content": "a"}, "empty_thinking"),
                            ({"content": 5}, "malformed:content_not_text")]:
        with pytest.raises(Malformed) as err:
            split_thinking(message)
        assert err.value.reason == reason


def test_parse_chat_response_reports_usage_and_rejects_bad_shapes():
    body = {"choices": [{"message": {"reasoning_content": "t", "content": "a"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 7}}}
    assert parse_chat_response(body) == ("t", "a", "stop", {"prompt_tokens": 3, "completion_tokens": 9,
                                                           "reasoning_tokens": 7})
    for bad, reason in [([], "malformed:not_an_object"), ({"choices": []}, "malformed:no_choices"),
                        ({"choices": [{"text": "x"}]}, "malformed:no_message")]:
        with pytest.raises(Malformed, match=reason):
            parse_chat_response(bad)


def test_cache_key_covers_question_model_decoding_template_and_sample(tmp_path):
    base = DistillConfig(input="q.jsonl", model="m")
    key = cache_key("Q", base, 0)
    assert key == cache_key("Q", DistillConfig(input="other.jsonl", model="m", base_url="http://x/v1"), 0)
    for other in [DistillConfig(input="q.jsonl", model="m2"), DistillConfig(input="q.jsonl", model="m", top_p=0.9),
                  DistillConfig(input="q.jsonl", model="m", max_tokens=5),
                  DistillConfig(input="q.jsonl", model="m", prompt_template="Solve: {question}")]:
        assert cache_key("Q", other, 0) != key
    assert cache_key("Q2", base, 0) != key and cache_key("Q", base, 1) != key


def test_load_cache_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"key": "a", "thinking": "t"}\n{"key": "b", "thinking": "t"}\n{"key": "c", "thin')
    assert set(load_cache(path)[0]) == {"a", "b"}
    assert path.read_text().endswith('"t"}\n')
    path.write_text('{"key": "a"}\n{"key": "b"}')  # complete JSON, but no newline: completed, never glued
    assert set(load_cache(path)[0]) == {"a", "b"}
    assert path.read_text() == '{"key": "a"}\n{"key": "b"}\n'


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after():
    retry = retry_of(DistillConfig(input="q", model="m", backoff_s=1.0, backoff_max_s=8.0))
    rng = random.Random(0)
    for attempt, step in [(0, 1), (1, 2), (2, 4), (3, 8), (6, 8)]:
        delays = [retry.delay(attempt, rng) for _ in range(50)]
        assert all(step / 2 <= d <= step for d in delays) and len(set(delays)) > 1
    assert retry.delay(0, rng, retry_after=5.0) >= 5.0
    assert retry.delay(0, rng, retry_after=500.0) <= 8.0


@pytest.mark.parametrize("bad", [dict(concurrency=0), dict(samples=2), dict(temperature=-1), dict(max_retries=-1),
                                 dict(teacher="claude"), dict(prompt_template="no placeholder"), dict(model=""),
                                 dict(price_output_per_1m=-1.0)])
def test_bad_distill_configs_raise_config_error(bad):
    with pytest.raises(ConfigError) as err:
        DistillConfig(**{"input": "q.jsonl", "model": "m", **bad})
    assert err.value.field in bad or err.value.field == "samples"


# ---------------------------------------------------------------------------------------------
# against the server
# ---------------------------------------------------------------------------------------------


def test_retries_drops_ledger_and_key_handling(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("S1KIT_TEST_KEY", SECRET)
    questions = ["plain one", "busy [429x2]", "flaky [500x1]", "slow [slowx1]", "bad [malformed]",
                 "empty [nochoices]", "terse [nothink]", "inline [inline]", "down [500x99]"]
    with TeacherServer() as server:
        cfg = config(tmp_path, server.url, questions, price_input_per_1m=2.0, price_output_per_1m=10.0)
        caplog.set_level("DEBUG")
        manifest = run_distill(cfg)
        rows = {r["id"]: r for r in read_rows(tmp_path / "out.jsonl")}
        assert set(rows) == {"q0", "q1", "q2", "q3", "q7"}  # 429, 500 and the timeout were retried
        for rid in rows:
            q = questions[int(rid[1:])]
            thinking, attempt = completion_for(q, "teacher-1")
            assert (rows[rid]["thinking"], rows[rid]["attempt"]) == (thinking, attempt)
            assert rows[rid]["metadata"]["k"] == int(rid[1:]) and rows[rid]["metadata"]["teacher"] == "teacher-1"
        assert manifest["drops"] == {"malformed:invalid_json": 1, "malformed:no_choices": 1, "no_thinking": 1,
                                     "retries_exhausted:http_500": 1}
        assert server.app.state.attempts["busy [429x2]"] == 3 and server.app.state.attempts["down [500x99]"] == 4
        ledger = manifest["ledger"]
        assert ledger["completion_tokens"] == 5 * 50 and ledger["reasoning_tokens"] == 5 * 40
        expected = (ledger["prompt_tokens"] * 2.0 + ledger["completion_tokens"] * 10.0) / 1e6
        assert ledger["cost"] == pytest.approx(expected)
        assert set(server.app.state.auth) == {f"Bearer {SECRET}"}
        on_disk = (tmp_path / "out.jsonl.manifest.json").read_text() + cache_path(cfg.output).read_text()
        assert SECRET not in on_disk and SECRET not in caplog.text
        assert "S1KIT_TEST_KEY" in on_disk  # the variable's name is recorded, its value never

        # rerun: cached rows are not asked again; drops are asked again (never cached)
        before = sum(server.app.state.attempts.values())
        again = run_distill(cfg)
        assert again["counts"]["cached_before"] == 5 and again["counts"]["asked"] == 4
        assert sum(server.app.state.attempts.values()) - before == 1 + 1 + 1 + 4  # 3 malformed + 4 tries
        assert read_rows(tmp_path / "out.jsonl") == list(rows.values())


def test_k_samples_and_dry_run(tmp_path):
    with TeacherServer() as server:
        cfg = config(tmp_path, server.url, ["a", "b", "c"], samples=2, temperature=0.7, dry_run=True,
                     price_output_per_1m=1.0, dry_run_output_tokens=1000)
        est = run_distill(cfg)
        assert est["estimate"]["requests"] == 6 and est["estimate"]["cost_est"] == pytest.approx(0.006)
        assert sum(server.app.state.attempts.values()) == 0 and not (tmp_path / "out.jsonl").exists()
        cfg.dry_run = False
        run_distill(cfg)
        rows = read_rows(tmp_path / "out.jsonl")
        assert [r["id"] for r in rows] == ["q0#0", "q0#1", "q1#0", "q1#1", "q2#0", "q2#1"]
        assert {r["metadata"]["question_id"] for r in rows} == {"q0", "q1", "q2"}
        assert server.app.state.attempts["a"] == 2


# ---------------------------------------------------------------------------------------------
# kill -9 at random points, then resume
# ---------------------------------------------------------------------------------------------

QUESTIONS = [f"Question {i}: what is {i} squared?" + (" [429x1]" if i % 7 == 0 else "") for i in range(48)]


def distill_cmd(inp: Path, out: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "s1kit.cli", "--log-level", "WARNING", "distill", "--input", str(inp),
            "--output", str(out), "--base-url", url, "--model", "teacher-1", "--api-key-env", "S1KIT_TEST_KEY",
            "--concurrency", "4", "--backoff-s", "0.01", "--backoff-max-s", "0.05", "--timeout-s", "5",
            "--progress", "false"]


def wait_for_cache_lines(path: Path, target: int, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Return once ``path`` holds ``target`` lines (a random point of the run) or the process ended."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= target:
            return
        time.sleep(0.002)


def run_kill_trials(tmp_path: Path, trials: int, seed: int) -> None:
    env = {**os.environ, "S1KIT_TEST_KEY": SECRET, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    rng = random.Random(seed)
    partial_trials = 0
    with TeacherServer(delay_s=0.04) as server:  # ~1 s per clean run: kills land mid-run
        inp = write_questions(tmp_path / "q.jsonl", QUESTIONS)
        ref = tmp_path / "ref" / "out.jsonl"
        ref.parent.mkdir()
        subprocess.run(distill_cmd(inp, ref, server.url), env=env, check=True, cwd=ROOT, capture_output=True)
        reference = ref.read_text()
        assert len(reference.splitlines()) == len(QUESTIONS)
        for trial in range(trials):
            out = tmp_path / f"t{trial}" / "out.jsonl"
            out.parent.mkdir()
            kills = 0
            for _ in range(rng.randint(1, 3)):  # one to three kills, each after a random number of rows
                proc = subprocess.Popen(distill_cmd(inp, out, server.url), env=env, cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for_cache_lines(cache_path(out), rng.randint(1, len(QUESTIONS) - 2), proc)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                proc.wait()
            cached = len(load_cache(cache_path(out))[0]) if cache_path(out).exists() else 0
            partial_trials += 0 < cached < len(QUESTIONS)
            done = subprocess.run(distill_cmd(inp, out, server.url), env=env, cwd=ROOT, capture_output=True,
                                  text=True)
            assert done.returncode == 0, done.stderr
            assert SECRET not in done.stdout + done.stderr
            assert out.read_text() == reference, f"trial {trial} ({kills} kills) differs from the clean run"
            keys = [json.loads(line)["key"] for line in open(cache_path(out))]
            assert len(keys) == len(set(keys)) == len(QUESTIONS), f"trial {trial}: duplicated or lost cache rows"
    assert partial_trials >= 1, "no kill landed mid-run: the test did not test resuming"


def test_kill_9_and_resume_two_trials(tmp_path):
    run_kill_trials(tmp_path, trials=2, seed=1)


@pytest.mark.slow
def test_kill_9_and_resume_ten_trials(tmp_path):
    run_kill_trials(tmp_path, trials=10, seed=2)


def test_local_teacher_through_s1kit_generate(tmp_path):
    from s1kit.demo import build_demo_model
    from s1kit.forcing import BudgetPolicy

    model = build_demo_model(tmp_path / "model")
    questions = ["What is 2+2?", "Name a prime.", "Sort 3 1 2."]
    cfg = DistillConfig(input=str(write_questions(tmp_path / "q.jsonl", questions)), output=str(tmp_path / "o.jsonl"),
                        teacher="local", model=str(model), progress=False)
    policy = BudgetPolicy(max_thinking_tokens=8, max_answer_tokens=4)
    manifest = run_distill(cfg, policy=policy)
    rows = read_rows(tmp_path / "o.jsonl")
    assert manifest["counts"]["written"] == len(rows)
    assert len(rows) + manifest["counts"]["dropped"] == 3  # a random model may leave a field empty: counted
    assert all(r["thinking"] and r["attempt"] for r in rows)
    again = run_distill(cfg, policy=policy)
    assert again["counts"]["cached_before"] == len(rows)
