"""Control wrappers, leafwise controls and clipping functions: Optax 0.2.8 parity (eager and
jitted, relative 2e-5 over 12 steps), float64 NumPy transcriptions of the docstring rules
(one line per formula line), Optax's documented edge cases, the places where gradchain
deliberately differs from Optax, and the errors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

optax = pytest.importorskip("optax")

N = 12
SHAPES = {"w": (3, 4), "b": (5,)}
JIT = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])


def _params(seed=0, dtype=jnp.float32):
    return helpers.random_tree(seed, SHAPES, dtype=dtype)


def _grads(seed=1, n=N, like=None, scale=1.0):
    return helpers.grad_sequence(seed, _params() if like is None else like, n, scale=scale)


def _std():
    """Optax runs under standard promotion (it fails under strict)."""
    return _Both(jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"))


class _Both:
    def __init__(self, *cms):
        self.cms = cms

    def __enter__(self):
        for cm in self.cms:
            cm.__enter__()

    def __exit__(self, *exc):
        for cm in reversed(self.cms):
            cm.__exit__(*exc)


def trajectory(tx, params, grads, *, jit, extra_args=None, apply=gc.apply_updates):
    """Per-step updates and states of ``tx`` (the params move by the updates)."""
    extra_args = extra_args or {}

    def step(p, s, g):
        u, s = tx.update(g, s, p, **extra_args)
        return u, apply(p, u), s

    step = jax.jit(step) if jit else step
    state, us, ss = tx.init(params), [], []
    for g in grads:
        u, params, state = step(params, state, g)
        us.append(u)
        ss.append(state)
    return us, ss


def optax_trajectory(otx, params, grads, *, extra_args=None):
    """Optax's reference trajectory (jitted: Optax's eager ``lax.cond`` compiles per call)."""
    with _std():
        return trajectory(otx, params, grads, jit=True, extra_args=extra_args, apply=optax.apply_updates)


def assert_steps_close(got, want, rtol=2e-5, what="updates", leafwise=False):
    """Every step within ``rtol``: elementwise (relative to each entry, floor 1e-6), or with
    ``leafwise`` relative to each leaf's largest entry (for averages with cancellation)."""
    assert len(got) == len(want) >= N
    for t, (a, b) in enumerate(zip(got, want)):
        if leafwise:
            helpers.assert_trees_close_relative(a, b, rtol=rtol, msg=f"{what} at step {t}")
        else:
            assert helpers.max_rel_diff(a, b) <= rtol, f"{what} differ at step {t}"


def run64(make, params_np, grads_np, *, extra_args=None, apply=gc.apply_updates):
    """Run ``make()`` eagerly in float64; return per-step updates and states as NumPy."""
    with jax.enable_x64(True):
        params = jax.tree.map(jnp.asarray, params_np)
        grads = [jax.tree.map(jnp.asarray, g) for g in grads_np]
        us, ss = trajectory(make(), params, grads, jit=False, extra_args=extra_args, apply=apply)
        assert all(x.dtype == jnp.float64 for x in jax.tree.leaves(us[-1]))
        return helpers.to_numpy64(us), jax.tree.map(np.asarray, ss)


def np_tree(seed, n=None, shapes=SHAPES, scale=1.0):
    rng = np.random.default_rng(seed)
    one = lambda: {k: scale * rng.standard_normal(s) for k, s in shapes.items()}
    return one() if n is None else [one() for _ in range(n)]


def assert_np_close(got, want, rtol=1e-12):
    for t, (a, b) in enumerate(zip(got, want)):
        for k in b:
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-300, err_msg=f"step {t} leaf {k}")


# ================================================================= apply_every
def np_apply_every(gs, k):
    out, a = [], None
    for t, g in enumerate(gs):
        c = t % k
        a = g if c == 0 else a + g  # a_t = g_t if c == 0, else a_{t-1} + g_t
        out.append(a if c == k - 1 else 0 * g)  # u_t = a_t on every k-th call, else 0
    return out


@JIT
@pytest.mark.parametrize("k", [1, 3])
def test_apply_every_matches_optax(k, jit):
    params, grads = _params(), _grads()
    us, ss = trajectory(gc.apply_every(k), params, grads, jit=jit)
    ous, oss = optax_trajectory(optax.apply_every(k), params, grads)
    assert_steps_close(us, ous)
    assert_steps_close([s.grad_acc for s in ss], [s.grad_acc for s in oss], what="grad_acc")
    assert [int(s.count) for s in ss] == [int(s.count) for s in oss]


def test_apply_every_matches_numpy():
    gs = np_tree(1, N)
    us, _ = run64(lambda: gc.apply_every(3), np_tree(0), gs)
    assert_np_close(us, per_step(gs, np_apply_every, 3))


def per_step(gs, ref, *args):
    """A per-leaf reference ``ref(list of one leaf's gradients, *args)`` run on every leaf."""
    cols = {k: ref([g[k] for g in gs], *args) for k in gs[0]}
    return [{k: cols[k][t] for k in cols} for t in range(len(gs))]


def test_apply_every_nan_does_not_leak_into_other_calls_or_windows():
    # Optax multiplies by 0/1: one NaN makes every later call NaN; gradchain returns zeros
    # between emissions and starts each window afresh.
    g = [jnp.array([1.0]), jnp.array([jnp.nan]), jnp.array([2.0]), jnp.array([3.0]), jnp.array([4.0])]
    us, _ = trajectory(gc.apply_every(2), jnp.zeros(1), g, jit=True)
    np.testing.assert_array_equal(np.concatenate(us), [0.0, np.nan, 0.0, 5.0, 0.0])
    with _std():
        ous, _ = trajectory(optax.apply_every(2), jnp.zeros(1), g, jit=True, apply=optax.apply_updates)
    assert np.isnan(np.concatenate(ous)[2:]).all()


# ================================================================= zero_nans
def _with_nans(grads):
    out = []
    for t, g in enumerate(grads):
        if t % 3 == 1:
            g = dict(g, w=g["w"].at[0, t % 4].set(jnp.nan))
        if t % 4 == 2:
            g = dict(g, b=g["b"].at[1].set(jnp.nan).at[2].set(jnp.inf))
        out.append(g)
    return out


