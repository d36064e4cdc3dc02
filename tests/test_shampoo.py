"""Shampoo (`scale_by_shampoo`, `shampoo`): pytorch_optimizer 4.1.0's ``ScalableShampoo`` in
float64, a float64 NumPy transcription of the docstring, the documented edge cases and the
errors.

Optax 0.2.8 has no Shampoo. pytorch_optimizer has two: ``Shampoo`` (Gupta et al.'s original:
no blocks, no grafting, SVD roots every step) and ``ScalableShampoo`` (Distributed Shampoo's
design: blocks, grafting, Newton roots every few steps, a start step), which is the one
this follows. Its conventions, through gradchain's flags: ``graft_per_block=False`` (the
grafting norm of the whole leaf), ``precondition_all_axes=True`` (every axis of a 3-D leaf
gets a factor), ``error_tolerance=1e-3`` (its root iteration's tolerance); and on its side
``shape_interpretation=False`` (its dimension merging turns any leaf with fewer than
``block_size`` values into a vector, i.e. no preconditioning).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 14


def _problem(shapes, dtype=jnp.float64, n=N_STEPS, seed=0):
    params = helpers.random_tree(seed, shapes, dtype)
    return params, helpers.grad_sequence(seed + 1, params, n)


# ----------------------------------------------------------- pytorch_optimizer 4.1.0
# block_size 3 cuts 5 into 3 + 2 and 4 into 3 + 1; roots after steps 4, 8 and 12
REF_SHAPES = {"w": (5, 5), "one": (7, 4), "b": (4,), "stack": (3, 5, 4)}
REF_CONFIGS = [
    ("sgd_nesterov_sum", {"graft_type": "sgd", "nesterov": True, "moving_average_for_momentum": False}),
    ("rmsprop_average", {"graft_type": "rmsprop", "nesterov": False, "moving_average_for_momentum": True}),
]


@pytest.mark.parametrize("kw", [c[1] for c in REF_CONFIGS], ids=[c[0] for c in REF_CONFIGS])
def test_matches_pytorch_optimizer_scalable_shampoo_float64(kw):
    torch = pytest.importorskip("torch")
    po = pytest.importorskip("pytorch_optimizer")
    from pytorch_optimizer.optimizer.utils.graft import LayerWiseGrafting

    lr, wd = 0.1, 0.01
    with jax.enable_x64(True):
        params, grads = _problem(REF_SHAPES)
        tx = gc.shampoo(
            lr, 3, 0.9, 0.95, 1e-10, 1e-6, wd, 3, 4, graft_per_block=False, precondition_all_axes=True,
            error_tolerance=1e-3, **kw,
        )  # fmt: skip
        _, got, _ = helpers.run_steps(tx, params, grads)
    tp = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in params.items()}
    opt = po.ScalableShampoo(
        list(tp.values()),
        lr=lr,
        betas=(0.9, 0.95),
        moving_average_for_momentum=kw["moving_average_for_momentum"],
        weight_decay=wd,
        decoupled_weight_decay=True,
        start_preconditioning_step=3,
        preconditioning_compute_steps=4,
        block_size=3,
        shape_interpretation=False,
        graft_type=getattr(LayerWiseGrafting, kw["graft_type"].upper()),
        nesterov=kw["nesterov"],
        diagonal_eps=1e-10,
        matrix_eps=1e-6,
    )
    for t, g in enumerate(grads):
        for k in REF_SHAPES:
            tp[k].grad = torch.tensor(np.asarray(g[k]))
        opt.step()
        # Newton roots stopped at error 1e-3 amplify rounding differences a little: 1e-8
        expected = {k: v.detach().numpy() for k, v in tp.items()}
        helpers.assert_trees_close_relative(got[t], expected, rtol=1e-8, msg=f"step {t}")


# ----------------------------------------------------------- float64 NumPy transcription
def np_root(S, k, eps):
    """``(S + eps * lambda_max I)^(-1/k)`` by eigendecomposition."""
    w, V = np.linalg.eigh(S + eps * max(np.linalg.eigvalsh(S).max(), 1e-16) * np.eye(len(S)))
    return (V * w ** (-1.0 / k)) @ V.T


def np_shampoo_leaf(grads, bs, beta1, beta2, de, me, start, f, graft, nesterov, mavg, per_block, k=0):
    """The docstring's rule for one leaf: a vector, a matrix, or a stack of matrices."""
    shape = grads[0].shape
    mats = len(shape) >= 2
    G3 = [g.reshape((-1,) + shape[-2:]) if mats else g.reshape(1, 1, -1) for g in grads]
    B, m, n = G3[0].shape
    rows = [slice(i, min(i + bs, m)) for i in range(0, m, bs)] if mats else [slice(0, 1)]
    cols = [slice(j, min(j + bs, n)) for j in range(0, n, bs)] if mats else [slice(0, n)]
    blocks = [(b, r, c) for b in range(B) for r in rows for c in cols]
    L = [me * np.eye(r.stop - r.start) for _, r, _ in blocks]
    R = [me * np.eye(c.stop - c.start) for _, _, c in blocks]
    PL, PR = [np.eye(len(x)) for x in L], [np.eye(len(x)) for x in R]
    k = k or 4
    w2, w = (1.0 if beta2 == 1 else 1 - beta2), (1 - beta1 if mavg else 1.0)
    a, mom, gmom, out = np.zeros((B, m, n)), np.zeros((B, m, n)), np.zeros((B, m, n)), []
    for t, G in enumerate(G3, 1):
        a = a + G**2 if graft == "adagrad" else beta2 * a + (1 - beta2) * G**2
        if graft == "sgd":
            D = G
        elif graft == "adam":
            D = G / (np.sqrt(a / (1 - beta2**t)) + de)
        else:
            D = G / (np.sqrt(a) + de)
        S = np.zeros_like(G)
        for i, bl in enumerate(blocks):
            Gb, Db = G[bl], D[bl]
            L[i] = beta2 * L[i] + w2 * Gb @ Gb.T
            R[i] = beta2 * R[i] + w2 * Gb.T @ Gb
            if t % f == 0:
                PL[i], PR[i] = np_root(L[i], k, me), np_root(R[i], k, me)
            Sb = PL[i] @ Gb @ PR[i] if mats else Db
            S[bl] = Sb * np.linalg.norm(Db) / (np.linalg.norm(Sb) + 1e-16) if per_block or not mats else Sb
        if mats and not per_block:
            S = S * np.linalg.norm(D) / (np.linalg.norm(S) + 1e-16)
        mom = beta1 * mom + w * S
        gmom = beta1 * gmom + w * D
        M, E = (mom, S) if t >= start else (gmom, D)
        U = beta1 * M + w * E if nesterov else M
        out.append(U.reshape(shape))
    return out


