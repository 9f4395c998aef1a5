"""Features: batched trace lengths, solver difficulty joined by id and graded, domain labelers."""

from __future__ import annotations

import json

import pytest

from s1kit.data.features import (CharTokenizer, LLMLabeler, add_teacher_correct, add_trace_tokens,
                                 difficulty_filter, field_labeler, keyword_labeler, label_domains, msc_codes,
                                 parse_code, read_solver_outputs, run_solver, token_lengths)


def row(i, question="What is 2+3?", answer="5", **kw):
    return {"id": f"r{i}", "question": question, "solution": "", "answer": answer, "source": "s",
            "cot_type": "math", "metadata": {}, **kw}


def test_token_lengths_are_batched_and_equal_one_by_one(qwen_tokenizer):
    texts = ["Let me think.", "", "Wait, 12*12 = 144. " * 30, "ünïcödé ∑ x_i"] * 5
    got = token_lengths(texts, qwen_tokenizer, batch_size=3)
    assert got == [len(qwen_tokenizer.encode(t, add_special_tokens=False)) for t in texts]
    assert token_lengths(["abc", ""], CharTokenizer()) == [3, 0]
    rows = add_trace_tokens([row(0, thinking="abcd"), row(1)], CharTokenizer())
    assert [r["trace_tokens"] for r in rows] == [4, 0]


def test_difficulty_drops_rows_a_solver_answers_and_keeps_the_rest():
    rows = [row(0), row(1, answer="7"), row(2, answer=None), row(3), row(4, question="Year?", answer="33",
                                                                        source="qq8933/AIME_1983_2024")]
    outputs = {"small": {"r0": "<|im_start|>answer\nThe answer is 5", "r1": "Answer: 8", "r2": "Answer: 1",
                         "r4": "Answer: 033"},
               "big": {"r0": "Answer: 4", "r1": "Answer: 9", "r2": "x", "r3": "Answer: 6", "r4": "Answer: 32"}}
    kept, log = difficulty_filter(rows, outputs)
    assert dict(log.counts()) == {"solved_by:small": 2}
    assert sorted(log.ids()) == ["r0", "r4"]
    by_id = {r["id"]: r for r in kept}
    assert by_id["r1"]["solver_correct"] is False
    assert by_id["r2"]["solver_correct"] is None  # no gold answer: cannot be graded, kept and counted
    assert by_id["r3"]["solver_missing"] == ["small"]
    kept, log = difficulty_filter(rows, outputs, missing="drop")
    assert log.counts()["no_solver_output"] == 1


def test_teacher_correct_is_graded_from_the_attempt():
    rows = [row(0, attempt="Answer: 5"), row(1, attempt="Answer: 6"), row(2, answer=None, attempt="x"),
            row(3, attempt="Answer: 1", teacher_correct=True)]
    counts = add_teacher_correct(rows)
    assert [r["teacher_correct"] for r in rows] == [True, False, None, True]
    assert counts == {"True": 2, "False": 1, "None": 1}


def test_solver_outputs_are_joined_back_by_id(tmp_path):
    path = tmp_path / "solver.jsonl"
    lines = [{"id": "r0", "sample": 0, "text": "A"}, {"id": "r1", "sample": 0, "skipped": "empty prompt"},
             {"id": "r0", "sample": 1, "text": "B"}, {"id": 7, "sample": 0, "answer_text": "C"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert read_solver_outputs(path) == {"r0": "A", "7": "C"}


def test_run_solver_through_s1kit_generate(tmp_path):
    from s1kit.demo import build_demo_model

    model = build_demo_model(tmp_path / "model")
    rows = [row(0), row(1, question="What is 9-4?")]
    out = run_solver(str(model), rows, tmp_path / "solvers", max_thinking_tokens=6, max_answer_tokens=4,
                     progress=False)
    outputs = read_solver_outputs(out)
    assert set(outputs) == {"r0", "r1"}
    kept, log = difficulty_filter(rows, {"demo": outputs})  # gibberish from a random model: nothing solved
    assert len(kept) + len(log) == 2


def test_msc_codes_are_the_61_s1_used():
    codes = msc_codes()
    assert len(codes) == 61 and "00" not in codes and "01" not in codes
    assert codes["11"] == "Number theory" and codes["60"].startswith("Probability")
    assert parse_code("Code: 05") == "05" and parse_code("99 or 60") == "60" and parse_code("none") is None


@pytest.mark.parametrize("question, code", [
    ("How many ways can 5 people be arranged so that no two choose the same seat?", "05"),
    ("Find the remainder when 2^100 is divided by 7; is it prime?", "11"),
    ("In triangle ABC the angle at A is 60 degrees and the circle ...", "51"),
    ("A fair coin is tossed; what is the probability of 3 heads?", "60"),
    ("What is the expectation value of the spin of an electron in this quantum state?", "81"),
    ("Which enzyme unwinds DNA in the cell?", "92"),
    ("Given an array of n integers, write a program (input format: ...)", "68"),
])
def test_keyword_labeler_places_typical_questions(question, code):
    assert keyword_labeler({"question": question}) == code


def test_label_domains_drops_unlabelled_rows_and_prefers_the_rows_own_domain():
    rows = [row(0, domain="arithmetic"), row(1, question="zzz qqq"), row(2, question="A prime p ...")]
    kept, log = label_domains(rows, lambda r: field_labeler(r) or keyword_labeler(r))
    assert [(r["id"], r["domain"]) for r in kept] == [("r0", "arithmetic"), ("r2", "11")]
    assert log.ids("no_domain") == ["r1"]
    kept, _ = label_domains(rows[1:2], lambda r: keyword_labeler(r, default="97"))
    assert kept[0]["domain"] == "97"


def test_llm_labeler_against_a_real_server():
    pytest.importorskip("fastapi")
    from tests.data.teacher_server import TeacherServer

    with TeacherServer() as server:
        labels = LLMLabeler(server.url, "labeler", api_key_env=None).label_all(
            [row(0, question="What is the probability of rain?"), row(1, question="Is 91 prime?")])
    assert labels == {"r0": "60", "r1": "11"}