@JIT
def test_zero_nans_matches_optax(jit):
    params, grads = _params(), _with_nans(_grads())
    us, ss = trajectory(gc.zero_nans(), params, grads, jit=jit)
    ous, oss = optax_trajectory(optax.zero_nans(), params, grads)
    for t in range(N):  # (the infinities pass in both)
        for a, b in zip(jax.tree.leaves(us[t]), jax.tree.leaves(ous[t])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert jax.tree.map(bool, ss[t].found_nan) == jax.tree.map(bool, oss[t].found_nan)


def test_zero_nans_matches_numpy():
    gs = [dict(g, w=np.where(np.abs(g["w"]) > 1.2, np.nan, g["w"])) for g in np_tree(1, N)]
    us, ss = run64(gc.zero_nans, np_tree(0), gs)
    for g, u, s in zip(gs, us, ss):
        for k in g:
            found_nan = np.any(np.isnan(g[k]))  # found_nan = any(isnan(g))
            expected = np.where(np.isnan(g[k]), 0.0, g[k])  # u = where(isnan(g), 0, g)
            np.testing.assert_array_equal(u[k], expected)
            assert bool(s.found_nan[k]) == found_nan


# ================================================================= keep_params_nonnegative
@JIT
def test_keep_params_nonnegative_matches_optax(jit):
    params = jax.tree.map(jnp.abs, _params())
    grads = _grads(scale=2.0)
    tx = gc.chain(gc.sgd(0.5), gc.keep_params_nonnegative())
    us, _ = trajectory(tx, params, grads, jit=jit)
    ous, _ = optax_trajectory(optax.chain(optax.sgd(0.5), optax.keep_params_nonnegative()), params, grads)
    assert_steps_close(us, ous)


def test_keep_params_nonnegative_matches_numpy():
    p, gs = jax.tree.map(np.abs, np_tree(0)), np_tree(1, N, scale=2.0)
    us, _ = run64(gc.keep_params_nonnegative, p, gs)
    for g, u in zip(gs, us):
        for k in g:
            expected = np.where(p[k] + g[k] < 0, -p[k], g[k])  # u = -p if p + g < 0, else g
            np.testing.assert_array_equal(u[k], expected)
            p[k] = p[k] + u[k]
            assert (p[k] >= 0).all()


def test_keep_params_nonnegative_moves_negative_params_to_zero():
    # Optax's documented warning: a negative parameter is moved to 0.
    tx = gc.keep_params_nonnegative()
    p = jnp.array([-1.0, -2.0, 1.0, -1.0])
    u, _ = tx.update(jnp.array([0.5, -1.0, -3.0, 2.0]), tx.init(p), p)
    np.testing.assert_array_equal(gc.apply_updates(p, u), [0.0, 0.0, 0.0, 1.0])


def test_keep_params_nonnegative_with_bfloat16_updates_never_goes_below_zero():
    p = jnp.asarray(np.linspace(0.001, 3.0, 997), jnp.float32)
    g = jnp.full_like(p, -10.0, dtype=jnp.bfloat16)
    tx = gc.keep_params_nonnegative()
    u, _ = tx.update(g, tx.init(p), p)
    assert u.dtype == jnp.bfloat16
    assert float(jnp.min(gc.apply_updates(p, u))) >= 0.0
    nearest = (-p).astype(jnp.bfloat16)  # -p rounded to nearest would overshoot zero
    assert float(jnp.min(gc.apply_updates(p, nearest))) < 0.0


# ================================================================= stateless_with_tree_map
@JIT
def test_stateless_with_tree_map_matches_optax(jit):
    f = lambda g, p: g if p is None else g * jnp.tanh(p)
    params, grads = _params(), _grads()
    us, _ = trajectory(gc.stateless_with_tree_map(f), params, grads, jit=jit)
    ous, _ = optax_trajectory(optax.stateless_with_tree_map(f), params, grads)
    assert_steps_close(us, ous)
    u, _ = gc.stateless_with_tree_map(f).update(grads[0], gc.EmptyState())  # params=None: f(g, None)
    helpers.assert_trees_close(u, grads[0])


def test_stateless_with_tree_map_matches_numpy():
    p, gs = np_tree(0), np_tree(1, N)
    us, _ = run64(lambda: gc.stateless_with_tree_map(lambda g, q: g * q), p, gs)
    for g, u in zip(gs, us):
        for k in g:
            np.testing.assert_allclose(u[k], g[k] * p[k], rtol=1e-15)  # u = f(g, p)
            p[k] = p[k] + u[k]


# ================================================================= conditionally_*
def _pred(step):
    return step % 3 == 0


def _pred_value(step, value):
    return (value > 0.5) & (step % 2 == 1)


@JIT
@pytest.mark.parametrize("which", ["conditionally_transform", "conditionally_mask"])
def test_conditionally_matches_optax(which, jit):
    params, grads = _params(), _grads()
    us, ss = trajectory(getattr(gc, which)(gc.adam(0.1), _pred), params, grads, jit=jit)
    ous, oss = optax_trajectory(getattr(optax, which)(optax.adam(0.1), _pred), params, grads)
    assert_steps_close(us, ous)
    assert [int(s.step) for s in ss] == [int(s.step) for s in oss] == list(range(1, N + 1))
    assert_steps_close([s.inner_state for s in ss], [s.inner_state for s in oss], what="inner state")


def _run_with_values(tx, params, grads, values, jit):
    def step(p, s, g, v):
        u, s = tx.update(g, s, p, value=v)
        return u, gc.apply_updates(p, u), s

    step = jax.jit(step) if jit else step
    state, us = tx.init(params), []
    for g, v in zip(grads, values):
        u, params, state = step(params, state, g, v)
        us.append(u)
    return us


@JIT
@pytest.mark.parametrize("which", ["conditionally_transform", "conditionally_mask"])
def test_conditionally_forwards_extra_args_like_optax(which, jit):
    params, grads = _params(), _grads()
    values = [jnp.asarray(float(t % 4) / 2) for t in range(N)]
    us = _run_with_values(
        getattr(gc, which)(gc.adam(0.1), _pred_value, forward_extra_args=True), params, grads, values, jit
    )
    otx = getattr(optax, which)(optax.adam(0.1), _pred_value, forward_extra_args=True)

    def ostep(p, s, g, v):
        u, s = otx.update(g, s, p, value=v)
        return u, optax.apply_updates(p, u), s

    with _std():
        ostep, state, ous, p = jax.jit(ostep), otx.init(params), [], params
        for g, v in zip(grads, values):
            u, p, state = ostep(p, state, g, v)
            ous.append(u)
    assert_steps_close(us, ous)


def np_conditionally(gs, pred, decay, mask):
    tr, out = 0 * gs[0], []
    for t, g in enumerate(gs):
        if pred(t):
            tr = decay * tr + g  # u_t, s_t = inner(g_t, s_{t-1})   (inner: trace)
            out.append(tr)
        else:
            out.append(0 * g if mask else g)  # u_t = 0 (mask) or g_t (transform); s_t = s_{t-1}
    return out


@pytest.mark.parametrize("which", ["conditionally_transform", "conditionally_mask"])
def test_conditionally_matches_numpy(which):
    gs = np_tree(1, N)
    us, _ = run64(lambda: getattr(gc, which)(gc.trace(0.9), _pred), np_tree(0), gs)
    assert_np_close(
        us, per_step(gs, np_conditionally, lambda t: t % 3 == 0, 0.9, which == "conditionally_mask")
    )


def test_conditionally_does_not_run_inner_on_other_steps_under_jit():
    calls = []
    inner = gc.stateless(lambda u, p: jax.debug.callback(lambda: calls.append(1)) or u)
    tx = gc.conditionally_mask(inner, _pred)
    trajectory(tx, _params(), _grads(n=7), jit=True)
    jax.effects_barrier()
    assert len(calls) == 3  # steps 0, 3, 6


# ================================================================= flatten
@JIT
def test_flatten_matches_optax(jit):
    params, grads = _params(), _grads()
    us, ss = trajectory(gc.flatten(gc.adam(0.1)), params, grads, jit=jit)
    ous, oss = optax_trajectory(optax.flatten(optax.adam(0.1)), params, grads)
    assert_steps_close(us, ous)
    assert ss[-1][0].mu.shape == (17,)


def test_flatten_matches_numpy():
    gs = np_tree(1, N)
    us, _ = run64(lambda: gc.flatten(gc.clip_by_norm(2.0)), np_tree(0), gs)
    for g, u in zip(gs, us):
        v = np.concatenate([g[k].ravel() for k in sorted(g)])  # vec(g), in jax.tree.leaves order
        n = np.sqrt(np.sum(v**2))
        v = v * min(1.0, 2.0 / n)  # inner(vec(g)): one clip over all leaves
        parts = dict(zip(sorted(g), np.split(v, [g["b"].size])))  # unvec
        for k in g:
            np.testing.assert_allclose(u[k], parts[k].reshape(g[k].shape), rtol=1e-13)


def test_flatten_concatenates_mixed_dtypes_under_strict_promotion():
    params = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones((2, 2), jnp.float32)}
    tx = gc.flatten(gc.scale_by_adam())
    state = tx.init(params)
    assert state.mu.dtype == jnp.float32 and state.mu.shape == (7,)
    u, _ = tx.update(jax.tree.map(lambda x: 2 * x, params), state, params)
    assert u["a"].dtype == jnp.bfloat16 and u["b"].shape == (2, 2)
    with pytest.raises((TypeError, jax.dtypes.TypePromotionError)):  # Optax: no, under strict promotion
        optax.flatten(optax.scale_by_adam()).init(params)


