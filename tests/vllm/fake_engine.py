"""A small stand-in for vLLM V1's scheduling loop, to test the logits processor without vLLM.

It keeps a persistent batch the way vLLM's ``InputBatch`` does and reports its changes to logits
processors as ``BatchUpdate``s with vLLM's quirks: removed slots, new requests that reuse the
lowest removed slot (which then is no longer listed in ``removed``), condensing by moving the last
rows into holes (``UNIDIRECTIONAL`` moves, whose target slot is not listed either), swaps,
preemption (a request leaves the batch and comes back with the same params and output list),
and partial prefill steps whose sample is computed, passed through the processors and dropped.
Decoding is greedy on the processed logits, as vLLM's sampler is when every row is forced.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Sequence

import torch


class MoveDirectionality(enum.Enum):  # the same names as vLLM's
    UNIDIRECTIONAL = enum.auto()
    SWAP = enum.auto()


@dataclass(frozen=True)
class BatchUpdate:
    batch_size: int
    removed: Sequence[int]
    added: Sequence[tuple[int, Any, list[int] | None, list[int]]]
    moved: Sequence[tuple[int, int, MoveDirectionality]]


class FakeParams(SimpleNamespace):
    """The SamplingParams fields the processor and the engine read."""

    EOS: int | None = None

    def __init__(self, **kw: Any):
        defaults = dict(temperature=1.0, max_tokens=None, ignore_eos=False, stop_token_ids=[], min_tokens=0,
                        detokenize=True, extra_args=None, seed=None, top_p=1.0, top_k=0)
        super().__init__(**{**defaults, **kw})

    @property
    def eos_token_id(self) -> int | None:
        return None if self.ignore_eos else FakeParams.EOS


class ScriptedModel:
    """Deterministic logits from the ids so far: a few likely tokens, now and then a stop."""

    def __init__(self, vocab: int, stop_ids: Sequence[int], rate: float = 0.08, seed: int = 0):
        self.vocab, self.stop_ids, self.rate, self.seed = vocab, list(stop_ids), rate, seed
        self._row = torch.empty(vocab)

    def write(self, row: torch.Tensor, seq: Sequence[int]) -> torch.Tensor:
        """Fill ``row`` (a reused buffer: allocating 150k floats per call is slow) with the logits."""
        r = random.Random(hash((self.seed, len(seq), tuple(seq[-4:]))))
        row.fill_(-4.0)
        for score in (9.0, 8.0, 7.0, 6.0):
            row[r.randrange(200, 150000)] = score + r.random()
        if r.random() < self.rate:
            row[r.choice(self.stop_ids)] = 12.0
        return row

    def row(self, seq: Sequence[int]) -> torch.Tensor:
        """The logits in a shared buffer, valid until the next call."""
        return self.write(self._row, seq)


@dataclass
class _Seq:
    prompt: list[int]
    params: FakeParams
    out: list[int] = field(default_factory=list)
    prefill_steps: int = 0  # partial prefill steps left (their samples are dropped)
    finish_reason: str | None = None


class FakeEngine:
    """Continuous batching with a persistent batch, greedy decoding, vLLM's stop rules."""

    def __init__(self, model: ScriptedModel, processors: Sequence[Any], max_model_len: int = 1024,
                 max_num_seqs: int = 4, chunked: float = 0.5, preempt: float = 0.02, swap: float = 0.1,
                 seed: int = 0):
        self.model, self.processors = model, list(processors)
        self.max_model_len, self.max_num_seqs = max_model_len, max_num_seqs
        self.chunked, self.preempt, self.swap = chunked, preempt, swap
        self.rng = random.Random(seed)
        self.steps = 0
        self.discarded = 0
        self.preempted = 0
        self._buf: torch.Tensor | None = None

    def run(self, prompts: Sequence[list[int]], params: Sequence[FakeParams]) -> list[_Seq]:
        seqs = [_Seq(list(p), sp) for p, sp in zip(prompts, params)]
        waiting = list(seqs)
        slots: list[_Seq | None] = []
        removed: list[int] = []
        leaving: list[_Seq] = []
        while waiting or any(s is not None for s in slots):
            added, moved = [], []
            # 1. finished and preempted requests leave their slots
            for s in leaving:
                i = slots.index(s)
                slots[i] = None
                removed.append(i)
            leaving = []
            running = [s for s in slots if s is not None]
            if running and self.rng.random() < self.preempt:
                victim = self.rng.choice(running)
                i = slots.index(victim)
                slots[i] = None
                removed.append(i)
                victim.prefill_steps = self.rng.randint(1, 2)  # recompute: prefill again, in chunks
                waiting.insert(0, victim)
                self.preempted += 1
            # 2. new (or resumed) requests fill the lowest removed slot, else the end
            while waiting and sum(s is not None for s in slots) < self.max_num_seqs:
                s = waiting.pop(0)
                if s.prefill_steps == 0 and not s.out and self.rng.random() < self.chunked:
                    s.prefill_steps = self.rng.randint(1, 3)
                if removed:
                    removed.sort()
                    i = removed.pop(0)
                else:
                    i = len(slots)
                    slots.append(None)
                slots[i] = s
                added.append((i, s.params, list(s.prompt), s.out))
            # 3. condense: the last rows move into the holes
            removed.sort(reverse=True)
            last = len(slots) - 1
            while removed:
                while last >= 0 and slots[last] is None:
                    last -= 1
                hole = removed[-1]
                if hole >= last:
                    break
                removed.pop()
                slots[hole], slots[last] = slots[last], None
                moved.append((last, hole, MoveDirectionality.UNIDIRECTIONAL))
            while slots and slots[-1] is None:
                slots.pop()
            live = [i for i, s in enumerate(slots) if s is not None]
            if len(live) >= 2 and self.rng.random() < self.swap:
                a, b = self.rng.sample(live, 2)
                slots[a], slots[b] = slots[b], slots[a]
                moved.append((a, b, MoveDirectionality.SWAP))
            update = BatchUpdate(len(slots), list(removed), added, moved) if (removed or added or moved) else None
            removed = []  # the remaining (trailing) holes were trimmed
            for proc in self.processors:
                proc.update_state(update)
            if not slots:
                continue
            # 4. one forward step: logits, vLLM's min_tokens ban, the processors, greedy sampling
            if self._buf is None or self._buf.shape[0] < len(slots):
                self._buf = torch.empty(max(len(slots), self.max_num_seqs), self.model.vocab)
            logits = self._buf[: len(slots)]
            for k, s in enumerate(slots):
                self.model.write(logits[k], s.prompt + s.out)
            for k, s in enumerate(slots):
                if len(s.out) < s.params.min_tokens:
                    stops = set(s.params.stop_token_ids or ()) | {FakeParams.EOS} - {None}
                    logits[k, sorted(stops)] = float("-inf")
            for proc in self.processors:
                logits = proc.apply(logits)
            picks = logits.numpy().argmax(-1).tolist()
            self.steps += 1
            for s, tok in zip(slots, picks):
                if s.prefill_steps:
                    s.prefill_steps -= 1
                    self.discarded += 1
                    continue
                s.out.append(tok)
                p = s.params
                if tok == p.eos_token_id or tok in (p.stop_token_ids or ()):
                    s.finish_reason = "stop"
                elif (p.max_tokens is not None and len(s.out) >= p.max_tokens) or \
                        len(s.prompt) + len(s.out) >= self.max_model_len:
                    s.finish_reason = "length"
                if s.finish_reason:
                    leaving.append(s)
        return seqs


