"""early_stopping and reduce_on_plateau: scripted sequences, NumPy transcriptions, Optax, flax.nnx."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers


def _run_values(tx, values, *, jit=True, params=None, grads=None, apply=gc.apply_updates):
    """Feed ``value=values[t]`` at step t; returns (updates, params, states) per step."""
    params = jnp.ones(3) if params is None else params
    grads = [jnp.array([1.0, -2.0, 0.5])] * len(values) if grads is None else grads

    def step(p, s, g, v):
        u, s = tx.update(g, s, p, value=v)
        return u, apply(p, u), s

    step = jax.jit(step) if jit else step
    state = tx.init(params)
    us, ps, ss = [], [], []
    for g, v in zip(grads, values):
        u, params, state = step(params, state, g, jnp.asarray(v, jnp.float32))
        us.append(u)
        ps.append(params)
        ss.append(state)
    return us, ps, ss


# ----------------------------------------------------------------- early stopping


def np_early_stopping(values, patience, min_delta, mode):
    """Per step: (should_stop, best_value, best_step, num_bad_steps), the docstring's rule."""
    best, best_step, bad, stopped, out = (np.inf if mode == "min" else -np.inf), 0, 0, False, []
    for t, v in enumerate(values, start=1):
        if not stopped:
            improved = v < best - min_delta if mode == "min" else v > best + min_delta
            if improved:
                best, best_step = v, t
            bad = 0 if improved else bad + 1  # bad_t
            stopped = (not improved) and bad >= patience  # stop_t
        out.append((stopped, best, best_step, bad))
    return out


def _stop_step(states):
    stops = [bool(s.should_stop) for s in states]
    return stops.index(True) + 1 if any(stops) else None


@pytest.mark.parametrize(
    "values,kwargs,stop_at,best,best_step",
    [
        ([10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0], {"patience": 2}, None, 1.0, 10),  # improving
        ([5.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0], {"patience": 2}, 5, 3.0, 3),  # plateau
        ([5.0, 4.0, 3.0, 3.5, 2.9, 3.0, 3.1, 3.2], {"patience": 3}, 8, 2.9, 5),  # recovery resets the count
        (
            [1.0, 0.99, 0.995, 0.985, 0.992, 0.98],
            {"patience": 3, "min_delta": 0.05},
            4,
            1.0,
            1,
        ),  # noise < min_delta
        (
            [1.0, 0.99, 0.995, 0.985, 0.992, 0.98],
            {"patience": 3},
            None,
            0.98,
            6,
        ),  # the same noise, no min_delta
        ([0.5, 0.6, 0.7, 0.65, 0.68, 0.69, 0.9], {"patience": 3, "mode": "max"}, 6, 0.7, 3),  # accuracy
        ([2.0, 1.0, 1.0], {"patience": 0}, 3, 1.0, 2),  # patience 0: first non-improvement
        (
            [2.0, float("nan"), 1.5, float("nan"), float("nan")],
            {"patience": 2},
            5,
            1.5,
            3,
        ),  # NaN never improves
    ],
)
def test_early_stopping_stops_at_the_expected_step(values, kwargs, stop_at, best, best_step):
    us, ps, ss = _run_values(gc.early_stopping(**kwargs), values)
    assert _stop_step(ss) == stop_at
    assert float(ss[-1].best_value) == pytest.approx(best) and int(ss[-1].best_step) == best_step
    for t, u in enumerate(us, start=1):
        stopped = stop_at is not None and t >= stop_at
        assert bool(jnp.all(u == 0)) == stopped, f"step {t}"
    if stop_at is not None:  # parameters frozen from the stopping step on
        for p in ps[stop_at - 1 :]:
            np.testing.assert_array_equal(
                np.asarray(p), np.asarray(ps[stop_at - 2] if stop_at > 1 else jnp.ones(3))
            )


@pytest.mark.parametrize(
    "patience,min_delta,mode", [(3, 0.0, "min"), (2, 0.05, "min"), (4, 0.02, "max"), (0, 0.1, "max")]
)
def test_early_stopping_matches_numpy_on_random_values(patience, min_delta, mode):
    rng = np.random.default_rng(patience)
    values = np.cumsum(rng.normal(-0.03 if mode == "min" else 0.03, 0.1, 24)).astype(np.float32)
    _, _, ss = _run_values(gc.early_stopping(patience, min_delta, mode), values.tolist())
    exp = np_early_stopping(values.astype(np.float64), patience, min_delta, mode)
    for t, (s, (stop, best, best_step, bad)) in enumerate(zip(ss, exp), start=1):
        assert (
            bool(s.should_stop) == stop and int(s.best_step) == best_step and int(s.num_bad_steps) == bad
        ), t
        assert float(s.best_value) == pytest.approx(best, rel=1e-6), t
        assert int(s.count) == t


