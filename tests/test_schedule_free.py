"""Schedule-Free: `schedule_free`, `schedule_free_sgd`, `schedule_free_adamw` and
`schedule_free_eval_params` against optax.contrib 0.2.8, the authors' ``schedulefree`` 1.4.1
reference optimizers (torch, float64) and a float64 NumPy transcription of the docstrings.
"""

from __future__ import annotations

import contextlib
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

SHAPES = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}
N_STEPS = 12


def _problem(dtype=jnp.float32, n=N_STEPS, seed=0):
    params = helpers.random_tree(seed, SHAPES, dtype=dtype)
    return params, helpers.grad_sequence(seed + 1, params, n)


def _trajectory(
    tx, params, grads, *, jit=False, eval_fn=gc.schedule_free_eval_params, apply=gc.apply_updates
):
    """Per step: (params y, eval params x); and the final state."""

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        p = apply(p, u)
        return p, eval_fn(s, p), s

    step = jax.jit(step) if jit else step
    state, ys, xs = tx.init(params), [], []
    for g in grads:
        params, x, state = step(params, state, g)
        ys.append(params)
        xs.append(x)
    return ys, xs, state


# ----------------------------------------------------------------- optax.contrib parity

optax = pytest.importorskip("optax")
oc = optax.contrib


def _sched_gc(c):
    return 0.1 / (1.0 + 0.1 * c.astype(jnp.float32))


OPTAX_CASES = {
    "wrapper_sgd": (
        lambda: gc.schedule_free(gc.sgd(0.1), 0.1),
        lambda: oc.schedule_free(optax.sgd(0.1), 0.1),
    ),
    "wrapper_adam_b1_power": (
        lambda: gc.schedule_free(gc.adam(0.01, b1=0.0), 0.01, b1=0.8, weight_lr_power=1.0),
        lambda: oc.schedule_free(optax.adam(0.01, b1=0.0), 0.01, b1=0.8, weight_lr_power=1.0),
    ),
    "wrapper_schedule": (
        lambda: gc.schedule_free(gc.sgd(_sched_gc), _sched_gc, b1=0.95),
        lambda: oc.schedule_free(optax.sgd(_sched_gc), _sched_gc, b1=0.95),
    ),
    "sgd_warmup_wd": (
        lambda: gc.schedule_free_sgd(0.5, warmup_steps=5, weight_decay=0.01),
        lambda: oc.schedule_free_sgd(0.5, warmup_steps=5, weight_decay=0.01),
    ),
    "sgd_defaults": (lambda: gc.schedule_free_sgd(0.05), lambda: oc.schedule_free_sgd(0.05)),
    "adamw_defaults": (gc.schedule_free_adamw, oc.schedule_free_adamw),
    "adamw_warmup_wd": (
        lambda: gc.schedule_free_adamw(0.02, 4, 0.7, 0.99, 1e-6, 0.1, 1.5),
        lambda: oc.schedule_free_adamw(0.02, 4, 0.7, 0.99, 1e-6, 0.1, 1.5),
    ),
}


EAGER = ("wrapper_adam_b1_power", "sgd_warmup_wd", "adamw_warmup_wd")  # eager is slow: three cases
OPTAX_RUNS = [(n, True) for n in OPTAX_CASES] + [(n, False) for n in EAGER]


@pytest.mark.parametrize(
    "name,jit", OPTAX_RUNS, ids=[f"{n}-{'jit' if j else 'eager'}" for n, j in OPTAX_RUNS]
)
def test_matches_optax(name, jit):
    make, make_optax = OPTAX_CASES[name]
    params, grads = _problem()
    ys, xs, state = _trajectory(make(), params, grads, jit=jit)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        ys_o, xs_o, state_o = _trajectory(
            make_optax(),
            params,
            grads,
            jit=jit,
            eval_fn=oc.schedule_free_eval_params,
            apply=optax.apply_updates,
        )
    for t in range(len(grads)):
        helpers.assert_trees_close_relative(ys[t], ys_o[t], rtol=2e-5, msg=f"{name} params step {t}")
        helpers.assert_trees_close_relative(xs[t], xs_o[t], rtol=2e-5, msg=f"{name} eval params step {t}")
    helpers.assert_trees_close_relative(state.z, state_o.z, rtol=2e-5, msg=f"{name} z")
    for field in ("b1", "weight_sum", "max_lr"):
        np.testing.assert_allclose(getattr(state, field), getattr(state_o, field), rtol=2e-6, err_msg=field)
    assert int(state.step_count) == int(state_o.step_count) == N_STEPS + 1
    assert state._fields == state_o._fields


