"""More schedules: piecewise interpolation, linear one-cycle, warm-up + constant, WSD.

Same conventions as ``_schedules.py`` (int32 count in, float32 value out, Python
numbers/arrays/tracers as values, eager validation of concrete arguments).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from gradchain._base import Schedule
from gradchain._numerics import hp
from gradchain._validate import check_positive, check_scalar, concrete_scalar
from gradchain.schedules._join import join_builder
from gradchain.schedules._schedules import (
    as_time,
    broadcast_value,
    check_boundaries_and_scales,
    check_steps,
    polynomial_builder,
    value_dtype,
)

__all__ = [
    "linear_onecycle_schedule",
    "piecewise_interpolate_schedule",
    "warmup_constant_schedule",
    "warmup_stable_decay_schedule",
]

_DECAY_TYPES = ("linear", "cosine", "1-sqrt")


def _choice(fn: str, name: str, value: Any, choices: Sequence[str]) -> str:
    options = " or ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{fn}: `{name}` must be {options}, got {value!r}.")
    if value not in choices:
        raise ValueError(f"{fn}: `{name}` must be {options}, got {value!r}.")
    return value


def _linear_interp(start, end, pct):
    return (end - start) * pct + start


def _cosine_interp(start, end, pct):
    return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)


def _interpolate(kind: str, init_value, boundaries: Sequence[Any], scales: Sequence[Any], dtype) -> Schedule:
    """Unvalidated builder: ``boundaries`` non-decreasing, ``len(scales) == len(boundaries)``."""
    interp = _linear_interp if kind == "linear" else _cosine_interp
    starts = [0, *boundaries]

    def schedule(count):
        t = as_time(count, dtype)
        # v_0 = init_value, v_k = v_{k-1} * scale_k: a float32 running product, as Optax's cumprod.
        values = [jnp.asarray(hp(init_value, dtype), dtype)]
        for s in scales:
            values.append(values[-1] * hp(s, dtype))
        value = jnp.broadcast_to(values[-1], t.shape)
        # Segment k covers [b_k, b_{k+1}); going backwards, the first segment whose end lies
        # beyond t wins (empty segments, b_k = b_{k+1}, are never selected).
        for k in reversed(range(len(boundaries))):
            b0, b1 = starts[k], starts[k + 1]
            if isinstance(b0, int) and isinstance(b1, int):
                size = max(b1 - b0, 1)
            else:
                size = jnp.maximum(hp(b1, dtype) - hp(b0, dtype), 1)
            pct = jnp.maximum(t - hp(b0, dtype), 0) / size  # (held at v_0 for t < 0)
            value = jnp.where(t < hp(b1, dtype), interp(values[k], values[k + 1], pct), value)
        return value

    return schedule


def piecewise_interpolate_schedule(
    interpolate_type: str, init_value, boundaries_and_scales: Mapping | None = None
) -> Schedule:
    """Interpolate, linearly or by a half cosine, between values that change at boundaries.

    With ``{b_k: s_k} = boundaries_and_scales`` sorted by step (``b_0 = 0``), the values
    ``v_0 = init_value``, ``v_k = v_{k-1} * s_k`` (a running product, as in
    `piecewise_constant_schedule`) and ``p = (t - b_k) / max(b_{k+1} - b_k, 1)``::

        v(t) = v_k + (v_{k+1} - v_k) * p                            (linear)
        v(t) = v_{k+1} + (v_k - v_{k+1}) * (1 + cos(pi * p)) / 2    (cosine)
                                                      for b_k <= t < b_{k+1}
        v(t) = v_K                                    for t >= b_K (the last boundary)

    The value reaches ``v_{k+1}`` at step ``b_{k+1}``: it interpolates between the
    accumulated values, not between the scales.

    Args:
        interpolate_type: ``'linear'`` or ``'cosine'``.
        init_value: Value at step 0.
        boundaries_and_scales: A dict ``{step: scale}``; steps are integers ``>= 0``,
            scales numbers ``>= 0``. ``None`` or ``{}``: a constant schedule.

    Returns:
        A schedule ``count -> value``. Unlike Optax's, it takes array counts too, and
        holds ``init_value`` for negative counts (Optax returns 0 there).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.piecewise_interpolate_schedule("linear", 1.0, {4: 0.1, 8: 0.01})
        >>> sched(jnp.arange(0, 11, 2))
        Array([1.    , 0.55  , 0.1   , 0.0505, 0.001 , 0.001 ], dtype=float32)
    """
    fn = "piecewise_interpolate_schedule"
    kind = _choice(fn, "interpolate_type", interpolate_type, ("linear", "cosine"))
    pairs, dtype = check_boundaries_and_scales(fn, init_value, boundaries_and_scales)
    return _interpolate(kind, init_value, [b for b, _ in pairs], [s for _, s in pairs], dtype)


def linear_onecycle_schedule(
    transition_steps, peak_value, pct_start=0.3, pct_final=0.85, div_factor=25.0, final_div_factor=1e4
) -> Schedule:
    """One-cycle schedule with three linear phases: up to ``peak_value``, down, then anneal.

    With ``T = transition_steps``, ``P = peak_value``, ``b1 = floor(pct_start * T)``,
    ``b2 = floor(pct_final * T)``, ``v0 = P / div_factor`` and
    ``v3 = v0 / final_div_factor``, this is the linear `piecewise_interpolate_schedule`
    through the points::

        (0, v0) -> (b1, P) -> (b2, v0) -> (T, v3),   then v(t) = v3 for t >= T

    Args:
        transition_steps: Length of the cycle, an integer ``> 0``.
        peak_value: The maximum value, reached at step ``b1``.
        pct_start: Fraction of the cycle spent increasing, in ``[0, 1]``.
        pct_final: Fraction of the cycle at which the value is back to ``v0``, in
            ``[pct_start, 1]``.
        div_factor: ``peak_value / div_factor`` is the initial value, ``> 0``.
        final_div_factor: The final value is the initial one divided by this, ``> 0``.

    Returns:
        A schedule ``count -> value``. Optax builds the phases as a dict keyed by step,
        so that ``b1 == b2`` or ``b2 == T`` (e.g. ``pct_final=1.0``) silently drop a phase
        and change the final value; here every phase is kept (empty if its length is 0),
        and ``pct_final < pct_start`` is an error.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.linear_onecycle_schedule(8, 1.0, pct_start=0.25, pct_final=0.75,
        ...                                                      div_factor=4.0, final_div_factor=2.5)
        >>> sched(jnp.arange(10))
        Array([0.25  , 0.625 , 1.    , 0.8125, 0.625 , 0.4375, 0.25  , 0.175 ,
               0.1   , 0.1   ], dtype=float32)

    References:
        Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks Using
        Large Learning Rates", 2017.
    """
    fn = "linear_onecycle_schedule"
    transition_steps = check_steps(fn, "transition_steps", transition_steps, positive=True)
    check_scalar(fn, "peak_value", peak_value)
    check_scalar(fn, "pct_start", pct_start, lo=0.0, hi=1.0)
    check_scalar(fn, "pct_final", pct_final, lo=0.0, hi=1.0)
    lo, hi = concrete_scalar(pct_start), concrete_scalar(pct_final)
    if lo is not None and hi is not None and hi < lo:
        raise ValueError(f"{fn}: `pct_final` must be >= `pct_start` = {pct_start!r}, got {pct_final!r}.")
    check_positive(fn, "div_factor", div_factor)
    check_positive(fn, "final_div_factor", final_div_factor)
    dtype = value_dtype(transition_steps, peak_value, pct_start, pct_final, div_factor, final_div_factor)
    n = transition_steps
    if isinstance(n, int) and isinstance(pct_start, (int, float)) and isinstance(pct_final, (int, float)):
        b1, b2 = int(pct_start * n), int(pct_final * n)
    else:
        b1 = jnp.floor(hp(pct_start, dtype) * hp(n, dtype))
        b2 = jnp.floor(hp(pct_final, dtype) * hp(n, dtype))
    if all(isinstance(v, (int, float)) for v in (peak_value, div_factor, final_div_factor)):
        init, scales = peak_value / div_factor, [div_factor, 1.0 / div_factor, 1.0 / final_div_factor]
    else:
        d, f = hp(div_factor, dtype), hp(final_div_factor, dtype)
        init, scales = hp(peak_value, dtype) / d, [d, 1 / d, 1 / f]
    return _interpolate("linear", init, [b1, b2, n], scales, dtype)


def warmup_constant_schedule(init_value, peak_value, warmup_steps) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value``, then constant ``peak_value``.

    With ``I = init_value``, ``P = peak_value``, ``W = warmup_steps``::

        v(t) = I + (P - I) * t / W        for t < W
        v(t) = P                          for t >= W

    Args:
        init_value: Value at step 0.
        peak_value: Value from step ``warmup_steps`` on.
        warmup_steps: Length of the linear warm-up, an integer ``>= 0``.

    Returns:
        A schedule ``count -> value``. With ``warmup_steps=0`` it is constant
        ``peak_value`` (Optax's, a ``linear_schedule`` with no transition, stays at
        ``init_value`` forever).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.schedules.warmup_constant_schedule(0.0, 1.0, 4)(jnp.arange(6))
        Array([0.  , 0.25, 0.5 , 0.75, 1.  , 1.  ], dtype=float32)
    """
    fn = "warmup_constant_schedule"
    check_scalar(fn, "init_value", init_value)
    check_scalar(fn, "peak_value", peak_value)
    warmup_steps = check_steps(fn, "warmup_steps", warmup_steps)
    dtype = value_dtype(init_value, peak_value, warmup_steps)
    return join_builder(
        [
            polynomial_builder(init_value, peak_value, 1, warmup_steps, 0),
            lambda count: broadcast_value(peak_value, count, dtype),
        ],
        [warmup_steps],
    )


