"""Servers for the serving tests: uvicorn in a thread on 127.0.0.1, on a socket bound up front.

The HTTP tests need the `serve` and `api` extras (fastapi, uvicorn, httpx, openai) and skip without them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

SERVED = "tiny"  # the served model name in these tests


class ServerThread:
    """An s1kit app served by uvicorn on a thread; ``url`` is its root, ``engine`` its engine."""

    def __init__(self, cfg=None, backend=None, app=None):
        import uvicorn

        from s1kit.serve.app import create_app

        self.app = app if app is not None else create_app(cfg, backend=backend)
        self.engine = getattr(self.app.state, "engine", None)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        with contextlib.suppress(OSError):
            self.sock.close()


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory) -> Path:
    from s1kit.demo import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("serve-demo") / "model")


@pytest.fixture(scope="session")
def demo_backend(demo_model_dir):
    from s1kit.backends.hf import HFBackend

    return HFBackend.from_pretrained(str(demo_model_dir), device="cpu")


def serve_config(model_dir, **overrides):
    from s1kit.serve.app import ServeConfig

    values = dict(model=str(model_dir), served_model_name=SERVED, max_num_seqs=16, max_queue=512,
                  max_tokens_limit=1024, default_max_tokens=64)
    values.update(overrides)
    return ServeConfig(**values)


@pytest.fixture(scope="session")
def demo_server(demo_model_dir, demo_backend):
    with ServerThread(serve_config(demo_model_dir), demo_backend) as srv:
        yield srv


@pytest.fixture()
def api_key_env(monkeypatch):
    monkeypatch.setenv("S1KIT_TEST_API_KEY", "sk-test-" + os.urandom(8).hex())
    return "S1KIT_TEST_API_KEY"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models decode fastest single-threaded, and the test machines' CPUs are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
