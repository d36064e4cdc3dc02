"""Tree helpers: ``global_norm`` (public), and the per-leaf scaling every clip and schedule uses."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._numerics import abs_sq, as_leaf, compute_dtype, hp, promote, real_dtype


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
    dt = stats_dtype(leaves)
    return jnp.sqrt(sum(jnp.sum(abs_sq(x.astype(compute_dtype(x.dtype)))).astype(dt) for x in leaves))


def stats_dtype(tree: Any) -> np.dtype:
    """Dtype of scalar statistics about ``tree`` (norms, running means): float32, or
    float64 when every leaf is float64; the real dtype for complex leaves."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.dtype(jnp.float32)
    return promote(*[real_dtype(compute_dtype(jnp.result_type(x))) for x in leaves])


def scale_leaf(g: jax.Array, factor) -> jax.Array:
    """``g * factor`` in ``g``'s compute dtype, cast back to ``g.dtype``."""
    g = as_leaf(g)
    dt = compute_dtype(g.dtype)
    return (g.astype(dt) * hp(factor, dt)).astype(g.dtype)


def scale_tree(updates: Any, factor) -> Any:
    """`scale_leaf` over every leaf of ``updates`` with one scalar ``factor``."""
    return jax.tree.map(lambda g: scale_leaf(g, factor), updates)


def clip_leaf(g: jax.Array, norm: jax.Array, bound) -> jax.Array:
    """``(g / norm) * bound`` where ``norm > bound``, ``g`` elsewhere (NaN norms included),
    in ``g``'s compute dtype: Optax's arithmetic, so clipped updates equal Optax's bit for
    bit (``g * (bound / norm)`` differs in the last bit)."""
    g = as_leaf(g)
    dt = compute_dtype(g.dtype)
    x, n = g.astype(dt), norm.astype(dt)
    return jnp.where(n > hp(bound, dt), (x / n) * hp(bound, dt), x).astype(g.dtype)


def clip_factor(norm: jax.Array, bound) -> jax.Array:
    """``min(1, bound / norm)`` as an array: exactly 1 when ``norm <= bound`` (or NaN,
    or 0), never NaN itself."""
    safe = jnp.where(norm > 0, norm, jnp.ones_like(norm))
    return jnp.where(norm > bound, bound / safe, jnp.ones_like(norm))


def all_finite(tree: Any) -> jax.Array:
    """A bool scalar: no leaf of ``tree`` holds a NaN or an Inf.

    Reads ``all(isfinite(x))`` per floating leaf: a boolean reduction that XLA fuses with
    its producer. (``isfinite(max |x|)`` would be cheaper to write but is wrong: XLA:CPU's
    vectorized ``max`` drops NaN from leaves of 4,096 elements on.) Integer and boolean
    leaves are always finite.
    """
    finite = jnp.ones([], jnp.bool_)
    for x in jax.tree.leaves(tree):
        x = jnp.asarray(x)
        if x.size and jnp.issubdtype(x.dtype, jnp.inexact):
            finite = finite & jnp.all(jnp.isfinite(x))
    return finite


def find_states(state: Any, cls: type) -> list[tuple[tuple, Any]]:
    """Every ``cls`` node inside ``state`` (a chain's, a wrapper's, an ``nnx.Optimizer``'s),
    with its key path: how `health_report`, `loss_scale` and `scale_loss` find their state."""
    is_cls = lambda x: isinstance(x, cls)
    found, _ = jax.tree_util.tree_flatten_with_path(state, is_leaf=is_cls)
    return [(path, s) for path, s in found if is_cls(s)]


def unwrap_variable(x: Any) -> Any:
    """The array inside ``x`` (a ``flax.nnx`` Variable has ``get_value``); anything else as is."""
    get = getattr(x, "get_value", None)
    return get() if callable(get) else x
