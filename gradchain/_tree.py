"""Tree helpers shared by the transformations; ``global_norm`` is public."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain._numerics import abs_sq, compute_dtype, hp, promote, real_dtype


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


def tree_zeros_like(tree: Any, dtype=None) -> Any:
    """Zeros with the structure and shapes of ``tree``, in ``dtype`` or each leaf's dtype."""
    return jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), dtype or jnp.result_type(x)), tree)


def tree_full_like(tree: Any, value, dtype=None) -> Any:
    """Constant arrays with the structure and shapes of ``tree``."""
    return jax.tree.map(lambda x: jnp.full(jnp.shape(x), value, dtype or jnp.result_type(x)), tree)


def update_moment(updates: Any, moments: Any, decay, order: int) -> Any:
    """``decay * m + (1 - decay) * g**order`` per leaf, in at least float32, cast to ``m``'s dtype."""

    def f(g, m):
        dt = compute_dtype(m.dtype)
        g = g.astype(dt)
        gp = g if order == 1 else (abs_sq(g) if order == 2 else g**order)
        d = hp(decay, dt)
        return (d * m.astype(dt) + (1 - d) * gp).astype(m.dtype)

    return jax.tree.map(f, updates, moments)


def bias_correction(moments: Any, decay, count: jax.Array) -> Any:
    """``m / (1 - decay**count)`` per leaf, in at least float32 (result in that dtype)."""

    def f(m):
        dt = compute_dtype(m.dtype)
        rdt = jnp.finfo(dt).dtype
        corr = 1 - jnp.power(hp(decay, rdt), count.astype(rdt))
        return m.astype(dt) / corr.astype(dt)

    return jax.tree.map(f, moments)


def cast_tree(tree: Any, like: Any) -> Any:
    """Cast each leaf of ``tree`` to the dtype of the matching leaf of ``like``."""
    return jax.tree.map(lambda x, y: x.astype(jnp.result_type(y)), tree, like)
