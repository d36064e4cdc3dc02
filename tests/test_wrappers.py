"""Wrappers: masked, set_to_zero, freeze, selective_transform, partition,
inject_hyperparams, apply_if_finite."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12
MASK = {"w": True, "b": False, "nested": [True, False]}
LABELS = {"w": "adam", "b": "sgd", "nested": "adam"}  # a prefix of the params tree


def _adam(lr=0.01):
    if hasattr(gc, "adam"):
        return gc.adam(lr)
    if not hasattr(gc, "scale_by_adam"):
        pytest.skip("gradchain.scale_by_adam (transforms/adaptive.py) is not available yet")
    return gc.chain(gc.scale_by_adam(), gc.scale_by_learning_rate(lr))


def _momentum(lr=0.1):
    if hasattr(gc, "sgd"):
        return gc.sgd(lr, 0.9)
    if not hasattr(gc, "trace"):
        pytest.skip("gradchain.trace (transforms/momentum.py) is not available yet")
    return gc.chain(gc.trace(0.9), gc.scale_by_learning_rate(lr))


INNERS = {  # gradchain inner, Optax inner
    "sgd": (
        lambda: gc.sgd(0.1) if hasattr(gc, "sgd") else gc.scale_by_learning_rate(0.1),
        lambda optax: optax.sgd(0.1),
    ),
    "momentum": (_momentum, lambda optax: optax.sgd(0.1, momentum=0.9)),
    "adam": (_adam, lambda optax: optax.adam(0.01)),
}


def _compare_with_optax(tx, otx, *, jit, grads=None, seed=0, check=None):
    """Our run (eager or jitted) against Optax's jitted run: rel. diff <= 2e-5 every step."""
    params = helpers.random_tree(seed)
    grads = grads if grads is not None else helpers.grad_sequence(seed + 1, params, N_STEPS)
    u, p, s = helpers.run_steps(tx, params, grads, jit=jit)
    ou, op, os_ = helpers.run_optax(otx, params, grads, jit=True)
    for t in range(len(grads)):
        if check is None:
            assert helpers.max_rel_diff(u[t], ou[t]) <= 2e-5, f"updates differ at step {t}"
            assert helpers.max_rel_diff(p[t], op[t]) <= 2e-5, f"params differ at step {t}"
        else:
            check(u[t], ou[t], f"updates at step {t}")
            check(p[t], op[t], f"params at step {t}")
    return s, os_


# ---------------------------------------------------------------- masked / partition / freeze
def _numpy_masked(grads, mask, lr):
    """u_i = inner(g)_i if mask_i else g_i, with inner = scale(-lr)."""
    return [jax.tree.map(lambda m, g: -lr * g if m else g, mask, helpers.to_numpy64(g)) for g in grads]


def test_masked_matches_numpy_and_accepts_a_prefix_mask():
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, 3)
    full = {"w": True, "b": False, "nested": [False, False]}
    for mask in (full, {"w": True, "b": False, "nested": False}):
        u, _, _ = helpers.run_steps(gc.masked(gc.scale_by_learning_rate(0.1), mask), params, grads)
        for a, b in zip(u, _numpy_masked(grads, full, 0.1)):
            helpers.assert_trees_close(a, b, rtol=1e-6)
    u, _, _ = helpers.run_steps(gc.masked(gc.scale(0.0), True), params, grads)  # one bool for everything
    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(u[-1]))


@pytest.mark.parametrize(
    "inner,jit",
    [("adam", False), ("adam", True), ("momentum", True), ("sgd", True)],
    ids=["adam-eager", "adam-jit", "momentum-jit", "sgd-jit"],
)
def test_masked_matches_optax(inner, jit):
    optax = pytest.importorskip("optax")
    make, make_optax = INNERS[inner]
    _compare_with_optax(gc.masked(make(), MASK), optax.masked(make_optax(optax), MASK), jit=jit)


def _numpy_partition(grads):
    """labels w,nested -> accumulate_gradients(scale(-1), 2); b -> scale(-0.1): one line per group."""
    out, acc, n = [], None, 0
    for g in map(helpers.to_numpy64, grads):
        acc = {"w": g["w"] * 0, "nested": [x * 0 for x in g["nested"]]} if acc is None else acc
        acc = jax.tree.map(lambda a, x, n=n: a + (x - a) / (n + 1), acc, {"w": g["w"], "nested": g["nested"]})
        emit = n + 1 >= 2
        u_acc = jax.tree.map(lambda a, emit=emit: -a if emit else 0 * a, acc)
        out.append({"w": u_acc["w"], "b": -0.1 * g["b"], "nested": u_acc["nested"]})
        acc, n = (jax.tree.map(lambda a: 0 * a, acc), 0) if emit else (acc, n + 1)
    return out


