"""Adam's relatives (Yogi, Adan, NovoGrad, Adadelta, optimistic gradients, AdamaxW) and the
moment helpers: float64 NumPy transcriptions of the docstring rules, Optax 0.2.8 parity
(eager and jitted), the authors'/torch references where Optax differs, Optax's documented
examples and edge cases, dtypes, and argument errors."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12
SHAPES = {"w": (3, 4), "b": (5,)}
SCHED = lambda c: 0.02 * 0.9 ** c.astype(jnp.float32)
NOT_BIAS = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)


def _problem(seed=0, dtype=jnp.float32, zero_first=True):
    """Parameters with |p| >= 1 (no cancellation in p + u) and N_STEPS gradient trees."""
    params = jax.tree.map(lambda x: jnp.sign(x) * (1 + jnp.abs(x)), helpers.random_tree(seed, SHAPES, dtype))
    grads = helpers.grad_sequence(seed + 1, params, N_STEPS)
    if zero_first:
        grads[0]["b"] = jnp.zeros_like(grads[0]["b"])  # a zero gradient on a fresh state
    return params, grads


def _max_rel(actual_seq, expected_seq) -> float:
    """Largest relative difference, each element measured against max(|expected|, 1% of the
    step's largest |expected|) (as in test_optimizers: rounding is relative to the terms)."""
    worst = 0.0
    for a, b in zip(actual_seq, expected_seq):
        scale = max(float(np.max(np.abs(np.asarray(x, np.float64)))) for x in jax.tree.leaves(b))
        worst = max(worst, helpers.max_rel_diff(a, b, floor=max(1e-2 * scale, 1e-30)))
    return worst


# ------------------------------------------------ float64 NumPy transcriptions (one leaf)
# Each is a step function ``(g, p) -> u`` with its state in a closure, one line per line
# of the docstring's rule.
def np_yogi(b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, init=1e-6):
    s = {"t": 0}

    def step(g, p):
        s["t"] += 1
        t, m, v = s["t"], s.get("m", init + 0 * g), s.get("v", init + 0 * g)
        m = b1 * m + (1 - b1) * g
        v = v - (1 - b2) * np.sign(v - g**2) * g**2
        u = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t) + eps_root) + eps)
        s.update(m=m, v=v)
        return u

    return step


def np_adan(b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=0.0):
    s = {"t": 0}

    def step(g, p):
        s["t"] += 1
        t, m, v, n = s["t"], s.get("m", 0 * g), s.get("v", 0 * g), s.get("n", 0 * g)
        d = 0 * g if t == 1 else g - s["g"]
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * d
        n = b3 * n + (1 - b3) * (g + b2 * d) ** 2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        n_hat = n / (1 - b3**t)
        u = (m_hat + b2 * v_hat) / (np.sqrt(n_hat + eps_root) + eps)
        s.update(m=m, v=v, n=n, g=g)
        return u

    return step


def np_novograd(b1=0.9, b2=0.25, eps=1e-8, eps_root=0.0, weight_decay=0.0):
    s = {"t": 0}

    def step(g, p):
        s["t"] += 1
        sq = np.sum(g**2)
        n = sq if s["t"] == 1 else b2 * s["n"] + (1 - b2) * sq
        a = g / (np.sqrt(n + eps_root) + eps) + weight_decay * p
        m = a if s["t"] == 1 else b1 * s["m"] + a
        s.update(n=n, m=m)
        return m

    return step


def np_adadelta(rho=0.9, eps=1e-6):
    s = {}

    def step(g, p):
        a, b = s.get("a", 0 * g), s.get("b", 0 * g)
        a = rho * a + (1 - rho) * g**2
        u = np.sqrt(b + eps) / np.sqrt(a + eps) * g
        b = rho * b + (1 - rho) * u**2
        s.update(a=a, b=b)
        return u

    return step


def np_optimistic(alpha=1.0, beta=1.0):
    s = {}

    def step(g, p):
        g_prev = s.get("g", g)
        u = (alpha + beta) * g - beta * g_prev
        s["g"] = g
        return u

    return step


def np_adam(nesterov=False, b1=0.9, b2=0.999, eps=1e-8):
    s = {"t": 0}

    def step(g, p):
        s["t"] += 1
        t, m, v = s["t"], s.get("m", 0 * g), s.get("v", 0 * g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t) if nesterov else m / (1 - b1**t)
        s.update(m=m, v=v)
        return m_hat / (np.sqrt(v / (1 - b2**t)) + eps)

    return step


