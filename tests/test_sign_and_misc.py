"""Sign-based and learning-rate-light transformations and optimizers: signSGD, Signum, Lion's
modes, Rprop, SM3, gradient noise, Polyak steps, DoG, update-norm normalization, Fromage.

Each is checked against a float64 NumPy transcription of its docstring rule (one line per
formula line), against Optax 0.2.8 (eager and jitted), against Optax's own documented edge
cases, and where Optax 0.2.8 is wrong (Rprop's lagging updates, SM3 and DoG on scalar
parameters, Polyak SGD's ``scaling``, NaN from a zero update) against the right answer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12
SHAPES = {"w": (3, 4), "b": (5,), "k": (2, 3, 2), "s": ()}  # with a scalar leaf
OX_SHAPES = {"w": (3, 4), "b": (5,), "k": (2, 3, 2)}  # Optax 0.2.8 breaks on scalars (SM3, DoG)
SCHED = lambda c: 0.05 * 0.9 ** c.astype(jnp.float32)


def _run(tx, params, grads, *, values=None, jit=False):
    """Steps of ``tx`` (``value=values[t]`` when given); returns updates, params and states per step."""

    def step(p, s, g, v):
        kw = {} if v is None else {"value": v}
        u, s = tx.update(g, s, p, **kw)
        return u, jax.tree.map(lambda a, b: (a + b).astype(a.dtype), p, u), s

    step = jax.jit(step) if jit else step
    state, out = tx.init(params), ([], [], [])
    for t, g in enumerate(grads):
        u, params, state = step(params, state, g, None if values is None else values[t])
        for lst, x in zip(out, (u, params, state)):
            lst.append(x)
    return out


def _run_optax(otx, params, grads, **kw):
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return _run(otx, params, grads, **kw)


def _problem(shapes, dtype=jnp.float32, seed=0):
    params = helpers.random_tree(seed, shapes, dtype=dtype)
    grads = helpers.grad_sequence(seed + 1, params, N_STEPS)
    values = [jnp.asarray(v, dtype) for v in np.random.default_rng(seed + 2).uniform(0.5, 3.0, N_STEPS)]
    return params, grads, values


# ----------------------------------------------------------- float64 NumPy transcriptions
def leafwise(rule):
    """A reference acting on each leaf separately: ``rule(list of leaf grads, leaf p0)``."""

    def ref(gs, p0, values):
        del values
        per_leaf = {k: rule([g[k] for g in gs], p0[k]) for k in gs[0]}
        return [{k: per_leaf[k][t] for k in gs[0]} for t in range(len(gs))]

    return ref


def np_sign(gs, p0):
    return [np.sign(g) for g in gs]


def np_lion(gs, p0, b1=0.9, b2=0.99, mode="hard", beta=1.0):
    m, out = 0.0 * gs[0], []
    for g in gs:
        c = (1 - b1) * g + b1 * m
        u = {
            "hard": np.sign(c),
            "smooth": np.tanh(beta * c),
            "refined": np.where(np.abs(c) < 1, c, np.sign(c)),
        }
        m = b2 * m + (1 - b2) * g
        out.append(u[mode])
    return out


def np_rprop(gs, p0, lr=0.1, eta_minus=0.5, eta_plus=1.2, lo=1e-6, hi=50.0):
    step, u_prev, out = np.full_like(gs[0], lr), 0.0 * gs[0], []
    for g in gs:
        s = np.sign(g) * np.sign(u_prev)
        step = np.where(
            s == 0, step, np.where(s > 0, np.clip(step * eta_plus, lo, hi), np.clip(step * eta_minus, lo, hi))
        )
        u = np.where(s < 0, 0.0, step * np.sign(g))
        u_prev = u
        out.append(u)
    return out


def np_sm3(gs, p0, b1=0.9, b2=1.0, eps=1e-8):
    shape, k = gs[0].shape, gs[0].ndim
    acc = [np.zeros(shape)] if k < 2 else [np.zeros(n) for n in shape]
    m, out = 0.0 * gs[0], []
    c = 1.0 if b2 == 1 else 1 - b2
    for g in gs:
        nu = acc[0] if k < 2 else np.minimum.reduce(np.broadcast_arrays(*np.ix_(*acc)))
        v = c * g**2 + b2 * nu
        acc = [v] if k < 2 else [v.max(axis=tuple(j for j in range(k) if j != i)) for i in range(k)]
        w = np.where(v > 0, g / np.sqrt(v + eps), 0.0)
        m = b1 * m + (1 - b1) * w
        out.append(m)
    return out


def np_dog(gs, p0, reps_rel=1e-6, eps=1e-8, global_scale=1.0, lr=0.1):
    x0 = x = p0
    r, G, out = reps_rel * (1 + np.linalg.norm(x0)), 0.0, []
    for g in gs:
        r = max(r, np.linalg.norm(x - x0))
        G = G + np.sum(g**2)
        eta = global_scale * r / np.sqrt(G + eps)
        u = eta * g
        out.append(u)
        x = x - lr * u  # the chain's scale(-lr)
    return out


def np_polyak(gs, p0, values, f_min=0.0, max_lr=1.0, eps=0.0, variant="sps"):
    out = []
    for g, f in zip(gs, values):
        gap = f - f_min if variant == "sps" else max(f - f_min, 0.0)
        sq = sum(np.sum(x**2) for x in g.values())
        step = 0.0 if sq + eps <= np.finfo(np.float64).eps else min(gap / (sq + eps), max_lr)
        out.append({k: step * x for k, x in g.items()})
    return out


def np_normalize(gs, p0, values, scale_factor=1.0, eps=1e-6):
    out = []
    for g in gs:
        n = np.sqrt(sum(np.sum(x**2) for x in g.values()))
        out.append({k: scale_factor * x / (n + eps) for k, x in g.items()})
    return out


def np_fromage(gs, p0, lr=0.01, min_norm=1e-6):
    p, out, schedule = p0, [], lr if callable(lr) else (lambda t: lr)
    for t, g in enumerate(gs):
        lr = schedule(t)
        p_norm, g_norm = max(np.linalg.norm(p), min_norm), max(np.linalg.norm(g), min_norm)
        trust = g if p_norm == 0 or g_norm == 0 else p_norm / g_norm * g
        p_new = (p - lr * trust) / np.sqrt(1 + lr**2)
        out.append(p_new - p)
        p = p_new
    return out


def np_polyak_sgd(gs, p0, values, max_lr=1.0, scaling=1.0, f_min=0.0, eps=0.0):
    steps = np_polyak(gs, p0, values, f_min, max_lr, eps)
    return [{k: -scaling * x for k, x in u.items()} for u in steps]


def np_noise(gs, p0, values, eta=0.3, gamma=0.55, seed=7):
    key, out = jax.random.key(seed), []
    for t, g in enumerate(gs, start=1):
        key, k = jax.random.split(key)
        ks = jax.random.split(k, len(g))
        sigma = np.sqrt(eta / t**gamma)
        z = {
            name: np.asarray(jax.random.normal(kk, g[name].shape, jnp.float64))
            for name, kk in zip(sorted(g), ks)
        }
        out.append({name: g[name] + sigma * z[name] for name in g})
    return out


SCALE = lambda tx, lr=0.1: gc.chain(tx, gc.scale(-lr))
REFERENCE = [
    ("sign", gc.scale_by_sign, leafwise(np_sign)),
    ("lion_hard", lambda: gc.scale_by_lion(0.8, 0.9), leafwise(lambda g, p: np_lion(g, p, 0.8, 0.9))),
    (
        "lion_smooth",
        lambda: gc.scale_by_lion(mode="smooth", smooth_beta=3.0),
        leafwise(lambda g, p: np_lion(g, p, mode="smooth", beta=3.0)),
    ),
    (
        "lion_refined",
        lambda: gc.scale_by_lion(0.5, mode="refined"),
        leafwise(lambda g, p: np_lion(g, p, 0.5, mode="refined")),
    ),
    ("rprop", lambda: gc.scale_by_rprop(0.1), leafwise(np_rprop)),
    (
        "rprop_bounds",
        lambda: gc.scale_by_rprop(0.1, 0.3, 1.5, 0.05, 0.2),
        leafwise(lambda g, p: np_rprop(g, p, 0.1, 0.3, 1.5, 0.05, 0.2)),
    ),
    ("sm3", gc.scale_by_sm3, leafwise(np_sm3)),
    (
        "sm3_ema",
        lambda: gc.scale_by_sm3(0.5, 0.99, 1e-4),
        leafwise(lambda g, p: np_sm3(g, p, 0.5, 0.99, 1e-4)),
    ),
    ("noise", lambda: gc.add_noise(0.3, 0.55, 7), np_noise),
    ("polyak", gc.scale_by_polyak, np_polyak),
    (
        "polyak_sps_plus",
        lambda: gc.scale_by_polyak(1.5, 0.3, 1e-2, "sps+"),
        lambda g, p, v: np_polyak(g, p, v, 1.5, 0.3, 1e-2, "sps+"),
    ),
    ("normalize", gc.normalize_by_update_norm, np_normalize),
    (
        "normalize_scaled",
        lambda: gc.normalize_by_update_norm(-0.5, 0.1),
        lambda g, p, v: np_normalize(g, p, v, -0.5, 0.1),
    ),
    (
        "dog",
        lambda: SCALE(gc.scale_by_distance_over_gradients(1e-2, param_dtype=None)),
        leafwise(lambda g, p: [-0.1 * u for u in np_dog(g, p, reps_rel=1e-2)]),
    ),
    (
        "dog_scaled",
        lambda: SCALE(gc.scale_by_distance_over_gradients(1e-1, 1e-3, None, -0.5)),
        leafwise(lambda g, p: [-0.1 * u for u in np_dog(g, p, 1e-1, 1e-3, -0.5)]),
    ),
    ("fromage", lambda: gc.fromage(0.01), leafwise(np_fromage)),
    ("fromage_big_lr", lambda: gc.fromage(0.5, 1e-3), leafwise(lambda g, p: np_fromage(g, p, 0.5, 1e-3))),
    (
        "polyak_sgd",
        lambda: gc.polyak_sgd(2.0, 0.5, 0.25),
        lambda g, p, v: np_polyak_sgd(g, p, v, 2.0, 0.5, 0.25),
    ),
]


@pytest.mark.parametrize("make,ref", [r[1:] for r in REFERENCE], ids=[r[0] for r in REFERENCE])
def test_matches_float64_transcription(make, ref):
    with jax.enable_x64(True):
        params, grads, values = _problem(SHAPES, jnp.float64)
        updates, _, _ = _run(make(), params, grads, values=values)
        assert all(
            x.dtype == jnp.float64 and x.shape == p.shape
            for x, p in zip(updates[-1].values(), params.values())
        )
        np64 = lambda t: {k: np.asarray(v, np.float64) for k, v in t.items()}
        expected = ref([np64(g) for g in grads], np64(params), [float(v) for v in values])
    for t in range(N_STEPS):
        for k in params:
            np.testing.assert_allclose(
                updates[t][k], expected[t][k], rtol=1e-9, atol=1e-12, err_msg=f"{k} step {t}"
            )


# ----------------------------------------------------------- Optax 0.2.8
OPTAX = [
    (
        "scale_by_sign",
        lambda: SCALE(gc.scale_by_sign()),
        lambda ox: ox.chain(ox.scale_by_sign(), ox.scale(-0.1)),
    ),
    ("sign_sgd", lambda: gc.sign_sgd(0.01), lambda ox: ox.sign_sgd(0.01)),
    ("signum", lambda: gc.signum(0.01, 0.8), lambda ox: ox.signum(0.01, 0.8)),
    ("lion_hard", lambda: SCALE(gc.scale_by_lion()), lambda ox: ox.chain(ox.scale_by_lion(), ox.scale(-0.1))),
    (
        "lion_smooth",
        lambda: SCALE(gc.scale_by_lion(0.5, mode="smooth", smooth_beta=2.0)),
        lambda ox: ox.chain(ox.scale_by_lion(0.5, mode="smooth", smooth_beta=2.0), ox.scale(-0.1)),
    ),
    (
        "lion_refined",
        lambda: SCALE(gc.scale_by_lion(0.5, mode="refined")),
        lambda ox: ox.chain(ox.scale_by_lion(0.5, mode="refined"), ox.scale(-0.1)),
    ),
    ("sm3", lambda: gc.sm3(0.1), lambda ox: ox.sm3(0.1)),
    (
        "scale_by_sm3_ema",
        lambda: SCALE(gc.scale_by_sm3(0.5, 0.99, 1e-4)),
        lambda ox: ox.chain(ox.scale_by_sm3(0.5, 0.99, 1e-4), ox.scale(-0.1)),
    ),
    (
        "add_noise",
        lambda: SCALE(gc.add_noise(0.3, 0.55, 5)),
        lambda ox: ox.chain(ox.add_noise(0.3, 0.55, 5), ox.scale(-0.1)),
    ),
    (
        "noisy_sgd",
        lambda: gc.noisy_sgd(0.01, key=jax.random.key(3)),
        lambda ox: ox.noisy_sgd(0.01, key=jax.random.key(3)),
    ),
    (
        "scale_by_polyak",
        lambda: SCALE(gc.scale_by_polyak()),
        lambda ox: ox.chain(ox.scale_by_polyak(), ox.scale(-0.1)),
    ),
    (
        "scale_by_polyak_sps_plus",
        lambda: SCALE(gc.scale_by_polyak(1.5, 0.3, 1e-2, "sps+")),
        lambda ox: ox.chain(ox.scale_by_polyak(1.5, 0.3, 1e-2, "sps+"), ox.scale(-0.1)),
    ),
    ("polyak_sgd", lambda: gc.polyak_sgd(0.3, f_min=0.2), lambda ox: ox.polyak_sgd(0.3, f_min=0.2)),
    (
        "scale_by_distance_over_gradients",
        lambda: SCALE(gc.scale_by_distance_over_gradients(1e-2)),
        lambda ox: ox.chain(ox.scale_by_distance_over_gradients(1e-2), ox.scale(-0.1)),
    ),
    (
        "scale_by_distance_over_gradients_scaled",
        lambda: SCALE(gc.scale_by_distance_over_gradients(1e-1, 1e-3, jnp.float32, -0.5)),
        lambda ox: ox.chain(
            ox.scale_by_distance_over_gradients(1e-1, 1e-3, jnp.float32, -0.5), ox.scale(-0.1)
        ),
    ),
    (
        "normalize_by_update_norm",
        lambda: gc.normalize_by_update_norm(-0.1, 1e-3),
        lambda ox: ox.normalize_by_update_norm(-0.1, 1e-3),
    ),
    ("fromage", lambda: gc.fromage(0.05), lambda ox: ox.fromage(0.05)),
]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name,make,make_ox", OPTAX, ids=[r[0] for r in OPTAX])
def test_matches_optax(name, make, make_ox, jit):
    optax = pytest.importorskip("optax")
    params, grads, values = _problem(OX_SHAPES)
    values = values if "polyak" in name else None  # Optax's other transformations take no `value`
    u, p, _ = _run(make(), params, grads, values=values, jit=jit)
    uo, po, _ = _run_optax(make_ox(optax), params, grads, values=values, jit=jit)
    worst_u = max(helpers.max_rel_diff(a, b) for a, b in zip(u, uo))
    worst_p = max(helpers.max_rel_diff(a, b) for a, b in zip(p, po))
    assert worst_u <= 2e-5 and worst_p <= 2e-5, f"updates {worst_u:.3g}, params {worst_p:.3g}"


def test_rprop_state_matches_optax_and_updates_do_not_lag():
    """Optax 0.2.8 returns ``where(s_t < 0, 0, u_{t-1})``: the previous step's update (0 on the
    first step). Its state holds the right ``lr_t`` and ``u_t``; gradchain returns ``u_t``."""
    optax = pytest.importorskip("optax")
    params, grads, _ = _problem(OX_SHAPES)
    for jit in (False, True):
        u, _, s = _run(gc.scale_by_rprop(0.1, 0.4, 1.3), params, grads, jit=jit)
        uo, _, so = _run_optax(optax.scale_by_rprop(0.1, 0.4, 1.3), params, grads, jit=jit)
        for t in range(N_STEPS):
            helpers.assert_trees_close(s[t].step_sizes, so[t].step_sizes, rtol=1e-6)
            helpers.assert_trees_close(s[t].prev_updates, so[t].prev_updates, rtol=1e-6)
            helpers.assert_trees_close(u[t], so[t].prev_updates, rtol=1e-6)
            stale = u[t - 1] if t else jax.tree.map(jnp.zeros_like, u[0])
            flipped = jax.tree.map(lambda g, v: jnp.sign(g) * jnp.sign(v) < 0, grads[t], stale)
            helpers.assert_trees_close(uo[t], jax.tree.map(lambda f, v: jnp.where(f, 0.0, v), flipped, stale))
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(uo[0]))  # Optax's first step


def test_rprop_matches_torch():
    torch = pytest.importorskip("torch")
    params, grads, _ = _problem({"w": (3, 4)})
    _, p, _ = _run(gc.rprop(0.05, 0.4, 1.3, 1e-3, 0.2), params, grads)
    w = torch.tensor(np.asarray(params["w"]), requires_grad=True)
    opt = torch.optim.Rprop([w], lr=0.05, etas=(0.4, 1.3), step_sizes=(1e-3, 0.2))
    for t, g in enumerate(grads):
        w.grad = torch.tensor(np.asarray(g["w"]))
        opt.step()
        np.testing.assert_allclose(p[t]["w"], w.detach().numpy(), rtol=1e-6, atol=1e-7, err_msg=f"step {t}")


def test_polyak_sgd_scaling_follows_the_documented_formula_not_optax():
    """Optax 0.2.8 scales before the Polyak step, so its norm sees ``scaling * g``."""
    optax = pytest.importorskip("optax")
    g, x = jnp.array([1.0, 1.0, 1.0]), jnp.zeros(3)  # |g|**2 = 3, gap = 3: Polyak step 1
    tx = gc.polyak_sgd(max_learning_rate=10.0, scaling=0.5)
    np.testing.assert_allclose(tx.update(g, tx.init(x), x, value=jnp.array(3.0))[0], -0.5 * g)
    ox = optax.polyak_sgd(max_learning_rate=10.0, scaling=0.5)
    with jax.numpy_dtype_promotion("standard"):
        np.testing.assert_allclose(ox.update(g, ox.init(x), x, value=jnp.array(3.0))[0], -2.0 * g)


def test_fromage_schedule_keeps_float32_precision_where_optax_cancels():
    """With a schedule, Optax 0.2.8 computes ``1 / sqrt(1 + lr**2) - 1`` in float32, which cancels
    (relative error ~1e-3 of the decay term for lr = 0.05); gradchain computes it as
    ``-lr**2 / (s * (1 + s))``, ``s = sqrt(1 + lr**2)``. The parameters agree either way."""
    optax = pytest.importorskip("optax")
    params, grads, _ = _problem(OX_SHAPES)
    lr = lambda t: 0.05 * 0.9**t
    u, p, _ = _run(gc.fromage(SCHED, 1e-3), params, grads, jit=True)
    uo, po, _ = _run_optax(optax.fromage(SCHED, 1e-3), params, grads, jit=True)
    np64 = lambda t: {k: np.asarray(v, np.float64) for k, v in t.items()}
    per_leaf = {k: np_fromage([np64(g)[k] for g in grads], np64(params)[k], lr, 1e-3) for k in params}
    expected = [{k: per_leaf[k][t] for k in params} for t in range(N_STEPS)]
    assert max(helpers.max_rel_diff(a, b) for a, b in zip(u, expected)) <= 2e-6
    assert max(helpers.max_rel_diff(a, b) for a, b in zip(uo, expected)) >= 1e-4  # Optax 0.2.8
    assert max(helpers.max_rel_diff(a, b) for a, b in zip(p, po)) <= 2e-5


def test_sm3_and_dog_handle_scalar_parameters():
    """Optax 0.2.8: SM3 raises IndexError on a scalar leaf, DoG turns its update into shape (1,).
    A scalar parameter behaves as a one-element vector here."""
    optax = pytest.importorskip("optax")
    scalar = {"s": jnp.asarray(1.5)}
    vector = {"s": jnp.asarray([1.5])}
    grads = [{"s": jnp.asarray(v)} for v in (0.5, -1.0, 2.0)]
    for make in (gc.scale_by_sm3, lambda: gc.scale_by_distance_over_gradients(1e-2)):
        u_s, _, _ = _run(make(), scalar, grads)
        u_v, _, _ = _run(make(), vector, [{"s": g["s"][None]} for g in grads])
        for a, b in zip(u_s, u_v):
            assert a["s"].shape == ()
            np.testing.assert_allclose(a["s"], b["s"][0], rtol=1e-6)
    with pytest.raises(IndexError):
        _run_optax(optax.scale_by_sm3(), scalar, grads)
    u_ox, _, _ = _run_optax(optax.scale_by_distance_over_gradients(1e-2), scalar, grads)
    assert u_ox[0]["s"].shape == (1,)


def test_normalize_by_update_norm_of_zero_is_zero_not_nan():
    optax = pytest.importorskip("optax")
    tx = gc.normalize_by_update_norm(1.0, eps=0.0)
    np.testing.assert_array_equal(tx.update(jnp.zeros(2), tx.init(None))[0], [0.0, 0.0])
    ox = optax.normalize_by_update_norm(1.0, eps=0.0)
    assert bool(jnp.isnan(ox.update(jnp.zeros(2), ox.init(None))[0]).all())  # Optax 0.2.8


# ----------------------------------------------------------- Optax's documented edge cases
def test_lion_modes_as_in_optax_test():
    g = jnp.array([0.2, -2.0, 0.5, -0.8])
    for mode, f in [
        ("hard", jnp.sign),
        ("smooth", lambda x: jnp.tanh(2.0 * x)),
        ("refined", lambda x: jnp.where(jnp.abs(x) < 1, x, jnp.sign(x))),
    ]:
        tx = gc.scale_by_lion(b1=0.5, b2=0.9, mode=mode, smooth_beta=2.0)
        np.testing.assert_allclose(tx.update(g, tx.init(g))[0], f(0.5 * g), rtol=1e-6)


def test_polyak_converges_in_one_step_on_l1_and_needs_value():
    f = lambda x: jnp.abs(x).sum()
    x = jnp.array([1.0, -1.0])
    tx = gc.scale_by_polyak()
    with pytest.raises(TypeError, match=r"scale_by_polyak: `value` must be the loss"):
        tx.update(x, tx.init(x), x)
    value, g = jax.value_and_grad(f)(x)
    assert float(f(x - tx.update(g, tx.init(x), x, value=value)[0])) < 1e-10


def test_polyak_zero_gradient_gives_zero_step():
    tx = gc.scale_by_polyak(variant="sps+")
    u, _ = tx.update(jnp.zeros(3), tx.init(None), value=jnp.array(5.0))
    np.testing.assert_array_equal(u, jnp.zeros(3))


def test_docstring_trajectories_of_optax():
    """Optax's docstring examples: polyak_sgd and normalize_by_update_norm on sum(x**2)."""
    f = lambda x: jnp.sum(x**2)
    for tx, expected in [
        (gc.polyak_sgd(), [3.5, 0.875, 0.21875, 0.0546875, 0.013671875]),
        (gc.normalize_by_update_norm(scale_factor=-1.0), [7.52, 3.03, 0.550, 0.0667, 0.550]),
    ]:
        x = jnp.array([1.0, 2.0, 3.0])
        state = tx.init(x)
        for e in expected:
            value, g = jax.value_and_grad(f)(x)
            u, state = tx.update(g, state, x, value=value)
            x = gc.apply_updates(x, u)
            np.testing.assert_allclose(float(f(x)), e, rtol=3e-3)