def test_partition_matches_numpy_transcription():
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, 5)
    labels = {"w": "acc", "b": "lr", "nested": "acc"}
    tx = gc.partition({"acc": gc.accumulate_gradients(gc.scale(-1.0), 2), "lr": gc.scale(-0.1)}, labels)
    u, _, state = helpers.run_steps(tx, params, grads)
    for t, (a, b) in enumerate(zip(u, _numpy_partition(grads))):
        helpers.assert_trees_close(a, b, rtol=2e-6, atol=1e-7, msg=f"step {t}")
    acc_state = state.inner_states["acc"].inner_state
    assert isinstance(acc_state.acc_grads["b"], gc.MaskedNode)  # no state for the other group
    assert int(acc_state.gradient_step) == 2


@pytest.mark.parametrize(
    "labels,jit",
    [("prefix", False), ("prefix", True), ("callable", True)],
    ids=["prefix-eager", "prefix-jit", "callable-jit"],
)
def test_partition_matches_optax_multi_transform(labels, jit):
    optax = pytest.importorskip("optax")
    lab = (
        LABELS
        if labels == "prefix"
        else (lambda p: jax.tree.map(lambda x: "adam" if x.ndim > 1 else "sgd", p))
    )
    tx = gc.partition({"adam": _adam(0.01), "sgd": _momentum(0.1)}, lab)
    otx = optax.multi_transform({"adam": optax.adam(0.01), "sgd": optax.sgd(0.1, momentum=0.9)}, lab)
    _compare_with_optax(tx, otx, jit=jit)


def test_partition_transform_without_leaves_is_allowed_and_keeps_an_empty_state():
    params = helpers.random_tree(0)
    tx = gc.partition({"adam": _adam(), "sgd": gc.scale(-0.1), "unused": _adam()}, LABELS)
    state = tx.init(params)
    assert all(x.shape == () for x in jax.tree.leaves(state.inner_states["unused"]))  # no moments
    u, _ = tx.update(helpers.grad_sequence(1, params, 1)[0], state, params)
    assert jax.tree.structure(u) == jax.tree.structure(params)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_freeze_and_selective_transform_match_optax(jit):
    optax = pytest.importorskip("optax")
    _compare_with_optax(
        gc.chain(gc.freeze(MASK), _adam()), optax.chain(optax.freeze(MASK), optax.adam(0.01)), jit=jit
    )
    s, _ = _compare_with_optax(
        gc.selective_transform(_adam(), freeze_mask=MASK),
        optax.selective_transform(optax.adam(0.01), freeze_mask=MASK),
        jit=jit,
    )
    mu = s.inner_states["train"].inner_state
    frozen_leaves = [
        x
        for x in jax.tree.leaves(mu, is_leaf=lambda x: isinstance(x, gc.MaskedNode))
        if isinstance(x, gc.MaskedNode)
    ]
    assert frozen_leaves, "selective_transform kept optimizer state for frozen leaves"


def test_set_to_zero_and_freeze_match_numpy():
    params = helpers.random_tree(0)
    g = helpers.grad_sequence(1, params, 1)[0]
    u, _ = gc.set_to_zero().update(g, gc.set_to_zero().init(params))
    assert all(
        x.dtype == y.dtype and not np.any(np.asarray(x))
        for x, y in zip(jax.tree.leaves(u), jax.tree.leaves(g))
    )
    u, _ = gc.freeze(MASK).update(g, gc.freeze(MASK).init(params))
    helpers.assert_trees_close(u, jax.tree.map(lambda m, x: 0 * x if m else x, MASK, helpers.to_numpy64(g)))