def np_adamax(b1=0.9, b2=0.999, eps=1e-8):
    s = {"t": 0}

    def step(g, p):
        s["t"] += 1
        m = b1 * s.get("m", 0 * g) + (1 - b1) * g
        v = np.maximum(np.abs(g) + eps, b2 * s.get("v", 0 * g))
        s.update(m=m, v=v)
        return m / (1 - b1 ** s["t"]) / v

    return step


def np_chain(*steps):
    def step(g, p):
        for f in steps:
            g = f(g, p)
        return g

    return step


lr = lambda x: lambda g, p: -x * g
wd = lambda x: lambda g, p: g + x * p


def check_transcription(make, make_ref, rtol=1e-10):
    """``make()`` in float64 (eager, params updated by its own updates) against the leafwise
    transcription ``make_ref()``, every step."""
    with jax.enable_x64(True):
        params, grads = _problem(dtype=jnp.float64)
        updates, _, _ = helpers.run_steps(make(), params, grads)
    for i, p in enumerate(jax.tree.leaves(helpers.to_numpy64(params))):
        ref = make_ref()
        for t, g in enumerate(grads):
            u = ref(np.asarray(jax.tree.leaves(g)[i], np.float64), p)
            got = np.asarray(jax.tree.leaves(updates[t])[i])
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, u, rtol=rtol, atol=1e-300, err_msg=f"leaf {i} step {t}")
            p = p + u


# (gradchain transformation, its transcription, positional arguments for both)
TRANSFORMS = [
    ("scale_by_yogi", np_yogi, ()),
    ("scale_by_yogi", np_yogi, (0.8, 0.9, 1e-2, 1e-3, 0.5)),
    ("scale_by_adan", np_adan, ()),
    ("scale_by_adan", np_adan, (0.9, 0.7, 0.95, 1e-3, 1e-4)),
    ("scale_by_novograd", np_novograd, ()),
    ("scale_by_novograd", np_novograd, (0.8, 0.5, 1e-3, 1e-4, 0.1)),
    ("scale_by_adadelta", np_adadelta, ()),
    ("scale_by_adadelta", np_adadelta, (0.5, 1e-3)),
    ("scale_by_optimistic_gradient", np_optimistic, ()),
    ("scale_by_optimistic_gradient", np_optimistic, (0.5, 2.0)),
]


@pytest.mark.parametrize("name,np_fn,args", TRANSFORMS, ids=[f"{n}{a}" for n, _, a in TRANSFORMS])
def test_transformation_matches_float64_transcription(name, np_fn, args):
    check_transcription(lambda: getattr(gc, name)(*args), lambda: np_fn(*args))


C, OGD = np_chain, gc.optimistic_gradient_descent
NOVO, DELTA = (0.8, 0.5, 1e-3, 0.0, 0.2), (0.8, 1e-4)
OPTIMIZERS = {  # the optimizers, as the chains their docstrings spell out
    "yogi": (lambda: gc.yogi(0.1), lambda: C(np_yogi(), lr(0.1))),
    "adan": (lambda: gc.adan(0.1, weight_decay=0.2), lambda: C(np_adan(eps_root=1e-8), wd(0.2), lr(0.1))),
    "novograd": (lambda: gc.novograd(0.1, *NOVO), lambda: C(np_novograd(*NOVO), lr(0.1))),
    "adadelta": (gc.adadelta, lambda: C(np_adadelta(), lr(1.0))),
    "adadelta_wd": (
        lambda: gc.adadelta(0.5, 0.8, 1e-4, 0.1),
        lambda: C(wd(0.1), np_adadelta(*DELTA), lr(0.5)),
    ),
    "adamaxw": (lambda: gc.adamaxw(0.1, weight_decay=0.2), lambda: C(np_adamax(), wd(0.2), lr(0.1))),
    "ogd": (lambda: OGD(0.1, 0.5, 2.0), lambda: C(np_optimistic(0.5, 2.0), lr(0.1))),
    "oadam": (lambda: gc.optimistic_adam(0.1, 0.3), lambda: C(np_adam(True), np_optimistic(0.1, 0.3), lr(1))),
    "oadam_v2": (
        lambda: gc.optimistic_adam_v2(0.1, alpha=0.5, beta=2.0, nesterov=False),
        lambda: C(np_adam(), np_optimistic(0.5, 2.0), lr(0.1)),
    ),
}


