"""Where a transformation applies: `masked`, `partition`, `freeze`, `selective_transform`
(with `set_to_zero`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import EmptyState, GradientTransformation, as_transformation
from gradchain._masking import MaskedNode, MaskedState, broadcast_prefix, masked, resolve_mask
from gradchain._validate import refuse_flat

__all__ = [
    "MaskedNode",
    "MaskedState",
    "PartitionState",
    "freeze",
    "masked",
    "partition",
    "selective_transform",
    "set_to_zero",
]


def set_to_zero() -> GradientTransformation:
    """Replace every update by zeros: ``u_t = 0``.

    With `masked` or `partition` this freezes parameters; under ``jit`` the work that
    produced the zeroed gradients is usually dropped by the compiler.

    Returns:
        A stateless `GradientTransformation`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.set_to_zero()
        >>> tx.update(jnp.array([1.0, -2.0]), tx.init(None))[0]
        Array([0., 0.], dtype=float32)
    """

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(jnp.zeros_like, updates), state

    return GradientTransformation(init_fn, update_fn)


def freeze(mask: Any | Callable[[Any], Any]) -> GradientTransformation:
    """Zero the updates of the parameters where ``mask`` is True (frozen); pass the rest.

    ``freeze(mask) = masked(set_to_zero(), mask)``::

        u_i = 0  if mask_i  else  g_i

    Chained *before* a stateful optimizer, the optimizer still keeps state for the
    frozen leaves (and e.g. weight decay still moves them if it comes after); use
    `selective_transform` to keep no optimizer state for them at all.

    Args:
        mask: Like `masked`'s: a pytree of Python bools (or a prefix of the parameter
            tree, or a single bool), or a callable returning one; True = frozen.

    Returns:
        A `GradientTransformation` with state `MaskedState(EmptyState())`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.freeze({"w": True, "b": False})
        >>> g = {"w": jnp.ones(2), "b": jnp.ones(1)}
        >>> tx.update(g, tx.init(g))[0]
        {'b': Array([1.], dtype=float32), 'w': Array([0., 0.], dtype=float32)}
    """
    return masked(set_to_zero(), mask)


def selective_transform(optimizer: GradientTransformation, *, freeze_mask: Any) -> GradientTransformation:
    """Run ``optimizer`` on the trainable leaves only; frozen leaves get zero updates and no state.

    ``partition({"train": optimizer, "freeze": set_to_zero()}, labels)`` with the labels
    read from ``freeze_mask`` (True = frozen)::

        u_i = 0  if freeze_mask_i  else  optimizer(g restricted to trainable leaves)_i

    Args:
        optimizer: The transformation for the trainable leaves.
        freeze_mask: A pytree of Python bools (or a prefix of the parameter tree, or one
            bool), or a callable returning one from the parameters; True = frozen.

    Returns:
        A `GradientTransformation` with state `PartitionState(inner_states)`, keys
        ``"freeze"`` and ``"train"``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.selective_transform(gradchain.scale(-0.1), freeze_mask={"w": True, "b": False})
        >>> g = {"w": jnp.ones(2), "b": jnp.ones(1)}
        >>> tx.update(g, tx.init(g))[0]
        {'b': Array([-0.1], dtype=float32), 'w': Array([0., 0.], dtype=float32)}
    """
    optimizer = as_transformation("selective_transform", "optimizer", optimizer)

    def labels(params):
        m = resolve_mask("selective_transform", freeze_mask, params, "freeze_mask")
        return jax.tree.map(lambda frozen: "freeze" if frozen else "train", m)

    return partition({"train": optimizer, "freeze": set_to_zero()}, labels)


class PartitionState(NamedTuple):
    """State of `partition`: one `MaskedState` per label."""

    inner_states: Any  # dict: label -> MaskedState of that label's transformation


def partition(
    transforms: Mapping[Hashable, GradientTransformation], param_labels: Any
) -> GradientTransformation:
    """Apply a different transformation to each labelled group of parameters.

    Each transformation sees only the leaves carrying its label (the others are
    `MaskedNode`, holding no state); Optax calls this ``multi_transform``::

        u_i = transforms[label_i](g restricted to the leaves labelled label_i)_i

    A label that has no transformation is an error; a transformation whose label no
    leaf carries is allowed (it keeps an empty state), so one ``transforms`` dict can
    serve models with or without some group.

    Args:
        transforms: A mapping from label (e.g. a string) to `GradientTransformation`.
        param_labels: A pytree of labels with the structure of the parameters (or a
            prefix of it: one label for a whole subtree), or a callable that returns
            one from the parameters (in ``update``: from the updates if no params).

    Returns:
        A `GradientTransformation` with state `PartitionState(inner_states)`, a dict
        from label to the `MaskedState` of that label's transformation.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.partition({"fast": gradchain.scale(-1.0), "slow": gradchain.scale(-0.1)},
        ...                          {"w": "fast", "b": "slow"})
        >>> g = {"w": jnp.ones(2), "b": jnp.ones(1)}
        >>> tx.update(g, tx.init(g))[0]
        {'b': Array([-0.1], dtype=float32), 'w': Array([-1., -1.], dtype=float32)}
    """
    if not isinstance(transforms, Mapping) or not transforms:
        raise TypeError(
            f"partition: `transforms` must be a non-empty mapping from label to "
            f"GradientTransformation, got {transforms!r}."
        )
    transforms = {
        label: as_transformation("partition", f"transforms[{label!r}]", tx)
        for label, tx in transforms.items()
    }
    if not callable(param_labels):
        _check_labels(param_labels, transforms)

    def resolve(tree):
        if callable(param_labels):
            refuse_flat("partition", tree)
        labels = param_labels(tree) if callable(param_labels) else param_labels
        _check_labels(labels, transforms)
        labels = broadcast_prefix("partition", "param_labels", labels, tree, "label")
        return {group: jax.tree.map(lambda lab, g=group: lab == g, labels) for group in transforms}

    def init_fn(params):
        masks = resolve(params)
        return PartitionState({g: masked(tx, masks[g]).init(params) for g, tx in transforms.items()})

    def update_fn(updates, state, params=None, **extra_args):
        masks = resolve(updates if params is None else params)
        new_states = {}
        for g, tx in transforms.items():
            updates, new_states[g] = masked(tx, masks[g]).update(
                updates, state.inner_states[g], params, **extra_args
            )
        return updates, PartitionState(new_states)

    return GradientTransformation(init_fn, update_fn)


def _check_labels(labels, transforms) -> None:
    used = jax.tree.leaves(labels)
    unknown = sorted({repr(x) for x in used if x not in transforms})
    if unknown:
        raise ValueError(
            f"partition: `param_labels` uses label(s) {', '.join(unknown)} that have no transformation; "
            f"`transforms` has keys [{', '.join(sorted(repr(k) for k in transforms))}]."
        )
