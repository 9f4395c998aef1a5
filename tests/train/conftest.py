"""Fixtures for the training tests: tiny configs, one-thread torch, a subprocess runner, weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = "tiny:hidden=64,layers=2,heads=4,kv_heads=2,max_positions=1024,seed=0"


def tiny_args(output_dir: Path, **over) -> dict:
    """A tiny CPU run on the synthetic arithmetic set (byte-level tokenizer, ~440 tokens a sample)."""
    args = {"model": TINY, "dataset": "synth:arith,n=64,seed=0,digits=3", "output_dir": str(output_dir),
            "max_length": 512, "per_device_train_batch_size": 2, "learning_rate": 1e-3, "warmup_ratio": 0.1, "max_steps": 8,
            "use_cpu": True, "seed": 0, "logging_steps": 1}
    args.update(over)
    return args


def cli_flags(args: dict) -> list[str]:
    flags = []
    for key, value in args.items():
        flags += ["--" + key.replace("_", "-"), ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return flags


def subprocess_env() -> dict:
    # One thread per process: the machine is shared, and OpenMP spin-waits collapse under oversubscription.
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}


def train_cmd(args: dict, launcher: list[str] | None = None) -> list[str]:
    return [*(launcher or [sys.executable]), "-m", "s1kit.train", *cli_flags(args)]


def run_checked(cmd: list[str], log: Path, timeout: int = 300) -> None:
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
    assert proc.returncode == 0, log.read_text()[-4000:]


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb)
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


@pytest.fixture
def one_thread():
    """Run torch on one thread in this process (same arithmetic as the one-thread subprocesses)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
