"""The RMS family: divide each coordinate by a running root-mean-square of its updates.

Adagrad (`scale_by_rss`), RMSprop (`scale_by_rms`) and centered RMSprop
(`scale_by_stddev`). None applies a learning rate or flips the sign: chain with
`scale_by_learning_rate`.

Numerics: each leaf is computed in at least float32 and rounded once, updates to the
incoming dtype and moments to their storage dtype; why second moments of float16
parameters are stored in float32 is in `gradchain._kit.second_moment_dtype`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation
from gradchain._kit import (
    BiasCorrections,
    Compute,
    ema_update,
    map_leaves,
    second_moment_zeros,
    zeros_like_params,
)
from gradchain._numerics import abs_sq, hp, real_dtype, safe_increment, zero_count
from gradchain._validate import (
    check_decay,
    check_flag,
    check_nonnegative,
    check_tree_match,
)

__all__ = [
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "ScaleByRssState",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_stddev",
]


class ScaleByRssState(NamedTuple):
    """State of `scale_by_rss`."""

    sum_of_squares: Any  # per-param tree, second-moment storage dtype (see module docstring)


class ScaleByRmsState(NamedTuple):
    """State of `scale_by_rms` (``count`` advances whether or not it is used)."""

    count: jax.Array  # int32 scalar: steps taken
    nu: Any  # per-param tree, second-moment storage dtype


class ScaleByRStdDevState(NamedTuple):
    """State of `scale_by_stddev` (``count`` advances whether or not it is used)."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, param dtype
    nu: Any  # per-param tree, second-moment storage dtype


