"""`s1kit eval --backend vllm` sweeps from one run: every point of a shared-prefix sweep on vLLM
(longest run, then answer-phase continuations off the prefix cache) equals an independent
processor-mode run of that point, token for token and in every accounting field.

Needs vLLM (``make test-vllm``); one engine for the module, on test_vllm_backend.py's tiny model.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

from s1kit.backends.base import Request  # noqa: E402
from s1kit.backends.vllm import VLLMBackend  # noqa: E402
from s1kit.eval.sweep import SweepPoint, SweepStats, sweep  # noqa: E402
from s1kit.forcing import BudgetPolicy  # noqa: E402

from ..conftest import chat_prompt  # noqa: E402
from .test_vllm_backend import CONTEXT, QUESTIONS, assert_same, engine, model, model_dir  # noqa: E402,F401

BUDGETS, WAITS = [0, 10, 30, 60, 90], [0, 1, 2]
POLICY = BudgetPolicy(max_answer_tokens=12)


def independent(backend, prompts, points, policy=POLICY):
    """Every point as its own request (all submitted together): the reference."""
    reqs = [Request(list(p), policy.replace(max_thinking_tokens=pt.budget, num_ignore=pt.waits), key=str(i))
            for pt in points for i, p in enumerate(prompts)]
    res = backend.generate(reqs)
    return {pt: res[k * len(prompts):(k + 1) * len(prompts)] for k, pt in enumerate(points)}


class Recorder:
    """Wraps LLM.generate to see what the sweep submits."""

    def __init__(self, llm):
        self.llm, self.inner, self.calls = llm, llm.generate, []

    def __call__(self, prompts, params, **kwargs):
        self.calls.append([(list(p["prompt_token_ids"]), sp) for p, sp in zip(prompts, params)])
        return self.inner(prompts, params, **kwargs)


@pytest.fixture
def recorder(engine):  # noqa: F811
    rec = Recorder(engine.llm)
    engine.llm.generate = rec
    yield rec
    del engine.llm.generate


def test_every_vllm_sweep_point_equals_an_independent_run(engine, qwen_tokenizer, recorder):  # noqa: F811
    tok = qwen_tokenizer
    assert engine.prefix_sweep
    prompts = [chat_prompt(tok, q) for q in QUESTIONS]
    stats = SweepStats()
    swept = sweep(engine, prompts, BUDGETS, WAITS, POLICY, keys=[str(i) for i in range(len(prompts))], stats=stats,
                  chunk_size=4, branch_batch_size=9)  # two chunks; continuations in batches of 9
    calls, recorder.calls = recorder.calls, []
    points = sorted(swept)
    assert points == [SweepPoint(b, w) for b in BUDGETS for w in WAITS]
    alone = independent(engine, prompts, points)
    kinds = set()
    for pt in points:
        assert_same(swept[pt], alone[pt])
        for res in swept[pt]:
            natural = not res.forced_end and res.thinking_tokens < pt.budget
            kinds.add((res.forced_end, natural, res.waits_injected))
    assert {k[0] for k in kinds} == {True, False}  # capped mid-thinking and ended naturally
    assert {k[2] for k in kinds} == {0, 1, 2}
    assert stats.reused > 0 and stats.shared > 0 and stats.fallbacks == 0
    assert 0 < stats.branch_tokens < stats.long_tokens
    # what went to vLLM: per chunk one batch of longest runs (the processor), then plain greedy
    # continuations whose prompt is prompt + thinking start + a prefix of the longest run + its close
    start_ids = engine.compile(POLICY).start_ids
    longest = {i: r.ids for i, r in enumerate(independent(engine, prompts, [SweepPoint(90, 2)])[SweepPoint(90, 2)])}
    forced = [call for call in calls if any(sp.extra_args for _, sp in call)]
    assert [len(call) for call in forced] == [4, 3]  # the longest runs, one processor batch per chunk
    continuations = [c for call in calls if call not in forced for c in call]
    assert all(not sp.extra_args for _, sp in continuations) and max(len(call) for call in calls) <= 9
    assert len(continuations) == len(points) * len(prompts) - stats.reused - stats.shared
    for ctx, sp in continuations:
        assert sp.temperature == 0 and sp.max_tokens <= POLICY.max_answer_tokens
        i = next(i for i, p in enumerate(prompts) if ctx[:len(p)] == p)
        gen = ctx[len(prompts[i]) + len(start_ids):]
        common = next((j for j, (a, b) in enumerate(zip(gen, longest[i])) if a != b), min(len(gen), len(longest[i])))
        assert len(gen) - common <= 8  # only the forced close is new to the cache

def test_vllm_sweep_falls_back_where_the_longest_run_hits_the_context(engine, qwen_tokenizer):  # noqa: F811
    """A prompt that leaves less room than the largest cap: the points whose thinking never closed
    in the longest run are generated on their own, and still equal their independent runs."""
    tok = qwen_tokenizer
    long_prompt = chat_prompt(tok, "word " * (CONTEXT - 60))
    prompts = [long_prompt, chat_prompt(tok, QUESTIONS[3])]
    assert CONTEXT - 90 < len(long_prompt) < CONTEXT - 40
    stats = SweepStats()
    swept = sweep(engine, prompts, [10, 90], [0, 1], POLICY, stats=stats)
    assert stats.fallbacks > 0
    alone = independent(engine, prompts, sorted(swept))
    for pt in swept:
        assert_same(swept[pt], alone[pt])


def test_multiround_mode_sweeps_too(engine, qwen_tokenizer):  # noqa: F811
    tok = qwen_tokenizer
    multi = VLLMBackend(engine.llm, mode="multiround", tokenizer=tok)
    prompts = [chat_prompt(tok, q) for q in QUESTIONS[:4]]
    swept = sweep(multi, prompts, [10, 60], [0, 2], POLICY)
    alone = independent(engine, prompts, sorted(swept))
    for pt in swept:
        assert_same(swept[pt], alone[pt])
