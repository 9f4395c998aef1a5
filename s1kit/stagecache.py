"""One stage cache: a stage's key is its whole config minus a declared list of fields that do not
change its outputs, so a new config field changes the key until someone declares otherwise.

    settings = stage_settings(cfg, exclude=NOT_ROW_SETTINGS, model=model_identity(cfg.model))
    guard_resume(out + ".settings.json", settings, has_rows, "output", out)   # refuse other settings
    key = settings_key(settings)                                             # a short stable hash

Used by the resumable stages (``generate``, ``eval``: ``settings.json``; ``distill``: its cache
keys) and the pipeline's ``stage.json`` records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from s1kit.forcing.validation import ConfigError
from s1kit.io import write_json_atomic

log = logging.getLogger(__name__)

# A model folder's files that identify its weights (hashing a 32B model would take minutes).
_MODEL_FILES = {".safetensors", ".bin", ".json", ".model", ".gguf", ".txt"}


def normalise(obj: Any) -> Any:
    """JSON-round-tripped: tuples become lists, paths and other objects strings."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def stage_settings(config: Any, exclude: Iterable[str] = (), **extra: Any) -> dict[str, Any]:
    """The config's fields (a dataclass or mapping) minus ``exclude``, plus ``extra`` (which wins).

    A field that is neither excluded nor overridden is part of the key: forgetting to declare a
    new field costs a rerun, never a stale result."""
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    excluded = set(exclude)
    unknown = excluded - set(values) - set(extra)
    if unknown:  # a stale declaration would silently stop excluding anything
        raise ValueError(f"excluded fields not in the config: {sorted(unknown)}")
    return normalise({**{k: v for k, v in values.items() if k not in excluded}, **extra})


def settings_key(settings: Mapping[str, Any], length: int = 64) -> str:
    """sha256 of the settings' canonical JSON (``length`` hex digits)."""
    blob = json.dumps(normalise(settings), sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def model_identity(model: str, revision: str | None = None) -> dict[str, Any]:
    """What identifies a model for a resume check: a Hub id with its revision, or for a local
    folder or file its resolved path and the size and modification time of its files, so
    ``../m`` and ``/abs/m`` agree and a model retrained in the same folder does not."""
    path = Path(model).expanduser()
    if not path.exists():
        return {"model": model, "revision": revision, "files": {}}
    path = path.resolve()
    if path.is_file():
        files = {path.name: _stat(path)}
    else:
        files = {f.name: _stat(f) for f in sorted(path.iterdir()) if f.is_file() and f.suffix in _MODEL_FILES}
    return {"model": str(path), "revision": revision, "files": files}


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def check_resume(record: str | Path, settings: dict[str, Any], has_rows: bool, field: str, value: Any) -> dict:
    """Raise :class:`ConfigError` when ``record`` holds other settings than ``settings`` (and the
    output has rows); reads only. Returns the normalised settings to :func:`record_settings`."""
    record = Path(record)
    settings = normalise(settings)
    if has_rows and record.exists():
        try:
            old = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(field, value, f"an output whose settings record {record} is readable ({err})") from None
        changed = changed_settings(old, settings) if isinstance(old, dict) else ["(unreadable record)"]
        if changed:
            raise ConfigError(field, value, f"a new output, or the settings its rows were made with: it holds "
                                            f"rows made with another {', '.join(changed)} ({record}); choose "
                                            f"another {field} or delete the old output")
    elif has_rows:
        log.warning("%s has rows but no record of their settings (%s): resuming without a check", value, record.name)
    return settings


def record_settings(record: str | Path, settings: dict[str, Any]) -> None:
    write_json_atomic(record, normalise(settings), sort_keys=True)


def guard_resume(record: str | Path, settings: dict[str, Any], has_rows: bool, field: str, value: Any) -> None:
    """Refuse to resume an output whose rows were made under other settings; record this run's.

    A resumable stage appends to its output and skips the rows already there. Rows from another
    model, policy or seed would be mixed into the results without a trace, so the settings that
    decide a row are kept beside the output (``record``) and compared on every resume; a change
    is a :class:`ConfigError` naming the settings that differ and ``field`` (the output option).
    Nothing is written when it refuses."""
    record_settings(record, check_resume(record, settings, has_rows, field, value))


class StageRecord:
    """A finished stage's record (``stage.json``) and an interrupted one's (``stage.pending.json``)
    in one folder, keyed by :func:`settings_key`; both written atomically."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.done_path = self.folder / "stage.json"
        self.pending_path = self.folder / "stage.pending.json"

    def finished(self, key: str) -> dict[str, Any] | None:
        """The record of a finished run with this key, else None."""
        record = _read_json(self.done_path)
        return record if record is not None and record.get("key") == key else None

    def stale(self, key: str) -> bool:
        """A record (finished or pending) of another key is in the folder."""
        return any(r is not None and r.get("key") != key for r in map(_read_json, (self.done_path, self.pending_path)))

    def start(self, key: str, params: Mapping[str, Any]) -> None:
        write_json_atomic(self.pending_path, {"key": key, "params": params})

    def finish(self, record: Mapping[str, Any]) -> None:
        write_json_atomic(self.done_path, record)
        self.pending_path.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {"key": None}  # an unreadable record never matches: the stage runs again
    return data if isinstance(data, dict) else {"key": None}
