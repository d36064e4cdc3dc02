"""The contract every public transformation and optimizer keeps, driven by the registry.

- jit equals eager, and the jitted step traces once;
- vmap over a batch of independent models equals a Python loop over them;
- a transformation built inside jit/vmap from a traced hyperparameter works (a sweep),
  each model of the vmapped batch with its own value;
- updates keep tree structure, shapes and dtypes (bfloat16 stays bfloat16);
- ``None`` leaves and empty subtrees pass through;
- the new state has the structure, node types, shapes and dtypes of ``init``'s;
- a checkpoint of params and state, restored, continues bit for bit;
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

serialization = pytest.importorskip("flax.serialization")

IDS = [c.id for c in CASES]
N_STEPS = 4


def _params(seed=0, dtype=jnp.float32):
    return helpers.random_tree(seed, dtype=dtype)


def _grads(seed=1, like=None, n=N_STEPS):
    return helpers.grad_sequence(seed, _params() if like is None else like, n)


EAGER_STEPS = 2  # eager dispatch compiles every primitive separately: keep it short
CHECKPOINT_AFTER = 3


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_eager_checkpoint_and_vmap_over_models_and_hyperparameters(case):
    # One compiled step serves every check here: jit against eager dispatch, and the
    # per-model reference for the vmapped step (a second compile, of the batched step).
    tx = case.make()
    params, grads = _params(), _grads()
    u_e, p_e, s_e = helpers.run_steps(tx, params, grads[:EAGER_STEPS], extra_args=case.extra_args)

    def plain_step(p, s, g):
        u, s = tx.update(g, s, p, **case.extra_args)
        return u, gradchain.apply_updates(p, u), s

    step = jax.jit(chex.assert_max_traces(plain_step, n=1))  # a second trace would raise
    state, p = tx.init(params), params
    for i, g in enumerate(grads):
        u, p, state = step(p, state, g)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u)), f"{case.id} step {i}"
        if i < EAGER_STEPS:
            helpers.assert_trees_close(u, u_e[i], rtol=1e-5, atol=1e-6, msg=f"{case.id} updates")
            helpers.assert_trees_close(p, p_e[i], rtol=1e-5, atol=1e-6, msg=f"{case.id} params")
        if i == CHECKPOINT_AFTER - 1:
            saved = (p, state)
            blob = serialization.to_bytes(saved)

    # Checkpoint round trip: the (params, state) saved after an odd number of steps (an
    # accumulation stops mid-way), restored with and without a target, continue with the
    # same compiled step (no retrace: the restored leaves keep their types) to the
    # uninterrupted run's numbers, bit for bit. tests/test_checkpoint.py restores every
    # case's state through orbax.
    for how, (rp, rs) in (
        ("with target", serialization.from_bytes(saved, blob)),
        ("without target", serialization.from_state_dict(saved, serialization.msgpack_restore(blob))),
    ):
        for g in grads[CHECKPOINT_AFTER:]:
            _, rp, rs = step(rp, rs, g)
        helpers.assert_trees_bitwise_equal(
            (rp, rs), (p, state), f"{case.id}: continued after a restore {how}"
        )

    # vmap over a batch of independent models (init included) equals a loop over them.
    # Where the case has a numeric hyperparameter, each model is also built from its own
    # value of it, a tracer inside jit and vmap (a hyperparameter sweep), and the loop
    # runs one jitted step that takes the value as an argument.
    # Each step's updates are compared leaf by leaf, to a tolerance relative to that
    # leaf's size: vmap may round differently from the loop (XLA fuses the batched ops
    # differently), and comparing parameters after several steps would measure
    # cancellation in p + u (near-zero sums of O(1) terms), not the transformation.
    batch = [_params(seed) for seed in range(3)]
    bgrads = [_grads(10 + seed, n=3) for seed in range(3)]
    if case.traced is None:
        hs, build, one = [None] * 3, lambda h: tx, lambda h, p, s, g: step(p, s, g)
    else:
        v = case.traced_values
        hs = jnp.asarray([v[0], v[1 % len(v)], v[-1]], jnp.float32)
        build = case.traced

        def h_step(h, p, s, g):
            u, s = build(h).update(g, s, p, **case.extra_args)
            return u, gradchain.apply_updates(p, u), s

        one = jax.jit(h_step)
    expected = []
    for h, p, gs in zip(hs, batch, bgrads):
        s, per_step = build(h).init(p), []
        for g in gs:
            u, p, s = one(h, p, s, g)
            per_step.append(u)
        expected.append(per_step)

    def batched_step(h, p, s, g):
        u, s = build(h).update(g, s, p, **case.extra_args)
        return u, gradchain.apply_updates(p, u), s

    in_axes = (None if case.traced is None else 0, 0, 0, 0)
    vstep = jax.jit(jax.vmap(batched_step, in_axes=in_axes))
    h = None if case.traced is None else hs
    p = _stack(batch)
    s = jax.vmap(lambda h, p: build(h).init(p), in_axes=in_axes[:2])(h, p)
    for t in range(3):
        u, p, s = vstep(h, p, s, _stack([g[t] for g in bgrads]))
        for i in range(3):
            helpers.assert_trees_close_relative(
                jax.tree.map(lambda x: x[i], u),
                expected[i][t],
                rtol=2e-5,
                msg=f"{case.id} model {i}{'' if case.traced is None else f' (h={float(hs[i])})'} step {t}",
            )


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


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bfloat16_params_none_leaves_and_empty_subtrees(case):
    # One tree, one compile: bfloat16 leaves (where the case supports them: they stay
    # bfloat16 and finite), a None leaf, an empty dict and an empty tuple (they pass
    # through untouched).
    tx = case.make()
    dtype = jnp.bfloat16 if case.bf16 else jnp.float32
    params = {**_params(dtype=dtype), "none": None, "empty": {}, "v": [jnp.arange(3.0, dtype=dtype), ()]}
    grads = helpers.grad_sequence(3, params, 3)
    u, p, s = helpers.run_steps(tx, params, grads, jit=True, extra_args=case.extra_args)
    u, new = u[-1], p[-1]
    assert u["none"] is None and u["empty"] == {} and u["v"][1] == ()
    assert new["none"] is None and jax.tree.structure(new) == jax.tree.structure(params)
    assert jax.tree.structure(u) == jax.tree.structure(params)
    for leaf in jax.tree.leaves(u) + jax.tree.leaves(new):
        assert leaf.dtype == dtype, f"{case.id}: got {leaf.dtype}"
        assert bool(jnp.all(jnp.isfinite(leaf))), case.id
    assert jax.tree.structure(s) == jax.tree.structure(tx.init(params))


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
