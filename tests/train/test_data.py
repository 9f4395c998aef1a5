"""Loss mask exactness (real Qwen tokenizer) and the data checks: every dropped row is counted."""

from __future__ import annotations

import json

import pytest

from s1kit.formats import render_prompt
from s1kit.train import TrainConfig
from s1kit.train.data import IGNORE, DataError, build_examples, load_rows
from s1kit.train.inspect import render_inspection, summarize

ROW = {"id": "r0", "question": "How many r in raspberry?",
       "deepseek_thinking_trajectory": "Let me spell it: r-a-s-p-b-e-r-r-y.\nWait, that is three r's.",
       "deepseek_attempt": "There are $\\boxed{3}$ r's."}


def s11_cfg(**over) -> TrainConfig:
    return TrainConfig(**{"model": "m", "dataset": "d", "thinking_field": "deepseek_thinking_trajectory",
                          "attempt_field": "deepseek_attempt", "max_length": 4096, **over})


@pytest.mark.parametrize("system", [None, "You are a careful solver."])
def test_loss_mask_is_exactly_the_assistant_turn(qwen_tokenizer, system):
    tok = qwen_tokenizer
    [ex], report = build_examples([ROW], tok, s11_cfg(system_prompt=system))
    prompt = render_prompt(tok, ROW["question"], "auto", system)  # what `s1kit generate` feeds the model
    prompt_ids = tok.encode(prompt, add_special_tokens=False)
    assert ex.input_ids[: len(prompt_ids)] == prompt_ids and ex.prompt_len == len(prompt_ids)
    assert all(label == IGNORE for label in ex.labels[: ex.prompt_len])          # system + user turns
    assert ex.labels[ex.prompt_len:] == ex.input_ids[ex.prompt_len:]            # the whole assistant turn
    loss_ids = [i for i, label in zip(ex.input_ids, ex.labels) if label != IGNORE]
    im_start, im_end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")
    assert loss_ids[0] == im_start and tok.decode(loss_ids[:2]) == "<|im_start|>think"  # opens the thinking
    assert loss_ids[-1] == im_end and report["end_of_turn"] == "<|im_end|>"
    expected = ("<|im_start|>think\n" + ROW["deepseek_thinking_trajectory"] + "\n<|im_start|>answer\n"
                "Answer: " + ROW["deepseek_attempt"] + "<|im_end|>")
    assert tok.decode(loss_ids) == expected
    prompt_text = tok.decode(ex.input_ids[: ex.prompt_len])
    assert "raspberry" in prompt_text and (system is None or system in prompt_text)
    assert prompt_text.endswith("<|im_start|>assistant\n")


def test_inspect_marks_the_loss_span(qwen_tokenizer):
    [ex], _ = build_examples([ROW], qwen_tokenizer, s11_cfg())
    s = summarize(qwen_tokenizer, ex)
    assert s["first_loss_token"]["text"] == "<|im_start|>" and s["last_loss_token"]["text"] == "<|im_end|>"
    assert s["loss_span_contiguous"] and s["loss_tokens"] == len(ex.input_ids) - ex.prompt_len
    text = render_inspection(qwen_tokenizer, ex)
    assert text.count("⟦") == 1 and "⟦<|im_start|>think\nLet me spell" in text and text.endswith("<|im_end|>⟧")
    assert "How many r in raspberry?<|im_end|>" in text.split("⟦")[0]


def test_r1_format_and_answer_prefix(qwen_tokenizer):
    cfg = s11_cfg(completion_format="<think>\n{thinking}\n</think>\n\n{answer}", answer_prefix="")
    [ex], _ = build_examples([ROW], qwen_tokenizer, cfg)
    loss_text = qwen_tokenizer.decode(ex.input_ids[ex.prompt_len:])
    assert loss_text.startswith("<think>\nLet me") and loss_text.endswith("</think>\n\nThere are $\\boxed{3}$ r's.<|im_end|>")
    has_prefix = dict(ROW, deepseek_attempt="Answer: 3")  # s1 adds the prefix only when it is absent
    [ex], _ = build_examples([has_prefix], qwen_tokenizer, s11_cfg())
    assert qwen_tokenizer.decode(ex.input_ids).count("Answer:") == 1


def test_data_checks_count_every_drop(qwen_tokenizer):
    rows = [ROW,
            dict(ROW),                                                    # duplicate id
            {k: v for k, v in ROW.items() if k != "deepseek_attempt"} | {"id": "r2"},   # missing attempt
            dict(ROW, id="r3", deepseek_thinking_trajectory="  \n "),    # empty trace
            dict(ROW, id="r4", question=None),                            # missing question
            dict(ROW, id="r5", deepseek_thinking_trajectory="word " * 3000),  # longer than the block
            dict(ROW, id="r6")]
    examples, report = build_examples(rows, qwen_tokenizer, s11_cfg(max_length=512))
    assert [e.id for e in examples] == ["r0", "r6"]
    assert report["dropped"] == {"duplicate_id": 1, "missing_attempt": 1, "empty_thinking": 1,
                                 "missing_question": 1, "longer_than_max_length": 1}
    assert report["rows_read"] == 7 and report["kept"] == 2 and report["dropped_total"] == 5
    assert report["duplicate_ids"] == 1 and report["dropped_ids"]["longer_than_max_length"] == ["r5"]
    assert report["tokens"]["loss"] == sum(len(e.input_ids) - e.prompt_len for e in examples)


