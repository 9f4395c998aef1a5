"""The embedded default's world: synthetic tasks, a programmatic teacher and tiny models."""
