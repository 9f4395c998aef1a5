"""The registry of s1's 16 question sources: each source's spec and the normaliser that turns
one of its Hub records into a common row (see :mod:`s1kit.data.sources`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from s1kit.data.rows import Row
from s1kit.forcing.validation import ConfigError

class BadRow(ValueError):
    """A record that cannot become a common row; ``reason`` is the drop reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Filtered(Exception):
    """A record s1 deliberately leaves out (``filtered:<why>``), not a malformed one."""

    def __init__(self, why: str):
        super().__init__(why)
        self.reason = f"filtered:{why}"


Normaliser = Callable[[Mapping[str, Any], str | None], Row]


@dataclass(frozen=True)
class SourceSpec:
    """One registered source: where it lives on the Hub and how a record becomes a common row."""

    name: str
    hub_id: str
    normalise: Normaliser
    configs: tuple[str | None, ...] = (None,)
    splits: tuple[str, ...] = ("train",)
    revision: str | None = None  # a Hub commit; None = unpinned (see the module docstring)
    description: str = ""
    load_kwargs: tuple[tuple[str, Any], ...] = ()


# ---------------------------------------------------------------------------------------------
# field helpers: every normaliser reads through these, so a bad record names its field
# ---------------------------------------------------------------------------------------------


def text_field(rec: Mapping[str, Any], name: str, strip: bool = True) -> str:
    """``rec[name]`` as non-empty text, else :class:`BadRow` ``bad_row:<name>``."""
    value = rec.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRow(f"bad_row:{name}")
    return value.strip() if strip else value


def optional_text(rec: Mapping[str, Any], name: str) -> str:
    value = rec.get(name)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):  # OlympiadBench solutions, OlympicArena answers: lists
        value = value[0] if value else ""
    if not isinstance(value, (str, int, float)):
        raise BadRow(f"bad_row:{name}")
    return str(value).strip()


