"""Row features for selection: trace length in tokens, difficulty from solver models, domain labels.

    rows = add_trace_tokens(rows, load_length_tokenizer("Qwen/Qwen2.5-32B-Instruct"))   # batched
    outputs = run_solver("Qwen/Qwen2.5-7B-Instruct", rows, "runs/curate/solvers")        # s1kit generate
    rows, log = difficulty_filter(rows, {"qwen7b": outputs})   # drop what a solver already answers
    rows, log = label_domains(rows, keyword_labeler)           # or field_labeler, LLMLabeler(...)

Difficulty (s1): a question a solver answers correctly is too easy and is dropped
(``solved_by:<solver>``). Solver outputs are ``s1kit generate`` JSONL rows joined back by ``id``
and graded with :func:`s1kit.eval.grade.grade` against the row's ``answer``; a row without a
gold answer cannot be graded and is kept with ``solver_correct: None`` (counted). The same grader
sets ``teacher_correct`` from the teacher's attempt (s1's auto-include needs it).

Domains: a labeler maps a row to a label. ``keyword_labeler`` is an offline keyword classifier
onto the MSC codes in ``msc_codes.json`` (the 61 codes s1 used); ``LLMLabeler`` asks any
OpenAI-compatible model with s1's kind of prompt and parses a code; synthetic rows keep their
family's domain (``field_labeler``). A row no labeler can label is a drop (``no_domain``).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from s1kit.data.rows import DropLog, Row, iter_jsonl

logger = logging.getLogger(__name__)

MSC_FILE = Path(__file__).with_name("msc_codes.json")

# ---------------------------------------------------------------------------------------------
# trace length
# ---------------------------------------------------------------------------------------------


class CharTokenizer:
    """Length in characters: exact for s1kit's character-level synthetic tokenizer, no download."""

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict[str, list[list[int]]]:
        return {"input_ids": [[0] * len(t) for t in texts]}


def load_length_tokenizer(name: str) -> Any:
    """``chars`` or a tokenizer folder / Hub id (``AutoTokenizer``; the target model's tokenizer)."""
    if name == "chars":
        return CharTokenizer()
    from transformers import AutoTokenizer

    from s1kit.gguf import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(name))


def token_lengths(texts: Sequence[str], tokenizer: Any, batch_size: int = 512) -> list[int]:
    """Token counts of ``texts`` (no special tokens), tokenized ``batch_size`` at a time."""
    lengths: list[int] = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start:start + batch_size])
        lengths += [len(ids) for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]]
    return lengths


def add_trace_tokens(rows: list[Row], tokenizer: Any, field: str = "thinking", out: str = "trace_tokens",
                     batch_size: int = 512) -> list[Row]:
    """Set ``row[out]`` to the token length of ``row[field]`` (0 when a row has no trace)."""
    texts = [r.get(field) if isinstance(r.get(field), str) else "" for r in rows]
    for row, n in zip(rows, token_lengths(texts, tokenizer, batch_size)):
        row[out] = n
    return rows


# ---------------------------------------------------------------------------------------------
# difficulty
# ---------------------------------------------------------------------------------------------


def grade_kind(row: Mapping[str, Any]) -> str:
    """Integer grading for AIME (answers 0-999), math otherwise."""
    return "integer" if "aime" in str(row.get("source", "")).lower() else "math"


def is_correct(text: str | None, row: Mapping[str, Any], timeout_s: float = 5.0) -> bool | None:
    """Graded correctness of ``text`` against the row's answer; None when there is no gold answer."""
    from s1kit.eval.grade import grade

    gold = row.get("answer")
    if gold is None or str(gold).strip() == "":
        return None
    if not isinstance(text, str) or not text.strip():
        return False
    return grade(text, str(gold), kind=grade_kind(row), timeout_s=timeout_s).correct


def add_teacher_correct(rows: list[Row], field: str = "attempt") -> Counter:
    """Set ``teacher_correct`` from the teacher's attempt where not already set; counts verdicts."""
    counts: Counter = Counter()
    for row in rows:
        if row.get("teacher_correct") is None and field in row:
            row["teacher_correct"] = is_correct(row.get(field), row)
        counts[str(row.get("teacher_correct"))] += 1
    return counts


def read_solver_outputs(path: str | Path) -> dict[str, str]:
    """id -> output text of an ``s1kit generate`` JSONL (sample 0; skipped rows left out)."""
    out: dict[str, str] = {}
    for rec in iter_jsonl(path):
        if rec.get("skipped") or int(rec.get("sample", 0)) != 0:
            continue
        text = rec.get("text") if isinstance(rec.get("text"), str) else rec.get("answer_text")
        out.setdefault(str(rec["id"]), text or "")
    return out


