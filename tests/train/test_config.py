"""TrainConfig validation in TRL's names, the recipes (they reproduce s1's numbers), an open-r1 recipe, CLI flags."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s1kit.config import ConfigError, from_dict, load_yaml
from s1kit.train import TrainConfig
from s1kit.train.command import config_from_args, register
from s1kit.train.trl_args import RENAMED, sft_config, train_config

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
TRAIN_RECIPES = ["s1-32b.yaml", "s1.1-32b.yaml", "tiny-train.yaml"]


def load_recipe(name: str) -> TrainConfig:
    return train_config(load_yaml(RECIPES / name)["train"], "train")


@pytest.mark.parametrize("name", TRAIN_RECIPES)
def test_recipe_loads_and_validates(name):
    text = (RECIPES / name).read_text()
    assert text.startswith("#") and "Launch:" in text.splitlines()[1]
    assert set(load_yaml(RECIPES / name)) == {"train"}
    assert not set(load_yaml(RECIPES / name)["train"]) & set(RENAMED)  # TRL's names only
    cfg = from_dict(TrainConfig, load_yaml(RECIPES / name)["train"], "train")  # every key a TrainConfig field
    assert cfg.completion_format.startswith("<|im_start|>think\n{thinking}")


@pytest.mark.parametrize("name,block,thinking,attempt", [
    ("s1-32b.yaml", 32768, "thinking_trajectories", "attempt"),
    ("s1.1-32b.yaml", 20000, "deepseek_thinking_trajectory", "deepseek_attempt")])
def test_32b_recipes_reproduce_s1(name, block, thinking, attempt):
    cfg = load_recipe(name)
    assert cfg.model == "Qwen/Qwen2.5-32B-Instruct" and cfg.max_length == block
    assert (cfg.thinking_field, cfg.attempt_field) == (thinking, attempt)
    assert (cfg.num_train_epochs, cfg.learning_rate, cfg.lr_scheduler_type, cfg.warmup_ratio) == (5, 1e-5, "cosine", 0.05)
    assert (cfg.adam_beta1, cfg.adam_beta2, cfg.weight_decay, cfg.bf16) == (0.9, 0.95, 1e-4, True)
    # s1's global batch 16 on its 16 GPUs
    assert 16 * cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps == 16
    assert not cfg.push_to_hub and cfg.report_to == "none"


def test_recipes_hard_code_no_org_entity_or_port():
    texts = [(RECIPES / n).read_text() for n in TRAIN_RECIPES] + [p.read_text() for p in (RECIPES / "accelerate").glob("*.yaml")]
    for text in texts:
        assert "entity:" not in text and "hub_model_id:" not in text and "main_process_port" not in text


@pytest.mark.parametrize("field,value", [
    ("learning_rate", 0.0), ("warmup_ratio", 1.0), ("adam_beta1", 1.0), ("adam_beta2", -0.1),
    ("per_device_train_batch_size", 0), ("gradient_accumulation_steps", 0), ("max_steps", 0),
    ("lr_scheduler_type", "cosine-ish"), ("report_to", "mlflow"), ("truncate_or_drop", "cut"), ("max_length", 0),
    ("completion_format", "{answer} {thinking}"), ("completion_format", "no placeholders"), ("dtype", "fp8"),
    ("duplicates", "merge"), ("save_steps", -1), ("model", ""), ("dataset", "")])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{"model": "m", "dataset": "d", field: value})
    assert err.value.field == field


@pytest.mark.parametrize("old,new", [("lr", "learning_rate"), ("epochs", "num_train_epochs"),
                                     ("betas", "adam_beta1 and adam_beta2"), ("block_size", "max_length"),
                                     ("micro_batch", "per_device_train_batch_size"), ("schedule", "lr_scheduler_type"),
                                     ("global_batch", "gradient_accumulation_steps")])
def test_old_names_say_the_new_one(old, new):
    with pytest.raises(ConfigError) as err:
        train_config({"model": "m", "dataset": "d", old: 1}, "train")
    assert err.value.field == "train." + old and new in str(err.value)


def test_push_to_hub_needs_a_repo():
    with pytest.raises(ConfigError) as err:
        TrainConfig(model="m", dataset="d", push_to_hub=True)
    assert err.value.field == "hub_model_id"


def parse(*argv: str):
    parser = argparse.ArgumentParser(prog="s1kit")
    register(parser.add_subparsers(dest="verb"))
    return config_from_args(parser.parse_args(["train", *argv]))


def test_flags_override_the_recipe():
    cfg = parse("--config", str(RECIPES / "s1.1-32b.yaml"), "--learning-rate", "2e-5", "--adam-beta2", "0.99",
                "--dataset", "x.parquet", "--inspect", "true", "--sft-arg", "lr_scheduler_kwargs={min_lr_rate: 0.1}")
    assert (cfg.learning_rate, cfg.adam_beta2, cfg.dataset, cfg.inspect, cfg.max_length) == (2e-5, 0.99, "x.parquet", True, 20000)
    assert cfg.sft_args == {"lr_scheduler_kwargs": {"min_lr_rate": 0.1}}


@pytest.mark.parametrize("flag,says", [("--lr", "--learning-rate"), ("--epochs", "--num-train-epochs"),
                                       ("--micro-batch", "--per-device-train-batch-size")])
def test_old_flags_say_the_new_one(flag, says, capsys):
    with pytest.raises(SystemExit) as stop:
        parse("--model", "m", "--dataset", "d", flag, "1")
    assert stop.value.code == 2 and says in capsys.readouterr().err


OPEN_R1 = """\
# Model arguments
model_name_or_path: {model}
model_revision: main
torch_dtype: float32
attn_implementation: sdpa
# Data training arguments
dataset_name: {dataset}
dataset_num_proc: 4
eos_token: <|im_end|>
# SFT trainer config
bf16: false
use_cpu: true
do_eval: false
eval_strategy: 'no'
gradient_accumulation_steps: 2
gradient_checkpointing: true
gradient_checkpointing_kwargs:
  use_reentrant: false