def test_truncate_keeps_the_start_and_counts(qwen_tokenizer):
    long = dict(ROW, id="long", deepseek_thinking_trajectory="word " * 3000)
    [ex], report = build_examples([long], qwen_tokenizer, s11_cfg(max_length=256, truncate_or_drop="truncate"))
    assert len(ex.input_ids) == 256 and ex.truncated and report["truncated"] == 1
    assert ex.labels[-1] != IGNORE and ex.input_ids[-1] != qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_duplicates_keep_and_error(qwen_tokenizer):
    rows = [ROW, dict(ROW)]
    examples, report = build_examples(rows, qwen_tokenizer, s11_cfg(duplicates="keep"))
    assert len(examples) == 2 and report["duplicate_ids"] == 1 and not report["dropped"]
    with pytest.raises(DataError, match="duplicate id 'r0'"):
        build_examples(rows, qwen_tokenizer, s11_cfg(duplicates="error"))


def test_no_usable_rows_is_an_error(qwen_tokenizer):
    with pytest.raises(DataError, match="no trainable rows"):
        build_examples([{"question": "q"}], qwen_tokenizer, s11_cfg())


def test_jsonl_and_parquet_with_s1k_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    s1k = {"question": "q1", "thinking_trajectories": ["step one", "step two"], "attempt": "42"}
    pq.write_table(pa.Table.from_pylist([s1k, dict(s1k, question="q2")]), tmp_path / "train.parquet")
    cfg = TrainConfig(model="m", dataset=str(tmp_path), thinking_field="thinking_trajectories")
    rows, bad = load_rows(cfg)
    assert [r["question"] for r in rows] == ["q1", "q2"] and not bad
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(json.dumps(s1k) + "\n{not json\n[1, 2]\n\n" + json.dumps(dict(s1k, question="q3")) + "\n")
    rows, bad = load_rows(TrainConfig(model="m", dataset=str(jsonl), limit=5))
    assert len(rows) == 2 and bad == {"malformed_json": 1, "not_an_object": 1}


def test_list_traces_are_joined_and_read_errors_reported(tmp_path):
    from s1kit.train.tiny import bytes_chat_tokenizer

    tok = bytes_chat_tokenizer()
    jsonl = tmp_path / "rows.jsonl"
    row = {"question": "q1", "thinking_trajectories": [" step one", "step two "], "attempt": "42"}
    jsonl.write_text(json.dumps(row) + "\n{broken\n")
    cfg = TrainConfig(model="tiny:", dataset=str(jsonl), thinking_field="thinking_trajectories", max_length=512)
    rows, bad = load_rows(cfg)
    [ex], report = build_examples(rows, tok, cfg, bad)
    assert "<|im_start|>think\nstep one\nstep two\n<|im_start|>answer\nAnswer: 42<|im_end|>" == tok.decode(ex.input_ids[ex.prompt_len:])
    assert report["dropped"] == {"malformed_json": 1} and report["rows_read"] == 2


def test_end_of_turn_from_config_must_be_one_token(qwen_tokenizer):
    from s1kit.config import ConfigError

    with pytest.raises(ConfigError) as err:
        build_examples([ROW], qwen_tokenizer, s11_cfg(end_of_turn="END OF TURN"))
    assert err.value.field == "end_of_turn"


def test_prompt_completion_rows_are_used_verbatim(qwen_tokenizer):
    """A base model's pre-training mix: a chat answer and a plain document, loss on completions only."""
    tok = qwen_tokenizer
    rows = [{"id": "chat", "prompt": "<|im_start|>user\n2+3?<|im_end|>\n<|im_start|>assistant\n",
             "completion": "Answer: 5<|im_end|>"},
            {"id": "doc", "prompt": "2+3?\n", "completion": " 2\n+3\n 5\nAnswer: 5<|im_end|>"},
            {"id": "bad", "prompt": "x"}, {"id": "blank", "prompt": "y", "completion": "  "}]
    examples, report = build_examples(rows, tok, TrainConfig(model="m", dataset="d", data_format="prompt_completion"))
    assert [e.id for e in examples] == ["chat", "doc"]
    assert report["dropped"] == {"missing_completion": 1, "empty_completion": 1}
    for ex, row in zip(examples, rows):
        assert tok.decode(ex.input_ids) == row["prompt"] + row["completion"]
        loss_ids = [i for i, label in zip(ex.input_ids, ex.labels) if label != IGNORE]
        assert tok.decode(loss_ids) == row["completion"]


def test_data_format_is_validated():
    from s1kit.config import ConfigError

    with pytest.raises(ConfigError, match="data_format"):
        TrainConfig(model="m", dataset="d", data_format="text")


@pytest.mark.parametrize("mode", ["token", "step", "class"])
def test_conditional_sft_states_each_trace_length_as_eval_prompts_do(qwen_tokenizer, mode):
    from s1kit.eval.baselines import conditional_prompt

    tok = qwen_tokenizer
    rows = [{"id": f"r{i}", "question": f"What is {i}+{i}?", "thinking": "Let me add. " * (i + 1),
             "attempt": str(2 * i)} for i in range(4)]
    cfg = TrainConfig(model="m", dataset="d", condition=mode, condition_tokens_per_step=4)
    examples, _ = build_examples(rows, tok, cfg)
    lengths = [len(tok.encode(r["thinking"].strip(), add_special_tokens=False)) for r in rows]
    expected_values = {"token": lengths, "step": [-(-n // 4) for n in lengths],
                       "class": ["short", "short", "long", "long"]}[mode]
    for ex, row, value in zip(examples, rows, expected_values):
        prompt = render_prompt(tok, conditional_prompt(row["question"], mode, value), "auto", None)
        assert tok.decode(ex.input_ids[: ex.prompt_len]) == prompt  # what `s1kit eval --prompt-mode` feeds
    with pytest.raises(Exception, match="condition"):
        TrainConfig(model="m", dataset="d", condition="budget")
