"""The flat-buffer fast path (gradchain/flat.py) gives the plain path's numbers."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
import gradchain as gc
from tests import helpers
from tests.registry import CASES

# Cases whose rule is elementwise or uses only global reductions: identical on flat buffers.
FLAT_SAFE = {
    "accumulate_gradients", "accumulate_gradients[schedule]", "accumulate_gradients[sum-float32]",
    "accumulate_gradients[inject_hyperparams]", "scale_by_rss", "scale_by_rms",
    "scale_by_rms[torch_biascorr]", "scale_by_stddev", "scale_by_stddev[torch_biascorr]", "scale_by_adam",
    "scale_by_adam[nadam_bf16]", "scale_by_amsgrad", "scale_by_adamax", "scale_by_belief", "scale_by_radam",
    "scale_by_lion", "autoclip", "autoclip[wrap]", "zclip", "zclip[max_norm]", "clip_by_value",
    "clip_by_global_norm", "early_stopping", "reduce_on_plateau", "identity", "scale",
    "scale_by_learning_rate", "scale_by_learning_rate[schedule]", "scale_by_schedule",
    "scale_by_learning_rate[inject_hyperparams]", "scale_by_learning_rate[inject_hyperparams-schedule]",
    "trace", "trace[nesterov_bf16]", "ema", "ema[nodebias_bf16]", "sgd", "sgd[momentum_schedule]",
    "sgd[nesterov]", "adagrad", "rmsprop", "rmsprop[centered_momentum]", "adam", "adam[nesterov_schedule]",
    "nadam", "adamw", "nadamw", "amsgrad", "adamax", "adabelief", "radam", "lion", "add_decayed_weights",
    "add_decayed_weights[schedule]", "add_l1_penalty", "l1_proximal", "set_to_zero", "apply_if_finite",
}  # fmt: skip
FLAT_CASES = [c for c in CASES if c.id in FLAT_SAFE]
N_STEPS = 5


def _mixed_tree():
    rng = np.random.default_rng(0)
    return {
        "emb": jnp.asarray(rng.standard_normal((5, 3)), jnp.bfloat16),
        "layers": [
            {"w": jnp.asarray(rng.standard_normal((3, 4)), jnp.float32), "b": jnp.zeros(4)},
            {"w": jnp.asarray(rng.standard_normal((4, 2)), jnp.float32), "b": None},
        ],
        "scale": jnp.asarray(rng.standard_normal(()), jnp.float32),
        "norm": jnp.asarray(rng.standard_normal(3), jnp.bfloat16),
    }


def test_every_flat_safe_name_is_a_registry_case():
    assert len(FLAT_CASES) == len(FLAT_SAFE), sorted(FLAT_SAFE - {c.id for c in FLAT_CASES})


def test_ravel_groups_by_dtype_and_round_trips():
    tree = _mixed_tree()
    flat, layout = gc.ravel_by_dtype(tree)
    assert sorted(flat) == ["bfloat16", "float32"]
    assert flat["bfloat16"].dtype == jnp.bfloat16 and flat["bfloat16"].shape == (18,)
    assert flat["float32"].dtype == jnp.float32 and flat["float32"].shape == (12 + 4 + 8 + 1,)
    back = layout.unravel(flat)
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    # leaves are laid out in tree order within their dtype group
    np.testing.assert_array_equal(np.asarray(flat["float32"][:4]), np.zeros(4))
    assert "float32: 4 leaves / 25" in repr(layout)


def test_gradient_through_unravel_arrives_flat_and_equals_the_tree_gradient():
    tree = _mixed_tree()
    flat, layout = gc.ravel_by_dtype(tree)

    def loss(t):
        w0, w1 = t["layers"][0]["w"], t["layers"][1]["w"]
        x = jnp.tanh(t["emb"].astype(jnp.float32) @ w0 + t["layers"][0]["b"][None]) @ w1
        return jnp.sum(x**2) * t["scale"] + jnp.sum(t["norm"].astype(jnp.float32) ** 3)

    g_flat = jax.jit(jax.grad(lambda f: loss(layout.unravel(f))))(flat)
    g_tree = jax.grad(loss)(tree)
    assert jax.tree.structure(g_flat) == jax.tree.structure(flat)
    helpers.assert_trees_close(layout.unravel(g_flat), g_tree, rtol=1e-5)
    helpers.assert_trees_close(g_flat, layout.ravel(g_tree), rtol=1e-5)


@pytest.mark.parametrize("case", FLAT_CASES, ids=[c.id for c in FLAT_CASES])
def test_flat_path_equals_plain_path(case):
    # jitted (how the fast path runs); jit == eager is test_contract's business
    jit = True
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, N_STEPS)
    flat, layout = gc.ravel_by_dtype(params)
    u_t, p_t, _ = helpers.run_steps(case.make(), params, grads, jit=jit, extra_args=case.extra_args)
    u_f, p_f, _ = helpers.run_steps(
        case.make(), flat, [layout.ravel(g) for g in grads], jit=jit, extra_args=case.extra_args
    )
    for step in range(N_STEPS):
        # float32 rounding: global sums are taken in a different order on the flat buffer
        helpers.assert_trees_close(layout.unravel(u_f[step]), u_t[step], rtol=2e-5, atol=1e-7,
                                   msg=f"{case.id} updates, step {step}")  # fmt: skip
        helpers.assert_trees_close(layout.unravel(p_f[step]), p_t[step], rtol=2e-5, atol=1e-7,
                                   msg=f"{case.id} params, step {step}")  # fmt: skip


def test_mixed_dtypes_flat_equals_tree_for_the_canonical_chain():
    params = _mixed_tree()
    grads = helpers.grad_sequence(3, params, N_STEPS)
    tx = gc.chain(gc.clip_by_global_norm(1.0), gc.scale_by_adam(), gc.scale(-1e-2))
    flat, layout = gc.ravel_by_dtype(params)
    _, p_t, s_t = helpers.run_steps(tx, params, grads, jit=True)
    _, p_f, s_f = helpers.run_steps(tx, flat, [layout.ravel(g) for g in grads], jit=True)
    helpers.assert_trees_close(layout.unravel(p_f[-1]), p_t[-1], rtol=1e-5, atol=1e-7)
    # the state is flat too: one buffer per dtype per moment
    assert all(x.ndim <= 1 for x in jax.tree.leaves(s_f))
    assert len(jax.tree.leaves(s_f)) == 1 + 2 * 2 + 1 < len(jax.tree.leaves(s_t))  # norm, mu, nu, count


@pytest.mark.parametrize(
    "make",
    [lambda: gc.lamb(1e-2), lambda: gc.scale_by_trust_ratio(), lambda: gc.clip_by_block_rms(0.5),
     lambda: gc.adafactor(1e-2)],
    ids=["lamb", "trust_ratio", "block_rms", "adafactor"],
)  # fmt: skip
def test_unraveled_runs_per_leaf_transformations_on_the_tree(make):
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, N_STEPS)
    flat, layout = gc.ravel_by_dtype(params)
    _, p_t, _ = helpers.run_steps(make(), params, grads, jit=True)
    tx = gc.chain(gc.clip_by_global_norm(1e9), gc.unraveled(make(), layout))
    _, p_f, _ = helpers.run_steps(tx, flat, [layout.ravel(g) for g in grads], jit=True)
    helpers.assert_trees_close(layout.unravel(p_f[-1]), p_t[-1], rtol=2e-5, atol=1e-7)
    # ...whereas on the flat buffer itself the per-leaf rule would act per dtype buffer: refused
    with pytest.raises(ValueError, match=r"acts on each parameter \(layer\) separately"):
        helpers.run_steps(make(), flat, [layout.ravel(g) for g in grads], jit=True)


def test_flat_step_has_a_handful_of_buffers_and_compiles_once():
    shapes = {f"l{i}": (7,) for i in range(300)}
    params = helpers.random_tree(0, shapes)
    flat, layout = gc.ravel_by_dtype(params)
    tx = gc.chain(gc.clip_by_global_norm(1.0), gc.scale_by_adam(), gc.scale(-1e-3))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(flat, state, batch):
        g = jax.grad(lambda f: sum(jnp.sum(v * batch) for v in jax.tree.leaves(layout.unravel(f))))(flat)
        u, state = tx.update(g, state, flat)
        return gc.apply_updates(flat, u), state

    state = tx.init(flat)
    assert len(jax.tree.leaves((flat, state))) == 5  # params; clip norm, mu, nu, count
    for i in range(3):
        flat, state = step(flat, state, jnp.float32(i))


def test_flax_nnx_model_trains_on_flat_buffers_like_nnx_optimizer():
    nnx = pytest.importorskip("flax.nnx")

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(3, 16, rngs=rngs)
            self.l2 = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            return self.l2(jnp.tanh(self.l1(x)))

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((64, 3)), jnp.float32)
    y = x @ jnp.array([[1.0], [-2.0], [0.5]]) + 0.3
    mse = lambda model: jnp.mean((model(x) - y) ** 2)
    tx = gc.chain(gc.clip_by_global_norm(1.0), gc.scale_by_adam(), gc.scale(-1e-2))

    # the tree path: nnx.Optimizer
    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def tree_step(model, optimizer):
        loss, grads = nnx.value_and_grad(mse)(model)
        optimizer.update(model, grads)
        return loss

    # the flat path: split once, ravel once, unravel inside the loss
    graphdef, params, rest = nnx.split(MLP(nnx.Rngs(0)), nnx.Param, ...)
    flat, layout = gc.ravel_by_dtype(params)
    opt_state = tx.init(flat)

    @jax.jit
    def flat_step(flat, opt_state):
        loss_fn = lambda f: mse(nnx.merge(graphdef, layout.unravel(f), rest, copy=True))
        loss, grads = jax.value_and_grad(loss_fn)(flat)
        updates, opt_state = tx.update(grads, opt_state, flat)
        return gc.apply_updates(flat, updates), opt_state, loss

    for _ in range(20):
        l_tree = tree_step(model, optimizer)
        flat, opt_state, l_flat = flat_step(flat, opt_state)
        np.testing.assert_allclose(float(l_flat), float(l_tree), rtol=1e-5)
    assert float(l_flat) < 0.5 * float(mse(MLP(nnx.Rngs(0))))
    helpers.assert_trees_close(layout.unravel(flat), nnx.state(model, nnx.Param), rtol=1e-5, atol=1e-6)


def test_errors_name_the_function_and_what_was_expected():
    params = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    flat, layout = gc.ravel_by_dtype(params)
    with pytest.raises(ValueError, match=r"FlatLayout.ravel: `tree` does not have the layout's structure"):
        layout.ravel({"a": jnp.ones(3)})
    with pytest.raises(
        ValueError, match=r"leaf \['b'\] must have shape \(2, 2\) and dtype float32, got shape \(4,\)"
    ):
        layout.ravel({"a": jnp.ones(3), "b": jnp.ones(4)})
    with pytest.raises(ValueError, match=r"dtype float32, got shape \(2, 2\) and dtype bfloat16"):
        layout.ravel({"a": jnp.ones(3), "b": jnp.ones((2, 2), jnp.bfloat16)})
    with pytest.raises(
        ValueError, match=r"FlatLayout.unravel: `flat` must be a dict with the keys \['float32'\]"
    ):
        layout.unravel(flat["float32"])
    with pytest.raises(
        ValueError, match=r"`flat\['float32'\]` must be a 1-D float32 array of length 7, got shape \(6,\)"
    ):
        layout.unravel({"float32": jnp.ones(6)})
    with pytest.raises(TypeError, match=r"unraveled: `inner` must be a GradientTransformation"):
        gc.unraveled(lambda g: g, layout)
    with pytest.raises(TypeError, match=r"unraveled: `layout` must be a FlatLayout"):
        gc.unraveled(gc.identity(), params)


# ------------------------------------------------------- per-leaf transformations refuse flat buffers
_ndim_mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
PER_LEAF = [
    ("scale_by_trust_ratio", lambda: gradchain.scale_by_trust_ratio()),
    ("scale_by_param_block_norm", lambda: gradchain.scale_by_param_block_norm()),
    ("scale_by_param_block_rms", lambda: gradchain.scale_by_param_block_rms()),
    ("scale_by_factored_rms", lambda: gradchain.scale_by_factored_rms()),
    ("clip_by_norm", lambda: gradchain.clip_by_norm(1.0)),
    ("clip_by_block_rms", lambda: gradchain.clip_by_block_rms(1.0)),
    ("adaptive_grad_clip", lambda: gradchain.adaptive_grad_clip(0.1)),
    ("centralize", lambda: gradchain.centralize()),
    ("masked", lambda: gradchain.masked(gradchain.scale(0.0), _ndim_mask)),
    ("masked", lambda: gradchain.freeze(_ndim_mask)),
    (
        "partition",
        lambda: gradchain.partition(
            {"a": gradchain.sgd(0.1), "b": gradchain.adam(0.1)},
            lambda p: jax.tree.map(lambda x: "a" if x.ndim > 1 else "b", p),
        ),
    ),
    ("masked", lambda: gradchain.adamw(0.1, mask=_ndim_mask)),
    ("scale_by_trust_ratio", lambda: gradchain.lamb(0.1)),
    ("scale_by_trust_ratio", lambda: gradchain.lars(0.1)),
    ("scale_by_factored_rms", lambda: gradchain.adafactor(0.1)),
]


@pytest.mark.parametrize(("name", "make"), PER_LEAF, ids=[f"{n}-{i}" for i, (n, _) in enumerate(PER_LEAF)])
def test_per_leaf_transformations_and_masks_refuse_flat_buffers(name, make):
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    flat, layout = gradchain.ravel_by_dtype(params)
    tx = make()
    with pytest.raises(ValueError, match=rf"{name}: acts on each parameter .* `gradchain.unraveled\("):
        tx.update(flat, tx.init(flat), flat)
    wrapped = gradchain.unraveled(make(), layout)  # the tree view works, and equals the tree path
    u, _ = wrapped.update(flat, wrapped.init(flat), flat)
    expected, _ = make().update(params, make().init(params), params)
    helpers.assert_trees_close(layout.unravel(u), expected, rtol=1e-6)
