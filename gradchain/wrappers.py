"""Wrappers: transformations that change where or whether another one applies."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from gradchain._base import GradientTransformation

__all__ = ["MaskedNode", "MaskedState", "masked"]


class MaskedNode(NamedTuple):
    """Stands in, inside a masked inner state or tree, for a leaf the mask leaves out.

    An empty pytree node: it holds no array, so masked-out leaves hold no state.
    """


class MaskedState(NamedTuple):
    """State of `masked`: the inner transformation's state over the selected leaves."""

    inner_state: Any


def _is_bool(x) -> bool:
    return isinstance(x, (bool, np.bool_))


def _resolve_mask(fn: str, mask, params) -> Any:
    tree = mask(params) if callable(mask) else mask
    leaves = jax.tree.leaves(tree)
    bad = [x for x in leaves if not _is_bool(x)]
    if bad:
        raise TypeError(
            f"{fn}: `mask` must be a pytree of Python bools (or a callable returning one), "
            f"got a leaf {bad[0]!r} of type {type(bad[0]).__name__}."
        )
    s_m, s_p = jax.tree.structure(tree), jax.tree.structure(params)
    if s_m != s_p:
        raise ValueError(
            f"{fn}: the `mask` tree does not match the parameters.\n"
            f"  mask:    {s_m}\n  params:  {s_p}\n"
            "Give one bool per parameter leaf, or a callable that builds the mask from the params."
        )
    return tree


def _select(mask, tree):
    return jax.tree.map(lambda m, x: x if m else MaskedNode(), mask, tree)


def masked(inner: GradientTransformation, mask: Any | Callable[[Any], Any]) -> GradientTransformation:
    """Apply ``inner`` only to the leaves where ``mask`` is True; the rest pass unchanged.

    Masked-out leaves hold no state (they are `MaskedNode` in the inner state)::

        u_i = inner(g)_i  if mask_i  else  g_i

    Args:
        inner: The transformation to apply to the selected leaves.
        mask: A pytree of Python bools with the structure of the parameters, or a
            callable that returns one from the parameters (or, in ``update``, from the
            updates when no parameters are given).

    Returns:
        A `GradientTransformation` with state `MaskedState(inner_state)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.masked(gradchain.scale(0.0), {"w": True, "b": False})
        >>> p = {"w": jnp.ones(2), "b": jnp.ones(1)}
        >>> tx.update(p, tx.init(p))[0]
        {'b': Array([1.], dtype=float32), 'w': Array([0., 0.], dtype=float32)}
    """
    if not isinstance(inner, GradientTransformation):
        raise TypeError(f"masked: `inner` must be a GradientTransformation, got {inner!r}.")

    def init_fn(params):
        m = _resolve_mask("masked", mask, params)
        return MaskedState(inner_state=inner.init(_select(m, params)))

    def update_fn(updates, state, params=None, **extra_args):
        m = _resolve_mask("masked", mask, updates if params is None else params)
        sub_params = None if params is None else _select(m, params)
        new_sub, inner_state = inner.update(_select(m, updates), state.inner_state, sub_params, **extra_args)
        new_updates = jax.tree.map(lambda keep, new, old: new if keep else old, m, new_sub, updates)
        return new_updates, MaskedState(inner_state=inner_state)

    return GradientTransformation(init_fn, update_fn)
