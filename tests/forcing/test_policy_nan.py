"""NaN is refused through the Python API too, naming the field (issue 16)."""

import math

import pytest

from s1kit.forcing import BudgetPolicy
from s1kit.forcing.validation import ConfigError


@pytest.mark.parametrize("name", ["temperature", "top_p"])
def test_nan_is_refused_naming_the_field(name):
    with pytest.raises(ConfigError, match=name):
        BudgetPolicy(**{name: math.nan})
