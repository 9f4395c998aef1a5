"""A fuzz of malformed requests: never a 5xx, always an OpenAI-style error body, and the server lives on.

Hand-made, seeded mutations of valid requests: broken JSON, wrong types, negative and huge values,
unknown fields, huge strings (within and beyond the body limit), wrong content types, bad chat
messages, wrong paths and methods, random byte flips.
"""

from __future__ import annotations

import pytest

for _extra in ("fastapi", "uvicorn", "httpx"):
    pytest.importorskip(_extra)

import asyncio
import json
import random

import httpx

from .conftest import SERVED, ServerThread, serve_config

N_REQUESTS = 1000
BODY_LIMIT = 1_000_000
FIELDS = ["model", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop", "seed", "user",
          "max_thinking_tokens", "min_thinking_tokens", "num_ignore", "ignore_strings", "max_answer_tokens",
          "top_k", "min_tokens", "ignore_eos", "stop_token_ids", "return_token_ids", "skip_special_tokens",
          "include_stop_str_in_output", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs",
          "echo", "suffix", "best_of", "response_format", "tools", "tool_choice", "max_completion_tokens"]
WEIRD = [None, True, False, 0, -1, 1, -(10**9), 10**18, 2**63, 10**300, 1.5, -0.0, 1e308, "", "x", "auto",
         "none", "-1", "\u0000", "\ud7ff\ue000", "🙂" * 10, [], [1], [-1], ["a"], [""], [None], [[1, 2]],
         {}, {"a": 1}, {"type": "json_object"}, [{"role": "user"}], "0" * 10_000]


def base_chat(rng):
    return {"model": SERVED, "messages": [{"role": "user", "content": "Hi %d" % rng.randrange(1000)}],
            "max_tokens": rng.choice([8, 16, 40])}


def base_completion(rng):
    return {"model": SERVED, "prompt": "Once %d" % rng.randrange(1000), "max_tokens": rng.choice([4, 8, 16])}


def pick_path(rng):
    return rng.choice(["/v1/chat/completions", "/v1/completions"])


def case(rng: random.Random):
    """One malformed (or borderline) request: (method, path, headers, content, expected error param or '')."""
    path = pick_path(rng)
    body = base_chat(rng) if path.endswith("chat/completions") else base_completion(rng)
    headers = {"Content-Type": "application/json"}
    kind = rng.randrange(12)
    expect = ""  # '' = no particular expectation; a name = the error must name this param
    if kind == 0:  # broken JSON
        text = json.dumps(body)
        content = rng.choice([
            text[: rng.randrange(len(text))].encode(), text.encode() + b"}", b"", b"null", b"[]", b'"s"', b"123",
            b"{'model': 'tiny'}", b"\xff\xfe\xfa", text.replace("16", "NaN").encode(),
            text.replace('"max_tokens"', '"max_tokens":Infinity,"x"').encode(), b"[" * 200_000 + b"]" * 200_000,
            b'{"model": "tiny", "max_tokens": 1' + b"0" * 5000 + b"}", b'{"a":' * 50_000, bytes(rng.randrange(256) for _ in range(64)),
            text.encode("utf-16"), b"\xef\xbb\xbf" + text.encode(),
        ])
        return "POST", path, headers, content, ""
    if kind == 1:  # a known field with a wrong-typed or out-of-range value
        field = rng.choice(FIELDS)
        body[field] = rng.choice(WEIRD)
    elif kind == 2:  # negative or huge numbers
        field = rng.choice(["max_tokens", "max_thinking_tokens", "min_thinking_tokens", "num_ignore",
                            "max_answer_tokens", "seed", "top_k", "min_tokens", "temperature", "top_p"])
        body[field] = rng.choice([-1, -(2**70), 2**70, 10**6, 1e300, -1e-9, 3.7, 1_000_000])
    elif kind == 3:  # unknown fields
        name = rng.choice(["frobnicate", "max_think", "ignore", "MAX_TOKENS", "prompt_ids", "x" * 300, "\u2603",
                           "messages" if path.endswith("/completions") and "chat" not in path else "prompt"])
        body[name] = rng.choice(WEIRD)
        expect = name
    elif kind == 4:  # huge strings within the body limit
        size = rng.choice([50_000, 300_000, 900_000])
        field = rng.choice(["stop", "user", "model", "ignore_strings", "content"])
        blob = "".join(rng.choice("ab <|>\n🙂") for _ in range(64)) * (size // 64)
        if field == "content" and "messages" in body:
            body["messages"][0]["content"] = blob
        elif field == "content":
            body["prompt"] = blob
        elif field in ("stop", "ignore_strings"):
            body[field] = [blob]
        else:
            body[field] = blob
    elif kind == 5:  # wrong content type
        headers["Content-Type"] = rng.choice(["text/plain", "application/x-www-form-urlencoded",
                                              "multipart/form-data; boundary=x", "application/xml", "image/png"])
    elif kind == 6:  # bad chat messages
        path, body = "/v1/chat/completions", bad_messages(rng)
    elif kind == 7:  # wrong paths and methods
        method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "POST"])
        path = rng.choice(["/v1/completions", "/v1/chat/completions", "/v1/engines", "/v1/models/x", "/../etc/passwd",
                           "/v1/chat/completions/../completions", "/v2/completions", "/%00", "/health/x"])
        return method, path, headers, json.dumps(body).encode(), ""
    else:
        path, body = mutate(rng, kind, path, body)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return "POST", path, headers, content, expect


