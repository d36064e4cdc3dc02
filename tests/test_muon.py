"""Muon (`scale_by_muon`, `muon`, `MuonDimensionNumbers`, `MuonState`): Optax 0.2.8 parity
(eager and jitted), torch.optim.Muon parity under its conventions, float64 NumPy
transcriptions of the docstring rules, the Newton-Schulz iteration against the polar
factor, per-matrix orthogonalization of stacked kernels (and their sharding), the
learning-rate scale conventions, Optax's edge cases and the argument errors."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from gradchain._transforms.muon import (
    DION_NS_COEFFS,
    STANDARD_NS_COEFFS,
    orthogonalize_via_newton_schulz,
    polar_express_coefficients,
    scale_by_shape,
)
from tests import helpers

optax = pytest.importorskip("optax")

N_STEPS = 12
SHAPES = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}
MATRICES = {"v": (3, 7), "stack": (3, 5, 4)}  # a wide matrix, a stack (batch axis in the middle)
SCHED = lambda c: 0.05 * 0.9 ** c.astype(jnp.float32)


def _problem(shapes=SHAPES, seed=0, dtype=jnp.float32, n=N_STEPS):
    """Parameters with |p| >= 1 (no cancellation in p + u) and ``n`` gradient trees."""
    params = jax.tree.map(lambda x: jnp.sign(x) * (1 + jnp.abs(x)), helpers.random_tree(seed, shapes, dtype))
    return params, helpers.grad_sequence(seed + 1, params, n)


def _max_rel(actual_seq, expected_seq) -> float:
    """Largest ``|a - b| / max|b|`` over steps and leaves: each leaf's error measured against
    that leaf's size at that step (rounding is relative to the terms; an element near zero
    of an orthogonalized matrix is not a separate scale)."""
    worst = 0.0
    for a, b in zip(actual_seq, expected_seq):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
            worst = max(worst, float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30)))
    return worst


# ------------------------------------------------------------------- Optax 0.2.8 parity
# name -> (kwargs built from a module: gradchain or optax.contrib, shapes). The muon tree
# has a matrix, a vector and a stacked 3-D kernel (Optax's default sends the last two to
# AdamW; with dimension numbers the stack is Muon's, one matrix per layer).
def _dims(m, b=True):
    d = {"w": m.MuonDimensionNumbers(), "stack": m.MuonDimensionNumbers(1, 2)}
    return {**d, "b": None} if b else d


def _matrices_dims(m):  # a wide matrix, and a stack with its batch axis in the middle
    return {"v": m.MuonDimensionNumbers(), "stack": m.MuonDimensionNumbers(0, 2)}


MUON_OPTAX = {
    "default": lambda m: {},
    "stacked_dims_wd_mask": lambda m: {
        "muon_weight_dimension_numbers": _dims(m),
        "weight_decay": 0.1,
        "weight_decay_mask": {"w": False, "b": False, "stack": True},
    },
    "flags_dion_schatten_rms_schedules_callable_dims": lambda m: {
        "learning_rate": SCHED,
        "ns_coeffs": "dion",
        "nesterov": False,
        "adaptive": True,
        "preconditioning": "schatten",
        "consistent_rms": 0.2,
        "weight_decay": SCHED,
        "adam_learning_rate": 0.01,
        "adam_weight_decay": 0.1,
        "adam_b1": 0.8,
        "adam_b2": 0.99,
        "adam_eps_root": 1e-8,
        "muon_weight_dimension_numbers": lambda p: _dims(m),
    },
}
SCALE_OPTAX = {
    "default": (lambda m: {"weight_dimension_numbers": _dims(m, b=False)}, {"w": (6, 4), "stack": (3, 5, 4)}),
    "polar_express_adaptive_aol_momentum": (
        lambda m: {
            "ns_coeffs": polar_express_coefficients(5),
            "beta": 0.9,
            "eps": 1e-6,
            "nesterov": False,
            "adaptive": True,
            "preconditioning": "aol",
            "weight_dimension_numbers": _matrices_dims(m),
        },
        MATRICES,
    ),
}


@functools.cache
def _optax_updates(kind: str, name: str) -> list:
    """Optax's updates over N_STEPS (jitted: the reference for gradchain eager and jitted)."""
    if kind == "muon":
        kw = MUON_OPTAX[name](optax.contrib)
        otx, shapes = optax.contrib.muon(kw.pop("learning_rate", 0.05), **kw), SHAPES
    else:
        make, shapes = SCALE_OPTAX[name]
        otx = optax.contrib.scale_by_muon(**make(optax.contrib))
    params, grads = _problem(shapes)
    return helpers.run_optax(otx, params, grads, jit=True)[0]


