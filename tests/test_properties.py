"""Property-based tests (hypothesis) over the registry: random tree structures, leaf shapes
(0-d to 5,000 elements), dtypes, Python-number leaves and NaN/Inf positions.

- updates keep the tree structure, shapes and dtypes; the state keeps its structure
  (parameters may be Python numbers, as Optax accepts);
- jit equals eager;
- a non-finite value anywhere in the gradients is caught by `apply_if_finite` around any
  registry transformation: zero updates, the inner state untouched.

Derandomized (the same examples every run) and bounded, so the suite stays fast.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gradchain  # noqa: E402
from tests.registry import CASES  # noqa: E402

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None, print_blob=True)
SHAPES = [(), (1,), (3,), (2, 3), (3, 1, 2), (5000,)]
DTYPES = [jnp.float32, jnp.bfloat16]


@st.composite
def trees(draw, allow_python_numbers=False):
    """A dict/list tree of 1-4 leaves: (shape or 'py', dtype) descriptions."""
    n = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(DTYPES))
    leaves = []
    for _ in range(n):
        kind = draw(st.sampled_from(SHAPES + (["py"] if allow_python_numbers else [])))
        leaves.append(kind)
    nested = draw(st.booleans())
    spec = {f"k{i}": s for i, s in enumerate(leaves)}
    if nested and n > 1:
        spec = {"a": [spec.pop("k0")], "b": spec}
    return spec, dtype


def _materialize(spec, dtype, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    is_leaf = lambda x: isinstance(x, tuple) or x == "py"

    def leaf(s):
        if s == "py":
            return float(np.round(scale * rng.standard_normal(), 3))
        return jnp.asarray(scale * rng.standard_normal(s), dtype)

    return jax.tree.map(leaf, spec, is_leaf=is_leaf)


def _grads_like(params, seed):
    """Gradients as `jax.grad` gives them: arrays, float32 for Python-number parameters."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.standard_normal(jnp.shape(p)), getattr(p, "dtype", jnp.float32)), params
    )


CASE = st.sampled_from(CASES)


@SETTINGS
@given(case=CASE, tree=trees(allow_python_numbers=True))
def test_structure_shapes_dtypes_kept_and_jit_equals_eager(case, tree):
    spec, dtype = tree
    if dtype == jnp.bfloat16 and not case.bf16:
        dtype = jnp.float32
    params = _materialize(spec, dtype, 0)
    grads = [_grads_like(params, s) for s in (1, 2)]
    tx = case.make()

    def run(update):
        s, p, out = tx.init(params), params, []
        for g in grads:
            u, s = update(g, s, p)
            out.append(u)
            p = gradchain.apply_updates(p, u)
        return out, s

    eager, s_e = run(lambda g, s, p: tx.update(g, s, p, **case.extra_args))
    jitted, s_j = run(jax.jit(lambda g, s, p: tx.update(g, s, p, **case.extra_args)))
    s0 = tx.init(params)
    assert jax.tree.structure(s_e) == jax.tree.structure(s0) == jax.tree.structure(s_j), case.id
    for u_e, u_j in zip(eager, jitted):
        assert jax.tree.structure(u_e) == jax.tree.structure(params) == jax.tree.structure(u_j)
        for p, a, b in zip(jax.tree.leaves(params), jax.tree.leaves(u_e), jax.tree.leaves(u_j)):
            want = jnp.result_type(gradchain._numerics.as_leaf(p))
            assert a.shape == b.shape == jnp.shape(p) and a.dtype == b.dtype == want, case.id
            tol = 2e-2 if a.dtype == jnp.bfloat16 else 1e-5
            np.testing.assert_allclose(
                np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol, err_msg=case.id
            )


@SETTINGS
@given(
    case=CASE,
    tree=trees(),
    where=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    jit=st.booleans(),
)
def test_a_non_finite_value_anywhere_is_caught(case, tree, where, bad, jit):
    spec, dtype = tree
    params = _materialize(spec, dtype, 0)
    grads = _grads_like(params, 1)
    leaves, treedef = jax.tree.flatten(grads)
    i = where[0] % len(leaves)
    x = leaves[i]
    leaves[i] = x.reshape(-1).at[where[1] % max(x.size, 1)].set(bad).reshape(x.shape)
    poisoned = treedef.unflatten(leaves)
    tx = gradchain.apply_if_finite(case.make(), 5)
    s0 = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    u, s = update(poisoned, s0, params, **case.extra_args)
    assert not bool(s.last_finite) and int(s.notfinite_count) == 1, case.id
    assert all(not bool(jnp.any(leaf)) for leaf in jax.tree.leaves(u)), f"{case.id}: the step was applied"
    for a, b in zip(jax.tree.leaves(s.inner_state), jax.tree.leaves(s0.inner_state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=case.id)
