"""Optional LLM judge: the grader's last tier, through any OpenAI-compatible chat endpoint.

    s1kit eval --model PATH --benchmarks math500 --judge-model gpt-4o-mini \\
        --judge-base-url https://api.openai.com/v1 --judge-api-key-env OPENAI_API_KEY

    judge = LLMJudge(JudgeConfig(model="qwen2.5-7b-instruct", base_url="http://127.0.0.1:8000/v1",
                                 cache_path="runs/eval/judge_cache.sqlite"))
    grade(output_text, gold, kind="math", judge=judge, question=problem_text)

The judge is asked, at temperature 0, whether the model's final answer equals the reference;
it must reply ``CORRECT`` or ``INCORRECT`` (a trailing period and case are tolerated). Anything
else is "judge_unparsable" and counts as incorrect, with the reply in the reason. It is consulted
only when the offline tiers could not decide (``when="undecided"``: no answer extracted,
math-verify could not parse, timed out or crashed), also for offline "incorrect" verdicts
(``when="incorrect"``), or for every sample (``when="always"``).

Decisions are cached on disk (SQLite), keyed by sha256 of (gold, prediction, question, judge
model, prompt template), so a rerun or a resumed run makes no HTTP call for a pair it has seen.
Only parsed verdicts are cached: an unparsable reply or a failed request is retried next run.
The API key is read from the environment variable named in the config and never logged or stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from s1kit.forcing.validation import ConfigError, check_choice

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"  # the OpenAI client's default endpoint
WHEN = ("undecided", "incorrect", "always")
# Offline tiers that did not reach a verdict on the answer itself.
UNDECIDED_TIERS = ("unparsable", "timeout", "error")
# The prediction shown to the judge is cut to this many characters (the answer region can be long).
MAX_PREDICTION_CHARS = 4000
PROMPT = (
    "You are grading the final answer of a solution to a problem against the reference answer.\n"
    "Reply with exactly one word: CORRECT if the final answer is mathematically equivalent to the "
    "reference answer, INCORRECT otherwise.\n\n"
    "Problem:\n{question}\n\nReference answer:\n{gold}\n\nFinal answer to grade:\n{prediction}\n"
)
_VERDICT = re.compile(r"\s*\**\s*(CORRECT|INCORRECT)\s*\**\s*\.?\s*", re.IGNORECASE)


@dataclass
class JudgeConfig:
    """Which endpoint judges, when it is asked, and where its decisions are cached."""

    model: str = field(default="", metadata={"help": "Judge model name at the endpoint."})
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible base URL (…/v1)."})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "Env var holding the API key."})
    when: str = field(default="undecided", metadata={"help": "undecided, incorrect or always."})
    cache_path: str | None = field(default=None, metadata={"help": "SQLite cache file (None: no cache)."})
    timeout_s: float = field(default=60.0, metadata={"help": "Per-request HTTP timeout (seconds)."})
    max_retries: int = field(default=2, metadata={"help": "Client retries on transient HTTP errors."})
    prompt: str = field(default=PROMPT, metadata={"help": "Template with {question}, {gold}, {prediction}."})

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("judge_model", self.model, "a model name served at the judge endpoint")
        check_choice("judge_when", self.when, WHEN)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env or ""):
            raise ConfigError("judge_api_key_env", self.api_key_env, "an environment variable name")
        if not self.timeout_s > 0:
            raise ConfigError("judge_timeout_s", self.timeout_s, "> 0")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError("judge_max_retries", self.max_retries, "an integer >= 0")
        for slot in ("{question}", "{gold}", "{prediction}"):
            if slot not in self.prompt:
                raise ConfigError("judge_prompt", self.prompt[:40] + "…", f"a template containing {slot}")


@dataclass(frozen=True)
class JudgeVerdict:
    """``status``: "correct", "incorrect", "unparsable" (reply not a verdict) or "error" (no reply)."""

    status: str
    reply: str
    cached: bool


def parse_verdict(reply: str) -> str | None:
    """``parse_verdict("Correct.")`` -> "correct"; None when the reply is not exactly a verdict."""
    match = _VERDICT.fullmatch(reply or "")
    return match.group(1).lower() if match else None


class LLMJudge:
    """Asks the endpoint, through the cache; counts HTTP calls and cache hits."""

    def __init__(self, cfg: JudgeConfig, client=None) -> None:
        self.cfg = cfg
        self._client = client
        self._lock = threading.Lock()
        self._db = _open_cache(cfg.cache_path) if cfg.cache_path else None
        self.http_calls = 0
        self.cache_hits = 0

    def should_judge(self, offline_tier: str, offline_correct: bool) -> bool:
        if self.cfg.when == "always":
            return True
        if offline_tier in UNDECIDED_TIERS:
            return True
        return self.cfg.when == "incorrect" and not offline_correct

    def cache_key(self, question: str, gold: str, prediction: str) -> str:
        blob = json.dumps([gold, prediction, question, self.cfg.model, self.cfg.prompt], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def judge(self, question: str, gold: str, prediction: str) -> JudgeVerdict:
        prediction = prediction[-MAX_PREDICTION_CHARS:]
        key = self.cache_key(question, gold, prediction)
        hit = self._cached(key)
        if hit is not None:
            self.cache_hits += 1
            return JudgeVerdict(hit[0], hit[1], cached=True)
        try:
            reply = self._ask(question, gold, prediction)
        except ImportError:
            raise
        except Exception as err:  # the run goes on; the sample is incorrect with this reason
            return JudgeVerdict("error", f"judge request failed: {type(err).__name__}: {err}", cached=False)
        status = parse_verdict(reply)
        if status is None:
            return JudgeVerdict("unparsable", reply, cached=False)
        self._store(key, status, reply)
        return JudgeVerdict(status, reply, cached=False)

    def _ask(self, question: str, gold: str, prediction: str) -> str:
        """One chat completion through :func:`s1kit.http.post_json` (retries, backoff, jitter)."""
        from s1kit.http import post_json

        if self._client is not None:  # an injected OpenAI-style client (tests, custom transports)
            self.http_calls += 1
            resp = self._client.chat.completions.create(model=self.cfg.model, temperature=0, max_tokens=8,
                                                        messages=[{"role": "user", "content": self._prompt(
                                                            question, gold, prediction)}])
            return (resp.choices[0].message.content or "") if resp.choices else ""
        self.http_calls += 1
        body = {"model": self.cfg.model, "temperature": 0, "max_tokens": 8,
                "messages": [{"role": "user", "content": self._prompt(question, gold, prediction)}]}
        status, reply = post_json(f"{(self.cfg.base_url or DEFAULT_BASE_URL).rstrip('/')}/chat/completions", body,
                                  headers=self._headers(), timeout=self.cfg.timeout_s, retries=self.cfg.max_retries)
        if status >= 400:
            raise RuntimeError(f"judge endpoint answered HTTP {status}")
        try:
            return reply["choices"][0]["message"]["content"] or "" if reply.get("choices") else ""
        except (AttributeError, KeyError, IndexError, TypeError):
            raise RuntimeError("judge endpoint sent a malformed chat completion") from None

    def _prompt(self, question: str, gold: str, prediction: str) -> str:
        return self.cfg.prompt.format(question=question, gold=gold, prediction=prediction)

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.cfg.api_key_env)
        if not key:
            # Local servers (vLLM, s1kit serve) need none.
            log.warning("judge: environment variable %s is not set; sending no API key", self.cfg.api_key_env)
            return {}
        return {"Authorization": f"Bearer {key}"}

    def _cached(self, key: str) -> tuple[str, str] | None:
        if self._db is None:
            return None
        with self._lock:
            row = self._db.execute("SELECT status, reply FROM verdicts WHERE key = ?", (key,)).fetchone()
        return (row[0], row[1]) if row else None

    def _store(self, key: str, status: str, reply: str) -> None:
        if self._db is None:
            return
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO verdicts (key, status, reply, model) VALUES (?, ?, ?, ?)",
                             (key, status, reply, self.cfg.model))
            self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _open_cache(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, status TEXT, reply TEXT, model TEXT)")
    db.commit()
    return db