def answer_of(value: Any) -> str | None:
    """An answer value as text; lists (OlympiadBench ``final_answer``) give their first element."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def boxed_answer(solution: str) -> str | None:
    """The last ``\\boxed{}`` of a worked solution (NuminaMath, MATH), or None."""
    from s1kit.eval.grade import last_boxed

    return last_boxed(solution)


def jsonable(value: Any) -> Any:
    """Metadata values as JSON (s1 stored ``str(x)``; we keep structure where JSON can hold it)."""
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def make_row(rec: Mapping[str, Any], used: Iterable[str], *, question: str, solution: str, answer: Any,
             source: str, cot_type: str) -> Row:
    """The common row; ``metadata`` is every field of ``rec`` that was not used (as in s1)."""
    used = set(used)
    meta = {k: jsonable(v) for k, v in rec.items() if k not in used}
    return {"id": "", "question": question, "solution": solution, "answer": answer_of(answer),
            "source": source, "cot_type": cot_type, "metadata": meta}


# ---------------------------------------------------------------------------------------------
# the 16 normalisers (column shapes as the Hub datasets ship them; cot_type as s1 assigned it)
# ---------------------------------------------------------------------------------------------


def norm_numinamath(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: source, problem, solution, messages
    solution = text_field(rec, "solution")
    origin = text_field(rec, "source")
    return make_row(rec, ("problem", "solution", "messages"), question=text_field(rec, "problem"),
                    solution=solution, answer=boxed_answer(solution), source=f"AI-MO/NuminaMath-CoT/{origin}",
                    cot_type="math")


def norm_math(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: problem, solution, answer, subject, level, unique_id
    solution = text_field(rec, "solution")
    answer = rec.get("answer") or boxed_answer(solution)
    return make_row(rec, ("problem", "solution", "answer"), question=text_field(rec, "problem"),
                    solution=solution, answer=answer, source=f"qfq/openaimath/{text_field(rec, 'subject')}",
                    cot_type="math")


OLYMPIC_ARENA_COT = {"Math": "math", "CS": "coding"}


def norm_olympic_arena(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: id, problem, prompt, figure_urls, answer, answer_type, unit, answer_sequence,
    #          type_sequence, test_cases, subject, language, modality
    if rec.get("language") != "EN":
        raise Filtered("not_english")
    if rec.get("modality") != "text-only":
        raise Filtered("not_text_only")
    subject = text_field(rec, "subject")
    return make_row(rec, ("problem", "solution", "answer"), question=text_field(rec, "problem"),
                    solution=optional_text(rec, "solution"), answer=rec.get("answer"),
                    source=f"GAIR/OlympicArena/{subject}", cot_type=OLYMPIC_ARENA_COT.get(subject, "science"))


def norm_omni_math(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: domain, difficulty, problem, solution, answer, source
    return make_row(rec, ("problem", "solution", "answer"), question=text_field(rec, "problem"),
                    solution=optional_text(rec, "solution"), answer=rec.get("answer"),
                    source="KbsdJames/Omni-MATH", cot_type="math")


AGIEVAL_COT = {"sat_en": "english", "sat_math": "math", "lsat_ar": "english", "lsat_lr": "english",
               "lsat_rc": "english", "logiqa": "math", "aqua_rat": "math", "math_agieval": "math"}
AGIEVAL_WITH_PASSAGE = ("sat_en", "sat_math", "lsat_ar", "lsat_lr", "lsat_rc", "logiqa")


def norm_agieval(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: passage, question, options, label, solution (math_agieval: question, solution, level)
    config = config or "sat_math"
    if config == "math_agieval" and rec.get("level") != 5:
        raise Filtered("below_level_5")  # s1 kept only the hardest MATH-in-AGIEval questions
    question = text_field(rec, "question")
    if config in AGIEVAL_WITH_PASSAGE:
        options = rec.get("options") or []
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise BadRow("bad_row:options")
        passage = rec.get("passage") or ""
        question = "\n\n".join(p for p in (str(passage).strip(), question) if p)
        question += ("\n" + "\n".join(options)) if options else ""
    return make_row(rec, ("passage", "question", "options", "solution"), question=question,
                    solution=optional_text(rec, "solution"), answer=rec.get("label"),
                    source=f"baber/agieval/{config}", cot_type=AGIEVAL_COT.get(config, "math"))


XWORD_INSTRUCTION = ("Solve the crossword puzzle. You are presented with a clue as input and the number of "
                     "letters in brackets.")


def norm_xword(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: instruction, input ("### Clue: ..."), output
    raw = text_field(rec, "input")
    if "### Clue: " not in raw:
        raise BadRow("bad_row:input")
    clue = raw.split("### Clue: ", 1)[1].strip()
    answer = text_field(rec, "output")
    return make_row(rec, ("input", "output"), question=f"{XWORD_INSTRUCTION}\n\n{clue}", solution=answer,
                    answer=answer, source="0xharib/xword1", cot_type="crossword")


def norm_olympiadbench(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: id, question, solution (list), final_answer (list), context, image_1.., modality,
    #          difficulty, is_multiple_answer, unit, answer_type, error, question_type, subfield,
    #          subject, language
    if any(rec.get(f"image_{i}") for i in range(1, 6)):
        raise Filtered("has_image")
    question = text_field(rec, "question")
    if isinstance(rec.get("context"), str) and rec["context"].strip():
        question = rec["context"].strip() + "\n\n" + question  # s1 forgot the context (its TODO)
    return make_row(rec, ("question", "solution", "final_answer", "context"), question=question,
                    solution=optional_text(rec, "solution"), answer=rec.get("final_answer"),
                    source=f"Hothan/OlympiadBench/{text_field(rec, 'question_type')}/{text_field(rec, 'subject')}",
                    cot_type="math")


AIME_LAST_YEAR = 2021  # s1 used AIME 1983-2021: AIME 2022-24 overlap the evaluation sets


def norm_aime(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: ID ("1983-1"), Year, Problem Number, Question, Answer, Part
    try:
        year = int(rec.get("Year"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRow("bad_row:Year") from None
    if year > AIME_LAST_YEAR:
        raise Filtered(f"aime_after_{AIME_LAST_YEAR}")
    return make_row(rec, ("Question", "Answer"), question=text_field(rec, "Question"), solution="",
                    answer=rec.get("Answer"), source="qq8933/AIME_1983_2024", cot_type="math")


def norm_theoremqa(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: Question, Answer, Answer_type, Picture, id, explanation, theorem, subfield, field
    if rec.get("Picture"):
        raise Filtered("has_picture")
    answer = optional_text(rec, "Answer")
    return make_row(rec, ("Question", "Answer"), question=text_field(rec, "Question"), solution=answer,
                    answer=answer or None, source=f"TIGER-Lab/TheoremQA/{text_field(rec, 'Answer_type')}",
                    cot_type="math")


def norm_usaco(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: question, problem_id, name, description, num_tests, test_cases, runtime_limit_sec,
    #          memory_limit_mb, problem_level, ...
    return make_row(rec, ("question",), question=text_field(rec, "question"), solution="", answer=None,
                    source="codegenning/usacobench_formatted", cot_type="coding")


JEEBENCH_COT = {"math": "math", "phy": "math", "chem": "science"}


def norm_jeebench(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: description, index, subject, type, question, gold
    subject = text_field(rec, "subject")
    gold = optional_text(rec, "gold")
    return make_row(rec, ("question", "gold"), question=text_field(rec, "question"), solution=gold,
                    answer=gold or None, source=f"daman1209arora/jeebench/{subject}",
                    cot_type=JEEBENCH_COT.get(subject, "science"))


GPQA_LETTERS = "ABCD"


def norm_gpqa(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns (gpqa_extended): Question, Correct Answer, Incorrect Answer 1-3, Explanation,
    #          High-level domain, Subdomain, Record ID, ...  hub_records marks Diamond questions (_in_diamond).
    if rec.get("_in_diamond"):
        raise Filtered("gpqa_diamond")
    return make_row(rec, ("Question", "Explanation", "_in_diamond"), question=text_field(rec, "Question"),
                    solution=optional_text(rec, "Explanation"), answer=text_field(rec, "Correct Answer"),
                    source="Idavidrein/gpqa", cot_type="science")


SCIEVAL_COT = {"SocraticQA": "science", "reagent selection": "science", "MedQA": "health science",
               "PubMedQA": "health science"}
SCIEVAL_REWRITES = (("\nOptimal solvent:", "\nWhat is the optimal solvent?"),
                    ("\nOptimal ligand:", "\nWhat is the optimal ligand?"),
                    ("\nOptimal reactant:", "\nWhat is the optimal reactant?"))


def norm_scieval(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: id, question, answer (list), category, topic, ability, type, task_name
    answers = rec.get("answer")
    if not answers:
        raise Filtered("no_answer")  # about half of SciEval ships without one; s1 dropped them
    question = text_field(rec, "question").split("\n\nAnswer:")[0]
    for old, new in SCIEVAL_REWRITES:
        question = question.replace(old, new)
    task = text_field(rec, "task_name")
    answer = answer_of(answers)
    return make_row(rec, ("question", "answer"), question=question, solution=answer or "", answer=answer,
                    source=f"OpenDFM/SciEval/{text_field(rec, 'category')}/{text_field(rec, 'type')}/{task}",
                    cot_type=SCIEVAL_COT.get(task, "science"))


def norm_s1_prob(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: question, solution (Stanford statistics PhD qualifying exam, probability section)
    return make_row(rec, ("question", "solution"), question=text_field(rec, "question"),
                    solution=optional_text(rec, "solution"), answer=None, source="simplescaling/s1-prob",
                    cot_type="math")


def norm_livecodebench(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: question_title, question_content, platform, question_id, contest_id, contest_date,
    #          starter_code, difficulty, public_test_cases, private_test_cases, metadata
    if rec.get("difficulty") != "hard":
        raise Filtered("not_hard")
    rec = {k: v for k, v in rec.items() if k != "private_test_cases"}  # megabytes of tests per row
    return make_row(rec, ("question_content",), question=text_field(rec, "question_content"), solution="",
                    answer=None, source=f"LiveCodeBench/{config or 'release_v1'}", cot_type="coding")


def norm_s1_teasers(rec: Mapping[str, Any], config: str | None) -> Row:
    # columns: Question, Answer, Difficulty (PuzzledQuant, "Hard" only)
    answer = optional_text(rec, "Answer")
    return make_row(rec, ("Question", "Answer"), question=text_field(rec, "Question"), solution=answer,
                    answer=answer or None, source="qfq/quant", cot_type="math")


REGISTRY: dict[str, SourceSpec] = {s.name: s for s in (
    SourceSpec("numinamath", "AI-MO/NuminaMath-CoT", norm_numinamath, description="NuminaMath-CoT (s1 used its "
               "aops_forum part plus a 500-problem sample of the rest)"),
    SourceSpec("math", "simplescaling/openaimath", norm_math, description="MATH (train), as s1's openaimath copy"),
    SourceSpec("olympic_arena", "GAIR/OlympicArena", norm_olympic_arena,
               configs=("Math", "Physics", "Chemistry", "Biology", "Geography", "Astronomy", "CS"),
               splits=("test", "val"), description="OlympicArena, English text-only"),
    SourceSpec("omni_math", "KbsdJames/Omni-MATH", norm_omni_math, splits=("test",)),
    SourceSpec("agieval", "baber/agieval", norm_agieval, configs=(*AGIEVAL_WITH_PASSAGE, "aqua_rat", "math_agieval"),
               splits=("test", "few_shot"), description="AGIEval (SAT, LSAT, LogiQA, AQuA, MATH level 5)"),
    SourceSpec("xword", "0xharib/xword1", norm_xword, description="crossword clues"),
    SourceSpec("olympiadbench", "Hothan/OlympiadBench", norm_olympiadbench,
               configs=("OE_TO_maths_en_COMP", "OE_TO_physics_en_COMP", "TP_TO_maths_en_COMP", "TP_TO_physics_en_COMP"),
               description="OlympiadBench, English text-only, open-ended and proofs"),
    SourceSpec("aime", "qq8933/AIME_1983_2024", norm_aime, description="AIME 1983-2021"),
    SourceSpec("theoremqa", "TIGER-Lab/TheoremQA", norm_theoremqa, splits=("test",),
               description="TheoremQA without pictures"),
    SourceSpec("usaco", "codegenning/usacobench_formatted", norm_usaco, splits=("test",)),
    SourceSpec("jeebench", "daman1209arora/jeebench", norm_jeebench, splits=("test",)),
    SourceSpec("gpqa", "Idavidrein/gpqa", norm_gpqa, configs=("gpqa_extended",),
               description="GPQA extended minus Diamond (gated: needs a Hub token)"),
    SourceSpec("scieval", "OpenDFM/SciEval", norm_scieval, splits=("test", "validation"),
               description="SciEval rows that have an answer"),
    SourceSpec("s1_prob", "simplescaling/s1-prob", norm_s1_prob),
    SourceSpec("livecodebench", "livecodebench/code_generation_lite", norm_livecodebench,
               configs=("release_v1", "release_v2", "release_v3"), splits=("test",),
               description="LiveCodeBench hard problems (configs are version tags)"),
    SourceSpec("s1_teasers", "simplescaling/s1-teasers", norm_s1_teasers, description="trading brain-teasers"),
)}


def get_spec(name: str) -> SourceSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError("sources.name", name, "one of " + ", ".join(sorted(REGISTRY))) from None


# ---------------------------------------------------------------------------------------------
# source configs and reading
# ---------------------------------------------------------------------------------------------
