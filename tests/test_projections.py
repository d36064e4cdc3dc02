"""Projections: float64 NumPy transcriptions, optimality (KKT / variational inequality),
Optax 0.2.8 parity on multi-leaf trees, jit == eager, dtypes, gradients, errors, and the
deliberate differences from Optax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradchain import projections as gp
from tests.helpers import assert_trees_close, random_tree

SHAPES = {"w": (3, 4), "b": (4,), "nested": [(2, 2, 3), ()]}  # 29 elements, 4 leaves
X = random_tree(0, SHAPES)
A = random_tree(1, SHAPES)
LOWER = random_tree(2, SHAPES, scale=0.3)
UPPER = jax.tree.map(lambda lo: lo + 0.5, LOWER)
RTOL, ATOL = 1e-6, 1e-7


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def unflat(v: np.ndarray, like):
    leaves, out, i = jax.tree.leaves(like), [], 0
    for x in leaves:
        out.append(v[i : i + np.size(x)].reshape(np.shape(x)))
        i += np.size(x)
    return jax.tree.unflatten(jax.tree.structure(like), out)


# ------------------------------------------------------- float64 NumPy transcriptions
def np_simplex(v, z):
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    k = np.arange(1, len(v) + 1)
    rho = np.max(k[u > (css - z) / k])
    tau = (css[rho - 1] - z) / rho
    return np.maximum(v - tau, 0)


def np_simplex_bisect(v, z):
    """QP-free characterisation: w = max(v - tau, 0) with sum(w) = z; tau by bisection."""
    lo, hi = v.min() - z, v.max()
    for _ in range(200):
        tau = (lo + hi) / 2
        lo, hi = (tau, hi) if np.maximum(v - tau, 0).sum() > z else (lo, tau)
    return np.maximum(v - (lo + hi) / 2, 0)


def np_l1_sphere(v, z):
    return np.where(v >= 0, 1.0, -1.0) * np_simplex(np.abs(v), z)


def np_l1_ball(v, z):
    return v if np.abs(v).sum() <= z else np_l1_sphere(v, z)


def np_l2_sphere(v, z):
    return z * v / np.linalg.norm(v)


def np_l2_ball(v, z):
    return v * min(1.0, z / np.linalg.norm(v))


def np_vector(x, a):
    return (x @ a) / (a @ a) * a


def np_hyperplane(x, a, b):
    return x + (b - x @ a) / (a @ a) * a


def np_halfspace(x, a, b):
    return x + min(b - x @ a, 0.0) / (a @ a) * a


# (gradchain call, NumPy transcription on flat float64 vectors, Optax call or None)
x, a, lo, hi = flat(X), flat(A), flat(LOWER), flat(UPPER)
CASES = {
    "non_negative": (lambda P, t, s: P.projection_non_negative(t), lambda v: np.maximum(v, 0)),
    "box": (lambda P, t, s: P.projection_box(t, LOWER, UPPER), lambda v: np.clip(v, lo, hi)),
    "hypercube": (lambda P, t, s: P.projection_hypercube(t["w"], 0.7), None),
    "simplex": (lambda P, t, s: P.projection_simplex(t, s), lambda v: np_simplex(v, 1.0)),
    "simplex_3": (lambda P, t, s: P.projection_simplex(t, 3.0 * s), lambda v: np_simplex(v, 3.0)),
    "l1_sphere": (lambda P, t, s: P.projection_l1_sphere(t, 2.0 * s), lambda v: np_l1_sphere(v, 2.0)),
    "l1_sphere_out": (lambda P, t, s: P.projection_l1_sphere(t, 40 * s), lambda v: np_l1_sphere(v, 40.0)),
    "l1_ball": (lambda P, t, s: P.projection_l1_ball(t, 2.0 * s), lambda v: np_l1_ball(v, 2.0)),
    "l1_ball_inside": (lambda P, t, s: P.projection_l1_ball(t, 40 * s), lambda v: np_l1_ball(v, 40.0)),
    "l2_sphere": (lambda P, t, s: P.projection_l2_sphere(t, 0.3 * s), lambda v: np_l2_sphere(v, 0.3)),
    "l2_ball": (lambda P, t, s: P.projection_l2_ball(t, 2.0 * s), lambda v: np_l2_ball(v, 2.0)),
    "l2_ball_inside": (lambda P, t, s: P.projection_l2_ball(t, 9.0 * s), lambda v: np_l2_ball(v, 9.0)),
    "linf_ball": (lambda P, t, s: P.projection_linf_ball(t, 0.5 * s), lambda v: np.clip(v, -0.5, 0.5)),
    "vector": (lambda P, t, s: P.projection_vector(t, A), lambda v: np_vector(v, a)),
    "hyperplane": (
        lambda P, t, s: P.projection_hyperplane(t, A, 0.7 * s),
        lambda v: np_hyperplane(v, a, 0.7),
    ),
    "halfspace": (lambda P, t, s: P.projection_halfspace(t, A, -0.7 * s), lambda v: np_halfspace(v, a, -0.7)),
    "halfspace_in": (
        lambda P, t, s: P.projection_halfspace(t, A, 50 * s),
        lambda v: np_halfspace(v, a, 50.0),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_transcription_and_optax_and_jit_matches_eager(name):
    optax = pytest.importorskip("optax")
    call, ref = CASES[name]
    got = call(gp, X, 1.0)
    # the float64 NumPy transcription of the docstring formula
    if ref is None:  # hypercube, on one leaf
        np.testing.assert_allclose(got, np.clip(np.asarray(X["w"], np.float64), 0, 0.7), rtol=RTOL)
    else:
        assert_trees_close(got, unflat(ref(x), X), rtol=1e-5, atol=1e-6, msg=name)
    # Optax 0.2.8, on the same tree
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        expected = call(optax.projections, X, 1.0)
    assert jax.tree.structure(got) == jax.tree.structure(X if ref is not None else X["w"])
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(got))
    assert_trees_close(got, expected, rtol=RTOL, atol=ATOL, msg=f"{name} vs optax")
    # jit, with the set parameter (scale, b) as a traced argument
    jitted = jax.jit(lambda t, s: call(gp, t, s))(X, 1.0)
    assert_trees_close(jitted, got, rtol=RTOL, atol=ATOL, msg=f"{name} jit vs eager")


def test_simplex_transcription_matches_bisection():
    for seed, z in [(3, 1.0), (4, 0.01), (5, 7.5)]:
        v = np.random.default_rng(seed).standard_normal(50)
        np.testing.assert_allclose(np_simplex(v, z), np_simplex_bisect(v, z), atol=1e-12)


# ----------------------------------------------------------------------- optimality
def _sample_simplex(rng, n, z, k):
    return z * rng.dirichlet(np.full(n, 0.3), size=k)


def _check_variational(v, w, feasible, tol=2e-5):
    """w = proj_C(v) for convex C iff <v - w, c - w> <= 0 for every c in C."""
    assert np.max((feasible - w) @ (v - w)) <= tol * (1 + np.abs(v).sum())


@pytest.mark.parametrize("z", [1.0, 0.05, 12.0])
def test_simplex_is_feasible_and_satisfies_kkt(z):
    got = flat(gp.projection_simplex(X, z))
    assert got.min() >= 0 and abs(got.sum() - z) <= 1e-5 * z
    support = got > 0
    tau = np.mean(x[support] - got[support])  # KKT: v - w = tau on the support, v <= tau off it
    np.testing.assert_allclose(x[support] - got[support], tau, atol=1e-5)
    assert np.all(x[~support] <= tau + 1e-5)
    rng = np.random.default_rng(7)
    _check_variational(x, got, _sample_simplex(rng, x.size, z, 500))


@pytest.mark.parametrize("z", [2.0, 40.0])
def test_l1_ball_and_sphere_are_nearest_points(z):
    rng = np.random.default_rng(8)
    signs = rng.choice([-1.0, 1.0], size=(500, x.size))
    ball = signs * _sample_simplex(rng, x.size, z, 500) * rng.uniform(0, 1, (500, 1))
    w = flat(gp.projection_l1_ball(X, z))
    assert np.abs(w).sum() <= z * (1 + 1e-6)
    _check_variational(x, w, ball)
    s = flat(gp.projection_l1_sphere(X, z))
    assert abs(np.abs(s).sum() - z) <= 1e-5 * z
    sphere = signs * _sample_simplex(rng, x.size, z, 500)
    assert np.linalg.norm(x - s) <= np.min(np.linalg.norm(sphere - x, axis=1)) + 1e-6


def test_l2_box_and_affine_sets_are_nearest_points():
    rng = np.random.default_rng(9)
    d = rng.standard_normal((400, x.size))
    ball = 2.0 * d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0, 1, (400, 1))
    _check_variational(x, flat(gp.projection_l2_ball(X, 2.0)), ball)
    _check_variational(x, flat(gp.projection_box(X, LOWER, UPPER)), rng.uniform(lo, hi, (400, x.size)))
    w = flat(gp.projection_hyperplane(X, A, 0.7))
    assert abs(w @ a - 0.7) < 1e-5
    plane = d - ((d @ a - 0.7) / (a @ a))[:, None] * a  # points of the hyperplane
    np.testing.assert_allclose((plane - w) @ (x - w), 0, atol=1e-4)  # x - w is normal to the plane
    h = flat(gp.projection_halfspace(X, A, -0.7))
    half = d - (np.maximum(d @ a + 0.7, 0) / (a @ a))[:, None] * a
    assert h @ a <= -0.7 + 1e-5
    _check_variational(x, h, half)
    p = flat(gp.projection_vector(X, A))
    assert abs((x - p) @ a) < 1e-5  # the residual is orthogonal to the line


# ---------------------------------------------------------------- dtypes and autodiff
def test_keeps_leaf_dtypes_and_accepts_python_number_leaves():
    tree = {"h": jnp.array([3.0, -1.0], jnp.bfloat16), "f": jnp.array([2.0, 0.5]), "p": 0.25}
    for f in [
        gp.projection_simplex,
        gp.projection_l1_ball,
        gp.projection_l1_sphere,
        gp.projection_l2_ball,
        gp.projection_l2_sphere,
        gp.projection_linf_ball,
        gp.projection_non_negative,
        lambda t: gp.projection_box(t, -0.5, 0.5),
        lambda t: gp.projection_halfspace(t, tree, 1.0),
        lambda t: gp.projection_vector(t, tree),
    ]:
        out = jax.eval_shape(f, tree)  # (shapes and dtypes only: no compilation)
        assert out["h"].dtype == jnp.bfloat16 and out["f"].dtype == jnp.float32
        assert out["p"].dtype == jnp.float32 and out["p"].shape == ()
    # bfloat16 leaves are computed in float32 and rounded once
    s = gp.projection_simplex(tree, 2.0)
    np.testing.assert_allclose(flat(s), np_simplex(flat(tree), 2.0), atol=1e-2)


@pytest.mark.parametrize("name", ["simplex", "l1_ball", "l2_ball", "l2_ball_at_zero", "l1_ball_at_zero"])
def test_gradients_match_optax(name):
    # Optax differentiates the simplex projection with a custom JVP; here autodiff runs
    # through the sort. At 0 both must give finite gradients (no NaN from sqrt/abs at 0).
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(10)
    v = jnp.zeros(12) if name.endswith("zero") else jnp.asarray(rng.standard_normal(12), jnp.float32)
    c = jnp.arange(12.0)
    proj = "projection_" + name.removesuffix("_at_zero")

    def grad(P):
        return jax.jit(jax.grad(lambda v: jnp.vdot(c, getattr(P, proj)(v, 2.0))))(v)

    ours = grad(gp)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        ref = grad(optax.projections)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_vmap_over_points_and_scales():
    v = jnp.asarray(np.random.default_rng(11).standard_normal((5, 6)), jnp.float32)
    scales = jnp.linspace(0.5, 3.0, 5)
    batched = jax.jit(jax.vmap(gp.projection_l1_ball))(v, scales)
    for i in range(5):
        np.testing.assert_allclose(
            batched[i], np_l1_ball(np.float64(v[i]), float(scales[i])), rtol=1e-5, atol=1e-6
        )


# ------------------------------------------------------ deliberate differences from Optax
def test_l1_sphere_puts_mass_on_zero_entries_inside_the_ball():
    optax = pytest.importorskip("optax")
    v = jnp.array([0.1, 0.0, -0.0, 0.0])
    got = np.asarray(jax.jit(gp.projection_l1_sphere)(v))
    np.testing.assert_allclose(got, [0.325, 0.225, 0.225, 0.225], rtol=1e-6)  # on the sphere, nearest
    np.testing.assert_allclose(got, np_l1_sphere(np.float64(v), 1.0), rtol=1e-6)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        off = np.asarray(jax.jit(optax.projections.projection_l1_sphere)(v))
    np.testing.assert_allclose(off, [0.325, 0, 0, 0], rtol=1e-6)  # Optax: off the sphere


def test_l2_sphere_of_zero_is_a_point_of_the_sphere():
    optax = pytest.importorskip("optax")
    zero = {"a": jnp.zeros(3), "b": jnp.zeros(())}
    got = gp.projection_l2_sphere(zero, 2.0)
    np.testing.assert_allclose(flat(got), 1.0, rtol=1e-6)  # 2 / sqrt(4) everywhere
    np.testing.assert_allclose(flat(jax.jit(gp.projection_l2_sphere)(zero, 2.0)), 1.0, rtol=1e-6)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        assert np.isnan(flat(optax.projections.projection_l2_sphere(zero, 2.0))).all()


def test_vector_onto_zero_is_zero():
    optax = pytest.importorskip("optax")
    zero_a = jax.tree.map(jnp.zeros_like, A)
    assert not flat(gp.projection_vector(X, zero_a)).any()
    assert not flat(jax.jit(gp.projection_vector)(X, zero_a)).any()
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        assert np.isnan(flat(optax.projections.projection_vector(X, zero_a))).all()


def test_box_and_hypercube_take_scalar_bounds_for_a_tree():
    optax = pytest.importorskip("optax")
    got = gp.projection_box(X, -0.5, 0.25)
    assert_trees_close(got, unflat(np.clip(x, -0.5, 0.25), X))
    assert_trees_close(gp.projection_hypercube(X, 0.3), unflat(np.clip(x, 0, 0.3), X))
    assert_trees_close(gp.projection_box(X, -np.inf, 0.0), unflat(np.minimum(x, 0), X))
    # an array bound broadcast to every leaf whose shape it fits
    row = jnp.array([0.1, 0.2, 0.3, 0.4])
    tree = {"m": X["w"], "v": X["b"]}
    out = gp.projection_box(tree, -row, row)
    np.testing.assert_allclose(out["m"], np.clip(X["w"], -row, row))
    with pytest.raises(ValueError), jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        optax.projections.projection_box(X, -0.5, 0.25)


def test_l2_ball_leaves_inside_points_bit_for_bit():
    tree = jax.tree.map(lambda v: v * 0.1, X)
    for f in (gp.projection_l2_ball, jax.jit(gp.projection_l2_ball)):
        out = f(tree, 0.7)
        for o, t in zip(jax.tree.leaves(out), jax.tree.leaves(tree)):
            assert np.array_equal(o, t)


def test_affine_sets_with_zero_normal():
    zero_a = jax.tree.map(jnp.zeros_like, A)
    # the set is everything: x comes back
    assert_trees_close(gp.projection_hyperplane(X, zero_a, 0.0), X, rtol=0)
    assert_trees_close(gp.projection_halfspace(X, zero_a, 1.0), X, rtol=0)
    # the set is empty: an error eagerly, NaN under jit
    with pytest.raises(ValueError, match=r"projection_hyperplane: `a` must be nonzero"):
        gp.projection_hyperplane(X, zero_a, 1.0)
    with pytest.raises(ValueError, match=r"projection_halfspace: `a` must be nonzero"):
        gp.projection_halfspace(X, zero_a, -1.0)
    assert np.isnan(flat(jax.jit(gp.projection_halfspace)(X, zero_a, -1.0))).all()


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: gp.projection_simplex(X, 0.0),
            ValueError,
            r"projection_simplex: `scale` must be > 0, got 0.0",
        ),
        (lambda: gp.projection_l1_ball(X, -1), ValueError, r"projection_l1_ball: `scale` must be > 0"),
        (lambda: gp.projection_l1_sphere(X, np.nan), ValueError, r"`scale` must be a number, got NaN"),
        (lambda: gp.projection_l2_ball(X, jnp.ones(2)), ValueError, r"`scale` must be a scalar"),
        (lambda: gp.projection_l2_sphere(X, "1"), TypeError, r"`scale` must be a number"),
        (lambda: gp.projection_linf_ball(X, -0.1), ValueError, r"projection_linf_ball: `scale` must be >= 0"),
        (lambda: gp.projection_simplex({}), ValueError, r"`tree` must hold at least one element"),
        (lambda: gp.projection_l2_sphere([]), ValueError, r"`tree` must hold at least one element"),
        (
            lambda: gp.projection_l2_ball({"i": jnp.arange(3)}),
            TypeError,
            r"projection_l2_ball: `tree` must hold real floating-point arrays, got int32 at leaf \['i'\]",
        ),
        (lambda: gp.projection_non_negative(jnp.array([True])), TypeError, r"floating-point"),
        (lambda: gp.projection_box(X, 1.0, 0.0), ValueError, r"`lower` must be <= `upper` everywhere"),
        (lambda: gp.projection_box(X, UPPER, LOWER), ValueError, r"`lower` must be <= `upper` everywhere"),
        (
            lambda: gp.projection_hypercube(X, -1.0),
            ValueError,
            r"projection_hypercube: `scale` must be >= 0 everywhere, got -1.0",
        ),
        (lambda: gp.projection_box(X, None, 1.0), TypeError, r"projection_box: `lower` must be a number"),
        (lambda: gp.projection_box(X, np.nan, 1.0), ValueError, r"`lower` must be a number, got NaN"),
        (lambda: gp.projection_box(X, {"w": 0.0}, 1.0), ValueError, r"`lower` must be a number, an array"),
        (lambda: gp.projection_box(X, 0.0, jnp.ones(3)), ValueError, r"`upper` must broadcast to the leaf"),
        (lambda: gp.projection_box(X, jnp.full(4, jnp.nan), 1.0), ValueError, r"must not contain NaN"),
        (lambda: gp.projection_vector(X, {"w": A["w"]}), ValueError, r"`a` must have the tree structure"),
        (
            lambda: gp.projection_hyperplane(X["b"], jnp.ones(3), 0.0),
            ValueError,
            r"`a` must have the leaf shapes of `x`",
        ),
        (lambda: gp.projection_halfspace(X, A, jnp.ones(2)), ValueError, r"`b` must be a scalar"),
        (
            lambda: gp.projection_hyperplane(X, A, "0"),
            TypeError,
            r"projection_hyperplane: `b` must be a number",
        ),
    ],
)
def test_bad_arguments_raise(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
