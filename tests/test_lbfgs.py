"""L-BFGS and the line searches: Optax 0.2.8 parity, float64 NumPy transcriptions, the
Armijo and strong Wolfe conditions on several functions, Optax's edge cases, errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers


# ------------------------------------------------------------------- problems
def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def quadratic(x):
    """0.5 x'Ax - sum(x) with A = diag(1..n): minimum at 1/i, value -sum(1/(2i))."""
    a = jnp.arange(1, x.shape[0] + 1).astype(x.dtype)
    return 0.5 * jnp.sum(a * x * x) - jnp.sum(x)


def himmelblau(p):
    x, y = p[0], p[1]
    return (x**2 + y - 11.0) ** 2 + (x + y**2 - 7.0) ** 2


def tree_objective(p):
    """A function of a two-leaf tree (a coupled quadratic plus a quartic)."""
    return jnp.sum((p["w"] - 1.0) ** 2) + 0.5 * jnp.sum(p["b"] ** 4) + jnp.sum(p["w"][:2] * p["b"])


def max_rel(actual_seq, expected_seq) -> float:
    """Largest ``max|a - b| / max|b|`` over steps and leaves (the error against the size of
    the iterate, as `helpers.assert_trees_close_relative` measures it)."""
    worst = 0.0
    for a, b in zip(jax.tree.leaves(actual_seq), jax.tree.leaves(expected_seq)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        worst = max(worst, float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)))
    return worst


def optax_or_skip():
    return pytest.importorskip("optax")


def minimize(mod, tx, f, w, n, *, jit):
    """``n`` steps of the deterministic loop (value and gradient recycled from the state)."""
    value_and_grad = mod.value_and_grad_from_state(f)

    def step(w, s):
        v, g = value_and_grad(w, state=s)
        u, s = tx.update(g, s, w, value=v, grad=g, value_fn=f)
        return mod.apply_updates(w, u), s

    step = jax.jit(step) if jit else step
    s, ws = tx.init(w), []
    for _ in range(n):
        w, s = step(w, s)
        ws.append(w)
    return ws, s


def run_both(make, f, w0, n, *, jit, optax_jit=True):
    """gradchain (eager or jitted) and Optax (jitted unless ``optax_jit=False``) from ``w0``.

    Optax's eager and jitted runs differ by an ulp from the third step on (op by op, XLA
    contracts its two-loop recursion differently) and the Rosenbrock valley amplifies that
    to ~1e-4 after 20 steps; gradchain's update is one compiled program either way, so its
    eager run is compared with Optax's jitted one (and is bit-identical to it on L-BFGS).
    """
    optax = optax_or_skip()
    ws, _ = minimize(gc, make(gc), f, w0, n, jit=jit)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        wo, _ = minimize(optax, make(optax), f, w0, n, jit=optax_jit)
    return ws, wo


SOLVERS = {
    "zoom": lambda m: m.lbfgs(),
    "zoom_m3_unscaled": lambda m: m.lbfgs(memory_size=3, scale_init_precond=False),
    "backtracking": lambda m: m.lbfgs(linesearch=m.scale_by_backtracking_linesearch(20, store_grad=True)),
}
PROBLEMS = {
    "rosenbrock5": (rosenbrock, np.zeros(5), np.ones(5)),
    "quadratic": (quadratic, 3.0 * np.ones(6), 1.0 / np.arange(1, 7)),
}


# ------------------------------------------------------------------- Optax parity
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_lbfgs_matches_optax_float32(problem, solver, jit):
    # 15 steps: in float32 the Rosenbrock valley turns ulp differences (eager vs compiled
    # arithmetic, Optax's gradient by linear transposition vs jax.grad) into ~1e-4 by step
    # 20; whole runs are compared in float64 below.
    f, w0, _ = PROBLEMS[problem]
    ws, wo = run_both(SOLVERS[solver], f, jnp.asarray(w0, jnp.float32), 15, jit=jit)
    assert max_rel(ws, wo) <= 2e-5


def test_lbfgs_jitted_float32_rosenbrock_whole_run_is_optaxs_and_reaches_the_minimum():
    ws, wo = run_both(SOLVERS["zoom"], rosenbrock, jnp.zeros(5), 40, jit=True)
    # The same compiled arithmetic: bit-identical in practice under XLA's default flags,
    # which this test runs with (conftest.AS_SHIPPED; the suite's fast-compile flags
    # contract a few products differently in the two programs: ~2e-5 after 40 steps).
    assert max_rel(ws, wo) <= 1e-6
    np.testing.assert_allclose(np.asarray(ws[-1]), np.ones(5), atol=1e-5)
    assert float(rosenbrock(ws[-1])) <= 1e-10


