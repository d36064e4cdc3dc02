"""power_iteration, matrix_inverse_pth_root, nnls: Optax 0.2.8 parity, float64 references
(NumPy eigendecompositions, an active-set NNLS), errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc


def spd(n, seed=0, cond=100.0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * np.geomspace(1.0, cond, n)) @ q.T


def np_inverse_root(m, p, eps):
    w, v = np.linalg.eigh(m)
    return (v * (w + eps) ** (-1.0 / p)) @ v.T


def optax_or_skip():
    return pytest.importorskip("optax")


def standard():
    return jax.numpy_dtype_promotion("standard")


# ------------------------------------------------------------------- power_iteration
@pytest.mark.parametrize("n", [1, 4, 9])
def test_power_iteration_finds_the_dominant_eigenpair(n):
    m = spd(n)
    eig, vec = gc.power_iteration(jnp.asarray(m, jnp.float32), num_iters=500)
    w, v = np.linalg.eigh(m)
    np.testing.assert_allclose(float(eig), w[-1], rtol=1e-4)
    np.testing.assert_allclose(abs(float(np.asarray(vec) @ v[:, -1])), 1.0, rtol=1e-4)


def test_power_iteration_matches_optax_with_an_array_and_a_function_on_a_tree():
    optax = optax_or_skip()
    m = jnp.asarray(spd(6, 1, 10.0), jnp.float32)
    got = gc.power_iteration(m, num_iters=30, error_tolerance=0.0)
    with standard():
        want = optax.power_iteration(m, num_iters=30, error_tolerance=0.0)
    np.testing.assert_allclose(float(got[0]), float(want[0]), rtol=2e-5)
    np.testing.assert_allclose(np.asarray(got[1]), np.asarray(want[1]), rtol=2e-5, atol=1e-6)
    mvp = lambda t: {"a": 2.0 * t["a"], "b": 5.0 * t["b"]}
    v0 = {"a": jnp.ones(3), "b": jnp.ones(2)}
    eig, vec = jax.jit(lambda v: gc.power_iteration(mvp, v0=v))(v0)
    with standard():
        eo, vo = optax.power_iteration(mvp, v0=v0)
    np.testing.assert_allclose(float(eig), 5.0, rtol=1e-5)
    np.testing.assert_allclose(float(eig), float(eo), rtol=2e-5)
    np.testing.assert_allclose(np.asarray(vec["b"]), np.asarray(vo["b"]), rtol=2e-5)


def test_power_iteration_float64_transcription():
    m = spd(5, 2, 30.0)
    with jax.enable_x64(True):
        v0 = jnp.asarray(np.linspace(-1, 1, 5) + 0.1)
        eig, vec = gc.power_iteration(jnp.asarray(m), v0=v0, num_iters=12, error_tolerance=0.0)
    v = np.asarray(v0) / np.linalg.norm(v0)
    z = m @ v
    for _ in range(12):
        v = z / np.linalg.norm(z)
        z = m @ v
        lam = v @ z
    np.testing.assert_allclose(float(eig), lam, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(vec), z / np.linalg.norm(z), rtol=1e-12)


# ------------------------------------------------------------------- matrix_inverse_pth_root
@pytest.mark.parametrize("p", [1, 2, 4, 8])
def test_matrix_inverse_pth_root_matches_optax_and_eigh(p):
    optax = optax_or_skip()
    m = spd(6, p, 50.0)
    h, err = gc.matrix_inverse_pth_root(jnp.asarray(m, jnp.float32), p)
    with standard():
        ho, _ = optax.matrix_inverse_pth_root(jnp.asarray(m, jnp.float32), p)
    np.testing.assert_allclose(np.asarray(h), np.asarray(ho), rtol=2e-5, atol=2e-6)
    want = np_inverse_root(m, p, 1e-6 * 50.0)
    np.testing.assert_allclose(np.asarray(h), want, rtol=2e-3, atol=2e-4)
    assert h.dtype == jnp.float32 and float(err) < 1e-3


@pytest.mark.parametrize("p", [3, 5, 6])
def test_matrix_inverse_pth_root_for_every_p_where_optax_is_wrong(p):
    optax = optax_or_skip()
    m = spd(5, p, 20.0)
    with jax.enable_x64(True):
        h, err = gc.matrix_inverse_pth_root(jnp.asarray(m), p, ridge_epsilon=0.0, error_tolerance=1e-12)
        with standard():
            ho, _ = optax.matrix_inverse_pth_root(jnp.asarray(m), p, ridge_epsilon=0.0)
    want = np_inverse_root(m, p, 0.0)
    np.testing.assert_allclose(np.asarray(h), want, rtol=1e-8, atol=1e-10)
    assert h.dtype == jnp.float64 and float(err) < 1e-10
    assert np.max(np.abs(np.asarray(ho) - want)) > 1e-2  # Optax uses N**(2**round(log2 p))


def test_matrix_inverse_pth_root_of_a_1x1_and_a_singular_matrix():
    h, err = gc.matrix_inverse_pth_root(jnp.array([[16.0]]), 4, ridge_epsilon=0.0)
    np.testing.assert_allclose(np.asarray(h), [[0.5]], rtol=1e-6)
    h, _ = gc.matrix_inverse_pth_root(jnp.array([[1.0, 0.0], [0.0, 0.0]]), 2)
    assert bool(jnp.all(jnp.isfinite(h)))  # the ridge keeps it finite
    np.testing.assert_allclose(float(h[0, 0]), 1.0, rtol=1e-4)


# ------------------------------------------------------------------- nnls
def np_nnls_active_set(A, b):
    """Lawson-Hanson active set, float64 (the exact solution)."""
    n = A.shape[1]
    passive, x = np.zeros(n, bool), np.zeros(n)
    for _ in range(3 * n):
        w = A.T @ (b - A @ x)
        if passive.all() or np.max(np.where(passive, -np.inf, w)) <= 1e-12:
            return x
        passive[np.argmax(np.where(passive, -np.inf, w))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(A[:, passive], b, rcond=None)[0]
            if np.all(z[passive] > 0):
                x = z
                break
            neg = passive & (z <= 0)
            t = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + t * (z - x)
            passive &= x > 1e-12
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nnls_reaches_the_active_set_solution_and_matches_optax(seed):
    optax = optax_or_skip()
    rng = np.random.default_rng(seed)
    A, b = rng.standard_normal((8, 5)), rng.standard_normal(8)
    with jax.enable_x64(True):
        x = gc.nnls(jnp.asarray(A), jnp.asarray(b), 5000)
    np.testing.assert_allclose(np.asarray(x), np_nnls_active_set(A, b), atol=1e-6)
    got = gc.nnls(jnp.asarray(A, jnp.float32), jnp.asarray(b, jnp.float32), 20)
    with standard():
        want = optax.nnls(jnp.asarray(A, jnp.float32), jnp.asarray(b, jnp.float32), 20)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-5, atol=1e-6)


def test_nnls_float64_transcription_and_several_targets():
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    Q, q = A.T @ A, A.T @ B
    L = min(np.linalg.norm(Q, "fro"), np.linalg.norm(Q, 1))
    x = p = np.zeros((4, 2))
    c = 0.0
    for _ in range(15):
        c_next = (1 + np.sqrt(1 + 4 * c**2)) / 2
        x_next = np.maximum(p - (Q @ p - q) / L, 0)
        p = x_next + (c - 1) / c_next * (x_next - x)
        x, c = x_next, c_next
    with jax.enable_x64(True):
        got = gc.nnls(jnp.asarray(A), jnp.asarray(B), 15)
    np.testing.assert_allclose(np.asarray(got), x, rtol=1e-12, atol=1e-14)


def test_nnls_zero_matrix_and_jit():
    x = jax.jit(gc.nnls, static_argnums=2)(jnp.zeros((3, 2)), jnp.ones(3), 10)
    np.testing.assert_array_equal(np.asarray(x), 0.0)


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: gc.power_iteration(jnp.ones((2, 3))), ValueError, r"power_iteration: `matrix` must be a square matrix, got an array of shape \(2, 3\)"),
        (lambda: gc.power_iteration(jnp.eye(2, dtype=jnp.int32)), TypeError, r"power_iteration: `matrix` must be a floating-point matrix"),
        (lambda: gc.power_iteration(lambda v: v), ValueError, r"power_iteration: `v0` must be given when `matrix` is a function"),
        (lambda: gc.power_iteration(jnp.eye(2), num_iters=-1), ValueError, r"power_iteration: `num_iters` must be >= 0, got -1"),
        (lambda: gc.power_iteration(jnp.eye(2), error_tolerance=-1.0), ValueError, r"`error_tolerance` must be >= 0"),
        (lambda: gc.matrix_inverse_pth_root(jnp.eye(2), 0), ValueError, r"matrix_inverse_pth_root: `p` must be >= 1, got 0"),
        (lambda: gc.matrix_inverse_pth_root(jnp.eye(2), 2.0), TypeError, r"matrix_inverse_pth_root: `p` must be a Python int, got 2.0"),
        (lambda: gc.matrix_inverse_pth_root(jnp.ones(3), 2), ValueError, r"matrix_inverse_pth_root: `matrix` must be a square matrix"),
        (lambda: gc.matrix_inverse_pth_root(jnp.eye(2), 2, ridge_epsilon=-1.0), ValueError, r"`ridge_epsilon` must be >= 0"),
        (lambda: gc.nnls(jnp.ones(3), jnp.ones(3), 5), ValueError, r"nnls: `A` must be a matrix, got an array of shape \(3,\)"),
        (lambda: gc.nnls(jnp.ones((3, 2)), jnp.ones(4), 5), ValueError, r"nnls: `b` must have shape \(3,\) or \(3, K\)"),
        (lambda: gc.nnls(jnp.ones((3, 2)), jnp.ones(3), -1), ValueError, r"nnls: `iters` must be >= 0, got -1"),
        (lambda: gc.nnls(jnp.ones((3, 2)), jnp.ones(3), 5, L=0.0), ValueError, r"nnls: `L` must be > 0, got 0.0"),
        (lambda: gc.nnls(jnp.ones((3, 2), jnp.int32), jnp.ones(3), 5), TypeError, r"nnls: `A` must be a real floating-point array"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