@pytest.mark.parametrize("make,make_ref", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_optimizer_matches_float64_transcription(make, make_ref):
    check_transcription(make, make_ref)


# ------------------------------------------------------------------- Optax 0.2.8 parity
# (id, name, args, kwargs): the same call builds the gradchain and the Optax transformation.
# Adan at b2 = 0.5: the one value where Optax's (1 - b2) weight equals the paper's (see below).
OPTAX = [
    ("scale_by_yogi", "scale_by_yogi", (), {}),
    ("scale_by_yogi_custom", "scale_by_yogi", (0.8, 0.9, 1e-2, 1e-3, 0.5), {}),
    ("scale_by_adan", "scale_by_adan", (), {"b2": 0.5}),
    ("scale_by_adan_custom", "scale_by_adan", (0.9, 0.5, 0.95, 1e-3, 1e-4), {}),
    ("scale_by_novograd", "scale_by_novograd", (), {}),
    ("scale_by_novograd_wd", "scale_by_novograd", (0.8, 0.5, 1e-3, 1e-4, 0.1), {}),
    ("scale_by_adadelta", "scale_by_adadelta", (), {}),
    ("scale_by_adadelta_custom", "scale_by_adadelta", (0.5, 1e-3), {}),
    ("scale_by_optimistic_gradient", "scale_by_optimistic_gradient", (), {}),
    ("scale_by_optimistic_gradient_custom", "scale_by_optimistic_gradient", (0.5, 2.0), {}),
    ("yogi", "yogi", (0.01,), {}),
    ("yogi_schedule", "yogi", (SCHED, 0.8, 0.99, 1e-4), {}),
    ("adan", "adan", (0.01,), {"b2": 0.5, "weight_decay": 0.1}),
    ("adan_schedules_mask", "adan", (SCHED,), {"b2": 0.5, "weight_decay": SCHED, "mask": NOT_BIAS}),
    ("novograd", "novograd", (0.01,), {}),
    ("novograd_wd_schedule", "novograd", (SCHED,), {"weight_decay": 0.1}),
    ("adadelta", "adadelta", (0.1,), {}),
    ("adadelta_wd_mask", "adadelta", (SCHED, 0.8, 1e-4, 0.1, NOT_BIAS), {}),
    ("adamaxw", "adamaxw", (0.01,), {}),
    ("adamaxw_mask", "adamaxw", (SCHED,), {"weight_decay": 0.1, "mask": NOT_BIAS}),
    ("optimistic_gradient_descent", "optimistic_gradient_descent", (0.01,), {}),
    ("optimistic_gradient_descent_custom", "optimistic_gradient_descent", (SCHED, 0.5, 2.0), {}),
    ("optimistic_adam", "optimistic_adam", (0.01, 0.1), {}),
    ("optimistic_adam_v2", "optimistic_adam_v2", (0.01,), {}),
    ("optimistic_adam_v2_custom", "optimistic_adam_v2", (SCHED,), {"alpha": 0.5, "nesterov": False}),
]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name,args,kw", [r[1:] for r in OPTAX], ids=[r[0] for r in OPTAX])
def test_matches_optax(name, args, kw, jit):
    optax = pytest.importorskip("optax")
    params, grads = _problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # optax.optimistic_adam
        otx = getattr(optax, name)(*args, **kw)
    u, p, _ = helpers.run_steps(getattr(gc, name)(*args, **kw), params, grads, jit=jit)
    uo, po, _ = helpers.run_optax(otx, params, grads, jit=jit)
    assert _max_rel(u, uo) <= 2e-5, f"updates differ by {_max_rel(u, uo):.2e}"
    assert _max_rel(p, po) <= 2e-5, f"params differ by {_max_rel(p, po):.2e}"
    for a, b in zip(jax.tree.leaves(u[-1]), jax.tree.leaves(params)):
        assert a.dtype == b.dtype


def test_yogi_matches_optax_on_complex_updates():
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(0)
    c = lambda: jnp.asarray(rng.standard_normal(6) + 1j * rng.standard_normal(6), jnp.complex64)
    params, grads = {"z": c()}, [{"z": c()} for _ in range(N_STEPS)]
    u, _, _ = helpers.run_steps(gc.scale_by_yogi(), params, grads, jit=True)
    uo, _, _ = helpers.run_optax(optax.scale_by_yogi(), params, grads, jit=True)
    for a, b in zip(u, uo):
        np.testing.assert_allclose(a["z"], b["z"], rtol=2e-5, atol=2e-6)
    assert u[-1]["z"].dtype == jnp.complex64


# -------------------------------------------------- where Optax 0.2.8 is wrong, and the references
def test_adan_weights_differences_by_b2_as_the_paper_and_authors_code():
    """Optax weights the gradient differences by ``1 - b2`` (0.08), the paper's
    ``(1 - beta_2)`` is ``b2`` (0.92) in this parameterization: equal on the first step
    (no difference yet), apart afterwards. (The next test: the authors' form, as
    pytorch_optimizer.Adan has it, agrees with gradchain at every step.)"""
    optax = pytest.importorskip("optax")
    params, grads = _problem(zero_first=False)
    u, _, _ = helpers.run_steps(gc.scale_by_adan(), params, grads)
    uo, _, _ = helpers.run_optax(optax.scale_by_adan(), params, grads)
    assert _max_rel(u[:1], uo[:1]) <= 1e-6
    assert _max_rel(u[1:2], uo[1:2]) > 1e-2


def test_adan_matches_pytorch_optimizer_adan():
    torch = pytest.importorskip("torch")
    po = pytest.importorskip("pytorch_optimizer")
    with jax.enable_x64(True):
        params, grads = _problem(dtype=jnp.float64, zero_first=False)
        _, ps, _ = helpers.run_steps(gc.adan(0.1, eps_root=0.0), params, grads)
    names = sorted(params)  # the dict's leaf order
    ts = [torch.tensor(np.asarray(params[k]), requires_grad=True) for k in names]
    opt = po.Adan(ts, lr=0.1)
    for t, g in enumerate(grads):
        for x, k in zip(ts, names):
            x.grad = torch.tensor(np.asarray(g[k]))
        opt.step()
        for x, k in zip(ts, names):
            np.testing.assert_allclose(
                x.detach().numpy(), np.asarray(ps[t][k]), rtol=1e-12, err_msg=f"{k} step {t}"
            )


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adadelta_default_descends_like_torch(weight_decay):
    """``learning_rate=None`` is Adadelta's own step (torch's ``lr=1.0``) and descends;
    Optax 0.2.8 drops the sign flip with the learning rate, so its default ascends."""
    torch = pytest.importorskip("torch")
    optax = pytest.importorskip("optax")
    with jax.enable_x64(True):
        params, grads = _problem(dtype=jnp.float64, zero_first=False)
        u, ps, _ = helpers.run_steps(gc.adadelta(weight_decay=weight_decay), params, grads)
    names = sorted(params)
    ts = [torch.tensor(np.asarray(params[k]), requires_grad=True) for k in names]
    opt = torch.optim.Adadelta(ts, weight_decay=weight_decay)
    for t, g in enumerate(grads):
        for x, k in zip(ts, names):
            x.grad = torch.tensor(np.asarray(g[k]))
        opt.step()
        for x, k in zip(ts, names):
            np.testing.assert_allclose(
                x.detach().numpy(), np.asarray(ps[t][k]), rtol=1e-12, err_msg=f"{k} step {t}"
            )
    g0 = jnp.array([1.0, -2.0])
    otx = optax.adadelta()
    uo, _ = otx.update(g0, otx.init(g0), g0)
    tx = gc.adadelta()
    ug, _ = tx.update(g0, tx.init(g0), g0)
    assert np.all(np.sign(ug) == -np.sign(g0)) and np.all(np.sign(uo) == np.sign(g0))


@pytest.mark.parametrize("order", [1, 3])
def test_per_elem_norm_is_a_norm_for_odd_orders(order):
    """Optax averages ``g**order`` for real ``g`` (negative for odd orders); ``|g|**order``."""
    optax = pytest.importorskip("optax")
    g, m = jnp.array([-2.0, 3.0]), jnp.ones(2)
    got = gc.update_moment_per_elem_norm(g, m, 0.5, order)
    np.testing.assert_allclose(got, 0.5 + 0.5 * np.abs([-2.0, 3.0]) ** order, rtol=1e-6)
    ox = optax.update_moment_per_elem_norm(g, m, 0.5, order)
    np.testing.assert_allclose(ox[1], got[1], rtol=1e-6)
    assert float(ox[0]) < 0 < float(got[0])


# -------------------------------------------------------------------- the moment helpers
# (helper, whether Optax's matches it, arguments after (updates, moments), float64 rule)
HELPERS = [
    ("update_moment", True, (0.9, 1), lambda x, a: 0.9 * a + 0.1 * x),
    ("update_moment", True, (0.8, 2), lambda x, a: 0.8 * a + 0.2 * x**2),
    ("update_infinity_moment", True, (0.9, 1e-3), lambda x, a: np.maximum(np.abs(x) + 1e-3, 0.9 * a)),
    # Optax: g**1.5, NaN for negative g (see test_per_elem_norm_is_a_norm_for_odd_orders)
    ("update_moment_per_elem_norm", False, (0.7, 1.5), lambda x, a: 0.7 * a + 0.3 * np.abs(x) ** 1.5),
]


def test_helpers_match_float64_and_optax_over_steps():
    optax = pytest.importorskip("optax")
    _, grads = _problem(zero_first=False)
    ms = [jax.tree.map(lambda x: jnp.full_like(x, 0.5), grads[0])] * 4
    rs = [jax.tree.map(lambda x: np.full(np.shape(x), 0.5), grads[0])] * 4
    for t, g in enumerate(grads, start=1):
        for i, (name, same, args, rule) in enumerate(HELPERS):
            new = getattr(gc, name)(g, ms[i], *args)
            rs[i] = jax.tree.map(rule, helpers.to_numpy64(g), rs[i])
            helpers.assert_trees_close(new, rs[i], rtol=2e-6, atol=1e-6, msg=f"helper {i} step {t}")
            if same:
                with jax.numpy_dtype_promotion("standard"):
                    expected = getattr(optax, name)(g, ms[i], *args)
                helpers.assert_trees_close(new, expected, rtol=2e-6, atol=1e-7, msg=f"helper {i} step {t}")
            ms[i] = new
        bc = gc.bias_correction(ms[1], 0.8, jnp.asarray(t, jnp.int32))
        with jax.numpy_dtype_promotion("standard"):
            helpers.assert_trees_close(bc, optax.bias_correction(ms[1], 0.8, t), rtol=2e-6)
        helpers.assert_trees_close(bc, jax.tree.map(lambda b: b / (1 - 0.8**t), rs[1]), rtol=2e-6, atol=1e-6)


def test_helpers_pass_none_and_match_optax_edge_cases():
    """Optax's tree_math tests: None updates, and the infinity moment's four properties."""
    m = jnp.array([1.0, 2.0, 3.0])
    for f in (gc.update_moment, gc.update_infinity_moment, gc.update_moment_per_elem_norm):
        assert f(None, m, 1, 1) is None
    assert gc.update_moment({"a": None, "b": m}, {"a": None, "b": m}, 0.5, 2)["a"] is None
    v = jnp.array([5.0, 7.0])
    f = gc.update_infinity_moment
    np.testing.assert_allclose(f(v, v, 0.9, 0.0), v)
    np.testing.assert_allclose(f(jnp.zeros(2), v, 0.9, 0.0), 0.9 * v, rtol=1e-6)
    np.testing.assert_allclose(f(-v, jnp.zeros(2), 0.9, 0.0), v)
    np.testing.assert_allclose(f(jnp.zeros(2), jnp.zeros(2), 0.9, 1e-2), jnp.full(2, 1e-2))


def test_bias_correction_bfloat16_is_finite_and_computed_in_float32():
    m = jnp.logspace(-10, 10, num=21, dtype=jnp.bfloat16)
    for decay in (0.9, 0.99, 0.999, 0.9995):
        for count in (1, 10, 100, 1000):
            out = gc.bias_correction(m, decay, count)
            assert out.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(out))), (decay, count)
            want = np.asarray(m, np.float64) / (1 - decay**count)
            np.testing.assert_allclose(np.asarray(out, np.float64), want, rtol=2**-7)


