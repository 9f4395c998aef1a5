"""Grading, step 3: is a (normalised) answer equal to the gold? Exact, integer and symbolic tiers;
math-verify runs in a worker process with a hard per-sample timeout."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import logging
import multiprocessing
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from s1kit.eval.extraction import _check_kind, letter_of
from s1kit.eval.normalisation import _INTEGER, _WHOLE_DECIMAL, exact_key, normalise

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 's1kit[eval]'"
# Seconds the worker may take to start (spawn + importing sympy/math-verify). Kept apart from the
# per-sample timeout so that a cold start never marks a sample "timeout".
WORKER_START_TIMEOUT_S = 180.0
# Extra seconds the parent waits past the in-worker alarm before it kills the worker: the alarm
# cannot interrupt long C calls (big-integer arithmetic), the kill always can.
KILL_GRACE_S = 2.0


@dataclass(frozen=True)
class Grade:
    """One grading decision: ``correct``, the ``tier`` that decided it, the extracted answer, why."""

    correct: bool
    tier: str  # "exact", "integer", "math_verify", "unparsable", "timeout", "error", "judge", ...
    extracted: str | None
    reason: str


def grade_answer(answer: str, gold: str, kind: str = "math", timeout_s: float = 5.0) -> Grade:
    """``grade_answer("0.5", "\\frac12")`` -> ``Grade(correct=True, tier="math_verify", ...)``.

    Compares an already-extracted answer with the gold answer: mcq by letter; otherwise
    normalised strings ("exact"), integer values ("integer"), then math-verify in a worker
    process limited to ``timeout_s`` seconds ("math_verify", "timeout" or "error").
    """
    _check_kind(kind)
    if kind == "mcq":
        return _grade_letter(answer, gold)
    pred_norm, gold_norm = normalise(answer), normalise(gold)
    if not pred_norm:
        return Grade(False, "unparsable", answer, "the answer is empty after normalisation")
    if exact_key(pred_norm) == exact_key(gold_norm):
        return Grade(True, "exact", answer, f"normalised strings equal: {gold_norm!r}")
    if kind == "exact":
        return Grade(False, "exact", answer, f"normalised strings differ: {pred_norm!r} vs gold {gold_norm!r}")
    integer_grade = _grade_integers(answer, pred_norm, gold_norm, kind)
    if integer_grade is not None:
        return integer_grade
    return _grade_symbolically(answer, pred_norm, gold_norm, timeout_s)


def _grade_letter(answer: str, gold: str) -> Grade:
    gold_letter = letter_of(gold)
    if gold_letter is None:
        raise ValueError(f"mcq gold answer {gold!r} is not a letter A-D")
    letter = letter_of(answer)
    if letter is None:
        return Grade(False, "unparsable", answer, "no option letter A-D in the answer")
    return Grade(letter == gold_letter, "exact", answer, f"letter {letter} vs gold {gold_letter}")


def _integer_value(normalised: str, allow_whole_decimal: bool) -> int | None:
    if _INTEGER.fullmatch(normalised):
        return int(normalised)
    whole = _WHOLE_DECIMAL.fullmatch(normalised) if allow_whole_decimal else None
    return int(whole.group(1)) if whole else None


def _grade_integers(answer: str, pred_norm: str, gold_norm: str, kind: str) -> Grade | None:
    """Decides when both are integers, and for kind "integer" always (None: not this tier)."""
    is_integer_kind = kind == "integer"
    gold_value = _integer_value(gold_norm, allow_whole_decimal=is_integer_kind)
    if gold_value is None:
        if is_integer_kind:
            raise ValueError(f"integer gold answer {gold_norm!r} is not an integer")
        return None
    value = _integer_value(pred_norm, allow_whole_decimal=is_integer_kind)
    if value is None:
        if is_integer_kind:
            return Grade(False, "integer", answer, f"{pred_norm!r} is not an integer")
        return None
    return Grade(value == gold_value, "integer", answer, f"{value} vs gold {gold_value}")


def _grade_symbolically(answer: str, pred_norm: str, gold_norm: str, timeout_s: float) -> Grade:
    try:
        verdict, reason = run_in_worker(_symbolic_verdict, gold_norm, pred_norm, timeout_s,
                                        timeout_s=timeout_s + KILL_GRACE_S)
    except TimeoutError as exc:
        return Grade(False, "timeout", answer, str(exc))
    except WorkerCrashed as exc:
        return Grade(False, "error", answer, str(exc))
    tiers = {"equal": "math_verify", "unequal": "math_verify"}
    return Grade(verdict == "equal", tiers.get(verdict, verdict), answer, reason)


# --------------------------------------------------------------------------------------------
# The math-verify worker process
# --------------------------------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
# One lock around a whole submit-and-wait: the single worker runs one comparison at a time, so a
# sample's timeout measures its own work, never a queue behind other threads' samples.
_pool_lock = threading.Lock()


def require_math_verify() -> None:
    """``require_math_verify()``: raises ImportError naming the extra when math-verify is absent."""
    if importlib.util.find_spec("math_verify") is None:
        raise ImportError(f"the grader's symbolic tier needs math-verify: {INSTALL_HINT}")


class WorkerCrashed(RuntimeError):
    """The grader's worker process died (it has been replaced)."""


