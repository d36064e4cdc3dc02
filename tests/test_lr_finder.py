"""lr_finder on linear regression: NumPy gradient descent, the suggestion rule, divergence guards."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc

RNG = np.random.default_rng(0)
X = RNG.standard_normal((64, 4))
Y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.7 + 0.1 * RNG.standard_normal(64)
DATA = (jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32))
PARAMS = {"w": jnp.zeros(4), "b": jnp.zeros([])}
LRS = np.logspace(-3, 1, 9)
STEPS = 60
# Gradient descent on the mean squared error diverges above 2 / lambda_max of the Hessian.
XB = np.concatenate([X, np.ones((64, 1))], axis=1)
LR_MAX_STABLE = 2.0 / np.linalg.eigvalsh(2.0 / 64 * XB.T @ XB).max()


def loss_fn(params, batch):
    x, y = batch
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def np_gd_losses(lr, steps, x=XB, y=Y):
    """Float64 gradient descent on the MSE: the loss before each step."""
    theta, out = np.zeros(x.shape[1]), []
    for _ in range(steps):
        r = x @ theta - y
        out.append(np.mean(r**2))
        theta = theta - lr * (2.0 / len(y)) * x.T @ r
    return np.array(out)


def np_suggest(lrs, losses, safety_factor):
    """The docstring's rule."""
    k = max(1, losses.shape[1] // 10)
    final = losses[:, -k:].mean(axis=1)
    ok = np.isfinite(losses).all(axis=1) & (final < losses[:, 0])
    return lrs[np.argmin(np.where(ok, final, np.inf))] / safety_factor if ok.any() else np.nan, ok


@pytest.fixture(scope="module")
def sweep():
    return gc.lr_finder(loss_fn, PARAMS, DATA, LRS, num_steps=STEPS)


def test_losses_match_numpy_gradient_descent_for_stable_rates(sweep):
    assert sweep.losses.shape == (len(LRS), STEPS) and sweep.learning_rates.dtype == jnp.float32
    for i, lr in enumerate(LRS):
        if lr < LR_MAX_STABLE:
            np.testing.assert_allclose(
                np.asarray(sweep.losses[i]), np_gd_losses(lr, STEPS), rtol=2e-4, atol=1e-5
            )


def test_suggestion_follows_the_rule_and_excludes_diverged_runs(sweep):
    losses = np.asarray(sweep.losses, np.float64)
    expected, ok = np_suggest(LRS, losses, 10.0)
    assert float(sweep.suggested_lr) == pytest.approx(expected, rel=1e-6)
    assert not ok[LRS > LR_MAX_STABLE].any(), "rates above 2 / lambda_max must count as diverged"
    assert ok[LRS < LR_MAX_STABLE].all()
    assert not np.isfinite(losses[-1]).all()  # lr = 10 really blew up
    assert float(sweep.suggested_lr) < LR_MAX_STABLE


@pytest.mark.parametrize("safety_factor", [10.0, 1.0])
def test_suggested_rate_trains_stably(safety_factor):
    res = gc.lr_finder(loss_fn, PARAMS, DATA, LRS, num_steps=STEPS, safety_factor=safety_factor)
    losses = np_gd_losses(float(res.suggested_lr), 400)
    assert np.isfinite(losses).all() and losses[-1] < 0.01 * losses[0]
    assert (np.diff(losses) <= 1e-9).all(), "gradient descent at the suggested rate should decrease the loss"


def test_vmapped_sweep_equals_one_run_at_a_time(sweep):
    for i in (0, 4, 6):
        single = gc.lr_finder(loss_fn, PARAMS, DATA, [LRS[i]], num_steps=STEPS)
        np.testing.assert_allclose(
            np.asarray(single.losses[0]), np.asarray(sweep.losses[i]), rtol=1e-5, atol=1e-6
        )


def test_all_diverged_gives_nan():
    res = gc.lr_finder(loss_fn, PARAMS, DATA, [5.0, 10.0], num_steps=STEPS)
    assert np.isnan(float(res.suggested_lr))


def test_per_step_data_and_custom_optimizer_match_a_python_loop():
    n_steps = 12
    batches = (DATA[0][: n_steps * 5].reshape(n_steps, 5, 4), DATA[1][: n_steps * 5].reshape(n_steps, 5))

    def opt(lr):
        return gc.chain(gc.zclip(warmup_steps=2), gc.scale_by_learning_rate(lr))

    res = gc.lr_finder(loss_fn, PARAMS, batches, [0.01, 0.1], optimizer=opt, per_step_data=True)
    assert res.losses.shape == (2, n_steps)

    @jax.jit
    def step(lr, p, s, batch):
        tx = opt(lr)
        loss, g = jax.value_and_grad(loss_fn)(p, batch)
        u, s = tx.update(g, s, p)
        return loss, gc.apply_updates(p, u), s

    for i, lr in enumerate((0.01, 0.1)):
        p = PARAMS
        s, expected = opt(lr).init(p), []
        for t in range(n_steps):
            loss, p, s = step(jnp.asarray(lr, jnp.float32), p, s, (batches[0][t], batches[1][t]))
            expected.append(float(loss))
        np.testing.assert_allclose(np.asarray(res.losses[i]), expected, rtol=1e-5, atol=1e-6)


def test_compiled_program_is_reused_across_calls():
    counting_loss = chex.assert_max_traces(loss_fn, n=1)  # traced once for both calls
    for lrs in ([0.1, 0.2], [0.3, 0.4]):
        gc.lr_finder(counting_loss, PARAMS, DATA, lrs, num_steps=5)


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"learning_rates": []}, ValueError, r"lr_finder: `learning_rates` must be a non-empty 1-D sequence"),
        (
            {"learning_rates": [[0.1]]},
            ValueError,
            r"`learning_rates` must be a non-empty 1-D sequence, got shape \(1, 1\)",
        ),
        ({"learning_rates": [0.1, -1.0]}, ValueError, r"lr_finder: `learning_rates` must be finite and >= 0"),
        ({"learning_rates": [0.1, np.nan]}, ValueError, r"`learning_rates` must be finite and >= 0"),
        ({"num_steps": 0}, ValueError, r"lr_finder: `num_steps` must be an int >= 1, got 0"),
        ({"num_steps": 2.5}, ValueError, r"`num_steps` must be an int >= 1, got 2.5"),
        (
            {"per_step_data": True, "data": (jnp.ones((3, 2)), jnp.ones(4))},
            ValueError,
            r"every leaf of `data` must have the same leading \(step\) axis",
        ),
        (
            {"per_step_data": True, "data": (jnp.ones((3, 2)), jnp.ones(3)), "num_steps": 4},
            ValueError,
            r"`num_steps` \(4\) must equal the leading axis of `data` \(3\)",
        ),
        ({"loss_fn": 3}, TypeError, r"lr_finder: `loss_fn` must be callable"),
        (
            {"optimizer": gc.scale(0.1)},
            TypeError,
            r"lr_finder: `optimizer` must be a function from a learning rate",
        ),
        ({"safety_factor": 0.0}, ValueError, r"lr_finder: `safety_factor` must be > 0"),
    ],
)
def test_lr_finder_errors(kwargs, err, match):
    args = {"loss_fn": loss_fn, "params": PARAMS, "data": DATA, "learning_rates": [0.1]}
    args.update(kwargs)
    with pytest.raises(err, match=match):
        gc.lr_finder(
            args.pop("loss_fn"), args.pop("params"), args.pop("data"), args.pop("learning_rates"), **args
        )
