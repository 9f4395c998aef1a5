"""Benchmark decontamination by word n-gram overlap (s1 uses 8-grams).

    kept, log = decontaminate(rows, load_benchmarks(["math500.jsonl", "aime24.jsonl"]), n=8)
    hits_by_source(log)   # {source: [{"id", "benchmark", "benchmark_index", "ngram", ...}]}

The benchmark n-grams are indexed once in a hash table; each question is then scanned in one pass.
A question sharing any n-gram with a benchmark problem is dropped with reason ``contaminated``;
the drop records the benchmark, its row index and the matching n-gram so a hit can be audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from s1kit.data.rows import DropLog, Row, iter_jsonl, words

logger = logging.getLogger(__name__)

DEFAULT_N = 8
# Field names tried in order when a benchmark file does not name its text field.
BENCHMARK_TEXT_FIELDS = ("problem", "question")

BenchmarkRef = tuple[str, int]  # (benchmark name, row index in that benchmark)


@dataclass(frozen=True)
class NgramIndex:
    """Benchmark word n-grams -> where they occur, plus whole texts shorter than ``n`` words."""

    n: int
    table: dict[str, tuple[BenchmarkRef, ...]]
    # A benchmark problem with fewer than n words has no n-gram; match it as a whole instead.
    short_texts: dict[str, tuple[BenchmarkRef, ...]]

    @classmethod
    def build(cls, benchmarks: Mapping[str, Sequence[str]], n: int = DEFAULT_N) -> "NgramIndex":
        if n < 1:
            raise ValueError(f"n: expected an integer >= 1, got {n}")
        table: dict[str, list[BenchmarkRef]] = {}
        short: dict[str, list[BenchmarkRef]] = {}
        for name in sorted(benchmarks):
            for idx, text in enumerate(benchmarks[name]):
                toks = words(text)
                if not toks:
                    logger.warning("benchmark %s row %d has no words; it cannot match anything", name, idx)
                elif len(toks) < n:
                    short.setdefault(" ".join(toks), []).append((name, idx))
                for gram in _ngrams(toks, n):
                    refs = table.setdefault(gram, [])
                    if (name, idx) not in refs[-1:]:  # one ref per benchmark row
                        refs.append((name, idx))
        if short:
            logger.info("%d benchmark problems are shorter than %d words; they match only as whole questions",
                        sum(map(len, short.values())), n)
        return cls(n=n, table={k: tuple(v) for k, v in table.items()},
                   short_texts={k: tuple(v) for k, v in short.items()})

    def matches(self, text: str) -> list[tuple[str, tuple[BenchmarkRef, ...]]]:
        """The benchmark n-grams found in ``text``, in text order, each with its benchmark refs."""
        toks = words(text)
        whole = " ".join(toks)
        found = [(whole, self.short_texts[whole])] if whole in self.short_texts else []
        if self.table.keys().isdisjoint(self._grams(toks)):  # the common case: no hit, no Python loop
            return found
        return found + [(g, self.table[g]) for g in self._grams(toks) if g in self.table]

    def _grams(self, toks: list[str]) -> Iterable[str]:
        # zip over shifted lists builds the windows in C: no Python bytecode per window.
        return map(" ".join, zip(*(toks[i:] for i in range(self.n))))


def _ngrams(toks: Sequence[str], n: int) -> Iterable[str]:
    return (" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1))


def decontaminate(rows: Iterable[Row], benchmarks: Mapping[str, Sequence[str]] | NgramIndex,
                  n: int = DEFAULT_N, field: str = "question") -> tuple[list[Row], DropLog]:
    """Drop rows whose ``field`` shares a word n-gram with any benchmark problem.

    ``benchmarks`` is a dict name -> problem texts, or a prebuilt :class:`NgramIndex` (then ``n``
    must agree with it, so a caller never silently scans with a different n than asked).
    """
    index = benchmarks if isinstance(benchmarks, NgramIndex) else NgramIndex.build(benchmarks, n)
    if index.n != n:
        raise ValueError(f"n={n} but the prebuilt index uses n={index.n}")
    kept: list[Row] = []
    log = DropLog("decontaminate")
    for row in rows:
        found = index.matches(row[field])
        if found:
            log.add(row, "contaminated", **_hit_detail(found))
        else:
            kept.append(row)
    return kept, log


def _hit_detail(found: list[tuple[str, tuple[BenchmarkRef, ...]]]) -> dict[str, Any]:
    gram, refs = found[0]
    name, idx = refs[0]
    return {
        "benchmark": name,
        "benchmark_index": idx,
        "ngram": gram,
        "matching_ngrams": len(found),
        "benchmarks": sorted({r[0] for _, rs in found for r in rs}),
    }


def hits_by_source(log: DropLog) -> dict[str, list[dict[str, Any]]]:
    """Per source, the contamination hits: row id, benchmark, benchmark row index and n-gram."""
    report: dict[str, list[dict[str, Any]]] = {}
    for drop in log.drops:
        if drop.reason == "contaminated":
            report.setdefault(drop.source, []).append({"id": drop.id, **drop.detail})
    return report


# ---------------------------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------------------------


def load_benchmark_jsonl(path: str | Path, field: str | None = None) -> list[str]:
    """The problem texts of a JSONL benchmark (field ``problem`` or ``question`` unless named)."""
    texts: list[str] = []
    for lineno, rec in enumerate(iter_jsonl(path), 1):
        name = field or next((f for f in BENCHMARK_TEXT_FIELDS if f in rec), None)
        if name is None or name not in rec:
            wanted = field or " or ".join(BENCHMARK_TEXT_FIELDS)
            raise ValueError(f"{path}: record {lineno} has no {wanted!r} field (fields: {sorted(rec)})")
        if not isinstance(rec[name], str):
            raise ValueError(f"{path}: record {lineno} field {name!r} is {type(rec[name]).__name__}, not text")
        texts.append(rec[name])
    return texts


def load_benchmarks(paths: Iterable[str | Path] | str | Path) -> dict[str, list[str]]:
    """Benchmarks keyed by file stem, from JSONL files or every ``*.jsonl`` in a directory."""
    if isinstance(paths, (str, Path)) and Path(paths).is_dir():
        files = sorted(Path(paths).glob("*.jsonl"))
        if not files:
            raise FileNotFoundError(f"{paths}: no *.jsonl benchmark files")
    elif isinstance(paths, (str, Path)):
        files = [Path(paths)]
    else:
        files = [Path(p) for p in paths]
    out: dict[str, list[str]] = {}
    for f in files:
        if f.stem in out:
            raise ValueError(f"two benchmark files share the name {f.stem!r}")
        out[f.stem] = load_benchmark_jsonl(f)
    return out
