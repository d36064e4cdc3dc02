"""state_shardings: state shardings, ZeRO-1 and `shard_state`.

The multi-device checks (state and updates keep the parameters' sharding, no gathers in
the compiled step, sharded == single-device training, ZeRO-1 memory and results) need
8 devices and run in a subprocess: tests/sharding_checks.py. The tests here run on the
session's one device: which sharding each state leaf gets (a partition spec does not
need the devices), `shard_state` equals its inner transformation, and every error.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

import gradchain
from gradchain import shard_state, state_shardings
from tests import helpers

ROOT = pathlib.Path(__file__).resolve().parent.parent
MESH = jax.make_mesh((1, 1), ("data", "model"), axis_types=(AxisType.Auto,) * 2)


def _ns(*spec):
    return NamedSharding(MESH, P(*spec))


PARAMS = {"w": jnp.zeros((8, 16)), "v": jnp.zeros((16, 16)), "b": jnp.zeros(16), "s": jnp.zeros(())}
SHARDINGS = {"w": _ns(None, "model"), "v": _ns("model", None), "b": _ns("model"), "s": _ns()}


def test_eight_device_checks():
    """tests/sharding_checks.py on 8 simulated CPU devices, in a fresh process."""
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    env = {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:xdist", "-p", "no:cacheprovider",
           "-o", "addopts=", str(ROOT / "tests" / "sharding_checks.py")]  # fmt: skip
    r = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    print("\n".join(line for line in out.splitlines() if line.startswith("[hlo]") or "passed" in line))
    assert r.returncode == 0, f"the 8-device checks failed:\n{out[-12000:]}"


# ------------------------------------------------------------- which sharding where


def test_per_parameter_state_takes_the_parameter_sharding():
    sh = state_shardings(gradchain.adamw(0.1), PARAMS, SHARDINGS)
    adam, decay = sh[0], sh[1]
    for k in PARAMS:
        assert adam.mu[k] == SHARDINGS[k] and adam.nu[k] == SHARDINGS[k], k
    assert adam.count.spec == P() and decay.count.spec == P()
    assert jax.tree.structure(sh) == jax.tree.structure(gradchain.adamw(0.1).init(PARAMS))


def test_shardings_read_from_the_parameters_or_given_as_a_prefix():
    tx = gradchain.adam(0.1)
    placed = jax.tree.map(jax.device_put, PARAMS, SHARDINGS)
    from_arrays = state_shardings(tx, placed)
    structs = jax.tree.map(lambda p, s: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=s), PARAMS, SHARDINGS)
    from_structs = state_shardings(tx, structs)
    given = state_shardings(tx, PARAMS, SHARDINGS)
    assert from_arrays == given and from_structs == given
    one = state_shardings(tx, PARAMS, _ns())  # a single sharding for every parameter
    assert all(s.spec == P() for s in jax.tree.leaves(one))


def test_masked_and_partition_states_keep_their_empty_nodes():
    labels = {"w": "a", "v": "a", "b": "b", "s": "b"}
    tx = gradchain.partition({"a": gradchain.adam(0.1), "b": gradchain.masked(gradchain.sgd(0.1, 0.9), {"b": True, "s": False, "w": False, "v": False})}, labels)  # fmt: skip
    sh = state_shardings(tx, PARAMS, SHARDINGS)
    assert jax.tree.structure(sh) == jax.tree.structure(tx.init(PARAMS))
    a = sh.inner_states["a"].inner_state[0]
    assert a.mu["w"] == SHARDINGS["w"] and isinstance(a.mu["b"], gradchain.MaskedNode)
    inner_b = sh.inner_states["b"].inner_state.inner_state[0]
    assert inner_b.trace["b"] == SHARDINGS["b"]


def test_other_leaves_are_replicated():
    tx = gradchain.inject_hyperparams(gradchain.adam)(learning_rate=0.1)
    sh = state_shardings(gradchain.chain(gradchain.clip_by_global_norm(1.0), tx), PARAMS, SHARDINGS)
    assert sh[0].global_norm.spec == P()
    assert sh[1].hyperparams["learning_rate"].spec == P() and sh[1].count.spec == P()
    assert sh[1].inner_state[0].mu["v"] == SHARDINGS["v"]


def test_factored_statistics_drop_the_reduced_axis():
    # v (16, 16): split on axis 0, square, so the shapes alone cannot say which axis each
    # statistic reduces; w (8, 16): v_row reduces axis 1 (the largest), v_col axis 0
    tx = gradchain.scale_by_factored_rms(min_dim_size_to_factor=8)
    sh = state_shardings(tx, PARAMS, SHARDINGS)
    assert sh.v_row["v"].spec == P("model") and sh.v_col["v"].spec == P()
    assert sh.v_row["w"].spec == P() and sh.v_col["w"].spec == P("model")
    assert sh.v["b"] == SHARDINGS["b"] and sh.v["w"] is None  # factored: no full second moment


def test_zero_axis_splits_the_first_free_divisible_axis():
    mesh = jax.make_mesh((1, 1), ("x", "y"), axis_types=(AxisType.Auto,) * 2)
    params = {"k": jnp.zeros((3, 4)), "s": jnp.zeros(()), "e": jnp.zeros((0, 2))}
    sh = state_shardings(gradchain.adam(0.1), params, NamedSharding(mesh, P()), zero_axis="x")[0]
    assert sh.mu["k"].spec == P("x", None) and sh.mu["s"].spec == P() and sh.mu["e"].spec == P(None, "x")
    assert sh.count.spec == P()
    both = state_shardings(gradchain.adam(0.1), params, NamedSharding(mesh, P()), zero_axis=("x", "y"))[0]
    assert both.mu["k"].spec == P(("x", "y"), None)
    # a parameter already split over the axis (FSDP-style) keeps its sharding
    on_x = {
        "k": NamedSharding(mesh, P(None, "x")),
        "s": NamedSharding(mesh, P()),
        "e": NamedSharding(mesh, P()),
    }
    assert state_shardings(gradchain.adam(0.1), params, on_x, zero_axis="x")[0].mu["k"].spec == P(None, "x")


def test_single_device_shardings_pass_through():
    dev = SingleDeviceSharding(jax.devices()[0])
    sh = state_shardings(gradchain.adam(0.1), PARAMS, dev)
    assert all(s == dev for s in jax.tree.leaves(sh))


# ------------------------------------------------------------------ shard_state


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("zero_axis", [None, "data"])
def test_shard_state_equals_its_inner_transformation(jit, zero_axis):
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, 10)
    inner = gradchain.chain(gradchain.clip_by_global_norm(1.0), gradchain.adam(0.1))
    tx = shard_state(inner, _ns(), zero_axis=zero_axis)
    u_ref, p_ref, s_ref = helpers.run_steps(inner, params, grads, jit=jit)
    u, p, s = helpers.run_steps(tx, params, grads, jit=jit)
    helpers.assert_trees_close(u, u_ref, rtol=0, msg="updates")
    helpers.assert_trees_close(p, p_ref, rtol=0, msg="params")
    helpers.assert_trees_close(s, s_ref, rtol=0, msg="state")


# ----------------------------------------------------------------------- errors


def test_errors():
    tx = gradchain.adam(0.1)
    with pytest.raises(TypeError, match="state_shardings: `tx` must be a GradientTransformation"):
        state_shardings(gradchain.adam, PARAMS, SHARDINGS)
    with pytest.raises(TypeError, match="`zero_axis` must be None, a mesh axis name or a tuple"):
        state_shardings(tx, PARAMS, SHARDINGS, zero_axis=0)
    with pytest.raises(ValueError, match=r"parameter \['b'\] has no sharding"):
        state_shardings(tx, jax.tree.map(np.asarray, PARAMS))
    with pytest.raises(TypeError, match="`param_shardings` must be a pytree of `jax.sharding.Sharding`"):
        state_shardings(tx, PARAMS, {"w": P(), "v": P(), "b": P(), "s": P()})
    with pytest.raises(ValueError, match="the `param_shardings` tree does not match the parameters"):
        state_shardings(tx, PARAMS, {"w": _ns(), "b": _ns()})
    dev = SingleDeviceSharding(jax.devices()[0])
    with pytest.raises(ValueError, match="`zero_axis` needs parameters sharded with"):
        state_shardings(tx, PARAMS, dev, zero_axis="data")
    with pytest.raises(ValueError, match=r"`zero_axis` must name axes of the mesh \{'data': 1, 'model': 1\}"):
        state_shardings(tx, PARAMS, SHARDINGS, zero_axis="batch")
    other = jax.make_mesh((1,), ("data",), axis_types=(AxisType.Auto,))
    with pytest.raises(ValueError, match="sharded over different meshes"):
        state_shardings(tx, PARAMS, {**SHARDINGS, "s": NamedSharding(other, P())})
    with pytest.raises(TypeError, match="shard_state: `inner` must be a GradientTransformation"):
        shard_state(gradchain.adam, _ns())
    with pytest.raises(TypeError, match="shard_state: `param_shardings` must be a pytree of"):
        shard_state(tx, P())
    with pytest.raises(TypeError, match="shard_state: `zero_axis` must be None"):
        shard_state(tx, _ns(), zero_axis=["data", 1])