def test_lbfgs_eager_matches_optax_eager_for_12_steps():
    ws, wo = run_both(SOLVERS["zoom"], rosenbrock, jnp.zeros(5), 12, jit=False, optax_jit=False)
    assert max_rel(ws, wo) <= 2e-5


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("problem", [*PROBLEMS, "rosenbrock2"])
def test_lbfgs_matches_optax_float64_whole_run_and_reaches_the_minimum(problem, solver):
    f, w0, w_star = PROBLEMS.get(problem, (rosenbrock, np.zeros(2), np.ones(2)))
    with jax.enable_x64(True):
        ws, wo = run_both(SOLVERS[solver], f, jnp.asarray(w0, jnp.float64), 60, jit=True)
        assert max_rel(ws, wo) <= 1e-9
        np.testing.assert_allclose(np.asarray(ws[-1]), w_star, atol=1e-6)
        assert float(f(ws[-1])) - float(f(jnp.asarray(w_star))) <= 1e-10


def _sgd_with(mod, search):
    return mod.chain(mod.sgd(1.0), search)


LINESEARCHES = {
    "zoom_keep": lambda m: _sgd_with(m, m.scale_by_zoom_linesearch(15)),
    "zoom_one_capped": lambda m: _sgd_with(
        m, m.scale_by_zoom_linesearch(15, 0.3, initial_guess_strategy="one", approx_dec_rtol=None)
    ),
    "backtracking": lambda m: _sgd_with(m, m.scale_by_backtracking_linesearch(15)),
    "backtracking_rtol": lambda m: _sgd_with(
        m, m.scale_by_backtracking_linesearch(10, 0.3, 0.5, 2.0, 4.0, 1e-3, 1e-3, store_grad=True)
    ),
}


def _data_loss(w, x, y):
    return 0.5 * jnp.mean((x @ w - y) ** 2) + 0.01 * jnp.sum(w**4)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("search", LINESEARCHES)
def test_linesearch_with_sgd_and_data_matches_optax(search, jit):
    # Optax's docstring example: the data reaches value_fn through update's extra arguments.
    optax = optax_or_skip()
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.standard_normal((12, 8, 4)), jnp.float32)
    ys = jnp.asarray(rng.standard_normal((12, 8)), jnp.float32)

    def run(mod, tx):
        def step(w, s, x, y):
            v, g = jax.value_and_grad(_data_loss)(w, x, y)
            u, s = tx.update(g, s, w, value=v, grad=g, value_fn=_data_loss, x=x, y=y)
            return mod.apply_updates(w, u), s

        step = jax.jit(step) if jit or mod is not gc else step  # Optax jitted (see run_both)
        w, s, out = jnp.ones(4), tx.init(jnp.ones(4)), []
        for x, y in zip(xs, ys):
            w, s = step(w, s, x, y)
            out.append((w, s[1].learning_rate, s[1].value))
        return out

    got = run(gc, LINESEARCHES[search](gc))
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        want = run(optax, LINESEARCHES[search](optax))
    assert max_rel(got, want) <= 2e-5


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("kw", [{}, {"memory_size": 3, "scale_init_precond": False}], ids=["default", "m3"])
def test_scale_by_lbfgs_matches_optax_on_a_tree(kw, jit):
    optax = optax_or_skip()
    params = helpers.random_tree(0, {"w": (3, 4), "b": (5,)})
    grads = helpers.grad_sequence(1, params, 14)
    # scale_by_lbfgs reads the params it is given: drive both with the same sequence
    seq = helpers.grad_sequence(2, params, 14, scale=0.1)

    def run(mod, tx):
        step = jax.jit(tx.update) if jit else tx.update
        s, out = tx.init(params), []
        for g, dp in zip(grads, seq):
            p = jax.tree.map(lambda a, b: a + b, params, dp)
            u, s = step(g, s, p)
            out.append(u)
        return out

    got = run(gc, gc.scale_by_lbfgs(**kw))
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        want = run(optax, optax.scale_by_lbfgs(**kw))
    assert max_rel(got, want) <= 2e-5


def test_lbfgs_with_learning_rate_and_no_linesearch_matches_optax():
    optax = optax_or_skip()
    params = helpers.random_tree(0, {"w": (3, 4), "b": (5,)})
    grads = helpers.grad_sequence(1, params, 12)
    u, p, s = helpers.run_steps(gc.lbfgs(0.1, linesearch=None), params, grads, jit=True)
    uo, po, so = helpers.run_optax(optax.lbfgs(0.1, linesearch=None), params, grads, jit=True)
    assert max_rel(p, po) <= 2e-5
    assert len(s) == len(so) == 3 and isinstance(s[2], gc.EmptyState)  # Optax's state layout


