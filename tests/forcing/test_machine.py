"""State-machine properties, driven by a scripted fake model (no torch)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s1kit.forcing import BudgetMachine, BudgetPolicy, CompiledPolicy, Phase, simulate

from .fake import FakeCodec, ScriptedModel

CODEC = FakeCodec()
EOS = 103
# Model tokens the script may use: letters, merged tokens and the special stops, never the
# ignore string itself, so every "Wait" in the output was forced by the machine.
MODEL_TOKENS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 17, 100, 101, 103]

SPECIAL_STOPS = dict(thinking_start="<A>", thinking_end="<S>", thinking_stops=("<S>", "<E>"),
                     answer_stops=("<E>",), forced_answer_prefix="Final", ignore_strings=("Wait",))
TEXT_STOPS = dict(thinking_start="<A>", thinking_end="</t>", thinking_stops=("</t>",),
                  answer_stops=("<E>",), forced_answer_prefix="!", ignore_strings=("Wait", " Wait"))


def run(policy: BudgetPolicy, script: list[int]):
    cp = CompiledPolicy(policy, CODEC, eos_ids=[EOS])
    m = BudgetMachine(cp, policy.max_thinking_tokens)
    return m, simulate(m, ScriptedModel(script), max_steps=5000)


def count_sub(seq: list[int], sub: tuple[int, ...]) -> int:
    return sum(1 for i in range(len(seq) - len(sub) + 1) if tuple(seq[i:i + len(sub)]) == sub)


@st.composite
def cases(draw):
    fmt = draw(st.sampled_from([SPECIAL_STOPS, TEXT_STOPS]))
    mx = draw(st.integers(0, 40))
    policy = BudgetPolicy(**fmt, max_thinking_tokens=mx, min_thinking_tokens=draw(st.integers(0, mx)),
                          num_ignore=draw(st.integers(0, 4)), max_answer_tokens=draw(st.integers(1, 12)))
    script = draw(st.lists(st.sampled_from(MODEL_TOKENS), max_size=120))
    return policy, script


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_machine_invariants(case):
    policy, script = case
    m, r = run(policy, script)
    cp = m.cp
    assert m.phase is Phase.DONE
    # budget: never above the max, and at least the min (the cap is >= the min)
    assert r.thinking_tokens <= policy.max_thinking_tokens
    assert r.thinking_tokens >= policy.min_thinking_tokens
    if r.forced_end:
        assert r.thinking_tokens == policy.max_thinking_tokens
    # the end delimiter is forced exactly once, right where thinking ends
    end = m.thinking_end_at
    assert tuple(r.ids[end:end + len(cp.end_ids)]) == cp.end_ids
    thinking = r.ids[:end]
    assert count_sub(thinking, cp.end_ids) == 0
    assert not any(s in CODEC.decode(thinking) for s in policy.thinking_stops)
    # every ignore string in the thinking was injected, and injections follow the policy
    injected = sum(count_sub(thinking, ids) for ids in set(cp.ignore_ids))
    if policy.ignore_strings == ("Wait",):
        assert injected == r.waits_injected
    if policy.min_thinking_tokens == 0:
        assert r.waits_injected <= policy.num_ignore
        if not r.forced_end:  # thinking ended naturally: exactly num_ignore suppressions first
            assert r.waits_injected == policy.num_ignore
    # accounting and text agree with the ids
    assert len(r.ids) == r.thinking_tokens + r.forced_tokens + r.answer_tokens
    assert r.answer_tokens <= policy.max_answer_tokens
    assert CODEC.decode(r.ids) == r.text
    assert r.text.startswith(r.thinking_text)
    assert r.answer_text in r.text[len(r.thinking_text):]
    assert r.finish_reason in ("stop", "length")
    assert sum(b - a for a, b in r.forced_spans) == r.forced_tokens


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(MODEL_TOKENS), max_size=80), st.integers(1, 30))
def test_ignore_count_is_exact_when_the_model_keeps_stopping(prefix, mx):
    # after any prefix the model emits the atomic stop forever: with budget left, every early
    # stop up to num_ignore is suppressed, then thinking closes without a cap
    policy = BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=mx + 200, num_ignore=3, max_answer_tokens=3)
    script = [t for t in prefix if t not in (100, 101)][:mx] + [100] * 50
    m, r = run(policy, script)
    assert r.waits_injected == 3
    assert not r.forced_end


def test_cap_forces_newline_delimiter_and_prefix_once():
    policy = BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=5, max_answer_tokens=2)
    m, r = run(policy, [0, 1, 2, 0, 1, 2, 2, 2])
    assert r.thinking_tokens == 5 and r.forced_end
    # "\n" is added because the thinking did not end with a newline, as s1's harness does
    assert r.text == "<A>"[0:0] + "abcab" + "\n<S>\nFinal" + "cc"
    assert r.thinking_text == "abcab\n"
    assert r.answer_text == "\nFinalcc"
    assert r.forced_tokens == len(CODEC.encode("\n<S>\nFinal"))


def test_no_extra_newline_when_thinking_ends_with_one():
    policy = BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=3, max_answer_tokens=1)
    _, r = run(policy, [0, 1, 4, 2])
    assert r.text == "ab\n<S>\nFinalc"


def test_two_waits_then_natural_end():
    policy = BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=100, num_ignore=2, max_answer_tokens=5)
    _, r = run(policy, [0, 100, 1, 101, 2, 100, 5, 5, 101])
    assert r.waits_injected == 2 and not r.forced_end
    assert r.thinking_text == "aWaitbWaitc"
    assert r.text == "aWaitbWaitc<S>..<E>"
    assert r.answer_text == ".."
    assert r.finish_reason == "stop" and r.answer_tokens == 3


def test_min_thinking_keeps_suppressing_until_reached():
    policy = BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=100, min_thinking_tokens=4, max_answer_tokens=1)
    _, r = run(policy, [0, 100, 1, 100, 2, 100, 0, 100, 9])
    assert r.thinking_text == "aWaitbWaitcWaita"
    assert r.waits_injected == 3 and r.thinking_tokens == 4


def test_stop_is_banned_as_first_token_of_a_round():
    policy = BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=10, num_ignore=1)
    cp = CompiledPolicy(policy, CODEC, eos_ids=[EOS])
    m = BudgetMachine(cp, 10)
    assert m.banned_ids() == frozenset({100, 101})
    m.consume(0)
    assert m.banned_ids() == frozenset()
    m.consume(100)  # suppressed: "Wait" is forced, then the ban holds again
    while m.has_forced():
        m.pop_forced()
    assert m.banned_ids() == frozenset({100, 101})


def test_multi_token_stop_split_across_tokens_is_rolled_back():
    policy = BudgetPolicy(**TEXT_STOPS, max_thinking_tokens=50, num_ignore=1, max_answer_tokens=2)
    cp = CompiledPolicy(policy, CODEC, eos_ids=[EOS])
    m = BudgetMachine(cp, 50)
    assert m.consume(0).accept
    assert m.consume(10).accept  # "</" alone is not a stop yet
    d = m.consume(11)  # "t>" completes "</t>": drop "</" (already fed) and do not feed "t>"
    assert (d.accept, d.rollback) == (False, 1)
    assert m.thinking_tokens == 1 and m.waits_injected == 1
    assert [m.pop_forced() for _ in range(len(cp.ignore_ids[0]))] == list(cp.ignore_ids[0])


def test_stop_merged_inside_a_token_is_found():
    policy = BudgetPolicy(**TEXT_STOPS, max_thinking_tokens=50, max_answer_tokens=2)
    _, r = run(policy, [0, 14, 1, 1])  # token 14 is "q</t>": the delimiter hides inside it
    assert r.thinking_text == "a" and r.thinking_tokens == 1
    assert r.text == "a</t>bb"


def test_ignore_strings_cycle():
    policy = BudgetPolicy(**TEXT_STOPS, max_thinking_tokens=50, num_ignore=3, max_answer_tokens=1)
    _, r = run(policy, [0, 13, 1, 13, 2, 13, 0, 13, 9])
    assert r.thinking_text == "aWaitb Waitc Waita".replace("c Wait", "cWait")


def test_zero_budget_closes_at_once_and_plain_mode_has_no_thinking():
    _, r = run(BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=0, max_answer_tokens=2), [0, 1])
    assert r.thinking_tokens == 0 and r.forced_end and r.text == "\n<S>\nFinalab"
    _, r = run(BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=None, max_answer_tokens=9), [0, 100, 1, 101, 2])
    assert r.thinking_text == "" and r.answer_text == "a<S>b" and r.finish_reason == "stop"
    assert r.thinking_tokens == 0 and r.forced_tokens == 0 and r.answer_tokens == 4


def test_consume_while_forced_pending_is_an_error():
    policy = BudgetPolicy(**SPECIAL_STOPS, max_thinking_tokens=1)
    m = BudgetMachine(CompiledPolicy(policy, CODEC), 1)
    m.consume(0)
    with pytest.raises(RuntimeError):
        m.consume(0)
