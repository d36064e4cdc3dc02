"""Applying updates to parameters."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain._numerics import as_leaf, promote
from gradchain._validate import check_scalar, check_tree_match


def apply_updates(params: Any, updates: Any) -> Any:
    """Return ``params + updates``, each result in its parameter's dtype.

    The sum is formed in the promoted dtype of the two leaves and rounded once to the
    parameter's dtype (so bfloat16 parameters stay bfloat16); ``None`` leaves pass.

    Args:
        params: A pytree of arrays.
        updates: A pytree with the structure of ``params``.

    Returns:
        The updated parameters, with the structure and dtypes of ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.apply_updates({"w": jnp.ones(2)}, {"w": jnp.array([0.5, -1.0])})
        {'w': Array([1.5, 0. ], dtype=float32)}
    """
    if params is None:
        return None
    check_tree_match("apply_updates", updates, params, "`params`", floating=False)

    def f(p, u):
        p = as_leaf(p)
        u = as_leaf(u)
        if not jnp.issubdtype(p.dtype, jnp.inexact) and jnp.issubdtype(u.dtype, jnp.inexact):
            raise TypeError(
                f"apply_updates: a {u.dtype} update cannot be added to a {p.dtype} parameter without "
                "rounding it away; integer and boolean leaves are not trainable (leave them out of the "
                "tree you optimize)."
            )
        dt = promote(p.dtype, u.dtype)
        return (p.astype(dt) + u.astype(dt)).astype(p.dtype)

    return jax.tree.map(f, params, updates)


def incremental_update(new_tensors: Any, old_tensors: Any, step_size) -> Any:
    """Polyak averaging: ``step_size * new + (1 - step_size) * old``.

    Args:
        new_tensors: A pytree of arrays, the latest values.
        old_tensors: A pytree with the same structure, the running average.
        step_size: A number in ``[0, 1]``: 1 copies ``new_tensors``.

    Returns:
        The averaged tree, in the dtypes of ``new_tensors``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.incremental_update(jnp.array([1.0]), jnp.array([0.0]), 0.25)
        Array([0.25], dtype=float32)
    """
    check_scalar("incremental_update", "step_size", step_size, lo=0.0, hi=1.0)
    check_tree_match("incremental_update", new_tensors, old_tensors, "`old_tensors`")

    def f(new, old):
        dt = jnp.result_type(new)
        s = step_size if isinstance(step_size, (int, float)) else jnp.asarray(step_size).astype(dt)
        return (s * new + (1 - s) * old.astype(dt)).astype(dt)

    return jax.tree.map(f, new_tensors, old_tensors)
