"""RemoteBackend: exact multi-round budget forcing over an OpenAI-compatible completions server."""

from __future__ import annotations

import pytest

for _extra in ("fastapi", "uvicorn", "httpx"):
    pytest.importorskip(_extra)

import asyncio


from s1kit.backends.base import Request
from s1kit.backends.hf import HFBackend
from s1kit.backends.remote import RemoteBackend, RemoteError
from s1kit.forcing import BudgetPolicy

from ..conftest import chat_prompt
from .conftest import SERVED, ServerThread, serve_config

QUESTIONS = ["How many r in raspberry?", "What is 2+2?", "Sort 5 3 9 1.",
             "Compute 17 * 23 step by step, then check it.", "gcd(84, 36)?", "Base 2 of 13?", "Hi"]
FIELDS = ("ids", "text", "thinking_text", "answer_text", "thinking_tokens", "forced_tokens", "answer_tokens",
          "waits_injected", "forced_end", "finish_reason", "forced_spans")


@pytest.fixture(scope="module")
def qwen_backend(stopping_model, qwen_tokenizer):
    return HFBackend(stopping_model, qwen_tokenizer, batch_size=4)


@pytest.fixture(scope="module")
def qwen_server(qwen_backend):
    with ServerThread(serve_config("qwen-tiny", max_tokens_limit=4096), qwen_backend) as srv:
        yield srv


def requests(tok, policy, n=4):
    return [Request(chat_prompt(tok, q), policy, key=str(i)) for i, q in enumerate(QUESTIONS[:n])]


@pytest.mark.parametrize("policy", [
    BudgetPolicy(max_thinking_tokens=60, num_ignore=0, max_answer_tokens=12),
    BudgetPolicy(max_thinking_tokens=90, num_ignore=2, max_answer_tokens=12),
    BudgetPolicy(max_thinking_tokens=25, num_ignore=3, max_answer_tokens=8),
    BudgetPolicy(max_thinking_tokens=80, min_thinking_tokens=50, max_answer_tokens=8),
    BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=30),
], ids=["cap", "two-waits", "waits-then-cap", "min-thinking", "plain"])
def test_remote_over_our_server_equals_the_local_engine(qwen_server, qwen_backend, qwen_tokenizer, policy):
    reqs = requests(qwen_tokenizer, policy)
    local = qwen_backend.generate(reqs)
    seen = []
    remote_backend = RemoteBackend(qwen_server.url, SERVED, tokenizer=qwen_tokenizer, max_concurrency=4)
    remote = remote_backend.generate(reqs, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(len(reqs)))
    assert policy.num_ignore == 0 or any(r.waits_injected for r in local)
    for a, b in zip(local, remote):
        for field in FIELDS:
            assert getattr(a, field) == getattr(b, field), field
    assert remote_backend.token_prompts is True and remote_backend.retries == 0


def test_text_prompts_keep_the_budget(qwen_server, qwen_tokenizer):
    policy = BudgetPolicy(max_thinking_tokens=40, num_ignore=2, max_answer_tokens=10)
    rb = RemoteBackend(qwen_server.url + "/v1", SERVED, tokenizer=qwen_tokenizer, token_prompts=False,
                       extensions=False)
    for r in rb.generate(requests(qwen_tokenizer, policy)[:4]):
        assert r.thinking_tokens <= 40 and r.waits_injected <= 2 and r.answer_tokens <= 10
        assert r.finish_reason in ("stop", "length")


# -- a scripted server: failures, timeouts, concurrency -------------------------------------------


def scripted_app(fail_every=0, slow_call=None, refuse_ids=False, with_ids=True):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    state = {"calls": 0, "inflight": 0, "max_inflight": 0, "prompts": []}

    async def completions(request):
        body = await request.json()
        state["calls"] += 1
        call = state["calls"]
        if refuse_ids and isinstance(body["prompt"], list):
            return JSONResponse({"error": {"message": "prompt must be a string", "param": "prompt"}}, status_code=400)
        if fail_every and call % fail_every == 1:
            status = 429 if call % 2 else 503
            return JSONResponse({"error": {"message": "busy"}}, status_code=status, headers={"Retry-After": "0"})
        state["prompts"].append(body["prompt"])
        state["inflight"] += 1
        state["max_inflight"] = max(state["max_inflight"], state["inflight"])
        try:
            await asyncio.sleep(1.5 if call == slow_call else 0.02)
        finally:
            state["inflight"] -= 1
        n = body["max_tokens"]
        choice = {"index": 0, "text": "a" * n, "finish_reason": "length"}
        if with_ids:
            choice["token_ids"] = [50] * n
        return JSONResponse({"choices": [choice]})

    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])
    app.state.script = state
    return app


@pytest.fixture(scope="module")
def char_tokenizer():
    from s1kit.synth.tokenizer import char_tokenizer

    return char_tokenizer()


def scripted_requests(tok, n=12):
    policy = BudgetPolicy(max_thinking_tokens=5, max_answer_tokens=3)
    return [Request(tok.encode("q%d" % i), policy, key=str(i)) for i in range(n)]


def test_retries_backoff_and_concurrency_limit(char_tokenizer):
    app = scripted_app(fail_every=3, slow_call=5)
    with ServerThread(app=app) as srv:
        rb = RemoteBackend(srv.url, "m", tokenizer=char_tokenizer, max_concurrency=3, timeout_s=0.75,
                           backoff_s=0.01, max_backoff_s=0.05)
        results = rb.generate(scripted_requests(char_tokenizer))
    for r in results:  # every round got exactly the remaining budget
        assert r.thinking_tokens == 5 and r.forced_end and r.answer_tokens == 3 and r.finish_reason == "length"
    assert rb.retries >= 8  # every third call failed, and one timed out
    # the client holds 3 in flight; a call it abandoned at its timeout may still run on the server
    assert app.state.script["max_inflight"] <= 3 + 1


def test_falls_back_to_text_prompts_and_text_output(char_tokenizer):
    app = scripted_app(refuse_ids=True, with_ids=False)
    with ServerThread(app=app) as srv:
        rb = RemoteBackend(srv.url, "m", tokenizer=char_tokenizer, backoff_s=0.01)
        results = rb.generate(scripted_requests(char_tokenizer, 3))
    assert rb.token_prompts is False
    assert all(isinstance(p, str) for p in app.state.script["prompts"])
    assert all(r.thinking_tokens == 5 and r.answer_tokens == 3 for r in results)


def test_client_errors_are_not_retried(qwen_server, qwen_tokenizer):
    rb = RemoteBackend(qwen_server.url, "no-such-model", tokenizer=qwen_tokenizer, backoff_s=0.01)
    with pytest.raises(RemoteError) as err:
        rb.generate(requests(qwen_tokenizer, BudgetPolicy(max_thinking_tokens=8))[:1])
    assert err.value.status == 404 and rb.retries == 0
