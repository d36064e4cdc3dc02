"""The Adam family: bias-corrected first and second moments of the updates.

Adam and NAdam (`scale_by_adam`), AMSGrad (`scale_by_amsgrad`), Adamax
(`scale_by_adamax`), AdaBelief (`scale_by_belief`) and RAdam (`scale_by_radam`); 8-bit
Adam is in `quantized`. None applies a learning rate or flips the sign: chain with
`scale_by_learning_rate`, or use the optimizers (`gradchain.adam`, ...).

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
    store,
    zeros_like_params,
)
from gradchain._numerics import abs_sq, bias_correction_power, hp, real_dtype, safe_increment, zero_count
from gradchain._validate import (
    canonical_dtype,
    check_adam_args,
    check_flag,
    check_nu_dtype,
    check_positive,
    check_tree_match,
)

__all__ = [
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByBeliefState",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_radam",
]


class ScaleByAdamState(NamedTuple):
    """State of `scale_by_adam`, `scale_by_adamax` and `scale_by_radam`."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, `mu_dtype` or param dtype
    nu: Any  # per-param tree, `nu_dtype` or second-moment storage dtype (adamax: param dtype)


class ScaleByAmsgradState(NamedTuple):
    """State of `scale_by_amsgrad`."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, `mu_dtype` or param dtype
    nu: Any  # per-param tree, second-moment storage dtype
    nu_max: Any  # per-param tree, second-moment storage dtype


class ScaleByBeliefState(NamedTuple):
    """State of `scale_by_belief`."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, param dtype
    nu: Any  # per-param tree, second-moment storage dtype: the "belief" variance (+ eps_root)


def _first_moment_hat(x, m, b1, corr, nesterov: bool):
    """``m / (1 - b1**t)``, or Nesterov's look-ahead ``b1 * m / (1 - b1**(t+1)) + (1 - b1) * g / (1 - b1**t)``."""
    dt = m.dtype
    if not nesterov:
        return m / corr("b1", dt)
    d = hp(b1, dt)
    return d * (m / corr("b1", dt, True)) + (1 - d) * (x / corr("b1", dt))


