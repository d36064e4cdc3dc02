"""Slow copies of the parameters: `lookahead` (fast and slow weights, synchronised every
``k`` steps) and `periodic_update` (a target network refreshed every ``k`` steps).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, as_transformation
from gradchain._kit import Compute, map_leaves, store
from gradchain._numerics import cond, safe_increment, zero_count
from gradchain._validate import check_flag, check_scalar, check_tree_match, concrete_scalar, require_params

__all__ = ["LookaheadParams", "LookaheadState", "lookahead", "periodic_update"]


class LookaheadState(NamedTuple):
    """State of `lookahead`."""

    fast_state: Any  # the fast optimizer's state
    steps_since_sync: jax.Array  # int32 scalar: fast steps since the last synchronisation, in [0, k)


class LookaheadParams(NamedTuple):
    """The parameters `lookahead` updates: a fast and a slow copy (Optax's field order).

    Compute the gradients at ``fast``; evaluate (and serve) ``slow``, which generalises
    better. `apply_updates` adds `lookahead`'s updates to both at once.
    """

    fast: Any  # the parameters the fast optimizer steps (gradients are taken here)
    slow: Any  # the slow parameters, moved towards the fast ones every k steps

    @classmethod
    def init_synced(cls, params: Any) -> LookaheadParams:
        """Both copies equal to ``params``: the start of training."""
        return cls(fast=params, slow=params)


def lookahead(
    fast_optimizer: GradientTransformation, sync_period, slow_step_size, *, reset_state: bool = False
) -> GradientTransformation:
    """Lookahead: ``k`` steps of a fast optimizer, then move the slow weights towards them.

    ``update(grads, state, LookaheadParams(fast, slow))`` returns updates for both copies.
    With ``d`` the fast optimizer's update, ``k = sync_period``, ``a = slow_step_size``
    and ``sync`` true on every ``k``-th call (``steps_since_sync == k - 1``)::

        diff = fast + d - slow                   (where the fast weights land)
        slow_update = a * diff                   if sync, else 0
        fast_update = d - (1 - a) * diff         if sync, else d

    so on a synchronising call both copies land on ``slow + a * diff``. With
    ``reset_state`` the fast optimizer's state is re-initialised (from ``fast``) on
    those calls. Apply the updates unchanged, with `apply_updates`: anything that
    rescales them breaks the synchronisation.

    ``init`` takes `LookaheadParams` or the plain parameters (Optax logs a warning for
    the latter; both copies have the same shapes, so gradchain accepts either).

    Args:
        fast_optimizer: The inner optimizer, stepping the fast weights.
        sync_period: An integer ``>= 1``: fast steps per synchronisation.
        slow_step_size: The slow step ``a``, in ``[0, 1]`` (1 copies the fast weights,
            0 resets them to the slow ones).
        reset_state: Re-initialise the fast optimizer's state at each synchronisation.

    Returns:
        A `GradientTransformation` with state `LookaheadState(fast_state,
        steps_since_sync)` whose updates are `LookaheadParams`; ``update`` needs the
        `LookaheadParams`.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> tx = gradchain.lookahead(gradchain.sgd(0.25), sync_period=2, slow_step_size=0.5)
        >>> params = gradchain.LookaheadParams.init_synced(jnp.array([1.0]))
        >>> state = tx.init(params)
        >>> for _ in range(2):
        ...     grads = jax.grad(lambda p: jnp.sum(p**2))(params.fast)
        ...     updates, state = tx.update(grads, state, params)
        ...     params = gradchain.apply_updates(params, updates)
        >>> params   # fast weights went 1 -> 0.5 -> 0.25; both copies land half-way
        LookaheadParams(fast=Array([0.625], dtype=float32), slow=Array([0.625], dtype=float32))

    References:
        Zhang et al., "Lookahead Optimizer: k steps forward, 1 step back", NeurIPS 2019.
    """
    fn = "lookahead"
    fast_optimizer = as_transformation(fn, "fast_optimizer", fast_optimizer)
    check_scalar(fn, "sync_period", sync_period, lo=1, integer=True)
    check_scalar(fn, "slow_step_size", slow_step_size, lo=0.0, hi=1.0)
    check_flag(fn, "reset_state", reset_state)
    k = concrete_scalar(sync_period)
    k = int(k) if k is not None else jnp.asarray(sync_period).astype(jnp.int32)

    def init_fn(params):
        fast = params.fast if isinstance(params, LookaheadParams) else params
        return LookaheadState(fast_state=fast_optimizer.init(fast), steps_since_sync=zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        require_params(fn, params)
        if params is None or not (hasattr(params, "fast") and hasattr(params, "slow")):
            raise TypeError(
                f"{fn}: `params` must be a LookaheadParams(fast, slow), got {type(params).__name__}; "
                "start from `gradchain.LookaheadParams.init_synced(params)`."
            )
        check_tree_match(fn, updates, params.fast, "the fast parameters `params.fast`")
        check_tree_match(fn, updates, params.slow, "the slow parameters `params.slow`", floating=False)
        d, fast_state = fast_optimizer.update(updates, state.fast_state, params.fast, **extra_args)
        sync = state.steps_since_sync == k - 1

        def leaf(u, f, s):
            c = Compute(u, f, s)
            x = c(u)
            a = c.hp(slow_step_size, real=True)
            diff = c(f) + x - c(s)
            slow_u = jnp.where(sync, a * diff, jnp.zeros_like(diff))
            fast_u = jnp.where(sync, x - (1 - a) * diff, x)
            return store(fast_u, u), store(slow_u, u)

        fast_updates, slow_updates = map_leaves(leaf, d, params.fast, params.slow)
        if reset_state:
            fresh = fast_optimizer.init(params.fast)
            fast_state = jax.tree.map(
                lambda cur, new: jnp.where(sync, new, cur).astype(jnp.result_type(cur)), fast_state, fresh
            )
        steps = safe_increment(state.steps_since_sync) % k
        return LookaheadParams(fast=fast_updates, slow=slow_updates), LookaheadState(fast_state, steps)

    return GradientTransformation(init_fn, update_fn)


def periodic_update(new_tensors: Any, old_tensors: Any, steps: Any, update_period) -> Any:
    """``new_tensors`` on every ``update_period``-th step, ``old_tensors`` otherwise.

    A slow copy of the parameters refreshed every ``k`` steps: the target network of
    DQN, the target of BYOL-style self-supervision::

        out = new_tensors   if steps mod update_period == 0
        out = old_tensors   otherwise

    Args:
        new_tensors: The latest values (the online parameters).
        old_tensors: The slow copy, of the same structure, shapes and dtypes.
        steps: The number of update steps taken (an integer or int32 scalar array).
        update_period: An integer ``>= 1``.

    Returns:
        ``new_tensors`` or ``old_tensors`` (a ``jax.lax.cond`` under ``jit``).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> online, target = jnp.array([5.0]), jnp.array([1.0])
        >>> gradchain.periodic_update(online, target, 3, 2), gradchain.periodic_update(online, target, 4, 2)
        (Array([1.], dtype=float32), Array([5.], dtype=float32))

    References:
        Mnih et al., "Human-level control through deep reinforcement learning", Nature 2015.
        Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020.
    """
    fn = "periodic_update"
    check_scalar(fn, "update_period", update_period, lo=1, integer=True)
    check_tree_match(fn, new_tensors, old_tensors, "`old_tensors`", floating=False)
    for a, b in zip(jax.tree.leaves(new_tensors), jax.tree.leaves(old_tensors)):
        if jnp.result_type(a) != jnp.result_type(b):
            raise ValueError(
                f"{fn}: `new_tensors` must have the dtypes of `old_tensors`, got {jnp.result_type(a)} "
                f"where `old_tensors` has {jnp.result_type(b)}."
            )
    period = concrete_scalar(update_period)
    period = int(period) if period is not None else update_period
    return cond(jnp.mod(steps, period) == 0, lambda: new_tensors, lambda: old_tensors)