# ================================================================= lookahead
TARGET = helpers.random_tree(7, SHAPES)


def _look_run(tx, params, *, jit, apply=gc.apply_updates, n=N, target=TARGET):
    def step(params, state):
        grads = jax.tree.map(lambda p, t: 0.7 * (p - t), params.fast, target)
        u, state = tx.update(grads, state, params)
        return apply(params, u), state

    step = jax.jit(step) if jit else step
    state, out = tx.init(params), []
    for _ in range(n):
        params, state = step(params, state)
        out.append(params)
    return out, state


LOOKAHEAD = {
    "sgd": (lambda m: m.sgd(0.2), 3, 0.5, False),
    "adam-reset": (lambda m: m.adam(0.05), 4, 0.3, True),
    "momentum-k1": (lambda m: m.sgd(0.1, momentum=0.9), 1, 0.8, False),
}


@JIT
@pytest.mark.parametrize("name", sorted(LOOKAHEAD))
def test_lookahead_matches_optax(name, jit):
    make, k, a, reset = LOOKAHEAD[name]
    ps, state = _look_run(
        gc.lookahead(make(gc), k, a, reset_state=reset), gc.LookaheadParams.init_synced(_params()), jit=jit
    )
    with _std():
        ops, ostate = _look_run(
            optax.lookahead(make(optax), k, a, reset),
            optax.LookaheadParams.init_synced(_params()),
            jit=True,
            apply=optax.apply_updates,
        )
    assert_steps_close([tuple(p) for p in ps], [tuple(p) for p in ops], what="params")
    assert int(state.steps_since_sync) == int(ostate.steps_since_sync)
    assert helpers.max_rel_diff(state.fast_state, ostate.fast_state) <= 2e-5


def np_lookahead(p0, target, lr, k, a, n):
    fast, slow, out = p0, p0, []
    for t in range(n):
        d = -lr * 0.7 * (fast - target)  # the fast optimizer (sgd) on the quadratic's gradient
        sync = t % k == k - 1
        diff = fast + d - slow  # diff = fast + d - slow
        slow_u = a * diff if sync else 0 * d  # slow_update = a * diff if sync, else 0
        fast_u = d - (1 - a) * diff if sync else d  # fast_update = d - (1 - a) * diff if sync, else d
        fast, slow = fast + fast_u, slow + slow_u
        out.append((fast, slow))
    return out


def test_lookahead_matches_numpy():
    p0 = np_tree(0)
    target = jax.tree.map(lambda t: np.asarray(t, np.float64), TARGET)
    with jax.enable_x64(True):
        ps, _ = _look_run(
            gc.lookahead(gc.sgd(0.2), 3, 0.4),
            gc.LookaheadParams.init_synced(jax.tree.map(jnp.asarray, p0)),
            jit=False,
            target=jax.tree.map(jnp.asarray, target),
        )
        assert ps[-1].slow["w"].dtype == jnp.float64
    for key in p0:
        ref = np_lookahead(p0[key], target[key], 0.2, 3, 0.4, N)
        for t in range(N):
            np.testing.assert_allclose(
                np.asarray(ps[t].fast[key]), ref[t][0], rtol=1e-12, err_msg=f"fast {t}"
            )
            np.testing.assert_allclose(
                np.asarray(ps[t].slow[key]), ref[t][1], rtol=1e-12, err_msg=f"slow {t}"
            )


def test_lookahead_optax_docstring_example():
    opt = gc.lookahead(gc.sgd(1e-2), sync_period=5, slow_step_size=0.5)
    params = gc.LookaheadParams.init_synced(jnp.ones((2,)))
    state = opt.init(params)
    loss_fn = lambda p: jnp.sum(p**2)
    updates, state = opt.update(jax.grad(loss_fn)(params.fast), state, params)
    params = gc.apply_updates(params, updates)
    assert float(loss_fn(params.slow)) == 2.0
    assert float(loss_fn(params.fast)) < 2.0


