"""SOAP (`scale_by_soap`, `soap`): pytorch_optimizer 4.1.0's ``SOAP`` in float64, a float64
NumPy transcription of the docstring, the documented edge cases and the errors.

Optax 0.2.8 has no SOAP. The reference is pytorch_optimizer's (the authors' algorithm: the
first step only sets up the bases, ``eps`` outside the root of the uncorrected second
moment, decay of the updated parameters); gradchain's flags for its conventions:
``precondition_all_axes=True`` (every axis of a 3-D leaf gets a factor) and
``soap(..., decay_updated_params=True)``. gradchain keeps Adam's first moment in the
eigenbasis (re-projected on refresh) where the reference rotates it at every step: the
same in exact arithmetic, which the float64 comparison confirms to rounding.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import gradchain as gc
from gradchain._transforms.soap import eigenbasis
from tests import helpers

N_STEPS = 14  # with precondition_frequency 3: refreshes after steps 4, 7, 10 and 13
# square sides (full-rank factors from the first gradient: their eigenbases are unique up to
# signs, which SOAP's update does not see), a side longer than max_precond_dim (one-sided)
SHAPES = {"w": (4, 4), "one": (6, 3), "b": (3,), "s": ()}


def _problem(shapes, dtype=jnp.float64, n=N_STEPS, seed=0):
    params = helpers.random_tree(seed, shapes, dtype)
    return params, helpers.grad_sequence(seed + 1, params, n)


# ----------------------------------------------------------- pytorch_optimizer 4.1.0
REF_SHAPES = {"w": (5, 5), "one": (7, 4), "b": (4,), "stack": (3, 4, 4)}
REF_CONFIGS = [
    ("default", {}, {}),
    (
        "normalize_no_bias_correction",
        {"normalize_grads": True, "correct_bias": False},
        {"normalize_gradient": True, "correct_bias": False},
    ),
]


def _torch_soap_params(monkeypatch, ours, theirs, float64_qr):
    torch = pytest.importorskip("torch")
    soap_ref = pytest.importorskip("pytorch_optimizer").SOAP
    if float64_qr:
        # the reference casts the refresh's QR input to float32 (`.to(torch.float32)`); with
        # that cast made a no-op the two agree to rounding
        monkeypatch.setattr(torch, "float32", torch.float64)
    lr, wd = 0.1, 0.05
    with jax.enable_x64(True):
        params, grads = _problem(REF_SHAPES)
        tx = gc.soap(
            lr, 0.9, 0.95, 0.8, 1e-8, wd, 3, 6, precondition_all_axes=True, decay_updated_params=True, **ours
        )
        _, got, _ = helpers.run_steps(tx, params, grads)
    tp = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in params.items()}
    opt = soap_ref(
        list(tp.values()),
        lr=lr,
        betas=(0.9, 0.95),
        shampoo_beta=0.8,
        weight_decay=wd,
        precondition_frequency=3,
        max_precondition_dim=6,
        eps=1e-8,
        **theirs,
    )
    expected = []
    for g in grads:
        for k in REF_SHAPES:
            tp[k].grad = torch.tensor(np.asarray(g[k]))
        opt.step()
        expected.append({k: v.detach().numpy().copy() for k, v in tp.items()})
    return got, expected


@pytest.mark.parametrize("ours,theirs", [c[1:] for c in REF_CONFIGS], ids=[c[0] for c in REF_CONFIGS])
def test_matches_pytorch_optimizer_soap_float64(monkeypatch, ours, theirs):
    got, expected = _torch_soap_params(monkeypatch, ours, theirs, float64_qr=True)
    for t in range(N_STEPS):
        helpers.assert_trees_close_relative(got[t], expected[t], rtol=1e-11, msg=f"step {t}")


def test_matches_pytorch_optimizer_soap_as_shipped(monkeypatch):
    # unpatched, the reference's float32 QR leaves its bases orthogonal to ~1e-7 only:
    # the same up to the first refresh (step 4), then to 1e-6 (2e-7 measured)
    got, expected = _torch_soap_params(monkeypatch, {}, {}, float64_qr=False)
    for t in range(N_STEPS):
        helpers.assert_trees_close_relative(
            got[t], expected[t], rtol=1e-11 if t < 4 else 1e-6, msg=f"step {t}"
        )


# ----------------------------------------------------------- float64 NumPy transcription
def np_soap_matrix(grads, b1, b2, sb, eps, f, sides, normalize=False, correct_bias=True):
    """The docstring's rule for one matrix; ``sides``: (left, right) preconditioned."""
    (m, n), (left, right) = grads[0].shape, sides
    L, R, QL, QR = np.zeros((m, m)), np.zeros((n, n)), np.eye(m), np.eye(n)
    M, V, out = np.zeros((m, n)), np.zeros((m, n)), []
    for t, G in enumerate(grads, 1):
        s = t - 1
        L = sb * L + (1 - sb) * G @ G.T
        R = sb * R + (1 - sb) * G.T @ G
        if t == 1:
            QL = np.linalg.eigh(L)[1][:, ::-1] if left else QL
            QR = np.linalg.eigh(R)[1][:, ::-1] if right else QR
            out.append(np.zeros((m, n)))
            continue
        Gr = QL.T @ G @ QR
        M = b1 * M + (1 - b1) * Gr
        V = b2 * V + (1 - b2) * Gr**2
        N = QL @ (M / (np.sqrt(V) + eps)) @ QR.T
        N = N / (np.sqrt(np.mean(N**2)) + eps) if normalize else N
        U = np.sqrt(1 - b2**s) / (1 - b1**s) * N if correct_bias else N
        if s % f == 0 and left:
            P = L @ QL
            k = np.argsort(-np.diag(QL.T @ P), kind="stable")
            Qn = np.linalg.qr(P[:, k])[0]
            M, V, QL = Qn.T @ QL @ M, V[k, :], Qn
        if s % f == 0 and right:
            P = R @ QR
            k = np.argsort(-np.diag(QR.T @ P), kind="stable")
            Qn = np.linalg.qr(P[:, k])[0]
            M, V, QR = M @ QR.T @ Qn, V[:, k], Qn
        out.append(U)
    return out


