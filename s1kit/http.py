"""One HTTP client for JSON APIs: retries with exponential backoff and jitter, ``Retry-After``.

    status, body = post_json(url, {"model": "m", ...}, headers={"Authorization": "Bearer …"},
                             timeout=60, retries=3)                          # sync (the eval judge)
    async with async_client(concurrency=16, timeout=60) as client:          # async (distill)
        status, body = await apost_json(client, url, payload, retry=Retry(retries=6))

408/409/429/5xx, timeouts and connection errors are retried: the n-th retry waits a random time
in [half, whole] of ``backoff_s * 2**n`` (capped at ``backoff_max_s``), or the server's
``Retry-After`` when that is longer (capped too). Other statuses come back to the caller as
``(status, body)`` (``body`` None when it is not JSON); when retries run out,
:class:`RetriesExhausted` names the last reason. Needs ``httpx`` (extras ``api``, ``data``,
``serve``).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
INSTALL_HINT = "pip install 's1kit[api]' (or s1kit[data])"


def httpx_module():
    """httpx, or an ImportError that names the extra."""
    try:
        import httpx
    except ImportError as err:
        raise ImportError(f"HTTP clients need httpx: {INSTALL_HINT}") from err
    return httpx


@dataclass(frozen=True)
class Retry:
    """How often and how long to retry (see the module doc)."""

    retries: int = 3
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Exponential backoff with jitter in [half, whole] of the step; Retry-After wins if longer."""
        step = min(self.backoff_max_s, self.backoff_s * 2 ** attempt)
        delay = step * (0.5 + 0.5 * rng.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max_s))
        return delay


class RetriesExhausted(Exception):
    """Every attempt failed with a retryable error; ``reason`` is the last one (``http_503``, …)."""

    def __init__(self, reason: str, attempts: int):
        super().__init__(f"{reason} after {attempts} attempts")
        self.reason, self.attempts = reason, attempts


def parse_retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _outcome(resp) -> tuple[int, Any]:
    try:
        body = resp.json()
    except ValueError:
        body = None
    return resp.status_code, body


def _classify(resp) -> tuple[str | None, float | None]:
    """(reason to retry or None, the server's Retry-After) of a response."""
    if resp.status_code in RETRY_STATUSES:
        return f"http_{resp.status_code}", parse_retry_after(resp.headers.get("retry-after"))
    return None, None


def _after_failure(retry: "Retry", attempt: int, reason: str, after: float | None, rng: random.Random,
                   on_retry) -> float:
    """The delay before the next attempt, or RetriesExhausted when this was the last one."""
    if attempt == retry.retries:
        raise RetriesExhausted(reason, attempt + 1)
    delay = retry.delay(attempt, rng, after)
    if on_retry is not None:
        on_retry(attempt, reason, delay)
    return delay


OnRetry = Callable[[int, str, float], None]  # (attempt, reason, delay)


def post_json(url: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None, timeout: float = 60.0,
              retries: int = 3, backoff_s: float = 1.0, backoff_max_s: float = 60.0, client: Any = None,
              rng: random.Random | None = None, on_retry: OnRetry | None = None) -> tuple[int, Any]:
    """POST ``body`` as JSON with retries; returns (status, JSON body or None)."""
    httpx = httpx_module()
    retry, rng = Retry(retries, backoff_s, backoff_max_s), rng or random.Random()
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    try:
        for attempt in range(retry.retries + 1):
            try:
                resp = client.post(url, json=dict(body), headers=dict(headers or {}))
                reason, after = _classify(resp)
            except (httpx.TimeoutException, httpx.TransportError) as err:
                reason, after = f"transport:{type(err).__name__}", None
            if reason is None:
                return _outcome(resp)
            time.sleep(_after_failure(retry, attempt, reason, after, rng, on_retry))
    finally:
        if own:
            client.close()
    raise AssertionError("unreachable")


def async_client(concurrency: int = 8, timeout: float = 60.0, base_url: str = "",
                 headers: Mapping[str, str] | None = None):
    """An ``httpx.AsyncClient`` with ``concurrency`` pooled connections."""
    httpx = httpx_module()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base_url, headers=dict(headers or {}), limits=limits, timeout=timeout)


async def apost_json(client: Any, url: str, body: Mapping[str, Any], retry: Retry = Retry(),
                     rng: random.Random | None = None, on_attempt: Callable[[], None] | None = None,
                     on_retry: OnRetry | None = None) -> tuple[int, Any]:
    """The async :func:`post_json` on a shared client (``on_attempt`` is called before each try)."""
    httpx = httpx_module()
    rng = rng or random.Random()
    for attempt in range(retry.retries + 1):
        if on_attempt is not None:
            on_attempt()
        try:
            resp = await client.post(url, json=dict(body))
            reason, after = _classify(resp)
        except (httpx.TimeoutException, httpx.TransportError) as err:
            reason, after = f"transport:{type(err).__name__}", None
        if reason is None:
            return _outcome(resp)
        await asyncio.sleep(_after_failure(retry, attempt, reason, after, rng, on_retry))
    raise AssertionError("unreachable")