def run_solver(model: str, rows: Sequence[Row], work_dir: str | Path, max_thinking_tokens: int | str | None = None,
               max_answer_tokens: int = 2048, batch_size: int = 8, backend: Any = None,
               progress: bool = True) -> Path:
    """Generate every row's question with ``model`` through ``s1kit generate`` (resumable); the output path."""
    from s1kit.forcing import BudgetPolicy
    from s1kit.generate import GenerateConfig, run_generate

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model.strip("/"))
    prompts, output = work / f"{name}.prompts.jsonl", work / f"{name}.jsonl"
    with open(prompts, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({"id": row["id"], "prompt": row["question"]}, ensure_ascii=False) + "\n")
    policy = BudgetPolicy(max_thinking_tokens=max_thinking_tokens, max_answer_tokens=max_answer_tokens)
    run_generate(GenerateConfig(model=model, input=str(prompts), output=str(output), batch_size=batch_size,
                                progress=progress), policy, backend=backend)
    return output


def difficulty_filter(rows: Iterable[Row], solver_outputs: Mapping[str, Mapping[str, str]],
                      missing: str = "keep") -> tuple[list[Row], DropLog]:
    """Drop rows some solver answers correctly (``solved_by:<solver>``); mark ``solver_correct``.

    ``solver_outputs`` maps a solver name to {row id: output text}. A row a solver has no output
    for is kept (``missing="keep"``, counted in the log as nothing, in ``solver_missing`` on the
    row) or dropped as ``no_solver_output`` (``missing="drop"``).
    """
    kept: list[Row] = []
    log = DropLog("difficulty")
    for row in rows:
        verdicts: dict[str, bool | None] = {}
        absent = [name for name, outs in solver_outputs.items() if str(row["id"]) not in outs]
        if absent and missing == "drop":
            log.add(row, "no_solver_output", solvers=absent)
            continue
        for name, outs in solver_outputs.items():
            if str(row["id"]) in outs:
                verdicts[name] = is_correct(outs[str(row["id"])], row)
        solved = [name for name, ok in verdicts.items() if ok]
        if solved:
            log.add(row, f"solved_by:{solved[0]}", solvers=solved)
            continue
        graded = [ok for ok in verdicts.values() if ok is not None]
        new = {**row, "solver_correct": (False if graded else None)}
        if absent:
            new["solver_missing"] = absent
        kept.append(new)
    return kept, log


# ---------------------------------------------------------------------------------------------
# domains
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def msc_codes() -> dict[str, str]:
    """The 61 MSC top-level codes s1 labelled with: code -> name."""
    return json.loads(MSC_FILE.read_text(encoding="utf-8"))["codes"]


# keyword -> MSC code; word-boundary matches on the lowercased question, most hits wins.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "05": ("how many ways", "permutation", "combination", "choose", "arrangements", "graph", "coloring", "subsets"),
    "11": ("prime", "divisible", "divisor", "gcd", "lcm", "remainder", "modulo", "mod", "integer solutions",
           "digits", "congruent"),
    "12": ("polynomial", "roots", "coefficients", "quadratic", "cubic"),
    "15": ("matrix", "determinant", "eigenvalue", "vector space", "linear map"),
    "20": ("group", "subgroup", "isomorphic", "homomorphism"),
    "26": ("function", "inequality", "maximum", "minimum", "real numbers", "derivative", "monotonic"),
    "28": ("integral", "measure", "lebesgue"),
    "30": ("complex number", "holomorphic", "analytic function"),
    "34": ("differential equation", "ode"),
    "40": ("sequence", "series", "converge", "sum of the first"),
    "51": ("triangle", "circle", "angle", "polygon", "perimeter", "area", "radius", "tangent", "square", "rectangle"),
    "60": ("probability", "expected", "random", "coin", "dice", "die", "independent", "stochastic"),
    "62": ("statistic", "estimator", "variance", "hypothesis test", "regression", "sample mean"),
    "68": ("algorithm", "program", "input format", "output format", "array", "string s", "complexity",
           "test cases", "code"),
    "70": ("velocity", "acceleration", "force", "mass", "momentum", "friction", "pendulum", "spring"),
    "78": ("electric", "magnetic", "charge", "lens", "light", "wavelength", "circuit", "voltage"),
    "80": ("temperature", "heat", "entropy", "thermodynamic", "gas"),
    "81": ("quantum", "spin", "electron", "photon", "hamiltonian", "wavefunction"),
    "82": ("molecule", "reaction", "compound", "atom", "bond", "chemical", "solvent", "acid"),
    "85": ("star", "planet", "orbit", "galaxy", "telescope", "solar"),
    "91": ("price", "profit", "market", "economy", "game theory", "trading", "payoff"),
    "92": ("cell", "protein", "dna", "gene", "enzyme", "species", "patient", "disease"),
    "03": ("argument", "conclusion", "assumption", "logically", "passage", "author"),
}
_KEYWORD_RES = {code: re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b")
                for code, words in KEYWORDS.items()}

