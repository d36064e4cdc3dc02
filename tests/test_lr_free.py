"""Learning-rate-free optimizers (Prodigy, D-Adaptation AdamW, DoG, DoWG, COCOB, Mechanic):
Optax 0.2.8 contrib parity (eager and jitted), the authors' ``prodigyopt.Prodigy`` and
``pytorch_optimizer.DAdaptAdam`` (torch, float64) through the flags for their conventions,
float64 NumPy transcriptions of the docstring rules, Optax's documented examples and the
edge cases (first step, zero gradients, schedules, weight decay), and argument errors.

The problem is a noisy quadratic, ``g = p - target + noise_t``, with the gradients taken at
the current parameters: the distance estimates only grow when the gradients keep pointing
the same way, which random gradient sequences do not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N = 12
SHAPES = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}
SCHED = lambda c: 0.5 + 0.5 * 0.9 ** jnp.asarray(c).astype(jax.dtypes.canonicalize_dtype(jnp.float64))
SCHED64 = lambda c: 0.5 + 0.5 * 0.9**c  # the same schedule, for the float64 references
NOT_BIAS = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)


def _problem(dtype=jnp.float32):
    params = helpers.random_tree(0, SHAPES, dtype)
    target = helpers.random_tree(5, SHAPES, dtype, scale=3.0)
    noise = helpers.grad_sequence(1, params, N, scale=0.3)
    return params, target, noise


def _run(tx, params, target, noise, *, jit=False, apply=gc.apply_updates, zero_first=0):
    """Step ``tx`` on the noisy quadratic; the first ``zero_first`` gradients are zero."""

    def step(p, s, n, zero):
        g = jax.tree.map(lambda p, t, n: (p - t + n) * (1 - zero), p, target, n)
        u, s = tx.update(g, s, p)
        return u, apply(p, u), s

    step = jax.jit(step) if jit else step
    p, s, us, ps, states = params, tx.init(params), [], [], []
    for i, n in enumerate(noise):
        zero = jnp.asarray(1.0 if i < zero_first else 0.0, jnp.result_type(jax.tree.leaves(params)[0]))
        u, p, s = step(p, s, n, zero)
        us.append(u), ps.append(p), states.append(s)
    return us, ps, states


def _run_optax(otx, *args, **kw):
    import optax

    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return _run(otx, *args, apply=optax.apply_updates, **kw)


def _max_rel(actual_seq, expected_seq) -> float:
    """Largest relative difference, each element against max(|expected|, 1% of the step's
    largest |expected|)."""
    worst = 0.0
    for a, b in zip(actual_seq, expected_seq):
        scale = max(float(np.max(np.abs(np.asarray(x, np.float64)))) for x in jax.tree.leaves(b))
        worst = max(worst, helpers.max_rel_diff(a, b, floor=max(1e-2 * scale, 1e-30)))
    return worst


def _max_abs(actual_seq, expected_seq) -> float:
    return max(
        float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
        for x, y in zip(actual_seq, expected_seq)
        for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y))
    )


# ------------------------------------------------------------------- Optax 0.2.8 parity
def _optax_cases():
    import optax
    from optax import contrib as oc

    oadam = lambda: optax.adam(1.0)
    return {  # id: (gradchain, Optax), the same call
        "prodigy": (gc.prodigy, oc.prodigy),
        "prodigy_custom_schedule": (
            lambda: gc.prodigy(SCHED, (0.8, 0.99), 0.95, 1e-6, 1e-3, 2.0, 0.1),
            lambda: oc.prodigy(SCHED, (0.8, 0.99), 0.95, 1e-6, 1e-3, 2.0, 0.1),
        ),
        "dadapt_adamw": (gc.dadapt_adamw, oc.dadapt_adamw),
        "dadapt_adamw_custom": (
            lambda: gc.dadapt_adamw(SCHED, (0.8, 0.99), 1e-6, 1e-3, 0.1),
            lambda: oc.dadapt_adamw(SCHED, (0.8, 0.99), 1e-6, 1e-3, 0.1),
        ),
        "dog": (gc.dog, oc.dog),
        "dog_custom": (
            lambda: gc.dog(SCHED, ("learning_rate", 1e-2), 1e-6, weight_decay=0.1, mask=NOT_BIAS),
            lambda: oc.dog(SCHED, ("learning_rate", 1e-2), 1e-6, weight_decay=0.1, mask=NOT_BIAS),
        ),
        "dowg_custom": (
            lambda: gc.dowg(SCHED, 1e-2, 1e-6, weight_decay=0.1, mask=NOT_BIAS),
            lambda: oc.dowg(SCHED, 1e-2, 1e-6, weight_decay=0.1, mask=NOT_BIAS),
        ),
        "cocob_custom": (
            lambda: gc.cocob(SCHED, 10.0, 1e-6, 1e-2, NOT_BIAS),
            lambda: oc.cocob(SCHED, 10.0, 1e-6, 1e-2, NOT_BIAS),
        ),
        "mechanize_sgd": (lambda: gc.mechanize(gc.sgd(1.0)), lambda: oc.mechanize(optax.sgd(1.0))),
        "mechanize_adam": (
            lambda: gc.mechanize(gc.adam(1.0), 0.1, 1e-6, 1e-4, 3),
            lambda: oc.mechanize(oadam(), 0.1, 1e-6, 1e-4, 3),
        ),
    }


# (the defaults of dowg and cocob: their docstring examples give Optax's documented numbers)
OPTAX_IDS = [
    "prodigy",
    "prodigy_custom_schedule",
    "dadapt_adamw",
    "dadapt_adamw_custom",
    "dog",
    "dog_custom",
    "dowg_custom",
    "cocob_custom",
    "mechanize_sgd",
    "mechanize_adam",
]


@pytest.mark.parametrize("case", OPTAX_IDS)
def test_matches_optax_contrib_eager_and_jitted(case):
    """Both gradchain runs (eager and jitted) against one Optax run: eager, except for
    Prodigy and D-Adaptation, whose eager Optax runs drift 1.6e-5 to 2.6e-5 from their own
    jitted ones in 12 to 15 steps (the distance estimate amplifies float32 rounding;
    gradchain's eager run follows the jitted one).
    COCOB's and Mechanic's updates are compared to 2e-5 of the parameters' size: Optax forms
    ``x_{t+1}`` and subtracts ``x_t``, rounding each update to float32's resolution at |x|
    (errors of 2e-4 of the update for COCOB, 0.5 for Mechanic's 1e-6 steps); gradchain
    subtracts first. The parameters agree to 2e-5 either way."""
    pytest.importorskip("optax")
    make, make_optax = _optax_cases()[case]
    problem = _problem()
    uo, po, so = _run_optax(make_optax(), *problem, jit=case.startswith(("prodigy", "dadapt")))
    for jit in (False, True):
        u, p, s = _run(make(), *problem, jit=jit)
        assert _max_rel(p, po) <= 2e-5, f"jit={jit}: params differ by {_max_rel(p, po):.2e}"
        if case.startswith(("cocob", "mechanize")):  # Optax rounds these updates to |p| (see below)
            size = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(problem[0]))
            assert _max_abs(u, uo) <= 2e-5 * size, f"jit={jit}: updates differ by {_max_abs(u, uo):.2e}"
        else:
            assert _max_rel(u, uo) <= 2e-5, f"jit={jit}: updates differ by {_max_rel(u, uo):.2e}"
        for a, b in zip(jax.tree.leaves(u[-1]), jax.tree.leaves(problem[0])):
            assert a.dtype == b.dtype
    if hasattr(s[-1], "estim_lr"):  # the estimate moved, and the same way
        if case in ("prodigy_custom_schedule", "dadapt_adamw", "dadapt_adamw_custom"):
            assert float(s[-1].estim_lr) > 2 * float(s[0].estim_lr)
        np.testing.assert_allclose(s[-1].estim_lr, so[-1].estim_lr, rtol=2e-5)


def test_optax_checkpoint_continues_prodigy():
    """An Optax Prodigy state converts with `from_optax_state` (``max_estim_lr``, which Optax
    does not keep, takes its initial value) and the run continues as Optax's does."""
    optax = pytest.importorskip("optax")
    params, target, noise = _problem()
    otx, tx = optax.contrib.prodigy(estim_lr0=1e-3), gc.prodigy(estim_lr0=1e-3)
    _, po, so = _run_optax(otx, params, target, noise, jit=True)
    state = gc.from_optax_state(tx, so[5], params)
    assert isinstance(state, gc.ProdigyState) and float(state.estim_lr) > 1e-3
    p, s = po[5], state
    for t, n in enumerate(noise[6:], start=6):
        g = jax.tree.map(lambda p, tg, n: p - tg + n, p, target, n)
        u, s = tx.update(g, s, p)
        p = gc.apply_updates(p, u)
        assert _max_rel([p], [po[t]]) <= 2e-5, t


# ------------------------------------------------------------ float64 NumPy transcriptions
# Each reference is a step function ``(gs, ps) -> us`` over the list of leaves (global
# statistics), its state in a closure, one line per line of the docstring's rule.
def np_prodigy(
    lr=1.0,
    betas=(0.9, 0.999),
    beta3=None,
    eps=1e-8,
    d0=1e-6,
    coef=1.0,
    wd=0.0,
    safeguard=False,
    bc=True,
    growth=np.inf,
    slice_p=1,
    decouple=True,
):
    b1, b2 = betas
    b3 = np.sqrt(b2) if beta3 is None else beta3
    sl = lambda x: x.ravel()[::slice_p] if slice_p > 1 else x
    st = {"t": 0, "d": d0, "dmax": d0, "r": 0.0}

    def step(gs, ps):
        if "m" not in st:
            st.update(m=[0 * g for g in gs], v=[0 * g for g in gs], s=[0 * sl(g) for g in gs])
            st.update(p0=[sl(p).copy() for p in ps])
        st["t"] += 1
        t, d, lr_t = st["t"], st["d"], lr(st["t"] - 1) if callable(lr) else lr
        if not decouple:
            gs = [g + wd * p for g, p in zip(gs, ps)]
        dlr = d * lr_t * np.sqrt(1 - b2**t) / (1 - b1**t) if bc else d * lr_t
        r = b3 * st["r"] + (d / d0) * dlr * sum(
            np.sum(sl(g) * (p0 - sl(p))) for g, p, p0 in zip(gs, ps, st["p0"])
        )
        m = [b1 * m + (1 - b1) * d * g for m, g in zip(st["m"], gs)]
        v = [b2 * v + (1 - b2) * d**2 * g**2 for v, g in zip(st["v"], gs)]
        s = [b3 * s + (d / d0) * (d if safeguard else dlr) * sl(g) for s, g in zip(st["s"], gs)]
        den = sum(np.sum(np.abs(x)) for x in s)
        st.update(r=r, m=m, v=v, s=s)
        if den == 0:  # no estimate yet: d kept, no step
            return [0 * g for g in gs]
        d_hat = coef * r / den
        dmax = max(st["dmax"], d, d_hat)
        dn = min(dmax, growth * (max(d, d_hat) if d == d0 else d))
        st.update(d=dn, dmax=dmax)
        u = [-dlr * m / (np.sqrt(v) + dn * eps) for m, v in zip(m, v)]
        return [x - wd * dlr * p for x, p in zip(u, ps)] if decouple else u

    return step


def np_dadapt(lr=1.0, betas=(0.9, 0.999), eps=1e-8, d0=1e-6, wd=0.0, bc=True, growth=np.inf, decouple=True):
    b1, b2 = betas
    sb2 = np.sqrt(b2)
    st = {"t": 0, "d": d0, "r": 0.0}

    def step(gs, ps):
        if "m" not in st:
            st.update(m=[0 * g for g in gs], v=[0 * g for g in gs], s=[0 * g for g in gs])
        st["t"] += 1
        t, d, lr_t = st["t"], st["d"], lr(st["t"] - 1) if callable(lr) else lr
        if not decouple:
            gs = [g + wd * p for g, p in zip(gs, ps)]
        dlr = d * lr_t * np.sqrt(1 - b2**t) / (1 - b1**t) if bc else d * lr_t
        r = sb2 * st["r"] + (1 - sb2) * dlr * sum(
            np.sum(g * s / (np.sqrt(v) + eps)) for g, s, v in zip(gs, st["s"], st["v"])
        )
        m = [b1 * m + (1 - b1) * dlr * g for m, g in zip(st["m"], gs)]
        v = [b2 * v + (1 - b2) * g**2 for v, g in zip(st["v"], gs)]
        s = [sb2 * s + (1 - sb2) * dlr * g for s, g in zip(st["s"], gs)]
        den = sum(np.sum(np.abs(x)) for x in s)
        st.update(r=r, m=m, v=v, s=s)
        if den == 0:
            return [0 * g for g in gs]
        d_hat = r / ((1 - sb2) * den)
        st["d"] = max(d, min(d_hat, growth * d))
        u = [-m / (np.sqrt(v) + eps) for m, v in zip(m, v)]
        return [x - wd * dlr * p for x, p in zip(u, ps)] if decouple else u

    return step


def _norm2(xs):
    return sum(np.sum(x**2) for x in xs)


def np_dog(lr=1.0, init_step=("heuristic", 1e-6), eps=1e-8, wd=None):
    kind, value = init_step
    st = {"G": 0.0, "first": True}

    def step(gs, ps):
        if "x0" not in st:
            st["x0"] = [p.copy() for p in ps]
            st["r"] = {
                "distance": value,
                "heuristic": value * (1 + np.sqrt(_norm2(ps))),
                "learning_rate": 0.0,
            }[kind]
        gs = gs if wd is None else [g + wd * p for g, p in zip(gs, ps)]
        st["r"] = max(st["r"], np.sqrt(_norm2([p - p0 for p, p0 in zip(ps, st["x0"])])))
        st["G"] = st["G"] + _norm2(gs)
        eta = st["r"] / np.sqrt(st["G"] + eps)
        eta = value if (st["first"] and kind == "learning_rate") else eta
        st["first"] = False
        return [-lr * eta * g for g in gs]

    return step


def np_dowg(lr=1.0, r2_0=None, eps=1e-4, wd=None):
    st = {"v": 0.0, "r2": eps if r2_0 is None else r2_0}

    def step(gs, ps):
        st.setdefault("x0", [p.copy() for p in ps])
        gs = gs if wd is None else [g + wd * p for g, p in zip(gs, ps)]
        st["r2"] = max(st["r2"], _norm2([p - p0 for p, p0 in zip(ps, st["x0"])]))
        st["v"] = st["v"] + st["r2"] * _norm2(gs)
        eta = st["r2"] / (np.sqrt(st["v"]) + eps)
        return [-lr * eta * g for g in gs]

    return step


def np_cocob(lr=1.0, alpha=100.0, eps=1e-8, wd=0.0):
    st = {}

    def step(gs, ps):
        if "x0" not in st:
            st.update(x0=[p.copy() for p in ps], L=[eps + 0 * p for p in ps], G=[0 * p for p in ps])
            st.update(R=[0 * p for p in ps], C=[0 * p for p in ps])
        us = []
        for i, (g, x) in enumerate(zip(gs, ps)):
            g = lr * (g + wd * x)
            x0 = st["x0"][i]
            L = st["L"][i] = np.maximum(st["L"][i], np.abs(g))
            G = st["G"][i] = st["G"][i] + np.abs(g)
            R = st["R"][i] = np.maximum(st["R"][i] - g * (x - x0), 0)
            C = st["C"][i] = st["C"][i] - g
            us.append(-x + x0 + C / (L * np.maximum(G + L, alpha * L)) * (L + R))
        return us

    return step


def np_mechanize(base_lr=1.0, wd=1e-2, eps=1e-8, s_init=1e-6, n=6):
    """Mechanic around SGD (base update ``u = -base_lr * g``)."""
    beta = np.array([1 - 0.1**i for i in range(1, n + 1)])
    st = {"r": np.zeros(n), "m": np.zeros(n), "v": np.zeros(n), "s": np.full(n, s_init)}

    def step(gs, ps):
        st.setdefault("x0", [p.copy() for p in ps])
        us = [-base_lr * g for g in gs]
        S = np.sum(st["s"])
        gs = [g + wd * S * np.sqrt(_norm2(gs)) / (np.sqrt(_norm2(ps)) + eps) * x for g, x in zip(gs, ps)]
        D = [(x0 - x) / (S + eps) for x0, x in zip(st["x0"], ps)]
        h = sum(np.sum(g * d) for g, d in zip(gs, D))
        m = np.maximum(beta * st["m"], np.abs(h) + eps)
        v = beta**2 * st["v"] + h**2
        r = beta * st["r"] + np.clip(h, -st["m"], st["m"]) * st["s"]
        s = (s_init / n * m + np.maximum(r, 0)) / (np.sqrt(v) + eps)
        st.update(m=m, v=v, r=r, s=s)
        return [x0 - np.sum(s) * (d - u) - x for x0, d, u, x in zip(st["x0"], D, us, ps)]

    return step


TRANSCRIPTIONS = {
    "prodigy": (gc.prodigy, np_prodigy),
    "prodigy_authors": (
        lambda: gc.prodigy(
            SCHED, estim_lr0=1e-3, weight_decay=0.1, use_bias_correction=False, growth_rate=1.05
        ),
        lambda: np_prodigy(SCHED64, d0=1e-3, wd=0.1, bc=False, growth=1.05),
    ),
    "prodigy_slice_coupled_safeguard": (
        lambda: gc.prodigy(0.5, (0.8, 0.99), 0.9, 1e-6, 1e-3, 2.0, 0.1, True, slice_p=3, decouple=False),
        lambda: np_prodigy(0.5, (0.8, 0.99), 0.9, 1e-6, 1e-3, 2.0, 0.1, True, slice_p=3, decouple=False),
    ),
    "dadapt_adamw": (gc.dadapt_adamw, np_dadapt),
    "dadapt_adamw_authors": (
        lambda: gc.dadapt_adamw(
            SCHED, estim_lr0=1e-3, weight_decay=0.1, use_bias_correction=False, growth_rate=1.5
        ),
        lambda: np_dadapt(SCHED64, d0=1e-3, wd=0.1, bc=False, growth=1.5),
    ),
    "dadapt_adamw_coupled": (
        lambda: gc.dadapt_adamw(0.5, (0.8, 0.99), 1e-6, 1e-3, 0.1, decouple=False),
        lambda: np_dadapt(0.5, (0.8, 0.99), 1e-6, 1e-3, 0.1, decouple=False),
    ),
    "dog": (gc.dog, np_dog),
    "dog_lr_decay": (
        lambda: gc.dog(0.5, ("learning_rate", 1e-2), 1e-6, 0.1),
        lambda: np_dog(0.5, ("learning_rate", 1e-2), 1e-6, 0.1),
    ),
    "dog_distance": (
        lambda: gc.dog(init_step=("distance", 1e-2)),
        lambda: np_dog(init_step=("distance", 1e-2)),
    ),
    "dowg": (gc.dowg, np_dowg),
    "dowg_decay": (lambda: gc.dowg(0.5, 1e-2, 1e-6, 0.1), lambda: np_dowg(0.5, 1e-2, 1e-6, 0.1)),
    "cocob": (gc.cocob, np_cocob),
    "cocob_custom": (lambda: gc.cocob(0.5, 10.0, 1e-6, 1e-2), lambda: np_cocob(0.5, 10.0, 1e-6, 1e-2)),
    "mechanize": (lambda: gc.mechanize(gc.sgd(1.0)), np_mechanize),
    "mechanize_custom": (
        lambda: gc.mechanize(gc.sgd(0.5), 0.1, 1e-6, 1e-4, 3),
        lambda: np_mechanize(0.5, 0.1, 1e-6, 1e-4, 3),
    ),
}


def _check_transcription(make, make_ref, *, rtol=1e-9, zero_first=0):
    with jax.enable_x64(True):
        params, target, noise = _problem(jnp.float64)
        us, _, states = _run(make(), params, target, noise, zero_first=zero_first)
    ref = make_ref()
    ps = [np.asarray(x) for x in jax.tree.leaves(params)]
    tg = [np.asarray(x) for x in jax.tree.leaves(target)]
    for t, n in enumerate(noise):
        gs = [(p - a + np.asarray(b)) * (t >= zero_first) for p, a, b in zip(ps, tg, jax.tree.leaves(n))]
        want = ref(gs, ps)
        scale = max(np.max(np.abs(p)) for p in ps)
        for i, (got, w) in enumerate(zip(jax.tree.leaves(us[t]), want)):
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, w, rtol=rtol, atol=1e-14 * scale, err_msg=f"leaf {i} step {t}")
        ps = [p + u for p, u in zip(ps, want)]
    return states


@pytest.mark.parametrize("case", TRANSCRIPTIONS)
def test_matches_float64_transcription(case):
    make, make_ref = TRANSCRIPTIONS[case]
    states = _check_transcription(make, make_ref)
    if case in ("prodigy_authors", "dadapt_adamw", "dadapt_adamw_authors", "dadapt_adamw_coupled"):
        assert float(states[-1].estim_lr) > 1.1 * float(states[0].estim_lr), "the estimate should move"


@pytest.mark.parametrize("case", ["prodigy_authors", "dadapt_adamw", "dog", "mechanize"])
def test_zero_gradients_first_are_skipped_then_the_rule_runs(case):
    """Zero gradients on the first steps: D-Adaptation has no estimate yet (0 / 0 in Optax):
    ``d`` is kept and the update is zero, then the documented rule runs, never a NaN."""
    make, make_ref = TRANSCRIPTIONS[case]
    states = _check_transcription(make, make_ref, zero_first=2)
    for s in states[:2]:
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(s))
        if hasattr(s, "estim_lr"):
            assert float(s.estim_lr) == float(states[0].estim_lr)


