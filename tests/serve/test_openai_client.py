"""The official `openai` client against `s1kit serve` on a tiny stop-prone model (127.0.0.1 only)."""

from __future__ import annotations

import pytest

for _extra in ("fastapi", "uvicorn", "httpx"):
    pytest.importorskip(_extra)

import json
import socket
import time

import httpx

from .conftest import SERVED, ServerThread, serve_config

openai = pytest.importorskip("openai")

CHAT = [{"role": "system", "content": "Think, then answer."}, {"role": "user", "content": "What is 17 * 23?"}]


@pytest.fixture(scope="module")
def client(demo_server):
    return openai.OpenAI(base_url=demo_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def chat(client, **kw):
    extra = {k: kw.pop(k) for k in list(kw) if k in ("max_thinking_tokens", "min_thinking_tokens", "num_ignore",
                                                     "ignore_strings", "max_answer_tokens", "return_token_ids")}
    return client.chat.completions.create(model=SERVED, messages=kw.pop("messages", CHAT), extra_body=extra, **kw)


def test_models_and_health(client, demo_server):
    models = client.models.list()
    assert [m.id for m in models.data] == [SERVED]
    health = httpx.get(demo_server.url + "/health").json()
    assert health["status"] == "ok" and health["max_num_seqs"] == 16


def test_chat_separates_reasoning_and_reports_usage(client):
    r = chat(client, max_tokens=200, max_thinking_tokens=120, max_answer_tokens=30)
    msg, u = r.choices[0].message, r.usage
    assert r.object == "chat.completion" and r.model == SERVED
    assert isinstance(msg.reasoning_content, str) and msg.reasoning_content
    assert isinstance(msg.content, str)
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.completion_tokens <= 200
    assert 0 < u.completion_tokens_details.reasoning_tokens <= 120
    assert isinstance(u.waits_injected, int) and isinstance(u.forced_end, bool)
    assert r.choices[0].finish_reason in ("stop", "length")


def test_cap_forces_the_end(client):
    r = chat(client, max_tokens=200, max_thinking_tokens=12)
    u = r.usage
    assert u.completion_tokens_details.reasoning_tokens == 12 and u.forced_end is True
    assert r.choices[0].message.content.lstrip().startswith("Final")  # s1's forced answer prefix


def test_waits_injected_when_the_model_stops_early(client):
    # this prompt makes the tiny model try to stop well before the cap (greedy, deterministic)
    for num_ignore in (0, 1, 2):
        r = chat(client, max_tokens=600, max_thinking_tokens=400, num_ignore=num_ignore, max_answer_tokens=40)
        u = r.usage
        assert u.waits_injected == num_ignore and u.forced_end is False
        assert u.completion_tokens_details.reasoning_tokens <= 400
        assert r.choices[0].message.reasoning_content.count("Wait") >= num_ignore


def test_min_thinking_tokens_extends(client):
    r = chat(client, max_tokens=600, max_thinking_tokens=400, min_thinking_tokens=300, max_answer_tokens=40)
    assert r.usage.completion_tokens_details.reasoning_tokens >= 300
    assert r.usage.completion_tokens <= 600


def test_answer_reserve_lives_inside_max_tokens(client):
    for max_tokens in (60, 90, 150):
        r = chat(client, max_tokens=max_tokens, max_answer_tokens=20, num_ignore=1)
        assert r.usage.completion_tokens <= max_tokens
        assert r.usage.answer_tokens <= 20


def test_completion_plain_and_budgeted(client, demo_backend):
    plain = client.completions.create(model=SERVED, prompt="Once upon a time", max_tokens=20)
    assert plain.object == "text_completion" and plain.usage.completion_tokens_details.reasoning_tokens == 0
    assert plain.usage.completion_tokens <= 20 and plain.choices[0].text
    forced = client.completions.create(model=SERVED, prompt="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                                       max_tokens=80, extra_body={"max_thinking_tokens": 4})
    text = forced.choices[0].text  # the full text: thinking, forced delimiters, answer
    assert "<|im_start|>answer" in text and forced.usage.forced_end
    assert forced.usage.completion_tokens_details.reasoning_tokens == 4


def test_token_id_prompts_and_returned_ids(client, demo_backend):
    codec = demo_backend.codec
    ids = codec.encode("Once upon a time")
    by_ids = client.completions.create(model=SERVED, prompt=ids, max_tokens=16, extra_body={"return_token_ids": True})
    by_text = client.completions.create(model=SERVED, prompt="Once upon a time", max_tokens=16)
    choice = by_ids.choices[0]
    assert choice.text == by_text.choices[0].text
    assert choice.prompt_token_ids == ids and codec.decode(choice.token_ids).startswith(choice.text)


def collect_chat_stream(stream):
    reasoning, content, finish, usage = [], [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            d = choice.delta
            reasoning.append(getattr(d, "reasoning_content", None) or "")
            content.append(d.content or "")
            finish = choice.finish_reason or finish
    return "".join(reasoning), "".join(content), finish, usage


@pytest.mark.parametrize("budget", [dict(max_thinking_tokens=40), dict(max_thinking_tokens=400, num_ignore=2)])
def test_chat_stream_equals_the_whole_response(client, budget):
    whole = chat(client, max_tokens=600, max_answer_tokens=40, **budget)
    stream = chat(client, max_tokens=600, max_answer_tokens=40, stream=True, stream_options={"include_usage": True},
                  **budget)
    reasoning, content, finish, usage = collect_chat_stream(stream)
    assert reasoning == whole.choices[0].message.reasoning_content
    assert content == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.waits_injected == whole.usage.waits_injected


def test_completion_stream_equals_the_whole_response(client):
    kw = dict(model=SERVED, prompt="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", max_tokens=120,
              extra_body={"max_thinking_tokens": 60, "num_ignore": 1})
    whole = client.completions.create(**kw)
    parts = [c.choices[0].text for c in client.completions.create(stream=True, **kw) if c.choices]
    assert "".join(parts) == whole.choices[0].text


def test_errors_name_the_field(client):
    cases = [
        (dict(extra_body={"num_ignore": -1}), "num_ignore"),
        (dict(extra_body={"max_thinking_tokens": "lots"}), "max_thinking_tokens"),
        (dict(extra_body={"ignore_strings": [""]}), "ignore_strings[0]"),
        (dict(extra_body={"min_thinking_tokens": 50, "max_thinking_tokens": 10}), "min_thinking_tokens"),
        (dict(extra_body={"max_answer_tokens": 500}, max_tokens=100), "max_answer_tokens"),
        (dict(temperature=7), "temperature"),
        (dict(max_tokens=10**6), "max_tokens"),
        (dict(max_tokens=5), "max_tokens"),
        (dict(n=0), "n"),
        (dict(presence_penalty=0.5), "presence_penalty"),
        (dict(messages=[{"role": "wizard", "content": "hi"}]), "messages[0].role"),
    ]
    for kw, param in cases:
        messages = kw.pop("messages", CHAT)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=SERVED, messages=messages, **kw)
        assert info.value.param == param, (kw, info.value.body)
        assert info.value.type == "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=CHAT)
    assert info.value.param == "model"
    # standard fields with their default values are accepted and ignored
    ok = client.chat.completions.create(model=SERVED, messages=CHAT, max_tokens=60, n=1, presence_penalty=0,
                                        logit_bias={}, user="u1", response_format={"type": "text"})
    assert ok.choices[0].finish_reason in ("stop", "length")


def test_api_key_is_enforced(demo_model_dir, demo_backend, api_key_env):
    import os

    key = os.environ[api_key_env]
    with ServerThread(serve_config(demo_model_dir, api_key_env=api_key_env), demo_backend) as srv:
        assert httpx.get(srv.url + "/health").status_code == 200  # liveness needs no key
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key}):
            r = httpx.get(srv.url + "/v1/models", headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
            assert key not in r.text
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=srv.url + "/v1", api_key="nope", max_retries=0).models.list()
        good = openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0)
        r = good.chat.completions.create(model=SERVED, messages=CHAT, max_tokens=60)
        assert r.choices[0].message.content is not None


