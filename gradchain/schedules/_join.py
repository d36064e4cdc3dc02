"""Composite schedules: joined phases, warm-up + decay, restarts, one-cycle.

Each is a `join_schedules` of elementary schedules (see ``_schedules.py`` for the
conventions on values, step arguments, dtypes and validation).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradchain._base import Schedule
from gradchain._numerics import hp
from gradchain._validate import check_positive, check_scalar, concrete_scalar
from gradchain.schedules._schedules import (
    as_time,
    check_exponential,
    check_steps,
    cosine_builder,
    exponential_builder,
    polynomial_builder,
    value_dtype,
)

__all__ = [
    "cosine_onecycle_schedule",
    "join_schedules",
    "sgdr_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "warmup_inverse_sqrt_schedule",
]


def join_builder(schedules: Sequence[Schedule], boundaries: Sequence[Any]) -> Schedule:
    def schedule(count):
        count = jnp.asarray(count)
        value = schedules[0](count)
        for boundary, phase in zip(boundaries, schedules[1:]):
            b = hp(boundary, count.dtype)
            value = jnp.where(count < b, value, phase(count - b))
        return value

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules`` one after the other, switching at ``boundaries``.

    Each schedule counts from 0 at the boundary where it starts (``b_0 = 0``)::

        v(t) = schedules[i](t - b_i)      for b_i <= t < b_{i+1}

    Args:
        schedules: A non-empty sequence of schedules (callables ``count -> value``).
        boundaries: ``len(schedules) - 1`` non-decreasing integers ``>= 0``, the steps
            at which to switch to the next schedule.

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> warmup = gradchain.schedules.linear_schedule(0.0, 1.0, transition_steps=2)
        >>> decay = gradchain.schedules.exponential_decay(1.0, 1, 0.5)
        >>> gradchain.schedules.join_schedules([warmup, decay], [2])(jnp.arange(5))
        Array([0.  , 0.5 , 1.  , 0.5 , 0.25], dtype=float32)
    """
    fn = "join_schedules"
    schedules = list(schedules)
    boundaries = list(boundaries)
    if not schedules:
        raise ValueError(f"{fn}: `schedules` must be a non-empty sequence of schedules, got [].")
    for i, s in enumerate(schedules):
        if not callable(s):
            raise TypeError(f"{fn}: `schedules[{i}]` must be a callable count -> value, got {s!r}.")
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"{fn}: `boundaries` must have len(schedules) - 1 = {len(schedules) - 1} entries, "
            f"got {len(boundaries)}: {boundaries!r}."
        )
    boundaries = [check_steps(fn, f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
    known = [concrete_scalar(b) for b in boundaries]
    for prev, cur in itertools.pairwise(known):
        if prev is not None and cur is not None and cur < prev:
            raise ValueError(f"{fn}: `boundaries` must be non-decreasing, got {boundaries!r}.")
    return join_builder(schedules, boundaries)


def _warmup_cosine(fn, init_value, peak_value, warmup_steps, decay_steps, end_value=0.0, exponent=1.0):
    check_scalar(fn, "init_value", init_value)
    check_scalar(fn, "peak_value", peak_value)
    warmup_steps = check_steps(fn, "warmup_steps", warmup_steps)
    decay_steps = check_steps(fn, "decay_steps", decay_steps, positive=True)
    check_scalar(fn, "end_value", end_value)
    check_positive(fn, "exponent", exponent)
    w, d = concrete_scalar(warmup_steps), concrete_scalar(decay_steps)
    if w is not None and d is not None and d <= w:
        raise ValueError(
            f"{fn}: `decay_steps` must be > `warmup_steps` = {warmup_steps!r} (it counts the "
            f"warm-up too), got {decay_steps!r}."
        )
    peak = concrete_scalar(peak_value) if isinstance(peak_value, (int, float)) else None
    if peak is not None and isinstance(end_value, (int, float)):
        alpha = 0.0 if peak == 0 else end_value / peak_value
    else:
        dtype = value_dtype(peak_value, end_value)
        p, e = jnp.asarray(hp(peak_value, dtype), dtype), jnp.asarray(hp(end_value, dtype), dtype)
        nonzero = p != 0
        alpha = jnp.where(nonzero, e / jnp.where(nonzero, p, jnp.ones_like(p)), jnp.zeros_like(p))
    return join_builder(
        [
            polynomial_builder(init_value, peak_value, 1, warmup_steps, 0),
            cosine_builder(peak_value, decay_steps - warmup_steps, alpha, exponent),
        ],
        [warmup_steps],
    )


def warmup_cosine_decay_schedule(
    init_value, peak_value, warmup_steps, decay_steps, end_value=0.0, exponent=1.0
) -> Schedule:
    """Linear warm-up to ``peak_value``, then cosine decay to ``end_value``.

    With ``I = init_value``, ``P = peak_value``, ``E = end_value``, ``W = warmup_steps``,
    ``D = decay_steps`` (the total length, warm-up included), ``x = exponent``::

        v(t) = I + (P - I) * t / W                         for t < W
        c    = 0.5 * (1 + cos(pi * min(t - W, D - W) / (D - W)))
        v(t) = P * ((1 - a) * c**x + a),  a = E / P        for t >= W  (a = 0 if P = 0)

    Args:
        init_value: Value at step 0.
        peak_value: Value at the end of the warm-up.
        warmup_steps: Length of the linear warm-up, an integer ``>= 0``.
        decay_steps: Total length of the schedule, an integer ``> warmup_steps``.
        end_value: Value from step ``decay_steps`` on.
        exponent: Power of the cosine factor, ``> 0``.

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.warmup_cosine_decay_schedule(0.0, 1.0, 2, 6, end_value=0.1)
        >>> [round(float(v), 4) for v in sched(jnp.arange(8))]
        [0.0, 0.5, 1.0, 0.8682, 0.55, 0.2318, 0.1, 0.1]

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
        ICLR 2017; Goyal et al., "Accurate, Large Minibatch SGD", 2017 (warm-up).
    """
    return _warmup_cosine(
        "warmup_cosine_decay_schedule", init_value, peak_value, warmup_steps, decay_steps, end_value, exponent
    )


def warmup_exponential_decay_schedule(
    init_value,
    peak_value,
    warmup_steps,
    transition_steps,
    decay_rate,
    transition_begin=0,
    *,
    staircase=False,
    end_value=None,
) -> Schedule:
    """Linear warm-up to ``peak_value``, then `exponential_decay` from ``peak_value``.

    With ``I = init_value``, ``P = peak_value``, ``W = warmup_steps``, ``r = decay_rate``,
    ``T = transition_steps``, ``B = transition_begin``::

        v(t) = I + (P - I) * t / W                     for t < W
        p    = (t - W - B) / T                         (floored with staircase=True)
        v(t) = P                                       for W <= t <= W + B
        v(t) = P * r**p, bounded by end_value          for t > W + B

    Args:
        init_value: Value at step 0.
        peak_value: Value at the end of the warm-up.
        warmup_steps: Length of the linear warm-up, an integer ``>= 0``.
        transition_steps: See `exponential_decay`; an integer ``> 0``.
        decay_rate: See `exponential_decay`; ``> 0``.
        transition_begin: Steps to hold ``peak_value`` after the warm-up.
        staircase: Decay in discrete jumps.
        end_value: Lower bound when ``decay_rate < 1``, upper bound otherwise.

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.warmup_exponential_decay_schedule(0.0, 1.0, 2, 1, 0.5)
        >>> sched(jnp.arange(6))
        Array([0.   , 0.5  , 1.   , 0.5  , 0.25 , 0.125], dtype=float32)
    """
    fn = "warmup_exponential_decay_schedule"
    check_scalar(fn, "init_value", init_value)
    warmup_steps = check_steps(fn, "warmup_steps", warmup_steps)
    steps, begin, staircase = check_exponential(
        fn, peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value, "peak_value"
    )
    return join_builder(
        [
            polynomial_builder(init_value, peak_value, 1, warmup_steps, 0),
            exponential_builder(peak_value, steps, decay_rate, begin, staircase, end_value),
        ],
        [warmup_steps],
    )


def warmup_inverse_sqrt_schedule(peak_value, warmup_steps, *, init_value=0.0, timescale=None) -> Schedule:
    """Linear warm-up, then inverse-square-root decay (the Transformer / "rsqrt" schedule).

    Not in Optax. With ``P = peak_value``, ``I = init_value``, ``W = warmup_steps`` and
    ``tau = timescale`` (default ``W``)::

        v(t) = I + (P - I) * t / W                for t < W
        v(t) = P / sqrt(1 + (t - W) / tau)        for t >= W

    With the default ``tau = W`` the decay is ``P * sqrt(W / t)``, the schedule of
    Vaswani et al. (``d_model**-0.5 * min(t**-0.5, t * W**-1.5)`` peaks at
    ``P = (d_model * W)**-0.5``).

    Args:
        peak_value: Value at the end of the warm-up.
        warmup_steps: Length of the linear warm-up, an integer ``>= 0``.
        init_value: Value at step 0.
        timescale: Steps after the warm-up at which the value has dropped to
            ``P / sqrt(2)``, ``> 0``; defaults to ``warmup_steps`` (required when
            ``warmup_steps = 0``).

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.warmup_inverse_sqrt_schedule(1.0, 4)
        >>> sched(jnp.array([0, 2, 4, 16, 64]))
        Array([0.  , 0.5 , 1.  , 0.5 , 0.25], dtype=float32)

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (Section 5.3).
    """
    fn = "warmup_inverse_sqrt_schedule"
    check_scalar(fn, "peak_value", peak_value)
    warmup_steps = check_steps(fn, "warmup_steps", warmup_steps)
    check_scalar(fn, "init_value", init_value)
    if timescale is None:
        if concrete_scalar(warmup_steps) == 0:
            raise ValueError(f"{fn}: `timescale` must be given (> 0) when `warmup_steps` is 0, got None.")
        timescale = warmup_steps
    else:
        check_positive(fn, "timescale", timescale)
    dtype = value_dtype(peak_value, warmup_steps, init_value, timescale)

    def decay(count):
        s = as_time(count, dtype)
        return hp(peak_value, dtype) * jax.lax.rsqrt(1 + s / hp(timescale, dtype))

    return join_builder(
        [polynomial_builder(init_value, peak_value, 1, warmup_steps, 0), decay], [warmup_steps]
    )


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any]]) -> Schedule:
    """SGD with warm restarts: `warmup_cosine_decay_schedule` cycles one after another.

    Cycle ``k`` runs ``warmup_cosine_decay_schedule(**cosine_kwargs[k])`` for its
    ``decay_steps`` steps, counting from 0 at its start::

        v(t) = cycle_k(t - S_k),   S_k = sum(decay_steps of cycles 0..k-1),  S_k <= t < S_{k+1}

    (the last cycle continues past its end at its ``end_value``).

    Args:
        cosine_kwargs: A non-empty iterable of dicts of `warmup_cosine_decay_schedule`
            arguments (``init_value``, ``peak_value``, ``warmup_steps``, ``decay_steps``,
            and optionally ``end_value``, ``exponent``).

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> cycle = dict(init_value=0.0, peak_value=1.0, warmup_steps=1, decay_steps=3)
        >>> gradchain.schedules.sgdr_schedule([cycle, cycle])(jnp.arange(7))
        Array([0. , 1. , 0.5, 0. , 1. , 0.5, 0. ], dtype=float32)

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
        ICLR 2017.
    """
    fn = "sgdr_schedule"
    if isinstance(cosine_kwargs, Mapping):
        raise TypeError(f"{fn}: `cosine_kwargs` must be an iterable of dicts (one per cycle), got one dict.")
    cycles = list(cosine_kwargs)
    if not cycles:
        raise ValueError(f"{fn}: `cosine_kwargs` must be a non-empty iterable of dicts, got {cycles!r}.")
    allowed = {"init_value", "peak_value", "warmup_steps", "decay_steps", "end_value", "exponent"}
    required = {"init_value", "peak_value", "warmup_steps", "decay_steps"}
    schedules, boundaries, start = [], [], 0
    for k, kwargs in enumerate(cycles):
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"{fn}: `cosine_kwargs[{k}]` must be a dict, got {kwargs!r}.")
        if set(kwargs) - allowed or required - set(kwargs):
            raise TypeError(
                f"{fn}: `cosine_kwargs[{k}]` must have the keys {sorted(required)} and optionally "
                f"['end_value', 'exponent'], got {sorted(kwargs)}."
            )
        schedules.append(_warmup_cosine(f"{fn} (cycle {k})", **kwargs))
        start = start + check_steps(fn, f"cosine_kwargs[{k}]['decay_steps']", kwargs["decay_steps"])
        boundaries.append(start)
    return join_builder(schedules, boundaries[:-1])


