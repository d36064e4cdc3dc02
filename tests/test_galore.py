"""GaLore: Optax 0.2.8 parity (default, one spec, a tree of specs with a stacked 3-D kernel, a
function), a float64 NumPy transcription (the SVD's arbitrary signs aligned with the
stored projector), Optax's test cases (state shapes, rank clipping, refresh gap,
orthonormality), reconstruction at full rank (complex too), and argument errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12
SHAPES = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}
DN = gc.GaLoreDimensionNumbers


def _problem(seed=0, dtype=jnp.float32, shapes=SHAPES):
    params = jax.tree.map(lambda x: jnp.sign(x) * (1 + jnp.abs(x)), helpers.random_tree(seed, shapes, dtype))
    return params, helpers.grad_sequence(seed + 1, params, N_STEPS)


def _max_rel(actual_seq, expected_seq) -> float:
    worst = 0.0
    for a, b in zip(actual_seq, expected_seq):
        scale = max(float(np.max(np.abs(np.asarray(x, np.float64)))) for x in jax.tree.leaves(b))
        worst = max(worst, helpers.max_rel_diff(a, b, floor=max(1e-2 * scale, 1e-30)))
    return worst


# ------------------------------------------------------------------- Optax 0.2.8 parity
def _dims(lib, kind):
    d = lib.contrib.GaLoreDimensionNumbers if lib is not gc else DN
    if kind == "tree":  # the stacked kernel read as (3 * 5, 4), the vector left alone
        return {"w": d(), "b": None, "stack": d((0, 1), 2)}
    if kind == "fn":  # the stacked kernel as (5, 3 * 4), with negative axes
        return lambda p: {"w": d(1, 0), "b": None, "stack": d(-2, (0, -1))}
    return None


CONFIGS = {  # id: (name, args, kwargs, dims kind, base optimizer)
    "scale_by_galore": ("scale_by_galore", (2, 4), {}, None, None),
    "scale_by_galore_tree_lion": ("scale_by_galore", (3, 5, 0.5), {}, "tree", "scale_by_lion"),
    "galore_fn_wd": ("galore", (0.1, 2, 3), {"weight_decay": 0.1}, "fn", None),
    "galore_schedule_mask": (
        "galore",
        (lambda c: 0.1 * 0.9 ** c.astype(jnp.float32),),
        {
            "rank": 1,
            "update_proj_gap": 5,
            "weight_decay": 0.2,
            "mask": lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
        },
        "tree",
        None,
    ),
}


# Every configuration jitted; the eager path (op by op: slow) for the richest ones.
EAGER = ["galore_fn_wd"]


@pytest.mark.parametrize(
    "key,jit",
    [(k, True) for k in CONFIGS] + [(k, False) for k in EAGER],
    ids=[*CONFIGS, *[f"{k}-eager" for k in EAGER]],
)
def test_matches_optax(key, jit):
    optax = pytest.importorskip("optax")
    name, args, kw, dims, base = CONFIGS[key]
    params, grads = _problem()

    def make(lib):
        extra = {"weight_dimension_numbers": _dims(lib, dims)}
        if base is not None:
            extra["base_optimizer"] = getattr(lib, base)()
        return getattr(lib.contrib if lib is not gc else gc, name)(*args, **kw, **extra)

    u, p, s = helpers.run_steps(make(gc), params, grads, jit=jit)
    uo, po, so = helpers.run_optax(make(optax), params, grads, jit=jit)
    assert _max_rel(u, uo) <= 2e-5 and _max_rel(p, po) <= 2e-5
    s, so = (s, so) if name == "scale_by_galore" else (s[0], so[0])
    for k in ("w", "stack"):
        if s.projector[k] is not None:
            np.testing.assert_allclose(s.projector[k], so.projector[k], rtol=2e-5, atol=2e-6)
    assert s.projector["b"] is None and so.projector["b"].shape == (0, 0)  # Optax: an empty array


def test_single_spec_applies_to_every_matrix_like_optax():
    optax = pytest.importorskip("optax")
    params, grads = _problem(shapes={"w": (6, 4), "v": (3, 7), "b": (4,)})
    u, _, _ = helpers.run_steps(
        gc.scale_by_galore(2, 3, weight_dimension_numbers=DN()), params, grads, jit=True
    )
    otx = optax.contrib.scale_by_galore(2, 3, weight_dimension_numbers=optax.contrib.GaLoreDimensionNumbers())
    uo, _, _ = helpers.run_optax(otx, params, grads, jit=True)
    assert _max_rel(u, uo) <= 2e-5


# --------------------------------------------------------- float64 NumPy transcription
def np_adam(b1=0.9, b2=0.999, eps=1e-8):
    s = {"t": 0}

    def step(g):
        s["t"] += 1
        t, m, v = s["t"], s.get("m", 0 * g), s.get("v", 0 * g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        s.update(m=m, v=v)
        return (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)

    return step


def _aligned(p, stored):
    """``p``'s columns with the signs of ``stored``'s (an SVD's signs are arbitrary)."""
    signs = np.sign(np.sum(p * stored, axis=0))
    np.testing.assert_allclose(np.abs(np.sum(p * stored, axis=0)), 1.0, rtol=1e-8)  # the same vectors
    return p * signs


@pytest.mark.parametrize("kind", [None, "tree"])
def test_matches_float64_transcription(kind):
    """The docstring's rule with base = scale_by_adam(), rank 2, refreshes at steps 1, 5, 9."""
    rank, gap, scale = 2, 4, 0.5
    with jax.enable_x64(True):
        params, grads = _problem(dtype=jnp.float64)
        tx = gc.scale_by_galore(rank, gap, scale, weight_dimension_numbers=_dims(gc, kind))
        state, updates, projectors = tx.init(params), [], []
        for g in grads:
            u, state = tx.update(g, state)
            updates.append(u)
            projectors.append(state.projector)
    as_matrix = {"w": lambda x: x, "stack": lambda x: x.reshape(15, 4)}
    for k in ("w", "b", "stack"):
        ref, proj = np_adam(), None
        projected = k == "w" or (k == "stack" and kind == "tree")
        for t, g in enumerate(grads):
            g = np.asarray(g[k], np.float64)
            got = np.asarray(updates[t][k])
            assert got.dtype == np.float64
            if not projected:
                np.testing.assert_allclose(got, ref(g), rtol=1e-10, err_msg=f"{k} step {t}")
                continue
            gm = as_matrix[k](g)
            if t % gap == 0:
                uu, _, vh = np.linalg.svd(gm, full_matrices=False)
                left = gm.shape[0] >= gm.shape[1]
                proj = _aligned(uu[:, :rank] if left else vh[:rank].T, np.asarray(projectors[t][k]))
            u = scale * (proj @ ref(proj.T @ gm))
            np.testing.assert_allclose(
                got, u.reshape(g.shape), rtol=1e-9, atol=1e-12, err_msg=f"{k} step {t}"
            )


# ----------------------------------------------------------------- Optax's test cases
@pytest.mark.parametrize("m,n", [(10, 6), (6, 10)])
def test_left_and_right_projection_state_shapes(m, n):
    tx = gc.scale_by_galore(rank=4)
    state = tx.init({"w": jnp.zeros((m, n))})
    mu = state.base_optimizer_state.mu["w"]
    assert state.projector["w"].shape == (max(m, n), 4)
    assert mu.shape == ((4, n) if m >= n else (m, 4)) == state.base_optimizer_state.nu["w"].shape


def test_rank_is_clipped_to_the_smaller_dimension_and_saves_memory():
    state = gc.scale_by_galore(rank=128).init({"w": jnp.zeros((10, 3))})
    assert state.projector["w"].shape == (10, 3) and state.base_optimizer_state.mu["w"].shape == (3, 3)
    state = gc.scale_by_galore(rank=4).init({"w": jnp.zeros((64, 64))})
    assert state.base_optimizer_state.mu["w"].size == 4 * 64 < 64 * 64


def test_projector_is_orthonormal_and_refreshed_every_gap_steps():
    params, grads = _problem()
    tx = gc.scale_by_galore(rank=3, update_proj_gap=3)
    state, seen = tx.init(params), []
    for g in grads[:5]:
        _, state = tx.update(g, state)
        p = np.asarray(state.projector["w"], np.float64)
        np.testing.assert_allclose(p.T @ p, np.eye(3), atol=1e-5)
        seen.append(p)
    same = [np.array_equal(seen[t], seen[t - 1]) for t in range(1, 5)]
    assert same == [True, True, False, True]
    tx1 = gc.scale_by_galore(rank=3, update_proj_gap=1)
    _, _, s1 = helpers.run_steps(tx1, params, grads[:1])
    _, _, s2 = helpers.run_steps(tx1, params, grads[:2])
    assert not np.allclose(s1.projector["w"], s2.projector["w"])


def test_full_rank_with_identity_base_reconstructs_the_gradient_complex_too():
    rng = np.random.default_rng(0)
    g = {
        "w": jnp.asarray(rng.standard_normal((5, 3)), jnp.float32),
        "z": jnp.asarray(rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4)), jnp.complex64),
        "k": jnp.asarray(rng.standard_normal((2, 3, 4)), jnp.float32),
    }
    dims = {"w": DN(), "z": DN(), "k": DN((0, 2), 1)}
    tx = gc.scale_by_galore(rank=8, base_optimizer=gc.identity(), weight_dimension_numbers=dims)
    u, state = tx.update(g, tx.init(g))
    for k in g:
        np.testing.assert_allclose(u[k], g[k], rtol=1e-5, atol=1e-5)
        assert u[k].dtype == g[k].dtype
    assert state.projector["z"].dtype == jnp.complex64