def test_add_noise_variance_scaling_as_in_optax_test():
    eta, gamma = 0.3, 0.55
    params = {"a": jnp.zeros((3, 2)), "b": jnp.zeros(4)}
    noise, unit = gc.add_noise(eta, gamma, 314), gc.add_noise(1.0, 0.0, 314)
    s, s_unit = noise.init(params), unit.init(params)
    for i in range(1, 6):
        u, s = jax.jit(noise.update)(params, s)
        u_unit, s_unit = unit.update(params, s_unit)
        helpers.assert_trees_close(u, jax.tree.map(lambda x: x * np.sqrt(eta / i**gamma), u_unit), rtol=1e-5)


def test_add_noise_key_forms_agree_and_other_impls_match_optax():
    optax = pytest.importorskip("optax")
    g = {"a": jnp.zeros((2, 2)), "b": jnp.zeros(3)}
    noise = lambda key: _run(gc.add_noise(0.5, 0.5, key), g, [g] * 3)[0]
    by_seed = noise(4)
    helpers.assert_trees_close(noise(jax.random.key(4)), by_seed, rtol=0)
    helpers.assert_trees_close(noise(jax.random.PRNGKey(4)), by_seed, rtol=0)
    rbg = jax.random.key(4, impl="rbg")
    state = gc.add_noise(0.5, 0.5, rbg).init(g)
    assert state.rng_key.dtype == jnp.uint32 and state.rng_key.shape == (4,)
    expected = _run_optax(optax.add_noise(0.5, 0.5, rbg), g, [g] * 3)[0]
    for a, b in zip(noise(rbg), expected):
        helpers.assert_trees_close(a, b, rtol=0)