# ---------------------------------------------------------------- inject_hyperparams
def _adam_factory(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    return gc.chain(gc.scale_by_adam(b1=b1, b2=b2, eps=eps), gc.scale_by_learning_rate(learning_rate))


_ADAM_FACTORY = getattr(gc, "adam", _adam_factory)


def _lr_schedule(count):
    return 0.02 * 0.8 ** count.astype(jnp.float32)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_inject_hyperparams_matches_optax_with_a_schedule(jit):
    optax = pytest.importorskip("optax")
    _adam()  # skips if scale_by_adam is missing
    tx = gc.inject_hyperparams(_ADAM_FACTORY)(_lr_schedule, b1=0.8)
    otx = optax.inject_hyperparams(optax.adam)(learning_rate=_lr_schedule, b1=0.8)
    s, os_ = _compare_with_optax(tx, otx, jit=jit)
    assert {"learning_rate", "b1", "b2", "eps"} <= set(s.hyperparams)
    for k in s.hyperparams:
        np.testing.assert_allclose(s.hyperparams[k], os_.hyperparams[k], rtol=1e-6, err_msg=k)
        assert s.hyperparams[k].dtype == jnp.float32
    assert int(s.count) == N_STEPS


def test_inject_hyperparams_equals_the_factory_used_directly():
    _adam()
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, N_STEPS)
    u, _, _ = helpers.run_steps(gc.inject_hyperparams(_ADAM_FACTORY)(0.01, b2=0.99), params, grads, jit=True)
    ref, _, _ = helpers.run_steps(_ADAM_FACTORY(0.01, b2=0.99), params, grads, jit=True)
    for t in range(N_STEPS):  # float32 arrays vs Python floats: `1 - b2` rounds differently
        assert helpers.max_rel_diff(u[t], ref[t]) <= 2e-5, t


def test_inject_hyperparams_matches_numpy_schedule_and_override():
    """u_t = -h_t * g_t, h_t = schedule(t); an overridden constant is used from the next step."""
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, 4)
    tx = gc.inject_hyperparams(gc.scale_by_learning_rate)(_lr_schedule)
    u, _, s = helpers.run_steps(tx, params, grads)
    for t, (a, g) in enumerate(zip(u, grads)):
        helpers.assert_trees_close(
            a, jax.tree.map(lambda x, t=t: -0.02 * 0.8**t * x, helpers.to_numpy64(g)), rtol=1e-6
        )
    np.testing.assert_allclose(s.hyperparams["learning_rate"], 0.02 * 0.8**3, rtol=1e-6)
    s.hyperparams["learning_rate"] = jnp.asarray(5.0, jnp.float32)  # scheduled: has no effect
    helpers.assert_trees_close(
        tx.update(grads[0], s)[0], jax.tree.map(lambda x: -0.02 * 0.8**4 * x, grads[0]), rtol=1e-6
    )


