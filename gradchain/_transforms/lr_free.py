"""Learning-rate-free Adam by D-Adaptation: `prodigy` and `dadapt_adamw` (Optax's contrib names).

Both estimate ``d``, the distance from the initial point to a solution, from the gradients
seen so far and step with Adam scaled by it; ``learning_rate`` is then a multiplier of that
step (1.0, or a schedule that treats 1.0 as its peak). Each is a complete optimizer in one
transformation, as in Optax: the learning rate enters the estimate of ``d``, so it cannot be
a separate member of a chain. DoG, DoWG, COCOB and Mechanic are in `lr_free_more`.

The one global estimate is a scalar of the state, kept in at least float32 (float64 when
every parameter is); per-parameter state follows the parameters' dtypes.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._kit import (
    BiasCorrections,
    Compute,
    ema_update,
    map_leaves,
    second_moment_zeros,
    store,
    zeros_like_params,
)
from gradchain._numerics import abs_sq, as_leaf, hp, safe_increment, zero_count
from gradchain._tree import stats_dtype
from gradchain._validate import (
    check_decay,
    check_flag,
    check_int,
    check_nonnegative,
    check_positive,
    check_scalar,
    check_tree_match,
    concrete_scalar,
    require_params,
    schedule_value,
)

__all__ = ["DAdaptAdamWState", "ProdigyState", "dadapt_adamw", "prodigy"]


class ProdigyState(NamedTuple):
    """State of `prodigy` (Optax's fields, then ``max_estim_lr``).

    Memory per parameter: ``exp_avg``, ``exp_avg_sq``, and ``grad_sum`` and ``params0``
    (1/``slice_p`` of it each): four copies of the parameters with ``slice_p=1``.
    """

    exp_avg: Any  # per-param tree, param dtype: EMA of d * g
    exp_avg_sq: Any  # per-param tree, second-moment storage dtype: EMA of d**2 * |g|**2
    grad_sum: Any  # per-param tree, param dtype (flat, every slice_p-th entry if slice_p > 1): s
    params0: Any  # per-param tree, param dtype (flat and sliced as grad_sum): the initial point
    estim_lr: jax.Array  # scalar, >= float32: the distance estimate d
    numerator_weighted: jax.Array  # scalar, >= float32: the estimate's weighted numerator
    count: jax.Array  # int32 scalar: steps taken
    max_estim_lr: jax.Array  # scalar, >= float32: the largest estimate so far (for growth_rate)


class DAdaptAdamWState(NamedTuple):
    """State of `dadapt_adamw` (Optax's fields). Memory: three copies of the parameters."""

    exp_avg: Any  # per-param tree, param dtype: EMA of dlr * g
    exp_avg_sq: Any  # per-param tree, second-moment storage dtype: EMA of |g|**2
    grad_sum: Any  # per-param tree, param dtype: s, the weighted sum of dlr * g
    estim_lr: jax.Array  # scalar, >= float32: the distance estimate d
    numerator_weighted: jax.Array  # scalar, >= float32: the estimate's weighted numerator
    count: jax.Array  # int32 scalar: steps taken


# ------------------------------------------------------------------------------ helpers


def _check_betas(fn: str, betas: Any) -> tuple[Any, Any]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{fn}: `betas` must be a pair (b1, b2), got {betas!r}.")
    check_decay(fn, "betas[0]", betas[0])
    check_decay(fn, "betas[1]", betas[1])
    return betas[0], betas[1]


def _check_common(
    fn, learning_rate, eps, estim_lr0, weight_decay, use_bias_correction, growth_rate, decouple
):
    check_nonnegative(fn, "learning_rate", learning_rate, allow_schedule=True)
    check_nonnegative(fn, "eps", eps)
    check_positive(fn, "estim_lr0", estim_lr0)
    check_nonnegative(fn, "weight_decay", weight_decay)
    check_flag(fn, "use_bias_correction", use_bias_correction)
    check_scalar(fn, "growth_rate", growth_rate, lo=1.0, allow_inf=True)
    check_flag(fn, "decouple", decouple)


def _is_inf(value: Any) -> bool:
    x = concrete_scalar(value)
    return x is not None and math.isinf(x)


def _lr_at(fn: str, learning_rate: Any, count: jax.Array, dt: Any) -> jax.Array:
    """The learning rate at step ``count`` (0 on the first call), in ``dt``."""
    value = (
        schedule_value(fn, "learning_rate", learning_rate(count))
        if callable(learning_rate)
        else learning_rate
    )
    return jnp.asarray(hp(value, dt), dt)


def _dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """``Re(sum(conj(a) * b))`` of one leaf (already in its compute dtype)."""
    return jnp.vdot(a, b).real


def _total(values: list, dt: Any) -> jax.Array:
    """The sum of per-leaf scalars, accumulated in ``dt``."""
    return sum((v.astype(dt) for v in values), jnp.zeros([], dt))


def _sliced(x: jax.Array, slice_p: int) -> jax.Array:
    """Every ``slice_p``-th entry of the flattened leaf (the leaf itself for ``slice_p=1``)."""
    return x if slice_p == 1 else jnp.ravel(x)[::slice_p]


def _over(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den`` for a real ``den >= 0``, and 0 where ``den == 0`` (there ``num`` is 0
    too: a coordinate whose gradients were all zero, with ``eps = 0``)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, jnp.ones_like(den)).astype(num.dtype), jnp.zeros_like(num))


def _d_factor(d: jax.Array, ok: jax.Array) -> jax.Array:
    """``d`` where ``ok``, else 1 (a safe divisor)."""
    return jnp.where(ok, d, jnp.ones_like(d))


# ------------------------------------------------------------------------------- Prodigy


def prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[Any, Any] = (0.9, 0.999),
    beta3: Any = None,
    eps=1e-8,
    estim_lr0=1e-6,
    estim_lr_coef=1.0,
    weight_decay=0.0,
    safeguard_warmup: bool = False,
    *,
    use_bias_correction: bool = True,
    growth_rate=math.inf,
    slice_p: int = 1,
    decouple: bool = True,
) -> GradientTransformation:
    """Prodigy: Adam whose step is a running estimate ``d`` of the distance to a solution.

    Update rule, for gradient ``g`` and parameters ``p`` at step ``t = count + 1``, with
    ``lr_t = learning_rate`` (or ``learning_rate(count)``), ``b3 = sqrt(b2)`` unless
    given, ``d_0 = estim_lr0``, ``<a, b>`` the dot product over all leaves and ``g_s``,
    ``p_s`` every ``slice_p``-th entry of each flattened leaf::

        g_t = g_t + weight_decay * p_t                 (decouple=False only)
        dlr = d * lr_t * sqrt(1 - b2**t) / (1 - b1**t)  (d * lr_t without use_bias_correction)
        r_t = b3 * r_{t-1} + (d / d_0) * dlr * <g_s, p0_s - p_s>
        m_t = b1 * m_{t-1} + (1 - b1) * d * g_t
        v_t = b2 * v_{t-1} + (1 - b2) * d**2 * |g_t|**2
        s_t = b3 * s_{t-1} + (d / d_0) * dlr * g_s      ((d / d_0) * d * g_s with safeguard_warmup)
        d_hat = estim_lr_coef * r_t / sum(|s_t|)
        d_max' = max(d_max, d, d_hat)
        d' = min(d_max', growth_rate * (max(d, d_hat) if d == d_0 else d))
        u_t = -weight_decay * dlr * p_t - dlr * m_t / (sqrt(v_t) + d' * eps)   (no decay term
                                                                               if decouple=False)

    with ``d = d_max = d_0`` and zero sums at the start (and ``0 / 0 = 0`` in ``u_t``, for
    ``eps = 0``); the state keeps ``d'``. With the
    default ``growth_rate=inf`` the estimate is ``d' = max(d, d_hat)``, Optax's rule.
    Where ``sum(|s_t|) == 0`` (every gradient so far zero, or the learning rate zero so
    far) there is no estimate yet: ``d`` is kept and the update is zero, as the authors'
    code skips the step (Optax divides 0 by 0 and returns NaN).

    The defaults are Optax's; the authors' ``prodigyopt.Prodigy`` is
    ``use_bias_correction=False`` by default and has ``d_coef`` (``estim_lr_coef``),
    ``growth_rate``, ``slice_p`` and ``decouple`` too. It also treats a step with
    ``lr == 0`` as a no-op (the moments do not move), where Optax's rule above runs.

    Args:
        learning_rate: Multiplier of the adapted step, ``>= 0``, or a schedule (the
            authors recommend 1.0, or a schedule from 1.0 down to 0 with a warmup).
        betas: ``(b1, b2)``, the decays of Adam's moments, each in ``[0, 1)``.
        beta3: Decay of the estimate's sums, in ``[0, 1)``; ``None``: ``sqrt(b2)``.
        eps: Added to ``sqrt(v)`` after scaling by ``d``, ``>= 0``.
        estim_lr0: The initial (under-)estimate ``d_0`` of the distance, ``> 0``.
        estim_lr_coef: Multiplier of each estimate ``d_hat``, ``> 0`` (the authors'
            ``d_coef``: their preferred knob, e.g. 0.5 or 2).
        weight_decay: Decay rate ``>= 0``, decoupled (AdamW's) and scaled by ``dlr``.
        safeguard_warmup: Leave ``lr_t`` out of the sums ``s`` (for warmup schedules).
        use_bias_correction: Adam's bias correction in ``dlr`` (Optax: always; authors:
            off by default).
        growth_rate: Cap of the estimate's growth per step, ``>= 1`` (e.g. 1.02, a kind
            of warmup); ``inf``: no cap (the first increase is never capped).
        slice_p: Keep ``s`` and ``p0`` for every ``slice_p``-th entry only (memory; an
            approximation of Prodigy for ``slice_p > 1``, e.g. 11), a Python int ``>= 1``.
        decouple: Decoupled weight decay (default); ``False`` adds ``weight_decay * p``
            to the gradient instead (L2, as `add_decayed_weights` placed before it).

    Returns:
        A `GradientTransformation` with state `ProdigyState`; ``update`` needs ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(x**2)
        >>> tx, x = gradchain.prodigy(), jnp.array([1.0, 2.0, 3.0])
        >>> state = tx.init(x)
        >>> for _ in range(30):
        ...     u, state = tx.update(jax.grad(f)(x), state, x)
        ...     x = gradchain.apply_updates(x, u)
        >>> print(f"d = {float(state.estim_lr):.4f}, f(x) = {float(f(x)):.2f}")   # d grew from 1e-6
        d = 0.0562, f(x) = 12.72

    References:
        Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
        Learner", ICML 2024 (https://github.com/konstmish/prodigy).
    """
    fn = "prodigy"
    b1, b2 = _check_betas(fn, betas)
    if beta3 is not None:
        check_decay(fn, "beta3", beta3)
    _check_common(fn, learning_rate, eps, estim_lr0, weight_decay, use_bias_correction, growth_rate, decouple)
    check_positive(fn, "estim_lr_coef", estim_lr_coef)
    check_flag(fn, "safeguard_warmup", safeguard_warmup)
    slice_p = check_int(fn, "slice_p", slice_p, 1)
    b3 = b2**0.5 if beta3 is None else beta3
    capped = not _is_inf(growth_rate)

    def init_fn(params):
        dt = stats_dtype(params)
        d0 = jnp.full([], estim_lr0, dt)
        flat = lambda p: _sliced(as_leaf(p), slice_p)
        return ProdigyState(
            exp_avg=zeros_like_params(params),
            exp_avg_sq=second_moment_zeros(params),
            grad_sum=jax.tree.map(lambda p: jnp.zeros_like(flat(p)), params),
            params0=jax.tree.map(flat, params),
            estim_lr=d0,
            numerator_weighted=jnp.zeros([], dt),
            count=zero_count(),
            max_estim_lr=d0,
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        require_params(fn, params)
        check_tree_match(fn, updates, state.exp_avg)
        check_tree_match(fn, updates, params, "`params`")
        dt = state.estim_lr.dtype
        d = state.estim_lr
        d0 = jnp.asarray(hp(estim_lr0, dt), dt)
        count = safe_increment(state.count)
        dlr = d * _lr_at(fn, learning_rate, state.count, dt)
        if use_bias_correction:
            corr = BiasCorrections(count, b1=b1, b2=b2)
            dlr = dlr * (jnp.sqrt(corr("b2", dt)) / corr("b1", dt))
        s_coef = (d / d0) * (d if safeguard_warmup else dlr)
        dots, l1s = [], []

        def moments(g, p, m, v, s, p0):
            c = Compute(g, p, m, v, s, p0)
            x, pc = c(g), c(p)
            if not decouple:
                x = x + c.hp(weight_decay) * pc
            xs = _sliced(x, slice_p)
            dots.append(_dot(xs, c(p0) - _sliced(pc, slice_p)))
            m = store(ema_update(c(m), c(d) * x, b1), m)
            v = store(ema_update(c.real(v), c.real(d) ** 2 * abs_sq(x), b2), v)
            s = store(c.hp(b3) * c(s) + c(s_coef) * xs, s)
            l1s.append(jnp.sum(jnp.abs(c(s))))
            return m, v, s

        mu, nu, grad_sum = map_leaves(
            moments, updates, params, state.exp_avg, state.exp_avg_sq, state.grad_sum, state.params0
        )
        num = hp(b3, dt) * state.numerator_weighted + (d / d0) * dlr * _total(dots, dt)
        denom = _total(l1s, dt)
        ok = denom > 0
        d_hat = jnp.where(ok, hp(estim_lr_coef, dt) * num / _d_factor(denom, ok), jnp.zeros_like(d))
        d_max = jnp.where(ok, jnp.maximum(jnp.maximum(state.max_estim_lr, d), d_hat), state.max_estim_lr)
        if capped:
            base = jnp.where(d == d0, jnp.maximum(d, d_hat), d)
            d_new = jnp.minimum(d_max, hp(growth_rate, dt) * base)
        else:
            d_new = jnp.maximum(d, d_hat)
        d_new = jnp.where(ok, d_new, d)

        def step(g, p, m, v):
            c = Compute(g, p, m, v)
            k = c(dlr)
            u = -_over(k * c(m), jnp.sqrt(c.real(v)) + c.real(d_new) * c.hp(eps, real=True))
            if decouple:
                u = -c.hp(weight_decay) * k * c(p) + u
            return (store(jnp.where(ok, u, jnp.zeros_like(u)), g),)

        (new_updates,) = map_leaves(step, updates, params, mu, nu)
        new_state = ProdigyState(mu, nu, grad_sum, state.params0, d_new, num, count, d_max)
        return new_updates, new_state

    return GradientTransformation(init_fn, update_fn)


# -------------------------------------------------------------------- D-Adaptation AdamW


def dadapt_adamw(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps=1e-8,
    estim_lr0=1e-6,
    weight_decay=0.0,
    *,
    use_bias_correction: bool = True,
    growth_rate=math.inf,
    decouple: bool = True,
) -> GradientTransformation:
    """D-Adaptation AdamW: Adam whose step size is a running estimate ``d`` of the distance to a solution.

    Update rule, for gradient ``g`` and parameters ``p`` at step ``t = count + 1``, with
    ``lr_t = learning_rate`` (or ``learning_rate(count)``), ``sb2 = sqrt(b2)``, ``d_0 =
    estim_lr0`` and ``<a, b>`` the dot product over all leaves::

        g_t = g_t + weight_decay * p_t                 (decouple=False only)
        dlr = d * lr_t * sqrt(1 - b2**t) / (1 - b1**t)  (d * lr_t without use_bias_correction)
        r_t = sb2 * r_{t-1} + (1 - sb2) * dlr * <g_t, s_{t-1} / (sqrt(v_{t-1}) + eps)>
        m_t = b1 * m_{t-1} + (1 - b1) * dlr * g_t
        v_t = b2 * v_{t-1} + (1 - b2) * |g_t|**2
        s_t = sb2 * s_{t-1} + (1 - sb2) * dlr * g_t
        d_hat = r_t / ((1 - sb2) * sum(|s_t|))
        d' = max(d, min(d_hat, growth_rate * d))
        u_t = -weight_decay * dlr * p_t - m_t / (sqrt(v_t) + eps)   (no decay term if decouple=False)

    with ``d = d_0`` and zero sums at the start (and ``0 / 0 = 0``, for ``eps = 0``);
    the state keeps ``d'``. Where
    ``sum(|s_t|) == 0`` (every gradient so far zero, or the learning rate zero so far)
    there is no estimate yet: ``d`` is kept and the update is zero, as
    ``pytorch_optimizer.DAdaptAdam`` skips the step (Optax divides 0 by 0: NaN).

    The defaults are Optax's. ``pytorch_optimizer.DAdaptAdam(lr, betas, d0, growth_rate,
    weight_decay, weight_decouple=True, bias_correction=True, eps)`` computes the same
    numbers; its defaults differ: no bias correction, coupled (L2) weight decay
    (``decouple=False`` here).

    Args:
        learning_rate: Multiplier of the adapted step, ``>= 0``, or a schedule (1.0, or a
            schedule from 1.0 down to 0 with a warmup).
        betas: ``(b1, b2)``, the decays of Adam's moments, each in ``[0, 1)``.
        eps: Added to ``sqrt(v)``, ``>= 0``.
        estim_lr0: The initial (under-)estimate ``d_0`` of the distance, ``> 0``.
        weight_decay: Decay rate ``>= 0``, decoupled (AdamW's) and scaled by ``dlr``.
        use_bias_correction: Adam's bias correction in ``dlr`` (Optax: always;
            pytorch_optimizer: off by default).
        growth_rate: Cap of the estimate's growth per step, ``>= 1``; ``inf``: no cap.
        decouple: Decoupled weight decay (default); ``False`` adds ``weight_decay * p``
            to the gradient instead.

    Returns:
        A `GradientTransformation` with state `DAdaptAdamWState`; ``update`` needs ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(x**2)
        >>> tx, x = gradchain.dadapt_adamw(), jnp.array([1.0, 2.0, 3.0])
        >>> state = tx.init(x)
        >>> for _ in range(30):
        ...     u, state = tx.update(jax.grad(f)(x), state, x)
        ...     x = gradchain.apply_updates(x, u)
        >>> print(f"d = {float(state.estim_lr):.3f}, f(x) = {float(f(x)):.2f}")   # d grew from 1e-6
        d = 0.767, f(x) = 8.59

    References:
        Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML 2023.
    """
    fn = "dadapt_adamw"
    b1, b2 = _check_betas(fn, betas)
    _check_common(fn, learning_rate, eps, estim_lr0, weight_decay, use_bias_correction, growth_rate, decouple)
    capped = not _is_inf(growth_rate)
    sb2 = b2**0.5

    def init_fn(params):
        dt = stats_dtype(params)
        return DAdaptAdamWState(
            exp_avg=zeros_like_params(params),
            exp_avg_sq=second_moment_zeros(params),
            grad_sum=zeros_like_params(params),
            estim_lr=jnp.full([], estim_lr0, dt),
            numerator_weighted=jnp.zeros([], dt),
            count=zero_count(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        require_params(fn, params)
        check_tree_match(fn, updates, state.exp_avg)
        check_tree_match(fn, updates, params, "`params`")
        dt = state.estim_lr.dtype
        d = state.estim_lr
        count = safe_increment(state.count)
        dlr = d * _lr_at(fn, learning_rate, state.count, dt)
        if use_bias_correction:
            corr = BiasCorrections(count, b1=b1, b2=b2)
            dlr = dlr * (jnp.sqrt(corr("b2", dt)) / corr("b1", dt))
        dots, l1s = [], []

        def moments(g, p, m, v, s):
            c = Compute(g, p, m, v, s)
            x = c(g)
            if not decouple:
                x = x + c.hp(weight_decay) * c(p)
            k, w = c(dlr), hp(sb2, c.rdt)
            dots.append(_dot(x, _over(c(s), jnp.sqrt(c.real(v)) + c.hp(eps, real=True))))
            m = store(ema_update(c(m), k * x, b1), m)
            v = store(ema_update(c.real(v), abs_sq(x), b2), v)
            s = store(ema_update(c(s), k * x, w), s)
            l1s.append(jnp.sum(jnp.abs(c(s))))
            return m, v, s

        mu, nu, grad_sum = map_leaves(
            moments, updates, params, state.exp_avg, state.exp_avg_sq, state.grad_sum
        )
        w = hp(sb2, dt)
        num = ema_update(state.numerator_weighted, dlr * _total(dots, dt), w)
        denom = _total(l1s, dt)
        ok = denom > 0
        d_hat = num / ((1 - w) * _d_factor(denom, ok))
        if capped:
            d_hat = jnp.minimum(d_hat, hp(growth_rate, dt) * d)
        d_new = jnp.where(ok, jnp.maximum(d, d_hat), d)

        def step(g, p, m, v):
            c = Compute(g, p, m, v)
            u = -_over(c(m), jnp.sqrt(c.real(v)) + c.hp(eps, real=True))
            if decouple:
                u = -c.hp(weight_decay) * c(dlr) * c(p) + u
            return (store(jnp.where(ok, u, jnp.zeros_like(u)), g),)

        (new_updates,) = map_leaves(step, updates, params, mu, nu)
        return new_updates, DAdaptAdamWState(mu, nu, grad_sum, d_new, num, count)

    return GradientTransformation(init_fn, update_fn)
