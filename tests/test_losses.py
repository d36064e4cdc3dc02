"""Losses: float64 NumPy transcriptions of the documented formulas, Optax parity (values
and gradients), torch.nn.functional parity, extreme logits, dtypes under strict
promotion, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradchain import losses as gl

RNG = np.random.default_rng(0)
PRED = jnp.asarray(3 * RNG.standard_normal((4, 5)), jnp.float32)
TARGET = jnp.asarray(RNG.standard_normal((4, 5)), jnp.float32)
LOGITS = jnp.asarray(4 * RNG.standard_normal((6, 5)), jnp.float32)
INT_LABELS = jnp.asarray(RNG.integers(0, 5, 6), jnp.int32)
_p = RNG.random((6, 5))
PROB_LABELS = jnp.asarray(_p / _p.sum(-1, keepdims=True), jnp.float32)
BIN_LABELS = jnp.asarray(RNG.random((6, 5)), jnp.float32)  # probabilities in [0, 1]
EXTREME = jnp.asarray([[100.0, -100.0, 0.0], [-100.0, -100.0, 100.0], [100.0, 100.0, -100.0]], jnp.float32)


def f64(x):
    return np.asarray(x, np.float64)


# ------------------------------------------------- float64 transcriptions of the docstrings
def np_logsumexp(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def np_softplus(x):
    return np.logaddexp(0.0, x)


def np_huber(e, delta):
    q = np.minimum(np.abs(e), delta)
    return 0.5 * q**2 + delta * (np.abs(e) - q)


def np_softmax_ce(x, y, axis=-1):
    return -np.sum(y * (x - np.expand_dims(np_logsumexp(x, axis), axis)), axis=axis)


def np_int_ce(x, k):
    return np_logsumexp(x) - np.take_along_axis(x, k[:, None], axis=-1)[:, 0]


def np_sigmoid_bce(x, y):
    return y * np_softplus(-x) + (1 - y) * np_softplus(x)


REFERENCE = [
    ("squared_error", lambda: gl.squared_error(PRED, TARGET), lambda: (f64(PRED) - f64(TARGET)) ** 2),
    ("squared_error_no_target", lambda: gl.squared_error(PRED), lambda: f64(PRED) ** 2),
    ("l2_loss", lambda: gl.l2_loss(PRED, TARGET), lambda: 0.5 * (f64(PRED) - f64(TARGET)) ** 2),
    ("l2_loss_no_target", lambda: gl.l2_loss(PRED), lambda: 0.5 * f64(PRED) ** 2),
    ("huber", lambda: gl.huber_loss(PRED, TARGET), lambda: np_huber(f64(PRED) - f64(TARGET), 1.0)),
    ("huber_delta", lambda: gl.huber_loss(PRED, TARGET, delta=2.5), lambda: np_huber(f64(PRED) - f64(TARGET), 2.5)),
    ("huber_no_target", lambda: gl.huber_loss(PRED, delta=0.3), lambda: np_huber(f64(PRED), 0.3)),
    ("softmax_ce", lambda: gl.softmax_cross_entropy(LOGITS, PROB_LABELS), lambda: np_softmax_ce(f64(LOGITS), f64(PROB_LABELS))),
    (
        "softmax_ce_axis0",
        lambda: gl.softmax_cross_entropy(LOGITS.T, PROB_LABELS.T, axis=0),
        lambda: np_softmax_ce(f64(LOGITS), f64(PROB_LABELS)),
    ),
    ("int_ce", lambda: gl.softmax_cross_entropy_with_integer_labels(LOGITS, INT_LABELS), lambda: np_int_ce(f64(LOGITS), np.asarray(INT_LABELS))),
    (
        "int_ce_axis0",
        lambda: gl.softmax_cross_entropy_with_integer_labels(LOGITS.T, INT_LABELS, axis=0),
        lambda: np_int_ce(f64(LOGITS), np.asarray(INT_LABELS)),
    ),
    ("sigmoid_bce", lambda: gl.sigmoid_binary_cross_entropy(LOGITS, BIN_LABELS), lambda: np_sigmoid_bce(f64(LOGITS), f64(BIN_LABELS))),
    (
        "softmax_ce_extreme",
        lambda: gl.softmax_cross_entropy(EXTREME, jnp.eye(3, dtype=jnp.float32)),
        lambda: np_softmax_ce(f64(EXTREME), np.eye(3)),
    ),
    (
        "int_ce_extreme",
        lambda: gl.softmax_cross_entropy_with_integer_labels(EXTREME, jnp.array([0, 1, 2])),
        lambda: np_int_ce(f64(EXTREME), np.array([0, 1, 2])),
    ),
    (
        "sigmoid_bce_extreme",
        lambda: gl.sigmoid_binary_cross_entropy(EXTREME, jnp.eye(3, dtype=jnp.float32)),
        lambda: np_sigmoid_bce(f64(EXTREME), np.eye(3)),
    ),
]  # fmt: skip


@pytest.mark.parametrize("name,ours,ref", REFERENCE, ids=[r[0] for r in REFERENCE])
def test_matches_float64_transcription_of_docstring(name, ours, ref):
    got, want = ours(), ref()
    assert got.shape == want.shape and got.dtype == jnp.float32
    # Relative to float64 up to float32 rounding; tiny losses (e^-100) compared absolutely.
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6, err_msg=name)


# ------------------------------------------------------------------ Optax: values and grads
# (name, ours, optax name, first argument, the other arguments)
OPTAX = [
    ("squared_error", gl.squared_error, "squared_error", PRED, (TARGET,), {}),
    ("squared_error_no_target", gl.squared_error, "squared_error", PRED, (), {}),
    ("l2_loss", gl.l2_loss, "l2_loss", PRED, (TARGET,), {}),
    ("huber", gl.huber_loss, "huber_loss", PRED, (TARGET,), {}),
    ("huber_delta", gl.huber_loss, "huber_loss", PRED, (TARGET,), {"delta": 0.7}),
    ("softmax_ce", gl.softmax_cross_entropy, "softmax_cross_entropy", LOGITS, (PROB_LABELS,), {}),
    ("softmax_ce_axis0", gl.softmax_cross_entropy, "softmax_cross_entropy", LOGITS.T, (PROB_LABELS.T,), {"axis": 0}),
    ("int_ce", gl.softmax_cross_entropy_with_integer_labels, "softmax_cross_entropy_with_integer_labels", LOGITS, (INT_LABELS,), {}),
    ("sigmoid_bce", gl.sigmoid_binary_cross_entropy, "sigmoid_binary_cross_entropy", LOGITS, (BIN_LABELS,), {}),
    ("softmax_ce_extreme", gl.softmax_cross_entropy, "softmax_cross_entropy", EXTREME, (jnp.eye(3, dtype=jnp.float32),), {}),
    ("int_ce_extreme", gl.softmax_cross_entropy_with_integer_labels, "softmax_cross_entropy_with_integer_labels", EXTREME, (jnp.array([1, 0, 2]),), {}),
    ("sigmoid_bce_extreme", gl.sigmoid_binary_cross_entropy, "sigmoid_binary_cross_entropy", EXTREME, (jnp.eye(3, dtype=jnp.float32),), {}),
]  # fmt: skip


@pytest.mark.parametrize("name,ours,optax_name,x,rest,kw", OPTAX, ids=[c[0] for c in OPTAX])
def test_matches_optax_values_and_grads(name, ours, optax_name, x, rest, kw):
    optax = pytest.importorskip("optax")
    theirs = getattr(optax.losses, optax_name)
    weights = jnp.asarray(RNG.standard_normal(ours(x, *rest, **kw).shape), jnp.float32)

    def values_and_grad(fn):  # one compilation: per-example values and a weighted gradient
        return jax.jit(
            lambda x: (fn(x, *rest, **kw), jax.grad(lambda x: jnp.sum(weights * fn(x, *rest, **kw)))(x))
        )

    with jax.numpy_dtype_promotion("standard"):
        want, want_g = values_and_grad(theirs)(x)
    got, got_g = values_and_grad(ours)(x)
    # Values: Optax's integer-label loss `logsumexp(x) - x[k]` carries an absolute rounding
    # error of ulp(max logit) (~1e-6 here), which ours avoids (see its source).
    atol = 2e-6 if "int" in name else 1e-7
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=atol, err_msg=name)
    np.testing.assert_allclose(ours(x, *rest, **kw), want, rtol=1e-6, atol=atol, err_msg=name)  # eager
    np.testing.assert_allclose(got_g, want_g, rtol=1e-6, atol=1e-7, err_msg=name)
    assert np.all(np.isfinite(got_g))


# ------------------------------------------------------------------------------- torch
def _torch_case(name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = lambda a: torch.tensor(np.asarray(a))
    return {
        "mse": (lambda x: F.mse_loss(x, t(TARGET), reduction="none"), lambda x: gl.squared_error(x, TARGET), PRED),
        "huber": (lambda x: F.huber_loss(x, t(TARGET), reduction="none", delta=0.7), lambda x: gl.huber_loss(x, TARGET, delta=0.7), PRED),
        "ce_int": (lambda x: F.cross_entropy(x, t(INT_LABELS).long(), reduction="none"), lambda x: gl.softmax_cross_entropy_with_integer_labels(x, INT_LABELS), LOGITS),
        "ce_prob": (lambda x: F.cross_entropy(x, t(PROB_LABELS), reduction="none"), lambda x: gl.softmax_cross_entropy(x, PROB_LABELS), LOGITS),
        "ce_extreme": (lambda x: F.cross_entropy(x, t(jnp.array([2, 0, 1])).long(), reduction="none"), lambda x: gl.softmax_cross_entropy_with_integer_labels(x, jnp.array([2, 0, 1])), EXTREME),
        "bce": (lambda x: F.binary_cross_entropy_with_logits(x, t(BIN_LABELS), reduction="none"), lambda x: gl.sigmoid_binary_cross_entropy(x, BIN_LABELS), LOGITS),
        "bce_extreme": (lambda x: F.binary_cross_entropy_with_logits(x, t(jnp.eye(3)), reduction="none"), lambda x: gl.sigmoid_binary_cross_entropy(x, jnp.eye(3, dtype=jnp.float32)), EXTREME),
    }[name], torch  # fmt: skip


@pytest.mark.parametrize("name", ["mse", "huber", "ce_int", "ce_prob", "ce_extreme", "bce", "bce_extreme"])
def test_matches_torch_values_and_grads(name):
    (theirs, ours, x), torch = _torch_case(name)
    xt = torch.tensor(np.asarray(x), requires_grad=True)
    want = theirs(xt)
    want.sum().backward()
    got, grad = jax.jit(lambda x: (ours(x), jax.grad(lambda x: jnp.sum(ours(x)))(x)))(x)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=2e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=2e-6, atol=1e-7, err_msg=name)


# ------------------------------------------------------------------------ extreme logits
def test_extreme_logits_are_finite_with_exact_gradients():
    eye = jnp.eye(3, dtype=jnp.float32)

    @jax.jit
    def values_and_grads(x):
        fns = [
            lambda x: gl.softmax_cross_entropy(x, eye).sum(),
            lambda x: gl.softmax_cross_entropy_with_integer_labels(x, jnp.array([0, 1, 2])).sum(),
            lambda x: gl.sigmoid_binary_cross_entropy(x, eye).sum(),
        ]
        return [jax.value_and_grad(f)(x) for f in fns]

    (ce, g_ce), (ice, g_ice), (bce, g_bce) = values_and_grads(EXTREME)
    x = f64(EXTREME)
    softmax = np.exp(x - np_logsumexp(x)[:, None])
    np.testing.assert_allclose(g_ce, softmax - np.eye(3), atol=1e-6)
    np.testing.assert_allclose(g_ice, softmax - np.eye(3), atol=1e-6)
    np.testing.assert_allclose(g_bce, 1 / (1 + np.exp(-x)) - np.eye(3), atol=1e-6)
    for v in (ce, ice, bce):
        assert np.isfinite(v)
    # A confidently wrong logit costs its size; a confidently right one almost nothing.
    np.testing.assert_allclose(
        gl.sigmoid_binary_cross_entropy(jnp.array([100.0, -100.0]), jnp.array([0, 1])), [100.0, 100.0]
    )
    right = gl.sigmoid_binary_cross_entropy(jnp.array([100.0, -100.0]), jnp.array([1, 0]))
    assert np.all(right >= 0) and np.all(right < 1e-30)  # e^-100, or 0 with flush-to-zero


# ------------------------------------------------------------- dtypes, strict promotion
def test_label_and_target_dtypes_are_cast_explicitly():
    onehot_int = jnp.eye(5, dtype=jnp.int32)[INT_LABELS]
    np.testing.assert_allclose(
        gl.softmax_cross_entropy(LOGITS, onehot_int),
        gl.softmax_cross_entropy_with_integer_labels(LOGITS, INT_LABELS),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        gl.softmax_cross_entropy_with_integer_labels(LOGITS, INT_LABELS.astype(jnp.uint8)),
        gl.softmax_cross_entropy_with_integer_labels(LOGITS, INT_LABELS),
    )
    bools = BIN_LABELS > 0.5
    out = gl.sigmoid_binary_cross_entropy(LOGITS, bools)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, gl.sigmoid_binary_cross_entropy(LOGITS, bools.astype(jnp.float32)))
    int_targets = jnp.arange(20, dtype=jnp.int32).reshape(4, 5)
    out = gl.squared_error(PRED, int_targets)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, (f64(PRED) - np.arange(20).reshape(4, 5)) ** 2, rtol=1e-6)
    # bfloat16 predictions: integer targets keep bfloat16, float32 targets promote as standard.
    half = PRED.astype(jnp.bfloat16)
    assert gl.huber_loss(half, int_targets).dtype == jnp.bfloat16
    assert gl.l2_loss(half, TARGET).dtype == jnp.float32
    assert (
        gl.softmax_cross_entropy_with_integer_labels(LOGITS.astype(jnp.bfloat16), INT_LABELS).dtype
        == jnp.bfloat16
    )


def test_jit_and_vmap():
    fn = jax.jit(jax.vmap(gl.softmax_cross_entropy_with_integer_labels))
    np.testing.assert_allclose(
        fn(LOGITS, INT_LABELS), gl.softmax_cross_entropy_with_integer_labels(LOGITS, INT_LABELS), rtol=1e-6
    )
    huber = jax.jit(lambda p, d: gl.huber_loss(p, TARGET, delta=d))  # traced delta
    np.testing.assert_allclose(
        huber(PRED, jnp.float32(0.7)), gl.huber_loss(PRED, TARGET, delta=0.7), rtol=1e-6
    )


def test_out_of_range_integer_labels_give_nan():
    out = gl.softmax_cross_entropy_with_integer_labels(LOGITS[:3], jnp.array([5, -1, 0]))
    assert np.isnan(out[0]) and np.isnan(out[1]) and np.isfinite(out[2])


# ------------------------------------------------------------------------------ errors
ERRORS = [
    (lambda: gl.squared_error(PRED, TARGET[:2]), ValueError, r"squared_error: `predictions` and `targets` must have the same shape, got \(4, 5\) and \(2, 5\)"),
    (lambda: gl.l2_loss(PRED, TARGET[0]), ValueError, r"l2_loss: `predictions` and `targets` must have the same shape, got \(4, 5\) and \(5,\)"),
    (lambda: gl.huber_loss(PRED, 1.0), ValueError, r"huber_loss: `predictions` and `targets` must have the same shape, got \(4, 5\) and \(\)"),
    (lambda: gl.softmax_cross_entropy(LOGITS, PROB_LABELS[:, :3]), ValueError, r"softmax_cross_entropy: `logits` and `labels` must have the same shape, got \(6, 5\) and \(6, 3\)"),
    (lambda: gl.sigmoid_binary_cross_entropy(LOGITS, BIN_LABELS.T), ValueError, r"sigmoid_binary_cross_entropy: `logits` and `labels` must have the same shape, got \(6, 5\) and \(5, 6\)"),
    (lambda: gl.softmax_cross_entropy_with_integer_labels(LOGITS, INT_LABELS[:4]), ValueError, r"softmax_cross_entropy_with_integer_labels: `labels` must have the shape .* got logits \(6, 5\) and labels \(4,\)"),
    (lambda: gl.softmax_cross_entropy_with_integer_labels(LOGITS, INT_LABELS.astype(jnp.float32)), TypeError, r"softmax_cross_entropy_with_integer_labels: `labels` must be an integer array .* got dtype float32"),
    (lambda: gl.softmax_cross_entropy_with_integer_labels(LOGITS.astype(jnp.int32), INT_LABELS), TypeError, r"softmax_cross_entropy_with_integer_labels: `logits` must be a floating-point array, got dtype int32"),
    (lambda: gl.squared_error(jnp.arange(3), jnp.arange(3)), TypeError, r"squared_error: `predictions` must be a floating-point array, got dtype int32"),
    (lambda: gl.l2_loss(PRED, TARGET.astype(jnp.complex64)), TypeError, r"l2_loss: `targets` must be a real or boolean array, got dtype complex64"),
    (lambda: gl.huber_loss(PRED, TARGET, delta=0.0), ValueError, r"huber_loss: `delta` must be > 0, got 0.0"),
    (lambda: gl.softmax_cross_entropy(LOGITS, PROB_LABELS, axis=2), ValueError, r"softmax_cross_entropy: `axis` must be in \[-2, 2\)"),
    (lambda: gl.softmax_cross_entropy_with_integer_labels(LOGITS, INT_LABELS, axis=1.5), TypeError, r"softmax_cross_entropy_with_integer_labels: `axis` must be an int"),
]  # fmt: skip


@pytest.mark.parametrize(
    "make,exc,match", ERRORS, ids=[m.split(":")[0] + f"-{i}" for i, (_, _, m) in enumerate(ERRORS)]
)
def test_invalid_arguments_raise(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# ------------------------------------------------------- where= and tuple axes (Optax 0.2.4+)
_L4 = jax.random.normal(jax.random.key(7), (2, 3, 4, 5))
_W4 = jax.random.bernoulli(jax.random.key(8), 0.7, (2, 3, 4, 5))
_P4 = jax.nn.softmax(jax.random.normal(jax.random.key(9), (2, 3, 4, 5)), axis=-1)
_K2 = jnp.array([[0, 3, 7], [19, 5, 11]])  # flat indices into a (4, 5) slice


def _optax(fn, *args, **kw):
    import optax

    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return getattr(optax.losses, fn)(*args, **kw)


@pytest.mark.parametrize(
    "fn, args, kw",
    [
        ("softmax_cross_entropy", (_L4, _P4), {"where": _W4}),
        ("softmax_cross_entropy", (_L4, _P4), {"axis": (2, 3)}),
        ("softmax_cross_entropy", (_L4, _P4), {"axis": (2, 3), "where": _W4}),
        ("softmax_cross_entropy", (_L4, _P4), {"axis": 1, "where": _W4[:, 0]}),  # batch-shaped mask
        ("softmax_cross_entropy_with_integer_labels", (_L4[..., 0, :], _K2 % 5), {"where": _W4[..., 0, :]}),
        ("softmax_cross_entropy_with_integer_labels", (_L4, _K2), {"axis": (2, 3)}),
        ("softmax_cross_entropy_with_integer_labels", (_L4, _K2), {"axis": (2, 3), "where": _W4}),
        (
            "softmax_cross_entropy_with_integer_labels",
            (jnp.moveaxis(_L4[:, :, 0], 1, 2), _K2 % 3),
            {"axis": 1},
        ),
    ],
)
def test_where_and_tuple_axes_equal_optax(fn, args, kw):
    mine = getattr(gl, fn)(*args, **kw)
    theirs = _optax(fn, *args, **kw)
    np.testing.assert_allclose(mine, theirs, rtol=2e-6, atol=1e-6)


def test_where_cross_entropy_float64_transcription():
    x, p, w = (np.asarray(a, np.float64) for a in (_L4, _P4, _W4))
    m = np.max(np.where(w, x, -np.inf), axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        lse = np.log(np.sum(np.where(w, np.exp(x - m), 0.0), axis=-1, keepdims=True)) + m
        ref = -np.sum(np.where(w, p * (x - lse), 0.0), axis=-1)
    np.testing.assert_allclose(gl.softmax_cross_entropy(_L4, _P4, where=_W4), ref, rtol=1e-5, atol=1e-6)


def test_a_fully_masked_slice_gives_zero_with_finite_gradients():
    w = jnp.zeros((2, 5), bool).at[0].set(True)
    x = jnp.array([[1.0, 2.0, 3.0, 4.0, 5.0], [1e30, jnp.nan, 0.0, 1.0, 2.0]])
    out = gl.softmax_cross_entropy_with_integer_labels(x, jnp.array([1, 2]), where=w)
    assert float(out[1]) == 0.0 and np.isfinite(out[0])
    g = jax.grad(lambda x: gl.softmax_cross_entropy(x, jax.nn.one_hot(jnp.array([1, 2]), 5), where=w).sum())(
        jnp.nan_to_num(x)
    )
    assert np.all(np.isfinite(g))
    with pytest.raises(ValueError, match="softmax_cross_entropy: `where` must be broadcastable"):
        gl.softmax_cross_entropy(x, jax.nn.one_hot(jnp.array([1, 2]), 5), where=jnp.ones((3,), bool))
