"""Conformance: every backend of the default suite (hf, reference, openai -> `s1kit serve`) gives the
same greedy tokens and the same accounting, field for field, for each case of harness.CASES; seeded
sampling is compared where the backend is exact (``seeded_sampling``)."""

from __future__ import annotations

import pytest

from s1kit.backends import Backend, create
from s1kit.backends.hf import HFBackend
from s1kit.backends.reference import S1ReferenceBackend

from ..conftest import chat_prompt
from .harness import CASE_IDS, CASES, QUESTIONS, check_case, check_seeded


@pytest.fixture(scope="module")
def served(stopping_model, qwen_tokenizer):
    """`s1kit serve` (the real app, uvicorn on 127.0.0.1) on the tiny model."""
    for extra in ("fastapi", "uvicorn", "httpx"):
        pytest.importorskip(extra)
    from ..serve.conftest import SERVED, ServerThread, serve_config

    with ServerThread(serve_config("tiny", max_tokens_limit=4096),
                      HFBackend(stopping_model, qwen_tokenizer, batch_size=4)) as srv:
        yield srv.url, SERVED


@pytest.fixture(scope="module")
def backends(stopping_model, qwen_tokenizer, served, tmp_path_factory):
    tok_dir = tmp_path_factory.mktemp("tok")
    qwen_tokenizer.save_pretrained(tok_dir)
    url, name = served
    out = {"hf": HFBackend(stopping_model, qwen_tokenizer, batch_size=3),
           "hf-batch1": HFBackend(stopping_model, qwen_tokenizer, batch_size=1),
           "reference": S1ReferenceBackend(stopping_model, qwen_tokenizer, batch_size=3),
           "openai": create("openai", base_url=url, model=name, tokenizer=str(tok_dir))}
    for b in out.values():
        assert isinstance(b, Backend)  # the contract (a runtime-checkable Protocol), not a class test
    return out


@pytest.fixture(scope="module")
def prompts(qwen_tokenizer):
    return [chat_prompt(qwen_tokenizer, q) for q in QUESTIONS]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_backends_agree(case, backends, prompts):
    check_case(backends, "hf", prompts, case.policy())
    assert backends["openai"].exact_ids  # s1kit's server returns its token ids


def test_seeded_sampling_agrees_where_exact(backends, prompts):
    assert check_seeded(backends, prompts) == 2  # hf at batch 3 and at batch 1


def test_every_backend_accounts_forced_ids(backends, prompts, qwen_tokenizer):
    """Waits are the ignore string's ids, forced spans cover exactly the forced tokens."""
    from s1kit.backends.base import Request
    from s1kit.forcing import BudgetPolicy

    policy = BudgetPolicy(max_thinking_tokens=40, min_thinking_tokens=30, max_answer_tokens=6)
    wait = qwen_tokenizer.encode("Wait", add_special_tokens=False)
    for name, b in backends.items():
        for res in b.generate([Request(p, policy, key=f"q{i}") for i, p in enumerate(prompts)]):
            assert sum(e - s for s, e in res.forced_spans) == res.forced_tokens, name
            assert res.thinking_tokens <= 40 and res.thinking_tokens + res.forced_tokens + res.answer_tokens == len(
                res.ids), name
            if res.waits_injected:
                s, e = res.forced_spans[0]
                assert res.ids[s:e] == wait, name
