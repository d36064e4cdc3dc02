"""Layer-wise: scale_by_trust_ratio, scale_by_param_block_norm/_rms, scale_by_factored_rms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12
# (130, 140) is factored at the default min_dim_size_to_factor=128, the others are not.
BIG = {"mat": (130, 140), "vec": (5,), "small": (3, 4)}
# With min_dim_size_to_factor=2: (4, 3) has its largest axis first, (3, 2, 4) is 3-D.
SMALL = {"w": (4, 3), "t3": (3, 2, 4), "b": (4,), "s": ()}


def _problem(shapes=None, seed=0, scale=1.0):
    params = helpers.random_tree(seed, shapes)
    return params, helpers.grad_sequence(seed + 1, params, N_STEPS, scale=scale)


# ----------------------------------------------------------- float64 NumPy transcriptions
def _np_norm(x):
    return np.sqrt(np.sum(x * x))


def _np_trust_ratio(grads, params_seq, min_norm=0.0, trust_coefficient=1.0, eps=0.0):
    """The docstring rule, one line per formula line (params_seq[t] is p_t)."""
    out = []
    for g, p in zip(grads, params_seq):

        def leaf(g, p):
            p_norm = max(_np_norm(p), min_norm)
            u_norm = max(_np_norm(g), min_norm)
            r = trust_coefficient * p_norm / (u_norm + eps) if p_norm > 0 and u_norm > 0 else 1.0
            return r * g

        out.append(jax.tree.map(leaf, helpers.to_numpy64(g), helpers.to_numpy64(p)))
    return out


def _np_param_block(grads, params_seq, min_scale, mean):
    stat = (lambda p: np.sqrt(np.mean(p * p))) if mean else _np_norm
    return [
        jax.tree.map(lambda g, p: max(stat(p), min_scale) * g, helpers.to_numpy64(g), helpers.to_numpy64(p))
        for g, p in zip(grads, params_seq)
    ]


def _np_factored_rms(
    grads, *, factored=True, decay_rate=0.8, step_offset=0, min_dim=128, epsilon=1e-30, decay_rate_fn=None
):
    """scale_by_factored_rms's docstring rule in float64."""
    grads = [helpers.to_numpy64(g) for g in grads]
    flat0, treedef = jax.tree.flatten(grads[0])
    state = [{"R": None, "C": None, "V": np.zeros(g.shape)} for g in flat0]
    out = []
    for k, g_tree in enumerate(grads):
        s = max(k - step_offset, 0)
        b = 1 - (s + 1) ** (-decay_rate) if decay_rate_fn is None else decay_rate_fn(s, decay_rate)
        us = []
        for g, st in zip(jax.tree.leaves(g_tree), state):
            G = g**2 + epsilon
            order = np.argsort(g.shape, kind="stable")
            if factored and g.ndim >= 2 and g.shape[order[-2]] >= min_dim:
                r, c = int(order[-2]), int(order[-1])
                st["R"] = (b * st["R"] if st["R"] is not None else 0) + (1 - b) * G.mean(axis=c)
                st["C"] = (b * st["C"] if st["C"] is not None else 0) + (1 - b) * G.mean(axis=r)
                r_in_R = r - 1 if r > c else r
                V = np.expand_dims(st["R"] / st["R"].mean(axis=r_in_R, keepdims=True), c) * np.expand_dims(
                    st["C"], r
                )
            else:
                st["V"] = b * st["V"] + (1 - b) * G
                V = st["V"]
            us.append(g / np.sqrt(V))
        out.append(jax.tree.unflatten(treedef, us))
    return out


def _assert_seq_close(got, expected, rtol, msg):
    for t, (a, b) in enumerate(zip(got, expected)):
        helpers.assert_trees_close(a, b, rtol=rtol, atol=1e-7, msg=f"{msg} step {t}")


def _params_before(params, all_params):
    return [params] + all_params[:-1]


@pytest.mark.parametrize("kw", [{}, {"min_norm": 4.0, "trust_coefficient": 0.02, "eps": 1e-3}])
def test_trust_ratio_matches_numpy(kw):
    params, grads = _problem()
    grads[3] = jax.tree.map(jnp.zeros_like, grads[3])  # zero update norm: ratio 1
    tx = gc.chain(gc.scale_by_trust_ratio(**kw), gc.scale(-0.05))
    u, p, _ = helpers.run_steps(tx, params, grads)
    ref = _np_trust_ratio(grads, _params_before(params, p), **kw)
    _assert_seq_close(u, [jax.tree.map(lambda x: -0.05 * x, r) for r in ref], 1e-5, f"trust_ratio {kw}")


