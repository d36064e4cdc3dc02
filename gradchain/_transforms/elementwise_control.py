"""Leafwise control of the updates: `zero_nans`, `keep_params_nonnegative`, `apply_every`,
`stateless_with_tree_map`; and `scale_gradient`, which scales a backward pass.

None of them takes an inner transformation (the wrappers are in ``gradchain._wrappers``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import EmptyState, GradientTransformation
from gradchain._kit import Compute, map_leaves, store, zeros_like_params
from gradchain._numerics import as_leaf, safe_increment, zero_count
from gradchain._tree import scale_leaf
from gradchain._validate import (
    check_floating,
    check_scalar,
    check_tree_match,
    concrete_scalar,
    require_params,
)

__all__ = [
    "ApplyEvery",
    "NonNegativeParamsState",
    "ZeroNansState",
    "apply_every",
    "keep_params_nonnegative",
    "scale_gradient",
    "stateless_with_tree_map",
    "zero_nans",
]


class ZeroNansState(NamedTuple):
    """State of `zero_nans`."""

    found_nan: Any  # per-param tree of bool scalars: the leaf held a NaN at the latest call


NonNegativeParamsState = EmptyState
"""State of `keep_params_nonnegative` (it keeps none): `EmptyState`, as in Optax."""


class ApplyEvery(NamedTuple):
    """State of `apply_every`."""

    count: jax.Array  # int32 scalar: calls since the last emission, in [0, k)
    grad_acc: Any  # per-param tree, param dtype: the sum of the updates of this window


def zero_nans() -> GradientTransformation:
    """Replace NaN entries of the updates by zero, and record which leaves held one.

    For each leaf ``g``::

        found_nan = any(isnan(g))
        u = where(isnan(g), 0, g)

    Infinities pass unchanged (use `apply_if_finite` to skip such steps). The state is
    for the user to read (e.g. to log); the transformation does not use it.

    Returns:
        A `GradientTransformation` with state `ZeroNansState(found_nan)`: one bool scalar
        per parameter, True iff that leaf's latest update held a NaN.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.zero_nans()
        >>> params = {"a": jnp.zeros(2), "b": jnp.zeros(1)}
        >>> u, state = tx.update({"a": jnp.array([1.0, jnp.nan]), "b": jnp.ones(1)}, tx.init(params))
        >>> u["a"], bool(state.found_nan["a"]), bool(state.found_nan["b"])
        (Array([1., 0.], dtype=float32), True, False)
    """

    def init_fn(params):
        return ZeroNansState(found_nan=jax.tree.map(lambda _: jnp.zeros([], jnp.bool_), params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        # `found_nan` holds scalars: compare the structure only (None leaves skip the shape check).
        check_tree_match("zero_nans", updates, jax.tree.map(lambda _: None, state.found_nan))

        def leaf(g):
            nan = jnp.isnan(g)
            return jnp.where(nan, jnp.zeros_like(g), g), jnp.any(nan)

        new_updates, found_nan = map_leaves(leaf, updates)
        return new_updates, ZeroNansState(found_nan=found_nan)

    return GradientTransformation(init_fn, update_fn)


def keep_params_nonnegative() -> GradientTransformation:
    """Change the updates so that the parameters stay ``>= 0`` after they are applied.

    For parameter ``p`` and update ``g``::

        u = -p   if p + g < 0
        u = g    otherwise

    so a step that would cross zero lands on zero. Put it last in a chain. A parameter
    that is already negative is moved to 0 by any update that keeps it negative. The
    updates keep their dtype: when it is narrower than the parameters' (bfloat16 updates
    for float32 parameters), ``-p`` is rounded towards zero, so ``p + u`` is never below
    0 (Optax returns such updates in the parameters' dtype instead).

    Returns:
        A stateless `GradientTransformation` (state `NonNegativeParamsState()`, which is
        `EmptyState()`); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.keep_params_nonnegative()
        >>> params = jnp.array([1.0, 2.0, 3.0])
        >>> tx.update(jnp.array([-2.0, -1.0, 0.5]), tx.init(params), params)[0]
        Array([-1. , -1. ,  0.5], dtype=float32)
    """
    fn = "keep_params_nonnegative"

    def init_fn(params):
        del params
        return NonNegativeParamsState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        require_params(fn, params)
        check_tree_match(fn, updates, params, "the parameters")

        def leaf(g, p):
            c = Compute(g, p)
            x, q = c(g), c(p)
            to_zero = store(-q, g)
            # Rounded to g's dtype, -p may be larger than p: step one ulp towards zero.
            to_zero = jnp.where(c(to_zero) < -q, jnp.nextafter(to_zero, jnp.zeros_like(to_zero)), to_zero)
            return (jnp.where(q + x < 0, to_zero, g),)

        (new_updates,) = map_leaves(leaf, updates, params)
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)


def apply_every(k=1) -> GradientTransformation:
    """Sum the updates of ``k`` calls and emit the sum on every ``k``-th call, zeros otherwise.

    At call ``t`` (from 0), with ``c = t mod k``::

        a_t = g_t              if c == 0
        a_t = a_{t-1} + g_t    otherwise
        u_t = a_t              if c == k - 1
        u_t = 0                otherwise

    The members of a chain before and after it still step on every call; to step a
    whole optimizer once per ``k`` calls, on the mean, use `accumulate_gradients`.
    Unlike Optax's, a NaN or Inf in one window does not leak into the zeros returned
    in between nor into the next window (Optax multiplies by 0 or 1: ``0 * nan = nan``).

    Args:
        k: An integer ``>= 1`` (or a scalar integer array/tracer).

    Returns:
        A `GradientTransformation` with state `ApplyEvery(count, grad_acc)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.apply_every(2)
        >>> s = tx.init(jnp.zeros(1))
        >>> u, s = tx.update(jnp.array([1.0]), s); u
        Array([0.], dtype=float32)
        >>> u, s = tx.update(jnp.array([3.0]), s); u
        Array([4.], dtype=float32)
    """
    fn = "apply_every"
    check_scalar(fn, "k", k, lo=1, integer=True)
    k_ = concrete_scalar(k)
    k = int(k_) if k_ is not None else jnp.asarray(k).astype(jnp.int32)

    def init_fn(params):
        return ApplyEvery(count=zero_count(), grad_acc=zeros_like_params(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match(fn, updates, state.grad_acc, "the accumulator `state.grad_acc`")
        c = state.count % k
        accumulating = c != 0
        emit = c == k - 1

        def leaf(g, a):
            cc = Compute(g, a)
            acc = store(jnp.where(accumulating, cc(a), jnp.zeros_like(cc(a))) + cc(g), a)
            return store(jnp.where(emit, cc(acc), jnp.zeros_like(cc(acc))), g), acc

        new_updates, grad_acc = map_leaves(leaf, updates, state.grad_acc)
        return new_updates, ApplyEvery(count=safe_increment(state.count) % k, grad_acc=grad_acc)

    return GradientTransformation(init_fn, update_fn)


def stateless_with_tree_map(f: Callable[[jax.Array, jax.Array | None], jax.Array]) -> GradientTransformation:
    """A stateless transformation that applies ``f(update, param)`` to each leaf.

    For each leaf, with ``p`` the matching parameter (``None`` when ``update`` is called
    without parameters)::

        u = f(g, p)

    Like `stateless`, without writing the tree map.

    Args:
        f: A function of one update array and its parameter array (or ``None``) that
            returns an array of the update's shape; keep the update's dtype.

    Returns:
        A `GradientTransformation` with state `EmptyState()`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.stateless_with_tree_map(lambda g, p: g if p is None else g * p)
        >>> params = {"a": jnp.array([2.0]), "b": jnp.array([-1.0])}
        >>> tx.update({"a": jnp.array([3.0]), "b": jnp.array([3.0])}, tx.init(params), params)[0]
        {'a': Array([6.], dtype=float32), 'b': Array([-3.], dtype=float32)}
    """
    fn = "stateless_with_tree_map"
    if not callable(f):
        raise TypeError(f"{fn}: `f` must be callable, got {f!r}.")

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            check_floating(fn, updates)
            return jax.tree.map(lambda g: f(as_leaf(g), None), updates), state
        check_tree_match(fn, updates, params, "the parameters")
        return jax.tree.map(lambda g, p: f(as_leaf(g), as_leaf(p)), updates, params), state

    return GradientTransformation(init_fn, update_fn)


@jax.custom_vjp
def _scaled(inputs, scale):
    del scale
    return inputs


def _scaled_fwd(inputs, scale):
    return inputs, scale


def _scaled_bwd(scale, cotangents):
    def leaf(g):
        return scale_leaf(g, scale) if jnp.issubdtype(jnp.result_type(g), jnp.inexact) else g

    return jax.tree.map(leaf, cotangents), None


_scaled.defvjp(_scaled_fwd, _scaled_bwd)


def scale_gradient(inputs: Any, scale) -> Any:
    """Return ``inputs`` unchanged, but multiply the gradient flowing back through it by ``scale``.

    Forward and backward pass::

        y = x
        dL/dx = scale * dL/dy

    A gradient-reversal layer is ``scale = -1``; ``scale = 0`` stops the gradient
    (``jax.lax.stop_gradient``), ``scale = 1`` returns ``inputs`` as they are. The
    backward product runs in at least float32 and keeps each cotangent's dtype.

    Args:
        inputs: A pytree of arrays.
        scale: A number (or scalar array/tracer).

    Returns:
        ``inputs``, with a scaled backward pass.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(gradchain.scale_gradient(x, 0.5) ** 2)
        >>> f(jnp.array([1.0, 2.0])), jax.grad(f)(jnp.array([1.0, 2.0]))
        (Array(5., dtype=float32), Array([1., 2.], dtype=float32))
    """
    check_scalar("scale_gradient", "scale", scale)
    value = concrete_scalar(scale)
    if value == 1.0:
        return inputs
    if value == 0.0:
        return jax.lax.stop_gradient(inputs)
    return _scaled(inputs, scale)
