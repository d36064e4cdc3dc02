"""ema_params, swa_params and averaged_params: parity with torch.optim.swa_utils.AveragedModel
(EMA and SWA, float64, the same parameter sequence) and with timm's ModelEmaV3 warm-up,
float64 NumPy transcriptions of the docstrings, dtypes (a float32 average for bfloat16
parameters), reading the average through wrappers, and errors."""

from __future__ import annotations

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

SHAPES = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}
N_STEPS = 14
LR = 0.1


def _params(dtype=jnp.float32):
    return helpers.random_tree(0, SHAPES, dtype=dtype)


def _run(tx, params, grads, *, jit):
    """Run ``tx`` (an averaging member chained last), returning the average after each step."""
    step = lambda p, s, g: tx.update(g, s, p)
    if jit:
        step = jax.jit(step)
    state, out = tx.init(params), []
    for g in grads:
        u, state = step(params, state, g)
        params = gc.apply_updates(params, u)
        out.append(gc.averaged_params(state))
    return out, params, state


def _sgd_params(params, grads):
    """The parameter sequence of plain SGD, float64 NumPy (what the average sees)."""
    p = helpers.to_numpy64(params)
    out = []
    for g in helpers.to_numpy64(grads):
        p = jax.tree.map(lambda a, b: a - LR * b, p, g)
        out.append(p)
    return out


# ----------------------------------------------------------- torch AveragedModel (float64)
def _torch_averages(params, grads, make_averaged, take):
    """torch: SGD steps on float64 tensors, ``update_parameters`` after the steps ``take(t)``."""
    torch = pytest.importorskip("torch")
    names = sorted(SHAPES)
    model = torch.nn.ParameterDict(
        {k: torch.nn.Parameter(torch.tensor(np.asarray(params[k], np.float64))) for k in names}
    )
    avg = make_averaged(model)
    out = []
    for t, g in enumerate(grads, start=1):
        with torch.no_grad():
            for k in names:
                model[k].sub_(LR * torch.tensor(np.asarray(g[k], np.float64)))
        if take(t):
            avg.update_parameters(model)
        out.append({k: avg.module[k].detach().numpy().copy() for k in names})
    return out


TORCH_CASES = {
    "ema": (
        lambda: gc.ema_params(0.9),
        lambda su: (
            lambda m: su.AveragedModel(m, multi_avg_fn=su.get_ema_multi_avg_fn(0.9), use_buffers=False)
        ),
        lambda t: True,
    ),
    "ema_avg_fn": (  # the per-tensor form, get_ema_avg_fn
        lambda: gc.ema_params(0.75),
        lambda su: lambda m: su.AveragedModel(m, avg_fn=su.get_ema_avg_fn(0.75)),
        lambda t: True,
    ),
    "swa": (lambda: gc.swa_params(), lambda su: lambda m: su.AveragedModel(m), lambda t: True),
    "swa_start_period": (
        lambda: gc.swa_params(start_step=3, update_period=2),
        lambda su: lambda m: su.AveragedModel(m),
        lambda t: t >= 3 and (t - 3) % 2 == 0,
    ),
}


@pytest.mark.parametrize(
    "name, jit",
    [("ema", False), ("swa_start_period", False)] + [(n, True) for n in sorted(TORCH_CASES)],
    ids=str,
)
def test_matches_torch_averaged_model_float64(name, jit):
    torch = pytest.importorskip("torch")
    make, make_torch, take = TORCH_CASES[name]
    with jax.enable_x64(True):
        params = _params(jnp.float64)
        grads = helpers.grad_sequence(1, params, N_STEPS)
        tx = gc.chain(gc.sgd(LR), make())
        ours, _, state = _run(tx, params, grads, jit=jit)
        expected = _torch_averages(params, grads, make_torch(torch.optim.swa_utils), take)
        for t, (a, e) in enumerate(zip(ours, expected), start=1):
            assert all(x.dtype == jnp.float64 for x in jax.tree.leaves(a))
            helpers.assert_trees_close(a, e, rtol=1e-13, atol=1e-14, msg=f"{name} step {t}")
        n_taken = sum(take(t) for t in range(1, N_STEPS + 1))
        assert int(state[-1].n_averaged) == n_taken and int(state[-1].count) == N_STEPS