# --------------------------------------------------------------------- edge cases (float32)
@pytest.mark.parametrize(
    "make",
    [
        lambda: gc.prodigy(),
        lambda: gc.prodigy(weight_decay=0.1, growth_rate=1.02),
        lambda: gc.dadapt_adamw(weight_decay=0.1),
        lambda: gc.dog(init_step=("distance", 1e-3), eps=0.0),
        lambda: gc.dowg(init_estim_sq_dist=0.0, eps=0.0),
        lambda: gc.cocob(eps=0.0),
        lambda: gc.mechanize(gc.adam(1.0)),
    ],
    ids=["prodigy", "prodigy_growth", "dadapt_adamw", "dog_eps0", "dowg_eps0", "cocob_eps0", "mechanize"],
)
def test_zero_gradients_give_zero_updates_not_nan(make):
    params = helpers.random_tree(0, SHAPES)
    zeros = jax.tree.map(jnp.zeros_like, params)
    tx = make()
    s = tx.init(params)
    for _ in range(3):
        u, s = tx.update(zeros, s, params)
        for x in jax.tree.leaves(u):
            np.testing.assert_array_equal(np.asarray(x), 0.0)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(s))


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adamw"])
def test_warmup_schedule_from_zero_is_no_nan_where_optax_is(name):
    """A linear warmup from 0 (the schedule the authors recommend): Optax 0.2.8's first step
    divides 0 by 0 and every later value is NaN; gradchain skips that step (no estimate yet)."""
    optax = pytest.importorskip("optax")
    warmup = gc.linear_schedule(0.0, 1.0, 4)
    params, target, noise = _problem()
    u, p, s = _run(getattr(gc, name)(warmup), params, target, noise[:6])
    uo, _, _ = _run_optax(getattr(optax.contrib, name)(warmup), params, target, noise[:2])
    assert np.isnan(np.asarray(jax.tree.leaves(uo[1])[0])).all()
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((u, s[-1])))
    assert all(not bool(jnp.any(x)) for x in jax.tree.leaves(u[0]))  # lr 0: no step
    assert float(s[-1].estim_lr) > float(s[0].estim_lr)