def bad_messages(rng):
    body = base_chat(rng)
    body["messages"] = rng.choice([
            [], "hello", None, [None], [{}], [{"role": "user"}], [{"content": "hi"}], [{"role": 1, "content": "hi"}],
            [{"role": "tool", "content": "x"}], [{"role": "user", "content": {"text": "hi"}}],
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}],
            [{"role": "user", "content": [{"type": "text"}]}], [{"role": "user", "content": "hi", "extra": 1}],
            [{"role": "assistant", "content": "hi", "tool_calls": [{"id": "1"}]}], [{"role": "user", "content": None}],
            [{"role": "user", "content": "x"}] * 2000, [["user", "hi"]],
        ])
    return body


def mutate(rng, kind, path, body):
    """Cases 8-11: beyond the body limit, byte flips (returned raw), token-id junk, contradictions."""
    if kind == 8:  # beyond the body limit
        body["user"] = "u" * (BODY_LIMIT + rng.randrange(10_000))
    elif kind == 9:  # random byte flips of a valid body
        raw = bytearray(json.dumps(body).encode())
        for _ in range(rng.randrange(1, 6)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return path, bytes(raw)
    elif kind == 10:  # token-id prompts out of range, batches, nested junk
        path = "/v1/completions"
        body = base_completion(rng)
        body["prompt"] = rng.choice([[10**9], [-5], [1, 2, "3"], [[1, 2], [3]], ["a", "b"], [], [True, False],
                                     [[1] * 10], [[]], [0.5], list(range(50_000))])
    else:  # budget combinations that contradict each other
        body.update(rng.choice([
            {"max_thinking_tokens": None, "num_ignore": 2}, {"min_thinking_tokens": 30, "max_thinking_tokens": 5},
            {"max_answer_tokens": 500, "max_tokens": 16}, {"max_tokens": 5, "num_ignore": 1},
            {"num_ignore": 10**6}, {"ignore_strings": ["Wait"] * 100}, {"ignore_strings": "Wait"},
            {"stream": True, "n": 2}, {"stream_options": {"include_usage": True}},
            {"stream": "yes"}, {"stream": True, "stream_options": {"include_usage": 1}},
            {"stop": ["a"] * 100}, {"stop_token_ids": [10**6]}, {"max_completion_tokens": 8, "max_tokens": 9},
        ]))
    return path, body


def check_error_body(resp: httpx.Response) -> None:
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]


def test_fuzz_malformed_requests(demo_model_dir, demo_backend):
    cfg = serve_config(demo_model_dir, max_tokens_limit=64, default_max_tokens=16, max_prompt_tokens=4096,
                       max_body_bytes=BODY_LIMIT, max_num_seqs=16, max_queue=256, strict_fields=True)
    rng = random.Random(20250131)
    cases = [case(rng) for _ in range(N_REQUESTS)]
    with ServerThread(cfg, demo_backend) as srv:
        statuses: list[int] = []

        async def run() -> None:
            sem = asyncio.Semaphore(12)
            async with httpx.AsyncClient(base_url=srv.url, timeout=120) as client:

                async def send(method, path, headers, content, expect):
                    async with sem:
                        resp = await client.request(method, path, headers=headers, content=content)
                        body = resp.content  # read it all (streams too)
                    statuses.append(resp.status_code)
                    assert resp.status_code < 500, (method, path, content[:300], body[:500])
                    if resp.status_code >= 400:
                        check_error_body(resp)
                        if expect:
                            assert resp.json()["error"]["param"] == expect, (expect, body[:300])

                await asyncio.gather(*(send(*c) for c in cases))

        asyncio.run(run())
        health = httpx.get(srv.url + "/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert srv.engine.crashes == 0
        ok = httpx.post(srv.url + "/v1/completions", json=base_completion(rng))
        assert ok.status_code == 200
    rejected = sum(400 <= s < 500 for s in statuses)
    print(f"fuzz: {len(statuses)} requests, {rejected} rejected (4xx), {len(statuses) - rejected} served, 0 5xx")
    assert len(statuses) == N_REQUESTS and rejected >= 0.75 * N_REQUESTS


# ---------------------------------------------------------------------------------------------
# schema-driven (hypothesis): hostile values for every field of the request schema, while valid
# requests run beside them and must come back with exact accounting
# ---------------------------------------------------------------------------------------------

import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
HOSTILE_STR = st.one_of(st.text(max_size=12), st.builds(lambda a, s, b: a + s + b, st.text(max_size=3), SURROGATES,
                                                        st.text(max_size=3)),
                        st.sampled_from(["", "auto", "none", "-1", "\u0000", "Wait", "<|im_end|>", "x" * 600]))
HOSTILE_NUM = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 2**63, 10**300]),
                        st.floats(allow_nan=True, allow_infinity=True),
                        st.sampled_from([1e-39, 5e-324, -0.0, 1e-6, 0.5, 2.0, 2.0000001, 1e308]))
