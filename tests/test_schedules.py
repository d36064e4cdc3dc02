"""Schedules: Optax parity at every step, float64 NumPy transcriptions of the documented
formulas, Keras parity for inverse_time_decay, jit/vmap/tracer hyperparameters, errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from gradchain import schedules as gs

T = np.arange(401)
COUNTS = jnp.arange(401, dtype=jnp.int32)
RTOL, ATOL = 1e-6, 1e-7

# ------------------------------------------------------------------ Optax parity cases
# Each builder takes the schedules module (gradchain.schedules or optax.schedules).
PARITY = {
    "constant": lambda m: m.constant_schedule(0.3),
    "constant_neg": lambda m: m.constant_schedule(-2.0),
    "linear": lambda m: m.linear_schedule(init_value=1.0, end_value=0.01, transition_steps=100),
    "linear_begin": lambda m: m.linear_schedule(0.0, 3e-4, transition_steps=250, transition_begin=37),
    "linear_zero_steps": lambda m: m.linear_schedule(0.5, 0.1, transition_steps=0, transition_begin=10),
    "poly_2": lambda m: m.polynomial_schedule(1.0, 0.01, power=2, transition_steps=100, transition_begin=5),
    "poly_sqrt": lambda m: m.polynomial_schedule(0.1, 1e-4, power=0.5, transition_steps=333),
    "poly_up": lambda m: m.polynomial_schedule(2.0, 3.0, power=3.0, transition_steps=7, transition_begin=390),
    "exp": lambda m: m.exponential_decay(1.0, transition_steps=10, decay_rate=0.9),
    "exp_stairs": lambda m: m.exponential_decay(0.1, 25, 0.5, transition_begin=50, staircase=True),
    "exp_floor": lambda m: m.exponential_decay(0.1, 7, 0.8, end_value=0.01),
    "exp_grow_cap": lambda m: m.exponential_decay(
        1e-3, 30, 1.5, transition_begin=3, staircase=True, end_value=0.02
    ),
    "piecewise": lambda m: m.piecewise_constant_schedule(1.0, {100: 0.1, 200: 0.01}),
    "piecewise_unsorted": lambda m: m.piecewise_constant_schedule(
        0.5, {300: 0.5, 0: 2.0, 150: 0.3, 151: 3.0, 400: 0.0}
    ),
    "piecewise_none": lambda m: m.piecewise_constant_schedule(0.2, None),
    "cosine": lambda m: m.cosine_decay_schedule(1.0, decay_steps=100),
    "cosine_alpha_exp": lambda m: m.cosine_decay_schedule(0.3, decay_steps=399, alpha=0.1, exponent=2.0),
    "cosine_one_step": lambda m: m.cosine_decay_schedule(2.0, 1, alpha=0.5, exponent=0.7),
    "warmup_cosine": lambda m: m.warmup_cosine_decay_schedule(0.0, 1.0, 50, 300, end_value=1e-3),
    "warmup_cosine_nowarm": lambda m: m.warmup_cosine_decay_schedule(
        1e-4, 3e-3, warmup_steps=0, decay_steps=400, exponent=1.5
    ),
    "warmup_cosine_zero_peak": lambda m: m.warmup_cosine_decay_schedule(0.1, 0.0, 10, 11, end_value=0.05),
    "warmup_exp": lambda m: m.warmup_exponential_decay_schedule(0.0, 1.0, 40, 20, 0.7),
    "warmup_exp_all": lambda m: m.warmup_exponential_decay_schedule(
        0.01, 0.5, 0, 13, 0.5, transition_begin=20, staircase=True, end_value=0.05
    ),
    "onecycle": lambda m: m.cosine_onecycle_schedule(300, 1.0),
    "onecycle_args": lambda m: m.cosine_onecycle_schedule(
        100, 0.3, pct_start=0.25, div_factor=10.0, final_div_factor=100.0
    ),
    "onecycle_no_rise": lambda m: m.cosine_onecycle_schedule(7, 2.0, pct_start=0.0),
    "sgdr": lambda m: m.sgdr_schedule(
        [
            {"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 10, "decay_steps": 100},
            {
                "init_value": 0.1,
                "peak_value": 0.5,
                "warmup_steps": 5,
                "decay_steps": 150,
                "end_value": 0.01,
                "exponent": 2.0,
            },
            {"init_value": 0.0, "peak_value": 0.2, "warmup_steps": 0, "decay_steps": 50},
        ]
    ),
    "join": lambda m: m.join_schedules(
        [m.linear_schedule(0.0, 1.0, 20), m.exponential_decay(1.0, 10, 0.9), m.constant_schedule(0.05)],
        [20, 200],
    ),
    "join_equal_boundaries": lambda m: m.join_schedules(
        [m.constant_schedule(1.0), m.constant_schedule(2.0), m.cosine_decay_schedule(3.0, 50)], [100, 100]
    ),
}


def _optax_values(make):
    """Optax's values at every step, eager (op by op) and jitted."""
    optax = pytest.importorskip("optax")
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        sched = make(optax.schedules)
        f = jax.vmap(lambda c: jnp.asarray(sched(c), jnp.float32))
        return np.asarray(f(COUNTS)), np.asarray(jax.jit(f)(COUNTS))


