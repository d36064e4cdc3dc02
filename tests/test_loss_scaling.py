"""Dynamic loss scaling: dynamic_loss_scaling, scale_loss, loss_scale.

- the scale / counter / skip logic against a float64 transcription of the docstring;
- skipping leaves the inner optimizer untouched; finite steps equal the inner
  optimizer on the unscaled gradients (Optax's apply_if_finite as the oracle);
- the scale sequence and trajectory of torch's GradScaler, and Flax's DynamicScale
  (which grows one step later);
- the float16 story: without loss scaling, small float16 gradients flush to zero;
  with it, a float16 run with injected overflows skips them, recovers and tracks
  the float32 run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from gradchain import DynamicLossScaleState, dynamic_loss_scaling, loss_scale, scale_loss
from tests import helpers

N_STEPS = 30
BAD = [2, 6, 7, 8, 9, 10, 14, 22]  # overflow steps of the scripted sequences
CONFIGS = {
    # clamped at both ends: growth 40 -> 80 is capped to 48, backoff 3 -> 1.5 is floored to 2
    "clamped": {
        "initial_scale": 40.0,
        "growth_interval": 2,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "min_scale": 2.0,
        "max_scale": 48.0,
    },
    "odd-factors": {
        "initial_scale": 3.0,
        "growth_interval": 2,
        "growth_factor": 3.0,
        "backoff_factor": 0.25,
        "min_scale": 0.5,
        "max_scale": 100.0,
    },
}


def _decaying():
    """An inner transformation whose count shows how many steps it applied."""
    return gc.scale_by_schedule(lambda c: 1.0 / (1.0 + c.astype(jnp.float32)))


def _scripted_grads(seed, bad=BAD, n=N_STEPS):
    grads = helpers.grad_sequence(seed, helpers.random_tree(0), n, scale=10.0)
    for t in bad:
        grads[t] = dict(grads[t], b=grads[t]["b"].at[1].set(jnp.nan if t % 2 else jnp.inf))
    return grads


def _numpy_dynamic_loss_scaling(
    grads, *, initial_scale, growth_interval, growth_factor, backoff_factor, min_scale, max_scale
):
    """The docstring's rule in float64, inner = _decaying() (c = its count); one record per step."""
    S, n, c, total, out = initial_scale, 0, 0, 0, []
    for g in map(helpers.to_numpy64, grads):
        h = jax.tree.map(
            lambda x, S=S: (x / S).astype(np.float32).astype(np.float64), g
        )  # h_t = g_t / S_{t-1}
        finite = all(np.all(np.isfinite(x)) for x in jax.tree.leaves(h))  # finite_t
        if finite:
            u = jax.tree.map(lambda x, c=c: x / (1.0 + c), h)  # u_t, s_t = inner(h_t, s_{t-1})
            c += 1
            n = n + 1  # n_t = n_{t-1} + 1
            S, n = (min(growth_factor * S, max_scale), 0) if n >= growth_interval else (S, n)
        else:
            u = jax.tree.map(np.zeros_like, h)  # u_t, s_t = 0, s_{t-1}
            S, n = max(backoff_factor * S, min_scale), 0
            total += 1
        out.append(
            {"u": u, "scale": S, "good_steps": n, "last_finite": finite, "total_notfinite": total, "count": c}
        )
    return out


def _run(tx, grads, *, jit, params=None):
    """Per-step (updates, state) of ``tx`` fed ``grads``."""
    params = helpers.random_tree(0) if params is None else params
    update = jax.jit(tx.update) if jit else tx.update
    state, out = tx.init(params), []
    for g in grads:
        u, state = update(g, state, params)
        out.append((u, state))
    return out