def scale_by_rss(initial_accumulator_value=0.1, eps=1e-7) -> GradientTransformation:
    """Adagrad: divide by the root of the sum of all squared updates so far.

    Update rule, for incoming update ``g``::

        s_t = s_{t-1} + |g_t|**2
        u_t = g_t / sqrt(s_t + eps)     where s_t > 0, else 0

    with ``s_0 = initial_accumulator_value``. PyTorch's Adagrad starts from 0
    (``initial_accumulator_value=0.0``) and adds its ``eps`` outside the root.

    Args:
        initial_accumulator_value: Starting value of the sum, ``>= 0``.
        eps: Added inside the square root, ``>= 0``.

    Returns:
        A `GradientTransformation` with state `ScaleByRssState(sum_of_squares)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_rss(initial_accumulator_value=0.0, eps=0.0)
        >>> tx.update(jnp.array([3.0, -4.0, 0.0]), tx.init(jnp.zeros(3)))[0]
        Array([ 1., -1.,  0.], dtype=float32)

    References:
        Duchi et al., "Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization", JMLR 2011.
    """
    check_nonnegative("scale_by_rss", "initial_accumulator_value", initial_accumulator_value)
    check_nonnegative("scale_by_rss", "eps", eps)

    def init_fn(params):
        return ScaleByRssState(sum_of_squares=second_moment_zeros(params, initial_accumulator_value))

    def leaf(g, s):
        dt = Compute(g, s).dt
        x = g.astype(dt)
        rdt = real_dtype(dt)
        s_new = s.astype(rdt) + abs_sq(x)
        scale = jnp.where(s_new > 0, jax.lax.rsqrt(s_new + hp(eps, rdt)), 0)
        return (scale.astype(dt) * x).astype(g.dtype), s_new.astype(s.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_rss", updates, state.sum_of_squares)
        new_updates, s = map_leaves(leaf, updates, state.sum_of_squares)
        return new_updates, ScaleByRssState(sum_of_squares=s)

    return GradientTransformation(init_fn, update_fn)


def _check_rms_args(fn, decay, eps, initial_scale, eps_in_sqrt, bias_correction):
    check_decay(fn, "decay", decay)
    check_nonnegative(fn, "eps", eps)
    check_nonnegative(fn, "initial_scale", initial_scale)
    check_flag(fn, "eps_in_sqrt", eps_in_sqrt)
    check_flag(fn, "bias_correction", bias_correction)


def _rms_scale(v, eps, eps_in_sqrt: bool):
    """``1 / sqrt(v + eps)`` or ``1 / (sqrt(v) + eps)``."""
    e = hp(eps, v.dtype)
    return jax.lax.rsqrt(v + e) if eps_in_sqrt else 1 / (jnp.sqrt(v) + e)


def scale_by_rms(
    decay=0.9, eps=1e-8, initial_scale=0.0, *, eps_in_sqrt: bool = True, bias_correction: bool = False
) -> GradientTransformation:
    """RMSprop: divide by the root of a moving average of squared updates.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        v_t = decay * v_{t-1} + (1 - decay) * |g_t|**2
        w_t = v_t / (1 - decay**t)      if bias_correction, else v_t
        u_t = g_t / sqrt(w_t + eps)     if eps_in_sqrt
        u_t = g_t / (sqrt(w_t) + eps)   otherwise

    with ``v_0 = initial_scale``. ``eps_in_sqrt=False`` is PyTorch's RMSprop;
    ``eps_in_sqrt=False, bias_correction=True`` is Adam with ``b1=0``.

    Args:
        decay: Decay of the squared-update average, in [0, 1).
        eps: Stabilizer in the denominator, ``>= 0``.
        initial_scale: Starting value of the average, ``>= 0``.
        eps_in_sqrt: Add ``eps`` inside the square root rather than outside.
        bias_correction: Divide the average by ``1 - decay**t``.

    Returns:
        A `GradientTransformation` with state `ScaleByRmsState(count, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_rms(decay=0.75, eps=0.0)
        >>> tx.update(jnp.array([1.0, -2.0]), tx.init(jnp.zeros(2)))[0]
        Array([ 2., -2.], dtype=float32)

    References:
        Tieleman & Hinton, "Lecture 6.5 - RMSProp", Coursera: Neural Networks for
        Machine Learning, 2012.
    """
    _check_rms_args("scale_by_rms", decay, eps, initial_scale, eps_in_sqrt, bias_correction)

    def init_fn(params):
        return ScaleByRmsState(count=zero_count(), nu=second_moment_zeros(params, initial_scale))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_rms", updates, state.nu)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, decay=decay)

        def leaf(g, v):
            dt = Compute(g, v).dt
            x = g.astype(dt)
            v_new = ema_update(v.astype(real_dtype(dt)), abs_sq(x), decay)
            w = v_new / corr("decay", v_new.dtype) if bias_correction else v_new
            return (_rms_scale(w, eps, eps_in_sqrt).astype(dt) * x).astype(g.dtype), v_new.astype(v.dtype)

        new_updates, nu = map_leaves(leaf, updates, state.nu)
        return new_updates, ScaleByRmsState(count=count, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def scale_by_stddev(
    decay=0.9, eps=1e-8, initial_scale=0.0, *, eps_in_sqrt: bool = True, bias_correction: bool = False
) -> GradientTransformation:
    """Centered RMSprop: divide by a moving estimate of the standard deviation.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        m_t = decay * m_{t-1} + (1 - decay) * g_t
        v_t = decay * v_{t-1} + (1 - decay) * |g_t|**2
        m'_t, v'_t = m_t / (1 - decay**t), v_t / (1 - decay**t)   if bias_correction
        m'_t, v'_t = m_t, v_t                                      otherwise
        s_t = max(v'_t - |m'_t|**2, 0)
        u_t = g_t / sqrt(s_t + eps)     if eps_in_sqrt
        u_t = g_t / (sqrt(s_t) + eps)   otherwise

    with ``m_0 = 0``, ``v_0 = initial_scale``. The ``max(., 0)`` only removes rounding
    below zero (Optax has none and returns NaN there, e.g. on the first step with
    ``bias_correction=True``, where ``v'_1 = |m'_1|**2`` exactly in real arithmetic).
    ``eps_in_sqrt=False`` is PyTorch's ``RMSprop(centered=True)``.

    Args:
        decay: Decay of both averages, in [0, 1).
        eps: Stabilizer in the denominator, ``>= 0``.
        initial_scale: Starting value of the squared-update average, ``>= 0``.
        eps_in_sqrt: Add ``eps`` inside the square root rather than outside.
        bias_correction: Divide both averages by ``1 - decay**t``.

    Returns:
        A `GradientTransformation` with state `ScaleByRStdDevState(count, mu, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_stddev(decay=0.75, eps=0.0)
        >>> tx.update(jnp.array([1.0, -2.0]), tx.init(jnp.zeros(2)))[0].round(4)
        Array([ 2.3094, -2.3094], dtype=float32)

    References:
        Graves, "Generating Sequences With Recurrent Neural Networks", 2013, eq. (38)-(41).
    """
    _check_rms_args("scale_by_stddev", decay, eps, initial_scale, eps_in_sqrt, bias_correction)

    def init_fn(params):
        return ScaleByRStdDevState(
            count=zero_count(),
            mu=zeros_like_params(params, None),
            nu=second_moment_zeros(params, initial_scale),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_stddev", updates, state.mu)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, decay=decay)

        def leaf(g, m, v):
            dt = Compute(g, m, v).dt
            rdt = real_dtype(dt)
            x = g.astype(dt)
            m_new = ema_update(m.astype(dt), x, decay)
            v_new = ema_update(v.astype(rdt), abs_sq(x), decay)
            m_hat, v_hat = m_new, v_new
            if bias_correction:
                m_hat, v_hat = m_new / corr("decay", dt), v_new / corr("decay", rdt)
            s = jnp.maximum(v_hat - abs_sq(m_hat), 0)
            u = _rms_scale(s, eps, eps_in_sqrt).astype(dt) * x
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        new_updates, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)
        return new_updates, ScaleByRStdDevState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)