class FakeLLM:
    """Enough of ``vllm.LLM`` for VLLMBackend: generate() and collective_rpc()."""

    def __init__(self, tokenizer: Any, model: ScriptedModel, with_processor: bool = True, max_model_len: int = 1024,
                 **engine_opts: Any):
        from s1kit.backends.base import HFCodec
        from s1kit.backends.vllm import BudgetForcingLogitsProcessor

        FakeParams.EOS = tokenizer.eos_token_id
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(
            tokenizer="unused", tokenizer_revision=None, trust_remote_code=False, max_model_len=max_model_len))
        self.processor = (BudgetForcingLogitsProcessor(None, torch.device("cpu"), False, codec=HFCodec(tokenizer),
                                                       context_window=max_model_len) if with_processor else None)
        self.engine = FakeEngine(model, [self.processor] if with_processor else [], max_model_len=max_model_len,
                                 **engine_opts)

    def generate(self, prompts: Sequence[dict], params: Sequence[FakeParams], use_tqdm: bool = False) -> list[Any]:
        seqs = self.engine.run([p["prompt_token_ids"] for p in prompts], params)
        return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=list(s.out), finish_reason=s.finish_reason)])
                for s in seqs]

    def collective_rpc(self, method: str, args: tuple = ()) -> list[Any]:
        from s1kit.backends.vllm import S1kitWorkerExtension

        if not self.processor:
            raise AttributeError(f"worker has no method {method}")
        return [getattr(S1kitWorkerExtension(), method)(*args)]
