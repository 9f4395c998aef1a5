"""GGUF model arguments: which paths name a GGUF model, and the conversion cache key."""

from __future__ import annotations

import pytest

from s1kit.gguf import cache_root, file_key, gguf_file, resolve_model


def test_gguf_file_recognises_a_file_and_a_folder_with_one(tmp_path):
    f = tmp_path / "m.Q4.gguf"
    f.write_bytes(b"GGUF" + b"\0" * 16)
    assert gguf_file(f) == f.resolve()
    assert gguf_file(tmp_path) == f.resolve()
    assert gguf_file(str(tmp_path / ".." / tmp_path.name / "m.Q4.gguf")) == f.resolve()


def test_a_model_folder_or_hub_id_is_not_gguf(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    assert gguf_file(tmp_path) is None  # a HF folder that also carries a GGUF export
    assert gguf_file("org/name") is None
    assert resolve_model("org/name") == "org/name"
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_several_gguf_files_are_ambiguous(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="several .gguf files"):
        gguf_file(tmp_path)


def test_file_key_follows_content_and_size(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"a" * (3 << 20))
    k1 = file_key(f)
    f.write_bytes(b"a" * (3 << 20) + b"b")
    k2 = file_key(f)
    f.write_bytes(b"c" + b"a" * (3 << 20))
    assert len({k1, k2, file_key(f)}) == 3


def test_cache_root_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("S1KIT_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("S1KIT_CACHE_DIR")
    assert cache_root().name == "s1kit"
