"""A toy tokenizer with merges and special tokens, and a scripted model, for machine tests."""

from __future__ import annotations

# id -> text. Ids 0-9 are plain letters; 10-17 are merged tokens that contain delimiters or
# pieces of them, so stops must be found across and inside token boundaries.
VOCAB = {
    0: "a", 1: "b", 2: "c", 3: " ", 4: "\n", 5: ".", 6: "x", 7: "y", 8: "z", 9: "!",
    10: "</", 11: "t>", 12: ".\n", 13: "</t>", 14: "q</t>", 15: "Wait", 16: " Wait", 17: "<", 18: "Final",
    100: "<S>", 101: "<E>", 102: "<A>", 103: "<EOS>",
}
SPECIAL = {100, 101, 102, 103}
TEXT_TO_ID = {v: k for k, v in VOCAB.items()}


class FakeCodec:
    atomic_ids = frozenset(SPECIAL)

    def encode(self, text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            # longest match first, as a BPE merge table would prefer
            for j in range(len(text), i, -1):
                if text[i:j] in TEXT_TO_ID:
                    ids.append(TEXT_TO_ID[text[i:j]])
                    i = j
                    break
            else:
                raise ValueError(f"cannot encode {text[i]!r}")
        return ids

    def decode(self, ids) -> str:
        return "".join(VOCAB[i] for i in ids)


class ScriptedModel:
    """Emits its script in order, then ``filler``; a banned token is replaced by ``filler``."""

    def __init__(self, script: list[int], filler: int = 0):
        self.script = list(script)
        self.filler = filler
        self.pos = 0

    def __call__(self, ids: list[int], banned: frozenset[int]) -> int:
        tok = self.script[self.pos] if self.pos < len(self.script) else self.filler
        self.pos += 1
        return self.filler if tok in banned else tok
