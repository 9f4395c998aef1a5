"""The embedded default: ``s1kit run recipes/tiny.yaml`` runs curate → train → evaluate → report on a CPU."""

from s1kit.pipeline.config import RunConfig

__all__ = ["RunConfig"]
