"""2 CPU processes (torchrun, gloo, DDP) follow the same loss curve as 1 process with the same global batch.

accelerate (1.15) never enables FSDP for CPU processes (with a FSDP config on CPU it runs DDP), so
the default suite checks data parallelism; the FSDP path itself runs on CPU in the slow
test_fsdp_trainer_cpu.py through a test-only shim.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.train.conftest import max_weight_diff, run_checked, tiny_args, train_cmd

pytest.importorskip("trl", reason="training needs the 'train' extra (TRL)")

from s1kit.train import TrainConfig, run_train  # noqa: E402


def test_two_processes_match_one(tmp_path, one_thread):
    common = {"max_steps": 6, "per_device_train_batch_size": 1}
    two = tiny_args(tmp_path / "two", gradient_accumulation_steps=2, **common)  # global batch 4 = 2 x 1 x 2
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run_checked(train_cmd(two, launcher), tmp_path / "two.log")
    one = run_train(TrainConfig(**tiny_args(tmp_path / "one", gradient_accumulation_steps=4, **common)))

    multi = json.loads((tmp_path / "two" / "train_manifest.json").read_text())
    assert multi["world_size"] == 2 and multi["grad_accum"] == 2 and "MULTI_CPU" in multi["distributed_type"]
    assert one["world_size"] == 1 and one["grad_accum"] == 4
    curve_one = [p["loss"] for p in one["loss_curve"]]
    curve_two = [p["loss"] for p in multi["loss_curve"]]
    assert len(curve_one) == len(curve_two) == 6
    assert max(abs(a - b) for a, b in zip(curve_one, curve_two)) < 1e-5, (curve_one, curve_two)
    assert max_weight_diff(tmp_path / "one", tmp_path / "two") < 1e-5
