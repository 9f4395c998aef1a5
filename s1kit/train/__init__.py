"""The training stage: SFT of a chat model on (question, thinking, attempt) rows, loss on the assistant turn.

    s1kit train --config recipes/tiny-train.yaml        # or: python -m s1kit.train --config ...
    from s1kit.train import TrainConfig, run_train
"""

from s1kit.train.config import TrainConfig

__all__ = ["TrainConfig", "run_train"]


def run_train(cfg: TrainConfig):
    """Check the data, train with TRL, save a HF model folder (see :mod:`s1kit.train.sft`)."""
    from s1kit.train.sft import run_train as _run

    return _run(cfg)