def test_first_steps_in_closed_form():
    """Step 1: no distance travelled yet, so the estimates keep d_0 and the steps are Adam's
    first step scaled by d_0 (Prodigy, D-Adaptation), the initial step (DoG, DoWG)."""
    p, g = jnp.array([1.0, -2.0, 3.0]), jnp.array([0.5, -1.0, 2.0])
    sign = -np.sign(np.asarray(g))
    tx = gc.prodigy(0.5, eps=0.0)
    u, s = tx.update(g, tx.init(p), p)
    np.testing.assert_allclose(u, 0.5 * 1e-6 * sign, rtol=1e-5)  # d0 * lr * m_hat / sqrt(v_hat)
    assert float(s.estim_lr) == np.float32(1e-6) and int(s.count) == 1
    tx = gc.dadapt_adamw(0.5, eps=0.0)
    u, s = tx.update(g, tx.init(p), p)
    np.testing.assert_allclose(u, 0.5 * 1e-6 * sign, rtol=1e-5)
    assert float(s.estim_lr) == np.float32(1e-6)
    tx = gc.dog(init_step=("learning_rate", 0.1))
    np.testing.assert_allclose(tx.update(g, tx.init(p), p)[0], -0.1 * g, rtol=1e-6)
    tx = gc.dog()  # heuristic: r_0 = 1e-6 * (1 + |x_0|)
    r0 = 1e-6 * (1 + np.linalg.norm(p))
    np.testing.assert_allclose(tx.update(g, tx.init(p), p)[0], -r0 / np.linalg.norm(g) * g, rtol=1e-5)
    tx = gc.dowg(eps=0.0, init_estim_sq_dist=4.0)  # 4 / sqrt(4 |g|**2)
    np.testing.assert_allclose(tx.update(g, tx.init(p), p)[0], -2 / np.linalg.norm(g) * g, rtol=1e-6)


