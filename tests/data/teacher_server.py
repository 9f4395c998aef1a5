"""A deterministic OpenAI-compatible teacher for the distillation tests (FastAPI on 127.0.0.1).

Run in a thread by the tests (``TeacherServer``) or as a process: ``python tests/data/teacher_server.py PORT``.
A question's text chooses the behaviour, so the client under test cannot tell it is scripted:

- ``[429xK]`` / ``[500xK]``: the first K requests for that question answer 429 / 500;
- ``[slowxK]``: the first K requests sleep 3 s (longer than the tests' client timeout);
- ``[malformed]``: HTTP 200 with a body that is not JSON; ``[nochoices]``: JSON without choices;
- ``[nothink]``: no reasoning at all; ``[inline]``: the trace inline as ``<think>…</think>``;
- anything else: ``reasoning_content`` + ``content`` derived from a hash of the question.
A small per-request delay (``delay_s``) keeps several requests in flight for the kill tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import sys
import threading
import time
from collections import Counter

from fastapi import FastAPI, Request  # module level: FastAPI resolves the handler's annotations here
from fastapi.responses import JSONResponse, Response


def completion_for(question: str, model: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{model}|{question}".encode()).hexdigest()
    return f"Let me think about {question!r}. Digest {digest[:16]}.", f"The answer is \\boxed{{{int(digest[:4], 16)}}}"


def create_app(delay_s: float = 0.0):
    app = FastAPI()
    app.state.attempts = Counter()
    app.state.auth = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        app.state.auth.append(request.headers.get("authorization"))
        question = body["messages"][-1]["content"]
        app.state.attempts[question] += 1
        n = app.state.attempts[question]
        if delay_s:
            await asyncio.sleep(delay_s)
        for code in (429, 500):
            m = re.search(rf"\[{code}x(\d+)\]", question)
            if m and n <= int(m.group(1)):
                return JSONResponse({"error": {"message": "busy"}}, status_code=code,
                                    headers={"retry-after": "0"} if code == 429 else None)
        m = re.search(r"\[slowx(\d+)\]", question)
        if m and n <= int(m.group(1)):
            await asyncio.sleep(3.0)
        if "[malformed]" in question:
            return Response("{'not': json", media_type="application/json")
        if "[nochoices]" in question:
            return JSONResponse({"id": "x", "object": "chat.completion", "choices": []})
        if "Mathematics Subject Classification" in question:  # the domain labeler's prompt
            code = "60" if "probability" in question.split("Question:")[-1].lower() else "11"
            return {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"{code}"},
                                 "finish_reason": "stop"}]}
        thinking, answer = completion_for(question, body["model"])
        message = {"role": "assistant", "content": answer, "reasoning_content": thinking}
        if "[nothink]" in question:
            message = {"role": "assistant", "content": answer}
        elif "[inline]" in question:
            message = {"role": "assistant", "content": f"<think>\n{thinking}\n</think>\n\n{answer}"}
        return {"id": f"chatcmpl-{n}", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(question.split()), "completion_tokens": 50, "total_tokens": 60,
                          "completion_tokens_details": {"reasoning_tokens": 40}}}

    return app


class TeacherServer:
    """uvicorn in a thread on a socket bound up front; ``url`` ends in /v1."""

    def __init__(self, delay_s: float = 0.0):
        import uvicorn

        self.app = create_app(delay_s)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "TeacherServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("teacher server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


if __name__ == "__main__":  # pragma: no cover - manual use
    import uvicorn

    uvicorn.run(create_app(0.01), host="127.0.0.1", port=int(sys.argv[1]))
