"""The engine's pieces without HTTP: streaming deltas, the serving limits, the answer reserve."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s1kit.forcing import BudgetPolicy, CompiledPolicy, ConfigError
from s1kit.serve.engine import Delta, EngineService, Failed, Finished, Job, ServeMachine, _Segment, _StreamState, final_texts

from ..forcing.fake import FakeCodec, ScriptedModel
from ..forcing.test_machine import MODEL_TOKENS, SPECIAL_STOPS, TEXT_STOPS

CODEC = FakeCodec()
EOS = 103


def drive(m, model, on_step):
    """The DecodeLoop's per-row step, without a model: forced ids first, sampled ids otherwise."""
    for _ in range(5000):
        if m.done:
            return
        if m.has_forced():
            m.pop_forced()
        else:
            d = m.consume(model(list(m.ids), m.banned_ids()))
            if not d.accept and m.has_forced():
                m.pop_forced()
        on_step(m)
    m.stop("length")


@st.composite
def stream_cases(draw):
    fmt = draw(st.sampled_from([SPECIAL_STOPS, TEXT_STOPS]))
    answer_stops = draw(st.sampled_from([("<E>",), ("<E>", "z!"), ("ab",)]))
    thinks = draw(st.booleans())
    mx = draw(st.integers(0, 30))
    policy = BudgetPolicy(**{**fmt, "answer_stops": answer_stops}, max_thinking_tokens=mx if thinks else None,
                          min_thinking_tokens=draw(st.integers(0, mx)) if thinks else 0,
                          num_ignore=draw(st.integers(0, 3)) if thinks else 0, max_answer_tokens=draw(st.integers(1, 15)))
    script = draw(st.lists(st.sampled_from(MODEL_TOKENS), max_size=100))
    limit = draw(st.one_of(st.none(), st.integers(1, 80)))
    return policy, script, limit, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream_cases())
def test_streamed_deltas_add_up_to_the_final_texts(case):
    policy, script, limit, split, include_stop = case
    cp = CompiledPolicy(policy, CODEC, eos_ids=[EOS])
    m = ServeMachine(cp, policy.max_thinking_tokens, limit=limit)
    state = _StreamState(split)
    reasoning, content = [], []

    def on_step(machine):
        if machine.done:
            return
        d = state.step(machine, CODEC.decode)
        if d is not None:
            reasoning.append(d.reasoning)
            content.append(d.content)

    drive(m, ScriptedModel(script), on_step)
    r, c, full = final_texts(m, CODEC.decode, include_stop)
    last = state.finish(r, c, full)
    if last is not None:
        reasoning.append(last.reasoning)
        content.append(last.content)
    if split and r is not None:
        assert "".join(reasoning) == r and "".join(content) == c
    else:
        assert "".join(content) == (full if not split else c) and not "".join(reasoning)
    result = m.result()
    if r is not None:
        assert r == result.thinking_text
    if not include_stop:
        assert c == result.answer_text
    if limit is not None:
        assert len(m.ids) <= limit


def test_incremental_detokenization_holds_back_partial_characters(qwen_tokenizer):
    from s1kit.backends.base import HFCodec

    codec = HFCodec(qwen_tokenizer)
    text = "naïve café — 🙂🚀 数学 Wait… ok"
    ids = codec.encode(text)
    seg, out = _Segment(), []
    for n in range(1, len(ids) + 1):
        out.append(seg.advance(ids[:n], codec.decode))
    rest = seg.finish(text)
    assert all("\ufffd" not in d for d in out)
    assert "".join(out) + rest == text and rest == ""


def test_serve_machine_limit_bounds_min_thinking_waits():
    # the model stops at every step: min_thinking_tokens forces a Wait each time, beyond the reserve
    policy = BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=40, min_thinking_tokens=40, max_answer_tokens=5)
    cp = CompiledPolicy(policy, CODEC, eos_ids=[EOS])
    m = ServeMachine(cp, 40, limit=30)
    drive(m, ScriptedModel([100, 0] * 100), lambda _: None)
    assert len(m.ids) <= 30 and m.result().finish_reason == "length"


class _Model:
    class config:
        vocab_size = 200

    def get_input_embeddings(self):
        return None


class _Backend:
    """What EngineService.prepare needs (no torch)."""

    def __init__(self, context_window=None):
        self.model, self.codec, self.tokenizer = _Model(), _FakeHFCodec(), None
        self.context_window, self.device, self.pad_id = context_window, "cpu", 0


class _FakeHFCodec(FakeCodec):
    def eos_ids(self):
        return [EOS]


def test_thinking_cap_leaves_the_answer_reserve():
    engine = EngineService(_Backend())
    policy = BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=1000, num_ignore=2, max_answer_tokens=10)
    cp = CompiledPolicy(policy, CODEC, [EOS])
    overhead = cp.forced_overhead() + 2 * max(len(i) for i in cp.ignore_ids)
    m = engine.prepare([0, 1], policy, max_tokens=100)
    assert m.max_thinking == 100 - 10 - overhead
    assert m.limit == 100 - len(cp.start_ids)
    small = policy.replace(max_thinking_tokens=20)
    assert engine.prepare([0, 1], small, max_tokens=100).max_thinking == 20
    with pytest.raises(ConfigError) as err:
        engine.prepare([0, 1], policy, max_tokens=10 + overhead - 1)
    assert err.value.field == "max_tokens"
    # the context window bounds max_tokens the same way, and 'auto' uses what is left
    ctx = EngineService(_Backend(context_window=60))
    auto = ctx.prepare([0] * 10, policy.replace(max_thinking_tokens="auto"), max_tokens=1000)
    assert auto.max_thinking == 60 - 10 - 10 - overhead


def test_submit_cancel_and_queue_limit():
    engine = EngineService(_Backend(), max_num_seqs=1, max_queue=1)  # not started: jobs stay queued
    from s1kit.backends.base import Request
    from s1kit.serve.engine import QueueFull

    policy = BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=4, max_answer_tokens=2)
    events = []
    jobs = [Job(Request([0], policy), engine.prepare([0], policy, max_tokens=50), events.append) for _ in range(3)]
    t1 = engine.submit(jobs[0])
    engine.submit(jobs[1])
    with pytest.raises(QueueFull):
        engine.submit(jobs[2])
    engine.cancel(t1)
    assert isinstance(events[-1], Finished) and events[-1].result.finish_reason == "cancelled"
    engine.submit(jobs[2])  # the cancelled job's place is free again
    engine.stop()
    assert sum(isinstance(e, Failed) for e in events) == 2
    assert not any(isinstance(e, Delta) for e in events)