def test_lookahead_init_accepts_plain_params_and_resets_fast_state():
    tx = gc.lookahead(gc.adam(0.1), 2, 0.5, reset_state=True)
    plain = _params()
    both = gc.LookaheadParams.init_synced(plain)
    assert jax.tree.structure(tx.init(plain)) == jax.tree.structure(tx.init(both))
    state = tx.init(plain)
    counts = []
    for g in _grads(n=4):
        u, state = tx.update(g, state, both)
        both = gc.apply_updates(both, u)
        counts.append(int(state.fast_state[0].count))
    assert counts == [1, 0, 1, 0]  # reset on every synchronising call


# ================================================================= periodic_update
@JIT
def test_periodic_update_matches_optax_and_the_rule(jit):
    new, old = _params(0), _params(1)
    f = jax.jit(gc.periodic_update, static_argnums=3) if jit else gc.periodic_update
    for steps in range(N + 1):
        got = f(new, old, jnp.asarray(steps, jnp.int32), 4)
        with _std():
            want = optax.periodic_update(new, old, jnp.asarray(steps, jnp.int32), 4)
        expected = new if steps % 4 == 0 else old  # new if steps mod k == 0, else old
        helpers.assert_trees_close(got, want, rtol=0)
        helpers.assert_trees_close(got, expected, rtol=0)


# ================================================================= snapshot / monitor / measure_with_ema
@JIT
def test_snapshot_matches_optax(jit):
    params, grads = _params(), _grads()
    tx = gc.chain(gc.sgd(0.1, momentum=0.9), gc.snapshot("n", gc.global_norm), gc.clip_by_global_norm(0.5))
    otx = optax.chain(
        optax.sgd(0.1, momentum=0.9), optax.snapshot("n", optax.tree.norm), optax.clip_by_global_norm(0.5)
    )
    us, ss = trajectory(tx, params, grads, jit=jit)
    ous, oss = optax_trajectory(otx, params, grads)
    assert_steps_close(us, ous)
    assert_steps_close(
        [s[1].measurement["n"] for s in ss], [s[1].measurement["n"] for s in oss], what="norms"
    )
    np.testing.assert_allclose(tx.init(params)[1].measurement["n"], optax.tree.norm(params), rtol=1e-6)


def _docstring_run(solver, read):
    f = lambda x: jnp.sum(x**2)
    params = jnp.array([1.0, 2.0, 3.0])
    state, seen = solver.init(params), []
    for _ in range(2):
        updates, state = solver.update(jax.grad(f)(params), state)
        params = gc.apply_updates(params, updates)
        seen.append(read(state))
    return seen


def test_snapshot_and_monitor_optax_docstring_examples():
    solver = gc.chain(
        gc.sgd(learning_rate=0.1, momentum=0.9),
        gc.snapshot("norm_before_clip", gc.global_norm),
        gc.clip_by_global_norm(0.05),
    )
    seen = _docstring_run(solver, lambda s: float(s[1].measurement["norm_before_clip"]))
    np.testing.assert_allclose(seen, [0.748, 1.41], rtol=3e-3)  # step=0, norm=7.48e-01; step=1, 1.41e+00
    clip_thresh = 1.0
    solver = gc.chain(
        gc.sgd(learning_rate=0.1, momentum=0.9),
        gc.monitor(
            {
                "norm_before_clip": gc.global_norm,
                "is_clipped_ema": gc.measure_with_ema(lambda x: gc.global_norm(x) > clip_thresh, decay=0.9),
            }
        ),
        gc.clip_by_global_norm(clip_thresh),
    )
    seen = _docstring_run(
        solver, lambda s: [float(s[1].measurements[k]) for k in ("norm_before_clip", "is_clipped_ema")]
    )
    np.testing.assert_allclose(seen, [(0.748, 0.0), (1.27, 0.526)], rtol=3e-3, atol=1e-7)


@JIT
def test_monitor_and_measure_with_ema_match_optax(jit):
    params, grads = _params(), _grads()

    def measures(m, norm):
        return {
            "norm": norm,
            "ema": m.measure_with_ema(norm, 0.8),
            "raw": m.measure_with_ema(lambda u: u["w"], 0.7, False),
        }

    tx = gc.chain(gc.monitor(measures(gc, gc.global_norm)), gc.sgd(0.1))
    otx = optax.chain(optax.monitor(measures(optax, optax.tree.norm)), optax.sgd(0.1))
    us, ss = trajectory(tx, params, grads, jit=jit)
    ous, oss = optax_trajectory(otx, params, grads)
    assert_steps_close(us, ous)
    assert_steps_close(
        [s[0].measurements for s in ss], [s[0].measurements for s in oss], what="measurements", leafwise=True
    )


def test_measure_with_ema_matches_numpy():
    gs = np_tree(1, N)
    make = lambda: gc.measure_with_ema(lambda u: jnp.sum(u["w"] ** 2), 0.75)
    us, _ = run64(make, np_tree(0), gs, apply=lambda p, u: p)  # (the output is the measurement)
    e = 0.0
    for t, (g, u) in enumerate(zip(gs, us), start=1):
        x = np.sum(g["w"] ** 2)  # x_t = measure(g_t)
        e = 0.75 * e + (1 - 0.75) * x  # e_t = decay * e_{t-1} + (1 - decay) * x_t
        np.testing.assert_allclose(u, e / (1 - 0.75**t), rtol=1e-13)  # u_t = e_t / (1 - decay**t)


def test_monitor_state_keeps_its_structure_so_scan_runs_it():
    # Optax's monitor starts from {} and changes its state structure at the first step.
    tx = gc.monitor({"n": gc.global_norm, "big": gc.measure_with_ema(lambda u: gc.global_norm(u) > 3.0, 0.9)})
    params, grads = _params(), _grads(n=4)
    s0 = tx.init(params)
    _, s1 = tx.update(grads[0], s0)
    assert jax.tree.structure(s0) == jax.tree.structure(s1)
    assert [x.dtype for x in jax.tree.leaves(s0)] == [x.dtype for x in jax.tree.leaves(s1)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)
    final, _ = jax.lax.scan(lambda s, g: (tx.update(g, s)[1], None), s0, stacked)
    assert float(final.measurements["n"]) == pytest.approx(float(gc.global_norm(grads[-1])), rel=1e-6)
    with _std():
        o = optax.monitor({"n": optax.tree.norm})
        assert jax.tree.structure(o.init(params)) != jax.tree.structure(o.update(grads[0], o.init(params))[1])