def test_mechanic_matches_optax_unit_test():
    """Optax's _mechanic_test: one step with a stateful SGD base, its expected m, v, s."""
    inner = gc.chain(gc.trace(0.0), gc.sgd(0.1))
    tx = gc.mechanize(inner, weight_decay=1e-2, eps=1e-10, s_init=1e-8, num_betas=6)
    params = {"x": jnp.asarray(3.0), "y": jnp.asarray(-3.0)}
    grads = {"x": jnp.asarray(2.0), "y": jnp.asarray(-2.0)}
    u, s = jax.jit(tx.update)(grads, jax.jit(tx.init)(params), params)
    np.testing.assert_allclose(s.m, [1e-10] * 6, rtol=1e-6)
    np.testing.assert_allclose(s.v, [0.0] * 6)
    np.testing.assert_allclose(s.s, [1.6666667e-09] * 6, rtol=1e-6)
    new = gc.apply_updates(params, u)
    helpers.assert_trees_close(new, params, rtol=1e-6)  # steps of 1e-8 * 0.1 * 2


def test_mechanic_takes_x0_from_the_first_update_and_forwards_extra_args():
    seen = []

    def update_fn(updates, state, params=None, **extra_args):
        seen.append(extra_args)
        return jax.tree.map(lambda g: -g, updates), state

    tx = gc.mechanize(gc.GradientTransformation(lambda p: gc.EmptyState(), update_fn))
    s = tx.init(jnp.zeros(2))
    p = jnp.array([1.0, 2.0])
    _, s = tx.update(jnp.ones(2), s, p, value=jnp.asarray(3.0))
    np.testing.assert_array_equal(s.x0, p)
    assert seen == [{"value": 3.0}]