Labeler = Callable[[Mapping[str, Any]], str | None]


def keyword_labeler(row: Mapping[str, Any], default: str | None = None) -> str | None:
    """The MSC code whose keywords occur most in the question (ties: lower code); ``default`` if none."""
    text = str(row.get("question", "")).lower()
    best, best_hits = None, 0
    for code in sorted(_KEYWORD_RES):
        hits = len(_KEYWORD_RES[code].findall(text))
        if hits > best_hits:
            best, best_hits = code, hits
    return best if best is not None else default


def field_labeler(row: Mapping[str, Any], field: str = "domain") -> str | None:
    """The row's own domain (synthetic rows carry their family's domain)."""
    value = row.get(field)
    return value if isinstance(value, str) and value else None


def auto_labeler(default: str | None = None) -> Labeler:
    """The row's own domain when it has one, else the keyword classifier."""
    def label(row: Mapping[str, Any]) -> str | None:
        return field_labeler(row) or keyword_labeler(row, default)

    return label


def label_domains(rows: Iterable[Row], labeler: Labeler, field: str = "domain") -> tuple[list[Row], DropLog]:
    """Set ``row[field]`` from ``labeler``; an unlabelled row is a drop (``no_domain``)."""
    kept: list[Row] = []
    log = DropLog("domains")
    for row in rows:
        label = labeler(row)
        if not label:
            log.add(row, "no_domain")
            continue
        kept.append({**row, field: label})
    return kept, log


# ---------------------------------------------------------------------------------------------
# LLM labeler
# ---------------------------------------------------------------------------------------------

DOMAIN_PROMPT = (
    "Classify the following question into exactly one domain of the Mathematics Subject "
    "Classification (MSC). Science questions belong to the MSC code of their field (e.g. 81 Quantum "
    "theory, 92 Biology and other natural sciences). Reply with the two-digit code only.\n\n"
    "Codes:\n{codes}\n\nQuestion:\n{question}"
)
_CODE = re.compile(r"\b(\d{2})\b")


def parse_code(text: str | None) -> str | None:
    """The first two-digit MSC code in ``text`` that is one of :func:`msc_codes`, else None."""
    for match in _CODE.finditer(text or ""):
        if match.group(1) in msc_codes():
            return match.group(1)
    return None


class LLMLabeler:
    """Labels rows with an OpenAI-compatible chat model (batched, concurrent, retried).

    ``label_all(rows)`` returns {row id: code or None}; the key comes from ``api_key_env`` only.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", concurrency: int = 8,
                 max_retries: int = 4, timeout_s: float = 120.0):
        self.base_url, self.model, self.api_key_env = base_url.rstrip("/"), model, api_key_env
        self.concurrency, self.max_retries, self.timeout_s = concurrency, max_retries, timeout_s

    def prompt(self, question: str) -> str:
        codes = "\n".join(f"{c} {name}" for c, name in msc_codes().items())
        return DOMAIN_PROMPT.format(codes=codes, question=question)

    def label_all(self, rows: Sequence[Row]) -> dict[str, str | None]:
        import asyncio

        return asyncio.run(self._label_all(rows))

    async def _label_all(self, rows: Sequence[Row]) -> dict[str, str | None]:
        import asyncio
        import os
        import random

        from s1kit.http import RETRY_STATUSES, httpx_module

        httpx = httpx_module()
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        sem, rng = asyncio.Semaphore(self.concurrency), random.Random()
        out: dict[str, str | None] = {}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.timeout_s) as client:
            async def one(row: Row) -> None:
                payload = {"model": self.model, "temperature": 0, "max_tokens": 16,
                           "messages": [{"role": "user", "content": self.prompt(row["question"])}]}
                async with sem:
                    for attempt in range(self.max_retries + 1):
                        try:
                            resp = await client.post("/chat/completions", json=payload)
                        except (httpx.TimeoutException, httpx.TransportError):
                            resp = None
                        if resp is not None and resp.status_code not in RETRY_STATUSES:
                            break
                        await asyncio.sleep(min(30.0, 2 ** attempt) * (0.5 + 0.5 * rng.random()))
                out[str(row["id"])] = _code_of_response(resp)

            await asyncio.gather(*(one(r) for r in rows))
        return out


def _code_of_response(resp: Any) -> str | None:
    if resp is None or resp.status_code >= 400:
        return None
    try:
        body = resp.json()
        return parse_code(body["choices"][0]["message"]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