def run_in_worker(func, *args, timeout_s: float):
    """``run_in_worker(func, *args, timeout_s=7.0)`` -> ``func(*args)`` run in the worker process.

    The grader's single worker process exists because math-verify relies on SIGALRM, which
    works only on a main thread. When ``func`` has not returned after ``timeout_s`` the worker
    is killed and replaced and TimeoutError is raised; a worker that dies raises WorkerCrashed.
    ``func`` must be importable by name (spawned workers unpickle it by reference).
    """
    with _pool_lock:
        future = _worker_pool().submit(func, *args)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            logger.warning("grader worker busy past %.1fs; killing and replacing it", timeout_s)
            shutdown_worker()
            raise TimeoutError(f"no answer from the grader worker within {timeout_s}s "
                               "(worker killed)") from None
        except concurrent.futures.process.BrokenProcessPool as exc:
            logger.warning("grader worker died (%s); replacing it", exc)
            shutdown_worker()
            raise WorkerCrashed(f"grader worker died: {exc}") from exc


def _worker_pool() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        require_math_verify()
        # spawn: a clean interpreter, safe even when the caller holds threads or CUDA state
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        try:
            pool.submit(_warm_worker).result(timeout=WORKER_START_TIMEOUT_S)
        except (concurrent.futures.TimeoutError, concurrent.futures.process.BrokenProcessPool) as exc:
            _kill_pool(pool)
            # RuntimeError, not TimeoutError: a worker that cannot start is a setup problem, not
            # a slow sample, and must not be graded as a "timeout" sample after sample.
            raise RuntimeError("the grader's math-verify worker failed to start (a script that "
                               "grades needs an `if __name__ == '__main__':` guard)") from exc
        _pool = pool
    return _pool


def shutdown_worker() -> None:
    """``shutdown_worker()``: kills the grader's worker process (a later grade starts a new one)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        _kill_pool(pool)


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor.shutdown cannot stop a busy worker before Python 3.14, so kill it first.
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


class _WorkerTimeout(BaseException):
    """Raised by the worker's alarm; a BaseException so math-verify's `except Exception` lets it by."""


def _raise_worker_timeout(signum, frame):
    raise _WorkerTimeout


def _warm_worker() -> None:
    import math_verify  # noqa: F401  (import once, so a sample's timeout never pays for it)

    # Timeouts are enforced by our own alarm (math-verify's are disabled); its warning that they
    # are disabled, and its per-expression debug noise, say nothing the grader does not handle.
    logging.getLogger("math_verify").setLevel(logging.ERROR)


def _symbolic_verdict(gold: str, pred: str, timeout_s: float) -> tuple[str, str]:
    """Worker side: ("equal" | "unequal" | "unparsable" | "timeout" | "error", reason)."""
    signal.signal(signal.SIGALRM, _raise_worker_timeout)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        try:
            return _compare_with_math_verify(gold, pred)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    # Outside the `finally`, so an alarm that fires while it is being disarmed is caught too.
    except _WorkerTimeout:
        return "timeout", f"math-verify took over {timeout_s}s"
    except Exception as exc:  # noqa: BLE001  (a sympy crash on one sample must not stop a run)
        return "error", f"math-verify raised {type(exc).__name__}: {exc}"


def _compare_with_math_verify(gold: str, pred: str) -> tuple[str, str]:
    from math_verify import parse, verify

    # Both sides are wrapped in a box: math-verify finds LaTeX only inside delimiters, and bare
    # `1-\frac{1}{e}` would otherwise parse as `1`.
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)
    pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)
    if not pred_parsed:
        return "unparsable", f"math-verify could not parse {pred!r}"
    if not gold_parsed:
        return "unequal", f"math-verify could not parse gold {gold!r}; strings differ"
    if verify(gold_parsed, pred_parsed, timeout_seconds=None):
        if _numbers_differ(gold_parsed[0], pred_parsed[0]):
            return "unequal", "math-verify equal at 6 decimals, unequal at 50 digits"
        return "equal", "math-verify: equal"
    if _equal_for_positive_symbols(gold_parsed[0], pred_parsed[0]):
        return "equal", "equal once radicals are combined for positive symbols"
    return "unequal", "math-verify: unequal"


def _numbers_differ(gold, pred) -> bool:
    """True when two numbers math-verify called equal differ relatively at 50 digits.

    Rationals compare exactly; other exact numbers must agree to a relative 1e-30 (``1/2004!``
    vs ``1/2006!``, which math-verify calls equal); when either is a decimal (an approximation)
    a relative 1e-4 is allowed, which only bites where math-verify's absolute 6-decimal rounding
    is too loose (numbers below about 0.005).
    """
    import sympy

    if not _is_number(gold) or not _is_number(pred):
        return False
    if gold.is_Rational and pred.is_Rational:
        return gold != pred  # exact, however large: 10^100 vs 10^100 + 1
    exact = not (gold.has(sympy.Float) or pred.has(sympy.Float))
    a, b = sympy.N(gold, 50), sympy.N(pred, 50)
    scale = max(abs(a), abs(b))
    if scale == 0:
        return False
    return bool(abs(a - b) > (sympy.Float("1e-30") if exact else sympy.Float("1e-4")) * scale)


def _is_number(value) -> bool:
    import sympy

    return isinstance(value, sympy.Expr) and bool(value.is_number) and not value.has(sympy.zoo)


def _equal_for_positive_symbols(gold, pred) -> bool:
    import sympy

    if not (isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr)):
        return False
    if not (gold.free_symbols or pred.free_symbols):
        return False
    if any(expr.has(sympy.Abs, sympy.sign) for expr in (gold, pred)):
        return False  # positivity is meant for radicals: |x| must stay different from x
    difference = sympy.powdenest(sympy.powsimp(gold - pred, force=True), force=True)
    return sympy.simplify(difference) == 0
