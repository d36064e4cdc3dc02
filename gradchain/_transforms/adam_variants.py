"""Adam's relatives: adaptive rescalings that keep other moments than Adam's.

Yogi (`scale_by_yogi`, an additive second moment), Adan (`scale_by_adan`, Nesterov
momentum from gradient differences), NovoGrad (`scale_by_novograd`, one second moment
per layer), Adadelta (`scale_by_adadelta`, a unit-correcting ratio of two averages) and
optimistic gradients (`scale_by_optimistic_gradient`, for min-max games). None applies a
learning rate or flips the sign: chain with `scale_by_learning_rate`, or use the
optimizers (`gradchain.yogi`, ...). The tree helpers Optax exposes next to them
(`gradchain.update_moment`, `gradchain.bias_correction`, ...) live in their own module.

Numerics as in the Adam family (see `gradchain._transforms.adam`): each leaf is computed
in at least float32 and rounded once, to the update's dtype and to each state entry's
storage dtype; squares are stored in the parameter's real dtype (float32 for float16).
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
    second_moment_dtype,
    second_moment_zeros,
    store,
    zeros_like_params,
)
from gradchain._numerics import abs_sq, as_leaf, leaf_dtype, safe_increment, zero_count
from gradchain._transforms.adam import ScaleByAdamState
from gradchain._validate import (
    canonical_dtype,
    check_adam_args,
    check_decay,
    check_nonnegative,
    check_positive,
    check_scalar,
    check_tree_match,
    concrete_scalar,
    refuse_flat,
    require_params,
)

__all__ = [
    "ScaleByAdaDeltaState",
    "ScaleByAdanState",
    "ScaleByNovogradState",
    "ScaleByOptimisticGradientState",
    "scale_by_adadelta",
    "scale_by_adan",
    "scale_by_novograd",
    "scale_by_optimistic_gradient",
    "scale_by_yogi",
]


class ScaleByAdanState(NamedTuple):
    """State of `scale_by_adan` (Optax calls the step counter ``t``)."""

    count: jax.Array  # int32 scalar: steps taken
    m: Any  # per-param tree, param dtype: average of the updates
    v: Any  # per-param tree, param dtype: average of the update differences
    n: Any  # per-param tree, second-moment storage dtype: average of the squared look-ahead
    g: Any  # per-param tree, param dtype: the previous update


class ScaleByNovogradState(NamedTuple):
    """State of `scale_by_novograd`."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, `mu_dtype` or param dtype
    nu: Any  # per-param tree of scalars (one per leaf), second-moment storage dtype


class ScaleByAdaDeltaState(NamedTuple):
    """State of `scale_by_adadelta` (no step counter: nothing depends on the step)."""

    e_g: Any  # per-param tree, second-moment storage dtype: average of squared updates in
    e_x: Any  # per-param tree, second-moment storage dtype: average of squared updates out


class ScaleByOptimisticGradientState(NamedTuple):
    """State of `scale_by_optimistic_gradient`."""

    is_initial_step: jax.Array  # bool scalar: no update seen yet
    previous_gradient: Any  # per-param tree, param dtype


def _full_like_params(params: Any, value: Any) -> Any:
    """``value``-filled arrays shaped like each parameter, in the parameter's dtype."""
    return jax.tree.map(lambda p: jnp.full_like(as_leaf(p), value), params)


