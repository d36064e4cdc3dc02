"""Composition: ``chain`` and ``named_chain``."""

from __future__ import annotations

from typing import Any

from gradchain._base import GradientTransformation, as_transformation


def _members(fn: str, transforms) -> tuple[GradientTransformation, ...]:
    return tuple(as_transformation(fn, f"argument {i}", tx) for i, tx in enumerate(transforms))


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply transformations in sequence: ``u = f_n(... f_2(f_1(g)))``.

    Each member sees the previous member's output, the same ``params`` and the same
    ``extra_args`` (e.g. ``value=loss``); the state is the tuple of the members' states.

    Args:
        *transforms: `GradientTransformation` objects, applied left to right.

    Returns:
        A `GradientTransformation` whose state is a tuple with one state per member.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.chain(gradchain.clip_by_value(1.0), gradchain.scale(-0.5))
        >>> tx.update(jnp.array([3.0, -0.2]), tx.init(jnp.zeros(2)))[0]
        Array([-0.5,  0.1], dtype=float32)
    """
    transforms = _members("chain", transforms)

    def init_fn(params):
        return tuple(tx.init(params) for tx in transforms)

    def update_fn(updates, state, params=None, **extra_args: Any):
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(
                f"chain: `state` must be a tuple of {len(transforms)} member states (what "
                f"`init` returned), got {type(state).__name__} of length "
                f"{len(state) if isinstance(state, (tuple, list)) else 'n/a'}."
            )
        new_states = []
        for tx, s in zip(transforms, state):
            updates, s = tx.update(updates, s, params, **extra_args)
            new_states.append(s)
        return updates, tuple(new_states)

    return GradientTransformation(init_fn, update_fn)


def named_chain(*transforms: tuple[str, GradientTransformation]) -> GradientTransformation:
    """Like :func:`chain`, with each member's state stored under a name.

    ``state["clip"]`` then reads a member's state back, e.g. for logging.

    Args:
        *transforms: ``(name, transformation)`` pairs with distinct string names.

    Returns:
        A `GradientTransformation` whose state is a ``dict`` from name to member state.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.named_chain(("adam", gradchain.scale_by_adam()),
        ...                            ("lr", gradchain.scale(-0.1)))
        >>> state = tx.init(jnp.zeros(2))
        >>> sorted(state)
        ['adam', 'lr']
        >>> int(tx.update(jnp.ones(2), state)[1]["adam"].count)
        1
    """
    names = []
    for i, item in enumerate(transforms):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(
                f"named_chain: argument {i} must be a (name, GradientTransformation) pair, got {item!r}."
            )
        names.append(item[0])
    if len(set(names)) != len(names):
        raise ValueError(f"named_chain: names must be distinct, got {names}.")
    transforms = tuple(zip(names, _members("named_chain", [tx for _, tx in transforms])))

    def init_fn(params):
        return {name: tx.init(params) for name, tx in transforms}

    def update_fn(updates, state, params=None, **extra_args: Any):
        if not isinstance(state, dict) or set(state) != set(names):
            raise ValueError(
                f"named_chain: `state` must be a dict with keys {sorted(names)} (what `init` "
                f"returned), got {type(state).__name__}"
                f"{' with keys ' + repr(sorted(state)) if isinstance(state, dict) else ''}."
            )
        new_state = {}
        for name, tx in transforms:
            updates, new_state[name] = tx.update(updates, state[name], params, **extra_args)
        return updates, new_state

    return GradientTransformation(init_fn, update_fn)
