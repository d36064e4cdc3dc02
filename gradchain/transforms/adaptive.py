"""Adaptive scaling: divide each coordinate by a running estimate of its magnitude.

Adagrad (`scale_by_rss`), RMSprop (`scale_by_rms`, centered: `scale_by_stddev`),
Adam and NAdam (`scale_by_adam`), AMSGrad (`scale_by_amsgrad`); more of the family in
`gradchain.transforms.adaptive_more`. None applies a learning rate or flips the sign:
chain with `scale_by_learning_rate`.

Numerics shared by the family. Each leaf's arithmetic runs in at least float32 and
the results are cast back: updates to the incoming update's dtype, moments to their
storage dtype. Second moments (squares) are stored in the parameter's real dtype,
except that float16 parameters keep them in float32: float16 bottoms out at 6e-8, so
the running average of squares of gradients below ~2.4e-4 would flush to zero, each
step would see only its own ``(1 - b2) * g**2``, and the update would overshoot by up
to ``1 / sqrt(1 - b2)`` (~30x for Adam). bfloat16 has float32's exponent range and only
rounds the mantissa (8 bits), which is why ``nu_dtype=jnp.bfloat16`` is accepted and
``nu_dtype=jnp.float16`` is refused.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation
from gradchain._numerics import (
    abs_sq,
    as_leaf,
    bias_correction_power,
    hp,
    leaf_dtype,
    real_dtype,
    safe_increment,
    zero_count,
)
from gradchain._validate import check_decay, check_nonnegative, check_tree_match
from gradchain.transforms.momentum import _canonical_dtype, _check_flag, _dt, _map_unzip, _zeros

__all__ = [
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "ScaleByRssState",
    "scale_by_adam",
    "scale_by_amsgrad",
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


# ----------------------------------------------------------------------------- helpers


def _sq_dtype(param_dtype, nu_dtype=None):
    """Storage dtype of a second moment: ``nu_dtype``, else the real param dtype (float16 -> float32)."""
    if nu_dtype is not None:
        return nu_dtype
    d = real_dtype(param_dtype)
    return jnp.dtype(jnp.float32) if d == jnp.float16 else d


def _sq_zeros(params, value=0.0, nu_dtype=None):
    return jax.tree.map(
        lambda p: jnp.full_like(as_leaf(p), value, dtype=_sq_dtype(leaf_dtype(p), nu_dtype)), params
    )


def _check_nu_dtype(fn: str, nu_dtype):
    nu_dtype = _canonical_dtype(fn, "nu_dtype", nu_dtype)
    if nu_dtype is not None and (nu_dtype == jnp.float16 or not jnp.issubdtype(nu_dtype, jnp.floating)):
        raise ValueError(
            f"{fn}: `nu_dtype` must be a real dtype with float32's exponent range (bfloat16, float32, "
            f"float64), got {nu_dtype!r}: squares of gradients below ~2.4e-4 underflow in float16."
        )
    return nu_dtype


def _corrections(count: jax.Array, **decays):
    """``corr(name, dtype, ahead=False) = 1 - decays[name]**(count + ahead)``, once per dtype."""

    @functools.cache
    def corr(name: str, dtype, ahead: bool = False):
        rdt = real_dtype(dtype)
        t = safe_increment(count) if ahead else count
        return (1 - bias_correction_power(decays[name], t, rdt)).astype(dtype)

    return corr


def _first_moment_hat(x, m, b1, corr, nesterov: bool):
    """``m / (1 - b1**t)``, or Nesterov's look-ahead ``b1 * m / (1 - b1**(t+1)) + (1 - b1) * g / (1 - b1**t)``."""
    dt = m.dtype
    if not nesterov:
        return m / corr("b1", dt)
    d = hp(b1, dt)
    return d * (m / corr("b1", dt, True)) + (1 - d) * (x / corr("b1", dt))


def _ema(x, m, decay):
    """``(1 - decay) * x + decay * m``: x, m already in the compute dtype."""
    d = hp(decay, m.dtype)
    return (1 - d) * x + d * m


