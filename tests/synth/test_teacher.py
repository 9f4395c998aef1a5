"""The programmatic teacher: correct traces, mistake statistics, s1 rendering and tokenization."""

from __future__ import annotations

import math

import pytest

from s1kit.data.rows import validate_row
from s1kit.synth.tasks import FAMILIES, generate
from s1kit.synth.teacher import (ANSWER, END, LAYOUTS, RECHECK, THINK, base_corpus, parse_answer, render_direct,
                                 render_s1, render_worked, solve, teacher_rows)
from s1kit.synth.render import WORKED_CLOSE, WORKED_OPEN
from s1kit.synth.tokenizer import char_tokenizer
from s1kit.synth.verify import verifies

PAIRS = [(f, lay) for f in sorted(FAMILIES) for lay in LAYOUTS[f]]


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


def test_every_family_has_layouts():
    assert set(LAYOUTS) == set(FAMILIES)


@pytest.mark.parametrize("family,layout", PAIRS)
def test_clean_traces_end_with_the_right_answer(family, layout):
    for p in generate(family, 120, seed=0):
        t = solve(p, layout=layout, mistake_rate=0.0, correction_rate=0.0, check_rate=0.0)
        assert t.correct and not t.mistake and t.answer == p.answer
        assert t.attempt == f"Answer: {p.answer}"
        last = t.thinking.splitlines()[-1].rstrip()
        assert last.endswith(p.answer) or last.endswith(f"={p.answer}"), (p.question, t.thinking)
        assert "Wait" not in t.thinking
        assert solve(p, layout=layout, correction_rate=0.0, check_rate=0.0).thinking == t.thinking  # deterministic


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_mistake_rate_is_respected(family):
    n, rate = 300, 0.3
    rows = teacher_rows(generate(family, n, seed=5), mistake_rate=rate, check_rate=0.0, seed=1)
    wrong = sum(not r["teacher_correct"] for r in rows)
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(wrong - n * rate) < 4 * sigma, (family, wrong)
    for r in rows:  # a wrong trace says so in its metadata and its attempt carries the wrong answer
        assert r["teacher_correct"] == (not r["metadata"]["mistake"])
        assert r["attempt"] == "Answer: " + r["metadata"]["teacher_answer"]
        assert (r["metadata"]["teacher_answer"] == r["answer"]) == r["teacher_correct"]


@pytest.mark.parametrize("family", sorted(f for f in FAMILIES if not verifies(f, LAYOUTS[f][0])))
def test_caught_mistakes_are_rechecked_and_fixed(family):
    rows = teacher_rows(generate(family, 60, seed=2), correction_rate=1.0, check_rate=0.0)
    assert all(r["teacher_correct"] for r in rows)
    fixed = [r for r in rows if r["metadata"]["corrected"]]
    # every trace with a step gets a caught mistake (a letter that never occurs has no step)
    assert len(fixed) == sum(r["metadata"]["steps"] > 0 for r in rows) > 40
    for r in fixed:
        lines = r["thinking"].splitlines()
        k = lines.index(RECHECK)
        assert 0 < k < len(lines) - 1 and lines[k - 1] != lines[k + 1]


def test_rates_validated():
    p = generate("gcd", 1)[0]
    with pytest.raises(ValueError, match="mistake_rate"):
        solve(p, mistake_rate=1.5)
    with pytest.raises(ValueError, match="layout='nope'"):
        solve(p, layout="nope")


def test_self_checks_appear_at_the_check_rate():
    rows = teacher_rows(generate("mod_pow", 400, seed=0), check_rate=0.5, mistake_rate=0.2)
    checked = sum("Wait, let me check:" in r["thinking"] for r in rows)
    assert 140 < checked < 260
    for r in rows:  # the check restates the answer reached, right or wrong, on the last line
        if r["metadata"]["checked"]:
            assert r["thinking"].splitlines()[-1].endswith(f"Yes, {r['metadata']['teacher_answer']}.")


