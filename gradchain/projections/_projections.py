"""Euclidean projections of pytrees onto convex sets (Optax's ``optax.projections``).

A projection returns the point of a set nearest to the input, in the Euclidean norm of
the whole tree (all leaves flattened into one vector)::

    proj_C(x) = argmin_{y in C} ||x - y||_2^2

The output has the input's tree structure, leaf shapes and dtypes. Arithmetic runs in
at least float32 (bfloat16/float16 leaves are computed in float32 and rounded once);
Python-number leaves come back as arrays. Leaves must be floating point: integer and
boolean leaves raise a `TypeError` (Optax promotes them silently). Set parameters
(``scale``, ``b``, bounds) accept Python numbers, arrays and tracers; concrete values
are validated eagerly.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._numerics import abs_sq, as_leaf, compute_dtype, cond, hp, is_tracer, promote
from gradchain._validate import check_nonnegative, check_positive, check_scalar

__all__ = [
    "projection_box",
    "projection_halfspace",
    "projection_hypercube",
    "projection_hyperplane",
    "projection_l1_ball",
    "projection_l1_sphere",
    "projection_l2_ball",
    "projection_l2_sphere",
    "projection_linf_ball",
    "projection_non_negative",
    "projection_simplex",
    "projection_vector",
]


# ----------------------------------------------------------------------------- helpers
def _leaves(fn: str, name: str, tree: Any) -> tuple[list, Any]:
    """The leaves of ``tree`` as arrays (floating point only) and its treedef."""
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    leaves = []
    for path, x in paths_leaves:
        x = jnp.asarray(as_leaf(x))
        dtype = getattr(x, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{fn}: `{name}` must hold real floating-point arrays, got "
                f"{dtype or type(x).__name__} at leaf {jax.tree_util.keystr(path) or '(root)'}."
            )
        leaves.append(x)
    return leaves, treedef


def _dtype(leaves: list) -> np.dtype:
    """The dtype the whole-tree arithmetic runs in: the leaves' promoted dtype, >= float32."""
    return jnp.dtype(
        jax.dtypes.canonicalize_dtype(promote(jnp.float32, *(compute_dtype(x.dtype) for x in leaves)))
    )


def _flatten(leaves: list, dtype) -> jax.Array:
    if not leaves:
        return jnp.zeros((0,), dtype)
    return jnp.concatenate([jnp.ravel(x).astype(dtype) for x in leaves])


def _unflatten(vector: jax.Array, leaves: list, treedef) -> Any:
    out, start = [], 0
    for x in leaves:
        size = math.prod(x.shape)
        out.append(vector[start : start + size].reshape(x.shape).astype(x.dtype))
        start += size
    return jax.tree.unflatten(treedef, out)


def _map(treedef, leaves: list, f) -> Any:
    """Apply ``f`` leafwise in the compute dtype; each result keeps its leaf's dtype."""
    return jax.tree.unflatten(treedef, [f(x.astype(compute_dtype(x.dtype))).astype(x.dtype) for x in leaves])


def _sum(terms: list, dtype) -> jax.Array:
    total = jnp.zeros((), dtype)
    for term in terms:
        total = total + term
    return total


def _require_elements(fn: str, name: str, leaves: list) -> int:
    n = sum(math.prod(x.shape) for x in leaves)
    if n == 0:
        raise ValueError(f"{fn}: `{name}` must hold at least one element (the set is empty), got none.")
    return n


def _is_concrete(x: Any) -> bool:
    return not is_tracer(x)