def test_helpers_round_once_to_the_moment_dtype():
    g = jnp.full(3, 1.0 + 2**-12)
    m = jnp.zeros(3, jnp.bfloat16)
    out = gc.update_moment(g, m, 0.999, 2)
    assert out.dtype == jnp.bfloat16
    want = np.asarray(np.asarray(0.001 * (1.0 + 2**-12) ** 2, ml_dtypes.bfloat16), np.float64)
    np.testing.assert_array_equal(np.asarray(out, np.float64), want)
    z = jnp.array([1 + 1j, 2j], jnp.complex64)
    assert gc.update_moment(z, jnp.zeros(2, jnp.complex64), 0.5, 2).dtype == jnp.complex64
    np.testing.assert_allclose(gc.update_moment_per_elem_norm(z, jnp.zeros(2), 0.5, 2), [1.0, 2.0])


@pytest.mark.parametrize("jit", [False, True])
def test_safe_root_mean_squares(jit):
    optax = pytest.importorskip("optax")
    f = jax.jit(gc.safe_root_mean_squares) if jit else gc.safe_root_mean_squares
    x = helpers.random_tree(0, {"x": (4, 3)})["x"]
    for lo in (0.0, 0.1, 10.0):
        np.testing.assert_allclose(f(x, lo), optax.safe_root_mean_squares(x, lo), rtol=1e-6)
        want = max(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)), lo)
        np.testing.assert_allclose(f(x, lo), want, rtol=1e-6)
    grad = jax.grad(gc.safe_root_mean_squares)
    np.testing.assert_allclose(grad(x, 0.1), x / (x.size * f(x, 0.1)), rtol=1e-5)
    for lo in (0.0, 3.0):  # Optax's numerics test: gradient 0 at 0, never NaN
        g = jax.jit(grad)(jnp.asarray(0.0), jnp.asarray(lo))
        np.testing.assert_array_equal(g, 0.0)
        np.testing.assert_array_equal(jax.jit(grad)(jnp.zeros(3), lo), np.zeros(3))
    assert f(jnp.zeros(0), 0.5) == 0.5
    assert f(jnp.ones(2, jnp.bfloat16), 0.0).dtype == jnp.bfloat16


