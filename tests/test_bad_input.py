"""Bad input gets a clear error naming the function and the argument; valid input is never
refused; nothing is lost silently. One test (or test group) per defect class."""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain

# ------------------------------------------------ every factory names the argument it refuses


def _factories():
    out = []
    for name in sorted(gradchain.__all__):
        obj = getattr(gradchain, name)
        if not inspect.isfunction(obj) or name in {"apply_updates", "incremental_update", "global_norm"}:
            continue
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        for p in sig.parameters.values():
            if isinstance(p.default, float) and not isinstance(p.default, bool):
                out.append((name, p.name))
    return out


FACTORY_ARGS = _factories()


def _required_args(fn):
    """Plausible values for the required positional arguments of a factory."""
    values = {
        "learning_rate": 0.1,
        "max_norm": 1.0,
        "max_delta": 1.0,
        "threshold": 1.0,
        "step_size": 0.1,
        "decay": 0.9,
        "init_value": 1.0,
        "peak_value": 1.0,
        "end_value": 0.1,
        "value": 1.0,
        "transition_steps": 10,
        "decay_steps": 10,
        "warmup_steps": 5,
        "decay_rate": 0.5,
        "power": 1.0,
        "patience": 3,
        "every_k": 2,
        "max_consecutive_errors": 2,
        "clipping": 0.1,
        "l1": 0.1,
        "weight_decay": 0.1,
        "transition_begin": 0,
        "timescale": 10.0,
        "boundaries_and_scales": None,
        "step_size_fn": lambda c: 0.1,
        "transformations": None,
    }
    kw = {}
    for p in inspect.signature(fn).parameters.values():
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if p.name not in values:
                return None
            kw[p.name] = values[p.name]
    return kw