def _simplex(v: jax.Array, z: Any) -> jax.Array:
    """Project the vector ``v`` onto ``{w >= 0, sum(w) = z}`` (sort-based, z > 0).

    On the scaled vector ``u = v / z`` sorted in decreasing order, the number of nonzero
    outputs is ``rho = #{k : u_(k) > (sum_{i<=k} u_(i) - 1) / k}`` and the threshold is
    ``tau = (sum_{i<=rho} u_(i) - 1) / rho``; then ``w = z * max(u - tau, 0)``.
    """
    u = v / z
    sorted_u = jnp.sort(u)[::-1]
    partial = jnp.cumsum(sorted_u)
    k = jnp.arange(1, u.shape[0] + 1, dtype=u.dtype)
    # (the condition holds for k = 1 and is monotone in k, so it counts a prefix)
    rho = jnp.count_nonzero(1 / k + (sorted_u - partial / k) > 0)
    tau = (partial[rho - 1] - 1) / rho.astype(u.dtype)
    return z * jnp.maximum(u - tau, 0)


def _bound_leaves(fn: str, name: str, bound: Any, leaves: list, treedef) -> list:
    """``bound`` (a scalar/array for every leaf, or a tree shaped like ``tree``), per leaf."""
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(bound)):
        per_leaf = [bound] * len(leaves)
    elif jax.tree.structure(bound) == treedef:
        per_leaf = jax.tree.leaves(bound)
    else:
        raise ValueError(
            f"{fn}: `{name}` must be a number, an array, or a tree with the structure of `tree`, got "
            f"structure {jax.tree.structure(bound)}; `tree` has {treedef}."
        )
    out = []
    for b, x in zip(per_leaf, leaves):
        if np.ndim(b) == 0:
            check_scalar(fn, name, b, allow_inf=True)
        else:
            if not jnp.issubdtype(jnp.result_type(b), jnp.floating) and not jnp.issubdtype(
                jnp.result_type(b), jnp.integer
            ):
                raise TypeError(f"{fn}: `{name}` must hold real numbers, got dtype {jnp.result_type(b)}.")
            try:
                fits = np.broadcast_shapes(np.shape(b), x.shape) == x.shape
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(
                    f"{fn}: `{name}` must broadcast to the leaf shape {x.shape}, got shape {np.shape(b)}."
                )
            if _is_concrete(b) and np.isnan(np.asarray(b, np.float64)).any():
                raise ValueError(f"{fn}: `{name}` must not contain NaN, got {b!r}.")
        out.append(b)
    return out


def _box(fn, tree, lower, upper, lower_name="lower", upper_name="upper"):
    leaves, treedef = _leaves(fn, "tree", tree)
    lows = _bound_leaves(fn, lower_name, lower, leaves, treedef)
    highs = _bound_leaves(fn, upper_name, upper, leaves, treedef)
    out = []
    for x, lo, hi in zip(leaves, lows, highs):
        if _is_concrete(lo) and _is_concrete(hi):
            bad = np.asarray(lo, np.float64) > np.asarray(hi, np.float64)
            if bad.any() and lower_name == "0":  # projection_hypercube
                raise ValueError(f"{fn}: `scale` must be >= 0 everywhere, got {hi!r}.")
            if bad.any():
                raise ValueError(
                    f"{fn}: `{lower_name}` must be <= `{upper_name}` everywhere (else the box is empty), "
                    f"got {lower_name}={lo!r} and {upper_name}={hi!r}."
                )
        dtype = compute_dtype(x.dtype)

        def bound(b, x=x, dtype=dtype):
            return jnp.broadcast_to(jnp.asarray(hp(b, dtype), dtype), x.shape)

        out.append(jnp.clip(x.astype(dtype), bound(lo), bound(hi)).astype(x.dtype))
    return jax.tree.unflatten(treedef, out)


def _pair(fn: str, x: Any, a: Any) -> tuple[list, list, Any, np.dtype]:
    """Leaves of ``x`` and ``a`` (same structure and shapes) and their compute dtype."""
    x_leaves, treedef = _leaves(fn, "x", x)
    a_leaves, a_treedef = _leaves(fn, "a", a)
    if a_treedef != treedef:
        raise ValueError(f"{fn}: `a` must have the tree structure of `x`.\n  x: {treedef}\n  a: {a_treedef}")
    for path_x, xi, ai in zip(jax.tree_util.tree_flatten_with_path(x)[0], x_leaves, a_leaves):
        if xi.shape != ai.shape:
            raise ValueError(
                f"{fn}: `a` must have the leaf shapes of `x`, got {ai.shape} where `x` has "
                f"{xi.shape} at leaf {jax.tree_util.keystr(path_x[0]) or '(root)'}."
            )
    return x_leaves, a_leaves, treedef, _dtype(x_leaves + a_leaves)


