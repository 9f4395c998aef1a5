"""The vLLM logits processor and driver, without vLLM: fake logits, fake BatchUpdates, a fake engine.

Runs in the main .venv. The fake engine (tests/vllm/fake_engine.py) reproduces the parts of vLLM
V1 that the processor depends on: persistent-batch slots with vLLM's add/remove/condense/swap
reporting, preemption, partial prefill steps whose samples are dropped, greedy sampling on the
processed logits and vLLM's stop rules. Every run is checked against ``simulate`` (the machine's
reference driving loop) on the same scripted model.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from s1kit.backends.base import HFCodec, Request, sample_seed
from s1kit.backends.sampling import sample_row as _sample_row
from s1kit.backends.vllm import (ARG_KEY, ARG_POLICY, ARG_UID, BudgetForcingLogitsProcessor, ReplayError, VLLMBackend,
                                 forcing_sampling_kwargs, pop_traces, replay, sentinel_candidates, stop_sentinel)
from s1kit.forcing import BudgetMachine, BudgetPolicy, ConfigError, PromptTooLong, simulate

from ..conftest import chat_prompt
from .fake_engine import BatchUpdate, FakeLLM, FakeParams, MoveDirectionality, ScriptedModel

QUESTIONS = ["How many r in raspberry?", "What is 2+2?", "Sort 5 3 9 1.", "Compute 17 * 23 step by step.",
             "gcd(84, 36)?", "Base 2 of 13?", "Hi", "Name three primes.", "Is 91 prime?", "2**10?"]

POLICIES = {
    "cap": BudgetPolicy(max_thinking_tokens=30, max_answer_tokens=8),
    "two-waits": BudgetPolicy(max_thinking_tokens=80, num_ignore=2, max_answer_tokens=8),
    "waits-then-cap": BudgetPolicy(max_thinking_tokens=20, num_ignore=4, max_answer_tokens=6),
    "min-thinking": BudgetPolicy(max_thinking_tokens=60, min_thinking_tokens=40, max_answer_tokens=6),
    "cycled-ignores": BudgetPolicy(max_thinking_tokens=60, num_ignore=3, ignore_strings=("Wait", " Hmm, wait"),
                                   max_answer_tokens=6),
    "zero-budget": BudgetPolicy(max_thinking_tokens=0, max_answer_tokens=6),
    "plain": BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=12),
    "auto": BudgetPolicy(max_thinking_tokens="auto", num_ignore=1, max_answer_tokens=6),
}


@pytest.fixture(scope="module")
def tok(qwen_tokenizer):
    return qwen_tokenizer


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The fake engine does many small ops on 150k-wide rows: with torch's thread pool on a busy
    machine each one waits for a straggler thread (a 600 KB fill took 10 ms instead of 0.1)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def fake_params(monkeypatch):
    """The driver builds FakeParams instead of vllm.SamplingParams."""
    import s1kit.backends.vllm.driver as mod

    monkeypatch.setattr(mod, "_sampling_params", lambda **kw: FakeParams(**kw))


def model_for(tok, rate=0.08, seed=0):
    stops = [tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")]
    return ScriptedModel(len(tok), stops, rate=rate, seed=seed)


def reference(backend, model, req):
    """The same request through simulate(): the machine's own driving loop, no vLLM semantics."""
    m = backend.machine(req)
    prompt = list(req.prompt_ids) + list(m.prompt_suffix())
    gen = None
    if req.policy.temperature > 0:
        gen = torch.Generator().manual_seed(sample_seed(req.policy.seed, req.key))

    def next_token(ids, banned):
        row = model.row(prompt + ids).float().clone()
        if banned:
            row[list(banned)] = float("-inf")
        return int(row.argmax()) if gen is None else _sample_row(row, req.policy, gen)

    return simulate(m, next_token)


