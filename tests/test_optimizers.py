"""Optimizers (gradchain/optimizers.py): Optax 0.2.8 parity, float64 references of the
composite chains (lamb, lars, adafactor), and argument errors naming the optimizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 10
SCHED = lambda c: 0.02 * 0.9 ** c.astype(jnp.float32)
NOT_BIAS = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
ALL = [
    "sgd",
    "adagrad",
    "rmsprop",
    "adam",
    "nadam",
    "adamw",
    "nadamw",
    "amsgrad",
    "adamax",
    "adabelief",
    "radam",
    "lion",
    "lamb",
    "lars",
    "adafactor",
]


def _problem(seed=0):
    """Parameters with |p| >= 1 (no float32 cancellation in p + u) and a gradient sequence."""
    params = jax.tree.map(lambda x: jnp.sign(x) * (1 + jnp.abs(x)), helpers.random_tree(seed))
    return params, helpers.grad_sequence(seed + 1, params, N_STEPS)


def _max_rel(actual_seq, expected_seq) -> float:
    """Largest relative difference over the steps, each element measured against
    max(|expected|, 1e-2 * the largest |expected| of that step).

    The rounding error of a sum is relative to its terms, not to the result: an element
    that comes out of cancellation (a momentum sum crossing zero, Adam's direction plus
    weight decay, ...) is compared at 1% of the step's scale instead of its own (lars
    has elements ~1e-3 of the step's largest whose float32 relative error is ~5e-5).
    A real discrepancy in any element of size >= 1% of the step still shows in full."""
    worst = 0.0
    for a, b in zip(actual_seq, expected_seq):
        scale = max(float(np.max(np.abs(np.asarray(x)))) for x in jax.tree.leaves(b))
        worst = max(worst, helpers.max_rel_diff(a, b, floor=max(1e-2 * scale, 1e-30)))
    return worst


# ------------------------------------------------------------------- Optax parity
# (id, name, kwargs): the same call builds the Optax and the gradchain optimizer.
CONFIGS = [
    ("sgd", "sgd", {"learning_rate": 0.1}),
    ("sgd_momentum", "sgd", {"learning_rate": 0.1, "momentum": 0.9}),
    ("sgd_nesterov_schedule", "sgd", {"learning_rate": SCHED, "momentum": 0.9, "nesterov": True}),
    ("adagrad", "adagrad", {"learning_rate": 0.1}),
    ("adagrad_torch", "adagrad", {"learning_rate": SCHED, "initial_accumulator_value": 0.0, "eps": 1e-10}),
    ("rmsprop", "rmsprop", {"learning_rate": 0.01}),
    (
        "rmsprop_centered",
        "rmsprop",
        {"learning_rate": 0.01, "decay": 0.99, "centered": True, "eps_in_sqrt": False},
    ),
    ("rmsprop_momentum", "rmsprop", {"learning_rate": SCHED, "momentum": 0.9, "initial_scale": 1.0}),
    (
        "rmsprop_centered_nesterov",
        "rmsprop",
        {"learning_rate": 0.01, "centered": True, "momentum": 0.5, "nesterov": True},
    ),
    (
        "rmsprop_bias_correction",
        "rmsprop",
        {"learning_rate": 0.01, "eps_in_sqrt": False, "bias_correction": True},
    ),
    ("adam", "adam", {"learning_rate": 0.01}),
    ("adam_schedule_eps_root", "adam", {"learning_rate": SCHED, "b1": 0.8, "b2": 0.99, "eps_root": 1e-8}),
    ("adam_nesterov", "adam", {"learning_rate": 0.01, "nesterov": True}),
    ("nadam", "nadam", {"learning_rate": 0.01}),
    ("adamw", "adamw", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("adamw_mask_schedules", "adamw", {"learning_rate": SCHED, "weight_decay": SCHED, "mask": NOT_BIAS}),
    ("nadamw", "nadamw", {"learning_rate": 0.01, "weight_decay": 0.1, "mask": NOT_BIAS}),
    ("amsgrad", "amsgrad", {"learning_rate": 0.01}),
    (
        "amsgrad_no_bias_correction",
        "amsgrad",
        {"learning_rate": SCHED, "bias_correction_mu": False, "bias_correction_nu": False},
    ),
    ("adamax", "adamax", {"learning_rate": 0.01}),
    ("adabelief", "adabelief", {"learning_rate": 0.01}),
    ("adabelief_nesterov", "adabelief", {"learning_rate": SCHED, "nesterov": True}),
    # b2 = 0.9: see test_radam_default_b2_is_ill_conditioned_in_float32 for the default 0.999
    ("radam", "radam", {"learning_rate": 0.01, "b2": 0.9}),
    ("radam_nesterov", "radam", {"learning_rate": SCHED, "b2": 0.9, "threshold": 4.5, "nesterov": True}),
    ("lion", "lion", {"learning_rate": 0.001}),
    ("lion_mask", "lion", {"learning_rate": SCHED, "b1": 0.8, "weight_decay": 0.1, "mask": NOT_BIAS}),
    ("lamb", "lamb", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("lamb_mask", "lamb", {"learning_rate": SCHED, "weight_decay": 0.1, "mask": NOT_BIAS}),
    ("lars", "lars", {"learning_rate": 0.1, "weight_decay": 0.1}),
    (
        "lars_masks_nesterov",
        "lars",
        {
            "learning_rate": SCHED,
            "weight_decay": 0.1,
            "weight_decay_mask": NOT_BIAS,
            "trust_coefficient": 0.01,
            "eps": 1e-3,
            "trust_ratio_mask": NOT_BIAS,
            "nesterov": True,
        },
    ),
    ("adafactor", "adafactor", {}),
    (
        "adafactor_full",
        "adafactor",
        {
            "learning_rate": SCHED,
            "min_dim_size_to_factor": 2,
            "decay_rate": 0.7,
            "momentum": 0.9,
            "weight_decay_rate": 0.1,
            "weight_decay_mask": NOT_BIAS,
        },
    ),
    (
        "adafactor_plain",
        "adafactor",
        {
            "learning_rate": 0.01,
            "multiply_by_parameter_scale": False,
            "clipping_threshold": None,
            "factored": False,
            "eps": 1e-3,
        },
    ),
]


@pytest.mark.parametrize("name, kw", [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_matches_optax(name, kw):
    optax = pytest.importorskip("optax")
    params, grads = _problem()
    for jit in (False, True):
        u, p, _ = helpers.run_steps(getattr(gc, name)(**kw), params, grads, jit=jit)
        uo, po, _ = helpers.run_optax(getattr(optax, name)(**kw), params, grads, jit=jit)
        assert _max_rel(u, uo) <= 2e-5, f"{name} {kw} jit={jit}: updates differ by {_max_rel(u, uo):.2e}"
        assert _max_rel(p, po) <= 2e-5, f"{name} {kw} jit={jit}: params differ by {_max_rel(p, po):.2e}"


# Optimizers Optax 0.2.8 does not have, with the test file that checks them instead.
NOT_IN_OPTAX = {"adam_8bit": "tests/test_quantized.py (float64 transcription, float32 Adam, regression)"}


def _optimizers_in(*modules):
    import importlib

    return {n for m in modules for n in importlib.import_module(f"gradchain._optimizers.{m}").__all__}


def test_every_optimizer_has_an_optax_config():
    shipped = _optimizers_in("classic", "adam", "layerwise")
    assert {c[1] for c in CONFIGS} == set(ALL) == shipped - set(NOT_IN_OPTAX)


def test_radam_default_b2_is_ill_conditioned_in_float32():
    """rho_t = rho_inf - 2 t b2**t / (1 - b2**t) cancels catastrophically in float32 for
    b2 = 0.999 (rho_inf = 1999, rho_6 ~ 6): float32 implementations agree with float64 only
    to ~1%. Here: gradchain's radam is within that of a float64 evaluation."""
    params, grads = _problem()
    u, _, _ = helpers.run_steps(gc.radam(1.0), params, grads)
    b2, t = 0.999, np.arange(1, N_STEPS + 1)
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
    assert rho[5] >= 5 > rho[4]  # rectification starts at step 6
    rho_used = np.where(rho >= 5, rho, rho_inf)
    r = np.sqrt((rho_used - 4) * (rho_used - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_used))
    g = [helpers.to_numpy64(x) for x in grads]
    m = jax.tree.map(np.zeros_like, g[0])
    v = jax.tree.map(np.zeros_like, g[0])
    for k in range(N_STEPS):
        m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, g[k])
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g[k])
        c1, c2, rk = 1 - 0.9 ** (k + 1), 1 - b2 ** (k + 1), r[k]
        mh = jax.tree.map(lambda m, c1=c1: m / c1, m)
        vh = jax.tree.map(lambda v, c2=c2: v / c2, v)
        ref = mh if rho[k] < 5 else jax.tree.map(lambda a, b, rk=rk: rk * a / (np.sqrt(b) + 1e-8), mh, vh)
        helpers.assert_trees_close(
            u[k],
            jax.tree.map(lambda x: -x, ref),
            rtol=3e-2 if rho[k] >= 5 else 1e-5,
            atol=1e-7,
            msg=f"radam step {k}",
        )


