"""kill -9 mid-run, resume from the newest complete checkpoint: the final weights equal an uninterrupted run's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.train.conftest import REPO, max_weight_diff, subprocess_env, tiny_args, train_cmd

pytest.importorskip("trl", reason="training needs the 'train' extra (TRL)")

from s1kit.train import TrainConfig, run_train  # noqa: E402

STEPS, EVERY, KILL_AFTER = 16, 4, 8


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, one_thread):
    # 24 samples, 12 steps an epoch: the kill lands in epoch 1, the resumed run crosses into epoch 2
    args = tiny_args(tmp_path / "killed", max_steps=STEPS, save_steps=EVERY, save_total_limit=3, resume="auto",
                     dataset="synth:arith,n=24,seed=0,digits=3")
    killed = tmp_path / "killed"
    marker = killed / f"checkpoint-{KILL_AFTER}" / "trainer_state.json"  # written last in a checkpoint
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(train_cmd(args), cwd=REPO, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 240
        while not marker.exists():
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.time() < deadline, "no checkpoint in time"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists(), "the run finished before the kill"

    # A kill during a later save leaves a checkpoint without trainer_state.json: resume must skip it.
    for ckpt in killed.glob("checkpoint-*"):
        if int(ckpt.name.split("-")[1]) > KILL_AFTER:
            shutil.rmtree(ckpt)
    torn = killed / f"checkpoint-{KILL_AFTER + EVERY}"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"torn")

    manifest = run_train(TrainConfig(**args))  # resume="auto": the newest *complete* checkpoint
    assert manifest["resumed_from"].endswith(f"checkpoint-{KILL_AFTER}") and manifest["global_step"] == STEPS

    run_train(TrainConfig(**{**args, "output_dir": str(tmp_path / "straight"), "resume": None}))
    assert max_weight_diff(killed, tmp_path / "straight") <= 1e-6
