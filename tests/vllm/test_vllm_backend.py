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
