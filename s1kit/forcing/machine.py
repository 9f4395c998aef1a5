"""The per-sequence budget-forcing state machine, shared by every backend (pure Python, no torch).

Every backend drives one :class:`BudgetMachine` per sequence through its one step::

    s = m.step(None)                        # after prefill: None if forced ids are pending, else
    while not s.done:                       #   the id sampled from the last logits
        drop_last_fed(s.rollback)           # the tokens that formed a suppressed stop sequence
        feed(s.feed)                        # the accepted sample, or the next forced id
        s = m.step(sample(logits, banned=m.banned_ids()) if m.needs_sample else None)

(``m.consume``/``m.pop_forced`` are the two halves of the step, for replay and rounds.)

Phases: THINKING -> ANSWERING -> DONE. In THINKING the machine counts model-generated thinking
tokens; when the model emits a thinking stop sequence it either suppresses it (removes its
tokens and forces an ignore string such as "Wait") or closes thinking with the end delimiter;
at the cap it forces the end delimiter plus the answer prefix. ``m.ids`` always equals the ids
the model has been conditioned on (plus the final stop token), so decode(ids) is the text.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from s1kit.forcing.policy import AUTO, BudgetPolicy
from s1kit.forcing.validation import ConfigError


class TokenCodec(Protocol):
    """The little the machine needs from a tokenizer."""

    atomic_ids: frozenset[int]
    """Ids that never merge with neighbours (special and added tokens)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class Phase(enum.Enum):
    THINKING = "thinking"
    ANSWERING = "answering"
    DONE = "done"


@dataclass(frozen=True)
class Decision:
    """What the backend does with a sampled token."""

    accept: bool
    """Feed the token (False: it was part of a suppressed stop and the forced ids come next)."""
    rollback: int = 0
    """How many already-fed ids to drop from the end of the sequence (KV cache included)."""


@dataclass(frozen=True)
class Step:
    """What one :meth:`BudgetMachine.step` decided."""

    feed: int | None
    """The id that enters the sequence now: the accepted sample or the next forced id (None: was done)."""
    rollback: int = 0
    """Already-fed ids to drop from the end first (a suppressed multi-token stop)."""
    done: bool = False
    """The machine is done after this step (``feed`` was its last id: no need to feed it)."""
    suppressed: bool = False
    """The sample was a stop the machine suppressed (``feed`` is then the first forced id)."""


class StopSet:
    """Finds stop sequences at any token boundary.

    Stops that are a single atomic token (``<|im_start|>``) are matched by id, for free. Other
    stops are matched on the decoded tail, so they are found even when the tokenizer merged them
    with neighbours (Qwen's ``".\\n"`` is one token). A match reports how many trailing tokens it
    covers; characters of the first covered token that precede the match are dropped with it.
    """

    def __init__(self, stops: Sequence[str], codec: TokenCodec, extra_ids: Sequence[int] = ()):
        ids, texts = set(extra_ids), []
        for stop in stops:
            enc = codec.encode(stop)
            if len(enc) == 1 and enc[0] in codec.atomic_ids:
                ids.add(enc[0])
            else:
                texts.append(stop)
        self.ids = frozenset(ids)
        self.texts = tuple(texts)
        self.codec = codec
        # A stop of c characters spans at most c tokens, plus one token it may start inside.
        self.window = max((len(t) for t in self.texts), default=0) + 1

    def match(self, ids: Sequence[int], floor: int) -> int:
        """Number of trailing tokens of ``ids[floor:]`` that form a stop (0: no stop)."""
        if ids[-1] in self.ids:
            return 1
        if not self.texts:
            return 0
        n = len(ids)
        lo = max(floor, n - self.window)
        if lo >= n or not self._hit(self.codec.decode(ids[lo:])):
            return 0
        for k in range(1, n - lo + 1):
            if self._hit(self.codec.decode(ids[n - k:])):
                return k
        return 0  # pragma: no cover - the full window matched above

    def _hit(self, text: str) -> bool:
        return any(t in text for t in self.texts)