# ------------------------------------------------------------------- float64 transcriptions
def np_lbfgs(ws, gs, m, scale_init_precond):
    """`scale_by_lbfgs`'s docstring, one line per formula line (flat float64 vectors)."""
    S, Y, R, out = [], [], [], []
    for k, (w, g) in enumerate(zip(ws, gs)):
        if k > 0:
            S.append(w - ws[k - 1])
            Y.append(g - gs[k - 1])
            R.append(0.0 if Y[-1] @ S[-1] == 0 else 1.0 / (Y[-1] @ S[-1]))
            S, Y, R = S[-m:], Y[-m:], R[-m:]
        q, a = g.copy(), {}
        for i in reversed(range(len(S))):
            a[i] = R[i] * (S[i] @ q)
            q = q - a[i] * Y[i]
        if not scale_init_precond:
            gamma = 1.0
        elif k == 0:
            gamma = min(1.0, 1.0 / np.linalg.norm(g))
        else:
            gamma = (Y[-1] @ S[-1]) / (Y[-1] @ Y[-1]) if Y[-1] @ Y[-1] > 0 else 1.0
        r = gamma * q
        for i in range(len(S)):
            b = R[i] * (Y[i] @ r)
            r = r + (a[i] - b) * S[i]
        out.append(r)
    return out


@pytest.mark.parametrize("m,scaled", [(3, True), (1, True), (20, True), (3, False)])
def test_scale_by_lbfgs_matches_float64_two_loop_transcription(m, scaled):
    shapes = {"w": (3, 2), "b": (4,)}
    with jax.enable_x64(True):
        ws = [helpers.random_tree(k, shapes, jnp.float64) for k in range(14)]
        gs = helpers.grad_sequence(99, ws[0], 14)
        tx = gc.scale_by_lbfgs(m, scale_init_precond=scaled)
        s, got = tx.init(ws[0]), []
        for w, g in zip(ws, gs):
            u, s = tx.update(g, s, w)
            got.append(np.concatenate([np.ravel(x) for x in jax.tree.leaves(u)]))
    flat = lambda t: np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(t)])
    want = np_lbfgs([flat(w) for w in ws], [flat(g) for g in gs], m, scaled)
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"step {k}")


def np_backtracking(f, w, u, v0, slope, prev, *, steps, c1, shrink, grow, top, atol=0.0, rtol=0.0):
    """`scale_by_backtracking_linesearch`'s docstring rule: the accepted step."""
    eta = min(grow * prev, top) if prev > 0 else top
    for j in range(steps + 1):
        eta = eta if j == 0 else shrink * eta
        err = f(w + eta * u) - (1 + rtol) * v0 - c1 * eta * slope
        if err <= atol:
            return eta
    return eta


def np_zoom(f, df, w, u, guess, *, steps=20, c1=1e-4, c2=0.9, c3=1e-6, grow=2.0, precision=1e-5):
    """`scale_by_zoom_linesearch` (Nocedal & Wright 3.5/3.6 with Hager-Zhang's approximate
    decrease), in float64: the accepted step."""
    v0, s0 = f(w), df(w) @ u
    phi = lambda eta: (f(w + eta * u), df(w + eta * u) @ u)

    def errors(eta, v, s):
        dec = v - v0 - c1 * eta * s0
        dec = min(max(s - (2 * c1 - 1) * s0, v - v0 - c3 * abs(v0)), dec)
        return max(dec, 0.0), max(abs(s) - c2 * abs(s0), 0.0)

    prev, safe, k = (0.0, v0, s0), (0.0, v0), 0
    while True:  # Algorithm 3.5
        eta = guess if k == 0 else grow * prev[0]
        v, s = phi(eta)
        dec, curv = errors(eta, v, s)
        k += 1
        safe = (eta, v) if dec <= 0 else safe
        if max(dec, curv) <= 0:
            return eta
        if dec > 0 or (v >= prev[1] and k > 1):
            low, high = prev, (eta, v, s)
            break
        if s >= 0:
            low, high = (eta, v, s), prev
            break
        if k >= steps:
            return safe[0] if safe[0] > 0 else eta
        prev = (eta, v, s)
    ref = low[:2]
    while True:  # Algorithm 3.6
        (lo, v_lo, s_lo), (hi, v_hi, _) = low, high
        width, left, right = abs(hi - lo), min(lo, hi), max(lo, hi)
        db, dc = hi - lo, ref[0] - lo
        with np.errstate(all="ignore"):
            rb, rc = v_hi - v_lo - s_lo * db, ref[1] - v_lo - s_lo * dc
            den = (db * dc) ** 2 * (db - dc)
            A, B = (dc**2 * rb - db**2 * rc) / den, (-(dc**3) * rb + db**3 * rc) / den
            cubic = lo + (-B + np.sqrt(B * B - 3 * A * s_lo)) / (3 * A)
        quad = lo - s_lo / (2 * (v_hi - v_lo - s_lo * db) / db**2)
        if left + 0.2 * width < cubic < right - 0.2 * width:
            eta = cubic
        elif left + 0.1 * width < quad < right - 0.1 * width:
            eta = quad
        else:
            eta = (lo + hi) / 2
        v, s = phi(eta)
        dec, curv = errors(eta, v, s)
        k += 1
        safe = (eta, v) if dec <= 0 and v < safe[1] else safe
        if max(dec, curv) <= 0:
            return eta
        if k >= steps or (width <= precision and safe[0] > 0):
            return safe[0] if safe[0] > 0 else eta
        if dec > 0 or v >= v_lo:
            ref, high = high[:2], (eta, v, s)
        else:
            ref = high[:2] if s * (hi - lo) >= 0 else low[:2]
            high = low if s * (hi - lo) >= 0 else high
            low = (eta, v, s)