def test_mixed_tree_with_bfloat16_and_mu_dtype():
    params = {
        "W": jnp.ones((16, 32), jnp.bfloat16),
        "b": jnp.ones(32, jnp.bfloat16),
        "conv": jnp.ones((3, 3, 8)),
    }
    grads = jax.tree.map(
        lambda x: (0.1 * jnp.arange(x.size, dtype=jnp.float32).reshape(x.shape) % 1.3).astype(x.dtype), params
    )
    tx = gc.galore(0.01, rank=4, base_optimizer=gc.scale_by_adam(mu_dtype=jnp.float32))
    u, state = jax.jit(tx.update)(grads, tx.init(params), params)
    assert u["W"].dtype == jnp.bfloat16 and u["conv"].shape == (3, 3, 8) and u["b"].shape == (32,)
    assert state[0].base_optimizer_state.mu["W"].dtype == jnp.float32
    assert state[0].projector["conv"] is None  # 3-D: not projected without dimension numbers


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: gc.scale_by_galore(rank=0), ValueError, "scale_by_galore: `rank` must be >= 1"),
        (lambda: gc.scale_by_galore(rank=2.0), TypeError, "scale_by_galore: `rank` must be a Python int"),
        (lambda: gc.scale_by_galore(update_proj_gap=0), ValueError, "scale_by_galore: `update_proj_gap`"),
        (lambda: gc.scale_by_galore(scale="x"), TypeError, "scale_by_galore: `scale`"),
        (lambda: gc.scale_by_galore(base_optimizer=gc.adam), TypeError, "scale_by_galore: `base_optimizer`"),
        (lambda: gc.galore(-1.0), ValueError, "galore: `learning_rate`"),
        (lambda: gc.galore(0.1, rank=-1), ValueError, "galore: scale_by_galore: `rank`"),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    "dims,match",
    [
        ({"w": DN(0, 0), "b": None, "stack": None}, "every axis of shape \\(6, 4\\) once"),
        ({"w": DN(), "b": None, "stack": DN(0, 2)}, "every axis of shape \\(3, 5, 4\\) once"),
        ({"w": DN(0, 2), "b": None, "stack": None}, "axes in \\[-2, 2\\)"),
        ({"w": None, "b": DN(), "stack": None}, "at least 2 dimensions"),
        ({"w": DN()}, "a tree of them"),
        (DN((0, 1), 2), "axes in \\[-2, 2\\) for shape \\(6, 4\\)"),
    ],
)
def test_bad_dimension_numbers(dims, match):
    params, _ = _problem()
    with pytest.raises(ValueError, match="scale_by_galore: `weight_dimension_numbers` must " + ".*" + match):
        gc.scale_by_galore(weight_dimension_numbers=dims).init(params)


def test_updates_must_match_the_state():
    params, grads = _problem()
    tx = gc.scale_by_galore(rank=2)
    with pytest.raises(ValueError, match="scale_by_galore: the `updates` tree does not match the state"):
        tx.update({"w": grads[0]["w"]}, tx.init(params))
    with pytest.raises(ValueError, match="scale_by_galore: the updates do not match the state"):
        tx.update({**grads[0], "w": jnp.ones((6, 1))}, tx.init(params))  # a rank-1 projector
    with pytest.raises(ValueError, match="scale_by_adam: the update at leaf \\['w'\\]"):
        tx.update({**grads[0], "w": jnp.ones((4, 6))}, tx.init(params))  # projected on the other side


def test_flat_buffers_are_refused():
    params, _ = _problem()
    flat, _ = gc.ravel_by_dtype(params)
    tx = gc.scale_by_galore(rank=2)
    with pytest.raises(ValueError, match="scale_by_galore: acts on each parameter"):
        tx.update(flat, tx.init(flat))
