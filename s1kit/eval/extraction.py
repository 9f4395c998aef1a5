"""Grading, step 1: the final answer of a model output (never the thinking).

The answer region is the row's ``answer_text`` when the engine gave one (the machine knows where
the answer starts), else the text after the last end-of-thinking delimiter of any
:class:`~s1kit.forcing.ThinkingFormat` preset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from s1kit.forcing.format import FORMATS

KINDS = ("math", "integer", "mcq", "exact")
ANSWER_DELIMITER = FORMATS["s1"].end
THINK_END = FORMATS["r1"].end
# End delimiters searched in a full output, in this order (s1's first, then <think> formats').
END_DELIMITERS = tuple(dict.fromkeys(fmt.end for fmt in FORMATS.values()))
# A bare answer (no box, no "Answer:") is accepted only when the final answer is this short and
# on one line: longer free text is prose, and guessing inside it would grade noise.
BARE_MAX_CHARS = 80


@dataclass(frozen=True)
class Extraction:
    """The final answer found in a model output: ``answer`` (None if none) and how it was found."""

    answer: str | None
    method: str  # "boxed", "final_answer_line", "answer_line", "answer_phrase", "letter", "bare", "none"


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
    for delimiter in END_DELIMITERS:
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
    from s1kit.eval.normalisation import _strip_markup  # normalisation builds on extraction's braces

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
    from s1kit.eval.normalisation import _strip_markup

    match = _LETTER.match(_strip_markup(answer).strip())
    if match is None:
        return None
    return match.group(1) or match.group(2)



def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