@pytest.mark.parametrize("search", ["backtracking", "zoom_keep", "zoom_one"])
def test_linesearches_match_float64_transcriptions_over_sgd_steps(search):
    A = np.diag([1.0, 4.0, 9.0]) + 0.5
    f = lambda w: 0.5 * w @ A @ w + 0.25 * np.sum(w**4)
    df = lambda w: A @ w + w**3
    jf = lambda w: 0.5 * w @ jnp.asarray(A) @ w + 0.25 * jnp.sum(w**4)
    make = {
        "backtracking": lambda: gc.scale_by_backtracking_linesearch(12, 0.3, 0.5, 1.5, 2.0),
        "zoom_keep": lambda: gc.scale_by_zoom_linesearch(20),
        "zoom_one": lambda: gc.scale_by_zoom_linesearch(20, initial_guess_strategy="one"),
    }[search]
    with jax.enable_x64(True):
        tx = gc.chain(gc.sgd(1.0), make())
        w = jnp.asarray([1.5, -1.0, 0.7])
        s, got = tx.init(w), []
        for _ in range(12):
            v, g = jax.value_and_grad(jf)(w)
            u, s = tx.update(g, s, w, value=v, grad=g, value_fn=jf)
            w = gc.apply_updates(w, u)
            got.append((float(s[1].learning_rate), np.asarray(w)))
    w, prev = np.array([1.5, -1.0, 0.7]), 1.0
    for t, (eta_got, w_got) in enumerate(got):
        u = -df(w)
        if search == "backtracking":
            eta = np_backtracking(
                f, w, u, f(w), -u @ u, prev, steps=12, c1=0.3, shrink=0.5, grow=1.5, top=2.0
            )
        else:
            eta = np_zoom(f, df, w, u, 1.0 if search == "zoom_one" else prev)
        w, prev = w + eta * u, eta
        np.testing.assert_allclose(eta_got, eta, rtol=1e-9, err_msg=f"step {t}")
        np.testing.assert_allclose(w_got, w, rtol=1e-9, atol=1e-14, err_msg=f"step {t}")


# ------------------------------------------------------------------- the conditions themselves
def _exp_sum(x):
    return jnp.log(jnp.sum(jnp.exp(x))) + 0.1 * jnp.sum(x**2)


def _quartic(x):
    return jnp.sum((x - 0.5) ** 4 + x**2)


def _ill_quadratic(x):
    return 0.5 * jnp.sum(jnp.logspace(0, 4, x.shape[0]) * x**2)


WOLFE_FUNCTIONS = {
    "rosenbrock": (rosenbrock, [-1.2, 1.0, 0.3]),
    "himmelblau": (himmelblau, [1.0, 1.0]),
    "log_sum_exp": (_exp_sum, [2.0, -1.0, 0.5, 3.0]),
    "quartic": (_quartic, [3.0, -2.0]),
    "ill_quadratic": (_ill_quadratic, [1.0, 1.0, 1.0, 1.0]),
}


def _one_search(tx, f, w, u, prev_lr=None):
    state = tx.init(w)
    if prev_lr is not None:
        state = state._replace(learning_rate=jnp.asarray(prev_lr, state.learning_rate.dtype))
    v, g = jax.value_and_grad(f)(w)
    out, state = tx.update(u, state, w, value=v, grad=g, value_fn=f)
    return gc.apply_updates(w, out), state, v, g


@pytest.mark.parametrize("guess", [1e-3, 1.0, 50.0])
@pytest.mark.parametrize("direction", ["steepest", "scaled"])
@pytest.mark.parametrize("name", WOLFE_FUNCTIONS)
def test_zoom_step_satisfies_the_strong_wolfe_conditions(name, direction, guess):
    f, w0 = WOLFE_FUNCTIONS[name]
    c1, c2 = 1e-4, 0.9 if direction == "steepest" else 0.3
    with jax.enable_x64(True):
        w = jnp.asarray(w0, jnp.float64)
        g = jax.grad(f)(w)
        scale = jnp.linspace(0.2, 2.0, w.shape[0]) if direction == "scaled" else 1.0
        u = -scale * g  # a descent direction
        tx = gc.scale_by_zoom_linesearch(40, slope_rtol=c1, curv_rtol=c2, approx_dec_rtol=None)
        w_new, state, v, g = _one_search(tx, f, w, u, prev_lr=guess)
        eta = float(state.learning_rate)
        slope0, slope = float(u @ g), float(u @ jax.grad(f)(w_new))
        assert eta > 0
        assert float(f(w_new)) <= float(v) + c1 * eta * slope0  # sufficient decrease (Armijo)
        assert abs(slope) <= c2 * abs(slope0)  # small curvature (strong Wolfe)
        assert float(state.info.decrease_error) == 0 and float(state.info.curvature_error) == 0
        # the stored value and gradient are those of the point reached
        np.testing.assert_allclose(float(state.value), float(f(w_new)), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(state.grad), np.asarray(jax.grad(f)(w_new)), rtol=1e-10)