# ================================================================= accumulate_gradients + should_skip_update_fn
def _skip_grads():
    grads = _grads(seed=3, n=N)
    for t in (2, 3, 7):
        grads[t] = dict(grads[t], b=grads[t]["b"].at[0].set(jnp.nan if t != 3 else jnp.inf))
    return grads


SKIPS = {
    "not_finite": (lambda m: m.skip_not_finite, _skip_grads),
    "large": (
        lambda m: functools.partial(m.skip_large_updates, max_squared_norm=16.0),
        lambda: _grads(seed=3),
    ),
}


@JIT
@pytest.mark.parametrize("skip", sorted(SKIPS))
def test_accumulate_gradients_should_skip_matches_optax_multisteps(skip, jit):
    make_skip, make_grads = SKIPS[skip]
    params, grads = _params(), make_grads()
    tx = gc.accumulate_gradients(gc.adam(0.1), 3, should_skip_update_fn=make_skip(gc))
    ms = optax.MultiSteps(optax.adam(0.1), 3, should_skip_update_fn=make_skip(optax))
    us, ss = trajectory(tx, params, grads, jit=jit)
    ous, oss = optax_trajectory(ms.gradient_transformation(), params, grads)
    assert_steps_close(us, ous)
    skipped = [bool(s.skip_state["should_skip"]) for s in ss]
    assert skipped == [bool(s.skip_state["should_skip"]) for s in oss] and 0 < sum(skipped) < N
    key = "num_not_finite" if skip == "not_finite" else "norm_squared"
    assert_steps_close([s.skip_state[key] for s in ss], [s.skip_state[key] for s in oss], what=key)
    for t in range(N):
        assert int(ss[t].mini_step) == int(oss[t].mini_step)
        assert int(ss[t].gradient_step) == int(oss[t].gradient_step)
        emitted = bool(jnp.any(us[t]["w"] != 0))
        assert bool(gc.has_updated(ss[t])) == emitted
        with _std():
            optax_says = bool(ms.has_updated(oss[t]))
        # Optax reads mini_step == 0 and gradient_step > 0: stale after a skipped call.
        stale = skipped[t] and int(ss[t].mini_step) == 0 and int(ss[t].gradient_step) > 0
        assert optax_says == (emitted or stale)


def test_accumulate_gradients_with_skips_matches_numpy():
    rng = np.random.default_rng(5)
    gs = [rng.standard_normal(4) for _ in range(N)]
    for t in (1, 5, 6):
        gs[t][2] = np.nan
    with jax.enable_x64(True):
        tx = gc.accumulate_gradients(gc.scale(-0.5), 2, should_skip_update_fn=gc.skip_not_finite)
        us, ss = trajectory(tx, jnp.zeros(4, jnp.float64), [jnp.asarray(g) for g in gs], jit=False)
    a, n, out, emitted = np.zeros(4), 0, [], []
    for g in gs:
        num_not_finite = np.sum(~np.isfinite(g))  # num_not_finite = count(not isfinite(g))
        if num_not_finite > 0:  # should_skip: as if the call never happened
            out.append(np.zeros(4))
            emitted.append(False)
            continue
        a = a + (g - a) / (n + 1)  # a_t = a_{t-1} + (g_t - a_{t-1}) / (n + 1)
        if n + 1 >= 2:  # if n + 1 >= k: u_t = inner(a_t); a_t = 0; n = 0
            out.append(-0.5 * a)
            a, n = np.zeros(4), 0
            emitted.append(True)
        else:  # else: u_t = 0; n = n + 1
            out.append(np.zeros(4))
            n += 1
            emitted.append(False)
    for t in range(N):
        np.testing.assert_allclose(np.asarray(us[t]), out[t], rtol=1e-14, atol=0, err_msg=f"step {t}")
        assert bool(gc.has_updated(ss[t])) == emitted[t]


def test_skip_functions_match_numpy_and_accumulate_in_float32():
    g = {"a": np.array([1.0, np.nan, 3.0, np.inf, -np.inf]), "b": np.array([[2.0, 0.5]])}
    skip, info = gc.skip_not_finite(jax.tree.map(jnp.asarray, g), 0, None)
    assert bool(skip) and int(info["num_not_finite"]) == 3 and info["num_not_finite"].dtype == jnp.int32
    with jax.enable_x64(True):
        h = {"a": jnp.asarray([1.0, -2.0, 3.0]), "b": jnp.asarray([[0.5]])}
        skip, info = gc.skip_large_updates(h, 0, None, 14.25)
        norm_squared = 1.0 + 4.0 + 9.0 + 0.25  # norm_squared = sum of |g|**2
        assert float(info["norm_squared"]) == norm_squared and bool(skip)  # not (14.25 < 14.25)
        assert not bool(gc.skip_large_updates(h, 0, None, 14.26)[0])
        assert bool(gc.skip_large_updates({"a": jnp.asarray([np.nan])}, 0, None, 1.0)[0])  # NaN is skipped
    big = jnp.full((4096,), 3.0, jnp.bfloat16)  # bfloat16 sums would round; gradchain sums in float32
    _, info = gc.skip_large_updates(big, 0, None, 1.0)
    assert info["norm_squared"].dtype == jnp.float32 and float(info["norm_squared"]) == 9.0 * 4096


def test_has_updated_finds_the_state_inside_a_chain():
    tx = gc.chain(gc.clip_by_global_norm(1.0), gc.accumulate_gradients(gc.sgd(0.1), 2))
    state = tx.init(jnp.zeros(2))
    assert not bool(gc.has_updated(state))
    flags = []
    for _ in range(4):
        _, state = tx.update(jnp.ones(2), state)
        flags.append(bool(gc.has_updated(state)))
    assert flags == [False, True, False, True]


# ================================================================= scale_gradient
@JIT
@pytest.mark.parametrize("scale", [-1.0, 0.5, 0.0, 1.0])
def test_scale_gradient_matches_optax(scale, jit):
    x = _params()

    def loss(mod, s, x):
        y = mod.scale_gradient(x, s)
        return sum(jnp.sum(jnp.sin(v) * v) for v in jax.tree.leaves(y))

    g = jax.grad(functools.partial(loss, gc, scale))
    g = jax.jit(g) if jit else g
    with _std():
        want = jax.grad(functools.partial(loss, optax, scale))(x)
    helpers.assert_trees_close(g(x), want, rtol=1e-6)
    assert float(loss(gc, scale, x)) == pytest.approx(float(loss(optax, scale, x)))