# ---------------------------------------------------------------- the rule, step by step
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_matches_numpy_transcription(config, jit):
    hp = CONFIGS[config]
    grads = _scripted_grads(1)
    got = _run(dynamic_loss_scaling(_decaying(), **hp), grads, jit=jit)
    ref = _numpy_dynamic_loss_scaling(grads, **hp)
    for t, ((u, s), r) in enumerate(zip(got, ref)):
        helpers.assert_trees_close(u, r["u"], rtol=2e-6, msg=f"step {t}")
        np.testing.assert_allclose(float(s.scale), r["scale"], rtol=1e-6, err_msg=f"step {t}")
        assert (int(s.good_steps), bool(s.last_finite), int(s.total_notfinite), int(s.inner_state.count)) == (
            r["good_steps"],
            r["last_finite"],
            r["total_notfinite"],
            r["count"],
        ), f"step {t}"
        assert s.scale.dtype == jnp.float32 and s.good_steps.dtype == jnp.int32
    scales = [r["scale"] for r in ref]
    assert len(set(scales)) >= 5  # the scale moved both ways
    if config == "clamped":  # the sequence really hit the cap and the floor
        assert hp["max_scale"] in scales and hp["min_scale"] in scales


def test_grows_after_exactly_growth_interval_finite_steps_and_overflow_resets_the_count():
    tx = dynamic_loss_scaling(gc.identity(), 8.0, growth_interval=5)
    g_ok, g_bad = jnp.ones(2), jnp.array([1.0, jnp.inf])
    pattern = [g_ok] * 4 + [g_bad] + [g_ok] * 4 + [g_ok] + [g_ok] * 5
    scales, goods = [], []
    state = tx.init(jnp.zeros(2))
    for g in pattern:
        _, state = tx.update(g, state)
        scales.append(float(state.scale))
        goods.append(int(state.good_steps))
    # 4 finite (no growth), overflow halves and resets, 5 finite -> x2, 5 more -> x2
    assert scales == [8.0] * 4 + [4.0] * 5 + [8.0] * 5 + [16.0]
    assert goods == [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0]


def test_unscaling_that_overflows_the_gradient_dtype_is_a_skip():
    """float16 gradients of 4e4 at a scale of 0.5 unscale to 8e4 > 65504: not finite, skipped."""
    tx = dynamic_loss_scaling(gc.identity(), 0.5, min_scale=0.25)
    g = jnp.array([4e4, 1.0], jnp.float16)
    u, state = tx.update(g, tx.init(g))
    assert u.dtype == jnp.float16 and not bool(state.last_finite) and float(state.scale) == 0.25
    u, state = tx.update(g, state)
    assert not bool(state.last_finite)  # 4e4 / 0.25 overflows too; the scale stays at the floor
    assert float(state.scale) == 0.25 and int(state.total_notfinite) == 2


