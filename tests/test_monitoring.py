"""gradient_health against a float64 NumPy transcription; health_report reading states back."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

FIELDS = ("grad_norm", "max_abs", "nonfinite_fraction", "update_param_ratio", "avg_norm")


def np_gradient_health(grads, params, explode_factor, vanish_threshold, decay, warmup_steps):
    """One dict per step, one line per formula line of the docstring."""
    avg, n_exp, n_van, out = 0.0, 0, 0, []
    for t, (g, p) in enumerate(zip(grads, params), start=1):
        gl = [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(g)]
        pl = [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(p)]
        g_all, p_all = np.concatenate(gl), np.concatenate(pl)
        norm = np.sqrt(np.sum(g_all**2))  # grad_norm = ||g||_2
        max_abs = np.max(np.abs(g_all))  # max_abs = max_i |g_i|
        nonfinite = np.mean(~np.isfinite(g_all))  # nonfinite_fraction
        p_norm = np.sqrt(np.sum(p_all**2))
        ratio = norm / p_norm if p_norm > 0 else (np.inf if norm > 0 else 0.0)  # update_param_ratio
        exploding = (not np.isfinite(norm)) or (t > warmup_steps and norm > explode_factor * avg)
        vanishing = norm < vanish_threshold
        w = max(1 - decay, 1 / t)  # w_t
        avg = avg + w * (norm - avg) if np.isfinite(norm) else avg  # avg_t
        n_exp += exploding
        n_van += vanishing
        out.append(
            {
                "grad_norm": norm,
                "max_abs": max_abs,
                "nonfinite_fraction": nonfinite,
                "update_param_ratio": ratio,
                "avg_norm": avg,
                "exploding": exploding,
                "vanishing": vanishing,
                "num_exploding": n_exp,
                "num_vanishing": n_van,
                "count": t,
            }
        )
    return out


def _scripted_grads(seed=0, n=14):
    """Random gradients with a tiny step (vanishing), a spike (exploding) and a NaN step."""
    grads = helpers.grad_sequence(seed, helpers.random_tree(0), n, scale=0.5)
    grads[4] = jax.tree.map(lambda x: x * 1e-9, grads[4])
    grads[7] = jax.tree.map(lambda x: x * 100.0, grads[7])
    grads[10] = {**grads[10], "b": grads[10]["b"].at[1].set(jnp.nan).at[2].set(jnp.inf)}
    return grads


@pytest.mark.parametrize(
    "explode_factor,vanish_threshold,decay,warmup_steps", [(3.0, 1e-6, 0.9, 3), (1.2, 0.0, 0.5, 0)]
)
def test_gradient_health_matches_numpy(explode_factor, vanish_threshold, decay, warmup_steps):
    grads = _scripted_grads()
    tx = gc.named_chain(
        ("health", gc.gradient_health(explode_factor, vanish_threshold, decay, warmup_steps=warmup_steps)),
        ("sgd", gc.scale_by_learning_rate(0.01)),
    )
    params = helpers.random_tree(1)
    state = tx.init(params)
    step = jax.jit(tx.update)
    reports, seen_params, updates = [], [], []
    for g in grads:
        seen_params.append(params)
        u, state = step(g, state, params)
        params = gc.apply_updates(params, u)
        reports.append(gc.health_report(state))
        updates.append(u)
    expected = np_gradient_health(grads, seen_params, explode_factor, vanish_threshold, decay, warmup_steps)
    for t, (got, exp) in enumerate(zip(reports, expected)):
        for k in FIELDS:
            np.testing.assert_allclose(got[k], exp[k], rtol=2e-6, err_msg=f"step {t + 1} field {k}")
        for k in ("exploding", "vanishing", "num_exploding", "num_vanishing", "count"):
            assert got[k] == exp[k], f"step {t + 1} field {k}: {got[k]} != {exp[k]}"
    assert reports[4]["vanishing"] == (vanish_threshold > 0)
    assert reports[7]["exploding"] and reports[10]["exploding"]
    assert reports[10]["nonfinite_fraction"] == pytest.approx(2 / 29)  # 12 + 4 + 12 + 1 elements
    # the updates pass unchanged (up to the learning rate that follows)
    helpers.assert_trees_close(updates[3], jax.tree.map(lambda x: -0.01 * x, grads[3]), rtol=1e-6)


def test_update_param_ratio_at_the_end_of_the_chain_is_the_relative_step():
    params = {"w": jnp.array([3.0, 4.0]), "b": jnp.zeros(2)}
    tx = gc.named_chain(
        ("grads", gc.gradient_health()),
        ("sgd", gc.scale_by_learning_rate(0.1)),
        ("step", gc.gradient_health()),
    )
    g = {"w": jnp.array([1.0, 0.0]), "b": jnp.array([0.0, 2.0])}
    u, state = tx.update(g, tx.init(params), params)
    rep = gc.health_report(state)
    step = float(np.linalg.norm(np.concatenate([np.asarray(x) for x in jax.tree.leaves(u)])))
    assert rep["step/update_param_ratio"] == pytest.approx(step / 5.0)
    assert rep["grads/update_param_ratio"] == pytest.approx(np.sqrt(5.0) / 5.0)
    assert rep["grads/max_abs"] == 2.0 and rep["step/max_abs"] == pytest.approx(0.2)


def test_ratio_with_zero_params_and_passthrough_is_exact():
    tx = gc.gradient_health()
    p = jnp.zeros(3)
    g = jnp.array([1.0, -2.0, 0.5])
    u, s = tx.update(g, tx.init(p), p)
    assert u is g and float(s.update_param_ratio) == np.inf
    _, s = tx.update(jnp.zeros(3), s, p)
    assert float(s.update_param_ratio) == 0.0 and bool(s.vanishing)


def test_health_report_finds_states_in_chains_and_names_them():
    p = jnp.ones(2)
    single = gc.chain(gc.scale(1.0), gc.gradient_health())
    _, s = single.update(jnp.array([3.0, 4.0]), single.init(p), p)
    rep = gc.health_report(s)
    assert rep["grad_norm"] == 5.0 and rep["count"] == 1 and rep["exploding"] is False
    assert set(rep) == set(gc.GradientHealthState._fields)
    assert isinstance(rep["num_vanishing"], int) and isinstance(rep["avg_norm"], float)
    double = gc.chain(gc.gradient_health(), gc.scale(2.0), gc.gradient_health())
    _, s = double.update(jnp.array([3.0, 4.0]), double.init(p), p)
    rep = gc.health_report(s)
    assert rep["0/grad_norm"] == 5.0 and rep["2/grad_norm"] == 10.0
    assert gc.health_report(s[2])["grad_norm"] == 10.0


def test_health_report_errors():
    with pytest.raises(ValueError, match="health_report: no GradientHealthState in `state`"):
        gc.health_report((gc.EmptyState(),))
    tx = gc.gradient_health()
    batched = jax.vmap(tx.init)(jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="has shape \\(3,\\), not a scalar"):
        gc.health_report(batched)


def test_gradient_health_needs_params():
    tx = gc.gradient_health()
    with pytest.raises(ValueError, match="gradient_health: this transformation needs the parameters"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"explode_factor": 0.0}, ValueError, r"gradient_health: `explode_factor` must be > 0, got 0.0"),
        ({"vanish_threshold": -1.0}, ValueError, r"gradient_health: `vanish_threshold` must be >= 0"),
        ({"decay": 1.0}, ValueError, r"gradient_health: `decay` must be >= 0 and < 1"),
        ({"warmup_steps": -1}, ValueError, r"gradient_health: `warmup_steps` must be >= 0, got -1"),
        ({"warmup_steps": 1.5}, TypeError, r"gradient_health: `warmup_steps` must be a Python int"),
        ({"explode_factor": None}, TypeError, r"`explode_factor` must be a number"),
    ],
)
def test_gradient_health_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        gc.gradient_health(**kwargs)
