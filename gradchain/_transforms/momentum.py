"""Momentum: accumulate past updates (``trace``) or average them (``ema``).

The two differ only in the weight of the new update::

    trace:  t_t = decay * t_{t-1} + g_t
    ema:    e_t = decay * e_{t-1} + (1 - decay) * g_t
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from gradchain._base import GradientTransformation
from gradchain._kit import Compute, map_leaves, zeros_like_params
from gradchain._numerics import bias_correction_power, hp, real_dtype, safe_increment, zero_count
from gradchain._validate import canonical_dtype, check_decay, check_flag, check_scalar, check_tree_match

__all__ = ["EmaState", "TraceState", "ema", "trace"]


class TraceState(NamedTuple):
    """State of `trace`."""

    trace: Any  # per-param tree: the momentum buffer, in `accumulator_dtype` or the param dtype


class EmaState(NamedTuple):
    """State of `ema`."""

    count: jax.Array  # int32 scalar: steps taken
    ema: Any  # per-param tree: the moving average, in `accumulator_dtype` or the param dtype


def trace(decay, nesterov: bool = False, accumulator_dtype: Any = None) -> GradientTransformation:
    """Heavy-ball momentum: accumulate a decaying sum of past updates.

    Update rule, for incoming update ``g``::

        t_t = decay * t_{t-1} + g_t
        u_t = g_t + decay * t_t        if nesterov
        u_t = t_t                      otherwise

    with ``t_0 = 0``. This is PyTorch's SGD momentum with ``dampening=0``.

    Args:
        decay: Decay of the momentum buffer, in [0, 1] (1: a plain running sum).
        nesterov: Use Nesterov's look-ahead form of the update.
        accumulator_dtype: Dtype of the stored buffer (e.g. ``jnp.bfloat16`` to save
            memory); ``None`` keeps each parameter's dtype. The arithmetic runs in at
            least float32 either way.

    Returns:
        A `GradientTransformation` with state `TraceState(trace)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.trace(0.5)
        >>> s = tx.init(jnp.zeros(2))
        >>> u, s = tx.update(jnp.array([1.0, 2.0]), s)
        >>> tx.update(jnp.array([1.0, 2.0]), s)[0]
        Array([1.5, 3. ], dtype=float32)

    References:
        Polyak, "Some methods of speeding up the convergence of iteration methods", 1964.
        Sutskever et al., "On the importance of initialization and momentum in deep
        learning", ICML 2013.
    """
    check_scalar("trace", "decay", decay, lo=0.0, hi=1.0)  # 1: a running sum, as Optax allows
    check_flag("trace", "nesterov", nesterov)
    accumulator_dtype = canonical_dtype("trace", "accumulator_dtype", accumulator_dtype)

    def init_fn(params):
        return TraceState(trace=zeros_like_params(params, accumulator_dtype))

    def leaf(g, t):
        dt = Compute(g, t).dt
        d = hp(decay, dt)
        x = g.astype(dt)
        new_t = x + d * t.astype(dt)
        u = x + d * new_t if nesterov else new_t
        return u.astype(g.dtype), new_t.astype(t.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("trace", updates, state.trace)
        new_updates, new_trace = map_leaves(leaf, updates, state.trace)
        return new_updates, TraceState(trace=new_trace)

    return GradientTransformation(init_fn, update_fn)


def ema(decay, debias: bool = True, accumulator_dtype: Any = None) -> GradientTransformation:
    """Exponential moving average of past updates, optionally debiased.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        e_t = decay * e_{t-1} + (1 - decay) * g_t
        u_t = e_t / (1 - decay**t)     if debias
        u_t = e_t                      otherwise

    with ``e_0 = 0``; the debiased average of a constant input is that constant.

    Args:
        decay: Decay of the moving average, in [0, 1).
        debias: Divide by ``1 - decay**t`` to remove the bias towards ``e_0 = 0``.
        accumulator_dtype: Dtype of the stored average; ``None`` keeps each
            parameter's dtype. The arithmetic runs in at least float32 either way.

    Returns:
        A `GradientTransformation` with state `EmaState(count, ema)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.ema(0.5, debias=False)
        >>> u, s = tx.update(jnp.array([2.0, 4.0]), tx.init(jnp.zeros(2)))
        >>> u
        Array([1., 2.], dtype=float32)
        >>> gradchain.ema(0.5).update(jnp.array([2.0, 4.0]), tx.init(jnp.zeros(2)))[0]
        Array([2., 4.], dtype=float32)
    """
    check_decay("ema", "decay", decay)
    check_flag("ema", "debias", debias)
    accumulator_dtype = canonical_dtype("ema", "accumulator_dtype", accumulator_dtype)

    def init_fn(params):
        return EmaState(count=zero_count(), ema=zeros_like_params(params, accumulator_dtype))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("ema", updates, state.ema)
        count = safe_increment(state.count)

        def leaf(g, e):
            dt = Compute(g, e).dt
            d = hp(decay, dt)
            new_e = (1 - d) * g.astype(dt) + d * e.astype(dt)
            u = new_e
            if debias:
                rdt = real_dtype(dt)
                u = new_e / (1 - bias_correction_power(decay, count, rdt)).astype(dt)
            return u.astype(g.dtype), new_e.astype(e.dtype)

        new_updates, new_ema = map_leaves(leaf, updates, state.ema)
        return new_updates, EmaState(count=count, ema=new_ema)

    return GradientTransformation(init_fn, update_fn)
