"""SAM and normalize: Optax 0.2.8 parity (transparent and opaque modes), float64 NumPy
transcriptions of the two-step scheme, the synchronisation steps, ``sync_period=1`` (where
Optax returns to stale parameters), ``pmean`` over a batch axis, and argument errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12
SHAPES = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}


def _problem(seed=0, dtype=jnp.float32):
    params = jax.tree.map(lambda x: jnp.sign(x) * (1 + jnp.abs(x)), helpers.random_tree(seed, SHAPES, dtype))
    return params, helpers.grad_sequence(seed + 1, params, N_STEPS)


def loss(params):
    return sum(jnp.sum(x**4 / 12 + x**2 / 2) for x in jax.tree.leaves(params))


def _max_rel(actual_seq, expected_seq) -> float:
    worst = 0.0
    for a, b in zip(actual_seq, expected_seq):
        scale = max(float(np.max(np.abs(np.asarray(x, np.float64)))) for x in jax.tree.leaves(b))
        worst = max(worst, helpers.max_rel_diff(a, b, floor=max(1e-2 * scale, 1e-30)))
    return worst


# ------------------------------------------------------------------- Optax 0.2.8 parity
def _pair(lib, outer, adv, **kw):
    o = lib.contrib if lib is not gc else gc
    return o.sam(outer(lib), lib.chain(o.normalize(), adv(lib)), **kw)


CONFIGS = {
    "sgd_k2": (lambda m: m.sgd(0.1), lambda m: m.sgd(0.05), {}),
    "adam_k3": (lambda m: m.adam(0.05), lambda m: m.sgd(0.1), {"sync_period": 3}),
    "adam_adv_keep_state": (
        lambda m: m.sgd(0.1, momentum=0.9),
        lambda m: m.adam(0.05),
        {"reset_state": False},
    ),
    "opaque_k3": (lambda m: m.adam(0.05), lambda m: m.sgd(0.05), {"sync_period": 3, "opaque_mode": True}),
}


# Every configuration jitted; the eager path (op by op: slow) for the richest ones.
EAGER = ["adam_adv_keep_state", "opaque_k3"]


@pytest.mark.parametrize(
    "key,jit",
    [(k, True) for k in CONFIGS] + [(k, False) for k in EAGER],
    ids=[*CONFIGS, *[f"{k}-eager" for k in EAGER]],
)
def test_matches_optax(key, jit):
    optax = pytest.importorskip("optax")
    outer, adv, kw = CONFIGS[key]
    params, grads = _problem()
    extra = {"grad_fn": lambda p, i: jax.grad(loss)(p)} if kw.get("opaque_mode") else None
    u, p, s = helpers.run_steps(_pair(gc, outer, adv, **kw), params, grads, jit=jit, extra_args=extra)
    with jax.numpy_dtype_promotion("standard"):
        otx = _pair(optax, outer, adv, **kw)
    uo, po, so = helpers.run_optax(otx, params, grads, jit=jit, extra_args=extra)
    assert _max_rel(u, uo) <= 2e-5 and _max_rel(p, po) <= 2e-5
    assert int(s.steps_since_sync) == int(so.steps_since_sync)
    if not kw.get("opaque_mode"):
        helpers.assert_trees_close(s.cache, so.cache, rtol=2e-5, atol=1e-6)


def test_normalize_matches_optax():
    optax = pytest.importorskip("optax")
    params, grads = _problem()
    u, _, _ = helpers.run_steps(gc.normalize(), params, grads[:3], jit=True)
    uo, _, _ = helpers.run_optax(optax.contrib.normalize(), params, grads[:3], jit=True)
    assert _max_rel(u, uo) <= 2e-6


# --------------------------------------------------------- float64 NumPy transcriptions
def _flat(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def np_sam_sgd(x0, lr, rho, k):
    """The docstring's transparent scheme with O = sgd(lr), A = chain(normalize(), sgd(rho)),
    over the list of leaves (the norm is global)."""
    s = {"i": 0, "c": None}

    def step(g, x):
        c = x if s["i"] == 0 else s["c"]
        if s["i"] < k - 1:
            norm = np.sqrt(sum(np.sum(gi**2) for gi in g))
            u = [rho * gi / norm for gi in g]  # -A(g)
        else:
            u = [(ci - xi) - lr * gi for ci, xi, gi in zip(c, x, g)]
        s.update(i=(s["i"] + 1) % k, c=c)
        return u

    return step


@pytest.mark.parametrize("k", [1, 2, 3])
def test_transparent_matches_float64_transcription(k):
    with jax.enable_x64(True):
        params, grads = _problem(dtype=jnp.float64)
        tx = gc.sam(gc.sgd(0.1), gc.chain(gc.normalize(), gc.sgd(0.05)), sync_period=k)
        updates, _, _ = helpers.run_steps(tx, params, grads)
    x, ref = _flat(params), np_sam_sgd(_flat(params), 0.1, 0.05, k)
    for t, g in enumerate(grads):
        u = ref(_flat(g), x)
        for a, b in zip(_flat(updates[t]), u):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"step {t}")
        x = [xi + ui for xi, ui in zip(x, u)]


def test_opaque_matches_float64_transcription():
    """One call: y = x; d = g; k - 1 times (y = y + rho d / |d|, d = grad(y)); u = -lr d."""
    k, lr, rho = 3, 0.1, 0.05
    with jax.enable_x64(True):
        params, grads = _problem(dtype=jnp.float64)
        tx = gc.sam(gc.sgd(lr), gc.chain(gc.normalize(), gc.sgd(rho)), sync_period=k, opaque_mode=True)
        updates, _, _ = helpers.run_steps(
            tx, params, grads, extra_args={"grad_fn": lambda p, i: jax.grad(loss)(p)}
        )
    x = _flat(params)
    for t, g in enumerate(grads):
        y, d = x, _flat(g)
        for _ in range(k - 1):
            norm = np.sqrt(sum(np.sum(di**2) for di in d))
            y = [yi + rho * di / norm for yi, di in zip(y, d)]
            d = [yi**3 / 3 + yi for yi in y]  # grad of `loss`
        u = [-lr * di for di in d]
        for a, b in zip(_flat(updates[t]), u):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"step {t}")
        x = [xi + ui for xi, ui in zip(x, u)]


def test_normalize_matches_float64_transcription_and_keeps_zero():
    with jax.enable_x64(True):
        _, grads = _problem(dtype=jnp.float64)
        tx = gc.normalize()
        for g in grads:
            u, _ = tx.update(g, tx.init(g))
            norm = np.sqrt(sum(np.sum(x**2) for x in _flat(g)))
            for a, b in zip(_flat(u), _flat(g)):
                np.testing.assert_allclose(a, b / norm, rtol=1e-12)
    zero = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2), jnp.bfloat16)}
    u, _ = gc.normalize().update(zero, gc.NormalizeState())
    assert all(
        not np.any(np.asarray(x)) and x.dtype == z.dtype
        for x, z in zip(jax.tree.leaves(u), jax.tree.leaves(zero))
    )


# ---------------------------------------------------------------------- the sync steps
def test_sync_steps_cycle_and_states_advance_only_where_they_should():
    params, grads = _problem()
    tx = gc.sam(gc.adam(0.1), gc.chain(gc.normalize(), gc.adam(0.05)), sync_period=3)
    state, x = tx.init(params), params
    for t, g in enumerate(grads[:7]):
        before = state
        u, state = tx.update(g, state, x)
        x = gc.apply_updates(x, u)
        outer_count = int(jax.tree.leaves(state.opt_state[0])[0])  # adam's count
        adv_count = int(jax.tree.leaves(state.adv_state[1][0])[0])
        assert int(state.steps_since_sync) == (t + 1) % 3
        assert outer_count == (t + 1) // 3
        assert adv_count == (0 if t % 3 == 2 else t % 3 + 1)  # reset at each outer step
        if t % 3 == 2:  # back to the cached point, then the outer step
            outer_u, _ = gc.adam(0.1).update(g, before.opt_state, before.cache)
            helpers.assert_trees_close(x, gc.apply_updates(before.cache, outer_u), rtol=1e-6, atol=1e-6)
        if t % 3 == 0:
            helpers.assert_trees_close(
                state.cache, gc.apply_updates(x, jax.tree.map(jnp.negative, u)), rtol=1e-6
            )


def test_reset_state_false_keeps_the_adversarial_state_across_outer_steps():
    params, grads = _problem()
    tx = gc.sam(gc.sgd(0.1), gc.chain(gc.normalize(), gc.adam(0.05)), sync_period=2, reset_state=False)
    _, _, state = helpers.run_steps(tx, params, grads[:6])
    assert int(jax.tree.leaves(state.adv_state[1][0])[0]) == 3  # three adversarial steps


def test_sync_period_one_is_the_outer_optimizer_and_optax_is_not():
    """k = 1: every call is an outer step. Optax 0.2.8 computes it from the cache of the
    previous call and so returns to the parameters before that call."""
    optax = pytest.importorskip("optax")
    params, grads = _problem()
    u, _, _ = helpers.run_steps(gc.sam(gc.adam(0.1), gc.normalize(), sync_period=1), params, grads)
    ref, _, _ = helpers.run_steps(gc.adam(0.1), params, grads)
    assert _max_rel(u, ref) <= 1e-6
    otx = optax.contrib.sam(optax.adam(0.1), optax.contrib.normalize(), sync_period=1)
    uo, po, _ = helpers.run_optax(otx, params, grads)
    assert _max_rel(uo[:1], ref[:1]) <= 1e-6 and _max_rel(uo[1:2], ref[1:2]) > 0.1
    helpers.assert_trees_close(po[1], gc.apply_updates(params, ref[1]), rtol=1e-5)  # from x_0 again


def test_opaque_mode_pmeans_over_the_batch_axis():
    params, grads = _problem()
    tx = gc.sam(gc.sgd(0.1), gc.chain(gc.normalize(), gc.sgd(0.05)), opaque_mode=True, batch_axis_name="i")
    weights = jnp.array([1.0, 3.0])
    grad_fn = lambda p, i: jax.tree.map(lambda x: x * weights[jax.lax.axis_index("i")], jax.grad(loss)(p))
    u, _ = jax.jit(jax.vmap(lambda g: tx.update(g, tx.init(params), params, grad_fn=grad_fn), axis_name="i"))(
        jax.tree.map(lambda g: jnp.stack([g, g]), grads[0])
    )
    plain = gc.sam(gc.sgd(0.1), gc.chain(gc.normalize(), gc.sgd(0.05)), opaque_mode=True)
    mean_fn = lambda p, i: jax.tree.map(lambda x: 2.0 * x, jax.grad(loss)(p))
    ref, _ = plain.update(grads[0], plain.init(params), params, grad_fn=mean_fn)
    for i in range(2):
        helpers.assert_trees_close(jax.tree.map(lambda x: x[i], u), ref, rtol=1e-6)


def test_extra_args_reach_both_optimizers():
    """Optax passes none; gradchain forwards them (here MoMo's loss value)."""
    params, grads = _problem()
    tx = gc.sam(gc.momo(0.1), gc.chain(gc.normalize(), gc.sgd(0.05)))
    u, _, _ = helpers.run_steps(tx, params, grads[:2], extra_args={"value": jnp.asarray(5.0)})
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u))


