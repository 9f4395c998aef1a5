"""OpenAI-compatible server over the budget-forcing engine (``s1kit serve``).

    s1kit serve --model ./my-model                       # http://127.0.0.1:8000/v1
    S1KIT_API_KEY=... s1kit serve --model simplescaling/s1.1-32B --api-key-env S1KIT_API_KEY

Endpoints: ``POST /v1/completions``, ``POST /v1/chat/completions`` (both stream over SSE with
``"stream": true``), ``POST /tokenize``, ``POST /detokenize`` (vLLM's shapes), ``GET /v1/models``,
``GET /health``. Every choice of every request is one sequence in the engine's shared continuous
batch (:mod:`s1kit.serve.engine`); one sequence's fault fails only its own request.

Layers: :mod:`~s1kit.serve.config` (ServeConfig), :mod:`~s1kit.serve.protocol` (errors, field
validation), :mod:`~s1kit.serve.budget` (peers' budget and effort fields),
:mod:`~s1kit.serve.messages` and :mod:`~s1kit.serve.parse` (bodies -> prepared requests),
:mod:`~s1kit.serve.responses`, :mod:`~s1kit.serve.streaming`, and this module (routes only).

Budget forcing per request (extension fields next to the OpenAI ones; the openai client sends
them with ``extra_body=``): ``max_thinking_tokens`` (int, "auto" or null = no thinking phase),
``min_thinking_tokens``, ``num_ignore``, ``ignore_strings``, ``max_answer_tokens``. The answer
reserve lives inside ``max_tokens``: the thinking cap is ``min(max_thinking_tokens, max_tokens -
max_answer_tokens - forced overhead)``, the overhead being the thinking delimiters, the answer
prefix and ``num_ignore`` ignore strings, so ``usage.completion_tokens <= max_tokens`` always.
Chat requests think by default (``ServeConfig.default_max_thinking_tokens``) and answer with
``message.reasoning`` (also as ``reasoning_content``) and ``message.content``; completions are plain OpenAI
continuations unless a budget field is given, and then return the full text (thinking, forced
delimiters, answer). ``usage`` adds ``completion_tokens_details.reasoning_tokens`` (model-
generated thinking tokens), ``waits_injected``, ``forced_end``, ``forced_tokens`` and
``answer_tokens``.

vLLM-style extensions for exact multi-round clients (:mod:`s1kit.backends.remote`):
``prompt`` as a list of token ids, ``return_token_ids`` (adds ``token_ids`` and
``prompt_token_ids`` to the choice), ``stop_token_ids``, ``ignore_eos``, ``min_tokens``, ``top_k``,
``skip_special_tokens`` and ``include_stop_str_in_output``.

Safe by default: binds 127.0.0.1; optional Bearer API key read from the environment variable
named by ``api_key_env`` (never logged); limits on body size, ``max_tokens``, prompt length and
sequences in flight (429 when full); every malformed request gets an OpenAI-style 4xx error body
naming the field; request content is only ever parsed as JSON; ``trust_remote_code`` is off
unless the operator turns it on; a client that disconnects frees its sequence.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
import time
from typing import Any

from s1kit.forcing import ConfigError
from s1kit.serve.config import ServeConfig  # noqa: F401 (re-exported: s1kit.serve.app.ServeConfig)
from s1kit.serve.parse import Prepared, RequestParser
from s1kit.serve.protocol import ApiError, bad, check_text, reject_constant
from s1kit.serve.responses import chat_body, completion_body

log = logging.getLogger(__name__)


def _require(module: str, extra: str = "serve"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"`s1kit serve` needs {module}: pip install 's1kit[{extra}]'") from err


def _api_key(cfg: ServeConfig) -> str | None:
    if cfg.api_key_env is None:
        return None
    key = os.environ.get(cfg.api_key_env, "")
    if not key:
        raise ConfigError("api_key_env", cfg.api_key_env, "the name of a set, non-empty environment variable")
    return key


def load_backend(cfg: ServeConfig):
    """The transformers backend for cfg.model (trust_remote_code only when the operator set it)."""
    from s1kit.backends.hf import HFBackend

    return HFBackend.from_pretrained(cfg.model, revision=cfg.revision, batch_size=cfg.max_num_seqs,
                                     device=cfg.device, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)


def error_response(err: ApiError):
    from starlette.responses import JSONResponse

    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def guarded(handler):
    """Every route answers: an ApiError as its JSON body, anything else as one logged 500.
    Nothing reaches Starlette's ServerErrorMiddleware, whose re-raise makes uvicorn close a
    keep-alive connection (the next request on it would see a reset)."""

    async def route(request):
        try:
            return await handler(request)
        except ApiError as err:
            return error_response(err)
        except Exception:
            log.exception("internal error in %s", request.url.path)
            return error_response(ApiError(500, "internal server error", None, "server_error"))

    return route


class Routes:
    """The HTTP layer: auth, body reading, and one handler per endpoint."""

    def __init__(self, cfg: ServeConfig, engine: Any):
        from s1kit.serve import engine as eng

        self.cfg, self.engine, self.eng = cfg, engine, eng
        self.api_key = _api_key(cfg)
        self.parser = RequestParser(cfg, engine)

    def check_auth(self, request) -> None:
        if self.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'", None,
                           "invalid_request_error", "invalid_api_key")

    def _check_headers(self, request) -> None:
        ctype = request.headers.get("content-type")
        if ctype is not None:
            media = ctype.split(";")[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                raise ApiError(415, f"Content-Type must be application/json, got {ctype[:100]!r}")
        length = request.headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise ApiError(400, "invalid Content-Length header") from None
            if declared > self.cfg.max_body_bytes:
                raise ApiError(413, f"request body larger than {self.cfg.max_body_bytes} bytes")

    async def read_json(self, request) -> Any:
        """The body as JSON (strict: no NaN/Infinity constants, UTF-8, every string encodable)."""
        from starlette.requests import ClientDisconnect

        self.check_auth(request)
        self._check_headers(request)
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.cfg.max_body_bytes:
                    raise ApiError(413, f"request body larger than {self.cfg.max_body_bytes} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise ApiError(400, "client disconnected while sending the body") from None
        raw = b"".join(chunks)
        if not raw:
            raise ApiError(400, "the request body is empty; send a JSON object")
        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=reject_constant)
        except UnicodeDecodeError:
            raise ApiError(400, "the request body is not valid UTF-8") from None
        except RecursionError:
            raise ApiError(400, "the request body is nested too deeply") from None
        except ValueError as err:
            raise ApiError(400, f"invalid JSON: {str(err)[:200]}") from None
        check_text(body)
        return body

    # -- generation --------------------------------------------------------------------------

    def submit(self, prep: Prepared, queue: asyncio.Queue) -> list[int]:
        """One job per choice, all or none (429 when the engine is full)."""
        from s1kit.backends.base import Request as GenRequest

        loop, eng, tags = asyncio.get_running_loop(), self.eng, []
        try:
            for c in prep.choices:
                def sink(event, index=c.index) -> None:
                    loop.call_soon_threadsafe(queue.put_nowait, (index, event))

                job = eng.Job(GenRequest(prep.prompts[c.prompt], prep.policy, key=c.key), c.machine, sink,
                              stream=prep.stream, split=prep.kind == "chat",
                              skip_special_tokens=prep.skip_special_tokens, include_stop=prep.include_stop)
                tags.append(self.engine.submit(job))
        except eng.QueueFull:
            self.cancel(tags)
            raise ApiError(429, "the server is at capacity (running and queued sequences); retry later",
                           None, "rate_limit_error") from None
        except eng.EngineClosed:
            self.cancel(tags)
            raise ApiError(503, "the server is shutting down", None, "server_error") from None
        return tags

    def cancel(self, tags: list[int]) -> None:
        for tag in tags:
            self.engine.cancel(tag)

    @staticmethod
    def failure(event) -> ApiError:
        log.error("generation failed for one request: %r", event.error)
        return ApiError(500, "generation failed", None, "server_error")

    async def serve(self, request, prep: Prepared):
        from starlette.responses import JSONResponse, StreamingResponse

        from s1kit.serve.streaming import Streamer

        queue: asyncio.Queue = asyncio.Queue()
        tags = self.submit(prep, queue)
        rid = ("chatcmpl-" if prep.kind == "chat" else "cmpl-") + secrets.token_hex(12)
        created = int(time.time())
        if prep.stream:
            streamer = Streamer(prep, rid, created, self.cfg.model_name, self.cfg.request_timeout_s,
                                self.failure, lambda: self.cancel(tags))
            gen = streamer.run(queue, self.eng.Finished, self.eng.Failed, self.eng.Delta)
            return StreamingResponse(gen, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            fins = await self.collect(request, queue, len(prep.choices))
        finally:
            self.cancel(tags)  # a no-op for finished sequences
        if fins is None:
            from starlette.responses import Response

            return Response(status_code=499)  # nobody is listening any more
        if prep.kind == "chat":
            return JSONResponse(chat_body(prep, fins, rid, created, self.cfg.model_name))
        logprobs = None if prep.logprobs is None else await self.logprobs(prep, fins)
        return JSONResponse(completion_body(prep, fins, rid, created, self.cfg.model_name, logprobs))

    async def collect(self, request, queue: asyncio.Queue, count: int) -> list | None:
        """Every choice's Finished event, in index order (None: the client disconnected)."""
        disconnect = asyncio.ensure_future(_wait_disconnect(request))
        deadline = time.monotonic() + self.cfg.request_timeout_s
        fins: dict[int, Any] = {}
        try:
            while len(fins) < count:
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, disconnect}, timeout=max(0.0, deadline - time.monotonic()),
                                             return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    if disconnect in done:
                        return None
                    raise ApiError(504, f"the request did not finish within {self.cfg.request_timeout_s} s",
                                   None, "timeout_error")
                index, event = get.result()
                if isinstance(event, self.eng.Failed):
                    raise self.failure(event)
                if isinstance(event, self.eng.Finished):
                    fins[index] = event
        finally:
            disconnect.cancel()
        return [fins[i] for i in range(count)]

    async def logprobs(self, prep: Prepared, fins: list) -> list[dict[str, Any]]:
        from starlette.concurrency import run_in_threadpool

        from s1kit.serve.responses import logprobs_body

        out = []
        for c, fin in zip(prep.choices, fins):
            ids = list(prep.prompts[c.prompt]) + list(fin.completion_ids)
            scores = await run_in_threadpool(self.engine.score, ids, prep.logprobs or 1)
            out.append(logprobs_body(prep, c, fin, scores, self.engine.codec.decode))
        return out

    # -- endpoints ---------------------------------------------------------------------------

    async def completions(self, request):
        from starlette.concurrency import run_in_threadpool

        body = await self.read_json(request)
        return await self.serve(request, await run_in_threadpool(self.parser.completion, body))

    async def chat_completions(self, request):
        from starlette.concurrency import run_in_threadpool

        body = await self.read_json(request)
        return await self.serve(request, await run_in_threadpool(self.parser.chat, body))

    async def tokenize(self, request):
        """vLLM's /tokenize: {prompt} or {messages}, add_special_tokens, return_token_strs ->
        {count, max_model_len, tokens, token_strs}."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        body = await self.read_json(request)
        ids = await run_in_threadpool(self._tokenize, body)
        strs = [self.engine.codec.decode([i]) for i in ids] if body.get("return_token_strs") else None
        return JSONResponse({"count": len(ids), "max_model_len": self.engine.context_window, "tokens": ids,
                             "token_strs": strs})

    def _tokenize(self, body: Any) -> list[int]:
        from s1kit.serve.budget import resolve_budget
        from s1kit.serve.messages import check_messages, render
        from s1kit.serve.protocol import get_bool

        if not isinstance(body, dict):
            raise bad(None, "the request body must be a JSON object")
        known = {"model", "prompt", "messages", "add_special_tokens", "return_token_strs", "add_generation_prompt",
                 "chat_template_kwargs", "continue_final_message"}
        unknown = sorted(set(body) - known)
        if unknown and self.cfg.strict_fields:
            raise bad(unknown[0], f"Unrecognized request argument supplied: {unknown[0][:100]}")
        self.parser.model(body, required=False)
        get_bool(body, "return_token_strs")
        if ("prompt" in body) == ("messages" in body):
            raise bad("prompt", "give either 'prompt' (a string) or 'messages'")
        if "messages" in body:
            kwargs = resolve_budget(body, self.cfg.efforts, bad).template_kwargs
            text = render(self.engine.tokenizer, self.cfg.chat_template, check_messages(body["messages"]), kwargs)
            special = get_bool(body, "add_special_tokens", False)
        else:
            if not isinstance(body["prompt"], str):
                raise bad("prompt", "'prompt' must be a string")
            text, special = body["prompt"], get_bool(body, "add_special_tokens", True)
        if len(text) > self.cfg.max_body_bytes:
            raise bad("prompt", "the text is too long")
        param = "messages" if "messages" in body else "prompt"
        if not special:
            return self.parser.encode(text, param)
        try:
            return list(self.engine.tokenizer.encode(text, add_special_tokens=True))
        except (TypeError, ValueError, UnicodeError) as err:
            raise bad(param, f"'{param}' could not be tokenized: {str(err)[:200]}") from None

    async def detokenize(self, request):
        """vLLM's /detokenize: {tokens: [ids]} -> {prompt: text}."""
        from starlette.responses import JSONResponse

        from s1kit.serve.protocol import id_list

        body = await self.read_json(request)
        if not isinstance(body, dict):
            raise bad(None, "the request body must be a JSON object")
        self.parser.model(body, required=False)
        tokens = body.get("tokens")
        ids = [] if tokens == [] else id_list(tokens, "tokens", self.engine.vocab_size, 1 << 20)
        if ids is None:
            raise bad("tokens", "'tokens' must be a list of token ids")
        return JSONResponse({"prompt": self.engine.codec.decode(ids)})

    async def models(self, request):
        from starlette.responses import JSONResponse

        self.check_auth(request)
        card = {"id": self.cfg.model_name, "object": "model", "created": int(time.time()), "owned_by": "s1kit",
                "max_model_len": self.engine.context_window}
        return JSONResponse({"object": "list", "data": [card]})

    async def health(self, request):
        from starlette.responses import JSONResponse

        if not self.engine.alive:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok", **self.engine.load()})