def test_optax_names_are_reachable_from_contrib():
    for name in ("schedule_free", "schedule_free_adamw", "schedule_free_sgd", "schedule_free_eval_params"):
        assert getattr(gc.contrib, name) is getattr(gc, name)
    assert gc.contrib.ScheduleFreeState is gc.ScheduleFreeState
    assert gc.ScheduleFreeState._fields == oc.ScheduleFreeState._fields


def test_an_optax_base_optimizer_can_be_wrapped():
    params, grads = _problem(n=3)
    ys, _, _ = _trajectory(gc.schedule_free(optax.sgd(0.1), 0.1), params, grads)
    ys_g, _, _ = _trajectory(gc.schedule_free(gc.sgd(0.1), 0.1), params, grads)
    helpers.assert_trees_close(ys[-1], ys_g[-1], rtol=1e-6)


# -------------------------------------------- the authors' schedulefree 1.4.1 (torch)


def _reference(cls, kwargs, params, grads):
    """The authors' optimizer in float64: per step, its params in train mode (y) and in
    eval mode (x), as lists of leaves."""
    torch = pytest.importorskip("torch")
    ps = [torch.nn.Parameter(torch.tensor(np.asarray(p, np.float64))) for p in jax.tree.leaves(params)]
    opt = cls(ps, **kwargs)
    ys, xs = [], []
    with contextlib.redirect_stdout(io.StringIO()):  # it prints on every mode switch
        opt.train()
        for g in grads:
            for p, gi in zip(ps, jax.tree.leaves(g)):
                p.grad = torch.tensor(np.asarray(gi, np.float64))
            opt.step()
            ys.append([p.detach().numpy().copy() for p in ps])
            opt.eval()
            xs.append([p.detach().numpy().copy() for p in ps])
            opt.train()
    return ys, xs


sf = pytest.importorskip("schedulefree")
LR = lambda v: jnp.asarray(v, jnp.float64)  # a float64 learning rate keeps the schedule in float64

# (gradchain under x64, the authors' class, its arguments); gradchain's authors' flags on
REFERENCE_CASES = {
    "sgd": (
        lambda: gc.schedule_free_sgd(LR(0.1), align_schedule=True),
        sf.SGDScheduleFreeReference,
        dict(lr=0.1),
    ),
    "sgd_warmup_wd_r": (
        lambda: gc.schedule_free_sgd(LR(0.5), 5, 0.8, 0.01, 1.5, r=0.5, align_schedule=True),
        sf.SGDScheduleFreeReference,
        dict(lr=0.5, momentum=0.8, weight_decay=0.01, warmup_steps=5, r=0.5, weight_lr_power=1.5),
    ),
    "adamw_warmup_wd": (
        lambda: gc.schedule_free_adamw(LR(0.02), 4, weight_decay=0.1, align_schedule=True),
        sf.AdamWScheduleFreeReference,
        dict(lr=0.02, warmup_steps=4, weight_decay=0.1),
    ),
    "adamw_decay_at_z_r": (
        lambda: gc.schedule_free_adamw(
            LR(0.02), 3, 0.7, 0.99, 1e-6, 0.2, 2.5, r=1.0, decay_at_z=True, align_schedule=True
        ),
        sf.AdamWScheduleFreeReference,
        dict(
            lr=0.02,
            betas=(0.7, 0.99),
            eps=1e-6,
            weight_decay=0.2,
            warmup_steps=3,
            r=1.0,
            weight_lr_power=2.5,
            decay_at_z=True,
        ),
    ),
    # without a warmup the default (Optax's) convention is already the authors'
    "adamw_no_warmup_default_flags": (
        lambda: gc.schedule_free_adamw(0.01, weight_decay=0.05),
        sf.AdamWScheduleFreeReference,
        dict(lr=0.01, weight_decay=0.05),
    ),
    "sgd_warmup_0_is_no_warmup": (
        lambda: gc.schedule_free_sgd(LR(0.1), warmup_steps=0),
        sf.SGDScheduleFreeReference,
        dict(lr=0.1, warmup_steps=0),
    ),
}