@pytest.mark.parametrize("max_lr", [1.0, 10.0])
@pytest.mark.parametrize("name", WOLFE_FUNCTIONS)
def test_backtracking_step_satisfies_armijo_and_is_the_first_that_does(name, max_lr):
    f, w0 = WOLFE_FUNCTIONS[name]
    c1, shrink = 0.3, 0.5
    with jax.enable_x64(True):
        w = jnp.asarray(w0, jnp.float64)
        u = -jax.grad(f)(w)
        tx = gc.scale_by_backtracking_linesearch(60, c1, shrink, 1.5, max_lr, store_grad=True)
        w_new, state, v, g = _one_search(tx, f, w, u)
        eta, slope0 = float(state.learning_rate), float(u @ g)
        assert float(f(w_new)) <= float(v) + c1 * eta * slope0
        steps = int(state.info.num_linesearch_steps)
        assert eta == pytest.approx(min(1.5 * 1.0, max_lr) * shrink ** (steps - 1), rel=1e-12)
        if steps > 1:  # the step before was rejected
            assert float(f(w + (eta / shrink) * u)) > float(v) + c1 * (eta / shrink) * slope0
        np.testing.assert_allclose(np.asarray(state.grad), np.asarray(jax.grad(f)(w_new)), rtol=1e-10)


def test_lbfgs_on_a_tree_with_recycled_values_converges():
    w = {"w": jnp.zeros(3), "b": jnp.ones(2)}
    ws, state = minimize(gc, gc.lbfgs(), tree_objective, w, 30, jit=True)
    g = jax.grad(tree_objective)(ws[-1])
    assert float(gc.global_norm(g)) <= 1e-4
    assert int(state[0].count) == 30


# ------------------------------------------------------------------- Optax's edge cases
def test_zoom_on_an_ascent_direction_barely_moves_and_says_why(capsys):
    f = lambda w: jnp.dot(w, w)
    w, u = 60 * jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])
    tx = gc.scale_by_zoom_linesearch(18, curv_rtol=0.5, verbose=True)
    _, state, _, _ = _one_search(tx, f, w, u, prev_lr=1.0)
    jax.effects_barrier()
    assert float(state.learning_rate) < 1e-5
    assert "no step satisfies both criteria" in capsys.readouterr().out


def test_zoom_with_a_too_small_max_learning_rate_takes_it():
    f = lambda w: jnp.dot(w, w)
    w, u = -60 * jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])
    tx = gc.scale_by_zoom_linesearch(10, 10.0, curv_rtol=0.5)
    _, state, _, _ = _one_search(tx, f, w, u, prev_lr=1.0)
    assert float(state.learning_rate) == 10.0 and float(state.info.curvature_error) > 0


def test_zoom_with_too_few_steps_stops_at_the_last_trial_and_succeeds_with_enough():
    f = lambda w: jnp.dot(w, w)
    w, u = -60 * jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])
    _, state, _, _ = _one_search(gc.scale_by_zoom_linesearch(5, curv_rtol=0.5), f, w, u, 1.0)
    assert float(state.learning_rate) == 16.0  # 1, 2, 4, 8, 16: strong Wolfe needs >= 30
    _, state, _, _ = _one_search(gc.scale_by_zoom_linesearch(30, curv_rtol=0.5), f, w, u, 1.0)
    assert float(state.learning_rate) >= 30.0 and float(state.info.curvature_error) == 0


def test_zoom_first_trial_past_the_minimum_high_below_low():
    # jax-ml/jax#16236: w + u has sufficient decrease, too much curvature, positive slope
    f = lambda x: x**2
    w = jnp.asarray(-1.0)
    _, state, _, _ = _one_search(gc.scale_by_zoom_linesearch(20), f, w, -1.95 * w, 1.0)
    assert float(state.info.decrease_error) == 0 and float(state.info.curvature_error) == 0


def test_zoom_steps_back_into_the_domain_after_an_inf_value():
    f = jnp.log  # a trial step 1 lands at log(-1) = nan
    w_new, state, _, _ = _one_search(
        gc.scale_by_zoom_linesearch(30), f, jnp.asarray(1.0), jnp.asarray(-2.0), 1.0
    )
    assert 0 < float(state.learning_rate) <= 0.5 and float(w_new) >= 0  # back in the domain


