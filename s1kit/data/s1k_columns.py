"""The curated set's output columns: s1K-1.1's (simplescaling/s1K-1.1) plus s1kit's own.

    row = s1k_row(curated_row)        # metadata as a JSON string, the traces in the deepseek columns
"""

from __future__ import annotations

import json
from typing import Any, Mapping


S1K_COLUMNS = ("solution", "question", "cot_type", "source_type", "metadata", "gemini_thinking_trajectory",
               "gemini_attempt", "deepseek_thinking_trajectory", "deepseek_attempt", "gemini_grade",
               "gemini_grade_reason", "deepseek_grade", "deepseek_grade_reason")
EXTRA_COLUMNS = ("id", "answer", "thinking", "attempt", "domain", "trace_tokens", "solver_correct",
                 "teacher_correct", "selected_by")


def s1k_row(row: Mapping[str, Any], trace_columns: str = "deepseek") -> dict[str, Any]:
    """A curated row in s1K-1.1's columns (metadata as a JSON string, as s1K stores a string)."""
    other = "gemini" if trace_columns == "deepseek" else "deepseek"
    verdict = row.get("teacher_correct")
    grade = None if verdict is None else ("Yes" if verdict else "No")
    out: dict[str, Any] = {
        "solution": row.get("solution") or "", "question": row["question"], "cot_type": row.get("cot_type", ""),
        "source_type": row.get("source", ""), "metadata": json.dumps(row.get("metadata") or {}, ensure_ascii=False,
                                                                     sort_keys=True),
        f"{trace_columns}_thinking_trajectory": row.get("thinking"), f"{trace_columns}_attempt": row.get("attempt"),
        f"{other}_thinking_trajectory": None, f"{other}_attempt": None,
        f"{trace_columns}_grade": grade, f"{trace_columns}_grade_reason": "s1kit.eval.grade vs answer"
        if grade else None, f"{other}_grade": None, f"{other}_grade_reason": None,
    }
    out = {k: out[k] for k in S1K_COLUMNS}
    for k in EXTRA_COLUMNS:
        value = row.get(k)
        out[k] = None if value is None else (str(value) if k in ("id", "answer") else value)
    return out
