"""MoMo (`momo`, `momo_adam`) and `split_real_and_imaginary`: Optax 0.2.8 parity (MoMo on a
loss whose value and gradient feed each step, as MoMo is used), float64 NumPy
transcriptions of the docstring rules (the inner products are over the whole tree), the
documented edge cases, and argument errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12
SHAPES = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}


def _params(seed=0, dtype=jnp.float32):
    return jax.tree.map(lambda x: jnp.sign(x) * (1 + jnp.abs(x)), helpers.random_tree(seed, SHAPES, dtype))


def _curvatures(dtype=jnp.float32):
    return jax.tree.map(lambda x: 0.5 + jnp.abs(x), helpers.random_tree(5, SHAPES, dtype))


def loss(params, offset=30.0):
    c = _curvatures(jax.tree.leaves(params)[0].dtype)
    return (
        sum(jnp.sum(0.5 * a * (x - 0.3) ** 2) for a, x in zip(jax.tree.leaves(c), jax.tree.leaves(params)))
        + offset
    )


def _run(tx, params, apply, jit, steps=N_STEPS):
    def step(p, s):
        v, g = jax.value_and_grad(loss)(p)
        u, s = tx.update(g, s, p, value=v)
        return apply(p, u), s, u

    step = jax.jit(step) if jit else step
    s, out = tx.init(params), []
    for _ in range(steps):
        params, s, u = step(params, s)
        out.append(u)
    return out, s


def _max_rel(actual_seq, expected_seq) -> float:
    worst = 0.0
    for a, b in zip(actual_seq, expected_seq):
        scale = max(float(np.max(np.abs(np.asarray(x, np.float64)))) for x in jax.tree.leaves(b))
        worst = max(worst, helpers.max_rel_diff(a, b, floor=max(1e-2 * scale, 1e-30)))
    return worst


# ------------------------------------------------------------------- Optax 0.2.8 parity
SCHED = lambda c: 0.3 * 0.9 ** c.astype(jnp.float32)
CONFIGS = {
    "momo": ("momo", (0.3,), {}),
    "momo_wd_adapt": ("momo", (0.3, 0.8, -1.0, 0.1, True), {}),
    "momo_schedule": ("momo", (SCHED,), {"weight_decay": 0.05}),
    "momo_adam": ("momo_adam", (0.3,), {"weight_decay": 0.1}),
    "momo_adam_adapt": ("momo_adam", (0.01, 0.8, 0.99, 1e-6, 0.0, 0.1, True), {}),
    "momo_adam_schedule": ("momo_adam", (SCHED,), {}),
}


# Every configuration jitted; the eager path (op by op: slow) for the richest ones.
EAGER = ["momo_wd_adapt", "momo_adam_adapt"]


@pytest.mark.parametrize(
    "key,jit",
    [(k, True) for k in CONFIGS] + [(k, False) for k in EAGER],
    ids=[*CONFIGS, *[f"{k}-eager" for k in EAGER]],
)
def test_matches_optax(key, jit):
    optax = pytest.importorskip("optax")
    name, args, kw = CONFIGS[key]
    params = _params()
    u, s = _run(getattr(gc, name)(*args, **kw), params, gc.apply_updates, jit)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        uo, so = _run(getattr(optax.contrib, name)(*args, **kw), params, optax.apply_updates, jit)
    assert _max_rel(u, uo) <= 2e-5
    for f in ("barf", "gamma", "lb", "count"):
        np.testing.assert_allclose(getattr(s, f), getattr(so, f), rtol=2e-5, err_msg=f)


COMPLEX = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}


def _complex_problem(dtype=jnp.complex64):
    re, im = helpers.random_tree(0, COMPLEX), helpers.random_tree(1, COMPLEX)
    params = jax.tree.map(
        lambda a, b: jax.lax.complex(jnp.sign(a) * (1 + jnp.abs(a)), b).astype(dtype), re, im
    )
    grads = [
        jax.tree.map(
            lambda a, b: jax.lax.complex(a, b).astype(dtype), *helpers.grad_sequence(2 + t, (re, im), 1)[0]
        )
        for t in range(N_STEPS)
    ]
    return params, grads


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_split_real_and_imaginary_matches_optax(jit):
    optax = pytest.importorskip("optax")
    params, grads = _complex_problem()
    params["real"] = jnp.ones(3)  # a real leaf passes through to the inner transformation
    grads = [{**g, "real": jnp.full(3, 0.5 * t)} for t, g in enumerate(grads)]
    u, p, s = helpers.run_steps(gc.split_real_and_imaginary(gc.adam(0.1)), params, grads, jit=jit)
    otx = optax.contrib.split_real_and_imaginary(optax.adam(0.1))
    uo, po, so = helpers.run_optax(otx, params, grads, jit=jit)
    for a, b in zip(u + p, uo + po):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            assert x.dtype == y.dtype
            np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)
    assert type(s.inner_state[0].mu["w"]).__name__ == "SplitRealAndImaginaryArrays"


# --------------------------------------------------------- float64 NumPy transcriptions
def np_momo(a, beta=0.9, lb0=0.0, lam=0.0, adapt=False):
    """The docstring's rule over the list of leaves ``(g, x, f) -> u``."""
    s = {"t": 0, "lb": lb0}
    dot = lambda xs, ys: sum(float(np.sum(x * y)) for x, y in zip(xs, ys))

    def step(g, x, f):
        b = 0.0 if s["t"] == 0 else beta
        fbar = b * s.get("fbar", 0.0) + (1 - b) * f
        d = [b * di + (1 - b) * gi for di, gi in zip(s.get("d", [0 * gi for gi in g]), g)]
        gam = b * s.get("gam", 0.0) + (1 - b) * dot(g, x)
        n, p = dot(d, d), dot(d, x)
        h = (1 + a * lam) * (fbar - gam) + p
        lb = max(h / (2 * (1 + a * lam)), lb0) if adapt and h < (1 + a * lam) * s["lb"] else s["lb"]
        tau = 0.0 if n <= 2.2e-16 else min(a, max((1 + a * lam) * (fbar - lb - gam) + p, 0) / n)
        u = [-(a * lam) / (1 + a * lam) * xi - tau * di for xi, di in zip(x, d)]
        lb = max(fbar + p - gam - tau * n / 2, lb0) if adapt else s["lb"]
        s.update(t=s["t"] + 1, fbar=fbar, d=d, gam=gam, lb=lb)
        return u

    return step