MODES = {"default": (True,), "stacked_dims_wd_mask": (False, True)}


@pytest.mark.parametrize(
    "name,jit",
    [(n, j) for n in MUON_OPTAX for j in MODES.get(n, (True,))],
    ids=[f"{n}-{'jit' if j else 'eager'}" for n in MUON_OPTAX for j in MODES.get(n, (True,))],
)
def test_muon_matches_optax(name, jit):
    kw = MUON_OPTAX[name](gc)
    params, grads = _problem()
    u, _, _ = helpers.run_steps(gc.muon(kw.pop("learning_rate", 0.05), **kw), params, grads, jit=jit)
    assert _max_rel(u, _optax_updates("muon", name)) <= 2e-5


@pytest.mark.parametrize(
    "name,jit",
    [
        ("default", False),
        ("default", True),
        ("polar_express_adaptive_aol_momentum", True),
    ],
    ids=["default-eager", "default-jit", "polar_express_adaptive_aol_momentum-jit"],
)
def test_scale_by_muon_matches_optax(name, jit):
    make, shapes = SCALE_OPTAX[name]
    params, grads = _problem(shapes)
    u, _, _ = helpers.run_steps(gc.scale_by_muon(**make(gc)), params, grads, jit=jit)
    assert _max_rel(u, _optax_updates("scale_by_muon", name)) <= 2e-5


def test_optax_state_ports_and_continues():
    """An Optax muon state (MuonState has Optax's fields) converts with `from_optax_state` and
    the run continues on Optax's trajectory."""
    assert gc.MuonState._fields == optax.contrib.MuonState._fields
    params, grads = _problem()
    otx, tx = optax.contrib.muon(0.05, weight_decay=0.1), gc.muon(0.05, weight_decay=0.1)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        ostep = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*otx.update(g, s, p)))
        p, s, trajectory = params, otx.init(params), []
        for t, g in enumerate(grads):
            p, s = ostep(p, s, g)
            trajectory.append(p)
            if t == 5:
                ported = (p, gc.from_optax_state(tx, s, params))
    step = jax.jit(lambda p, s, g: (lambda u, s: (gc.apply_updates(p, u), s))(*tx.update(g, s, p)))
    p, s = ported
    for g, want in zip(grads[6:], trajectory[6:]):
        p, s = step(p, s, g)
        helpers.assert_trees_close(p, want, rtol=1e-5)


# ------------------------------------------------------------ torch.optim.Muon (torch 2.13)
# torch's conventions: no bias correction, its adjust_lr_fn, eps = 1e-7 clamping the norm
# (here added: the same unless the momentum is ~0), Newton-Schulz in bfloat16, decay by
# lr * wd (not scaled by the shape). torch takes 2-D parameters only.
TORCH_SHAPES = {"v": (3, 7), "w": (6, 4)}


def _torch_ns_float32(grad, ns_coefficients, ns_steps, eps):
    """torch's `_zeropower_via_newtonschulz` with the ``.bfloat16()`` cast left out."""
    import torch

    a, b, c = ns_coefficients
    x = grad.T if grad.size(0) > grad.size(1) else grad
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if grad.size(0) > grad.size(1) else x


def _torch_run(params, grads, lr, wd, nesterov, adjust, float32_ns, monkeypatch):
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torch.optim._muon")
    if float32_ns:
        monkeypatch.setattr(tm, "_zeropower_via_newtonschulz", _torch_ns_float32)
    ps = [torch.tensor(np.asarray(params[k])) for k in TORCH_SHAPES]
    opt = torch.optim.Muon(ps, lr=lr, weight_decay=wd, nesterov=nesterov, adjust_lr_fn=adjust)
    out = []
    for g in grads:
        for p, k in zip(ps, TORCH_SHAPES):
            p.grad = torch.tensor(np.asarray(g[k]))
        opt.step()
        out.append({k: p.detach().numpy().copy() for p, k in zip(ps, TORCH_SHAPES)})
    return out