@pytest.mark.parametrize(("fn", "arg"), FACTORY_ARGS, ids=[f"{f}-{a}" for f, a in FACTORY_ARGS])
def test_a_nan_hyperparameter_is_refused_by_name(fn, arg):
    f = getattr(gradchain, fn)
    kw = _required_args(f)
    if kw is None:
        pytest.skip("needs non-numeric required arguments")
    kw[arg] = math.nan
    with pytest.raises((ValueError, TypeError)) as e:
        f(**kw)
    msg = str(e.value)
    assert msg.startswith(f"{fn}:") and f"`{arg}`" in msg, msg


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: gradchain.sgd(0.1, momentum=-1), r"^sgd: `momentum` must be >= 0"),
        (lambda: gradchain.rmsprop(0.1, momentum=1.5), r"^rmsprop: `momentum` must be >= 0"),
        (lambda: gradchain.lars(0.1, momentum=2.0), r"^lars: `momentum` must be >= 0"),
        (lambda: gradchain.adafactor(0.1, decay_offset=-5), r"^adafactor: `decay_offset` must be >= 0"),
        (
            lambda: gradchain.adafactor(0.1, clipping_threshold=0.0),
            r"^adafactor: `clipping_threshold` must be > 0",
        ),
        (
            lambda: gradchain.warmup_exponential_decay_schedule(0.0, math.nan, 10, 10, 0.5),
            r"^warmup_exponential_decay_schedule: `peak_value` must be a number",
        ),
        (lambda: gradchain.adam(math.inf), r"^adam: `learning_rate` must be finite, got inf"),
        (lambda: gradchain.adam(0.1, eps=-math.inf), r"^adam: .*`eps` must be finite"),
        (lambda: gradchain.clip_by_global_norm(math.inf), r"^clip_by_global_norm: `max_norm` must be finite"),
        (lambda: gradchain.sgd(jnp.asarray(0.1 + 1j)), r"^sgd: `learning_rate` must be a real number"),
        (lambda: gradchain.scale(1j), r"^scale: `step_size` must be a real number"),
    ],
)
def test_errors_name_the_function_and_the_right_argument(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_early_stopping_value_must_be_a_number():
    tx = gradchain.early_stopping(patience=2)
    with pytest.raises(TypeError, match=r"early_stopping: `value` must be a real number.*'x'"):
        tx.update(jnp.ones(1), tx.init(jnp.ones(1)), value="x")


@pytest.mark.parametrize(
    "make",
    [lambda: gradchain.clip_by_global_norm(1.0), lambda: gradchain.apply_if_finite(gradchain.sgd(0.1), 2)],
)
def test_bool_leaves_are_refused_by_name(make):
    tx = make()
    with pytest.raises(
        TypeError, match=r"`updates` must hold floating-point arrays, got dtype bool at leaf \['b'\]"
    ):
        tx.update({"a": jnp.ones(2), "b": jnp.array([True])}, tx.init({"a": jnp.ones(2), "b": jnp.ones(1)}))


# ---------------------------------------------------------------- valid input is accepted


def test_trace_with_decay_one_is_a_running_sum_as_in_optax():
    optax = pytest.importorskip("optax")
    tx, otx = gradchain.trace(1.0), optax.trace(1.0)
    s, os_ = tx.init(jnp.zeros(2)), otx.init(jnp.zeros(2))
    for k in range(12):
        g = jnp.asarray([1.0, -0.5]) * (k + 1)
        u, s = tx.update(g, s)
        with jax.numpy_dtype_promotion("standard"):
            ou, os_ = otx.update(g, os_)
        np.testing.assert_array_equal(u, ou)
    np.testing.assert_array_equal(u, jnp.asarray([78.0, -39.0]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradchain.cosine_decay_schedule(1.0, decay_steps=10**10),
        lambda: gradchain.linear_schedule(1.0, 0.0, transition_steps=10**30),
        lambda: gradchain.exponential_decay(1.0, 10**30, 0.5),
        lambda: gradchain.warmup_cosine_decay_schedule(0.0, 1.0, 10**12, 10**13),
    ],
)
def test_step_counts_beyond_int32_are_accepted(make):
    v = np.asarray([make()(c) for c in (0, 5, 2**31 - 1)], np.float64)
    assert np.all(np.isfinite(v)) and v[0] in (0.0, 1.0)


def test_optax_transformations_compose_inside_gradchain():
    optax = pytest.importorskip("optax")
    p = {"w": jnp.ones(3), "b": jnp.ones(2)}
    cases = [
        gradchain.chain(optax.clip_by_global_norm(1.0), gradchain.scale_by_adam(), optax.scale(-0.1)),
        gradchain.named_chain(("clip", optax.clip(0.5)), ("lr", gradchain.scale(-0.1))),
        gradchain.masked(optax.scale(2.0), {"w": True, "b": False}),
        gradchain.partition({"a": optax.sgd(0.1), "b": gradchain.sgd(0.1)}, {"w": "a", "b": "b"}),
        gradchain.apply_if_finite(optax.adam(0.1), 2),
        gradchain.accumulate_gradients(optax.sgd(0.1), 2),
    ]
    for tx in cases:
        s = tx.init(p)
        with jax.numpy_dtype_promotion("standard"):
            for _ in range(2):  # value= is forwarded to gradchain members, dropped for Optax's plain ones
                u, s = tx.update(p, s, p, value=jnp.asarray(1.0))
        assert jax.tree.structure(u) == jax.tree.structure(p)


def test_not_a_transformation_is_refused_with_the_hint():
    with pytest.raises(
        TypeError, match=r"chain: argument 1 must be a GradientTransformation.*forget to call"
    ):
        gradchain.chain(gradchain.scale(1.0), gradchain.scale_by_adam)
    with pytest.raises(TypeError, match=r"masked: `inner` must be a GradientTransformation"):
        gradchain.masked(object(), True)


def test_numpy_bool_masks_are_accepted():
    p = jnp.ones(2)
    for mask in (np.array(False), np.bool_(False), np.array(True)):
        u, _ = gradchain.freeze(mask).update(p, gradchain.freeze(mask).init(p))
        np.testing.assert_array_equal(u, jnp.zeros(2) if bool(mask) else p)
        tx = gradchain.selective_transform(gradchain.sgd(0.1), freeze_mask=mask)
        u, _ = tx.update(p, tx.init(p))
        np.testing.assert_allclose(u, jnp.zeros(2) if bool(mask) else -0.1 * p)


def test_none_updates_and_params_pass_as_in_optax():
    assert gradchain.apply_updates(None, None) is None
    assert gradchain.apply_updates(None, {"a": jnp.ones(1)}) is None
    assert gradchain.incremental_update(None, None, 0.1) is None
    tx = gradchain.add_decayed_weights(0.1)
    assert tx.update(None, tx.init(None), None)[0] is None
    assert tx.update({"a": None}, tx.init({"a": None}), {"a": None})[0] == {"a": None}
    with pytest.raises(ValueError, match="add_decayed_weights: this transformation needs the parameters"):
        tx.update({"a": jnp.ones(1)}, tx.init(None), None)


def test_python_number_leaves_are_floating_scalars():
    params = {"a": 1.5, "n": 2, "w": jnp.ones(3)}
    grads = {"a": 0.5, "n": 1, "w": jnp.ones(3)}
    for tx in (
        gradchain.adam(0.1),
        gradchain.sgd(0.1, momentum=0.9),
        gradchain.adamw(0.1),
        gradchain.lion(0.1),
    ):
        s = tx.init(params)
        u, s = tx.update(grads, s, params)
        for k in ("a", "n"):
            assert u[k].shape == () and u[k].dtype == jnp.float32
        new = gradchain.apply_updates(params, u)
        assert new["a"].dtype == jnp.float32 and float(new["a"]) < 1.5 and float(new["n"]) < 2.0


# ---------------------------------------------------------------- integer parameters


def test_integer_parameters_are_refused_not_silently_frozen():
    ints = {"w": jnp.ones(3, jnp.int32)}
    tx = gradchain.adam(0.1)
    with pytest.raises(
        TypeError, match=r"scale_by_adam: the state holds a int32 array at leaf \['w'\].*not trainable"
    ):
        tx.update({"w": jnp.ones(3)}, tx.init(ints), ints)
    with pytest.raises(
        TypeError, match=r"scale_by_adam: `updates` must hold floating-point arrays, got dtype int32"
    ):
        tx.update(ints, tx.init({"w": jnp.ones(3)}))
    with pytest.raises(
        TypeError, match=r"apply_updates: a float32 update cannot be added to a int32 parameter"
    ):
        gradchain.apply_updates(ints, {"w": jnp.ones(3)})


# ---------------------------------------------------------------- shapes and schedules


def test_a_shape_mismatch_never_broadcasts_into_the_state():
    tx = gradchain.adam(1e-3)
    with pytest.raises(
        ValueError,
        match=r"scale_by_adam: the update at leaf \(root\) has shape \(3,\), but the state holds shape \(1,\)",
    ):
        tx.update(jnp.ones(3), tx.init(jnp.zeros(1)))
    with pytest.raises(
        ValueError, match=r"scale_by_adam: the update at leaf \['b'\] has shape \(2, 3\).*\(4,\)"
    ):
        tx.update({"b": jnp.ones((2, 3))}, tx.init({"b": jnp.zeros(4)}))
    wd = gradchain.add_decayed_weights(0.1)
    with pytest.raises(
        ValueError, match=r"add_decayed_weights: the update at leaf \(root\) has shape \(3,\), but `params`"
    ):
        wd.update(jnp.ones(3), wd.init(jnp.ones(1)), jnp.ones(1))


@pytest.mark.parametrize(
    "make",
    [
        lambda s: gradchain.sgd(s),
        lambda s: gradchain.scale_by_schedule(s),
        lambda s: gradchain.adamw(0.1, weight_decay=s),
        lambda s: gradchain.inject_hyperparams(gradchain.sgd)(learning_rate=s),
    ],
)
def test_a_schedule_must_return_a_scalar(make):
    bad = lambda count: jnp.ones((2, 3))
    p = jnp.ones(3)
    with pytest.raises(
        ValueError, match=r"the schedule `\w+` must return a scalar, got an array of shape \(2, 3\)"
    ):
        tx = make(bad)
        tx.update(p, tx.init(p), p)


def test_inject_hyperparams_keeps_each_hyperparameter_dtype():
    make = gradchain.inject_hyperparams(gradchain.adam)
    tx = make(learning_rate=0.1, b2=jnp.asarray(0.99, jnp.bfloat16))
    with jax.enable_x64(True):
        p64 = jnp.zeros(3, jnp.float64)
        s = tx.init(p64)
        u, s = tx.update(jnp.ones(3, jnp.float64), s, p64)
    assert s.hyperparams["learning_rate"].dtype == jnp.float32
    assert s.hyperparams["b2"].dtype == jnp.bfloat16 and u.dtype == jnp.float64
    s32 = tx.init(jnp.zeros(3))
    assert jax.tree.map(lambda x: x.dtype, s32.hyperparams) == jax.tree.map(lambda x: x.dtype, s.hyperparams)


# ---------------------------------------------------------------- state that loads, saves and donates


def test_a_fresh_adam_8bit_state_can_be_donated():
    tx = gradchain.adam_8bit(1e-3)
    p = {"a": jnp.zeros(3), "b": jnp.zeros(5), "w": jnp.zeros((64, 128))}
    s = tx.init(p)
    step = jax.jit(lambda s, g: tx.update(g, s, p)[1], donate_argnums=0)
    s = step(s, jax.tree.map(jnp.ones_like, p))
    assert int(s[0].count) == 1


def test_autoclip_continues_from_a_flax_restored_state():
    serialization = pytest.importorskip("flax.serialization")
    tx = gradchain.autoclip(history_size=5)
    p = jnp.ones(3)
    s = tx.update(p, tx.init(p))[1]
    restored = serialization.from_bytes(s, serialization.to_bytes(s))
    assert isinstance(restored.history, np.ndarray)
    u, s2 = tx.update(p, restored)
    np.testing.assert_array_equal(u, tx.update(p, s)[0])


# ---------------------------------------------------------------- counters and rounding


def test_counters_saturate_instead_of_wrapping():
    top = np.iinfo(np.int32).max
    p = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    for tx in (
        gradchain.adam(0.1),
        gradchain.scale_by_schedule(lambda c: 0.1),
        gradchain.accumulate_gradients(gradchain.sgd(0.1), 3),
        gradchain.apply_if_finite(gradchain.sgd(0.1), 2),
        gradchain.inject_hyperparams(gradchain.sgd)(0.1),
    ):
        s = jax.tree.map(
            lambda x: jnp.full_like(x, top) if x.dtype == jnp.int32 and x.ndim == 0 else x, tx.init(p)
        )
        s2 = tx.update(p, s, p)[1]
        for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(s2)):
            if a.dtype == jnp.int32 and a.ndim == 0 and int(a) == top:
                assert int(b) >= 0, f"a counter wrapped around: {tx}"