# -------------------------------------------------- Optax's documented examples and edge cases
def test_optimistic_gradient_first_steps_as_optax_issue_1082():
    tx = gc.scale_by_optimistic_gradient()
    s = tx.init(jnp.asarray(10.0))
    u0, s = tx.update(jnp.asarray(2.0), s)
    u1, s = tx.update(jnp.asarray(3.0), s)
    u2, s = tx.update(jnp.asarray(4.0), s)
    assert (float(u0), float(u1), float(u2)) == (2.0, 2 * 3.0 - 2.0, 2 * 4.0 - 3.0)
    assert not bool(s.is_initial_step) and s.is_initial_step.dtype == jnp.bool_


QUADRATIC_EXAMPLES = [  # Optax 0.2.8's docstring examples: f(x) = sum(x**2) from [1, 2, 3]
    (lambda: gc.yogi(0.002), [1.40e1, 1.40e1, 1.39e1, 1.39e1, 1.39e1]),
    (lambda: gc.novograd(0.003), [1.40e1, 1.39e1, 1.39e1, 1.38e1, 1.37e1]),
    (lambda: gc.adadelta(10.0), [1.36e1, 1.32e1, 1.29e1, 1.25e1, 1.21e1]),
    (lambda: gc.adamaxw(0.003), [1.40e1, 1.39e1, 1.39e1, 1.39e1, 1.38e1]),
    (lambda: gc.optimistic_gradient_descent(0.003), [1.38e1, 1.37e1, 1.35e1, 1.33e1, 1.32e1]),
]


