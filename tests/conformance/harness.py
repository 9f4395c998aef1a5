"""The conformance cases: one set of policies every backend must run to the same tokens and accounting.

A suite module builds its backends (``{name: backend}``), picks the oracle (``hf``) and calls
:func:`check_case` for every case; :func:`check_seeded` compares sampled runs across backends
whose ``seeded_sampling`` flag is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from s1kit.backends.base import Request
from s1kit.forcing import BudgetPolicy

FIELDS = ("ids", "text", "thinking_text", "answer_text", "thinking_tokens", "forced_tokens", "answer_tokens",
          "waits_injected", "forced_end", "finish_reason", "forced_spans", "sampled")
QUESTIONS = ["How many r in raspberry?", "What is 2+2?", "Sort 5 3 9 1."]


@dataclass(frozen=True)
class Case:
    name: str
    policy: Callable[[], BudgetPolicy]
    needs_atomic_stops: bool = False  # vLLM's processor mode needs single-token thinking stops


CASES = [
    Case("cap", lambda: BudgetPolicy(max_thinking_tokens=12, max_answer_tokens=6)),
    Case("min-wait", lambda: BudgetPolicy(max_thinking_tokens=30, min_thinking_tokens=20, max_answer_tokens=6)),
    Case("two-waits", lambda: BudgetPolicy(max_thinking_tokens=40, num_ignore=2, max_answer_tokens=6)),
    Case("multi-token-ignore", lambda: BudgetPolicy(max_thinking_tokens=40, num_ignore=2, max_answer_tokens=6,
                                                    ignore_strings=("\nWait, let me check", "Hmm"))),
    Case("r1", lambda: BudgetPolicy.preset("r1", max_thinking_tokens=16, num_ignore=1, max_answer_tokens=6),
         needs_atomic_stops=True),
]
CASE_IDS = [c.name for c in CASES]
SEEDED = lambda: BudgetPolicy(max_thinking_tokens=16, num_ignore=1, max_answer_tokens=6,  # noqa: E731
                              temperature=0.9, top_p=0.95, top_k=50, seed=7)


def requests(prompts: list[list[int]], policy: BudgetPolicy) -> list[Request]:
    return [Request(list(p), policy, key=f"q{i}") for i, p in enumerate(prompts)]


def fields(res: Any) -> dict[str, Any]:
    return {f: (list(map(tuple, getattr(res, f))) if f == "forced_spans" else getattr(res, f)) for f in FIELDS}


def check_case(backends: dict[str, Any], oracle: str, prompts: list[list[int]], policy: BudgetPolicy) -> dict:
    """Every backend's results equal the oracle's, field for field; returns the oracle's results."""
    want = [fields(r) for r in backends[oracle].generate(requests(prompts, policy))]
    for name, backend in backends.items():
        if name == oracle:
            continue
        got = [fields(r) for r in backend.generate(requests(prompts, policy))]
        for i, (g, w) in enumerate(zip(got, want)):
            diff = {f: (g[f], w[f]) for f in FIELDS if g[f] != w[f]}
            assert not diff, f"{name} differs from {oracle} on prompt {i}: {diff}"
    return {"results": want}


def check_seeded(backends: dict[str, Any], prompts: list[list[int]]) -> int:
    """Seeded sampling equal across every backend that claims ``seeded_sampling``; the number compared."""
    seeded = {n: b for n, b in backends.items() if b.seeded_sampling}
    if len(seeded) < 2:
        return len(seeded)
    oracle = next(iter(seeded))
    check_case(seeded, oracle, prompts, SEEDED())
    return len(seeded)
