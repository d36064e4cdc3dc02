"""Accumulation: accumulate_gradients (Optax's MultiSteps) and microbatched_value_and_grad."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12


def _sgd(lr=0.1, momentum=None):
    if hasattr(gc, "sgd"):
        return gc.sgd(lr, momentum)
    if momentum is None:
        return gc.scale_by_learning_rate(lr)
    if not hasattr(gc, "trace"):
        pytest.skip("gradchain.trace (transforms/momentum.py) is not available yet")
    return gc.chain(gc.trace(momentum), gc.scale_by_learning_rate(lr))


def _adam(lr=0.01):
    if hasattr(gc, "adam"):
        return gc.adam(lr)
    if not hasattr(gc, "scale_by_adam"):
        pytest.skip("gradchain.scale_by_adam (transforms/adaptive.py) is not available yet")
    return gc.chain(gc.scale_by_adam(), gc.scale_by_learning_rate(lr))


INNERS = {
    "sgd": (lambda: _sgd(0.1), lambda optax: optax.sgd(0.1)),
    "momentum": (lambda: _sgd(0.1, 0.9), lambda optax: optax.sgd(0.1, momentum=0.9)),
    "adam": (lambda: _adam(0.01), lambda optax: optax.adam(0.01)),
}


def _every_k_schedule(step):
    return 1 + step % 3  # 1, 2, 3, 1, 2, 3 mini-steps per inner step


# ---------------------------------------------------------------- float64 reference
def _numpy_accumulate(grads, lr, every_k, use_grad_mean):
    """The docstring's rule with inner = scale(-lr), one line per formula line."""
    a, n, step, out = None, 0, 0, []
    for g in grads:
        g = helpers.to_numpy64(g)
        a = jax.tree.map(np.zeros_like, g) if a is None else a
        k = every_k(step) if callable(every_k) else every_k
        a = jax.tree.map(lambda a_, g_, n=n: a_ + (g_ - a_) / (n + 1) if use_grad_mean else a_ + g_, a, g)
        if n + 1 >= k:
            out.append(jax.tree.map(lambda a_: -lr * a_, a))
            a, n, step = jax.tree.map(np.zeros_like, a), 0, step + 1
        else:
            out.append(jax.tree.map(np.zeros_like, g))
            n = n + 1
    return out


@pytest.mark.parametrize(
    "every_k,use_grad_mean", [(3, True), (_every_k_schedule, True), (2, False)], ids=["k3", "schedule", "sum"]
)
def test_matches_numpy_transcription(every_k, use_grad_mean):
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, N_STEPS)
    tx = gc.accumulate_gradients(gc.scale_by_learning_rate(0.1), every_k, use_grad_mean=use_grad_mean)
    u, _, state = helpers.run_steps(tx, params, grads)
    ref = _numpy_accumulate(grads, 0.1, every_k, use_grad_mean)
    for t, (a, b) in enumerate(zip(u, ref)):
        helpers.assert_trees_close(a, b, rtol=2e-6, atol=1e-7, msg=f"step {t}")
    n_inner = sum(any(np.any(x != 0) for x in jax.tree.leaves(b)) for b in ref)
    assert int(state.gradient_step) == n_inner


# ---------------------------------------------------------------- Optax MultiSteps
_MULTISTEPS = [(i, k, True) for i in sorted(INNERS) for k in ("k3", "schedule")]
_MULTISTEPS += [("adam", "k3", False), ("sgd", "schedule", False), ("momentum", "schedule", False)]


