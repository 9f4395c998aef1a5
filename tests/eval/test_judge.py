"""The optional LLM judge against a real OpenAI-compatible server (FastAPI + uvicorn on 127.0.0.1).

The server judges deterministically from the prompt: a prediction containing "GOOD" is CORRECT,
"BAD" INCORRECT, "GARBLE" gets a reply that is not a verdict, "SLEEP" never arrives in time.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from s1kit.eval.grade import grade
from s1kit.eval.judge import JudgeConfig, LLMJudge, parse_verdict
from s1kit.forcing import ConfigError

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("openai")

SECRET = "sk-test-do-not-log-4242"


def _reply_for(prompt: str) -> str:
    shown = prompt.split("Final answer to grade:", 1)[1]
    if "GARBLE" in shown:
        return "I think it might be right, hard to say"
    if "GOOD" in shown:
        return "CORRECT"
    return "INCORRECT"


@pytest.fixture(scope="module")
def judge_server():
    app = fastapi.FastAPI()
    seen: dict = {"calls": 0, "auth": set(), "temperature": set()}

    @app.post("/v1/chat/completions")
    async def chat(body: dict, request: fastapi.Request):
        seen["calls"] += 1
        seen["auth"].add(request.headers.get("authorization"))
        seen["temperature"].add(body.get("temperature"))
        content = _reply_for(body["messages"][-1]["content"])
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}/v1", seen
    server.should_exit = True
    thread.join(timeout=10)


def _judge(url, tmp_path, monkeypatch, **kw) -> LLMJudge:
    monkeypatch.setenv("S1KIT_TEST_JUDGE_KEY", SECRET)
    return LLMJudge(JudgeConfig(model="judge-1", base_url=url, api_key_env="S1KIT_TEST_JUDGE_KEY",
                                cache_path=str(tmp_path / "cache.sqlite"), max_retries=0, **kw))


def test_judge_decides_undecided_samples_and_cache_avoids_http(judge_server, tmp_path, monkeypatch, caplog):
    url, seen = judge_server
    judge = _judge(url, tmp_path, monkeypatch)
    caplog.set_level(logging.DEBUG)
    before = seen["calls"]
    # offline tiers decide: the judge is not asked
    assert grade("Answer: 5", "5", "math", judge=judge).tier == "exact"
    assert grade("Answer: 6", "5", "integer", judge=judge).tier == "integer"
    assert seen["calls"] == before
    # nothing extractable (long prose): the judge reads the answer region and decides
    prose = "so the result is the GOOD value we wanted all along, " * 3
    g = grade(prose, "5", "math", judge=judge, question="What is 2+3?")
    assert (g.correct, g.tier) == (True, "judge") and "offline tier unparsable" in g.reason
    g = grade("the BAD value we found, " * 5, "5", "math", judge=judge)
    assert (g.correct, g.tier) == (False, "judge")
    assert seen["calls"] == before + 2
    assert seen["temperature"] == {0} and seen["auth"] == {f"Bearer {SECRET}"}
    assert "judge decided correct" in caplog.text
    assert SECRET not in caplog.text

    # the same (gold, prediction, question, model, prompt) again: no HTTP call, even from a new judge
    fresh = _judge(url, tmp_path, monkeypatch)
    again = grade(prose, "5", "math", judge=fresh, question="What is 2+3?")
    assert (again.correct, again.tier) == (True, "judge") and "cached" in again.reason
    assert seen["calls"] == before + 2 and fresh.cache_hits == 1 and fresh.http_calls == 0
    # a different question is a different key
    grade(prose, "5", "math", judge=fresh, question="What is 1+4?")
    assert seen["calls"] == before + 3


def test_malformed_reply_is_unparsable_and_incorrect_and_not_cached(judge_server, tmp_path, monkeypatch):
    url, seen = judge_server
    judge = _judge(url, tmp_path, monkeypatch)
    text = "well GARBLE maybe it is the one we wanted, " * 3
    g = grade(text, "5", "math", judge=judge)
    assert (g.correct, g.tier) == (False, "judge_unparsable")
    assert "unparsable -> incorrect" in g.reason and "hard to say" in g.reason
    calls = seen["calls"]
    grade(text, "5", "math", judge=judge)
    assert seen["calls"] == calls + 1  # retried, never cached


def test_when_always_and_incorrect(judge_server, tmp_path, monkeypatch):
    url, _ = judge_server
    always = _judge(url, tmp_path, monkeypatch, when="always")
    g = grade("Answer: GOOD", "5", "math", judge=always)
    assert (g.correct, g.tier) == (True, "judge")
    incorrect = _judge(url, tmp_path, monkeypatch, when="incorrect")
    assert grade("Answer: 5", "5", "math", judge=incorrect).tier == "exact"  # correct offline: kept
    assert grade("Answer: 4 GOOD", "5", "math", judge=incorrect).tier == "judge"


def test_unreachable_endpoint_is_a_recorded_error(tmp_path, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    judge = _judge(f"http://127.0.0.1:{port}/v1", tmp_path, monkeypatch, timeout_s=2.0)
    g = grade("no answer here at all, just a long paragraph of prose " * 3, "5", "math", judge=judge)
    assert (g.correct, g.tier) == (False, "judge_error") and "judge request failed" in g.reason


def test_parse_verdict_and_config_validation():
    assert parse_verdict("CORRECT") == "correct"
    assert parse_verdict(" incorrect.\n") == "incorrect"
    assert parse_verdict("**Correct**") == "correct"
    assert parse_verdict("CORRECT, because 2+3=5") is None
    assert parse_verdict("") is None
    with pytest.raises(ConfigError, match="judge_when"):
        JudgeConfig(model="m", when="sometimes")
    with pytest.raises(ConfigError, match="judge_model"):
        JudgeConfig(model="")
    with pytest.raises(ConfigError, match="judge_api_key_env"):
        JudgeConfig(model="m", api_key_env="sk-123 oops")
    with pytest.raises(ConfigError, match="judge_prompt"):
        JudgeConfig(model="m", prompt="no slots")


def test_missing_httpx_names_the_extra(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_openai(name, *args, **kwargs):
        if name == "httpx" or name.startswith("httpx."):
            raise ImportError("no httpx")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openai)
    judge = LLMJudge(JudgeConfig(model="m", base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(ImportError, match=r"s1kit\[api\]"):
        judge.judge("q", "5", "five")


def test_eval_with_the_judge_records_tiers_and_counts_and_never_the_key(judge_server, stopping_model,
                                                                        qwen_tokenizer, tmp_path, monkeypatch):
    from s1kit.backends.hf import HFBackend
    from s1kit.eval.run import EvalConfig, run_eval
    from s1kit.forcing import BudgetPolicy

    url, _ = judge_server
    monkeypatch.setenv("S1KIT_TEST_JUDGE_KEY", SECRET)
    cfg = EvalConfig(model="tiny", benchmarks=("synth:gcd",), synth_n=2, budgets=("6",), output_dir=str(tmp_path),
                     chat_template="chatml", progress=False, judge_model="judge-1", judge_base_url=url,
                     judge_api_key_env="S1KIT_TEST_JUDGE_KEY", judge_when="always")
    results = run_eval(cfg, BudgetPolicy(max_answer_tokens=4), backend=HFBackend(stopping_model, qwen_tokenizer))
    assert results["grading"] == {"judge": 2}
    assert results["judge"]["http_calls"] + results["judge"]["cache_hits"] == 2
    assert (tmp_path / "judge_cache.sqlite").exists()
    for name in ("samples.jsonl", "results.json", "report.md"):
        assert SECRET not in (tmp_path / name).read_text()