def test_backtracking_on_nan_everywhere_does_not_move_then_recovers():
    # Optax sets the step to 0 and then guesses 1.5 * 0 = 0 forever; gradchain restarts
    # from max_learning_rate after a zero step.
    tx = gc.scale_by_backtracking_linesearch(3)
    bad = lambda w: jnp.log(w - 10.0).sum()  # NaN near w
    good = lambda w: jnp.sum(w**2)
    w = jnp.ones(2)
    state = tx.init(w)
    u, state = tx.update(-w, state, w, value_fn=bad, value=1.0, grad=jnp.ones(2))
    assert float(state.learning_rate) == 0 and not np.any(np.asarray(u))
    assert float(state.value) == 1.0  # the value at the point reached (w itself)
    u, state = tx.update(-w, state, w, value_fn=good)
    assert float(state.learning_rate) == 1.0


def test_zoom_keep_restarts_from_one_after_a_zero_step():
    tx = gc.scale_by_zoom_linesearch(10)
    state = tx.init(jnp.ones(2))._replace(learning_rate=jnp.asarray(0.0))
    f = lambda w: jnp.sum((w - 3.0) ** 2)
    _, state, _, _ = _one_search(tx, f, jnp.ones(2), 2 * jnp.ones(2), prev_lr=0.0)
    assert float(state.learning_rate) == 1.0 and float(state.info.curvature_error) == 0


def test_zoom_without_curvature_condition_is_a_decrease_search():
    f = lambda w: jnp.sum(w**2)
    w = jnp.array([1.0, -2.0])
    tx = gc.scale_by_zoom_linesearch(10, curv_rtol=math.inf)
    _, state, _, _ = _one_search(tx, f, w, -0.1 * w, prev_lr=1.0)
    assert float(state.learning_rate) == 1.0 and int(state.info.num_linesearch_steps) == 1


def test_backtracking_with_infinite_increase_starts_at_max_learning_rate():
    f = lambda w: jnp.sum(w**2)
    tx = gc.scale_by_backtracking_linesearch(10, increase_factor=math.inf, max_learning_rate=0.25)
    _, state, _, _ = _one_search(tx, f, jnp.ones(2), -jnp.ones(2), prev_lr=1e-3)
    assert float(state.learning_rate) == 0.25


@pytest.mark.parametrize(
    "search",
    [
        gc.scale_by_zoom_linesearch(20, initial_guess_strategy="one"),
        gc.scale_by_backtracking_linesearch(20, store_grad=True),
    ],
    ids=["zoom", "backtracking"],
)
def test_lbfgs_on_complex_parameters_matches_the_real_problem(search):
    # gradients of complex parameters are conjugated JAX gradients (the ascent direction
    # of the real pairs); value_and_grad_from_state returns them so
    mat = jnp.array([[1, -2], [3, 4], [-4 + 2j, 5 - 3j], [-2 - 2j, 6]], jnp.complex64)
    f_complex = lambda z: jnp.sum(jnp.abs(mat @ z) ** 1.5)
    f_real = lambda x: f_complex(jax.lax.complex(x[0], x[1]))
    z0 = jnp.array([1 - 1j, 0 + 1j], jnp.complex64)
    zs, _ = minimize(gc, gc.lbfgs(linesearch=search), f_complex, z0, 30, jit=True)
    xs, _ = minimize(gc, gc.lbfgs(linesearch=search), f_real, jnp.stack([z0.real, z0.imag]), 30, jit=True)
    np.testing.assert_allclose(
        np.asarray(zs[-1]), np.asarray(xs[-1][0]) + 1j * np.asarray(xs[-1][1]), atol=1e-4
    )
    assert float(f_complex(zs[-1])) <= float(f_complex(z0)) * 1e-3


def test_lbfgs_on_a_steep_objective_and_a_bad_start():
    steep = lambda x: jnp.mean((1e4 * x) ** 2)
    ws, _ = minimize(gc, gc.lbfgs(), steep, jnp.ones(2), 20, jit=True)
    np.testing.assert_allclose(np.asarray(ws[-1]), 0.0, atol=1e-5)
    ws, _ = minimize(gc, gc.lbfgs(), himmelblau, jnp.array([92.0, 0.001]), 60, jit=True)
    assert float(himmelblau(ws[-1])) <= 1e-5


def test_first_lbfgs_step_is_capped_to_the_unit_ball():
    tx = gc.scale_by_lbfgs()
    w = jnp.ones(3)
    u, _ = tx.update(jnp.array([30.0, -40.0, 0.0]), tx.init(w), w)
    np.testing.assert_allclose(np.asarray(u), [0.6, -0.8, 0.0], rtol=1e-6)
    u, _ = tx.update(jnp.array([0.3, -0.4, 0.0]), tx.init(w), w)
    np.testing.assert_allclose(np.asarray(u), [0.3, -0.4, 0.0], rtol=1e-6)


