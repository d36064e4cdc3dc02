"""Regularization: weight decay (L2), the L1 penalty and its proximal step (sparsity)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._masking import masked
from gradchain._numerics import as_leaf, compute_dtype, hp, safe_increment, zero_count
from gradchain._validate import check_nonnegative, check_tree_match, require_params, schedule_value

__all__ = [
    "AddDecayedWeightsState",
    "AddL1PenaltyState",
    "L1ProximalState",
    "add_decayed_weights",
    "add_l1_penalty",
    "l1_proximal",
]

Mask = Any | Callable[[Any], Any]


class AddDecayedWeightsState(NamedTuple):
    """State of `add_decayed_weights`."""

    count: jax.Array  # int32 scalar: steps taken (the argument of a `weight_decay` schedule)


class AddL1PenaltyState(NamedTuple):
    """State of `add_l1_penalty`."""

    count: jax.Array  # int32 scalar: steps taken (the argument of an `l1` schedule)


class L1ProximalState(NamedTuple):
    """State of `l1_proximal`."""

    count: jax.Array  # int32 scalar: steps taken (the argument of the schedules)


def _value_at(fn, name, value, count):
    """A hyperparameter's value at step ``count``: schedules are called, numbers pass."""
    return schedule_value(fn, name, value(count)) if callable(value) else value


