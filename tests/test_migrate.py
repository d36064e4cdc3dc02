"""Moving a run from Optax to gradchain: `from_optax_state` on live and checkpointed states."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

import gradchain as gc

PARAMS = {
    "w": jax.random.normal(jax.random.key(0), (16, 8)),
    "b": jnp.linspace(-1.0, 1.0, 8),
    "stack": jax.random.normal(jax.random.key(1), (3, 4, 5)),
}


def _grad(params, i):
    return jax.tree.map(lambda x: jnp.sin(3.0 * x + i) + 0.1 * x, params)


def _run(m, tx, params, state, start, n):
    @jax.jit
    def step(params, state, i):
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            updates, state = tx.update(_grad(params, i), state, params)
            return m.apply_updates(params, updates), state

    for i in range(start, start + n):
        params, state = step(params, state, jnp.asarray(i, jnp.float32))
    return params, state


# name -> a factory taking the module (optax or gradchain): the same call in both.
CHAINS = {
    "clip+adamw": lambda m: m.chain(m.clip_by_global_norm(1.0), m.adamw(1e-2, weight_decay=0.1)),
    "adam": lambda m: m.adam(1e-2),
    "sgd_momentum": lambda m: m.chain(m.clip_by_global_norm(1.0), m.sgd(1e-2, momentum=0.9, nesterov=True)),
    "lion": lambda m: m.lion(1e-3, weight_decay=0.01),
    "rmsprop": lambda m: m.rmsprop(1e-3, momentum=0.9),
    "adagrad": lambda m: m.adagrad(1e-2),
    "lamb": lambda m: m.lamb(1e-3),
    "adafactor": lambda m: m.adafactor(1e-2),
    "inject_adamw": lambda m: m.inject_hyperparams(m.adamw)(
        learning_rate=m.linear_schedule(1e-2, 1e-3, 20), weight_decay=0.1
    ),
    "masked_adam": lambda m: m.chain(
        m.masked(m.add_decayed_weights(0.1), {"w": True, "b": False, "stack": True}),
        m.adam(1e-2),
    ),
}
BIT_IDENTICAL = {
    "lion",
    "rmsprop",
    "adagrad",
    "lamb",
    "clip+adamw",
    "adam",
    "sgd_momentum",
    "inject_adamw",
    "masked_adam",
}
N = 6


def _leaves_with_paths(tree):
    return {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_an_optax_run_continues_in_gradchain(name):
    """Optax trains N steps; its state converts leaf for leaf; gradchain's next N steps
    equal Optax's next N (bit for bit where the arithmetic is Optax's)."""
    otx, gtx = CHAINS[name](optax), CHAINS[name](gc)
    p, ostate = _run(optax, otx, PARAMS, otx.init(PARAMS), 0, N)
    state = gc.from_optax_state(gtx, ostate, p, step=N)
    assert jax.tree.structure(state) == jax.tree.structure(gtx.init(PARAMS))
    # every array Optax keeps reappears unchanged (by field path, skipping placeholders)
    theirs = _leaves_with_paths(ostate)
    mine = _leaves_with_paths(state)
    shared = [k for k in theirs if k in mine]
    assert shared, "no shared state leaves"
    for k in shared:
        np.testing.assert_array_equal(mine[k], theirs[k], err_msg=k)
    p_optax, _ = _run(optax, otx, p, ostate, N, N)
    p_gc, _ = _run(gc, gtx, p, state, N, N)
    for k in PARAMS:
        if name in BIT_IDENTICAL:
            np.testing.assert_array_equal(p_gc[k], p_optax[k], err_msg=k)
        else:
            np.testing.assert_allclose(p_gc[k], p_optax[k], rtol=2e-5, atol=1e-7, err_msg=k)


def test_an_optax_orbax_checkpoint_resumes_bit_identically(tmp_path):
    """The issue's example: Optax trains, saves with orbax, the run resumes in gradchain from
    the checkpoint restored without Optax's classes; 2N steps equal Optax's 2N bit for bit."""
    otx, gtx = CHAINS["clip+adamw"](optax), CHAINS["clip+adamw"](gc)
    p, ostate = _run(optax, otx, PARAMS, otx.init(PARAMS), 0, N)
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(tmp_path / "ckpt", {"params": p, "opt_state": ostate})
    ckpt.wait_until_finished()
    restored = ckpt.restore(tmp_path / "ckpt")  # plain dicts, lists and None
    assert isinstance(restored["opt_state"], list)
    state = gc.from_optax_state(gtx, restored["opt_state"], restored["params"])
    p_gc, _ = _run(gc, gtx, restored["params"], state, N, N)
    p_optax, _ = _run(optax, otx, PARAMS, otx.init(PARAMS), 0, 2 * N)
    for k in PARAMS:
        np.testing.assert_array_equal(p_gc[k], p_optax[k], err_msg=k)


def test_flax_state_dict_form_converts():
    flax_ser = pytest.importorskip("flax.serialization")
    otx, gtx = CHAINS["sgd_momentum"](optax), CHAINS["sgd_momentum"](gc)
    _, ostate = _run(optax, otx, PARAMS, otx.init(PARAMS), 0, 2)
    raw = flax_ser.to_state_dict(ostate)  # {"0": ..., "1": {"0": {"trace": ...}, ...}}
    a = gc.from_optax_state(gtx, raw, PARAMS)
    b = gc.from_optax_state(gtx, ostate, PARAMS)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_params_may_be_shape_dtype_structs():
    otx, gtx = CHAINS["adam"](optax), CHAINS["adam"](gc)
    ostate = otx.init(PARAMS)
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), PARAMS)
    state = gc.from_optax_state(gtx, ostate, shapes)
    assert jax.tree.structure(state) == jax.tree.structure(gtx.init(PARAMS))


def test_counters_only_gradchain_keeps_take_the_step_count():
    otx = optax.chain(optax.add_decayed_weights(0.1), optax.adam(1e-2))
    gtx = gc.chain(gc.add_decayed_weights(0.1), gc.adam(1e-2))
    _, ostate = _run(optax, otx, PARAMS, otx.init(PARAMS), 0, 3)
    state = gc.from_optax_state(gtx, ostate, PARAMS)
    assert int(state[0].count) == 3  # gradchain counts for a weight-decay schedule


def test_mismatched_transformations_are_refused_naming_the_path():
    _, ostate = _run(optax, optax.adam(1e-2), PARAMS, optax.adam(1e-2).init(PARAMS), 0, 1)
    with pytest.raises(ValueError, match=r"from_optax_state: at `state` gradchain's state has 2 entries"):
        gc.from_optax_state(
            gc.chain(gc.clip_by_global_norm(1.0), gc.adam(1e-2)), [ostate, None, None], PARAMS
        )
    with pytest.raises(ValueError, match=r"from_optax_state: .*fields \['nu'\].*ScaleByAdamState|no place"):
        gc.from_optax_state(gc.lion(1e-3), optax.adamw(1e-3).init(PARAMS), PARAMS)
    small = {k: v[..., :1] for k, v in PARAMS.items()}
    with pytest.raises(ValueError, match=r"from_optax_state: the leaf at `state.*mu\['b'\]` has shape"):
        gc.from_optax_state(gc.adam(1e-2), ostate, small)
    with pytest.raises(ValueError, match="pass `step=`"):
        gc.from_optax_state(gc.rmsprop(1e-3), optax.rmsprop(1e-3).init(PARAMS), PARAMS)
    with pytest.raises(ValueError, match="`step` is 2 but the Optax state's count is 1"):
        gc.from_optax_state(gc.adam(1e-2), ostate, PARAMS, step=2)
    with pytest.raises(TypeError, match="from_optax_state: `tx`"):
        gc.from_optax_state(object(), ostate, PARAMS)
