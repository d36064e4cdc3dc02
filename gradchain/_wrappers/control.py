"""Wrappers that decide when and on what layout an inner transformation runs:
`conditionally_transform` and `conditionally_mask` (at the steps a predicate picks) and
`flatten` (on one concatenated vector instead of the tree).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, as_transformation
from gradchain._numerics import as_leaf, cond, promote, safe_increment, zero_count
from gradchain._validate import check_flag, check_floating

__all__ = [
    "ConditionFn",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "conditionally_mask",
    "conditionally_transform",
    "flatten",
]


class ConditionFn(Protocol):
    """The predicate of `conditionally_transform` and `conditionally_mask`:
    ``f(step, **extra_args) -> bool scalar`` (Optax's protocol of the same name)."""

    def __call__(self, step: jax.Array, **extra_args) -> Any: ...


class ConditionallyTransformState(NamedTuple):
    """State of `conditionally_transform` (Optax's field order)."""

    inner_state: Any  # the inner transformation's state, advanced on the chosen steps only
    step: jax.Array  # int32 scalar: calls so far (the predicate's argument)


class ConditionallyMaskState(NamedTuple):
    """State of `conditionally_mask` (Optax's field order)."""

    step: jax.Array  # int32 scalar: calls so far (the predicate's argument)
    inner_state: Any  # the inner transformation's state, advanced on the chosen steps only


def _predicate(fn: str, should_transform_fn: Callable, step: jax.Array, extra_args: dict) -> jax.Array:
    out = jnp.asarray(should_transform_fn(step, **extra_args))
    if out.shape != () or out.dtype != jnp.bool_:
        raise ValueError(
            f"{fn}: `should_transform_fn` must return a bool scalar, got an array of dtype {out.dtype} "
            f"and shape {out.shape}."
        )
    return out


def _conditional(fn: str, inner, should_transform_fn, forward_extra_args, on_reject, make_state):
    inner = as_transformation(fn, "inner", inner)
    if not callable(should_transform_fn):
        raise TypeError(f"{fn}: `should_transform_fn` must be callable, got {should_transform_fn!r}.")
    check_flag(fn, "forward_extra_args", forward_extra_args)

    def init_fn(params):
        return make_state(inner.init(params), zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        check_floating(fn, updates)
        updates = jax.tree.map(as_leaf, updates)
        run = _predicate(fn, should_transform_fn, state.step, extra_args if forward_extra_args else {})

        def do_update(inner_state):
            return inner.update(updates, inner_state, params, **extra_args)

        def reject(inner_state):
            return on_reject(updates), inner_state

        updates, inner_state = cond(run, do_update, reject, state.inner_state)
        return updates, make_state(inner_state, safe_increment(state.step))

    return GradientTransformation(init_fn, update_fn)


def conditionally_transform(
    inner: GradientTransformation,
    should_transform_fn: Callable[..., Any],
    *,
    forward_extra_args: bool = False,
) -> GradientTransformation:
    """Run ``inner`` only on the calls a predicate picks; pass the updates through otherwise.

    At call ``t`` (from 0)::

        if should_transform_fn(t):  u_t, s_t = inner(g_t, s_{t-1})
        else:                       u_t, s_t = g_t, s_{t-1}

    ``inner`` is not evaluated on the other calls (``jax.lax.cond`` under ``jit``).
    To return zeros instead, use `conditionally_mask`.

    Args:
        inner: The transformation to run.
        should_transform_fn: ``f(step, **extra_args) -> bool scalar``, where ``step``
            is the int32 count of previous calls.
        forward_extra_args: Pass the ``update`` call's extra arguments (e.g.
            ``value=loss``) to ``should_transform_fn`` too.

    Returns:
        A `GradientTransformation` with state `ConditionallyTransformState(inner_state, step)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.conditionally_transform(gradchain.scale(10.0), lambda step: step >= 1)
        >>> s = tx.init(jnp.zeros(1))
        >>> u, s = tx.update(jnp.ones(1), s); u
        Array([1.], dtype=float32)
        >>> tx.update(jnp.ones(1), s)[0]
        Array([10.], dtype=float32)
    """
    return _conditional(
        "conditionally_transform",
        inner,
        should_transform_fn,
        forward_extra_args,
        lambda updates: updates,
        lambda inner_state, step: ConditionallyTransformState(inner_state, step),
    )


def conditionally_mask(
    inner: GradientTransformation,
    should_transform_fn: Callable[..., Any],
    *,
    forward_extra_args: bool = False,
) -> GradientTransformation:
    """Run ``inner`` only on the calls a predicate picks; return zeros otherwise.

    At call ``t`` (from 0)::

        if should_transform_fn(t):  u_t, s_t = inner(g_t, s_{t-1})
        else:                       u_t, s_t = 0, s_{t-1}

    ``inner`` is not evaluated on the other calls (``jax.lax.cond`` under ``jit``).
    To pass the updates through instead, use `conditionally_transform`.

    Args:
        inner: The transformation to run.
        should_transform_fn: ``f(step, **extra_args) -> bool scalar``, where ``step``
            is the int32 count of previous calls.
        forward_extra_args: Pass the ``update`` call's extra arguments (e.g.
            ``value=loss``) to ``should_transform_fn`` too.

    Returns:
        A `GradientTransformation` with state `ConditionallyMaskState(step, inner_state)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.conditionally_mask(gradchain.scale(10.0), lambda step: step % 2 == 1)
        >>> s = tx.init(jnp.zeros(1))
        >>> u, s = tx.update(jnp.ones(1), s); u
        Array([0.], dtype=float32)
        >>> tx.update(jnp.ones(1), s)[0]
        Array([10.], dtype=float32)
    """
    return _conditional(
        "conditionally_mask",
        inner,
        should_transform_fn,
        forward_extra_args,
        lambda updates: jax.tree.map(jnp.zeros_like, updates),
        lambda inner_state, step: ConditionallyMaskState(step, inner_state),
    )


def _ravel(tree: Any) -> jax.Array:
    """Every leaf of ``tree``, raveled and concatenated, in the leaves' promoted dtype."""
    leaves = [jnp.asarray(as_leaf(x)) for x in jax.tree.leaves(tree)]
    if not leaves:
        return jnp.zeros([0], jnp.float32)
    dt = promote(*[x.dtype for x in leaves])
    return jnp.concatenate([jnp.reshape(x, [-1]).astype(dt) for x in leaves])


def _unravel(like: Any, flat: jax.Array) -> Any:
    """Split ``flat`` back into the leaves of ``like``: their shapes and dtypes."""
    leaves, treedef = jax.tree.flatten(like)
    leaves = [as_leaf(x) for x in leaves]
    offsets = np.cumsum([np.size(x) for x in leaves])[:-1].tolist()
    parts = jnp.split(flat, offsets) if leaves else []
    return jax.tree.unflatten(
        treedef, [jnp.reshape(p, jnp.shape(x)).astype(jnp.result_type(x)) for p, x in zip(parts, leaves)]
    )


def flatten(inner: GradientTransformation) -> GradientTransformation:
    """Run ``inner`` on one vector: every leaf raveled and concatenated.

    With ``vec`` the concatenation of the raveled leaves (in ``jax.tree.leaves`` order)
    and ``unvec`` its inverse::

        u, s_t = inner(vec(g_t), s_{t-1}, vec(params))
        u_t = unvec(u)

    Fewer, larger arrays can be faster when a model has many small parameters, at the
    cost of one concatenated copy. Leaves of different dtypes are concatenated in their
    promoted dtype (Optax's ``concatenate`` fails on them under strict dtype promotion)
    and each result is cast back to its leaf's dtype. Layer-wise transformations
    (trust ratios, factored moments) see one layer.

    Args:
        inner: The transformation to run on the flat vector.

    Returns:
        A `GradientTransformation` whose state is ``inner``'s state for the flat vector.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.flatten(gradchain.clip_by_norm(5.0))   # one norm over all leaves
        >>> g = {"a": jnp.array([6.0]), "b": jnp.array([[8.0]])}
        >>> tx.update(g, tx.init(g))[0]
        {'a': Array([3.], dtype=float32), 'b': Array([[4.]], dtype=float32)}
    """
    inner = as_transformation("flatten", "inner", inner)

    def init_fn(params):
        return inner.init(_ravel(params))

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("flatten", updates)
        flat_params = None if params is None else _ravel(params)
        flat_updates, state = inner.update(_ravel(updates), state, flat_params, **extra_args)
        return _unravel(updates, flat_updates), state

    return GradientTransformation(init_fn, update_fn)