def np_soap(grads, b1, b2, sb, eps, f, max_dim, **kw):
    """Per leaf: matrices as above, stacks matrix by matrix, vectors and scalars as (1, n)
    matrices without factors (plain Adam, first step skipped)."""
    out = [{} for _ in grads]
    for k in grads[0]:
        seq = [np.asarray(g[k], np.float64) for g in grads]
        shape = seq[0].shape
        mats = [x.reshape((-1,) + shape[-2:]) if x.ndim >= 2 else x.reshape(1, 1, -1) for x in seq]
        sides = (shape[-2] <= max_dim, shape[-1] <= max_dim) if len(shape) >= 2 else (False, False)
        per = [
            np_soap_matrix([x[i] for x in mats], b1, b2, sb, eps, f, sides, **kw) for i in range(len(mats[0]))
        ]
        for t in range(len(grads)):
            out[t][k] = np.stack([p[t] for p in per]).reshape(shape)
    return out


TRANSCRIPTION = [
    ("default", (0.9, 0.95, 0.8, 1e-8, 3, 4), {}),
    ("normalize_no_bias", (0.5, 0.9, 0.7, 1e-3, 2, 4), {"normalize": True, "correct_bias": False}),
]


@pytest.mark.parametrize(
    "args,kw,jit",
    [(*TRANSCRIPTION[0][1:], False), (*TRANSCRIPTION[0][1:], True), (*TRANSCRIPTION[1][1:], False)],
    ids=["default-eager", "default-jit", "normalize_no_bias-eager"],
)
def test_matches_float64_transcription(args, kw, jit):
    shapes = {**SHAPES, "stack": (2, 3, 3)}
    ours = {"normalize_grads": kw.get("normalize", False), "correct_bias": kw.get("correct_bias", True)}
    with jax.enable_x64(True):
        params, grads = _problem(shapes)
        updates, _, state = helpers.run_steps(gc.scale_by_soap(*args, **ours), params, grads, jit=jit)
    assert all(u.dtype == jnp.float64 for u in jax.tree.leaves(updates[-1]))
    assert state.gg["one"][0].shape == (3, 3) and state.gg["b"] is None  # one-sided; vectors: no factors
    assert state.q["stack"][1].shape == (2, 3, 3)  # a stack: one basis per matrix
    expected = np_soap([helpers.to_numpy64(g) for g in grads], *args, **kw)
    for t in range(N_STEPS):
        helpers.assert_trees_close_relative(updates[t], expected[t], rtol=1e-10, msg=f"step {t}")


