"""Optax's ``optax.second_order`` namespace (deprecated there since 0.2.7): `hvp`, `hessian_diag`,
`fisher_diag`, each emitting Optax's `DeprecationWarning`.
"""

from gradchain._second_order import fisher_diag as fisher_diag
from gradchain._second_order import hessian_diag as hessian_diag
from gradchain._second_order import hvp as hvp

__all__ = sorted(n for n in dir() if not n.startswith("_"))
