"""Sharpness-aware minimisation: `sam` (adversarial steps of an inner optimizer, then an outer
step from the gradient found there, taken from where the adversarial steps started) and
its usual adversarial direction, `normalize` (the gradient over its global norm).

The simple SAM of the paper is::

    sam(sgd(lr), chain(normalize(), sgd(rho)), sync_period=2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import EmptyState, GradientTransformation, as_transformation
from gradchain._kit import Compute, map_leaves, store
from gradchain._numerics import as_leaf, cond, zero_count
from gradchain._tree import global_norm
from gradchain._update import apply_updates
from gradchain._validate import check_flag, check_floating, check_int, check_tree_match, require_params

__all__ = ["NormalizeState", "SAMState", "normalize", "sam"]

NormalizeState = EmptyState
"""State of `normalize` (Optax's alias of the empty state)."""


class SAMState(NamedTuple):
    """State of `sam` (Optax's fields)."""

    steps_since_sync: jax.Array  # int32 scalar: adversarial steps since the last outer step, in [0, k)
    opt_state: Any  # the outer optimizer's state
    adv_state: Any  # the adversarial optimizer's state
    cache: Any  # per-param tree, param dtype: the parameters where the adversarial steps began
    # (None with opaque_mode: one call runs every step)


def normalize() -> GradientTransformation:
    """Divide the updates by their global L2 norm: ``u_t = g_t / ||g_t||``.

    The norm is over all leaves together; a zero gradient stays zero (Optax divides by
    the zero norm and returns NaN).

    Returns:
        A stateless `GradientTransformation` (state `NormalizeState()`).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.normalize()
        >>> tx.update({"a": jnp.array([3.0]), "b": jnp.array([0.0, 4.0])}, tx.init(None))[0]
        {'a': Array([0.6], dtype=float32), 'b': Array([0. , 0.8], dtype=float32)}

    References:
        Foret et al., "Sharpness-Aware Minimization for Efficiently Improving
        Generalization", ICLR 2021.
    """
    fn = "normalize"

    def init_fn(params):
        del params
        return NormalizeState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_floating(fn, updates)
        norm = global_norm(updates)
        safe = jnp.where(norm > 0, norm, jnp.ones_like(norm))

        def leaf(g):
            c = Compute(g)
            return (store(c(g) / safe.astype(c.dt), g),)

        (new_updates,) = map_leaves(leaf, updates)
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)


def _like(new: Any, old: Any) -> Any:
    """``new`` with the dtypes of ``old`` (the branches of a ``cond`` must agree)."""
    return jax.tree.map(lambda a, b: jnp.asarray(a).astype(jnp.result_type(b)), new, old)