def scale_by_adam(
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam (NAdam with ``nesterov=True``): divide bias-corrected moment estimates.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        v_t = b2 * v_{t-1} + (1 - b2) * |g_t|**2
        m'_t = m_t / (1 - b1**t)                                           (Adam)
        m'_t = b1 * m_t / (1 - b1**(t+1)) + (1 - b1) * g_t / (1 - b1**t)   (nesterov)
        v'_t = v_t / (1 - b2**t)
        u_t = m'_t / (sqrt(v'_t + eps_root) + eps)

    with ``m_0 = v_0 = 0``. The NAdam form is Optax's (Dozat 2016 without momentum
    decay); PyTorch's ``NAdam`` additionally schedules ``b1``.

    Args:
        b1: Decay of the first-moment average, in [0, 1).
        b2: Decay of the second-moment average, in [0, 1).
        eps: Added to the denominator outside the root, ``>= 0``.
        eps_root: Added inside the root, ``>= 0`` (make it positive to differentiate
            through the update at zero gradients, e.g. in meta-learning).
        mu_dtype: Storage dtype of ``m`` (e.g. ``jnp.bfloat16``); ``None``: param dtype.
        nu_dtype: Storage dtype of ``v``; ``None``: the param's real dtype (float32
            for float16 params). ``v`` is always computed in at least float32 and
            rounded once for storage; the update reads ``m`` and ``v`` as stored, so
            reduced-precision state is updated in place (no extra copy in the step).
            float16 is refused (it underflows, see the module docstring), bfloat16
            keeps float32's range.
        nesterov: Use the Nesterov (NAdam) first-moment estimate.

    Returns:
        A `GradientTransformation` with state `ScaleByAdamState(count, mu, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_adam()
        >>> u, state = tx.update(jnp.array([1.0, -2.0]), tx.init(jnp.zeros(2)))
        >>> u.round(4)
        Array([ 1., -1.], dtype=float32)

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
        Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
    """
    check_adam_args("scale_by_adam", b1, b2, eps, eps_root)
    check_flag("scale_by_adam", "nesterov", nesterov)
    mu_dtype = canonical_dtype("scale_by_adam", "mu_dtype", mu_dtype)
    nu_dtype = check_nu_dtype("scale_by_adam", nu_dtype)

    def init_fn(params):
        return ScaleByAdamState(
            count=zero_count(),
            mu=zeros_like_params(params, mu_dtype),
            nu=second_moment_zeros(params, 0.0, nu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_adam", updates, state.mu)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, b1=b1, b2=b2)

        def leaf(g, m, v):
            c = Compute(g, m, v)
            x = c(g)
            # The update reads the moments as stored (rounded once to mu_dtype/nu_dtype):
            # then the loop that writes the parameters reads the new moments, the old ones
            # are dead, and XLA updates reduced-precision state in place (reading the
            # unrounded values would keep the old state alive: one extra state copy).
            m = store(ema_update(c(m), x, b1), m)
            v = store(ema_update(c.real(v), abs_sq(x), b2), v)
            m_hat = _first_moment_hat(x, c(m), b1, corr, nesterov)
            v_hat = c.real(v) / corr("b2", c.rdt)
            u = m_hat / c(jnp.sqrt(v_hat + c.hp(eps_root, real=True)) + c.hp(eps, real=True))
            return store(u, g), m, v

        new_updates, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)
        return new_updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def scale_by_amsgrad(
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: Any = None,
    *,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> GradientTransformation:
    """AMSGrad: Adam that divides by the running maximum of the second moment.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        v_t = b2 * v_{t-1} + (1 - b2) * |g_t|**2
        m'_t = m_t / (1 - b1**t)            if bias_correction_mu, else m_t
        v'_t = v_t / (1 - b2**t)            if bias_correction_nu, else v_t
        w_t = max(w_{t-1}, v'_t)
        u_t = m'_t / (sqrt(w_t + eps_root) + eps)

    with ``m_0 = v_0 = w_0 = 0``. The defaults are Optax's; both flags ``False`` is the
    original paper's algorithm. (PyTorch's ``Adam(amsgrad=True)`` is neither: it takes
    the maximum of the uncorrected ``v_t`` and then divides it by ``1 - b2**t``.)

    Args:
        b1: Decay of the first-moment average, in [0, 1).
        b2: Decay of the second-moment average, in [0, 1).
        eps: Added to the denominator outside the root, ``>= 0``.
        eps_root: Added inside the root, ``>= 0``.
        mu_dtype: Storage dtype of ``m``; ``None``: param dtype.
        bias_correction_mu: Bias-correct the first moment.
        bias_correction_nu: Bias-correct the second moment before the maximum.

    Returns:
        A `GradientTransformation` with state `ScaleByAmsgradState(count, mu, nu, nu_max)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_amsgrad()
        >>> s = tx.init(jnp.zeros(1))
        >>> u, s = tx.update(jnp.array([2.0]), s)
        >>> tx.update(jnp.array([0.0]), s)[0].round(4)   # the maximum remembers |g| = 2
        Array([0.4737], dtype=float32)

    References:
        Reddi et al., "On the Convergence of Adam and Beyond", ICLR 2018.
    """
    check_adam_args("scale_by_amsgrad", b1, b2, eps, eps_root)
    check_flag("scale_by_amsgrad", "bias_correction_mu", bias_correction_mu)
    check_flag("scale_by_amsgrad", "bias_correction_nu", bias_correction_nu)
    mu_dtype = canonical_dtype("scale_by_amsgrad", "mu_dtype", mu_dtype)

    def init_fn(params):
        return ScaleByAmsgradState(
            count=zero_count(),
            mu=zeros_like_params(params, mu_dtype),
            nu=second_moment_zeros(params),
            nu_max=second_moment_zeros(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_amsgrad", updates, state.mu)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, b1=b1, b2=b2)

        def leaf(g, m, v, w):
            dt = Compute(g, m, v, w).dt
            rdt = real_dtype(dt)
            x = g.astype(dt)
            m_new = ema_update(m.astype(dt), x, b1)
            v_new = ema_update(v.astype(rdt), abs_sq(x), b2)
            m_hat = m_new / corr("b1", dt) if bias_correction_mu else m_new
            v_hat = v_new / corr("b2", rdt) if bias_correction_nu else v_new
            w_new = jnp.maximum(w.astype(rdt), v_hat)
            u = m_hat / (jnp.sqrt(w_new + hp(eps_root, rdt)) + hp(eps, rdt)).astype(dt)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype), w_new.astype(w.dtype)

        new_updates, mu, nu, nu_max = map_leaves(leaf, updates, state.mu, state.nu, state.nu_max)
        return new_updates, ScaleByAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)

    return GradientTransformation(init_fn, update_fn)


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
    check_adam_args("scale_by_adamax", b1, b2, eps, 0.0)

    def init_fn(params):
        nu = jax.tree.map(lambda p: jnp.zeros_like(p, dtype=real_dtype(jnp.result_type(p))), params)
        return ScaleByAdamState(count=zero_count(), mu=zeros_like_params(params, None), nu=nu)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_adamax", updates, state.mu)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, b1=b1)

        def leaf(g, m, v):
            dt = Compute(g, m, v).dt
            rdt = real_dtype(dt)
            x = g.astype(dt)
            m_new = ema_update(m.astype(dt), x, b1)
            v_new = jnp.maximum(jnp.abs(x) + hp(eps, rdt), hp(b2, rdt) * v.astype(rdt))
            u = m_new / corr("b1", dt) / v_new.astype(dt)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        new_updates, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)
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
    check_adam_args("scale_by_belief", b1, b2, eps, eps_root)
    check_flag("scale_by_belief", "nesterov", nesterov)

    def init_fn(params):
        return ScaleByBeliefState(
            count=zero_count(), mu=zeros_like_params(params, None), nu=second_moment_zeros(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_belief", updates, state.mu)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, b1=b1, b2=b2)

        def leaf(g, m, s):
            dt = Compute(g, m, s).dt
            rdt = real_dtype(dt)
            x = g.astype(dt)
            m_new = ema_update(m.astype(dt), x, b1)
            s_new = ema_update(s.astype(rdt), abs_sq(x - m_new), b2) + hp(eps_root, rdt)
            m_hat = _first_moment_hat(x, m_new, b1, corr, nesterov)
            u = m_hat / (jnp.sqrt(s_new / corr("b2", rdt)) + hp(eps, rdt)).astype(dt)
            return u.astype(g.dtype), m_new.astype(m.dtype), s_new.astype(s.dtype)

        new_updates, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)
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
    check_adam_args("scale_by_radam", b1, b2, eps, eps_root)
    check_positive("scale_by_radam", "threshold", threshold)
    check_flag("scale_by_radam", "nesterov", nesterov)

    def init_fn(params):
        return ScaleByAdamState(
            count=zero_count(), mu=zeros_like_params(params, None), nu=second_moment_zeros(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_radam", updates, state.mu)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, b1=b1, b2=b2)
        leaves = jax.tree.leaves(updates)
        sdt = real_dtype(Compute(*leaves).dt) if leaves else jnp.dtype(jnp.float32)
        rho_inf = 2.0 / (1.0 - hp(b2, sdt)) - 1.0
        b2t = bias_correction_power(b2, count, sdt)
        rho = rho_inf - 2 * count.astype(sdt) * b2t / (1 - b2t)
        rectify = rho >= hp(threshold, sdt)
        rho = jnp.where(rectify, rho, rho_inf)  # r_t = 1 where unused: no NaN, even in gradients
        r = jnp.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))

        def leaf(g, m, v):
            dt = Compute(g, m, v).dt
            rdt = real_dtype(dt)
            x = g.astype(dt)
            m_new = ema_update(m.astype(dt), x, b1)
            v_new = ema_update(v.astype(rdt), abs_sq(x), b2)
            m_hat = _first_moment_hat(x, m_new, b1, corr, nesterov)
            v_hat = v_new / corr("b2", rdt)
            adaptive = r.astype(dt) * m_hat / (jnp.sqrt(v_hat + hp(eps_root, rdt)) + hp(eps, rdt)).astype(dt)
            u = jnp.where(rectify, adaptive, m_hat)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        new_updates, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)
        return new_updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)