TRANSCRIPTION = [
    ("adam_per_block", (2, 0.9, 0.99, 1e-8, 1e-4, 3, 3), {"graft_type": "adam"}),
    (
        "sgd_leaf_sums",
        (3, 0.5, 1.0, 1e-6, 1e-3, 2, 2),
        {"graft_type": "sgd", "graft_per_block": False, "nesterov": False, "exponent_override": 8},
    ),
]


@pytest.mark.parametrize(
    "args,kw,jit",
    [(*TRANSCRIPTION[0][1:], False), (*TRANSCRIPTION[0][1:], True), (*TRANSCRIPTION[1][1:], False)],
    ids=["adam_per_block-eager", "adam_per_block-jit", "sgd_leaf_sums-eager"],
)
def test_matches_float64_transcription(args, kw, jit):
    shapes = {"w": (4, 5), "b": (3,), "s": (), "stack": (2, 3, 4)}
    with jax.enable_x64(True):
        params, grads = _problem(shapes)
        tx = gc.scale_by_shampoo(*args, error_tolerance=1e-10, **kw)
        updates, _, state = helpers.run_steps(tx, params, grads, jit=jit)
    assert all(u.dtype == jnp.float64 for u in jax.tree.leaves(updates[-1]))
    d = (min(args[0], 3), min(args[0], 4))
    c = (-(-3 // d[0]), -(-4 // d[1]))
    assert state.stats["b"] is None and state.stats["stack"][0].shape == (2, *c, d[0], d[0])
    flags = dict(
        graft=kw["graft_type"],
        nesterov=kw.get("nesterov", True),
        mavg=False,
        per_block=kw.get("graft_per_block", True),
        k=kw.get("exponent_override", 0),
    )
    for key in shapes:
        expected = np_shampoo_leaf([np.asarray(g[key], np.float64) for g in grads], *args, **flags)
        for t in range(N_STEPS):
            helpers.assert_trees_close_relative(
                updates[t][key], expected[t], rtol=1e-9, msg=f"{key} step {t}"
            )


# ----------------------------------------------------------- edge cases
def test_before_the_start_step_it_is_the_graft_with_momentum():
    params, grads = _problem({"w": (3, 4)}, jnp.float32, n=4)
    tx = gc.scale_by_shampoo(beta1=0.5, start_preconditioning_step=5, graft_type="rmsprop", nesterov=False)
    got, _, _ = helpers.run_steps(tx, params, grads)
    want, _, _ = helpers.run_steps(
        gc.chain(gc.scale_by_rms(0.999, 1e-10, eps_in_sqrt=False), gc.trace(0.5)), params, grads
    )
    for t in range(4):
        helpers.assert_trees_close(got[t], want[t], rtol=1e-5, atol=1e-7)


def test_stacked_kernels_equal_separate_matrices():
    params, grads = _problem({"k": (3, 4, 5)}, jnp.float32, n=5)
    tx = gc.scale_by_shampoo(3, start_preconditioning_step=2, preconditioning_compute_steps=2)
    u, _, state = helpers.run_steps(tx, params, grads)
    assert [s.shape for s in state.stats["k"]] == [(3, 2, 2, 3, 3), (3, 2, 2, 3, 3)]
    for i in range(3):
        ui, _, _ = helpers.run_steps(tx, {"k": params["k"][i]}, [{"k": g["k"][i]} for g in grads])
        for t in range(5):
            helpers.assert_trees_close_relative(
                u[t]["k"][i], ui[t]["k"], rtol=1e-5, msg=f"matrix {i} step {t}"
            )
    all_axes = gc.scale_by_shampoo(3, precondition_all_axes=True).init(params)
    assert [s.shape for s in all_axes.stats["k"]] == [(1, 2, 2, 3, 3)] * 3


def test_a_failed_root_keeps_the_previous_preconditioner():
    tx = gc.scale_by_shampoo(4, start_preconditioning_step=1)
    p = jnp.zeros((2, 2))
    u, state = tx.update(jnp.array([[1.0, 2.0], [3.0, jnp.inf]]), tx.init(p))
    np.testing.assert_array_equal(state.preconds[0], np.eye(2)[None, None])


def test_vectors_and_scalars_take_the_graft_direction():
    params, grads = _problem({"b": (5,), "s": ()}, jnp.float32, n=4)
    got, _, state = helpers.run_steps(gc.scale_by_shampoo(graft_type="adagrad", beta1=0.0), params, grads)
    assert state.stats == {"b": None, "s": None}
    want, _, _ = helpers.run_steps(gc.scale_by_rss(0.0, 1e-10), params, grads)
    for t in range(4):
        helpers.assert_trees_close(got[t], want[t], rtol=1e-5)


def test_shampoo_is_its_chain_and_needs_params():
    # the configuration and tree of the test above: its compiled step is reused
    params, grads = _problem({"w": (3, 4)}, jnp.float32, n=4)
    kw = {"beta1": 0.5, "start_preconditioning_step": 5, "graft_type": "rmsprop", "nesterov": False}
    got, _, _ = helpers.run_steps(gc.shampoo(0.1, weight_decay=0.01, **kw), params, grads)
    chain = gc.chain(gc.scale_by_shampoo(**kw), gc.add_decayed_weights(0.01), gc.scale_by_learning_rate(0.1))
    want, _, _ = helpers.run_steps(chain, params, grads)
    for t in range(4):
        helpers.assert_trees_close(got[t], want[t], rtol=1e-6)
    tx = gc.shampoo(0.1)
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(grads[0], tx.init(params))


ERRORS = [
    (lambda: gc.scale_by_shampoo(0), ValueError, r"scale_by_shampoo: `block_size` must be >= 1, got 0"),
    (lambda: gc.scale_by_shampoo(2.5), TypeError, r"scale_by_shampoo: `block_size` must be a Python int"),
    (lambda: gc.scale_by_shampoo(beta1=1.0), ValueError, r"scale_by_shampoo: `beta1` must be >= 0 and < 1"),
    (lambda: gc.scale_by_shampoo(beta2=1.5), ValueError, r"scale_by_shampoo: `beta2` must be >= 0 and <= 1"),
    (
        lambda: gc.scale_by_shampoo(diagonal_epsilon=-1.0),
        ValueError,
        r"scale_by_shampoo: `diagonal_epsilon` must be >= 0",
    ),
    (
        lambda: gc.scale_by_shampoo(matrix_epsilon=-1.0),
        ValueError,
        r"scale_by_shampoo: `matrix_epsilon` must be >= 0",
    ),
    (
        lambda: gc.scale_by_shampoo(start_preconditioning_step=0),
        ValueError,
        r"scale_by_shampoo: `start_preconditioning_step` must be >= 1, got 0",
    ),
    (
        lambda: gc.scale_by_shampoo(preconditioning_compute_steps=0),
        ValueError,
        r"scale_by_shampoo: `preconditioning_compute_steps` must be >= 1",
    ),
    (
        lambda: gc.scale_by_shampoo(graft_type="sqrtn"),
        ValueError,
        r"scale_by_shampoo: `graft_type` must be one of 'sgd', 'adagrad', 'rmsprop', 'adam', got 'sqrtn'",
    ),
    (
        lambda: gc.scale_by_shampoo(beta2=1.0, graft_type="adam"),
        ValueError,
        r"scale_by_shampoo: `beta2` must be < 1 with graft_type='adam'",
    ),
    (lambda: gc.scale_by_shampoo(nesterov=None), TypeError, r"scale_by_shampoo: `nesterov` must be a bool"),
    (
        lambda: gc.scale_by_shampoo(exponent_override=-1),
        ValueError,
        r"scale_by_shampoo: `exponent_override` must be >= 0",
    ),
    (
        lambda: gc.scale_by_shampoo(error_tolerance=-1.0),
        ValueError,
        r"scale_by_shampoo: `error_tolerance` must be >= 0",
    ),
    (
        lambda: jax.jit(lambda e: gc.scale_by_shampoo(error_tolerance=e) and 0)(1e-3),
        TypeError,
        r"scale_by_shampoo: `error_tolerance` must be a concrete number",
    ),
    (
        lambda: gc.scale_by_shampoo().init({"z": jnp.zeros((2, 2), jnp.complex64)}),
        TypeError,
        r"scale_by_shampoo: `params` must be real, got a complex64 leaf",
    ),
    (
        lambda: gc.scale_by_shampoo().update(
            {"a": jnp.zeros(2)}, gc.scale_by_shampoo().init({"b": jnp.zeros(2)})
        ),
        ValueError,
        r"scale_by_shampoo: the `updates` tree does not match",
    ),
    (lambda: gc.shampoo(-0.1), ValueError, r"shampoo: `learning_rate` must be >= 0, got -0.1"),
    (
        lambda: gc.shampoo(0.1, weight_decay=-1.0),
        ValueError,
        r"shampoo: add_decayed_weights: `weight_decay` must be >= 0",
    ),
    (lambda: gc.shampoo(0.1, 0), ValueError, r"shampoo: scale_by_shampoo: `block_size` must be >= 1"),
]


@pytest.mark.parametrize("make,exc,match", ERRORS)
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