def test_scale_gradient_matches_numpy_and_keeps_dtypes():
    with jax.enable_x64(True):
        x = jnp.asarray([0.5, -2.0, 3.0])
        g = jax.grad(lambda x, s: jnp.sum(gc.scale_gradient(x, s) ** 3))(x, jnp.asarray(-0.25))
        np.testing.assert_allclose(g, -0.25 * 3 * np.asarray(x) ** 2, rtol=1e-15)  # dL/dx = scale * dL/dy
    xb = jnp.asarray([1.0, 2.0], jnp.bfloat16)
    gb = jax.grad(lambda x: jnp.sum(gc.scale_gradient(x, 0.5).astype(jnp.float32) ** 2))(xb)
    assert gb.dtype == jnp.bfloat16 and gb.tolist() == [1.0, 2.0]


# ================================================================= per-example clipping
def _per_example(seed=0, b=6):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.standard_normal((b, 3, 2)), jnp.float32),
        "v": jnp.asarray(rng.standard_normal((b, 4))),
    }


@JIT
@pytest.mark.parametrize("clip", [0.0, 1.5, 3.0, np.inf])
def test_per_example_global_norm_clip_matches_optax(clip, jit):
    g = _per_example()
    f = jax.jit(gc.per_example_global_norm_clip) if jit else gc.per_example_global_norm_clip
    got = f(g, clip)
    with _std():
        want = optax.per_example_global_norm_clip(g, clip)
    helpers.assert_trees_close(got[0], want[0], rtol=2e-6, atol=1e-7)
    assert int(got[1]) == int(want[1])


@JIT
@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("clip", [0.5, 2.0])
def test_per_example_layer_norm_clip_matches_optax(clip, uniform, jit):
    g = _per_example(1)
    f = (
        jax.jit(gc.per_example_layer_norm_clip, static_argnames="uniform")
        if jit
        else gc.per_example_layer_norm_clip
    )
    got = f(g, clip, uniform=uniform)
    with _std():
        want = optax.per_example_layer_norm_clip(g, clip, uniform)
    helpers.assert_trees_close(got[0], want[0], rtol=2e-6, atol=1e-7)
    assert jax.tree.map(int, got[1]) == jax.tree.map(int, want[1])


def np_clip_examples(rows, c):
    """rows: per-leaf arrays (batch on axis 0). Returns the clipped sums and the count."""
    n = np.sqrt(sum(np.sum(r.reshape(len(r), -1) ** 2, axis=1) for r in rows))  # n_i
    m = np.where(n > c, c / np.where(n > 0, n, 1), 1.0)  # m_i = C / n_i if n_i > C, else 1
    sums = [np.tensordot(m, r, axes=1) for r in rows]  # sum = sum_i m_i * g_i
    return sums, int(np.sum(m < 1))  # num_clipped


def test_per_example_clips_match_numpy():
    rng = np.random.default_rng(2)
    g = {"v": rng.standard_normal((7, 4)), "w": rng.standard_normal((7, 3, 2))}
    with jax.enable_x64(True):
        got, count = gc.per_example_global_norm_clip(jax.tree.map(jnp.asarray, g), 2.0)
        sums, n = np_clip_examples([g["v"], g["w"]], 2.0)
        np.testing.assert_allclose(got["v"], sums[0], rtol=1e-14)
        np.testing.assert_allclose(got["w"], sums[1], rtol=1e-14)
        assert int(count) == n
        for uniform in (True, False):
            got, counts = gc.per_example_layer_norm_clip(jax.tree.map(jnp.asarray, g), 2.0, uniform=uniform)
            for k, d_l in (("v", 4), ("w", 6)):
                c_l = 2.0 / np.sqrt(2) if uniform else 2.0 * np.sqrt(d_l / 10)  # C_l
                (s,), n = np_clip_examples([g[k]], c_l)
                np.testing.assert_allclose(got[k], s, rtol=1e-14)
                assert int(counts[k]) == n


def test_per_example_clips_optax_docstring_examples():
    grads = [jnp.array([[0, 0, 0], [0, 3, 4], [4, 0, 3], [3, 4, 0]])]
    for clip, value, count in ((jnp.inf, 7.0, 0), (0.0, 0.0, 3), (1.25, 1.75, 3)):
        s, n = gc.per_example_global_norm_clip(grads, clip)
        assert s[0].dtype == jnp.float32 and s[0].tolist() == [value] * 3 and int(n) == count
        s, n = gc.per_example_layer_norm_clip(grads, clip)
        assert s[0].tolist() == [value] * 3 and [int(x) for x in n] == [count]


def test_per_example_clip_keeps_bfloat16():
    g = {"a": jnp.ones((4, 3), jnp.bfloat16)}
    s, _ = gc.per_example_global_norm_clip(g, 1.0)
    assert s["a"].dtype == jnp.bfloat16


# ================================================================= unitwise_norm / unitwise_clip
UNIT_SHAPES = [(), (5,), (1, 5), (3, 4), (2, 3, 4), (2, 2, 3, 4), (2, 2, 2, 3, 2)]


@JIT
@pytest.mark.parametrize("shape", UNIT_SHAPES, ids=str)
def test_unitwise_norm_and_clip_match_optax(shape, jit):
    x = jnp.asarray(np.random.default_rng(len(shape)).standard_normal(shape), jnp.float32)
    norm = jax.jit(gc.unitwise_norm) if jit else gc.unitwise_norm
    clip = jax.jit(gc.unitwise_clip) if jit else gc.unitwise_clip
    with _std():
        want_n = optax.transforms.unitwise_norm(x)
        max_norm = 0.8 * jnp.median(want_n) * jnp.ones_like(want_n)
        want_c = optax.transforms.unitwise_clip(want_n, max_norm, x)
    n = norm(x)
    np.testing.assert_allclose(n, want_n, rtol=2e-6)
    np.testing.assert_allclose(clip(n, max_norm, x), want_c, rtol=2e-6)


def test_unitwise_norm_with_axis_matches_numpy_and_optax():
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    with jax.enable_x64(True):
        got = gc.unitwise_norm(jnp.asarray(x), axis=(1, 2))
        expected = np.broadcast_to(np.sqrt(np.sum(x**2, axis=(1, 2), keepdims=True)), x.shape)  # norm
        np.testing.assert_allclose(got, expected, rtol=1e-14)
        m = np.full_like(x, 4.0)
        clipped = gc.unitwise_clip(got, jnp.asarray(m), jnp.asarray(x))
        ref = np.where(expected < m, x, x * m / np.maximum(expected, 1e-6))  # u = grad or grad * max/g_norm
        np.testing.assert_allclose(clipped, ref, rtol=1e-14)
    with _std():
        np.testing.assert_allclose(
            gc.unitwise_norm(x.astype(np.float32), axis=2),
            optax.transforms.unitwise_norm(x.astype(np.float32), axis=2),
            rtol=2e-6,
        )