def test_rows_follow_the_common_schema():
    rows = teacher_rows([p for f in FAMILIES for p in generate(f, 5, seed=0)], mistake_rate=0.2)
    for r in rows:
        assert validate_row(r) == []
        assert r["solution"] == r["thinking"] and r["source"] == "synth/" + r["metadata"]["family"]
        assert r["metadata"]["difficulty"] in (1, 2, 3, 4)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_s1_format_round_trips_through_the_char_tokenizer(tok, family):
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    for r in teacher_rows(generate(family, 10, seed=0), correction_rate=0.3):
        prompt, completion = render_s1(r["question"], r["thinking"], r["attempt"])
        assert prompt == f"<|im_start|>user\n{r['question']}<|im_end|>\n<|im_start|>assistant\n"
        assert completion.startswith(THINK + "\n") and f"\n{ANSWER}\nAnswer: " in completion
        assert completion.endswith(END)
        ids = tok.encode(prompt + completion, add_special_tokens=False)
        assert tok.decode(ids) == prompt + completion
        assert tok.unk_token_id not in ids  # every character is in the vocabulary
        assert ids.count(im_start) == 4 and ids.count(im_end) == 2  # specials are single tokens
        answer_part = completion.split(ANSWER, 1)[1]
        assert parse_answer(answer_part) == r["answer"]
        d_prompt, d_completion = render_direct(r["question"], r["attempt"])
        assert d_prompt == prompt and d_completion == r["attempt"] + END
        w_prompt, w_completion = render_worked(r["question"], r["thinking"], r["attempt"])
        w_ids = tok.encode(w_prompt + w_completion, add_special_tokens=False)
        # a plain document: no chat turns, no think/answer delimiters, the same steps and answer
        assert im_start not in w_ids and w_ids.count(im_end) == 1
        assert w_prompt == r["question"] + WORKED_OPEN and r["thinking"] in w_completion
        # the worked example puts as many tokens between the question and the first line, and between
        # the last line and the answer, as the s1 chat format does (finding 10)
        q_end = len(tok.encode(f"<|im_start|>user\n{r['question']}", add_special_tokens=False))
        first = len(tok.encode(prompt + THINK + "\n", add_special_tokens=False))
        assert first - q_end == len(tok.encode(WORKED_OPEN, add_special_tokens=False)) == 20
        assert len(tok.encode("\n" + ANSWER + "\n", add_special_tokens=False)) == len(tok.encode(WORKED_CLOSE, add_special_tokens=False))
        assert parse_answer(w_completion) == r["answer"]


def test_parse_answer_handles_forced_prefixes():
    assert parse_answer("\nAnswer: 1 2  3<|im_end|>") == "1 2 3"
    assert parse_answer("\nFinal Answer: 7") == "7"
    assert parse_answer(" 12") == "12"


@pytest.mark.parametrize("family", sorted(f for f in FAMILIES if "grid" in LAYOUTS[f]))
def test_grid_layouts_keep_every_line_one_width(family):
    """The property grids exist for: a value that moves down a line stays at a fixed distance."""
    widths = set()
    for p in generate(family, 80, seed=4):
        lines = solve(p, layout="grid", correction_rate=0.0, check_rate=0.0).thinking.splitlines()
        widths |= {len(line) for line in lines}
    assert len(widths) == 1, (family, sorted(widths))


def test_layout_default_is_the_first_and_the_traces_differ_by_layout():
    p = generate("add_chain", 4, seed=0, levels=(3,))[0]
    assert solve(p, check_rate=0.0).layout == LAYOUTS["add_chain"][0] == "rgrid"
    texts = {solve(p, layout=lay, check_rate=0.0).thinking for lay in LAYOUTS["add_chain"]}
    assert len(texts) == len(LAYOUTS["add_chain"])


def test_base_corpus_mixes_worked_examples_and_direct_answers():
    rows = teacher_rows([p for f in ("add_chain", "count_letter") for p in generate(f, 100, seed=0)])
    corpus = base_corpus(rows, worked_share=0.8, seed=3)
    assert len(corpus) == 200 and sum(kind == "worked" for _, _, kind in corpus) == 160
    assert corpus == base_corpus(rows, worked_share=0.8, seed=3)  # deterministic in the seed
    worked = {}  # a question can repeat at level 1, each time with its own checks
    for r in rows:
        worked.setdefault(r["question"], set()).add(render_worked(r["question"], r["thinking"], r["attempt"]))
    for prompt, completion, kind in corpus:
        if kind == "worked":
            assert (prompt, completion) in worked[prompt.removesuffix(WORKED_OPEN)]
        else:  # a chat prompt answered at once: no thinking in the direct part of the base corpus
            assert prompt.startswith("<|im_start|>user\n") and completion.startswith("Answer: ")
            assert THINK not in completion
    assert {k for _, _, k in base_corpus(rows, 0.0)} == {"direct"}
    with pytest.raises(ValueError, match="worked_share=1.5"):
        base_corpus(rows, 1.5)
