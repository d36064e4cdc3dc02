"""Shared test helpers: random trees, step runners, tree comparisons."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import gradchain

SHAPES = {"w": (3, 4), "b": (4,), "nested": [(2, 2, 3), ()]}


def random_tree(seed: int, shapes: Any = None, dtype=jnp.float32, scale: float = 1.0) -> Any:
    """A pytree of normal random arrays with the given shapes (tuples are leaves)."""
    shapes = SHAPES if shapes is None else shapes
    leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
    rng = np.random.default_rng(seed)
    arrays = [jnp.asarray(scale * rng.standard_normal(s), dtype=dtype) for s in leaves]
    return jax.tree.unflatten(treedef, arrays)


def grad_sequence(seed: int, like: Any, n: int, scale: float = 1.0) -> list:
    """``n`` random gradient trees shaped like ``like`` (same dtypes)."""
    rng = np.random.default_rng(seed)

    def one():
        return jax.tree.map(
            lambda x: jnp.asarray(scale * rng.standard_normal(jnp.shape(x)), dtype=jnp.result_type(x)), like
        )

    return [one() for _ in range(n)]


def run_steps(
    tx: gradchain.GradientTransformation,
    params: Any,
    grads: Sequence[Any],
    *,
    jit: bool = False,
    extra_args: dict | None = None,
    apply: Callable = gradchain.apply_updates,
):
    """Apply ``tx`` to a gradient sequence; returns (list of updates, list of params, final state)."""
    extra_args = extra_args or {}

    def step(p, s, g):
        u, s = tx.update(g, s, p, **extra_args)
        return u, apply(p, u), s

    if jit:
        step = jax.jit(step)
    state = tx.init(params)
    all_u, all_p = [], []
    for g in grads:
        u, params, state = step(params, state, g)
        all_u.append(u)
        all_p.append(params)
    return all_u, all_p, state


def run_optax(otx, params, grads, *, jit=False, extra_args=None):
    """``run_steps`` for an Optax transformation, under standard dtype promotion."""
    import optax

    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return run_steps(otx, params, grads, jit=jit, extra_args=extra_args, apply=optax.apply_updates)


def assert_trees_close(actual, expected, *, rtol=1e-6, atol=0.0, msg=""):
    """`chex.assert_trees_all_close` on float64 copies (so bfloat16 and float32 leaves compare
    by value); chex names the failing leaf's path and compares the structures."""
    import chex

    chex.assert_trees_all_close(
        to_numpy64(actual), to_numpy64(expected), rtol=rtol, atol=atol, custom_message=msg
    )


def assert_trees_bitwise_equal(actual, expected, what=""):
    """Same structure (node types included), dtypes, shapes and bits, leaf by leaf."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected), (
        f"{what}: structures differ:\n  {jax.tree.structure(actual)}\n  {jax.tree.structure(expected)}"
    )
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected)):
        x, y = np.atleast_1d(np.asarray(x)), np.atleast_1d(np.asarray(y))
        where = f"{what} at leaf {jax.tree_util.keystr(path)}"
        assert x.dtype == y.dtype and x.shape == y.shape, f"{where}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8), err_msg=where)


def assert_trees_close_relative(actual, expected, *, rtol, msg=""):
    """Leafwise ``|a - b| <= rtol * max|b|``: the error measured against each leaf's size."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected), msg
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        np.testing.assert_allclose(
            a, b, rtol=0, atol=rtol * max(scale, 1e-30), err_msg=f"{msg} at leaf {jax.tree_util.keystr(path)}"
        )


def max_rel_diff(actual, expected, floor=1e-6) -> float:
    """Largest ``|a - b| / max(|b|, floor)`` over all leaves."""
    worst = 0.0
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        if a.size:
            worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor))))
    return worst


def to_numpy64(tree):
    """A pytree as float64 NumPy arrays (for reference transcriptions)."""
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)
