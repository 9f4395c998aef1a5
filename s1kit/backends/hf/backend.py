"""transformers backend: batched budget forcing in one decoding pass that keeps the KV cache.

    from s1kit.backends import create
    backend = create("hf", model="simplescaling/s1.1-32B", revision="<commit>")

Every decoding step feeds exactly one token per live sequence (see :mod:`.engine`); finished rows
leave the batch and waiting prompts take their slots (continuous batching).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Sequence

import torch

from s1kit.backends.base import MachineFactory, Request, RequestFailed, ResultCallback, init_local
from s1kit.backends.hf.engine import DecodeLoop, default_device, default_dtype
from s1kit.forcing import SequenceResult


class HFBackend(MachineFactory):
    """Budget-forced generation on a transformers causal LM."""

    name = "hf"
    prefix_sweep = True  # s1kit.eval.sweep branches every budget point off one cached run
    exact_ids = True
    seeded_sampling = True  # per-sample generators: sampled tokens do not depend on the batch

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, context_window: int | None = None):
        init_local(self, model, tokenizer, batch_size, context_window)

    @property
    def max_num_seqs(self) -> int:
        return self.batch_size

    def stats(self) -> dict[str, Any]:
        return {}

    def sweep_chunk(self, *args: Any, **kwargs: Any):
        """One chunk of a shared-prefix sweep (see :mod:`s1kit.eval.sweep`)."""
        from s1kit.backends.hf.sweep import sweep_chunk

        return sweep_chunk(self, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, name_or_path: str, revision: str | None = None, batch_size: int = 8,
                        device: str | None = None, dtype: str | None = None,
                        trust_remote_code: bool = False) -> "HFBackend":
        """Load a model and tokenizer from a local folder, a ``.gguf`` file or a Hub id pinned to ``revision``."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from s1kit.gguf import resolve_model

        from s1kit.forcing.validation import ConfigError

        given = name_or_path
        dev = torch.device(device) if device else default_device()
        torch_dtype = getattr(torch, dtype) if dtype and dtype != "auto" else default_dtype(dev, dtype == "auto")
        try:
            name_or_path = resolve_model(name_or_path)
            tok = AutoTokenizer.from_pretrained(name_or_path, revision=revision, trust_remote_code=trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(name_or_path, revision=revision, dtype=torch_dtype,
                                                         trust_remote_code=trust_remote_code).to(dev)
        except (OSError, ValueError, KeyError) as err:  # a folder, file or Hub id that holds no usable model
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError("model", given, f"a loadable model folder, .gguf file or Hub id ({first})") from None
        return cls(model, tok, batch_size=batch_size)

    # ------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(self, requests: Sequence[Request], on_result: ResultCallback | None = None) -> list[SequenceResult]:
        """Generate every request with continuous batching; results come back in input order.

        Prompts are admitted shortest first (less padding); when sequences finish, waiting
        prompts take their slots, so the batch stays full until the queue runs dry.
        """
        results: list[SequenceResult | None] = [None] * len(requests)
        queue = deque(sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids)))

        def intake(n: int) -> list[tuple[int, Request]]:
            return [(i, requests[i]) for i in (queue.popleft() for _ in range(min(n, len(queue))))]

        failed: dict[int, BaseException] = {}

        def done(i: int, res: SequenceResult | BaseException) -> None:
            if isinstance(res, BaseException):
                failed[i] = res  # this request alone: the others go on
                return
            results[i] = res
            if on_result is not None:
                on_result(i, res)

        DecodeLoop(self).run(intake, done, more=lambda: bool(queue))
        RequestFailed.raise_for(failed)
        return results  # type: ignore[return-value]


def create(model: str, revision: str | None = None, batch_size: int = 8, device: str | None = None,
           dtype: str | None = None) -> HFBackend:
    """The registry's factory for 'hf'."""
    return HFBackend.from_pretrained(model, revision=revision, batch_size=batch_size, device=device, dtype=dtype)