@pytest.mark.parametrize(
    "make,expected", QUADRATIC_EXAMPLES, ids=["yogi", "novograd", "adadelta", "adamaxw", "ogd"]
)
def test_optax_docstring_examples(make, expected):
    f = lambda x: jnp.sum(x * x)
    tx, x = make(), jnp.array([1.0, 2.0, 3.0])
    s, got = tx.init(x), []
    for _ in range(5):
        u, s = tx.update(jax.grad(f)(x), s, x)
        x = gc.apply_updates(x, u)
        got.append(float(f"{float(f(x)):.2E}"))
    assert got == expected


@pytest.mark.parametrize(
    "make",
    [lambda: gc.optimistic_adam(1e-2, 1.0), lambda: gc.optimistic_adam_v2(1.0, alpha=1e-2, beta=1.0)],
    ids=["v1", "v2"],
)
def test_optimistic_adam_solves_the_bilinear_game_of_optax_example(make):
    opt = make()

    def step(state, _):
        params, opt_state = state
        distance = jnp.hypot(*params)
        gx, gy = jax.grad(lambda x, y: x * y, argnums=(0, 1))(*params)
        updates, opt_state = opt.update((gx, -gy), opt_state, params)
        return (gc.apply_updates(params, updates), opt_state), distance

    params = (jnp.asarray(1.0), jnp.asarray(2.0))
    _, d = jax.lax.scan(step, (params, opt.init(params)), length=1025)
    assert " ".join(f"{float(d[4**i]):.3f}" for i in range(6)) == "2.243 2.195 2.161 2.055 0.796 0.001"