learning_rate: 4.0e-05
log_level: info
logging_steps: 1
logging_strategy: steps
lr_scheduler_type: cosine_with_min_lr
lr_scheduler_kwargs:
  min_lr_rate: 0.1
packing: false
max_grad_norm: 0.2
max_length: 4096
max_steps: -1
num_train_epochs: 3
output_dir: {out}
per_device_eval_batch_size: 1
per_device_train_batch_size: 2
push_to_hub: false
report_to: none
save_strategy: epoch
save_total_limit: 1
seed: 42
warmup_ratio: 0.03
"""


def test_an_open_r1_recipe_loads(tmp_path):
    pytest.importorskip("trl")
    recipe = tmp_path / "config_distill.yaml"
    recipe.write_text(OPEN_R1.format(model="some/model", dataset="data/mixture", out=tmp_path / "out"))
    cfg = parse("--config", str(recipe))
    assert (cfg.model, cfg.revision, cfg.dataset, cfg.end_of_turn) == ("some/model", "main", "data/mixture", "<|im_end|>")
    assert (cfg.learning_rate, cfg.max_length, cfg.gradient_accumulation_steps, cfg.warmup_ratio) == (4e-5, 4096, 2, 0.03)
    assert cfg.sft_args["lr_scheduler_kwargs"] == {"min_lr_rate": 0.1} and cfg.sft_args["save_strategy"] == "epoch"
    args = sft_config(cfg)  # TRL builds (and validates) the SFTConfig with every field
    assert (args.learning_rate, args.lr_scheduler_type.value, args.lr_scheduler_kwargs) == (4e-5, "cosine_with_min_lr",
                                                                                             {"min_lr_rate": 0.1})
    assert (args.save_strategy.value, args.max_grad_norm, args.max_length, args.log_level) == ("epoch", 0.2, 4096, "info")
    assert args.activation_checkpointing and args.warmup_steps == 0.03 and args.per_device_train_batch_size == 2


@pytest.mark.parametrize("key,value,says", [
    ("optimizer_kind", "adamw", "trl.SFTConfig field"),             # no such field anywhere
    ("packing", True, "no effect"),                                   # data options: s1kit tokenizes
    ("dataset_kwargs", {}, "s1kit sets it"),
    ("warmup_steps", 10, "s1kit sets it")])
def test_unknown_or_owned_sft_fields_fail_naming_them(key, value, says):
    pytest.importorskip("trl")
    with pytest.raises(ConfigError) as err:
        train_config({"model": "m", "dataset": "d", key: value}, "train")
    assert err.value.field == "train." + key and says in str(err.value)


def test_a_bad_pass_through_value_is_trls_error():
    pytest.importorskip("trl")
    cfg = train_config({"model": "m", "dataset": "d", "use_cpu": True, "optim": "no_such_optimizer"}, "train")
    with pytest.raises(ConfigError) as err:
        sft_config(cfg)
    assert err.value.field == "sft_args" and "no_such_optimizer" in str(err.value)


def test_cli_errors_are_one_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  model: m\n  dataset: d\n  lr: 1.0e-5\n")
    out = subprocess.run([sys.executable, "-m", "s1kit.cli", "train", "--config", str(recipe)], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "s1kit: error: train.lr=1e-05 is invalid: allowed TRL's name instead: learning_rate" in out.stderr


def test_sft_config_carries_every_number():
    pytest.importorskip("trl")

    cfg = dataclasses.replace(load_recipe("s1.1-32b.yaml"), use_cpu=True)  # bf16 args need a GPU or use_cpu
    args = sft_config(cfg)
    assert (args.learning_rate, args.lr_scheduler_type.value, args.warmup_steps) == (1e-5, "cosine", 0.05)
    assert (args.adam_beta1, args.adam_beta2, args.weight_decay, args.num_train_epochs) == (0.9, 0.95, 1e-4, 5)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps, args.max_length) == (1, 1, 20000)
    assert args.bf16 and not args.activation_checkpointing and args.save_steps == 50 and not args.save_only_model
    assert args.report_to == [] or args.report_to == ["none"] or args.report_to == "none"
