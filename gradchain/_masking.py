"""Masks: apply a transformation to some leaves only (``masked``) and the shared helpers.

Lives below ``transforms/`` so that transformations with a ``mask=`` argument (weight
decay, L1) can use it; re-exported by ``gradchain``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from gradchain._base import GradientTransformation, as_transformation
from gradchain._validate import refuse_flat


class MaskedNode(NamedTuple):
    """Stands in, inside a masked inner state or tree, for a leaf the mask leaves out.

    An empty pytree node: it holds no array, so masked-out leaves hold no state.
    """


class MaskedState(NamedTuple):
    """State of `masked`: the inner transformation's state over the selected leaves."""

    inner_state: Any


def is_bool(x) -> bool:
    """A Python or NumPy bool, or a 0-d NumPy bool array (e.g. ``np.array(False)``)."""
    return isinstance(x, (bool, np.bool_)) or (
        isinstance(x, np.ndarray) and x.shape == () and x.dtype == np.bool_
    )


def broadcast_prefix(fn: str, name: str, prefix: Any, tree: Any, what: str) -> Any:
    """``prefix`` (``tree``'s structure, or a prefix of it) expanded to one leaf per leaf of ``tree``."""
    s_m, s_p = jax.tree.structure(prefix), jax.tree.structure(tree)
    if s_m == s_p:
        return prefix
    try:
        return jax.tree.map(lambda m, sub: jax.tree.map(lambda _: m, sub), prefix, tree)
    except (ValueError, TypeError):
        raise ValueError(
            f"{fn}: the `{name}` tree does not match the parameters.\n"
            f"  {name}:  {s_m}\n  params:  {s_p}\n"
            f"Give one {what} per parameter leaf (or per subtree, as a prefix of the parameter "
            f"tree), or a callable that builds the `{name}` tree from the params."
        ) from None


def resolve_mask(fn: str, mask, params, name: str = "mask") -> Any:
    if callable(mask):
        # a mask built from flat buffers would see dtype buffers, not layers
        refuse_flat(fn, params)
    tree = mask(params) if callable(mask) else mask
    leaves = jax.tree.leaves(tree)
    bad = [x for x in leaves if not is_bool(x)]
    if bad:
        raise TypeError(
            f"{fn}: `{name}` must be a pytree of Python bools (or a callable returning one), "
            f"got a leaf {bad[0]!r} of type {type(bad[0]).__name__}."
        )
    return broadcast_prefix(fn, name, tree, params, "bool")


def _select(mask, tree):
    return jax.tree.map(lambda m, x: x if bool(m) else MaskedNode(), mask, tree)


def masked(inner: GradientTransformation, mask: Any | Callable[[Any], Any]) -> GradientTransformation:
    """Apply ``inner`` only to the leaves where ``mask`` is True; the rest pass unchanged.

    Masked-out leaves hold no state (they are `MaskedNode` in the inner state)::

        u_i = inner(g)_i  if mask_i  else  g_i

    Args:
        inner: The transformation to apply to the selected leaves.
        mask: A pytree of Python bools with the structure of the parameters (or a prefix
            of it: one bool for a whole subtree, or a single bool for everything), or a
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
    inner = as_transformation("masked", "inner", inner)

    def init_fn(params):
        m = resolve_mask("masked", mask, params)
        return MaskedState(inner_state=inner.init(_select(m, params)))

    def update_fn(updates, state, params=None, **extra_args):
        m = resolve_mask("masked", mask, updates if params is None else params)
        sub_params = None if params is None else _select(m, params)
        new_sub, inner_state = inner.update(_select(m, updates), state.inner_state, sub_params, **extra_args)
        new_updates = jax.tree.map(lambda keep, new, old: new if keep else old, m, new_sub, updates)
        return new_updates, MaskedState(inner_state=inner_state)

    return GradientTransformation(init_fn, update_fn)