class CompiledPolicy:
    """A policy's strings tokenized once for a codec; shared by all sequences of a batch."""

    def __init__(self, policy: BudgetPolicy, codec: TokenCodec, eos_ids: Sequence[int] = ()):
        self.policy = policy
        self.codec = codec
        enc = codec.encode
        self.start_ids = tuple(enc(policy.thinking_start)) if policy.thinking_start else ()
        self.end_ids = tuple(enc(policy.thinking_end))
        self.cap_ids = tuple(enc(policy.cap_text()))
        self.newline_ids = tuple(enc("\n"))
        # Where the answer begins inside cap_ids: right after the end delimiter, when the
        # tokenizer kept the delimiter's own ids as a prefix (it does for special tokens).
        self.cap_answer_offset = (len(self.end_ids) if self.cap_ids[: len(self.end_ids)] == self.end_ids
                                  else len(self.cap_ids))
        self.ignore_ids = tuple(tuple(enc(s)) for s in policy.ignore_strings)
        if not all(self.ignore_ids) or not self.end_ids:
            raise ConfigError("ignore_strings", policy.ignore_strings, "strings that encode to at least one token")
        self.thinking_stops = StopSet(policy.thinking_stops, codec)
        self.answer_stops = StopSet(policy.answer_stops, codec, extra_ids=eos_ids)

    def forced_overhead(self) -> int:
        """Tokens forcing may add outside the thinking budget besides ignore strings (for 'auto')."""
        return len(self.start_ids) + len(self.newline_ids) + len(self.cap_ids)

    def resolve_max_thinking(self, prompt_len: int, context_window: int | None) -> int | None:
        """The thinking cap for one prompt; 'auto' = context - prompt - answer reserve - delimiters."""
        mt = self.policy.max_thinking_tokens
        if mt != AUTO:
            return mt  # type: ignore[return-value]
        if context_window is None:
            raise ConfigError("max_thinking_tokens", AUTO, "an integer when the model's context window is unknown")
        budget = context_window - prompt_len - self.policy.max_answer_tokens - self.forced_overhead()
        if budget < self.policy.min_thinking_tokens or budget < 0:
            raise PromptTooLong(prompt_len, context_window)
        return budget


class PromptTooLong(ValueError):
    """The prompt leaves no room for thinking and answer inside the context window."""

    def __init__(self, prompt_len: int, context_window: int):
        super().__init__(f"prompt of {prompt_len} tokens leaves no room to think and answer "
                         f"in a context window of {context_window} tokens")