def test_setting_a_hyperparameter_between_jitted_steps_changes_the_result_without_retracing():
    tx = gc.inject_hyperparams(gc.scale_by_learning_rate)(0.1)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(g, s):
        return tx.update(g, s)

    g = jnp.array([1.0, -2.0])
    state = tx.init(g)
    u1, state = step(g, state)
    state = state._replace(hyperparams={**state.hyperparams, "learning_rate": jnp.asarray(0.5, jnp.float32)})
    u2, state = step(g, state)
    np.testing.assert_allclose(u1, [-0.1, 0.2], rtol=1e-6)
    np.testing.assert_allclose(u2, [-0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(state.hyperparams["learning_rate"], 0.5)


def test_inject_hyperparams_dtypes_ints_and_static_args():
    bf = {"w": jnp.ones(3, jnp.bfloat16)}
    s = gc.inject_hyperparams(gc.scale_by_learning_rate)(0.1).init(bf)
    assert s.hyperparams["learning_rate"].dtype == jnp.float32  # at least float32
    s = gc.inject_hyperparams(gc.scale_by_learning_rate, hyperparam_dtype=jnp.bfloat16)(0.1).init(bf)
    assert s.hyperparams["learning_rate"].dtype == jnp.bfloat16
    # an int hyperparameter stays int32 and can be changed between steps
    tx = gc.inject_hyperparams(gc.accumulate_gradients)(gc.identity(), 2)
    s = tx.init(jnp.zeros(1))
    assert (
        s.hyperparams == {"every_k": jnp.asarray(2, jnp.int32)}
        and s.hyperparams["every_k"].dtype == jnp.int32
    )
    s.hyperparams["every_k"] = jnp.asarray(1, jnp.int32)
    u, s = tx.update(jnp.ones(1), s)
    np.testing.assert_allclose(u, [1.0])  # stepped on the first call with every_k = 1
    assert s.hyperparams["every_k"].dtype == jnp.int32
    # a value set with another dtype is cast back: the state keeps init's dtypes
    tx = gc.inject_hyperparams(gc.scale_by_learning_rate)(0.1)
    s = tx.init(jnp.zeros(1))
    s.hyperparams["learning_rate"] = jnp.asarray(2, jnp.int32)
    u, s = tx.update(jnp.ones(1), s)
    np.testing.assert_allclose(u, [-2.0])
    assert s.hyperparams["learning_rate"].dtype == jnp.float32
    # dtypes are passed as they are, not taken for schedules
    if hasattr(gc, "scale_by_adam"):
        s = gc.inject_hyperparams(gc.scale_by_adam)(mu_dtype=jnp.bfloat16).init(jnp.zeros(2))
        assert "mu_dtype" not in s.hyperparams and s.inner_state.mu.dtype == jnp.bfloat16
    # a callable that is not a schedule: static_args
    mask_fn = lambda p: jax.tree.map(lambda x: x.ndim > 0, p)
    tx = gc.inject_hyperparams(gc.masked, static_args="mask")(gc.scale(0.5), mask_fn)
    u, _ = tx.update({"a": jnp.ones(2), "b": jnp.ones(())}, tx.init({"a": jnp.ones(2), "b": jnp.ones(())}))
    np.testing.assert_allclose(u["a"], [0.5, 0.5])
    np.testing.assert_allclose(u["b"], 1.0)


# ---------------------------------------------------------------- apply_if_finite
def _nan_grads(seed, params, bad_steps):
    grads = helpers.grad_sequence(seed, params, N_STEPS)
    for t in bad_steps:
        grads[t] = dict(grads[t], b=grads[t]["b"].at[1].set(jnp.nan if t % 2 else jnp.inf))
    return grads


def _numpy_apply_if_finite(grads, max_errors):
    """finite_t, n_t, and inner = scale_by_schedule(1 / (1 + c)) advancing only on applied steps."""
    out, n, c, total = [], 0, 0, 0
    for g in map(helpers.to_numpy64, grads):
        finite = all(np.all(np.isfinite(x)) for x in jax.tree.leaves(g))
        n = 0 if finite else n + 1
        total += 0 if finite else 1
        if finite or n > max_errors:
            out.append(jax.tree.map(lambda x, c=c: x / (1.0 + c), g))
            c += 1
        else:
            out.append(jax.tree.map(np.zeros_like, g))
    return out, n, total, c


def test_apply_if_finite_matches_numpy_transcription():
    params = helpers.random_tree(0)
    grads = _nan_grads(1, params, [2, 5, 6, 8, 9, 10])
    inner = gc.scale_by_schedule(lambda c: 1.0 / (1.0 + c.astype(jnp.float32)))
    u, _, s = helpers.run_steps(gc.apply_if_finite(inner, 2), params, grads)
    ref, n, total, c = _numpy_apply_if_finite(grads, 2)
    for t, (a, b) in enumerate(zip(u, ref)):
        helpers.assert_trees_close(a, b, rtol=1e-6, msg=f"step {t}")  # NaN == NaN where it gave up
    assert (int(s.notfinite_count), int(s.total_notfinite), int(s.inner_state.count)) == (n, total, c)
    assert bool(s.last_finite)  # the last step (11) is finite
    _, _, s = helpers.run_steps(gc.apply_if_finite(inner, 2), params, grads[:11])
    assert not bool(s.last_finite) and int(s.notfinite_count) == 3


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("give_up", [False, True], ids=["skips", "gives-up"])
def test_apply_if_finite_matches_optax_with_nan_injection(give_up, jit):
    optax = pytest.importorskip("optax")
    params = helpers.random_tree(0)
    bad = [2, 5, 6, 9, 10, 11] if give_up else [2, 5, 6, 9]
    grads = _nan_grads(1, params, bad)
    check = (
        (lambda a, b, msg: helpers.assert_trees_close(a, b, rtol=2e-5, atol=1e-7, msg=msg))
        if give_up
        else None
    )
    s, os_ = _compare_with_optax(
        gc.apply_if_finite(_adam(), 2),
        optax.apply_if_finite(optax.adam(0.01), 2),
        jit=jit,
        grads=grads,
        check=check,
    )
    for f in ("notfinite_count", "last_finite", "total_notfinite"):
        assert int(getattr(s, f)) == int(getattr(os_, f)), f
    got_nan = any(np.isnan(np.asarray(x)).any() for x in jax.tree.leaves(s.inner_state))
    assert got_nan == give_up  # the inner state is untouched by skipped steps


# ---------------------------------------------------------------- errors
def test_mask_and_label_structure_mismatch_prints_both_structures():
    params = helpers.random_tree(0)
    with pytest.raises(
        ValueError, match=r"masked: the `mask` tree does not match .*\n  mask: .*\n  params: "
    ):
        gc.masked(gc.identity(), {"w": True, "b": False}).init(params)
    with pytest.raises(ValueError, match=r"masked: the `mask` tree does not match"):
        gc.freeze({"w": True, "b": False, "nested": [True]}).init(params)
    with pytest.raises(
        ValueError, match=r"partition: the `param_labels` tree does not match .*\n  param_labels: "
    ):
        gc.partition({"a": gc.identity()}, {"w": "a", "b": "a"}).init(params)


@pytest.mark.parametrize(
    "build,err,match",
    [
        (
            lambda: gc.masked(gc.identity, {"a": True}),
            TypeError,
            r"masked: `inner` must be a GradientTransformation",
        ),
        (
            lambda: gc.masked(gc.identity(), {"a": 1}).init({"a": jnp.ones(1)}),
            TypeError,
            r"masked: `mask` must be a pytree of Python bools",
        ),
        (
            lambda: gc.freeze({"a": "yes"}).init({"a": jnp.ones(1)}),
            TypeError,
            r"masked: `mask` must be a pytree",
        ),
        (
            lambda: gc.selective_transform(gc.scale, freeze_mask=True),
            TypeError,
            r"selective_transform: `optimizer` must be a GradientTransformation",
        ),
        (
            lambda: gc.selective_transform(gc.identity(), freeze_mask={"a": 0}).init({"a": jnp.ones(1)}),
            TypeError,
            r"selective_transform: `freeze_mask` must be a pytree of Python bools",
        ),
        (
            lambda: gc.partition({"a": gc.identity()}, {"w": "a", "b": "c"}),
            ValueError,
            (
                r"partition: `param_labels` uses label\(s\) 'c' that have no transformation; "
                r"`transforms` has keys \['a'\]"
            ),
        ),
        (
            lambda: gc.partition({"a": gc.identity()}, lambda p: {"w": "z"}).init({"w": jnp.ones(1)}),
            ValueError,
            r"partition: `param_labels` uses label\(s\) 'z'",
        ),
        (
            lambda: gc.partition({}, {"w": "a"}),
            TypeError,
            r"partition: `transforms` must be a non-empty mapping",
        ),
        (lambda: gc.partition([gc.identity()], {"w": "a"}), TypeError, r"partition: `transforms` must be"),
        (
            lambda: gc.partition({"a": gc.identity}, {"w": "a"}),
            TypeError,
            r"partition: `transforms\['a'\]` must be a GradientTransformation",
        ),
        (
            lambda: gc.apply_if_finite(gc.identity, 2),
            TypeError,
            r"apply_if_finite: `inner` must be a Gradient",
        ),
        (
            lambda: gc.apply_if_finite(gc.identity(), -1),
            ValueError,
            r"apply_if_finite: `max_consecutive_errors` must be >= 0, got -1\.",
        ),
        (
            lambda: gc.apply_if_finite(gc.identity(), 1.5),
            ValueError,
            r"`max_consecutive_errors` must be an integer",
        ),
        (
            lambda: gc.apply_if_finite(gc.identity(), None),
            TypeError,
            r"`max_consecutive_errors` must be a number",
        ),
    ],
)
def test_wrapper_errors(build, err, match):
    with pytest.raises(err, match=match):
        build()


@pytest.mark.parametrize(
    "build,err,match",
    [
        (
            lambda: gc.inject_hyperparams(3.0),
            TypeError,
            r"inject_hyperparams: `inner_factory` must be callable \(a transformation factory\), got 3\.0\.",
        ),
        (
            lambda: gc.inject_hyperparams(gc.scale_by_adam, static_args="lr"),
            ValueError,
            r"inject_hyperparams: `static_args` must name parameters of `inner_factory`, got \['lr'\]",
        ),
        (
            lambda: gc.inject_hyperparams(gc.scale, static_args=[1]),
            TypeError,
            r"`static_args` must be a string or an iterable of strings",
        ),
        (
            lambda: gc.inject_hyperparams(gc.scale, hyperparam_dtype=jnp.int32),
            TypeError,
            r"inject_hyperparams: `hyperparam_dtype` must be a floating dtype",
        ),
        (
            lambda: gc.inject_hyperparams(gc.scale)(0.1, lr=2),
            TypeError,
            r"inject_hyperparams\(scale\): got an unexpected keyword argument 'lr'",
        ),
        (
            lambda: gc.inject_hyperparams(gc.scale_by_learning_rate)(-1.0),
            ValueError,
            r"scale_by_learning_rate: `learning_rate` must be >= 0, got",
        ),
        (
            lambda: gc.inject_hyperparams(lambda lr: lr)(0.1),
            TypeError,
            r"inject_hyperparams: `inner_factory\(...\)` must be a GradientTransformation",
        ),
    ],
)
def test_inject_hyperparams_errors(build, err, match):
    with pytest.raises(err, match=match):
        build()
