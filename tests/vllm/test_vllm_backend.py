"""The vLLM backend on a real vLLM engine against the transformers engine, token for token.

Needs vLLM (``bash scripts/vllm_env.sh``, then ``.venv-vllm/bin/python -m pytest tests/vllm``);
skipped otherwise. One engine is started for the module (about a minute on CPU) on a tiny fp32
Qwen2 saved to a temporary folder with the real Qwen tokenizer; the same in-memory model runs the
transformers backend. Head size 32: vLLM's CPU attention needs at least 32.
"""

from __future__ import annotations

import dataclasses

import pytest

try:
    import vllm  # noqa: F401
except Exception as err:  # noqa: BLE001 - a broken install (missing CUDA libs...) skips too
    pytest.skip(f"vllm is not importable here ({type(err).__name__}: {err}); to run these tests: "
                "bash scripts/vllm_env.sh && .venv-vllm/bin/python -m pytest tests/vllm", allow_module_level=True)

import torch

from s1kit.backends.base import Request
from s1kit.backends.hf import HFBackend
from s1kit.backends.vllm import VLLMBackend
from s1kit.forcing import BudgetPolicy, ConfigError, SequenceResult

from ..conftest import chat_prompt

QUESTIONS = ["How many r in raspberry?", "What is 2+2?", "Sort 5 3 9 1.",
             "Compute 17 * 23 step by step, then check it.", "gcd(84, 36)?", "Base 2 of 13?", "Hi"]
CONTEXT = 1024
FIELDS = [f.name for f in dataclasses.fields(SequenceResult)]  # every accounting field


@pytest.fixture(scope="module")
def model(qwen_tokenizer):
    """Like tests/conftest.py's stopping_model, with 2 heads of 64/2 = 32 dims."""
    from s1kit.synth.models import add_early_stops, tiny_qwen2

    tok = qwen_tokenizer
    m = tiny_qwen2(len(tok), hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, tie_embeddings=False,
                   seed=1)
    im_start, im_end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")
    add_early_stops(m, im_start, rate=0.03, seed=1)
    with torch.no_grad():  # <|im_end|> a little likelier than <|im_start|>: answers end too
        m.lm_head.weight[im_end] = m.lm_head.weight[im_start] * 1.02
    return m


@pytest.fixture(scope="module")
def model_dir(model, qwen_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-qwen2")
    model.save_pretrained(path)
    qwen_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def engine(model_dir):
    """One vLLM engine for the module: the processor, the trace extension and prefix caching."""
    backend = VLLMBackend.from_pretrained(str(model_dir), dtype="float32", enforce_eager=True,
                                          gpu_memory_utilization=0.3, max_model_len=CONTEXT, enable_prefix_caching=True,
                                          max_num_seqs=64)
    yield backend
    del backend.llm


@pytest.fixture(scope="module")
def hf(model, qwen_tokenizer):
    return HFBackend(model, qwen_tokenizer, batch_size=8, context_window=CONTEXT)


def requests(tok, policy, n=len(QUESTIONS)):
    return [Request(chat_prompt(tok, q), policy, key=str(i)) for i, q in enumerate(QUESTIONS[:n])]


def assert_same(ours, theirs):
    for a, b in zip(ours, theirs):
        for name in FIELDS:
            assert getattr(a, name) == getattr(b, name), name


def test_no_forcing_equals_transformers(engine, hf, qwen_tokenizer, model):
    tok = qwen_tokenizer
    policy = BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=30)
    ours = engine.generate(requests(tok, policy))
    assert_same(ours, hf.generate(requests(tok, policy)))
    assert {r.finish_reason for r in ours} == {"stop", "length"}
    # a request without s1kit's extra_args on the same engine is plain vLLM: the processor leaves it alone
    from vllm import SamplingParams

    prompt = chat_prompt(tok, QUESTIONS[3])
    [out] = engine.llm.generate([{"prompt_token_ids": prompt}], SamplingParams(temperature=0, max_tokens=25,
                                                                                ignore_eos=True), use_tqdm=False)
    ref = model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=25, do_sample=False, eos_token_id=None,
                         pad_token_id=tok.pad_token_id, top_p=None, top_k=None, temperature=None)
    assert list(out.outputs[0].token_ids) == ref[0, len(prompt):].tolist()


