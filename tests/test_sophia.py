"""Sophia and Hutchinson's Hessian-diagonal estimator: Optax 0.2.8 parity (the same random
draws for the same key), a float64 NumPy transcription of the docstring rule (with an
objective whose Hessian is diagonal, where Hutchinson's estimate is exact), the estimator's
statistics, the refresh schedule, and argument errors."""

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


def separable(params):
    """Hessian ``diag(x**2 + 1)``: Hutchinson's estimate is exact."""
    return sum(jnp.sum(x**4 / 12 + x**2 / 2) for x in jax.tree.leaves(params))


def coupled(params):
    """A non-diagonal Hessian (each leaf's sum couples its entries): random estimates."""
    return sum(jnp.sum(x) ** 2 + jnp.sum(jnp.sin(x)) for x in jax.tree.leaves(params))


def _max_rel(actual_seq, expected_seq, floor=1e-2) -> float:
    """Largest difference relative to max(|expected|, ``floor`` x the step's largest |expected|)."""
    worst = 0.0
    for a, b in zip(actual_seq, expected_seq):
        scale = max(float(np.max(np.abs(np.asarray(x, np.float64)))) for x in jax.tree.leaves(b))
        worst = max(worst, helpers.max_rel_diff(a, b, floor=max(floor * scale, 1e-30)))
    return worst


# ------------------------------------------------------------------- Optax 0.2.8 parity
MASK = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
OPTAX = {  # id: (name, args, kwargs, objective); the same call builds both
    "sophia": ("sophia", (0.05,), {"update_interval": 3}, coupled),
    "sophia_separable": ("sophia", (0.05,), {"update_interval": 3}, separable),
    "sophia_custom": (
        "sophia",
        (0.05, 0.9, 0.95, 1e-6, 0.1, MASK, 0.05, None, 2),
        {},
        separable,
    ),
    "sophia_clip_schedule": (
        "sophia",
        (lambda c: 0.1 / (1.0 + c.astype(jnp.float32)),),
        {"clip_threshold": 0.3},
        coupled,
    ),
    "scale_by_sophia": ("scale_by_sophia", (), {"update_interval": 4, "gamma": 0.5}, coupled),
}


# Eager runs of gradchain are compared with Optax's jitted ones: Optax's eager step is the
# same numbers (its `lax.cond` compiles both branches on every eager call: ~4 s a step).
# With `coupled`, curvature estimates cross zero, where u = m / (gamma * v) magnifies the
# rounding differences of eager and fused (jitted) Hessian-vector products; and where the
# momentum crosses zero, eager and fused (FMA) EMAs differ by an ulp of the terms: eager
# runs are measured against each step's largest update.
EAGER = ["sophia_separable"]


@pytest.mark.parametrize(
    "key,jit",
    [(k, True) for k in OPTAX] + [(k, False) for k in EAGER],
    ids=[*OPTAX, *[f"{k}-eager" for k in EAGER]],
)
def test_matches_optax(key, jit):
    pytest.importorskip("optax")
    from optax.contrib import _sophia  # scale_by_sophia is not exported by optax.contrib

    name, args, kw, obj = OPTAX[key]
    params, grads = _problem()
    u, p, s = helpers.run_steps(
        getattr(gc, name)(*args, **kw), params, grads, jit=jit, extra_args={"obj_fn": obj}
    )
    otx = getattr(_sophia, name)(*args, **kw)
    uo, po, so = helpers.run_optax(otx, params, grads, jit=True, extra_args={"obj_fn": obj})
    floor = 1e-2 if jit else 1.0
    assert _max_rel(u, uo, floor) <= 2e-5 and _max_rel(p, po, floor) <= 2e-5
    state, ostate = (s, so) if name == "scale_by_sophia" else (s[0], so[0])
    helpers.assert_trees_close(state.nu, ostate.nu, rtol=2e-5, atol=1e-7)
    assert int(state.count) == int(ostate.count) == N_STEPS


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_hutchinson_draws_are_optax_bit_for_bit(jit):
    """The same key gives the same Rademacher signs (and so the same estimates), every step."""
    optax = pytest.importorskip("optax")
    params, grads = _problem()
    key = jax.random.PRNGKey(42)
    tx, otx = gc.hutchinson_estimator_diag_hessian(key), optax.contrib.hutchinson_estimator_diag_hessian(key)
    u, _, s = helpers.run_steps(tx, params, grads, jit=jit, extra_args={"obj_fn": coupled})
    uo, _, so = helpers.run_optax(otx, params, grads, jit=True, extra_args={"obj_fn": coupled})
    for a, b in zip(u, uo):
        helpers.assert_trees_close(a, b, rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(s.key), np.asarray(so.key))