def test_converges_on_optax_parabola():
    """Optax's test: SAM (sgd outer, normalized sgd/adam inner) reaches the minimum."""
    target = jnp.array([1.0, -1.0, 1.0])
    grad = jax.grad(lambda p: jnp.sum((p - target) ** 2))
    for adv in (gc.sgd(1e-3), gc.adam(1e-3)):
        for opaque in (False, True):
            tx = gc.sam(gc.sgd(0.05), gc.chain(gc.normalize(), adv), opaque_mode=opaque)
            extra = {"grad_fn": lambda p, _: grad(p)} if opaque else {}

            def body(carry, _):
                p, s = carry
                u, s = tx.update(grad(p), s, p, **extra)
                return (gc.apply_updates(p, u), s), None

            p0 = jnp.array([-1.0, 10.0, 1.0])
            (p, _), _ = jax.jit(lambda c: jax.lax.scan(body, c, None, length=400))((p0, tx.init(p0)))
            np.testing.assert_allclose(p, target, atol=3e-2)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make,exc,match",
    [
        (
            lambda: gc.sam(gc.sgd(0.1), gc.sgd(0.1), sync_period=0),
            ValueError,
            "sam: `sync_period` must be >= 1",
        ),
        (lambda: gc.sam(gc.sgd(0.1), gc.sgd(0.1), sync_period=2.0), TypeError, "sam: `sync_period`"),
        (lambda: gc.sam(gc.sgd, gc.sgd(0.1)), TypeError, "sam: `optimizer`"),
        (lambda: gc.sam(gc.sgd(0.1), None), TypeError, "sam: `adv_optimizer`"),
        (lambda: gc.sam(gc.sgd(0.1), gc.sgd(0.1), reset_state=1), TypeError, "sam: `reset_state`"),
        (lambda: gc.sam(gc.sgd(0.1), gc.sgd(0.1), opaque_mode="yes"), TypeError, "sam: `opaque_mode`"),
        (lambda: gc.sam(gc.sgd(0.1), gc.sgd(0.1), batch_axis_name=0), TypeError, "sam: `batch_axis_name`"),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_update_errors():
    params, grads = _problem()
    tx = gc.sam(gc.sgd(0.1), gc.normalize(), opaque_mode=True)
    with pytest.raises(ValueError, match="sam: `grad_fn` must be passed to update"):
        tx.update(grads[0], tx.init(params), params)
    for t in (tx, gc.sam(gc.sgd(0.1), gc.normalize())):
        with pytest.raises(ValueError, match="sam: this transformation needs the parameters"):
            t.update(grads[0], t.init(params), None, grad_fn=lambda p, i: p)
    t = gc.sam(gc.sgd(0.1), gc.normalize())
    with pytest.raises(ValueError, match="sam: the update at leaf"):
        t.update({**grads[0], "b": jnp.ones(2)}, t.init(params), params)
    with pytest.raises(TypeError, match="normalize: `updates` must hold floating-point arrays"):
        gc.normalize().update(jnp.arange(3), gc.NormalizeState())
