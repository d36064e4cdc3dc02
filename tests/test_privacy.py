"""DP-SGD's aggregation (`differentially_private_aggregate`) and `dpsgd`: Optax 0.2.8 parity
with the same key (the same Gaussian draws), a float64 NumPy transcription (noise drawn
with the documented key schedule), Optax's tests (no privacy, clipping norms, the noise's
standard deviation, aggregated input refused), each example's clipping, and errors."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12
SHAPES = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}
B = 5


def _problem(seed=0, dtype=jnp.float32):
    """Parameters with |p| >= 1 and N_STEPS batches of B per-example gradients, example i
    scaled by (1 + i): some under the clipping norm, some over."""
    params = jax.tree.map(lambda x: jnp.sign(x) * (1 + jnp.abs(x)), helpers.random_tree(seed, SHAPES, dtype))
    scale = 0.1 * (1.0 + np.arange(B)) ** 2
    rng = np.random.default_rng(seed + 1)
    batches = [
        jax.tree.map(
            lambda p: jnp.asarray(
                scale.reshape((B,) + (1,) * p.ndim) * rng.standard_normal((B, *p.shape)), dtype
            ),
            params,
        )
        for _ in range(N_STEPS)
    ]
    return params, batches


def _max_rel(actual_seq, expected_seq) -> float:
    worst = 0.0
    for a, b in zip(actual_seq, expected_seq):
        scale = max(float(np.max(np.abs(np.asarray(x, np.float64)))) for x in jax.tree.leaves(b))
        worst = max(worst, helpers.max_rel_diff(a, b, floor=max(1e-2 * scale, 1e-30)))
    return worst


# ------------------------------------------------------------------- Optax 0.2.8 parity
CONFIGS = {  # id: (name, args, kwargs); Optax's call has the same arguments
    "aggregate_typed_key": ("differentially_private_aggregate", (0.5, 1.5), {"key": jax.random.key(9)}),
    "dpsgd": ("dpsgd", (0.1, 2.0, 0.7, 3), {}),
    "dpsgd_nesterov": ("dpsgd", (0.1, 1.0, 0.3, 5), {"momentum": 0.9, "nesterov": True}),
}


# Every configuration jitted; the eager path (op by op: slow) for the richest ones.
EAGER = ["dpsgd_nesterov"]


@pytest.mark.parametrize(
    "key,jit",
    [(k, True) for k in CONFIGS] + [(k, False) for k in EAGER],
    ids=[*CONFIGS, *[f"{k}-eager" for k in EAGER]],
)
def test_matches_optax_with_the_same_draws(key, jit):
    optax = pytest.importorskip("optax")
    name, args, kw = CONFIGS[key]
    params, batches = _problem()
    u, p, s = helpers.run_steps(getattr(gc, name)(*args, **kw), params, batches, jit=jit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # optax.contrib.dpsgd passes `seed=`
        otx = getattr(optax.contrib, name)(*args, **kw)
    uo, po, so = helpers.run_optax(otx, params, batches, jit=jit)
    assert _max_rel(u, uo) <= 2e-5 and _max_rel(p, po) <= 2e-5
    key_data = (s if name != "dpsgd" else s[0]).rng_key
    okey = (so if name != "dpsgd" else so[0]).rng_key
    np.testing.assert_array_equal(np.asarray(key_data), np.asarray(jax.random.key_data(okey)))


# --------------------------------------------------------- float64 NumPy transcription
@pytest.mark.parametrize("clip,noise", [(2.0, 0.7), (np.inf, 0.0), (0.3, 0.0)])
def test_matches_float64_transcription(clip, noise):
    with jax.enable_x64(True):
        params, batches = _problem(dtype=jnp.float64)
        tx = gc.differentially_private_aggregate(clip, noise, key=11)
        updates, _, _ = helpers.run_steps(tx, params, batches)
        key = jax.random.key(11)
        for t, batch in enumerate(batches):
            g = [np.asarray(x, np.float64) for x in jax.tree.leaves(batch)]
            n = np.sqrt(sum(np.sum(x.reshape(B, -1) ** 2, axis=1) for x in g))
            factor = np.minimum(1.0, clip / n)
            key, *ks = jax.random.split(key, len(g) + 1)
            z = [np.asarray(jax.random.normal(k, x.shape[1:], jnp.float64)) for k, x in zip(ks, g)]
            u = [
                (
                    np.tensordot(factor, x, axes=1) + clip * noise * zi
                    if noise
                    else np.tensordot(factor, x, axes=1)
                )
                / B
                for x, zi in zip(g, z)
            ]
            for a, b in zip(jax.tree.leaves(updates[t]), u):
                assert a.dtype == np.float64
                np.testing.assert_allclose(np.asarray(a), b, rtol=1e-12, atol=1e-14, err_msg=f"step {t}")


# ----------------------------------------------------------------- Optax's test cases
def _optax_batch(batch_size=8):
    """Example i's gradients are full of i's (0 included: no division by a zero norm)."""
    params = {"key_a": (jnp.zeros((2, 3, 4)), jnp.zeros([])), "key_b": jnp.zeros((6, 7))}
    a = jnp.arange(batch_size, dtype=jnp.float32)
    grads = jax.tree.map(lambda p: jnp.moveaxis(jnp.broadcast_to(a, (*p.shape, batch_size)), -1, 0), params)
    return params, grads


def test_no_privacy_is_the_mean():
    params, grads = _optax_batch()
    tx = gc.differentially_private_aggregate(jnp.finfo(jnp.float32).max, 0.0, key=0)
    state, update = tx.init(params), jax.jit(tx.update)
    for _ in range(3):
        u, state = update(grads, state)
        helpers.assert_trees_close(u, jax.tree.map(lambda g: g.mean(0), grads), rtol=1e-6)


@pytest.mark.parametrize("clip", [0.5, 10.0, 20.0, 40.0, 80.0])
def test_each_example_is_clipped_to_the_norm(clip):
    params, grads = _optax_batch()
    tx = gc.differentially_private_aggregate(clip, 0.0, key=42)
    norms = np.sqrt(sum(np.sum(np.asarray(g).reshape(8, -1) ** 2, axis=1) for g in jax.tree.leaves(grads)))
    expected = np.mean(np.arange(8) / np.maximum(norms / clip, 1.0))
    state, update = tx.init(params), jax.jit(tx.update)
    for _ in range(3):
        u, state = update(grads, state, params)
        for leaf in jax.tree.leaves(u):
            np.testing.assert_allclose(leaf, np.broadcast_to(expected, leaf.shape), rtol=2e-6)


@pytest.mark.parametrize("clip,noise", [(3.0, 2.0), (1.0, 5.0), (100.0, 4.0)])
def test_noise_standard_deviation_is_clip_times_multiplier(clip, noise):
    tx = gc.differentially_private_aggregate(clip, noise, key=1337)
    state, update = tx.init([jnp.zeros((100, 100))]), jax.jit(tx.update)
    draws = []
    for _ in range(3):
        u, state = update([jnp.ones((1, 100, 100))], state)  # batch of one
        np.testing.assert_allclose(jnp.std(u[0]), clip * noise, rtol=0.05)
        np.testing.assert_allclose(
            jnp.mean(u[0]), min(1.0, clip / 100), atol=4 * clip * noise / 100
        )  # norm 100
        draws.append(np.asarray(u[0]))
    assert not np.array_equal(draws[0], draws[1])  # a new key each step


def test_aggregated_updates_are_refused():
    params, grads = _optax_batch()
    tx = gc.differentially_private_aggregate(0.1, 1.1, key=2021)
    mean = jax.tree.map(lambda g: g.mean(0), grads)
    with pytest.raises(ValueError, match="differentially_private_aggregate: `updates` must be per-example"):
        tx.update(mean, tx.init(params), params)
    with pytest.raises(ValueError, match="one size"):
        tx.update({"a": jnp.ones((2, 3)), "b": jnp.ones((3, 3))}, tx.init(params))


def test_small_and_zero_examples_are_kept_as_they_are():
    g = jnp.array([[0.0, 0.0], [0.3, 0.4], [30.0, 40.0]])  # norms 0, 0.5, 50
    tx = gc.differentially_private_aggregate(1.0, 0.0, key=0)
    u, _ = tx.update(g, tx.init(None))
    np.testing.assert_allclose(u, (np.array([0.3, 0.4]) + np.array([0.6, 0.8])) / 3, rtol=1e-6)


def test_key_forms_and_seed_give_the_same_draws():
    g = jnp.ones((2, 50))
    outs = [
        gc.differentially_private_aggregate(1.0, 1.0, **kw).update(
            g, gc.differentially_private_aggregate(1.0, 1.0, key=4).init(None)
        )[0]
        for kw in ({"key": 4},)
    ]
    for kw in ({"key": jax.random.key(4)}, {"key": jax.random.PRNGKey(4)}, {"seed": 4}):
        tx = gc.differentially_private_aggregate(1.0, 1.0, **kw)
        state = tx.init(None)
        assert state.rng_key.dtype == jnp.uint32
        np.testing.assert_array_equal(tx.update(g, state)[0], outs[0])


def test_bfloat16_gradients_stay_bfloat16():
    params, batches = _problem(dtype=jnp.bfloat16)
    u, _, _ = helpers.run_steps(gc.dpsgd(0.1, 1.0, 0.5, seed=0), params, batches[:2], jit=True)
    assert all(
        x.dtype == jnp.bfloat16 and x.shape == p.shape
        for x, p in zip(jax.tree.leaves(u[-1]), jax.tree.leaves(params))
    )


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make,exc,match",
    [
        (
            lambda: gc.differentially_private_aggregate(1.0, 1.0),
            TypeError,
            "differentially_private_aggregate: `key` must be",
        ),
        (
            lambda: gc.differentially_private_aggregate(1.0, 1.0, key=1, seed=1),
            ValueError,
            "`key` and `seed` must not both",
        ),
        (
            lambda: gc.differentially_private_aggregate(1.0, 1.0, key="k"),
            TypeError,
            "`key` must be a PRNG key",
        ),
        (
            lambda: gc.differentially_private_aggregate(-1.0, 1.0, key=0),
            ValueError,
            "differentially_private_aggregate: `l2_norm_clip`",
        ),
        (
            lambda: gc.differentially_private_aggregate(1.0, -1.0, key=0),
            ValueError,
            "differentially_private_aggregate: `noise_multiplier`",
        ),
        (lambda: gc.dpsgd(0.1, 1.0, 1.0, None), TypeError, "dpsgd: `seed`"),
        (lambda: gc.dpsgd(-0.1, 1.0, 1.0, 0), ValueError, "dpsgd: `learning_rate`"),
        (lambda: gc.dpsgd(0.1, 1.0, 1.0, 0, momentum=1.5), ValueError, "dpsgd: trace: `decay`"),
        (lambda: gc.dpsgd(0.1, 1.0, 1.0, 0, nesterov=None), TypeError, "dpsgd: `nesterov`"),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