@pytest.mark.parametrize("name", list(REFERENCE_CASES))
def test_matches_the_authors_reference(name):
    make, cls, kwargs = REFERENCE_CASES[name]
    with jax.enable_x64(True):
        params, grads = _problem(jnp.float64)
        ys, xs, _ = _trajectory(make(), params, grads, jit=True)
    ref_y, ref_x = _reference(cls, kwargs, params, grads)
    for t in range(len(grads)):  # train mode: the params gradchain returns; eval mode: eval params
        for i, (y, x) in enumerate(zip(jax.tree.leaves(ys[t]), jax.tree.leaves(xs[t]))):
            assert y.dtype == jnp.float64
            np.testing.assert_allclose(y, ref_y[t][i], rtol=1e-10, atol=1e-13, err_msg=f"{name} y {t} {i}")
            np.testing.assert_allclose(x, ref_x[t][i], rtol=1e-10, atol=1e-13, err_msg=f"{name} x {t} {i}")


def test_optax_convention_differs_from_the_authors_only_under_a_schedule():
    # Optax's base optimizer reads the warmup one step behind: its first step leaves z
    # (and y) where they are, where the authors' moves by lr / warmup_steps.
    with jax.enable_x64(True):
        params, grads = _problem(jnp.float64, n=4)
        ys, _, _ = _trajectory(gc.schedule_free_sgd(LR(0.5), 5), params, grads)
    ref_y, _ = _reference(sf.SGDScheduleFreeReference, dict(lr=0.5, warmup_steps=5), params, grads)
    np.testing.assert_array_equal(jax.tree.leaves(ys[0])[0], jax.tree.leaves(params)[0])
    assert not np.allclose(ref_y[0][0], jax.tree.leaves(params)[0])
    assert not np.allclose(jax.tree.leaves(ys[-1])[0], ref_y[-1][0], rtol=1e-3)


# --------------------------------------------------- float64 NumPy transcription


def np_schedule_free(base, lr, b1=0.9, weight_lr_power=2.0, r=0.0):
    """`schedule_free`'s docstring, one line per formula line; ``base(g, y, z, t) -> d``."""
    s = dict(t=0, lrmax=0.0, W=0.0, z=None)

    def step(g, y):
        if s["z"] is None:
            s["z"] = y.copy()
        s["t"] += 1
        t, z_prev = s["t"], s["z"]
        lr_t = lr(t)
        s["lrmax"] = max(s["lrmax"], lr_t)
        w = t**r * s["lrmax"] ** weight_lr_power
        s["W"] = s["W"] + w
        c = w / s["W"] if s["W"] else 0.0
        x_prev = (y - (1 - b1) * z_prev) / b1
        s["z"] = z = z_prev + base(g, y, z_prev, t)
        x = (1 - c) * x_prev + c * z
        y_new = b1 * x + (1 - b1) * z
        return y_new - y

    return step


def np_sgd(lr, weight_decay=0.0):
    return lambda g, y, z, t: -lr(t - 1) * (g + weight_decay * y)


def np_adamw(lr, b2, eps, weight_decay, at_z=False):
    s = dict(v=0.0)

    def base(g, y, z, t):
        p = z if at_z else y
        s["v"] = b2 * s["v"] + (1 - b2) * g**2
        return -lr(t - 1) * (g / (np.sqrt(s["v"] / (1 - b2**t)) + eps) + weight_decay * p)

    return base


warm = lambda peak, w: lambda t: peak * min(t / w, 1.0)
const = lambda v: lambda t: v
TRANSCRIPTIONS = {
    "wrapper_sgd": (
        lambda: gc.schedule_free(gc.sgd(0.1), 0.1, 0.8, 1.0, r=0.5),
        lambda: np_schedule_free(np_sgd(const(0.1)), const(0.1), 0.8, 1.0, 0.5),
    ),
    "sgd_warmup_wd": (
        lambda: gc.schedule_free_sgd(LR(0.3), 4, 0.9, 0.05),
        lambda: np_schedule_free(np_sgd(warm(0.3, 4), 0.05), warm(0.3, 4)),
    ),
    "sgd_aligned": (
        lambda: gc.schedule_free_sgd(LR(0.3), 4, 0.9, 0.05, align_schedule=True),
        lambda: np_schedule_free(np_sgd(lambda t: warm(0.3, 4)(t + 1), 0.05), warm(0.3, 4)),
    ),
    "adamw": (
        lambda: gc.schedule_free_adamw(LR(0.02), 3, 0.7, 0.99, 1e-6, 0.1, r=2.0),
        lambda: np_schedule_free(np_adamw(warm(0.02, 3), 0.99, 1e-6, 0.1), warm(0.02, 3), 0.7, 2.0, 2.0),
    ),
    "adamw_decay_at_z": (
        lambda: gc.schedule_free_adamw(0.02, b1=1.0, weight_decay=0.1, decay_at_z=True),
        lambda: np_schedule_free(np_adamw(const(0.02), 0.999, 1e-8, 0.1, True), const(0.02), 1.0),
    ),
}