# ------------------------------------------------------------------------------ dtypes
def test_state_dtypes_and_shapes():
    params = {"h": jnp.ones((2, 3), jnp.float16), "f": jnp.ones(4)}
    s = gc.scale_by_yogi().init(params)
    assert s.mu["h"].dtype == jnp.float16 and s.nu["h"].dtype == jnp.float32
    np.testing.assert_allclose([s.mu["f"], s.nu["f"]], 1e-6)
    s = gc.scale_by_adan().init(params)
    assert s.n["h"].dtype == jnp.float32 and s.g["h"].dtype == s.m["h"].dtype == s.v["h"].dtype == jnp.float16
    s = gc.scale_by_adadelta().init(params)
    assert s.e_g["h"].dtype == s.e_x["h"].dtype == jnp.float32
    tx = gc.scale_by_novograd(mu_dtype=jnp.bfloat16)
    s = tx.init(params)
    assert s.nu["h"].shape == () and s.nu["h"].dtype == jnp.float32 and s.mu["f"].dtype == jnp.bfloat16
    u, s2 = tx.update(jax.tree.map(lambda x: x * 3, params), s)
    assert u["h"].dtype == jnp.float16 and u["f"].dtype == jnp.float32
    assert jax.tree.structure(s2) == jax.tree.structure(s) and s2.nu["f"].shape == ()
    np.testing.assert_allclose(s2.nu["f"], 36.0)  # |g|**2 of the layer on the first step


def test_novograd_reads_params_only_for_weight_decay():
    g = jnp.array([3.0, -4.0])
    tx = gc.scale_by_novograd()
    assert tx.update(g, tx.init(g))[0] is not None  # no params needed
    tx = gc.scale_by_novograd(weight_decay=0.5)
    with pytest.raises(ValueError, match="scale_by_novograd: this transformation needs the parameters"):
        tx.update(g, tx.init(g))
    with pytest.raises(ValueError, match=r"scale_by_novograd: the `updates` tree does not match `params`"):
        tx.update(g, tx.init(g), {"p": g})