def _vdot(xs: list, ys: list, dtype) -> jax.Array:
    return _sum([jnp.sum(x.astype(dtype) * y.astype(dtype)) for x, y in zip(xs, ys)], dtype)


def _add_scaled(x_leaves, a_leaves, treedef, c, dtype) -> Any:
    """``x + c * a`` leafwise, each result in its ``x`` leaf's dtype."""
    return jax.tree.unflatten(
        treedef,
        [(x.astype(dtype) + c * a.astype(dtype)).astype(x.dtype) for x, a in zip(x_leaves, a_leaves)],
    )


def _affine_step(fn: str, num: jax.Array, aa: jax.Array, b: Any, kind: str) -> jax.Array:
    """``num / <a, a>``; for ``a = 0``: 0 if the set is the whole space, else an error (NaN under jit)."""
    if _is_concrete(aa) and _is_concrete(num) and float(aa) == 0 and float(num) != 0:
        raise ValueError(
            f"{fn}: `a` must be nonzero: with a = 0 the {kind} is empty for b = {b!r}, got a zero tree."
        )
    nonzero = aa > 0
    step = num / jnp.where(nonzero, aa, jnp.ones_like(aa))
    return jnp.where(nonzero, step, jnp.where(num == 0, jnp.zeros_like(num), jnp.full_like(num, jnp.nan)))


# ------------------------------------------------------------------- public functions
def projection_non_negative(tree: Any) -> Any:
    """Project onto the non-negative orthant: ``max(x, 0)`` leafwise.

    ::

        proj(x) = argmin_{y >= 0} ||x - y||^2 = max(x, 0)

    Args:
        tree: The tree to project.

    Returns:
        The projected tree, with the structure, shapes and dtypes of ``tree``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_non_negative({"w": jnp.array([-1.0, 2.0])})
        {'w': Array([0., 2.], dtype=float32)}
    """
    leaves, treedef = _leaves("projection_non_negative", "tree", tree)
    return _map(treedef, leaves, lambda x: jnp.maximum(x, 0))


def projection_box(tree: Any, lower: Any, upper: Any) -> Any:
    """Project onto the box ``lower <= y <= upper``: ``clip(x, lower, upper)`` leafwise.

    ::

        proj(x) = argmin_{lower <= y <= upper} ||x - y||^2 = min(max(x, lower), upper)

    Args:
        tree: The tree to project.
        lower: Lower bound: a number or array applied to every leaf (it must broadcast
            to each leaf's shape), or a tree with the structure of ``tree``. ``-inf``
            allowed.
        upper: Upper bound, as ``lower``; ``lower <= upper`` everywhere.

    Returns:
        The projected tree, with the structure, shapes and dtypes of ``tree``. (Optax
        accepts scalar bounds only when ``tree`` is a single array.)

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_box({"w": jnp.array([-1.0, 0.5, 2.0])}, -0.5, 1.0)
        {'w': Array([-0.5,  0.5,  1. ], dtype=float32)}
    """
    return _box("projection_box", tree, lower, upper)


def projection_hypercube(tree: Any, scale: Any = 1) -> Any:
    """Project onto the hypercube ``0 <= y <= scale`` (`projection_box` with ``lower = 0``).

    ::

        proj(x) = min(max(x, 0), scale)

    Args:
        tree: The tree to project.
        scale: Side of the hypercube, ``>= 0``: a number or array for every leaf, or a
            tree with the structure of ``tree``.

    Returns:
        The projected tree, with the structure, shapes and dtypes of ``tree``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_hypercube(jnp.array([-1.0, 0.5, 2.0]))
        Array([0. , 0.5, 1. ], dtype=float32)
    """
    return _box("projection_hypercube", tree, 0, scale, "0", "scale")


