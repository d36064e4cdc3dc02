"""Clipping: clip_by_value, clip_by_global_norm, clip_by_norm, clip_by_block_rms, adaptive_grad_clip."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 10
# Every default unit layout of adaptive_grad_clip: scalar, vector, a (1, n) row that
# squeezes to a vector, dense, multi-head, conv 2-d and conv 3-d kernels.
SHAPES = {
    "s": (),
    "b": (4,),
    "row": (1, 5),
    "w": (3, 4),
    "mh": (2, 3, 4),
    "conv": (2, 2, 3, 4),
    "c3d": (2, 2, 2, 2, 3),
}


def _params(shapes=SHAPES):
    return helpers.random_tree(0, shapes)


def _grads(scale=1.0, shapes=SHAPES):
    """10 random gradient trees of alternating magnitude, one of them all zeros."""
    grads = helpers.grad_sequence(1, _params(shapes), N_STEPS)
    mult = [scale * (0.05 if t % 2 else 1.0) for t in range(N_STEPS)]
    mult[4] = 0.0
    return [jax.tree.map(lambda x, m=m: (m * x).astype(x.dtype), g) for g, m in zip(grads, mult)]


# ---------------------------------------------------------------- float64 references
def _np_clip_by_value(g, p, d):
    return jax.tree.map(lambda x: np.minimum(np.maximum(x, -d), d), g), None


def _np_clip_by_global_norm(g, p, max_norm):
    n = np.sqrt(sum(np.sum(x**2) for x in jax.tree.leaves(g)))
    c = min(1.0, max_norm / n) if n > 0 else 1.0
    return jax.tree.map(lambda x: c * x, g), n


def _np_clip_by_norm(g, p, max_norm):
    def f(x):
        n = np.sqrt(np.sum(x**2))
        return (min(1.0, max_norm / n) if n > 0 else 1.0) * x

    return jax.tree.map(f, g), None


def _np_clip_by_block_rms(g, p, threshold):
    def f(x):
        r = np.sqrt(np.sum(x**2) / x.size)
        return (min(1.0, threshold / r) if r > 0 else 1.0) * x

    return jax.tree.map(f, g), None


def _np_unit_axes(shape):
    if sum(d != 1 for d in shape) <= 1:
        return tuple(range(len(shape)))
    return (0,) if len(shape) in (2, 3) else tuple(range(len(shape) - 1))


def _np_agc(g, p, clipping, eps=1e-3, axis=None):
    def f(gx, px):
        ax = _np_unit_axes(gx.shape) if axis is None else axis
        gn = np.sqrt(np.sum(gx**2, axis=ax, keepdims=True))
        pn = np.sqrt(np.sum(px**2, axis=ax, keepdims=True))
        m = clipping * np.maximum(pn, eps)
        return np.where(gn < m, gx, gx * m / np.maximum(gn, 1e-6))

    return jax.tree.map(f, g, p), None


REFERENCES = {
    "clip_by_value": (lambda: gc.clip_by_value(0.3), lambda g, p: _np_clip_by_value(g, p, 0.3)),
    "clip_by_global_norm": (
        lambda: gc.clip_by_global_norm(1.0),
        lambda g, p: _np_clip_by_global_norm(g, p, 1.0),
    ),
    "clip_by_norm": (lambda: gc.clip_by_norm(0.5), lambda g, p: _np_clip_by_norm(g, p, 0.5)),
    "clip_by_block_rms": (lambda: gc.clip_by_block_rms(0.4), lambda g, p: _np_clip_by_block_rms(g, p, 0.4)),
    "adaptive_grad_clip": (lambda: gc.adaptive_grad_clip(0.3), lambda g, p: _np_agc(g, p, 0.3)),
    "adaptive_grad_clip[axis,eps]": (
        lambda: gc.adaptive_grad_clip(0.3, eps=0.5, axis=-1),
        lambda g, p: _np_agc(g, p, 0.3, eps=0.5, axis=-1),
    ),
}


@pytest.mark.parametrize("name", list(REFERENCES))
def test_matches_numpy_transcription(name):
    make, ref = REFERENCES[name]
    params, grads = _params(), _grads()
    us, ps, _ = helpers.run_steps(make(), params, grads, jit=True)
    p = helpers.to_numpy64(params)
    n_clipped = 0
    for t, (g, u_got, p_got) in enumerate(zip(grads, us, ps)):
        g = helpers.to_numpy64(g)
        u, _ = ref(g, p)
        p = jax.tree.map(lambda a, b: a + b, p, u)
        helpers.assert_trees_close(u_got, u, rtol=2e-6, atol=1e-7, msg=f"{name} step {t} updates")
        helpers.assert_trees_close(p_got, p, rtol=2e-6, atol=1e-6, msg=f"{name} step {t} params")
        n_clipped += helpers.max_rel_diff(u, g) > 1e-3
    # The gradient sequence exercises both branches: some steps clipped, some untouched.
    assert 0 < n_clipped < N_STEPS, f"{name}: {n_clipped} of {N_STEPS} steps clipped"
    for leaf in jax.tree.leaves(us[4]):  # the all-zero step: no NaN, zeros out
        np.testing.assert_array_equal(np.asarray(leaf), 0.0)


def test_clip_by_global_norm_state_holds_incoming_norm():
    tx = gc.clip_by_global_norm(1.0)
    params = _params()
    state = tx.init(params)
    assert state.global_norm.shape == () and state.global_norm.dtype == jnp.float32
    assert float(state.global_norm) == 0.0
    step = jax.jit(tx.update)
    for t, g in enumerate(_grads()):
        u, state = step(g, state)
        _, n = _np_clip_by_global_norm(helpers.to_numpy64(g), None, 1.0)
        np.testing.assert_allclose(state.global_norm, n, rtol=2e-6, err_msg=f"step {t}")
        assert state.global_norm.dtype == jnp.float32
        # One scalar factor for the whole tree: every leaf is scaled by the same number.
        ratios = [
            np.asarray(a, np.float64) / np.asarray(b, np.float64)
            for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(g))
            if n > 0
        ]
        if ratios:
            r = np.concatenate([x.ravel() for x in ratios])
            np.testing.assert_allclose(r, min(1.0, 1.0 / n), rtol=2e-6)


def test_clip_by_global_norm_bfloat16_norm_is_float32_and_exact_below_bound():
    g = {"a": jnp.full((4096,), 0.01, jnp.bfloat16), "b": None}
    u, state = gc.clip_by_global_norm(10.0).update(g, gc.clip_by_global_norm(10.0).init(g))
    assert state.global_norm.dtype == jnp.float32 and u["a"].dtype == jnp.bfloat16 and u["b"] is None
    np.testing.assert_allclose(state.global_norm, 64 * float(jnp.bfloat16(0.01)), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(u["a"]), np.asarray(g["a"]))  # factor exactly 1


# ---------------------------------------------------------------- Optax 0.2.8
def _optax_pairs(optax):
    return {
        "clip_by_value": (gc.clip_by_value(0.3), optax.clip(0.3)),
        "clip_by_global_norm": (gc.clip_by_global_norm(1.0), optax.clip_by_global_norm(1.0)),
        "clip_by_block_rms": (gc.clip_by_block_rms(0.4), optax.clip_by_block_rms(0.4)),
        "adaptive_grad_clip": (gc.adaptive_grad_clip(0.3), optax.adaptive_grad_clip(0.3)),
        "adaptive_grad_clip[axis,eps]": (
            gc.adaptive_grad_clip(0.3, eps=0.5, axis=-1),
            optax.adaptive_grad_clip(0.3, eps=0.5, axis=-1),
        ),
    }


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    "name",
    [
        "clip_by_value",
        "clip_by_global_norm",
        "clip_by_block_rms",
        "adaptive_grad_clip",
        "adaptive_grad_clip[axis,eps]",
    ],
)
def test_matches_optax(name, jit):
    optax = pytest.importorskip("optax")
    tx, otx = _optax_pairs(optax)[name]
    # Jitted, AGC sees every unit layout; eager runs use the common test tree (each new
    # shape costs eager compilations). Optax rejects `axis=-1` on a scalar leaf.
    shapes = SHAPES if jit and name.startswith("adaptive") else helpers.SHAPES
    if "axis" in name:
        shapes = (
            {"w": (3, 4), "b": (4,), "nested": [(2, 2, 3)]}
            if not jit
            else {k: v for k, v in SHAPES.items() if v}
        )
    params, grads = _params(shapes), _grads(scale=2.0, shapes=shapes)
    # Followed by a learning rate, as in an optimizer (a step as large as the clipped
    # gradient would make some parameters cancel to near 0, where rounding dominates).
    us, ps, _ = helpers.run_steps(gc.chain(tx, gc.scale(-0.1)), params, grads, jit=jit)
    uo, po, _ = helpers.run_optax(optax.chain(otx, optax.scale(-0.1)), params, grads, jit=jit)
    assert helpers.max_rel_diff(us, uo) <= 2e-5
    assert helpers.max_rel_diff(ps, po) <= 2e-5
    assert helpers.max_rel_diff(us, [jax.tree.map(lambda x: -0.1 * x, g) for g in grads]) > 1e-2  # clipped


# ---------------------------------------------------------------- torch
def _torch_leaves(tree):
    torch = pytest.importorskip("torch")
    out = []
    for x in jax.tree.leaves(tree):
        t = torch.zeros(x.shape, dtype=torch.float32, requires_grad=True)
        t.grad = torch.tensor(np.asarray(x, np.float32))
        out.append(t)
    return out


def test_clip_by_global_norm_matches_torch_clip_grad_norm():
    torch = pytest.importorskip("torch")
    tx = gc.clip_by_global_norm(1.0)
    state, step = tx.init(_params()), jax.jit(tx.update)
    for t, g in enumerate(_grads(scale=2.0)):
        u, state = step(g, state)
        ts = _torch_leaves(g)
        norm = torch.nn.utils.clip_grad_norm_(ts, 1.0)
        np.testing.assert_allclose(state.global_norm, norm.numpy(), rtol=2e-6, err_msg=f"step {t}")
        # torch divides by (norm + 1e-6): a relative difference of 1e-6 / norm.
        expected = jax.tree.unflatten(jax.tree.structure(g), [x.grad.numpy() for x in ts])
        assert helpers.max_rel_diff(u, expected) <= 2e-5, f"step {t}"


def test_clip_by_norm_matches_torch_per_tensor():
    torch = pytest.importorskip("torch")
    tx = gc.clip_by_norm(0.5)
    step = jax.jit(tx.update)
    for t, g in enumerate(_grads(scale=2.0)):
        u, _ = step(g, tx.init(None))
        ts = _torch_leaves(g)
        for x in ts:
            torch.nn.utils.clip_grad_norm_([x], 0.5)
        expected = jax.tree.unflatten(jax.tree.structure(g), [x.grad.numpy() for x in ts])
        assert helpers.max_rel_diff(u, expected) <= 2e-5, f"step {t}"


def test_clip_by_value_matches_torch_clip_grad_value():
    torch = pytest.importorskip("torch")
    tx = gc.clip_by_value(0.3)
    step = jax.jit(tx.update)
    for g in _grads():
        u, _ = step(g, tx.init(None))
        ts = _torch_leaves(g)
        torch.nn.utils.clip_grad_value_(ts, 0.3)
        expected = jax.tree.unflatten(jax.tree.structure(g), [x.grad.numpy() for x in ts])
        helpers.assert_trees_close(u, expected, rtol=0.0)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: gc.clip_by_value(-0.1), ValueError, r"clip_by_value: `max_delta` must be >= 0, got -0.1\."),
        (lambda: gc.clip_by_value("1"), TypeError, r"clip_by_value: `max_delta` must be a number"),
        (
            lambda: gc.clip_by_value(lambda c: 1.0),
            TypeError,
            r"`max_delta` must be a number, got the callable",
        ),
        (
            lambda: gc.clip_by_global_norm(0.0),
            ValueError,
            r"clip_by_global_norm: `max_norm` must be > 0, got 0.0\.",
        ),
        (lambda: gc.clip_by_global_norm(jnp.ones(2)), ValueError, r"`max_norm` must be a scalar"),
        (lambda: gc.clip_by_global_norm(None), TypeError, r"`max_norm` must be a number, got None"),
        (lambda: gc.clip_by_norm(-1.0), ValueError, r"clip_by_norm: `max_norm` must be > 0"),
        (lambda: gc.clip_by_block_rms(0), ValueError, r"clip_by_block_rms: `threshold` must be > 0"),
        (lambda: gc.adaptive_grad_clip(0.0), ValueError, r"adaptive_grad_clip: `clipping` must be > 0"),
        (
            lambda: gc.adaptive_grad_clip(0.1, eps=-1e-3),
            ValueError,
            r"adaptive_grad_clip: `eps` must be >= 0",
        ),
        (lambda: gc.adaptive_grad_clip(0.1, axis="0"), TypeError, r"`axis` must be None, an int or a tuple"),
        (
            lambda: gc.adaptive_grad_clip(0.1, axis=(0, 1.0)),
            TypeError,
            r"`axis` must be None, an int or a tuple",
        ),
    ],
)
def test_factory_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_adaptive_grad_clip_errors_at_use():
    tx = gc.adaptive_grad_clip(0.1)
    with pytest.raises(
        ValueError, match=r"no default unit axes for a parameter of shape \(2, 2, 2, 2, 2, 2\)"
    ):
        tx.init({"x": jnp.ones((2,) * 6)})
    p = {"a": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"adaptive_grad_clip: the `updates` tree does not match `params`"):
        tx.update({"b": jnp.ones(3)}, tx.init(p), p)
    # With an explicit axis any rank works.
    six = {"x": jnp.ones((2,) * 6)}
    tx = gc.adaptive_grad_clip(0.1, axis=(0, 1))
    u, _ = tx.update(six, tx.init(six), six)
    np.testing.assert_allclose(u["x"], 0.1 * np.ones((2,) * 6), rtol=1e-6)
