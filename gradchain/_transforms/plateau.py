"""Training control driven by a monitored value: early stopping, reduce-on-plateau.

Both read the monitored quantity (a validation loss, or a training loss) from
``update(updates, state, params, value=loss)``; `chain` and ``flax.nnx.Optimizer``'s
``update(model, grads, value=loss)`` forward it. They raise a `ValueError` without it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation
from gradchain._numerics import hp, safe_increment, zero_count
from gradchain._tree import scale_tree, stats_dtype
from gradchain._validate import check_floating, check_nonnegative, check_scalar

__all__ = ["EarlyStoppingState", "ReduceLROnPlateauState", "early_stopping", "reduce_on_plateau"]


def _read_value(fn: str, extra_args: dict, dtype) -> jax.Array:
    if extra_args.get("value") is None:
        raise ValueError(
            f"{fn}: `update` needs the monitored loss as a keyword argument: call "
            f"`tx.update(updates, state, params, value=loss)` (with flax.nnx: "
            f"`optimizer.update(model, grads, value=loss)`); got no `value`."
        )
    raw = extra_args["value"]
    if isinstance(raw, (str, bytes, bool)) or not (
        isinstance(raw, (int, float)) or jnp.issubdtype(jnp.result_type(raw), jnp.number)
    ):
        raise TypeError(f"{fn}: `value` must be a real number (the monitored loss), got {raw!r}.")
    value = jnp.asarray(raw)
    if jnp.iscomplexobj(value):
        raise TypeError(f"{fn}: `value` must be a real number (the monitored loss), got {raw!r}.")
    if value.ndim != 0:
        raise ValueError(f"{fn}: `value` must be a scalar, got an array of shape {value.shape}.")
    return value.astype(dtype)


def _check_count(fn: str, name: str, value: Any, lo: int) -> None:
    check_scalar(fn, name, value, lo=lo, integer=True)


# --------------------------------------------------------------------------- early stopping


class EarlyStoppingState(NamedTuple):
    """State of `early_stopping`: read ``should_stop`` to end the training loop.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> state = gradchain.early_stopping(3, mode="max").init(jnp.zeros(2))
        >>> float(state.best_value), bool(state.should_stop)
        (-inf, False)
    """

    count: jax.Array  # int32 scalar: steps taken
    best_value: jax.Array  # float32 scalar: best value seen (+inf / -inf before any)
    best_step: jax.Array  # int32 scalar: step (1-based) at which best_value was seen, 0 if none
    num_bad_steps: jax.Array  # int32 scalar: consecutive steps without improvement
    should_stop: jax.Array  # bool scalar: stopped (final: stays True)


def early_stopping(patience, min_delta=0.0, mode: str = "min") -> GradientTransformation:
    """Stop training (zero updates from then on) when ``value`` stops improving.

    At step ``t = count + 1``, with ``v_t = value`` (e.g. the validation loss of the
    parameters the update is about to change), while not stopped::

        improved_t = v_t < best - min_delta        (mode="min")
                     v_t > best + min_delta        (mode="max")
        best, best_step = (v_t, t)  if improved_t    (best starts at +inf / -inf)
        bad_t  = 0  if improved_t  else  bad_{t-1} + 1
        stop_t = not improved_t and bad_t >= patience
        u_t    = 0  if stopped  else  g_t

    Once stopped, the state no longer changes (except ``count``) and every update is
    zero, including the one at the stopping step: training ends with the parameters the
    last ``value`` was measured on. A NaN ``value`` never improves. The state's
    ``should_stop``, ``best_value`` and ``best_step`` tell the training loop what
    happened (e.g. ``if state.should_stop: break``).

    Args:
        patience: Non-improving steps in a row that stop training, an integer ``>= 0``
            (0 stops at the first step that does not improve).
        min_delta: How much ``value`` must beat the best to count as an improvement,
            ``>= 0``.
        mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).

    Returns:
        A `GradientTransformation` with state `EarlyStoppingState`; ``update`` needs
        ``value=``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.early_stopping(patience=2)
        >>> state = tx.init(jnp.zeros(1))
        >>> for loss in (3.0, 2.0, 2.5, 2.1):
        ...     u, state = tx.update(jnp.ones(1), state, value=jnp.asarray(loss))
        >>> bool(state.should_stop), float(state.best_value), int(state.best_step), u
        (True, 2.0, 2, Array([0.], dtype=float32))
    """
    fn = "early_stopping"
    _check_count(fn, "patience", patience, 0)
    check_nonnegative(fn, "min_delta", min_delta)
    if mode not in ("min", "max"):
        raise ValueError(f"{fn}: `mode` must be 'min' or 'max', got {mode!r}.")
    sign = 1.0 if mode == "min" else -1.0

    def init_fn(params):
        dt = stats_dtype(params)
        return EarlyStoppingState(
            count=zero_count(),
            best_value=jnp.asarray(sign * jnp.inf, dt),
            best_step=zero_count(),
            num_bad_steps=zero_count(),
            should_stop=jnp.zeros([], jnp.bool_),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("early_stopping", updates)
        del params
        dt = state.best_value.dtype
        v = _read_value(fn, extra_args, dt)
        t = safe_increment(state.count)
        delta = hp(min_delta, dt)
        if mode == "min":
            better = v < state.best_value - delta
        else:
            better = v > state.best_value + delta
        active = jnp.logical_not(state.should_stop)
        improved = jnp.logical_and(active, better)
        bad = jnp.where(improved, jnp.zeros_like(state.num_bad_steps), safe_increment(state.num_bad_steps))
        bad = jnp.where(active, bad, state.num_bad_steps)
        patience_ = hp(patience, jnp.int32) if not isinstance(patience, (int, float)) else int(patience)
        stop_now = jnp.logical_and(jnp.logical_and(active, jnp.logical_not(better)), bad >= patience_)
        stop = jnp.logical_or(state.should_stop, stop_now)
        new_state = EarlyStoppingState(
            count=t,
            best_value=jnp.where(improved, v, state.best_value),
            best_step=jnp.where(improved, t, state.best_step),
            num_bad_steps=bad,
            should_stop=stop,
        )
        new_updates = jax.tree.map(lambda g: jnp.where(stop, jnp.zeros_like(g), g), updates)
        return new_updates, new_state

    return GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------- reduce on plateau


class ReduceLROnPlateauState(NamedTuple):
    """State of `reduce_on_plateau` (the field names of Optax's).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> state = gradchain.reduce_on_plateau().init(jnp.zeros(2))
        >>> float(state.scale), float(state.best_value)
        (1.0, inf)
    """

    scale: jax.Array  # float32 scalar: the factor applied to the updates
    best_value: jax.Array  # float32 scalar: best (lowest) accumulated value, +inf before any
    plateau_count: jax.Array  # int32 scalar: accumulations in a row without improvement
    cooldown_count: jax.Array  # int32 scalar: accumulations left in the cooldown
    count: jax.Array  # int32 scalar: values accumulated since the last plateau check
    avg_value: jax.Array  # float32 scalar: mean of the values accumulated so far


def reduce_on_plateau(
    factor=0.1,
    patience=10,
    rtol=1e-4,
    atol=0.0,
    cooldown=0,
    accumulation_size=1,
    min_scale=0.0,
) -> GradientTransformation:
    """Multiply the updates by a scale that shrinks when ``value`` stops decreasing.

    The values are averaged over ``accumulation_size`` calls; then, with ``a`` that
    average (``scale`` starts at 1, ``best`` at +inf)::

        improved = a < best - rtol * |best| - atol          (a < +inf when best = +inf)
        best     = a  if improved
        plateau  = 0  if improved  else  plateau + 1
        if cooldown_count > 0:     plateau = 0;  cooldown_count -= 1
        elif plateau >= patience and not improved:
                                   scale = max(scale * factor, min_scale)
                                   plateau = 0;  cooldown_count = cooldown
        u_t = scale * g_t         (every call; the scale changes only after an accumulation)

    Same semantics and argument names as ``optax.contrib.reduce_on_plateau``, except
    the improvement threshold: Optax tests ``a < (1 - rtol) * best - atol``, which for
    a negative ``best`` demands *less* than ``best`` to improve by ``rtol * |best|``
    and so never detects a plateau near a negative optimum (e.g. an ELBO or a negative
    log-likelihood below 0); ``best - rtol * |best|`` is the sign-correct relative
    threshold, and both agree for positive values. (With ``patience=0`` Optax also
    reduces after an improvement; here only non-improving checks reduce.)

    Args:
        factor: Multiplies the scale at each plateau, in ``(0, 1]``.
        patience: Non-improving accumulations that make a plateau, an integer ``>= 0``.
        rtol: Relative improvement needed, in ``[0, 1]``.
        atol: Absolute improvement needed, ``>= 0``.
        cooldown: Accumulations after a reduction during which plateaus are not
            counted, an integer ``>= 0``.
        accumulation_size: Values averaged before each plateau check, an integer
            ``>= 1`` (1 for a validation loss; more for noisy minibatch losses).
        min_scale: The scale never goes below it, ``>= 0``.

    Returns:
        A `GradientTransformation` with state `ReduceLROnPlateauState`; ``update``
        needs ``value=``. Chain it after the optimizer (it scales the final updates).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.reduce_on_plateau(factor=0.5, patience=2)
        >>> state = tx.init(jnp.zeros(1))
        >>> for loss in (-1.0, -2.0, -2.0, -2.0):  # plateau at a negative loss
        ...     u, state = tx.update(jnp.ones(1), state, value=jnp.asarray(loss))
        >>> u, float(state.scale)
        (Array([0.5], dtype=float32), 0.5)
    """
    fn = "reduce_on_plateau"
    check_scalar(fn, "factor", factor, lo=0.0, hi=1.0, lo_open=True)
    _check_count(fn, "patience", patience, 0)
    check_scalar(fn, "rtol", rtol, lo=0.0, hi=1.0)
    check_nonnegative(fn, "atol", atol)
    _check_count(fn, "cooldown", cooldown, 0)
    _check_count(fn, "accumulation_size", accumulation_size, 1)
    check_nonnegative(fn, "min_scale", min_scale)

    def as_int(x):
        return int(x) if isinstance(x, (int, float)) else jnp.asarray(x).astype(jnp.int32)

    def init_fn(params):
        dt = stats_dtype(params)
        return ReduceLROnPlateauState(
            scale=jnp.ones([], dt),
            best_value=jnp.asarray(jnp.inf, dt),
            plateau_count=zero_count(),
            cooldown_count=zero_count(),
            count=zero_count(),
            avg_value=jnp.zeros([], dt),
        )

    def check_plateau(s: ReduceLROnPlateauState) -> ReduceLROnPlateauState:
        dt = s.best_value.dtype
        a, best = s.avg_value, s.best_value
        threshold = best - hp(rtol, dt) * jnp.abs(best) - hp(atol, dt)
        threshold = jnp.where(jnp.isfinite(best), threshold, best)
        improved = a < threshold
        plateau = jnp.where(improved, jnp.zeros_like(s.plateau_count), safe_increment(s.plateau_count))
        in_cooldown = s.cooldown_count > 0
        reduce = jnp.logical_and(
            jnp.logical_not(in_cooldown),
            jnp.logical_and(jnp.logical_not(improved), plateau >= as_int(patience)),
        )
        new_scale = jnp.where(reduce, s.scale * hp(factor, dt), s.scale)
        new_scale = jnp.where(in_cooldown, s.scale, jnp.maximum(new_scale, hp(min_scale, dt)))
        zero = jnp.zeros_like(s.plateau_count)
        cooldown_count = jnp.where(
            in_cooldown, s.cooldown_count - 1, jnp.where(reduce, as_int(cooldown), 0).astype(jnp.int32)
        )
        return ReduceLROnPlateauState(
            scale=new_scale.astype(dt),
            best_value=jnp.where(improved, a, best),
            plateau_count=jnp.where(jnp.logical_or(in_cooldown, reduce), zero, plateau),
            cooldown_count=cooldown_count.astype(jnp.int32),
            count=zero,
            avg_value=jnp.zeros_like(a),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("reduce_on_plateau", updates)
        del params
        dt = state.avg_value.dtype
        v = _read_value(fn, extra_args, dt)
        n = safe_increment(state.count)
        avg = (state.count.astype(dt) * state.avg_value + v) / n.astype(dt)
        s = state._replace(count=n, avg_value=avg)
        checked = check_plateau(s)
        full = n >= as_int(accumulation_size)
        new_state = jax.tree.map(lambda x, y: jnp.where(full, x, y), checked, s)
        return scale_tree(updates, new_state.scale), new_state

    return GradientTransformation(init_fn, update_fn)