def warmup_stable_decay_schedule(
    peak_value,
    total_steps,
    warmup_steps,
    decay_steps,
    init_value=0.0,
    end_value=0.0,
    *,
    decay_type="1-sqrt",
    num_cycles=0.5,
    decay_to_zero: bool = False,
) -> Schedule:
    """Warmup-stable-decay (WSD, "trapezoidal"): warm up, hold ``peak_value``, then cool down.

    Not in Optax. With ``I = init_value``, ``P = peak_value``, ``E = end_value``,
    ``W = warmup_steps``, ``D = decay_steps``, ``N = total_steps``, ``C = num_cycles``
    and ``s = (t - (N - D)) / D`` the progress of the decay::

        v(t) = I + (P - I) * t / W              for t < W             (warm-up)
        v(t) = P                                for W <= t < N - D    (stable)
        v(t) = E + (P - E) * f(s)               for N - D <= t < N    (decay)
        v(t) = E                                for t >= N

        f(s) = 1 - s                            decay_type="linear"
        f(s) = (1 + cos(2 * pi * C * s)) / 2    decay_type="cosine" (C = 1/2: a half cosine)
        f(s) = 1 - sqrt(s)                      decay_type="1-sqrt"

    With ``decay_to_zero``, the linear and ``1-sqrt`` decays read ``v(t) = P * f(s)``
    instead: they go to 0 and the value jumps to ``E`` at step ``N``.

    This is ``pytorch_optimizer.lr_scheduler.get_wsd_schedule`` (a multiplier of the
    optimizer's learning rate ``P``, version 4.1.0) with ``num_warmup_steps = W``,
    ``num_stable_steps = N - W - D``, ``num_decay_steps = D``, ``min_lr_ratio = E / P``,
    ``num_cycles = C``, ``cooldown_type = decay_type``, for ``I = 0``: exactly for the
    cosine decay, and with ``decay_to_zero=True`` for the linear and ``1-sqrt`` ones
    (they ignore ``min_lr_ratio`` until the end; by default here they end at ``E``
    continuously). The decays are computed from the remaining fraction ``1 - s = (N -
    t) / D``, so that they stay accurate to float32's relative precision down to their
    last steps (no cancellation in ``1 - sqrt(s)`` or ``1 + cos(pi * s)``).

    Args:
        peak_value: Value after the warm-up and during the stable phase.
        total_steps: Total length, an integer ``> 0``; the decay ends at this step.
        warmup_steps: Length of the linear warm-up, an integer ``>= 0``.
        decay_steps: Length of the decay, an integer ``>= 0``, with
            ``warmup_steps + decay_steps <= total_steps``.
        init_value: Value at step 0.
        end_value: Value from step ``total_steps`` on.
        decay_type: ``'linear'``, ``'cosine'`` or ``'1-sqrt'`` (the default, as
            recommended by Hägele et al.).
        num_cycles: Cosine cycles over the decay, ``>= 0`` (``decay_type='cosine'``
            only; pytorch_optimizer's ``num_cycles``, 0.5 by default).
        decay_to_zero: Decay the linear and ``1-sqrt`` cool-downs to 0 and jump to
            ``end_value`` at the end (pytorch_optimizer's convention).

    Returns:
        A schedule ``count -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> sched = gradchain.schedules.warmup_stable_decay_schedule(1.0, 10, 2, 4, decay_type="linear")
        >>> sched(jnp.arange(12))
        Array([0.  , 0.5 , 1.  , 1.  , 1.  , 1.  , 1.  , 0.75, 0.5 , 0.25, 0.  , 0.  ], dtype=float32)

    References:
        Hu et al., "MiniCPM: Unveiling the Potential of Small Language Models with
        Scalable Training Strategies", 2024; Hägele et al., "Scaling Laws and
        Compute-Optimal Training Beyond Fixed Training Durations", NeurIPS 2024.
    """
    fn = "warmup_stable_decay_schedule"
    check_scalar(fn, "peak_value", peak_value)
    total_steps = check_steps(fn, "total_steps", total_steps, positive=True)
    warmup_steps = check_steps(fn, "warmup_steps", warmup_steps)
    decay_steps = check_steps(fn, "decay_steps", decay_steps)
    check_scalar(fn, "init_value", init_value)
    check_scalar(fn, "end_value", end_value)
    kind = _choice(fn, "decay_type", decay_type, _DECAY_TYPES)
    check_scalar(fn, "num_cycles", num_cycles, lo=0.0)
    if not isinstance(decay_to_zero, (bool, np.bool_)):
        raise TypeError(f"{fn}: `decay_to_zero` must be a bool, got {decay_to_zero!r}.")
    n, w, d = (concrete_scalar(v) for v in (total_steps, warmup_steps, decay_steps))
    if n is not None and w is not None and d is not None and w + d > n:
        raise ValueError(
            f"{fn}: `warmup_steps + decay_steps` must be <= `total_steps` = {total_steps!r}, "
            f"got {warmup_steps!r} + {decay_steps!r}."
        )
    dtype = value_dtype(peak_value, total_steps, warmup_steps, decay_steps, init_value, end_value, num_cycles)

    def schedule(count):
        t = as_time(count, dtype)
        i, p, e = (broadcast_value(v, t, dtype) for v in (init_value, peak_value, end_value))
        n_, w_, d_ = hp(total_steps, dtype), hp(warmup_steps, dtype), hp(decay_steps, dtype)
        start = n_ - d_
        warm = i + (p - i) * (t / jnp.maximum(w_, 1))
        # the decay's progress s and remaining fraction r = 1 - s, each from a difference of
        # integers (exact), so that f keeps float32's relative precision at both ends
        s = jnp.clip((t - start) / jnp.maximum(d_, 1), 0, 1)
        r = jnp.clip((n_ - t) / jnp.maximum(d_, 1), 0, 1)
        if kind == "linear":
            f = r
        elif kind == "cosine":  # (1 + cos(2 pi C s)) / 2 = sin(pi (1/2 - C + C r))**2
            c = hp(num_cycles, dtype)
            f = jnp.sin(jnp.pi * ((0.5 - c) + c * r)) ** 2
        else:  # 1 - sqrt(s) = (1 - s) / (1 + sqrt(s))
            f = r / (1 + jnp.sqrt(s))
        decay = p * f if decay_to_zero and kind != "cosine" else e + (p - e) * f
        return jnp.where(t < w_, warm, jnp.where(t < start, p, jnp.where(t < n_, decay, e)))

    return schedule