def test_hutchinson_key_forms_give_the_same_draws():
    params, grads = _problem()
    outs = []
    for key in (3, jax.random.PRNGKey(3), jax.random.key(3)):
        tx = gc.hutchinson_estimator_diag_hessian(key)
        u, _, s = helpers.run_steps(tx, params, grads[:2], extra_args={"obj_fn": coupled})
        assert s.key.dtype == jnp.uint32
        outs.append(u)
    for u in outs[1:]:
        helpers.assert_trees_close(u, outs[0], rtol=0)


# --------------------------------------------------------- float64 NumPy transcription
def np_sophia(b1=0.965, b2=0.99, eps=1e-8, gamma=0.01, clip=1.0, k=10):
    """Leafwise ``(g, p) -> u`` of the docstring rule; the estimator is exact here:
    h = diag of the Hessian of `separable` = p**2 + 1."""
    s = {"t": 0}

    def step(g, p):
        s["t"] += 1
        t, m, v = s["t"], s.get("m", 0 * g), s.get("v", 0 * g)
        m = b1 * m + (1 - b1) * g
        u = (m / (1 - b1**t)) / np.maximum(gamma * v, eps)
        u = u if clip is None else np.clip(u, -clip, clip)
        v = b2 * v + (1 - b2) * (p**2 + 1) if (t - 1) % k == 0 else v
        s.update(m=m, v=v)
        return u

    return step


TRANSCRIPTIONS = {  # id: (gradchain, transcription, lr, wd)
    "scale_by_sophia": (lambda: gc.scale_by_sophia(update_interval=3), lambda: np_sophia(k=3), None, 0.0),
    "scale_by_sophia_custom": (
        lambda: gc.scale_by_sophia(0.5, 0.8, 1e-3, 0.5, None, 2),
        lambda: np_sophia(0.5, 0.8, 1e-3, 0.5, None, 2),
        None,
        0.0,
    ),
    "sophia": (lambda: gc.sophia(0.1, weight_decay=0.2, gamma=1.0, update_interval=4), None, 0.1, 0.2),
}


@pytest.mark.parametrize("key", TRANSCRIPTIONS)
def test_matches_float64_transcription(key):
    make, make_ref, lr, wd = TRANSCRIPTIONS[key]
    make_ref = make_ref or (lambda: np_sophia(gamma=1.0, k=4))
    with jax.enable_x64(True):
        params, grads = _problem(dtype=jnp.float64)
        updates, _, _ = helpers.run_steps(make(), params, grads, jit=True, extra_args={"obj_fn": separable})
    for i, p in enumerate(jax.tree.leaves(helpers.to_numpy64(params))):
        ref = make_ref()
        for t, g in enumerate(grads):
            u = ref(np.asarray(jax.tree.leaves(g)[i], np.float64), p)
            if lr is not None:
                u = -lr * (u + wd * p)
            got = np.asarray(jax.tree.leaves(updates[t])[i])
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, u, rtol=1e-10, atol=1e-300, err_msg=f"leaf {i} step {t}")
            p = p + u


# ------------------------------------------------------------- statistics and schedule
def test_hutchinson_is_unbiased_for_a_non_diagonal_hessian():
    """E[r * (A r)] = diag(A); each draw is diag(A) + sum_{j != i} A_ij r_i r_j."""
    rng = np.random.default_rng(0)
    m = rng.standard_normal((6, 6))
    a = jnp.asarray(m + m.T, jnp.float32)
    obj = lambda x: 0.5 * x @ a @ x
    tx = gc.hutchinson_estimator_diag_hessian(jax.random.key(7))
    x = jnp.ones(6)

    def body(state, _):
        h, state = tx.update(x, state, x, obj_fn=obj)
        return state, h

    _, draws = jax.jit(lambda s: jax.lax.scan(body, s, None, length=4000))(tx.init(x))
    draws = np.asarray(draws, np.float64)
    off = np.sqrt((np.asarray(a) ** 2).sum(1) - np.diag(np.asarray(a)) ** 2)  # std of one draw
    np.testing.assert_array_less(np.abs(draws.mean(0) - np.diag(np.asarray(a))), 5 * off / np.sqrt(4000))
    np.testing.assert_allclose(draws.std(0), off, rtol=0.1)
    assert len({tuple(d) for d in draws[:10]}) >= 5  # the key advances


