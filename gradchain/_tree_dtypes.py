"""Shapes, dtypes and random keys of pytrees (Optax's ``optax.tree_utils`` constructors, casting
and random helpers).

`tree_zeros_like`, `tree_ones_like`, `tree_full_like` and `tree_batch_shape` build trees
shaped like a tree; `tree_cast`, `tree_cast_like` and `tree_dtype` read or change the leaves' dtypes;
`tree_split_key_like`, `tree_random_like` and `tree_unwrap_random_key_data` give every
leaf its own key or random values. Same keys, same samples as Optax.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "tree_batch_shape",
    "tree_cast",
    "tree_cast_like",
    "tree_dtype",
    "tree_full_like",
    "tree_ones_like",
    "tree_random_like",
    "tree_split_key_like",
    "tree_unwrap_random_key_data",
    "tree_zeros_like",
]

_HANDLERS = (None, "promote", "highest", "lowest")


def _dtype_or_none(fn: str, dtype: Any) -> Any:
    if dtype is None:
        return None
    try:
        return jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"{fn}: `dtype` must be a dtype or None, got {dtype!r}.") from None


def tree_cast(tree: Any, dtype: Any) -> Any:
    """Cast every leaf to ``dtype`` (``None``: return ``tree`` unchanged).

    Args:
        tree: A pytree of arrays.
        dtype: The target dtype, or ``None``.

    Returns:
        A tree like ``tree``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.cast({"a": jnp.array(1.0)}, jnp.bfloat16)
        {'a': Array(1, dtype=bfloat16)}
    """
    dtype = _dtype_or_none("tree_cast", dtype)
    if dtype is None:
        return tree
    return jax.tree.map(lambda x: jnp.asarray(x).astype(dtype), tree)


def tree_cast_like(tree: Any, other_tree: Any) -> Any:
    """Cast every leaf of ``tree`` to the dtype of the matching leaf of ``other_tree``.

    Leaves of ``other_tree`` without a ``dtype`` (Python numbers, ``None``) leave the
    matching leaf as it is.

    Args:
        tree: A pytree of arrays.
        other_tree: A pytree with the structure of ``tree``.

    Returns:
        A tree like ``tree``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.cast_like({"a": jnp.array(1.0)}, {"a": jnp.array(2, jnp.int32)})
        {'a': Array(1, dtype=int32)}
    """
    treedef = jax.tree.structure(tree)
    try:
        others = treedef.flatten_up_to(other_tree)
    except (ValueError, TypeError):
        raise ValueError(
            f"tree_cast_like: `other_tree` must have the tree structure of `tree`.\n"
            f"  tree:        {treedef}\n  other_tree:  {jax.tree.structure(other_tree)}"
        ) from None
    leaves = [
        jnp.asarray(x).astype(o.dtype) if hasattr(o, "dtype") else x
        for x, o in zip(treedef.flatten_up_to(tree), others)
    ]
    return treedef.unflatten(leaves)


def _promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """``jnp.promote_types`` (not canonicalized: int32 and uint32 give int64), whatever the
    promotion mode."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.promote_types(a, b)


def _lower(a: np.dtype, b: np.dtype) -> np.dtype:
    """The one of ``a``, ``b`` that promotes to the other (a partial order)."""
    p = _promote_types(a, b)
    if p == a:
        return b
    if p == b:
        return a
    raise ValueError(
        f"tree_dtype: the leaf dtypes {a} and {b} cannot be ordered (neither promotes to the other); "
        "use `mixed_dtype_handler='promote'`."
    )


def _higher(a: np.dtype, b: np.dtype) -> np.dtype:
    return b if _lower(a, b) == a else a