def test_states_and_dtypes():
    p32 = {"w": jnp.ones((2, 3), jnp.bfloat16), "b": jnp.ones(3)}
    s = gc.prodigy().init(p32)
    assert s._fields[:7] == (
        "exp_avg",
        "exp_avg_sq",
        "grad_sum",
        "params0",
        "estim_lr",
        "numerator_weighted",
        "count",
    )
    assert (
        s.estim_lr.dtype == jnp.float32
        and s.exp_avg["w"].dtype == jnp.bfloat16
        and s.count.dtype == jnp.int32
    )
    assert gc.prodigy(slice_p=4).init(p32).grad_sum["w"].shape == (2,)
    with jax.enable_x64(True):
        s = gc.dadapt_adamw().init({"w": jnp.ones(2, jnp.float64)})
        assert s.estim_lr.dtype == jnp.float64
    assert gc.DoGState._fields == ("is_init_step", "init_params", "max_dist", "sum_sq_norm_grads")
    assert gc.DoWGState._fields == ("init_params", "weighted_sq_norm_grads", "estim_sq_dist")
    assert gc.COCOBState._fields == (
        "init_particles",
        "cumulative_gradients",
        "scale",
        "subgradients",
        "reward",
    )
    assert gc.MechanicState._fields == ("base_optimizer_state", "count", "r", "m", "v", "s", "x0")
    assert gc.contrib.prodigy is gc.prodigy and gc.contrib.MechanicState is gc.MechanicState


