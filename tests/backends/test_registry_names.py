"""The config layer's backend names are the registry's (config.py may not import backends)."""

from s1kit.backends import NAMES
from s1kit.config import BACKENDS


def test_config_backend_names_match_the_registry():
    assert set(BACKENDS) == set(NAMES)