def _torch_like(lr, wd, nesterov, adjust, ns_dtype):
    kw = {"beta": 0.95, "eps": 1e-7, "weight_decay": wd, "nesterov": nesterov, "bias_correction": False}
    return gc.muon(lr, **kw, adjust_lr_fn=adjust or "original", ns_dtype=ns_dtype)


@pytest.mark.parametrize("nesterov,adjust", [(True, None), (False, "match_rms_adamw")])
def test_muon_matches_torch_with_float32_iteration(nesterov, adjust, monkeypatch):
    """The conventions exactly: torch's iteration patched to float32; relative 1e-5."""
    params, grads = _problem(TORCH_SHAPES)
    want = _torch_run(params, grads, 0.02, 0.1, nesterov, adjust, True, monkeypatch)
    _, got, _ = helpers.run_steps(_torch_like(0.02, 0.1, nesterov, adjust, None), params, grads, jit=True)
    helpers.assert_trees_close(got, want, rtol=1e-5)


EXACT = {"xla_allow_excess_precision": False}  # XLA keeps no float32 between bfloat16 ops


def test_muon_matches_torch_in_bfloat16(monkeypatch):
    """torch as shipped (bfloat16 iteration) against ``ns_dtype=jnp.bfloat16``: from the same
    momentum, one orthogonalization is bit-identical (with XLA's excess precision off; the
    float32 one is not). Over 12 jitted steps the parameters agree to 2% of the distance
    travelled (``lr * steps``): torch's momentum (``lerp``) rounds differently in float32."""
    tm = pytest.importorskip("torch.optim._muon")
    import torch

    params, grads = _problem(TORCH_SHAPES)
    xs = [jnp.asarray(grads[0][k]) for k in TORCH_SHAPES]
    for dt in (jnp.bfloat16, None):
        ns = lambda xs: [
            orthogonalize_via_newton_schulz(x, STANDARD_NS_COEFFS, eps=1e-7, ns_dtype=dt) for x in xs
        ]
        for x, got in zip(xs, jax.jit(ns, compiler_options=EXACT)(xs)):
            want = tm._zeropower_via_newtonschulz(torch.tensor(np.asarray(x)), STANDARD_NS_COEFFS, 5, 1e-7)
            assert np.array_equal(np.asarray(got, np.float32), want.float().numpy()) == (dt is not None)
    want = _torch_run(params, grads, 0.02, 0.1, True, None, False, monkeypatch)
    _, got, _ = helpers.run_steps(_torch_like(0.02, 0.1, True, None, jnp.bfloat16), params, grads, jit=True)
    dist = max(np.max(np.abs(np.asarray(a[k]) - b[k])) for a, b in zip(got, want) for k in b)
    assert dist <= 0.02 * 0.02 * N_STEPS


# -------------------------------------------------- float64 NumPy transcriptions
def np_newton_schulz(m, rows, eps, ord="fro"):
    """`orthogonalize_via_newton_schulz`'s docstring, one matrix."""
    x = m.T if m.shape[0] > m.shape[1] else m
    x = x / (np.linalg.norm(x, ord) + eps)
    for a, b, c in rows:
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if m.shape[0] > m.shape[1] else x


def np_scale_by_muon(
    beta=0.95, eps=1e-8, rows=(STANDARD_NS_COEFFS,) * 5, nesterov=True, adaptive=False, bc=True, ord="fro"
):
    """`scale_by_muon`'s docstring: one leaf, matrices over the last two axes."""
    s = {"t": 0}

    def step(g, p):
        s["t"] += 1
        t, m = s["t"], s.get("m", 0 * g)
        m = beta * m + (1 - beta) * g
        if bc:
            n = (
                beta * m / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta**t)
                if nesterov
                else m / (1 - beta**t)
            )
        else:
            n = beta * m + (1 - beta) * g if nesterov else m
        o = np.stack([np_newton_schulz(x, rows, eps, ord) for x in n.reshape(-1, *n.shape[-2:])]).reshape(
            n.shape
        )
        s["m"] = m
        return np.sum(n * o) * o if adaptive else o

    return step