# ----------------------------------------------------------- edge cases
def test_first_step_only_sets_up_the_bases():
    with jax.enable_x64(True):  # float64 and the default configuration: test_soap_chains's step
        params, grads = _problem(SHAPES, n=1)
        tx = gc.scale_by_soap()
        state0 = tx.init(params)
        u, state = tx.update(grads[0], state0)
    assert all(not bool(jnp.any(x)) for x in jax.tree.leaves(u))
    helpers.assert_trees_close((state.mu, state.nu), (state0.mu, state0.nu))
    G = np.asarray(grads[0]["w"], np.float64)
    L = (1 - 0.95) * G @ G.T
    np.testing.assert_allclose(state.gg["w"][0], L, rtol=1e-12)
    q = np.asarray(state.q["w"][0], np.float64)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    eig = np.diag(q.T @ L @ q)
    np.testing.assert_allclose(eig, np.linalg.eigvalsh(L)[::-1], rtol=1e-10)  # by decreasing eigenvalue


def test_vectors_and_scalars_are_adam_with_the_first_step_skipped():
    # with eps = 0 the two bias-correction forms agree: step t is Adam's step t - 1 on grads 2..t
    shapes = {"b": (5,), "s": ()}
    with jax.enable_x64(True):
        params, grads = _problem(shapes)
        u, _, state = helpers.run_steps(gc.scale_by_soap(0.9, 0.99, eps=0.0), params, grads)
        u_adam, _, _ = helpers.run_steps(gc.scale_by_adam(0.9, 0.99, eps=0.0), params, grads[1:])
    assert state.gg == {"b": None, "s": None}
    helpers.assert_trees_close(u[0], jax.tree.map(jnp.zeros_like, params))
    for t in range(1, N_STEPS):
        helpers.assert_trees_close(u[t], u_adam[t - 1], rtol=1e-12, msg=f"step {t}")


def test_precondition_1d_is_a_one_row_matrix():
    params, grads = _problem({"v": (5,)}, jnp.float32)
    rows = [{"v": g["v"][None]} for g in grads]
    u, _, s = helpers.run_steps(
        gc.scale_by_soap(precondition_1d=True, precondition_frequency=3), params, grads
    )
    u2, _, _ = helpers.run_steps(gc.scale_by_soap(precondition_frequency=3), {"v": params["v"][None]}, rows)
    assert s.q["v"][0].shape == (5, 5)
    for t in range(N_STEPS):
        helpers.assert_trees_close_relative(u[t]["v"], u2[t]["v"][0], rtol=1e-5, msg=f"step {t}")


def test_max_precond_dim_makes_it_one_sided_and_large_dims_adam():
    params = {"w": jnp.zeros((3, 8)), "big": jnp.zeros((9, 9))}
    state = gc.scale_by_soap(max_precond_dim=4).init(params)
    assert [x.shape for x in state.gg["w"]] == [(3, 3)] and state.gg["big"] is None