@pytest.mark.parametrize("name", list(TRANSCRIPTIONS))
def test_matches_float64_transcription(name):
    make, make_ref = TRANSCRIPTIONS[name]
    with jax.enable_x64(True):
        params, grads = _problem(jnp.float64, n=14)
        updates, _, _ = helpers.run_steps(make(), params, grads)
    for i, p in enumerate(jax.tree.leaves(helpers.to_numpy64(params))):
        ref = make_ref()
        for t, g in enumerate(grads):
            u = ref(np.asarray(jax.tree.leaves(g)[i]), p)
            got = np.asarray(jax.tree.leaves(updates[t])[i])
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, u, rtol=1e-9, atol=1e-14, err_msg=f"{name} leaf {i} step {t}")
            p = p + u


# ------------------------------------------------------------------------ edge cases


def test_first_step_moves_y_to_z_and_the_average_is_z():
    params, grads = _problem(n=1)
    tx = gc.schedule_free(gc.sgd(0.1), 0.1)
    u, state = tx.update(grads[0], tx.init(params), params)
    expected = jax.tree.map(lambda g: -0.1 * g, grads[0])
    helpers.assert_trees_close(u, expected, rtol=1e-6, atol=2e-7)  # z + d is rounded to float32
    y = gc.apply_updates(params, u)
    helpers.assert_trees_close(state.z, y, rtol=1e-6)
    helpers.assert_trees_close(gc.schedule_free_eval_params(state, y), y, rtol=1e-6)
    assert int(state.step_count) == 2 and float(state.weight_sum) == pytest.approx(0.01)


def test_init_state():
    params = _problem(n=0)[0]
    state = gc.schedule_free_sgd(0.1, b1=0.75).init(params)
    assert int(state.step_count) == 1 and state.step_count.dtype == jnp.int32
    assert float(state.b1) == 0.75 and float(state.weight_sum) == 0 and float(state.max_lr) == 0
    helpers.assert_trees_close(state.z, params, rtol=0)
    assert all(z is not p for z, p in zip(jax.tree.leaves(state.z), jax.tree.leaves(params)))


@pytest.mark.parametrize("align", [False, True])
def test_warmup_weights_and_steps(align):
    params, grads = _problem(n=6)
    tx = gc.schedule_free_sgd(0.4, warmup_steps=4, align_schedule=align)
    us, _, state = helpers.run_steps(tx, params, grads)
    lrs = [0.4 * min(t / 4, 1.0) for t in range(1, 7)]  # the weights read lr(t), t = 1, 2, ...
    assert float(state.max_lr) == pytest.approx(0.4)
    assert float(state.weight_sum) == pytest.approx(sum(v**2 for v in lrs), rel=1e-6)
    first = jax.tree.leaves(us[0])[0]
    g0 = jax.tree.leaves(grads[0])[0]
    # Optax's convention: the base optimizer reads lr(0) = 0, so the first step is zero
    np.testing.assert_allclose(first, -0.1 * g0 if align else 0.0 * g0, rtol=1e-6, atol=0)


def test_b1_one_trains_at_the_average_and_uniform_weights_average_z():
    params, grads = _problem(n=5)
    tx = gc.schedule_free(gc.sgd(0.1), 0.1, b1=1.0, weight_lr_power=0.0)
    state, zs, p = tx.init(params), [], params
    for g in grads:
        u, state = tx.update(g, state, p)
        p = gc.apply_updates(p, u)
        zs.append(state.z)
    helpers.assert_trees_close(gc.schedule_free_eval_params(state, p), p, rtol=1e-6)
    mean = jax.tree.map(lambda *z: sum(z) / len(z), *zs)
    helpers.assert_trees_close(p, mean, rtol=1e-5, atol=1e-6)