def projection_simplex(tree: Any, scale: Any = 1) -> Any:
    """Project onto the simplex ``{y >= 0, sum(y) = scale}`` of the whole tree.

    ::

        proj(x) = max(x - tau, 0),  tau such that sum(max(x - tau, 0)) = scale

    ``tau`` is found by sorting (Held, Wolfe & Crowder; Duchi et al.): with ``u`` the
    flattened tree in decreasing order, ``rho = max{k : u_k > (u_1 + ... + u_k - scale) / k}``
    and ``tau = (u_1 + ... + u_rho - scale) / rho``.

    Args:
        tree: The tree to project (at least one element).
        scale: The sum of the projection, ``> 0`` (1: the probability simplex).

    Returns:
        The projected tree, with the structure, shapes and dtypes of ``tree``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_simplex({"w": jnp.array([1.5, 1.0]), "b": 0.25})
        {'b': Array(0., dtype=float32), 'w': Array([0.75, 0.25], dtype=float32)}

    References:
        Held, Wolfe & Crowder, "Validation of subgradient optimization", Mathematical
        Programming 1974; Duchi et al., "Efficient Projections onto the l1-Ball for
        Learning in High Dimensions", ICML 2008.
    """
    fn = "projection_simplex"
    check_positive(fn, "scale", scale)
    leaves, treedef = _leaves(fn, "tree", tree)
    _require_elements(fn, "tree", leaves)
    dtype = _dtype(leaves)
    return _unflatten(_simplex(_flatten(leaves, dtype), hp(scale, dtype)), leaves, treedef)


def _l1_sphere(leaves, treedef, scale, dtype):
    v = _flatten(leaves, dtype)
    sign = jnp.where(v >= 0, 1, -1).astype(dtype)  # sign(0) = +1: zeros may receive mass
    return _unflatten(sign * _simplex(jnp.abs(v), hp(scale, dtype)), leaves, treedef)


def projection_l1_sphere(tree: Any, scale: Any = 1) -> Any:
    """Project onto the l1 sphere ``{||y||_1 = scale}``: the simplex projection of ``|x|``, signed.

    ::

        proj(x) = s * proj_simplex(|x|, scale),   s = sign(x), with s = +1 where x = 0

    Args:
        tree: The tree to project (at least one element).
        scale: The radius, ``> 0``.

    Returns:
        The projected tree, with the structure, shapes and dtypes of ``tree``. Where
        ``x`` is 0 inside the ball the projection may be positive there; Optax uses
        ``sign(0) = 0`` and returns a point off the sphere in that case.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_l1_sphere(jnp.array([0.2, 0.0, -0.2]))
        Array([ 0.4,  0.2, -0.4], dtype=float32)
    """
    fn = "projection_l1_sphere"
    check_positive(fn, "scale", scale)
    leaves, treedef = _leaves(fn, "tree", tree)
    _require_elements(fn, "tree", leaves)
    return _l1_sphere(leaves, treedef, scale, _dtype(leaves))


def projection_l1_ball(tree: Any, scale: Any = 1) -> Any:
    """Project onto the l1 ball ``{||y||_1 <= scale}``.

    ::

        proj(x) = x                              if ||x||_1 <= scale
        proj(x) = projection_l1_sphere(x, scale) otherwise

    Args:
        tree: The tree to project.
        scale: The radius, ``> 0``.

    Returns:
        The projected tree, with the structure, shapes and dtypes of ``tree``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_l1_ball({"w": jnp.array([1.5, 1.0]), "b": 0.25})
        {'b': Array(0., dtype=float32), 'w': Array([0.75, 0.25], dtype=float32)}

    References:
        Duchi et al., "Efficient Projections onto the l1-Ball for Learning in High
        Dimensions", ICML 2008.
    """
    fn = "projection_l1_ball"
    check_positive(fn, "scale", scale)
    leaves, treedef = _leaves(fn, "tree", tree)
    dtype = _dtype(leaves)
    norm = _sum([jnp.sum(jnp.abs(x.astype(dtype))) for x in leaves], dtype)
    return cond(
        norm <= hp(scale, dtype),
        lambda ls: jax.tree.unflatten(treedef, ls),
        lambda ls: _l1_sphere(ls, treedef, scale, dtype),
        leaves,
    )