def test_early_stopping_stays_stopped_even_if_value_improves():
    _, _, ss = _run_values(gc.early_stopping(1), [1.0, 1.0, 0.1, 0.01])
    assert [bool(s.should_stop) for s in ss] == [False, True, True, True]
    assert float(ss[-1].best_value) == 1.0 and int(ss[-1].best_step) == 1 and int(ss[-1].count) == 4


def test_early_stopping_zeroes_non_finite_updates_once_stopped():
    tx = gc.early_stopping(0)
    p = jnp.ones(2)
    s = tx.init(p)
    _, s = tx.update(jnp.ones(2), s, p, value=jnp.asarray(1.0))
    u, s = tx.update(jnp.array([jnp.nan, jnp.inf]), s, p, value=jnp.asarray(2.0))
    np.testing.assert_array_equal(np.asarray(u), [0.0, 0.0])


@pytest.mark.parametrize("make", [lambda: gc.early_stopping(2), lambda: gc.reduce_on_plateau()])
def test_missing_or_bad_value_raises(make):
    tx = make()
    s = tx.init(jnp.ones(2))
    with pytest.raises(
        ValueError, match=r"`update` needs the monitored loss as a keyword argument.*value=loss"
    ):
        tx.update(jnp.ones(2), s, jnp.ones(2))
    with pytest.raises(ValueError, match=r"`value` must be a scalar, got an array of shape \(2,\)"):
        tx.update(jnp.ones(2), s, jnp.ones(2), value=jnp.ones(2))
    chained = gc.chain(gc.scale(1.0), tx)
    with pytest.raises(ValueError, match="needs the monitored loss"):
        chained.update(jnp.ones(2), chained.init(jnp.ones(2)))


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"patience": -1}, ValueError, r"early_stopping: `patience` must be >= 0, got -1"),
        ({"patience": 1.5}, ValueError, r"early_stopping: `patience` must be an integer, got 1.5"),
        ({"patience": "3"}, TypeError, r"`patience` must be a number"),
        ({"patience": 1, "min_delta": -0.1}, ValueError, r"early_stopping: `min_delta` must be >= 0"),
        (
            {"patience": 1, "mode": "auto"},
            ValueError,
            r"early_stopping: `mode` must be 'min' or 'max', got 'auto'",
        ),
    ],
)
def test_early_stopping_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        gc.early_stopping(**kwargs)


# ----------------------------------------------------------------- reduce on plateau


def np_reduce_on_plateau(values, factor, patience, rtol, atol, cooldown, accumulation_size, min_scale):
    """Per step: the scale applied, one line per line of the docstring's rule."""
    scale, best, plateau, cool, acc, out = 1.0, np.inf, 0, 0, [], []
    for v in values:
        acc.append(v)
        if len(acc) == accumulation_size:
            a = np.mean(acc)
            acc = []
            improved = a < (best - rtol * abs(best) - atol if np.isfinite(best) else best)
            if improved:
                best = a
            plateau = 0 if improved else plateau + 1
            if cool > 0:
                plateau, cool = 0, cool - 1
            elif plateau >= patience and not improved:
                scale, plateau, cool = max(scale * factor, min_scale), 0, cooldown
        out.append(scale)
    return np.array(out)


def _plateau_values(seed, n, sign):
    """A loss that decreases, then wanders on plateaus (negated for sign=-1)."""
    rng = np.random.default_rng(seed)
    base = 5.0 + 3.0 * np.exp(-np.arange(n) / 4.0) + 0.01 * rng.standard_normal(n)
    return (sign * base).astype(np.float32)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"factor": 0.5, "patience": 3, "rtol": 1e-3},
        {"factor": 0.5, "patience": 2, "rtol": 0.0, "atol": 0.05, "cooldown": 2},
        {"factor": 0.3, "patience": 1, "rtol": 1e-4, "accumulation_size": 3, "min_scale": 0.05},
        {"factor": 1.0, "patience": 2},
    ],
)
def test_reduce_on_plateau_matches_numpy_for_positive_and_negative_losses(kwargs, sign):
    values = _plateau_values(0, 40, sign)
    full = {
        "factor": 0.1,
        "patience": 10,
        "rtol": 1e-4,
        "atol": 0.0,
        "cooldown": 0,
        "accumulation_size": 1,
        "min_scale": 0.0,
    }
    full.update(kwargs)
    us, _, ss = _run_values(gc.reduce_on_plateau(**kwargs), values.tolist())
    expected = np_reduce_on_plateau(values.astype(np.float64), **full)
    got = np.array([float(s.scale) for s in ss])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    if full["factor"] < 1:
        assert expected[-1] < 1, "the scripted sequence must trigger a reduction"
    for u, sc in zip(us, expected):
        np.testing.assert_allclose(np.asarray(u), sc * np.array([1.0, -2.0, 0.5]), rtol=1e-6)


