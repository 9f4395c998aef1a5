"""s1kit: the s1 recipe (Muennighoff et al., 2025) as a toolkit.

Stages: curate -> distill -> train -> generate (budget forcing) -> eval -> report.
"""

__version__ = "0.1.0"