def np_nadamw(lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    s = {"t": 0}

    def step(g, p):
        s["t"] += 1
        t, m, v = s["t"], s.get("m", 0 * g), s.get("v", 0 * g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        s.update(m=m, v=v)
        return -lr * (m_hat / (np.sqrt(v / (1 - b2**t)) + eps) + wd * p)

    return step


def np_muon_matrix(lr, wd, scale, **kw):
    """`muon`'s chain for a Muon leaf: ``-lr * (scale * O_t + wd * p)``."""
    inner = np_scale_by_muon(**kw)
    return lambda g, p: -lr * (scale * inner(g, p) + wd * p)


def _check_transcription(tx, refs, shapes):
    """``tx`` in float64 (jitted) against one transcription per leaf, every step."""
    with jax.enable_x64(True):
        params, grads = _problem(shapes, dtype=jnp.float64)
        updates, _, _ = helpers.run_steps(tx(), params, grads, jit=True)
    for i, p in enumerate(jax.tree.leaves(helpers.to_numpy64(params))):
        ref = refs[i]()
        for t, g in enumerate(grads):
            u = ref(np.asarray(jax.tree.leaves(g)[i], np.float64), p)
            got = np.asarray(jax.tree.leaves(updates[t])[i])
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, u, rtol=1e-9, atol=1e-12 * np.max(np.abs(u)), err_msg=f"{i} {t}")
            p = p + u


STACK = {"w": (6, 4), "stack": (2, 3, 5)}  # a tall matrix; a stack of two wide ones
PE5, PE8 = polar_express_coefficients(5), polar_express_coefficients(8)


@pytest.mark.parametrize(
    "kw,ref_kw",
    [
        (
            {
                "ns_coeffs": "polar_express",
                "ns_steps": 8,
                "nesterov": False,
                "adaptive": True,
                "bias_correction": False,
            },
            {"rows": PE8, "nesterov": False, "adaptive": True, "bc": False},
        ),
        (
            {"ns_coeffs": DION_NS_COEFFS, "beta": 0.8, "eps": 1e-3, "preconditioning": "spectral"},
            {"rows": DION_NS_COEFFS, "beta": 0.8, "eps": 1e-3, "ord": 2},
        ),
    ],
    ids=["polar_express_adaptive_torch_momentum", "dion_spectral_nesterov"],
)
def test_scale_by_muon_matches_float64_transcription(kw, ref_kw):
    _check_transcription(lambda: gc.scale_by_muon(**kw), [lambda: np_scale_by_muon(**ref_kw)] * 2, STACK)


def test_muon_matches_float64_transcription():
    """Muon on the matrix and on the stack (muon_mask; per-matrix, rows 3, cols 5), NAdamW on
    the vector, weight decay on the matrices, torch's "match_rms_adamw" scale."""
    shapes = {"b": (4,), "stack": (2, 3, 5), "w": (6, 4)}
    mask = {"b": False, "stack": True, "w": True}
    kw = dict(weight_decay=0.1, muon_mask=mask, adjust_lr_fn="match_rms_adamw", adam_learning_rate=0.01)
    tx = lambda: gc.muon(0.05, **kw, adam_weight_decay=0.2)
    refs = [
        lambda: np_nadamw(0.01, 0.2),
        lambda: np_muon_matrix(0.05, 0.1, 0.2 * np.sqrt(5)),
        lambda: np_muon_matrix(0.05, 0.1, 0.2 * np.sqrt(6)),
    ]
    _check_transcription(tx, refs, shapes)


# ------------------------------------------------------------ the iteration itself
def _in_singular_basis(x, o):
    """``U^T O V`` for ``x = U S V^T``: diagonal when ``O`` has ``x``'s singular vectors."""
    u, _, vt = np.linalg.svd(x, full_matrices=False)
    return u.T @ np.asarray(o, np.float64) @ vt.T


@pytest.mark.parametrize("shape", [(32, 16), (16, 48)])
def test_newton_schulz_approximates_the_polar_factor(shape):
    """O = U p(S) V^T: the input's singular vectors, singular values in the polynomial's band
    around 1 (standard quintic: ~[0.68, 1.13], Jordan 2024; Polar Express tighter, and
    converged after 8 steps)."""
    x = np.random.default_rng(0).standard_normal(shape)
    ns = jax.jit(
        lambda x: [
            orthogonalize_via_newton_schulz(x, c, n) for c, n in ((STANDARD_NS_COEFFS, 5), (PE5, 5), (PE8, 8))
        ]
    )
    standard, pe5, pe8 = (_in_singular_basis(x, o) for o in ns(jnp.asarray(x, jnp.float32)))
    for s, lo, hi in ((standard, 0.65, 1.15), (pe5, 0.85, 1.15)):
        d = np.diag(s)
        assert lo <= d.min() and d.max() <= hi, d
        assert np.max(np.abs(s - np.diag(d))) <= 1e-4
    np.testing.assert_allclose(pe8, np.eye(min(shape)), atol=2e-3)


def test_polar_express_is_the_published_schedule():
    """Amsel et al.'s Algorithm 1: safety 1.01 on all but the last polynomial, the last one
    repeated, and the normalization by 1.01 ||X||_F folded into the first polynomial."""
    rows = polar_express_coefficients(10)
    assert len(rows) == 10 and rows[7:] == ((1.875, -1.25, 0.375),) * 3
    np.testing.assert_allclose(
        rows[1], (4.107059111542203 / 1.01, -2.9478499167379106 / 1.01**3, 0.5448431082926601 / 1.01**5)
    )
    np.testing.assert_allclose(
        rows[0], (8.28721201814563 / 1.01**2, -23.595886519098837 / 1.01**6, 17.300387312530933 / 1.01**10)
    )
    x = np.random.default_rng(1).standard_normal((8, 12))
    ref = x / (np.linalg.norm(x) * 1.01)  # the reference normalization, then its polynomials
    safe = [(a / 1.01, b / 1.01**3, c / 1.01**5) for a, b, c in [
        (8.28721201814563, -23.595886519098837, 17.300387312530933),
        (4.107059111542203, -2.9478499167379106, 0.5448431082926601)]]  # fmt: skip
    for a, b, c in safe:
        gram = ref @ ref.T
        ref = a * ref + (b * gram + c * gram @ gram) @ ref
    np.testing.assert_allclose(np_newton_schulz(x, rows[:2], 0.0), ref, rtol=1e-12)


# ------------------------------------------------------------ stacks, shapes and sharding
def test_stacked_kernels_are_orthogonalized_per_matrix():
    x = jnp.asarray(np.random.default_rng(2).standard_normal((3, 5, 4)), jnp.float32)
    ns = lambda m, d=None: orthogonalize_via_newton_schulz(m, STANDARD_NS_COEFFS, 2, dimension_numbers=d)

    @jax.jit
    def pairs(x):
        return [
            (ns(x), jnp.stack([ns(m) for m in x])),  # default: the leading axis is batch
            (ns(x, gc.MuonDimensionNumbers(0, 2)), jnp.stack([ns(x[:, i]) for i in range(5)], axis=1)),
            (ns(x, gc.MuonDimensionNumbers((0, 1), 2)), ns(x.reshape(15, 4)).reshape(3, 5, 4)),
        ]

    for got, want in pairs(x):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kw,wide,tall,stack",
    [
        ({}, 2.0, 1.0, 2.0),  # Optax: sqrt(max(1, cols / rows))
        ({"adjust_lr_fn": "original"}, 1.0, 2.0, 1.0),  # torch / Keller Jordan: sqrt(max(1, rows / cols))
        ({"adjust_lr_fn": "match_rms_adamw"}, 0.2 * 8**0.5, 0.2 * 8**0.5, 0.2 * 8**0.5),
        ({"consistent_rms": 0.3}, 0.3 * 8**0.5, 0.3 * 8**0.5, 0.3 * 8**0.5),
    ],
)
def test_learning_rate_scale_conventions(kw, wide, tall, stack):
    g = {"wide": jnp.ones((2, 8)), "tall": jnp.ones((8, 2)), "stack": jnp.ones((3, 2, 8))}
    tx = scale_by_shape(**kw)
    u, _ = tx.update(g, tx.init(g))
    for k, want in (("wide", wide), ("tall", tall), ("stack", stack)):
        np.testing.assert_allclose(u[k], want * np.ones_like(g[k]), rtol=1e-6)