# ---------------------------------------------------------------- skip semantics
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_skip_keeps_params_and_inner_state_and_finite_steps_equal_inner(jit):
    params = helpers.random_tree(0)
    grads = _scripted_grads(2, bad=[3, 4, 9])
    tx = dynamic_loss_scaling(gc.adam(0.01), 256.0, growth_interval=2)
    inner = gc.adam(0.01)
    update = jax.jit(tx.update) if jit else tx.update
    inner_update = jax.jit(inner.update) if jit else inner.update
    state, inner_state, p = tx.init(params), inner.init(params), params
    for t, g in enumerate(grads):
        S = loss_scale(state)
        scaled = jax.tree.map(lambda x, S=S: x * S, g)  # what jax.grad of scale_loss(loss) gives
        u, new_state = update(scaled, state, p)
        if t in (3, 4, 9):
            assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u)), t
            helpers.assert_trees_close(gc.apply_updates(p, u), p, rtol=0, msg=f"params at {t}")
            helpers.assert_trees_close(new_state.inner_state, state.inner_state, rtol=0, msg=f"adam at {t}")
        else:
            ref_u, inner_state = inner_update(g, inner_state, p)  # Adam on the unscaled gradients
            # eager: bit-identical (the power-of-two scale unscales exactly); under jit the
            # wrapped Adam sits in a lax.cond and fuses differently (1-ulp differences)
            tol = {"rtol": 1e-6, "atol": 1e-7} if jit else {"rtol": 0}
            helpers.assert_trees_close(u, ref_u, **tol, msg=f"updates at {t}")
            helpers.assert_trees_close(new_state.inner_state, inner_state, **tol, msg=f"adam at {t}")
        state, p = new_state, gc.apply_updates(p, u)
    assert int(state.inner_state[0].count) == N_STEPS - 3 and int(state.total_notfinite) == 3


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_matches_optax_on_the_unscaled_gradients(jit):
    """Optax has no loss scaling; the skip semantics are those of its apply_if_finite.

    jit: against jitted ``optax.apply_if_finite(optax.adam, huge)`` on all steps.
    eager: against eager ``optax.adam`` on the finite steps alone (Optax's eager
    apply_if_finite compiles a lax.cond per call, 30 s for 30 steps; and compiled-vs-
    op-by-op rounding reaches 2.5e-5 relative on an Adam update that cancels to 5e-6).
    Powers-of-two scales unscale exactly: eagerly, the wrapped Adam is bit-identical to
    ``gc.adam`` on the finite steps.
    """
    optax = pytest.importorskip("optax")
    params = helpers.random_tree(0)
    grads = _scripted_grads(3)
    finite = [g for t, g in enumerate(grads) if t not in BAD]
    tx = dynamic_loss_scaling(gc.adam(0.01), 2.0**10, growth_interval=3)

    def step(g, s, p):
        u, s = tx.update(g, s, p)
        return u, gc.apply_updates(p, u), s

    step = jax.jit(step) if jit else step
    if jit:
        ref_u, ref_p, _ = helpers.run_optax(
            optax.apply_if_finite(optax.adam(0.01), 10**6), params, grads, jit=True
        )
    else:
        ref_u, ref_p, _ = helpers.run_optax(optax.adam(0.01), params, finite)
        own_u, own_p, _ = helpers.run_steps(gc.adam(0.01), params, finite)
    state, p, k = tx.init(params), params, 0
    for t, g in enumerate(grads):
        S = loss_scale(state)
        u, p, state = step(jax.tree.map(lambda x, S=S: x * S, g), state, p)
        if jit:
            assert helpers.max_rel_diff(u, ref_u[t]) <= 2e-5, t
            assert helpers.max_rel_diff(p, ref_p[t]) <= 2e-5, t
        elif t in BAD:
            assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u)), t
        else:
            assert helpers.max_rel_diff(u, ref_u[k]) <= 2e-5, t
            assert helpers.max_rel_diff(p, ref_p[k]) <= 2e-5, t
            helpers.assert_trees_close(u, own_u[k], rtol=0, msg=f"step {t}")
            helpers.assert_trees_close(p, own_p[k], rtol=0, msg=f"step {t}")
        k += t not in BAD
    assert int(state.total_notfinite) == len(BAD) and int(state.inner_state[0].count) == len(finite) == k


