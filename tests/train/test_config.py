"""TrainConfig validation, the recipes (they reproduce s1's numbers), CLI flags over a recipe."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from s1kit.config import ConfigError, from_dict, load_yaml
from s1kit.train import TrainConfig
from s1kit.train.command import config_from_args, register

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TRAIN_RECIPES = ["s1-32b.yaml", "s1.1-32b.yaml", "tiny-train.yaml"]


def load_recipe(name: str) -> TrainConfig:
    return from_dict(TrainConfig, load_yaml(RECIPES / name)["train"], "train")


@pytest.mark.parametrize("name", TRAIN_RECIPES)
def test_recipe_loads_and_validates(name):
    text = (RECIPES / name).read_text()
    assert text.startswith("#") and "Launch:" in text.splitlines()[1]
    assert set(load_yaml(RECIPES / name)) == {"train"}
    cfg = load_recipe(name)
    assert cfg.completion_format.startswith("<|im_start|>think\n{thinking}")


@pytest.mark.parametrize("name,block,thinking,attempt", [
    ("s1-32b.yaml", 32768, "thinking_trajectories", "attempt"),
    ("s1.1-32b.yaml", 20000, "deepseek_thinking_trajectory", "deepseek_attempt")])
def test_32b_recipes_reproduce_s1(name, block, thinking, attempt):
    cfg = load_recipe(name)
    assert cfg.model == "Qwen/Qwen2.5-32B-Instruct" and cfg.block_size == block
    assert (cfg.thinking_field, cfg.attempt_field) == (thinking, attempt)
    assert (cfg.epochs, cfg.lr, cfg.schedule, cfg.warmup_ratio) == (5, 1e-5, "cosine", 0.05)
    assert (cfg.betas, cfg.weight_decay, cfg.bf16, cfg.micro_batch) == ((0.9, 0.95), 1e-4, True, 1)
    assert cfg.grad_accum_for(16) == 1 and cfg.grad_accum_for(8) == 2  # global batch 16 on any GPU count
    assert not cfg.push_to_hub and cfg.report_to == "none"


def test_recipes_hard_code_no_org_entity_or_port():
    texts = [(RECIPES / n).read_text() for n in TRAIN_RECIPES] + [p.read_text() for p in (RECIPES / "accelerate").glob("*.yaml")]
    for text in texts:
        assert "entity:" not in text and "hub_model_id:" not in text and "main_process_port" not in text


@pytest.mark.parametrize("field,value", [
    ("lr", 0.0), ("warmup_ratio", 1.0), ("betas", (0.9,)), ("betas", (0.9, 1.5)), ("micro_batch", 0),
    ("schedule", "cosine-ish"), ("report_to", "mlflow"), ("truncate_or_drop", "cut"), ("block_size", 0),
    ("completion_format", "{answer} {thinking}"), ("completion_format", "no placeholders"),
    ("duplicates", "merge"), ("save_steps", -1), ("model", ""), ("dataset", "")])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{"model": "m", "dataset": "d", field: value})
    assert err.value.field == field


def test_global_batch_must_split_over_the_world():
    cfg = TrainConfig(model="m", dataset="d", micro_batch=2, global_batch=8)
    assert cfg.grad_accum_for(2) == 2 and cfg.grad_accum_for(4) == 1
    with pytest.raises(ConfigError):
        cfg.grad_accum_for(3)
    with pytest.raises(ConfigError):
        TrainConfig(model="m", dataset="d", global_batch=8, grad_accum=2)


def test_push_to_hub_needs_a_repo():
    with pytest.raises(ConfigError) as err:
        TrainConfig(model="m", dataset="d", push_to_hub=True)
    assert err.value.field == "hub_model_id"


def test_flags_override_the_recipe():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["train", "--config", str(RECIPES / "s1.1-32b.yaml"), "--lr", "2e-5",
                              "--betas", "0.9,0.99", "--dataset", "x.parquet", "--inspect", "true"])
    cfg = config_from_args(args)
    assert (cfg.lr, cfg.betas, cfg.dataset, cfg.inspect, cfg.block_size) == (2e-5, (0.9, 0.99), "x.parquet", True, 20000)


def test_sft_config_carries_every_number():
    pytest.importorskip("trl")
    from s1kit.train.sft import sft_config

    cfg = dataclasses.replace(load_recipe("s1.1-32b.yaml"), use_cpu=True)  # bf16 args need a GPU or use_cpu
    args = sft_config(cfg, world=16)
    assert sft_config(cfg, world=8).gradient_accumulation_steps == 2
    assert (args.learning_rate, args.lr_scheduler_type.value, args.warmup_steps) == (1e-5, "cosine", 0.05)
    assert (args.adam_beta1, args.adam_beta2, args.weight_decay, args.num_train_epochs) == (0.9, 0.95, 1e-4, 5)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps, args.max_length) == (1, 1, 20000)
    assert args.bf16 and not args.activation_checkpointing and args.save_steps == 50 and not args.save_only_model
    assert args.report_to == [] or args.report_to == ["none"] or args.report_to == "none"