@pytest.mark.parametrize("policy", [
    BudgetPolicy(max_thinking_tokens=15, num_ignore=0, max_answer_tokens=12),
    BudgetPolicy(max_thinking_tokens=90, num_ignore=2, max_answer_tokens=12),
    BudgetPolicy(max_thinking_tokens=25, num_ignore=3, max_answer_tokens=8),
], ids=["cap", "two-waits", "waits-then-cap"])
def test_forcing_equals_transformers(engine, hf, qwen_tokenizer, policy):
    tok = qwen_tokenizer
    ours = engine.generate(requests(tok, policy))
    assert_same(ours, hf.generate(requests(tok, policy)))
    assert any(r.forced_end for r in ours)
    assert any(r.waits_injected for r in ours) or policy.num_ignore == 0


def test_multiround_mode_equals_processor_mode(engine, hf, qwen_tokenizer):
    tok = qwen_tokenizer
    multi = VLLMBackend(engine.llm, mode="multiround", tokenizer=tok)
    policy = BudgetPolicy(max_thinking_tokens=90, num_ignore=2, max_answer_tokens=12)
    ours = multi.generate(requests(tok, policy))
    assert_same(ours, engine.generate(requests(tok, policy)))
    # multi-token thinking stops: refused by the processor, handled by re-prefilling
    # a stop made of two tokens of a thinking that runs to its 30-token cap: found across a boundary
    reqs30 = requests(tok, BudgetPolicy(max_thinking_tokens=30))
    prompt, free = next((q.prompt_ids, r.ids) for q, r in zip(reqs30, hf.generate(reqs30)) if r.forced_end)
    stop = tok.decode(free[10:12])
    multi_stop = BudgetPolicy(max_thinking_tokens=60, num_ignore=1, thinking_stops=(stop, "<|im_start|>", "<|im_end|>"),
                              max_answer_tokens=10)
    reqs = [Request(prompt, multi_stop, key="a"), Request(chat_prompt(tok, "Hi"), multi_stop, key="b")]
    with pytest.raises(ConfigError, match="thinking_stops"):
        engine.generate(reqs)
    ours = multi.generate(reqs)
    assert ours[0].waits_injected >= 1 and stop not in ours[0].thinking_text
    assert_same(ours, hf.generate(reqs))


def test_sampling_equals_transformers(engine, hf, qwen_tokenizer):
    """Sampling happens in the processor with the transformers engine's sampler and per-sample seeds."""
    tok = qwen_tokenizer
    policy = BudgetPolicy(max_thinking_tokens=40, num_ignore=1, max_answer_tokens=6, temperature=0.8, top_p=0.9,
                          top_k=50, seed=7)
    ours = engine.generate(requests(tok, policy, 4))
    assert [r.ids for r in ours] == [r.ids for r in hf.generate(requests(tok, policy, 4))]
    assert [r.ids for r in ours] != [r.ids for r in engine.generate(requests(tok, policy.replace(seed=8), 4))]


