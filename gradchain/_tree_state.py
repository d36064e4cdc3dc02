"""Find and replace values in optimizer states by name (Optax's ``tree_get`` / ``tree_set``).

A *key* names a dict key, a NamedTuple field, or a NamedTuple class (``"count"``,
``"learning_rate"``, ``"ScaleByAdamState"``), searched for at any depth. Paths are
``jax.tree_util`` key paths, except that a NamedTuple field appears as a
`NamedTupleKey` carrying the tuple's class name, so that a ``filtering(path, value)``
predicate can tell ``ScaleByAdamState.count`` from ``AddNoiseState.count``.

The search semantics are Optax 0.2.8's, exactly:

- `tree_get_all_with_path` finds the top-most nodes holding the key, takes the value
  under the key in each, then searches again inside every child of those nodes (so a
  key nested under the same key is found too);
- `tree_set` replaces the value under the key in the top-most nodes holding it and
  continues below them only through dicts, lists and tuples that themselves hold the
  key (a chain's plain tuple of states below a matching node is left as it is, as in
  Optax: ``tree_set(inject_state, count=...)`` sets only the wrapper's count).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

__all__ = ["NamedTupleKey", "tree_get", "tree_get_all_with_path", "tree_set"]

KeyPath = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class NamedTupleKey:
    """A key-path entry for the field ``name`` of a NamedTuple of class ``tuple_name``.

    Printed (``jax.tree_util.keystr``) as ``tuple_name.name``.

    Attributes:
        tuple_name: The NamedTuple's class name, e.g. ``"ScaleByAdamState"``.
        name: The field's name, e.g. ``"count"``.

    Examples:
        >>> import gradchain
        >>> str(gradchain.tree_utils.NamedTupleKey("ScaleByAdamState", "count"))
        'ScaleByAdamState.count'
    """

    tuple_name: str
    name: str

    def __str__(self) -> str:
        return f"{self.tuple_name}.{self.name}"


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _holds(node: Any, keys: tuple) -> bool:
    """Whether ``node`` is a NamedTuple with one of ``keys`` as a field or class name, or a
    dict with one of them as a key."""
    if _is_namedtuple(node):
        return any(k in node._fields for k in keys) or type(node).__name__ in keys
    return isinstance(node, dict) and any(k in node for k in keys)


def _named_leaves(tree: Any, stop: Callable[[Any], bool]) -> list[tuple[KeyPath, Any]]:
    """``tree_leaves_with_path``, stopping at nodes where ``stop`` holds, with NamedTuple
    fields spelled as `NamedTupleKey`s."""
    out = []
    flat = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: stop(x) or _is_namedtuple(x))
    for path, node in flat:
        if stop(node) or not _is_namedtuple(node):
            out.append((path, node))
            continue
        name = type(node).__name__
        for field in node._fields:
            for sub, leaf in _named_leaves(getattr(node, field), stop):
                out.append(((*path, NamedTupleKey(name, field), *sub), leaf))
    return out


def _children(path: KeyPath, node: Any) -> list[tuple[KeyPath, Any]]:
    """The direct children of a NamedTuple or dict node, with their paths."""
    if _is_namedtuple(node):
        name = type(node).__name__
        return [((*path, NamedTupleKey(name, f)), getattr(node, f)) for f in node._fields]
    return [((*path, jax.tree_util.DictKey(k)), v) for k, v in node.items()]


def _value_at(path: KeyPath, node: Any, key: Any) -> tuple[KeyPath, Any]:
    """The entry ``key`` names in ``node``: the node itself for its NamedTuple class name."""
    if _is_namedtuple(node):
        if key == type(node).__name__:
            return path, node
        return (*path, NamedTupleKey(type(node).__name__, key)), getattr(node, key)
    return (*path, jax.tree_util.DictKey(key)), node[key]


def _find(tree: Any, key: Any) -> list[tuple[KeyPath, Any]]:
    holds = lambda node: _holds(node, (key,))
    tops = [(p, n) for p, n in _named_leaves(tree, holds) if holds(n)]
    found = [_value_at(p, n, key) for p, n in tops]
    for path, node in tops:
        for child_path, child in _children(path, node):
            found += [((*child_path, *sub), v) for sub, v in _find(child, key)]
    return found


def _check_filtering(fn: str, filtering: Any) -> None:
    if filtering is not None and not callable(filtering):
        raise TypeError(
            f"{fn}: `filtering` must be a callable (path, value) -> bool or None, got {filtering!r}."
        )


def tree_get_all_with_path(
    tree: Any, key: Any, filtering: Callable[[KeyPath, Any], bool] | None = None
) -> list[tuple[KeyPath, Any]]:
    """Every value in ``tree`` under ``key`` (a dict key, NamedTuple field or NamedTuple name), with its path.

    ::

        [(path, value) for each match, if filtering is None or filtering(path, value)]

    Args:
        tree: The tree to search (an optimizer state, a dict, ...).
        key: The key, field or NamedTuple class name to look for.
        filtering: Optional predicate ``filtering(path, value) -> bool`` keeping only
            some matches; paths spell NamedTuple fields as `NamedTupleKey`.

    Returns:
        A list of ``(path, value)`` pairs, top-most matches first.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> state = gradchain.adam(1e-3).init(jnp.zeros(2))
        >>> [jax.tree_util.keystr(p) for p, _ in gradchain.tree.get_all_with_path(state, "count")]
        ['[0]ScaleByAdamState.count']
    """
    _check_filtering("tree_get_all_with_path", filtering)
    found = _find(tree, key)
    if filtering:
        found = [(p, v) for p, v in found if filtering(p, v)]
    return found


def tree_get(
    tree: Any, key: Any, default: Any = None, filtering: Callable[[KeyPath, Any], bool] | None = None
) -> Any:
    """The one value in ``tree`` under ``key`` (see `tree_get_all_with_path`), else ``default``.

    Raises a ``KeyError`` when several values match (narrow them with ``filtering``).
    On an ``inject_hyperparams`` state whose hyperparameter is a schedule, both
    ``hyperparams`` and ``hyperparams_states`` hold its name: select with, e.g.,
    ``filtering=lambda path, value: isinstance(value, jax.Array)`` (as in Optax).

    Args:
        tree: The tree to search.
        key: The key, field or NamedTuple class name to look for.
        default: Returned when nothing matches.
        filtering: Optional predicate ``filtering(path, value) -> bool``.

    Returns:
        The matching value, or ``default``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> state = gradchain.inject_hyperparams(gradchain.adam)(learning_rate=0.1).init(jnp.zeros(2))
        >>> gradchain.tree.get(state, "learning_rate")
        Array(0.1, dtype=float32)
    """
    _check_filtering("tree_get", filtering)
    found = tree_get_all_with_path(tree, key, filtering)
    if len(found) > 1:
        paths = [jax.tree_util.keystr(p) for p, _ in found]
        raise KeyError(
            f"tree_get: `key` {key!r} matches {len(found)} values in `tree` (at {paths}); pass "
            "`filtering` to select one."
        )
    return found[0][1] if found else default


def _entry_name(entry: Any) -> Any:
    if isinstance(entry, NamedTupleKey):
        return entry.name
    if isinstance(entry.key, (str, int)):
        return entry.key
    raise KeyError(f"tree_set: dict keys must be str or int to be set by name, got {entry.key!r}.")


def tree_set(tree: Any, filtering: Callable[[KeyPath, Any], bool] | None = None, /, **kwargs: Any) -> Any:
    """A copy of ``tree`` with the values under the given keys replaced.

    ::

        tree_set(state, learning_rate=0.1): every match of "learning_rate" becomes 0.1
        (where filtering(path, value) holds, if given)

    Keys are dict keys, NamedTuple fields or NamedTuple class names (the whole state is
    then replaced); see the module notes for how deep a replacement reaches. A
    ``KeyError`` is raised if some key matches nothing (after ``filtering``).

    Args:
        tree: The tree (e.g. an optimizer state).
        filtering: Optional predicate ``filtering(path, value) -> bool`` (positional).
        **kwargs: ``key=new_value`` pairs.

    Returns:
        A tree like ``tree``, with the new values.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> state = gradchain.inject_hyperparams(gradchain.adam)(learning_rate=0.1).init(jnp.zeros(2))
        >>> gradchain.tree.get(gradchain.tree.set(state, learning_rate=0.5), "learning_rate")
        0.5
    """
    _check_filtering("tree_set", filtering)
    for key in kwargs:
        if not tree_get_all_with_path(tree, key, filtering):
            extra = " that passes `filtering`" if filtering else ""
            raise KeyError(f"tree_set: no value in `tree` matches the key {key!r}{extra}.")
    keys = tuple(kwargs)
    holds = lambda node: _holds(node, keys)
    passes = lambda path, value: filtering is None or filtering(path, value)

    def replace(path: KeyPath, node: Any) -> Any:
        if not holds(node):
            return node
        if _is_namedtuple(node) and type(node).__name__ in kwargs and passes(path, node):
            return kwargs[type(node).__name__]
        new = {}
        for child_path, child in _children(path, node):
            name = _entry_name(child_path[-1])
            if name in kwargs and passes(child_path, child):
                new[name] = kwargs[name]
            elif isinstance(child, (dict, list, tuple)):
                new[name] = replace(child_path, child)
            else:
                new[name] = child
        return node._replace(**new) if _is_namedtuple(node) else new

    treedef = jax.tree.structure(tree, is_leaf=holds)
    return treedef.unflatten([replace(p, n) for p, n in _named_leaves(tree, holds)])