@pytest.mark.parametrize(
    "inner,every_k,jit", _MULTISTEPS, ids=[f"{i}-{k}-{'jit' if j else 'eager'}" for i, k, j in _MULTISTEPS]
)
def test_matches_optax_multisteps(inner, every_k, jit):
    optax = pytest.importorskip("optax")
    make, make_optax = INNERS[inner]
    every_k = 3 if every_k == "k3" else _every_k_schedule
    params = helpers.random_tree(2)
    grads = helpers.grad_sequence(3, params, N_STEPS)
    u, p, state = helpers.run_steps(gc.accumulate_gradients(make(), every_k), params, grads, jit=jit)
    otx = optax.MultiSteps(make_optax(optax), every_k).gradient_transformation()
    ou, op, ostate = helpers.run_optax(otx, params, grads, jit=True)  # Optax eager compiles its cond per call
    for t in range(N_STEPS):
        assert helpers.max_rel_diff(u[t], ou[t]) <= 2e-5, f"updates differ at step {t}"
        assert helpers.max_rel_diff(p[t], op[t]) <= 2e-5, f"params differ at step {t}"
    assert int(state.mini_step) == int(ostate.mini_step)
    assert int(state.gradient_step) == int(ostate.gradient_step)
    assert helpers.max_rel_diff(state.acc_grads, ostate.acc_grads) <= 2e-5


# ---------------------------------------------------------------- k micro-batches == one big batch
def _regression_problem(seed=0, n=48, d=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)).astype(np.float32)
    params = {"w": jnp.zeros(d, jnp.float32), "b": jnp.zeros([], jnp.float32)}
    return params, jnp.asarray(x), jnp.asarray(y)


def _mse(p, x, y):
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


@pytest.mark.parametrize("inner", ["sgd", "momentum", "adam"])
def test_k_microbatches_equal_one_step_on_the_concatenated_batch(inner):
    k, outer_steps = 4, 3
    make = INNERS[inner][0]
    params, x, y = _regression_problem()
    grad = jax.jit(jax.grad(_mse))
    big_tx, acc_tx = make(), gc.accumulate_gradients(make(), k)
    p_big, s_big = params, big_tx.init(params)
    p_acc, s_acc = params, acc_tx.init(params)
    for _ in range(outer_steps):
        u, s_big = big_tx.update(grad(p_big, x, y), s_big, p_big)
        p_big = gc.apply_updates(p_big, u)
        for xb, yb in zip(jnp.split(x, k), jnp.split(y, k)):
            u, s_acc = acc_tx.update(grad(p_acc, xb, yb), s_acc, p_acc)
            p_acc = gc.apply_updates(p_acc, u)
        assert int(s_acc.mini_step) == 0  # the k-th call stepped the inner optimizer
    helpers.assert_trees_close(p_acc, p_big, rtol=2e-5, atol=2e-6)
    assert not np.allclose(np.asarray(p_big["w"]), 0.0)


# ---------------------------------------------------------------- behaviour
def test_inner_update_runs_only_on_the_kth_call_under_jit():
    calls = []

    def count(u, p):
        jax.debug.callback(lambda: calls.append(1))
        return u

    tx = gc.accumulate_gradients(gc.stateless(count), 3)
    params = helpers.random_tree(0)
    helpers.run_steps(tx, params, helpers.grad_sequence(1, params, 7), jit=True)
    jax.effects_barrier()
    assert len(calls) == 2  # calls 3 and 6 of 7


def test_state_holds_one_accumulator_tree_and_keeps_inner_state_between_inner_steps():
    params = helpers.random_tree(0)
    inner = gc.scale_by_schedule(lambda c: 1.0 / (1.0 + c.astype(jnp.float32)))
    tx = gc.accumulate_gradients(inner, 2)
    state = tx.init(params)
    n_inner = len(jax.tree.leaves(inner.init(params)))
    assert len(jax.tree.leaves(state)) == 3 + n_inner + len(jax.tree.leaves(params))  # counters, emitted flag
    grads = helpers.grad_sequence(1, params, 4)
    counts = []
    for g in grads:
        _, state = tx.update(g, state)
        counts.append(int(state.inner_state.count))
    assert counts == [0, 1, 1, 2]


@pytest.mark.parametrize("donate", [False, True], ids=["plain", "donated-state"])
def test_compiled_step_needs_no_more_memory_than_optax_multisteps(donate):
    """arguments + outputs - aliased + temporaries of one jitted step, vs Optax's (adam runs every call)."""
    optax = pytest.importorskip("optax")
    _adam()
    p = {"w": jnp.zeros((512, 512), jnp.float32)}

    def total(tx):
        s = jax.eval_shape(tx.init, p)
        step = jax.jit(lambda g, s, p: tx.update(g, s, p), donate_argnums=(1,) if donate else ())
        with jax.numpy_dtype_promotion("standard"):
            m = step.lower(p, s, p).compile().memory_analysis()
        if m is None:
            pytest.skip("this backend reports no memory analysis")
        return (
            m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
        )

    ours = total(gc.accumulate_gradients(_adam(0.01), 4))
    theirs = total(optax.MultiSteps(optax.adam(0.01), 4).gradient_transformation())
    assert ours <= theirs + 4096, (ours, theirs)