def test_zero_learning_rate_is_a_no_op_not_nan():
    params, grads = _problem(n=3)
    for tx in (gc.schedule_free_sgd(0.0), gc.schedule_free(gc.sgd(0.0), 0.0)):
        us, ps, state = helpers.run_steps(tx, params, grads, jit=True)
        assert all(not bool(jnp.any(u)) for u in jax.tree.leaves(us))
        assert float(state.weight_sum) == 0.0
        helpers.assert_trees_close(gc.schedule_free_eval_params(state, ps[-1]), params, rtol=0)


def test_schedule_learning_rate_is_read_at_the_1_based_step():
    seen = []
    schedule = lambda c: (seen.append(c), 0.1 * (c.astype(jnp.float32) + 1.0))[1]
    params, grads = _problem(n=3)
    _, _, state = helpers.run_steps(gc.schedule_free(gc.sgd(0.01), schedule), params, grads)
    assert [int(c) for c in seen] == [1, 2, 3]
    assert float(state.max_lr) == pytest.approx(0.4)


def test_state_dtypes():
    params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), _problem(n=0)[0])
    grads = helpers.grad_sequence(3, params, 3)
    for state_dtype, z_dtype in ((None, jnp.bfloat16), (jnp.float32, jnp.float32)):
        tx = gc.schedule_free_adamw(0.01, state_dtype=state_dtype)
        us, ps, state = helpers.run_steps(tx, params, grads, jit=True)
        assert all(z.dtype == z_dtype for z in jax.tree.leaves(state.z))
        assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(us[-1]))
        assert state.weight_sum.dtype == state.max_lr.dtype == state.b1.dtype == jnp.float32
        x = gc.schedule_free_eval_params(state, ps[-1])
        assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(x))
    with jax.enable_x64(True):
        state = gc.schedule_free_sgd().init(jnp.zeros(3, jnp.float64))
        assert state.weight_sum.dtype == state.b1.dtype == state.z.dtype == jnp.float64
        state = gc.schedule_free_sgd(state_dtype=jnp.float64).init(jnp.zeros(3, jnp.float32))
        assert state.z.dtype == jnp.float64 and state.weight_sum.dtype == jnp.float32


def test_float32_state_tracks_the_average_of_bfloat16_params_closer():
    params, grads = _problem(n=12)
    ys, xs, _ = _trajectory(gc.schedule_free_adamw(0.01), params, grads)
    err = {}
    for sd in (None, jnp.float32):
        p16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
        g16 = [jax.tree.map(lambda x: x.astype(jnp.bfloat16), g) for g in grads]
        _, xs16, _ = _trajectory(gc.schedule_free_adamw(0.01, state_dtype=sd), p16, g16)
        err[sd] = helpers.max_rel_diff(xs16[-1], xs[-1], floor=0.1)
    assert err[jnp.float32] < err[None]


def test_eval_params_finds_the_state_inside_a_chain():
    params, grads = _problem(n=3)
    tx = gc.chain(gc.clip_by_global_norm(1.0), gc.schedule_free_sgd(0.1))
    _, ps, state = helpers.run_steps(tx, params, grads)
    expected = gc.schedule_free_eval_params(state[1], ps[-1])
    helpers.assert_trees_close(gc.schedule_free_eval_params(state, ps[-1]), expected, rtol=0)


def test_extra_args_reach_the_base_optimizer():
    seen = {}

    def update(u, s, p=None, **extra):
        seen.update(extra)
        return u, s

    tx = gc.schedule_free(gc.GradientTransformation(lambda p: (), update), 1.0)
    p = jnp.ones(2)
    tx.update(p, tx.init(p), p, value=jnp.asarray(3.0))
    assert float(seen["value"]) == 3.0


# ---------------------------------------------------------------------------- errors

