"""Request bodies -> :class:`Prepared` requests: validated, tokenized, machines built, nothing queued."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from s1kit.forcing import AUTO, BudgetPolicy, ConfigError, PromptTooLong
from s1kit.serve import protocol as p
from s1kit.serve.budget import DEFAULT, UNSET, resolve_budget
from s1kit.serve.protocol import bad

log = logging.getLogger("s1kit.serve")


@dataclass
class Choice:
    """One sequence of a request: choice ``index`` of prompt ``prompt``."""

    index: int
    prompt: int
    machine: Any
    key: str


@dataclass
class Prepared:
    """A validated request: its prompts, policy, one machine per choice, and the response options."""

    kind: str  # "chat" | "completion"
    prompts: list[list[int]]
    policy: BudgetPolicy
    choices: list[Choice]
    prompt_texts: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    continuous_usage: bool = False
    return_token_ids: bool = False
    skip_special_tokens: bool = False
    include_stop: bool = False
    include_reasoning: bool = True
    logprobs: int | None = None
    echo: bool = False

    @property
    def prompt_ids(self) -> list[int]:  # the first prompt (single-prompt requests)
        return self.prompts[0]


@dataclass
class _Sampling:
    max_tokens_field: str
    max_tokens: int
    n: int
    seed: int | None
    stops: tuple[str, ...]
    stop_ids: tuple[int, ...]
    min_tokens: int
    ignore_eos: bool
    values: dict[str, Any]


class RequestParser:
    """Turns request bodies into :class:`Prepared` requests for one engine and config."""

    def __init__(self, cfg: Any, engine: Any):
        self.cfg = cfg
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.base_policy = BudgetPolicy.preset(cfg.preset)
        self.names = {cfg.model_name, cfg.model}

    # -- endpoints ---------------------------------------------------------------------------

    def completion(self, body: Any) -> Prepared:
        body = self._object(body)
        p.check_fields(body, p.SUPPORTED_COMPLETION, {**p.DEFAULT_ONLY_COMMON, **p.DEFAULT_ONLY_COMPLETION},
                       self.cfg.strict_fields, log)
        self.model(body)
        prompts, texts = self._prompts(body.get("prompt"))
        prep = self._prepare(body, "completion", prompts)
        prep.prompt_texts = texts
        prep.logprobs = p.get_int(body, "logprobs", 0, p.MAX_LOGPROBS, None)
        prep.echo = p.get_bool(body, "echo")
        if prep.stream and (prep.echo or prep.logprobs is not None):
            raise bad("echo" if prep.echo else "logprobs", "'echo' and 'logprobs' are not supported with 'stream'")
        return prep

    def chat(self, body: Any) -> Prepared:
        body = self._object(body)
        p.check_fields(body, p.SUPPORTED_CHAT, {**p.DEFAULT_ONLY_COMMON, **p.DEFAULT_ONLY_CHAT},
                       self.cfg.strict_fields, log)
        self.model(body)
        from s1kit.serve.messages import check_messages, render

        messages = check_messages(body.get("messages"))
        budget = resolve_budget(body, self.cfg.efforts, bad)
        text = render(self.tokenizer, self.cfg.chat_template, messages, budget.template_kwargs)
        return self._prepare(body, "chat", [self.encode(text, "messages")])

    # -- shared ------------------------------------------------------------------------------

    @staticmethod
    def _object(body: Any) -> dict:
        if not isinstance(body, dict):
            raise bad(None, "the request body must be a JSON object")
        return body

    def model(self, body: dict, required: bool = True) -> None:
        model = body.get("model")
        if model is None and not required:
            return
        if not isinstance(model, str) or not model:
            raise bad("model", "'model' is required and must be a string")
        if model not in self.names:
            raise p.ApiError(404, f"The model '{model[:200]}' does not exist; this server serves "
                                  f"'{self.cfg.model_name}'", "model")

    def encode(self, text: str, param: str) -> list[int]:
        try:
            return self.engine.codec.encode(text)
        except (TypeError, ValueError, UnicodeError) as err:  # the tokenizer refused this input
            raise bad(param, f"'{param}' could not be tokenized: {str(err)[:200]}") from None

    def _prompts(self, prompt: Any) -> tuple[list[list[int]], list[str]]:
        """'prompt': a string, a list of ids, or a list of either (one batch, one choice each)."""
        vocab, longest = self.engine.vocab_size, self.cfg.max_prompt_tokens
        ids = p.id_list(prompt, "prompt", vocab, longest)
        if isinstance(prompt, str) or ids is not None:
            prompt = [prompt]
        if not isinstance(prompt, list) or not prompt or len(prompt) > p.MAX_CHOICES:
            raise bad("prompt", "'prompt' must be a string, a list of token ids, or a list of at most "
                                f"{p.MAX_CHOICES} of these")
        out, texts = [], []
        for i, item in enumerate(prompt):
            where = f"prompt[{i}]" if len(prompt) > 1 else "prompt"
            if isinstance(item, str):
                out.append(self.encode(item, where))
                texts.append(item)
                continue
            ids = p.id_list(item, where, vocab, longest)
            if ids is None:
                raise bad(where, f"'{where}' must be a string or a non-empty list of token ids")
            out.append(ids)
            texts.append(self.engine.codec.decode(ids))
        return out, texts

    def _sampling(self, body: dict) -> _Sampling:
        cfg, engine = self.cfg, self.engine
        name, max_tokens = p.max_tokens_of(body, cfg.max_tokens_limit, cfg.default_max_tokens)
        n = p.get_int(body, "n", 1, p.MAX_CHOICES, 1)
        temperature = p.get_temperature(body, cfg.default_temperature)
        top_p = p.get_num(body, "top_p", 0.0, 1.0, 1.0, lo_open=True)
        top_k = p.get_int(body, "top_k", -1, None, 0)
        seed = p.get_int(body, "seed", 0, p.MAX_SEED, None)
        stops = () if body.get("stop") is None else p.str_list(body["stop"], "stop", p.MAX_STOPS, p.MAX_STOP_CHARS, True)
        stop_ids: tuple[int, ...] = ()
        if body.get("stop_token_ids") is not None:
            raw = body["stop_token_ids"]
            if not isinstance(raw, list) or len(raw) > 64:
                raise bad("stop_token_ids", "'stop_token_ids' must be a list of at most 64 token ids")
            for i, t in enumerate(raw):
                if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < engine.vocab_size:
                    raise bad(f"stop_token_ids[{i}]", f"token ids must be integers in [0, {engine.vocab_size})")
            stop_ids = tuple(raw)
        min_tokens = p.get_int(body, "min_tokens", 0, max_tokens, 0)
        ignore_eos = p.get_bool(body, "ignore_eos")
        if body.get("user") is not None and not p.is_short_str(body["user"]):
            raise bad("user", "'user' must be a string of at most 512 characters")
        values = self.base_policy.to_dict()
        values.update(temperature=temperature, top_p=top_p, top_k=max(0, top_k), seed=seed or 0)
        return _Sampling(name, max_tokens, n, seed, stops, stop_ids, min_tokens, ignore_eos, values)

    def _thinking_cap(self, body: dict, kind: str, budget) -> Any:
        """max_thinking_tokens from the request's budget fields (any peer's name) and the defaults."""
        budget_given = any(body.get(f) is not None for f in p.BUDGET_FIELDS if f != "max_thinking_tokens")
        default_mt = self.cfg.default_max_thinking_tokens
        if budget.thinking is DEFAULT:
            mt = default_mt if default_mt is not None else AUTO
        elif budget.thinking is not UNSET:
            mt = budget.thinking
        elif kind == "chat" or budget_given:
            mt = default_mt if default_mt is not None else (AUTO if budget_given else None)
        else:
            mt = None
        if mt is not None and mt != AUTO and (isinstance(mt, bool) or not isinstance(mt, int)):
            raise bad(budget.source or "max_thinking_tokens",
                      f"'{budget.source}' must be an integer, \"auto\" or null, got {p.show(mt)}")
        return mt

    def _policy(self, body: dict, kind: str, s: _Sampling, mt: Any) -> BudgetPolicy:
        values = dict(s.values)
        base_stops = tuple(self.base_policy.answer_stops) if (kind == "chat" or mt is not None) else ()
        answer_stops = tuple(dict.fromkeys(base_stops + s.stops))
        if mt is not None:
            if body.get("ignore_strings") is not None:
                values["ignore_strings"] = p.str_list(body["ignore_strings"], "ignore_strings", p.MAX_IGNORE_STRINGS,
                                                      p.MAX_IGNORE_CHARS, False)
            answer = p.get_int(body, "max_answer_tokens", 1, None, None)
            if answer is not None and answer > s.max_tokens:
                raise bad("max_answer_tokens", f"'max_answer_tokens' ({answer}) must not exceed "
                                               f"'{s.max_tokens_field}' ({s.max_tokens})")
            if answer is None:
                answer = min(self.cfg.default_max_answer_tokens, max(1, s.max_tokens // 4))
            for f in ("min_thinking_tokens", "num_ignore"):
                if body.get(f) is not None:
                    values[f] = body[f]
        else:
            for f in p.BUDGET_FIELDS[1:-1]:
                if body.get(f) is not None:
                    raise bad(f, f"'{f}' needs a thinking phase (max_thinking_tokens is null)")
            answer = min(s.max_tokens, p.get_int(body, "max_answer_tokens", 1, None, s.max_tokens))
        values.update(max_thinking_tokens=mt, max_answer_tokens=answer, answer_stops=answer_stops)
        return BudgetPolicy.from_dict(values)

    def _prepare(self, body: dict, kind: str, prompts: list[list[int]]) -> Prepared:
        param = "messages" if kind == "chat" else "prompt"
        for ids in prompts:
            if not ids:
                raise bad(param, "the prompt is empty")
            if len(ids) > self.cfg.max_prompt_tokens:
                raise bad(param, f"the prompt has {len(ids)} tokens; this server accepts at most "
                                 f"{self.cfg.max_prompt_tokens}")
        stream = p.get_bool(body, "stream")
        include_usage, continuous = p.stream_options(body, stream)
        s = self._sampling(body)
        if len(prompts) * s.n > min(p.MAX_CHOICES, self.engine.max_num_seqs + self.engine.max_queue):
            raise bad("n", f"{len(prompts)} prompt(s) x n={s.n} sequences are more than this server takes at once")
        budget = resolve_budget(body, self.cfg.efforts, bad)
        try:
            policy = self._policy(body, kind, s, self._thinking_cap(body, kind, budget))
            choices = self._choices(prompts, policy, s)
        except PromptTooLong as err:
            raise bad(param, str(err)) from None
        except ConfigError as err:
            raise bad(s.max_tokens_field if err.field == "max_tokens" else err.field, str(err)) from None
        return Prepared(kind, prompts, policy, choices, stream=stream, include_usage=include_usage,
                        continuous_usage=continuous, return_token_ids=p.get_bool(body, "return_token_ids"),
                        skip_special_tokens=p.get_bool(body, "skip_special_tokens"),
                        include_stop=p.get_bool(body, "include_stop_str_in_output"),
                        include_reasoning=budget.include_reasoning)

    def _choices(self, prompts: list[list[int]], policy: BudgetPolicy, s: _Sampling) -> list[Choice]:
        """n machines per prompt; choice j samples with key '#j' (choice 0: '', as a request of its own)."""
        out = []
        base = "" if s.seed is not None else secrets.token_hex(8)
        for i, ids in enumerate(prompts):
            for j in range(s.n):
                machine = self.engine.prepare(ids, policy, max_tokens=s.max_tokens, stop_ids=s.stop_ids,
                                              ignore_eos=s.ignore_eos, min_tokens=s.min_tokens)
                key = base if j == 0 else f"{base}#{j}"
                out.append(Choice(len(out), i, machine, key))
        return out
