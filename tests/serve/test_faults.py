"""Issue 16, server: one sequence's input or fault fails only its own request, with the right status.

Each test here reproduces a failure the audit found (500s that failed the whole batch, tokenizer
TypeErrors on lone surrogates, keep-alive resets after an error, a NaN default temperature) or
injects a fault into one sequence of a running batch.
"""

from __future__ import annotations

import pytest

for _extra in ("fastapi", "uvicorn", "httpx"):
    pytest.importorskip(_extra)

import asyncio
import json
import socket
import subprocess
import sys

import httpx

from .conftest import SERVED

CHAT = [{"role": "user", "content": "hi"}]


def _post_all(url: str, bodies: list[tuple[str, dict]]) -> list[httpx.Response]:
    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            return await asyncio.gather(*(client.post(path, json=body) for path, body in bodies))

    return asyncio.run(run())


def _batch(extra: dict) -> list[tuple[str, dict]]:
    """Six ordinary requests around one with ``extra`` (chat and completions)."""
    out = []
    for i in range(3):
        out.append(("/v1/chat/completions", {"model": SERVED, "messages": [{"role": "user", "content": f"q{i}"}],
                                             "max_tokens": 60, "seed": i, "temperature": 0.8}))
        out.append(("/v1/completions", {"model": SERVED, "prompt": f"Once {i}", "max_tokens": 24}))
    out.insert(3, ("/v1/chat/completions", {"model": SERVED, "messages": CHAT, "max_tokens": 60, **extra}))
    out.insert(5, ("/v1/completions", {"model": SERVED, "prompt": "hi", "max_tokens": 24, **extra}))
    return out


def test_a_subnormal_temperature_is_greedy_and_fails_nobody(demo_server):
    """temperature 1e-39 (below MIN_TEMPERATURE) was a 500 for its own and every batched request."""
    crashes = demo_server.engine.crashes
    tiny = _post_all(demo_server.url, _batch({"temperature": 1e-39}))
    assert [r.status_code for r in tiny] == [200] * 8, [r.text[:200] for r in tiny]
    greedy = _post_all(demo_server.url, _batch({"temperature": 0}))
    for a, b in zip(tiny, greedy):  # the tiny one decoded greedily; the others are seeded or greedy
        assert a.json()["choices"][0] == b.json()["choices"][0]
    assert demo_server.engine.crashes == crashes


@pytest.mark.parametrize("field", ["temperature", "top_p"])
@pytest.mark.parametrize("literal", ["1e999", "-1e999", "NaN", "Infinity"])
def test_nan_and_infinities_are_400_naming_the_field(demo_server, field, literal):
    raw = '{"model": "%s", "prompt": "hi", "max_tokens": 4, "%s": %s}' % (SERVED, field, literal)
    r = httpx.post(demo_server.url + "/v1/completions", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] in (field, None)  # NaN/Infinity are not JSON: the body is refused


@pytest.mark.parametrize("path,body,param", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "\ud800"}]}, "messages[0].content"),
    ("/v1/completions", {"prompt": "a\ud800b"}, "prompt"),
    ("/v1/completions", {"prompt": ["ok", "\udfff"]}, "prompt[1]"),
    ("/v1/chat/completions", {"messages": CHAT, "ignore_strings": ["\ud800"]}, "ignore_strings[0]"),
    ("/v1/chat/completions", {"messages": CHAT, "stop": ["x", "\ud800"]}, "stop[1]"),
    ("/v1/completions", {"prompt": "hi", "stop": "\ud800"}, "stop"),
    ("/tokenize", {"prompt": "\ud800"}, "prompt"),
])
def test_lone_surrogates_are_400_naming_the_field(demo_server, path, body, param):
    """A lone UTF-16 surrogate was a tokenizer TypeError (500)."""
    raw = json.dumps({"model": SERVED, "max_tokens": 8, **body})  # json escapes them as \ud800
    r = httpx.post(demo_server.url + path, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def _http(sock: socket.socket, body: bytes, path: str = "/v1/completions") -> tuple[int, bytes]:
    """One request on a kept-alive socket; returns (status, body)."""
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                 % (path.encode(), len(body)) + body)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the kept-alive connection"
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the kept-alive connection"
        rest += chunk
    assert b"connection: close" not in head.lower()
    return int(head.split(b" ")[1]), rest