def test_complex_parameters():
    p = jnp.array([1 + 1j, -2j, 0.5], jnp.complex64)
    g = jnp.array([0.5 - 1j, 1j, -1.0], jnp.complex64)
    for tx in (gc.prodigy(estim_lr0=1e-3), gc.dog()):
        s = tx.init(p)
        for _ in range(3):
            u, s = tx.update(g, s, p)
            p = gc.apply_updates(p, u)
        assert u.dtype == jnp.complex64 and bool(jnp.all(jnp.isfinite(u)))
    with pytest.raises(TypeError, match="scale_by_cocob: `updates` must be real"):
        tx = gc.scale_by_cocob()
        tx.update(g, tx.init(p), p)


# ---------------------------------------------------------------- the authors' references
def _torch_run(opt_factory, *, zero_first=0, schedule=None):
    """The authors' optimizer on the same problem (float64), parameters after each step."""
    torch = pytest.importorskip("torch")
    with jax.enable_x64(True):
        params, target, noise = _problem(jnp.float64)
    ts = [torch.tensor(np.asarray(x), requires_grad=True) for x in jax.tree.leaves(params)]
    tg = [np.asarray(x) for x in jax.tree.leaves(target)]
    opt = opt_factory(ts)
    out = []
    for t, n in enumerate(noise):
        if schedule is not None:
            opt.param_groups[0]["lr"] = float(schedule(t))
        for x, a, b in zip(ts, tg, jax.tree.leaves(n)):
            x.grad = torch.tensor((x.detach().numpy() - a + np.asarray(b)) * (t >= zero_first))
        opt.step()
        out.append([x.detach().numpy().copy() for x in ts])
    return out


def _check_against(make, opt_factory, *, rtol=1e-9, **kw):
    expected = _torch_run(opt_factory, **kw)
    with jax.enable_x64(True):
        params, target, noise = _problem(jnp.float64)
        _, ps, _ = _run(make(), params, target, noise, zero_first=kw.get("zero_first", 0))
    for t, (got, want) in enumerate(zip(ps, expected)):
        for i, (a, b) in enumerate(zip(jax.tree.leaves(got), want)):
            np.testing.assert_allclose(np.asarray(a), b, rtol=rtol, err_msg=f"leaf {i} step {t}")


