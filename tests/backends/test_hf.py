"""The single-pass transformers engine against model.generate and the s1 reference algorithm."""

from __future__ import annotations

import pytest
import torch

from s1kit.backends.base import Request
from s1kit.backends.hf import HFBackend
from s1kit.backends.reference import S1ReferenceBackend
from s1kit.forcing import BudgetPolicy, PromptTooLong

from ..conftest import chat_prompt

QUESTIONS = ["How many r in raspberry?", "What is 2+2?", "Sort 5 3 9 1.",
             "Compute 17 * 23 step by step, then check it.", "gcd(84, 36)?", "Base 2 of 13?", "Hi"]


def requests(tok, policy, n=len(QUESTIONS)):
    return [Request(chat_prompt(tok, q), policy, key=str(i)) for i, q in enumerate(QUESTIONS[:n])]


def generate_greedy(model, tok, prompt, max_new, eos):
    out = model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         max_new_tokens=max_new, do_sample=False, eos_token_id=eos, pad_token_id=tok.pad_token_id,
                         top_p=None, top_k=None, temperature=None)
    return out[0, len(prompt):].tolist()


def assert_teacher_forced(model, prompt_suffixed, res, banned_first):
    """Every sampled token is the greedy choice given exactly the kept ids (one full forward)."""
    seq = prompt_suffixed + res.ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([seq])).logits[0]
    forced = {j for a, b in res.forced_spans for j in range(a, b)}
    round_starts = {0} | {b for a, b in res.forced_spans}
    base = len(prompt_suffixed)
    for j, tok in enumerate(res.ids):
        if j in forced:
            continue
        row = logits[base + j - 1].clone()
        if j in round_starts and res.thinking_text and j < len(res.ids) - res.answer_tokens:
            row[list(banned_first)] = float("-inf")
        assert int(row.argmax()) == tok, f"token {j} is not the greedy choice"


def test_no_forcing_equals_generate(plain_model, qwen_tokenizer):
    tok = qwen_tokenizer
    policy = BudgetPolicy(max_thinking_tokens=40, max_answer_tokens=5)
    backend = HFBackend(plain_model, tok, batch_size=3)
    start = tok.encode("<|im_start|>think", add_special_tokens=False)
    for req, res in zip(requests(tok, policy), backend.generate(requests(tok, policy))):
        ref = generate_greedy(plain_model, tok, req.prompt_ids + start, 40, eos=None)
        assert res.ids[:40] == ref  # the 40 thinking tokens, token for token
        assert res.thinking_tokens == 40 and res.forced_end


def test_plain_mode_equals_generate(plain_model, qwen_tokenizer):
    tok = qwen_tokenizer
    policy = BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=30)
    reqs = requests(tok, policy)
    res = HFBackend(plain_model, tok, batch_size=4).generate(reqs)
    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id]
    for req, r in zip(reqs, res):
        assert r.ids == generate_greedy(plain_model, tok, req.prompt_ids, 30, eos)


@pytest.mark.parametrize("policy", [
    BudgetPolicy(max_thinking_tokens=60, num_ignore=0, max_answer_tokens=12),
    BudgetPolicy(max_thinking_tokens=90, num_ignore=2, max_answer_tokens=12),
    BudgetPolicy(max_thinking_tokens=25, num_ignore=3, max_answer_tokens=8),
], ids=["cap", "two-waits", "waits-then-cap"])
def test_forcing_equals_s1_reference(stopping_model, qwen_tokenizer, policy):
    tok = qwen_tokenizer
    ours = HFBackend(stopping_model, tok, batch_size=3).generate(requests(tok, policy))
    ref = S1ReferenceBackend(stopping_model, tok, batch_size=3).generate(requests(tok, policy))
    assert any(r.waits_injected for r in ours) or policy.num_ignore == 0
    for a, b in zip(ours, ref):
        assert a.ids == b.ids
        for field in ("text", "thinking_text", "answer_text", "thinking_tokens", "forced_tokens", "answer_tokens",
                      "waits_injected", "forced_end", "finish_reason", "forced_spans"):
            assert getattr(a, field) == getattr(b, field), field


def test_forcing_outcomes_cover_all_paths(stopping_model, qwen_tokenizer):
    tok = qwen_tokenizer
    res = HFBackend(stopping_model, tok, batch_size=7).generate(
        requests(tok, BudgetPolicy(max_thinking_tokens=90, num_ignore=2, max_answer_tokens=40)))
    assert {r.forced_end for r in res} == {True, False}
    assert any(r.finish_reason == "stop" for r in res)
    for r in res:
        assert r.thinking_tokens <= 90
        assert tok.decode(r.ids, skip_special_tokens=False) == r.text
        assert r.text.count("<|im_start|>answer") == 1


