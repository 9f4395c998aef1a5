"""The real pretrained model (SmolLM2-135M-Instruct: Llama, 49K non-Qwen tokenizer, its own ChatML
template) through every backend of the default conformance suite, exact accounting on its tokenizer,
and `s1kit generate` / `s1kit eval` / `s1kit serve` on it (`make test-real`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from s1kit.backends import create
from s1kit.backends.base import Request
from s1kit.forcing import BudgetPolicy

from ..conformance.harness import CASE_IDS, CASES, check_case, check_seeded

pytestmark = pytest.mark.real
MATH500 = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "benchmarks", "math500.jsonl")


@pytest.fixture(scope="module")
def hf(smollm2_dir):
    return create("hf", model=str(smollm2_dir), batch_size=3, device="cpu")


@pytest.fixture(scope="module")
def prompts(hf):
    tok = hf.tokenizer
    return [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
            for q in ("How many r in raspberry?", "What is 7 * 8?", "Name a prime above 10.")]


@pytest.fixture(scope="module")
def prompt_ids(hf, prompts):
    return [hf.tokenizer.encode(p, add_special_tokens=False) for p in prompts]


@pytest.fixture(scope="module")
def backends(hf, smollm2_dir):
    from s1kit.backends.hf import HFBackend
    from s1kit.backends.reference import S1ReferenceBackend

    from ..serve.conftest import SERVED, ServerThread, serve_config

    srv = ServerThread(serve_config(smollm2_dir, max_tokens_limit=4096), hf).__enter__()
    try:
        yield {"hf": hf, "hf-batch1": HFBackend(hf.model, hf.tokenizer, batch_size=1),
               "reference": S1ReferenceBackend(hf.model, hf.tokenizer, batch_size=3),
               "openai": create("openai", base_url=srv.url, model=SERVED, tokenizer=str(smollm2_dir))}
    finally:
        srv.__exit__(None, None, None)


def test_the_tokenizer_is_not_qwen_and_forcing_ids_are_exact(hf):
    cp = hf.compile(BudgetPolicy(max_thinking_tokens=8, num_ignore=1))
    assert len(hf.tokenizer) < 50_000
    assert cp.ignore_ids == ((33359,),)  # "Wait" is one id
    assert cp.start_ids == (1, 17400)  # "<|im_start|>think": the template's own <|im_start|> + "think"
    im_start, im_end = hf.tokenizer.convert_tokens_to_ids("<|im_start|>"), hf.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert cp.thinking_stops.ids == {im_start, im_end}  # both atomic: matched by id
    assert im_end in cp.answer_stops.ids and set(hf.codec.eos_ids()) <= cp.answer_stops.ids  # merged stops


def test_budget_forcing_accounting_on_smollm2(hf, prompt_ids):
    policy = BudgetPolicy(max_thinking_tokens=40, min_thinking_tokens=30, max_answer_tokens=12)
    for res in hf.generate([Request(p, policy, key=str(i)) for i, p in enumerate(prompt_ids)]):
        assert res.thinking_tokens <= 40
        assert res.thinking_tokens + res.forced_tokens + res.answer_tokens == len(res.ids)
        assert sum(e - s for s, e in res.forced_spans) == res.forced_tokens
        for s, e in res.forced_spans[:res.waits_injected]:
            assert res.ids[s:e] == [33359]
        assert res.waits_injected >= 1 or res.thinking_tokens >= 30


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_backends_agree_on_smollm2(case, backends, prompt_ids):
    check_case(backends, "hf", prompt_ids, case.policy())


def test_seeded_sampling_agrees_on_smollm2(backends, prompt_ids):
    assert check_seeded(backends, prompt_ids) == 2


def _cli(*args, timeout=900):
    env = {**os.environ}
    return subprocess.run([sys.executable, "-m", "s1kit.cli", "--log-level", "WARNING", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.mark.timeout(1800)  # 20 MATH500 prompts x 4 points on a 135M model, 2 cores
def test_eval_math500_on_smollm2(smollm2_dir, tmp_path):
    if not os.path.exists(MATH500):
        pytest.skip("../shared/data/benchmarks/math500.jsonl is not there")
    proc = _cli("eval", "--model", str(smollm2_dir), "--benchmarks", "math500", "--data", f"math500={MATH500}",
                "--limit", "20", "--budgets", "16,32", "--waits", "0,1", "--max-answer-tokens", "16",
                "--batch-size", "4", "--output-dir", str(tmp_path), "--progress", "false", timeout=1700)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 20 * 2 * 2
    assert all(r["thinking_tokens"] <= r["budget"] for r in rows)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["backend"]["name"] == "hf" and "math500" in results["benchmarks"]


def test_serve_on_smollm2(smollm2_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "s1kit.cli", "--log-level", "WARNING", "serve", "--model",
                               str(smollm2_dir), "--port", str(port), "--served-model-name", "smol"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, server.stderr.read()[-3000:]
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(1)
        body = {"model": "smol", "messages": [{"role": "user", "content": "How many r in raspberry?"}],
                "max_tokens": 64, "max_thinking_tokens": 24, "num_ignore": 1, "temperature": 0}
        req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            out = json.loads(resp.read())
        assert out["usage"]["completion_tokens_details"]["reasoning_tokens"] <= 24
        assert out["choices"][0]["message"]["content"] is not None
    finally:
        server.terminate()
        server.wait(30)