SHARDING_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
import gradchain as gc
rng = np.random.default_rng(0)
p0, g0 = (rng.standard_normal((4, 8, 12)).astype(np.float32) for _ in range(2))
tx = gc.muon(0.1, muon_mask={"stack": True, "b": False})
def step(p, s, g):
    u, s = tx.update(g, s, p)
    return gc.apply_updates(p, u), s
host = lambda x: {"stack": jnp.asarray(x), "b": jnp.ones(6)}
want = np.asarray(jax.jit(step)(host(p0), tx.init(host(p0)), host(g0))[0]["stack"])
for kind, spec, batch in ((AxisType.Explicit, P("x"), True), (AxisType.Auto, P("x"), True),
                          (AxisType.Explicit, P(None, None, "x"), False)):
    mesh = jax.make_mesh((4,), ("x",), axis_types=(kind,))
    put = lambda x: {"stack": jax.device_put(x, NamedSharding(mesh, spec)),
                     "b": jax.device_put(np.ones(6, np.float32), NamedSharding(mesh, P()))}
    p, g = put(p0), put(g0)
    compiled = jax.jit(step).lower(p, tx.init(p), g).compile()
    comms = [c for c in ("all-gather", "all-to-all", "collective-permute", "all-reduce") if c in compiled.as_text()]
    new, _ = compiled(p, tx.init(p), g)
    assert (not comms) == batch, (kind, spec, comms)
    assert tuple(new["stack"].sharding.spec)[: len(spec)] == tuple(spec), new["stack"].sharding
    np.testing.assert_allclose(np.asarray(new["stack"]), want, rtol=1e-6, atol=1e-6)
