"""Optax's general utilities under Optax's names, checked against Optax 0.2.8."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain


def test_state_aliases_and_empty_init():
    for name in ("ScaleState", "ClipState", "AdaptiveGradClipState", "ScaleByTrustRatioState"):
        assert getattr(gradchain, name) is gradchain.EmptyState
    assert gradchain.init_empty_state({"w": jnp.ones(2)}) == gradchain.EmptyState()


def test_with_extra_args_support_wraps_an_optax_transformation():
    tx = gradchain.with_extra_args_support(optax.scale(-2.0))
    with jax.numpy_dtype_promotion("standard"):
        u, _ = tx.update(jnp.ones(2), tx.init(jnp.ones(2)), None, value=1.0)
    np.testing.assert_array_equal(u, [-2.0, -2.0])
    with pytest.raises(TypeError, match="with_extra_args_support: `tx` must be a GradientTransformation"):
        gradchain.with_extra_args_support(3)


def test_counters_saturate_like_optax():
    for c in (0, 7, 2**31 - 2, 2**31 - 1):
        x = jnp.asarray(c, jnp.int32)
        assert int(gradchain.safe_increment(x)) == int(optax.safe_increment(x))
        assert int(gradchain.safe_int32_increment(x)) == int(optax.safe_int32_increment(x))
    with pytest.raises(TypeError, match="safe_int32_increment: `count` must be an int32 array"):
        gradchain.safe_int32_increment(jnp.asarray(1.0))


@pytest.mark.parametrize("kw", [{}, {"ord": 1}, {"axis": 0}, {"axis": 1, "keepdims": True}])
def test_safe_norm_matches_optax_values_and_gradients(kw):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, 4)), jnp.float32).at[1].set(0.0)
    for min_norm in (0.0, 0.5, 10.0):
        f = lambda x: jnp.sum(gradchain.safe_norm(x, min_norm, **kw))
        with jax.numpy_dtype_promotion("standard"):
            g_ref = jax.grad(lambda x: jnp.sum(optax.safe_norm(x, min_norm, **kw)))(x)
            v_ref = optax.safe_norm(x, min_norm, **kw)
        np.testing.assert_allclose(gradchain.safe_norm(x, min_norm, **kw), v_ref, rtol=1e-6)
        np.testing.assert_allclose(jax.grad(f)(x), g_ref, rtol=1e-6, atol=1e-7)
        x64 = np.asarray(x, np.float64)  # float64 transcription: max(||x||, min_norm)
        ref = np.maximum(
            np.linalg.norm(x64, ord=kw.get("ord"), axis=kw.get("axis"), keepdims=kw.get("keepdims", False)),
            min_norm,
        )
        np.testing.assert_allclose(gradchain.safe_norm(x, min_norm, **kw), ref, rtol=1e-6)
    assert bool(jnp.all(jnp.isfinite(jax.grad(lambda x: gradchain.safe_norm(x, 0.0))(jnp.zeros(3)))))


def test_tree_map_params_maps_only_the_per_parameter_state():
    params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    for make in (
        lambda: gradchain.adam(1e-3),
        lambda: gradchain.chain(gradchain.clip_by_global_norm(1.0), gradchain.sgd(0.1, momentum=0.9)),
    ):
        tx = make()
        state = tx.update(params, tx.init(params), params)[1]
        out = gradchain.tree_map_params(
            tx, lambda x: x.astype(jnp.bfloat16), state, transform_non_params=lambda v: v
        )
        per_param = [x for x in jax.tree.leaves(out) if x.ndim > 0]
        assert per_param and all(x.dtype == jnp.bfloat16 for x in per_param)
        counters = [x for x in jax.tree.leaves(out) if x.ndim == 0]
        assert all(x.dtype != jnp.bfloat16 for x in counters)
        otx = optax.adam(1e-3)  # the same selection as Optax's
        ostate = otx.init(params)
        o = optax.tree_map_params(otx, lambda x: x.astype(jnp.bfloat16), ostate)
        assert sum(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(o)) == 4


def test_optax_names_for_porting_are_gradchains_own():
    assert gradchain.clip is gradchain.clip_by_value and gradchain.multi_transform is gradchain.partition
    assert gradchain.GradientTransformationExtraArgs is gradchain.GradientTransformation
    assert gradchain.MultiStepsState is gradchain.AccumulateGradientsState
    assert gradchain.MultiTransformState is gradchain.PartitionState


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_multi_steps_class_matches_optax(jit):
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32)}
    ms = gradchain.MultiSteps(gradchain.sgd(0.1, momentum=0.9), every_k_schedule=3)
    oms = optax.MultiSteps(optax.sgd(0.1, momentum=0.9), every_k_schedule=3)
    s, os_ = ms.init(params), oms.init(params)
    upd = jax.jit(ms.update) if jit else ms.update
    for _ in range(12):
        g = {"w": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32)}
        u, s = upd(g, s, params)
        with jax.numpy_dtype_promotion("standard"):
            ou, os_ = oms.update(g, os_, params)
        np.testing.assert_allclose(u["w"], ou["w"], rtol=2e-5, atol=1e-7)
        assert bool(ms.has_updated(s)) == bool(oms.has_updated(os_))
    tx = ms.gradient_transformation()
    assert isinstance(tx, gradchain.GradientTransformation)