def np_momo_adam(a, b1=0.9, b2=0.999, eps=1e-8, lb0=0.0, lam=0.0, adapt=False):
    s = {"t": 0, "lb": lb0}
    dot = lambda xs, ys: sum(float(np.sum(x * y)) for x, y in zip(xs, ys))

    def step(g, x, f):
        t = s["t"] + 1
        fbar = b1 * s.get("fbar", 0.0) + (1 - b1) * f
        d = [b1 * di + (1 - b1) * gi for di, gi in zip(s.get("d", [0 * gi for gi in g]), g)]
        v = [b2 * vi + (1 - b2) * gi**2 for vi, gi in zip(s.get("v", [0 * gi for gi in g]), g)]
        D = [eps + np.sqrt(vi / (1 - b2**t)) for vi in v]
        gam = b1 * s.get("gam", 0.0) + (1 - b1) * dot(g, x)
        n, p, c = dot(d, [di / Di for di, Di in zip(d, D)]), dot(d, x), 1 - b1**t
        h = (1 + a * lam) * (fbar - gam) + p
        lb = max(h / (2 * c * (1 + a * lam)), lb0) if adapt and h < (1 + a * lam) * c * s["lb"] else s["lb"]
        tau = 0.0 if n <= 2.2e-16 else min(a / c, max((1 + a * lam) * (fbar - c * lb - gam) + p, 0) / n)
        u = [-(a * lam) / (1 + a * lam) * xi - tau * di / Di for xi, di, Di in zip(x, d, D)]
        lb = max((fbar + p - gam - tau * n / 2) / c, lb0) if adapt else s["lb"]
        s.update(t=t, fbar=fbar, d=d, v=v, gam=gam, lb=lb)
        return u

    return step


