"""Grading, step 2: answers in one canonical form (units, spacing, fractions, numbers)."""

from __future__ import annotations

import re

from s1kit.eval.extraction import _matching_brace, last_boxed


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