# ------------------------------------------------------------ timm ModelEmaV3 (float64)
def _timm_model_ema():
    """timm.utils.model_ema, loaded from its file (timm's package __init__ needs torchvision)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or spec.origin is None:
        pytest.skip("timm is not installed")
    path = pathlib.Path(spec.origin).parent / "utils" / "model_ema.py"
    mod_spec = importlib.util.spec_from_file_location("_timm_model_ema", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


TIMM_CASES = {  # ModelEmaV3 keyword arguments, shared with ema_params
    "warmup": {"decay": 0.99, "use_warmup": True, "warmup_gamma": 1.0, "warmup_power": 3 / 4},
    "warmup_min_after": {
        "decay": 0.95,
        "min_decay": 0.4,
        "update_after_step": 3,
        "use_warmup": True,
        "warmup_gamma": 2.0,
        "warmup_power": 2 / 3,
    },
    "plain_after": {"decay": 0.8, "update_after_step": 2},
}


@pytest.mark.parametrize("name", sorted(TIMM_CASES))
def test_matches_timm_model_ema_v3_float64(name):
    torch = pytest.importorskip("torch")
    kw = TIMM_CASES[name]
    model_ema = _timm_model_ema()
    with jax.enable_x64(True):
        params = _params(jnp.float64)
        grads = helpers.grad_sequence(2, params, N_STEPS)
        ours, _, _ = _run(gc.chain(gc.sgd(LR), gc.ema_params(**kw)), params, grads, jit=True)
    names = sorted(SHAPES)
    model = torch.nn.ParameterDict(
        {k: torch.nn.Parameter(torch.tensor(np.asarray(params[k], np.float64))) for k in names}
    )
    ema = model_ema.ModelEmaV3(model, foreach=False, **kw)
    for t, g in enumerate(grads, start=1):
        with torch.no_grad():
            for k in names:
                model[k].sub_(LR * torch.tensor(np.asarray(g[k], np.float64)))
        ema.update(model, step=t)  # timm's train loop: step = number of optimizer updates so far
        expected = {k: ema.module[k].detach().numpy() for k in names}
        helpers.assert_trees_close(ours[t - 1], expected, rtol=1e-13, atol=1e-14, msg=f"{name} step {t}")


# --------------------------------------------------------- float64 NumPy transcriptions
def _np_ema(xs, a0, decay, min_decay=0.0, after=0, warmup=False, gamma=1.0, power=2 / 3):
    a, out = a0, []
    for t, x in enumerate(xs, start=1):
        s = max(t - after - 1, 0)  # s = max(t - update_after_step - 1, 0)
        if s == 0:
            d = 0.0  # d_t = 0 if s == 0
        elif not warmup:
            d = decay  # d_t = decay
        else:
            d = max(min(1 - (1 + s / gamma) ** -power, decay), min_decay)  # warm-up
        a = x if d == 0 else d * a + (1 - d) * x  # a_t
        out.append(a)
    return out


def _np_swa(xs, a0, start, period):
    a, n, out = a0, 0, []
    for t, x in enumerate(xs, start=1):
        if t >= start and (t - start) % period == 0:
            a = x if n == 0 else a + (x - a) / (n + 1)  # a = x_t if n == 0, else a + (x_t - a) / (n + 1)
            n = n + 1  # n = n + 1
        out.append(a)
    return out


NP_CASES = {
    "ema": (lambda: gc.ema_params(0.9), dict(decay=0.9), _np_ema),
    "ema_warmup": (
        lambda: gc.ema_params(0.995, min_decay=0.2, update_after_step=1, use_warmup=True, warmup_power=0.8),
        dict(decay=0.995, min_decay=0.2, after=1, warmup=True, power=0.8),
        _np_ema,
    ),
    "swa": (lambda: gc.swa_params(2, 3), dict(start=2, period=3), _np_swa),
}


@pytest.mark.parametrize(
    "name, jit", [("ema_warmup", False)] + [(n, True) for n in sorted(NP_CASES)], ids=str
)
def test_matches_float64_transcription_of_docstring(name, jit):
    make, kw, ref = NP_CASES[name]
    params = _params()
    grads = helpers.grad_sequence(3, params, N_STEPS)
    ours, _, _ = _run(gc.chain(gc.sgd(LR), make()), params, grads, jit=jit)
    xs = _sgd_params(params, grads)
    expected = jax.tree.map(
        lambda *leaves: ref(list(leaves[1:]), leaves[0], **kw), helpers.to_numpy64(params), *xs
    )
    for t in range(N_STEPS):
        exp_t = jax.tree.map(lambda seq: seq[t], expected, is_leaf=lambda x: isinstance(x, list))
        helpers.assert_trees_close(ours[t], exp_t, rtol=2e-6, atol=2e-6, msg=f"{name} step {t + 1}")


# ------------------------------------------------------------------ behaviour and dtypes
def test_updates_pass_through_and_average_starts_at_the_initial_params():
    params = _params()
    tx = gc.ema_params(0.9)
    state = tx.init(params)
    helpers.assert_trees_close(gc.averaged_params(state), params, rtol=0)
    g = helpers.grad_sequence(4, params, 1)[0]
    u, state = tx.update(g, state, params)
    assert u is g
    helpers.assert_trees_close(gc.averaged_params(state), gc.apply_updates(params, g), rtol=0)  # a copy


def test_bfloat16_params_get_a_float32_average_that_moves():
    # A bfloat16 EMA with decay 0.999 would not move: (1 - d) * (x - a) rounds away.
    params = {"w": jnp.ones((8,), jnp.bfloat16)}
    tx = gc.chain(gc.sgd(1.0), gc.ema_params(0.999))
    state = tx.init(params)
    assert state[-1].average["w"].dtype == jnp.float32
    g = {"w": jnp.full((8,), -1.0, jnp.bfloat16)}
    for _ in range(3):
        u, state = tx.update(g, state, params)
        params = gc.apply_updates(params, u)
    avg = gc.averaged_params(state)["w"]
    np.testing.assert_allclose(
        np.asarray(avg), 0.999 * (0.999 * 2 + 0.001 * 3) + 0.001 * 4, rtol=1e-6
    )  # 2, 3, 4
    assert gc.averaged_params(state, params)["w"].dtype == jnp.bfloat16
    half = gc.ema_params(0.5, average_dtype=jnp.bfloat16).init(params)
    assert half.average["w"].dtype == jnp.bfloat16


def test_average_dtype_float16_params_and_float64():
    p16 = {"w": jnp.ones(3, jnp.float16)}
    assert gc.swa_params().init(p16).average["w"].dtype == jnp.float32
    assert gc.swa_params(average_dtype=jnp.float16).init(p16).average["w"].dtype == jnp.float16


def test_averaged_params_through_wrappers_masks_and_nnx_style_states():
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    inner = gc.chain(gc.adam(0.1), gc.ema_params(0.5))
    tx = gc.apply_if_finite(gc.masked(inner, {"w": True, "b": False}), 3)
    state = tx.init(params)
    grads = {"w": jnp.full((2, 3), 0.5), "b": jnp.full(3, 0.5)}
    u, state = tx.update(grads, state, params)
    new = gc.apply_updates(params, u)
    out = gc.averaged_params(state, new)
    np.testing.assert_allclose(out["w"], new["w"], rtol=1e-7)  # first step: a copy
    assert out["b"] is new["b"]  # masked out: the parameter itself


def test_reads_an_nnx_optimizer_state():
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(model, gc.chain(gc.adamw(0.1), gc.ema_params(0.5)), wrt=nnx.Param)
    snapshots = []
    for _ in range(2):
        opt.update(model, nnx.grad(lambda m: jnp.sum(m(jnp.ones((4, 3))) ** 2))(model))
        snapshots.append([np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))])
    avg = gc.averaged_params(opt.opt_state, nnx.state(model, nnx.Param))
    for a, x1, x2 in zip(jax.tree.leaves(avg), *snapshots):  # a copy, then 0.5 * a + 0.5 * x
        np.testing.assert_allclose(a, 0.5 * x1 + 0.5 * x2, rtol=1e-6)


def test_state_is_bit_identical_under_jit_and_keeps_its_structure():
    params = _params()
    grads = helpers.grad_sequence(5, params, 4)
    tx = gc.chain(gc.lion(1e-2), gc.swa_params(1, 2))
    _, _, s_e = _run(tx, params, grads, jit=False)
    _, _, s_j = _run(tx, params, grads, jit=True)
    assert jax.tree.structure(s_e) == jax.tree.structure(tx.init(params))
    for a, b in zip(jax.tree.leaves(s_e), jax.tree.leaves(s_j)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_several_averages_need_the_member_state():
    params = {"w": jnp.ones(2)}
    tx = gc.chain(gc.sgd(0.1), gc.ema_params(0.9), gc.swa_params())
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"averaged_params: `state` holds 2 AveragedParamsState"):
        gc.averaged_params(state)
    gc.averaged_params(state[1])
    gc.averaged_params(state[2])


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: gc.ema_params(1.5), ValueError, r"ema_params: `decay` must be >= 0 and <= 1, got 1\.5"),
        (lambda: gc.ema_params("0.9"), TypeError, r"ema_params: `decay` must be a number"),
        (lambda: gc.ema_params(0.9, min_decay=-0.1), ValueError, r"ema_params: `min_decay` must be >= 0"),
        (lambda: gc.ema_params(0.9, update_after_step=-1), ValueError, r"`update_after_step` must be >= 0"),
        (
            lambda: gc.ema_params(0.9, update_after_step=1.5),
            ValueError,
            r"`update_after_step` must be an integer",
        ),
        (lambda: gc.ema_params(0.9, use_warmup=1), TypeError, r"ema_params: `use_warmup` must be a bool"),
        (lambda: gc.ema_params(0.9, warmup_gamma=0.0), ValueError, r"`warmup_gamma` must be > 0"),
        (lambda: gc.ema_params(0.9, warmup_power=-1.0), ValueError, r"`warmup_power` must be > 0"),
        (
            lambda: gc.ema_params(0.9, average_dtype=jnp.int32),
            TypeError,
            r"ema_params: `average_dtype` must be",
        ),
        (lambda: gc.swa_params(-1), ValueError, r"swa_params: `start_step` must be >= 0, got -1"),
        (lambda: gc.swa_params(0, 0), ValueError, r"swa_params: `update_period` must be >= 1, got 0"),
        (
            lambda: gc.averaged_params(gc.adam(0.1).init(jnp.ones(2))),
            ValueError,
            r"averaged_params: no AveragedParamsState",
        ),
    ],
)
def test_bad_arguments_raise(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_update_needs_params_and_matching_trees():
    params = {"w": jnp.ones(3)}
    tx = gc.ema_params(0.9)
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"ema_params: this transformation needs the parameters"):
        tx.update(params, state)
    with pytest.raises(ValueError, match=r"ema_params: the update at leaf \['w'\] has shape \(2,\)"):
        tx.update({"w": jnp.ones(2)}, state, {"w": jnp.ones(2)})
    with pytest.raises(
        ValueError, match=r"averaged_params: the average does not have the structure of `params`"
    ):
        gc.averaged_params(state, {"v": jnp.ones(3)})