# ----------------------------------------------------------------------------- Adagrad, RMSprop


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
        return ScaleByRssState(sum_of_squares=_sq_zeros(params, initial_accumulator_value))

    def leaf(g, s):
        dt = _dt(g, s)
        x = g.astype(dt)
        rdt = real_dtype(dt)
        s_new = s.astype(rdt) + abs_sq(x)
        scale = jnp.where(s_new > 0, jax.lax.rsqrt(s_new + hp(eps, rdt)), 0)
        return (scale.astype(dt) * x).astype(g.dtype), s_new.astype(s.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_rss", updates, state.sum_of_squares)
        new_updates, s = _map_unzip(leaf, 2, updates, state.sum_of_squares)
        return new_updates, ScaleByRssState(sum_of_squares=s)

    return GradientTransformation(init_fn, update_fn)


def _check_rms_args(fn, decay, eps, initial_scale, eps_in_sqrt, bias_correction):
    check_decay(fn, "decay", decay)
    check_nonnegative(fn, "eps", eps)
    check_nonnegative(fn, "initial_scale", initial_scale)
    _check_flag(fn, "eps_in_sqrt", eps_in_sqrt)
    _check_flag(fn, "bias_correction", bias_correction)


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
        return ScaleByRmsState(count=zero_count(), nu=_sq_zeros(params, initial_scale))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_rms", updates, state.nu)
        count = safe_increment(state.count)
        corr = _corrections(count, decay=decay)

        def leaf(g, v):
            dt = _dt(g, v)
            x = g.astype(dt)
            v_new = _ema(abs_sq(x), v.astype(real_dtype(dt)), decay)
            w = v_new / corr("decay", v_new.dtype) if bias_correction else v_new
            return (_rms_scale(w, eps, eps_in_sqrt).astype(dt) * x).astype(g.dtype), v_new.astype(v.dtype)

        new_updates, nu = _map_unzip(leaf, 2, updates, state.nu)
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
            count=zero_count(), mu=_zeros(params, None), nu=_sq_zeros(params, initial_scale)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_stddev", updates, state.mu)
        count = safe_increment(state.count)
        corr = _corrections(count, decay=decay)

        def leaf(g, m, v):
            dt = _dt(g, m, v)
            rdt = real_dtype(dt)
            x = g.astype(dt)
            m_new = _ema(x, m.astype(dt), decay)
            v_new = _ema(abs_sq(x), v.astype(rdt), decay)
            m_hat, v_hat = m_new, v_new
            if bias_correction:
                m_hat, v_hat = m_new / corr("decay", dt), v_new / corr("decay", rdt)
            s = jnp.maximum(v_hat - abs_sq(m_hat), 0)
            u = _rms_scale(s, eps, eps_in_sqrt).astype(dt) * x
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        new_updates, mu, nu = _map_unzip(leaf, 3, updates, state.mu, state.nu)
        return new_updates, ScaleByRStdDevState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------- Adam, AMSGrad


def _check_adam_args(fn, b1, b2, eps, eps_root):
    check_decay(fn, "b1", b1)
    check_decay(fn, "b2", b2)
    check_nonnegative(fn, "eps", eps)
    check_nonnegative(fn, "eps_root", eps_root)


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
    _check_adam_args("scale_by_adam", b1, b2, eps, eps_root)
    _check_flag("scale_by_adam", "nesterov", nesterov)
    mu_dtype = _canonical_dtype("scale_by_adam", "mu_dtype", mu_dtype)
    nu_dtype = _check_nu_dtype("scale_by_adam", nu_dtype)

    def init_fn(params):
        return ScaleByAdamState(
            count=zero_count(), mu=_zeros(params, mu_dtype), nu=_sq_zeros(params, 0.0, nu_dtype)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_adam", updates, state.mu)
        count = safe_increment(state.count)
        corr = _corrections(count, b1=b1, b2=b2)

        def leaf(g, m, v):
            dt = _dt(g, m, v)
            rdt = real_dtype(dt)
            x = g.astype(dt)
            # The update reads the moments as stored (rounded once to mu_dtype/nu_dtype):
            # then the loop that writes the parameters reads the new moments, the old ones
            # are dead, and XLA updates reduced-precision state in place (reading the
            # unrounded values would keep the old state alive: one extra state copy).
            m_new = _ema(x, m.astype(dt), b1).astype(m.dtype)
            v_new = _ema(abs_sq(x), v.astype(rdt), b2).astype(v.dtype)
            m_hat = _first_moment_hat(x, m_new.astype(dt), b1, corr, nesterov)
            v_hat = v_new.astype(rdt) / corr("b2", rdt)
            u = m_hat / (jnp.sqrt(v_hat + hp(eps_root, rdt)) + hp(eps, rdt)).astype(dt)
            return u.astype(g.dtype), m_new, v_new

        new_updates, mu, nu = _map_unzip(leaf, 3, updates, state.mu, state.nu)
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
    _check_adam_args("scale_by_amsgrad", b1, b2, eps, eps_root)
    _check_flag("scale_by_amsgrad", "bias_correction_mu", bias_correction_mu)
    _check_flag("scale_by_amsgrad", "bias_correction_nu", bias_correction_nu)
    mu_dtype = _canonical_dtype("scale_by_amsgrad", "mu_dtype", mu_dtype)

    def init_fn(params):
        return ScaleByAmsgradState(
            count=zero_count(), mu=_zeros(params, mu_dtype), nu=_sq_zeros(params), nu_max=_sq_zeros(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_amsgrad", updates, state.mu)
        count = safe_increment(state.count)
        corr = _corrections(count, b1=b1, b2=b2)

        def leaf(g, m, v, w):
            dt = _dt(g, m, v, w)
            rdt = real_dtype(dt)
            x = g.astype(dt)
            m_new = _ema(x, m.astype(dt), b1)
            v_new = _ema(abs_sq(x), v.astype(rdt), b2)
            m_hat = m_new / corr("b1", dt) if bias_correction_mu else m_new
            v_hat = v_new / corr("b2", rdt) if bias_correction_nu else v_new
            w_new = jnp.maximum(w.astype(rdt), v_hat)
            u = m_hat / (jnp.sqrt(w_new + hp(eps_root, rdt)) + hp(eps, rdt)).astype(dt)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype), w_new.astype(w.dtype)

        new_updates, mu, nu, nu_max = _map_unzip(leaf, 4, updates, state.mu, state.nu, state.nu_max)
        return new_updates, ScaleByAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)

    return GradientTransformation(init_fn, update_fn)