def sam(
    optimizer: GradientTransformation,
    adv_optimizer: GradientTransformation,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | None = None,
) -> GradientTransformation:
    """SAM: ``k - 1`` adversarial (ascent) steps, then an outer step from where they began.

    With ``k = sync_period``, ``A`` the adversarial optimizer and ``O`` the outer one
    (both called as ``update(g, state, params)``; their updates are descent steps, so
    SAM negates ``A``'s to ascend). Transparent mode (the default), one call per gradient,
    ``i = steps_since_sync`` (``0, 1, ..., k - 1, 0, ...``) and ``x_t`` the parameters::

        c_t = x_t                                     if i == 0,  else c_{t-1}
        u_t = -A(g_t)                                 if i < k - 1  (an adversarial step)
        u_t = (c_t - x_t) + O(g_t; params c_t)        if i == k - 1 (back to c_t, then the step)

    so the outer optimizer sees the gradient at the adversarial point and steps from
    the cached point. ``O``'s state advances only on outer steps; ``A``'s is re-initialised
    there with ``reset_state`` (else kept as it was before that call). Opaque mode runs
    all of it in one call, given ``grad_fn(params, i) -> gradients`` as an extra argument::

        y = x_t, d = g_t
        for i in 0 .. k-2:  y = y - A(d; params y),  d = grad_fn(y, i)
        u_t = O(d; params x_t)

    (the ``k - 1`` gradients are ``pmean``-ed over ``batch_axis_name`` when given). Other
    extra arguments are forwarded to both optimizers (Optax passes none). With ``k = 1``
    every call is an outer step, ``u_t = O(g_t)``: Optax 0.2.8 returns to the parameters
    of the previous call instead (it reads the cache before refreshing it), so its
    ``sync_period=1`` oscillates; for ``k >= 2`` the numbers are Optax's.

    Args:
        optimizer: The outer optimizer.
        adv_optimizer: The adversarial optimizer, e.g. ``chain(normalize(), sgd(rho))``.
        sync_period: ``k``, a Python int ``>= 1``: calls per outer step.
        reset_state: Re-initialise the adversarial state at each outer step.
        opaque_mode: Run the adversarial steps inside one call (needs ``grad_fn=``);
            required when the training step has other side effects (e.g. BatchNorm
            statistics), which would otherwise be updated at the adversarial points.
        batch_axis_name: In opaque mode, a ``pmap``/``shard_map`` axis name over which to
            average the adversarial gradients.

    Returns:
        A `GradientTransformation` with state `SAMState(steps_since_sync, opt_state,
        adv_state, cache)`; ``update`` needs the parameters.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> tx = gradchain.sam(gradchain.sgd(0.1), gradchain.chain(gradchain.normalize(), gradchain.sgd(0.5)))
        >>> x = jnp.array([1.0, 0.0])
        >>> state, grad = tx.init(x), jax.grad(lambda x: jnp.sum(x**2))
        >>> for _ in range(2):
        ...     u, state = tx.update(grad(x), state, x)
        ...     x = gradchain.apply_updates(x, u)
        ...     print(x)
        [1.5 0. ]
        [0.7 0. ]

    References:
        Foret et al., "Sharpness-Aware Minimization for Efficiently Improving
        Generalization", ICLR 2021.
    """
    fn = "sam"
    optimizer = as_transformation(fn, "optimizer", optimizer)
    adv_optimizer = as_transformation(fn, "adv_optimizer", adv_optimizer)
    k = check_int(fn, "sync_period", sync_period, 1)
    reset_state = check_flag(fn, "reset_state", reset_state)
    opaque_mode = check_flag(fn, "opaque_mode", opaque_mode)
    if batch_axis_name is not None and not isinstance(batch_axis_name, str):
        raise TypeError(f"{fn}: `batch_axis_name` must be a str or None, got {batch_axis_name!r}.")

    def init_fn(params):
        return SAMState(
            steps_since_sync=zero_count(),
            opt_state=optimizer.init(params),
            adv_state=adv_optimizer.init(params),
            cache=None if opaque_mode else jax.tree.map(as_leaf, params),
        )

    def transparent_update_fn(updates, state, params=None, **extra_args):
        require_params(fn, params)
        check_tree_match(fn, updates, state.cache, "the cached parameters")
        extra_args.pop("grad_fn", None)
        params = jax.tree.map(as_leaf, params)
        cache = cond(state.steps_since_sync == 0, lambda: params, lambda: state.cache)

        def outer_step():
            u, opt_state = optimizer.update(updates, state.opt_state, cache, **extra_args)

            def leaf(g, ui, c, x):
                cc = Compute(ui, c, x)
                return (store((cc(c) - cc(x)) + cc(ui), g),)

            (u,) = map_leaves(leaf, updates, u, cache, params)
            adv_state = adv_optimizer.init(params) if reset_state else state.adv_state
            return u, _like(opt_state, state.opt_state), _like(adv_state, state.adv_state)

        def adversarial_step():
            u, adv_state = adv_optimizer.update(updates, state.adv_state, params, **extra_args)
            (u,) = map_leaves(lambda g, ui: (store(-Compute(ui)(ui), g),), updates, u)
            return u, state.opt_state, _like(adv_state, state.adv_state)

        new_updates, opt_state, adv_state = cond(
            state.steps_since_sync == k - 1, outer_step, adversarial_step
        )
        steps = (state.steps_since_sync + 1) % k
        return new_updates, SAMState(steps, opt_state, adv_state, cache)

    def opaque_update_fn(updates, state, params=None, **extra_args):
        require_params(fn, params)
        grad_fn: Callable | None = extra_args.pop("grad_fn", None)
        if not callable(grad_fn):
            raise ValueError(
                f"{fn}: `grad_fn` must be passed to update when `opaque_mode=True`, a function "
                f"`(params, i) -> gradients` (`update(grads, state, params, grad_fn=f)`), got {grad_fn!r}."
            )
        check_tree_match(fn, updates, params, "the parameters", floating=False)
        check_floating(fn, updates)
        adv_params, adv_grads, adv_state = params, updates, state.adv_state
        for i in range(k - 1):
            u, adv_state = adv_optimizer.update(adv_grads, adv_state, adv_params, **extra_args)
            u = jax.tree.map(lambda x: -x, u)
            adv_params = apply_updates(adv_params, u)
            adv_grads = grad_fn(adv_params, i)
            if batch_axis_name is not None:
                adv_grads = jax.lax.pmean(adv_grads, axis_name=batch_axis_name)
        if reset_state:
            adv_state = adv_optimizer.init(params)
        new_updates, opt_state = optimizer.update(adv_grads, state.opt_state, params, **extra_args)
        return new_updates, SAMState(zero_count(), opt_state, adv_state, None)

    return GradientTransformation(init_fn, opaque_update_fn if opaque_mode else transparent_update_fn)
