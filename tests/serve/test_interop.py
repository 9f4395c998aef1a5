"""Issue 17, server: what vLLM, SGLang, llama.cpp, OpenRouter, Anthropic, DeepSeek clients send works."""

from __future__ import annotations

import pytest

for _extra in ("fastapi", "uvicorn", "httpx"):
    pytest.importorskip(_extra)

import json
import logging

import httpx

from .conftest import SERVED, ServerThread, serve_config

Q = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def srv(demo_model_dir, demo_backend):
    cfg = serve_config(demo_model_dir, reasoning_effort_budgets="none=none,low=7,medium=20,high=auto")
    with ServerThread(cfg, demo_backend) as s:
        yield s


def post(srv, path, body, status=200):
    r = httpx.post(srv.url + path, json={"model": SERVED, **body}, timeout=120)
    assert r.status_code == status, r.text
    return r.json()


def chat(srv, status=200, **body):
    return post(srv, "/v1/chat/completions", {"messages": Q, "max_tokens": 64, **body}, status)


def strip(resp):
    return [c for c in resp["choices"]], resp["usage"]


@pytest.mark.parametrize("fields,same_as", [
    ({"thinking_token_budget": 7}, {"max_thinking_tokens": 7}),
    ({"thinking_budget_tokens": 7}, {"max_thinking_tokens": 7}),
    ({"reasoning": {"max_tokens": 7}}, {"max_thinking_tokens": 7}),
    ({"thinking": {"type": "enabled", "budget_tokens": 7}}, {"max_thinking_tokens": 7}),
    ({"reasoning_effort": "low"}, {"max_thinking_tokens": 7}),
    ({"reasoning": {"effort": "medium"}}, {"max_thinking_tokens": 20}),
    ({"thinking_token_budget": -1}, {"max_thinking_tokens": "auto"}),
    ({"thinking_budget_tokens": -1, "reasoning_effort": "high"}, {"max_thinking_tokens": "auto"}),
    ({"reasoning_effort": "none"}, {"max_thinking_tokens": None}),
    ({"reasoning": {"enabled": False}}, {"max_thinking_tokens": None}),
    ({"thinking": {"type": "disabled"}}, {"max_thinking_tokens": None}),
    ({"chat_template_kwargs": {"enable_thinking": False}}, {"max_thinking_tokens": None}),
    ({"reasoning": {"enabled": True, "max_tokens": 7}, "max_thinking_tokens": 7}, {"max_thinking_tokens": 7}),
], ids=lambda v: json.dumps(v)[:60])
def test_peer_budget_fields_map_onto_the_cap(srv, fields, same_as):
    got, want = chat(srv, **fields), chat(srv, **same_as)
    assert strip(got) == strip(want)
    cap = same_as["max_thinking_tokens"]
    if cap is None:
        assert got["choices"][0]["message"]["reasoning"] is None
    elif isinstance(cap, int):
        assert got["usage"]["completion_tokens_details"]["reasoning_tokens"] <= cap


