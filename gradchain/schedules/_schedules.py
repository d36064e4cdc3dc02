"""Elementary schedules: constant, polynomial/linear, exponential, inverse-time, step, cosine.

A schedule is a function ``count -> value`` from the int32 step count (a scalar or an
array of counts) to a float32 value of the same shape. It is pure, works under ``jit``
and ``vmap``, and under ``jax.numpy_dtype_promotion("strict")`` (the count is cast to
float32 before any arithmetic).

Conventions shared by every factory here:

- Values (``init_value``, ``end_value``, ``decay_rate``, ...) accept Python numbers,
  scalar arrays and tracers, so a schedule can be built inside ``jit``/``vmap`` (e.g. a
  sweep over ``init_value``). Concrete values are validated eagerly and raise
  ``ValueError``/``TypeError`` naming the function and the argument; tracers pass
  unchecked.
- Step arguments (``transition_steps``, ``transition_begin``, ``decay_steps``,
  ``warmup_steps``, boundaries) are non-negative integers (the exception is
  `inverse_time_decay`'s ``decay_steps``, which follows Keras and may be fractional).
- The value is computed in float32 (float64 if a hyperparameter array is float64).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import Schedule
from gradchain._numerics import compute_dtype, hp
from gradchain._validate import check_nonnegative, check_positive, check_scalar, concrete_scalar

__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "exponential_decay",
    "inverse_time_decay",
    "linear_schedule",
    "piecewise_constant_schedule",
    "polynomial_schedule",
]


# ----------------------------------------------------------------------------- helpers
def value_dtype(*values: Any) -> np.dtype:
    """float32, or a wider float dtype if some array hyperparameter has one."""
    dtype = np.dtype(np.float32)
    for v in values:
        if v is None or isinstance(v, (bool, int, float)):
            continue
        d = compute_dtype(jnp.result_type(v))
        if jnp.issubdtype(d, jnp.floating) and d.itemsize > dtype.itemsize:
            dtype = d
    return dtype


def as_time(count: Any, dtype) -> jax.Array:
    """The step count as a float array (explicit cast: strict-promotion safe)."""
    return jnp.asarray(count).astype(dtype)


def check_steps(fn: str, name: str, value: Any, *, positive: bool = False, integer: bool = True) -> Any:
    """Validate a step argument; concrete values come back as Python numbers, tracers as is."""
    check_scalar(fn, name, value, lo=0.0, lo_open=positive, integer=integer)
    x = concrete_scalar(value)
    if x is None:
        return value
    # beyond int32, a Python int would overflow when JAX reads it: keep it as a float
    return int(x) if x == int(x) and abs(x) <= np.iinfo(np.int32).max else x


def _flag(fn: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: `{name}` must be a bool, got {value!r}.")
    return bool(value)


def _floor_div(x: jax.Array, y: Any) -> jax.Array:
    """``floor(x / y)`` for ``y > 0``, exact at multiples of ``y``.

    Under ``jit``, XLA computes ``x / y`` for a constant ``y`` as ``x * (1 / y)``, which
    can land just below an integer (``41 / 41 -> 0.99999994`` in float32) and floor to
    the previous stair; one step of correction fixes it.
    """
    q = jnp.floor(x / y)
    q = jnp.where((q + 1) * y <= x, q + 1, q)
    return jnp.where(q * y > x, q - 1, q)


def broadcast_value(value: Any, count: Any, dtype) -> jax.Array:
    return jnp.broadcast_to(jnp.asarray(hp(value, dtype), dtype), jnp.shape(count))


def check_boundaries_and_scales(fn: str, init_value: Any, boundaries_and_scales: Any) -> tuple[list, Any]:
    """``init_value`` and a ``{step: scale}`` dict (or None) checked: the ``(step, scale)``
    pairs sorted by step, and the value dtype."""
    check_scalar(fn, "init_value", init_value)
    if boundaries_and_scales is None:
        boundaries_and_scales = {}
    if not isinstance(boundaries_and_scales, Mapping):
        raise TypeError(
            f"{fn}: `boundaries_and_scales` must be a dict {{step: scale}} or None, "
            f"got {boundaries_and_scales!r}."
        )
    pairs = []
    for step, scale in boundaries_and_scales.items():
        step = check_steps(fn, f"boundaries_and_scales` key `{step!r}", step)
        check_nonnegative(fn, f"boundaries_and_scales[{step!r}]", scale)
        pairs.append((step, scale))
    pairs.sort(key=lambda kv: kv[0])
    return pairs, value_dtype(init_value, *(s for _, s in pairs))


# ------------------------------------------------------------------ internal builders
# Unvalidated builders, shared with the composite schedules (which validate themselves).
def polynomial_builder(init_value, end_value, power, transition_steps, transition_begin) -> Schedule:
    dtype = value_dtype(init_value, end_value, power, transition_steps, transition_begin)
    if isinstance(transition_steps, (int, float)) and transition_steps == 0:
        return lambda count: broadcast_value(init_value, count, dtype)
    traced_steps = not isinstance(transition_steps, (int, float))

    def schedule(count):
        t = as_time(count, dtype)
        i, e, p = hp(init_value, dtype), hp(end_value, dtype), hp(power, dtype)
        n, b = hp(transition_steps, dtype), hp(transition_begin, dtype)
        if traced_steps:  # `transition_steps = 0` means "constant init_value"
            positive = n > 0
            n = jnp.where(positive, n, jnp.ones_like(n))
        s = jnp.clip(t - b, 0, n)
        # Under jit, XLA computes `s / n` as `s * (1 / n)`, a few ulps off: clamp the
        # fraction so that it never goes negative (nan for a fractional power, as in
        # Optax) and is exactly 0 at the end of the transition.
        frac = jnp.where(s < n, jnp.maximum(1 - s / n, 0), 0)
        value = (i - e) * frac**p + e
        if traced_steps:
            value = jnp.where(positive, value, i)
        return value

    return schedule


def exponential_builder(init_value, transition_steps, decay_rate, transition_begin, staircase, end_value):
    dtype = value_dtype(init_value, transition_steps, decay_rate, transition_begin, end_value)
    concrete_rate = concrete_scalar(decay_rate)

    def schedule(count):
        t = as_time(count, dtype)
        i, r = hp(init_value, dtype), hp(decay_rate, dtype)
        elapsed = t - hp(transition_begin, dtype)
        n = hp(transition_steps, dtype)
        p = _floor_div(elapsed, n) if staircase else elapsed / n
        value = jnp.where(elapsed <= 0, i, i * jnp.power(r, p))
        if end_value is not None:
            e = hp(end_value, dtype)
            if concrete_rate is not None:
                value = jnp.maximum(value, e) if concrete_rate < 1 else jnp.minimum(value, e)
            else:
                value = jnp.where(r < 1, jnp.maximum(value, e), jnp.minimum(value, e))
        return value

    return schedule


def cosine_builder(init_value, decay_steps, alpha, exponent) -> Schedule:
    dtype = value_dtype(init_value, decay_steps, alpha, exponent)

    def schedule(count):
        n = hp(decay_steps, dtype)
        t = jnp.minimum(as_time(count, dtype), n)
        a, x = hp(alpha, dtype), hp(exponent, dtype)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / n))
        return hp(init_value, dtype) * ((1 - a) * cosine**x + a)

    return schedule


# ------------------------------------------------------------------- public factories
def constant_schedule(value) -> Schedule:
    """A schedule that always returns ``value``: ``v(t) = value``.

    Args:
        value: The value (a number, scalar array or tracer).

    Returns:
        A schedule ``count -> value`` (float32, broadcast to the shape of ``count``).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.schedules.constant_schedule(0.5)(jnp.arange(3))
        Array([0.5, 0.5, 0.5], dtype=float32)
    """
    check_scalar("constant_schedule", "value", value)
    dtype = value_dtype(value)
    return lambda count: broadcast_value(value, count, dtype)


def polynomial_schedule(init_value, end_value, power, transition_steps, transition_begin=0) -> Schedule:
    """Polynomial transition from ``init_value`` to ``end_value`` over ``transition_steps``.

    With ``I = init_value``, ``E = end_value``, ``P = power``, ``T = transition_steps``,
    ``B = transition_begin``::

        s    = clip(t - B, 0, T)
        v(t) = (I - E) * (1 - s / T)**P + E       (T > 0)
        v(t) = I                                  (T = 0: no transition)

    so ``v = I`` for ``t <= B`` and ``v = E`` for ``t >= B + T``.

    Args:
        init_value: Value up to step ``transition_begin``.
        end_value: Value from step ``transition_begin + transition_steps`` on.
        power: Exponent of the transition, ``> 0`` (1: linear).
        transition_steps: Length of the transition, an integer ``>= 0``.
        transition_begin: Steps to hold ``init_value`` first, an integer ``>= 0``.

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.polynomial_schedule(1.0, 0.0, power=2, transition_steps=4)
        >>> sched(jnp.arange(6))
        Array([1.    , 0.5625, 0.25  , 0.0625, 0.    , 0.    ], dtype=float32)
    """
    fn = "polynomial_schedule"
    check_scalar(fn, "init_value", init_value)
    check_scalar(fn, "end_value", end_value)
    check_positive(fn, "power", power)
    transition_steps = check_steps(fn, "transition_steps", transition_steps)
    transition_begin = check_steps(fn, "transition_begin", transition_begin)
    return polynomial_builder(init_value, end_value, power, transition_steps, transition_begin)


def linear_schedule(init_value, end_value, transition_steps, transition_begin=0) -> Schedule:
    """Linear transition from ``init_value`` to ``end_value`` (`polynomial_schedule`, power 1).

    With ``I = init_value``, ``E = end_value``, ``T = transition_steps``,
    ``B = transition_begin``::

        v(t) = I + (E - I) * clip(t - B, 0, T) / T       (T > 0; T = 0 gives v = I)

    computed as ``(I - E) * (1 - clip(t - B, 0, T) / T) + E``.

    Args:
        init_value: Value up to step ``transition_begin``.
        end_value: Value from step ``transition_begin + transition_steps`` on.
        transition_steps: Length of the transition, an integer ``>= 0``.
        transition_begin: Steps to hold ``init_value`` first, an integer ``>= 0``.

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.linear_schedule(1.0, 0.0, transition_steps=4, transition_begin=1)
        >>> sched(jnp.arange(7))
        Array([1.  , 1.  , 0.75, 0.5 , 0.25, 0.  , 0.  ], dtype=float32)
    """
    fn = "linear_schedule"
    check_scalar(fn, "init_value", init_value)
    check_scalar(fn, "end_value", end_value)
    transition_steps = check_steps(fn, "transition_steps", transition_steps)
    transition_begin = check_steps(fn, "transition_begin", transition_begin)
    return polynomial_builder(init_value, end_value, 1, transition_steps, transition_begin)


def check_exponential(
    fn,
    init_value,
    transition_steps,
    decay_rate,
    transition_begin,
    staircase,
    end_value,
    init_name="init_value",
):
    check_scalar(fn, init_name, init_value)
    transition_steps = check_steps(fn, "transition_steps", transition_steps, positive=True)
    check_positive(fn, "decay_rate", decay_rate)
    transition_begin = check_steps(fn, "transition_begin", transition_begin)
    staircase = _flag(fn, "staircase", staircase)
    if end_value is not None:
        check_scalar(fn, "end_value", end_value)
    return transition_steps, transition_begin, staircase


def exponential_decay(
    init_value, transition_steps, decay_rate, transition_begin=0, *, staircase=False, end_value=None
) -> Schedule:
    """Exponential decay, continuous or in stairs, optionally bounded by ``end_value``.

    With ``I = init_value``, ``r = decay_rate``, ``T = transition_steps``,
    ``B = transition_begin``::

        p    = (t - B) / T               (floor((t - B) / T) with staircase=True)
        v(t) = I                         if t <= B
        v(t) = I * r**p                  otherwise
        v(t) = max(v(t), end_value)      if end_value is given and r < 1 (min if r >= 1)

    Args:
        init_value: Value up to step ``transition_begin``.
        transition_steps: Steps over which the value is multiplied by ``decay_rate``
            once, an integer ``> 0``.
        decay_rate: The factor per ``transition_steps``, ``> 0`` (``< 1`` decays,
            ``> 1`` grows).
        transition_begin: Steps to hold ``init_value`` first, an integer ``>= 0``.
        staircase: Decay in discrete jumps every ``transition_steps`` steps.
        end_value: A lower bound when ``decay_rate < 1``, an upper bound otherwise.

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.exponential_decay(1.0, 2, 0.5, staircase=True, end_value=0.3)
        >>> sched(jnp.arange(6))
        Array([1. , 1. , 0.5, 0.5, 0.3, 0.3], dtype=float32)
    """
    steps, begin, staircase = check_exponential(
        "exponential_decay", init_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    return exponential_builder(init_value, steps, decay_rate, begin, staircase, end_value)


def inverse_time_decay(init_value, decay_rate, decay_steps, *, staircase=False) -> Schedule:
    """Inverse-time decay, as Keras's ``InverseTimeDecay`` (not in Optax).

    With ``I = init_value``, ``r = decay_rate``, ``T = decay_steps``::

        p    = t / T                     (floor(t / T) with staircase=True)
        v(t) = I / (1 + r * p)

    Args:
        init_value: Value at step 0.
        decay_rate: ``>= 0``; the value is halved after ``T / r`` steps.
        decay_steps: The time unit of the decay, a number ``> 0`` (may be fractional).
        staircase: Decay in discrete jumps every ``decay_steps`` steps.

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.inverse_time_decay(1.0, decay_rate=1.0, decay_steps=2)
        >>> sched(jnp.arange(0, 8, 2))
        Array([1.        , 0.5       , 0.33333334, 0.25      ], dtype=float32)

    References:
        Keras, ``keras.optimizers.schedules.InverseTimeDecay``.
    """
    fn = "inverse_time_decay"
    check_scalar(fn, "init_value", init_value)
    check_nonnegative(fn, "decay_rate", decay_rate)
    decay_steps = check_steps(fn, "decay_steps", decay_steps, positive=True, integer=False)
    staircase = _flag(fn, "staircase", staircase)
    dtype = value_dtype(init_value, decay_rate, decay_steps)

    def schedule(count):
        t, n = as_time(count, dtype), hp(decay_steps, dtype)
        p = _floor_div(t, n) if staircase else t / n
        return hp(init_value, dtype) / (1 + hp(decay_rate, dtype) * p)

    return schedule


def piecewise_constant_schedule(init_value, boundaries_and_scales: Mapping | None = None) -> Schedule:
    """Step decay: multiply the value by ``scale_i`` from step ``boundary_i`` on.

    With ``{b_i: s_i} = boundaries_and_scales``::

        v(t) = init_value * prod(s_i for every b_i <= t)

    Args:
        init_value: Value before the first boundary.
        boundaries_and_scales: A dict ``{step: scale}``; steps are integers ``>= 0``,
            scales numbers ``>= 0``. ``None`` or ``{}``: a constant schedule.

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.piecewise_constant_schedule(1.0, {2: 0.5, 4: 0.5})
        >>> sched(jnp.arange(6))
        Array([1.  , 1.  , 0.5 , 0.5 , 0.25, 0.25], dtype=float32)
    """
    fn = "piecewise_constant_schedule"
    pairs, dtype = check_boundaries_and_scales(fn, init_value, boundaries_and_scales)

    def schedule(count):
        t = jnp.asarray(count)
        value = broadcast_value(init_value, t, dtype)
        for step, scale in pairs:
            value = value * jnp.where(t >= step, jnp.asarray(hp(scale, dtype), dtype), jnp.ones((), dtype))
        return value

    return schedule


def cosine_decay_schedule(init_value, decay_steps, alpha=0.0, exponent=1.0) -> Schedule:
    """Cosine decay from ``init_value`` to ``alpha * init_value`` over ``decay_steps``.

    With ``I = init_value``, ``T = decay_steps``, ``a = alpha``, ``x = exponent``::

        c    = 0.5 * (1 + cos(pi * min(t, T) / T))
        v(t) = I * ((1 - a) * c**x + a)

    Args:
        init_value: Value at step 0.
        decay_steps: Length of the decay, an integer ``> 0``.
        alpha: Final value as a fraction of ``init_value``.
        exponent: Power of the cosine factor, ``> 0``.

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.cosine_decay_schedule(1.0, decay_steps=4, alpha=0.2)
        >>> [round(float(v), 4) for v in sched(jnp.arange(6))]
        [1.0, 0.8828, 0.6, 0.3172, 0.2, 0.2]

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
        ICLR 2017.
    """
    fn = "cosine_decay_schedule"
    check_scalar(fn, "init_value", init_value)
    decay_steps = check_steps(fn, "decay_steps", decay_steps, positive=True)
    check_scalar(fn, "alpha", alpha)
    check_positive(fn, "exponent", exponent)
    return cosine_builder(init_value, decay_steps, alpha, exponent)