# ================================================================= microbatch
def _mb_fun(w, x, *, scale, y):
    pred = jnp.tanh(x @ w) * scale
    return {
        "sum": jnp.sum((pred - y) ** 2, axis=0),
        "rows": pred,
        "mean": jnp.mean(pred, axis=0),
        "n": pred.shape[0],
    }


def _mb_accumulator(m):
    if m is gc:
        return {"sum": "sum", "rows": "concat", "mean": "mean", "n": "sum"}
    t = optax.microbatching.AccumulationType
    return {"sum": t.SUM, "rows": t.CONCAT, "mean": t.MEAN, "n": t.SUM}


@JIT
@pytest.mark.parametrize("real", [None, 2])
def test_microbatch_matches_optax(real, jit):
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.standard_normal((3, 2)), jnp.float32)
    x = jnp.asarray(rng.standard_normal((12, 3)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((2, 12)), jnp.float32).T.copy()
    yt = y.T  # batch on axis 1 for the keyword argument

    def run(m, jitted):
        f = m.microbatch(
            lambda w, x, *, scale, y: _mb_fun(w, x, scale=scale, y=y.T),
            argnums=1,
            microbatch_size=3,
            accumulator=_mb_accumulator(m),
            argnames="y",
            in_axes=(0, 1),
            num_real_microbatches=real,
        )
        f = jax.jit(f) if jitted else f
        return f(w, x, scale=2.0, y=yt)

    got = run(gc, jit)
    with _std():
        want = run(optax, True)
    helpers.assert_trees_close(got, want, rtol=2e-6, atol=1e-7)
    if real is None:  # and the whole batch at once
        full = _mb_fun(w, x, scale=2.0, y=y)
        helpers.assert_trees_close(got["rows"], full["rows"], rtol=1e-6)
        helpers.assert_trees_close(got["sum"], full["sum"], rtol=2e-6)


def test_microbatch_matches_numpy_strided_split():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 3))
    fun = lambda x: (jnp.sum(x, axis=0), x * 2.0, jnp.mean(x**2, axis=0), jnp.sum(x, axis=0))
    with jax.enable_x64(True):
        got = gc.microbatch(fun, 0, 2, ("sum", "concat", "mean", "running_mean"), num_real_microbatches=3)(
            jnp.asarray(x)
        )
    n, m = 4, 3
    r = [(x[j::n].sum(0), x[j::n] * 2.0, (x[j::n] ** 2).mean(0), x[j::n].sum(0)) for j in range(n)]  # r_j
    np.testing.assert_allclose(got[0], sum(r[j][0] for j in range(m)), rtol=1e-14)  # sum
    concat = np.zeros_like(x)
    for j in range(m):
        concat[j::n] = r[j][1]  # concat, in the original batch order (zeros for j >= m)
    np.testing.assert_allclose(got[1], concat, rtol=1e-14)
    np.testing.assert_allclose(got[2], sum(r[j][2] for j in range(m)) / n, rtol=1e-14)  # mean: (1/n) sum
    np.testing.assert_allclose(got[3], sum(r[j][3] for j in range(m)) / m, rtol=1e-14)  # running_mean


def test_microbatch_optax_docstring_examples():
    fun = lambda x: (x + 1, jnp.sum(3 * x))
    data = jnp.array([1, 2, 3, 4])
    t = optax.microbatching.AccumulationType
    for acc in (("concat", "sum"), (t.CONCAT, t.SUM)):
        out = gc.microbatch(fun, argnums=0, microbatch_size=2, accumulator=acc)(data)
        assert out[0].tolist() == [2, 3, 4, 5] and int(out[1]) == 30 and out[1].dtype == jnp.int32
    assert gc.microbatch(fun, 0, None) is fun


# ================================================================= errors
def _bad_skip(u, step, p):
    return jnp.asarray(1), ()