SCALAR = st.one_of(st.none(), st.booleans(), HOSTILE_NUM, HOSTILE_STR)
HOSTILE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(HOSTILE_STR, inner, max_size=3)), max_leaves=8)
SMALL_INT = st.one_of(st.integers(-3, 12), HOSTILE_NUM)
MESSAGE = st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["user", "system", "assistant", "developer",
                                                                    "tool"]), HOSTILE),
                                 "content": st.one_of(HOSTILE_STR, HOSTILE)},
                                optional={"reasoning": HOSTILE, "reasoning_content": HOSTILE, "name": HOSTILE})
BUDGET_OBJ = st.fixed_dictionaries({}, optional={"max_tokens": SMALL_INT, "effort": HOSTILE_STR, "enabled": SCALAR,
                                                 "exclude": SCALAR, "type": HOSTILE_STR, "budget_tokens": SMALL_INT})
FIELD_VALUES = {
    "model": st.one_of(st.just(SERVED), HOSTILE), "max_tokens": SMALL_INT, "max_completion_tokens": SMALL_INT,
    "temperature": HOSTILE_NUM, "top_p": HOSTILE_NUM, "top_k": SMALL_INT, "n": st.one_of(st.integers(-1, 3), HOSTILE),
    "seed": HOSTILE_NUM, "stream": SCALAR, "stop": st.one_of(HOSTILE_STR, st.lists(HOSTILE_STR, max_size=3), HOSTILE),
    "stream_options": st.one_of(st.dictionaries(st.sampled_from(["include_usage", "continuous_usage_stats",
                                                                 "include_obfuscation", "x"]), SCALAR), HOSTILE),
    "max_thinking_tokens": SMALL_INT, "min_thinking_tokens": SMALL_INT, "num_ignore": SMALL_INT,
    "ignore_strings": st.one_of(st.lists(HOSTILE_STR, max_size=3), HOSTILE), "max_answer_tokens": SMALL_INT,
    "thinking_token_budget": SMALL_INT, "thinking_budget_tokens": SMALL_INT, "reasoning": st.one_of(BUDGET_OBJ, HOSTILE),
    "thinking": st.one_of(BUDGET_OBJ, HOSTILE), "reasoning_effort": st.one_of(HOSTILE_STR, st.sampled_from(
        ["none", "low", "medium", "high"])), "include_reasoning": SCALAR,
    "chat_template_kwargs": st.one_of(st.dictionaries(HOSTILE_STR, SCALAR, max_size=2), HOSTILE),
    "logprobs": st.one_of(st.integers(-1, 22), HOSTILE), "echo": SCALAR, "min_tokens": SMALL_INT, "ignore_eos": SCALAR,
    "stop_token_ids": st.one_of(st.lists(SMALL_INT, max_size=3), HOSTILE), "return_token_ids": SCALAR,
    "repetition_penalty": HOSTILE_NUM, "presence_penalty": HOSTILE_NUM, "logit_bias": HOSTILE, "user": HOSTILE,
    "unknown_field": HOSTILE,
}
PROMPT = st.one_of(HOSTILE_STR, st.lists(st.integers(-2, 300), max_size=6),
                   st.lists(st.one_of(HOSTILE_STR, st.lists(st.integers(-1, 300), max_size=4)), max_size=3), HOSTILE)