class BudgetMachine:
    """Budget forcing for one sequence. See the module docstring for the driving loop."""

    def __init__(self, compiled: CompiledPolicy, max_thinking: int | None):
        self.cp = compiled
        self.policy = compiled.policy
        self.max_thinking = max_thinking
        self.ids: list[int] = []
        self.queue: deque[int] = deque()
        self.phase = Phase.THINKING if max_thinking is not None else Phase.ANSWERING
        self.thinking_tokens = 0
        self.forced_tokens = 0
        self.answer_tokens = 0
        self.waits_injected = 0
        self.forced_end = False
        self.finish_reason: str | None = None
        self.thinking_end_at: int | None = None  # index in ids where the end delimiter starts
        self.answer_start = 0 if max_thinking is None else None
        self.answer_end: int | None = None
        self.forced_spans: list[list[int]] = []  # [start, end) of each forced run in ids
        self.sampled: list[int] = []  # every token given to consume(), to replay the run
        self._floor = 0  # stop sequences are only searched in ids[_floor:] (never in forced text)
        self._ban = True  # as s1's min_tokens=1: no stop as the first token of a thinking round
        if max_thinking == 0:
            self._close_thinking(capped=True)

    # -- what the backend asks ---------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    def prompt_suffix(self) -> tuple[int, ...]:
        """Ids appended to the prompt before prefill (the thinking start delimiter)."""
        return self.cp.start_ids if self.max_thinking is not None else ()

    def has_forced(self) -> bool:
        return bool(self.queue)

    def pop_forced(self) -> int:
        """The next forced id; the backend feeds it through the model like a prompt token."""
        tok = self.queue.popleft()
        if not self.forced_spans or self.forced_spans[-1][1] != len(self.ids):
            self.forced_spans.append([len(self.ids), len(self.ids)])
        self.ids.append(tok)
        self.forced_spans[-1][1] = len(self.ids)
        self.forced_tokens += 1
        if not self.queue:
            self._floor = len(self.ids)
        return tok

    @property
    def needs_sample(self) -> bool:
        """Whether the next step needs a sampled id (False: forced ids are pending, or done)."""
        return not self.queue and self.phase is not Phase.DONE

    def step(self, sampled: int | None = None) -> Step:
        """The one driving step every backend calls: ``sampled`` (the id picked from the logits of
        the last fed id; ignored while forced ids are pending) in, what to feed next out."""
        if self.phase is Phase.DONE:
            return Step(None, done=True)
        if self.queue:
            return Step(self.pop_forced())
        if sampled is None:
            raise RuntimeError("step() needs a sampled id: no forced ids are pending")
        d = self.consume(sampled)
        if d.accept:
            return Step(sampled, done=self.phase is Phase.DONE)
        return Step(self.pop_forced(), rollback=d.rollback, suppressed=True)

    def banned_ids(self) -> frozenset[int]:
        """Ids to mask at the next sampling step (atomic thinking stops, first token of a round)."""
        if self._ban and self.phase is Phase.THINKING:
            return self.cp.thinking_stops.ids
        return frozenset()

    def consume(self, tok: int) -> Decision:
        """Account for a sampled token and decide what happens next."""
        if self.queue or self.phase is Phase.DONE:
            raise RuntimeError("consume() called while forced ids are pending or after DONE")
        self.sampled.append(tok)
        self.ids.append(tok)
        if self.phase is Phase.THINKING:
            return self._consume_thinking()
        return self._consume_answer()

    def stop(self, reason: str) -> None:
        """End the sequence from outside (e.g. 'length' when the context window is full)."""
        if self.phase is not Phase.DONE:
            self.queue.clear()
            self._finish(reason)

    # -- transitions -------------------------------------------------------------------------

    def _consume_thinking(self) -> Decision:
        k = self.cp.thinking_stops.match(self.ids, self._floor)
        if k:
            del self.ids[-k:]
            self.thinking_tokens -= k - 1  # the earlier tokens of the stop were counted
            if self._extension_due():
                self._inject_ignore()
            else:
                self._close_thinking(capped=False)
            return Decision(accept=False, rollback=k - 1)
        self.thinking_tokens += 1
        self._ban = False
        if self.thinking_tokens >= self.max_thinking:  # type: ignore[operator]
            self._close_thinking(capped=True)
        return Decision(accept=True)

    def _consume_answer(self) -> Decision:
        self.answer_tokens += 1
        k = self.cp.answer_stops.match(self.ids, self._floor)
        if k:
            self.answer_end = len(self.ids) - k
            self._finish("stop")
        elif self.answer_tokens >= self.policy.max_answer_tokens:
            self._finish("length")
        return Decision(accept=True)

    def _extension_due(self) -> bool:
        return (self.waits_injected < self.policy.num_ignore
                or self.thinking_tokens < self.policy.min_thinking_tokens)

    def _inject_ignore(self) -> None:
        ids = self.cp.ignore_ids[self.waits_injected % len(self.cp.ignore_ids)]
        self.waits_injected += 1
        self.queue.extend(ids)
        self._ban = True

    def _close_thinking(self, capped: bool) -> None:
        if capped:
            forced = list(self.cp.cap_ids)
            if not self._last_text_ends_with_newline():
                forced = list(self.cp.newline_ids) + forced
            answer_offset = len(forced) - len(self.cp.cap_ids) + self.cp.cap_answer_offset
            self.thinking_end_at = len(self.ids) + len(forced) - len(self.cp.cap_ids)
            self.forced_end = True
        else:
            forced = list(self.cp.end_ids)
            answer_offset = len(forced)
            self.thinking_end_at = len(self.ids)
        self.answer_start = len(self.ids) + answer_offset
        self.queue.extend(forced)
        self.phase = Phase.ANSWERING

    def _last_text_ends_with_newline(self) -> bool:
        last = self.ids[-1:] or list(self.cp.start_ids[-1:])
        return bool(last) and self.cp.codec.decode(last).endswith("\n")

    def _finish(self, reason: str) -> None:
        self.finish_reason = reason
        self.phase = Phase.DONE

    # -- results -----------------------------------------------------------------------------

    def result(self) -> "SequenceResult":
        decode = self.cp.codec.decode
        end = self.thinking_end_at if self.thinking_end_at is not None else len(self.ids)
        thinking_ids = self.ids[:end] if self.max_thinking is not None else []
        a0 = self.answer_start if self.answer_start is not None else len(self.ids)
        a1 = self.answer_end if self.answer_end is not None else len(self.ids)
        return SequenceResult(
            ids=list(self.ids),
            text=decode(self.ids),
            thinking_text=decode(thinking_ids),
            answer_text=decode(self.ids[a0:a1]) if a0 < a1 else "",
            thinking_tokens=self.thinking_tokens,
            forced_tokens=self.forced_tokens,
            answer_tokens=self.answer_tokens,
            waits_injected=self.waits_injected,
            forced_end=self.forced_end,
            finish_reason=self.finish_reason or "length",
            forced_spans=[tuple(span) for span in self.forced_spans],
            sampled=list(self.sampled),
        )


