"""Every recipe loads and validates (recipes are data)."""

from pathlib import Path

import pytest

from s1kit.config import from_dict, load_yaml
from s1kit.forcing import BudgetPolicy
from s1kit.generate import GenerateConfig

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("generate-*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_generate_recipe_validates(path):
    assert path.read_text().startswith("#") and "Launch:" in path.read_text()
    recipe = load_yaml(path)
    assert set(recipe) <= {"preset", "generate", "policy"}
    from_dict(GenerateConfig, {"model": "m", "prompt": ("x",), **recipe.get("generate", {})})
    policy = BudgetPolicy.preset(recipe.get("preset", "s1"), **recipe.get("policy", {}))
    assert policy.max_thinking_tokens


def test_there_are_recipes():
    assert len(RECIPES) >= 2