# ------------------------------------------------------------------------------ errors
V, T = ValueError, TypeError
X2, X3, I2, C2 = jnp.ones(2), jnp.ones(3), jnp.ones(2, jnp.int32), jnp.ones(2, jnp.complex64)
yogi_init = lambda v: gc.scale_by_yogi(initial_accumulator_value=v)
ERRORS = [
    (lambda: gc.scale_by_yogi(b1=1.0), V, r"scale_by_yogi: `b1` must be >= 0 and < 1, got 1.0"),
    (lambda: yogi_init(-1.0), V, r"scale_by_yogi: `initial_accumulator_value` must be >= 0, got -1.0"),
    (lambda: gc.scale_by_yogi(eps=float("nan")), V, r"scale_by_yogi: `eps` must be a number, got NaN"),
    (lambda: gc.scale_by_adan(b3=1.5), V, r"scale_by_adan: `b3` must be >= 0 and < 1, got 1.5"),
    (lambda: gc.scale_by_adan(eps_root=-1.0), V, r"scale_by_adan: `eps_root` must be >= 0"),
    (lambda: gc.scale_by_novograd(weight_decay=-0.1), V, r"scale_by_novograd: `weight_decay` must be >= 0"),
    (lambda: gc.scale_by_novograd(weight_decay=SCHED), T, r"scale_by_novograd: `weight_decay` must be a"),
    (lambda: gc.scale_by_novograd(mu_dtype=jnp.int32), T, r"scale_by_novograd: `mu_dtype` must be a"),
    (lambda: gc.scale_by_adadelta(eps=0.0), V, r"scale_by_adadelta: `eps` must be > 0, got 0.0"),
    (lambda: gc.scale_by_adadelta(rho=1.0), V, r"scale_by_adadelta: `rho` must be >= 0 and < 1"),
    (lambda: gc.scale_by_optimistic_gradient(alpha="1"), T, r"optimistic_gradient: `alpha` must be a number"),
    (lambda: gc.scale_by_optimistic_gradient(beta=X2), V, r"optimistic_gradient: `beta` must be a scalar"),
    (lambda: gc.yogi(-0.1), V, r"yogi: `learning_rate` must be >= 0, got -0.1"),
    (lambda: gc.yogi(0.1, b2=2.0), V, r"yogi: scale_by_yogi: `b2` must be >= 0 and < 1"),
    (lambda: gc.adan(0.1, weight_decay=-1.0), V, r"adan: add_decayed_weights: `weight_decay` must be >= 0"),
    (lambda: gc.adan(None), T, r"adan: `learning_rate` must be a number"),
    (lambda: gc.novograd(0.1, weight_decay=SCHED), T, r"novograd: scale_by_novograd: `weight_decay`"),
    (lambda: gc.adadelta(eps=0.0), V, r"adadelta: scale_by_adadelta: `eps` must be > 0"),
    (lambda: gc.adadelta("1"), T, r"adadelta: `learning_rate` must be a number"),
    (lambda: gc.adamaxw(0.1, eps=-1.0), V, r"adamaxw: scale_by_adamax: `eps` must be >= 0"),
    (lambda: OGD(0, np.inf), V, r"optimistic_gradient_descent: scale_by_optimistic_gradient: `alpha` must"),
    (lambda: gc.optimistic_adam(SCHED), T, r"optimistic_adam: `learning_rate` must be a number .*_v2`"),
    (lambda: gc.optimistic_adam(-1.0), V, r"optimistic_adam: `learning_rate` must be >= 0"),
    (lambda: gc.optimistic_adam(0.1, "x"), T, r"optimistic_adam: `optimism` must be a number"),
    (lambda: gc.optimistic_adam(0.1, b1=1.0), V, r"optimistic_adam: scale_by_adam: `b1` must be"),
    (lambda: gc.optimistic_adam_v2(0.1, nesterov=1), T, r"optimistic_adam_v2: scale_by_adam: `nesterov`"),
    (lambda: gc.bias_correction(X2, 1.0, 1), V, r"bias_correction: `decay` must be >= 0 and < 1"),
    (lambda: gc.bias_correction(X2, 0.9, 0), V, r"bias_correction: `count` must be >= 1, got 0"),
    (lambda: gc.bias_correction(X2, 0.9, 1.5), V, r"bias_correction: `count` must be an integer"),
    (lambda: gc.bias_correction(I2, 0.9, 1), T, r"bias_correction: `moment` must hold floating"),
    (lambda: gc.update_moment(X2, X2, 0.5, 0), V, r"update_moment: `order` must be >= 1, got 0"),
    (lambda: gc.update_moment(X2, X2, 0.5, 1.5), T, r"update_moment: `order` must be a Python int"),
    (lambda: gc.update_moment(X2, X2, 1.5, 2), V, r"update_moment: `decay` must be >= 0 and <= 1"),
    (lambda: gc.update_moment(C2, X2, 0.5, 2), T, r"update_moment: `moments` must be complex"),
    (lambda: gc.update_moment(X2, X3, 0.5, 2), V, r"update_moment: the update at leaf \(root\) has shape"),
    (lambda: gc.update_moment({"a": X2}, {"b": X2}, 0.5, 2), V, r"update_moment: the `updates` tree does"),
    (lambda: gc.update_moment(I2, X2, 0.5, 2), T, r"update_moment: `updates` must hold floating"),
    (lambda: gc.update_infinity_moment(X2, X2, 0.5, -1.0), V, r"update_infinity_moment: `eps` must be >= 0"),
    (lambda: gc.update_moment_per_elem_norm(X2, X2, 0.5, 0), V, r"per_elem_norm: `order` must be > 0"),
    (lambda: gc.safe_root_mean_squares(X2, -1.0), V, r"safe_root_mean_squares: `min_rms` must be >= 0"),
    (lambda: gc.safe_root_mean_squares(I2, 0.0), T, r"safe_root_mean_squares: `x` must hold floating"),
]


@pytest.mark.parametrize("make,exc,match", ERRORS)
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("name", sorted({n for n, _, _ in TRANSFORMS}))
def test_tree_mismatch_is_reported(name):
    tx = getattr(gc, name)()
    state = tx.init({"a": jnp.zeros(2)})
    with pytest.raises(ValueError, match=rf"{name}: the `updates` tree does not match the state"):
        tx.update({"b": jnp.zeros(2)}, state)
    with pytest.raises(ValueError, match=rf"{name}: the update at leaf \['a'\] has shape \(3,\)"):
        tx.update({"a": jnp.zeros(3)}, state)
