"""Stateful schedules in `inject_hyperparams` (Optax's `StatefulSchedule` protocol), the
state layout Optax 0.2.8 uses, and the other small Optax names (`multi_normal`,
`ConditionFn`, `inject_stateful_hyperparams`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain as gc
from tests import helpers

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.linspace(0.5, -0.5, 4)}


class HalveOnIncrease:
    """A stateful learning rate: halves whenever the loss (`value`) rises; the state holds
    the current rate and the last loss. Any object with init/update/__call__ qualifies."""

    def init(self):
        return {"lr": jnp.asarray(0.1, jnp.float32), "last": jnp.asarray(jnp.inf, jnp.float32)}

    def update(self, state, value, **extra_args):
        del extra_args
        rose = value > state["last"]
        lr = jnp.where(rose, state["lr"] * 0.5, state["lr"])
        return {"lr": lr, "last": jnp.asarray(value, jnp.float32)}

    def __call__(self, state, value=None, **extra_args):
        del value, extra_args
        return state["lr"]


LOSSES = [3.0, 2.0, 2.5, 1.0, 1.5, 1.6, 0.9, 0.8, 1.2, 0.7, 0.6, 0.65, 0.5]


def _run(m, tx, jit):
    state = tx.init(PARAMS)
    upd = jax.jit(tx.update) if jit else tx.update
    out = []
    for i, loss in enumerate(LOSSES):
        g = jax.tree.map(lambda x, i=i: jnp.cos(x * (i + 1.0)), PARAMS)
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            u, state = upd(g, state, PARAMS, value=jnp.asarray(loss, jnp.float32))
        out.append(u)
    return out, state


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_a_stateful_schedule_equals_optax(jit):
    sched = HalveOnIncrease()
    mine, ms = _run(gc, gc.inject_hyperparams(gc.sgd)(learning_rate=sched, momentum=0.9), jit)
    theirs, ts = _run(optax, optax.inject_hyperparams(optax.sgd)(learning_rate=sched, momentum=0.9), jit)
    for a, b in zip(mine, theirs, strict=True):
        helpers.assert_trees_close(a, b, rtol=2e-5)
    assert float(ms.hyperparams["learning_rate"]) == float(ts.hyperparams["learning_rate"])
    assert float(ms.hyperparams["learning_rate"]) == pytest.approx(_numpy_lr_sequence()[-1], rel=1e-7)
    helpers.assert_trees_close(ms.hyperparams_states, ts.hyperparams_states, rtol=0)


def _numpy_lr_sequence():
    """float64 transcription: the value at step t is read from the state before its update."""
    lr, last, seq = 0.1, np.inf, []
    for loss in LOSSES:
        seq.append(lr)
        lr = lr * 0.5 if loss > last else lr
        last = loss
    return seq


def test_the_value_is_read_before_the_schedule_state_updates():
    tx = gc.inject_hyperparams(gc.scale_by_learning_rate)(learning_rate=HalveOnIncrease())
    state = tx.init(PARAMS)
    seen = []
    for loss in LOSSES:
        _, state = tx.update(PARAMS, state, value=jnp.asarray(loss, jnp.float32))
        seen.append(float(state.hyperparams["learning_rate"]))
    np.testing.assert_allclose(seen, _numpy_lr_sequence(), rtol=1e-7)


def test_the_state_has_optax_layout():
    sched = optax.linear_schedule(1e-2, 1e-3, 10)
    mine = gc.inject_hyperparams(gc.adamw)(learning_rate=sched).init(PARAMS)
    theirs = optax.inject_hyperparams(optax.adamw)(learning_rate=sched).init(PARAMS)
    assert type(mine).__name__ == type(theirs).__name__ == "InjectStatefulHyperparamsState"
    assert mine._fields == theirs._fields
    assert sorted(mine.hyperparams) == sorted(theirs.hyperparams)
    assert type(mine.hyperparams_states["learning_rate"]).__name__ == "WrappedScheduleState"
    assert mine.hyperparams_states["learning_rate"]._fields == ("count",)


def test_wrapped_schedule_counts_its_own_steps():
    sched = gc.WrappedSchedule(lambda c: 1.0 / (c.astype(jnp.float32) + 1.0))
    s = sched.init()
    values = []
    for _ in range(4):
        values.append(float(sched(s)))
        s = sched.update(s, value=1.0)
    np.testing.assert_allclose(values, [1.0, 0.5, 1.0 / 3.0, 0.25], rtol=1e-7)
    assert isinstance(sched, gc.StatefulSchedule)
    with pytest.raises(TypeError, match="WrappedSchedule: `schedule_fn` must be callable"):
        gc.WrappedSchedule(0.1)


def test_inject_stateful_hyperparams_is_the_deprecated_name():
    with pytest.warns(DeprecationWarning, match="use inject_hyperparams"):
        factory = gc.inject_stateful_hyperparams(gc.sgd)
    tx = factory(learning_rate=HalveOnIncrease())
    u, _ = tx.update(PARAMS, tx.init(PARAMS), value=jnp.asarray(1.0, jnp.float32))
    helpers.assert_trees_close(u, jax.tree.map(lambda x: -0.1 * x, PARAMS), rtol=1e-6)


def test_static_args_and_hyperparam_dtype_are_positional_as_in_optax():
    tx = gc.inject_hyperparams(gc.scale_by_learning_rate, (), jnp.bfloat16)(0.1)
    assert tx.init(PARAMS).hyperparams["learning_rate"].dtype == jnp.bfloat16


def test_a_schedule_returning_a_non_scalar_is_refused():
    class Bad(HalveOnIncrease):
        def __call__(self, state, **extra_args):
            return jnp.ones(3)

    with pytest.raises(ValueError, match="inject_hyperparams: .*learning_rate"):
        gc.inject_hyperparams(gc.sgd)(learning_rate=Bad())


def test_multi_normal_equals_optax():
    loc, log_scale = jnp.array([0.5, -1.0, 2.0]), jnp.array([-0.3, 0.2, 0.0])
    mine, theirs = gc.multi_normal(loc, log_scale), optax.multi_normal(loc, log_scale)
    key = jax.random.key(3)
    x = jnp.array([[0.1, 0.2, 0.3], [1.0, -2.0, 0.5]])
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        their_sample, their_lp = theirs.sample((4,), key), theirs.log_prob(x)
    np.testing.assert_array_equal(mine.sample((4,), key), their_sample)
    np.testing.assert_allclose(mine.log_prob(x), their_lp, rtol=1e-6)
    # float64 transcription: sum_i -0.5*((x-mu)/s)^2 - log s - 0.5 log(2 pi)
    s = np.exp(np.float64(log_scale))
    ref = np.sum(
        -0.5 * ((np.float64(x) - np.float64(loc)) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi), -1
    )
    np.testing.assert_allclose(mine.log_prob(x), ref, rtol=1e-6)
    assert [p.shape for p in mine.params] == [(3,), (3,)]
    with pytest.raises(ValueError, match="multi_normal: `loc` and `log_scale` must broadcast"):
        gc.multi_normal(jnp.zeros(3), jnp.zeros(2))
    with pytest.raises(TypeError, match="multi_normal: `loc` must be a floating array"):
        gc.multi_normal(jnp.zeros(3, jnp.int32), jnp.zeros(3))


def test_condition_fn_is_a_protocol_for_conditionally_transform():
    def every_other(step, **extra_args) -> jax.Array:
        return step % 2 == 0

    fn: gc.ConditionFn = every_other
    tx = gc.conditionally_transform(gc.scale(2.0), fn)
    s = tx.init(PARAMS)
    u0, s = tx.update(PARAMS, s)
    u1, s = tx.update(PARAMS, s)
    helpers.assert_trees_close(u0, jax.tree.map(lambda x: 2 * x, PARAMS), rtol=0)
    helpers.assert_trees_close(u1, PARAMS, rtol=0)