print("ok")
"""


def test_stack_sharded_along_its_batch_axis_needs_no_communication():
    """On 4 simulated devices (a subprocess): a (layers, d_in, d_out) kernel sharded along
    layers is updated without any collective, on meshes with explicit and auto axes; sharded
    along a matrix axis it is gathered (the control, explicit axes: `reshard` and back); the
    parameters keep their sharding and equal the single-device step."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SHARDING_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout[-2000:] + r.stderr[-4000:]


# ------------------------------------------------------------ edge cases and dtypes
def test_zero_gradient_gives_a_zero_update_not_nan():
    params, _ = _problem()
    zeros = jax.tree.map(jnp.zeros_like, params)
    tx = gc.muon(0.1)
    u, _ = tx.update(zeros, tx.init(params), params)
    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(u))


def test_non_matrix_leaves_pass_scale_by_muon_unchanged_and_keep_no_state():
    g = {"w": jnp.ones((2, 3)), "b": jnp.arange(3.0)}
    tx = gc.scale_by_muon(weight_dimension_numbers={"w": gc.MuonDimensionNumbers(), "b": None})
    state = tx.init(g)
    assert state.mu["b"] is None and state.ns_coeffs.shape == (3,)
    u, _ = tx.update(g, state)
    np.testing.assert_array_equal(u["b"], g["b"])


def test_trees_without_muon_leaves():
    """No Muon leaf: muon is NAdamW (Optax's default branch), scale_by_muon only counts."""
    p = {"b": jnp.ones(3)}
    tx = gc.muon(0.1)
    u, _ = tx.update(p, tx.init(p), p)
    np.testing.assert_allclose(u["b"], -0.1 * (0.09 / 0.19 + 1) * np.ones(3), rtol=1e-5)
    tx = gc.scale_by_muon()
    u, s = tx.update({}, tx.init({}))
    assert u == {} and int(s.count) == 1


def test_bfloat16_parameters_and_momentum():
    """bfloat16 parameters, a float32 momentum, a bfloat16 iteration: bfloat16 updates whose
    singular values stay in the quintic's band (bfloat16-rounded)."""
    params, grads = _problem(STACK, dtype=jnp.bfloat16, n=3)
    tx = gc.scale_by_muon(mu_dtype=jnp.float32, ns_dtype=jnp.bfloat16)
    u, _, s = helpers.run_steps(tx, params, grads, jit=True)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u)) and s.mu["w"].dtype == jnp.float32
    for m in [u[-1]["w"], *u[-1]["stack"]]:
        sv = np.linalg.svd(np.asarray(m, np.float64), compute_uv=False)
        assert 0.6 <= sv.min() and sv.max() <= 1.2, sv


