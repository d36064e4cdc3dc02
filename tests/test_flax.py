"""Drop-in for Flax: nnx.Optimizer (with extra args such as value=loss) and TrainState."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

nnx = pytest.importorskip("flax.nnx")


class MLP(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(3, 16, rngs=rngs)
        self.l2 = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y)


def _loss(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


def _canonical():
    return gc.chain(gc.clip_by_global_norm(1.0), gc.scale_by_adam(), gc.scale(-1e-2))


class SeenValue(NamedTuple):
    last_value: jax.Array


def _value_spy():
    """A transformation that consumes `value=`: it stores the last value in its state."""

    def init(params):
        return SeenValue(jnp.zeros([], jnp.float32))

    def update(updates, state, params=None, *, value=None, **extra):
        if value is None:
            raise ValueError("value_spy: needs `value`")
        return updates, SeenValue(jnp.asarray(value, jnp.float32))

    return gc.GradientTransformation(init, update)


def test_nnx_optimizer_trains_and_equals_the_functional_loop():
    x, y = _data()
    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, _canonical(), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(_loss)(model, x, y)
        optimizer.update(model, grads)
        return loss

    # the functional way on an identical copy
    graphdef, params, rest = nnx.split(MLP(nnx.Rngs(0)), nnx.Param, ...)
    tx = _canonical()
    opt_state = tx.init(params)

    @jax.jit
    def fstep(params, opt_state, x, y):
        def loss_fn(p):
            return _loss(nnx.merge(graphdef, p, rest, copy=True), x, y)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return gc.apply_updates(params, updates), opt_state, loss

    losses = []
    for _ in range(30):
        losses.append(float(step(model, optimizer, x, y)))
        params, opt_state, floss = fstep(params, opt_state, x, y)
        np.testing.assert_allclose(losses[-1], float(floss), rtol=1e-5)
    assert losses[-1] < 0.5 * losses[0]
    helpers.assert_trees_close(nnx.state(model, nnx.Param), params, rtol=1e-5, atol=1e-6)


def test_nnx_optimizer_forwards_value_to_the_chain():
    x, y = _data()
    model = MLP(nnx.Rngs(1))
    optimizer = nnx.Optimizer(model, gc.chain(_value_spy(), gc.adam(1e-2)), wrt=nnx.Param)
    for _ in range(3):
        loss, grads = nnx.value_and_grad(_loss)(model, x, y)
        optimizer.update(model, grads, value=loss)
    np.testing.assert_allclose(float(optimizer.opt_state[0].last_value[...]), float(loss), rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [lambda: gc.adamw(1e-2, weight_decay=1e-3), lambda: gc.sgd(0.05, momentum=0.9, nesterov=True)],
    ids=["adamw", "sgd_nesterov"],
)
def test_flax_train_state_apply_gradients(make):
    train_state = pytest.importorskip("flax.training.train_state")
    x, y = _data()
    model = MLP(nnx.Rngs(2))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def apply_fn(p, x):
        return nnx.merge(graphdef, p, rest, copy=True)(x)

    state = train_state.TrainState.create(apply_fn=apply_fn, params=params, tx=make())

    @jax.jit
    def step(state):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((state.apply_fn(p, x) - y) ** 2))(state.params)
        return state.apply_gradients(grads=grads), loss

    first = None
    for _ in range(40):
        state, loss = step(state)
        first = float(loss) if first is None else first
    assert float(loss) < 0.5 * first
    assert int(state.step) == 40
