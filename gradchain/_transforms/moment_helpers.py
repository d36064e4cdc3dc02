"""Tree helpers for writing moment-based transformations (Optax's ``optax.update_moment``, ...).

Each maps over an updates tree and a moments tree that mirrors it (``None`` leaves pass
through), computes in at least float32, and rounds the result once to the moment's
storage dtype, so a bfloat16 moment is updated with float32 decays. Like the kit behind
gradchain's own transformations, but public and checked: bad arguments raise
``ValueError``/``TypeError`` naming the helper and the argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradchain._kit import BiasCorrections, Compute, ema_update, map_leaves, store
from gradchain._numerics import abs_sq, as_leaf, compute_dtype, hp, real_dtype
from gradchain._validate import (
    check_decay,
    check_floating,
    check_int,
    check_nonnegative,
    check_positive,
    check_scalar,
)

__all__ = [
    "bias_correction",
    "safe_root_mean_squares",
    "update_infinity_moment",
    "update_moment",
    "update_moment_per_elem_norm",
]


def _check_moment_decay(fn: str, decay: Any) -> None:
    check_scalar(fn, "decay", decay, lo=0.0, hi=1.0)


def _map_moments(fn: str, leaf: Callable, updates: Any, moments: Any) -> Any:
    """``leaf(g, m)`` over the leaves of ``updates`` and ``moments`` (which mirrors it);
    ``None`` where either holds ``None`` (Optax's "no update": its helpers accept
    ``updates=None``). Structure and shapes are checked, the updates must be floating."""
    treedef = jax.tree.structure(updates, is_leaf=lambda x: x is None)
    try:
        mleaves = treedef.flatten_up_to(moments)
    except (ValueError, TypeError):
        raise ValueError(
            f"{fn}: the `updates` tree does not match `moments`.\n"
            f"  updates:  {jax.tree.structure(updates)}\n  moments:  {jax.tree.structure(moments)}"
        ) from None
    check_floating(fn, updates)
    out = []
    for (path, g), m in zip(
        jax.tree_util.tree_leaves_with_path(updates, is_leaf=lambda x: x is None), mleaves
    ):
        if g is None or m is None:
            out.append(None)
            continue
        g, m = as_leaf(g), as_leaf(m)
        if jnp.shape(g) != jnp.shape(m):
            raise ValueError(
                f"{fn}: the update at leaf {jax.tree_util.keystr(path) or '(root)'} has shape "
                f"{jnp.shape(g)}, but `moments` holds shape {jnp.shape(m)} there."
            )
        out.append(leaf(g, m))
    return treedef.unflatten(out)


def bias_correction(moment: Any, decay: Any, count: Any) -> Any:
    """Divide each leaf of a moment tree by ``1 - decay**count`` (Adam's debiasing).

    For an exponential moving average started at 0, ``m_t / (1 - decay**t)`` is an
    unbiased estimate of the averaged quantity::

        m'_t = m_t / (1 - decay**count)

    ``decay**count`` is computed in at least float32 with the count cast first (so
    ``0.999**t`` is not rounded to 1 in bfloat16, and strict dtype promotion holds).

    Args:
        moment: A tree of floating arrays.
        decay: The moment's decay, in [0, 1).
        count: The number of updates averaged into it, an integer ``>= 1`` (an int32
            array or tracer, e.g. a transformation's ``count``).

    Returns:
        A tree like ``moment``, each leaf in its own dtype.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.bias_correction({"w": jnp.array([0.1, 0.2])}, 0.9, 1)  # divide by 0.1
        {'w': Array([1., 2.], dtype=float32)}
    """
    fn = "bias_correction"
    check_decay(fn, "decay", decay)
    check_scalar(fn, "count", count, lo=1.0, integer=True)
    check_floating(fn, moment, "moment")
    corr = BiasCorrections(jnp.asarray(count), d=decay)

    def leaf(m):
        c = Compute(m)
        return (store(c(m) / corr("d", c.dt), m),)

    return map_leaves(leaf, moment)[0]


def update_moment(updates: Any, moments: Any, decay: Any, order: int) -> Any:
    """The exponential moving average of the ``order``-th power of the updates.

    Per leaf::

        m_t = decay * m_{t-1} + (1 - decay) * g_t**order

    (``g**order`` itself, complex for complex ``g``; for ``|g|**order`` use
    `update_moment_per_elem_norm`).

    Args:
        updates: A tree of floating arrays.
        moments: A tree mirroring ``updates``; the result is ``None`` where either
            holds ``None`` (so ``updates=None`` returns ``None``, as in Optax).
        decay: Weight of the old average, in [0, 1].
        order: The power, a Python int ``>= 1``.

    Returns:
        The new moments, each leaf in its moment's dtype.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.update_moment(jnp.array([2.0, -1.0]), jnp.array([1.0, 1.0]), 0.75, 2)
        Array([1.75, 1.  ], dtype=float32)
    """
    fn = "update_moment"
    _check_moment_decay(fn, decay)
    order = check_int(fn, "order", order, 1)

    def leaf(g, m):
        c = Compute(g, m)
        x = c(g)
        if jnp.iscomplexobj(x) and not jnp.iscomplexobj(m):
            raise TypeError(
                f"{fn}: `moments` must be complex where `updates` are complex (g**order is "
                f"complex), got {jnp.result_type(m)}; for |g|**order use `update_moment_per_elem_norm`."
            )
        return store(ema_update(c(m), x**order, decay), m)

    return _map_moments(fn, leaf, updates, moments)


def update_infinity_moment(updates: Any, moments: Any, decay: Any, eps: Any) -> Any:
    """The decaying running maximum of ``|g| + eps`` (Adamax's infinity norm).

    Per leaf::

        v_t = max(|g_t| + eps, decay * v_{t-1})

    Args:
        updates: A tree of floating arrays.
        moments: A real tree mirroring ``updates``.
        decay: Decay of the old maximum, in [0, 1].
        eps: Added to ``|g|``, ``>= 0``.

    Returns:
        The new moments, each leaf in its moment's dtype.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.update_infinity_moment(jnp.array([2.0, -1.0]), jnp.array([1.0, 4.0]), 0.5, 0.0)
        Array([2., 2.], dtype=float32)
    """
    fn = "update_infinity_moment"
    _check_moment_decay(fn, decay)
    check_nonnegative(fn, "eps", eps)

    def leaf(g, v):
        c = Compute(g, v)
        new = jnp.maximum(jnp.abs(c(g)) + c.hp(eps, real=True), c.hp(decay, real=True) * c.real(v))
        return store(new, v)

    return _map_moments(fn, leaf, updates, moments)


def _abs_pow(x: jax.Array, order: Any, rdt: Any) -> jax.Array:
    """``|x|**order``, through ``|x|**2`` for even integer orders (exact for complex ``x``)."""
    if isinstance(order, (int, float)) and float(order).is_integer() and int(order) % 2 == 0:
        return abs_sq(x) ** (int(order) // 2)
    return jnp.abs(x) ** hp(order, rdt)


def update_moment_per_elem_norm(updates: Any, moments: Any, decay: Any, order: Any) -> Any:
    """The exponential moving average of ``|g|**order``, element by element.

    Per leaf::

        m_t = decay * m_{t-1} + (1 - decay) * |g_t|**order

    For ``order = 2`` this is Adam's second moment (``|g|**2`` real for complex ``g``).
    Optax 0.2.8 averages ``g**order`` for real ``g``, which differs (is signed) for odd
    orders; this is ``|g|**order`` for every order.

    Args:
        updates: A tree of floating arrays.
        moments: A tree mirroring ``updates``.
        decay: Weight of the old average, in [0, 1].
        order: The power, a real number ``> 0``.

    Returns:
        The new moments, each leaf in its moment's dtype.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.update_moment_per_elem_norm(jnp.array([-2.0, 1j]), jnp.zeros(2), 0.5, 2)
        Array([2. , 0.5], dtype=float32)
    """
    fn = "update_moment_per_elem_norm"
    _check_moment_decay(fn, decay)
    check_positive(fn, "order", order)

    def leaf(g, m):
        c = Compute(g, m)
        return store(ema_update(c.real(m), _abs_pow(c(g), order, c.rdt), decay), m)

    return _map_moments(fn, leaf, updates, moments)


def safe_root_mean_squares(x: Any, min_rms: Any) -> jax.Array:
    """``max(sqrt(mean(|x|**2)), min_rms)``, with a finite gradient where the bound holds.

    ::

        rms = sqrt(mean(|x|**2))     (0 for an empty x)
        out = rms       if rms > min_rms
        out = min_rms   otherwise (gradient 0 with respect to x, never NaN)

    A plain ``jnp.maximum(jnp.sqrt(...), min_rms)`` differentiates the square root at 0
    (NaN). Computed in at least float32.

    Args:
        x: A floating array.
        min_rms: The lower bound, ``>= 0``.

    Returns:
        A scalar in the real dtype of ``x``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> gradchain.safe_root_mean_squares(jnp.array([3.0, -4.0]), 1e-6).round(4)
        Array(3.5355, dtype=float32)
        >>> jax.grad(gradchain.safe_root_mean_squares)(jnp.zeros(2), 1e-6)
        Array([0., 0.], dtype=float32)
    """
    fn = "safe_root_mean_squares"
    check_nonnegative(fn, "min_rms", min_rms)
    x = as_leaf(x)
    check_floating(fn, x, "x")
    x = jnp.asarray(x)
    rdt = real_dtype(compute_dtype(x.dtype))
    sq = jnp.mean(abs_sq(x.astype(compute_dtype(x.dtype)))) if x.size else jnp.zeros((), rdt)
    lo = hp(min_rms, rdt)
    low = sq <= lo * lo
    rms = jnp.sqrt(jnp.where(low, jnp.ones_like(sq), sq))
    return jnp.where(low, lo, rms).astype(real_dtype(x.dtype))
