"""Tree reductions: ``global_norm``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain._numerics import abs_sq, compute_dtype, promote, real_dtype


def global_norm(tree: Any) -> jax.Array:
    """The L2 norm of all leaves together: ``sqrt(sum_i sum(|x_i|**2))``.

    Accumulated in at least float32 whatever the leaves' dtype.

    Args:
        tree: A pytree of arrays (``None`` leaves are ignored).

    Returns:
        A scalar array (float32, or float64 when every leaf is float64).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.global_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0]])})
        Array(5., dtype=float32)
    """
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    if not leaves:
        return jnp.zeros([], jnp.float32)
    dt = promote(*[real_dtype(compute_dtype(x.dtype)) for x in leaves])
    return jnp.sqrt(sum(jnp.sum(abs_sq(x.astype(compute_dtype(x.dtype)))).astype(dt) for x in leaves))