# ------------------------------------------------------------ errors
M = gc.MuonDimensionNumbers
ERRORS = [
    (lambda: gc.scale_by_muon(beta=1.0), ValueError, r"scale_by_muon: `beta` must be"),
    (lambda: gc.scale_by_muon(ns_steps=2.5), TypeError, r"scale_by_muon: `ns_steps` must be a Python int"),
    (
        lambda: gc.scale_by_muon(ns_coeffs=(1.0, 2.0)),
        ValueError,
        r"scale_by_muon: `ns_coeffs` must be a triple",
    ),
    (
        lambda: gc.scale_by_muon(ns_coeffs="muon"),
        ValueError,
        r"`ns_coeffs` must be .* 'polar_express', got 'muon'",
    ),
    (
        lambda: gc.scale_by_muon(DION_NS_COEFFS, 3),
        ValueError,
        r"`ns_coeffs` must hold at most `ns_steps` = 3",
    ),
    (lambda: gc.scale_by_muon((np.nan, 1.0, 1.0)), ValueError, r"`ns_coeffs` must be finite"),
    (lambda: gc.scale_by_muon(eps=-1.0), ValueError, r"scale_by_muon: `eps` must be >= 0"),
    (lambda: gc.scale_by_muon(nesterov=1), TypeError, r"scale_by_muon: `nesterov` must be a bool"),
    (
        lambda: gc.scale_by_muon(mu_dtype=jnp.int32),
        TypeError,
        r"scale_by_muon: `mu_dtype` must be a floating",
    ),
    (lambda: gc.scale_by_muon(ns_dtype="int8"), TypeError, r"scale_by_muon: `ns_dtype` must be a floating"),
    (
        lambda: gc.scale_by_muon(preconditioning="svd"),
        ValueError,
        r"scale_by_muon: `preconditioning` must be one",
    ),
    (lambda: gc.muon(-0.1), ValueError, r"muon: `learning_rate` must be >= 0"),
    (lambda: gc.muon(0.1, beta=2.0), ValueError, r"muon: scale_by_muon: `beta` must be"),
    (lambda: gc.muon(0.1, adam_b1=1.5), ValueError, r"muon: `adam_b1` must be"),
    (lambda: gc.muon(0.1, adam_learning_rate=-1.0), ValueError, r"muon: `adam_learning_rate` must be >= 0"),
    (lambda: gc.muon(0.1, adjust_lr_fn="moonshot"), ValueError, r"muon: `adjust_lr_fn` must be one of"),
    (
        lambda: gc.muon(0.1, consistent_rms=0.2, adjust_lr_fn="original"),
        ValueError,
        r"`consistent_rms` must be None",
    ),
    (lambda: gc.muon(0.1, consistent_rms=-0.2), ValueError, r"muon: `consistent_rms` must be >= 0"),
]


@pytest.mark.parametrize("make,exc,match", ERRORS, ids=[m for *_, m in ERRORS])
def test_argument_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


W, B = jnp.ones((3, 4)), jnp.ones(4)
INIT_ERRORS = [
    (
        gc.scale_by_muon(),
        {"b": B},
        ValueError,
        r"scale_by_muon: `weight_dimension_numbers` must leave out .*\['b'\]",
    ),
    (
        gc.scale_by_muon(weight_dimension_numbers=M(0, 0)),
        W,
        ValueError,
        r"distinct, non-empty reduction .*\(3, 4\)",
    ),
    (gc.scale_by_muon(weight_dimension_numbers=M(0, 2)), W, ValueError, r"distinct, non-empty reduction"),
    (
        gc.scale_by_muon(weight_dimension_numbers={"x": M()}),
        {"w": W},
        ValueError,
        r"tree does not match the param",
    ),
    (
        gc.scale_by_muon(weight_dimension_numbers={"w": 0}),
        {"w": W},
        TypeError,
        r"must hold `MuonDimensionNumbers`",
    ),
    (
        gc.muon(0.1, muon_mask={"w": True, "b": True}),
        {"w": W, "b": B},
        ValueError,
        r"muon: `muon_mask` must select",
    ),
    (
        gc.muon(0.1, muon_weight_dimension_numbers={"w": M(), "b": M()}),
        {"w": W, "b": B},
        ValueError,
        r"muon: `muon_w",
    ),
]


@pytest.mark.parametrize("tx,params,exc,match", INIT_ERRORS, ids=[m for *_, m in INIT_ERRORS])
def test_init_errors_name_the_leaf(tx, params, exc, match):
    with pytest.raises(exc, match=match):
        tx.init(params)


def test_update_errors():
    tx = gc.scale_by_muon()
    with pytest.raises(ValueError, match=r"scale_by_muon: the update at leaf .* has shape \(4, 3\)"):
        tx.update({"w": jnp.ones((4, 3))}, tx.init({"w": W}))
    with pytest.raises(ValueError, match="needs the parameters"):
        gc.muon(0.1).update({"w": W}, gc.muon(0.1).init({"w": W}))
