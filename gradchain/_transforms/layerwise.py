"""Layer-wise scaling: trust ratios (LARS/LAMB), parameter block norms, Adafactor's factored RMS.

A *block* (or layer) is one leaf of the parameter tree: a weight matrix, a kernel, a
bias vector. These transformations compute one statistic per block (a norm, an RMS, or
for Adafactor a row/column factorisation of the second moment) and rescale the block's
updates by it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import EmptyState, GradientTransformation
from gradchain._numerics import abs_sq, as_leaf, compute_dtype, hp, real_dtype, safe_increment, zero_count
from gradchain._validate import (
    check_nonnegative,
    check_scalar,
    check_tree_match,
    refuse_flat,
    require_params,
    schedule_value,
)

__all__ = [
    "FactoredState",
    "scale_by_factored_rms",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_trust_ratio",
]


def _safe_root(sum_sq: jax.Array, min_value) -> jax.Array:
    """``max(sqrt(sum_sq), min_value)``, gradient-safe at ``sum_sq = 0``.

    Where the bound is active, the square root is taken of a constant, so that
    differentiating through the transformation never evaluates ``sqrt'(0)``.
    """
    low = sum_sq <= abs_sq(jnp.asarray(min_value, sum_sq.dtype))
    safe = jnp.where(low, jnp.ones_like(sum_sq), sum_sq)
    return jnp.where(low, jnp.asarray(min_value, sum_sq.dtype), jnp.sqrt(safe))


def _block_stat(x: jax.Array, min_value, *, mean: bool) -> jax.Array:
    """The L2 norm (or RMS) of one leaf in its real compute dtype, bounded below by ``min_value``."""
    x = as_leaf(x)
    dt = compute_dtype(x.dtype)
    rdt = real_dtype(dt)
    sq = abs_sq(x.astype(dt)).astype(rdt)
    s = jnp.mean(sq) if mean else jnp.sum(sq)
    return _safe_root(s, hp(min_value, rdt))


def _scale_leaf(u: jax.Array, factor: jax.Array) -> jax.Array:
    u = as_leaf(u)
    dt = compute_dtype(u.dtype)
    return (u.astype(dt) * factor.astype(dt)).astype(u.dtype)


def scale_by_trust_ratio(min_norm=0.0, trust_coefficient=1.0, eps=0.0) -> GradientTransformation:
    """Rescale each block's update by the trust ratio ``|p| / |u|`` (LARS, LAMB).

    Per leaf, with ``|.|`` the L2 norm of the whole leaf::

        p_norm = max(|p_t|, min_norm)
        u_norm = max(|g_t|, min_norm)
        r_t = trust_coefficient * p_norm / (u_norm + eps)   if p_norm > 0 and u_norm > 0
        r_t = 1                                             otherwise
        u_t = r_t * g_t

    So a step never moves a block by more than ``trust_coefficient`` times its own
    norm (at learning rate 1). Needs ``params`` in ``update``.

    Args:
        min_norm: Lower bound for both norms, ``>= 0`` (0: no bound).
        trust_coefficient: Multiplier of the ratio, ``>= 0``.
        eps: Added to the update norm in the denominator, ``>= 0``.

    Returns:
        A stateless `GradientTransformation` (state `EmptyState()`).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_trust_ratio()
        >>> p, g = jnp.array([3.0, 4.0]), jnp.array([0.0, 10.0])
        >>> tx.update(g, tx.init(p), p)[0]  # |p| / |g| = 5 / 10
        Array([0., 5.], dtype=float32)

    References:
        You et al., "Large Batch Training of Convolutional Networks", 2017 (LARS).
        You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
        minutes", ICLR 2020 (LAMB).
    """
    fn = "scale_by_trust_ratio"
    check_nonnegative(fn, "min_norm", min_norm)
    check_nonnegative(fn, "trust_coefficient", trust_coefficient)
    check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        del params
        return EmptyState()

    def ratio(u, p):
        rdt = real_dtype(compute_dtype(u.dtype))
        p_norm = _block_stat(p, min_norm, mean=False).astype(rdt)
        u_norm = _block_stat(u, min_norm, mean=False)
        r = hp(trust_coefficient, rdt) * p_norm / (u_norm + hp(eps, rdt))
        return jnp.where((p_norm == 0) | (u_norm == 0), jnp.ones_like(r), r)

    def update_fn(updates, state, params=None, **extra_args):
        refuse_flat(fn, updates)
        del extra_args
        require_params(fn, params)
        check_tree_match(fn, updates, params, "`params`")
        return jax.tree.map(lambda u, p: _scale_leaf(u, ratio(u, p)), updates, params), state

    return GradientTransformation(init_fn, update_fn)


def _param_block_scaling(fn: str, min_scale, mean: bool) -> GradientTransformation:
    check_nonnegative(fn, "min_scale", min_scale)

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        refuse_flat(fn, updates)
        del extra_args
        require_params(fn, params)
        check_tree_match(fn, updates, params, "`params`")
        new = jax.tree.map(lambda u, p: _scale_leaf(u, _block_stat(p, min_scale, mean=mean)), updates, params)
        return new, state

    return GradientTransformation(init_fn, update_fn)


def scale_by_param_block_norm(min_scale=1e-3) -> GradientTransformation:
    """Multiply each block's update by the L2 norm of that block's parameters.

    Per leaf::

        u_t = max(|p_t|, min_scale) * g_t

    Args:
        min_scale: Lower bound of the factor, ``>= 0``.

    Returns:
        A stateless `GradientTransformation` (state `EmptyState()`); needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_param_block_norm()
        >>> p = jnp.array([3.0, 4.0])
        >>> tx.update(jnp.array([1.0, -1.0]), tx.init(p), p)[0]
        Array([ 5., -5.], dtype=float32)
    """
    return _param_block_scaling("scale_by_param_block_norm", min_scale, mean=False)


def scale_by_param_block_rms(min_scale=1e-3) -> GradientTransformation:
    """Multiply each block's update by the root mean square of that block's parameters.

    Adafactor's ``multiply_by_parameter_scale``: steps become relative to the scale of
    the weights. Per leaf::

        u_t = max(sqrt(mean(|p_t|**2)), min_scale) * g_t

    Args:
        min_scale: Lower bound of the factor, ``>= 0`` (keeps zero-initialised blocks moving).

    Returns:
        A stateless `GradientTransformation` (state `EmptyState()`); needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_param_block_rms()
        >>> p = jnp.array([1.0, -1.0, 1.0, -1.0])
        >>> tx.update(jnp.full(4, 0.5), tx.init(p), p)[0]
        Array([0.5, 0.5, 0.5, 0.5], dtype=float32)
        >>> tx.update(jnp.ones(2), tx.init(jnp.zeros(2)), jnp.zeros(2))[0]  # min_scale
        Array([0.001, 0.001], dtype=float32)

    References:
        Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory
        Cost", ICML 2018.
    """
    return _param_block_scaling("scale_by_param_block_rms", min_scale, mean=True)


# ------------------------------------------------------------------------ Adafactor


class FactoredState(NamedTuple):
    """State of `scale_by_factored_rms`.

    Every per-parameter tree mirrors the parameters, whatever their shapes: a leaf
    that is factored holds its row/column statistics in ``v_row``/``v_col`` and ``None``
    in ``v``; any other leaf holds its full second moment in ``v`` and ``None`` in
    ``v_row``/``v_col`` (``None`` holds no array: nothing to save, shard or donate).
    """

    count: jax.Array  # int32 scalar: steps taken
    v_row: Any  # factored leaves: mean of g**2 over the largest axis; else None
    v_col: Any  # factored leaves: mean of g**2 over the second-largest axis; else None
    v: Any  # unfactored leaves: full second moment; else None

    def reduced_axes(self, field: str, param_shape: tuple) -> int | None:
        """The parameter axis that ``field``'s leaf for a ``param_shape`` parameter reduces
        over (``None``: it has the parameter's shape), so that it can be sharded like it."""
        axes = factored_axes(tuple(param_shape), True, 1)
        if axes is None or field not in ("v_row", "v_col"):
            return None
        return axes[1] if field == "v_row" else axes[0]


def factored_axes(shape: tuple, factored: bool, min_dim_size_to_factor: int) -> tuple[int, int] | None:
    """``(r, c)``: the second-largest and largest axes, if the leaf is factored."""
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape, kind="stable")
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def _power_decay(step, decay_rate):
    """Adafactor's default second-moment decay ``1 - (step + 1) ** -decay_rate``."""
    t = jnp.asarray(step).astype(jnp.float32) + 1
    return 1 - t ** (-jnp.asarray(decay_rate, jnp.float32))


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate=0.8,
    step_offset=0,
    min_dim_size_to_factor: int = 128,
    epsilon=1e-30,
    decay_rate_fn: Callable[[Any, Any], Any] | None = None,
) -> GradientTransformation:
    """Rescale by a factored estimate of the gradients' RMS (Adafactor's core).

    A leaf whose two largest axes ``r`` (second largest) and ``c`` (largest) both have
    at least ``min_dim_size_to_factor`` entries keeps only per-row and per-column
    averages of ``g**2`` instead of a full second moment. With ``k = count`` (0 on the
    first call)::

        s = max(k - step_offset, 0)
        b_t = 1 - (s + 1) ** (-decay_rate)        (or decay_rate_fn(s, decay_rate))
        G_t = |g_t|**2 + epsilon
        factored leaf:
            R_t = b_t * R_{t-1} + (1 - b_t) * mean(G_t, axis=c)
            C_t = b_t * C_{t-1} + (1 - b_t) * mean(G_t, axis=r)
            V_t = (R_t / mean(R_t, axis=r))  outer  C_t          (broadcast back over r and c)
        other leaf:
            V_t = b_t * V_{t-1} + (1 - b_t) * G_t
        u_t = g_t / sqrt(V_t)

    ``b_1 = 0``, so the first step normalises by the current gradient alone; ``b_t``
    then rises towards 1. The statistics are stored in the parameter's (real) dtype.
    (Optax computes ``b_t`` from ``k - step_offset`` unclamped, which gives NaN updates
    while ``k < step_offset``; the clamp changes only those steps.)

    Args:
        factored: Factor the second moment of leaves with two large axes.
        decay_rate: Exponent of the decay schedule, ``>= 0``.
        step_offset: Step count at which the schedule restarts (for fine-tuning),
            an integer ``>= 0``.
        min_dim_size_to_factor: Factor only if the second-largest axis has at least this
            many entries (a Python int ``>= 1``).
        epsilon: Added to ``|g|**2``, ``>= 0``.
        decay_rate_fn: Optional ``f(step, decay_rate) -> b_t`` replacing the power
            schedule (e.g. one capped below 1, as in Zhai et al.).

    Returns:
        A `GradientTransformation` with state `FactoredState(count, v_row, v_col, v)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_factored_rms()
        >>> g = jnp.array([2.0, -0.5])
        >>> tx.update(g, tx.init(g))[0]  # first step: g / |g|
        Array([ 1., -1.], dtype=float32)
        >>> tx = gradchain.scale_by_factored_rms(min_dim_size_to_factor=2)
        >>> s = tx.init(jnp.zeros((2, 3)))
        >>> s.v_row.shape, s.v_col.shape, s.v
        ((2,), (3,), None)

    References:
        Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory
        Cost", ICML 2018.
        Zhai et al., "Scaling Vision Transformers", CVPR 2022.
    """
    fn = "scale_by_factored_rms"
    if not isinstance(factored, (bool, np.bool_)):
        raise TypeError(f"{fn}: `factored` must be a bool, got {factored!r}.")
    check_nonnegative(fn, "decay_rate", decay_rate)
    check_scalar(fn, "step_offset", step_offset, lo=0.0, integer=True)
    if isinstance(min_dim_size_to_factor, bool) or not isinstance(min_dim_size_to_factor, (int, np.integer)):
        raise TypeError(
            f"{fn}: `min_dim_size_to_factor` must be a Python int (it decides state shapes), "
            f"got {min_dim_size_to_factor!r}."
        )
    check_scalar(fn, "min_dim_size_to_factor", min_dim_size_to_factor, lo=1.0)
    check_nonnegative(fn, "epsilon", epsilon)
    if decay_rate_fn is not None and not callable(decay_rate_fn):
        raise TypeError(f"{fn}: `decay_rate_fn` must be callable or None, got {decay_rate_fn!r}.")
    schedule = _power_decay if decay_rate_fn is None else decay_rate_fn

    def init_fn(params):
        def leaf(p, which):
            shape, rdt = jnp.shape(p), real_dtype(jnp.result_type(p))
            axes = factored_axes(shape, factored, min_dim_size_to_factor)
            if which == "v":
                return None if axes else jnp.zeros_like(p, dtype=rdt)
            if axes is None:
                return None
            r, c = axes
            drop = c if which == "row" else r
            return jnp.zeros(shape[:drop] + shape[drop + 1 :], rdt)

        return FactoredState(
            count=zero_count(),
            v_row=jax.tree.map(lambda p: leaf(p, "row"), params),
            v_col=jax.tree.map(lambda p: leaf(p, "col"), params),
            v=jax.tree.map(lambda p: leaf(p, "v"), params),
        )

    def update_leaf(g, v_row, v_col, v, beta):
        dt = compute_dtype(g.dtype)
        rdt = real_dtype(dt)
        b = beta.astype(rdt)
        g_c = g.astype(dt)
        sq = abs_sq(g_c).astype(rdt) + hp(epsilon, rdt)
        axes = factored_axes(g.shape, factored, min_dim_size_to_factor)
        if axes is None:
            new_v = b * v.astype(rdt) + (1 - b) * sq
            scale = jax.lax.rsqrt(new_v.astype(v.dtype).astype(rdt))
            return (g_c * scale.astype(dt)).astype(g.dtype), v_row, v_col, new_v.astype(v.dtype)
        r, c = axes
        new_row = (b * v_row.astype(rdt) + (1 - b) * jnp.mean(sq, axis=c)).astype(v_row.dtype)
        new_col = (b * v_col.astype(rdt) + (1 - b) * jnp.mean(sq, axis=r)).astype(v_col.dtype)
        row = new_row.astype(rdt)
        r_in_row = r - 1 if r > c else r  # axis r of the leaf, once axis c is removed
        row_factor = jax.lax.rsqrt(row / jnp.mean(row, axis=r_in_row, keepdims=True))
        col_factor = jax.lax.rsqrt(new_col.astype(rdt))
        scale = jnp.expand_dims(row_factor, c) * jnp.expand_dims(col_factor, r)
        return (g_c * scale.astype(dt)).astype(g.dtype), new_row, new_col, v

    def update_fn(updates, state, params=None, **extra_args):
        refuse_flat(fn, updates)
        del params, extra_args
        check_tree_match(fn, updates, state.v)
        step = jnp.maximum(state.count - jnp.asarray(step_offset).astype(jnp.int32), 0)
        beta = schedule_value(fn, "decay_rate_fn", schedule(step, decay_rate))
        leaves_g, treedef = jax.tree.flatten(updates)
        out = [
            update_leaf(g, vr, vc, v, beta)
            for g, vr, vc, v in zip(
                leaves_g,
                treedef.flatten_up_to(state.v_row),
                treedef.flatten_up_to(state.v_col),
                treedef.flatten_up_to(state.v),
            )
        ]
        unflat = lambda i: jax.tree.unflatten(treedef, [o[i] for o in out])
        new_state = FactoredState(
            count=safe_increment(state.count), v_row=unflat(1), v_col=unflat(2), v=unflat(3)
        )
        return unflat(0), new_state

    return GradientTransformation(init_fn, update_fn)