def tree_dtype(tree: Any, mixed_dtype_handler: str | None = None) -> Any:
    """The dtype of a tree's leaves.

    With leaves of several dtypes: ``None`` raises, ``"promote"`` gives their JAX
    promotion (``jnp.promote_types``, whatever the promotion mode), ``"highest"`` / ``"lowest"`` the dtype every
    other promotes to / that promotes to every other (an error where two dtypes are not
    ordered, such as int32 and uint32). A tree without leaves has JAX's default
    floating dtype.

    Args:
        tree: A pytree.
        mixed_dtype_handler: ``None``, ``"promote"``, ``"highest"`` or ``"lowest"``.

    Returns:
        A NumPy dtype.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tree = {"a": jnp.ones(1, jnp.float16), "b": jnp.ones(1, jnp.float32)}
        >>> gradchain.tree.dtype(tree, "lowest"), gradchain.tree.dtype(tree, "highest")
        (dtype('float16'), dtype('float32'))
    """
    if mixed_dtype_handler not in _HANDLERS:
        raise ValueError(
            f"tree_dtype: `mixed_dtype_handler` must be one of {list(_HANDLERS)}, got {mixed_dtype_handler!r}."
        )
    with_path = jax.tree_util.tree_leaves_with_path(tree)
    if not with_path:
        return jnp.asarray([]).dtype
    dtypes = [jnp.asarray(x).dtype for _, x in with_path]
    if mixed_dtype_handler is None:
        odd = [(jax.tree_util.keystr(p), d) for (p, _), d in zip(with_path, dtypes) if d != dtypes[0]]
        if odd:
            raise ValueError(
                f"tree_dtype: the leaves have several dtypes ({dtypes[0]} first, then {odd}); pass "
                "`mixed_dtype_handler` ('promote', 'highest' or 'lowest'), got None."
            )
        return dtypes[0]
    combine = {"promote": _promote_types, "highest": _higher, "lowest": _lower}[mixed_dtype_handler]
    return functools.reduce(combine, dtypes)


def _check_key(fn: str, rng_key: Any) -> None:
    is_key = isinstance(rng_key, jax.Array | np.ndarray) and (
        jax.dtypes.issubdtype(rng_key.dtype, jax.dtypes.prng_key) or rng_key.dtype == np.uint32
    )
    if not is_key:
        raise TypeError(
            f"{fn}: `rng_key` must be a JAX random key (jax.random.key or jax.random.PRNGKey), got {rng_key!r}."
        )


def tree_split_key_like(rng_key: Any, target_tree: Any) -> Any:
    """One key per leaf of ``target_tree``: ``jax.random.split(rng_key, num_leaves)``.

    Args:
        rng_key: A JAX random key.
        target_tree: The tree whose structure the keys take.

    Returns:
        A tree of keys with the structure of ``target_tree``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> keys = gradchain.tree.split_key_like(jax.random.key(0), {"a": 0.0, "b": 0.0})
        >>> sorted(keys)
        ['a', 'b']
    """
    _check_key("tree_split_key_like", rng_key)
    treedef = jax.tree.structure(target_tree)
    return jax.tree.unflatten(treedef, list(jax.random.split(rng_key, treedef.num_leaves)))


def _takes_sharding(sampler: Callable) -> bool:
    try:
        return "out_sharding" in inspect.signature(sampler).parameters
    except (TypeError, ValueError):
        return False


def tree_random_like(
    rng_key: Any,
    target_tree: Any,
    sampler: Callable[..., Any] = jax.random.normal,
    dtype: Any = None,
) -> Any:
    """Random arrays shaped like every leaf, each drawn with its own key.

    ::

        keys = split(rng_key, num_leaves)
        out_i = sampler(keys[i], x_i.shape, dtype or x_i.dtype)

    (with ``out_sharding=`` the leaf's sharding when ``sampler`` takes it).

    Args:
        rng_key: A JAX random key.
        target_tree: A pytree of arrays.
        sampler: ``sampler(key, shape, dtype)``, by default ``jax.random.normal``.
        dtype: The dtype to sample in; ``None``: each leaf's dtype.

    Returns:
        A tree like ``target_tree``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> noise = gradchain.tree.random_like(jax.random.key(0), {"w": jnp.zeros((2, 3))})
        >>> noise["w"].shape
        (2, 3)
    """
    fn = "tree_random_like"
    _check_key(fn, rng_key)
    if not callable(sampler):
        raise TypeError(f"{fn}: `sampler` must be callable, got {sampler!r}.")
    dtype = _dtype_or_none(fn, dtype)
    keys = tree_split_key_like(rng_key, target_tree)
    sharded = _takes_sharding(sampler)

    def leaf(x, key):
        x = jnp.asarray(x)
        dt = x.dtype if dtype is None else dtype
        if sharded:
            return sampler(key, x.shape, dt, out_sharding=jax.typeof(x).sharding)
        return sampler(key, x.shape, dt)

    return jax.tree.map(leaf, target_tree, keys)


