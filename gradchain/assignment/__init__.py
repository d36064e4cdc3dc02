"""Optax's ``optax.assignment`` namespace: the linear assignment problem, jit-able
(`hungarian_algorithm`, `base_hungarian_algorithm`).
"""

from gradchain._assignment import base_hungarian_algorithm as base_hungarian_algorithm
from gradchain._assignment import hungarian_algorithm as hungarian_algorithm

__all__ = sorted(n for n in dir() if not n.startswith("_"))
