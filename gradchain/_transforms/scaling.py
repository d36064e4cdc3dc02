"""Scaling: constant factors, learning rates, schedules, gradient centralization."""

from __future__ import annotations

from typing import NamedTuple

import jax

from gradchain._base import EmptyState, GradientTransformation, ScalarOrSchedule
from gradchain._numerics import compute_dtype, safe_increment, zero_count
from gradchain._tree import scale_tree
from gradchain._validate import check_floating, check_nonnegative, check_scalar, refuse_flat, schedule_value

__all__ = ["ScaleByScheduleState", "centralize", "scale", "scale_by_learning_rate", "scale_by_schedule"]


class ScaleByScheduleState(NamedTuple):
    """State of `scale_by_schedule`."""

    count: jax.Array  # int32 scalar: steps taken


def scale(step_size) -> GradientTransformation:
    """Multiply every update by a constant: ``u_t = step_size * g_t``.

    Args:
        step_size: A number (or scalar array/tracer); negative to descend.

    Returns:
        A stateless `GradientTransformation`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale(-0.5)
        >>> tx.update(jnp.array([2.0, -4.0]), tx.init(None))[0]
        Array([-1.,  2.], dtype=float32)
    """
    check_scalar("scale", "step_size", step_size)

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("scale", updates)
        del params, extra_args
        return scale_tree(updates, step_size), state

    return GradientTransformation(init_fn, update_fn)


def scale_by_schedule(step_size_fn) -> GradientTransformation:
    """Multiply updates by a schedule's value at the current step.

    Update rule, at step ``t = count`` (0 on the first call)::

        u_t = step_size_fn(t) * g_t

    Args:
        step_size_fn: A function from the int32 step count to a scalar.

    Returns:
        A `GradientTransformation` with state `ScaleByScheduleState(count)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_schedule(lambda t: jnp.where(t < 1, 1.0, 0.5))
        >>> s = tx.init(jnp.zeros(1))
        >>> u, s = tx.update(jnp.ones(1), s); u
        Array([1.], dtype=float32)
        >>> tx.update(jnp.ones(1), s)[0]
        Array([0.5], dtype=float32)
    """
    if not callable(step_size_fn):
        raise TypeError(f"scale_by_schedule: `step_size_fn` must be callable, got {step_size_fn!r}.")

    def init_fn(params):
        del params
        return ScaleByScheduleState(count=zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("scale_by_schedule", updates)
        del params, extra_args
        step_size = schedule_value("scale_by_schedule", "step_size_fn", step_size_fn(state.count))
        return scale_tree(updates, step_size), ScaleByScheduleState(count=safe_increment(state.count))

    return GradientTransformation(init_fn, update_fn)


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> GradientTransformation:
    """Multiply updates by ``-learning_rate`` (or ``+`` with ``flip_sign=False``).

    The one place where gradchain's optimizers turn a descent direction into a step::

        u_t = -lr_t * g_t      (lr_t = learning_rate, or learning_rate(count) for a schedule)

    Args:
        learning_rate: A number ``>= 0``, a scalar array/tracer, or a schedule.
        flip_sign: Negate, so that adding the updates descends (default).

    Returns:
        `scale(...)` for a number, `scale_by_schedule(...)` for a schedule.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_learning_rate(0.1)
        >>> tx.update(jnp.array([1.0, -2.0]), tx.init(None))[0]
        Array([-0.1,  0.2], dtype=float32)
    """
    check_nonnegative("scale_by_learning_rate", "learning_rate", learning_rate, allow_schedule=True)
    m = -1 if flip_sign else 1
    if callable(learning_rate):
        return scale_by_schedule(
            lambda count: m * schedule_value("scale_by_learning_rate", "learning_rate", learning_rate(count))
        )
    return scale(m * learning_rate)


def centralize() -> GradientTransformation:
    """Gradient centralization: remove each matrix row's mean over the other axes.

    For leaves with ``ndim > 1`` (kernels), the mean over all axes but the first is
    subtracted; vectors and scalars (biases) pass unchanged::

        u_t = g_t - mean(g_t, axis=(1, ..., ndim - 1), keepdims=True)

    Returns:
        A stateless `GradientTransformation`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.centralize()
        >>> tx.update(jnp.array([[1.0, 3.0], [0.0, 4.0]]), tx.init(None))[0]
        Array([[-1.,  1.],
               [-2.,  2.]], dtype=float32)

    References:
        Yong et al., "Gradient Centralization: A New Optimization Technique for Deep
        Neural Networks", ECCV 2020.
    """

    def init_fn(params):
        del params
        return EmptyState()

    def f(g):
        if g.ndim <= 1:
            return g
        dt = compute_dtype(g.dtype)
        x = g.astype(dt)
        return (x - x.mean(axis=tuple(range(1, g.ndim)), keepdims=True)).astype(g.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        refuse_flat("centralize", updates)
        check_floating("centralize", updates)
        del params, extra_args
        return jax.tree.map(f, updates), state

    return GradientTransformation(init_fn, update_fn)