@dataclass
class SequenceResult:
    """One finished sequence with exact accounting."""

    ids: list[int]
    text: str
    thinking_text: str
    answer_text: str
    thinking_tokens: int
    forced_tokens: int
    answer_tokens: int
    waits_injected: int
    forced_end: bool
    finish_reason: str
    forced_spans: list[tuple[int, int]] = field(default_factory=list)
    """[start, end) index ranges of ``ids`` that were forced, not sampled."""
    sampled: list[int] = field(default_factory=list)
    """Every token the model produced, suppressed stops included (replays a run exactly)."""


def replay_until_closed(machine: BudgetMachine, sampled: Sequence[int]) -> bool:
    """Feed a recorded run's sampled tokens until this machine closes its thinking.

    Returns True when it closed (its forced close ids are then queued). Because a machine's
    decisions depend only on the tokens it sees, a machine with a smaller cap or fewer ignores
    follows the recorded run exactly up to the point where its own thinking ends: that point is
    where a budget sweep branches off the longest run.
    """
    if machine.phase is not Phase.THINKING:
        return True  # a zero budget closes at once
    for tok in sampled:
        while machine.has_forced():
            machine.step()  # ids the recorded run was forced to feed too (ignore strings)
        machine.consume(tok)  # the step's sampling half: the close stays queued for the branch
        if machine.phase is not Phase.THINKING:
            return True
    return False


def simulate(machine: BudgetMachine, next_token: Callable[[list[int], frozenset[int]], int],
             max_steps: int = 1_000_000) -> SequenceResult:
    """Drive a machine with a token function (a scripted model); used by tests and the docs."""
    for _ in range(max_steps):
        if machine.done:
            break
        machine.step(next_token(list(machine.ids), machine.banned_ids()) if machine.needs_sample else None)
    else:
        machine.stop("length")
    return machine.result()


class PolicyCache:
    """A bounded (LRU) cache of compiled policies for one codec, safe across threads."""

    def __init__(self, codec: TokenCodec, eos_ids: Sequence[int] = (), maxsize: int = 512):
        import threading
        from collections import OrderedDict

        if maxsize < 1:
            raise ConfigError("maxsize", maxsize, "an integer >= 1")
        self.codec, self.eos_ids, self.maxsize = codec, tuple(eos_ids), maxsize
        self._items: "OrderedDict[tuple, CompiledPolicy]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, policy: BudgetPolicy, extra_eos: Sequence[int] = ()) -> CompiledPolicy:
        key = (policy, tuple(extra_eos))
        with self._lock:
            cp = self._items.get(key)
            if cp is not None:
                self._items.move_to_end(key)
                return cp
        cp = CompiledPolicy(policy, self.codec, sorted(set(self.eos_ids) | set(extra_eos)))
        with self._lock:
            self._items[key] = cp
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return cp

    def __len__(self) -> int:
        return len(self._items)
