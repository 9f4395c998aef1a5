"""Server-sent events: the streamed chunks of chat and completion requests (every choice, by index)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator

from s1kit.serve.responses import DONE, choice_usage, sse, usage_of

log = logging.getLogger("s1kit.serve")


async def events(queue: asyncio.Queue, count: int, timeout_s: float, Finished, Failed) -> AsyncIterator[tuple]:
    """(choice index, event) until every choice has Finished, or one Failed (a timeout is a
    Failed(TimeoutError) for choice -1)."""
    deadline = time.monotonic() + timeout_s
    left = count
    while left:
        try:
            index, event = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            yield -1, Failed(TimeoutError(f"the request did not finish within {timeout_s} s"))
            return
        yield index, event
        if isinstance(event, Failed):
            return
        if isinstance(event, Finished):
            left -= 1


class Streamer:
    """Chunks for one request; ``failure(event)`` turns a Failed event into an ApiError."""

    def __init__(self, prep, rid: str, created: int, model: str, timeout_s: float, failure, cancel):
        self.prep, self.failure, self.cancel, self.timeout_s = prep, failure, cancel, timeout_s
        chat = prep.kind == "chat"
        self.head = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
                     "created": created, "model": model}
        self.done: dict[int, Any] = {}

    def chunk(self, index: int, payload: dict[str, Any], tokens: int | None = None) -> bytes:
        body: dict[str, Any] = {**self.head, "choices": [{"index": index, **payload}]}
        if self.prep.continuous_usage and tokens is not None:
            prompt = len(self.prep.prompts[self.prep.choices[index].prompt])
            body["usage"] = {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens}
        return sse(body)

    def delta(self, index: int, event) -> bytes:
        if self.prep.kind != "chat":
            return self.chunk(index, {"text": event.content, "logprobs": None, "finish_reason": None}, event.tokens)
        delta: dict[str, Any] = {}
        if event.reasoning and self.prep.include_reasoning:
            delta["reasoning"] = delta["reasoning_content"] = event.reasoning
        if event.content:
            delta["content"] = event.content
        return self.chunk(index, {"delta": delta, "logprobs": None, "finish_reason": None}, event.tokens)

    def last(self, index: int, fin) -> bytes:
        payload: dict[str, Any] = {"delta": {}} if self.prep.kind == "chat" else {"text": ""}
        payload.update(logprobs=None, finish_reason=fin.result.finish_reason)
        if self.prep.return_token_ids:
            payload["token_ids"] = fin.completion_ids
        return self.chunk(index, payload, len(fin.completion_ids))

    def error(self, event) -> bytes:
        from s1kit.serve.protocol import ApiError

        if isinstance(event.error, TimeoutError):
            return sse(ApiError(504, str(event.error), None, "timeout_error").body())
        return sse(self.failure(event).body())

    async def run(self, queue: asyncio.Queue, Finished, Failed, Delta) -> AsyncIterator[bytes]:
        try:
            if self.prep.kind == "chat":
                for c in self.prep.choices:
                    yield self.chunk(c.index, {"delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                               "finish_reason": None}, 0)
            async for index, event in events(queue, len(self.prep.choices), self.timeout_s, Finished, Failed):
                if isinstance(event, Failed):
                    yield self.error(event)
                    break
                if isinstance(event, Finished):
                    self.done[index] = event
                    yield self.last(index, event)
                elif isinstance(event, Delta):
                    yield self.delta(index, event)
            if self.prep.include_usage and len(self.done) == len(self.prep.choices):
                fins = [self.done[c.index] for c in self.prep.choices]
                yield sse({**self.head, "choices": [], "usage": usage_of(self.prep, fins)})
            yield DONE
        except Exception:  # never let a stream die mid-response (that resets the connection)
            log.exception("streaming a response failed")
            yield sse({"error": {"message": "internal server error", "type": "server_error", "param": None,
                                 "code": None}})
            yield DONE
        finally:
            self.cancel()  # a no-op once finished; frees the sequences of a client that left


__all__ = ["Streamer", "events", "choice_usage"]