# ------------------------------------------------- float64 references of composite chains
def _np_adam_dir(g, m, v, k, b1, b2, eps, eps_root):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return (m / (1 - b1 ** (k + 1))) / (np.sqrt(v / (1 - b2 ** (k + 1)) + eps_root) + eps), m, v


def _np_trust(a, p, coef=1.0, eps=0.0):
    pn, an = np.linalg.norm(p), np.linalg.norm(a)
    return a * (coef * pn / (an + eps) if pn > 0 and an > 0 else 1.0)


def _np_run(step, params, grads):
    """Apply ``step(k, g, p, state) -> (u, state)`` leafwise in float64; returns the updates."""
    p = jax.tree.leaves(helpers.to_numpy64(params))
    treedef = jax.tree.structure(params)
    state = [None] * len(p)
    out = []
    for k, g in enumerate(grads):
        us = []
        for i, gi in enumerate(jax.tree.leaves(helpers.to_numpy64(g))):
            u, state[i] = step(k, gi, p[i], state[i])
            p[i] = p[i] + u
            us.append(u)
        out.append(jax.tree.unflatten(treedef, us))
    return out


def test_lamb_matches_numpy_chain():
    def step(k, g, p, s):  # chain(scale_by_adam, add_decayed_weights, scale_by_trust_ratio, lr)
        m, v = s or (0.0, 0.0)
        a, m, v = _np_adam_dir(g, m, v, k, 0.9, 0.999, 1e-6, 0.0)
        a = a + 0.1 * p
        a = _np_trust(a, p)
        return -0.01 * a, (m, v)

    params, grads = _problem()
    u, _, _ = helpers.run_steps(gc.lamb(0.01, weight_decay=0.1), params, grads)
    for k, (a, b) in enumerate(zip(u, _np_run(step, params, grads))):
        helpers.assert_trees_close(a, b, rtol=1e-5, atol=1e-7, msg=f"lamb step {k}")


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_matches_numpy_chain(nesterov):
    def step(k, g, p, s):  # chain(add_decayed_weights, scale_by_trust_ratio, lr, trace)
        a = g + 0.1 * p
        a = _np_trust(a, p, 0.01, 1e-3)
        a = -0.1 * a
        m = a + 0.9 * (0.0 if s is None else s)
        return (a + 0.9 * m if nesterov else m), m

    params, grads = _problem()
    u, _, _ = helpers.run_steps(
        gc.lars(0.1, 0.1, trust_coefficient=0.01, eps=1e-3, nesterov=nesterov), params, grads
    )
    for k, (a, b) in enumerate(zip(u, _np_run(step, params, grads))):
        helpers.assert_trees_close(a, b, rtol=1e-5, atol=1e-7, msg=f"lars step {k}")


