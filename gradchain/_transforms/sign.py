"""Sign-based scaling: updates that keep only the direction of each coordinate.

The sign of the update (`scale_by_sign`, signSGD), Lion (`scale_by_lion`: the sign of an
interpolation between the momentum and the update) and Rprop (`scale_by_rprop`: a step
size per coordinate that grows while the gradient keeps its sign and shrinks when it
flips).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import EmptyState, GradientTransformation
from gradchain._kit import Compute, ema_update, map_leaves, store, zeros_like_params
from gradchain._numerics import as_leaf, safe_increment, zero_count
from gradchain._validate import (
    canonical_dtype,
    check_adam_args,
    check_floating,
    check_nonnegative,
    check_positive,
    check_scalar,
    check_tree_match,
    concrete_scalar,
)

__all__ = ["ScaleByLionState", "ScaleByRpropState", "scale_by_lion", "scale_by_rprop", "scale_by_sign"]

_LION_MODES = ("hard", "smooth", "refined")


def scale_by_sign() -> GradientTransformation:
    """signSGD's direction: the sign of every coordinate of the update.

    Update rule::

        u_t = sign(g_t)

    so every coordinate moves by exactly 1 (0 where ``g`` is 0); a complex coordinate
    moves by ``g / |g|``. Chain with `scale_by_learning_rate`, or use `sign_sgd`.

    Returns:
        A stateless `GradientTransformation` (state `EmptyState()`).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_sign()
        >>> tx.update(jnp.array([0.3, -2.0, 0.0]), tx.init(jnp.zeros(3)))[0]
        Array([ 1., -1.,  0.], dtype=float32)

    References:
        Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems",
        ICML 2018.
    """

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_floating("scale_by_sign", updates)
        (new_updates,) = map_leaves(lambda g: (jnp.sign(g),), updates)
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)


class ScaleByLionState(NamedTuple):
    """State of `scale_by_lion`."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, `mu_dtype` or param dtype


def scale_by_lion(
    b1=0.9, b2=0.99, mu_dtype: Any = None, *, mode: str = "hard", smooth_beta=1.0
) -> GradientTransformation:
    """Lion: the sign of an interpolation between momentum and the update.

    Update rule, for incoming update ``g``::

        c_t = (1 - b1) * g_t + b1 * m_{t-1}
        u_t = sign(c_t)                                  (mode="hard")
        u_t = tanh(smooth_beta * c_t)                    (mode="smooth")
        u_t = c_t where |c_t| < 1, else sign(c_t)        (mode="refined")
        m_t = b2 * m_{t-1} + (1 - b2) * g_t

    with ``m_0 = 0``. In the default (hard) mode every coordinate moves by exactly 1 (0
    where ``c`` is 0): use a learning rate 3-10x smaller than Adam's. The smooth and
    refined modes keep small coordinates proportional to ``c``.

    Args:
        b1: Weight of the momentum in the update's direction, in [0, 1).
        b2: Decay of the momentum, in [0, 1).
        mu_dtype: Storage dtype of ``m``; ``None``: param dtype.
        mode: ``"hard"`` (the sign), ``"smooth"`` (``tanh``) or ``"refined"`` (linear
            inside ``(-1, 1)``, the sign outside).
        smooth_beta: Slope of ``tanh`` at 0 in the smooth mode, ``> 0``.

    Returns:
        A `GradientTransformation` with state `ScaleByLionState(count, mu)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_lion()
        >>> tx.update(jnp.array([0.3, -2.0, 0.0]), tx.init(jnp.zeros(3)))[0]
        Array([ 1., -1.,  0.], dtype=float32)
        >>> tx = gradchain.scale_by_lion(b1=0.5, mode="refined")  # c = 0.5 * g on the first step
        >>> tx.update(jnp.array([0.3, -4.0, 0.0]), tx.init(jnp.zeros(3)))[0]
        Array([ 0.15, -1.  ,  0.  ], dtype=float32)

    References:
        Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
    """
    fn = "scale_by_lion"
    check_adam_args(fn, b1, b2, 0.0, 0.0)
    mu_dtype = canonical_dtype(fn, "mu_dtype", mu_dtype)
    if not isinstance(mode, str) or mode not in _LION_MODES:
        raise ValueError(f"{fn}: `mode` must be one of 'hard', 'smooth', 'refined', got {mode!r}.")
    check_positive(fn, "smooth_beta", smooth_beta)

    def direction(c: jax.Array, beta) -> jax.Array:
        if mode == "smooth":
            return jnp.tanh(beta * c)
        if mode == "refined":
            return jnp.where(jnp.abs(c) < 1, c, jnp.sign(c))
        return jnp.sign(c)

    def init_fn(params):
        return ScaleByLionState(count=zero_count(), mu=zeros_like_params(params, mu_dtype))

    def leaf(g, m):
        c = Compute(g, m)
        x, m_prev = c(g), c(m)
        u = direction(ema_update(m_prev, x, b1), c.hp(smooth_beta))
        return store(u, g), store(ema_update(m_prev, x, b2), m)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.mu)
        new_updates, mu = map_leaves(leaf, updates, state.mu)
        return new_updates, ScaleByLionState(count=safe_increment(state.count), mu=mu)

    return GradientTransformation(init_fn, update_fn)