def tree_unwrap_random_key_data(input_tree: Any) -> Any:
    """Replace every typed random key (``jax.random.key``) by its raw ``uint32`` data.

    Args:
        input_tree: A pytree of arrays and keys.

    Returns:
        The tree with ``jax.random.key_data(k)`` in place of each key ``k``.

    Examples:
        >>> import jax, gradchain
        >>> gradchain.tree.unwrap_random_key_data({"k": jax.random.key(0)})
        {'k': Array([0, 0], dtype=uint32)}
    """

    def leaf(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(x)
        return x

    return jax.tree.map(leaf, input_tree)


def _check_shape(fn: str, shape: Any) -> tuple:
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise TypeError(f"{fn}: `shape` must be a tuple of non-negative ints, got {shape!r}.")
    return tuple(int(d) for d in shape)


def tree_batch_shape(tree: Any, shape: tuple[int, ...] = ()) -> Any:
    """Broadcast every leaf to leading batch dimensions ``shape``.

    ::

        out_i = broadcast_to(x_i, (*shape, *x_i.shape))

    Args:
        tree: A pytree.
        shape: The leading dimensions to add.

    Returns:
        A tree like ``tree``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.batch_shape({"a": jnp.zeros(3)}, (2,))["a"].shape
        (2, 3)
    """
    shape = _check_shape("tree_batch_shape", shape)
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (*shape, *jnp.shape(x))), tree)


def tree_zeros_like(tree: Any, dtype: Any = None) -> Any:
    """Zeros shaped like every leaf (in ``dtype``, else the leaf's dtype).

    Args:
        tree: A pytree.
        dtype: Optional dtype of the result.

    Returns:
        A tree like ``tree``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.zeros_like({"a": jnp.ones(2)})
        {'a': Array([0., 0.], dtype=float32)}
    """
    _dtype_or_none("tree_zeros_like", dtype)
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def tree_ones_like(tree: Any, dtype: Any = None) -> Any:
    """Ones shaped like every leaf (in ``dtype``, else the leaf's dtype).

    Args:
        tree: A pytree.
        dtype: Optional dtype of the result.

    Returns:
        A tree like ``tree``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.ones_like({"a": jnp.zeros(2, jnp.int32)})
        {'a': Array([1, 1], dtype=int32)}
    """
    _dtype_or_none("tree_ones_like", dtype)
    return jax.tree.map(lambda x: jnp.ones_like(x, dtype=dtype), tree)


def tree_full_like(tree: Any, fill_value: Any, dtype: Any = None) -> Any:
    """``fill_value`` shaped like every leaf (in ``dtype``, else the leaf's dtype).

    Args:
        tree: A pytree.
        fill_value: The value (a scalar, or an array broadcastable to each leaf).
        dtype: Optional dtype of the result.

    Returns:
        A tree like ``tree``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.tree.full_like({"a": jnp.zeros(2)}, 3.0)
        {'a': Array([3., 3.], dtype=float32)}
    """
    _dtype_or_none("tree_full_like", dtype)
    if fill_value is None or isinstance(fill_value, (str, bytes)):
        raise TypeError(f"tree_full_like: `fill_value` must be a number or array, got {fill_value!r}.")
    return jax.tree.map(lambda x: jnp.full_like(x, fill_value, dtype=dtype), tree)