def test_batch_of_64_mixed_policies_keeps_every_invariant(engine, hf, qwen_tokenizer):
    tok = qwen_tokenizer
    policies = [
        BudgetPolicy(max_thinking_tokens=40, max_answer_tokens=8),
        BudgetPolicy(max_thinking_tokens=120, num_ignore=2, max_answer_tokens=16),
        BudgetPolicy(max_thinking_tokens=30, num_ignore=5, max_answer_tokens=4),
        BudgetPolicy(max_thinking_tokens=80, min_thinking_tokens=50, max_answer_tokens=8),
        BudgetPolicy(max_thinking_tokens=0, max_answer_tokens=8),
        BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=20),
        BudgetPolicy(max_thinking_tokens="auto", num_ignore=1, max_answer_tokens=8),
        BudgetPolicy(max_thinking_tokens=60, num_ignore=1, max_answer_tokens=8, temperature=0.7, seed=3),
    ]
    reqs = [Request(chat_prompt(tok, f"{QUESTIONS[i % len(QUESTIONS)]} (case {i})"), policies[i % len(policies)],
                    key=f"q{i}") for i in range(64)]
    ours = engine.generate(reqs)
    end = "<|im_start|>answer"
    for req, res in zip(reqs, ours):
        pol = req.policy
        cap = engine.machine(req).max_thinking
        assert res.text == tok.decode(res.ids, skip_special_tokens=False)
        assert res.finish_reason in ("stop", "length")
        assert res.answer_tokens <= pol.max_answer_tokens
        if pol.thinks:
            assert res.thinking_tokens <= cap
            assert res.text.count(end) == 1
            if pol.min_thinking_tokens == 0:
                assert res.waits_injected <= pol.num_ignore
            else:
                assert res.thinking_tokens >= pol.min_thinking_tokens or res.forced_end
        else:
            assert end not in res.text and res.thinking_tokens == 0
        if res.finish_reason == "stop":
            assert res.ids[-1] in {tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id}
        assert len(req.prompt_ids) + len(engine.machine(req).prompt_suffix()) + len(res.ids) <= CONTEXT
    assert any(r.waits_injected for r in ours) and any(r.forced_end for r in ours)
    greedy = [k for k, r in enumerate(reqs) if r.policy.temperature == 0]
    assert_same([ours[k] for k in greedy], hf.generate([reqs[k] for k in greedy]))


def test_generate_stage_on_vllm(engine, hf, model_dir, tmp_path):
    """The resumable generate stage runs unchanged on the vLLM backend; its rows equal the HF run's."""
    import json

    from s1kit.generate import GenerateConfig, run_generate

    src = tmp_path / "prompts.jsonl"
    src.write_text("".join(json.dumps({"id": f"p{i}", "question": q}) + "\n" for i, q in enumerate(QUESTIONS))
                   + "{broken\n" + json.dumps({"id": "long", "question": "word " * 1200}) + "\n")
    policy = BudgetPolicy(max_thinking_tokens=40, num_ignore=1, max_answer_tokens=8)
    rows = {}
    for name, backend in (("vllm", engine), ("hf", hf)):
        cfg = GenerateConfig(model=str(model_dir), input=str(src), output=str(tmp_path / f"{name}.jsonl"),
                             progress=False)
        manifest = run_generate(cfg, policy, backend=backend)
        assert manifest["counts"] == {"rows": 9, "already_done": 0, "generated": 7, "skipped": 2}
        rows[name] = [json.loads(line) for line in open(cfg.output, encoding="utf-8")]
    key = lambda r: r["id"]  # noqa: E731
    assert sorted(rows["vllm"], key=key) == sorted(rows["hf"], key=key)


def test_eval_on_vllm_equals_the_transformers_sweep(engine, hf, tmp_path):
    """`s1kit eval --backend vllm`: the sweep from one run (longest run + answer continuations off
    vLLM's prefix cache); greedy samples equal the transformers engine's shared-prefix sweep, point
    for point."""
    import json

    from s1kit.eval.run import EvalConfig, run_eval

    samples = {}
    for name, backend in (("vllm", engine), ("hf", hf)):
        out = tmp_path / name
        cfg = EvalConfig(model="tiny", benchmarks=("synth:gcd+sort_digits",), synth_n=3, budgets=("10", "40"),
                         waits=("0", "2"), majority_n=2, majority_budget=20, output_dir=str(out),
                         chat_template="chatml", progress=False)
        results = run_eval(cfg, BudgetPolicy(max_answer_tokens=6, seed=5), backend=backend)
        assert len(results["benchmarks"]["synth:gcd+sort_digits"]["points"]) == 4
        samples[name] = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    fields = ("thinking", "answer_text", "thinking_tokens", "answer_tokens", "waits_injected", "forced_end",
              "finish_reason", "correct", "grade_tier")
    key = lambda s: (s["id"], s["method"], s["budget"], s["waits"], s.get("sample"))  # noqa: E731
    for name in samples:
        assert len(samples[name]) == 6 * (2 * 2 + 2)  # 6 problems x (4 sweep points + 2 majority samples)
    greedy = {key(s): [s[f] for f in fields] for s in samples["hf"] if s["method"] == "budget_forcing"}
    assert greedy == {key(s): [s[f] for f in fields] for s in samples["vllm"] if s["method"] == "budget_forcing"}
    majority = {key(s): s["thinking"] for s in samples["hf"] if s["method"] == "majority_voting"}
    assert majority == {key(s): s["thinking"] for s in samples["vllm"] if s["method"] == "majority_voting"}


