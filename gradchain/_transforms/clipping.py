"""Clipping: bound the updates elementwise, per tensor, per unit or by their global norm,
fixed (`clip_by_value`, `clip_by_norm`, `clip_by_block_rms`, `clip_by_global_norm`,
`adaptive_grad_clip`) or adaptive (`autoclip`, `zclip`).

Every clip here computes its scale factors first (one scalar per tree, per leaf or
per unit) and then multiplies each leaf by them in one elementwise expression; a
factor is exactly 1 where no clipping happens, so unclipped updates pass bit for bit.

Adaptive clipping: adaptive clipping: bound the global gradient norm by statistics of its own history.

Both transformations compute one scalar factor ``min(1, bound / ||g||)`` per step and
multiply every leaf by it, so the direction of the update never changes and an
unclipped update passes bit for bit. Their statistics are scalars (float32, or float64
when every parameter is float64) kept in the state, so they run inside ``jit``,
``vmap`` and ``lax.scan``. A step whose gradient norm is not finite leaves every
statistic unchanged (it would poison the history); such an update passes unchanged
and is best handled by a wrapper that skips non-finite steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import EmptyState, GradientTransformation
from gradchain._numerics import abs_sq, compute_dtype, hp, safe_increment, zero_count
from gradchain._tree import clip_factor, clip_leaf, global_norm, scale_leaf, scale_tree, stats_dtype
from gradchain._validate import (
    check_decay,
    check_floating,
    check_int,
    check_nonnegative,
    check_positive,
    check_scalar,
    check_tree_match,
    refuse_flat,
    require_params,
)

__all__ = [
    "AutoClipState",
    "ClipByGlobalNormState",
    "ZClipState",
    "adaptive_grad_clip",
    "autoclip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "zclip",
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
        bound = hp(max_norm, norm.dtype)
        new_updates = jax.tree.map(lambda g: clip_leaf(g, norm, bound), updates)
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
        refuse_flat("clip_by_norm", updates)
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
        refuse_flat("clip_by_block_rms", updates)
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
        refuse_flat("adaptive_grad_clip", updates)
        del extra_args
        require_params("adaptive_grad_clip", params)
        check_tree_match("adaptive_grad_clip", updates, params, "`params`")
        return jax.tree.map(f, updates, params), state

    return GradientTransformation(init_fn, update_fn)


# ------------------------------------------------------------------ adaptive clipping
# --------------------------------------------------------------------------- AutoClip


class AutoClipState(NamedTuple):
    """State of `autoclip`: a ring buffer of past global norms.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> state = gradchain.autoclip(history_size=4).init(jnp.zeros(3))
        >>> state.history, int(state.num_valid)
        (Array([0., 0., 0., 0.], dtype=float32), 0)
    """

    count: jax.Array  # int32 scalar: steps taken
    position: jax.Array  # int32 scalar: the ring-buffer slot the next norm is written to
    num_valid: jax.Array  # int32 scalar: how many slots of `history` hold a norm (<= history_size)
    history: jax.Array  # [history_size] float32 (float64 for float64 params): past global norms


def _percentile(history: jax.Array, num_valid: jax.Array, q) -> jax.Array:
    """``np.percentile(history[:num_valid], q)`` (linear interpolation), for ``num_valid >= 1``.

    Invalid slots are set to +inf so that they sort after every valid entry.
    """
    size = history.shape[0]
    valid = jnp.arange(size, dtype=jnp.int32) < num_valid
    s = jnp.sort(jnp.where(valid, history, jnp.asarray(jnp.inf, history.dtype)))
    n = jnp.maximum(num_valid, 1)
    k = (n - 1).astype(history.dtype) * (hp(q, history.dtype) / 100)
    lo = jnp.clip(jnp.floor(k).astype(jnp.int32), 0, n - 1)
    hi = jnp.minimum(lo + 1, n - 1)
    frac = k - lo.astype(history.dtype)
    a, b = s[lo], s[hi]
    return a + (b - a) * frac


def autoclip(percentile=10.0, history_size: int = 1000) -> GradientTransformation:
    """AutoClip: clip the global norm to a percentile of the norms seen so far.

    The history holds the last ``history_size`` finite global norms (a ring buffer;
    the paper keeps all of them). At step ``t`` the current norm is recorded first,
    then the threshold is taken over the recorded norms, with NumPy's default linear
    interpolation (``np.percentile(..., method="linear")``)::

        n_t = ||g_t||_2                               (global L2 norm of all leaves)
        H_t = last history_size finite norms among n_1, ..., n_t
        c_t = percentile(H_t, percentile)
        u_t = g_t * min(1, c_t / n_t)

    A non-finite ``n_t`` is not recorded; its update passes unchanged. Constant norms
    are never clipped (``c_t = n_t``); a spike above the recent percentile is.

    Args:
        percentile: The percentile ``p`` in ``[0, 100]`` of the history used as the
            clipping threshold (the paper recommends 10 for source separation).
        history_size: How many past norms to keep, a Python int ``>= 1``.

    Returns:
        A `GradientTransformation` with state
        `AutoClipState(count, position, num_valid, history)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.autoclip(percentile=50.0, history_size=8)
        >>> state = tx.init(jnp.zeros(2))
        >>> u, state = tx.update(jnp.array([3.0, 4.0]), state)  # history [5]: kept
        >>> u
        Array([3., 4.], dtype=float32)
        >>> u, state = tx.update(jnp.array([30.0, 40.0]), state)  # history [5, 50]: median 27.5
        >>> u
        Array([16.5, 22. ], dtype=float32)
        >>> int(state.num_valid)
        2

    References:
        Seetharaman, Wichern, Pardo & Le Roux, "AutoClip: Adaptive Gradient Clipping
        for Source Separation Networks", IEEE MLSP 2020.
    """
    check_scalar("autoclip", "percentile", percentile, lo=0.0, hi=100.0)
    check_int("autoclip", "history_size", history_size, 1)
    size = int(history_size)

    def init_fn(params):
        dt = stats_dtype(params)
        return AutoClipState(
            count=zero_count(),
            position=zero_count(),
            num_valid=zero_count(),
            history=jnp.zeros([size], dt),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("autoclip", updates)
        del params, extra_args
        dt = state.history.dtype
        norm = global_norm(updates).astype(dt)
        finite = jnp.isfinite(norm)
        old = jnp.asarray(state.history)  # a restored checkpoint may hold NumPy arrays
        history = jnp.where(finite, old.at[state.position].set(norm), old)
        position = jnp.where(finite, (state.position + 1) % size, state.position)
        num_valid = jnp.where(finite, jnp.minimum(state.num_valid + 1, size), state.num_valid)
        bound = _percentile(history, num_valid, percentile)
        factor = jnp.where(num_valid > 0, clip_factor(norm, bound), jnp.ones_like(norm))
        new_state = AutoClipState(
            count=safe_increment(state.count),
            position=position.astype(jnp.int32),
            num_valid=num_valid.astype(jnp.int32),
            history=history,
        )
        return scale_tree(updates, factor), new_state

    return GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------- ZClip


class ZClipState(NamedTuple):
    """State of `zclip`: the statistics of the gradient norm.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.zclip().init(jnp.zeros(3))
        ZClipState(count=Array(0, dtype=int32), mean=Array(0., dtype=float32), var=Array(0., dtype=float32))
    """

    count: jax.Array  # int32 scalar: steps with a finite gradient norm
    mean: jax.Array  # float32 scalar: running mean (warm-up) / EMA (after) of the norm
    var: jax.Array  # float32 scalar: running variance (warm-up) / EMA (after) of the norm


def zclip(
    alpha=0.97,
    z_thresh=2.5,
    *,
    warmup_steps: int = 25,
    eps=1e-6,
    max_norm=None,
) -> GradientTransformation:
    """ZClip: clip gradient-norm spikes detected by a z-score against EMA statistics.

    Warm-up (the first ``warmup_steps`` finite norms): no adaptive clipping; the mean
    and the (population) variance of those norms are accumulated exactly (Welford), so
    that after step ``warmup_steps`` they are the buffer's mean and variance, as in the
    reference implementation. After warm-up, with ``n_t = ||g_t||_2``::

        z_t  = (n_t - mu) / (sqrt(var) + eps)
        n*_t = mu + (z_thresh**2 / z_t) * sqrt(var)   if z_t > z_thresh   (reciprocal clipping)
        n*_t = n_t                                     otherwise
        u_t  = g_t * min(1, n*_t / n_t)
        mu   <- alpha * mu + (1 - alpha) * n*_t        (EMA of the *clipped* norm)
        var  <- alpha * var + (1 - alpha) * (n*_t - mu)**2   (with the new mu)

    At ``z_t = z_thresh`` the bound equals ``n_t`` (continuous), and the larger the
    spike the lower the bound. With ``max_norm`` the bound is further capped at
    ``max_norm`` at every step, warm-up included (the statistics still see ``n*_t``).
    A non-finite ``n_t`` leaves the state unchanged and its update passes unchanged.

    Args:
        alpha: EMA decay of the mean and variance, in ``[0, 1)`` (paper: 0.97).
        z_thresh: z-score above which a norm is a spike, ``> 0`` (paper: 2.5).
        warmup_steps: Finite norms to collect before clipping starts, a Python int
            ``>= 1`` (reference implementation: 25).
        eps: Added to the standard deviation in the z-score, ``>= 0``.
        max_norm: Optional fixed upper bound on the norm, ``> 0``, or ``None``.

    Returns:
        A `GradientTransformation` with state `ZClipState(count, mean, var)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.zclip(alpha=0.9, z_thresh=2.0, warmup_steps=2)
        >>> state = tx.init(jnp.zeros(2))
        >>> for n in (1.0, 3.0):  # warm-up: mean 2, std 1
        ...     _, state = tx.update(jnp.array([0.0, n]), state)
        >>> u, state = tx.update(jnp.array([0.0, 10.0]), state)  # z = 8: bound 2 + 4/8 = 2.5
        >>> u
        Array([0. , 2.5], dtype=float32)
        >>> float(state.mean)  # 0.9 * 2 + 0.1 * 2.5
        2.05

    References:
        Kumar, Owen, Roy Chowdhury & Güra, "ZClip: Adaptive Spike Mitigation for LLM
        Pre-Training", arXiv:2504.02507, 2025 (reference code: bluorion-com/ZClip).
    """
    check_decay("zclip", "alpha", alpha)
    check_positive("zclip", "z_thresh", z_thresh)
    check_int("zclip", "warmup_steps", warmup_steps, 1)
    check_nonnegative("zclip", "eps", eps)
    if max_norm is not None:
        check_positive("zclip", "max_norm", max_norm)

    def init_fn(params):
        dt = stats_dtype(params)
        return ZClipState(count=zero_count(), mean=jnp.zeros([], dt), var=jnp.zeros([], dt))

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("zclip", updates)
        del params, extra_args
        dt = state.mean.dtype
        norm = global_norm(updates).astype(dt)
        finite = jnp.isfinite(norm)
        mean, var = state.mean, state.var
        in_warmup = state.count < warmup_steps

        # Warm-up: exact running mean / population variance of the first norms.
        n = (state.count + 1).astype(dt)
        delta = norm - mean
        w_mean = mean + delta / n
        w_var = var + (delta * (norm - w_mean) - var) / n

        # After warm-up: z-score against the EMA statistics, reciprocal clipping.
        a, zt = hp(alpha, dt), hp(z_thresh, dt)
        std = jnp.sqrt(var)
        z = delta / (std + hp(eps, dt))
        spike = jnp.logical_and(jnp.logical_not(in_warmup), z > zt)
        safe_z = jnp.where(spike, z, jnp.ones_like(z))
        clipped = jnp.where(spike, mean + (zt * zt / safe_z) * std, norm)
        e_mean = a * mean + (1 - a) * clipped
        e_var = a * var + (1 - a) * (clipped - e_mean) ** 2

        bound = clipped
        if max_norm is not None:
            bound = jnp.minimum(bound, hp(max_norm, dt))
        factor = clip_factor(norm, bound)

        new_mean = jnp.where(in_warmup, w_mean, e_mean)
        new_var = jnp.where(in_warmup, w_var, e_var)
        new_state = ZClipState(
            count=jnp.where(finite, safe_increment(state.count), state.count),
            mean=jnp.where(finite, new_mean, mean).astype(dt),
            var=jnp.where(finite, new_var, var).astype(dt),
        )
        return scale_tree(updates, factor), new_state

    return GradientTransformation(init_fn, update_fn)
