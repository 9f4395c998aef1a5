"""The backend contract: the registry, its errors, capability flags, and per-sequence fault isolation."""

from __future__ import annotations

import pytest

from s1kit.backends import NAMES, Backend, accepted_args, create
from s1kit.backends.base import Request, RequestFailed
from s1kit.backends.hf import DecodeLoop, HFBackend
from s1kit.forcing import BudgetPolicy, ConfigError

from ..conftest import chat_prompt


def test_registry_names_and_arguments():
    assert NAMES == ("hf", "reference", "openai", "vllm", "vllm-multiround")
    assert {"base_url", "tokenizer", "api_key_env", "model"} <= accepted_args("openai")
    assert "base_url" not in accepted_args("hf")
    with pytest.raises(ConfigError, match="backend"):
        create("nope", model="x")
    with pytest.raises(ConfigError, match="base_url"):
        create("hf", model="x", base_url="http://127.0.0.1:1")  # never silently ignored


class _Faulty(HFBackend):
    """Its machine for the request keyed 'bad' raises at its 5th step."""

    def machine(self, request):
        m = super().machine(request)
        if request.key == "bad":
            real, calls = m.step, [0]

            def step(sampled=None):
                calls[0] += 1
                if calls[0] == 5:
                    raise RuntimeError("injected fault")
                return real(sampled)

            m.step = step
        return m


def test_a_faulty_sequence_fails_alone(stopping_model, qwen_tokenizer):
    tok = qwen_tokenizer
    policy = BudgetPolicy(max_thinking_tokens=20, num_ignore=1, max_answer_tokens=5)
    reqs = [Request(chat_prompt(tok, q), policy, key=k) for q, k in (("Hi", "a"), ("2+2?", "bad"), ("Sort 3 1", "c"))]
    clean = HFBackend(stopping_model, tok, batch_size=3).generate([reqs[0], reqs[2]])
    delivered = {}
    with pytest.raises(RuntimeError, match="injected fault"):
        _Faulty(stopping_model, tok, batch_size=3).generate(reqs, on_result=delivered.__setitem__)
    assert sorted(delivered) == [0, 2]  # the others finished and were delivered
    assert [delivered[0].ids, delivered[2].ids] == [r.ids for r in clean]  # untouched by the fault

    errors, done = {}, {}
    backend = _Faulty(stopping_model, tok, batch_size=3)
    items = list(enumerate(reqs))

    def finish(tag, res):
        (errors if isinstance(res, BaseException) else done)[tag] = res

    DecodeLoop(backend).run(lambda n: [items.pop(0) for _ in range(min(n, len(items)))], finish,
                            more=lambda: bool(items))
    assert list(errors) == [1] and sorted(done) == [0, 2]  # the loop's done(tag, error): that request only


def test_several_failures_are_one_request_failed(stopping_model, qwen_tokenizer):
    tok = qwen_tokenizer
    long = Request(tok.encode("word " * 80), BudgetPolicy(max_thinking_tokens=5), key="x")
    backend = HFBackend(stopping_model, tok, batch_size=2, context_window=64)
    with pytest.raises(RequestFailed) as info:
        backend.generate([long, long])
    assert sorted(info.value.errors) == [0, 1]


def test_capability_flags_and_protocol(stopping_model, qwen_tokenizer):
    from s1kit.backends.reference import S1ReferenceBackend

    hf = HFBackend(stopping_model, qwen_tokenizer, batch_size=2)
    ref = S1ReferenceBackend(stopping_model, qwen_tokenizer, batch_size=2)
    assert isinstance(hf, Backend) and isinstance(ref, Backend)
    assert (hf.prefix_sweep, hf.exact_ids, hf.seeded_sampling, hf.max_num_seqs) == (True, True, True, 2)
    assert (ref.prefix_sweep, ref.seeded_sampling) == (False, False)
    # the reference prepares machines too (`s1kit generate --backend reference` used to fail on this)
    m = ref.machine(Request(qwen_tokenizer.encode("Hi"), BudgetPolicy(max_thinking_tokens=4), key="k"))
    assert m.max_thinking == 4
