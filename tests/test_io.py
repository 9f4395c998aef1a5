"""s1kit.io (resumable JSONL, atomic writes), s1kit.stagecache (keys) and s1kit.http (retries)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from s1kit.io import JsonlAppender, quarantine_path, scan_jsonl, write_json_atomic
from s1kit.stagecache import check_resume, model_identity, settings_key, stage_settings


def test_scan_reads_only_and_repair_sets_bad_lines_aside(tmp_path):
    path = tmp_path / "o.jsonl"
    data = b'{"id": 1}\n{"id": 2\n\xff\xfe\n{"id": 3}\n{"id": 4}'
    path.write_bytes(data)
    scan = scan_jsonl(path, check=lambda r: r["id"])
    assert path.read_bytes() == data  # scanning changes nothing
    assert [r["id"] for r in scan.rows] == [1, 3, 4] and scan.missing_newline
    assert [q["line"] for q in scan.quarantined()] == [2, 3]
    scan.repair()
    assert path.read_text() == '{"id": 1}\n{"id": 3}\n{"id": 4}\n'
    quarantined = [json.loads(line) for line in quarantine_path(path).read_text().splitlines()]
    assert [(q["line"], q["reason"].split(":")[0]) for q in quarantined] == [(2, "invalid JSON"), (3, "invalid UTF-8")]
    with JsonlAppender(path) as out:
        out.write({"id": 5})
    assert [r["id"] for r in scan_jsonl(path).rows] == [1, 3, 4, 5]


def test_torn_tail_is_cut_and_lost_newline_is_restored(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text('{"id": 1}\n{"id": 2}')
    scan = scan_jsonl(path)
    scan.repair()
    assert path.read_text() == '{"id": 1}\n{"id": 2}\n'
    path.write_text('{"id": 1}\n{"id": 2, "te')
    scan = scan_jsonl(path)
    assert scan.torn is not None and len(scan.rows) == 1
    scan.repair()
    assert path.read_text() == '{"id": 1}\n'


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    write_json_atomic(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


@dataclass
class _Cfg:
    model: str = "m"
    temperature: float = 0.0
    batch_size: int = 8


def test_stage_key_is_the_whole_config_minus_declared_fields(tmp_path):
    base = stage_settings(_Cfg(), exclude=("batch_size",))
    assert settings_key(base) == settings_key(stage_settings(_Cfg(batch_size=2), exclude=("batch_size",)))
    assert settings_key(base) != settings_key(stage_settings(_Cfg(temperature=0.5), exclude=("batch_size",)))
    with pytest.raises(ValueError, match="not in the config"):
        stage_settings(_Cfg(), exclude=("batchsize",))
    record = tmp_path / "settings.json"
    check_resume(record, base, has_rows=True, field="output", value="o")  # no record yet: nothing written
    assert not record.exists()


def test_model_identity_resolves_the_path(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert model_identity("m") == model_identity("./m") == model_identity(str(folder))
    assert model_identity("org/name")["model"] == "org/name"


class _Flaky(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self):  # noqa: N802
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        status = 503 if type(self).calls < 3 else 200
        body = json.dumps({"ok": type(self).calls}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_post_json_retries_transient_statuses_then_returns():
    pytest.importorskip("httpx")
    from s1kit.http import RetriesExhausted, post_json

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1/x"
    try:
        retried = []
        status, body = post_json(url, {"q": 1}, retries=3, backoff_s=0.01, backoff_max_s=0.02,
                                 on_retry=lambda a, reason, d: retried.append(reason))
        assert (status, body, retried) == (200, {"ok": 3}, ["http_503", "http_503"])
        _Flaky.calls = 0
        with pytest.raises(RetriesExhausted, match="http_503"):
            post_json(url, {"q": 1}, retries=1, backoff_s=0.01, backoff_max_s=0.02)
    finally:
        server.shutdown()