def test_trust_ratio_is_one_for_zero_params_and_bounded_by_min_norm():
    tx = gc.scale_by_trust_ratio()
    p = {"zero": jnp.zeros(3), "w": jnp.array([3.0, 4.0])}
    g = {"zero": jnp.array([1.0, 2.0, 3.0]), "w": jnp.array([0.0, 0.5])}
    u, _ = tx.update(g, tx.init(p), p)
    np.testing.assert_allclose(u["zero"], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(u["w"], [0.0, 5.0])  # |p| / |g| = 10
    u, _ = gc.scale_by_trust_ratio(min_norm=1.0).update(g, gc.EmptyState(), p)
    np.testing.assert_allclose(u["zero"], np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0), rtol=1e-6)  # 1 / |g|
    np.testing.assert_allclose(u["w"], [0.0, 2.5])  # |p| / max(|g|, 1) = 5


@pytest.mark.parametrize("mean", [False, True])
def test_param_block_scaling_matches_numpy(mean):
    params, grads = _problem()
    params["b"] = jnp.zeros_like(params["b"])  # at min_scale
    make = gc.scale_by_param_block_rms if mean else gc.scale_by_param_block_norm
    u, p, _ = helpers.run_steps(gc.chain(make(), gc.scale(-0.05)), params, grads)
    ref = _np_param_block(grads, _params_before(params, p), 1e-3, mean)
    _assert_seq_close(u, [jax.tree.map(lambda x: -0.05 * x, r) for r in ref], 1e-5, "param_block")


FACTORED_KW = [
    {},
    {"min_dim_size_to_factor": 2, "decay_rate": 0.5, "epsilon": 1e-3},
    {"min_dim_size_to_factor": 2, "step_offset": 4},
    {"factored": False, "min_dim_size_to_factor": 2},
]


@pytest.mark.parametrize("kw", FACTORED_KW, ids=["default", "small_dims", "step_offset", "unfactored"])
def test_factored_rms_matches_numpy(kw):
    params, grads = _problem(BIG if not kw else SMALL)
    u, _, _ = helpers.run_steps(gc.scale_by_factored_rms(**kw), params, grads)
    np_kw = {
        "min_dim": kw.get("min_dim_size_to_factor", 128),
        **{k: v for k, v in kw.items() if k != "min_dim_size_to_factor"},
    }
    _assert_seq_close(u, _np_factored_rms(grads, **np_kw), 2e-5, f"factored_rms {kw}")


def test_factored_rms_custom_decay_rate_fn_matches_numpy():
    fn = lambda step, rate: jnp.minimum(1 - (step.astype(jnp.float32) + 1) ** (-rate), 0.5)
    np_fn = lambda step, rate: min(1 - (step + 1) ** (-rate), 0.5)
    params, grads = _problem(SMALL)
    u, _, _ = helpers.run_steps(
        gc.scale_by_factored_rms(min_dim_size_to_factor=2, decay_rate_fn=fn), params, grads
    )
    _assert_seq_close(u, _np_factored_rms(grads, min_dim=2, decay_rate_fn=np_fn), 2e-5, "decay_rate_fn")


def test_factored_rms_state_is_fixed_and_factored_where_documented():
    params = {"mat": jnp.zeros((130, 140)), "t3": jnp.zeros((2, 130, 129)), "vec": jnp.zeros(5), "none": None}
    s = gc.scale_by_factored_rms().init(params)
    assert isinstance(s, gc.FactoredState) and s.count.dtype == jnp.int32
    assert s.v_row["mat"].shape == (130,) and s.v_col["mat"].shape == (140,) and s.v["mat"] is None
    assert s.v_row["t3"].shape == (2, 129) and s.v_col["t3"].shape == (2, 130) and s.v["t3"] is None
    assert s.v_row["vec"] is None and s.v_col["vec"] is None and s.v["vec"].shape == (5,)
    assert s.v_row["none"] is None
    for tree in (s.v_row, s.v_col, s.v):  # mirror the params, None where a leaf keeps no statistic
        assert len(jax.tree.structure(params).flatten_up_to(tree)) == 3  # 'none' holds no leaf
    s_unf = gc.scale_by_factored_rms(factored=False).init(params)
    assert s_unf._fields == s._fields and jax.tree.structure(s_unf.v) == jax.tree.structure(params)
    cplx = gc.scale_by_factored_rms().init(jnp.zeros(3, jnp.complex64))
    assert cplx.v.dtype == jnp.float32  # a real second moment for complex parameters


