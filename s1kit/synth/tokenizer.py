"""A character-level tokenizer with the s1 ChatML delimiters as special tokens.

    tok = char_tokenizer()      # in memory: tests and bench/learnability.py

Tiny models need a tiny vocabulary; this one is built in code, so nothing is downloaded. Do not
save it into a Qwen2 model folder: transformers 5 reloads such a folder's tokenizer as
``Qwen2Tokenizer``, whose byte-level pre-tokenizer drops this vocabulary's spaces and newlines.
Model folders use :func:`s1kit.train.tiny.bytes_chat_tokenizer` (one token per byte, round-trips).
"""

from __future__ import annotations

import string

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHARS = sorted(set(string.printable) - set("\x0b\x0c\r"))


def char_tokenizer():
    """A PreTrainedTokenizerFast over printable ASCII (unknown characters map to <|endoftext|>), for in-memory use."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  unk_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    return tok