ENDPOINTS = {"/v1/completions": {"prompt": PROMPT}, "/v1/chat/completions": {"messages": st.one_of(
    st.lists(MESSAGE, max_size=3), HOSTILE)},
             "/tokenize": {"prompt": PROMPT, "messages": st.lists(MESSAGE, max_size=2)},
             "/detokenize": {"tokens": st.one_of(st.lists(st.integers(-5, 10**6), max_size=5), HOSTILE)}}


@st.composite
def hostile_request(draw):
    path = draw(st.sampled_from(sorted(ENDPOINTS)))
    fields = {**FIELD_VALUES, **ENDPOINTS[path]}
    names = draw(st.lists(st.sampled_from(sorted(fields)), max_size=6, unique=True))
    body = {"model": SERVED, **{n: draw(fields[n]) for n in names}}
    if draw(st.booleans()):  # keep most bodies small and cheap: budget fields decide the cost
        body["max_tokens"] = draw(st.integers(1, 8))
    return path, body


class ValidTraffic(threading.Thread):
    """Valid requests beside the fuzz; each answer's accounting is checked exactly."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop, self.answered, self.errors = url, threading.Event(), 0, []

    def run(self) -> None:
        rng = random.Random(5)
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self.stop.is_set():
                try:
                    self.check(client, rng)
                except Exception as err:  # noqa: BLE001 - reported by the test
                    self.errors.append(repr(err))

    def check(self, client: httpx.Client, rng: random.Random) -> None:
        self.stop.wait(0.05)  # a steady trickle: the fuzz shares this process (and its GIL) with the server
        max_tokens = 40
        if rng.random() < 0.2:
            body = {"model": SERVED, "messages": [{"role": "user", "content": f"q{rng.randrange(99)}"}],
                    "max_tokens": max_tokens, "thinking_token_budget": rng.choice([0, 2, 4]),
                    "return_token_ids": True, "seed": rng.randrange(9), "temperature": rng.choice([0, 0.7])}
            path = "/v1/chat/completions"
        else:
            body = {"model": SERVED, "prompt": ["Once", "Twice"][: rng.choice([1, 2])], "n": rng.choice([1, 2]),
                    "max_tokens": 4, "return_token_ids": True, "temperature": rng.choice([0, 1e-39, 0.9])}
            path = "/v1/completions"
        r = client.post(path, json=body)
        assert r.status_code == 200, r.text[:300]
        out = r.json()
        for c in out["choices"]:
            u = c.get("usage", out["usage"])
            assert u["completion_tokens"] == len(c["token_ids"]) <= body["max_tokens"]
            assert u["prompt_tokens"] == len(c["prompt_token_ids"]) and u["total_tokens"] == u["prompt_tokens"] + \
                u["completion_tokens"]
            if "thinking_token_budget" in body:
                assert u["completion_tokens_details"]["reasoning_tokens"] <= body["thinking_token_budget"]
        self.answered += 1


@pytest.fixture(scope="module")
def fuzz_server(demo_model_dir, demo_backend):
    cfg = serve_config(demo_model_dir, max_tokens_limit=48, default_max_tokens=8, max_num_seqs=8, max_queue=64)
    with ServerThread(cfg, demo_backend) as srv:
        yield srv


def _schema_fuzz(server, examples: int) -> dict[str, int]:
    statuses: list[int] = []
    traffic = ValidTraffic(server.url)
    traffic.start()
    with httpx.Client(base_url=server.url, timeout=120) as client:

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(hostile_request())
        def one(req):
            path, body = req
            raw = json.dumps(body, ensure_ascii=True)  # NaN/Infinity go out as such: not JSON
            r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
            statuses.append(r.status_code)
            assert r.status_code < 500, (path, raw[:400], r.text[:400])
            if r.status_code >= 400:
                check_error_body(r)

        one()
    traffic.stop.set()
    traffic.join(120)
    assert not traffic.errors, traffic.errors[:3]
    health = httpx.get(server.url + "/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert server.engine.crashes == 0
    figures = {"cases": len(statuses), "5xx": sum(s >= 500 for s in statuses), "4xx": sum(400 <= s < 500 for s in statuses),
               "2xx": sum(s < 300 for s in statuses), "valid_answered": traffic.answered}
    print("schema fuzz:", figures)
    assert figures["cases"] >= examples and figures["5xx"] == 0 and traffic.answered > 0
    return figures


def test_schema_fuzz_with_valid_traffic(fuzz_server):
    _schema_fuzz(fuzz_server, 1000)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 10,000 cases take 10-20 min on 2 cores
def test_schema_fuzz_with_valid_traffic_10k(fuzz_server):
    _schema_fuzz(fuzz_server, 10_000)