def test_add_noise_built_inside_vmap_over_keys():
    keys = jax.random.split(jax.random.key(0), 3)

    def first_update(k):
        tx = gc.add_noise(0.1, 0.5, k)
        return tx.update(jnp.zeros(4), tx.init(jnp.zeros(4)))[0]

    helpers.assert_trees_close(
        jax.vmap(first_update)(keys), jnp.stack([first_update(k) for k in keys]), rtol=0
    )


def test_sm3_state_is_one_vector_per_axis():
    tx = gc.scale_by_sm3()
    state = tx.init({"k": jnp.zeros((2, 3, 4), jnp.bfloat16), "b": jnp.zeros(5, jnp.float16)})
    assert [a.shape for a in state.mu["k"]] == [(2,), (3,), (4,)]
    assert state.mu["k"][0].dtype == jnp.bfloat16 and state.nu["k"].dtype == jnp.bfloat16
    assert state.mu["b"][0].shape == (5,) and state.mu["b"][0].dtype == jnp.float32  # squares of float16


def test_sign_sgd_moves_every_coordinate_by_the_learning_rate():
    tx = gc.sign_sgd(0.01)
    g = jnp.array([1e-30, -3e5, 0.0, 2.0])
    np.testing.assert_array_equal(tx.update(g, tx.init(g))[0], np.float32([-0.01, 0.01, 0.0, -0.01]))