def test_stacked_kernels_equal_separate_matrices_and_all_axes_differ():
    params, grads = _problem({"k": (3, 4, 5)}, jnp.float32, n=6)
    tx = gc.scale_by_soap(precondition_frequency=2)
    u, _, _ = helpers.run_steps(tx, params, grads)
    for i in range(3):
        sep = [{"k": g["k"][i]} for g in grads]
        ui, _, _ = helpers.run_steps(tx, {"k": params["k"][i]}, sep)
        for t in range(6):
            helpers.assert_trees_close_relative(
                u[t]["k"][i], ui[t]["k"], rtol=1e-5, msg=f"matrix {i} step {t}"
            )
    s = gc.scale_by_soap(precondition_all_axes=True).init(params)
    assert [x.shape for x in s.q["k"]] == [(3, 3), (4, 4), (5, 5)]


def test_eigenbasis_falls_back_on_overflow_and_keeps_the_previous_basis_on_nan():
    a = jnp.array([[3e38, 1e38], [1e38, 2e38]], jnp.float32)  # float32 eigh overflows: NaN eigenvalues
    q = np.asarray(jax.jit(eigenbasis)(a, jnp.eye(2)), np.float64)
    exact = np.linalg.eigh(np.asarray(a, np.float64) / 3e38)[1][:, ::-1]
    np.testing.assert_allclose(np.abs(q), np.abs(exact), rtol=1e-5)
    previous = 2 * jnp.eye(2)
    np.testing.assert_array_equal(eigenbasis(jnp.array([[jnp.nan, 0.0], [0.0, 1.0]]), previous), previous)


def test_bfloat16_params_keep_float32_factors():
    params, grads = _problem({"w": (3, 4)}, jnp.bfloat16, n=3)
    u, _, s = helpers.run_steps(gc.scale_by_soap(precondition_frequency=1), params, grads, jit=True)
    assert u[-1]["w"].dtype == jnp.bfloat16 and s.mu["w"].dtype == jnp.bfloat16
    assert s.gg["w"][0].dtype == s.q["w"][1].dtype == jnp.float32


def test_moments_take_the_parameter_sharding_and_factors_are_replicated():
    mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    params = {"w": jnp.zeros((4, 6)), "b": jnp.zeros(6)}
    sh = gc.state_shardings(gc.soap(0.1), params, NamedSharding(mesh, P("x")))
    assert sh[0].mu["w"].spec == sh[0].nu["w"].spec == P("x", None)
    assert sh[0].gg["w"][0].spec == sh[0].q["w"][1].spec == P()


def test_soap_chains():
    with jax.enable_x64(True):
        params, grads = _problem(SHAPES, n=5)
        sched = lambda c: 0.1 / (1.0 + c.astype(jnp.float64))
        for kw, chain in [
            ({}, lambda t: gc.chain(t, gc.add_decayed_weights(0.1), gc.scale_by_learning_rate(sched))),
            ({"mask": {"w": True, "one": False, "b": False, "s": False}}, None),
        ]:
            got, _, _ = helpers.run_steps(gc.soap(sched, weight_decay=0.1, **kw), params, grads)
            if chain is not None:
                want, _, _ = helpers.run_steps(chain(gc.scale_by_soap()), params, grads)
                for t in range(5):
                    helpers.assert_trees_close(got[t], want[t], rtol=1e-12)
            else:  # masked: no decay on the first (zero) step except where the mask says
                assert float(jnp.abs(got[0]["w"]).max()) > 0 and not bool(jnp.any(got[0]["one"]))


def test_decay_updated_params_shrinks_the_updated_parameters_and_skips_the_first_step():
    with jax.enable_x64(True):
        params, grads = _problem(SHAPES, n=4)
        base, _, _ = helpers.run_steps(gc.soap(0.1, weight_decay=0.0), params, grads)
        got, new, _ = helpers.run_steps(
            gc.soap(0.1, weight_decay=0.5, decay_updated_params=True), params, grads
        )
    p = helpers.to_numpy64(params)
    for t in range(4):
        for k in SHAPES:
            step = np.asarray(base[t][k])
            want = (p[k] + step) * (1 - 0.1 * 0.5) - p[k] if t else step
            np.testing.assert_allclose(np.asarray(got[t][k]), want, rtol=1e-12, atol=1e-15)
            p[k] = np.asarray(new[t][k])