TRANSCRIPTIONS = {
    "momo": (lambda: gc.momo(0.3), lambda: np_momo(0.3)),
    "momo_all": (lambda: gc.momo(0.3, 0.8, 25.0, 0.1, True), lambda: np_momo(0.3, 0.8, 25.0, 0.1, True)),
    "momo_adam": (lambda: gc.momo_adam(0.3), lambda: np_momo_adam(0.3)),
    "momo_adam_all": (
        lambda: gc.momo_adam(0.05, 0.8, 0.99, 1e-4, 25.0, 0.1, True),
        lambda: np_momo_adam(0.05, 0.8, 0.99, 1e-4, 25.0, 0.1, True),
    ),
}


@pytest.mark.parametrize("key", TRANSCRIPTIONS)
def test_momo_matches_float64_transcription(key):
    make, make_ref = TRANSCRIPTIONS[key]
    with jax.enable_x64(True):
        params = _params(dtype=jnp.float64)
        updates, _ = _run(make(), params, gc.apply_updates, jit=True)
        x, ref = [np.asarray(v) for v in jax.tree.leaves(params)], make_ref()
        for t in range(N_STEPS):
            tree = jax.tree.unflatten(jax.tree.structure(params), [jnp.asarray(v) for v in x])
            f, g = jax.value_and_grad(loss)(tree)
            u = ref([np.asarray(v) for v in jax.tree.leaves(g)], x, float(f))
            for a, b in zip(jax.tree.leaves(updates[t]), u):
                assert a.dtype == np.float64
                np.testing.assert_allclose(np.asarray(a), b, rtol=1e-9, atol=1e-14, err_msg=f"step {t}")
            x = [xi + ui for xi, ui in zip(x, u)]


