"""Clipping: bound the updates elementwise, per tensor, per unit or by their global norm.

Every clip here computes its scale factors first (one scalar per tree, per leaf or
per unit) and then multiplies each leaf by them in one elementwise expression; a
factor is exactly 1 where no clipping happens, so unclipped updates pass bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import EmptyState, GradientTransformation
from gradchain._numerics import abs_sq, compute_dtype, hp
from gradchain._tree import clip_factor, global_norm, scale_leaf
from gradchain._validate import (
    check_nonnegative,
    check_positive,
    check_tree_match,
    require_params,
    check_floating,
)

__all__ = [
    "ClipByGlobalNormState",
    "adaptive_grad_clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
]

# Guards the division in `adaptive_grad_clip` (as in the reference implementation); it
# cannot engage in practice, since a unit is only clipped when its norm exceeds a
# bound that is at least ``clipping * eps``.
_AGC_DIV_EPS = 1e-6


class ClipByGlobalNormState(NamedTuple):
    """State of `clip_by_global_norm`."""

    global_norm: jax.Array  # float32 scalar: norm of the incoming updates at the last step


def _stateless(update_fn) -> GradientTransformation:
    def init_fn(params):
        del params
        return EmptyState()

    return GradientTransformation(init_fn, update_fn)


def clip_by_value(max_delta) -> GradientTransformation:
    """Clip every element of the updates to ``[-max_delta, max_delta]``.

    Optax calls this transformation ``clip``; torch ``clip_grad_value_``::

        u_t = min(max(g_t, -max_delta), max_delta)

    Args:
        max_delta: The largest absolute value an element may keep, ``>= 0``.

    Returns:
        A stateless `GradientTransformation`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.clip_by_value(1.0)
        >>> tx.update(jnp.array([3.0, -0.5, -2.0]), tx.init(None))[0]
        Array([ 1. , -0.5, -1. ], dtype=float32)
    """
    check_nonnegative("clip_by_value", "max_delta", max_delta)

    def f(g):
        d = hp(max_delta, g.dtype)
        return jnp.minimum(jnp.maximum(g, -d), d)

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("clip_by_value", updates)
        del params, extra_args
        return jax.tree.map(f, updates), state

    return _stateless(update_fn)


def clip_by_global_norm(max_norm) -> GradientTransformation:
    """Scale all updates together so that their global L2 norm is at most ``max_norm``.

    One scalar factor for the whole tree, so the update direction is kept (torch's
    ``clip_grad_norm_``). The norm of the incoming updates is kept in the state, for
    logging (torch returns it; Optax does not keep it)::

        n_t = sqrt(sum_i sum(|g_{t,i}|**2))          (over every leaf i)
        c_t = min(1, max_norm / n_t)                 (c_t = 1 when n_t = 0)
        u_t = c_t * g_t

    Args:
        max_norm: The largest global norm the updates may keep, ``> 0``.

    Returns:
        A `GradientTransformation` with state `ClipByGlobalNormState(global_norm)`,
        ``global_norm = n_t`` as a float32 scalar (0 after ``init``).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.clip_by_global_norm(1.0)
        >>> u, state = tx.update({"a": jnp.array([3.0]), "b": jnp.array([4.0])}, tx.init(None))
        >>> u
        {'a': Array([0.6], dtype=float32), 'b': Array([0.8], dtype=float32)}
        >>> state.global_norm
        Array(5., dtype=float32)

    References:
        Pascanu et al., "On the difficulty of training recurrent neural networks",
        ICML 2013.
    """
    check_positive("clip_by_global_norm", "max_norm", max_norm)

    def init_fn(params):
        del params
        return ClipByGlobalNormState(global_norm=jnp.zeros([], jnp.float32))

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("clip_by_global_norm", updates)
        del params, extra_args
        norm = global_norm(updates)
        factor = clip_factor(norm, hp(max_norm, norm.dtype))
        new_updates = jax.tree.map(lambda g: scale_leaf(g, factor), updates)
        return new_updates, ClipByGlobalNormState(global_norm=norm.astype(jnp.float32))

    return GradientTransformation(init_fn, update_fn)


def _leaf_norm(g):
    dt = compute_dtype(g.dtype)
    return jnp.sqrt(jnp.sum(abs_sq(g.astype(dt))))


def clip_by_norm(max_norm) -> GradientTransformation:
    """Scale each update tensor separately so that its L2 norm is at most ``max_norm``.

    Keras' ``clipnorm``; per leaf ``i``::

        n_i = sqrt(sum(|g_i|**2))
        u_i = min(1, max_norm / n_i) * g_i           (u_i = g_i when n_i = 0)

    Args:
        max_norm: The largest norm each leaf may keep, ``> 0``.

    Returns:
        A stateless `GradientTransformation`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.clip_by_norm(1.0)
        >>> u, _ = tx.update({"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.5])}, tx.init(None))
        >>> u
        {'a': Array([0.6, 0.8], dtype=float32), 'b': Array([0.5], dtype=float32)}
    """
    check_positive("clip_by_norm", "max_norm", max_norm)

    def f(g):
        norm = _leaf_norm(g)
        return scale_leaf(g, clip_factor(norm, hp(max_norm, norm.dtype)))

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("clip_by_norm", updates)
        del params, extra_args
        return jax.tree.map(f, updates), state

    return _stateless(update_fn)


def clip_by_block_rms(threshold) -> GradientTransformation:
    """Scale each update tensor separately so that its root mean square is at most ``threshold``.

    A block is one leaf (a weight vector or matrix); per leaf ``i`` of ``size_i``
    elements::

        r_i = sqrt(sum(|g_i|**2) / size_i)
        u_i = min(1, threshold / r_i) * g_i          (u_i = g_i when r_i = 0)

    Args:
        threshold: The largest RMS each leaf may keep, ``> 0``.

    Returns:
        A stateless `GradientTransformation`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.clip_by_block_rms(1.0)
        >>> tx.update(jnp.array([4.0, -4.0]), tx.init(None))[0]
        Array([ 1., -1.], dtype=float32)
    """
    check_positive("clip_by_block_rms", "threshold", threshold)

    def f(g):
        dt = compute_dtype(g.dtype)
        rms = jnp.sqrt(jnp.mean(abs_sq(g.astype(dt))))
        return scale_leaf(g, clip_factor(rms, hp(threshold, rms.dtype)))

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("clip_by_block_rms", updates)
        del params, extra_args
        return jax.tree.map(f, updates), state

    return _stateless(update_fn)


def _unit_axes(shape: tuple, axis) -> tuple:
    """The axes reduced to get one norm per unit (Optax's ``unitwise_norm`` conventions)."""
    ndim = len(shape)
    if axis is not None:
        return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis)) if ndim else ()
    if sum(d != 1 for d in shape) <= 1:  # scalars, vectors (and vectors with unit axes)
        return tuple(range(ndim))
    if ndim in (2, 3):  # dense kernels (in, out), multi-head kernels
        return (0,)
    if ndim in (4, 5):  # conv kernels HWIO, DHWIO
        return tuple(range(ndim - 1))
    raise ValueError(
        f"adaptive_grad_clip: no default unit axes for a parameter of shape {shape} "
        f"(defaults cover 0 to 5 dimensions); pass `axis=` to say which axes form a unit."
    )


def _check_axis(axis) -> None:
    ok = axis is None or (isinstance(axis, int) and not isinstance(axis, bool))
    if not ok and isinstance(axis, (tuple, list)):
        ok = all(isinstance(a, int) and not isinstance(a, bool) for a in axis)
    if not ok:
        raise TypeError(f"adaptive_grad_clip: `axis` must be None, an int or a tuple of ints, got {axis!r}.")


def adaptive_grad_clip(
    clipping, eps=1e-3, *, axis: int | Sequence[int] | None = None
) -> GradientTransformation:
    """Adaptive gradient clipping (AGC): bound each unit's update norm relative to its weights.

    A unit is a slice of a leaf: for a dense kernel ``(in, out)`` one output column
    (norms over axis 0), for a conv kernel ``HWIO``/``DHWIO`` one output filter (all
    axes but the last), for a 3-d multi-head kernel axis 0, and the whole leaf for
    scalars and vectors. For each unit ``k``, with ``||.||_k`` its L2 norm::

        m_k = clipping * max(||p||_k, eps)
        u_k = g_k                                if ||g||_k < m_k
        u_k = g_k * m_k / max(||g||_k, 1e-6)     otherwise

    (the ``1e-6`` only guards the division.)

    Args:
        clipping: The largest allowed ratio of a unit's update norm to its weight norm, ``> 0``.
        eps: Floor on the weight norm, so zero-initialised units can still move, ``>= 0``.
        axis: Axis or axes forming a unit's norm, for every leaf; ``None`` (default)
            picks them from each leaf's shape as described above.

    Returns:
        A stateless `GradientTransformation` whose ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adaptive_grad_clip(0.1, eps=1.0)
        >>> p = jnp.array([[3.0, 0.0], [4.0, 0.0]])   # column norms 5 and 0 (floored to eps)
        >>> g = jnp.array([[1.0, 1.0], [0.0, 0.0]])   # column norms 1 and 1
        >>> tx.update(g, tx.init(p), p)[0]
        Array([[0.5, 0.1],
               [0. , 0. ]], dtype=float32)

    References:
        Brock et al., "High-Performance Large-Scale Image Recognition Without
        Normalization", ICML 2021.
    """
    check_positive("adaptive_grad_clip", "clipping", clipping)
    check_nonnegative("adaptive_grad_clip", "eps", eps)
    _check_axis(axis)

    def init_fn(params):
        for x in jax.tree.leaves(params):
            _unit_axes(jnp.shape(x), axis)  # fail early on shapes without default units
        return EmptyState()

    def f(g, p):
        dt = compute_dtype(g.dtype)
        rdt = jnp.finfo(dt).dtype
        axes = _unit_axes(g.shape, axis)
        g_norm = jnp.sqrt(jnp.sum(abs_sq(g.astype(dt)), axis=axes, keepdims=True))
        pdt = compute_dtype(p.dtype)
        p_norm = jnp.sqrt(jnp.sum(abs_sq(p.astype(pdt)), axis=axes, keepdims=True)).astype(rdt)
        bound = hp(clipping, rdt) * jnp.maximum(p_norm, hp(eps, rdt))
        factor = jnp.where(g_norm < bound, jnp.ones_like(g_norm), bound / jnp.maximum(g_norm, _AGC_DIV_EPS))
        return (g.astype(dt) * factor.astype(dt)).astype(g.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("adaptive_grad_clip", updates)
        del extra_args
        require_params("adaptive_grad_clip", params)
        check_tree_match("adaptive_grad_clip", updates, params, "`params`")
        return jax.tree.map(f, updates, params), state

    return GradientTransformation(init_fn, update_fn)