# ------------------------------------------------------------------- extra arguments
def test_value_and_grad_may_be_omitted_and_unused_extra_args_are_ignored():
    f = lambda w, x: jnp.sum((w - x) ** 2)
    w, x = jnp.zeros(3), jnp.array([1.0, 2.0, 3.0])
    tx = gc.lbfgs()
    v, g = jax.value_and_grad(f)(w, x)
    u1, s1 = tx.update(g, tx.init(w), w, value=v, grad=g, value_fn=f, x=x)
    u2, s2 = tx.update(g, tx.init(w), w, value_fn=f, x=x, unused=42)  # Optax raises on `unused`
    helpers.assert_trees_close(u1, u2, rtol=0)
    helpers.assert_trees_close(s1, s2, rtol=0)


def test_value_fn_with_kwargs_receives_every_extra_argument():
    seen = {}

    def f(w, **kw):
        seen.update(kw)
        return jnp.sum(w**2) * kw["scale"]

    tx = gc.scale_by_backtracking_linesearch(5)
    tx.update(-jnp.ones(2), tx.init(jnp.ones(2)), jnp.ones(2), value_fn=f, scale=2.0, tag="x")
    assert set(seen) == {"scale", "tag"}


def test_value_and_grad_from_state_recycles_and_falls_back():
    calls = []

    def f(w):
        calls.append(1)
        return jnp.sum(w**2)

    value_and_grad = gc.value_and_grad_from_state(f)
    tx = gc.chain(gc.sgd(0.5), gc.scale_by_zoom_linesearch(10))
    w = jnp.array([1.0, 2.0])
    state = tx.init(w)
    v, g = value_and_grad(w, state=state)  # value inf at init: computed
    assert calls and float(v) == 5.0
    u, state = tx.update(g, state, w, value=v, grad=g, value_fn=f)
    w = gc.apply_updates(w, u)
    calls.clear()
    v, g = value_and_grad(w, state=state)
    assert not calls  # taken from the state
    np.testing.assert_allclose(float(v), float(f(w)))
    np.testing.assert_allclose(np.asarray(g), np.asarray(2 * w))
    jv, jg = jax.jit(lambda w, s: value_and_grad(w, state=s))(w, state)
    assert float(jv) == float(v)


