"""Momentum: trace and ema against their docstring rules (float64) and Optax 0.2.8."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12
SHAPES = {"w": (3, 4), "b": (5,)}


# ----------------------------------------------------------- float64 NumPy transcriptions
def np_trace(gs, decay, nesterov=False):
    t, out = 0.0 * gs[0], []
    for g in gs:
        t = decay * t + g
        out.append(g + decay * t if nesterov else t)
    return out


def np_ema(gs, decay, debias=True):
    e, out = 0.0 * gs[0], []
    for t, g in enumerate(gs, start=1):
        e = decay * e + (1 - decay) * g
        out.append(e / (1 - decay**t) if debias else e)
    return out


REFERENCE = [
    ("trace", lambda: gc.trace(0.9), lambda gs: np_trace(gs, 0.9)),
    ("trace_nesterov", lambda: gc.trace(0.7, nesterov=True), lambda gs: np_trace(gs, 0.7, True)),
    ("ema", lambda: gc.ema(0.8), lambda gs: np_ema(gs, 0.8)),
    ("ema_nodebias", lambda: gc.ema(0.8, debias=False), lambda gs: np_ema(gs, 0.8, False)),
]


def check_against_reference(make, ref, shapes=SHAPES, rtol=1e-10):
    """Run ``make()`` in float64 (eager) and compare every step with ``ref`` leaf by leaf."""
    with jax.enable_x64(True):
        params = helpers.random_tree(0, shapes, dtype=jnp.float64)
        grads = helpers.grad_sequence(1, params, N_STEPS)
        updates, _, _ = helpers.run_steps(make(), params, grads)
        got = [[np.asarray(x) for x in jax.tree.leaves(u)] for u in updates]
        assert all(x.dtype == np.float64 for x in got[-1])
    per_leaf = zip(*[[np.asarray(x) for x in jax.tree.leaves(g)] for g in grads])
    for i, leaf_grads in enumerate(per_leaf):
        expected = ref(list(leaf_grads))
        for t in range(N_STEPS):
            np.testing.assert_allclose(
                got[t][i], expected[t], rtol=rtol, atol=1e-300, err_msg=f"leaf {i} step {t}"
            )


@pytest.mark.parametrize("make,ref", [r[1:] for r in REFERENCE], ids=[r[0] for r in REFERENCE])
def test_matches_float64_transcription(make, ref):
    check_against_reference(make, ref)


# ----------------------------------------------------------- Optax 0.2.8
OPTAX = [
    ("trace", lambda: gc.trace(0.9), lambda ox: ox.trace(0.9)),
    ("trace_nesterov", lambda: gc.trace(0.9, nesterov=True), lambda ox: ox.trace(0.9, nesterov=True)),
    ("ema", lambda: gc.ema(0.9), lambda ox: ox.ema(0.9)),
    ("ema_nodebias", lambda: gc.ema(0.9, debias=False), lambda ox: ox.ema(0.9, debias=False)),
]


def check_against_optax(make, make_ox, *, jit, tol=2e-5, shapes=SHAPES, dtype=jnp.float32, optax_jit=None):
    """Same random gradients through ``chain(make(), scale(-1e-2))`` and Optax's chain.

    Optax runs eagerly or jitted as gradchain does, unless ``optax_jit`` says otherwise.
    """
    optax = pytest.importorskip("optax")
    optax_jit = jit if optax_jit is None else optax_jit
    params = helpers.random_tree(0, shapes, dtype=dtype)
    grads = helpers.grad_sequence(1, params, N_STEPS)
    grads[0]["b"] = jnp.zeros_like(grads[0]["b"])  # a zero gradient on a fresh state
    u, p, _ = helpers.run_steps(gc.chain(make(), gc.scale(-1e-2)), params, grads, jit=jit)
    uo, po, _ = helpers.run_optax(
        optax.chain(make_ox(optax), optax.scale(-1e-2)), params, grads, jit=optax_jit
    )
    worst_u = max(helpers.max_rel_diff(a, b) for a, b in zip(u, uo))
    worst_p = max(helpers.max_rel_diff(a, b) for a, b in zip(p, po))
    assert worst_u <= tol and worst_p <= tol, f"updates {worst_u:.3g}, params {worst_p:.3g} > {tol:g}"
    for a, b in zip(jax.tree.leaves(u[-1]), jax.tree.leaves(params)):
        assert a.dtype == b.dtype


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("make,make_ox", [r[1:] for r in OPTAX], ids=[r[0] for r in OPTAX])
def test_matches_optax(make, make_ox, jit):
    check_against_optax(make, make_ox, jit=jit)


# ----------------------------------------------------------- dtypes and state
def _bf16(x):
    """Round float64 values to bfloat16 and back (what bfloat16 storage does)."""
    return np.asarray(np.asarray(x, ml_dtypes.bfloat16), np.float64)


def np_trace_bf16(gs, decay):
    t, out = 0.0 * gs[0], []
    for g in gs:
        t = decay * t + g
        out.append(t)
        t = _bf16(t)
    return out


def np_ema_bf16(gs, decay):
    e, out = 0.0 * gs[0], []
    for t, g in enumerate(gs, start=1):
        e = decay * e + (1 - decay) * g
        out.append(e / (1 - decay**t))
        e = _bf16(e)
    return out


def normwise_rel(actual, expected):
    """``max |a - b| / max |b|`` over steps: the error relative to the update's scale."""
    return max(
        float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))
        for a, b in zip(actual, expected)
    )