# ----------------------------------------------------------- errors
ERRORS = [
    (
        lambda: gc.scale_by_lion(mode="soft"),
        ValueError,
        r"scale_by_lion: `mode` must be one of 'hard', 'smooth'",
    ),
    (
        lambda: gc.scale_by_lion(smooth_beta=0.0),
        ValueError,
        r"scale_by_lion: `smooth_beta` must be > 0, got 0.0",
    ),
    (lambda: gc.scale_by_rprop(0.0), ValueError, r"scale_by_rprop: `learning_rate` must be > 0, got 0.0"),
    (
        lambda: gc.scale_by_rprop(SCHED),
        TypeError,
        r"scale_by_rprop: `learning_rate` must be a number \(the initial",
    ),
    (
        lambda: gc.scale_by_rprop(0.1, eta_minus=1.5),
        ValueError,
        r"scale_by_rprop: `eta_minus` must be > 0 and <= 1",
    ),
    (
        lambda: gc.scale_by_rprop(0.1, eta_plus=0.9),
        ValueError,
        r"scale_by_rprop: `eta_plus` must be >= 1, got 0.9",
    ),
    (
        lambda: gc.scale_by_rprop(0.1, min_step_size=1.0, max_step_size=0.5),
        ValueError,
        r"scale_by_rprop: `max_step_size` must be >= min_step_size \(1\), got 0.5",
    ),
    (
        lambda: gc.scale_by_rprop(0.1).init({"z": jnp.zeros(2, jnp.complex64)}),
        TypeError,
        r"scale_by_rprop: `params` must be real .* at leaf \['z'\]",
    ),
    (lambda: gc.scale_by_sm3(b1=1.0), ValueError, r"scale_by_sm3: `b1` must be >= 0 and < 1, got 1.0"),
    (lambda: gc.scale_by_sm3(b2=1.5), ValueError, r"scale_by_sm3: `b2` must be >= 0 and <= 1, got 1.5"),
    (lambda: gc.scale_by_sm3(eps=-1.0), ValueError, r"scale_by_sm3: `eps` must be >= 0, got -1.0"),
    (lambda: gc.add_noise(-0.1, 0.5, 0), ValueError, r"add_noise: `eta` must be >= 0, got -0.1"),
    (lambda: gc.add_noise(0.1, -1.0, 0), ValueError, r"add_noise: `gamma` must be >= 0, got -1.0"),
    (lambda: gc.add_noise(0.1, 0.5), TypeError, r"add_noise: `key` must be a PRNG key .* got None"),
    (lambda: gc.add_noise(0.1, 0.5, "k"), TypeError, r"add_noise: `key` must be a PRNG key .* got 'k'"),
    (lambda: gc.add_noise(0.1, 0.5, True), TypeError, r"add_noise: `key` must be a PRNG key .* got True"),
    (
        lambda: gc.add_noise(0.1, 0.5, jax.random.split(jax.random.key(0))),
        ValueError,
        r"add_noise: `key` must be a single PRNG key, got a key array of shape \(2,\)",
    ),
    (
        lambda: gc.scale_by_polyak(variant="sps-"),
        ValueError,
        r"scale_by_polyak: `variant` must be 'sps' or 'sps\+'",
    ),
    (
        lambda: gc.scale_by_polyak(max_learning_rate=-1.0),
        ValueError,
        r"scale_by_polyak: `max_learning_rate` must be >= 0",
    ),
    (lambda: gc.scale_by_polyak(eps=-1e-3), ValueError, r"scale_by_polyak: `eps` must be >= 0"),
    (lambda: gc.scale_by_polyak(f_min="0"), TypeError, r"scale_by_polyak: `f_min` must be a number"),
    (
        lambda: gc.scale_by_polyak().update(jnp.ones(2), gc.EmptyState(), value=jnp.ones(2)),
        ValueError,
        r"scale_by_polyak: `value` must be a scalar, got an array of shape \(2,\)",
    ),
    (
        lambda: gc.scale_by_polyak().update(jnp.ones(2), gc.EmptyState(), value=jnp.array(1 + 1j)),
        TypeError,
        r"scale_by_polyak: `value` must be a real number, got dtype complex64",
    ),
    (
        lambda: gc.normalize_by_update_norm(eps=-1.0),
        ValueError,
        r"normalize_by_update_norm: `eps` must be >= 0",
    ),
    (
        lambda: gc.normalize_by_update_norm("1"),
        TypeError,
        r"normalize_by_update_norm: `scale_factor` must be a number",
    ),
    (
        lambda: gc.scale_by_distance_over_gradients(0.0),
        ValueError,
        r"scale_by_distance_over_gradients: `reps_rel` must be > 0, got 0.0",
    ),
    (
        lambda: gc.scale_by_distance_over_gradients(param_dtype=jnp.int32),
        TypeError,
        r"scale_by_distance_over_gradients: `param_dtype` must be a floating dtype",
    ),
    (
        lambda: gc.scale_by_distance_over_gradients().update(jnp.ones(2), None, None),
        ValueError,
        r"scale_by_distance_over_gradients: this transformation needs the parameters",
    ),
    (lambda: gc.sign_sgd(-1.0), ValueError, r"sign_sgd: `learning_rate` must be >= 0, got -1.0"),
    (lambda: gc.signum(0.1, beta=1.0), ValueError, r"signum: `beta` must be >= 0 and < 1, got 1.0"),
    (lambda: gc.rprop(0.1, eta_plus=0.5), ValueError, r"rprop: scale_by_rprop: `eta_plus` must be >= 1"),
    (lambda: gc.fromage(-0.1), ValueError, r"fromage: `learning_rate` must be >= 0, got -0.1"),
    (
        lambda: gc.fromage(0.1, min_norm=-1.0),
        ValueError,
        r"fromage: scale_by_trust_ratio: `min_norm` must be >= 0",
    ),
    (lambda: gc.noisy_sgd(0.1), TypeError, r"noisy_sgd: add_noise: `key` must be a PRNG key"),
    (lambda: gc.noisy_sgd(0.1, eta=-1.0, key=0), ValueError, r"noisy_sgd: add_noise: `eta` must be >= 0"),
    (lambda: gc.polyak_sgd(variant="x"), ValueError, r"polyak_sgd: scale_by_polyak: `variant` must be"),
    (lambda: gc.polyak_sgd(scaling=-1.0), ValueError, r"polyak_sgd: `scaling` must be >= 0, got -1.0"),
    (lambda: gc.sm3(0.1, momentum=1.0), ValueError, r"sm3: `momentum` must be >= 0 and < 1"),
    (lambda: gc.sm3(-0.1), ValueError, r"sm3: `learning_rate` must be >= 0"),
]


@pytest.mark.parametrize("make,exc,match", ERRORS)
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: gc.scale_by_rprop(0.1),
        gc.scale_by_sm3,
        lambda: gc.scale_by_lion(mode="smooth"),
        gc.scale_by_distance_over_gradients,
    ],
    ids=["rprop", "sm3", "lion", "dog"],
)
def test_tree_mismatch_is_reported(make):
    tx = make()
    state = tx.init({"a": jnp.zeros(2)})
    with pytest.raises(ValueError, match=r"the `updates` tree does not match"):
        tx.update({"b": jnp.zeros(2)}, state, {"b": jnp.zeros(2)})