@pytest.mark.slow
def test_vllm_openai_server_forces_per_request(model_dir, hf, qwen_tokenizer, tmp_path):
    """vLLM's own OpenAI server with ``--logits-processors``: per-request policies through
    ``vllm_xargs`` give the transformers backend's text; a bad policy is an HTTP 400 naming the field;
    requests without s1kit's args are plain vLLM. Starts a server (about a minute on CPU)."""
    import json
    import urllib.error
    import urllib.request

    from .server import PROCESSOR, vllm_server

    tok = qwen_tokenizer
    with vllm_server(model_dir, tmp_path / "server.log", CONTEXT, *PROCESSOR) as url:
        def complete(body):
            req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

        im_end = tok.convert_tokens_to_ids("<|im_end|>")
        for policy in (BudgetPolicy(max_thinking_tokens=90, num_ignore=2, max_answer_tokens=12),
                       BudgetPolicy(max_thinking_tokens=15, max_answer_tokens=12)):
            [req] = requests(tok, policy, 4)[3:4]
            [ref] = hf.generate([req])
            prompt = tok.decode(req.prompt_ids + tok.encode("<|im_start|>think", add_special_tokens=False))
            status, out = complete({
                "model": str(model_dir), "prompt": prompt, "max_tokens": 400, "temperature": 0,
                "skip_special_tokens": False, "ignore_eos": True, "stop_token_ids": [im_end],
                "vllm_xargs": {"s1kit": json.dumps(policy.to_dict()), "s1kit_key": "q3"}})
            assert status == 200, out
            assert out["choices"][0]["text"] == tok.decode(ref.ids[:-1] if ref.ids[-1] == im_end else ref.ids,
                                                           skip_special_tokens=False)
        status, out = complete({"model": str(model_dir), "prompt": "Hi", "max_tokens": 5,
                                "vllm_xargs": {"s1kit": json.dumps({"num_ignore": -1})}})
        assert status == 400 and "num_ignore" in json.dumps(out)
        status, out = complete({"model": str(model_dir), "prompt": "Hi", "max_tokens": 5, "temperature": 0,
                                "ignore_eos": True})
        assert status == 200 and out["usage"]["completion_tokens"] == 5


@pytest.mark.slow
def test_generate_cli_on_vllm(model_dir, hf, tmp_path):
    """`s1kit generate --backend vllm` end to end in a new process (its own engine, about a minute)."""
    import json
    import os
    import subprocess
    import sys

    src = tmp_path / "prompts.jsonl"
    src.write_text("".join(json.dumps({"id": f"p{i}", "question": q}) + "\n" for i, q in enumerate(QUESTIONS)))
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "s1kit.cli", "generate", "--backend", "vllm", "--model", str(model_dir),
           "--input", str(src), "--output", str(out), "--max-thinking-tokens", "40", "--num-ignore", "1",
           "--max-answer-tokens", "8", "--batch-size", "16", "--chat-template", "chatml", "--progress", "false",
           "--engine-args", f"max_model_len={CONTEXT},enable_prefix_caching=true"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = tmp_path / "hf.jsonl"
    from s1kit.generate import GenerateConfig, run_generate

    run_generate(GenerateConfig(model=str(model_dir), input=str(src), output=str(ref), chat_template="chatml",
                                progress=False), BudgetPolicy(max_thinking_tokens=40, num_ignore=1, max_answer_tokens=8),
                 backend=hf)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    manifest = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())
    assert manifest["config"]["backend"] == "vllm" and manifest["counts"]["generated"] == len(QUESTIONS)
    assert sorted(rows, key=lambda r: r["id"]) == sorted(
        (json.loads(line) for line in ref.read_text().splitlines()), key=lambda r: r["id"])
