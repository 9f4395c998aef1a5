"""Old import path of the OpenAI-compatible backend: see :mod:`s1kit.backends.openai`."""

from s1kit.backends.openai import OpenAIBackend, RemoteBackend, RemoteError, create

__all__ = ["OpenAIBackend", "RemoteBackend", "RemoteError", "create"]