def test_adafactor_matches_numpy_chain():
    """adafactor(lr, min_dim_size_to_factor=2, momentum=0.9, weight_decay_rate=0.1):
    factored rms (axes r, c), block-RMS clip at 1, lr, param-RMS scale, ema, decay, -1."""

    def step(k, g, p, s):
        R, C, V, e = s or (0.0, 0.0, 0.0, 0.0)
        b = 1 - (k + 1) ** -0.8
        G = g * g + 1e-30
        if g.ndim >= 2:  # every >= 2-D leaf of the test tree has two axes of size >= 2
            r, c = (int(i) for i in np.argsort(g.shape, kind="stable")[-2:])
            R = b * R + (1 - b) * G.mean(axis=c)
            C = b * C + (1 - b) * G.mean(axis=r)
            Vh = np.expand_dims(R / R.mean(axis=r - (r > c), keepdims=True), c) * np.expand_dims(C, r)
        else:
            V = Vh = b * V + (1 - b) * G
        a = g / np.sqrt(Vh)
        a = a * min(1.0, 1.0 / np.sqrt(np.mean(a * a)))
        a = 0.01 * a
        a = a * max(np.sqrt(np.mean(p * p)), 1e-3)
        e = 0.9 * e + 0.1 * a
        return -(e + 0.1 * p), (R, C, V, e)

    params, grads = _problem()
    tx = gc.adafactor(0.01, min_dim_size_to_factor=2, momentum=0.9, weight_decay_rate=0.1)
    u, _, _ = helpers.run_steps(tx, params, grads)
    for k, (a, b) in enumerate(zip(u, _np_run(step, params, grads))):
        helpers.assert_trees_close(a, b, rtol=2e-5, atol=1e-7, msg=f"adafactor step {k}")


