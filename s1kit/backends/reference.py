"""The s1 reference budget-forcing algorithm on transformers, for benchmarks and equivalence tests.

This is the algorithm of s1's lm-evaluation-harness fork (``vllm_causallms.py``), re-implemented on
``model.generate``: round 0 generates thinking after ``<|im_start|>think`` until a stop token or the
budget; each of ``num_ignore`` further rounds strips the stop token, appends the ignore string's
ids and re-prefills prompt + everything so far (``min_tokens=1``); batches move in lock-step, each
round waiting for its slowest sequence. At the end the thinking is closed with the end delimiter
(``[\\n]<|im_start|>answer\\nFinal Answer:`` after a cap) and the answer is generated in one more
round. Two deliberate differences from the harness, both matching s1's README snippet: the budget
is decremented across rounds (the harness cuts ids afterwards), and token ids are re-fed as ids.
Not for production use: :mod:`s1kit.backends.hf` does the same in one pass.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from s1kit.backends.base import HFCodec, Request, ResultCallback
from s1kit.backends.hf import left_pad_batch
from s1kit.forcing import CompiledPolicy, SequenceResult


class S1ReferenceBackend:
    """Multi-round, re-prefilling, lock-step budget forcing (greedy only, atomic stop tokens)."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.codec = HFCodec(tokenizer)
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def generate(self, requests: Sequence[Request], on_result: ResultCallback | None = None) -> list[SequenceResult]:
        results: list[SequenceResult] = []
        for start in range(0, len(requests), self.batch_size):
            for res in self._batch(requests[start:start + self.batch_size]):
                if on_result is not None:
                    on_result(len(results), res)
                results.append(res)
        return results

    def _batch(self, requests: Sequence[Request]) -> list[SequenceResult]:
        policy = requests[0].policy
        if any(r.policy != policy for r in requests):
            raise ValueError("the reference algorithm runs one policy per batch")
        if policy.min_thinking_tokens or policy.temperature or not isinstance(policy.max_thinking_tokens, int):
            raise ValueError("the reference supports greedy decoding, an int cap and no min_thinking_tokens")
        cp = CompiledPolicy(policy, self.codec, self.codec.eos_ids())
        if cp.thinking_stops.texts:
            raise ValueError("the reference (like s1's harness) needs single-token thinking stops")
        stop_ids = sorted(cp.thinking_stops.ids)
        n = len(requests)
        prefix = [list(r.prompt_ids) + list(cp.start_ids) for r in requests]
        thinking: list[list[int]] = [[] for _ in range(n)]
        used = [0] * n
        waits = [0] * n
        spans: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        capped = [False] * n
        active = list(range(n))
        for rnd in range(policy.num_ignore + 1):
            if not active:
                break
            budgets = [policy.max_thinking_tokens - used[i] for i in active]
            outs = self._generate([prefix[i] + thinking[i] for i in active], max(budgets), stop_ids, min_new=1)
            still = []
            for i, out, budget in zip(active, outs, budgets):
                stopped = bool(out) and out[-1] in stop_ids and len(out) <= budget
                cont = out[:-1] if stopped else out[:budget]
                thinking[i] += cont
                used[i] += len(cont)
                if not stopped:
                    capped[i] = True
                elif rnd < policy.num_ignore:
                    ignore = cp.ignore_ids[waits[i] % len(cp.ignore_ids)]
                    spans[i].append((len(thinking[i]), len(thinking[i]) + len(ignore)))
                    thinking[i] += ignore
                    waits[i] += 1
                    still.append(i)
            active = still
        closes = [self._close(cp, prefix[i], thinking[i], capped[i]) for i in range(n)]
        answer_stops = sorted(cp.answer_stops.ids)
        answers = self._generate([prefix[i] + thinking[i] + closes[i][0] for i in range(n)],
                                 policy.max_answer_tokens, answer_stops, min_new=0)
        out = [self._result(cp, thinking[i], closes[i], answers[i], used[i], waits[i], capped[i], answer_stops)
               for i in range(n)]
        for i, res in enumerate(out):
            res.forced_spans = spans[i] + [(len(thinking[i]), len(thinking[i]) + len(closes[i][0]))]
        return out

    def _close(self, cp: CompiledPolicy, prefix: list[int], thinking: list[int], capped: bool):
        """The forced close: (ids, index where the answer starts within them)."""
        if not capped:
            return list(cp.end_ids), len(cp.end_ids)
        last = (prefix + thinking)[-1:]
        nl = [] if self.codec.decode(last).endswith("\n") else list(cp.newline_ids)
        return nl + list(cp.cap_ids), len(nl) + cp.cap_answer_offset

    def _result(self, cp, thinking, close, answer, used, waits, capped, answer_stops) -> SequenceResult:
        close_ids, answer_offset = close
        ids = thinking + close_ids + answer
        stopped = bool(answer) and answer[-1] in answer_stops
        decode = self.codec.decode
        answer_start = len(thinking) + answer_offset
        answer_end = len(ids) - 1 if stopped else len(ids)
        end_at = len(thinking) + (len(close_ids) - len(cp.cap_ids) if capped else 0)
        return SequenceResult(
            ids=ids, text=decode(ids), thinking_text=decode(ids[:end_at]),
            answer_text=decode(ids[answer_start:answer_end]) if answer_start < answer_end else "",
            thinking_tokens=used, forced_tokens=len(thinking) - used + len(close_ids),
            answer_tokens=len(answer), waits_injected=waits, forced_end=capped,
            finish_reason="stop" if stopped else "length")

    @torch.inference_mode()
    def _generate(self, seqs: list[list[int]], max_new: int, eos: list[int], min_new: int) -> list[list[int]]:
        """One lock-step ``model.generate`` round over left-padded prompts (full re-prefill)."""
        if max_new <= 0:
            return [[] for _ in seqs]
        dev = next(self.model.parameters()).device
        ids, mask = left_pad_batch(seqs, self.pad_id)
        width = ids.shape[1]
        out = self.model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new,
                                  min_new_tokens=min_new, do_sample=False, eos_token_id=eos or None,
                                  pad_token_id=self.pad_id, top_p=None, top_k=None, temperature=None)
        new = out[:, width:].tolist()
        return [_until_stop(row, eos) for row in new]


def _until_stop(row: list[int], eos: list[int]) -> list[int]:
    """Generated ids up to and including the first stop id (the rest is padding)."""
    for j, tok in enumerate(row):
        if tok in eos:
            return row[: j + 1]
    return row
