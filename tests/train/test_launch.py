"""Launch configs: the FSDP config resolves (through accelerate's own launcher code) to FSDP2 full shard
wrapping Qwen2DecoderLayer; the SLURM script derives ranks, counts and rendezvous from SLURM's env."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from s1kit.config import ConfigError
from tests.train.conftest import REPO

FSDP = REPO / "recipes/accelerate/fsdp-qwen2.yaml"
SLURM = REPO / "scripts/slurm/train_2x8.sh"


def launch_env(*extra: str) -> dict:
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(
        ["--config_file", str(FSDP), "--num_machines", "2", "--num_processes", "16", "--machine_rank", "1",
         "--main_process_ip", "10.0.0.1", "--main_process_port", "29999", *extra, "-m", "s1kit.train"])
    args, _, _ = _validate_launch_command(args)
    return prepare_multi_gpu_env(args)


def test_fsdp_config_is_full_shard_with_qwen2_layer_wrapping():
    env = launch_env()
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    assert env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD" and env["FSDP_RESHARD_AFTER_FORWARD"] == "true"
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
    assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "Qwen2DecoderLayer"
    assert env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true" and env["FSDP_SYNC_MODULE_STATES"] == "true"
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16" and env["FSDP_ACTIVATION_CHECKPOINTING"] == "false"
    assert launch_env("--fsdp_activation_checkpointing", "true")["FSDP_ACTIVATION_CHECKPOINTING"] == "true"


def test_wrapped_class_exists_in_transformers():
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

    from s1kit.synth.models import tiny_qwen2

    model = tiny_qwen2(64, hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=1)
    assert sum(isinstance(m, Qwen2DecoderLayer) for m in model.modules()) == 2
    assert "Qwen2DecoderLayer" in model._no_split_modules


def test_gradient_checkpointing_conflicts_with_fsdp_activation_checkpointing(monkeypatch):
    from s1kit.train import TrainConfig
    from s1kit.train.sft import _check_launch

    monkeypatch.setenv("FSDP_ACTIVATION_CHECKPOINTING", "true")
    with pytest.raises(ConfigError) as err:
        _check_launch(TrainConfig(model="m", dataset="d", gradient_checkpointing=True))
    assert err.value.field == "gradient_checkpointing"


def _fake(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_script_takes_everything_from_the_environment(tmp_path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    _fake(bin_ / "scontrol", "printf 'gpu-node-7\\ngpu-node-9\\n'\n")
    # srun runs the step body once per node with its SLURM_NODEID; accelerate just prints its argv.
    _fake(bin_ / "srun", 'while [[ "$1" == --* ]]; do shift; done\n'
                         'for id in 0 1 2; do SLURM_NODEID=$id "$@"; done\n')
    _fake(bin_ / "accelerate", "printf '%s|' \"$@\"; echo\n")
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "SLURM_NNODES": "3", "SLURM_GPUS_ON_NODE": "4",
           "SLURM_JOB_NODELIST": "gpu-node-[7,9]", "SLURM_JOB_ID": "123456"}
    out = subprocess.run(["bash", str(SLURM), "recipes/s1.1-32b.yaml", "--dataset", "my data", "--learning-rate", "2e-5"],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    assert "3 nodes x 4 GPUs = 12 processes, rendezvous gpu-node-7:23456" in out[0]
    for rank, line in enumerate(out[1:]):
        argv = line.rstrip("|").split("|")
        opt = {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1) if argv[i].startswith("--")}
        assert argv[0] == "launch" and opt["--config_file"] == "recipes/accelerate/fsdp-qwen2.yaml"
        assert (opt["--num_machines"], opt["--num_processes"], opt["--machine_rank"]) == ("3", "12", str(rank))
        assert (opt["--main_process_ip"], opt["--main_process_port"]) == ("gpu-node-7", "23456")
        assert argv[argv.index("-m"):] == ["-m", "s1kit.train", "--config", "recipes/s1.1-32b.yaml",
                                           "--dataset", "my data", "--learning-rate", "2e-5"]
    assert len(out) == 4


def test_slurm_script_hard_codes_no_port_or_org():
    text = SLURM.read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert "29500" not in body and "wandb" not in body.lower() and "simplescaling" not in body
