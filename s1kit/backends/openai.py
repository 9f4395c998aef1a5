"""Budget forcing over any OpenAI-compatible ``/v1/completions`` server (vLLM, SGLang, llama.cpp, s1kit).

    from s1kit.backends import create
    backend = create("openai", base_url="http://127.0.0.1:8000", model="my-model", tokenizer="./my-model",
                     api_key_env="S1KIT_API_KEY")
    results = backend.generate([Request(prompt_ids, BudgetPolicy(max_thinking_tokens=2048, num_ignore=2))])

The server only continues text; the budget is enforced here, by the same :class:`BudgetMachine`
the local backends drive, in rounds (:mod:`s1kit.forcing.rounds`, shared with ``reference`` and
``vllm-multiround``). Each round sends the prompt, the thinking start delimiter
and every id so far (as a list of token ids when the server accepts that, as the OpenAI API
does; else as text), with ``max_tokens`` = what is left of the current phase's budget (thinking
cap minus thinking tokens so far, or the answer cap) and ``stop`` = that phase's stop
sequences. The returned tokens (the server's own ids when it returns them: ``return_token_ids``
on vLLM and s1kit; else the local tokenizer's encoding of the text) go through
``machine.consume``; when the machine suppresses a stop or closes the thinking, the forced ids
join the next round's prompt. So the accounting is exact: no round can exceed its remaining
budget, and over a server that takes and returns ids (vLLM, s1kit) greedy results equal the
local engine's token for token.

Degradation, never silent: a server that returns only text makes the round's ids the local
tokenizer's encoding of that text (not necessarily the ids the server sampled), and a server that
refuses token-id prompts gets the decoded text (it re-tokenizes). Either makes the accounting
approximate; :meth:`stats` counts such rounds (``inexact_rounds``, ``text_prompt_rounds``),
``exact_ids`` turns False, and the generate/eval manifests record the counts.

vLLM-style request extensions (``extensions=True``, the default; set False for strict servers):
``return_token_ids``, ``stop_token_ids`` (atomic stops such as ``<|im_start|>``),
``skip_special_tokens: false``, ``include_stop_str_in_output: true``, ``ignore_eos`` (EOS is an
ordinary token while thinking, as in the local engine), ``min_tokens: 1`` (no stop as the first
token of a thinking round, as s1) and ``top_k``.

Transient failures (429, 5xx, timeouts, dropped connections) are retried with exponential
backoff and jitter (``Retry-After`` honoured); at most ``max_concurrency`` sequences are in
flight at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from typing import Any, Sequence

from s1kit.backends.base import HFCodec, MachineFactory, Request, ResultCallback
from s1kit.forcing import AUTO, BudgetMachine, SequenceResult
from s1kit.forcing.rounds import Round, acted, feed_round, next_round

log = logging.getLogger(__name__)
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class RemoteError(RuntimeError):
    """The server refused a request (or kept failing after the retries)."""

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status, self.body = status, body


def _httpx():
    try:
        import httpx
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("RemoteBackend needs httpx: pip install 's1kit[api]'") from err
    return httpx


class RemoteBackend(MachineFactory):
    """Budget-forced generation over an OpenAI-compatible completions server, in exact rounds."""

    name = "openai"
    prefix_sweep = False
    seeded_sampling = False  # the server's sampler, seeded per round: reproducible on one server only

    def __init__(self, base_url: str, model: str, *, tokenizer: Any, api_key_env: str | None = None,
                 max_concurrency: int = 16, timeout_s: float = 600.0, max_retries: int = 5,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, token_prompts: bool | str = "auto",
                 extensions: bool = True, context_window: int | None = None, extra_body: dict | None = None):
        """
        base_url: server root ("http://host:8000" or ".../v1"). model: the served model name.
        tokenizer: the model's tokenizer (object or local path/Hub id): stops, forced strings and
        the accounting use it. api_key_env: name of the environment variable with the key.
        token_prompts: True (send ids), False (send text) or "auto" (ids, text if refused).
        context_window: the model's context (for 'auto' budgets; default: asked from /v1/models).
        """
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ValueError("max_concurrency >= 1, max_retries >= 0 and timeout_s > 0 are required")
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            from s1kit.gguf import resolve_model

            tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer))
        self.tokenizer = tokenizer
        self.codec = HFCodec(tokenizer)
        root = base_url.rstrip("/")
        self.base_url = root if root.endswith("/v1") else root + "/v1"
        self.model = model
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        if token_prompts not in (True, False, "auto"):
            raise ValueError("token_prompts must be True, False or 'auto'")
        self.token_prompts = token_prompts
        self.extensions = extensions
        self.context_window = context_window
        self.extra_body = dict(extra_body or {})
        self._headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(f"the environment variable {api_key_env} (api_key_env) is not set")
            self._headers["Authorization"] = f"Bearer {key}"
        self.rounds = 0
        self.retries = 0
        self.inexact_rounds = 0  # rounds whose ids were re-encoded from text (the server gave no ids)
        self.text_prompt_rounds = 0  # rounds sent as text (the server refused token-id prompts)

    @property
    def exact_ids(self) -> bool:
        return not (self.inexact_rounds or self.text_prompt_rounds)

    @property
    def max_num_seqs(self) -> int:
        return self.max_concurrency

    def stats(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "retries": self.retries, "inexact_rounds": self.inexact_rounds,
                "text_prompt_rounds": self.text_prompt_rounds, "exact_ids": self.exact_ids}

    # -- public --------------------------------------------------------------------------------

    def generate(self, requests: Sequence[Request], on_result: ResultCallback | None = None) -> list[SequenceResult]:
        """Generate every request (results in input order); on_result(i, result) as each finishes."""
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        if not in_loop:
            return asyncio.run(self.agenerate(requests, on_result))
        box: dict[str, Any] = {}  # called from inside an event loop: run ours on a thread

        def run() -> None:
            try:
                box["out"] = asyncio.run(self.agenerate(requests, on_result))
            except BaseException as err:  # noqa: BLE001 - re-raised below
                box["err"] = err

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if "err" in box:
            raise box["err"]
        return box["out"]

    async def agenerate(self, requests: Sequence[Request], on_result: ResultCallback | None = None) -> list[SequenceResult]:
        httpx = _httpx()
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, headers=self._headers, limits=limits,
                                     timeout=httpx.Timeout(self.timeout_s)) as client:
            if self.context_window is None and any(r.policy.max_thinking_tokens == AUTO for r in requests):
                self.context_window = await self._context_window(client)
            machines = [self.machine(r) for r in requests]  # fails early: bad prompts, no context
            sem = asyncio.Semaphore(self.max_concurrency)
            results: list[SequenceResult | None] = [None] * len(requests)

            async def one(i: int) -> None:
                async with sem:
                    results[i] = await self._run(client, requests[i], machines[i])
                if on_result is not None:
                    on_result(i, results[i])

            tasks = [asyncio.ensure_future(one(i)) for i in range(len(requests))]
            try:
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
        return results  # type: ignore[return-value]

    # -- one sequence ----------------------------------------------------------------------------

    async def _run(self, client, request: Request, m: BudgetMachine) -> SequenceResult:
        prefix = list(request.prompt_ids) + list(m.prompt_suffix())
        rnd = 0
        while (r := next_round(m, prefix, request.key, rnd, self.context_window)) is not None:
            toks, finish, stop_reason = await self._complete(client, self._body(r, request), r.context)
            rnd += 1
            if not self._feed(m, r, toks, finish, stop_reason):
                m.stop("length")  # no progress: the server could not go on (context full, ...)
        return m.result()

    def _body(self, r: Round, request: Request) -> dict[str, Any]:
        p = request.policy
        body: dict[str, Any] = {"model": self.model, "prompt": r.context, "max_tokens": r.max_tokens,
                                "temperature": p.temperature, "top_p": p.top_p, "stream": False}
        if r.stop_texts:
            body["stop"] = list(r.stop_texts)
        if r.seed is not None:
            body["seed"] = r.seed
        if self.extensions:
            body.update(return_token_ids=True, skip_special_tokens=False, include_stop_str_in_output=True,
                        ignore_eos=r.thinking)
            if r.stop_ids:
                body["stop_token_ids"] = sorted(r.stop_ids)
            if r.ban_first:
                body["min_tokens"] = 1
            if p.top_k:
                body["top_k"] = p.top_k
        body.update(self.extra_body)
        return body

    def _feed(self, m: BudgetMachine, r: Round, toks: list[int], finish: str | None, stop_reason: Any) -> bool:
        """Run one round's tokens through the machine; False when the round changed nothing."""
        phase = m.phase
        consumed, did = feed_round(m, toks)
        if not did and finish == "stop":
            # The server stopped on a stop sequence it did not return: show it to the machine.
            more, did = feed_round(m, self._stop_tokens(stop_reason, r.stop_texts, r.stop_ids))
            consumed += more
        return consumed > 0 or acted(m, phase)

    def _stop_tokens(self, stop_reason: Any, stops: Sequence[str], stop_ids: frozenset[int]) -> list[int]:
        if isinstance(stop_reason, int) and not isinstance(stop_reason, bool):
            return [stop_reason]
        if isinstance(stop_reason, str) and stop_reason:
            return self.codec.encode(stop_reason)
        if stops:
            return self.codec.encode(stops[0])
        return [min(stop_ids)] if stop_ids else []

    # -- HTTP ------------------------------------------------------------------------------------

    async def _complete(self, client, body: dict[str, Any], context: list[int]):
        """One round: (token ids, finish_reason, stop_reason)."""
        send = dict(body)
        as_ids = self.token_prompts is not False
        if not as_ids:
            send["prompt"] = self.codec.decode(context)
            self.text_prompt_rounds += 1
        try:
            data = await self._post(client, send)
        except RemoteError as err:
            if not (as_ids and self.token_prompts is not True and err.status in (400, 422)):
                raise
            if self.token_prompts == "auto":
                log.warning("the server refused a token-id prompt (HTTP %s); sending text prompts from now on "
                            "(not exact: the server re-tokenizes)", err.status)
                self.token_prompts = False
            send["prompt"] = self.codec.decode(context)
            self.text_prompt_rounds += 1
            data = await self._post(client, send)
        else:
            if as_ids and self.token_prompts == "auto":
                self.token_prompts = True
        self.rounds += 1
        try:
            choice = data["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise RemoteError(f"malformed completion response: {str(data)[:200]}") from None
        toks = choice.get("token_ids")
        if not (isinstance(toks, list) and all(isinstance(t, int) for t in toks)):
            toks = _ids_from_logprobs(choice.get("logprobs"))
        if toks is None:
            toks = self.codec.encode(choice.get("text") or "")
            self.inexact_rounds += 1
        return toks, choice.get("finish_reason"), choice.get("stop_reason")

    async def _post(self, client, body: dict[str, Any]) -> dict[str, Any]:
        httpx = _httpx()
        attempt = 0
        while True:
            retry_after = None
            try:
                resp = await client.post("/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as err:
                error: Exception = RemoteError(f"{type(err).__name__}: {err}")
            else:
                if resp.status_code == 200:
                    try:
                        return resp.json()
                    except ValueError:
                        error = RemoteError("the server sent invalid JSON", resp.status_code, resp.text[:500])
                elif resp.status_code in RETRY_STATUS:
                    error = RemoteError(f"HTTP {resp.status_code}: {resp.text[:300]}", resp.status_code, resp.text[:2000])
                    retry_after = _retry_after(resp.headers.get("retry-after"))
                else:
                    raise RemoteError(f"HTTP {resp.status_code}: {resp.text[:300]}", resp.status_code, resp.text[:2000])
            if attempt >= self.max_retries:
                raise error
            delay = min(self.max_backoff_s, self.backoff_s * (2 ** attempt))
            delay = delay / 2 + random.uniform(0, delay / 2)  # "equal jitter"
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.max_backoff_s))
            attempt += 1
            self.retries += 1
            log.debug("retry %d in %.2f s after %s", attempt, delay, error)
            await asyncio.sleep(delay)

    async def _context_window(self, client) -> int | None:
        try:
            resp = await client.get("/models")
            for card in resp.json().get("data", []):
                if card.get("id") == self.model:
                    value = card.get("max_model_len") or card.get("context_length")
                    return int(value) if value else None
        except Exception:  # noqa: BLE001 - optional information
            log.debug("could not read the context window from /models", exc_info=True)
        return None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _ids_from_logprobs(logprobs: Any) -> list[int] | None:
    """Token ids from vLLM's ``return_tokens_as_token_ids`` logprobs ("token_id:123"), if present."""
    if not isinstance(logprobs, dict):
        return None
    tokens = logprobs.get("tokens")
    if not isinstance(tokens, list) or not tokens:
        return None
    out = []
    for t in tokens:
        if not isinstance(t, str) or not t.startswith("token_id:"):
            return None
        try:
            out.append(int(t.split(":", 1)[1]))
        except ValueError:
            return None
    return out


OpenAIBackend = RemoteBackend


def create(model: str, base_url: str, tokenizer: str, api_key_env: str | None = None,
           batch_size: int = 16) -> RemoteBackend:
    """The registry's factory for 'openai': ``model`` is the name the server serves, ``tokenizer``
    the local tokenizer (folder or Hub id) that the stops, forced strings and accounting use."""
    return RemoteBackend(base_url, model, tokenizer=tokenizer, api_key_env=api_key_env, max_concurrency=batch_size)