def _sq_norm(leaves, dtype) -> jax.Array:
    return _sum([jnp.sum(abs_sq(x.astype(dtype))) for x in leaves], dtype)


def projection_l2_sphere(tree: Any, scale: Any = 1) -> Any:
    """Project onto the l2 sphere ``{||y||_2 = scale}``: rescale ``x`` to norm ``scale``.

    ::

        proj(x) = scale * x / ||x||_2                     (x != 0)
        proj(0) = scale / sqrt(n) * (1, ..., 1)           (n elements; any point is nearest)

    Args:
        tree: The tree to project (at least one element).
        scale: The radius, ``> 0``.

    Returns:
        The projected tree, with the structure, shapes and dtypes of ``tree``. (Optax
        returns NaN for ``x = 0``.)

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_l2_sphere(jnp.array([3.0, 4.0]), scale=10.0)
        Array([6., 8.], dtype=float32)
    """
    fn = "projection_l2_sphere"
    check_positive(fn, "scale", scale)
    leaves, treedef = _leaves(fn, "tree", tree)
    n = _require_elements(fn, "tree", leaves)
    dtype = _dtype(leaves)
    z = hp(scale, dtype)
    sq = _sq_norm(leaves, dtype)
    nonzero = sq > 0
    factor = z / jnp.sqrt(jnp.where(nonzero, sq, jnp.ones_like(sq)))  # (finite gradients at 0)
    fill = z / jnp.sqrt(jnp.asarray(n, dtype))
    return jax.tree.unflatten(
        treedef,
        [jnp.where(nonzero, factor * x.astype(dtype), fill).astype(x.dtype) for x in leaves],
    )


def projection_l2_ball(tree: Any, scale: Any = 1) -> Any:
    """Project onto the l2 ball ``{||y||_2 <= scale}``.

    ::

        proj(x) = x * min(1, scale / ||x||_2)

    Args:
        tree: The tree to project.
        scale: The radius, ``> 0``.

    Returns:
        The projected tree, with the structure, shapes and dtypes of ``tree``; points
        inside the ball come back unchanged, bit for bit.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_l2_ball({"a": jnp.array([3.0]), "b": jnp.array([4.0])})
        {'a': Array([0.6], dtype=float32), 'b': Array([0.8], dtype=float32)}
    """
    fn = "projection_l2_ball"
    check_positive(fn, "scale", scale)
    leaves, treedef = _leaves(fn, "tree", tree)
    dtype = _dtype(leaves)
    z = hp(scale, dtype)
    sq = _sq_norm(leaves, dtype)
    outside = sq > z * z
    factor = z / jnp.sqrt(jnp.where(outside, sq, jnp.ones_like(sq)))  # (finite gradients at 0)
    return jax.tree.unflatten(
        treedef,
        [jnp.where(outside, factor * x.astype(dtype), x.astype(dtype)).astype(x.dtype) for x in leaves],
    )


def projection_linf_ball(tree: Any, scale: Any = 1) -> Any:
    """Project onto the l-infinity ball ``{max |y_i| <= scale}``: ``clip(x, -scale, scale)``.

    ::

        proj(x) = min(max(x, -scale), scale)

    Args:
        tree: The tree to project.
        scale: The radius, a number ``>= 0``.

    Returns:
        The projected tree, with the structure, shapes and dtypes of ``tree``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_linf_ball(jnp.array([-2.0, 0.3, 1.5]), scale=1.0)
        Array([-1. ,  0.3,  1. ], dtype=float32)
    """
    fn = "projection_linf_ball"
    check_nonnegative(fn, "scale", scale)
    leaves, treedef = _leaves(fn, "tree", tree)
    return _map(treedef, leaves, lambda x: jnp.clip(x, -hp(scale, x.dtype), hp(scale, x.dtype)))


