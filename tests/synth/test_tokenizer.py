"""The tiny models' tokenizer survives a model folder: save_pretrained -> AutoTokenizer round-trips."""

from __future__ import annotations

from transformers import AutoTokenizer

from s1kit.train.tiny import bytes_chat_tokenizer

TEXT = ("<|im_start|>user\nHow many r in  raspberry?<|im_end|>\n<|im_start|>assistant\n"
        "<|im_start|>think\n   r0raspberry\n    r1aspberry\nWait, let me check.\n<|im_start|>answer\nAnswer: 3<|im_end|>")


def test_bytes_tokenizer_round_trips_through_a_model_folder(tmp_path):
    from s1kit.synth.models import tiny_qwen2

    tok = bytes_chat_tokenizer()
    tiny_qwen2(len(tok), hidden_size=32, num_layers=1).save_pretrained(tmp_path)  # a qwen2 config beside it
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    ids = loaded.encode(TEXT, add_special_tokens=False)
    assert ids == tok.encode(TEXT, add_special_tokens=False)
    assert loaded.decode(ids) == TEXT  # spaces, newlines and delimiters exactly
    for special in ("<|im_start|>", "<|im_end|>"):
        assert len(loaded.encode(special, add_special_tokens=False)) == 1
    assert len(loaded.encode("abc 1\n", add_special_tokens=False)) == 6  # one token per ASCII character
    messages = [{"role": "user", "content": "2+2?"}]
    assert loaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