@pytest.mark.parametrize("name", sorted(PARITY))
def test_matches_optax_at_every_step(name):
    # Eager is compared with eager and jit with jit: XLA rewrites `x / c` as `x * (1 / c)`
    # when it compiles, which moves `1 + cos(.)` near its end by a few ulps (up to ~2.5e-6
    # relative, in Optax as much as here).
    ref_eager, ref_jit = _optax_values(PARITY[name])
    # Optax's jitted polynomial_schedule gives nan at the end of a fractional-power
    # transition (see _polynomial); there the eager value is the reference.
    ref_jit = np.where(np.isnan(ref_jit), ref_eager, ref_jit)
    sched = PARITY[name](gs)
    eager = sched(COUNTS)
    assert eager.shape == (401,) and eager.dtype == jnp.float32
    np.testing.assert_allclose(eager, ref_eager, rtol=RTOL, atol=ATOL, err_msg=name)
    np.testing.assert_allclose(jax.jit(sched)(COUNTS), ref_jit, rtol=RTOL, atol=ATOL, err_msg=name)
    scalar = jax.jit(sched)
    got = np.array([scalar(jnp.int32(i)) for i in range(401)])
    np.testing.assert_allclose(got, ref_jit, rtol=RTOL, atol=ATOL, err_msg=name)
    assert scalar(jnp.int32(3)).shape == ()
    # A Python int count works too.
    np.testing.assert_allclose(sched(17), ref_eager[17], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("steps", [41, 47, 55, 97])
def test_staircase_is_exact_under_jit(steps):
    # XLA turns `t / 41` into `t * (1 / 41)` = 0.99999994 at t = 41: a plain floor drops a
    # stair there (Optax 0.2.8's jitted staircase does, for 51 of the steps in 1..399).
    t = jnp.arange(0, 8 * steps, dtype=jnp.int32)
    stairs = np.floor(np.arange(8 * steps) / steps)
    for sched, ref in [
        (gs.exponential_decay(1.0, steps, 0.5, staircase=True), 0.5**stairs),
        (gs.inverse_time_decay(1.0, 1.0, steps, staircase=True), 1 / (1 + stairs)),
    ]:
        np.testing.assert_allclose(jax.jit(sched)(t), ref, rtol=1e-6)
        np.testing.assert_allclose(sched(t), ref, rtol=1e-6)


def test_optax_jit_nan_is_fixed_here():
    optax = pytest.importorskip("optax")
    make = PARITY["poly_sqrt"]
    with jax.numpy_dtype_promotion("standard"):
        assert np.isnan(jax.jit(make(optax.schedules))(jnp.int32(333)))  # Optax 0.2.8
    np.testing.assert_allclose(jax.jit(make(gs))(COUNTS[333:]), 1e-4, rtol=1e-6)


# ------------------------------------------------- float64 transcriptions of the docstrings
def np_polynomial(t, I, E, P, T_, B=0):
    if T_ == 0:
        return np.full(t.shape, I)
    s = np.clip(t - B, 0, T_)
    return (I - E) * (1 - s / T_) ** P + E


def np_exponential(t, I, T_, r, B=0, staircase=False, end_value=None):
    p = (t - B) / T_
    if staircase:
        p = np.floor(p)
    v = np.where(t <= B, I, I * r**p)
    if end_value is not None:
        v = np.maximum(v, end_value) if r < 1 else np.minimum(v, end_value)
    return v


def np_inverse_time(t, I, r, T_, staircase=False):
    p = t / T_
    if staircase:
        p = np.floor(p)
    return I / (1 + r * p)


def np_piecewise(t, I, bs):
    return I * np.prod([np.where(t >= b, s, 1.0) for b, s in bs.items()] or [np.ones(t.shape)], axis=0)


def np_cosine(t, I, T_, a=0.0, x=1.0):
    c = 0.5 * (1 + np.cos(np.pi * np.minimum(t, T_) / T_))
    return I * ((1 - a) * c**x + a)


def np_warmup_cosine(t, I, P, W, D, E=0.0, x=1.0):
    a = 0.0 if P == 0 else E / P
    warm = I + (P - I) * t / max(W, 1)
    c = 0.5 * (1 + np.cos(np.pi * np.minimum(t - W, D - W) / (D - W)))
    return np.where(t < W, warm, P * ((1 - a) * c**x + a))


def np_warmup_exponential(t, I, P, W, T_, r, B=0, staircase=False, end_value=None):
    warm = I + (P - I) * t / max(W, 1)
    return np.where(t < W, warm, np_exponential(t - W, P, T_, r, B, staircase, end_value))


def np_inverse_sqrt(t, P, W, I=0.0, tau=None):
    tau = W if tau is None else tau
    warm = I + (P - I) * t / max(W, 1)
    with np.errstate(all="ignore"):  # the branch not taken
        return np.where(t < W, warm, P / np.sqrt(1 + (t - W) / tau))


def np_onecycle(t, T_, P, pct=0.3, div=25.0, fdiv=1e4):
    b = math.floor(pct * T_)
    v0 = P / div
    v2 = v0 / fdiv

    def interp(a, z, s):
        return z + (a - z) * (1 + np.cos(np.pi * s)) / 2

    up = interp(v0, P, t / max(b, 1))
    down = interp(P, v2, (t - b) / (T_ - b))
    return np.where(t < b, up, np.where(t < T_, down, v2))


def np_join(t, fns, boundaries):
    v = fns[0](t)
    for b, f in zip(boundaries, fns[1:]):
        v = np.where(t < b, v, f(t - b))
    return v


REFERENCE = {
    "constant": (lambda: gs.constant_schedule(0.3), lambda t: np.full(t.shape, 0.3)),
    "linear": (
        lambda: gs.linear_schedule(0.0, 3e-4, 250, 37),
        lambda t: np_polynomial(t, 0.0, 3e-4, 1, 250, 37),
    ),
    "linear_zero": (lambda: gs.linear_schedule(0.5, 0.1, 0), lambda t: np_polynomial(t, 0.5, 0.1, 1, 0)),
    "poly": (
        lambda: gs.polynomial_schedule(1.0, 0.01, 2.5, 100, 5),
        lambda t: np_polynomial(t, 1.0, 0.01, 2.5, 100, 5),
    ),
    "exp": (lambda: gs.exponential_decay(1.0, 10, 0.9, 20), lambda t: np_exponential(t, 1.0, 10, 0.9, 20)),
    "exp_stairs_floor": (
        lambda: gs.exponential_decay(0.1, 25, 0.5, 50, staircase=True, end_value=0.01),
        lambda t: np_exponential(t, 0.1, 25, 0.5, 50, True, 0.01),
    ),
    "exp_grow_cap": (
        lambda: gs.exponential_decay(1e-3, 30, 1.5, end_value=0.02),
        lambda t: np_exponential(t, 1e-3, 30, 1.5, end_value=0.02),
    ),
    "inverse_time": (lambda: gs.inverse_time_decay(0.1, 0.5, 10), lambda t: np_inverse_time(t, 0.1, 0.5, 10)),
    "inverse_time_stairs": (
        lambda: gs.inverse_time_decay(1.0, 2.0, 7.5, staircase=True),
        lambda t: np_inverse_time(t, 1.0, 2.0, 7.5, True),
    ),
    "piecewise": (
        lambda: gs.piecewise_constant_schedule(0.5, {300: 0.5, 0: 2.0, 150: 0.3}),
        lambda t: np_piecewise(t, 0.5, {300: 0.5, 0: 2.0, 150: 0.3}),
    ),
    "cosine": (
        lambda: gs.cosine_decay_schedule(0.3, 399, 0.1, 2.0),
        lambda t: np_cosine(t, 0.3, 399, 0.1, 2.0),
    ),
    "warmup_cosine": (
        lambda: gs.warmup_cosine_decay_schedule(0.01, 1.0, 50, 300, 1e-3, 1.5),
        lambda t: np_warmup_cosine(t, 0.01, 1.0, 50, 300, 1e-3, 1.5),
    ),
    "warmup_exp": (
        lambda: gs.warmup_exponential_decay_schedule(
            0.0, 1.0, 40, 13, 0.7, 20, staircase=True, end_value=0.1
        ),
        lambda t: np_warmup_exponential(t, 0.0, 1.0, 40, 13, 0.7, 20, True, 0.1),
    ),
    "inverse_sqrt": (
        lambda: gs.warmup_inverse_sqrt_schedule(2e-3, 40),
        lambda t: np_inverse_sqrt(t, 2e-3, 40),
    ),
    "inverse_sqrt_tau": (
        lambda: gs.warmup_inverse_sqrt_schedule(1.0, 10, init_value=0.1, timescale=3.0),
        lambda t: np_inverse_sqrt(t, 1.0, 10, 0.1, 3.0),
    ),
    "inverse_sqrt_nowarm": (
        lambda: gs.warmup_inverse_sqrt_schedule(1.0, 0, timescale=100),
        lambda t: np_inverse_sqrt(t, 1.0, 0, 0.0, 100),
    ),
    "onecycle": (
        lambda: gs.cosine_onecycle_schedule(100, 0.3, 0.25, 10.0, 100.0),
        lambda t: np_onecycle(t, 100, 0.3, 0.25, 10.0, 100.0),
    ),
    "sgdr": (
        lambda: gs.sgdr_schedule(
            [{"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 10, "decay_steps": 100}] * 3
        ),
        lambda t: np_join(t, [lambda s: np_warmup_cosine(s, 0.0, 1.0, 10, 100)] * 3, [100, 200]),
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_matches_float64_transcription_of_docstring(name):
    make, ref = REFERENCE[name]
    np.testing.assert_allclose(make()(COUNTS), ref(T.astype(np.float64)), rtol=2e-6, atol=1e-7, err_msg=name)


def test_inverse_time_decay_matches_keras_formula():
    # Keras InverseTimeDecay, as documented:
    #   initial_learning_rate / (1 + decay_rate * step / decay_steps)
    #   (staircase: initial_learning_rate / (1 + decay_rate * floor(step / decay_steps)))
    def keras(step, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        p = step / decay_steps
        if staircase:
            p = np.floor(p)
        return initial_learning_rate / (1 + decay_rate * p)

    step = T.astype(np.float64)
    for lr, steps, rate, stairs in [(0.1, 1.0, 0.5, False), (1.0, 10, 2.0, True), (3e-4, 7.5, 0.01, True)]:
        got = gs.inverse_time_decay(lr, rate, steps, staircase=stairs)(COUNTS)
        np.testing.assert_allclose(got, keras(step, lr, steps, rate, stairs), rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------- jit, vmap, tracers
# Schedules built from one traced value hyperparameter: (name, builder, values).
TRACED = [
    ("constant", lambda v: gs.constant_schedule(v), (0.1, -1.0)),
    ("linear", lambda v: gs.linear_schedule(v, 0.0, 100, 10), (0.1, 1.0)),
    ("poly_power", lambda v: gs.polynomial_schedule(1.0, 0.1, v, 100), (0.5, 3.0)),
    ("poly_steps", lambda n: gs.polynomial_schedule(1.0, 0.1, 2, n), (0, 77)),
    ("exp_rate", lambda r: gs.exponential_decay(1.0, 10, r, end_value=0.5), (0.9, 1.1)),
    ("exp_init", lambda v: gs.exponential_decay(v, 10, 0.5, 5, staircase=True), (0.1, 2.0)),
    ("inverse_time", lambda r: gs.inverse_time_decay(1.0, r, 10), (0.0, 0.5)),
    ("piecewise", lambda s: gs.piecewise_constant_schedule(1.0, {100: s, 200: 0.5}), (0.1, 2.0)),
    ("cosine_alpha", lambda a: gs.cosine_decay_schedule(1.0, 300, a), (0.0, 0.3)),
    ("cosine_exponent", lambda x: gs.cosine_decay_schedule(1.0, 300, 0.1, x), (1.0, 2.5)),
    ("warmup_cosine_peak", lambda p: gs.warmup_cosine_decay_schedule(0.0, p, 10, 300, 0.01), (0.0, 0.5)),
    ("warmup_cosine_steps", lambda w: gs.warmup_cosine_decay_schedule(0.0, 1.0, w, 300), (0, 50)),
    ("warmup_exp_peak", lambda p: gs.warmup_exponential_decay_schedule(0.0, p, 10, 20, 0.5), (0.3, 1.0)),
    ("inverse_sqrt_peak", lambda p: gs.warmup_inverse_sqrt_schedule(p, 25), (1e-3, 1.0)),
    ("inverse_sqrt_steps", lambda w: gs.warmup_inverse_sqrt_schedule(1.0, w, timescale=10.0), (0, 25)),
    ("onecycle_peak", lambda p: gs.cosine_onecycle_schedule(200, p), (0.1, 1.0)),
    ("onecycle_pct", lambda p: gs.cosine_onecycle_schedule(200, 1.0, p), (0.0, 0.45)),
    (
        "join_boundary",
        lambda b: gs.join_schedules([gs.constant_schedule(1.0), gs.constant_schedule(0.1)], [b]),
        (0, 150),
    ),
]


@pytest.mark.parametrize("name,make,values", TRACED, ids=[c[0] for c in TRACED])
def test_hyperparameter_may_be_a_tracer(name, make, values):
    expected = np.stack([np.asarray(make(v)(COUNTS)) for v in values])
    dtype = jnp.int32 if isinstance(values[0], int) else jnp.float32
    batch = jnp.asarray(values, dtype)
    swept = jax.jit(jax.vmap(lambda v: make(v)(COUNTS)))(batch)
    np.testing.assert_allclose(swept, expected, rtol=1e-6, atol=1e-7)
    # A concrete scalar array behaves like the Python number.
    np.testing.assert_allclose(make(batch[0])(COUNTS), expected[0], rtol=1e-6, atol=1e-7)


def test_vmap_over_counts_and_2d_counts():
    sched = jax.jit(gs.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100))
    flat = sched(COUNTS)
    np.testing.assert_allclose(jax.jit(jax.vmap(sched))(COUNTS), flat, rtol=1e-7)
    grid = sched(COUNTS[:400].reshape(20, 20))
    assert grid.shape == (20, 20)
    np.testing.assert_allclose(grid.reshape(-1), flat[:400], rtol=1e-7)


def test_huge_counts_stay_finite():
    big = COUNTS.at[-2:].set(jnp.array([2**24, 2**31 - 1], jnp.int32))  # shape (401,): cached ops
    for sched, end in [
        (gs.cosine_decay_schedule(1.0, 100, alpha=0.1), 0.1),
        (gs.linear_schedule(1.0, 0.25, 100), 0.25),
        (gs.exponential_decay(1.0, 10, 0.5, end_value=1e-3), 1e-3),
        (gs.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100, 0.2), 0.2),
        (gs.cosine_onecycle_schedule(100, 1.0), 1.0 / 25 / 1e4),
    ]:
        np.testing.assert_allclose(sched(big)[-2:], [end, end], rtol=1e-6)
    assert np.all(np.isfinite(gs.inverse_time_decay(1.0, 0.5, 10)(big)))
    assert np.all(np.isfinite(gs.warmup_inverse_sqrt_schedule(1.0, 10)(big)))


def test_drives_an_optimizer_under_strict_promotion():
    sched = gs.warmup_cosine_decay_schedule(0.0, 1.0, 2, 10)
    tx = gc.scale_by_learning_rate(sched)
    step = jax.jit(tx.update)
    state = tx.init(jnp.zeros(2, jnp.bfloat16))
    for i in range(4):
        u, state = step(jnp.ones(2, jnp.bfloat16), state)
        assert u.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(u, np.float32), -float(sched(i)), rtol=1e-2)


def test_public_surface():
    assert sorted(gs.__all__) == sorted(
        [
            "constant_schedule", "cosine_decay_schedule", "cosine_onecycle_schedule", "exponential_decay",
            "inverse_time_decay", "join_schedules", "linear_schedule", "piecewise_constant_schedule",
            "polynomial_schedule", "sgdr_schedule", "warmup_cosine_decay_schedule",
            "warmup_exponential_decay_schedule", "warmup_inverse_sqrt_schedule",
            "linear_onecycle_schedule", "piecewise_interpolate_schedule", "warmup_constant_schedule",
            "warmup_stable_decay_schedule",
            # as in optax.schedules: inject_hyperparams and the schedule protocols
            "InjectHyperparamsState", "InjectStatefulHyperparamsState", "Schedule", "StatefulSchedule",
            "WrappedSchedule", "inject_hyperparams", "inject_stateful_hyperparams",
        ]
    )  # fmt: skip
    for name in gs.__all__:
        assert getattr(gc, name) is getattr(gs, name)


# ------------------------------------------------------------------------------ errors
ERRORS = [
    (lambda: gs.constant_schedule("a"), TypeError, r"constant_schedule: `value` must be a number"),
    (lambda: gs.constant_schedule(jnp.ones(2)), ValueError, r"constant_schedule: `value` must be a scalar"),
    (lambda: gs.polynomial_schedule(1.0, 0.0, 0.0, 10), ValueError, r"polynomial_schedule: `power` must be > 0"),
    (lambda: gs.polynomial_schedule(1.0, 0.0, 1, -1), ValueError, r"polynomial_schedule: `transition_steps` must be >= 0"),
    (lambda: gs.polynomial_schedule(1.0, 0.0, 1, 2.5), ValueError, r"polynomial_schedule: `transition_steps` must be an integer"),
    (lambda: gs.polynomial_schedule(1.0, 0.0, 1, 5, -3), ValueError, r"polynomial_schedule: `transition_begin` must be >= 0"),
    (lambda: gs.polynomial_schedule(None, 0.0, 1, 5), TypeError, r"polynomial_schedule: `init_value` must be a number"),
    (lambda: gs.linear_schedule(1.0, 0.0, -1), ValueError, r"linear_schedule: `transition_steps` must be >= 0"),
    (lambda: gs.linear_schedule(1.0, "x", 1), TypeError, r"linear_schedule: `end_value` must be a number"),
    (lambda: gs.exponential_decay(1.0, 0, 0.5), ValueError, r"exponential_decay: `transition_steps` must be > 0"),
    (lambda: gs.exponential_decay(1.0, 10, 0.0), ValueError, r"exponential_decay: `decay_rate` must be > 0"),
    (lambda: gs.exponential_decay(1.0, 10, -0.5), ValueError, r"exponential_decay: `decay_rate` must be > 0"),
    (lambda: gs.exponential_decay(1.0, 10, 0.5, -1), ValueError, r"exponential_decay: `transition_begin` must be >= 0"),
    (lambda: gs.exponential_decay(1.0, 10, 0.5, staircase="yes"), TypeError, r"exponential_decay: `staircase` must be a bool"),
    (lambda: gs.exponential_decay(1.0, 10, 0.5, end_value="x"), TypeError, r"exponential_decay: `end_value` must be a number"),
    (lambda: gs.inverse_time_decay(1.0, -1.0, 10), ValueError, r"inverse_time_decay: `decay_rate` must be >= 0"),
    (lambda: gs.inverse_time_decay(1.0, 0.5, 0), ValueError, r"inverse_time_decay: `decay_steps` must be > 0"),
    (lambda: gs.inverse_time_decay(1.0, 0.5, 10, staircase=1), TypeError, r"inverse_time_decay: `staircase` must be a bool"),
    (lambda: gs.piecewise_constant_schedule(1.0, {10: -0.1}), ValueError, r"piecewise_constant_schedule: `boundaries_and_scales\[10\]` must be >= 0"),
    (lambda: gs.piecewise_constant_schedule(1.0, {-5: 0.1}), ValueError, r"piecewise_constant_schedule: `boundaries_and_scales` key `-5` must be >= 0"),
    (lambda: gs.piecewise_constant_schedule(1.0, {1.5: 0.1}), ValueError, r"piecewise_constant_schedule: `boundaries_and_scales` key `1.5` must be an integer"),
    (lambda: gs.piecewise_constant_schedule(1.0, [(10, 0.1)]), TypeError, r"piecewise_constant_schedule: `boundaries_and_scales` must be a dict"),
    (lambda: gs.cosine_decay_schedule(1.0, 0), ValueError, r"cosine_decay_schedule: `decay_steps` must be > 0"),
    (lambda: gs.cosine_decay_schedule(1.0, 10, exponent=0.0), ValueError, r"cosine_decay_schedule: `exponent` must be > 0"),
    (lambda: gs.cosine_decay_schedule(1.0, 10, alpha=jnp.ones(3)), ValueError, r"cosine_decay_schedule: `alpha` must be a scalar"),
    (lambda: gs.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10), ValueError, r"warmup_cosine_decay_schedule: `decay_steps` must be > `warmup_steps` = 10"),
    (lambda: gs.warmup_cosine_decay_schedule(0.0, 1.0, -1, 10), ValueError, r"warmup_cosine_decay_schedule: `warmup_steps` must be >= 0"),
    (lambda: gs.warmup_cosine_decay_schedule(0.0, 1.0, 1, 10, exponent=-1.0), ValueError, r"warmup_cosine_decay_schedule: `exponent` must be > 0"),
    (lambda: gs.warmup_exponential_decay_schedule(0.0, 1.0, -1, 10, 0.5), ValueError, r"warmup_exponential_decay_schedule: `warmup_steps` must be >= 0"),
    (lambda: gs.warmup_exponential_decay_schedule(0.0, 1.0, 1, 10, 0.0), ValueError, r"warmup_exponential_decay_schedule: `decay_rate` must be > 0"),
    (lambda: gs.warmup_exponential_decay_schedule(0.0, 1.0, 1, 0, 0.5), ValueError, r"warmup_exponential_decay_schedule: `transition_steps` must be > 0"),
    (lambda: gs.warmup_inverse_sqrt_schedule(1.0, 0), ValueError, r"warmup_inverse_sqrt_schedule: `timescale` must be given"),
    (lambda: gs.warmup_inverse_sqrt_schedule(1.0, 10, timescale=0.0), ValueError, r"warmup_inverse_sqrt_schedule: `timescale` must be > 0"),
    (lambda: gs.warmup_inverse_sqrt_schedule(1.0, -2), ValueError, r"warmup_inverse_sqrt_schedule: `warmup_steps` must be >= 0"),
    (lambda: gs.cosine_onecycle_schedule(0, 1.0), ValueError, r"cosine_onecycle_schedule: `transition_steps` must be > 0"),
    (lambda: gs.cosine_onecycle_schedule(10, 1.0, pct_start=1.0), ValueError, r"cosine_onecycle_schedule: `pct_start` must be >= 0 and < 1"),
    (lambda: gs.cosine_onecycle_schedule(10, 1.0, div_factor=0.0), ValueError, r"cosine_onecycle_schedule: `div_factor` must be > 0"),
    (lambda: gs.cosine_onecycle_schedule(10, 1.0, final_div_factor=-1.0), ValueError, r"cosine_onecycle_schedule: `final_div_factor` must be > 0"),
    (lambda: gs.sgdr_schedule([]), ValueError, r"sgdr_schedule: `cosine_kwargs` must be a non-empty"),
    (lambda: gs.sgdr_schedule({"init_value": 0.0}), TypeError, r"sgdr_schedule: `cosine_kwargs` must be an iterable of dicts"),
    (lambda: gs.sgdr_schedule([0.1]), TypeError, r"sgdr_schedule: `cosine_kwargs\[0\]` must be a dict"),
    (lambda: gs.sgdr_schedule([{"init_value": 0.0, "peak_value": 1.0, "decay_steps": 10}]), TypeError, r"sgdr_schedule: `cosine_kwargs\[0\]` must have the keys"),
    (lambda: gs.sgdr_schedule([{"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 0, "decay_steps": 10, "alpha": 0.1}]), TypeError, r"sgdr_schedule: `cosine_kwargs\[0\]` must have the keys"),
    (lambda: gs.sgdr_schedule([{"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 5, "decay_steps": 10}] + [{"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 5, "decay_steps": 3}]), ValueError, r"sgdr_schedule \(cycle 1\): `decay_steps` must be > `warmup_steps`"),
    (lambda: gs.join_schedules([], []), ValueError, r"join_schedules: `schedules` must be a non-empty"),
    (lambda: gs.join_schedules([gs.constant_schedule(1.0), 0.5], [3]), TypeError, r"join_schedules: `schedules\[1\]` must be a callable"),
    (lambda: gs.join_schedules([gs.constant_schedule(1.0)] * 2, [1, 2]), ValueError, r"join_schedules: `boundaries` must have len\(schedules\) - 1 = 1 entries, got 2"),
    (lambda: gs.join_schedules([gs.constant_schedule(1.0)] * 3, [5, 2]), ValueError, r"join_schedules: `boundaries` must be non-decreasing"),
    (lambda: gs.join_schedules([gs.constant_schedule(1.0)] * 2, [-1]), ValueError, r"join_schedules: `boundaries\[0\]` must be >= 0"),
]  # fmt: skip


@pytest.mark.parametrize(
    "make,exc,match", ERRORS, ids=[m.split(":")[0] + f"-{i}" for i, (_, _, m) in enumerate(ERRORS)]
)
def test_invalid_arguments_raise(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
