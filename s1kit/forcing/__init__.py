"""Budget forcing: the policy and the per-sequence state machine (pure Python, no torch).

Every backend (transformers, vLLM, a remote OpenAI-compatible server, s1kit's own server) drives
the same :class:`BudgetMachine`; backends only feed tokens and apply its decisions.
"""

from s1kit.forcing.format import FORMATS, ThinkingFormat, get_format
from s1kit.forcing.machine import (BudgetMachine, CompiledPolicy, Decision, Phase, PolicyCache, PromptTooLong,
                                   SequenceResult, Step, StopSet, TokenCodec, replay_until_closed, simulate)
from s1kit.forcing.policy import AUTO, PRESETS, BudgetPolicy
from s1kit.forcing.validation import ConfigError

__all__ = [
    "AUTO", "FORMATS", "PRESETS", "BudgetMachine", "BudgetPolicy", "CompiledPolicy", "ConfigError", "Decision",
    "Phase", "PolicyCache", "PromptTooLong", "SequenceResult", "Step", "StopSet", "ThinkingFormat", "TokenCodec",
    "get_format", "replay_until_closed", "simulate",
]