def test_lars_bool_masks_switch_members_off():
    params, grads = _problem()
    off = gc.lars(0.1, weight_decay=0.5, weight_decay_mask=False, trust_ratio_mask=False, momentum=0.9)
    u_off, _, _ = helpers.run_steps(off, params, grads[:3])
    u_sgd, _, _ = helpers.run_steps(gc.sgd(0.1, momentum=0.9), params, grads[:3])
    helpers.assert_trees_close(u_off[-1], u_sgd[-1], rtol=1e-5, atol=1e-7)
    tree_mask = jax.tree.map(lambda _: True, params)
    u_tree, _, _ = helpers.run_steps(
        gc.lars(0.1, 0.5, tree_mask, trust_ratio_mask=tree_mask), params, grads[:3]
    )
    u_true, _, _ = helpers.run_steps(gc.lars(0.1, 0.5), params, grads[:3])
    helpers.assert_trees_close(u_tree[-1], u_true[-1], rtol=1e-5, atol=1e-7)


def test_learning_rate_sweep_inside_vmap():
    params, grads = _problem()
    lrs = jnp.asarray([0.001, 0.01, 0.1])

    def train(tx):
        state, p = tx.init(params), params
        for g in grads:
            u, state = tx.update(g, state, p)
            p = gc.apply_updates(p, u)
        return p

    swept = jax.jit(jax.vmap(lambda lr: train(gc.adamw(lr, weight_decay=0.1))))(lrs)
    for i, lr in enumerate([0.001, 0.01, 0.1]):
        helpers.assert_trees_close(
            jax.tree.map(lambda x, i=i: x[i], swept),
            train(gc.adamw(lr, weight_decay=0.1)),
            rtol=1e-5,
            atol=1e-6,
        )


# -------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", ALL)
def test_learning_rate_errors_name_the_optimizer(name):
    make = getattr(gc, name)
    with pytest.raises(ValueError, match=rf"^{name}: `learning_rate` must be >= 0, got -1\.0\.$"):
        make(-1.0)
    with pytest.raises(TypeError, match=rf"^{name}: `learning_rate` must be a number, got '0\.1'\.$"):
        make("0.1")
    with pytest.raises(ValueError, match=rf"^{name}: `learning_rate` must be a scalar"):
        make(jnp.ones(2))
    make(lambda count: 0.1)  # a schedule is accepted
    make(jnp.asarray(0.1))  # and so is a scalar array


