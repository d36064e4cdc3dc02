"""The one contract of gradchain: a gradient transformation is a pair of pure functions.

``init(params) -> state``
    Builds the transformation's state from the parameters (only their shapes and
    dtypes matter); the state is a pytree of arrays, usually a ``NamedTuple``.

``update(updates, state, params=None, **extra_args) -> (new_updates, new_state)``
    Transforms a tree of updates (at the start of a chain: the gradients). ``params``
    is needed by transformations that look at the parameters (weight decay, trust
    ratios); ``extra_args`` carries side information such as ``value=loss`` and is
    forwarded to every member of a :func:`gradchain.chain`. A transformation ignores
    the extra arguments it does not use.

The new state always has exactly the tree structure and node types of ``init``'s, so
it can be carried through ``jax.lax.scan``, ``flax.nnx.Optimizer`` and checkpoints.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax

Params = Any
"""A pytree of arrays (``None`` leaves and empty subtrees allowed)."""
Updates = Any
"""A pytree with the structure of the parameters: gradients or updates."""
OptState = Any
"""A pytree of arrays: a transformation's state."""
Schedule = Callable[[jax.Array], jax.Array]
"""A function from the int32 step count to a scalar value."""
ScalarOrSchedule = float | jax.Array | Schedule


class TransformInitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class TransformUpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]: ...


class GradientTransformation(NamedTuple):
    """A pure ``(init, update)`` pair; see the module docstring for the contract.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.chain(gradchain.clip_by_global_norm(5.0), gradchain.scale(-0.1))
        >>> state = tx.init(jnp.zeros(2))
        >>> updates, state = tx.update(jnp.array([6.0, 8.0]), state)
        >>> updates
        Array([-0.3, -0.4], dtype=float32)
    """

    init: TransformInitFn
    update: TransformUpdateFn


class EmptyState(NamedTuple):
    """The state of a stateless transformation."""


def identity() -> GradientTransformation:
    """Return the updates unchanged: ``u_t = g_t``.

    Returns:
        A stateless `GradientTransformation`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.identity()
        >>> tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))[0]
        Array([1.], dtype=float32)
    """

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return updates, state

    return GradientTransformation(init_fn, update_fn)


def stateless(f: Callable[[Updates, Params | None], Updates]) -> GradientTransformation:
    """Wrap ``f(updates, params) -> updates`` as a stateless transformation.

    Args:
        f: A pure function of the updates and the (possibly ``None``) parameters that
            returns a tree with the structure of ``updates``.

    Returns:
        A `GradientTransformation` with state `EmptyState()`.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> tx = gradchain.stateless(lambda u, p: jax.tree.map(jnp.sign, u))
        >>> tx.update(jnp.array([-3.0, 0.5]), tx.init(None))[0]
        Array([-1.,  1.], dtype=float32)
    """
    if not callable(f):
        raise TypeError(f"stateless: `f` must be callable, got {f!r}.")

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        return f(updates, params), state

    return GradientTransformation(init_fn, update_fn)


def _accepts_extra_args(update: Callable) -> bool:
    try:
        params = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def as_transformation(fn: str, name: str, tx: Any) -> GradientTransformation:
    """Accept any ``(init, update)`` pair as a member: gradchain's, Optax's, a user's.

    A pair whose ``update`` takes no ``**extra_args`` (Optax's plain
    ``GradientTransformation``) is wrapped to drop them, as Optax's own ``chain`` does.
    Anything else raises a `TypeError` naming the function and the argument.
    """
    if isinstance(tx, GradientTransformation):
        return tx
    init, update = getattr(tx, "init", None), getattr(tx, "update", None)
    if not (callable(init) and callable(update)) or isinstance(tx, type):
        hint = " Did you forget to call a factory, e.g. `gradchain.scale_by_adam()`?" if callable(tx) else ""
        what = name if name.startswith("argument ") else f"`{name}`"
        raise TypeError(
            f"{fn}: {what} must be a GradientTransformation (any object with callable `init` and "
            f"`update`, e.g. from gradchain or Optax), got {type(tx).__name__} ({tx!r}).{hint}"
        )
    if _accepts_extra_args(update):
        return GradientTransformation(init, update)  # pyright: ignore[reportArgumentType]

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        return update(updates, state, params)

    return GradientTransformation(init, update_fn)  # pyright: ignore[reportArgumentType]
