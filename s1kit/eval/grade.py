"""Offline tiered grader: is a model's final answer equal to the gold answer?

    from s1kit.eval.grade import grade, grade_answer, extract_answer
    g = grade(output_text, gold="\\frac{1}{2}", kind="math")   # Grade(correct, tier, extracted, reason)
    grade(output_text, gold="33", kind="integer")               # AIME: integers 0-999
    grade(output_text, gold="C", kind="mcq")                    # GPQA: letters A-D
    grade(output_text, gold="0 2 5", kind="exact")              # synthetic tasks: normalised strings
    grade(output_text, gold, kind="math", judge=LLMJudge(cfg), question=q)   # + optional LLM judge
    grade_answer("0.5", "\\frac12").correct                     # two already-extracted answers

Pipeline (each tier either decides or passes on; ``Grade.tier`` names the one that decided):

1. extraction (:func:`extract_answer`): the final answer, never the thinking. "unparsable" when
   nothing is found: an unparsable sample is incorrect, never a default letter.
2. normalisation (:func:`normalise`) then "exact": equal normalised strings are equal.
3. "integer": two integer literals (leading zeros allowed) compare by value, both ways.
4. "math_verify": Hugging Face math-verify (``parse``/``verify``) in a worker process with a hard
   timeout ("timeout" when it runs out, "error" when the worker fails), plus two corrections:
   numbers are re-checked at 50 digits (math-verify rounds to 6 decimals, so ``1/2004!`` and
   ``1/2006!`` would collide), and symbolic answers that math-verify finds unequal are simplified
   once more with radicals combined as for positive symbols.
5. "judge" (optional, :mod:`s1kit.eval.judge`): an OpenAI-compatible LLM at temperature 0, asked
   only when the tiers above could not decide (or as configured), with an on-disk cache. A reply
   that is not a verdict is "judge_unparsable", a failed request "judge_error": both incorrect.

The math-verify worker is a spawned process, so a script that grades needs the usual
``if __name__ == "__main__":`` guard.

Decisions worth knowing:
- Units are not graded: ``10\\text{ cm}``, ``10\\text{ m}`` and ``10 cm`` all equal ``10``
  (a trailing ``\\text{..}`` after a value is dropped; bare unit words only from a short list).
- ``50\\%`` equals ``50`` (the percent sign is dropped), not ``0.5``.
- Symbols are taken as positive when radicals are combined: ``\\sqrt{1/n}`` equals
  ``1/\\sqrt{n}`` (answers such as n, r, side lengths are positive by convention), ``|x|`` still
  differs from ``x``.
- Word answers (``\\text{East}``) compare case-insensitively; everything else is case-sensitive.
- ``kind="integer"`` accepts only integer answers (``33.0`` counts, ``\\frac{66}{2}`` does not).
- ``kind="mcq"`` compares uppercase letters A-D.
- ``kind="exact"`` stops after the "exact" tier: digit strings such as ``0 2 5`` (sorted digits)
  must not be compared as integers (``025`` = ``25``) or symbolically.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import logging
import multiprocessing
import re
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

logger = logging.getLogger(__name__)

KINDS = ("math", "integer", "mcq", "exact")
ANSWER_DELIMITER = "<|im_start|>answer"
THINK_END = "</think>"
INSTALL_HINT = "pip install 's1kit[eval]'"

# A bare answer (no box, no "Answer:") is accepted only when the final answer is this short and
# on one line: longer free text is prose, and guessing inside it would grade noise.
BARE_MAX_CHARS = 80
# Seconds the worker may take to start (spawn + importing sympy/math-verify). Kept apart from the
# per-sample timeout so that a cold start never marks a sample "timeout".
WORKER_START_TIMEOUT_S = 180.0
# Extra seconds the parent waits past the in-worker alarm before it kills the worker: the alarm
# cannot interrupt long C calls (big-integer arithmetic), the kill always can.
KILL_GRACE_S = 2.0


@dataclass(frozen=True)
class Extraction:
    """The final answer found in a model output: ``answer`` (None if none) and how it was found."""

    answer: str | None
    method: str  # "boxed", "final_answer_line", "answer_line", "answer_phrase", "letter", "bare", "none"


@dataclass(frozen=True)
class Grade:
    """One grading decision: ``correct``, the ``tier`` that decided it, the extracted answer, why."""

    correct: bool
    tier: str  # "exact", "integer", "math_verify", "unparsable", "timeout", "error", "judge", ...
    extracted: str | None
    reason: str


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------

_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>")
_FINAL_ANSWER = re.compile(r"\bfinal\s+answer\b[ \t]*(?:\*\*)?[ \t]*(?::|\n)", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"\banswer[ \t]*(?:\*\*)?[ \t]*:", re.IGNORECASE)
_ANSWER_PHRASE = re.compile(r"\banswer\s+is\b\s*:?", re.IGNORECASE)
_MATH_CHUNK = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_BOX_COMMANDS = ("\\boxed", "\\fbox", "\\framebox")
_LETTER = re.compile(r"^(?:(?i:option|choice)\s+)?(?:\(([A-D])\)|([A-D])(?=$|[.):,;]))")
_LETTER_LINE = re.compile(r"^[^A-Za-z0-9]*\(?([A-D])\)?[^A-Za-z0-9]*$")


def final_answer_region(text: str) -> str:
    """``final_answer_region(output)`` -> the text after the last answer delimiter.

    After the last ``<|im_start|>answer`` (s1/Qwen format), else after the last ``</think>``
    (R1 format), else the whole text; special tokens such as ``<|im_end|>`` are removed.
    """
    for delimiter in (ANSWER_DELIMITER, THINK_END):
        cut = text.rfind(delimiter)
        if cut >= 0:
            text = text[cut + len(delimiter):]
            break
    return _SPECIAL_TOKEN.sub("", text)


def last_boxed(text: str) -> str | None:
    """``last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}}")`` -> ``"\\frac{1}{2}"``.

    The content of the last complete outermost ``\\boxed{...}`` (or ``\\fbox``/``\\framebox``, or
    the brace-less ``\\boxed 5``), braces balanced; an unclosed box (truncated output) is skipped.
    """
    found, pos = None, 0
    while True:
        start = _next_box(text, pos)
        if start is None:
            return found
        content, end = _box_content(text, start)
        if content is not None:
            found = content
        pos = end


def _next_box(text: str, pos: int) -> int | None:
    starts = [i for i in (text.find(cmd, pos) for cmd in _BOX_COMMANDS) if i >= 0]
    return min(starts) if starts else None


def _box_content(text: str, start: int) -> tuple[str | None, int]:
    """Content of the box command at ``start`` and the index after it (None if unclosed)."""
    after_cmd = _skip_command(text, start)
    brace = re.match(r"\s*\{", text[after_cmd:])
    if brace is None:  # `\boxed 5`: one space-separated token
        token = re.match(r"[ \t]+([^\s$]+)", text[after_cmd:])
        if token is None:
            return None, after_cmd
        return token.group(1), after_cmd + token.end()
    open_index = after_cmd + brace.end() - 1
    end = _matching_brace(text, open_index)
    if end is None:
        return None, after_cmd
    return text[open_index + 1:end], end + 1


def _skip_command(text: str, start: int) -> int:
    return start + re.match(r"\\[A-Za-z]+", text[start:]).end()


def _matching_brace(text: str, open_index: int) -> int | None:
    depth, i = 0, open_index
    while i < len(text):
        char = text[i]
        if char == "\\":  # skip the escaped character: `\{` and `\}` are literal braces
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _after_last(pattern: re.Pattern[str], text: str) -> str | None:
    matches = list(pattern.finditer(text))
    return text[matches[-1].end():] if matches else None


def _answer_from_rest(rest: str | None) -> str | None:
    """The answer in the text following an "Answer:" marker: a math chunk, else the line."""
    if rest is None:
        return None
    lines = [line.strip() for line in rest.strip().splitlines() if line.strip()]
    if not lines:
        return None
    # "Final Answer: The final answer is $5$. I hope it is correct." (Minerva style)
    line = re.sub(r"^(?:the\s+)?(?:final\s+)?answer\s+is\b\s*:?", "", lines[0], flags=re.I).strip()
    chunk = _MATH_CHUNK.search(line)
    if chunk is not None:
        return next(group for group in chunk.groups() if group is not None).strip()
    answer = re.split(r"\.\s", line, maxsplit=1)[0].strip().rstrip(".").strip()
    return answer.strip("*").strip() or None


def _candidates(region: str):
    """(method, candidate answer) in the documented order; candidates may be None."""
    yield "boxed", last_boxed(region)
    yield "final_answer_line", _answer_from_rest(_after_last(_FINAL_ANSWER, region))
    yield "answer_line", _answer_from_rest(_after_last(_ANSWER_LINE, region))
    yield "answer_phrase", _answer_from_rest(_after_last(_ANSWER_PHRASE, region))


def extract_answer(text: str, kind: str = "math") -> Extraction:
    """``extract_answer(output, kind="math")`` -> ``Extraction(answer, method)``.

    Searches only the final answer region (:func:`final_answer_region`), so a boxed answer in
    the thinking never counts. Order: last ``\\boxed{}``, a ``Final Answer:`` line, an
    ``Answer:`` line, "the answer is ...", then for math/integer a bare one-line answer of at
    most ``BARE_MAX_CHARS`` characters, for mcq a line that is only a letter. For mcq the answer
    is the letter A-D, and a candidate without a letter passes on to the next method.
    """
    _check_kind(kind)
    region = final_answer_region(text)
    for method, candidate in _candidates(region):
        if candidate is None:
            continue
        if kind != "mcq":
            return Extraction(candidate, method)
        letter = letter_of(candidate)
        if letter is not None:
            return Extraction(letter, method)
    if kind == "mcq":
        return _standalone_letter(region)
    return _bare_answer(region)


def _standalone_letter(region: str) -> Extraction:
    for line in reversed(region.splitlines()):
        match = _LETTER_LINE.match(_strip_markup(line).strip())
        if match is not None:
            return Extraction(match.group(1), "letter")
    return Extraction(None, "none")


def _bare_answer(region: str) -> Extraction:
    bare = region.strip()
    if bare and "\n" not in bare and len(bare) <= BARE_MAX_CHARS:
        return Extraction(bare, "bare")
    return Extraction(None, "none")


def letter_of(answer: str) -> str | None:
    """``letter_of("\\text{(C)} 42")`` -> ``"C"``: the option letter an answer starts with.

    Accepts ``C``, ``(C)``, ``C.``, ``C)``, ``**C**``, ``Option C``; None when there is none.
    """
    match = _LETTER.match(_strip_markup(answer).strip())
    if match is None:
        return None
    return match.group(1) or match.group(2)


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

_TEXT_COMMANDS = r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox)"
_UNIT_WORDS = (
    r"(?:cm|mm|km|meters?|metres?|inch(?:es)?|ft|feet|foot|yards?|miles?|units?|square\s+units|"
    r"sq\s+units|degrees?|cents?|dollars?|seconds?|minutes?|hours?|days?|weeks?|years?|percent)"
)
# A unit is a space-led word or 2+ letters: `\mathrm{i}` (the imaginary unit) is not a unit.
_TEXT_UNIT_AT_END = re.compile(r"(?<=\S)\s*" + _TEXT_COMMANDS + r"\{(?:\s+[A-Za-z]|[A-Za-z]{2})"
                               r"[A-Za-z .]*\}(?:\^\{?\d\}?)?$")
_BARE_UNIT_AT_END = re.compile(r"(?<=[\d}])\s+" + _UNIT_WORDS + r"\.?(?:\^\{?\d\}?)?$")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°")
_SPACING = re.compile(r"(?<!\\)\\[!,;:> ]|\\q?quad(?![A-Za-z])|~|\\displaystyle|\\left(?![A-Za-z])"
                      r"|\\right(?![A-Za-z])")
_FRAC_SHORTHAND = re.compile(r"\\frac\s*(\{[^{}]*\}|[0-9A-Za-z])\s*(\{[^{}]*\}|[0-9A-Za-z])")
_SQRT_SHORTHAND = re.compile(r"\\sqrt\s*([0-9A-Za-z])")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_MIXED_NUMBER = re.compile(r"(-?)(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}")
_INTEGER = re.compile(r"[+-]?\d+")
_WHOLE_DECIMAL = re.compile(r"([+-]?\d+)\.0*")


def normalise(answer: str) -> str:
    """``normalise("$\\dfrac{1}{2}\\text{ cm}.$")`` -> ``"\\frac{1}{2}"``: LaTeX ready to compare.

    Unwraps a ``\\boxed{}``; drops math delimiters, ``\\$``, bold (``**``, ``\\textbf``), units
    at the end, degrees, ``\\%``, ``\\left``/``\\right``, spacing commands and trailing periods;
    unwraps ``\\text{}``; writes ``\\dfrac``/``\\tfrac`` as ``\\frac`` and ``\\frac12`` as
    ``\\frac{1}{2}``; reads ``10,080`` as 10080, ``.5`` as 0.5, ``1\\frac{4}{5}`` as 9/5 and
    ``(C)`` as ``C`` and ``(211)`` as 211.
    """
    text = answer.strip()
    boxed = last_boxed(text)
    if boxed is not None:
        text = boxed
    text = text.replace("\\$", "").replace("$", "")
    text = re.sub(r"\\[()\[\]]", "", text).replace("**", "")
    text = re.sub(r",\s*\\!\s*", ",", text)  # MATH writes thousands as 10,\!080
    text = _DEGREES.sub("", _SPACING.sub(" ", text))
    text = text.replace("\\%", "").replace("%", "").strip().rstrip(".")
    text = _strip_units(text)
    text = _strip_markup(text)
    text = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", text)
    text = _FRAC_SHORTHAND.sub(lambda m: f"\\frac{{{_unbrace(m[1])}}}{{{_unbrace(m[2])}}}", text)
    text = _SQRT_SHORTHAND.sub(r"\\sqrt{\1}", text)
    text = re.sub(r"\s+", " ", text).strip().rstrip(".").strip()
    return _normalise_numbers(text)


def _strip_units(text: str) -> str:
    text = _TEXT_UNIT_AT_END.sub("", text).strip()
    return _BARE_UNIT_AT_END.sub("", text).strip()


def _strip_markup(text: str) -> str:
    """Unwraps ``\\text{..}``-like commands (balanced braces) and drops ``**`` bold markers."""
    text = text.replace("**", "")
    while (match := re.search(_TEXT_COMMANDS + r"\s*\{", text)) is not None:
        end = _matching_brace(text, match.end() - 1)
        if end is None:
            break
        text = text[:match.start()] + text[match.end():end] + text[end + 1:]
    return text


def _unbrace(arg: str) -> str:
    return arg[1:-1] if arg.startswith("{") else arg


def _normalise_numbers(text: str) -> str:
    text = text.replace("{,}", ",")
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    text = re.sub(r"(?<![\d}A-Za-z])\.(\d)", r"0.\1", text)
    mixed = _MIXED_NUMBER.fullmatch(text)
    if mixed is not None and int(mixed[3]) < int(mixed[4]):
        sign, whole, num, den = mixed.groups()
        text = f"{sign}\\frac{{{int(whole) * int(den) + int(num)}}}{{{den}}}"
    # AMC-style `\textbf{(C)}` / `\textbf{(211) }`: one parenthesised letter or integer
    lone = re.fullmatch(r"\(\s*([A-Za-z]|-?\d+)\s*\)", text)
    return lone.group(1) if lone else text


def exact_key(normalised: str) -> str:
    """``exact_key("p - q")`` -> ``"p-q"``: the string the "exact" tier compares.

    Spaces are kept only between two letters (``\\pi r`` must not become ``\\pir``); word
    answers (letters and spaces only, longer than one letter) are lower-cased.
    """
    key = re.sub(r"(?<![A-Za-z])\s+|\s+(?![A-Za-z])", "", normalised)
    if len(key) > 1 and re.fullmatch(r"[A-Za-z ]+", key):
        return key.lower()
    return key


# --------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------


def grade(prediction_text: str, gold: str, kind: str = "math", timeout_s: float = 5.0,
          judge=None, question: str = "") -> Grade:
    """``grade(model_output, gold="\\frac{1}{2}", kind="math")`` -> ``Grade``.

    Extracts the final answer (:func:`extract_answer`) and compares it with ``gold`` through the
    tiers of :func:`grade_answer`. No answer found -> incorrect, tier "unparsable". With a
    ``judge`` (:class:`s1kit.eval.judge.LLMJudge`) whose ``should_judge`` accepts the offline
    verdict, the judge decides instead (tier "judge", "judge_unparsable" or "judge_error").
    """
    extraction = extract_answer(prediction_text, kind)
    if extraction.answer is None:
        offline = Grade(False, "unparsable", None, "no final answer found in the prediction")
    else:
        offline = grade_answer(extraction.answer, gold, kind, timeout_s)
    if judge is None or not judge.should_judge(offline.tier, offline.correct):
        return offline
    shown = extraction.answer if extraction.answer is not None else final_answer_region(prediction_text).strip()
    return _judge_grade(judge, question, gold, shown, offline)


def _judge_grade(judge, question: str, gold: str, prediction: str, offline: Grade) -> Grade:
    verdict = judge.judge(question, gold, prediction)
    offline_note = f"offline tier {offline.tier}: {offline.reason}"
    if verdict.status in ("correct", "incorrect"):
        logger.info("judge decided %s (%s) for gold %r", verdict.status, "cached" if verdict.cached else "asked", gold)
        return Grade(verdict.status == "correct", "judge", offline.extracted or prediction,
                     f"judge replied {verdict.reply.strip()!r}{' (cached)' if verdict.cached else ''}; {offline_note}")
    if verdict.status == "unparsable":
        logger.warning("judge reply unparsable for gold %r: %r", gold, verdict.reply[:200])
        return Grade(False, "judge_unparsable", offline.extracted,
                     f"unparsable -> incorrect: judge replied {verdict.reply[:200]!r}; {offline_note}")
    logger.warning("judge failed for gold %r: %s", gold, verdict.reply)
    return Grade(False, "judge_error", offline.extracted, f"{verdict.reply}; {offline_note}")


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


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


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
