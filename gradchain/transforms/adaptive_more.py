"""More of the adaptive family: Adamax, AdaBelief, RAdam and Lion.

They share Adam's moments and numerics (see `gradchain.transforms.adaptive`): each
leaf's arithmetic runs in at least float32, updates keep the incoming dtype, second
moments are stored in the parameter's real dtype (float32 for float16 parameters).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation
from gradchain._numerics import abs_sq, bias_correction_power, hp, real_dtype, safe_increment, zero_count
from gradchain._validate import check_positive, check_tree_match
from gradchain.transforms.adaptive import (
    ScaleByAdamState,
    _check_adam_args,
    _corrections,
    _ema,
    _first_moment_hat,
    _sq_zeros,
)
from gradchain.transforms.momentum import _canonical_dtype, _check_flag, _dt, _map_unzip, _zeros

__all__ = [
    "ScaleByBeliefState",
    "ScaleByLionState",
    "scale_by_adamax",
    "scale_by_belief",
    "scale_by_lion",
    "scale_by_radam",
]


class ScaleByBeliefState(NamedTuple):
    """State of `scale_by_belief`."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, param dtype
    nu: Any  # per-param tree, second-moment storage dtype: the "belief" variance (+ eps_root)


class ScaleByLionState(NamedTuple):
    """State of `scale_by_lion`."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, `mu_dtype` or param dtype


def scale_by_adamax(b1=0.9, b2=0.999, eps=1e-8) -> GradientTransformation:
    """Adamax: Adam with the infinity norm in place of the second moment.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        v_t = max(|g_t| + eps, b2 * v_{t-1})
        u_t = m_t / (1 - b1**t) / v_t

    with ``m_0 = v_0 = 0``; ``v`` needs no bias correction.

    Args:
        b1: Decay of the first-moment average, in [0, 1).
        b2: Decay of the running maximum, in [0, 1).
        eps: Added to ``|g|``, ``>= 0`` (keeps ``v`` positive).

    Returns:
        A `GradientTransformation` with state `ScaleByAdamState(count, mu, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_adamax(eps=0.0)
        >>> tx.update(jnp.array([2.0, -0.5]), tx.init(jnp.zeros(2)))[0]
        Array([ 1., -1.], dtype=float32)

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.1.
    """
    _check_adam_args("scale_by_adamax", b1, b2, eps, 0.0)

    def init_fn(params):
        nu = jax.tree.map(lambda p: jnp.zeros_like(p, dtype=real_dtype(jnp.result_type(p))), params)
        return ScaleByAdamState(count=zero_count(), mu=_zeros(params, None), nu=nu)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_adamax", updates, state.mu)
        count = safe_increment(state.count)
        corr = _corrections(count, b1=b1)

        def leaf(g, m, v):
            dt = _dt(g, m, v)
            rdt = real_dtype(dt)
            x = g.astype(dt)
            m_new = _ema(x, m.astype(dt), b1)
            v_new = jnp.maximum(jnp.abs(x) + hp(eps, rdt), hp(b2, rdt) * v.astype(rdt))
            u = m_new / corr("b1", dt) / v_new.astype(dt)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        new_updates, mu, nu = _map_unzip(leaf, 3, updates, state.mu, state.nu)
        return new_updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def scale_by_belief(
    b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *, nesterov: bool = False
) -> GradientTransformation:
    """AdaBelief: Adam whose second moment is the variance around the first.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        s_t = b2 * s_{t-1} + (1 - b2) * |g_t - m_t|**2 + eps_root
        m'_t = m_t / (1 - b1**t)                                           (default)
        m'_t = b1 * m_t / (1 - b1**(t+1)) + (1 - b1) * g_t / (1 - b1**t)   (nesterov)
        u_t = m'_t / (sqrt(s_t / (1 - b2**t)) + eps)

    with ``m_0 = s_0 = 0``; ``eps_root`` is stored in ``s`` (as in the paper and Optax).

    Args:
        b1: Decay of the first-moment average, in [0, 1).
        b2: Decay of the belief average, in [0, 1).
        eps: Added to the denominator outside the root, ``>= 0``.
        eps_root: Added to ``s`` at every step, ``>= 0``.
        nesterov: Use the Nesterov first-moment estimate (as in `scale_by_adam`).

    Returns:
        A `GradientTransformation` with state `ScaleByBeliefState(count, mu, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_belief(b1=0.5, b2=0.5, eps=0.0, eps_root=0.0)
        >>> tx.update(jnp.array([2.0, -2.0]), tx.init(jnp.zeros(2)))[0]
        Array([ 2., -2.], dtype=float32)

    References:
        Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
        Observed Gradients", NeurIPS 2020.
    """
    _check_adam_args("scale_by_belief", b1, b2, eps, eps_root)
    _check_flag("scale_by_belief", "nesterov", nesterov)

    def init_fn(params):
        return ScaleByBeliefState(count=zero_count(), mu=_zeros(params, None), nu=_sq_zeros(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_belief", updates, state.mu)
        count = safe_increment(state.count)
        corr = _corrections(count, b1=b1, b2=b2)

        def leaf(g, m, s):
            dt = _dt(g, m, s)
            rdt = real_dtype(dt)
            x = g.astype(dt)
            m_new = _ema(x, m.astype(dt), b1)
            s_new = _ema(abs_sq(x - m_new), s.astype(rdt), b2) + hp(eps_root, rdt)
            m_hat = _first_moment_hat(x, m_new, b1, corr, nesterov)
            u = m_hat / (jnp.sqrt(s_new / corr("b2", rdt)) + hp(eps, rdt)).astype(dt)
            return u.astype(g.dtype), m_new.astype(m.dtype), s_new.astype(s.dtype)

        new_updates, mu, nu = _map_unzip(leaf, 3, updates, state.mu, state.nu)
        return new_updates, ScaleByBeliefState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def scale_by_radam(
    b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, *, nesterov: bool = False
) -> GradientTransformation:
    """Rectified Adam: momentum alone until the variance estimate is tractable.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        m_t, v_t, m'_t, v'_t      as in scale_by_adam (m'_t in its nesterov form if asked)
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        r_t = sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        u_t = r_t * m'_t / (sqrt(v'_t + eps_root) + eps)    if rho_t >= threshold
        u_t = m'_t                                          otherwise

    PyTorch's ``RAdam`` switches at ``rho_t > 5``; keep ``threshold >= 4`` so that
    ``r_t`` is real whenever it is used.

    Args:
        b1: Decay of the first-moment average, in [0, 1).
        b2: Decay of the second-moment average, in [0, 1).
        eps: Added to the denominator outside the root, ``>= 0``.
        eps_root: Added inside the root, ``>= 0``.
        threshold: Smallest ``rho_t`` that uses the adaptive step, ``> 0``.
        nesterov: Use the Nesterov first-moment estimate (as in `scale_by_adam`).

    Returns:
        A `GradientTransformation` with state `ScaleByAdamState(count, mu, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_radam()        # the first steps are plain momentum
        >>> tx.update(jnp.array([2.0, -0.5]), tx.init(jnp.zeros(2)))[0].round(4)
        Array([ 2. , -0.5], dtype=float32)

    References:
        Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.
    """
    _check_adam_args("scale_by_radam", b1, b2, eps, eps_root)
    check_positive("scale_by_radam", "threshold", threshold)
    _check_flag("scale_by_radam", "nesterov", nesterov)

    def init_fn(params):
        return ScaleByAdamState(count=zero_count(), mu=_zeros(params, None), nu=_sq_zeros(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_radam", updates, state.mu)
        count = safe_increment(state.count)
        corr = _corrections(count, b1=b1, b2=b2)
        leaves = jax.tree.leaves(updates)
        sdt = real_dtype(_dt(*leaves)) if leaves else jnp.dtype(jnp.float32)
        rho_inf = 2.0 / (1.0 - hp(b2, sdt)) - 1.0
        b2t = bias_correction_power(b2, count, sdt)
        rho = rho_inf - 2 * count.astype(sdt) * b2t / (1 - b2t)
        rectify = rho >= hp(threshold, sdt)
        rho = jnp.where(rectify, rho, rho_inf)  # r_t = 1 where unused: no NaN, even in gradients
        r = jnp.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))

        def leaf(g, m, v):
            dt = _dt(g, m, v)
            rdt = real_dtype(dt)
            x = g.astype(dt)
            m_new = _ema(x, m.astype(dt), b1)
            v_new = _ema(abs_sq(x), v.astype(rdt), b2)
            m_hat = _first_moment_hat(x, m_new, b1, corr, nesterov)
            v_hat = v_new / corr("b2", rdt)
            adaptive = r.astype(dt) * m_hat / (jnp.sqrt(v_hat + hp(eps_root, rdt)) + hp(eps, rdt)).astype(dt)
            u = jnp.where(rectify, adaptive, m_hat)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        new_updates, mu, nu = _map_unzip(leaf, 3, updates, state.mu, state.nu)
        return new_updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def scale_by_lion(b1=0.9, b2=0.99, mu_dtype: Any = None) -> GradientTransformation:
    """Lion: the sign of an interpolation between momentum and the update.

    Update rule, for incoming update ``g``::

        u_t = sign((1 - b1) * g_t + b1 * m_{t-1})
        m_t = b2 * m_{t-1} + (1 - b2) * g_t

    with ``m_0 = 0``. Every coordinate moves by exactly 1 (0 where the argument is 0):
    use a learning rate 3-10x smaller than Adam's.

    Args:
        b1: Weight of the momentum in the update's direction, in [0, 1).
        b2: Decay of the momentum, in [0, 1).
        mu_dtype: Storage dtype of ``m``; ``None``: param dtype.

    Returns:
        A `GradientTransformation` with state `ScaleByLionState(count, mu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_lion()
        >>> tx.update(jnp.array([0.3, -2.0, 0.0]), tx.init(jnp.zeros(3)))[0]
        Array([ 1., -1.,  0.], dtype=float32)

    References:
        Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
    """
    _check_adam_args("scale_by_lion", b1, b2, 0.0, 0.0)
    mu_dtype = _canonical_dtype("scale_by_lion", "mu_dtype", mu_dtype)

    def init_fn(params):
        return ScaleByLionState(count=zero_count(), mu=_zeros(params, mu_dtype))

    def leaf(g, m):
        dt = _dt(g, m)
        x, mc = g.astype(dt), m.astype(dt)
        u = jnp.sign(_ema(x, mc, b1))
        return u.astype(g.dtype), _ema(x, mc, b2).astype(m.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_lion", updates, state.mu)
        new_updates, mu = _map_unzip(leaf, 2, updates, state.mu)
        return new_updates, ScaleByLionState(count=safe_increment(state.count), mu=mu)

    return GradientTransformation(init_fn, update_fn)