@pytest.mark.parametrize(
    "make, err, match",
    [
        (lambda: gc.sgd(0.1, momentum=1.0), ValueError, r"^sgd: `momentum` must be >= 0 and < 1"),
        (lambda: gc.sgd(0.1, momentum=0.9, nesterov=1), TypeError, r"^sgd: trace: `nesterov` must be a bool"),
        (
            lambda: gc.adagrad(0.1, initial_accumulator_value=-1.0),
            ValueError,
            r"^adagrad: scale_by_rss: `initial_accumulator_value` must be >= 0",
        ),
        (lambda: gc.rmsprop(0.1, decay=1.5), ValueError, r"^rmsprop: scale_by_rms: `decay` must be"),
        (
            lambda: gc.rmsprop(0.1, centered=True, eps=-1.0),
            ValueError,
            r"^rmsprop: scale_by_stddev: `eps` must be",
        ),
        (lambda: gc.rmsprop(0.1, momentum=-0.5), ValueError, r"^rmsprop: `momentum` must be >= 0 and < 1"),
        (lambda: gc.adam(0.1, b1=1.0), ValueError, r"^adam: scale_by_adam: `b1` must be"),
        (lambda: gc.adam(0.1, mu_dtype=jnp.int32), TypeError, r"^adam: scale_by_adam: `mu_dtype` must be"),
        (lambda: gc.nadam(-0.1), ValueError, r"^nadam: `learning_rate` must be >= 0"),
        (
            lambda: gc.adamw(0.1, weight_decay=-1.0),
            ValueError,
            r"^adamw: add_decayed_weights: `weight_decay`",
        ),
        (lambda: gc.nadamw(0.1, b2=-0.1), ValueError, r"^nadamw: scale_by_adam: `b2` must be"),
        (lambda: gc.amsgrad(0.1, eps=-1.0), ValueError, r"^amsgrad: scale_by_amsgrad: `eps` must be"),
        (lambda: gc.adamax(0.1, b2=1.0), ValueError, r"^adamax: scale_by_adamax: `b2` must be"),
        (
            lambda: gc.adabelief(0.1, eps_root=-1.0),
            ValueError,
            r"^adabelief: scale_by_belief: `eps_root` must be",
        ),
        (lambda: gc.radam(0.1, threshold=0.0), ValueError, r"^radam: scale_by_radam: `threshold` must be"),
        (lambda: gc.lion(0.1, b1=2.0), ValueError, r"^lion: scale_by_lion: `b1` must be"),
        (lambda: gc.lamb(0.1, weight_decay=-0.1), ValueError, r"^lamb: add_decayed_weights: `weight_decay`"),
        (
            lambda: gc.lars(0.1, trust_coefficient=-1.0),
            ValueError,
            r"^lars: scale_by_trust_ratio: `trust_coefficient` must be >= 0",
        ),
        (lambda: gc.lars(0.1, momentum=1.0), ValueError, r"^lars: `momentum` must be >= 0 and < 1"),
        (lambda: gc.adafactor(-0.1), ValueError, r"^adafactor: `learning_rate` must be >= 0"),
        (
            lambda: gc.adafactor(clipping_threshold=0.0),
            ValueError,
            r"^adafactor: `clipping_threshold` must be > 0",
        ),
        (
            lambda: gc.adafactor(multiply_by_parameter_scale=1),
            TypeError,
            r"^adafactor: `multiply_by_parameter_scale` must be a bool",
        ),
        (lambda: gc.adafactor(factored=None), TypeError, r"^adafactor: `factored` must be a bool"),
        (
            lambda: gc.adafactor(decay_offset=-1),
            ValueError,
            r"^adafactor: `decay_offset` must be >= 0",
        ),
        (
            lambda: gc.adafactor(min_dim_size_to_factor=1.5),
            TypeError,
            r"^adafactor: scale_by_factored_rms: `min_dim_size_to_factor` must be a Python int",
        ),
        (lambda: gc.adafactor(momentum=1.0), ValueError, r"^adafactor: `momentum` must be >= 0 and < 1"),
    ],
)
def test_optimizer_errors_name_the_optimizer_and_its_argument(make, err, match):
    with pytest.raises(err, match=match):
        make()


@pytest.mark.parametrize("name", ["adamw", "nadamw", "lion", "lamb", "lars", "adafactor"])
def test_optimizers_that_read_params_say_so(name):
    tx = getattr(gc, name)(0.1)
    params, grads = _problem()
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(grads[0], tx.init(params))