# ---------------------------------------------------------------- other libraries' loss scalers
def test_matches_torch_grad_scaler():
    """Same scale sequence and SGD-momentum trajectory as torch.amp.GradScaler with inf steps."""
    torch = pytest.importorskip("torch")
    grads = _scripted_grads(4, bad=[3, 4, 5, 12, 20])
    params = helpers.random_tree(0)
    tx = dynamic_loss_scaling(
        gc.sgd(0.05, momentum=0.9), 2.0**10, growth_interval=3, min_scale=2.0**-20, max_scale=2.0**30
    )
    flat = lambda tree: [np.asarray(x, np.float32) for x in jax.tree.leaves(tree)]
    tp = [torch.nn.Parameter(torch.tensor(x)) for x in flat(params)]
    opt = torch.optim.SGD(tp, lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler(
        "cpu", init_scale=2.0**10, growth_factor=2.0, backoff_factor=0.5, growth_interval=3
    )
    state, p = tx.init(params), params
    for t, g in enumerate(grads):
        opt.zero_grad()
        loss = sum((w * torch.tensor(x)).sum() for w, x in zip(tp, flat(g)))  # d loss / d w = g
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        S = loss_scale(state)
        u, state = tx.update(jax.tree.map(lambda x, S=S: x * S, g), state, p)
        p = gc.apply_updates(p, u)
        assert float(state.scale) == scaler.get_scale(), t
        assert (
            helpers.max_rel_diff(
                p, jax.tree.unflatten(jax.tree.structure(params), [w.detach().numpy() for w in tp])
            )
            <= 2e-5
        ), t


def test_flax_dynamic_scale_grows_one_step_later():
    """Flax's DynamicScale(growth_interval=k - 1) gives our scale sequence for growth_interval=k."""
    dynamic_scale = pytest.importorskip("flax.training.dynamic_scale")
    grads = [jnp.array([1.0, jnp.inf]) if t in BAD else jnp.ones(2) for t in range(N_STEPS)]
    ds = dynamic_scale.DynamicScale(growth_interval=2, scale=16.0, minimum_scale=1.0)
    tx = dynamic_loss_scaling(gc.identity(), 16.0, growth_interval=3, max_scale=2.0**30)
    state = tx.init(jnp.zeros(2))
    for t, g in enumerate(grads):
        with jax.numpy_dtype_promotion("standard"):
            ds, finite, _, _ = ds.value_and_grad(lambda w, g=g: jnp.sum(w * g))(jnp.zeros(2))
        _, state = tx.update(g * loss_scale(state), state)
        assert (float(ds.scale), bool(finite)) == (float(state.scale), bool(state.last_finite)), t


# ---------------------------------------------------------------- the float16 story
# Linear regression late in training (residuals ~1e-4), 256 examples a batch: the
# per-example cotangents 2 r / 256 (~2e-6) are float16 subnormals, and the gradients of
# the two weights of small features (x ~ 0.01) are ~1e-8, below float16's smallest
# subnormal (6e-8). Params are float32 masters cast to float16 in the loss.
N, D, T, LR = 256, 8, 40, 0.2
INJECTED = [9, 10, 25]  # corrupted batches: one target of 3e4 makes r**2 and the gradients overflow


def _problem():
    rng = np.random.default_rng(0)
    col = np.array([1, 1, 1, 1, 1, 1, 1e-2, 1e-2])
    w_true = 1e-4 * rng.standard_normal(D)
    x = (rng.standard_normal((T, N, D)) * col).astype(np.float32)
    y = (x @ w_true + 1e-6 * rng.standard_normal((T, N))).astype(np.float32)
    y_bad = y.copy()
    y_bad[INJECTED, 0] = 3e4
    return jnp.asarray(x), jnp.asarray(y), jnp.asarray(y_bad)


def _mse(w, x, y, dtype):
    r = x.astype(dtype) @ w.astype(dtype) - y.astype(dtype)
    return jnp.mean(r * r)


@jax.jit
def _grad16(w, x, y, s):
    """Gradients of the float16 loss times ``s`` (float32), divided by ``s`` in float32."""
    return jax.grad(lambda w: _mse(w, x, y, jnp.float16).astype(jnp.float32) * s)(w) / s


def test_float16_gradients_underflow_without_loss_scaling():
    """Per batch, the float16 gradient's error relative to the float32 one, for the six
    normal weights and the two tiny ones (each group relative to its largest entry):
    loss scaling by 2**15 (where the run below settles) brings both under 1e-3 / 5e-3
    on every batch (measured 4.1e-4 / 3.7e-3: float16 summation of 256 terms remains);
    without it every batch misses (measured >= 3.5e-3 / >= 1.05e-2, median 7.5e-3 /
    0.16), and the tiny weights' gradients come out exactly 0 (measured 16 of 80)."""
    x, y, _ = _problem()
    w = jnp.zeros(D, jnp.float32)
    rel = lambda a, b: float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
    errs, zeros = [], {"plain": 0, "scaled": 0}
    for t in range(T):
        g32 = np.asarray(jax.grad(_mse)(w, x[t], y[t], jnp.float32))
        plain = np.asarray(_grad16(w, x[t], y[t], jnp.float32(1.0)))
        scaled = np.asarray(_grad16(w, x[t], y[t], jnp.float32(2.0**15)))
        zeros["plain"] += int(np.sum(plain == 0))
        zeros["scaled"] += int(np.sum(scaled == 0))
        errs.append(
            [
                rel(plain[:6], g32[:6]),
                rel(plain[6:], g32[6:]),
                rel(scaled[:6], g32[:6]),
                rel(scaled[6:], g32[6:]),
            ]
        )
    errs = np.array(errs)
    assert zeros["scaled"] == 0 and zeros["plain"] >= 10
    assert errs[:, 1].max() == 1.0  # a batch where both tiny gradients vanished entirely
    assert errs[:, 2].max() <= 1e-3 < errs[:, 0].min()
    assert errs[:, 3].max() <= 5e-3 and errs[:, 1].min() > 1e-2


def _float16_run(w0, x, y, tx):
    @jax.jit
    def step(w, state, xb, yb):
        grads = jax.grad(lambda w: scale_loss(_mse(w, xb, yb, jnp.float16), state))(w)
        u, state = tx.update(grads, state, w)
        return gc.apply_updates(w, u), state

    state, ws, scales, skipped = tx.init(w0), [], [], []
    for t in range(T):
        scales.append(float(loss_scale(state)))
        w0, state = step(w0, state, x[t], y[t])
        ws.append(np.asarray(w0, np.float64))
        if not bool(state.last_finite):
            skipped.append(t)
    return np.array(ws), scales, skipped


def _sgd_run(x, y, dtype, skipped, w_dtype=jnp.float32):
    """Plain SGD on the same batches, without the skipped steps (float16 compute: no loss scaling)."""
    grad = jax.jit(jax.grad(_mse), static_argnums=3)
    w, ws = jnp.zeros(D, w_dtype), []
    for t in range(T):
        if t not in skipped:
            w = gc.apply_updates(w, -LR * grad(w, x[t], y[t], dtype))
        ws.append(np.asarray(w, np.float64))
    return np.array(ws)


def _traj_err(ws, ref):
    """Per step: max |w - w_ref| relative to max |w_ref|."""
    return np.max(np.abs(ws - ref), axis=1) / np.max(np.abs(ref), axis=1)


def test_float16_run_with_injected_overflows_skips_recovers_and_tracks_float32():
    x, y, y_bad = _problem()
    tx = dynamic_loss_scaling(gc.sgd(LR), 2.0**12, growth_interval=4)
    ws, scales, skipped = _float16_run(jnp.zeros(D, jnp.float32), x, y_bad, tx)
    # skipped: exactly the corrupted batches, plus the steps where the scale had grown to
    # 2**16, which overflows float16 (65504) by itself: the scale settles at 2**15
    natural = [t for t in range(T) if scales[t] == 2.0**16]
    assert natural and skipped == sorted(INJECTED + natural)
    for t in skipped:
        assert t + 1 == T or scales[t + 1] == scales[t] / 2
        np.testing.assert_array_equal(ws[t], ws[t - 1])  # no step taken
    assert scales[9] == 2.0**14 and scales[11] == 2.0**12 and max(scales[11:25]) == 2.0**15  # recovered
    ref = _sgd_run(x, y, jnp.float32, skipped)
    # tolerance 1e-3 = 2 float16 unit roundoffs (2**-11): each step's gradient carries a
    # few float16 roundings, and SGD on this convex problem does not amplify them
    # (measured: 4.1e-4); the two tiny weights, moved only by underflow-prone
    # gradients, match to 2e-3 of their size (measured 6.4e-4)
    assert _traj_err(ws, ref).max() <= 1e-3
    assert np.max(np.abs(ws[:, 6:] - ref[:, 6:]) / np.abs(ref[-1, 6:])) <= 2e-3
    # the same float16 compute without loss scaling misses that tolerance (measured 4.7e-3)
    # and loses most of the movement of the tiny weights (they end at 6e-8, not 2e-7)
    plain = _sgd_run(x, y, jnp.float16, skipped)
    assert _traj_err(plain, ref).max() > 3e-3
    assert np.all(np.abs(plain[-1, 6:] - ref[-1, 6:]) > 0.5 * np.abs(ref[-1, 6:]))


def test_float16_params_stay_float16_and_track_float32_loosely():
    """Pure float16 params: same skips; the params themselves round to float16 (~1e-5,
    partly subnormal: a quantum of 6e-8 = 1e-3 of max |w|), hence a 5e-3 tolerance
    (measured 2.4e-3)."""
    x, y, y_bad = _problem()
    tx = dynamic_loss_scaling(gc.sgd(LR), 2.0**12, growth_interval=4)
    ws, _, skipped = _float16_run(jnp.zeros(D, jnp.float16), x, y_bad, tx)
    assert set(INJECTED) <= set(skipped)
    ref = _sgd_run(x, y, jnp.float32, skipped)
    assert _traj_err(ws, ref).max() <= 5e-3
    state = tx.init(jnp.zeros(D, jnp.float16))
    u, state = tx.update(jnp.ones(D, jnp.float16), state, jnp.zeros(D, jnp.float16))
    assert u.dtype == jnp.float16 and ws.dtype == np.float64  # (ws: float16 values, widened for the check)


# ---------------------------------------------------------------- scale_loss / loss_scale
def test_scale_loss_finds_the_state_anywhere_and_keeps_the_loss_dtype():
    p = {"w": jnp.ones(3)}
    dls = dynamic_loss_scaling(gc.adam(0.1), 64.0)
    for tx in (
        dls,
        gc.chain(gc.clip_by_global_norm(1.0), dls),
        gc.named_chain(("clip", gc.clip_by_global_norm(1.0)), ("opt", dls)),
        gc.masked(dls, {"w": True}),
    ):
        state = tx.init(p)
        assert float(loss_scale(state)) == 64.0
        for dt in (jnp.float32, jnp.float16, jnp.bfloat16):
            out = scale_loss(jnp.asarray(1.5, dt), state)
            assert out.dtype == dt and float(out) == 96.0
    # inside jit, the scale of the current state is used
    state = gc.chain(dls).init(p)
    state = (state[0]._replace(scale=jnp.asarray(0.25, jnp.float32)),)
    assert float(jax.jit(scale_loss)(jnp.asarray(8.0), state)) == 2.0


def test_works_with_flax_nnx_optimizer():
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(model, dynamic_loss_scaling(gc.adam(0.01), 8.0, growth_interval=1), wrt=nnx.Param)
    x = jnp.ones((4, 3))

    @nnx.jit
    def step(model, opt):
        grads = nnx.grad(lambda m: scale_loss(jnp.mean(m(x) ** 2), opt.opt_state))(model)
        opt.update(model, grads)

    for _ in range(3):
        step(model, opt)
    assert float(loss_scale(opt.opt_state)) == 64.0


@pytest.mark.parametrize("fn", [scale_loss, loss_scale], ids=["scale_loss", "loss_scale"])
def test_scale_loss_without_or_with_two_states_raises(fn):
    args = (jnp.asarray(1.0),) if fn is scale_loss else ()
    name = fn.__name__
    with pytest.raises(
        ValueError,
        match=rf"{name}: `state` must hold exactly one DynamicLossScaleState, "
        r"got no DynamicLossScaleState in a ScaleByAdamState",
    ):
        fn(*args, gc.scale_by_adam().init(jnp.ones(2)))
    two = gc.chain(dynamic_loss_scaling(gc.identity()), dynamic_loss_scaling(gc.identity()))
    with pytest.raises(ValueError, match=rf"{name}: .* got 2 DynamicLossScaleStates in a tuple"):
        fn(*args, two.init(jnp.ones(2)))
    with pytest.raises(ValueError, match="no DynamicLossScaleState"):
        fn(*args, None)


def test_state_type_is_exported_from_the_module():
    state = dynamic_loss_scaling(gc.identity()).init(jnp.ones(2))
    assert isinstance(state, DynamicLossScaleState)
    assert float(state.scale) == 2.0**15 and state.last_finite.dtype == jnp.bool_


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (
            {"inner": gc.identity},
            TypeError,
            r"dynamic_loss_scaling: `inner` must be a GradientTransformation",
        ),
        ({"initial_scale": 0.0}, ValueError, r"`initial_scale` must be > 0, got 0\.0\."),
        ({"initial_scale": float("inf")}, ValueError, r"`initial_scale` must be a finite float32 number"),
        ({"initial_scale": "big"}, TypeError, r"`initial_scale` must be a number, got 'big'\."),
        ({"initial_scale": jnp.ones(2)}, ValueError, r"`initial_scale` must be a scalar"),
        ({"min_scale": -1.0}, ValueError, r"`min_scale` must be > 0, got -1\.0\."),
        ({"max_scale": 1e39}, ValueError, r"`max_scale` must be a finite float32 number, got 1e\+39\."),
        ({"growth_interval": 0}, ValueError, r"`growth_interval` must be >= 1, got 0\."),
        ({"growth_interval": 2.5}, ValueError, r"`growth_interval` must be an integer, got 2\.5\."),
        ({"growth_interval": None}, TypeError, r"`growth_interval` must be a number, got None\."),
        ({"growth_factor": 0.5}, ValueError, r"`growth_factor` must be >= 1, got 0\.5\."),
        ({"growth_factor": float("inf")}, ValueError, r"`growth_factor` must be a finite float32 number"),
        ({"backoff_factor": 0.0}, ValueError, r"`backoff_factor` must be > 0 and <= 1, got 0\.0\."),
        ({"backoff_factor": 1.5}, ValueError, r"`backoff_factor` must be > 0 and <= 1, got 1\.5\."),
        ({"backoff_factor": float("nan")}, ValueError, r"`backoff_factor` must be a number, got NaN\."),
        (
            {"min_scale": 8.0, "max_scale": 4.0, "initial_scale": 4.0},
            ValueError,
            r"`max_scale` must be >= `min_scale` \(8\.0\), got 4\.0\.",
        ),
        (
            {"initial_scale": 2.0**30},
            ValueError,
            r"`initial_scale` must be in \[`min_scale`, `max_scale`\] = \[1\.0, 16777216\.0\], got 1073741824\.0\.",
        ),
        ({"initial_scale": 0.5}, ValueError, r"`initial_scale` must be in \[`min_scale`, `max_scale`\]"),
    ],
)
def test_errors(kwargs, err, match):
    kwargs = {"inner": gc.identity(), **kwargs}
    with pytest.raises(err, match=match):
        dynamic_loss_scaling(**kwargs)


def test_traced_hyperparameters_are_not_checked_but_work():
    def final_scale(h):
        tx = dynamic_loss_scaling(gc.identity(), h, growth_interval=1, growth_factor=h, max_scale=2.0**20)
        state = tx.init(jnp.zeros(2))
        for _ in range(2):
            _, state = tx.update(jnp.ones(2), state)
        return state.scale

    np.testing.assert_allclose(jax.jit(final_scale)(jnp.asarray(4.0)), 64.0)