ERRORS = [
    (lambda: gc.lookahead(gc.sgd(0.1), 0, 0.5), ValueError, r"lookahead: `sync_period` must be >= 1"),
    (
        lambda: gc.lookahead(gc.sgd(0.1), 2, 1.5),
        ValueError,
        r"lookahead: `slow_step_size` must be >= 0 and <= 1",
    ),
    (
        lambda: gc.lookahead(gc.sgd, 2, 0.5),
        TypeError,
        r"lookahead: `fast_optimizer` must be a GradientTransformation",
    ),
    (
        lambda: gc.lookahead(gc.sgd(0.1), 2, 0.5, reset_state=1),
        TypeError,
        r"lookahead: `reset_state` must be a bool",
    ),
    (
        lambda: _upd(gc.lookahead(gc.sgd(0.1), 2, 0.5), params=jnp.ones(2)),
        TypeError,
        r"lookahead: `params` must be a LookaheadParams",
    ),
    (
        lambda: _upd(gc.lookahead(gc.sgd(0.1), 2, 0.5)),
        ValueError,
        r"lookahead: this transformation needs the parameters",
    ),
    (lambda: gc.apply_every(0), ValueError, r"apply_every: `k` must be >= 1"),
    (lambda: gc.apply_every(1.5), ValueError, r"apply_every: `k` must be an integer"),
    (lambda: _upd(gc.apply_every(2), g=jnp.ones(3)), ValueError, r"apply_every: the update at leaf"),
    (
        lambda: gc.conditionally_transform(gc.scale(1.0), 3),
        TypeError,
        r"conditionally_transform: `should_transform_fn` must be callable",
    ),
    (
        lambda: _upd(gc.conditionally_mask(gc.scale(1.0), lambda s: s)),
        ValueError,
        r"conditionally_mask: `should_transform_fn` must return a bool scalar",
    ),
    (
        lambda: gc.conditionally_mask(gc.scale(1.0), _pred, forward_extra_args="y"),
        TypeError,
        r"conditionally_mask: `forward_extra_args` must be a bool",
    ),
    (
        lambda: gc.conditionally_transform("x", _pred),
        TypeError,
        r"conditionally_transform: `inner` must be a GradientTransformation",
    ),
    (lambda: gc.flatten(3), TypeError, r"flatten: `inner` must be a GradientTransformation"),
    (
        lambda: _upd(gc.flatten(gc.scale(1.0)), g=jnp.ones(2, jnp.int32)),
        TypeError,
        r"flatten: `updates` must hold floating-point",
    ),
    (
        lambda: _upd(gc.zero_nans(), g={"a": jnp.ones(2)}),
        ValueError,
        r"zero_nans: the `updates` tree does not match",
    ),
    (
        lambda: _upd(gc.keep_params_nonnegative()),
        ValueError,
        r"keep_params_nonnegative: this transformation needs the parameters",
    ),
    (lambda: gc.stateless_with_tree_map(3), TypeError, r"stateless_with_tree_map: `f` must be callable"),
    (lambda: gc.snapshot(3, gc.global_norm), TypeError, r"snapshot: `measure_name` must be a str"),
    (lambda: gc.snapshot("n", 3), TypeError, r"snapshot: `measure` must be callable"),
    (lambda: gc.monitor([gc.global_norm]), TypeError, r"monitor: `measures` must be a dict"),
    (lambda: gc.monitor({"a": 3}), TypeError, r"monitor: `measures\['a'\]` must be a function"),
    (lambda: gc.monitor({1: gc.global_norm}), TypeError, r"monitor: `measures` must have str keys"),
    (
        lambda: gc.measure_with_ema(gc.global_norm, 1.0),
        ValueError,
        r"measure_with_ema: `decay` must be >= 0 and < 1",
    ),
    (lambda: gc.measure_with_ema(3, 0.9), TypeError, r"measure_with_ema: `measure` must be callable"),
    (
        lambda: gc.accumulate_gradients(gc.sgd(0.1), 2, should_skip_update_fn=3),
        TypeError,
        r"accumulate_gradients: `should_skip_update_fn` must be callable",
    ),
    (
        lambda: gc.accumulate_gradients(gc.sgd(0.1), 2, should_skip_update_fn=_bad_skip).init(jnp.ones(2)),
        ValueError,
        r"accumulate_gradients: `should_skip_update_fn` must return a bool scalar",
    ),
    (
        lambda: gc.accumulate_gradients(gc.sgd(0.1), 2, should_skip_update_fn=lambda u, s, p: True).init(
            jnp.ones(2)
        ),
        TypeError,
        r"accumulate_gradients: `should_skip_update_fn` must return a pair",
    ),
    (
        lambda: gc.skip_large_updates(jnp.ones(2), 0, None, "big"),
        TypeError,
        r"skip_large_updates: `max_squared_norm` must be a number",
    ),
    (
        lambda: gc.has_updated(gc.EmptyState()),
        ValueError,
        r"has_updated: `state` must hold exactly one AccumulateGradientsState",
    ),
    (
        lambda: gc.periodic_update(jnp.ones(2), jnp.ones(2), 1, 0),
        ValueError,
        r"periodic_update: `update_period` must be >= 1",
    ),
    (
        lambda: gc.periodic_update(jnp.ones(2), jnp.ones(2, jnp.bfloat16), 1, 2),
        ValueError,
        r"periodic_update: `new_tensors` must have the dtypes",
    ),
    (lambda: gc.scale_gradient(jnp.ones(2), "a"), TypeError, r"scale_gradient: `scale` must be a number"),
    (
        lambda: gc.per_example_global_norm_clip([jnp.ones((2, 3)), jnp.ones((3,))], 1.0),
        ValueError,
        r"per_example_global_norm_clip: `grads` must have a batch dimension",
    ),
    (
        lambda: gc.per_example_global_norm_clip([], 1.0),
        ValueError,
        r"per_example_global_norm_clip: `grads` must hold at least one array",
    ),
    (
        lambda: gc.per_example_global_norm_clip([jnp.ones((2, 3))], -1.0),
        ValueError,
        r"per_example_global_norm_clip: `l2_norm_clip` must be >= 0",
    ),
    (
        lambda: gc.per_example_layer_norm_clip([jnp.ones((2, 3))], 1.0, uniform=1),
        TypeError,
        r"per_example_layer_norm_clip: `uniform` must be a bool",
    ),
    (
        lambda: gc.unitwise_norm(jnp.ones((2,) * 6)),
        ValueError,
        r"unitwise_norm: `x` must have 1 to 5 dimensions",
    ),
    (
        lambda: gc.unitwise_clip(jnp.ones(3), 1.0, jnp.ones(3)),
        ValueError,
        r"unitwise_clip: `max_norm` must have the shape of `g_norm`",
    ),
    (
        lambda: gc.unitwise_clip(jnp.ones(3), jnp.ones(3), jnp.ones(3), div_eps=0.0),
        ValueError,
        r"unitwise_clip: `div_eps` must be > 0",
    ),
    (lambda: gc.microbatch(3, 0, 2), TypeError, r"microbatch: `fun` must be callable"),
    (lambda: gc.microbatch(jnp.sum, 0, 0), ValueError, r"microbatch: `microbatch_size` must be >= 1"),
    (
        lambda: gc.microbatch(jnp.sum, 0, 2)(jnp.ones(5)),
        ValueError,
        r"microbatch: the batch size 5 must be divisible by `microbatch_size`",
    ),
    (
        lambda: gc.microbatch(lambda a, b: a, (0, 1), 2)(jnp.ones(4), jnp.ones(6)),
        ValueError,
        r"microbatch: the batch arguments must share one batch size",
    ),
    (
        lambda: gc.microbatch(jnp.sum, 0, 2, "mean")(jnp.ones(4, jnp.int32)),
        ValueError,
        r"microbatch: the 'mean' accumulation needs floating-point",
    ),
    (lambda: gc.microbatch(jnp.sum, 0, 2, "bogus"), ValueError, r"microbatch: `accumulator` must be one of"),
    (
        lambda: gc.microbatch(jnp.sum, 0, 2, in_axes=(0, 1)),
        ValueError,
        r"microbatch: `in_axes` must hold one axis per batch argument",
    ),
    (
        lambda: gc.microbatch(jnp.sum, 0, 2, ("sum", "sum"))(jnp.ones(4)),
        ValueError,
        r"microbatch: `accumulator` must be a pytree prefix",
    ),
]


def _upd(tx, g=None, params=None):
    p = jnp.ones(2) if params is None else params
    g = jnp.ones(2) if g is None else g
    return tx.update(g, tx.init(p), params)


@pytest.mark.parametrize(
    "make,err,match", ERRORS, ids=[m[0].split(":")[0] + f"-{i}" for i, (_, _, m) in enumerate(ERRORS)]
)
def test_errors_name_the_function_and_argument(make, err, match):
    with pytest.raises(err, match=match):
        make()