def cosine_onecycle_schedule(
    transition_steps, peak_value, pct_start=0.3, div_factor=25.0, final_div_factor=1e4
) -> Schedule:
    """One-cycle schedule: cosine ramp up to ``peak_value``, then cosine anneal.

    With ``T = transition_steps``, ``P = peak_value``, ``b = floor(pct_start * T)``,
    ``v0 = P / div_factor``, ``v2 = v0 / final_div_factor`` and the cosine
    interpolation ``cos_interp(a, z, s) = z + (a - z) * (1 + cos(pi * s)) / 2``::

        v(t) = cos_interp(v0, P, t / b)                  for t < b
        v(t) = cos_interp(P, v2, (t - b) / (T - b))      for b <= t < T
        v(t) = v2                                        for t >= T

    Args:
        transition_steps: Length of the cycle, an integer ``> 0``.
        peak_value: The maximum value, reached at step ``b``.
        pct_start: Fraction of the cycle spent increasing, in ``[0, 1)``.
        div_factor: ``peak_value / div_factor`` is the initial value, ``> 0``.
        final_div_factor: The final value is the initial one divided by this, ``> 0``.

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.cosine_onecycle_schedule(4, 1.0, pct_start=0.5, div_factor=4.0,
        ...                                                      final_div_factor=2.5)
        >>> [round(float(v), 4) for v in sched(jnp.arange(6))]
        [0.25, 0.625, 1.0, 0.55, 0.1, 0.1]

    References:
        Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks Using
        Large Learning Rates", 2017.
    """
    fn = "cosine_onecycle_schedule"
    transition_steps = check_steps(fn, "transition_steps", transition_steps, positive=True)
    check_scalar(fn, "peak_value", peak_value)
    check_scalar(fn, "pct_start", pct_start, lo=0.0, hi=1.0, hi_open=True)
    check_positive(fn, "div_factor", div_factor)
    check_positive(fn, "final_div_factor", final_div_factor)
    dtype = value_dtype(transition_steps, peak_value, pct_start, div_factor, final_div_factor)
    n = transition_steps
    if isinstance(n, int) and isinstance(pct_start, (int, float)):
        mid = int(pct_start * n)
    else:
        mid = jnp.floor(hp(pct_start, dtype) * hp(n, dtype))
    python = all(isinstance(v, (int, float)) for v in (peak_value, div_factor, final_div_factor))
    last_scale = 1.0 / (div_factor * final_div_factor) if python else None

    def schedule(count):
        t = as_time(count, dtype)
        b, n_ = hp(mid, dtype), hp(n, dtype)
        # Values computed as a running product, v1 = v0 * div_factor, v2 = v1 * last_scale,
        # which rounds like Optax's cumprod.
        div, final_div = hp(div_factor, dtype), hp(final_div_factor, dtype)
        if python:
            v0, scale = jnp.asarray(peak_value / div_factor, dtype), float(last_scale or 0.0)
        else:
            v0, scale = hp(peak_value, dtype) / div, 1 / (div * final_div)
        v1 = v0 * div
        v2 = v1 * scale
        s_up = t / jnp.maximum(b, 1)
        s_down = (t - b) / jnp.maximum(n_ - b, 1)
        up = v1 + (v0 - v1) / 2.0 * (jnp.cos(jnp.pi * s_up) + 1)
        down = v2 + (v1 - v2) / 2.0 * (jnp.cos(jnp.pi * s_down) + 1)
        return jnp.where(t < b, up, jnp.where(t < n_, down, v2))

    return schedule
