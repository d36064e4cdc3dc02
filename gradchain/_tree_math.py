"""Arithmetic, reductions and norms over pytrees (Optax's ``optax.tree_utils`` math).

Every function maps over the leaves of its trees with NumPy semantics: mixed dtypes
promote and shapes broadcast by JAX's *standard* rules, whatever the global
``jax_numpy_dtype_promotion`` / ``jax_numpy_rank_promotion`` settings (so they work
under ``"strict"``/``"raise"`` and give Optax's dtypes and numbers bit for bit).
Trees that must match (``tree_add(x, y)``) are checked first: a mismatch raises a
`ValueError` naming the function and the argument, not a bare tree-structure error.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "tree_add",
    "tree_add_scale",
    "tree_allclose",
    "tree_clip",
    "tree_conj",
    "tree_div",
    "tree_max",
    "tree_min",
    "tree_mul",
    "tree_norm",
    "tree_real",
    "tree_scale",
    "tree_size",
    "tree_sub",
    "tree_sum",
    "tree_vdot",
    "tree_where",
]


def _numpy_rules(f: Callable) -> Callable:
    """Run ``f`` under JAX's standard dtype promotion and NumPy broadcasting (Optax's
    arithmetic), also where the caller switched on strict promotion."""

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            return f(*args, **kwargs)

    return wrapped


def _leaves_up_to(fn: str, name: str, treedef: Any, other: Any) -> list:
    """The subtrees of ``other`` at the leaves of ``treedef`` (a mismatch names ``name``)."""
    try:
        return treedef.flatten_up_to(other)
    except (ValueError, TypeError):
        raise ValueError(
            f"{fn}: `{name}` must have the tree structure of the first tree.\n"
            f"  first:  {treedef}\n  {name}:  {jax.tree.structure(other)}"
        ) from None


def _map(fn: str, f: Callable, first: Any, others: dict[str, Any], **kw: Any) -> Any:
    """``jax.tree.map(f, first, *others)``, with each other tree checked against ``first``."""
    treedef = jax.tree.structure(first, **kw)
    for name, other in others.items():
        _leaves_up_to(fn, name, treedef, other)
    return jax.tree.map(f, first, *others.values(), **kw)


def _check_scalar_like(fn: str, name: str, value: Any) -> None:
    if value is None or isinstance(value, (str, bytes)) or callable(value):
        raise TypeError(f"{fn}: `{name}` must be a scalar number or array, got {value!r}.")
    if np.ndim(value) != 0:
        raise ValueError(f"{fn}: `{name}` must be a scalar, got an array of shape {np.shape(value)}.")


@_numpy_rules
def tree_add(tree_x: Any, tree_y: Any, *other_trees: Any) -> Any:
    """Add two (or more) trees leaf by leaf.

    ::

        out = tree_x + tree_y + other_trees[0] + ...

    Args:
        tree_x: A pytree.
        tree_y: A pytree with the structure of ``tree_x``.
        *other_trees: More pytrees with that structure.

    Returns:
        The sum, a tree like ``tree_x``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.add({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([3.0, 4.0])})
        {'a': Array([4., 6.], dtype=float32)}
    """
    others = {"tree_y": tree_y, **{f"other_trees[{i}]": t for i, t in enumerate(other_trees)}}
    return _map("tree_add", lambda *xs: sum(xs[1:], xs[0]), tree_x, others)


@_numpy_rules
def tree_sub(tree_x: Any, tree_y: Any) -> Any:
    """Subtract two trees leaf by leaf: ``out = tree_x - tree_y``.

    Args:
        tree_x: A pytree.
        tree_y: A pytree with the structure of ``tree_x``.

    Returns:
        The difference, a tree like ``tree_x``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.sub(jnp.array([3.0, 4.0]), jnp.array([1.0, 1.0]))
        Array([2., 3.], dtype=float32)
    """
    return _map("tree_sub", operator.sub, tree_x, {"tree_y": tree_y})


@_numpy_rules
def tree_mul(tree_x: Any, tree_y: Any) -> Any:
    """Multiply two trees leaf by leaf: ``out = tree_x * tree_y``.

    Args:
        tree_x: A pytree.
        tree_y: A pytree with the structure of ``tree_x``.

    Returns:
        The product, a tree like ``tree_x``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.mul(jnp.array([3.0, 4.0]), jnp.array([2.0, 0.5]))
        Array([6., 2.], dtype=float32)
    """
    return _map("tree_mul", operator.mul, tree_x, {"tree_y": tree_y})


@_numpy_rules
def tree_div(tree_x: Any, tree_y: Any) -> Any:
    """Divide two trees leaf by leaf: ``out = tree_x / tree_y``.

    Args:
        tree_x: A pytree.
        tree_y: A pytree with the structure of ``tree_x``.

    Returns:
        The quotient, a tree like ``tree_x``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.div(jnp.array([3.0, 4.0]), jnp.array([2.0, 0.5]))
        Array([1.5, 8. ], dtype=float32)
    """
    return _map("tree_div", operator.truediv, tree_x, {"tree_y": tree_y})


@_numpy_rules
def tree_scale(scalar: Any, tree: Any) -> Any:
    """Multiply every leaf by one scalar: ``out = scalar * tree``.

    Args:
        scalar: A scalar (number, 0-d array or tracer).
        tree: A pytree.

    Returns:
        A tree like ``tree``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.scale(2.0, {"a": jnp.array([1.0, -1.0])})
        {'a': Array([ 2., -2.], dtype=float32)}
    """
    _check_scalar_like("tree_scale", "scalar", scalar)
    return jax.tree.map(lambda x: scalar * x, tree)


@_numpy_rules
def tree_add_scale(tree_x: Any, scalar: Any, tree_y: Any) -> Any:
    """Add a scaled tree: ``out = tree_x + scalar * tree_y`` (``None`` leaves of ``tree_x`` stay ``None``).

    Args:
        tree_x: A pytree.
        scalar: A scalar (number, 0-d array or tracer).
        tree_y: A pytree with the structure of ``tree_x``.

    Returns:
        A tree like ``tree_x``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.add_scale(jnp.array([1.0, 1.0]), 0.5, jnp.array([2.0, 4.0]))
        Array([2., 3.], dtype=float32)
    """
    _check_scalar_like("tree_add_scale", "scalar", scalar)
    s = jnp.asarray(scalar)
    return _map(
        "tree_add_scale",
        lambda x, y: None if x is None else x + s * y,
        tree_x,
        {"tree_y": tree_y},
        is_leaf=lambda x: x is None,
    )


def _vdot_leaf(fn: str, path: Any, a: Any, b: Any) -> jax.Array:
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"{fn}: the leaves at {jax.tree_util.keystr(path) or '(root)'} must have one shape, "
            f"got {a.shape} in `tree_x` and {b.shape} in `tree_y`."
        )
    if jnp.issubdtype(a.dtype, jnp.complexfloating):
        a = jnp.conj(a)
    kwargs = {}
    mesh = jax.typeof(a).sharding.mesh
    if mesh.are_all_axes_explicit:  # a replicated scalar out of an explicitly sharded contraction
        kwargs["out_sharding"] = jax.sharding.NamedSharding(mesh, jax.P())
    return jnp.tensordot(a, b, a.ndim, precision=jax.lax.Precision.HIGHEST, **kwargs)


@_numpy_rules
def tree_vdot(tree_x: Any, tree_y: Any) -> Any:
    """The inner product of two trees, conjugating ``tree_x`` (at the highest matmul precision).

    ::

        out = sum_i sum(conj(x_i) * y_i)

    Args:
        tree_x: A pytree.
        tree_y: A pytree with the structure and leaf shapes of ``tree_x``.

    Returns:
        A scalar (the integer ``0`` for trees without leaves).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.vdot({"a": jnp.array([1, 2]), "b": jnp.array([1, 2])},
        ...                     {"a": jnp.array([-1, -1]), "b": jnp.array([1, 1])})
        Array(0, dtype=int32)
    """
    x_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree_x)
    y_leaves = _leaves_up_to("tree_vdot", "tree_y", treedef, tree_y)
    vdots = [_vdot_leaf("tree_vdot", p, x, y) for (p, x), y in zip(x_leaves, y_leaves)]
    return functools.reduce(operator.add, vdots, 0)


@_numpy_rules
def tree_sum(tree: Any, associative_reduction: bool = False) -> Any:
    """The sum of every element of every leaf.

    ::

        out = sum_i sum(x_i)

    Args:
        tree: A pytree.
        associative_reduction: Sum the per-leaf sums as a balanced tree
            (``jax.tree.reduce_associative``: faster to compile for large trees, a
            different rounding order) instead of left to right.

    Returns:
        A scalar (the integer ``0`` for a tree without leaves).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.sum({"a": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)})
        Array(6., dtype=float32)
    """
    if not isinstance(associative_reduction, (bool, np.bool_)):
        raise TypeError(f"tree_sum: `associative_reduction` must be a bool, got {associative_reduction!r}.")
    sums = jax.tree.map(jnp.sum, tree)
    if associative_reduction:
        return jax.tree.reduce_associative(operator.add, sums, identity=0)
    return jax.tree.reduce(operator.add, sums, initializer=0)


def _extreme(reduce_leaf: Callable, combine: Callable, start: float, tree: Any) -> Any:
    parts = jax.tree.map(lambda x: None if jnp.size(x) == 0 else reduce_leaf(x), tree)
    return jax.tree.reduce(combine, parts, initializer=start)


@_numpy_rules
def tree_max(tree: Any) -> Any:
    """The largest element of all leaves (empty leaves are skipped).

    ::

        out = max(-inf, max_i max(x_i))

    Args:
        tree: A pytree of real arrays.

    Returns:
        A scalar (``-inf`` for a tree without elements).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.max({"a": jnp.array([1.0, 5.0]), "b": jnp.array(3.0)})
        Array(5., dtype=float32)
    """
    return _extreme(jnp.max, jnp.maximum, -float("inf"), tree)


@_numpy_rules
def tree_min(tree: Any) -> Any:
    """The smallest element of all leaves (empty leaves are skipped).

    ::

        out = min(inf, min_i min(x_i))

    Args:
        tree: A pytree of real arrays.

    Returns:
        A scalar (``inf`` for a tree without elements).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.min({"a": jnp.array([1.0, 5.0]), "b": jnp.array(-3.0)})
        Array(-3., dtype=float32)
    """
    return _extreme(jnp.min, jnp.minimum, float("inf"), tree)


def tree_size(tree: Any) -> int:
    """The number of elements of all leaves together, a Python int.

    Args:
        tree: A pytree.

    Returns:
        ``sum_i size(x_i)``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.size({"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)})
        16
    """
    return sum(int(jnp.size(x)) for x in jax.tree.leaves(tree))


def tree_conj(tree: Any) -> Any:
    """The complex conjugate of every leaf (real leaves unchanged).

    Args:
        tree: A pytree.

    Returns:
        A tree like ``tree``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.conj(jnp.array([1 + 2j]))
        Array([1.-2.j], dtype=complex64)
    """
    return jax.tree.map(jnp.conj, tree)


def tree_real(tree: Any) -> Any:
    """The real part of every leaf.

    Args:
        tree: A pytree.

    Returns:
        A tree like ``tree``, with real leaves.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.real(jnp.array([1 + 2j]))
        Array([1.], dtype=float32)
    """
    return jax.tree.map(jnp.real, tree)


def _abs_sq(x: Any) -> jax.Array:
    x = jnp.asarray(x)
    return jnp.square(x.real) + jnp.square(x.imag)


@_numpy_rules
def tree_norm(tree: Any, ord: Any = None, squared: bool = False) -> jax.Array:
    """The vector norm of all leaves together, as if raveled into one vector.

    ::

        ord = None or 2:  out = sqrt(sum_i sum(|x_i|**2))
        ord = 1:          out = sum_i sum(|x_i|)
        ord = inf:        out = max_i max(|x_i|)
        squared:          out**2 (the sum of squares itself for ord 2)

    Args:
        tree: A pytree.
        ord: The order: ``None``, ``1``, ``2`` or ``inf`` (``jnp.inf``, ``"inf"``,
            ``"infinity"``).
        squared: Return the norm squared.

    Returns:
        A scalar array.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tree = {"a": jnp.array([3.0]), "b": jnp.array([-4.0])}
        >>> gradchain.tree.norm(tree), gradchain.tree.norm(tree, ord=1), gradchain.tree.norm(tree, "inf")
        (Array(5., dtype=float32), Array(7., dtype=float32), Array(4., dtype=float32))
    """
    if not isinstance(squared, (bool, np.bool_)):
        raise TypeError(f"tree_norm: `squared` must be a bool, got {squared!r}.")
    is_str = isinstance(ord, str)
    if ord is None or (not is_str and ord == 2):
        sq = tree_sum(jax.tree.map(_abs_sq, tree))
        return jnp.array(sq if squared else jnp.sqrt(sq))
    if not is_str and ord == 1:
        out = tree_sum(jax.tree.map(jnp.abs, tree))
    elif ord in ("inf", "infinity") or (not is_str and ord == jnp.inf):
        out = tree_max(jax.tree.map(jnp.abs, tree))
    else:
        raise ValueError(f"tree_norm: `ord` must be None, 1, 2 or inf, got {ord!r}.")
    return jnp.array(_abs_sq(out) if squared else out)


@_numpy_rules
def tree_clip(tree: Any, min_value: Any = None, max_value: Any = None) -> Any:
    """Clip every element into ``[min_value, max_value]`` (``None``: no bound on that side).

    ::

        out_i = min(max(x_i, min_value), max_value)

    Args:
        tree: A pytree of real arrays.
        min_value: Optional lower bound.
        max_value: Optional upper bound.

    Returns:
        A tree like ``tree``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.clip(jnp.array([-2.0, 0.5, 2.0]), -1.0, 1.0)
        Array([-1. ,  0.5,  1. ], dtype=float32)
    """
    for name, v in (("min_value", min_value), ("max_value", max_value)):
        if isinstance(v, (str, bytes)) or (callable(v) and not hasattr(v, "dtype")):
            raise TypeError(f"tree_clip: `{name}` must be a number, an array or None, got {v!r}.")
    return jax.tree.map(lambda x: jnp.clip(x, min_value, max_value), tree)


@_numpy_rules
def tree_where(condition: Any, tree_x: Any, tree_y: Any) -> Any:
    """Select leaf by leaf: ``out_i = where(condition, x_i, y_i)``.

    Args:
        condition: A boolean (scalar, or an array broadcastable to every leaf).
        tree_x: The values where ``condition`` holds.
        tree_y: The values elsewhere, a tree with the structure of ``tree_x``.

    Returns:
        A tree like ``tree_x``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.where(jnp.array(True), {"a": jnp.ones(2)}, {"a": jnp.zeros(2)})
        {'a': Array([1., 1.], dtype=float32)}
    """
    return _map("tree_where", lambda x, y: jnp.where(condition, x, y), tree_x, {"tree_y": tree_y})


@_numpy_rules
def tree_allclose(a: Any, b: Any, rtol: Any = 1e-05, atol: Any = 1e-08, equal_nan: bool = False) -> Any:
    """Whether two trees are equal within a tolerance, element by element.

    ::

        out = all_i allclose(a_i, b_i):  |a - b| <= atol + rtol * |b|

    Args:
        a: A pytree.
        b: A pytree with the structure of ``a``.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        equal_nan: Count NaNs in the same place as equal.

    Returns:
        A boolean scalar (``True`` for trees without leaves).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> bool(gradchain.tree.allclose({"a": jnp.array(1.0)}, {"a": jnp.array(1.0 + 1e-7)}))
        True
    """
    close = _map(
        "tree_allclose",
        lambda x, y: jnp.allclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan),
        a,
        {"b": b},
    )
    return functools.reduce(operator.and_, jax.tree.leaves(close), True)
