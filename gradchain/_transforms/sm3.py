"""SM3: Adagrad-like adaptivity with one accumulator per row, column, ... of each tensor.

A rank-``k`` parameter of shape ``(n_1, ..., n_k)`` keeps ``n_1 + ... + n_k`` numbers of
second-moment state instead of ``n_1 * ... * n_k``: each coordinate reads the smallest
of the accumulators that cover it, and each accumulator keeps the largest value of the
coordinates it covers.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation
from gradchain._kit import Compute, ema_update, map_leaves, second_moment_dtype, store, zeros_like_params
from gradchain._numerics import abs_sq, as_leaf, leaf_dtype
from gradchain._validate import check_decay, check_nonnegative, check_scalar, check_tree_match, refuse_flat

__all__ = ["ScaleBySM3State", "scale_by_sm3"]


class ScaleBySM3State(NamedTuple):
    """State of `scale_by_sm3`."""

    mu: Any  # per-param list of accumulators, one per axis (shape (n_i,)); one of the param's shape for rank <= 1
    nu: Any  # per-param tree, param dtype: the momentum of the scaled updates


def _cover_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The accumulators' shapes: one vector per axis, or the whole leaf for rank <= 1."""
    if len(shape) < 2:
        return [shape]
    return [(n,) for n in shape]


def scale_by_sm3(b1=0.9, b2=1.0, eps=1e-8) -> GradientTransformation:
    """SM3-II: divide by the square root of the smallest covering accumulator, then average.

    Update rule, per leaf of rank ``k >= 2`` with one accumulator ``a^(i)`` per axis
    ``i`` (a vector of length ``n_i``, broadcast along the other axes)::

        nu_t = min_i a^(i)_{t-1}
        v_t = c * |g_t|**2 + b2 * nu_t            c = 1 if b2 == 1 else 1 - b2
        a^(i)_t = max of v_t over every axis but i
        w_t = g_t / sqrt(v_t + eps)   where v_t > 0, else 0
        m_t = b1 * m_{t-1} + (1 - b1) * w_t
        u_t = m_t

    with ``a_0 = m_0 = 0``. A leaf of rank 0 or 1 keeps one accumulator of its own shape
    (``nu_t = a_{t-1}``, ``a_t = v_t``): Adagrad for ``b2 = 1``. No learning rate, no sign
    flip: chain with `scale_by_learning_rate`, or use `sm3`.

    Scalar parameters are supported (Optax 0.2.8 raises an ``IndexError`` on them), and
    so are complex ones (``|g|**2``; Optax refuses them).

    Args:
        b1: Decay of the momentum of the scaled updates, in [0, 1).
        b2: Decay of the accumulators, in [0, 1]; 1 (the default) sums the squares.
        eps: Added to the accumulator inside the square root, ``>= 0``.

    Returns:
        A `GradientTransformation` with state `ScaleBySM3State(mu, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_sm3(b1=0.0, eps=0.0)
        >>> state = tx.init(jnp.zeros((2, 2)))
        >>> u, state = tx.update(jnp.array([[3.0, 0.0], [0.0, 1.0]]), state)
        >>> u  # first step: g / |g| where g != 0
        Array([[1., 0.],
               [0., 1.]], dtype=float32)
        >>> [a.tolist() for a in state.mu]  # row and column maxima of g**2
        [[9.0, 1.0], [9.0, 1.0]]

    References:
        Anil et al., "Memory-Efficient Adaptive Optimization", NeurIPS 2019.
    """
    fn = "scale_by_sm3"
    check_decay(fn, "b1", b1)
    check_scalar(fn, "b2", b2, lo=0.0, hi=1.0)
    check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        def accumulators(p):
            p = as_leaf(p)
            dt = second_moment_dtype(leaf_dtype(p))
            return [jnp.zeros(s, dt) for s in _cover_shapes(p.shape)]

        return ScaleBySM3State(mu=jax.tree.map(accumulators, params), nu=zeros_like_params(params))

    def new_weight(rdt):
        """``c``: 1 when ``b2 == 1`` (a sum of squares), else ``1 - b2`` (a moving average)."""
        if isinstance(b2, (int, float)):
            return 1.0 if b2 == 1 else 1.0 - b2
        b = jnp.asarray(b2).astype(rdt)
        return jnp.where(b == 1, jnp.ones_like(b), 1 - b)

    def leaf(g, acc, m):
        c = Compute(g, m, *acc)
        x = c(g)
        k = x.ndim
        if k < 2:
            nu = c.real(acc[0])
        else:
            covers = [
                c.real(a).reshape([n if j == i else 1 for j, n in enumerate(x.shape)])
                for i, a in enumerate(acc)
            ]
            nu = functools.reduce(jnp.minimum, covers)
        v = new_weight(c.rdt) * abs_sq(x) + c.hp(b2, real=True) * nu
        if k < 2:
            new_acc = [store(v, acc[0])]
        else:
            others = lambda i: tuple(j for j in range(k) if j != i)
            new_acc = [store(jnp.max(v, axis=others(i), initial=0.0), a) for i, a in enumerate(acc)]
        positive = v > 0
        safe = jnp.where(positive, v, jnp.ones_like(v))
        w = jnp.where(positive, x * c(jax.lax.rsqrt(safe + c.hp(eps, real=True))), jnp.zeros_like(x))
        m = store(ema_update(c(m), w, b1), m)
        return store(c(m), g), new_acc, m

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        refuse_flat(fn, updates)
        check_tree_match(fn, updates, state.nu)
        new_updates, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)
        return new_updates, ScaleBySM3State(mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)