def _finished(engine, reason: str) -> int:
    return engine.finish_counts.get(reason, 0)


def test_a_disconnected_client_frees_its_sequence(demo_model_dir, demo_backend):
    cfg = serve_config(demo_model_dir, max_tokens_limit=1900)
    body = {"model": SERVED, "prompt": "Once", "max_tokens": 1900, "ignore_eos": True}  # ~seconds of decoding
    with ServerThread(cfg, demo_backend) as srv:
        engine = srv.engine
        # streaming: read a few events, then drop the connection
        with httpx.stream("POST", srv.url + "/v1/completions", json={**body, "stream": True}, timeout=60) as resp:
            lines = resp.iter_lines()
            assert next(lines).startswith("data: ")
        # non-streaming: send the request on a raw socket and hang up before the answer
        raw = json.dumps(body).encode()
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(raw), raw))
            deadline = time.monotonic() + 10
            while engine.load()["running"] + engine.load()["waiting"] < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        deadline = time.monotonic() + 20
        while _finished(engine, "cancelled") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _finished(engine, "cancelled") == 2
        assert engine.load()["running"] == 0 and _finished(engine, "length") == 0


def test_full_queue_gets_429_and_timeouts_get_504(demo_model_dir, demo_backend):
    cfg = serve_config(demo_model_dir, max_num_seqs=1, max_queue=1, max_tokens_limit=1900, request_timeout_s=60)
    long = {"model": SERVED, "prompt": "Once", "max_tokens": 1900, "ignore_eos": True}  # no stop: ~seconds
    with ServerThread(cfg, demo_backend) as srv:
        with httpx.stream("POST", srv.url + "/v1/completions", json={**long, "stream": True}, timeout=60), \
                httpx.stream("POST", srv.url + "/v1/completions", json={**long, "stream": True}, timeout=60):
            load = srv.engine.load()
            assert load["running"] + load["waiting"] == 2  # both submitted: the engine is full
            with pytest.raises(openai.RateLimitError) as info:
                openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0).chat.completions.create(
                    model=SERVED, messages=CHAT, max_tokens=60)
            assert info.value.type == "rate_limit_error"
    # 1,900 decode steps cannot finish in 0.2 s on any CPU (each step is a full forward pass), so the
    # 504 does not depend on how fast the machine is
    with ServerThread(serve_config(demo_model_dir, max_num_seqs=1, max_tokens_limit=1900, request_timeout_s=0.2),
                      demo_backend) as srv:
        r = httpx.post(srv.url + "/v1/completions", json=long, timeout=60)
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
        deadline = time.monotonic() + 20
        while srv.engine.load()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.engine.load()["running"] == 0 and srv.engine.finish_counts["cancelled"] >= 1


def test_config_is_safe_by_default_and_validated():
    from s1kit.forcing import ConfigError
    from s1kit.serve.app import ServeConfig

    cfg = ServeConfig(model="m")
    assert cfg.host == "127.0.0.1" and cfg.trust_remote_code is False and cfg.api_key_env is None
    for field, value in [("port", 70000), ("max_num_seqs", 0), ("default_max_thinking_tokens", -3),
                         ("preset", "gpt"), ("default_max_tokens", 10**9), ("api_key_env", "")]:
        with pytest.raises(ConfigError) as err:
            ServeConfig(model="m", **{field: value})
        assert err.value.field == field