class ScaleByRpropState(NamedTuple):
    """State of `scale_by_rprop`."""

    step_sizes: Any  # per-param tree, param dtype: each coordinate's current step size
    prev_updates: Any  # per-param tree, param dtype: the previous update (0 after a sign flip)


def scale_by_rprop(
    learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6, max_step_size=50.0
) -> GradientTransformation:
    """Rprop: a step size per coordinate, adapted to the sign agreement of successive gradients.

    Update rule, for incoming update ``g`` (``s`` the sign agreement with the previous
    update ``u_{t-1}``; ``lr_0 = learning_rate``, ``u_0 = 0``)::

        s_t = sign(g_t) * sign(u_{t-1})
        lr_t = lr_{t-1}                                                 where s_t == 0
        lr_t = clip(lr_{t-1} * eta_plus, min_step_size, max_step_size)  where s_t > 0
        lr_t = clip(lr_{t-1} * eta_minus, min_step_size, max_step_size) where s_t < 0
        u_t = 0                                                         where s_t < 0
        u_t = lr_t * sign(g_t)                                          otherwise

    A coordinate that flips sign takes no step, and its next step counts as a fresh
    start (``s = 0``): Rprop without weight backtracking ("Rprop-", as ``torch.optim.Rprop``).
    The result points uphill: chain with ``scale(-1)``, or use `rprop`.

    Optax 0.2.8 returns the previous step's update instead of ``u_t`` (so its first
    update is 0 and every later one lags a step); its state holds the same ``lr_t`` and
    ``u_t`` as here.

    Args:
        learning_rate: The initial step size of every coordinate, ``> 0`` (a number or
            scalar array/tracer, not a schedule).
        eta_minus: Factor of the step size after a sign flip, in ``(0, 1]``.
        eta_plus: Factor of the step size while the sign holds, ``>= 1``.
        min_step_size: Lower bound of the adapted step size, ``>= 0``.
        max_step_size: Upper bound of the adapted step size, ``>= min_step_size``.

    Returns:
        A `GradientTransformation` with state `ScaleByRpropState(step_sizes, prev_updates)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_rprop(0.1)
        >>> state = tx.init(jnp.zeros(2))
        >>> u, state = tx.update(jnp.array([3.0, -1.0]), state); u
        Array([ 0.1, -0.1], dtype=float32)
        >>> u, state = tx.update(jnp.array([2.0, 5.0]), state); u  # kept: x1.2; flipped: no step
        Array([0.12, 0.  ], dtype=float32)

    References:
        Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning:
        The RPROP Algorithm", ICNN 1993.
        Igel & Hüsken, "Empirical evaluation of the improved Rprop learning algorithms",
        Neurocomputing 2003.
    """
    fn = "scale_by_rprop"
    if callable(learning_rate) and not isinstance(learning_rate, jax.Array):
        raise TypeError(
            f"{fn}: `learning_rate` must be a number (the initial step size), got the callable "
            f"{learning_rate!r}."
        )
    check_positive(fn, "learning_rate", learning_rate)
    check_scalar(fn, "eta_minus", eta_minus, lo=0.0, hi=1.0, lo_open=True)
    check_scalar(fn, "eta_plus", eta_plus, lo=1.0)
    check_nonnegative(fn, "min_step_size", min_step_size)
    check_nonnegative(fn, "max_step_size", max_step_size, allow_inf=True)
    lo, hi = concrete_scalar(min_step_size), concrete_scalar(max_step_size)
    if lo is not None and hi is not None and hi < lo:
        raise ValueError(f"{fn}: `max_step_size` must be >= min_step_size ({lo:g}), got {max_step_size!r}.")

    def init_fn(params):
        for path, p in jax.tree_util.tree_leaves_with_path(params):
            if jnp.iscomplexobj(as_leaf(p)):
                raise TypeError(
                    f"{fn}: `params` must be real (Rprop compares signs), got dtype {jnp.result_type(p)} "
                    f"at leaf {jax.tree_util.keystr(path) or '(root)'}."
                )
        step_sizes = jax.tree.map(lambda p: jnp.full_like(as_leaf(p), learning_rate), params)
        return ScaleByRpropState(step_sizes=step_sizes, prev_updates=zeros_like_params(params))

    def leaf(g, step, prev):
        c = Compute(g, step, prev)
        x, lr = c(g), c(step)
        s = jnp.sign(x) * jnp.sign(c(prev))  # not sign(g * prev): the product can underflow to 0
        factor = jnp.where(s > 0, c.hp(eta_plus), c.hp(eta_minus))
        lr = jnp.where(s == 0, lr, jnp.clip(lr * factor, c.hp(min_step_size), c.hp(max_step_size)))
        u = jnp.where(s < 0, jnp.zeros_like(x), lr * jnp.sign(x))
        return store(u, g), store(lr, step), store(u, prev)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.step_sizes)
        new_updates, step_sizes, prev = map_leaves(leaf, updates, state.step_sizes, state.prev_updates)
        return new_updates, ScaleByRpropState(step_sizes=step_sizes, prev_updates=prev)

    return GradientTransformation(init_fn, update_fn)
