"""Regularization: add_decayed_weights, add_l1_penalty, l1_proximal."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 10
MASK = {"w": True, "b": False, "nested": [True, False]}


def _matrices(p):
    return jax.tree.map(lambda x: x.ndim > 1, p)


def _sched(c):
    return 0.1 * 0.9 ** c.astype(jnp.float32)


def _np_sched(t):
    return 0.1 * 0.9**t


def _soft(x, t):
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def _masked(mask, new, old):
    return jax.tree.map(lambda m, a, b: a if m else b, mask, new, old)


# ---------------------------------------------------------------- float64 references
# Each: (transformation, reference(g, p, t) -> u), one line per docstring formula line.
REFERENCES = {
    "add_decayed_weights": (
        lambda: gc.add_decayed_weights(0.05),
        lambda g, p, t: jax.tree.map(lambda g, p: g + 0.05 * p, g, p),
    ),
    "add_decayed_weights[schedule+mask]": (
        lambda: gc.add_decayed_weights(_sched, mask=MASK),
        lambda g, p, t: _masked(MASK, jax.tree.map(lambda g, p: g + _np_sched(t) * p, g, p), g),
    ),
    "add_l1_penalty": (
        lambda: gc.add_l1_penalty(0.3),
        lambda g, p, t: jax.tree.map(lambda g, p: g + 0.3 * np.sign(p), g, p),
    ),
    "add_l1_penalty[schedule+mask]": (
        lambda: gc.add_l1_penalty(_sched, mask=_matrices),
        lambda g, p, t: _masked(
            _matrices(p), jax.tree.map(lambda g, p: g + _np_sched(t) * np.sign(p), g, p), g
        ),
    ),
    "l1_proximal": (
        lambda: gc.l1_proximal(2.0, 0.1),
        lambda g, p, t: jax.tree.map(lambda u, p: _soft(p + u, 0.1 * 2.0) - p, g, p),
    ),
    "l1_proximal[schedules+mask]": (
        lambda: gc.l1_proximal(lambda c: 20.0 * _sched(c), _sched, mask=MASK),
        lambda g, p, t: _masked(
            MASK, jax.tree.map(lambda u, p: _soft(p + u, _np_sched(t) * 20.0 * _np_sched(t)) - p, g, p), g
        ),
    ),
}


@pytest.mark.parametrize("name", list(REFERENCES))
def test_matches_numpy_transcription(name):
    make, ref = REFERENCES[name]
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, N_STEPS, scale=0.3)
    us, ps, state = helpers.run_steps(make(), params, grads, jit=True)
    p = helpers.to_numpy64(params)
    for t, (g, u_got, p_got) in enumerate(zip(grads, us, ps)):
        u = ref(helpers.to_numpy64(g), p, t)
        p = jax.tree.map(lambda a, b: a + b, p, u)
        helpers.assert_trees_close(u_got, u, rtol=2e-6, atol=1e-6, msg=f"{name} step {t} updates")
        helpers.assert_trees_close(p_got, p, rtol=2e-6, atol=1e-6, msg=f"{name} step {t} params")
    count = jax.tree.leaves(state)[0]
    assert count.dtype == jnp.int32 and int(count) == N_STEPS
    if name.startswith("l1_proximal"):  # the proximal step makes weights exactly zero
        zeros = sum(int(np.sum(np.asarray(x) == 0.0)) for x in jax.tree.leaves(ps))
        assert zeros >= 5, f"{name}: only {zeros} exact zeros in {N_STEPS} steps"
    if "mask" in name:  # masked-out leaves pass unchanged
        helpers.assert_trees_close(us[-1]["b"], grads[-1]["b"], rtol=0.0)


def test_zero_weight_decay_is_identity_and_counts():
    tx = gc.add_decayed_weights()
    params = helpers.random_tree(0)
    g = helpers.random_tree(1)
    u, state = tx.update(g, tx.init(params), params)
    assert u is g and int(state.count) == 1


# ---------------------------------------------------------------- Optax 0.2.8
def _optax_pairs(optax):
    return {
        "const": (gc.add_decayed_weights(0.05), optax.add_decayed_weights(0.05)),
        "mask": (gc.add_decayed_weights(0.05, mask=MASK), optax.add_decayed_weights(0.05, mask=MASK)),
        "mask_fn": (gc.add_decayed_weights(0.05, _matrices), optax.add_decayed_weights(0.05, _matrices)),
        "schedule": (gc.add_decayed_weights(_sched), optax.add_decayed_weights(_sched)),
    }


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("variant", ["const", "mask", "mask_fn", "schedule"])
def test_add_decayed_weights_matches_optax(variant, jit):
    optax = pytest.importorskip("optax")
    tx, otx = _optax_pairs(optax)[variant]
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, N_STEPS)
    us, ps, _ = helpers.run_steps(gc.chain(tx, gc.scale(-0.1)), params, grads, jit=jit)
    uo, po, _ = helpers.run_optax(optax.chain(otx, optax.scale(-0.1)), params, grads, jit=jit)
    assert helpers.max_rel_diff(us, uo) <= 2e-5
    assert helpers.max_rel_diff(ps, po) <= 2e-5
    plain = [jax.tree.map(lambda x: -0.1 * x, g) for g in grads]
    assert helpers.max_rel_diff(us, plain) > 1e-3  # the decay term is there


# ---------------------------------------------------------------- placement: L2 vs AdamW
def _np_adam(state, g, b1=0.9, b2=0.999, eps=1e-8):
    t, m, v = state
    t = t + 1
    m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
    v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g**2, v, g)
    u = jax.tree.map(lambda m, v: (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps), m, v)
    return u, (t, m, v)


@pytest.mark.skipif(not hasattr(gc, "scale_by_adam"), reason="gradchain.scale_by_adam not available yet")
def test_add_decayed_weights_placement_l2_vs_decoupled():
    wd, lr = 0.1, 0.01
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, N_STEPS)
    l2 = gc.chain(gc.add_decayed_weights(wd), gc.scale_by_adam(), gc.scale(-lr))
    decoupled = gc.chain(gc.scale_by_adam(), gc.add_decayed_weights(wd), gc.scale(-lr))
    _, p_l2, _ = helpers.run_steps(l2, params, grads, jit=True)
    _, p_dec, _ = helpers.run_steps(decoupled, params, grads, jit=True)

    zeros = jax.tree.map(np.zeros_like, helpers.to_numpy64(params))
    p_a, s_a = helpers.to_numpy64(params), (0, zeros, zeros)
    p_b, s_b = p_a, s_a
    for t, g in enumerate(helpers.to_numpy64(grads)):
        # L2: the decay term is added to the gradient, then rescaled by Adam.
        a, s_a = _np_adam(s_a, jax.tree.map(lambda g, p: g + wd * p, g, p_a))
        p_a = jax.tree.map(lambda p, a: p - lr * a, p_a, a)
        # Decoupled (AdamW): Adam's direction, then the decay term, unscaled by Adam.
        a, s_b = _np_adam(s_b, g)
        p_b = jax.tree.map(lambda p, a: p - lr * (a + wd * p), p_b, a)
        helpers.assert_trees_close(p_l2[t], p_a, rtol=1e-5, atol=1e-6, msg=f"L2 step {t}")
        helpers.assert_trees_close(p_dec[t], p_b, rtol=1e-5, atol=1e-6, msg=f"AdamW step {t}")
    assert helpers.max_rel_diff(p_l2[-1], p_dec[-1]) > 1e-3  # the placement matters
    optax = pytest.importorskip("optax")
    _, p_opt, _ = helpers.run_optax(optax.adamw(lr, weight_decay=wd), params, grads, jit=True)
    assert helpers.max_rel_diff(p_dec, p_opt) <= 2e-5


# ---------------------------------------------------------------- lasso: exact zeros
def _lasso(seed=0, n=60, d=20):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d))
    x_true = np.zeros(d)
    x_true[[2, 7, 15]] = [2.0, -3.0, 1.5]
    b = a @ x_true + 0.01 * rng.standard_normal(n)
    lr = 1.0 / np.linalg.eigvalsh(a.T @ a / n).max()
    return a, b, x_true, lr


def _run_gradchain(tx, a, b, n_steps):
    a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)

    def loss(params):
        r = a32 @ params["x"] - b32
        return 0.5 * jnp.mean(r * r)

    def step(carry, _):
        params, state = carry
        u, state = tx.update(jax.grad(loss)(params), state, params)
        return (gc.apply_updates(params, u), state), None

    params = {"x": jnp.zeros(a.shape[1], jnp.float32)}
    (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=n_steps))((params, tx.init(params)))
    return np.asarray(params["x"])


def test_l1_proximal_lasso_reaches_exact_zeros_like_numpy_ista():
    a, b, x_true, lr = _lasso()
    l1, n_steps = 0.1, 300
    x_gc = _run_gradchain(
        gc.chain(gc.scale_by_learning_rate(float(lr)), gc.l1_proximal(l1, float(lr))), a, b, n_steps
    )
    x = np.zeros(a.shape[1])
    for _ in range(n_steps):  # ISTA
        x = _soft(x - lr * a.T @ (a @ x - b) / a.shape[0], lr * l1)
    np.testing.assert_allclose(x_gc, x, atol=2e-5)
    np.testing.assert_array_equal(x_gc == 0.0, x == 0.0)
    off = x_true == 0
    assert np.all(x_gc[off] == 0.0), f"not exactly zero off the support: {x_gc[off]}"
    assert np.all(x_gc[~off] != 0.0)
    # The subgradient penalty with the same step size never lands exactly on zero.
    x_sub = _run_gradchain(
        gc.chain(gc.add_l1_penalty(l1), gc.scale_by_learning_rate(float(lr))), a, b, n_steps
    )
    assert np.sum(x_sub == 0.0) < np.sum(off)
    np.testing.assert_allclose(x_sub[~off], x_gc[~off], atol=0.05)  # but is near the same solution


def test_l1_proximal_lands_exactly_on_soft_threshold_zero_in_bfloat16():
    tx = gc.l1_proximal(1.0, 0.5)
    p = jnp.asarray([0.3, -0.2, 2.0], jnp.bfloat16)
    u = jnp.asarray([0.1, 0.1, 0.0], jnp.bfloat16)
    new_u, _ = tx.update(u, tx.init(p), p)
    new_p = gc.apply_updates(p, new_u)
    assert new_u.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(new_p[:2], np.float32), [0.0, 0.0])
    np.testing.assert_allclose(np.asarray(new_p[2], np.float32), 1.5)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, exc, match",
    [
        (
            lambda: gc.add_decayed_weights(-0.1),
            ValueError,
            r"add_decayed_weights: `weight_decay` must be >= 0, got -0.1\.",
        ),
        (
            lambda: gc.add_decayed_weights("0.1"),
            TypeError,
            r"add_decayed_weights: `weight_decay` must be a number",
        ),
        (lambda: gc.add_decayed_weights(jnp.ones(2)), ValueError, r"`weight_decay` must be a scalar"),
        (lambda: gc.add_l1_penalty(-1.0), ValueError, r"add_l1_penalty: `l1` must be >= 0, got -1.0\."),
        (lambda: gc.add_l1_penalty(None), TypeError, r"add_l1_penalty: `l1` must be a number, got None"),
        (lambda: gc.l1_proximal(-0.1, 0.1), ValueError, r"l1_proximal: `l1` must be >= 0"),
        (lambda: gc.l1_proximal(0.1, -0.1), ValueError, r"l1_proximal: `learning_rate` must be >= 0"),
        (lambda: gc.l1_proximal(0.1, True), TypeError, r"l1_proximal: `learning_rate` must be a number"),
    ],
)
def test_factory_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    "factory", [gc.add_decayed_weights, gc.add_l1_penalty, lambda h, mask=None: gc.l1_proximal(h, 0.1, mask)]
)
def test_update_errors(factory):
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"the `mask` tree does not match the parameters"):
        factory(0.1, mask={"w": True}).init(params)
    with pytest.raises(TypeError, match=r"`mask` must be a pytree of Python bools"):
        factory(0.1, mask={"w": 1, "b": 0}).init(params)
    tx = factory(0.1)
    with pytest.raises(ValueError, match=r"the `updates` tree does not match `params`"):
        tx.update({"w": jnp.ones((2, 2))}, tx.init(params), params)
    with pytest.raises(ValueError, match=r"needs the parameters"):
        tx.update(params, tx.init(params))
