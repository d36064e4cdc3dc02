"""MARS (`scale_by_mars`), Adam on a variance-reduced gradient, and MADGRAD
(`scale_by_madgrad`, ``optax.contrib``), momentumized dual averaging with a cube-root
adaptive denominator: the two Adam relatives of the contrib family that keep more than
moments (MARS the previous gradient, MADGRAD the initial parameters).

`scale_by_mars` is a rescaling (chain it with `scale_by_learning_rate`, or use
`gradchain.mars`); `scale_by_madgrad` is a complete optimizer, as in Optax (it takes the
learning rate and returns the step, sign included; `gradchain.madgrad` adds weight decay).
"""

from __future__ import annotations

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
from gradchain._numerics import abs_sq, as_leaf, safe_increment, zero_count
from gradchain._validate import (
    check_adam_args,
    check_decay,
    check_flag,
    check_nonnegative,
    check_tree_match,
    require_params,
    schedule_value,
)

__all__ = ["MadgradState", "ScaleByMarsState", "scale_by_madgrad", "scale_by_mars"]


class ScaleByMarsState(NamedTuple):
    """State of `scale_by_mars`. Memory: three values per parameter."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, param dtype: EMA of the corrected, clipped gradients
    nu: Any  # per-param tree, second-moment storage dtype
    last_grad: Any  # per-param tree, param dtype: the previous update g_{t-1} (0 before the first)


def scale_by_mars(
    b1=0.95, b2=0.99, eps=1e-8, gamma=0.025, *, correct_first_step: bool = True
) -> GradientTransformation:
    """MARS (AdamW form): Adam on a variance-reduced gradient, clipped to unit norm.

    Update rule, for incoming update ``g`` at step ``t = count + 1``, each leaf on its own
    (``||.||`` is the leaf's Euclidean norm)::

        c_t = g_t + gamma * b1 / (1 - b1) * (g_t - g_{t-1})
        c_t = c_t / max(1, ||c_t||)
        m_t = b1 * m_{t-1} + (1 - b1) * c_t
        v_t = b2 * v_{t-1} + (1 - b2) * |c_t|**2
        u_t = (m_t / (1 - b1**t)) / (sqrt(v_t / (1 - b2**t)) + eps)

    with ``m_0 = v_0 = g_0 = 0``: MARS-approx, the authors' default, which corrects with
    the previous step's gradient (not a second gradient at the old parameters). The state
    keeps that gradient. With ``correct_first_step=False`` the first step uses ``c_1 = g_1``
    (timm's ``Mars``) instead of ``(1 + gamma * b1 / (1 - b1)) * g_1``. ``gamma = 0`` is
    Adam on clipped gradients.

    The authors apply this to matrices (``ndim >= 2`` in timm and pytorch_optimizer,
    ``ndim == 2`` in their code) and AdamW to the rest: `gradchain.mars` does that split.

    Args:
        b1: Decay of the first-moment average, in [0, 1) (the authors' 0.95; timm's 0.9).
        b2: Decay of the second-moment average, in [0, 1).
        eps: Added to the denominator outside the root, ``>= 0``.
        gamma: Strength of the variance-reduction correction, ``>= 0``.
        correct_first_step: Correct the first gradient against ``g_0 = 0`` (the
            authors' and pytorch_optimizer's); ``False``: timm's ``c_1 = g_1``.

    Returns:
        A `GradientTransformation` with state `ScaleByMarsState(count, mu, nu, last_grad)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_mars(eps=0.0)
        >>> s = tx.init(jnp.zeros(2))
        >>> u, s = tx.update(jnp.array([0.3, -0.4]), s); u.round(4)   # Adam's first step: sign(c)
        Array([ 1., -1.], dtype=float32)
        >>> s.last_grad
        Array([ 0.3, -0.4], dtype=float32)

    References:
        Yuan et al., "MARS: Unleashing the Power of Variance Reduction for Training Large
        Models", ICML 2025 (arXiv:2411.10438).
    """
    fn = "scale_by_mars"
    check_adam_args(fn, b1, b2, eps, 0.0)
    check_nonnegative(fn, "gamma", gamma)
    check_flag(fn, "correct_first_step", correct_first_step)

    def init_fn(params):
        return ScaleByMarsState(
            count=zero_count(),
            mu=zeros_like_params(params),
            nu=second_moment_zeros(params),
            last_grad=zeros_like_params(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.mu)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, b1=b1, b2=b2)
        first = state.count == 0

        def leaf(g, m, v, g_prev):
            c = Compute(g, m, v, g_prev)
            x, d1 = c(g), c.hp(b1)
            ct = x + c.hp(gamma) * d1 / (1 - d1) * (x - c(g_prev))
            if not correct_first_step:
                ct = jnp.where(first, x, ct)
            ct = ct / jnp.maximum(jnp.sqrt(jnp.sum(abs_sq(ct))), 1.0).astype(c.dt)
            m = store(ema_update(c(m), ct, b1), m)
            v = store(ema_update(c.real(v), abs_sq(ct), b2), v)
            den = jnp.sqrt(c.real(v) / corr("b2", c.rdt)) + c.hp(eps, real=True)
            u = (c(m) / corr("b1", c.dt)) / c(den)
            return store(u, g), m, v, store(x, g_prev)

        u, mu, nu, last = map_leaves(leaf, updates, state.mu, state.nu, state.last_grad)
        return u, ScaleByMarsState(count=count, mu=mu, nu=nu, last_grad=last)

    return GradientTransformation(init_fn, update_fn)


class MadgradState(NamedTuple):
    """State of `scale_by_madgrad` (Optax's fields). Memory: three values per parameter."""

    count: jax.Array  # int32 scalar: steps taken
    grad_sum_sq: Any  # per-param tree, second-moment storage dtype: G_k, weighted sum of |g|**2
    s: Any  # per-param tree, param dtype: s_k, weighted sum of gradients
    x0: Any  # per-param tree, param dtype: the parameters `init` was called with


def scale_by_madgrad(learning_rate: ScalarOrSchedule, momentum=0.9, eps=1e-6) -> GradientTransformation:
    """MADGRAD: momentumized dual averaging with a cube-root adaptive denominator.

    A complete optimizer (the update is the step, learning rate and sign included; it
    needs the parameters). At step ``k = count`` (0 on the first call), with the learning
    rate ``lr_k`` (a schedule is read at ``k``) and ``x_0`` the parameters given to ``init``::

        lam_k = (lr_k + eps) * sqrt(k + 1)
        G_{k+1} = G_k + lam_k * |g_k|**2
        s_{k+1} = s_k + lam_k * g_k
        z_{k+1} = x_0 - s_{k+1} / (G_{k+1}**(1/3) + eps)
        x_{k+1} = momentum * x_k + (1 - momentum) * z_{k+1}
        u_k = x_{k+1} - x_k = (1 - momentum) * (z_{k+1} - x_k)

    with ``G_0 = s_0 = 0``; ``x_k`` are the ``params`` passed to ``update``. Adding ``eps``
    to the learning rate is the authors' (and Optax's) convention.

    Args:
        learning_rate: A number ``>= 0``, a scalar array/tracer, or a schedule.
        momentum: Weight of the current iterate in the average, in [0, 1).
        eps: Added to the learning rate and to the denominator, ``>= 0``.

    Returns:
        A `GradientTransformation` with state `MadgradState(count, grad_sum_sq, s, x0)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_madgrad(1.0, momentum=0.0, eps=0.0)
        >>> p = jnp.array([1.0, 2.0])
        >>> tx.update(jnp.array([8.0, -1.0]), tx.init(p), p)[0]   # -g / |g|**(2/3)
        Array([-2.,  1.], dtype=float32)

    References:
        Defazio & Jelassi, "Adaptivity without Compromise: A Momentumized, Adaptive, Dual
        Averaged Gradient Method for Stochastic Optimization", JMLR 2022 (arXiv:2101.11075).
    """
    fn = "scale_by_madgrad"
    check_nonnegative(fn, "learning_rate", learning_rate, allow_schedule=True)
    check_decay(fn, "momentum", momentum)
    check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        return MadgradState(
            count=zero_count(),
            grad_sum_sq=second_moment_zeros(params),
            s=zeros_like_params(params),
            x0=jax.tree.map(lambda p: jnp.array(as_leaf(p)), params),  # a copy
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        require_params(fn, params)
        check_tree_match(fn, updates, state.s)
        check_tree_match(fn, updates, params, "`params`")
        k = state.count
        lr = (
            schedule_value(fn, "learning_rate", learning_rate(k))
            if callable(learning_rate)
            else learning_rate
        )

        def leaf(g, big_g, s, x0, p):
            c = Compute(g, big_g, s, x0, p)
            x = c(g)
            lam = (c.hp(lr, real=True) + c.hp(eps, real=True)) * jnp.sqrt(k.astype(c.rdt) + 1)
            big_g = store(c.real(big_g) + lam * abs_sq(x), big_g)
            s = store(c(s) + lam.astype(c.dt) * x, s)
            z = c(x0) - c(s) / c(jnp.cbrt(c.real(big_g)) + c.hp(eps, real=True))
            u = (1 - c.hp(momentum)) * (z - c(as_leaf(p)))
            return store(u, g), big_g, s

        u, big_g, s = map_leaves(leaf, updates, state.grad_sum_sq, state.s, state.x0, params)
        return u, MadgradState(count=safe_increment(k), grad_sum_sq=big_g, s=s, x0=state.x0)

    return GradientTransformation(init_fn, update_fn)