def scale_by_yogi(
    b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6
) -> GradientTransformation:
    """Yogi: Adam whose second moment moves additively, by at most ``(1 - b2) * |g|**2``.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        v_t = v_{t-1} - (1 - b2) * sign(v_{t-1} - |g_t|**2) * |g_t|**2
        u_t = (m_t / (1 - b1**t)) / (sqrt(v_t / (1 - b2**t) + eps_root) + eps)

    with ``m_0 = v_0 = initial_accumulator_value`` (as in Optax). Adam's ``v`` moves
    multiplicatively towards ``|g|**2``; Yogi's only grows or shrinks by
    ``(1 - b2) * |g|**2``, so a burst of small gradients cannot collapse it (nor blow up
    the effective learning rate). ``v`` stays ``>= 0``.

    Args:
        b1: Decay of the first-moment average, in [0, 1).
        b2: Rate of the second-moment change, in [0, 1).
        eps: Added to the denominator outside the root, ``>= 0``.
        eps_root: Added inside the root, ``>= 0``.
        initial_accumulator_value: Starting value of both moments, ``>= 0``.

    Returns:
        A `GradientTransformation` with state `ScaleByAdamState(count, mu, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_yogi(eps=0.0, initial_accumulator_value=0.0)
        >>> tx.update(jnp.array([2.0, -0.5]), tx.init(jnp.zeros(2)))[0]  # first step: sign(g)
        Array([ 1., -1.], dtype=float32)

    References:
        Zaheer et al., "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018.
    """
    fn = "scale_by_yogi"
    check_adam_args(fn, b1, b2, eps, eps_root)
    check_nonnegative(fn, "initial_accumulator_value", initial_accumulator_value)

    def init_fn(params):
        return ScaleByAdamState(
            count=zero_count(),
            mu=_full_like_params(params, initial_accumulator_value),
            nu=second_moment_zeros(params, initial_accumulator_value),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.mu)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, b1=b1, b2=b2)

        def leaf(g, m, v):
            c = Compute(g, m, v)
            x = c(g)
            g2 = abs_sq(x)
            m = store(ema_update(c(m), x, b1), m)
            v_prev = c.real(v)
            v = store(v_prev - (1 - c.hp(b2, real=True)) * jnp.sign(v_prev - g2) * g2, v)
            m_hat = c(m) / corr("b1", c.dt)
            v_hat = c.real(v) / corr("b2", c.rdt)
            u = m_hat / c(jnp.sqrt(v_hat + c.hp(eps_root, real=True)) + c.hp(eps, real=True))
            return store(u, g), m, v

        new_updates, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)
        return new_updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def scale_by_adan(b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=0.0) -> GradientTransformation:
    """Adan: adaptive Nesterov momentum estimated from differences of successive updates.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        d_t = g_t - g_{t-1}                     (d_1 = 0: no previous update)
        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        v_t = b2 * v_{t-1} + (1 - b2) * d_t
        n_t = b3 * n_{t-1} + (1 - b3) * |g_t + b2 * d_t|**2
        m'_t = m_t / (1 - b1**t)
        v'_t = v_t / (1 - b2**t)
        n'_t = n_t / (1 - b3**t)
        u_t = (m'_t + b2 * v'_t) / (sqrt(n'_t + eps_root) + eps)

    with ``m_0 = v_0 = n_0 = 0``. The decays are the code's (0.98, 0.92, 0.99), the
    paper's ``beta_k`` being ``1 - b_k``, so the paper's ``(1 - beta_2)`` weight of the
    difference terms is ``b2`` here, as in the authors' implementation (and
    ``pytorch_optimizer.Adan``). Optax 0.2.8 weights them by ``1 - b2`` (0.08 instead of
    0.92 by default; equal only at ``b2 = 0.5``).

    Args:
        b1: Decay of the average of the updates, in [0, 1).
        b2: Decay of the average of the differences (and their weight), in [0, 1).
        b3: Decay of the average of the squared look-ahead, in [0, 1).
        eps: Added to the denominator outside the root, ``>= 0``.
        eps_root: Added inside the root, ``>= 0``.

    Returns:
        A `GradientTransformation` with state `ScaleByAdanState(count, m, v, n, g)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_adan(eps=0.0)
        >>> u, s = tx.update(jnp.array([2.0, -0.5]), tx.init(jnp.zeros(2)))
        >>> u  # first step: no difference yet, sign(g)
        Array([ 1., -1.], dtype=float32)
        >>> tx.update(jnp.array([2.0, 1.0]), s)[0].round(4)
        Array([1.    , 0.5664], dtype=float32)

    References:
        Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing
        Deep Models", 2022 (IEEE TPAMI 2024), Algorithm 1.
    """
    fn = "scale_by_adan"
    check_adam_args(fn, b1, b2, eps, eps_root)
    check_decay(fn, "b3", b3)

    def init_fn(params):
        return ScaleByAdanState(
            count=zero_count(),
            m=zeros_like_params(params),
            v=zeros_like_params(params),
            n=second_moment_zeros(params),
            g=zeros_like_params(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.m)
        first = state.count == 0
        count = safe_increment(state.count)
        corr = BiasCorrections(count, b1=b1, b2=b2, b3=b3)

        def leaf(g, m, v, n, g_prev):
            c = Compute(g, m, v, n, g_prev)
            x = c(g)
            d = jnp.where(first, jnp.zeros_like(x), x - c(g_prev))
            w = c.hp(b2)
            m = store(ema_update(c(m), x, b1), m)
            v = store(ema_update(c(v), d, b2), v)
            n = store(ema_update(c.real(n), abs_sq(x + w * d), b3), n)
            m_hat = c(m) / corr("b1", c.dt)
            v_hat = c(v) / corr("b2", c.dt)
            n_hat = c.real(n) / corr("b3", c.rdt)
            u = (m_hat + w * v_hat) / c(jnp.sqrt(n_hat + c.hp(eps_root, real=True)) + c.hp(eps, real=True))
            return store(u, g), m, v, n, store(x, g_prev)

        new_updates, m, v, n, g = map_leaves(leaf, updates, state.m, state.v, state.n, state.g)
        return new_updates, ScaleByAdanState(count=count, m=m, v=v, n=n, g=g)

    return GradientTransformation(init_fn, update_fn)


def scale_by_novograd(
    b1=0.9, b2=0.25, eps=1e-8, eps_root=0.0, weight_decay=0.0, mu_dtype: Any = None
) -> GradientTransformation:
    """NovoGrad: momentum of updates normalized by a per-layer second moment.

    Per leaf (layer), with ``|.|`` the L2 norm of the whole leaf, at step ``t = count + 1``::

        n_1 = |g_1|**2
        n_t = b2 * n_{t-1} + (1 - b2) * |g_t|**2                       (t > 1)
        a_t = g_t / (sqrt(n_t + eps_root) + eps) + weight_decay * p_t
        m_1 = a_1
        m_t = b1 * m_{t-1} + a_t                                       (t > 1)
        u_t = m_t

    ``n`` is one scalar per leaf (half of Adam's memory); no bias correction (the first
    step initialises both averages). ``update`` needs ``params`` unless
    ``weight_decay`` is a concrete 0.

    Args:
        b1: Decay of the momentum, in [0, 1).
        b2: Decay of the per-layer second moment, in [0, 1).
        eps: Added to the denominator outside the root, ``>= 0``.
        eps_root: Added inside the root, ``>= 0``.
        weight_decay: Coefficient of the parameters added to the normalized update,
            ``>= 0`` (a number or scalar array; Optax takes no schedule here either).
        mu_dtype: Storage dtype of ``m``; ``None``: param dtype.

    Returns:
        A `GradientTransformation` with state `ScaleByNovogradState(count, mu, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_novograd(eps=0.0)
        >>> tx.update(jnp.array([3.0, -4.0]), tx.init(jnp.zeros(2)))[0]  # g / |g| for the layer
        Array([ 0.6, -0.8], dtype=float32)

    References:
        Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive Moments
        for Training of Deep Networks", 2019.
    """
    fn = "scale_by_novograd"
    check_adam_args(fn, b1, b2, eps, eps_root)
    check_nonnegative(fn, "weight_decay", weight_decay)
    mu_dtype = canonical_dtype(fn, "mu_dtype", mu_dtype)
    uses_params = concrete_scalar(weight_decay) != 0.0

    def init_fn(params):
        nu = jax.tree.map(lambda p: jnp.zeros((), second_moment_dtype(leaf_dtype(p))), params)
        return ScaleByNovogradState(count=zero_count(), mu=zeros_like_params(params, mu_dtype), nu=nu)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        refuse_flat(fn, updates)
        check_tree_match(fn, updates, state.mu)
        if uses_params:
            require_params(fn, params)
            check_tree_match(fn, updates, params, "`params`")
        first = state.count == 0
        count = safe_increment(state.count)

        def leaf(g, m, n, p=None):
            c = Compute(g, m, n)
            x = c(g)
            sq = jnp.sum(abs_sq(x))
            n = store(jnp.where(first, sq, ema_update(c.real(n), sq, b2)), n)
            a = x / c(jnp.sqrt(c.real(n) + c.hp(eps_root, real=True)) + c.hp(eps, real=True))
            if p is not None:
                a = a + c.hp(weight_decay) * c(p)
            m = store(jnp.where(first, a, c.hp(b1) * c(m) + a), m)
            return store(c(m), g), m, n

        trees = (state.mu, state.nu) + ((params,) if uses_params else ())
        new_updates, mu, nu = map_leaves(leaf, updates, *trees)
        return new_updates, ScaleByNovogradState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def scale_by_adadelta(rho=0.9, eps=1e-6) -> GradientTransformation:
    """Adadelta: scale by the ratio of the RMS of past steps to the RMS of the updates.

    Update rule, for incoming update ``g``::

        a_t = rho * a_{t-1} + (1 - rho) * |g_t|**2
        u_t = sqrt(b_{t-1} + eps) / sqrt(a_t + eps) * g_t
        b_t = rho * b_{t-1} + (1 - rho) * |u_t|**2

    with ``a_0 = b_0 = 0`` (``a`` is the state's ``e_g``, ``b`` its ``e_x``). The ratio
    has the units of the parameters, so Adadelta needs no learning rate (use 1). ``eps``
    must be ``> 0``: it is what starts ``b`` (with ``eps = 0`` every step is 0, and 0/0
    when a gradient is 0; Optax accepts it).

    Args:
        rho: Decay of both averages, in [0, 1).
        eps: Added inside both roots, ``> 0``.

    Returns:
        A `GradientTransformation` with state `ScaleByAdaDeltaState(e_g, e_x)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_adadelta(rho=0.5, eps=1e-4)
        >>> tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))[0]  # sqrt(1e-4 / (0.5 + 1e-4))
        Array([0.01414072], dtype=float32)

    References:
        Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012.
    """
    fn = "scale_by_adadelta"
    check_decay(fn, "rho", rho)
    check_positive(fn, "eps", eps)

    def init_fn(params):
        return ScaleByAdaDeltaState(e_g=second_moment_zeros(params), e_x=second_moment_zeros(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.e_g)

        def leaf(g, e_g, e_x):
            c = Compute(g, e_g, e_x)
            x = c(g)
            e = c.hp(eps, real=True)
            e_g = store(ema_update(c.real(e_g), abs_sq(x), rho), e_g)
            u = c(jnp.sqrt(c.real(e_x) + e) / jnp.sqrt(c.real(e_g) + e)) * x
            e_x = store(ema_update(c.real(e_x), abs_sq(u), rho), e_x)
            return store(u, g), e_g, e_x

        new_updates, e_g, e_x = map_leaves(leaf, updates, state.e_g, state.e_x)
        return new_updates, ScaleByAdaDeltaState(e_g=e_g, e_x=e_x)

    return GradientTransformation(init_fn, update_fn)


def scale_by_optimistic_gradient(alpha=1.0, beta=1.0) -> GradientTransformation:
    """Generalized optimistic gradient: extrapolate from the previous update.

    Update rule, for incoming update ``g``::

        u_t = (alpha + beta) * g_t - beta * g_{t-1}

    with ``g_0 = g_1`` (the first step is ``alpha * g_1``). ``alpha = beta = 1`` is
    optimistic gradient descent ``2 g_t - g_{t-1}``, which converges in bilinear
    min-max games where gradient descent-ascent cycles or diverges.

    Args:
        alpha: Weight of the current update, a real number.
        beta: Weight of the extrapolation (negative momentum), a real number.

    Returns:
        A `GradientTransformation` with state
        `ScaleByOptimisticGradientState(is_initial_step, previous_gradient)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_optimistic_gradient()
        >>> u, s = tx.update(jnp.array([1.0, 2.0]), tx.init(jnp.zeros(2)))
        >>> u
        Array([1., 2.], dtype=float32)
        >>> tx.update(jnp.array([3.0, 0.0]), s)[0]  # 2 g_2 - g_1
        Array([ 5., -2.], dtype=float32)

    References:
        Mokhtari, Ozdaglar & Pattathil, "A Unified Analysis of Extra-gradient and
        Optimistic Gradient Methods for Saddle Point Problems: Proximal Point
        Approach", AISTATS 2020.
    """
    fn = "scale_by_optimistic_gradient"
    check_scalar(fn, "alpha", alpha)
    check_scalar(fn, "beta", beta)

    def init_fn(params):
        return ScaleByOptimisticGradientState(
            is_initial_step=jnp.ones([], jnp.bool_), previous_gradient=zeros_like_params(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.previous_gradient)
        first = state.is_initial_step

        def leaf(g, g_prev):
            c = Compute(g, g_prev)
            x = c(g)
            prev = jnp.where(first, x, c(g_prev))
            u = (c.hp(alpha) + c.hp(beta)) * x - c.hp(beta) * prev
            return store(u, g), store(x, g_prev)

        new_updates, prev = map_leaves(leaf, updates, state.previous_gradient)
        return new_updates, ScaleByOptimisticGradientState(
            is_initial_step=jnp.zeros_like(first), previous_gradient=prev
        )

    return GradientTransformation(init_fn, update_fn)
