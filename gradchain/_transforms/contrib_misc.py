"""MoMo: momentum (`momo`) and Adam (`momo_adam`) with a Polyak-type step size, computed from
the loss value, a lower bound of the loss and a model of the loss built from the momentum.

Both are complete optimizers (their updates include the step and its sign) and need the
parameters and the loss: ``update(grads, state, params, value=loss)``. The scalars of
the model (``barf``, ``gamma``, ``lb``) are stored in at least float32 (float64 when every
parameter is float64); Optax stores them in the lowest parameter dtype.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._kit import Compute, map_leaves, second_moment_zeros, store, zeros_like_params
from gradchain._numerics import abs_sq, as_leaf, hp, is_tracer, safe_increment, zero_count
from gradchain._tree import stats_dtype
from gradchain._validate import (
    check_decay,
    check_flag,
    check_nonnegative,
    check_scalar,
    check_tree_match,
    require_params,
    schedule_value,
)

__all__ = ["MomoAdamState", "MomoState", "momo", "momo_adam"]

_TINY = float(np.finfo(np.float64).eps)  # Optax's `jnp.finfo(float).eps`: no step below it


class MomoState(NamedTuple):
    """State of `momo` (Optax's field order)."""

    exp_avg: Any  # per-param tree, param dtype: the momentum
    barf: jax.Array  # scalar, float32 (float64 for float64 params): EMA of the loss values
    gamma: jax.Array  # scalar, as barf: EMA of <g_t, x_t>
    lb: jax.Array  # scalar, as barf: the (estimated) lower bound of the loss
    count: jax.Array  # int32 scalar: steps taken


class MomoAdamState(NamedTuple):
    """State of `momo_adam` (Optax's field order)."""

    exp_avg: Any  # per-param tree, param dtype: the first moment
    exp_avg_sq: Any  # per-param tree, second-moment storage dtype
    barf: jax.Array  # scalar, float32 (float64 for float64 params): EMA of the loss values
    gamma: jax.Array  # scalar, as barf: EMA of <g_t, x_t>
    lb: jax.Array  # scalar, as barf: the (estimated) lower bound of the loss
    count: jax.Array  # int32 scalar: steps taken


def _check_args(fn, learning_rate, lower_bound, weight_decay, adapt_lower_bound):
    check_nonnegative(fn, "learning_rate", learning_rate, allow_schedule=True)
    check_scalar(fn, "lower_bound", lower_bound)
    check_nonnegative(fn, "weight_decay", weight_decay)
    check_flag(fn, "adapt_lower_bound", adapt_lower_bound)


def _loss_value(fn: str, extra_args: dict, dtype) -> jax.Array:
    value = extra_args.get("value")
    if value is None:
        raise ValueError(
            f"{fn}: `value` must be passed to update as a keyword argument, the loss at `params` "
            "(`update(grads, state, params, value=loss)`, e.g. from `jax.value_and_grad`), got None."
        )
    value = jnp.asarray(value)
    if value.ndim != 0 or not jnp.issubdtype(value.dtype, jnp.number) or jnp.iscomplexobj(value):
        raise ValueError(f"{fn}: `value` must be a real scalar (the loss), got {value!r}.")
    return value.astype(dtype)


def _real_dot(a: jax.Array, b: jax.Array, dt) -> jax.Array:
    """``Re <a, b> = Re sum(conj(a) * b)`` (the plain dot product for real leaves), in ``dt``."""
    if jnp.iscomplexobj(a) or jnp.iscomplexobj(b):
        return jnp.real(jnp.vdot(a, b)).astype(dt)
    return jnp.vdot(a, b).astype(dt)


def _sum(xs: list, dt) -> jax.Array:
    """Leaf statistics summed in leaf order (Optax's ``tree.reduce(add, initializer=0)``)."""
    total = jnp.zeros([], dt)
    for x in xs:
        total = total + x
    return total


def _power(decay, count: jax.Array, dt) -> jax.Array:
    """``decay ** count`` with an integer exponent, as Optax computes it: exact products
    eagerly (a concrete count), XLA's ``pow`` under ``jit`` (the two differ by an ulp)."""
    base = jnp.asarray(decay).astype(dt)
    if is_tracer(count):
        return jnp.power(base, count.astype(dt))
    return jax.lax.integer_pow(base, int(count))


def _learning_rate(fn: str, learning_rate, count, dt) -> Any:
    """The step cap at ``count``: a Python number stays one (Optax's arithmetic), else ``dt``."""
    if callable(learning_rate):
        return schedule_value(fn, "learning_rate", learning_rate(count)).astype(dt)
    return hp(learning_rate, dt)


def momo(
    learning_rate: ScalarOrSchedule = 1.0,
    beta=0.9,
    lower_bound=0.0,
    weight_decay=0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    """MoMo: SGD with momentum and a Polyak-type step size ``min(learning_rate, ...)``.

    A complete optimizer (the updates include the step and its sign);
    ``update(grads, state, params, value=loss)`` needs the parameters ``x`` and the loss
    ``f``. With ``a = learning_rate`` (at the schedule's step ``count``), ``lam =
    weight_decay``, ``b = 0`` at the first step (the averages start at the first values)
    and ``b = beta`` afterwards, inner products ``<., .>`` over the whole tree (their real
    part for complex leaves)::

        fbar_t = b * fbar_{t-1} + (1 - b) * f_t
        d_t = b * d_{t-1} + (1 - b) * g_t
        gam_t = b * gam_{t-1} + (1 - b) * <g_t, x_t>
        n_t = <d_t, d_t>,   p_t = <d_t, x_t>
        h_t = (1 + a * lam) * (fbar_t - gam_t) + p_t
        lb' = max(h_t / (2 * (1 + a * lam)), lower_bound)  if adapt and h_t < (1 + a * lam) * lb
        lb' = lb                                           otherwise
        tau_t = min(a, max((1 + a * lam) * (fbar_t - lb' - gam_t) + p_t, 0) / n_t)  (0 if n_t <= 2.2e-16)
        u_t = -(a * lam) / (1 + a * lam) * x_t - tau_t * d_t
        lb  <- max(fbar_t + p_t - gam_t - tau_t * n_t / 2, lower_bound)   if adapt

    with ``lb`` starting at ``lower_bound``.

    Args:
        learning_rate: The largest step, ``>= 0``, a scalar array/tracer or a schedule.
        beta: Momentum (EMA) coefficient, in [0, 1).
        lower_bound: A lower bound of the loss (0 for most losses).
        weight_decay: Decoupled weight decay ``lam``, ``>= 0``.
        adapt_lower_bound: Estimate the lower bound on the fly (when no good guess exists).

    Returns:
        A `GradientTransformation` with state `MomoState(exp_avg, barf, gamma, lb, count)`.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(x**2)
        >>> tx, x = gradchain.momo(), jnp.array([1.0, 2.0, 3.0])
        >>> state = tx.init(x)
        >>> for _ in range(2):
        ...     loss, g = jax.value_and_grad(f)(x)
        ...     u, state = tx.update(g, state, x, value=loss)
        ...     x = gradchain.apply_updates(x, u)
        ...     print(f(x))
        3.5
        3.3182135

    (Optax's docstring example prints 3.5, 0.0, ...: it assigns the updates to the
    parameters; applied as here, Optax's numbers are these.)

    References:
        Schaipp et al., "MoMo: Momentum Models for Adaptive Learning Rates", ICML 2024.
    """
    fn = "momo"
    _check_args(fn, learning_rate, lower_bound, weight_decay, adapt_lower_bound)
    check_decay(fn, "beta", beta)

    def init_fn(params):
        dt = stats_dtype(jax.tree.map(as_leaf, params))
        zero = jnp.zeros([], dt)
        lb = jnp.asarray(lower_bound).astype(dt)
        return MomoState(exp_avg=zeros_like_params(params), barf=zero, gamma=zero, lb=lb, count=zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        require_params(fn, params)
        check_tree_match(fn, updates, state.exp_avg)
        check_tree_match(fn, updates, params, "the parameters", floating=False)
        dt = state.barf.dtype
        f = _loss_value(fn, extra_args, dt)
        b = jnp.where(state.count == 0, jnp.zeros([], dt), jnp.asarray(beta).astype(dt))

        def moments(g, d, x):
            c = Compute(g, d, x)
            bb = b.astype(c.dt)
            d = store(bb * c(d) + (1 - bb) * c(g), d)
            return d, _real_dot(c(g), c(x), dt), abs_sq(c(d)).sum().astype(dt), _real_dot(c(d), c(x), dt)

        exp_avg, gx, dd, dx = map_leaves(moments, updates, state.exp_avg, params)
        fbar = b * state.barf + (1 - b) * f
        gam = b * state.gamma + (1 - b) * _sum(jax.tree.leaves(gx), dt)
        n, p = _sum(jax.tree.leaves(dd), dt), _sum(jax.tree.leaves(dx), dt)
        a = _learning_rate(fn, learning_rate, state.count, dt)
        aw = a * hp(weight_decay, dt)
        wd = 1 + aw
        lb, floor = state.lb, hp(lower_bound, dt)
        if adapt_lower_bound:
            h = wd * (fbar - gam) + p
            lb = jnp.where(h < wd * lb, jnp.maximum(h / (2 * wd), floor), lb)
        tiny = n <= _TINY
        num = jnp.maximum(wd * (fbar - lb - gam) + p, 0)
        tau = jnp.minimum(a, jnp.where(tiny, 0, num / jnp.where(tiny, 1, n)))
        shrink = jnp.asarray(aw / wd, dt)

        def step(g, d, x):
            c = Compute(g, d, x)
            return (store(-shrink.astype(c.dt) * c(x) - tau.astype(c.dt) * c(d), g),)

        (new_updates,) = map_leaves(step, updates, exp_avg, params)
        new_lb = jnp.maximum((fbar + p - gam) - 0.5 * tau * n, floor) if adapt_lower_bound else state.lb
        count = safe_increment(state.count)
        return new_updates, MomoState(
            exp_avg=exp_avg, barf=fbar, gamma=gam, lb=new_lb.astype(dt), count=count
        )

    return GradientTransformation(init_fn, update_fn)


def momo_adam(
    learning_rate: ScalarOrSchedule = 1e-2,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    lower_bound=0.0,
    weight_decay=0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    """MoMo-Adam: Adam(W) with a Polyak-type step size ``min(learning_rate, ...)``.

    A complete optimizer (the updates include the step and its sign);
    ``update(grads, state, params, value=loss)`` needs the parameters ``x`` and the loss
    ``f``. With ``a = learning_rate`` (at the schedule's step ``count``), ``lam =
    weight_decay``, ``t = count + 1``, inner products ``<., .>`` over the whole tree
    (their real part for complex leaves)::

        fbar_t = b1 * fbar_{t-1} + (1 - b1) * f_t
        d_t = b1 * d_{t-1} + (1 - b1) * g_t
        v_t = b2 * v_{t-1} + (1 - b2) * |g_t|**2
        D_t = eps + sqrt(v_t / (1 - b2**t))
        gam_t = b1 * gam_{t-1} + (1 - b1) * <g_t, x_t>
        n_t = <d_t, d_t / D_t>,   p_t = <d_t, x_t>,   c_t = 1 - b1**t
        h_t = (1 + a * lam) * (fbar_t - gam_t) + p_t
        lb' = max(h_t / (2 * c_t * (1 + a * lam)), lower_bound)  if adapt and h_t < (1 + a * lam) * c_t * lb
        lb' = lb                                                 otherwise
        tau_t = min(a / c_t, max((1 + a * lam) * (fbar_t - c_t * lb' - gam_t) + p_t, 0) / n_t)
                                                                 (0 if n_t <= 2.2e-16)
        u_t = -(a * lam) / (1 + a * lam) * x_t - tau_t * d_t / D_t
        lb  <- max((fbar_t + p_t - gam_t - tau_t * n_t / 2) / c_t, lower_bound)   if adapt

    with all averages starting at 0 and ``lb`` at ``lower_bound``.

    Args:
        learning_rate: The largest step, ``>= 0``, a scalar array/tracer or a schedule.
        b1: Decay of the first moment (and of the loss model), in [0, 1).
        b2: Decay of the second moment, in [0, 1).
        eps: Added to the root of the second moment, ``>= 0``.
        lower_bound: A lower bound of the loss (0 for most losses).
        weight_decay: Decoupled weight decay ``lam``, ``>= 0`` (as in AdamW).
        adapt_lower_bound: Estimate the lower bound on the fly (when no good guess exists).

    Returns:
        A `GradientTransformation` with state `MomoAdamState(exp_avg, exp_avg_sq, barf,
        gamma, lb, count)`.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(x**2)
        >>> tx, x = gradchain.momo_adam(), jnp.array([1.0, 2.0, 3.0])
        >>> loss, g = jax.value_and_grad(f)(x)
        >>> u, state = tx.update(g, tx.init(x), x, value=loss)
        >>> print(f(gradchain.apply_updates(x, u)))   # Optax's number, applied as updates
        13.8803

    References:
        Schaipp et al., "MoMo: Momentum Models for Adaptive Learning Rates", ICML 2024.
    """
    fn = "momo_adam"
    _check_args(fn, learning_rate, lower_bound, weight_decay, adapt_lower_bound)
    check_decay(fn, "b1", b1)
    check_decay(fn, "b2", b2)
    check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        dt = stats_dtype(jax.tree.map(as_leaf, params))
        zero = jnp.zeros([], dt)
        return MomoAdamState(
            exp_avg=zeros_like_params(params),
            exp_avg_sq=second_moment_zeros(params),
            barf=zero,
            gamma=zero,
            lb=jnp.asarray(lower_bound).astype(dt),
            count=zero_count(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        require_params(fn, params)
        check_tree_match(fn, updates, state.exp_avg)
        check_tree_match(fn, updates, params, "the parameters", floating=False)
        dt = state.barf.dtype
        f = _loss_value(fn, extra_args, dt)
        count = safe_increment(state.count)
        beta1 = hp(b1, dt)

        def moments(g, d, v, x):
            c = Compute(g, d, v, x)
            d = store(c.hp(b1) * c(d) + (1 - c.hp(b1)) * c(g), d)
            w = 1 - c.hp(b2, real=True)
            gg = w * abs_sq(c(g)) if jnp.iscomplexobj(g) else w * c(g) * c(g)  # (Optax's product order)
            v = store(c.hp(b2, real=True) * c.real(v) + gg, v)
            denom = c.hp(eps, real=True) + jnp.sqrt(c.real(v) / (1 - _power(b2, count, c.rdt)))
            return (
                d,
                v,
                _real_dot(c(g), c(x), dt),
                _real_dot(c(d), c(d) / c(denom), dt),
                _real_dot(c(d), c(x), dt),
            )

        exp_avg, exp_avg_sq, gx, dd, dx = map_leaves(
            moments, updates, state.exp_avg, state.exp_avg_sq, params
        )
        fbar = beta1 * state.barf + (1 - beta1) * f
        gam = beta1 * state.gamma + (1 - beta1) * _sum(jax.tree.leaves(gx), dt)
        n, p = _sum(jax.tree.leaves(dd), dt), _sum(jax.tree.leaves(dx), dt)
        a = _learning_rate(fn, learning_rate, state.count, dt)
        c1 = 1 - _power(b1, count, dt)
        aw = a * hp(weight_decay, dt)
        wd = 1 + aw
        lb, floor = state.lb, hp(lower_bound, dt)
        if adapt_lower_bound:
            h = wd * (fbar - gam) + p
            lb = jnp.where(h < wd * c1 * lb, jnp.maximum(h / (2 * c1 * wd), floor), lb)
        tiny = n <= _TINY
        t1 = jnp.where(tiny, 0, jnp.maximum(wd * (fbar - c1 * lb - gam) + p, 0) / jnp.where(tiny, 1, n))
        tau = jnp.minimum(a / c1, t1)
        shrink = jnp.asarray(aw / wd, dt)

        def step(g, d, v, x):
            c = Compute(g, d, v, x)
            denom = c.hp(eps, real=True) + jnp.sqrt(c.real(v) / (1 - _power(b2, count, c.rdt)))
            return (store(-shrink.astype(c.dt) * c(x) - tau.astype(c.dt) * c(d) / c(denom), g),)

        (new_updates,) = map_leaves(step, updates, exp_avg, exp_avg_sq, params)
        if adapt_lower_bound:
            new_lb = jnp.maximum(((fbar + p - gam) - 0.5 * tau * n) / c1, floor)
        else:
            new_lb = state.lb
        return new_updates, MomoAdamState(exp_avg, exp_avg_sq, fbar, gam, new_lb, count)

    return GradientTransformation(init_fn, update_fn)
