"""The contract every public transformation and optimizer keeps, driven by the registry.

- jit equals eager, and the jitted step traces once;
- vmap over a batch of independent models equals a Python loop over them;
- a transformation built inside jit/vmap from a traced hyperparameter works (a sweep);
- updates keep tree structure, shapes and dtypes (bfloat16 stays bfloat16);
- ``None`` leaves and empty subtrees pass through;
- the new state has the structure, node types, shapes and dtypes of ``init``'s;
- all of it under strict dtype promotion (see conftest.py).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
from tests import helpers
from tests.registry import CASES

IDS = [c.id for c in CASES]
N_STEPS = 4


def _params(seed=0, dtype=jnp.float32):
    return helpers.random_tree(seed, dtype=dtype)


def _grads(seed=1, like=None, n=N_STEPS):
    return helpers.grad_sequence(seed, _params() if like is None else like, n)


def _final_params(tx, params, grads, extra_args):
    """Run the steps inside one traced function (for jit/vmap of the whole loop)."""
    state = tx.init(params)
    for g in grads:
        u, state = tx.update(g, state, params, **extra_args)
        params = gradchain.apply_updates(params, u)
    return params


EAGER_STEPS = 2  # eager dispatch compiles every primitive separately: keep it short


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_equals_eager_and_traces_once(case):
    tx = case.make()
    params, grads = _params(), _grads()
    u_e, p_e, s_e = helpers.run_steps(tx, params, grads[:EAGER_STEPS], extra_args=case.extra_args)

    @jax.jit
    @chex.assert_max_traces(n=1)  # a second trace would raise
    def step(p, s, g):
        u, s = tx.update(g, s, p, **case.extra_args)
        return u, gradchain.apply_updates(p, u), s

    state, p = tx.init(params), params
    for i, g in enumerate(grads):
        u, p, state = step(p, state, g)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u)), f"{case.id} step {i}"
        if i < EAGER_STEPS:
            helpers.assert_trees_close(u, u_e[i], rtol=1e-5, atol=1e-6, msg=f"{case.id} updates")
            helpers.assert_trees_close(p, p_e[i], rtol=1e-5, atol=1e-6, msg=f"{case.id} params")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_keeps_structure_and_updates_keep_tree(case):
    # Shapes, dtypes and structures only: traced abstractly (no compilation); the values
    # are checked by the other tests.
    tx = case.make()
    params = _params()
    state0 = jax.eval_shape(tx.init, params)
    u, state1 = jax.eval_shape(
        lambda g, s, p: tx.update(g, s, p, **case.extra_args), _grads(n=1)[0], tx.init(params), params
    )
    assert jax.tree.structure(state1) == jax.tree.structure(state0), (
        f"{case.id}: state structure changed:\n  init:   {jax.tree.structure(state0)}\n"
        f"  update: {jax.tree.structure(state1)}"
    )
    for a, b in zip(jax.tree.leaves(state0), jax.tree.leaves(state1)):
        assert jnp.shape(a) == jnp.shape(b) and jnp.result_type(a) == jnp.result_type(b), case.id
    assert jax.tree.structure(u) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(params)):
        assert a.shape == b.shape and a.dtype == b.dtype, case.id


@pytest.mark.parametrize("case", [c for c in CASES if c.bf16], ids=[c.id for c in CASES if c.bf16])
def test_bfloat16_params_stay_bfloat16(case):
    tx = case.make()
    params = _params(dtype=jnp.bfloat16)
    grads = helpers.grad_sequence(3, params, 3)
    u, p, s = helpers.run_steps(tx, params, grads, jit=True, extra_args=case.extra_args)
    for leaf in jax.tree.leaves(u[-1]) + jax.tree.leaves(p[-1]):
        assert leaf.dtype == jnp.bfloat16, f"{case.id}: got {leaf.dtype}"
        assert bool(jnp.all(jnp.isfinite(leaf))), case.id
    assert jax.tree.structure(s) == jax.tree.structure(tx.init(params))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_none_leaves_and_empty_subtrees_pass_through(case):
    tx = case.make()
    params = {"w": jnp.ones((2, 3)), "none": None, "empty": {}, "v": [jnp.arange(3.0), ()]}
    grads = jax.tree.map(lambda x: 0.1 * x + 0.5, params)
    state = tx.init(params)
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, **case.extra_args))
    for _ in range(2):
        u, state = update(grads, state, params)
    assert u["none"] is None and u["empty"] == {} and u["v"][1] == ()
    assert jax.tree.structure(u) == jax.tree.structure(params)
    new = gradchain.apply_updates(params, u)
    assert new["none"] is None and jax.tree.structure(new) == jax.tree.structure(params)


def _updates_per_step(tx, params, grads, extra_args):
    state, out = tx.init(params), []
    for g in grads:
        u, state = tx.update(g, state, params, **extra_args)
        params = gradchain.apply_updates(params, u)
        out.append(u)
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_over_independent_models_equals_loop(case):
    # Compares each step's updates, leaf by leaf, to a tolerance relative to that leaf's
    # size: vmap may round differently from the loop (XLA fuses the batched ops
    # differently), and comparing parameters after several steps would measure
    # cancellation in p + u (near-zero sums of O(1) terms), not the transformation.
    tx = case.make()
    batch = [_params(seed) for seed in range(3)]
    grads = [_grads(10 + seed, n=3) for seed in range(3)]
    one = jax.jit(lambda p, g: _updates_per_step(tx, p, g, case.extra_args))  # compiled once
    expected = [one(p, g) for p, g in zip(batch, grads)]
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
    gstack = [stack([g[t] for g in grads]) for t in range(3)]
    got = jax.jit(jax.vmap(lambda p, g: _updates_per_step(tx, p, g, case.extra_args)))(stack(batch), gstack)
    for i in range(3):
        for t in range(3):
            helpers.assert_trees_close_relative(
                jax.tree.map(lambda x: x[i], got[t]),
                expected[i][t],
                rtol=2e-5,
                msg=f"{case.id} model {i} step {t}",
            )


TRACED = [c for c in CASES if c.traced is not None]


@pytest.mark.parametrize("case", TRACED, ids=[c.id for c in TRACED])
def test_built_inside_vmap_from_traced_hyperparameter(case):
    params, grads = _params(), _grads(n=3)
    values = jnp.asarray(case.traced_values, jnp.float32)
    run = lambda h: _final_params(case.traced(h), params, grads, case.extra_args)
    got = jax.jit(jax.vmap(run))(values)
    one = jax.jit(run)  # the same program unbatched, compiled once for every value
    for i, v in enumerate(case.traced_values):
        expected = one(values[i])
        helpers.assert_trees_close(
            jax.tree.map(lambda x: x[i], got), expected, rtol=2e-5, atol=1e-6, msg=f"{case.id} h={v}"
        )


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.needs_params], ids=[c.id for c in CASES if c.needs_params]
)
def test_needs_params_says_so(case):
    tx = case.make()
    params = _params()
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(_grads(n=1)[0], tx.init(params), None, **case.extra_args)


def test_registry_is_not_empty():
    assert len(CASES) >= 10
    assert np.unique([c.id for c in CASES]).size == len(CASES), "duplicate case ids"