def mixed_requests(tok, n, policies=POLICIES):
    names = sorted(policies)
    return [Request(chat_prompt(tok, QUESTIONS[i % len(QUESTIONS)] + " " * (i // len(QUESTIONS))),
                    policies[names[i % len(names)]], key=f"r{i}") for i in range(n)]


@pytest.mark.parametrize("engine_opts", [
    dict(max_num_seqs=4, chunked=0.0, preempt=0.0, swap=0.0),
    dict(max_num_seqs=5, chunked=0.6, preempt=0.05, swap=0.2, seed=1),
    dict(max_num_seqs=64, chunked=0.3, preempt=0.02, swap=0.1, seed=2),
], ids=["plain-batching", "chunked-preempt-swap", "wide"])
def test_greedy_runs_equal_simulate(tok, fake_params, engine_opts):
    model = model_for(tok)
    llm = FakeLLM(tok, model, max_model_len=256, **engine_opts)
    backend = VLLMBackend(llm, tokenizer=tok)
    reqs = mixed_requests(tok, 40)
    results = backend.generate(reqs)
    for req, res in zip(reqs, results):
        assert dataclasses.asdict(res) == dataclasses.asdict(reference(backend, model, req)), req.key
    assert any(r.waits_injected for r in results) and any(r.forced_end for r in results)
    assert any(r.finish_reason == "stop" for r in results)
    if engine_opts["chunked"]:
        assert llm.engine.discarded > 0 and llm.engine.preempted > 0


def test_sampling_equals_simulate_despite_dropped_steps(tok, fake_params):
    """Seeded per request: a dropped partial-prefill sample rewinds the generator too."""
    model = model_for(tok)
    policy = BudgetPolicy(max_thinking_tokens=40, num_ignore=2, max_answer_tokens=8, temperature=0.9, top_p=0.95,
                          top_k=3, seed=5)
    reqs = [Request(chat_prompt(tok, q), policy, key=f"s{i}") for i, q in enumerate(QUESTIONS[:6])]
    llm = FakeLLM(tok, model, max_num_seqs=3, chunked=1.0, preempt=0.1, swap=0.2, seed=3)
    results = VLLMBackend(llm, tokenizer=tok).generate(reqs)
    assert llm.engine.discarded > 0 and llm.engine.preempted > 0
    backend = VLLMBackend(FakeLLM(tok, model), tokenizer=tok)
    for req, res in zip(reqs, results):
        assert res.ids == reference(backend, model, req).ids
    greedy = VLLMBackend(FakeLLM(tok, model), tokenizer=tok).generate(
        [Request(r.prompt_ids, policy.replace(temperature=0.0), key=r.key) for r in reqs])
    assert [r.ids for r in results] != [r.ids for r in greedy]


def test_multiround_mode_equals_processor_mode(tok, fake_params):
    model = model_for(tok)
    reqs = mixed_requests(tok, 24)
    a = VLLMBackend(FakeLLM(tok, model, max_model_len=256), tokenizer=tok).generate(reqs)
    b = VLLMBackend(FakeLLM(tok, model, with_processor=False, max_model_len=256), mode="multiround",
                    tokenizer=tok).generate(reqs)
    for x, y in zip(a, b):
        assert dataclasses.asdict(x) == dataclasses.asdict(y)


def test_multi_token_stops_rejected_by_processor_handled_by_multiround(tok, fake_params):
    model = model_for(tok)
    prompt = chat_prompt(tok, QUESTIONS[3])
    free = reference(VLLMBackend(FakeLLM(tok, model), tokenizer=tok), model,
                     Request(prompt, BudgetPolicy(max_thinking_tokens=30), key="x")).ids
    stop = tok.decode(free[8:10])  # two tokens of the greedy thinking: found across a boundary
    policy = BudgetPolicy(max_thinking_tokens=60, num_ignore=1, thinking_stops=(stop, "<|im_start|>"),
                          max_answer_tokens=6)
    req = Request(prompt, policy, key="x")
    with pytest.raises(ConfigError, match="thinking_stops"):
        VLLMBackend(FakeLLM(tok, model), tokenizer=tok).generate([req])
    backend = VLLMBackend(FakeLLM(tok, model, with_processor=False), mode="multiround", tokenizer=tok)
    [res] = backend.generate([req])
    assert res.waits_injected >= 1 and stop not in res.thinking_text
    assert dataclasses.asdict(res) == dataclasses.asdict(reference(backend, model, req))


@pytest.mark.parametrize("vllm_temperature", [0.0, 0.7], ids=["vllm-greedy", "vllm-sampling"])
def test_forced_rows_take_one_id_and_other_rows_are_untouched(tok, vllm_temperature):
    proc = BudgetForcingLogitsProcessor(None, "cpu", False, codec=HFCodec(tok), context_window=512)
    cp = proc.compile(BudgetPolicy(max_thinking_tokens=0, max_answer_tokens=4))  # starts with forced ids
    forced = FakeParams(**{**forcing_sampling_kwargs(cp, "k", 50), "temperature": vllm_temperature})
    plain = FakeParams(max_tokens=50)
    outs = [[], []]
    proc.update_state(BatchUpdate(2, [], [(0, plain, [1, 2, 3], outs[0]), (1, forced, [1, 2, 3], outs[1])], []))
    logits = torch.randn(2, len(tok))
    before = logits.clone()
    after = proc.apply(logits)
    first = BudgetMachine(cp, 0).pop_forced()  # "\n" then the end delimiter
    assert torch.equal(after[0], before[0])
    assert int(after[1].argmax()) == first
    if vllm_temperature:  # vLLM samples this row: everything else is masked
        assert torch.isfinite(after[1]).nonzero().flatten().tolist() == [first]
        assert torch.softmax(after[1], -1)[first] == 1.0
    else:  # vLLM takes the argmax: the forced id is raised above everything
        assert after[1, first] == torch.finfo(torch.float32).max
        assert (after[1] != before[1]).sum() == 1


def test_sentinel_and_bans(tok, fake_params):
    im_start, im_end = (tok.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>"))
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    codec = HFCodec(tok)
    from s1kit.forcing import CompiledPolicy

    cp = CompiledPolicy(BudgetPolicy(), codec, codec.eos_ids())
    assert stop_sentinel(cp) == im_end  # ends the answer, is a thinking stop, never forced
    cp = CompiledPolicy(BudgetPolicy(max_thinking_tokens=None, answer_stops=("<|endoftext|>",)), codec, codec.eos_ids())
    assert set(sentinel_candidates(cp)) == {eot, im_end}
    bad = CompiledPolicy(BudgetPolicy(answer_stops=(), ignore_strings=("<|im_end|>",)), codec, codec.eos_ids())
    with pytest.raises(ConfigError, match="answer_stops"):
        stop_sentinel(bad)
    # a client-chosen vLLM stop id that the machine would accept while thinking is banned there
    model = ScriptedModel(len(tok), [im_start, eot], rate=0.3)
    policy = BudgetPolicy(max_thinking_tokens=40, num_ignore=1, max_answer_tokens=6)
    llm = FakeLLM(tok, model)
    params = FakeParams(**{**forcing_sampling_kwargs(llm.processor.compile(policy), "k", 200, uid="ban"),
                           "stop_token_ids": [im_end, eot]})
    cp = llm.processor.compile(policy)
    [seq] = llm.engine.run([chat_prompt(tok, "Hi") + list(cp.start_ids)], [params])
    trace = pop_traces(["ban"])["ban"]
    m, trailing = replay(cp, 40, seq.out, {j: r for j, r in trace["rejected"]})
    assert m.done and eot not in m.ids and trailing in ([], [im_end])


def test_policy_as_json_string_and_bad_policies(tok):
    proc = BudgetForcingLogitsProcessor(None, "cpu", False, codec=HFCodec(tok), context_window=512)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    policy = BudgetPolicy(max_thinking_tokens=5, max_answer_tokens=3)
    good = FakeParams(extra_args={ARG_POLICY: json.dumps(policy.to_dict()), ARG_KEY: "a", ARG_UID: "j1"},
                      stop_token_ids=[im_end], ignore_eos=True)
    BudgetForcingLogitsProcessor.validate_params(good)
    bad = FakeParams(extra_args={ARG_POLICY: {"max_thinking_tokens": -1}, ARG_UID: "j2"}, stop_token_ids=[im_end],
                     ignore_eos=True)
    with pytest.raises(ValueError, match="max_thinking_tokens"):
        BudgetForcingLogitsProcessor.validate_params(bad)
    multi = FakeParams(extra_args={ARG_POLICY: {"thinking_stops": ["\n\n\n"]}, ARG_UID: "j3"},
                       stop_token_ids=[im_end], ignore_eos=True)
    outs = [[], [], []]
    proc.update_state(BatchUpdate(3, [], [(i, p, [1, 2], o) for i, (p, o) in enumerate(zip([good, bad, multi], outs))],
                                  []))
    logits = proc.apply(torch.zeros(3, len(tok)))
    picks = logits.argmax(-1).tolist()
    assert picks[1] == im_end and picks[2] == im_end  # bad requests end at once; the engine goes on
    traces = pop_traces(["j1", "j2", "j3"])
    assert traces["j1"]["error"] is None
    assert "max_thinking_tokens" in traces["j2"]["error"] and "thinking_stops" in traces["j3"]["error"]


def test_engine_without_processor_is_a_clear_error(tok, fake_params):
    backend = VLLMBackend(FakeLLM(tok, model_for(tok), with_processor=False), tokenizer=tok)
    with pytest.raises(ReplayError, match="logits processor|worker_extension_cls"):
        backend.generate([Request(chat_prompt(tok, "Hi"), BudgetPolicy(max_thinking_tokens=5), key="a")])


def test_replay_rejects_foreign_outputs(tok):
    from s1kit.forcing import CompiledPolicy

    codec = HFCodec(tok)
    cp = CompiledPolicy(BudgetPolicy(max_thinking_tokens=10, num_ignore=1), codec, codec.eos_ids())
    im_start, wait = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("Wait")
    m, trailing = replay(cp, 10, [100, 101, wait, 102], {2: im_start})
    assert m.waits_injected == 1 and m.thinking_tokens == 3 and not trailing
    m, _ = replay(cp, 10, [100, 101, wait, 102], {})  # the model wrote "Wait" itself
    assert m.waits_injected == 0 and m.thinking_tokens == 4
    with pytest.raises(ReplayError, match="suppresses"):
        replay(cp, 10, [100, im_start, 5], {})
    with pytest.raises(ReplayError, match="forces"):
        replay(cp, 10, [100, 101, 7], {2: im_start})


def test_prompt_too_long_and_modes(tok, fake_params):
    backend = VLLMBackend(FakeLLM(tok, model_for(tok), max_model_len=64), tokenizer=tok)
    with pytest.raises(PromptTooLong):
        backend.machine(Request(tok.encode("word " * 80), BudgetPolicy(max_thinking_tokens=5), key="l"))
    auto = Request(chat_prompt(tok, "Hi"), BudgetPolicy(max_thinking_tokens="auto", max_answer_tokens=10), key="a")
    [res] = backend.generate([auto])
    m = backend.machine(auto)
    assert len(auto.prompt_ids) + len(m.prompt_suffix()) + len(res.ids) <= 64
    with pytest.raises(ConfigError, match="mode"):
        VLLMBackend(FakeLLM(tok, model_for(tok)), mode="fast", tokenizer=tok)


def test_batch_update_slot_reuse_keeps_every_trace(tok):
    """vLLM fills removed slots without listing them in `removed`: the old request must not vanish."""
    proc = BudgetForcingLogitsProcessor(None, "cpu", False, codec=HFCodec(tok), context_window=512)
    cp = proc.compile(BudgetPolicy(max_thinking_tokens=0, max_answer_tokens=1))
    outs = {u: [] for u in "abc"}
    params = {u: FakeParams(**forcing_sampling_kwargs(cp, u, 20, uid=f"slot-{u}")) for u in "abc"}
    proc.update_state(BatchUpdate(3, [], [(i, params[u], [1], outs[u]) for i, u in enumerate("abc")], []))
    proc.apply(torch.zeros(3, len(tok)))
    for u in "abc":
        outs[u].append(cp.cap_ids[0])
    # 'a' (slot 0) is gone and 'c' moves from slot 2 into it: only the move is reported
    proc.update_state(BatchUpdate(2, [], [], [(2, 0, MoveDirectionality.UNIDIRECTIONAL)]))
    assert set(pop_traces(["slot-a", "slot-b", "slot-c"])) == {"slot-a", "slot-b", "slot-c"}


def test_rows_that_accept_any_id_are_left_to_vllms_argmax(tok):
    """Answering rows (and a thinking round's first token, stops banned) need no decision before
    sampling: the processor leaves them to vLLM's greedy pick (masking only the banned ids) and
    the machine consumes that pick at the next step; thinking rows are chosen and forced."""
    proc = BudgetForcingLogitsProcessor(None, "cpu", False, codec=HFCodec(tok), context_window=512)
    answer = proc.compile(BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=3))
    think = proc.compile(BudgetPolicy(max_thinking_tokens=50, num_ignore=1, max_answer_tokens=3))
    outs = [[], []]
    proc.update_state(BatchUpdate(2, [], [(0, FakeParams(**forcing_sampling_kwargs(answer, "a", 10)), [1], outs[0]),
                                          (1, FakeParams(**forcing_sampling_kwargs(think, "t", 99)), [1], outs[1])], []))
    stops = sorted(think.thinking_stops.ids)
    gen = torch.Generator().manual_seed(0)
    # the model wants to stop thinking at every step: banned at a round's first token (vLLM's pick),
    # suppressed once with "Wait" (forced), banned again after it, then accepted: thinking closes
    for step, expect in enumerate(["banned", "wait", "banned", "close"]):
        logits = torch.randn(2, len(tok), generator=gen)
        logits[:, stops] = 50.0
        before = logits.clone()
        after = proc.apply(logits)
        a, t = proc.active[0], proc.active[1]
        assert a.machine.answer_tokens == step  # the previous step's pick is consumed now
        if not a.machine.done:
            assert a.deferred and torch.equal(after[0], before[0])  # answering: untouched, no argmax here
        changed = (after[1] != before[1]).nonzero().flatten().tolist()
        if expect == "banned":
            assert t.deferred and changed == stops and torch.isinf(after[1, stops]).all()
        else:  # decided before vLLM samples: one id raised to the top
            assert not t.deferred and len(changed) == 1
            assert t.machine.waits_injected == 1 and t.machine.forced_end is False
            assert (t.machine.phase.name == "ANSWERING") == (expect == "close")
        picks = after.argmax(-1).tolist()
        outs[0].append(picks[0])
        outs[1].append(picks[1])
    assert proc.active[0].machine.done and proc.active[0].machine.answer_tokens == 3
    assert proc.active[1].machine.ids[:4] == outs[1]


@pytest.mark.parametrize("temperature", [0.0, 0.9], ids=["greedy", "seeded"])
def test_r1_eos_inside_the_thinking_is_an_ordinary_token_as_in_hf(tok, fake_params, temperature):
    """r1 has no id that both ends the answer and stops the thinking, so the sentinel (EOS,
    <|im_end|>) is an ordinary thinking token: the machine (and hf) accept it there. The processor
    lets vLLM stop on it and the driver continues the run in a new request, so the run equals the
    machine's own loop (the processor used to ban it while thinking: hf and vLLM diverged)."""
    im_end, think_end = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("</think>")
    model = ScriptedModel(len(tok), [im_end, think_end], rate=0.2, seed=3)
    policy = BudgetPolicy.preset("r1", max_thinking_tokens=40, num_ignore=1, max_answer_tokens=8,
                                 temperature=temperature, top_k=3, seed=5)
    reqs = [Request(chat_prompt(tok, q), policy, key=f"r{i}") for i, q in enumerate(QUESTIONS)]
    llm = FakeLLM(tok, model, max_num_seqs=4, chunked=0.5, preempt=0.05, swap=0.2, seed=4)
    backend = VLLMBackend(llm, tokenizer=tok)
    results = backend.generate(reqs)
    for req, res in zip(reqs, results):
        assert dataclasses.asdict(res) == dataclasses.asdict(reference(backend, model, req)), req.key
    inside = [r for r in results if im_end in r.ids[:r.thinking_tokens + r.forced_tokens]]
    assert inside and any(r.waits_injected for r in results)  # the case happened (and continued)
    from s1kit.backends.vllm.processor import _SUSPENDED

    assert not _SUSPENDED  # every suspended run was continued
