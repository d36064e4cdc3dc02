"""Core: chain, named_chain, identity, stateless, apply_updates, incremental_update,
global_norm, scale, scale_by_learning_rate, scale_by_schedule, centralize, masked."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers


# ---------------------------------------------------------------- float64 references
def test_global_norm_matches_numpy_and_optax():
    optax = pytest.importorskip("optax")
    tree = helpers.random_tree(0)
    ref = np.sqrt(sum(np.sum(x**2) for x in jax.tree.leaves(helpers.to_numpy64(tree))))
    np.testing.assert_allclose(gc.global_norm(tree), ref, rtol=1e-6)
    with jax.numpy_dtype_promotion("standard"):
        np.testing.assert_allclose(gc.global_norm(tree), optax.global_norm(tree), rtol=1e-6)


def test_global_norm_accumulates_half_precision_in_float32():
    x = jnp.full((4096,), 1.0, jnp.bfloat16)  # a bfloat16 sum would stall at 256
    out = gc.global_norm({"a": x, "b": None})
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, 64.0)
    assert gc.global_norm({}) == 0.0


def test_apply_updates_keeps_dtype_and_rounds_once():
    p = {"a": jnp.asarray([1.0, 2.0], jnp.bfloat16), "b": None, "c": jnp.asarray([0.5])}
    u = {"a": jnp.asarray([1e-3, -1e-3], jnp.float32), "b": None, "c": jnp.asarray([0.25])}
    out = gc.apply_updates(p, u)
    assert out["a"].dtype == jnp.bfloat16 and out["b"] is None
    expected = (np.asarray(p["a"], np.float32) + np.asarray(u["a"])).astype(jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(out["a"]), np.asarray(expected))
    np.testing.assert_allclose(out["c"], [0.75])


def test_apply_updates_mismatch_prints_both_structures():
    with pytest.raises(ValueError, match=r"apply_updates: .*\n  updates: .*\n  expected: "):
        gc.apply_updates({"a": jnp.ones(1)}, {"b": jnp.ones(1)})


def test_incremental_update_matches_numpy_and_optax():
    optax = pytest.importorskip("optax")
    new, old = helpers.random_tree(0), helpers.random_tree(1)
    got = gc.incremental_update(new, old, 0.3)
    ref = jax.tree.map(lambda n, o: 0.3 * n + 0.7 * o, helpers.to_numpy64(new), helpers.to_numpy64(old))
    helpers.assert_trees_close(got, ref, rtol=1e-6, atol=1e-7)
    with jax.numpy_dtype_promotion("standard"):
        helpers.assert_trees_close(got, optax.incremental_update(new, old, 0.3), rtol=1e-6)
    with pytest.raises(ValueError, match=r"incremental_update: `step_size` must be >= 0 and <= 1"):
        gc.incremental_update(new, old, 1.5)


def _numpy_chain_reference(grads, lr_sched):
    """clip to [-1, 1], scale by 2, multiply by -lr(t): one line per member."""
    out = []
    for t, g in enumerate(grads):
        g = helpers.to_numpy64(g)
        u = jax.tree.map(lambda x: np.clip(x, -1.0, 1.0), g) if hasattr(gc, "clip_by_value") else g
        u = jax.tree.map(lambda x: 2.0 * x, u)
        u = jax.tree.map(lambda x: -lr_sched(t) * x, u)
        out.append(u)
    return out


@pytest.mark.parametrize("jit", [False, True])
def test_chain_of_scalings_matches_numpy(jit):
    sched = lambda t: 0.1 * 0.5 ** (t // 3)
    members = [gc.clip_by_value(1.0)] if hasattr(gc, "clip_by_value") else []
    tx = gc.chain(
        *members,
        gc.scale(2.0),
        gc.scale_by_learning_rate(lambda c: 0.1 * 0.5 ** (c // 3).astype(jnp.float32)),
    )
    params, grads = helpers.random_tree(0), helpers.grad_sequence(1, helpers.random_tree(0), 10)
    us, _, state = helpers.run_steps(tx, params, grads, jit=jit)
    for u, r in zip(us, _numpy_chain_reference(grads, sched)):
        helpers.assert_trees_close(u, r, rtol=1e-6, atol=1e-7)
    assert int(state[-1].count) == 10


def test_scale_by_schedule_matches_optax():
    optax = pytest.importorskip("optax")
    fn = lambda c: 1.0 / (1.0 + c.astype(jnp.float32))
    params, grads = helpers.random_tree(0), helpers.grad_sequence(1, helpers.random_tree(0), 10)
    for jit in (False, True):
        got = helpers.run_steps(gc.scale_by_schedule(fn), params, grads, jit=jit)
        want = helpers.run_optax(optax.scale_by_schedule(fn), params, grads, jit=jit)
        assert helpers.max_rel_diff(got[0], want[0]) <= 2e-5
        assert helpers.max_rel_diff(got[1], want[1]) <= 2e-5


@pytest.mark.parametrize(
    "mine, theirs",
    [
        (lambda: gc.scale(-0.3), lambda o: o.scale(-0.3)),
        (lambda: gc.scale_by_learning_rate(0.1), lambda o: o.scale_by_learning_rate(0.1)),
        (
            lambda: gc.scale_by_learning_rate(0.1, flip_sign=False),
            lambda o: o.scale_by_learning_rate(0.1, flip_sign=False),
        ),
        (lambda: gc.centralize(), lambda o: o.centralize()),
        (lambda: gc.identity(), lambda o: o.identity()),
        (
            lambda: gc.masked(gc.scale(0.5), {"w": True, "b": False, "nested": [True, False]}),
            lambda o: o.masked(o.scale(0.5), {"w": True, "b": False, "nested": [True, False]}),
        ),
    ],
    ids=[
        "scale",
        "scale_by_learning_rate",
        "scale_by_learning_rate_noflip",
        "centralize",
        "identity",
        "masked",
    ],
)
def test_core_transforms_match_optax(mine, theirs):
    optax = pytest.importorskip("optax")
    params, grads = helpers.random_tree(0), helpers.grad_sequence(1, helpers.random_tree(0), 10)
    for jit in (False, True):
        got = helpers.run_steps(mine(), params, grads, jit=jit)
        want = helpers.run_optax(theirs(optax), params, grads, jit=jit)
        assert helpers.max_rel_diff(got[0], want[0]) <= 2e-5
        assert helpers.max_rel_diff(got[1], want[1]) <= 2e-5


def test_centralize_matches_numpy():
    g = helpers.random_tree(3)
    u, _ = gc.centralize().update(g, gc.EmptyState())
    ref = jax.tree.map(
        lambda x: x - x.mean(axis=tuple(range(1, x.ndim)), keepdims=True) if x.ndim > 1 else x,
        helpers.to_numpy64(g),
    )
    helpers.assert_trees_close(u, ref, rtol=1e-5, atol=1e-6)


def test_masked_holds_no_state_for_masked_out_leaves():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    tx = gc.masked(
        gc.chain(gc.scale_by_schedule(lambda c: 1.0), gc.stateless(lambda u, p: u)), {"w": True, "b": False}
    )
    state = tx.init(params)
    assert isinstance(state.inner_state[0], gc.ScaleByScheduleState)
    # a per-parameter inner state mirrors only the selected leaves
    tx2 = gc.masked(gc.stateless(lambda u, p: u), {"w": False, "b": True})
    assert jax.tree.leaves(tx2.init(params)) == []


# ---------------------------------------------------------------- extra args, errors
def test_chain_forwards_extra_args_to_every_member():
    seen = []

    def spy(name):
        def init(p):
            return gc.EmptyState()

        def update(u, s, p=None, **extra):
            seen.append((name, extra.get("value")))
            return u, s

        return gc.GradientTransformation(init, update)

    tx = gc.named_chain(("a", spy("a")), ("b", gc.chain(spy("b"), spy("c"))))
    tx.update(jnp.ones(1), tx.init(jnp.ones(1)), value=3.0)
    assert seen == [("a", 3.0), ("b", 3.0), ("c", 3.0)]


def test_chain_rejects_non_transformations():
    with pytest.raises(
        TypeError, match=r"chain: argument 1 must be a GradientTransformation.*forget to call"
    ):
        gc.chain(gc.identity(), gc.scale)
    with pytest.raises(
        TypeError, match=r"named_chain: argument 0 must be a \(name, GradientTransformation\) pair"
    ):
        gc.named_chain(gc.identity())
    with pytest.raises(ValueError, match="named_chain: names must be distinct"):
        gc.named_chain(("a", gc.identity()), ("a", gc.identity()))


def test_chain_state_mismatch_is_explained():
    tx = gc.chain(gc.identity(), gc.identity())
    with pytest.raises(ValueError, match=r"chain: `state` must be a tuple of 2 member states"):
        tx.update(jnp.ones(1), (gc.EmptyState(),))
    tx = gc.named_chain(("a", gc.identity()))
    with pytest.raises(ValueError, match=r"named_chain: `state` must be a dict with keys \['a'\]"):
        tx.update(jnp.ones(1), {"b": gc.EmptyState()})


@pytest.mark.parametrize(
    "build, exc, pattern",
    [
        (
            lambda: gc.scale_by_learning_rate(-0.1),
            ValueError,
            r"scale_by_learning_rate: `learning_rate` must be >= 0, got -0.1",
        ),
        (
            lambda: gc.scale_by_learning_rate(float("nan")),
            ValueError,
            r"scale_by_learning_rate: `learning_rate` must be a number, got NaN",
        ),
        (
            lambda: gc.scale_by_learning_rate("0.1"),
            TypeError,
            r"scale_by_learning_rate: `learning_rate` must be a number",
        ),
        (
            lambda: gc.scale_by_learning_rate(jnp.ones(3)),
            ValueError,
            r"must be a scalar, got an array of shape \(3,\)",
        ),
        (lambda: gc.scale(None), TypeError, r"scale: `step_size` must be a number, got None"),
        (
            lambda: gc.scale(lambda c: 1.0),
            TypeError,
            r"scale: `step_size` must be a number, got the callable",
        ),
        (lambda: gc.scale_by_schedule(0.1), TypeError, r"scale_by_schedule: `step_size_fn` must be callable"),
        (lambda: gc.stateless(3), TypeError, r"stateless: `f` must be callable"),
        (lambda: gc.masked(gc.scale, {}), TypeError, r"masked: `inner` must be a GradientTransformation"),
    ],
)
def test_bad_hyperparameters_raise(build, exc, pattern):
    with pytest.raises(exc, match=pattern):
        build()


def test_masked_mask_errors_name_both_structures():
    tx = gc.masked(gc.scale(0.5), {"w": True})
    with pytest.raises(
        ValueError, match=r"masked: the `mask` tree does not match the parameters.\n  mask: .*\n  params: "
    ):
        tx.init({"w": jnp.ones(1), "b": jnp.ones(1)})
    tx = gc.masked(gc.scale(0.5), {"w": jnp.asarray(True)})
    with pytest.raises(TypeError, match=r"masked: `mask` must be a pytree of Python bools"):
        tx.init({"w": jnp.ones(1)})


def test_traced_hyperparameters_skip_eager_checks_and_work():
    f = jax.jit(lambda lr, g: gc.scale_by_learning_rate(lr).update(g, gc.EmptyState())[0])
    np.testing.assert_allclose(f(jnp.float32(0.5), jnp.ones(2)), [-0.5, -0.5])


def test_strict_promotion_is_on_in_this_suite():
    with pytest.raises(jax.dtypes.TypePromotionError):
        jnp.ones(1, jnp.float32) + jnp.ones(1, jnp.bfloat16)


def test_adam_runs_under_strict_promotion_where_optax_raises():
    optax = pytest.importorskip("optax")
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, 2)
    otx = optax.adam(1e-3)
    with pytest.raises(jax.dtypes.TypePromotionError):
        otx.update(grads[0], otx.init(params), params)  # Optax 0.2.8: float ** int32 in bias correction
    tx = gc.adam(1e-3)
    u, _ = tx.update(grads[0], tx.init(params), params)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u))
