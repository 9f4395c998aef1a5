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

The three steps live in :mod:`s1kit.eval.extraction`, :mod:`s1kit.eval.normalisation` and
:mod:`s1kit.eval.verification`; this module is the entry point (:func:`grade`) and re-exports them.
"""

from __future__ import annotations

import importlib.util  # noqa: F401  (tests patch find_spec through this module)
import logging

from s1kit.eval.extraction import (ANSWER_DELIMITER, BARE_MAX_CHARS, END_DELIMITERS, KINDS, THINK_END, Extraction,
                                   extract_answer, final_answer_region, last_boxed, letter_of)
from s1kit.eval.normalisation import exact_key, normalise
from s1kit.eval.verification import (INSTALL_HINT, Grade, WorkerCrashed, grade_answer, require_math_verify,
                                     run_in_worker, shutdown_worker)

logger = logging.getLogger(__name__)

__all__ = ["ANSWER_DELIMITER", "BARE_MAX_CHARS", "END_DELIMITERS", "INSTALL_HINT", "KINDS", "THINK_END", "Extraction",
           "Grade", "WorkerCrashed", "exact_key", "extract_answer", "final_answer_region", "grade", "grade_answer",
           "last_boxed", "letter_of", "normalise", "require_math_verify", "run_in_worker", "shutdown_worker"]


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