def test_apply_updates_rounds_once():
    # 1 + 2**-8 + 2**-16 rounds up to 1 + 2**-7 in bfloat16; rounding the update first
    # (2**-8 + 2**-16 -> 2**-8) would give the tie 1 + 2**-8, which rounds to even: 1.0
    p = jnp.asarray([1.0], jnp.bfloat16)
    u = jnp.asarray([2.0**-8 + 2.0**-16], jnp.float32)
    out = gradchain.apply_updates(p, u)
    assert out.dtype == jnp.bfloat16 and float(out[0]) == 1.0 + 2.0**-7


# ---------------------------------------------------------------- NaN and Inf never slip through

SIZES = [1, 7, 4095, 4096, 4097, 2**16 + 3, 2**22]
FLOATS = [jnp.float16, jnp.bfloat16, jnp.float32, "float64"]


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_nan_and_inf_are_detected_at_every_size_and_position(dtype):
    from gradchain._tree import all_finite

    def check(dt):
        for n in SIZES:
            x = jnp.zeros((n,), dt)
            poisoned = jax.jit(lambda x, i, v: all_finite({"ok": jnp.ones(3), "x": x.at[i].set(v)}))
            assert bool(all_finite(x)) and bool(poisoned(x, 0, 0.0))
            positions = sorted({0, n // 2, n - 1, (7 * n) // 11})
            for i in positions:
                for v in (np.nan, np.inf, -np.inf):
                    assert not bool(poisoned(x, i, v)), (n, i, v, "jit")
            i = positions[-1]
            assert not bool(all_finite(x.at[i].set(np.nan))), (n, i, "eager")
            assert not bool(all_finite(x.reshape(1, n).at[0, 0].set(np.inf))), (n, "eager")

    if dtype == "float64":
        with jax.enable_x64(True):
            check(jnp.float64)
    else:
        check(dtype)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_guards_skip_a_nan_step_in_a_large_leaf(jit):
    g = jnp.zeros((128, 128)).at[3, 7].set(jnp.nan)
    for tx in (
        gradchain.apply_if_finite(gradchain.adam(1e-3), 3),
        gradchain.dynamic_loss_scaling(gradchain.adam(1e-3)),
    ):
        s0 = tx.init(g)
        update = jax.jit(tx.update) if jit else tx.update
        u, s = update(g, s0)
        assert not bool(jnp.any(u)), "the step was applied"
        inner = s.inner_state
        assert all(
            bool(jnp.all(jnp.isfinite(x)))
            for x in jax.tree.leaves(inner)
            if jnp.issubdtype(x.dtype, jnp.floating)
        )


def test_adam_8bit_keeps_a_nan_gradient_visible_in_the_state():
    g = jnp.zeros((128, 128)).at[3, 7].set(jnp.nan)
    tx = gradchain.adam_8bit(1e-3, block_size=4096)
    s = tx.update(g, tx.init(g))[1][0]
    assert not bool(jnp.all(jnp.isfinite(s.mu_absmax))), "a NaN gradient became a finite 8-bit state"