# -------------------------------------------------------------------- Optax parity
def _optax_pairs(optax):
    return [
        ("trust_ratio", lambda: gc.scale_by_trust_ratio(), lambda: optax.scale_by_trust_ratio()),
        (
            "trust_ratio_kw",
            lambda: gc.scale_by_trust_ratio(0.5, 0.02, 1e-3),
            lambda: optax.scale_by_trust_ratio(0.5, 0.02, 1e-3),
        ),
        ("block_norm", lambda: gc.scale_by_param_block_norm(), lambda: optax.scale_by_param_block_norm()),
        ("block_rms", lambda: gc.scale_by_param_block_rms(0.1), lambda: optax.scale_by_param_block_rms(0.1)),
        ("factored", lambda: gc.scale_by_factored_rms(), lambda: optax.scale_by_factored_rms()),
        (
            "factored_kw",
            lambda: gc.scale_by_factored_rms(True, 0.5, 2, 2, 1e-3),
            lambda: optax.scale_by_factored_rms(True, 0.5, 2, 2, 1e-3),
        ),
    ]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_matches_optax(jit):
    optax = pytest.importorskip("optax")
    # |p| >= 1: no parameter crosses zero, where float32 cancellation in p + u (not the
    # transformation) would dominate a relative comparison
    for name, make, make_optax in _optax_pairs(optax):
        params, grads = _problem(BIG if name == "factored" else SMALL)
        params = jax.tree.map(lambda x: jnp.sign(x) * (1 + jnp.abs(x)), params)
        # a small step so that parameters change slowly and stay comparable in relative terms
        tx, otx = gc.chain(make(), gc.scale(-0.01)), optax.chain(make_optax(), optax.scale(-0.01))
        # Optax's updates are NaN while count < step_offset (2 here): start both at count 2
        start = 2 if name == "factored_kw" else 0
        st, ost = tx.init(params), otx.init(params)
        if start:
            st = (st[0]._replace(count=jnp.asarray(start, jnp.int32)), st[1])
            ost = (ost[0]._replace(count=jnp.asarray(start, jnp.int32)), ost[1])
        u, p = _run_from(tx, st, params, grads, jit, gc.apply_updates)
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            uo, po = _run_from(otx, ost, params, grads, jit, optax.apply_updates)
        assert helpers.max_rel_diff(u, uo) <= 2e-5, (name, helpers.max_rel_diff(u, uo))
        assert helpers.max_rel_diff(p, po) <= 2e-5, (name, helpers.max_rel_diff(p, po))


def _run_from(tx, state, params, grads, jit, apply):
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return u, apply(p, u), s

    step = jax.jit(step) if jit else step
    all_u, all_p = [], []
    for g in grads:
        u, params, state = step(params, state, g)
        all_u.append(u)
        all_p.append(params)
    return all_u, all_p


# -------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, err, match",
    [
        (
            lambda: gc.scale_by_trust_ratio(min_norm=-1.0),
            ValueError,
            r"scale_by_trust_ratio: `min_norm` must be >= 0",
        ),
        (
            lambda: gc.scale_by_trust_ratio(trust_coefficient=-1.0),
            ValueError,
            r"`trust_coefficient` must be >= 0",
        ),
        (
            lambda: gc.scale_by_trust_ratio(eps="a"),
            TypeError,
            r"scale_by_trust_ratio: `eps` must be a number",
        ),
        (
            lambda: gc.scale_by_param_block_norm(-1.0),
            ValueError,
            r"scale_by_param_block_norm: `min_scale` must be >= 0",
        ),
        (
            lambda: gc.scale_by_param_block_rms(-1.0),
            ValueError,
            r"scale_by_param_block_rms: `min_scale` must be >= 0",
        ),
        (
            lambda: gc.scale_by_factored_rms(factored=1),
            TypeError,
            r"scale_by_factored_rms: `factored` must be a bool",
        ),
        (lambda: gc.scale_by_factored_rms(decay_rate=-0.8), ValueError, r"`decay_rate` must be >= 0"),
        (lambda: gc.scale_by_factored_rms(step_offset=1.5), ValueError, r"`step_offset` must be an integer"),
        (lambda: gc.scale_by_factored_rms(step_offset=-1), ValueError, r"`step_offset` must be >= 0"),
        (
            lambda: gc.scale_by_factored_rms(min_dim_size_to_factor=2.0),
            TypeError,
            r"`min_dim_size_to_factor` must be a Python int",
        ),
        (
            lambda: gc.scale_by_factored_rms(min_dim_size_to_factor=0),
            ValueError,
            r"`min_dim_size_to_factor` must be >= 1",
        ),
        (lambda: gc.scale_by_factored_rms(epsilon=-1e-30), ValueError, r"`epsilon` must be >= 0"),
        (
            lambda: gc.scale_by_factored_rms(decay_rate_fn=0.8),
            TypeError,
            r"`decay_rate_fn` must be callable or None",
        ),
    ],
)
def test_factory_errors(make, err, match):
    with pytest.raises(err, match=match):
        make()


@pytest.mark.parametrize(
    "make",
    [
        gc.scale_by_trust_ratio,
        gc.scale_by_param_block_norm,
        gc.scale_by_param_block_rms,
        gc.scale_by_factored_rms,
    ],
)
def test_update_errors(make):
    tx = make()
    p = {"a": jnp.ones(2), "b": jnp.ones(3)}
    state = tx.init(p)
    name = make.__name__
    with pytest.raises(ValueError, match=rf"{name}: the `updates` tree does not match"):
        tx.update(
            {"a": jnp.ones(2)}, state, p if name == "scale_by_factored_rms" else {"a": jnp.ones(2), "c": 1.0}
        )
    if name != "scale_by_factored_rms":
        with pytest.raises(ValueError, match=rf"{name}: this transformation needs the parameters"):
            tx.update(p, state)
    else:
        tx.update(p, state)  # Adafactor's scaling reads only the gradients: no params needed