ERRORS = [
    (
        lambda: gc.schedule_free(gc.sgd(0.1), 0.1, b1=0.0),
        ValueError,
        r"schedule_free: `b1` must be > 0 and <= 1",
    ),
    (lambda: gc.schedule_free(gc.sgd(0.1), 0.1, b1=1.5), ValueError, r"schedule_free: `b1` must be"),
    (lambda: gc.schedule_free(gc.sgd(0.1), -0.1), ValueError, r"schedule_free: `learning_rate` must be >= 0"),
    (lambda: gc.schedule_free(gc.sgd(0.1), 0.1, weight_lr_power=-1.0), ValueError, r"`weight_lr_power` must"),
    (lambda: gc.schedule_free(gc.sgd(0.1), 0.1, r=float("nan")), ValueError, r"schedule_free: `r` must be"),
    (lambda: gc.schedule_free(gc.sgd(0.1), 0.1, state_dtype=jnp.int32), TypeError, r"`state_dtype` must be"),
    (lambda: gc.schedule_free(gc.sgd, 0.1), TypeError, r"schedule_free: `base_optimizer`"),
    (
        lambda: gc.schedule_free_sgd(0.1, warmup_steps=-1),
        ValueError,
        r"schedule_free_sgd: `warmup_steps` must",
    ),
    (
        lambda: gc.schedule_free_sgd(0.1, warmup_steps=2.5),
        TypeError,
        r"schedule_free_sgd: `warmup_steps` must",
    ),
    (
        lambda: gc.schedule_free_sgd(lambda c: 0.1, warmup_steps=3),
        TypeError,
        r"schedule_free_sgd: `learning_rate` must be a number when `warmup_steps`",
    ),
    (lambda: gc.schedule_free_sgd(0.1, b1=0.0), ValueError, r"schedule_free_sgd: `b1` must be > 0"),
    (lambda: gc.schedule_free_sgd(0.1, weight_decay=-1.0), ValueError, r"schedule_free_sgd: `weight_decay`"),
    (lambda: gc.schedule_free_sgd(-1.0), ValueError, r"schedule_free_sgd: `learning_rate` must be >= 0"),
    (lambda: gc.schedule_free_sgd(align_schedule=1), TypeError, r"schedule_free_sgd: `align_schedule` must"),
    (lambda: gc.schedule_free_adamw(b2=1.0), ValueError, r"schedule_free_adamw: `b2` must be"),
    (lambda: gc.schedule_free_adamw(eps=-1.0), ValueError, r"schedule_free_adamw: `eps` must be >= 0"),
    (lambda: gc.schedule_free_adamw(weight_decay=-1.0), ValueError, r"schedule_free_adamw: `weight_decay`"),
    (lambda: gc.schedule_free_adamw(decay_at_z="yes"), TypeError, r"schedule_free_adamw: `decay_at_z` must"),
    (lambda: gc.schedule_free_adamw(b1=2.0), ValueError, r"schedule_free_adamw: `b1` must be"),
]


@pytest.mark.parametrize("make,exc,match", ERRORS, ids=[m for _, _, m in ERRORS])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_updates_params_and_states():
    tx = gc.schedule_free_sgd(0.1)
    p = {"a": jnp.ones(3)}
    state = tx.init(p)
    with pytest.raises(ValueError, match="schedule_free_sgd: this transformation needs the parameters"):
        tx.update(p, state)
    with pytest.raises(ValueError, match=r"schedule_free_sgd: the update at leaf \['a'\] has shape"):
        tx.update({"a": jnp.ones(2)}, state, p)
    with pytest.raises(ValueError, match="schedule_free_sgd: the `updates` tree does not match"):
        tx.update({"b": jnp.ones(3)}, state, p)
    with pytest.raises(ValueError, match=r"schedule_free_sgd: the update at leaf \['a'\].*the parameters"):
        tx.update(p, state, {"a": jnp.ones(2)})
    with pytest.raises(TypeError, match="schedule_free: `state_dtype` must be a complex dtype"):
        gc.schedule_free(gc.sgd(0.1), 0.1, state_dtype=jnp.float32).init(jnp.ones(2, jnp.complex64))
    with pytest.raises(
        ValueError, match="schedule_free_eval_params: `state` must be a ScheduleFreeState or hold"
    ):
        gc.schedule_free_eval_params(gc.adam(0.1).init(p), p)
    with pytest.raises(ValueError, match="got 2"):
        gc.schedule_free_eval_params((state, state), p)
    with pytest.raises(ValueError, match="schedule_free_eval_params: the `updates` tree does not match"):
        gc.schedule_free_eval_params(state, {"b": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"schedule_free_eval_params: the state's `b1` must be > 0"):
        gc.schedule_free_eval_params(state._replace(b1=jnp.zeros([])), p)
    with pytest.raises(ValueError, match="the schedule `learning_rate` must return a scalar"):
        tx = gc.schedule_free(gc.sgd(0.1), lambda c: jnp.ones(2))
        tx.update(p, tx.init(p), p)