BF16_STATE = [
    (
        "trace",
        lambda: gc.trace(0.9, accumulator_dtype=jnp.bfloat16),
        lambda gs: np_trace_bf16(gs, 0.9),
        lambda ox: ox.trace(0.9, accumulator_dtype=jnp.bfloat16),
    ),
    (
        "ema",
        lambda: gc.ema(0.9, accumulator_dtype=jnp.bfloat16),
        lambda gs: np_ema_bf16(gs, 0.9),
        lambda ox: ox.ema(0.9, accumulator_dtype=jnp.bfloat16),
    ),
]


def check_bfloat16_state(make, ref, make_ox, tol_ref=1e-4, tol_optax=3e-2):
    """Against the float64 rule with bfloat16 storage (1e-4 of the largest update), and Optax.

    gradchain computes in float32 and rounds only what it stores. Optax multiplies the
    stored bfloat16 state by the decay in bfloat16 (0.9 becomes 0.8984375), so it
    drifts by ~1% of the largest update over these steps (0.8% trace, 1.2% ema and Adam,
    1.3% AMSGrad, measured).
    """
    params = helpers.random_tree(0, {"w": (64,)})
    grads = helpers.grad_sequence(1, params, N_STEPS)
    u, _, state = helpers.run_steps(make(), params, grads, jit=True)
    assert any(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(state))
    assert all(x["w"].dtype == jnp.float32 for x in u)
    assert normwise_rel([x["w"] for x in u], ref([np.asarray(g["w"], np.float64) for g in grads])) <= tol_ref
    if make_ox is not None:
        optax = pytest.importorskip("optax")
        uo, _, _ = helpers.run_optax(make_ox(optax), params, grads, jit=True)
        assert normwise_rel([x["w"] for x in u], [np.asarray(x["w"], np.float64) for x in uo]) <= tol_optax


@pytest.mark.parametrize("make,ref,make_ox", [r[1:] for r in BF16_STATE], ids=[r[0] for r in BF16_STATE])
def test_bfloat16_accumulators_are_computed_in_float32_and_rounded_once(make, ref, make_ox):
    check_bfloat16_state(make, ref, make_ox)


@pytest.mark.parametrize(
    "make,field",
    [
        (lambda: gc.trace(0.9, accumulator_dtype=jnp.bfloat16), "trace"),
        (lambda: gc.ema(0.9, accumulator_dtype=jnp.bfloat16), "ema"),
    ],
)
def test_accumulator_dtype_is_the_storage_dtype_only(make, field):
    tx = make()
    params = {"a": jnp.zeros(3), "b": jnp.zeros(2, jnp.float16)}
    state = tx.init(params)
    u, state = tx.update({"a": jnp.full(3, 1.0 + 2**-10), "b": jnp.ones(2, jnp.float16)}, state)
    acc = getattr(state, field)
    assert acc["a"].dtype == jnp.bfloat16 and acc["b"].dtype == jnp.bfloat16
    assert u["a"].dtype == jnp.float32 and u["b"].dtype == jnp.float16
    # the update is computed before rounding to bfloat16 (which would give exactly 1.0 here)
    assert float(u["a"][0]) != 1.0


def test_ema_of_constant_is_constant_when_debiased():
    tx = gc.ema(0.99)
    state = tx.init(jnp.zeros(2))
    for _ in range(5):
        u, state = tx.update(jnp.array([3.0, -1.0]), state)
    np.testing.assert_allclose(u, [3.0, -1.0], rtol=1e-6)
    assert int(state.count) == 5


def test_trace_decay_zero_is_identity():
    tx = gc.trace(0.0, nesterov=True)
    g = jnp.array([1.5, -2.0])
    u, _ = tx.update(g, tx.init(g))
    np.testing.assert_array_equal(u, g)


# ----------------------------------------------------------- errors
ERRORS = [
    (lambda: gc.trace(1.5), ValueError, r"trace: `decay` must be >= 0 and <= 1, got 1.5"),
    (lambda: gc.trace(-0.1), ValueError, r"trace: `decay` must be >= 0 and <= 1"),
    (lambda: gc.trace("0.9"), TypeError, r"trace: `decay` must be a number"),
    (lambda: gc.trace(0.9, nesterov=1), TypeError, r"trace: `nesterov` must be a bool, got 1"),
    (
        lambda: gc.trace(0.9, accumulator_dtype=jnp.int32),
        TypeError,
        r"trace: `accumulator_dtype` must be a floating",
    ),
    (lambda: gc.ema(1.5), ValueError, r"ema: `decay` must be >= 0 and < 1, got 1.5"),
    (lambda: gc.ema(0.9, debias=None), TypeError, r"ema: `debias` must be a bool"),
    (
        lambda: gc.ema(0.9, accumulator_dtype="int8"),
        TypeError,
        r"ema: `accumulator_dtype` must be a floating",
    ),
]


@pytest.mark.parametrize("make,exc,match", ERRORS)
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("make,name", [(lambda: gc.trace(0.9), "trace"), (lambda: gc.ema(0.9), "ema")])
def test_tree_mismatch_is_reported(make, name):
    tx = make()
    state = tx.init({"a": jnp.zeros(2)})
    with pytest.raises(ValueError, match=rf"{name}: the `updates` tree does not match the state"):
        tx.update({"b": jnp.zeros(2)}, state)
