"""autoclip and zclip against float64 NumPy transcriptions of the papers' rules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers


def _np_norm(tree) -> float:
    return float(np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(tree))))


def _scaled_grads(seed: int, norms) -> list:
    """A fixed unit-norm direction scaled to each scripted global norm."""
    d = helpers.random_tree(seed)
    d = jax.tree.map(lambda x: x / _np_norm(d), d)
    return [jax.tree.map(lambda x, n=n: jnp.asarray(n * x, jnp.float32), d) for n in norms]


def _random_scale_grads(seed: int, n: int, sigma: float = 1.5, spikes=()) -> list:
    """Random gradients with log-normal norm factors, times 20 at the steps in ``spikes``."""
    rng = np.random.default_rng(seed)
    grads = helpers.grad_sequence(seed, helpers.random_tree(0), n)
    scales = np.exp(rng.normal(0, sigma, n)) * np.where(np.isin(np.arange(n), spikes), 20.0, 1.0)
    return [jax.tree.map(lambda x, c=float(c): x * c, g) for g, c in zip(grads, scales)]


def _run(tx, grads, jit=True):
    params = jax.tree.map(jnp.zeros_like, grads[0])
    state = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    out, states = [], []
    for g in grads:
        u, state = update(g, state)
        out.append(u)
        states.append(state)
    return out, states


# ----------------------------------------------------------------- NumPy transcriptions


def np_autoclip(norms, percentile, history_size):
    """Seetharaman et al. 2020, with a bounded history; returns the per-step factors."""
    history, factors = [], []
    for n in norms:
        if np.isfinite(n):
            history = (history + [n])[-history_size:]  # H_t: last history_size finite norms
        c = np.percentile(history, percentile) if history else np.inf  # c_t
        factors.append(c / n if n > c else 1.0)  # u_t = g_t * min(1, c_t / n_t)
    return np.array(factors), history


def np_zclip(norms, alpha, z_thresh, warmup_steps, eps=1e-6, max_norm=None):
    """Kumar et al. 2025 as in the reference code: buffer warm-up, then reciprocal z-clipping."""
    buffer, mean, var, factors, stats = [], None, None, [], []
    for n in norms:
        if not np.isfinite(n):
            factors.append(1.0)
            stats.append((mean, var))
            continue
        if mean is None:  # warm-up: collect, no adaptive clipping
            buffer.append(n)
            if len(buffer) == warmup_steps:
                mean, var = np.mean(buffer), np.var(buffer)
            bound = n
        else:
            std = np.sqrt(var)
            z = (n - mean) / (std + eps)  # z_t
            clipped = mean + (z_thresh**2 / z) * std if z > z_thresh else n  # n*_t
            bound = clipped
            mean = alpha * mean + (1 - alpha) * clipped  # EMA of the clipped norm
            var = alpha * var + (1 - alpha) * (clipped - mean) ** 2  # with the new mean
        if max_norm is not None:
            bound = min(bound, max_norm)
        factors.append(bound / n if n > bound else 1.0)
        stats.append((mean, var))
    return np.array(factors), stats


def _factors(grads, updates):
    return np.array([_np_norm(u) / _np_norm(g) for g, u in zip(grads, updates)])


# ----------------------------------------------------------------- AutoClip


@pytest.mark.parametrize(
    "percentile,history_size", [(10.0, 1000), (50.0, 4), (0.0, 3), (100.0, 5), (37.5, 2), (90.0, 1)]
)
def test_autoclip_matches_numpy_on_random_gradients(percentile, history_size):
    grads = _random_scale_grads(1, 14)
    updates, states = _run(gc.autoclip(percentile, history_size), grads)
    norms = [_np_norm(g) for g in grads]
    factors, history = np_autoclip(norms, percentile, history_size)
    assert (factors < 1).any() or percentile == 100.0 or history_size == 1
    for g, u, f in zip(grads, updates, factors):
        expected = jax.tree.map(lambda x, f=f: np.asarray(x, np.float64) * f, g)
        helpers.assert_trees_close(u, expected, rtol=2e-6, atol=1e-7)
    s = states[-1]
    assert int(s.count) == 14 and int(s.num_valid) == min(14, history_size)
    kept = np.roll(np.asarray(s.history[: int(s.num_valid)]), -int(s.position) % max(int(s.num_valid), 1))
    np.testing.assert_allclose(kept, history, rtol=1e-6)


def test_autoclip_scripted_spike_is_clipped_and_steady_phase_is_not():
    norms = [2.0] * 10 + [100.0] + [2.0] * 5
    grads = _scaled_grads(2, norms)
    updates, _ = _run(gc.autoclip(percentile=10.0, history_size=1000), grads)
    factors, _ = np_autoclip(norms, 10.0, 1000)
    np.testing.assert_allclose(_factors(grads, updates), factors, rtol=1e-6)
    for t in list(range(10)) + list(range(11, 16)):  # steady: passed bit for bit
        for a, b in zip(jax.tree.leaves(updates[t]), jax.tree.leaves(grads[t])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert _np_norm(updates[10]) == pytest.approx(2.0, rel=1e-5)  # 10th percentile of the history


def test_autoclip_skips_non_finite_norms():
    grads = _scaled_grads(3, [1.0, 2.0, 3.0])
    bad = jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.nan) if x.size else x, grads[0])
    tx = gc.autoclip(50.0, 4)
    s = tx.init(grads[0])
    _, s = tx.update(grads[0], s)
    _u, s2 = tx.update(bad, s)
    assert int(s2.num_valid) == 1 and int(s2.position) == 1 and int(s2.count) == 2
    np.testing.assert_array_equal(np.asarray(s2.history), np.asarray(s.history))


def test_autoclip_float64_params_keep_float64_history():
    with jax.enable_x64(True):
        tx = gc.autoclip(10.0, 4)
        state = tx.init(jnp.zeros(3, jnp.float64))
        assert state.history.dtype == jnp.float64
        u, state = jax.jit(tx.update)(jnp.ones(3, jnp.float64), state)
        assert u.dtype == jnp.float64 and state.history.dtype == jnp.float64


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"percentile": -1.0}, ValueError, r"autoclip: `percentile` must be >= 0 and <= 100, got -1.0"),
        ({"percentile": 100.5}, ValueError, r"`percentile` must be >= 0 and <= 100"),
        ({"percentile": "10"}, TypeError, r"`percentile` must be a number"),
        ({"history_size": 0}, ValueError, r"autoclip: `history_size` must be >= 1, got 0"),
        ({"history_size": 2.0}, TypeError, r"`history_size` must be a Python int"),
        ({"history_size": jnp.asarray(3)}, TypeError, r"`history_size` must be a Python int"),
    ],
)
def test_autoclip_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        gc.autoclip(**kwargs)


# ----------------------------------------------------------------- ZClip


def test_zclip_scripted_spike_is_clipped_and_steady_phase_is_not():
    warm = [1.0, 1.2, 0.8, 1.1, 0.9]
    steady = [1.05, 0.95, 1.0, 1.1, 0.9, 1.0]
    norms = warm + steady + [20.0] + [1.0, 1.05]
    grads = _scaled_grads(4, norms)
    updates, states = _run(gc.zclip(alpha=0.97, z_thresh=2.5, warmup_steps=5), grads)
    factors, stats = np_zclip(norms, 0.97, 2.5, 5)
    np.testing.assert_allclose(_factors(grads, updates), factors, rtol=1e-5)
    spike = len(warm) + len(steady)
    assert (factors[:spike] == 1).all() and (factors[spike + 1 :] == 1).all()
    for t in set(range(len(norms))) - {spike}:  # warm-up and steady phases pass bit for bit
        for a, b in zip(jax.tree.leaves(updates[t]), jax.tree.leaves(grads[t])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    mean, var = np.mean(warm), np.var(warm)
    for n in steady:  # the state just before the spike, by hand
        mean = 0.97 * mean + 0.03 * n
        var = 0.97 * var + 0.03 * (n - mean) ** 2
    z = (20.0 - mean) / (np.sqrt(var) + 1e-6)
    assert z > 2.5
    assert _np_norm(updates[spike]) == pytest.approx(mean + 2.5**2 / z * np.sqrt(var), rel=1e-5)
    assert _np_norm(updates[spike]) < 1.1  # a 20x spike ends up at the level of the mean
    for s, (m, v) in zip(states, stats):
        if m is not None:
            np.testing.assert_allclose([float(s.mean), float(s.var)], [m, v], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(
    "alpha,z_thresh,warmup_steps,max_norm",
    [(0.97, 2.5, 3, None), (0.5, 1.0, 1, None), (0.9, 0.5, 4, None), (0.8, 1.5, 2, 3.0)],
)
def test_zclip_matches_numpy_on_random_gradients(alpha, z_thresh, warmup_steps, max_norm):
    grads = _random_scale_grads(5, 14, sigma=0.3, spikes=(6, 11))
    tx = gc.zclip(alpha, z_thresh, warmup_steps=warmup_steps, max_norm=max_norm)
    updates, states = _run(tx, grads)
    norms = [_np_norm(g) for g in grads]
    factors, stats = np_zclip(norms, alpha, z_thresh, warmup_steps, max_norm=max_norm)
    assert (factors < 1).any()
    for g, u, f in zip(grads, updates, factors):
        expected = jax.tree.map(lambda x, f=f: np.asarray(x, np.float64) * f, g)
        helpers.assert_trees_close(u, expected, rtol=2e-5, atol=1e-6)
    m, v = stats[-1]
    np.testing.assert_allclose([float(states[-1].mean), float(states[-1].var)], [m, v], rtol=2e-5)
    assert int(states[-1].count) == 14


def test_zclip_non_finite_norm_leaves_state_unchanged():
    grads = _scaled_grads(6, [1.0, 2.0, 3.0])
    tx = gc.zclip(warmup_steps=2)
    s = tx.init(grads[0])
    _, s = tx.update(grads[0], s)
    inf = jax.tree.map(lambda x: x * jnp.inf, grads[1])
    _, s2 = tx.update(inf, s)
    for a, b in zip(s, s2):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"alpha": 1.0}, ValueError, r"zclip: `alpha` must be >= 0 and < 1, got 1.0"),
        ({"alpha": -0.1}, ValueError, r"`alpha` must be >= 0 and < 1"),
        ({"z_thresh": 0.0}, ValueError, r"zclip: `z_thresh` must be > 0, got 0.0"),
        ({"warmup_steps": 0}, ValueError, r"zclip: `warmup_steps` must be >= 1, got 0"),
        ({"warmup_steps": 2.5}, TypeError, r"`warmup_steps` must be a Python int"),
        ({"eps": -1e-6}, ValueError, r"zclip: `eps` must be >= 0"),
        ({"max_norm": 0.0}, ValueError, r"zclip: `max_norm` must be > 0"),
        ({"max_norm": "1"}, TypeError, r"`max_norm` must be a number"),
    ],
)
def test_zclip_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        gc.zclip(**kwargs)