async def _wait_disconnect(request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def create_app(cfg: ServeConfig, backend: Any = None, engine: Any = None):
    """The FastAPI app. ``backend`` (an HFBackend) or ``engine`` may be given (tests, embedding);
    the engine thread starts with the app and stops with it."""
    from contextlib import asynccontextmanager

    fastapi = _require("fastapi")
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from s1kit.serve.engine import EngineService

    if engine is None:
        engine = EngineService(backend if backend is not None else load_backend(cfg),
                               max_num_seqs=cfg.max_num_seqs, max_queue=cfg.max_queue)
    routes = Routes(cfg, engine)

    @asynccontextmanager
    async def lifespan(app):
        engine.start()
        try:
            yield
        finally:
            await run_in_threadpool(engine.stop)

    app = fastapi.FastAPI(title="s1kit", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.engine, app.state.config, app.state.routes = engine, cfg, routes

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, err):  # 404 / 405 for unknown paths and methods
        return error_response(ApiError(err.status_code, str(err.detail), None,
                                       "invalid_request_error" if err.status_code < 500 else "server_error"))

    # plain Starlette routes: the handlers parse and validate the bodies themselves
    for path, handler, method in [("/v1/completions", routes.completions, "POST"),
                                  ("/v1/chat/completions", routes.chat_completions, "POST"),
                                  ("/tokenize", routes.tokenize, "POST"), ("/detokenize", routes.detokenize, "POST"),
                                  ("/v1/models", routes.models, "GET"), ("/health", routes.health, "GET")]:
        app.add_route(path, guarded(handler), methods=[method])
    return app


# ---------------------------------------------------------------------------------------------
# running it
# ---------------------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def run_serve(cfg: ServeConfig, backend: Any = None) -> None:
    """Load the model and serve until interrupted (``s1kit serve``)."""
    uvicorn = _require("uvicorn")
    if backend is None:
        from s1kit.config import check_model_path

        check_model_path("model", cfg.model)  # before anything loads: one line, exit 2
    if not _is_loopback(cfg.host):
        log.warning("binding %s: the server is reachable from other machines%s", cfg.host,
                    "" if cfg.api_key_env else " and has no API key (set --api-key-env)")
    if cfg.num_threads is not None:
        import torch

        torch.set_num_threads(cfg.num_threads)
    app = create_app(cfg, backend=backend)
    log.info("serving %s on http://%s:%d/v1", cfg.model_name, cfg.host, cfg.port)
    level = "info" if log.getEffectiveLevel() <= logging.INFO else "warning"
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=level, access_log=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m s1kit.serve.app --model PATH`` (the same flags as ``s1kit serve``)."""
    import argparse

    from s1kit.config import add_dataclass_arguments, resolve

    parser = argparse.ArgumentParser(prog="s1kit serve", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO")
    add_dataclass_arguments(parser, ServeConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = resolve(ServeConfig, args)
    except ConfigError as err:
        parser.error(str(err))
    run_serve(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
