"""Adam-like rescalings of ``optax.contrib``: ADOPT (`scale_by_adopt`), AdEMAMix
(`scale_by_ademamix`, with the paper's warm-up schedulers `ademamix_alpha_scheduler` and
`ademamix_beta3_scheduler`), simplified AdEMAMix (`scale_by_simplified_ademamix`) and
ACProp (`scale_by_acprop`). MADGRAD and MARS are in `gradchain._transforms.mars`.

None applies a learning rate or flips the sign: chain with `scale_by_learning_rate`, or
use the optimizers (`gradchain.adopt`, `gradchain.ademamix`, ...). Each leaf is computed
in at least float32 and rounded once; second moments of float16 parameters are stored in
float32 (see `gradchain._kit.second_moment_dtype`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, ScalarOrSchedule, Schedule
from gradchain._kit import (
    BiasCorrections,
    Compute,
    ema_update,
    map_leaves,
    second_moment_zeros,
    store,
    zeros_like_params,
)
from gradchain._numerics import abs_sq, compute_dtype, hp, safe_increment, zero_count
from gradchain._transforms.adam import ScaleByAdamState, ScaleByBeliefState
from gradchain._validate import (
    canonical_dtype,
    check_adam_args,
    check_decay,
    check_flag,
    check_nonnegative,
    check_scalar,
    check_tree_match,
    schedule_value,
)

__all__ = [
    "ScaleByAdemamixState",
    "ScaleBySimplifiedAdEMAMixState",
    "ademamix_alpha_scheduler",
    "ademamix_beta3_scheduler",
    "scale_by_acprop",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_simplified_ademamix",
]


def _value(fn: str, name: str, value: Any, count: jax.Array) -> Any:
    """A hyperparameter at this step: ``value(count)`` (checked) for a schedule, else ``value``."""
    return schedule_value(fn, name, value(count)) if callable(value) else value


def _clip_parts(x: jax.Array, limit: jax.Array) -> jax.Array:
    """``clip(x, -limit, limit)``; real and imaginary parts separately for complex ``x``."""
    if jnp.iscomplexobj(x):
        return jax.lax.complex(jnp.clip(x.real, -limit, limit), jnp.clip(x.imag, -limit, limit))
    return jnp.clip(x, -limit, limit)


def adopt_clip_value(count: jax.Array) -> jax.Array:
    """ADOPT's default clipping bound ``count**0.25`` (Optax's; float32, float64 under x64)."""
    return jnp.asarray(count).astype(jax.dtypes.canonicalize_dtype(jnp.float64)) ** 0.25


# ---------------------------------------------------------------------------------- ADOPT
def scale_by_adopt(
    b1=0.9,
    b2=0.9999,
    eps=1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], Any] = adopt_clip_value,
) -> GradientTransformation:
    """ADOPT: normalize by the previous second moment, then average (no update on step 1).

    Update rule, for incoming update ``g`` at step ``t = count`` (0 on the first call)::

        t = 0:   v_0 = |g_0|**2,   m_0 = 0,   u_0 = 0
        t > 0:   n_t = clip(g_t / max(sqrt(v_{t-1}), eps), -c(t), c(t))   (if use_clipping)
                 n_t = g_t / max(sqrt(v_{t-1}), eps)                      (otherwise)
                 m_t = b1 * m_{t-1} + (1 - b1) * n_t
                 v_t = b2 * v_{t-1} + (1 - b2) * |g_t|**2
                 u_t = m_t                                   (nesterov: b1 * m_t + (1 - b1) * n_t)

    with ``c = clip_value_fn`` (default ``c(t) = t**0.25``). The current gradient is
    normalized by the second moment of the previous ones: that decorrelation is what lets
    ADOPT converge with any ``b2``. The first step only records ``v_0``. Complex updates
    are clipped per real and imaginary part.

    Args:
        b1: Decay of the average of normalized updates, in [0, 1).
        b2: Decay of the second-moment average, in [0, 1).
        eps: Floor of ``sqrt(v)`` in the normalization, ``>= 0``.
        mu_dtype: Storage dtype of ``m``; ``None``: the param's.
        nesterov: Return the Nesterov look-ahead ``b1 * m_t + (1 - b1) * n_t``.
        use_clipping: Clip the normalized update to ``[-c(t), c(t)]``.
        clip_value_fn: ``c``, called with the int32 step ``t`` (as Optax). timm's
            ``Adopt(clip_exp=0.333)`` (the authors' later default) is
            ``lambda t: t.astype(jnp.float32) ** 0.333``.

    Returns:
        A `GradientTransformation` with state `ScaleByAdamState(count, mu, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_adopt(b1=0.5)
        >>> s = tx.init(jnp.zeros(2))
        >>> u, s = tx.update(jnp.array([2.0, -1.0]), s); u       # the first step only records v
        Array([0., 0.], dtype=float32)
        >>> tx.update(jnp.array([1.0, -3.0]), s)[0]             # clip(g / |g_0|, -1, 1) / 2
        Array([ 0.25, -0.5 ], dtype=float32)

    References:
        Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any beta2 with the
        Optimal Rate", NeurIPS 2024.
    """
    fn = "scale_by_adopt"
    check_adam_args(fn, b1, b2, eps, 0.0)
    check_flag(fn, "nesterov", nesterov)
    check_flag(fn, "use_clipping", use_clipping)
    if not callable(clip_value_fn):
        raise TypeError(f"{fn}: `clip_value_fn` must be callable, got {clip_value_fn!r}.")
    mu_dtype = canonical_dtype(fn, "mu_dtype", mu_dtype)

    def init_fn(params):
        return ScaleByAdamState(
            count=zero_count(), mu=zeros_like_params(params, mu_dtype), nu=second_moment_zeros(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.mu)
        first = state.count == 0
        limit = schedule_value(fn, "clip_value_fn", clip_value_fn(state.count)) if use_clipping else None

        def leaf(g, m, v):
            c = Compute(g, m, v)
            x, v_prev = c(g), c.real(v)
            v = store(jnp.where(first, abs_sq(x), ema_update(v_prev, abs_sq(x), b2)), v)
            n = x / c(jnp.maximum(jnp.sqrt(v_prev), c.hp(eps, real=True)))
            if use_clipping:
                n = _clip_parts(n, c.real(limit))
            n = jnp.where(first, jnp.zeros_like(n), n)  # (g / eps on the first step: unused, maybe inf)
            m = store(jnp.where(first, c(m), ema_update(c(m), n, b1)), m)
            u = jnp.where(first, c(m), ema_update(c(m), n, b1)) if nesterov else c(m)
            return store(u, g), m, v

        u, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)
        return u, ScaleByAdamState(count=safe_increment(state.count), mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


# -------------------------------------------------------------------------------- AdEMAMix
class ScaleByAdemamixState(NamedTuple):
    """State of `scale_by_ademamix` (Optax's fields). Memory: three values per parameter."""

    count: jax.Array  # int32 scalar: steps taken (bias corrections)
    count_m2: jax.Array  # int32 scalar: steps taken (the step the `b3` and `alpha` schedules read)
    m1: Any  # per-param tree, `mu_dtype` or param dtype: the fast EMA
    m2: Any  # per-param tree, `mu_dtype` or param dtype: the slow EMA
    nu: Any  # per-param tree, second-moment storage dtype


def _check_unless_schedule(fn: str, name: str, value: Any, check) -> None:
    """``check(fn, name, value)`` for a value; a schedule is checked at each step instead."""
    if not callable(value):
        check(fn, name, value)


def scale_by_ademamix(
    b1=0.9,
    b2=0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 6.0,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """AdEMAMix: Adam whose numerator adds a slow EMA of the gradients to the fast one.

    Update rule, for incoming update ``g`` at step ``t = count + 1``, with ``b3`` and
    ``alpha`` read at the step ``count`` (0 on the first call) when they are schedules::

        m1_t = b1 * m1_{t-1} + (1 - b1) * g_t
        m2_t = b3 * m2_{t-1} + (1 - b3) * g_t
        v_t = b2 * v_{t-1} + (1 - b2) * |g_t|**2
        u_t = (m1_t / (1 - b1**t) + alpha * m2_t) / (sqrt(v_t / (1 - b2**t) + eps_root) + eps)

    with ``m1_0 = m2_0 = v_0 = 0``. The slow EMA ``m2`` is not bias-corrected: it fills
    slowly. The paper warms ``alpha`` and ``b3`` up over training, with
    `ademamix_alpha_scheduler` and `ademamix_beta3_scheduler`.

    The default ``alpha`` is Optax's (6.0 here, 5.0 in `ademamix`; the authors' PyTorch
    code uses 2.0). Optax stores ``v`` in ``mu_dtype``; gradchain in the second-moment
    storage dtype.

    Args:
        b1: Decay of the fast EMA, in [0, 1).
        b2: Decay of the second-moment average, in [0, 1).
        b3: Decay of the slow EMA, in [0, 1), or a schedule of the step.
        alpha: Weight of the slow EMA, ``>= 0``, or a schedule of the step.
        eps: Added to the denominator outside the root, ``>= 0``.
        eps_root: Added inside the root, ``>= 0``.
        mu_dtype: Storage dtype of ``m1`` and ``m2``; ``None``: the param's.

    Returns:
        A `GradientTransformation` with state `ScaleByAdemamixState(count, count_m2, m1, m2, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_ademamix(b3=0.5, alpha=2.0, eps=0.0)
        >>> tx.update(jnp.array([1.0, -4.0]), tx.init(jnp.zeros(2)))[0]   # (1 + 2 * 0.5) * sign(g)
        Array([ 2., -2.], dtype=float32)

    References:
        Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older",
        ICLR 2025 (arXiv:2409.03137).
    """
    fn = "scale_by_ademamix"
    check_adam_args(fn, b1, b2, eps, eps_root)
    _check_unless_schedule(fn, "b3", b3, check_decay)
    _check_unless_schedule(fn, "alpha", alpha, check_nonnegative)
    mu_dtype = canonical_dtype(fn, "mu_dtype", mu_dtype)

    def init_fn(params):
        return ScaleByAdemamixState(
            count=zero_count(),
            count_m2=zero_count(),
            m1=zeros_like_params(params, mu_dtype),
            m2=zeros_like_params(params, mu_dtype),
            nu=second_moment_zeros(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.m1)
        b3_t = _value(fn, "b3", b3, state.count_m2)
        alpha_t = _value(fn, "alpha", alpha, state.count_m2)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, b1=b1, b2=b2)

        def leaf(g, m1, m2, v):
            c = Compute(g, m1, m2, v)
            x = c(g)
            m1 = store(ema_update(c(m1), x, b1), m1)
            m2 = store(ema_update(c(m2), x, b3_t), m2)
            v = store(ema_update(c.real(v), abs_sq(x), b2), v)
            num = c(m1) / corr("b1", c.dt) + c.hp(alpha_t) * c(m2)
            den = jnp.sqrt(c.real(v) / corr("b2", c.rdt) + c.hp(eps_root, real=True)) + c.hp(eps, real=True)
            return store(num / c(den), g), m1, m2, v

        u, m1, m2, nu = map_leaves(leaf, updates, state.m1, state.m2, state.nu)
        return u, ScaleByAdemamixState(
            count=count, count_m2=safe_increment(state.count_m2), m1=m1, m2=m2, nu=nu
        )

    return GradientTransformation(init_fn, update_fn)


def _warmup_fraction(count: Any, warmup: Any, dtype) -> jax.Array:
    """``min(count / warmup, 1)`` in ``dtype`` (1 throughout for ``warmup = 0``)."""
    t = jnp.asarray(count).astype(dtype)
    if isinstance(warmup, (int, float)):
        return jnp.ones_like(t) if warmup == 0 else jnp.minimum(t / warmup, 1.0)
    w = jnp.asarray(warmup).astype(dtype)
    return jnp.where(w > 0, jnp.minimum(t / jnp.where(w > 0, w, 1), 1), 1)


def _schedule_dtype(*values: Any) -> np.dtype:
    """float32, or float64 if a hyperparameter is a float64 array (as gradchain's schedules)."""
    dtype = np.dtype(np.float32)
    for v in values:
        if not isinstance(v, (bool, int, float)):
            d = compute_dtype(jnp.result_type(v))
            dtype = d if jnp.issubdtype(d, jnp.floating) and d.itemsize > dtype.itemsize else dtype
    return dtype


def ademamix_alpha_scheduler(alpha, alpha_start=0.0, warmup=0) -> Schedule:
    """AdEMAMix's warm-up of ``alpha``: linear from ``alpha_start`` to ``alpha``.

    At step ``t`` (the count a schedule is called with)::

        alpha(t) = alpha_start + (alpha - alpha_start) * min(t / warmup, 1)    (warmup > 0)
        alpha(t) = alpha                                                      (warmup = 0)

    The authors' ``alpha_scheduler(alpha, alpha_start=0, warmup=0)`` (their Optax code);
    pass it as ``alpha`` of `scale_by_ademamix`/`ademamix`, which call it with the count
    of previous steps (0 first). The authors' PyTorch code and pytorch_optimizer read it
    one step later: ``lambda t: sched(t + 1)``.

    Args:
        alpha: The final value.
        alpha_start: The value at step 0.
        warmup: Steps of the warm-up, an integer ``>= 0`` (0: constant ``alpha``).

    Returns:
        A schedule ``count -> value`` (float32).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.ademamix_alpha_scheduler(8.0, warmup=4)(jnp.arange(6))
        Array([0., 2., 4., 6., 8., 8.], dtype=float32)

    References:
        Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older",
        ICLR 2025 (arXiv:2409.03137), section 3.
    """
    fn = "ademamix_alpha_scheduler"
    check_scalar(fn, "alpha", alpha)
    check_scalar(fn, "alpha_start", alpha_start)
    check_scalar(fn, "warmup", warmup, lo=0.0, integer=True)
    dtype = _schedule_dtype(alpha, alpha_start, warmup)

    def schedule(count):
        a = _warmup_fraction(count, warmup, dtype)
        start, end = hp(alpha_start, dtype), hp(alpha, dtype)
        return (start + (end - start) * a).astype(dtype)

    return schedule


def ademamix_beta3_scheduler(beta_end, beta_start=0.0, warmup=0) -> Schedule:
    """AdEMAMix's warm-up of ``b3``: linear in the half-life, from ``beta_start`` to ``beta_end``.

    With the half-life ``h(b) = ln(1/2) / ln(b)`` (steps for a weight to halve), at step
    ``t`` and ``a = min(t / warmup, 1)`` (``a = 1`` for ``warmup = 0``)::

        b3(t) = (1/2) ** (1 / ((1 - a) * h(beta_start) + a * h(beta_end)))

    (the paper's ``exp(ln(b_s) ln(b_e) / ((1 - a) ln(b_e) + a ln(b_s)))``, defined at
    ``beta_start = 0``). A linear warm-up of ``b3`` itself would spend almost all of it at
    short memories. The paper starts from ``beta_start = b1``.

    The authors' ``beta3_scheduler(beta_end, beta_start=0, warmup=0)`` (their Optax code;
    their PyTorch code adds 1e-8 to ``b`` in ``h``); see `ademamix_alpha_scheduler` for the
    step it is read at.

    Args:
        beta_end: The final value, in [0, 1).
        beta_start: The value at step 0, in [0, 1).
        warmup: Steps of the warm-up, an integer ``>= 0`` (0: constant ``beta_end``).

    Returns:
        A schedule ``count -> value`` (float32).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.ademamix_beta3_scheduler(0.9999, beta_start=0.9, warmup=100)
        >>> sched(jnp.array([0, 50, 100, 200]))     # half-lives 6.6, 3469, 6931, 6931
        Array([0.9       , 0.9998, 0.9999    , 0.9999    ], dtype=float32)

    References:
        Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older",
        ICLR 2025 (arXiv:2409.03137), section 3.
    """
    fn = "ademamix_beta3_scheduler"
    check_decay(fn, "beta_end", beta_end)
    check_decay(fn, "beta_start", beta_start)
    check_scalar(fn, "warmup", warmup, lo=0.0, integer=True)
    dtype = _schedule_dtype(beta_end, beta_start, warmup)

    def half_life(b):  # >= 0; 0 for b = 0 (abs: never -0.0, whose inverse is -inf)
        return jnp.abs(jnp.log(jnp.asarray(0.5, dtype)) / jnp.log(jnp.asarray(hp(b, dtype), dtype)))

    def schedule(count):
        a = _warmup_fraction(count, warmup, dtype)
        h = (1 - a) * half_life(beta_start) + a * half_life(beta_end)
        return jnp.power(jnp.asarray(0.5, dtype), 1 / h).astype(dtype)

    return schedule


# ---------------------------------------------------------------------- simplified AdEMAMix
class ScaleBySimplifiedAdEMAMixState(NamedTuple):
    """State of `scale_by_simplified_ademamix` (Optax's fields; ``t`` is the step count)."""

    t: jax.Array  # int32 scalar: steps taken
    m: Any  # per-param tree, param dtype: the (unnormalized) momentum sum
    n: Any  # per-param tree, second-moment storage dtype


def scale_by_simplified_ademamix(
    b1=0.99, b2=0.95, alpha: ScalarOrSchedule = 0.0, eps=1e-8, eps_root=0.0
) -> GradientTransformation:
    """Simplified AdEMAMix: a momentum sum plus ``alpha`` times the gradient, over Adam's root.

    Update rule, for incoming update ``g`` at step ``t = count + 1``, with ``alpha`` read
    at the step ``count`` when it is a schedule::

        m_t = b1 * m_{t-1} + g_t
        n_t = b2 * n_{t-1} + (1 - b2) * |g_t|**2
        u_t = (m_t + alpha * g_t) / (sqrt(n_t / (1 - b2**t) + eps_root) + eps)

    with ``m_0 = n_0 = 0``. ``m`` is a sum, not an average (no ``1 - b1`` factor): one
    buffer plays both of AdEMAMix's EMAs. As in Optax and the authors' code.

    Args:
        b1: Decay of the momentum sum, in [0, 1).
        b2: Decay of the second-moment average, in [0, 1).
        alpha: Weight of the current gradient, ``>= 0``, or a schedule of the step.
        eps: Added to the denominator outside the root, ``>= 0``.
        eps_root: Added inside the root, ``>= 0``.

    Returns:
        A `GradientTransformation` with state `ScaleBySimplifiedAdEMAMixState(t, m, n)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_simplified_ademamix(alpha=1.0, eps=0.0)
        >>> tx.update(jnp.array([1.0, -4.0]), tx.init(jnp.zeros(2)))[0]   # (g + g) / |g|
        Array([ 2., -2.], dtype=float32)

    References:
        Morwani et al., "Connections between Schedule-Free Optimizers, AdEMAMix, and
        Accelerated SGD Variants", 2025 (arXiv:2502.02431).
    """
    fn = "scale_by_simplified_ademamix"
    check_adam_args(fn, b1, b2, eps, eps_root)
    _check_unless_schedule(fn, "alpha", alpha, check_nonnegative)

    def init_fn(params):
        return ScaleBySimplifiedAdEMAMixState(
            t=zero_count(), m=zeros_like_params(params), n=second_moment_zeros(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.m)
        alpha_t = _value(fn, "alpha", alpha, state.t)
        t = safe_increment(state.t)
        corr = BiasCorrections(t, b2=b2)

        def leaf(g, m, n):
            c = Compute(g, m, n)
            x = c(g)
            m = store(c.hp(b1) * c(m) + x, m)
            n = store(ema_update(c.real(n), abs_sq(x), b2), n)
            den = jnp.sqrt(c.real(n) / corr("b2", c.rdt) + c.hp(eps_root, real=True)) + c.hp(eps, real=True)
            return store((c(m) + c.hp(alpha_t) * x) / c(den), g), m, n

        u, m, n = map_leaves(leaf, updates, state.m, state.n)
        return u, ScaleBySimplifiedAdEMAMixState(t=t, m=m, n=n)

    return GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------------------------- ACProp
def scale_by_acprop(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16) -> GradientTransformation:
    """ACProp: the gradient over the root of the previous (centred) belief variance.

    Update rule, for incoming update ``g`` at step ``t = count + 1``::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        s_t = b2 * s_{t-1} + (1 - b2) * |g_t - m_{t-1}|**2 + eps_root
        u_t = g_t / (sqrt(s_{t-1} / (1 - b2**(t-1))) + eps)     (t > 1)
        u_1 = g_1 / (1 + eps)

    with ``m_0 = s_0 = 0``. The denominator uses information up to step ``t - 1`` only
    (asynchronous update) and the numerator is the raw gradient (no momentum). As
    Optax's code: its docstring writes ``g_t - m_t``, the code centres on ``m_{t-1}``.

    Args:
        b1: Decay of the gradient average, in [0, 1).
        b2: Decay of the belief (centred second moment) average, in [0, 1).
        eps: Added to the denominator outside the root, ``>= 0``.
        eps_root: Added to ``s`` at every step, ``>= 0``.

    Returns:
        A `GradientTransformation` with state `ScaleByBeliefState(count, mu, nu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_acprop(b2=0.5, eps=0.0, eps_root=0.0)
        >>> s = tx.init(jnp.zeros(2))
        >>> u, s = tx.update(jnp.array([2.0, -1.0]), s); u    # the first step: g
        Array([ 2., -1.], dtype=float32)
        >>> tx.update(jnp.array([2.0, -1.0]), s)[0]          # s_1 / (1 - b2) = |g_1|**2
        Array([ 1., -1.], dtype=float32)

    References:
        Zhuang et al., "Momentum Centering and Asynchronous Update for Adaptive Gradient
        Methods", NeurIPS 2021.
    """
    fn = "scale_by_acprop"
    check_adam_args(fn, b1, b2, eps, eps_root)

    def init_fn(params):
        return ScaleByBeliefState(
            count=zero_count(), mu=zeros_like_params(params), nu=second_moment_zeros(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.mu)
        first = state.count == 0
        corr = BiasCorrections(jnp.maximum(state.count, 1), b2=b2)  # (unused on the first step)

        def leaf(g, m, s):
            c = Compute(g, m, s)
            x, m_prev, s_prev = c(g), c(m), c.real(s)
            m = store(ema_update(m_prev, x, b1), m)
            s = store(ema_update(s_prev, abs_sq(x - m_prev), b2) + c.hp(eps_root, real=True), s)
            s_hat = jnp.where(first, jnp.ones_like(s_prev), s_prev / corr("b2", c.rdt))
            return store(x / c(jnp.sqrt(s_hat) + c.hp(eps, real=True)), g), m, s

        u, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)
        return u, ScaleByBeliefState(count=safe_increment(state.count), mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)
