"""The FSDP path of the trainer on CPU/gloo, 2 processes, with the env of recipes/accelerate/fsdp-qwen2.yaml
(FSDP2 full shard, Qwen2DecoderLayer wrapping, sharded checkpoints, rank-0 weight loading), through a
test-only shim (fsdp_cpu_shim.py) because accelerate has no FSDP for CPU processes. Slow.

Checks: the loss curve and final weights match one process with the same global batch; resuming from
a sharded FSDP checkpoint ends at the same weights; the final folder is a plain HF model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.train.conftest import REPO, cli_flags, subprocess_env, tiny_args
from tests.train.test_launch import launch_env

pytest.importorskip("trl", reason="training needs the 'train' extra (TRL)")

from s1kit.train import TrainConfig, run_train  # noqa: E402


def fsdp_run(args: dict, log, extra_env: dict) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "tests/train/fsdp_cpu_shim.py"), *cli_flags(args)]
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, env={**subprocess_env(), **extra_env}, stdout=fh,
                              stderr=subprocess.STDOUT, timeout=400)
    assert proc.returncode == 0, open(log).read()[-4000:]


@pytest.mark.slow
def test_fsdp_trainer_matches_one_process_and_resumes(tmp_path, one_thread):
    env = {k: v for k, v in launch_env("--mixed_precision", "no").items() if k.startswith(("FSDP_", "ACCELERATE_"))}
    assert env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"  # rank 0 reads the weights, rank 1 gets a broadcast

    from s1kit.train.sft import load_model, load_tokenizer  # a model *folder*, so from_pretrained runs
    base = TrainConfig(**tiny_args(tmp_path / "unused"))
    tok = load_tokenizer(base)
    load_model(base, tok, "<|im_end|>").save_pretrained(tmp_path / "init")
    tok.save_pretrained(tmp_path / "init")

    common = {"model": str(tmp_path / "init"), "max_steps": 6, "per_device_train_batch_size": 1}
    fsdp = tiny_args(tmp_path / "fsdp", save_steps=3, gradient_accumulation_steps=2, **common)
    fsdp_run(fsdp, tmp_path / "fsdp.log", env)
    one = run_train(TrainConfig(**tiny_args(tmp_path / "one", gradient_accumulation_steps=4, **common)))

    multi = json.loads((tmp_path / "fsdp" / "train_manifest.json").read_text())
    assert multi["fsdp"] and "FSDP" in multi["distributed_type"] and multi["world_size"] == 2
    assert (tmp_path / "fsdp" / "checkpoint-3" / "pytorch_model_fsdp_0").is_dir()  # sharded checkpoint
    curve_one = [p["loss"] for p in one["loss_curve"]]
    curve_fsdp = [p["loss"] for p in multi["loss_curve"]]
    assert max(abs(a - b) for a, b in zip(curve_one, curve_fsdp)) < 1e-5, (curve_one, curve_fsdp)
    assert loaded_weight_diff(tmp_path / "one", tmp_path / "fsdp") < 1e-5

    resumed = tmp_path / "resumed"  # as if killed right after checkpoint-3
    resumed.mkdir()
    shutil.copytree(tmp_path / "fsdp" / "checkpoint-3", resumed / "checkpoint-3")
    fsdp_run({**fsdp, "output_dir": str(resumed), "resume": "auto"}, tmp_path / "resumed.log", env)
    assert "resuming from" in (tmp_path / "resumed.log").read_text()
    assert loaded_weight_diff(tmp_path / "fsdp", resumed) <= 1e-6


def loaded_weight_diff(a, b) -> float:
    """Compare the folders as from_pretrained loads them: the FSDP full state dict stores a tied
    embedding under both names (lm_head.weight too), which loading ties back."""
    from transformers import AutoModelForCausalLM

    ma, mb = AutoModelForCausalLM.from_pretrained(a), AutoModelForCausalLM.from_pretrained(b)
    assert mb.lm_head.weight.data_ptr() == mb.model.embed_tokens.weight.data_ptr()
    sa, sb = ma.state_dict(), mb.state_dict()
    return max((sa[k] - sb[k]).abs().max().item() for k in sa)