def test_curvature_is_refreshed_every_update_interval_steps_only():
    calls = []

    def counting_estimator():
        inner = gc.hutchinson_estimator_diag_hessian()

        def update(u, s, p=None, **kw):
            calls.append(1)
            return inner.update(u, s, p, **kw)

        return gc.GradientTransformation(inner.init, update)

    params, grads = _problem()
    tx = gc.scale_by_sophia(update_interval=4, hessian_diagonal_fn=counting_estimator())
    state, nus = tx.init(params), []
    for g in grads[:9]:
        _, state = tx.update(g, state, params, obj_fn=separable)
        nus.append(np.asarray(state.nu["b"]))
    assert len(calls) == 3  # eager: steps 1, 5, 9 only
    changed = [not np.array_equal(nus[t], nus[t - 1]) for t in range(1, 9)]
    assert changed == [False, False, False, True, False, False, False, True]


def test_first_step_divides_by_eps_and_is_clipped():
    params = {"x": jnp.array([1.0, -2.0, 1e-12])}
    g = {"x": jnp.array([3.0, -0.5, 1e-12])}
    tx = gc.scale_by_sophia(clip_threshold=0.5)
    u, state = tx.update(g, tx.init(params), params, obj_fn=separable)
    np.testing.assert_allclose(u["x"], [0.5, -0.5, 1e-4], rtol=1e-5)
    np.testing.assert_allclose(state.nu["x"], 0.01 * np.array([2.0, 5.0, 1.0]), rtol=1e-6)
    unclipped, _ = gc.scale_by_sophia(clip_threshold=None).update(
        g, tx.init(params), params, obj_fn=separable
    )
    np.testing.assert_allclose(unclipped["x"], np.array([3.0, -0.5, 1e-12]) / 1e-8, rtol=1e-5)


def test_mu_dtype_and_bfloat16_params():
    params, grads = _problem()
    tx = gc.sophia(0.1, mu_dtype=jnp.bfloat16, update_interval=2)
    u, _, s = helpers.run_steps(tx, params, grads[:3], jit=True, extra_args={"obj_fn": separable})
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(s[0].mu))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(u[-1]) + jax.tree.leaves(s[0].nu))


def test_verbose_prints_the_win_rate(capfd):
    params, grads = _problem()
    tx = gc.scale_by_sophia(verbose=True, print_win_rate_every_n_steps=2)
    helpers.run_steps(tx, params, grads[:4], jit=True, extra_args={"obj_fn": separable})
    jax.effects_barrier()
    assert capfd.readouterr().out.count("Sophia optimizer win rate") == 2


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: gc.scale_by_sophia(b1=1.0), ValueError, "scale_by_sophia: `b1`"),
        (lambda: gc.scale_by_sophia(b2=-0.1), ValueError, "scale_by_sophia: `b2`"),
        (lambda: gc.scale_by_sophia(eps=0.0), ValueError, "scale_by_sophia: `eps`"),
        (lambda: gc.scale_by_sophia(gamma=-1.0), ValueError, "scale_by_sophia: `gamma`"),
        (lambda: gc.scale_by_sophia(clip_threshold=0.0), ValueError, "scale_by_sophia: `clip_threshold`"),
        (lambda: gc.scale_by_sophia(update_interval=0), ValueError, "scale_by_sophia: `update_interval`"),
        (lambda: gc.scale_by_sophia(update_interval=1.5), ValueError, "scale_by_sophia: `update_interval`"),
        (
            lambda: gc.scale_by_sophia(hessian_diagonal_fn=abs),
            TypeError,
            "scale_by_sophia: `hessian_diagonal_fn`",
        ),
        (lambda: gc.scale_by_sophia(mu_dtype=jnp.int32), TypeError, "scale_by_sophia: `mu_dtype`"),
        (lambda: gc.scale_by_sophia(verbose=True), ValueError, "`print_win_rate_every_n_steps`"),
        (lambda: gc.sophia(-0.1), ValueError, "sophia: `learning_rate`"),
        (lambda: gc.sophia(0.1, b1=2.0), ValueError, "sophia: scale_by_sophia: `b1`"),
        (
            lambda: gc.hutchinson_estimator_diag_hessian("seed"),
            TypeError,
            "hutchinson_estimator_diag_hessian: `random_seed`",
        ),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_update_needs_obj_fn_and_params():
    params, grads = _problem()
    tx = gc.sophia(0.1)
    with pytest.raises(ValueError, match="hutchinson_estimator_diag_hessian: `obj_fn` must be passed"):
        tx.update(grads[0], tx.init(params), params)
    with pytest.raises(ValueError, match="scale_by_sophia: this transformation needs the parameters"):
        tx.update(grads[0], tx.init(params), None, obj_fn=separable)
    h = gc.hutchinson_estimator_diag_hessian()
    with pytest.raises(ValueError, match="hutchinson_estimator_diag_hessian: the update at leaf"):
        h.update({**grads[0], "b": jnp.ones(3)}, h.init(params), params, obj_fn=separable)