def _prodigyopt(**kw):
    prodigyopt = pytest.importorskip("prodigyopt")
    return lambda ts: prodigyopt.Prodigy(ts, **kw)


PRODIGYOPT = {  # id: (gradchain, prodigyopt keyword arguments, run options)
    "authors_defaults": (lambda: gc.prodigy(use_bias_correction=False), {}, {}),
    "bias_correction": (gc.prodigy, {"use_bias_correction": True}, {}),
    "custom_decoupled_decay": (
        lambda: gc.prodigy(0.7, (0.8, 0.99), 0.9, 1e-6, 1e-3, 2.0, 0.1, use_bias_correction=False),
        {
            "lr": 0.7,
            "betas": (0.8, 0.99),
            "beta3": 0.9,
            "eps": 1e-6,
            "d0": 1e-3,
            "d_coef": 2.0,
            "weight_decay": 0.1,
        },
        {},
    ),
    "coupled_decay": (
        lambda: gc.prodigy(estim_lr0=1e-3, weight_decay=0.1, use_bias_correction=False, decouple=False),
        {"d0": 1e-3, "weight_decay": 0.1, "decouple": False},
        {},
    ),
    "safeguard_growth_slice": (
        lambda: gc.prodigy(
            estim_lr0=1e-3, safeguard_warmup=True, use_bias_correction=False, growth_rate=1.05, slice_p=3
        ),
        {"d0": 1e-3, "safeguard_warmup": True, "growth_rate": 1.05, "slice_p": 3},
        {},
    ),
    "schedule": (
        lambda: gc.prodigy(SCHED, estim_lr0=1e-3, use_bias_correction=False),
        {"d0": 1e-3},
        {"schedule": SCHED64},
    ),
    "zero_gradients_first": (
        lambda: gc.prodigy(estim_lr0=1e-3, weight_decay=0.1, use_bias_correction=False),
        {"d0": 1e-3, "weight_decay": 0.1},
        {"zero_first": 2},
    ),
}


@pytest.mark.parametrize("case", PRODIGYOPT)
def test_prodigy_matches_prodigyopt(case, capsys):
    """``prodigyopt.Prodigy`` 1.1.2 (torch, float64) through the flags for its conventions:
    parameters equal to 1e-9 relative at every step."""
    make, kw, run = PRODIGYOPT[case]
    _check_against(make, _prodigyopt(**kw), **run)


def test_prodigy_defaults_differ_from_prodigyopt_by_the_bias_correction():
    """The same call, Optax's default (bias-corrected) against the authors' (not): apart."""
    with pytest.raises(AssertionError):
        _check_against(gc.prodigy, _prodigyopt(d0=1e-6), rtol=1e-3)


def _dadapt_adam(**kw):
    pytest.importorskip("pytorch_optimizer")
    import torch
    from pytorch_optimizer import DAdaptAdam

    def make(ts):
        torch.set_default_dtype(torch.float64)  # its numerator and sums are default-dtype tensors
        return DAdaptAdam(ts, foreach=False, **kw)

    return make


DADAPT = {  # id: (gradchain, DAdaptAdam keyword arguments, run options)
    "its_defaults": (lambda: gc.dadapt_adamw(use_bias_correction=False), {}, {}),
    "optax_defaults": (gc.dadapt_adamw, {"bias_correction": True}, {}),
    "coupled_decay_growth": (
        lambda: gc.dadapt_adamw(
            0.7, (0.8, 0.99), 1e-6, 1e-3, 0.1, use_bias_correction=False, growth_rate=1.5, decouple=False
        ),
        {"lr": 0.7, "betas": (0.8, 0.99), "eps": 1e-6, "d0": 1e-3, "weight_decay": 0.1, "growth_rate": 1.5},
        {},
    ),
    "decoupled_decay_schedule": (
        lambda: gc.dadapt_adamw(SCHED, estim_lr0=1e-3, weight_decay=0.1),
        {"d0": 1e-3, "weight_decay": 0.1, "weight_decouple": True, "bias_correction": True},
        {"schedule": SCHED64},
    ),
    "zero_gradients_first": (
        lambda: gc.dadapt_adamw(estim_lr0=1e-3),
        {"d0": 1e-3, "bias_correction": True},
        {"zero_first": 2},
    ),
}


@pytest.mark.parametrize("case", DADAPT)
def test_dadapt_adamw_matches_pytorch_optimizer_dadapt_adam(case):
    """``pytorch_optimizer.DAdaptAdam`` 4.1.0 (torch, float64): the same rule; its defaults
    are no bias correction and coupled decay (the flags here)."""
    import torch

    default = torch.get_default_dtype()
    try:
        make, kw, run = DADAPT[case]
        _check_against(make, _dadapt_adam(**kw), **run)
    finally:
        torch.set_default_dtype(default)