def test_bfloat16_params_keep_their_dtype_and_scalars_are_float32():
    f = lambda w: jnp.sum(jnp.square(w.astype(jnp.float32) - 1.0))
    w = jnp.zeros(4, jnp.bfloat16)
    ws, state = minimize(gc, gc.lbfgs(), f, w, 5, jit=True)
    assert ws[-1].dtype == jnp.bfloat16 and state[2].learning_rate.dtype == jnp.float32
    assert state[2].grad.dtype == jnp.bfloat16 and state[0].weights_memory.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(ws[-1], np.float32), 1.0, atol=1e-2)


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: gc.scale_by_lbfgs(0), ValueError, r"scale_by_lbfgs: `memory_size` must be >= 1, got 0"),
        (lambda: gc.scale_by_lbfgs(2.0), TypeError, r"scale_by_lbfgs: `memory_size` must be a Python int"),
        (lambda: gc.scale_by_lbfgs(scale_init_precond=1), TypeError, r"scale_by_lbfgs: `scale_init_precond` must be a bool"),
        (lambda: gc.lbfgs(-1.0), ValueError, r"lbfgs: `learning_rate` must be >= 0, got -1.0"),
        (lambda: gc.lbfgs(memory_size=0), ValueError, r"lbfgs: scale_by_lbfgs: `memory_size` must be >= 1"),
        (lambda: gc.lbfgs(linesearch="zoom"), TypeError, r"lbfgs: `linesearch` must be a GradientTransformation"),
        (lambda: gc.scale_by_backtracking_linesearch(-1), ValueError, r"scale_by_backtracking_linesearch: `max_backtracking_steps` must be >= 0"),
        (lambda: gc.scale_by_backtracking_linesearch(2.5), ValueError, r"`max_backtracking_steps` must be an integer, got 2.5"),
        (lambda: gc.scale_by_backtracking_linesearch(5, slope_rtol=1.0), ValueError, r"`slope_rtol` must be >= 0 and < 1, got 1.0"),
        (lambda: gc.scale_by_backtracking_linesearch(5, decrease_factor=1.0), ValueError, r"`decrease_factor` must be > 0 and < 1, got 1.0"),
        (lambda: gc.scale_by_backtracking_linesearch(5, increase_factor=0.0), ValueError, r"`increase_factor` must be > 0, got 0.0"),
        (lambda: gc.scale_by_backtracking_linesearch(5, max_learning_rate=math.inf), ValueError, r"`max_learning_rate` must be finite"),
        (lambda: gc.scale_by_backtracking_linesearch(5, atol=-1.0), ValueError, r"`atol` must be >= 0, got -1.0"),
        (lambda: gc.scale_by_backtracking_linesearch(5, rtol=math.nan), ValueError, r"`rtol` must be a number, got NaN"),
        (lambda: gc.scale_by_backtracking_linesearch(5, store_grad=None), TypeError, r"`store_grad` must be a bool, got None"),
        (lambda: gc.scale_by_zoom_linesearch(0), ValueError, r"scale_by_zoom_linesearch: `max_linesearch_steps` must be >= 1, got 0"),
        (lambda: gc.scale_by_zoom_linesearch(5, 0.0), ValueError, r"`max_learning_rate` must be > 0, got 0.0"),
        (lambda: gc.scale_by_zoom_linesearch(5, tol=-1.0), ValueError, r"`tol` must be >= 0, got -1.0"),
        (lambda: gc.scale_by_zoom_linesearch(5, increase_factor=1.0), ValueError, r"`increase_factor` must be > 1, got 1.0"),
        (lambda: gc.scale_by_zoom_linesearch(5, slope_rtol=-0.1), ValueError, r"`slope_rtol` must be >= 0 and < 1"),
        (lambda: gc.scale_by_zoom_linesearch(5, curv_rtol=0.0), ValueError, r"`curv_rtol` must be > 0, got 0.0"),
        (lambda: gc.scale_by_zoom_linesearch(5, slope_rtol=0.5, curv_rtol=0.4), ValueError, r"`curv_rtol` must be > `slope_rtol` \(0.5\), got 0.4"),
        (lambda: gc.scale_by_zoom_linesearch(5, approx_dec_rtol=-1.0), ValueError, r"`approx_dec_rtol` must be >= 0"),
        (lambda: gc.scale_by_zoom_linesearch(5, stepsize_precision=-1.0), ValueError, r"`stepsize_precision` must be >= 0"),
        (lambda: gc.scale_by_zoom_linesearch(5, initial_guess_strategy="two"), ValueError, r"`initial_guess_strategy` must be 'one' or 'keep', got 'two'"),
        (lambda: gc.scale_by_zoom_linesearch(5, verbose="yes"), TypeError, r"`verbose` must be a bool"),
        (lambda: gc.value_and_grad_from_state(3), TypeError, r"value_and_grad_from_state: `value_fn` must be callable, got 3"),
    ],
)  # fmt: skip
def test_bad_hyperparameters_raise_naming_the_argument(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


SEARCHES = [gc.scale_by_zoom_linesearch(5), gc.scale_by_backtracking_linesearch(5)]


@pytest.mark.parametrize("tx", SEARCHES, ids=["zoom", "backtracking"])
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({}, ValueError, r"`update` needs the objective: pass `value_fn=`"),
        ({"value_fn": 3}, TypeError, r"`value_fn` must be callable, got 3"),
        ({"value_fn": lambda w: w**2}, ValueError, r"`value_fn` must return a scalar, got an array of shape \(2,\)"),
        ({"value_fn": lambda w: jnp.sum(w).astype(jnp.int32)}, TypeError, r"`value_fn` must return a real floating scalar"),
        ({"value_fn": lambda w: jnp.sum(w), "value": jnp.ones(2)}, ValueError, r"`value` must be a scalar, got an array of shape \(2,\)"),
        ({"value_fn": lambda w: jnp.sum(w), "grad": {"a": jnp.ones(2)}}, ValueError, r"`grad` must have the tree structure of `params`"),
    ],
)  # fmt: skip
def test_bad_update_arguments_raise(tx, kwargs, exc, match):
    w = jnp.ones(2)
    with pytest.raises(exc, match=match):
        tx.update(-w, tx.init(w), w, **kwargs)


@pytest.mark.parametrize("tx", [*SEARCHES, gc.scale_by_lbfgs()], ids=["zoom", "backtracking", "lbfgs"])
def test_updates_must_match_the_state_and_params_are_needed(tx):
    w = jnp.ones(2)
    with pytest.raises(ValueError, match="has shape"):
        tx.update(jnp.ones(3), tx.init(w), w, value_fn=jnp.sum)
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(w, tx.init(w), None, value_fn=jnp.sum)


def test_value_and_grad_from_state_needs_exactly_one_search_with_a_gradient():
    f = lambda w: jnp.sum(w**2)
    value_and_grad = gc.value_and_grad_from_state(f)
    w = jnp.ones(2)
    with pytest.raises(ValueError, match="exactly one line-search state"):
        value_and_grad(w, state=gc.adam(0.1).init(w))
    two = gc.chain(gc.scale_by_zoom_linesearch(5), gc.scale_by_zoom_linesearch(5))
    with pytest.raises(ValueError, match="found 2"):
        value_and_grad(w, state=two.init(w))
    with pytest.raises(ValueError, match="store_grad=True"):
        value_and_grad(w, state=gc.scale_by_backtracking_linesearch(5).init(w))