def projection_vector(x: Any, a: Any) -> Any:
    """Project onto the line spanned by ``a``: ``(<x, a> / <a, a>) a``.

    ::

        proj(x) = (<x, a> / <a, a>) * a        (a != 0)
        proj(x) = 0                            (a = 0: the line is {0})

    Args:
        x: The tree to project.
        a: A tree with the structure and leaf shapes of ``x``.

    Returns:
        A tree with the structure, shapes and dtypes of ``x``. (Optax returns NaN for
        ``a = 0``.)

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_vector(jnp.array([2.0, 1.0]), jnp.array([1.0, 0.0]))
        Array([2., 0.], dtype=float32)
    """
    fn = "projection_vector"
    x_leaves, a_leaves, treedef, dtype = _pair(fn, x, a)
    aa = _vdot(a_leaves, a_leaves, dtype)
    nonzero = aa > 0
    c = jnp.where(nonzero, _vdot(x_leaves, a_leaves, dtype) / jnp.where(nonzero, aa, 1), 0)
    zeros = [jnp.zeros_like(xi) for xi in x_leaves]
    return _add_scaled(zeros, a_leaves, treedef, c, dtype)


def projection_hyperplane(x: Any, a: Any, b: Any) -> Any:
    """Project onto the hyperplane ``{y : <a, y> = b}``.

    ::

        proj(x) = x + ((b - <x, a>) / <a, a>) * a

    Args:
        x: The tree to project.
        a: The normal: a nonzero tree with the structure and leaf shapes of ``x``.
        b: The offset, a scalar.

    Returns:
        A tree with the structure, shapes and dtypes of ``x``. For ``a = 0`` the set is
        everything (``b = 0``: ``x`` is returned) or empty (``b != 0``: a `ValueError`,
        or NaN under ``jit`` where nothing can be raised).

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_hyperplane(jnp.array([2.0, 1.0]), jnp.array([1.0, 1.0]), 1.0)
        Array([1., 0.], dtype=float32)
    """
    fn = "projection_hyperplane"
    check_scalar(fn, "b", b)
    x_leaves, a_leaves, treedef, dtype = _pair(fn, x, a)
    num = hp(b, dtype) - _vdot(x_leaves, a_leaves, dtype)
    c = _affine_step(fn, num, _vdot(a_leaves, a_leaves, dtype), b, "hyperplane <a, y> = b")
    return _add_scaled(x_leaves, a_leaves, treedef, c, dtype)


def projection_halfspace(x: Any, a: Any, b: Any) -> Any:
    """Project onto the half-space ``{y : <a, y> <= b}``.

    ::

        proj(x) = x + (min(b - <x, a>, 0) / <a, a>) * a

    Args:
        x: The tree to project.
        a: The normal: a tree with the structure and leaf shapes of ``x``.
        b: The offset, a scalar.

    Returns:
        A tree with the structure, shapes and dtypes of ``x``. For ``a = 0`` the set is
        everything (``b >= 0``: ``x`` is returned) or empty (``b < 0``: a `ValueError`,
        or NaN under ``jit``).

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import projections
        >>> projections.projection_halfspace(jnp.array([2.0, 1.0]), jnp.array([1.0, 1.0]), 1.0)
        Array([1., 0.], dtype=float32)
    """
    fn = "projection_halfspace"
    check_scalar(fn, "b", b)
    x_leaves, a_leaves, treedef, dtype = _pair(fn, x, a)
    num = jnp.minimum(hp(b, dtype) - _vdot(x_leaves, a_leaves, dtype), 0)
    c = _affine_step(fn, num, _vdot(a_leaves, a_leaves, dtype), b, "half-space <a, y> <= b")
    return _add_scaled(x_leaves, a_leaves, treedef, c, dtype)
