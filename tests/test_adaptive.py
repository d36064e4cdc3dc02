"""Adaptive scaling: each transformation against its docstring rule (float64) and Optax 0.2.8."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers
from tests.test_momentum import (
    N_STEPS,
    SHAPES,
    _bf16,
    check_against_optax,
    check_against_reference,
    check_bfloat16_state,
)


def _keep(x):
    return x


# ----------------------------------------------------------- float64 NumPy transcriptions
# One line per line of the docstring's update rule; `store` rounds what the state keeps.
def np_rss(gs, init=0.1, eps=1e-7):
    s, out = init + 0.0 * gs[0], []
    for g in gs:
        s = s + np.abs(g) ** 2
        out.append(np.where(s > 0, g / np.sqrt(s + eps), 0.0))
    return out


def np_rms(gs, decay=0.9, eps=1e-8, init=0.0, eps_in_sqrt=True, bias_correction=False):
    v, out = init + 0.0 * gs[0], []
    for t, g in enumerate(gs, start=1):
        v = decay * v + (1 - decay) * np.abs(g) ** 2
        w = v / (1 - decay**t) if bias_correction else v
        out.append(g / np.sqrt(w + eps) if eps_in_sqrt else g / (np.sqrt(w) + eps))
    return out


def np_stddev(gs, decay=0.9, eps=1e-8, init=0.0, eps_in_sqrt=True, bias_correction=False):
    m, v, out = 0.0 * gs[0], init + 0.0 * gs[0], []
    for t, g in enumerate(gs, start=1):
        m = decay * m + (1 - decay) * g
        v = decay * v + (1 - decay) * np.abs(g) ** 2
        mh, vh = (m / (1 - decay**t), v / (1 - decay**t)) if bias_correction else (m, v)
        s = np.maximum(vh - np.abs(mh) ** 2, 0)
        out.append(g / np.sqrt(s + eps) if eps_in_sqrt else g / (np.sqrt(s) + eps))
    return out


def _np_mhat(m, g, b1, t, nesterov):
    if nesterov:
        return b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
    return m / (1 - b1**t)


def np_adam(gs, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, nesterov=False, store_m=_keep, store_v=_keep):
    m, v, out = 0.0 * gs[0], 0.0 * gs[0], []
    for t, g in enumerate(gs, start=1):
        m = store_m(b1 * m + (1 - b1) * g)  # the update reads the moments as stored
        v = store_v(b2 * v + (1 - b2) * np.abs(g) ** 2)
        mh = _np_mhat(m, g, b1, t, nesterov)
        vh = v / (1 - b2**t)
        out.append(mh / (np.sqrt(vh + eps_root) + eps))
    return out


def np_amsgrad(gs, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, bc_mu=True, bc_nu=True, store_m=_keep):
    m, v, w, out = 0.0 * gs[0], 0.0 * gs[0], 0.0 * gs[0], []
    for t, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * np.abs(g) ** 2
        mh = m / (1 - b1**t) if bc_mu else m
        vh = v / (1 - b2**t) if bc_nu else v
        w = np.maximum(w, vh)
        out.append(mh / (np.sqrt(w + eps_root) + eps))
        m = store_m(m)
    return out


def np_adamax(gs, b1=0.9, b2=0.999, eps=1e-8):
    m, v, out = 0.0 * gs[0], 0.0 * gs[0], []
    for t, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        v = np.maximum(np.abs(g) + eps, b2 * v)
        out.append(m / (1 - b1**t) / v)
    return out


def np_belief(gs, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False):
    m, s, out = 0.0 * gs[0], 0.0 * gs[0], []
    for t, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * np.abs(g - m) ** 2 + eps_root
        mh = _np_mhat(m, g, b1, t, nesterov)
        out.append(mh / (np.sqrt(s / (1 - b2**t)) + eps))
    return out


def np_radam(gs, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, nesterov=False):
    m, v, out = 0.0 * gs[0], 0.0 * gs[0], []
    for t, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * np.abs(g) ** 2
        mh, vh = _np_mhat(m, g, b1, t, nesterov), v / (1 - b2**t)
        rho_inf = 2 / (1 - b2) - 1
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho >= threshold:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            out.append(r * mh / (np.sqrt(vh + eps_root) + eps))
        else:
            out.append(mh)
    return out


def np_lion(gs, b1=0.9, b2=0.99):
    m, out = 0.0 * gs[0], []
    for g in gs:
        out.append(np.sign((1 - b1) * g + b1 * m))
        m = b2 * m + (1 - b2) * g
    return out


REFERENCE = [
    ("rss", gc.scale_by_rss, np_rss),
    ("rss_torch", lambda: gc.scale_by_rss(0.0, 1e-10), lambda gs: np_rss(gs, 0.0, 1e-10)),
    ("rms", lambda: gc.scale_by_rms(0.8, initial_scale=0.5), lambda gs: np_rms(gs, 0.8, init=0.5)),
    (
        "rms_flags",
        lambda: gc.scale_by_rms(eps=1e-3, eps_in_sqrt=False, bias_correction=True),
        lambda gs: np_rms(gs, eps=1e-3, eps_in_sqrt=False, bias_correction=True),
    ),
    ("stddev", gc.scale_by_stddev, np_stddev),
    (
        "stddev_flags",
        lambda: gc.scale_by_stddev(0.8, 1e-3, 0.2, eps_in_sqrt=False, bias_correction=True),
        lambda gs: np_stddev(gs, 0.8, 1e-3, 0.2, eps_in_sqrt=False, bias_correction=True),
    ),
    ("adam", gc.scale_by_adam, np_adam),
    (
        "adam_eps_root",
        lambda: gc.scale_by_adam(0.8, 0.99, 1e-3, 1e-4),
        lambda gs: np_adam(gs, 0.8, 0.99, 1e-3, 1e-4),
    ),
    ("nadam", lambda: gc.scale_by_adam(nesterov=True), lambda gs: np_adam(gs, nesterov=True)),
    ("amsgrad", gc.scale_by_amsgrad, np_amsgrad),
    (
        "amsgrad_paper",
        lambda: gc.scale_by_amsgrad(0.5, 0.9, bias_correction_mu=False, bias_correction_nu=False),
        lambda gs: np_amsgrad(gs, 0.5, 0.9, bc_mu=False, bc_nu=False),
    ),
    ("adamax", lambda: gc.scale_by_adamax(0.8, 0.7, 1e-3), lambda gs: np_adamax(gs, 0.8, 0.7, 1e-3)),
    ("belief", gc.scale_by_belief, np_belief),
    (
        "belief_nesterov",
        lambda: gc.scale_by_belief(0.8, 0.9, 1e-6, 1e-8, nesterov=True),
        lambda gs: np_belief(gs, 0.8, 0.9, 1e-6, 1e-8, nesterov=True),
    ),
    ("radam", gc.scale_by_radam, np_radam),  # rho_t crosses 5 at step 6: both branches
    (
        "radam_nesterov",
        lambda: gc.scale_by_radam(0.8, 0.95, 1e-4, threshold=4.5, nesterov=True),
        lambda gs: np_radam(gs, 0.8, 0.95, 1e-4, threshold=4.5, nesterov=True),
    ),
    ("lion", gc.scale_by_lion, np_lion),
]


@pytest.mark.parametrize("make,ref", [r[1:] for r in REFERENCE], ids=[r[0] for r in REFERENCE])
def test_matches_float64_transcription(make, ref):
    check_against_reference(make, ref, rtol=1e-9)


def test_radam_reference_covers_both_branches():
    b2, ts = 0.999, np.arange(1, N_STEPS + 1)
    rho = 2 / (1 - b2) - 1 - 2 * ts * b2**ts / (1 - b2**ts)
    assert (rho < 5).any() and (rho >= 5).any()


# ----------------------------------------------------------- Optax 0.2.8
BF16 = jnp.bfloat16
OPTAX = [
    ("rss", gc.scale_by_rss, lambda ox: ox.scale_by_rss()),
    ("rss_torch", lambda: gc.scale_by_rss(0.0, 1e-10), lambda ox: ox.scale_by_rss(0.0, 1e-10)),
    ("rms", gc.scale_by_rms, lambda ox: ox.scale_by_rms()),
    # each flag's two branches: the default and both flags flipped
    (
        "rms_both",
        lambda: gc.scale_by_rms(0.95, eps_in_sqrt=False, bias_correction=True),
        lambda ox: ox.scale_by_rms(0.95, eps_in_sqrt=False, bias_correction=True),
    ),
    ("stddev", gc.scale_by_stddev, lambda ox: ox.scale_by_stddev()),
    # initial_scale > 0: with 0, Optax's first bias-corrected step is NaN (see test below)
    (
        "stddev_both",
        lambda: gc.scale_by_stddev(initial_scale=0.1, eps_in_sqrt=False, bias_correction=True),
        lambda ox: ox.scale_by_stddev(initial_scale=0.1, eps_in_sqrt=False, bias_correction=True),
    ),
    ("adam", gc.scale_by_adam, lambda ox: ox.scale_by_adam()),
    (
        "adam_eps_root",
        lambda: gc.scale_by_adam(0.8, 0.99, 1e-6, 1e-8),
        lambda ox: ox.scale_by_adam(0.8, 0.99, 1e-6, 1e-8),
    ),
    ("nadam", lambda: gc.scale_by_adam(nesterov=True), lambda ox: ox.scale_by_adam(nesterov=True)),
    ("amsgrad", gc.scale_by_amsgrad, lambda ox: ox.scale_by_amsgrad()),
    (
        "amsgrad_paper",
        lambda: gc.scale_by_amsgrad(bias_correction_mu=False, bias_correction_nu=False),
        lambda ox: ox.scale_by_amsgrad(bias_correction_mu=False, bias_correction_nu=False),
    ),
    ("adamax", gc.scale_by_adamax, lambda ox: ox.scale_by_adamax()),
    ("belief", gc.scale_by_belief, lambda ox: ox.scale_by_belief()),
    (
        "belief_nesterov",
        lambda: gc.scale_by_belief(nesterov=True),
        lambda ox: ox.scale_by_belief(nesterov=True),
    ),
    ("radam", gc.scale_by_radam, lambda ox: ox.scale_by_radam()),
    (
        "radam_nesterov",
        lambda: gc.scale_by_radam(threshold=4.5, nesterov=True),
        lambda ox: ox.scale_by_radam(threshold=4.5, nesterov=True),
    ),
    ("lion", gc.scale_by_lion, lambda ox: ox.scale_by_lion()),
    ("lion_bf16", lambda: gc.scale_by_lion(mu_dtype=BF16), lambda ox: ox.scale_by_lion(mu_dtype=BF16)),
]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name,make,make_ox", OPTAX, ids=[r[0] for r in OPTAX])
def test_matches_optax(name, make, make_ox, jit):
    # RAdam's rho_t = rho_inf - 2 t b2^t / (1 - b2^t) cancels (1999 - 1993 at t = 6): the
    # last bit of b2^t moves r_t by ~0.6%. Eager Optax computes b2^t by repeated squaring
    # (jnp.power of a concrete integer), jitted Optax and gradchain (eager or jitted) with
    # XLA's pow, so gradchain is compared with jitted Optax (and see the next test).
    check_against_optax(make, make_ox, jit=jit, optax_jit=True if name.startswith("radam") else None)


def test_radam_eager_optax_differs_only_by_its_power():
    optax = pytest.importorskip("optax")
    params = helpers.random_tree(0, SHAPES)
    grads = helpers.grad_sequence(1, params, N_STEPS)
    u, _, _ = helpers.run_steps(gc.scale_by_radam(), params, grads)
    uo, _, _ = helpers.run_optax(optax.scale_by_radam(), params, grads)
    worst = max(helpers.max_rel_diff(a, b) for a, b in zip(u, uo))
    assert 1e-4 < worst < 1e-2, worst  # all of it from r_t: the rectified steps, a uniform factor
    ratio = [np.asarray(a["w"] / b["w"]) for a, b in zip(u, uo)]
    assert all(np.ptp(r) < 1e-5 for r in ratio)


def test_adam_first_steps_are_optax_bit_for_bit():
    """Python-float hyperparameters stay weakly typed, as in Optax: identical float32 bits."""
    optax = pytest.importorskip("optax")
    g = jnp.asarray(np.random.default_rng(0).standard_normal(1000), jnp.float32)
    tx, otx = gc.scale_by_adam(), optax.scale_by_adam()
    s, os_ = tx.init(g), otx.init(g)
    for t in range(3):
        u, s = tx.update((t + 1) * g, s)
        with jax.numpy_dtype_promotion("standard"):
            ou, os_ = otx.update((t + 1) * g, os_)
        np.testing.assert_array_equal(u, ou)


COMPLEX = [
    ("rss", gc.scale_by_rss, lambda ox: ox.scale_by_rss()),
    ("stddev", gc.scale_by_stddev, lambda ox: ox.scale_by_stddev()),
    ("nadam", lambda: gc.scale_by_adam(nesterov=True), lambda ox: ox.scale_by_adam(nesterov=True)),
]


@pytest.mark.parametrize("make,make_ox", [r[1:] for r in COMPLEX], ids=[r[0] for r in COMPLEX])
def test_complex_parameters_match_optax(make, make_ox):
    optax = pytest.importorskip("optax")
    cplx = lambda a, b: jax.tree.map(lambda x, y: (x + 1j * y).astype(jnp.complex64), a, b)
    with jax.numpy_dtype_promotion("standard"):
        params = cplx(helpers.random_tree(0, SHAPES), helpers.random_tree(1, SHAPES))
        re, im = helpers.grad_sequence(2, params, N_STEPS), helpers.grad_sequence(3, params, N_STEPS)
        grads = [cplx(jax.tree.map(jnp.real, a), jax.tree.map(jnp.real, b)) for a, b in zip(re, im)]
    u, _, state = helpers.run_steps(make(), params, grads)
    uo, _, _ = helpers.run_optax(make_ox(optax), params, grads)
    split = lambda tree: jax.tree.map(lambda x: jnp.stack([x.real, x.imag]), tree)
    worst = max(helpers.max_rel_diff(split(a), split(b)) for a, b in zip(u, uo))
    assert worst <= 2e-5, worst
    assert all(x.dtype == jnp.complex64 for x in jax.tree.leaves(u[-1]))
    nu = state.sum_of_squares if hasattr(state, "sum_of_squares") else state.nu
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nu)), (
        "second moments of complex params are real"
    )


# ----------------------------------------------------------- reduced-precision state
BF16_STATE = [
    # (id, gradchain factory, float64 rule with bfloat16 storage, Optax factory or None)
    (
        "adam_mu",
        lambda: gc.scale_by_adam(mu_dtype=BF16),
        lambda gs: np_adam(gs, store_m=_bf16),
        lambda ox: ox.scale_by_adam(mu_dtype=BF16),
    ),
    (
        "adam_mu_nu",
        lambda: gc.scale_by_adam(mu_dtype=BF16, nu_dtype=BF16),
        lambda gs: np_adam(gs, store_m=_bf16, store_v=_bf16),
        None,
    ),
    (
        "nadam_nu",
        lambda: gc.scale_by_adam(nesterov=True, nu_dtype=BF16),
        lambda gs: np_adam(gs, nesterov=True, store_v=_bf16),
        None,
    ),
    (
        "amsgrad_mu",
        lambda: gc.scale_by_amsgrad(mu_dtype=BF16),
        lambda gs: np_amsgrad(gs, store_m=_bf16),
        lambda ox: ox.scale_by_amsgrad(mu_dtype=BF16),
    ),
]


@pytest.mark.parametrize("make,ref,make_ox", [r[1:] for r in BF16_STATE], ids=[r[0] for r in BF16_STATE])
def test_bfloat16_moments_are_computed_in_float32_and_rounded_once(make, ref, make_ox):
    check_bfloat16_state(make, ref, make_ox)


def test_bfloat16_nu_keeps_tiny_squares():
    """(1 - b2) * g**2 = 1e-11 is representable in bfloat16 (float32's exponent range)."""
    tx = gc.scale_by_adam(nu_dtype=BF16)
    g = jnp.full(3, 1e-4)
    state = tx.init(g)
    for _ in range(3):
        u, state = tx.update(g, state)
    assert state.nu.dtype == BF16 and float(state.nu[0]) > 0
    np.testing.assert_allclose(u, 1.0, rtol=2e-2)


@pytest.mark.parametrize(
    "make",
    [
        gc.scale_by_adam,
        gc.scale_by_rms,
        gc.scale_by_rss,
        gc.scale_by_amsgrad,
        gc.scale_by_belief,
        gc.scale_by_radam,
        gc.scale_by_stddev,
    ],
)
def test_float16_params_keep_second_moments_in_float32(make):
    tx = make()
    g = jnp.full(4, 1e-3, jnp.float16)  # g**2 = 1e-6 and (1 - b2) * g**2 = 1e-9 underflow in float16
    state = tx.init(g)
    u, state = tx.update(g, state)
    nus = [x for f in ("nu", "nu_max", "sum_of_squares") for x in jax.tree.leaves(getattr(state, f, None))]
    assert nus and all(x.dtype == jnp.float32 for x in nus) and all(float(x[0]) > 0 for x in nus)
    assert u.dtype == jnp.float16 and bool(jnp.all(jnp.isfinite(u)))


# ----------------------------------------------------------- edge cases
def test_rss_from_zero_accumulator_leaves_zero_gradients_at_zero():
    tx = gc.scale_by_rss(initial_accumulator_value=0.0, eps=0.0)
    g = jnp.array([0.0, 3.0])
    u, state = tx.update(g, tx.init(g))
    np.testing.assert_array_equal(u, [0.0, 1.0])
    np.testing.assert_array_equal(state.sum_of_squares, [0.0, 9.0])


def test_stddev_first_bias_corrected_step_is_finite_where_optax_is_nan():
    optax = pytest.importorskip("optax")
    g = jnp.asarray(np.random.default_rng(0).standard_normal(1000), jnp.float32)
    u, _ = gc.scale_by_stddev(bias_correction=True).update(
        g, gc.scale_by_stddev(bias_correction=True).init(g)
    )
    assert bool(jnp.all(jnp.isfinite(u)))
    assert bool(jnp.all(jnp.abs(u) <= jnp.abs(g) * 1e4 * (1 + 1e-6)))  # at most g / sqrt(eps)
    with jax.numpy_dtype_promotion("standard"):
        otx = optax.scale_by_stddev(bias_correction=True)
        assert bool(jnp.any(jnp.isnan(otx.update(g, otx.init(g))[0])))


def test_radam_is_momentum_until_rho_reaches_threshold():
    tx = gc.scale_by_radam(b1=0.0)
    g = jnp.array([2.0, -0.5])
    state = tx.init(g)
    for _ in range(5):  # rho_t < 5 for t <= 5 with b2 = 0.999: u = m_hat = g when b1 = 0
        u, state = tx.update(g, state)
        np.testing.assert_allclose(u, g, rtol=1e-6)
    u, state = tx.update(g, state)
    assert not np.allclose(u, g, rtol=1e-2)


def test_radam_unused_rectifier_has_finite_gradient():
    def loss(g):  # at t = 3, rho_t ~ 2.99 and r_t would be sqrt(negative): NaN times 0 in the backward pass
        tx = gc.scale_by_radam()
        state = tx.init(g)
        for _ in range(3):
            u, state = tx.update(g, state)
        return jnp.sum(u)

    assert bool(jnp.all(jnp.isfinite(jax.grad(loss)(jnp.array([1.0, -2.0])))))


def test_amsgrad_denominator_never_decreases():
    tx = gc.scale_by_amsgrad(b1=0.0)
    state = tx.init(jnp.zeros(1))
    _, state = tx.update(jnp.array([4.0]), state)
    u2, state = tx.update(jnp.array([1.0]), state)
    assert float(u2[0]) < 0.5  # 1 / sqrt(max(16, v'_2)), not 1 / sqrt(v'_2)


def test_lion_moves_every_coordinate_by_one():
    tx = gc.scale_by_lion()
    state = tx.init(jnp.zeros(4))
    for g in helpers.grad_sequence(0, jnp.zeros(4), 5):
        u, state = tx.update(g, state)
        np.testing.assert_array_equal(jnp.abs(u), 1.0)
    assert int(state.count) == 5


@pytest.mark.parametrize("make,count_field", [(gc.scale_by_rms, "count"), (gc.scale_by_stddev, "count")])
def test_rms_state_fields_do_not_depend_on_flags(make, count_field):
    a = make().init(jnp.zeros(2))
    b = make(bias_correction=True, eps_in_sqrt=False).init(jnp.zeros(2))
    assert type(a) is type(b) and a._fields == b._fields and count_field in a._fields


# ----------------------------------------------------------- errors
ERRORS = [
    (
        lambda: gc.scale_by_rss(-0.1),
        ValueError,
        r"scale_by_rss: `initial_accumulator_value` must be >= 0, got -0.1",
    ),
    (lambda: gc.scale_by_rss(eps=-1e-7), ValueError, r"scale_by_rss: `eps` must be >= 0"),
    (lambda: gc.scale_by_rss(None), TypeError, r"scale_by_rss: `initial_accumulator_value` must be a number"),
    (lambda: gc.scale_by_rms(1.0), ValueError, r"scale_by_rms: `decay` must be >= 0 and < 1, got 1.0"),
    (lambda: gc.scale_by_rms(eps=-1.0), ValueError, r"scale_by_rms: `eps` must be >= 0"),
    (lambda: gc.scale_by_rms(initial_scale=-1.0), ValueError, r"scale_by_rms: `initial_scale` must be >= 0"),
    (lambda: gc.scale_by_rms(eps_in_sqrt="yes"), TypeError, r"scale_by_rms: `eps_in_sqrt` must be a bool"),
    (
        lambda: gc.scale_by_rms(bias_correction=0),
        TypeError,
        r"scale_by_rms: `bias_correction` must be a bool",
    ),
    (lambda: gc.scale_by_stddev(-0.5), ValueError, r"scale_by_stddev: `decay` must be >= 0 and < 1"),
    (lambda: gc.scale_by_stddev(eps=-1.0), ValueError, r"scale_by_stddev: `eps` must be >= 0"),
    (
        lambda: gc.scale_by_stddev(initial_scale=-1.0),
        ValueError,
        r"scale_by_stddev: `initial_scale` must be >= 0",
    ),
    (
        lambda: gc.scale_by_stddev(eps_in_sqrt=None),
        TypeError,
        r"scale_by_stddev: `eps_in_sqrt` must be a bool",
    ),
    (
        lambda: gc.scale_by_stddev(bias_correction=1),
        TypeError,
        r"scale_by_stddev: `bias_correction` must be a bool",
    ),
    (lambda: gc.scale_by_adam(b1=1.0), ValueError, r"scale_by_adam: `b1` must be >= 0 and < 1, got 1.0"),
    (lambda: gc.scale_by_adam(b2=1.2), ValueError, r"scale_by_adam: `b2` must be >= 0 and < 1, got 1.2"),
    (lambda: gc.scale_by_adam(eps=-1e-8), ValueError, r"scale_by_adam: `eps` must be >= 0"),
    (lambda: gc.scale_by_adam(eps_root=-1e-8), ValueError, r"scale_by_adam: `eps_root` must be >= 0"),
    (lambda: gc.scale_by_adam(b1=jnp.ones(2)), ValueError, r"scale_by_adam: `b1` must be a scalar"),
    (lambda: gc.scale_by_adam(nesterov="no"), TypeError, r"scale_by_adam: `nesterov` must be a bool"),
    (
        lambda: gc.scale_by_adam(mu_dtype=jnp.int8),
        TypeError,
        r"scale_by_adam: `mu_dtype` must be a floating dtype",
    ),
    (
        lambda: gc.scale_by_adam(nu_dtype=jnp.int8),
        TypeError,
        r"scale_by_adam: `nu_dtype` must be a floating dtype",
    ),
    (
        lambda: gc.scale_by_adam(nu_dtype=jnp.float16),
        ValueError,
        r"scale_by_adam: `nu_dtype` must be a real dtype with float32's exponent range .* underflow in float16",
    ),
    (
        lambda: gc.scale_by_adam(nu_dtype=jnp.complex64),
        ValueError,
        r"scale_by_adam: `nu_dtype` must be a real dtype",
    ),
    (lambda: gc.scale_by_adam(0.9, 0.999, 1e-8, 0.0, jnp.float32), TypeError, r"positional"),
    (lambda: gc.scale_by_amsgrad(b1=-0.1), ValueError, r"scale_by_amsgrad: `b1` must be >= 0 and < 1"),
    (lambda: gc.scale_by_amsgrad(b2=1.0), ValueError, r"scale_by_amsgrad: `b2` must be >= 0 and < 1"),
    (lambda: gc.scale_by_amsgrad(eps=-1.0), ValueError, r"scale_by_amsgrad: `eps` must be >= 0"),
    (lambda: gc.scale_by_amsgrad(eps_root=-1.0), ValueError, r"scale_by_amsgrad: `eps_root` must be >= 0"),
    (
        lambda: gc.scale_by_amsgrad(mu_dtype="int32"),
        TypeError,
        r"scale_by_amsgrad: `mu_dtype` must be a floating",
    ),
    (lambda: gc.scale_by_amsgrad(bias_correction_mu=None), TypeError, r"`bias_correction_mu` must be a bool"),
    (lambda: gc.scale_by_amsgrad(bias_correction_nu=1), TypeError, r"`bias_correction_nu` must be a bool"),
    (lambda: gc.scale_by_adamax(b1=1.0), ValueError, r"scale_by_adamax: `b1` must be >= 0 and < 1"),
    (lambda: gc.scale_by_adamax(b2=-0.1), ValueError, r"scale_by_adamax: `b2` must be >= 0 and < 1"),
    (lambda: gc.scale_by_adamax(eps=-1.0), ValueError, r"scale_by_adamax: `eps` must be >= 0"),
    (lambda: gc.scale_by_belief(b1=1.0), ValueError, r"scale_by_belief: `b1` must be >= 0 and < 1"),
    (lambda: gc.scale_by_belief(b2=1.0), ValueError, r"scale_by_belief: `b2` must be >= 0 and < 1"),
    (lambda: gc.scale_by_belief(eps=-1.0), ValueError, r"scale_by_belief: `eps` must be >= 0"),
    (lambda: gc.scale_by_belief(eps_root=-1.0), ValueError, r"scale_by_belief: `eps_root` must be >= 0"),
    (lambda: gc.scale_by_belief(nesterov=1), TypeError, r"scale_by_belief: `nesterov` must be a bool"),
    (lambda: gc.scale_by_radam(b1=1.0), ValueError, r"scale_by_radam: `b1` must be >= 0 and < 1"),
    (lambda: gc.scale_by_radam(b2=1.0), ValueError, r"scale_by_radam: `b2` must be >= 0 and < 1"),
    (lambda: gc.scale_by_radam(eps=-1.0), ValueError, r"scale_by_radam: `eps` must be >= 0"),
    (lambda: gc.scale_by_radam(eps_root=-1.0), ValueError, r"scale_by_radam: `eps_root` must be >= 0"),
    (
        lambda: gc.scale_by_radam(threshold=0.0),
        ValueError,
        r"scale_by_radam: `threshold` must be > 0, got 0.0",
    ),
    (lambda: gc.scale_by_radam(nesterov=None), TypeError, r"scale_by_radam: `nesterov` must be a bool"),
    (lambda: gc.scale_by_lion(b1=1.0), ValueError, r"scale_by_lion: `b1` must be >= 0 and < 1"),
    (lambda: gc.scale_by_lion(b2=float("nan")), ValueError, r"scale_by_lion: `b2` must be a number, got NaN"),
    (
        lambda: gc.scale_by_lion(mu_dtype=bool),
        TypeError,
        r"scale_by_lion: `mu_dtype` must be a floating dtype",
    ),
]


@pytest.mark.parametrize("make,exc,match", ERRORS)
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


TREE_CHECKED = [
    gc.scale_by_rss,
    gc.scale_by_rms,
    gc.scale_by_stddev,
    gc.scale_by_adam,
    gc.scale_by_amsgrad,
    gc.scale_by_adamax,
    gc.scale_by_belief,
    gc.scale_by_radam,
    gc.scale_by_lion,
]


@pytest.mark.parametrize("make", TREE_CHECKED, ids=[f.__name__ for f in TREE_CHECKED])
def test_tree_mismatch_is_reported(make):
    tx = make()
    state = tx.init({"a": jnp.zeros(2)})
    with pytest.raises(ValueError, match=rf"{make.__name__}: the `updates` tree does not match the state"):
        tx.update({"a": jnp.zeros(2), "b": jnp.zeros(1)}, state)
