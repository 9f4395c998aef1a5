"""Resumable JSONL outputs and atomic writes: the one implementation every stage uses.

    scan = scan_jsonl(path, key=lambda row: (row["id"], row["sample"]))   # reads only
    ...check the settings the rows were made with (nothing on disk has changed yet)...
    scan.repair()                         # torn tail cut, lost newline restored, bad lines set aside
    with JsonlAppender(path) as out:      # one row per line, flushed and fsynced
        out.write(row)
    write_json_atomic(path.with_name(path.name + ".manifest.json"), manifest)

A resumable output is appended to as rows finish, so a crash can leave three things behind, and
:func:`scan_jsonl` tells them apart without touching the file:

- a *torn* last line (a crash mid-write: no final newline and not valid JSON) — cut off on
  repair and kept in the quarantine file, its row is made again;
- a *complete* last line without its final newline (a crash between the row and the newline, or
  a file edited by hand) — the row counts, and repair adds the newline, so the next append never
  glues a row onto it;
- a *malformed* line anywhere else (a bad disk, a hand edit) — set aside into
  ``<output>.quarantine.jsonl`` with its line number and reason, every later row is kept.

Nothing is written until :meth:`JsonlScan.repair` is called, so a stage that refuses to resume
(other settings) leaves the output byte-identical.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

log = logging.getLogger(__name__)

QUARANTINE_SUFFIX = ".quarantine.jsonl"


# ---------------------------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------------------------


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it and rename it over ``path``:
    a reader (or a crash) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """A manifest, settings record or results file, written atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + "\n")


def dumps_row(row: Mapping[str, Any], sort_keys: bool = False) -> str:
    """One JSONL line (with its newline)."""
    return json.dumps(row, ensure_ascii=False, sort_keys=sort_keys) + "\n"


def write_jsonl_atomic(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Replace ``path`` by ``rows`` at once; returns how many were written."""
    lines = [dumps_row(r) for r in rows]
    write_text_atomic(path, "".join(lines))
    return len(lines)


# ---------------------------------------------------------------------------------------------
# reading a resumable output
# ---------------------------------------------------------------------------------------------


def quarantine_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + QUARANTINE_SUFFIX)


@dataclass
class BadLine:
    line: int
    reason: str
    raw: bytes

    def record(self, source: Path) -> dict[str, Any]:
        return {"source": str(source), "line": self.line, "reason": self.reason,
                "text": self.raw.decode("utf-8", errors="replace")}


@dataclass
class JsonlScan:
    """What a resumable output holds (rows in order) and what is wrong with it; see the module doc."""

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    torn: BadLine | None = None
    missing_newline: bool = False
    size: int = 0

    @property
    def clean(self) -> bool:
        return not self.bad and self.torn is None and not self.missing_newline

    def quarantined(self) -> list[dict[str, Any]]:
        """For the manifest: line number and reason of every line set aside (the torn tail too)."""
        lines = self.bad + ([self.torn] if self.torn else [])
        return [{"line": b.line, "reason": b.reason} for b in lines]

    def repair(self) -> None:
        """Make the file safe to append to: bad lines and a torn tail go to the quarantine file
        (appended, with their line numbers), a lost final newline is restored. Call it only once
        the settings check has passed."""
        if self.clean:
            return
        set_aside = self.bad + ([self.torn] if self.torn else [])
        if set_aside:
            qpath = quarantine_path(self.path)
            with open(qpath, "a", encoding="utf-8") as fh:
                for b in set_aside:
                    fh.write(dumps_row(b.record(self.path)))
                fh.flush()
                os.fsync(fh.fileno())
            log.warning("%s: %d bad line(s) set aside into %s (lines %s); the other %d rows are kept",
                        self.path, len(set_aside), qpath, [b.line for b in set_aside], len(self.rows))
        if self.bad or self.torn:
            write_bytes_atomic(self.path, b"".join(dumps_row(r).encode("utf-8") for r in self.rows))
        else:  # only the final newline is missing: add it, the rows stay as they are
            with open(self.path, "ab") as fh:
                fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            log.warning("%s: the last row had no final newline; added it", self.path)
        self.bad, self.torn, self.missing_newline = [], None, False


def scan_jsonl(path: str | Path, check: Callable[[dict[str, Any]], Any] | None = None) -> JsonlScan:
    """Read a resumable output without changing it. ``check(row)`` may raise KeyError, TypeError
    or ValueError for a row that parses but is not one of this output's rows (it is set aside)."""
    path = Path(path)
    scan = JsonlScan(path)
    if not path.exists():
        return scan
    data = path.read_bytes()
    scan.size = len(data)
    lines = data.split(b"\n")
    last = lines.pop()  # b"" when the file ends with a newline
    for lineno, raw in enumerate(lines, start=1):
        if raw.strip():
            _scan_line(scan, lineno, raw, check, is_tail=False)
    if last.strip():
        _scan_line(scan, len(lines) + 1, last, check, is_tail=True)
    return scan


def _scan_line(scan: JsonlScan, lineno: int, raw: bytes, check, is_tail: bool) -> None:
    reason = None
    try:
        row = json.loads(raw.decode("utf-8"))
        if not isinstance(row, dict):
            raise ValueError("not a JSON object")
        if check is not None:
            check(row)
    except UnicodeDecodeError:
        reason = "invalid UTF-8"
    except json.JSONDecodeError as err:
        reason = f"invalid JSON: {err.msg}"
    except (KeyError, TypeError, ValueError) as err:
        reason = f"not a row of this output: {err!r}"
    if reason is None:
        scan.rows.append(row)
        scan.missing_newline = scan.missing_newline or is_tail
    elif is_tail:
        scan.torn = BadLine(lineno, "torn last line (" + reason + ")", raw)
    else:
        scan.bad.append(BadLine(lineno, reason, raw))


def iter_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """The valid rows of a resumable output (bad lines skipped, never fatal)."""
    yield from scan_jsonl(path).rows


class JsonlAppender:
    """Appends one JSON row per line, flushed and fsynced at once, so a kill loses at most the
    line being written (a torn tail that the next :func:`scan_jsonl` recognises)."""

    def __init__(self, path: str | Path, sort_keys: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sort_keys = sort_keys
        self.fh = open(self.path, "a", encoding="utf-8")

    def write(self, row: Mapping[str, Any]) -> None:
        self.fh.write(dumps_row(row, self.sort_keys))
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