def test_split_real_and_imaginary_matches_float64_transcription():
    """Adam on the real and imaginary parts as separate real coordinates."""
    with jax.enable_x64(True):
        params, grads = _complex_problem(jnp.complex128)
        updates, _, _ = helpers.run_steps(gc.split_real_and_imaginary(gc.scale_by_adam()), params, grads)
    for i in range(len(jax.tree.leaves(params))):
        m = v = 0.0
        for t, g in enumerate(grads, start=1):
            g = np.asarray(jax.tree.leaves(g)[i])
            pair = np.stack([g.real, g.imag])
            m = 0.9 * m + 0.1 * pair
            v = 0.999 * v + 0.001 * pair**2
            u = (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
            got = np.asarray(jax.tree.leaves(updates[t - 1])[i])
            assert got.dtype == np.complex128
            np.testing.assert_allclose(got, u[0] + 1j * u[1], rtol=1e-10, err_msg=f"leaf {i} step {t}")


# ----------------------------------------------------------------------- edge cases
def test_optax_complex_loss_equals_its_real_pair_loss():
    """Optax's test: a complex-to-real loss on z and the same loss on (x, y) take the same
    steps (the gradients conjugated), for Adam and a param-block norm."""
    complex_loss = lambda z: (z.conj() * z).real.sum()
    pair_loss = lambda p: complex_loss(jax.lax.complex(*p))
    for make in (gc.scale_by_adam, gc.scale_by_param_block_norm):
        x = jnp.array([[0.1, 0.2, 0.3], [-0.1, -0.2, -0.3]])
        y = jnp.array([[0.5, -0.5, 0.0], [0.1, 0.3, -0.2]])
        z = jax.lax.complex(x, y)
        tx, txc = make(), gc.split_real_and_imaginary(make())
        s, sc = tx.init((x, y)), txc.init(z)
        for _ in range(3):
            gx, gy = jax.grad(pair_loss)((x, y))
            gz = jnp.conj(jax.grad(complex_loss)(z))
            np.testing.assert_allclose(jax.lax.complex(gx, gy), gz, rtol=1e-6)
            (ux, uy), s = tx.update((gx, gy), s, (x, y))
            uz, sc = txc.update(gz, sc, z)
            x, y, z = x + ux, y + uy, z + uz
            np.testing.assert_allclose(jax.lax.complex(x, y), z, rtol=1e-6)


def test_momo_zero_gradient_takes_only_the_weight_decay_step():
    params = {"x": jnp.array([1.0, -2.0])}
    tx = gc.momo(0.5, weight_decay=0.2)
    u, state = tx.update({"x": jnp.zeros(2)}, tx.init(params), params, value=jnp.asarray(3.0))
    np.testing.assert_allclose(u["x"], -0.1 / 1.1 * np.array([1.0, -2.0]), rtol=1e-6)
    assert float(state.barf) == 3.0  # the first value, not (1 - beta) of it
    tx = gc.momo_adam(0.5)
    u, _ = tx.update({"x": jnp.zeros(2)}, tx.init(params), params, value=jnp.asarray(3.0))
    np.testing.assert_array_equal(u["x"], np.zeros(2))


def test_momo_step_is_capped_by_the_learning_rate_and_lower_bound_adapts():
    x = jnp.array([1.0, 2.0, 3.0])
    f = lambda x: jnp.sum(x**2)
    tx = gc.momo(0.01)
    v, g = jax.value_and_grad(f)(x)
    u, _ = tx.update(g, tx.init(x), x, value=v)
    np.testing.assert_allclose(u, -0.01 * g, rtol=1e-6)  # the Polyak step 0.25 is capped
    tx = gc.momo(1.0, lower_bound=-100.0, adapt_lower_bound=True)
    _, state = tx.update(g, tx.init(x), x, value=v)
    assert -100.0 < float(state.lb) < float(v)


def test_momo_state_dtypes():
    params = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(2)}
    for tx in (gc.momo(), gc.momo_adam()):
        state = tx.init(params)
        assert state.barf.dtype == state.gamma.dtype == state.lb.dtype == jnp.float32
        assert state.exp_avg["a"].dtype == jnp.bfloat16
    with jax.enable_x64(True):
        state = gc.momo().init({"a": jnp.ones(3, jnp.float64)})
        assert state.barf.dtype == jnp.float64


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: gc.momo(-1.0), ValueError, "momo: `learning_rate`"),
        (lambda: gc.momo(beta=1.0), ValueError, "momo: `beta`"),
        (lambda: gc.momo(lower_bound="0"), TypeError, "momo: `lower_bound`"),
        (lambda: gc.momo(weight_decay=-0.1), ValueError, "momo: `weight_decay`"),
        (lambda: gc.momo(adapt_lower_bound=1), TypeError, "momo: `adapt_lower_bound`"),
        (lambda: gc.momo_adam(b1=1.0), ValueError, "momo_adam: `b1`"),
        (lambda: gc.momo_adam(b2=-0.5), ValueError, "momo_adam: `b2`"),
        (lambda: gc.momo_adam(eps=-1.0), ValueError, "momo_adam: `eps`"),
        (lambda: gc.split_real_and_imaginary(gc.adam), TypeError, "split_real_and_imaginary: `inner`"),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("name", ["momo", "momo_adam"])
def test_update_needs_the_loss_value_and_params(name):
    params = _params()
    g = jax.tree.map(jnp.ones_like, params)
    tx = getattr(gc, name)()
    with pytest.raises(ValueError, match=f"{name}: `value` must be passed to update"):
        tx.update(g, tx.init(params), params)
    with pytest.raises(ValueError, match=f"{name}: `value` must be a real scalar"):
        tx.update(g, tx.init(params), params, value=jnp.ones(2))
    with pytest.raises(ValueError, match=f"{name}: this transformation needs the parameters"):
        tx.update(g, tx.init(params), None, value=1.0)
    with pytest.raises(ValueError, match=f"{name}: the update at leaf"):
        tx.update({**g, "b": jnp.ones(2)}, tx.init(params), params, value=1.0)
