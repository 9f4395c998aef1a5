"""A short CPU run lowers the loss, changes the weights and leaves a model folder `s1kit generate` loads."""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import tiny_args, weights

pytest.importorskip("trl", reason="training needs the 'train' extra (TRL)")

from s1kit.config import ConfigError  # noqa: E402
from s1kit.train import TrainConfig, run_train  # noqa: E402


def test_short_run_learns_and_saves_a_generate_ready_folder(tmp_path, one_thread):
    import torch

    from s1kit.train.sft import load_model, load_tokenizer

    cfg = TrainConfig(**tiny_args(tmp_path / "run", max_steps=12, learning_rate=3e-3))
    tok = load_tokenizer(cfg)
    before = load_model(cfg, tok, "<|im_end|>").state_dict()  # the same seeded init run_train builds
    manifest = run_train(cfg)

    curve = [p["loss"] for p in manifest["loss_curve"]]
    assert len(curve) == 12 and sum(curve[-3:]) / 3 < curve[0] - 0.3, curve
    after = weights(tmp_path / "run")
    assert all(k in after for k in ("model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight"))
    assert all(not torch.equal(before[k], after[k]) for k in after if k.endswith("proj.weight"))

    gen = json.loads((tmp_path / "run" / "generation_config.json").read_text())
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end in gen["eos_token_id"] and json.loads((tmp_path / "run" / "config.json").read_text())["use_cache"]
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["kept"] == 64 and report["dropped_total"] == 0

    from s1kit.backends.base import Request
    from s1kit.backends.hf import HFBackend
    from s1kit.forcing import BudgetPolicy
    from s1kit.formats import render_prompt_ids

    backend = HFBackend.from_pretrained(str(tmp_path / "run"), batch_size=1, device="cpu")
    assert backend.tokenizer.decode(backend.tokenizer.encode("a b\nc")) == "a b\nc"  # tokenizer round-trips
    assert im_end in backend.codec.eos_ids()
    ids = render_prompt_ids(backend.tokenizer, "What is 123 + 456?")
    assert backend.tokenizer.decode(ids).endswith("<|im_start|>assistant\n")
    [result] = backend.generate([Request(ids, BudgetPolicy(max_thinking_tokens=16, max_answer_tokens=8), key="q")])
    assert result.thinking_tokens <= 16 and result.answer_tokens <= 8


def test_real_qwen_tokenizer_trains(tmp_path, qwen_tokenizer, one_thread):
    """The 151k-token Qwen tokenizer on a 2-layer model: the chat template path end to end (1 step)."""
    folder = tmp_path / "qwen-tok"
    qwen_tokenizer.save_pretrained(folder)
    cfg = TrainConfig(**tiny_args(tmp_path / "run", model="tiny:hidden=32,layers=1,heads=2,kv_heads=1",
                                  tokenizer=str(folder), max_steps=1, dataset="synth:arith,n=4,digits=2"))
    manifest = run_train(cfg)
    assert manifest["data"]["end_of_turn"] == "<|im_end|>" and manifest["global_step"] == 1
    gen = json.loads((tmp_path / "run" / "generation_config.json").read_text())
    assert gen["eos_token_id"][0] == qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_inspect_stops_before_training(tmp_path):
    out = run_train(TrainConfig(**tiny_args(tmp_path / "run", inspect=True)))
    assert out["summary"]["first_loss_token"]["text"] == "<|im_start|>" and "⟦<|im_start|>think" in out["inspect"]
    assert out["report"]["kept"] == 64 and not (tmp_path / "run").exists()


def test_refuses_to_start_fresh_over_checkpoints(tmp_path):
    (tmp_path / "run" / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(ConfigError) as err:
        run_train(TrainConfig(**tiny_args(tmp_path / "run")))
    assert err.value.field == "resume"


def test_tiny_spec_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="keys among"):
        run_train(TrainConfig(**tiny_args(tmp_path / "run", model="tiny:width=3")))


def test_a_collator_that_drops_the_mask_is_refused():
    import torch

    from s1kit.train.data import Example
    from s1kit.train.sft import _check_collator

    class FullSequenceCollator:  # what an older TRL does with a pre-tokenized dataset: loss everywhere
        def __call__(self, rows):
            return {"labels": torch.tensor([r["input_ids"] for r in rows])}

    trainer = type("T", (), {"data_collator": FullSequenceCollator()})()
    with pytest.raises(RuntimeError, match="assistant turn"):
        _check_collator(trainer, [Example("a", [1, 2, 3], [-100, 2, 3], 1)])