def test_completions_with_a_peer_budget_field_think(srv):
    plain = post(srv, "/v1/completions", {"prompt": "Once", "max_tokens": 60})
    budget = post(srv, "/v1/completions", {"prompt": "Once", "max_tokens": 60, "thinking_token_budget": 5})
    assert plain["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    assert budget["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5 and budget["usage"]["forced_end"]


@pytest.mark.parametrize("fields,names", [
    ({"thinking_token_budget": 5, "max_thinking_tokens": 6}, ("max_thinking_tokens", "thinking_token_budget")),
    ({"reasoning_effort": "none", "thinking": {"type": "enabled", "budget_tokens": 9}},
     ("reasoning_effort", "thinking.budget_tokens")),
    ({"reasoning": {"enabled": False, "max_tokens": 9}}, ("reasoning.max_tokens", "reasoning.enabled")),
    ({"reasoning_effort": "low", "reasoning": {"effort": "high"}}, ("reasoning_effort", "reasoning.effort")),
    ({"chat_template_kwargs": {"enable_thinking": False}, "thinking": {"type": "enabled"}},
     ("thinking.type", "chat_template_kwargs.enable_thinking")),
    ({"include_reasoning": True, "reasoning": {"exclude": True}}, ("include_reasoning", "reasoning.exclude")),
])
def test_fields_that_disagree_are_400_naming_both(srv, fields, names):
    err = chat(srv, status=400, **fields)["error"]
    assert err["param"] in names and all(f"'{n}'" in err["message"] for n in names), err


@pytest.mark.parametrize("fields,param", [
    ({"reasoning_effort": "extreme"}, "reasoning_effort"), ({"thinking_token_budget": -2}, "thinking_token_budget"),
    ({"reasoning": {"max_tokens": 5, "foo": 1}}, "reasoning.foo"), ({"thinking": {"type": "sometimes"}}, "thinking.type"),
    ({"chat_template_kwargs": {"tokenize": True}}, "chat_template_kwargs.tokenize"),
    ({"include_reasoning": "no"}, "include_reasoning"),
])
def test_bad_peer_fields_are_400(srv, fields, param):
    assert chat(srv, status=400, **fields)["error"]["param"] == param


def test_reasoning_under_both_names_and_its_exclusion(srv):
    msg = chat(srv, max_thinking_tokens=10)["choices"][0]["message"]
    assert msg["reasoning"] and msg["reasoning"] == msg["reasoning_content"]
    for hide in ({"include_reasoning": False}, {"reasoning": {"exclude": True}}):
        hidden = chat(srv, max_thinking_tokens=10, **hide)
        assert hidden["choices"][0]["message"]["reasoning"] is None
        assert hidden["choices"][0]["message"]["content"] == msg["content"]
        assert hidden["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    history = [*Q, {"role": "assistant", "content": "4", "reasoning": "2+2"},
               {"role": "assistant", "content": "4", "reasoning_content": "2+2"}, {"role": "user", "content": "ok?"}]
    assert chat(srv, messages=history)["choices"][0]["finish_reason"] in ("stop", "length")


def _stream(srv, path, body):
    chunks = []
    with httpx.stream("POST", srv.url + path, json={"model": SERVED, **body}, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    return chunks


def test_stream_deltas_carry_both_names_and_continuous_usage(srv):
    chunks = _stream(srv, "/v1/chat/completions", {
        "messages": Q, "max_tokens": 64, "max_thinking_tokens": 10, "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True, "include_obfuscation": False}})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get("reasoning", "") for d in deltas)
    assert reasoning and reasoning == "".join(d.get("reasoning_content", "") for d in deltas)
    whole = chat(srv, max_thinking_tokens=10)
    assert reasoning == whole["choices"][0]["message"]["reasoning"]
    counts = [c["usage"]["completion_tokens"] for c in chunks if c["choices"]]
    assert all("usage" in c for c in chunks) and counts == sorted(counts)
    assert chunks[-1]["usage"] == whole["usage"] and counts[-1] == whole["usage"]["completion_tokens"]


def test_prompt_lists_are_one_batch_with_n_choices_each(srv, demo_backend):
    ids = demo_backend.codec.encode("Twice")
    body = {"prompt": ["Once", ids], "max_tokens": 12, "n": 3, "seed": 7, "temperature": 1.0}
    both = post(srv, "/v1/completions", body)
    assert [c["index"] for c in both["choices"]] == list(range(6))
    one = post(srv, "/v1/completions", {"prompt": "Once", "max_tokens": 12, "seed": 7, "temperature": 1.0})
    alone = post(srv, "/v1/completions", {"prompt": ids, "max_tokens": 12, "n": 3, "seed": 7, "temperature": 1.0})
    assert both["choices"][0]["text"] == one["choices"][0]["text"]
    assert [c["text"] for c in both["choices"][3:]] == [c["text"] for c in alone["choices"]]
    assert len({c["text"] for c in both["choices"][:3]}) > 1  # per-choice seeds
    assert both["usage"]["prompt_tokens"] == len(demo_backend.codec.encode("Once")) + len(ids)
    assert both["usage"]["completion_tokens"] == sum(c["usage"]["completion_tokens"] for c in both["choices"])
    n2 = chat(srv, n=2, seed=3, temperature=1.0, max_thinking_tokens=8)
    assert [c["index"] for c in n2["choices"]] == [0, 1] and n2["choices"][0] == {
        **chat(srv, seed=3, temperature=1.0, max_thinking_tokens=8)["choices"][0], "usage": n2["choices"][0]["usage"]}
    streamed = _stream(srv, "/v1/completions", {**body, "stream": True})
    for k in range(6):
        assert "".join(c["choices"][0]["text"] for c in streamed if c["choices"][0]["index"] == k) == \
            both["choices"][k]["text"]


def test_echo_and_logprobs_are_the_models(srv, demo_backend):
    import torch

    ids = demo_backend.codec.encode("2 + 2 = 4")
    r = post(srv, "/v1/completions", {"prompt": [ids], "max_tokens": 1, "logprobs": 2, "echo": True,
                                      "temperature": 0, "return_token_ids": True})
    c = r["choices"][0]
    lp = c["logprobs"]
    every = ids + c["token_ids"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(every)
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    with torch.no_grad():
        ref = torch.log_softmax(demo_backend.model(torch.tensor([every])).logits[0].float(), -1)
    for pos in range(1, len(every)):
        assert lp["token_logprobs"][pos] == pytest.approx(float(ref[pos - 1, every[pos]]), abs=1e-4)
        assert 1 <= len(lp["top_logprobs"][pos]) <= 3
        assert max(lp["top_logprobs"][pos].values()) == pytest.approx(float(ref[pos - 1].max()), abs=1e-4)
    assert lp["token_logprobs"][-1] == pytest.approx(max(lp["top_logprobs"][-1].values()))  # greedy
    assert c["text"].startswith(demo_backend.codec.decode(ids))
    assert lp["text_offset"] == sorted(lp["text_offset"]) and lp["text_offset"][0] == 0
    plain = post(srv, "/v1/completions", {"prompt": [ids], "max_tokens": 3, "logprobs": 0})["choices"][0]["logprobs"]
    assert len(plain["token_logprobs"]) == 3 and None not in plain["token_logprobs"]
    for bad, param in [({"logprobs": 21}, "logprobs"), ({"echo": "yes"}, "echo"),
                       ({"logprobs": 1, "stream": True}, "logprobs")]:
        assert post(srv, "/v1/completions", {"prompt": "x", "max_tokens": 2, **bad}, 400)["error"]["param"] == param


def test_max_completion_tokens_wins_over_max_tokens(srv):
    for path, body in [("/v1/completions", {"prompt": "Once", "ignore_eos": True}), ("/v1/chat/completions",
                                                                                      {"messages": Q, "max_thinking_tokens": None})]:
        r = post(srv, path, {**body, "max_tokens": 40, "max_completion_tokens": 5})
        assert r["usage"]["completion_tokens"] <= 5
        assert post(srv, path, {**body, "max_tokens": 0, "max_completion_tokens": 5}, 400)["error"]["param"] == "max_tokens"


def test_unknown_fields_warn_by_default_and_fail_when_strict(srv, demo_model_dir, demo_backend, caplog):
    with caplog.at_level(logging.WARNING, logger="s1kit.serve"):
        ok = chat(srv, frobnicate=1, repetition_penalty=1.0, min_p=0)
    assert ok["choices"][0]["finish_reason"] in ("stop", "length")
    assert any("frobnicate" in r.getMessage() for r in caplog.records)
    assert chat(srv, status=400, repetition_penalty=1.2)["error"]["param"] == "repetition_penalty"
    with ServerThread(serve_config(demo_model_dir, strict_fields=True), demo_backend) as strict:
        assert chat(strict, status=400, frobnicate=1)["error"]["param"] == "frobnicate"
        assert chat(strict, max_tokens=60)["choices"]


def test_tokenize_and_detokenize_in_vllms_shapes(srv, demo_backend):
    tok = post(srv, "/tokenize", {"prompt": "hello there", "return_token_strs": True})
    assert set(tok) == {"count", "max_model_len", "tokens", "token_strs"}
    assert tok["tokens"] == demo_backend.tokenizer.encode("hello there") and tok["count"] == len(tok["tokens"])
    assert "".join(tok["token_strs"]) == "hello there" and tok["max_model_len"] == demo_backend.context_window
    assert post(srv, "/detokenize", {"tokens": tok["tokens"]}) == {"prompt": "hello there"}
    chat_ids = post(srv, "/tokenize", {"messages": Q})["tokens"]
    r = chat(srv, return_token_ids=True, max_thinking_tokens=None)
    assert r["choices"][0]["prompt_token_ids"] == chat_ids
    assert post(srv, "/detokenize", {"tokens": [10**9]}, 400)["error"]["param"] == "tokens"
    assert post(srv, "/tokenize", {"prompt": 5}, 400)["error"]["param"] == "prompt"