def test_bfloat16_gradients_accumulate_in_float32_by_default():
    params = {"w": jnp.zeros(3, jnp.bfloat16)}
    tx = gc.accumulate_gradients(gc.identity(), 2)
    assert tx.init(params).acc_grads["w"].dtype == jnp.float32
    tx16 = gc.accumulate_gradients(gc.identity(), 2, accumulator_dtype=jnp.bfloat16)
    assert tx16.init(params).acc_grads["w"].dtype == jnp.bfloat16
    g = {"w": jnp.full(3, 1.0 + 2.0**-7, jnp.bfloat16)}
    state = tx.init(params)
    _, state = tx.update(g, state)
    u, _ = tx.update({"w": jnp.full(3, 1.0, jnp.bfloat16)}, state)
    assert u["w"].dtype == jnp.bfloat16


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"every_k": 0}, ValueError, r"accumulate_gradients: `every_k` must be >= 1, got 0\."),
        ({"every_k": 1.5}, ValueError, r"accumulate_gradients: `every_k` must be an integer, got 1\.5\."),
        ({"every_k": "2"}, TypeError, r"accumulate_gradients: `every_k` must be a number"),
        ({"every_k": True}, TypeError, r"accumulate_gradients: `every_k` must be a number"),
        (
            {"every_k": 2, "accumulator_dtype": jnp.int32},
            TypeError,
            r"`accumulator_dtype` must be a floating dtype",
        ),
        ({"every_k": 2, "use_grad_mean": 1}, TypeError, r"`use_grad_mean` must be a bool"),
    ],
)
def test_factory_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        gc.accumulate_gradients(gc.identity(), **kwargs)


def test_inner_must_be_a_transformation():
    with pytest.raises(TypeError, match=r"accumulate_gradients: `inner` must be a GradientTransformation"):
        gc.accumulate_gradients(gc.identity, 2)