# ------------------------------------------------------------------------------- errors
ERRORS = [
    (lambda: gc.prodigy(betas=0.9), TypeError, "prodigy: `betas` must be a pair"),
    (lambda: gc.prodigy(betas=(1.0, 0.9)), ValueError, r"prodigy: `betas\[0\]` must be >= 0 and < 1"),
    (lambda: gc.prodigy(beta3=1.5), ValueError, "prodigy: `beta3` must be"),
    (lambda: gc.prodigy(-1.0), ValueError, "prodigy: `learning_rate` must be >= 0"),
    (lambda: gc.prodigy(eps=-1.0), ValueError, "prodigy: `eps` must be >= 0"),
    (lambda: gc.prodigy(estim_lr0=0.0), ValueError, "prodigy: `estim_lr0` must be > 0"),
    (lambda: gc.prodigy(estim_lr_coef=0.0), ValueError, "prodigy: `estim_lr_coef` must be > 0"),
    (lambda: gc.prodigy(weight_decay=-0.1), ValueError, "prodigy: `weight_decay` must be >= 0"),
    (lambda: gc.prodigy(growth_rate=0.5), ValueError, "prodigy: `growth_rate` must be >= 1"),
    (lambda: gc.prodigy(slice_p=0), ValueError, "prodigy: `slice_p` must be >= 1"),
    (lambda: gc.prodigy(slice_p=2.0), TypeError, "prodigy: `slice_p` must be a Python int"),
    (lambda: gc.prodigy(safeguard_warmup="yes"), TypeError, "prodigy: `safeguard_warmup` must be a bool"),
    (lambda: gc.prodigy(use_bias_correction=1), TypeError, "prodigy: `use_bias_correction` must be a bool"),
    (lambda: gc.dadapt_adamw(betas=(0.9, 1.0)), ValueError, r"dadapt_adamw: `betas\[1\]` must be"),
    (lambda: gc.dadapt_adamw(estim_lr0=-1.0), ValueError, "dadapt_adamw: `estim_lr0` must be > 0"),
    (lambda: gc.dadapt_adamw(decouple=None), TypeError, "dadapt_adamw: `decouple` must be a bool"),
    (
        lambda: gc.dadapt_adamw(growth_rate=float("nan")),
        ValueError,
        "dadapt_adamw: `growth_rate` must be a number",
    ),
    (lambda: gc.scale_by_dog(("bogus", 1.0)), ValueError, "scale_by_dog: `init_step` must be a pair"),
    (lambda: gc.scale_by_dog(1e-6), ValueError, "scale_by_dog: `init_step` must be a pair"),
    (lambda: gc.scale_by_dog(("distance", 0.0)), ValueError, "scale_by_dog: `init_step value` must be > 0"),
    (lambda: gc.dog(init_step=("heuristic", -1)), ValueError, "dog: scale_by_dog: `init_step value`"),
    (lambda: gc.dog(-1.0), ValueError, "dog: `learning_rate` must be >= 0"),
    (lambda: gc.dog(weight_decay=-1.0), ValueError, "dog: `weight_decay` must be >= 0"),
    (lambda: gc.scale_by_dog(("distance", 1.0), eps=-1), ValueError, "scale_by_dog: `eps` must be >= 0"),
    (lambda: gc.scale_by_dowg(-1.0), ValueError, "scale_by_dowg: `init_estim_sq_dist` must be >= 0"),
    (lambda: gc.dowg(eps=-1.0), ValueError, "dowg: scale_by_dowg: `eps` must be >= 0"),
    (lambda: gc.scale_by_cocob(alpha=0.0), ValueError, "scale_by_cocob: `alpha` must be > 0"),
    (
        lambda: gc.cocob(weight_decay=-1.0),
        ValueError,
        "cocob: add_decayed_weights: `weight_decay` must be >= 0",
    ),
    (lambda: gc.cocob(learning_rate="1"), TypeError, "cocob: `learning_rate` must be a number"),
    (lambda: gc.mechanize("sgd"), TypeError, "mechanize: `base_optimizer` must be a GradientTransformation"),
    (lambda: gc.mechanize(gc.sgd(1.0), eps=0.0), ValueError, "mechanize: `eps` must be > 0"),
    (lambda: gc.mechanize(gc.sgd(1.0), s_init=0.0), ValueError, "mechanize: `s_init` must be > 0"),
    (lambda: gc.mechanize(gc.sgd(1.0), num_betas=0), ValueError, "mechanize: `num_betas` must be >= 1"),
    (
        lambda: gc.mechanize(gc.sgd(1.0), weight_decay=-1.0),
        ValueError,
        "mechanize: `weight_decay` must be >= 0",
    ),
]


@pytest.mark.parametrize(
    "make,error,match", ERRORS, ids=[m.split(":")[0] + str(i) for i, (_, _, m) in enumerate(ERRORS)]
)
def test_argument_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "tx",
    [
        gc.prodigy(),
        gc.dadapt_adamw(),
        gc.scale_by_dog(("distance", 1.0)),
        gc.scale_by_dowg(),
        gc.scale_by_cocob(),
    ],
    ids=["prodigy", "dadapt_adamw", "scale_by_dog", "scale_by_dowg", "scale_by_cocob"],
)
def test_update_errors(tx):
    params = {"a": jnp.ones(3), "b": jnp.ones(2)}
    state = tx.init(params)
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(params, state)
    with pytest.raises(ValueError, match="the `updates` tree does not match"):
        tx.update({"a": jnp.ones(3)}, state, params)
    with pytest.raises(ValueError, match=r"update at leaf \['a'\] has shape \(4,\)"):
        tx.update({"a": jnp.ones(4), "b": jnp.ones(2)}, state, params)