ERRORS = [
    (lambda: gc.scale_by_soap(b1=1.0), ValueError, r"scale_by_soap: `b1` must be >= 0 and < 1, got 1.0"),
    (lambda: gc.scale_by_soap(b2=-0.1), ValueError, r"scale_by_soap: `b2` must be >= 0 and < 1"),
    (lambda: gc.scale_by_soap(shampoo_beta=1.5), ValueError, r"scale_by_soap: `shampoo_beta` must be >= 0"),
    (lambda: gc.scale_by_soap(eps=-1.0), ValueError, r"scale_by_soap: `eps` must be >= 0, got -1.0"),
    (
        lambda: gc.scale_by_soap(precondition_frequency=0),
        ValueError,
        r"scale_by_soap: `precondition_frequency` must be >= 1, got 0",
    ),
    (
        lambda: gc.scale_by_soap(precondition_frequency=2.0),
        TypeError,
        r"scale_by_soap: `precondition_frequency` must be a Python int",
    ),
    (
        lambda: gc.scale_by_soap(max_precond_dim=0),
        ValueError,
        r"scale_by_soap: `max_precond_dim` must be >= 1",
    ),
    (
        lambda: gc.scale_by_soap(normalize_grads=1),
        TypeError,
        r"scale_by_soap: `normalize_grads` must be a bool",
    ),
    (
        lambda: gc.scale_by_soap().init({"z": jnp.zeros((2, 2), jnp.complex64)}),
        TypeError,
        r"scale_by_soap: `params` must be real, got a complex64 leaf",
    ),
    (
        lambda: gc.scale_by_soap().update({"a": jnp.zeros(2)}, gc.scale_by_soap().init({"b": jnp.zeros(2)})),
        ValueError,
        r"scale_by_soap: the `updates` tree does not match",
    ),
    (lambda: gc.soap(-0.1), ValueError, r"soap: `learning_rate` must be >= 0, got -0.1"),
    (lambda: gc.soap(0.1, weight_decay=-1.0), ValueError, r"soap: `weight_decay` must be >= 0, got -1.0"),
    (lambda: gc.soap(0.1, b1=1.0), ValueError, r"soap: scale_by_soap: `b1` must be >= 0 and < 1"),
    (
        lambda: gc.soap(0.1, decay_updated_params=None),
        TypeError,
        r"soap: `decay_updated_params` must be a bool",
    ),
    (
        lambda: (lambda tx: tx.update(jnp.ones(2), tx.init(jnp.ones(2))))(
            gc.soap(0.1, decay_updated_params=True)
        ),
        ValueError,
        r"soap: this transformation needs the parameters",
    ),
]


@pytest.mark.parametrize("make,exc,match", ERRORS)
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


_STACKED_KERNELS_SCRIPT = """
import jax, jax.numpy as jnp, gradchain
keys = jax.random.split(jax.random.key(0), 3)
params = {"qkv": jax.random.normal(keys[0], (2, 96, 288)), "fc": jax.random.normal(keys[1], (2, 96, 384)),
          "embed": jax.random.normal(keys[2], (96, 96))}
tx = gradchain.soap(3e-3, precondition_frequency=2)
step = jax.jit(lambda p, s: tx.update(p, s, p))
state = tx.init(params)
for _ in range(3):
    u, state = step(params, state)
jax.block_until_ready(u)
print("done")
"""


def test_stacked_kernels_do_not_hang_the_cpu_lapack_kernels():
    # jaxlib's batched CPU eigh/qr wait on XLA's thread pool from inside it: with three
    # stacked kernels in one step, two batched calls waited on each other forever (on two
    # cores). `per_matrix` feeds the CPU kernels one matrix at a time. In a subprocess
    # with a timeout, so a hang fails the test instead of stopping the suite.
    import subprocess
    import sys

    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _STACKED_KERNELS_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("three SOAP steps over stacked kernels did not finish in 90 s (a LAPACK deadlock)")
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-2000:]
