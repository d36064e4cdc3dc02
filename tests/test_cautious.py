"""cautious and add_cautious_weight_decay: parity with timm's AdamW, Lion and Adopt with
``caution=True`` (torch float64 against gradchain under x64), float64 NumPy transcriptions
of the docstrings (per-leaf, global and no rescaling; cautious weight decay), the sign
convention of optimizers against building blocks, edge cases and errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers
from tests.oracles import timm_optim

SHAPES = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}
N_STEPS = 14
RTOL_F64 = 1e-10  # float64 on both sides: agreement to rounding (the masks are identical)


def _params(dtype=jnp.float32):
    return helpers.random_tree(0, SHAPES, dtype=dtype)


def _grads(like, n=N_STEPS, seed=1):
    return helpers.grad_sequence(seed, like, n)


def _torch_trajectory(make_opt, params, grads):
    torch = pytest.importorskip("torch")
    names = sorted(SHAPES)
    ps = {k: torch.nn.Parameter(torch.tensor(np.asarray(params[k], np.float64))) for k in names}
    opt = make_opt([ps[k] for k in names])
    out = []
    for g in grads:
        for k in names:
            ps[k].grad = torch.tensor(np.asarray(g[k], np.float64))
        opt.step()
        out.append({k: ps[k].detach().numpy().copy() for k in names})
    return out


def _adopt_block():
    """ADOPT before the learning rate, as timm's (clip value (t - 1)**0.333): Optax's, under
    standard promotion (gradchain wraps any (init, update) pair)."""
    optax = pytest.importorskip("optax")
    inner = optax.contrib.scale_by_adopt(0.9, 0.9999, 1e-6, clip_value_fn=lambda c: c**0.333)

    def update(u, s, p=None):
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            return inner.update(u, s, p)

    return gc.GradientTransformation(inner.init, update)


TIMM = {  # name: (timm optimizer, the gradchain composition)
    "adamw": (
        lambda ps: timm_optim("adamw").AdamWLegacy(
            ps, lr=0.01, weight_decay=0.1, caution=True, foreach=False
        ),
        lambda: gc.chain(
            gc.cautious(gc.scale_by_adam(), descent=False),
            gc.add_decayed_weights(0.1),
            gc.scale_by_learning_rate(0.01),
        ),
    ),
    "adamw_foreach_wrapped_optimizer": (  # no decay: the whole optimizer may sit inside `cautious`
        lambda ps: timm_optim("adamw").AdamWLegacy(
            ps, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.0, caution=True, foreach=True
        ),
        lambda: gc.cautious(gc.adam(0.02, 0.8, 0.99, 1e-6)),
    ),
    "lion": (
        lambda ps: timm_optim("lion").Lion(ps, lr=0.003, betas=(0.9, 0.99), weight_decay=0.5, caution=True),
        lambda: gc.chain(
            gc.cautious(gc.scale_by_lion(0.9, 0.99), descent=False),
            gc.add_decayed_weights(0.5),
            gc.scale_by_learning_rate(0.003),
        ),
    ),
    "lion_wrapped_optimizer": (
        lambda ps: timm_optim("lion").Lion(ps, lr=0.003, weight_decay=0.0, caution=True, foreach=True),
        lambda: gc.cautious(gc.lion(0.003, weight_decay=0.0)),
    ),
    "adopt": (
        lambda ps: timm_optim("adopt").Adopt(ps, lr=0.01, caution=True, foreach=False),
        lambda: gc.chain(gc.cautious(_adopt_block(), descent=False), gc.scale_by_learning_rate(0.01)),
    ),
}


@pytest.mark.parametrize("name", sorted(TIMM))
def test_matches_timm_caution_float64(name):
    make_timm, make = TIMM[name]
    with jax.enable_x64(True):
        params = _params(jnp.float64)
        grads = _grads(params)
        _, ours, _ = helpers.run_steps(make(), params, grads, jit=True)
    expected = _torch_trajectory(make_timm, params, grads)
    for t, (a, e) in enumerate(zip(ours, expected), start=1):
        helpers.assert_trees_close(a, e, rtol=RTOL_F64, atol=1e-12, msg=f"{name} step {t}")


# --------------------------------------------------------- float64 NumPy transcriptions
def _np_cautious_momentum(params, grads, lr, b, eps, rescale):
    """``cautious(sgd(lr, momentum=b))`` in float64, one line per docstring line."""
    m = {k: np.zeros_like(v) for k, v in params.items()}
    p = dict(params)
    out = []
    for g in grads:
        m = {k: b * m[k] + g[k] for k in m}
        u = {k: -lr * m[k] for k in m}  # the inner optimizer's (negated) update
        keep = {k: (u[k] * g[k] < 0).astype(np.float64) for k in m}  # keep = (u * g < 0)
        if rescale == "leaf":
            r = {k: max(keep[k].mean(), eps) for k in m}  # r = max(mean(keep), eps), per leaf
        elif rescale == "global":
            frac = sum(keep[k].sum() for k in m) / sum(keep[k].size for k in m)
            r = {k: max(frac, eps) for k in m}  # ... over all leaves
        else:
            r = {k: 1.0 for k in m}
        u = {k: u[k] * keep[k] / r[k] for k in m}  # u' = u * keep / r
        p = {k: p[k] + u[k] for k in m}
        out.append(p)
    return out


@pytest.mark.parametrize(
    "rescale, jit", [("leaf", False), ("leaf", True), ("global", True), ("none", True)], ids=str
)
def test_cautious_matches_float64_transcription(rescale, jit):
    params = _params()
    grads = _grads(params, seed=2)
    tx = gc.cautious(gc.sgd(0.05, momentum=0.9), 0.3, rescale=rescale)
    _, ours, _ = helpers.run_steps(tx, params, grads, jit=jit)
    expected = _np_cautious_momentum(
        helpers.to_numpy64(params), helpers.to_numpy64(grads), 0.05, 0.9, 0.3, rescale
    )
    for t, (a, e) in enumerate(zip(ours, expected), start=1):
        helpers.assert_trees_close(a, e, rtol=2e-5, atol=2e-6, msg=f"{rescale} step {t}")


def _np_cwd(params, grads, lr, wd):
    """``chain(scale_by_adam(), add_cautious_weight_decay(wd), scale_by_learning_rate(lr))``."""
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    p = dict(params)
    out = []
    for t, g in enumerate(grads, start=1):
        m = {k: 0.9 * m[k] + 0.1 * g[k] for k in m}
        v = {k: 0.999 * v[k] + 0.001 * g[k] ** 2 for k in m}
        u = {k: (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8) for k in m}
        u = {k: u[k] + wd * (u[k] * p[k] >= 0) * p[k] for k in m}  # u + wd * 1[u * p >= 0] * p
        p = {k: p[k] - lr * u[k] for k in m}
        out.append(p)
    return out


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_cautious_weight_decay_matches_float64_transcription(jit):
    params = _params()
    grads = _grads(params, seed=3)
    tx = gc.chain(gc.scale_by_adam(), gc.add_cautious_weight_decay(0.3), gc.scale_by_learning_rate(0.02))
    _, ours, _ = helpers.run_steps(tx, params, grads, jit=jit)
    expected = _np_cwd(helpers.to_numpy64(params), helpers.to_numpy64(grads), 0.02, 0.3)
    for t, (a, e) in enumerate(zip(ours, expected), start=1):
        helpers.assert_trees_close(a, e, rtol=2e-5, atol=2e-6, msg=f"step {t}")


def test_cautious_weight_decay_schedule_mask_and_zero():
    p = {"w": jnp.array([1.0, -1.0, 2.0]), "b": jnp.array([1.0])}
    g = {"w": jnp.array([0.5, 0.5, -0.5]), "b": jnp.array([0.5])}
    sched = lambda count: 0.1 * (count.astype(jnp.float32) + 1)
    tx = gc.add_cautious_weight_decay(sched, mask={"w": True, "b": False})
    state = tx.init(p)
    u, state = tx.update(g, state, p)
    np.testing.assert_allclose(u["w"], [0.6, 0.5, -0.5], rtol=1e-6)  # decayed only where u * p >= 0
    np.testing.assert_allclose(u["b"], [0.5])  # masked out
    u, state = tx.update(g, state, p)
    np.testing.assert_allclose(u["w"], [0.7, 0.5, -0.5], rtol=1e-6)  # the schedule's second value
    zero = gc.add_cautious_weight_decay()
    assert zero.update(g, zero.init(p), p)[0] is g
    # u = 0 counts as agreeing (1[u * p >= 0]), as in the paper
    half = gc.add_cautious_weight_decay(0.5)
    p2 = jnp.array([2.0, -2.0])
    np.testing.assert_allclose(half.update(jnp.zeros(2), half.init(p2), p2)[0], [1.0, -1.0])


# ------------------------------------------------------------------- behaviour, edges
def test_descent_flag_is_the_sign_convention():
    g = jnp.array([1.0, -1.0, 2.0, -2.0])
    block = gc.stateless(lambda u, p: jnp.array([1.0, 1.0, -2.0, -2.0]))  # agrees with g at 0 and 3
    u, _ = gc.cautious(block, descent=False).update(g, gc.EmptyState())
    np.testing.assert_allclose(u, [2.0, 0.0, 0.0, -4.0])
    # the same block negated, as an optimizer returns it, under the default convention
    neg = gc.chain(block, gc.scale(-1.0))
    u, _ = gc.cautious(neg).update(g, neg.init(g))
    np.testing.assert_allclose(u, [-2.0, 0.0, 0.0, 4.0])


def test_everything_masked_gives_zero_and_eps_bounds_the_scale():
    tx = gc.cautious(gc.scale(1.0), eps=0.25)  # scale(+1) ascends: every coordinate disagrees
    u, _ = tx.update(jnp.ones(5), gc.EmptyState())
    np.testing.assert_array_equal(u, np.zeros(5))
    block = gc.stateless(lambda u, p: jnp.array([1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0]))
    u, _ = gc.cautious(block, eps=0.25, descent=False).update(jnp.ones(8), gc.EmptyState())
    np.testing.assert_allclose(u, [4.0] + [0.0] * 7)  # kept 1/8, floored at 1/4: scaled by 4, not 8


def test_tiny_values_keep_their_sign_and_nans_are_not_hidden():
    g = jnp.array([1e-30, -1e-30, 1.0])
    block = gc.stateless(lambda u, p: jnp.array([1e-30, -1e-30, jnp.nan]))  # products underflow to 0
    u, _ = gc.cautious(block, rescale="none", descent=False).update(g, gc.EmptyState())
    np.testing.assert_array_equal(np.asarray(u[:2]), np.float32([1e-30, -1e-30]))
    assert bool(jnp.isnan(u[2]))


def test_state_is_the_inner_state_and_complex_leaves_are_masked_by_parts():
    inner = gc.adam(0.1)
    p = {"w": jnp.ones(3)}
    assert jax.tree.structure(gc.cautious(inner).init(p)) == jax.tree.structure(inner.init(p))
    g = jnp.array([1.0 + 1.0j, -1.0 + 2.0j])
    block = gc.stateless(lambda u, p: jnp.array([1.0 - 1.0j, 1.0 + 1.0j], jnp.complex64))
    u, _ = gc.cautious(block, rescale="none", descent=False).update(g.astype(jnp.complex64), gc.EmptyState())
    np.testing.assert_allclose(u, [1.0 + 0.0j, 0.0 + 1.0j])


def test_bfloat16_updates_keep_their_dtype():
    p = {"w": jnp.ones((4, 3), jnp.bfloat16)}
    g = helpers.grad_sequence(4, p, 3)
    tx = gc.chain(
        gc.cautious(gc.scale_by_adam(), descent=False), gc.add_cautious_weight_decay(0.1), gc.scale(-0.1)
    )
    u, ps, _ = helpers.run_steps(tx, p, g, jit=True)
    assert u[-1]["w"].dtype == jnp.bfloat16 and ps[-1]["w"].dtype == jnp.bfloat16


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: gc.cautious(gc.adam), TypeError, r"cautious: `inner` must be a GradientTransformation"),
        (lambda: gc.cautious(gc.adam(0.1), 0.0), ValueError, r"cautious: `eps` must be > 0, got 0\.0"),
        (
            lambda: gc.cautious(gc.adam(0.1), rescale="tensor"),
            ValueError,
            r"cautious: `rescale` must be 'leaf'",
        ),
        (lambda: gc.cautious(gc.adam(0.1), rescale=None), TypeError, r"cautious: `rescale` must be"),
        (lambda: gc.cautious(gc.adam(0.1), descent="yes"), TypeError, r"cautious: `descent` must be a bool"),
        (
            lambda: gc.add_cautious_weight_decay(-0.1),
            ValueError,
            r"add_cautious_weight_decay: `weight_decay` must be >= 0",
        ),
        (
            lambda: gc.add_cautious_weight_decay(0.1).update(
                jnp.ones(2), gc.add_cautious_weight_decay(0.1).init(None)
            ),
            ValueError,
            r"add_cautious_weight_decay: this transformation needs the parameters",
        ),
        (
            lambda: gc.add_cautious_weight_decay(0.1).update(
                jnp.ones(2), gc.AddCautiousWeightDecayState(0), jnp.ones(3)
            ),
            ValueError,
            r"add_cautious_weight_decay: the update at leaf",
        ),
        (
            lambda: gc.cautious(gc.scale(1.0)).update(jnp.ones(2, jnp.int32), gc.EmptyState()),
            TypeError,
            r"cautious: `updates` must hold floating-point arrays",
        ),
    ],
)
def test_bad_arguments_raise(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