def test_update_tree_mismatch_prints_both_structures():
    tx = gc.accumulate_gradients(gc.identity(), 2)
    state = tx.init({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match=r"accumulate_gradients: .*\n  updates: .*\n  expected: "):
        tx.update({"b": jnp.ones(2)}, state)


# ---------------------------------------------------------------- microbatched_value_and_grad
def _mlp_loss(p, b):
    h = jnp.tanh(b["x"] @ p["w1"])
    return jnp.mean((h @ p["w2"] - b["y"]) ** 2)


def _mlp(seed=0, batch=64, d=6, hidden=16):
    rng = np.random.default_rng(seed)
    p = {
        "w1": jnp.asarray(rng.standard_normal((d, hidden)), jnp.float32),
        "w2": jnp.asarray(rng.standard_normal((hidden, 1)), jnp.float32),
    }
    b = {
        "x": jnp.asarray(rng.standard_normal((batch, d)), jnp.float32),
        "y": jnp.asarray(rng.standard_normal((batch, 1)), jnp.float32),
    }
    return p, b


@pytest.mark.parametrize("n,jit", [(4, False), (1, True), (16, True)], ids=["4-eager", "1-jit", "16-jit"])
def test_microbatched_equals_full_batch_value_and_grad(n, jit):
    p, b = _mlp()
    f = lambda p, b: gc.microbatched_value_and_grad(_mlp_loss, p, b, n)
    loss, grads = (jax.jit(f) if jit else f)(p, b)
    ref_loss, ref_grads = jax.value_and_grad(_mlp_loss)(p, b)
    np.testing.assert_allclose(loss, ref_loss, rtol=2e-6)
    helpers.assert_trees_close(grads, ref_grads, rtol=2e-5, atol=1e-6)
    assert loss.dtype == ref_loss.dtype and jax.tree.structure(grads) == jax.tree.structure(p)


def test_microbatched_has_aux_stacks_aux_per_microbatch():
    p, b = _mlp()

    def loss_aux(p, b):
        loss = _mlp_loss(p, b)
        return loss, {"loss": loss, "n": jnp.asarray(b["x"].shape[0], jnp.int32)}

    (loss, aux), grads = gc.microbatched_value_and_grad(loss_aux, p, b, 4, has_aux=True)
    assert aux["loss"].shape == (4,) and list(np.asarray(aux["n"])) == [16] * 4
    np.testing.assert_allclose(loss, np.mean(np.asarray(aux["loss"], np.float64)), rtol=1e-6)
    ref = [_mlp_loss(p, jax.tree.map(lambda x, i=i: x[16 * i : 16 * (i + 1)], b)) for i in range(4)]
    np.testing.assert_allclose(aux["loss"], ref, rtol=1e-6)
    helpers.assert_trees_close(grads, jax.grad(_mlp_loss)(p, b), rtol=2e-5, atol=1e-6)


def test_microbatched_peak_memory_is_about_one_microbatch():
    """Compiled temp memory: full-batch grad ~64 MiB of activations, 32 micro-batches ~1/32 of it."""
    batch, d, hidden, n = 8192, 32, 1024, 32
    p = {"w1": jnp.zeros((d, hidden), jnp.float32), "w2": jnp.zeros((hidden, 1), jnp.float32)}
    b = {
        "x": jax.ShapeDtypeStruct((batch, d), jnp.float32),
        "y": jax.ShapeDtypeStruct((batch, 1), jnp.float32),
    }
    full = jax.jit(jax.value_and_grad(_mlp_loss)).lower(p, b).compile().memory_analysis()
    micro = jax.jit(lambda p, b: gc.microbatched_value_and_grad(_mlp_loss, p, b, n)).lower(p, b).compile()
    micro = micro.memory_analysis()
    if full is None or micro is None:
        pytest.skip("this backend reports no memory analysis")
    activation = batch * hidden * 4  # one (batch, hidden) float32 activation
    assert full.temp_size_in_bytes >= activation  # the full batch keeps whole activations alive
    assert micro.temp_size_in_bytes <= 0.1 * full.temp_size_in_bytes, (
        micro.temp_size_in_bytes,
        full.temp_size_in_bytes,
    )
    assert micro.temp_size_in_bytes <= 4 * activation / n + 4 * sum(x.size for x in jax.tree.leaves(p)) * 4


@pytest.mark.parametrize(
    "batch,n,err,match",
    [
        (
            {"x": jnp.ones((10, 2))},
            3,
            ValueError,
            r"the batch size 10 must be divisible by `num_microbatches`, got 3",
        ),
        ({"x": jnp.ones((10, 2))}, 0, ValueError, r"`num_microbatches` must be >= 1, got 0\."),
        ({"x": jnp.ones((10, 2))}, 2.0, TypeError, r"`num_microbatches` must be a Python int, got 2\.0\."),
        ({"x": jnp.ones((10, 2))}, True, TypeError, r"`num_microbatches` must be a Python int, got True\."),
        (
            {"x": jnp.ones((10, 2)), "y": jnp.ones(8)},
            2,
            ValueError,
            r"share one leading \(batch\) axis.*\[10, 8\]",
        ),
        ({"x": jnp.ones((10, 2)), "s": jnp.ones(())}, 2, ValueError, r"share one leading \(batch\) axis"),
        ({}, 2, ValueError, r"`batch` must contain at least one array"),
    ],
)
def test_microbatched_errors(batch, n, err, match):
    with pytest.raises(err, match="microbatched_value_and_grad: .*" + match):
        gc.microbatched_value_and_grad(lambda p, b: jnp.sum(p), jnp.ones(2), batch, n)


def test_microbatched_loss_fn_must_be_callable():
    with pytest.raises(TypeError, match=r"microbatched_value_and_grad: `loss_fn` must be callable"):
        gc.microbatched_value_and_grad(None, jnp.ones(2), {"x": jnp.ones((4, 1))}, 2)