def _is_python_zero(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def _maybe_masked(tx: GradientTransformation, mask) -> GradientTransformation:
    return tx if mask is None else masked(tx, mask)


def _add_param_term(fn: str, name: str, coeff, term, state_cls, mask) -> GradientTransformation:
    """``u = g + coeff_t * term(p)`` per leaf, with a step count for schedules."""

    def init_fn(params):
        del params
        return state_cls(count=zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        new_state = state_cls(count=safe_increment(state.count))
        if not jax.tree.leaves(updates):  # e.g. None: nothing to add to (as Optax returns it)
            return updates, new_state
        require_params(fn, params)
        check_tree_match(fn, updates, params, "`params`")
        if _is_python_zero(coeff):
            return updates, new_state
        c = _value_at(fn, name, coeff, state.count)

        def f(g, p):
            g, p = as_leaf(g), as_leaf(p)
            dt = compute_dtype(g.dtype)
            return (g.astype(dt) + hp(c, dt) * term(p.astype(dt))).astype(g.dtype)

        return jax.tree.map(f, updates, params), new_state

    return _maybe_masked(GradientTransformation(init_fn, update_fn), mask)


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, mask: Mask | None = None
) -> GradientTransformation:
    """Add the parameters, scaled by ``weight_decay``, to the updates.

    Where it sits in a chain decides what it is. Placed BEFORE an adaptive scaling
    (``chain(add_decayed_weights(wd), scale_by_adam(), ...)``) it is L2
    regularization: ``wd * p`` is the gradient of ``wd/2 * ||p||**2`` and gets
    rescaled with the loss gradient. Placed AFTER it and before the learning rate
    (``chain(scale_by_adam(), add_decayed_weights(wd), scale_by_learning_rate(lr))``)
    it is decoupled weight decay, as in AdamW: every weight shrinks by ``lr * wd * p``
    whatever the gradient statistics. For plain SGD the two coincide.

    Update rule, at step ``t = count`` (0 on the first call)::

        u_t = g_t + wd_t * p_t        (wd_t = weight_decay, or weight_decay(t) for a schedule)

    Args:
        weight_decay: A number ``>= 0``, a scalar array/tracer, or a schedule.
        mask: ``None`` (decay every leaf), a pytree of bools with the structure of the
            params (True where to decay), or a callable returning one from the params;
            leaves left out pass unchanged (see `masked`). Typically excludes biases and
            normalization scales.

    Returns:
        A `GradientTransformation` with state `AddDecayedWeightsState(count)` (inside a
        `MaskedState` when ``mask`` is given); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.add_decayed_weights(0.1)
        >>> p = jnp.array([1.0, -2.0])
        >>> tx.update(jnp.array([0.5, 0.5]), tx.init(p), p)[0]
        Array([0.6, 0.3], dtype=float32)

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    check_nonnegative("add_decayed_weights", "weight_decay", weight_decay, allow_schedule=True)
    return _add_param_term(
        "add_decayed_weights", "weight_decay", weight_decay, lambda p: p, AddDecayedWeightsState, mask
    )


def add_l1_penalty(l1: ScalarOrSchedule, mask: Mask | None = None) -> GradientTransformation:
    """Add the (sub)gradient of an L1 penalty ``l1 * sum(|p|)`` to the updates.

    Like `add_decayed_weights` but with ``sign(p)`` in place of ``p`` (so 0 at
    ``p = 0``). A subgradient step rarely lands exactly on zero: for weights that
    become exactly 0, use `l1_proximal` instead. Update rule, at step ``t = count``::

        u_t = g_t + l1_t * sign(p_t)   (l1_t = l1, or l1(t) for a schedule)

    Args:
        l1: The penalty strength, a number ``>= 0``, a scalar array/tracer, or a schedule.
        mask: ``None``, a pytree of bools with the structure of the params (True where
            to penalize), or a callable returning one from the params (see `masked`).

    Returns:
        A `GradientTransformation` with state `AddL1PenaltyState(count)` (inside a
        `MaskedState` when ``mask`` is given); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.add_l1_penalty(0.1)
        >>> p = jnp.array([3.0, 0.0, -2.0])
        >>> tx.update(jnp.ones(3), tx.init(p), p)[0]
        Array([1.1, 1. , 0.9], dtype=float32)
    """
    check_nonnegative("add_l1_penalty", "l1", l1, allow_schedule=True)
    return _add_param_term("add_l1_penalty", "l1", l1, jnp.sign, AddL1PenaltyState, mask)


def l1_proximal(
    l1: ScalarOrSchedule, learning_rate: ScalarOrSchedule, mask: Mask | None = None
) -> GradientTransformation:
    """The proximal step of an L1 penalty ``l1 * sum(|p|)``: soft-thresholding (ISTA).

    Place it LAST in a chain, after the learning-rate scaling, with the same
    learning rate: ``chain(..., scale_by_learning_rate(lr), l1_proximal(l1, lr))``.
    It rewrites the final update ``u`` so that the new parameters are the
    soft-thresholded gradient step; weights whose step lands within ``lr * l1`` of
    zero become exactly ``0.0``. With plain SGD this is ISTA (proximal gradient
    descent on ``loss + l1 * ||p||_1``). At step ``t = count`` (0 on the first call)::

        z_t = p_t + g_t                                   (the step before the penalty)
        s_t = sign(z_t) * max(|z_t| - lr_t * l1_t, 0)     (soft-threshold)
        u_t = s_t - p_t                                   (so that p_t + u_t = s_t)

    ``lr_t``/``l1_t`` are the numbers or their schedules' values at ``t``; a
    ``learning_rate`` schedule is then in step with a ``scale_by_learning_rate``
    schedule of the same chain, as both count from 0.

    Args:
        l1: The penalty strength, a number ``>= 0``, a scalar array/tracer, or a schedule.
        learning_rate: The learning rate the chain applies, ``>= 0`` (positive, as given
            to `scale_by_learning_rate`), or the same schedule.
        mask: ``None``, a pytree of bools with the structure of the params (True where
            to penalize), or a callable returning one from the params (see `masked`).

    Returns:
        A `GradientTransformation` with state `L1ProximalState(count)` (inside a
        `MaskedState` when ``mask`` is given); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.chain(gradchain.scale_by_learning_rate(0.5), gradchain.l1_proximal(0.4, 0.5))
        >>> p = jnp.array([1.0, 0.1, -1.0])
        >>> u, _ = tx.update(jnp.array([0.0, 0.1, 0.0]), tx.init(p), p)
        >>> gradchain.apply_updates(p, u)
        Array([ 0.8,  0. , -0.8], dtype=float32)

    References:
        Daubechies, Defrise & De Mol, "An iterative thresholding algorithm for linear
        inverse problems with a sparsity constraint", CPAM 2004; Beck & Teboulle,
        "A Fast Iterative Shrinkage-Thresholding Algorithm", SIAM J. Imaging Sci. 2009.
    """
    check_nonnegative("l1_proximal", "l1", l1, allow_schedule=True)
    check_nonnegative("l1_proximal", "learning_rate", learning_rate, allow_schedule=True)

    def init_fn(params):
        del params
        return L1ProximalState(count=zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        require_params("l1_proximal", params)
        check_tree_match("l1_proximal", updates, params, "`params`")
        lr = _value_at("l1_proximal", "learning_rate", learning_rate, state.count)
        l1_t = _value_at("l1_proximal", "l1", l1, state.count)

        def f(u, p):
            dt = compute_dtype(u.dtype)
            p = p.astype(dt)
            z = p + u.astype(dt)
            thresh = hp(lr, dt) * hp(l1_t, dt)
            return (jnp.sign(z) * jnp.maximum(jnp.abs(z) - thresh, 0) - p).astype(u.dtype)

        new_updates = jax.tree.map(f, updates, params)
        return new_updates, L1ProximalState(count=safe_increment(state.count))

    return _maybe_masked(GradientTransformation(init_fn, update_fn), mask)