def test_reduce_on_plateau_detects_a_plateau_at_a_negative_loss_where_optax_does_not():
    optax = pytest.importorskip("optax")
    values = [-10.0, -11.0] + [-11.0] * 6
    _, _, ss = _run_values(gc.reduce_on_plateau(factor=0.5, patience=3), values)
    assert [float(s.scale) for s in ss] == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    otx = optax.contrib.reduce_on_plateau(factor=0.5, patience=3)
    with jax.numpy_dtype_promotion("standard"):
        _, _, so = _run_values(otx, values, apply=optax.apply_updates)
    assert float(so[-1].scale) == 1.0  # Optax's `(1 - rtol) * best` threshold: every -11 "improves"


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"factor": 0.5, "patience": 2, "rtol": 1e-3},
        {"factor": 0.2, "patience": 1, "atol": 0.01, "cooldown": 2, "accumulation_size": 2},
    ],
)
def test_reduce_on_plateau_matches_optax_for_positive_losses(kwargs, jit):
    optax = pytest.importorskip("optax")
    values = [5.0, 4.0, 3.5, 3.4, 3.41, 3.39, 3.4, 3.2, 3.21, 3.22, 3.19, 3.3]
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, len(values))
    us, ps, ss = _run_values(gc.reduce_on_plateau(**kwargs), values, jit=jit, params=params, grads=grads)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        uo, po, so = _run_values(
            optax.contrib.reduce_on_plateau(**kwargs),
            values,
            jit=jit,
            params=params,
            grads=grads,
            apply=optax.apply_updates,
        )
    assert float(ss[-1].scale) < 1
    assert helpers.max_rel_diff(us, uo) <= 2e-5 and helpers.max_rel_diff(ps, po) <= 2e-5
    for s, o in zip(ss, so):
        assert float(s.scale) == pytest.approx(float(o.scale), rel=1e-6)
        assert float(s.best_value) == pytest.approx(float(o.best_value), rel=1e-6)
        assert int(s.plateau_count) == int(o.plateau_count) and int(s.cooldown_count) == int(o.cooldown_count)


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"factor": 0.0}, ValueError, r"reduce_on_plateau: `factor` must be > 0 and <= 1, got 0.0"),
        ({"factor": 1.5}, ValueError, r"`factor` must be > 0 and <= 1, got 1.5"),
        ({"patience": -1}, ValueError, r"reduce_on_plateau: `patience` must be >= 0, got -1"),
        ({"patience": 2.5}, ValueError, r"`patience` must be an integer"),
        ({"rtol": -1e-4}, ValueError, r"reduce_on_plateau: `rtol` must be >= 0 and <= 1"),
        ({"rtol": 1.5}, ValueError, r"`rtol` must be >= 0 and <= 1"),
        ({"atol": -1.0}, ValueError, r"reduce_on_plateau: `atol` must be >= 0"),
        ({"cooldown": -1}, ValueError, r"reduce_on_plateau: `cooldown` must be >= 0"),
        ({"accumulation_size": 0}, ValueError, r"reduce_on_plateau: `accumulation_size` must be >= 1, got 0"),
        ({"min_scale": -0.1}, ValueError, r"reduce_on_plateau: `min_scale` must be >= 0"),
        ({"factor": "0.1"}, TypeError, r"`factor` must be a number"),
    ],
)
def test_reduce_on_plateau_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        gc.reduce_on_plateau(**kwargs)


# ----------------------------------------------------------------- flax.nnx


def test_control_inside_flax_nnx_optimizer():
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    tx = gc.named_chain(
        ("health", gc.gradient_health()),
        ("sgd", gc.scale_by_learning_rate(0.1)),
        ("plateau", gc.reduce_on_plateau(factor=0.5, patience=2)),
        ("stop", gc.early_stopping(patience=4)),
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((16, 3)), jnp.float32)
    y = x @ jnp.array([[1.0], [-2.0], [0.5]])

    @nnx.jit
    def train_step(model, optimizer, value):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        optimizer.update(model, grads, value=value)
        return loss

    val_losses = [3.0, 2.0, 1.5, 1.5, 1.5, 1.6, 1.5, 1.5, 1.4, 1.3]  # best 1.5 at step 3, stop at step 7
    kernels, losses = [], []
    for v in val_losses:
        losses.append(float(train_step(model, optimizer, jnp.asarray(v))))
        kernels.append(np.asarray(model.kernel[...]))
    stop, plateau = optimizer.opt_state["stop"], optimizer.opt_state["plateau"]
    assert (
        bool(stop.should_stop[...]) and int(stop.best_step[...]) == 3 and float(stop.best_value[...]) == 1.5
    )
    assert float(plateau.scale[...]) == 0.25  # plateaus of 2 checks after steps 5 and 7
    np.testing.assert_array_equal(kernels[6], kernels[-1])  # frozen from the stopping step on
    assert not np.array_equal(kernels[5], kernels[4]) and losses[5] < losses[0]
    report = gc.health_report(optimizer.opt_state)
    assert report["count"] == len(val_losses) and report["grad_norm"] > 0