def test_multi_token_stop_rollback_matches_teacher_forcing(plain_model, qwen_tokenizer):
    tok = qwen_tokenizer
    prompt = chat_prompt(tok, QUESTIONS[3])
    start = tok.encode("<|im_start|>think", add_special_tokens=False)
    free = generate_greedy(plain_model, tok, prompt + start, 30, eos=None)
    # a stop string made of the text of greedy tokens 10-11: found across the token boundary,
    # its first token is already in the KV cache and must be rolled back before "Wait"
    stop = tok.decode(free[10:12])
    policy = BudgetPolicy(max_thinking_tokens=60, num_ignore=1, thinking_stops=(stop, "<|im_start|>"),
                          max_answer_tokens=10)
    other = Request(chat_prompt(tok, "Hi"), policy, key="b")
    res = HFBackend(plain_model, tok, batch_size=2).generate([Request(prompt, policy, key="a"), other])[0]
    assert res.ids[:10] == free[:10]
    assert res.waits_injected >= 1
    assert res.ids[10] == tok.convert_tokens_to_ids("Wait")
    assert stop not in res.thinking_text
    assert_teacher_forced(plain_model, prompt + start, res, banned_first=[151644])


def test_sampling_is_seeded_per_sample_not_per_batch(stopping_model, qwen_tokenizer):
    tok = qwen_tokenizer
    policy = BudgetPolicy(max_thinking_tokens=30, num_ignore=1, max_answer_tokens=5, temperature=0.8, top_p=0.9,
                          top_k=50, seed=7)
    a = HFBackend(stopping_model, tok, batch_size=1).generate(requests(tok, policy, 4))
    b = HFBackend(stopping_model, tok, batch_size=4).generate(requests(tok, policy, 4))
    assert [r.ids for r in a] == [r.ids for r in b]
    c = HFBackend(stopping_model, tok, batch_size=4).generate(requests(tok, policy.replace(seed=8), 4))
    assert [r.ids for r in a] != [r.ids for r in c]


def test_prompt_longer_than_context_and_auto_budget(plain_model, qwen_tokenizer):
    tok = qwen_tokenizer
    backend = HFBackend(plain_model, tok, batch_size=2, context_window=64)
    long_prompt = Request(tok.encode("word " * 80), BudgetPolicy(max_thinking_tokens=5), key="long")
    with pytest.raises(PromptTooLong):
        backend.machine(long_prompt)
    auto = Request(chat_prompt(tok, "Hi"), BudgetPolicy(max_thinking_tokens="auto", max_answer_tokens=10), key="a")
    m = backend.machine(auto)
    assert m.max_thinking == 64 - len(auto.prompt_ids) - 10 - m.cp.forced_overhead()
    res = backend.generate([auto])[0]
    assert len(auto.prompt_ids) + len(m.prompt_suffix()) + len(res.ids) <= 64


def test_continuous_batching_refills_and_trims_without_changing_outputs(stopping_model, qwen_tokenizer, monkeypatch):
    from s1kit.backends import hf

    tok = qwen_tokenizer
    policy = BudgetPolicy(max_thinking_tokens=70, num_ignore=2, max_answer_tokens=10)
    trims = []
    original = hf.DecodeLoop._trim

    def spy(self):
        before = None if self.mask is None else self.mask.shape[1]
        original(self)
        trims.append((before, None if self.mask is None else self.mask.shape[1]))

    monkeypatch.setattr(hf.DecodeLoop, "TRIM_EVERY", 4)
    monkeypatch.setattr(hf.DecodeLoop, "_trim", spy)
    many = requests(tok, policy) + [Request(chat_prompt(tok, q * 3), policy, key=f"x{i}") for i, q in enumerate(QUESTIONS)]
    refilled = HFBackend(stopping_model, tok, batch_size=2).generate(many)
    assert any(b is not None and a is not None and b < a for a, b in trims), "no cache columns were trimmed"
    alone = HFBackend(stopping_model, tok, batch_size=1).generate(many)
    assert [r.ids for r in refilled] == [r.ids for r in alone]
    assert [r.waits_injected for r in refilled] == [r.waits_injected for r in alone]