def test_keep_alive_survives_client_errors_and_server_faults(demo_server, monkeypatch):
    ok = json.dumps({"model": SERVED, "prompt": "hi", "max_tokens": 4}).encode()
    surrogate = b'{"model": "%s", "prompt": "\\ud800", "max_tokens": 4}' % SERVED.encode()
    with socket.create_connection(("127.0.0.1", demo_server.port), timeout=60) as sock:
        assert _http(sock, ok)[0] == 200
        assert _http(sock, surrogate)[0] == 400
        assert _http(sock, ok)[0] == 200
        routes = demo_server.app.state.routes

        def broken(body):
            raise RuntimeError("an injected bug in the parser")

        monkeypatch.setattr(routes.parser, "completion", broken)
        status, body = _http(sock, ok)
        assert status == 500 and json.loads(body)["error"]["type"] == "server_error"
        monkeypatch.undo()
        assert _http(sock, ok)[0] == 200  # the same connection: no reset after the 500


def _fault_batch() -> list[tuple[str, dict]]:
    out = []
    for i in range(6):
        out.append(("/v1/chat/completions", {"model": SERVED, "messages": [{"role": "user", "content": f"q{i}"}],
                                             "max_tokens": 60, "max_thinking_tokens": 12, "seed": 100 + i,
                                             "temperature": 0.9}))
    out.append(("/v1/completions", {"model": SERVED, "prompt": "Once", "max_tokens": 30}))
    out.insert(2, ("/v1/chat/completions", {"model": SERVED, "messages": CHAT, "max_tokens": 60, "seed": 4242,
                                            "temperature": 0.9}))
    return out


def _inject_sampler_fault(monkeypatch):
    import s1kit.backends.sampling as sampling

    real = sampling.sample_row

    def sampler(row, policy, gen):
        if policy.seed == 4242:
            raise RuntimeError("an injected sampler fault")
        return real(row, policy, gen)

    monkeypatch.setattr(sampling, "sample_row", sampler)


def _inject_machine_fault(monkeypatch):
    from s1kit.forcing.machine import BudgetMachine

    real = BudgetMachine.consume

    def consume(self, tok):
        if self.policy.seed == 4242 and len(self.ids) >= 3:
            raise RuntimeError("an injected machine fault")
        return real(self, tok)

    monkeypatch.setattr(BudgetMachine, "consume", consume)


@pytest.mark.parametrize("inject", [_inject_sampler_fault, _inject_machine_fault], ids=["sampler", "machine"])
def test_an_injected_fault_fails_only_its_own_request(demo_server, monkeypatch, inject):
    engine = demo_server.engine
    before = _post_all(demo_server.url, _fault_batch())
    assert all(r.status_code == 200 for r in before)
    crashes, alone = engine.crashes, engine.failed_alone
    inject(monkeypatch)
    after = _post_all(demo_server.url, _fault_batch())
    statuses = [r.status_code for r in after]
    assert statuses == [200, 200, 500] + [200] * 5, statuses
    assert after[2].json()["error"] == {"message": "generation failed", "type": "server_error", "param": None,
                                        "code": None}
    for a, b in zip(before, after):  # every other sequence went on exactly as without the fault
        if b.status_code == 200:
            assert a.json()["choices"] == b.json()["choices"] and a.json()["usage"] == b.json()["usage"]
    assert engine.crashes == crashes and engine.failed_alone == alone + 1
    assert httpx.get(demo_server.url + "/health").json()["status"] == "ok"


@pytest.mark.parametrize("flag,value", [("--default-temperature", "nan"), ("--default-temperature", "inf"),
                                        ("--request-timeout-s", "nan"), ("--reasoning-effort-budgets", "low=lots")])
def test_serve_refuses_a_non_finite_default_at_start(tmp_path, flag, value):
    proc = subprocess.run([sys.executable, "-m", "s1kit.cli", "serve", "--model", str(tmp_path), flag, value],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "s1kit: error:" in proc.stderr and "Traceback" not in proc.stderr
    name = flag.lstrip("-")
    assert name in proc.stderr or name.replace("-", "_") in proc.stderr  # the flag or its config field
