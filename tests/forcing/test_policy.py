import pytest

from s1kit.forcing import BudgetPolicy, ConfigError


def test_defaults_are_the_s1_format():
    p = BudgetPolicy()
    assert p.thinking_start == "<|im_start|>think"
    assert p.thinking_end == "<|im_start|>answer"
    assert p.ignore_strings == ("Wait",)
    assert p.cap_text() == "<|im_start|>answer\nFinal Answer:"


def test_r1_preset_and_override():
    p = BudgetPolicy.preset("r1", max_thinking_tokens=100)
    assert (p.thinking_start, p.thinking_end, p.thinking_stops) == ("<think>\n", "</think>", ("</think>",))
    assert p.max_thinking_tokens == 100


@pytest.mark.parametrize("kwargs, field", [
    ({"max_thinking_tokens": -1}, "max_thinking_tokens"),
    ({"max_thinking_tokens": "lots"}, "max_thinking_tokens"),
    ({"min_thinking_tokens": -3}, "min_thinking_tokens"),
    ({"max_thinking_tokens": 10, "min_thinking_tokens": 11}, "min_thinking_tokens"),
    ({"num_ignore": -1}, "num_ignore"),
    ({"num_ignore": True}, "num_ignore"),
    ({"ignore_strings": ()}, "ignore_strings"),
    ({"ignore_strings": ("Wait", "")}, "ignore_strings"),
    ({"thinking_end": ""}, "thinking_end"),
    ({"thinking_stops": ()}, "thinking_stops"),
    ({"max_answer_tokens": 0}, "max_answer_tokens"),
    ({"temperature": -0.5}, "temperature"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_k": -1}, "top_k"),
    ({"max_thinking_tokens": None, "num_ignore": 1}, "max_thinking_tokens"),
])
def test_invalid_values_name_the_field_and_range(kwargs, field):
    with pytest.raises(ConfigError) as err:
        BudgetPolicy(**kwargs)
    assert err.value.field == field
    assert "allowed" in str(err.value) and field in str(err.value)


def test_unknown_key_is_rejected_by_name():
    with pytest.raises(ConfigError) as err:
        BudgetPolicy.from_dict({"max_thinking_tokens": 5, "max_thinkng_tokens": 6})
    assert err.value.field == "max_thinkng_tokens"
    assert "known keys" in str(err.value)


def test_from_dict_accepts_lists_and_roundtrips():
    p = BudgetPolicy.from_dict({"ignore_strings": ["Wait", "Hmm"], "num_ignore": 2, "max_thinking_tokens": 9})
    assert p.ignore_strings == ("Wait", "Hmm")
    assert BudgetPolicy.from_dict(p.to_dict()) == p
    hash(p)  # usable as a cache key


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset"):
        BudgetPolicy.preset("o1")
