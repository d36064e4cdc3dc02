"""Losses beyond the first six (regression, divergences, margin, Fenchel-Young,
classification): float64 NumPy transcriptions of the documented formulas, Optax 0.2.8
parity (values and gradients), the documented differences from Optax, errors.

Sequence, ranking, segmentation and metric-learning losses: test_losses_more_structured.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

from gradchain import losses as gl

RNG = np.random.default_rng(1)
PRED = jnp.asarray(3 * RNG.standard_normal((4, 5)), jnp.float32)
TARGET = jnp.asarray(RNG.standard_normal((4, 5)), jnp.float32)
SIGNS = jnp.asarray(RNG.choice([-1, 1], (4, 5)), jnp.int32)
BITS = jnp.asarray(RNG.integers(0, 2, (4, 5)), jnp.int32)
LOGITS = jnp.asarray(3 * RNG.standard_normal((6, 5)), jnp.float32)
LOGITS3 = jnp.asarray(2 * RNG.standard_normal((2, 3, 4)), jnp.float32)
INT_LABELS = jnp.asarray(RNG.integers(0, 5, 6), jnp.int32)
_p = RNG.random((6, 5))
PROBS = jnp.asarray(_p / _p.sum(-1, keepdims=True), jnp.float32)
_p3 = RNG.random((2, 3, 4))
PROBS3 = jnp.asarray(_p3 / _p3.sum((1, 2), keepdims=True), jnp.float32)
LOG_P = jax.nn.log_softmax(LOGITS)
MEASURE = jnp.asarray(RNG.random((6, 5)) + 0.1, jnp.float32)  # unnormalized, > 0
BIN_LABELS = jnp.asarray(RNG.random((6, 5)), jnp.float32)
MASK = jnp.asarray(RNG.random((6, 5)) < 0.7).at[:, 0].set(True)
MASK3 = jnp.asarray(RNG.random((2, 3, 4)) < 0.7).at[:, 0, 0].set(True)
EXTREME = jnp.asarray([[100.0, -100.0, 0.0], [-100.0, -100.0, 100.0], [30.0, 100.0, -100.0]], jnp.float32)
EYE3 = jnp.eye(3, dtype=jnp.float32)


def f64(x):
    return np.asarray(x, np.float64)


def optax_losses():
    return pytest.importorskip("optax").losses


def standard(fn, *args, **kw):
    """Call Optax, which needs standard dtype and rank promotion."""
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return fn(*args, **kw)


# ------------------------------------------------- float64 transcriptions of the docstrings
def np_log_softmax(x, axis=-1, where=None):
    if where is None:
        where = np.ones(x.shape, bool)
    xm = np.where(where, x, -np.inf)
    m = xm.max(axis=axis, keepdims=True)
    return np.where(where, xm - m - np.log(np.exp(xm - m).sum(axis=axis, keepdims=True)), -np.inf)


def msum(x, axis, where):  # sum over the entries where `where` holds
    return np.sum(np.where(True if where is None else where, x, 0.0), axis=axis)


def np_kl(lp, t, axis=-1, where=None):
    return msum(np.where(t != 0, t * (np.log(np.where(t != 0, t, 1)) - lp), 0), axis, where)


def np_kl_log(lp, lt, axis=-1, where=None):
    return msum(np.where(np.isneginf(lt), 0, np.exp(lt) * (lt - lp)), axis, where)


def np_gkl(lp, t, axis=-1, where=None):
    return np_kl(lp, t, axis, where) + msum(np.exp(lp) - t, axis, where)


def np_log_cosh(e):
    small = np.abs(e) <= 1
    branch_small = np.log1p(2 * np.sinh(np.where(small, e, 0) / 2) ** 2)
    branch_large = np.abs(e) + np.log1p(np.exp(-2 * np.abs(e))) - np.log(2)
    return np.where(small, branch_small, branch_large)


def np_cosine(a, b, epsilon=0.0, axis=-1, where=None):
    def unit(x):
        n2 = np.maximum(
            msum(x * x, axis, where)[..., None] if axis == -1 else msum(x * x, axis, where), epsilon
        )
        return x / np.sqrt(np.where(n2 > 0, n2, 1))

    return msum(unit(a) * unit(b), axis, where)


def np_mc_hinge(s, y):
    k = np.arange(s.shape[-1])
    return np.max(s + (k != y[:, None]), axis=-1) - s[np.arange(len(y)), y]


def np_mc_perceptron(s, y):
    return np.max(s, axis=-1) - s[np.arange(len(y)), y]


def np_sparse_plus(z):
    return np.where(z <= -1, 0, np.where(z < 1, (z + 1) ** 2 / 4, z))


def np_sparsemax(s):  # by bisection on tau: sum(max(s - tau, 0)) = 1 (independent of the sort)
    lo, hi = s.min(-1, keepdims=True) - 1, s.max(-1, keepdims=True)
    for _ in range(200):
        tau = (lo + hi) / 2
        big = np.maximum(s - tau, 0).sum(-1, keepdims=True) > 1
        lo, hi = np.where(big, tau, lo), np.where(big, hi, tau)
    return np.maximum(s - (lo + hi) / 2, 0)


def np_mc_sparsemax(s, y):
    p = np_sparsemax(s)
    gap = s - s[np.arange(len(y)), y][:, None]
    return np.sum(np.where(p > 0, p * gap, 0), -1) + (1 - np.sum(p**2, -1)) / 2


def np_safe_ce(x, y):
    return -np.sum(y * np.where(y != 0, np_log_softmax(x), 0), axis=-1)


def np_poly(x, y, epsilon, axis=-1, where=None):
    log_p = np_log_softmax(x, axis, where)
    ce = -msum(y * log_p, axis, where)
    return ce + epsilon * msum(y * (1 - np.exp(log_p)), axis, where)


def np_focal(x, y, alpha, gamma):
    p = 1 / (1 + np.exp(-x))
    ce = y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x)
    one_minus_pt = (1 - y) * p + y * (1 - p)
    loss = ce * one_minus_pt**gamma
    return loss if alpha is None else (alpha * y + (1 - alpha) * (1 - y)) * loss


def np_smooth(y, alpha, axis=-1, where=None):
    n = y.shape[axis] if where is None else np.maximum(np.sum(where, axis, keepdims=True), 1)
    return (1 - alpha) * y + alpha / n


def _fy(optax_side):
    make = optax_losses().make_fenchel_young_loss if optax_side else gl.make_fenchel_young_loss
    return make(logsumexp)


L = f64
NEG_INF_LOGITS = LOGITS.at[:, 1].set(-jnp.inf)
PROBS_0 = PROBS.at[:, 1].set(0.0)
HARD = (BIN_LABELS > 0.5).astype(jnp.float32)
# (id, name in both libraries, first argument (differentiated), other arguments, keywords,
#  float64 transcription of the docstring formula)
CASES = [
    ("kl", "kl_divergence", LOG_P, (PROBS,), {}, lambda: np_kl(L(LOG_P), L(PROBS))),
    ("kl_axis_where", "kl_divergence", LOG_P.T, (PROBS.T, 0, MASK.T), {}, lambda: np_kl(L(LOG_P), L(PROBS), where=np.asarray(MASK))),
    ("kl_tuple", "kl_divergence", LOGITS3, (PROBS3,), {"axis": (1, 2), "where": MASK3}, lambda: np_kl(L(LOGITS3), L(PROBS3), (1, 2), np.asarray(MASK3))),
    ("kl_none", "kl_divergence", LOG_P, (PROBS,), {"axis": None}, lambda: np_kl(L(LOG_P), L(PROBS), axis=None)),
    ("kl_log", "kl_divergence_with_log_targets", LOG_P, (jnp.log(PROBS),), {"where": MASK}, lambda: np_kl_log(L(LOG_P), np.log(L(PROBS)), where=np.asarray(MASK))),
    ("gkl", "generalized_kl_divergence", LOG_P, (MEASURE,), {}, lambda: np_gkl(L(LOG_P), L(MEASURE))),
    ("gkl_tuple", "generalized_kl_divergence", LOG_P, (MEASURE, (0, 1), MASK), {}, lambda: np_gkl(L(LOG_P), L(MEASURE), (0, 1), np.asarray(MASK))),
    ("log_cosh", "log_cosh", PRED, (TARGET,), {}, lambda: np_log_cosh(L(PRED) - L(TARGET))),
    ("log_cosh_no_target", "log_cosh", PRED, (), {}, lambda: np.log(np.cosh(L(PRED)))),
    ("cosine", "cosine_similarity", PRED, (TARGET,), {}, lambda: np_cosine(L(PRED), L(TARGET))),
    ("cosine_eps_where", "cosine_similarity", PRED, (TARGET,), {"epsilon": 4.0, "where": MASK[:4]}, lambda: np_cosine(L(PRED), L(TARGET), 4.0, where=np.asarray(MASK[:4]))),
    ("cosine_tuple", "cosine_similarity", LOGITS3, (PROBS3,), {"axis": (0, 2)}, None),
    ("cosine_distance", "cosine_distance", PRED, (TARGET,), {}, lambda: 1 - np_cosine(L(PRED), L(TARGET))),
    ("cosine_distance_axis0", "cosine_distance", PRED, (TARGET,), {"axis": 0}, None),
    ("hinge", "hinge_loss", PRED, (SIGNS,), {}, lambda: np.maximum(0, 1 - L(PRED) * L(SIGNS))),
    ("perceptron", "perceptron_loss", PRED, (SIGNS,), {}, lambda: np.maximum(0, -L(PRED) * L(SIGNS))),
    ("mc_hinge", "multiclass_hinge_loss", LOGITS, (INT_LABELS,), {}, lambda: np_mc_hinge(L(LOGITS), np.asarray(INT_LABELS))),
    ("mc_perceptron", "multiclass_perceptron_loss", LOGITS, (INT_LABELS,), {}, lambda: np_mc_perceptron(L(LOGITS), np.asarray(INT_LABELS))),
    ("sparsemax", "sparsemax_loss", PRED, (BITS,), {}, lambda: np_sparse_plus(np.where(np.asarray(BITS), -L(PRED), L(PRED)))),
    ("mc_sparsemax", "multiclass_sparsemax_loss", LOGITS, (INT_LABELS,), {}, lambda: np_mc_sparsemax(L(LOGITS), np.asarray(INT_LABELS))),
    ("mc_sparsemax_ties", "multiclass_sparsemax_loss", jnp.asarray([[1.0, 1.0, -3.0], [0.5, 0.2, 0.4]]), (jnp.array([2, 1]),), {}, None),
    ("safe_ce", "safe_softmax_cross_entropy", LOGITS, (PROBS,), {}, lambda: np_safe_ce(L(LOGITS), L(PROBS))),
    ("safe_ce_broadcast", "safe_softmax_cross_entropy", LOGITS, (PROBS[0],), {}, lambda: np_safe_ce(L(LOGITS), np.broadcast_to(L(PROBS[0]), (6, 5)))),
    ("safe_ce_neg_inf", "safe_softmax_cross_entropy", NEG_INF_LOGITS, (PROBS_0,), {}, lambda: np_safe_ce(L(NEG_INF_LOGITS), L(PROBS_0))),
    ("safe_ce_extreme", "safe_softmax_cross_entropy", EXTREME, (EYE3,), {}, lambda: np_safe_ce(L(EXTREME), np.eye(3))),
    ("poly", "poly_loss_cross_entropy", LOGITS, (PROBS,), {}, lambda: np_poly(L(LOGITS), L(PROBS), 2.0)),
    ("poly_where", "poly_loss_cross_entropy", LOGITS, (PROBS,), {"epsilon": -1.0, "where": MASK}, lambda: np_poly(L(LOGITS), L(PROBS), -1.0, where=np.asarray(MASK))),
    ("poly_tuple", "poly_loss_cross_entropy", LOGITS3, (PROBS3,), {"axis": (1, 2), "where": MASK3}, lambda: np_poly(L(LOGITS3), L(PROBS3), 2.0, (1, 2), np.asarray(MASK3))),
    ("focal", "sigmoid_focal_loss", LOGITS, (BIN_LABELS,), {}, lambda: np_focal(L(LOGITS), L(BIN_LABELS), None, 2.0)),
    ("focal_alpha_gamma", "sigmoid_focal_loss", LOGITS, (HARD,), {"alpha": 0.25, "gamma": 0.5}, lambda: np_focal(L(LOGITS), L(HARD), 0.25, 0.5)),
    ("focal_extreme", "sigmoid_focal_loss", EXTREME, (EYE3,), {"gamma": 1.5}, None),
    ("smooth", "smooth_labels", PROBS, (0.1,), {}, lambda: np_smooth(L(PROBS), 0.1)),
    ("smooth_where", "smooth_labels", PROBS, (0.3,), {"where": MASK}, lambda: np_smooth(L(PROBS), 0.3, where=np.asarray(MASK))),
    ("smooth_where_tuple", "smooth_labels", PROBS3, (0.2,), {"axis": (1, 2), "where": MASK3}, None),
]  # fmt: skip


@pytest.mark.parametrize("case,name,x,rest,kw,ref", CASES, ids=[c[0] for c in CASES])
def test_matches_float64_formula_and_optax_values_and_grads(case, name, x, rest, kw, ref):
    ours, theirs = getattr(gl, name), getattr(optax_losses(), name)
    weights = jnp.asarray(
        RNG.standard_normal(jax.eval_shape(lambda x: ours(x, *rest, **kw), x).shape), jnp.float32
    )

    def values_and_grad(fn):  # one compilation: the values and a weighted gradient
        return jax.jit(
            lambda x: (fn(x, *rest, **kw), jax.grad(lambda x: jnp.sum(weights * fn(x, *rest, **kw)))(x))
        )

    got, got_g = values_and_grad(ours)(x)
    assert got.dtype == jnp.float32 and np.all(np.isfinite(got_g)), case
    if ref is not None:  # float64, up to float32 rounding
        want = ref()
        assert got.shape == want.shape, case
        np.testing.assert_allclose(got, want, rtol=5e-6, atol=1e-6, err_msg=case)
    want, want_g = standard(values_and_grad(theirs), x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=case)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-6, atol=1e-6, err_msg=case)


def values_and_grads(fns, x):
    """``[(fn(x), grad of sum(fn)(x)) for fn in fns]``, in one compilation."""
    return jax.jit(lambda x: [(fn(x), jax.grad(lambda x, fn=fn: jnp.sum(fn(x)))(x)) for fn in fns])(x)


def once(fn):
    """Run ``fn()`` (arrays in, arrays out) as one compilation rather than op by op."""
    return jax.jit(fn)()


def test_fenchel_young_matches_optax_and_softmax_cross_entropy():
    [(got, g)] = values_and_grads([lambda s: _fy(False)(s, PROBS)], LOGITS)
    want = standard(jax.jit(lambda s: _fy(True)(s, PROBS)), LOGITS)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(
        got, np.log(np.exp(f64(LOGITS)).sum(-1)) - (f64(PROBS) * f64(LOGITS)).sum(-1), rtol=1e-5
    )
    np.testing.assert_allclose(g, jax.nn.softmax(LOGITS) - PROBS, atol=1e-6)
    # Extra arguments reach max_fun unchanged.
    scaled = gl.make_fenchel_young_loss(lambda s, *, t: t * logsumexp(s / t))
    np.testing.assert_allclose(once(lambda: scaled(LOGITS, PROBS, t=1.0)), got, rtol=1e-6)


def test_convex_kl_divergence_is_the_deprecated_generalized_kl():
    with pytest.warns(DeprecationWarning, match="generalized_kl_divergence"):
        got = gl.convex_kl_divergence(LOG_P, MEASURE, -1, MASK)
    np.testing.assert_array_equal(got, gl.generalized_kl_divergence(LOG_P, MEASURE, where=MASK))


def test_closed_form_gradients():
    (_, g_sparsemax), (_, g_log_cosh) = values_and_grads(
        [lambda s: gl.multiclass_sparsemax_loss(s, INT_LABELS[:4]), gl.log_cosh], PRED
    )
    p = np_sparsemax(f64(PRED))
    np.testing.assert_allclose(
        g_sparsemax, p - np.eye(5)[np.asarray(INT_LABELS[:4])], atol=1e-6
    )  # p - onehot
    np.testing.assert_allclose(g_log_cosh, np.tanh(f64(PRED)), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------- documented differences from Optax
def test_log_cosh_keeps_precision_for_small_errors():
    e = jnp.asarray([1e-4, -3e-3, 0.02, 0.9, 1.1, 50.0, -200.0], jnp.float32)
    want = np.log(np.cosh(f64(e)))
    np.testing.assert_allclose(once(lambda: gl.log_cosh(e)), want, rtol=2e-6)
    theirs = standard(jax.jit(optax_losses().log_cosh), e)
    assert np.all(np.abs(f64(theirs)[:2] - want[:2]) / want[:2] > 1e-3)  # Optax's logaddexp(e, -e) - log 2


def test_cosine_of_a_zero_vector_is_zero_not_nan():
    zero, ones = jnp.zeros((2, 3)), jnp.ones((2, 3))
    (sim, g), (dist, _) = values_and_grads(
        [lambda a: gl.cosine_similarity(a, ones), lambda a: gl.cosine_distance(ones, a)], zero
    )
    np.testing.assert_array_equal(sim, [0.0, 0.0])
    np.testing.assert_array_equal(dist, [1.0, 1.0])
    assert np.all(np.isfinite(g))
    assert np.all(np.isnan(standard(jax.jit(optax_losses().cosine_similarity), zero, ones)))


def test_zero_times_log_zero_is_zero():
    lp = jnp.array([[-jnp.inf, -0.5, -1.0]])
    t = jnp.array([[0.0, 0.6, 0.4]])
    fns = [lambda lp: gl.kl_divergence(lp, t), lambda lp: gl.kl_divergence_with_log_targets(lp, jnp.log(t))]
    for v, g in values_and_grads(fns, lp):
        np.testing.assert_allclose(v, np_kl(np.array([[0.0, -0.5, -1.0]]), f64(t)), rtol=1e-6)
        assert np.all(np.isfinite(g))
    assert np.isnan(standard(jax.jit(optax_losses().kl_divergence), lp, t)[0])
    assert np.isnan(once(lambda: gl.kl_divergence(jnp.zeros(2), jnp.array([0.5, -0.5]))))  # negative target


def test_class_labels_out_of_range_give_nan_and_leading_axes_are_free():
    fns = (gl.multiclass_hinge_loss, gl.multiclass_perceptron_loss, gl.multiclass_sparsemax_loss)
    outs = once(lambda: [fn(LOGITS[:3], jnp.array([5, -1, 0])) for fn in fns])
    for fn, out in zip(fns, outs):
        assert np.isnan(out[0]) and np.isnan(out[1]) and np.isfinite(out[2]), fn.__name__
    # multiclass_sparsemax_loss takes any leading axes (Optax: exactly one).
    flat, nested, single = once(
        lambda: [
            gl.multiclass_sparsemax_loss(LOGITS, INT_LABELS),
            gl.multiclass_sparsemax_loss(LOGITS.reshape(2, 3, 5), INT_LABELS.reshape(2, 3)),
            gl.multiclass_sparsemax_loss(LOGITS[0], INT_LABELS[0]),
        ]
    )
    np.testing.assert_allclose(nested.reshape(6), flat, rtol=1e-6)
    assert single.shape == () and np.isclose(single, flat[0], rtol=1e-6)


def test_smooth_labels_with_an_empty_mask_row_is_finite():
    where = jnp.array([[True, False, True], [False, False, False]])
    got = once(lambda: gl.smooth_labels(EYE3[:2], 0.3, where=where))
    np.testing.assert_allclose(got, [[0.85, 0.15, 0.15], [0.3, 1.0, 0.3]], rtol=1e-6)
    theirs = standard(jax.jit(lambda y: optax_losses().smooth_labels(y, 0.3, where=where)), EYE3[:2])
    assert np.all(np.isinf(theirs[1]))


# ------------------------------------------------------------------- extreme and edges
def test_extreme_logits_are_finite():
    fns = [
        lambda x: gl.safe_softmax_cross_entropy(x, EYE3),
        lambda x: gl.poly_loss_cross_entropy(x, EYE3),
        lambda x: gl.sigmoid_focal_loss(x, EYE3, gamma=0.5),
        lambda x: gl.multiclass_sparsemax_loss(x, jnp.array([0, 1, 2])),
        gl.log_cosh,
    ]
    for v, g in values_and_grads(fns, EXTREME):
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))


def test_fully_masked_rows_give_zero_and_finite_gradients():
    where = MASK.at[2].set(False)
    fns = [
        lambda x: gl.poly_loss_cross_entropy(x, PROBS, where=where),
        lambda x: gl.kl_divergence(x, PROBS, where=where),
        lambda x: gl.cosine_similarity(x, PROBS, where=where),
    ]
    for v, g in values_and_grads(fns, LOGITS):
        assert v[2] == 0 and np.all(np.isfinite(g)) and np.all(g[2] == 0)


def test_dtypes_under_strict_promotion_and_traced_hyperparameters():
    def dtype(fn, *args):
        return jax.eval_shape(fn, *args).dtype

    assert dtype(gl.hinge_loss, PRED.astype(jnp.bfloat16), SIGNS) == jnp.bfloat16
    assert dtype(gl.kl_divergence, LOG_P, PROBS.astype(jnp.bfloat16)) == jnp.float32
    assert (
        dtype(lambda x: gl.sigmoid_focal_loss(x, BIN_LABELS, alpha=0.5), LOGITS.astype(jnp.bfloat16))
        == jnp.bfloat16
    )
    onehot = jax.nn.one_hot(INT_LABELS, 5, dtype=jnp.int32)  # integer labels are cast
    traced_eps = jax.jit(lambda eps: gl.poly_loss_cross_entropy(LOGITS, PROBS, epsilon=eps))(
        jnp.float32(-1.0)
    )
    ce, ce_int, poly = once(
        lambda: [
            gl.safe_softmax_cross_entropy(LOGITS, onehot),
            gl.softmax_cross_entropy_with_integer_labels(LOGITS, INT_LABELS),
            gl.poly_loss_cross_entropy(LOGITS, PROBS, epsilon=-1.0),
        ]
    )
    np.testing.assert_allclose(ce, ce_int, rtol=1e-5)
    np.testing.assert_allclose(traced_eps, poly, rtol=1e-6)


# ------------------------------------------------------------------------------ errors
ERRORS = [
    (lambda: gl.kl_divergence(LOG_P, PROBS[:2]), ValueError, r"kl_divergence: `log_predictions` and `targets` must have the same shape, got \(6, 5\) and \(2, 5\)"),
    (lambda: gl.kl_divergence(INT_LABELS, PROBS), TypeError, r"kl_divergence: `log_predictions` must be a floating-point array, got dtype int32"),
    (lambda: gl.kl_divergence(LOG_P, PROBS, axis=2), ValueError, r"kl_divergence: `axis` must be in \[-2, 2\) for an array of shape \(6, 5\), got 2"),
    (lambda: gl.kl_divergence(LOG_P, PROBS, axis=(0, -2)), ValueError, r"kl_divergence: `axis` must not name an axis twice"),
    (lambda: gl.kl_divergence(LOG_P, PROBS, axis=1.0), TypeError, r"kl_divergence: `axis` must be an int, a tuple of ints or None, got 1.0"),
    (lambda: gl.kl_divergence(LOG_P, PROBS, where=MASK.astype(jnp.int32)), TypeError, r"kl_divergence: `where` must be a boolean array, got dtype int32"),
    (lambda: gl.kl_divergence(LOG_P, PROBS, where=MASK[:, :2]), ValueError, r"kl_divergence: `where` must be broadcastable to the shape \(6, 5\) of `log_predictions`, got \(6, 2\)"),
    (lambda: gl.kl_divergence_with_log_targets(LOG_P, INT_LABELS), TypeError, r"kl_divergence_with_log_targets: `log_targets` must be a floating-point array"),
    (lambda: gl.generalized_kl_divergence(LOG_P, MEASURE.T), ValueError, r"generalized_kl_divergence: `log_predictions` and `targets` must have the same shape"),
    (lambda: gl.log_cosh(PRED, TARGET[0]), ValueError, r"log_cosh: `predictions` and `targets` must have the same shape, got \(4, 5\) and \(5,\)"),
    (lambda: gl.cosine_similarity(PRED, TARGET, epsilon=-1.0), ValueError, r"cosine_similarity: `epsilon` must be >= 0, got -1.0"),
    (lambda: gl.cosine_distance(PRED, TARGET.astype(jnp.complex64)), TypeError, r"cosine_distance: `targets` must be a real or boolean array, got dtype complex64"),
    (lambda: gl.hinge_loss(PRED, SIGNS[0]), ValueError, r"hinge_loss: `predictor_outputs` and `targets` must have the same shape, got \(4, 5\) and \(5,\)"),
    (lambda: gl.perceptron_loss(SIGNS, SIGNS), TypeError, r"perceptron_loss: `predictor_outputs` must be a floating-point array, got dtype int32"),
    (lambda: gl.multiclass_hinge_loss(LOGITS, INT_LABELS[:3]), ValueError, r"multiclass_hinge_loss: `labels` must have the shape of `scores` without the class axis, got labels \(3,\) \(expected \(6,\)\)"),
    (lambda: gl.multiclass_perceptron_loss(LOGITS, PROBS), TypeError, r"multiclass_perceptron_loss: `labels` must be an integer array of class indices, got dtype float32"),
    (lambda: gl.multiclass_sparsemax_loss(jnp.float32(1.0), 0), ValueError, r"multiclass_sparsemax_loss: `scores` must have a class axis"),
    (lambda: gl.sparsemax_loss(PRED, BITS.T), ValueError, r"sparsemax_loss: `logits` and `labels` must have the same shape"),
    (lambda: gl.make_fenchel_young_loss("logsumexp"), TypeError, r"make_fenchel_young_loss: `max_fun` must be callable, got 'logsumexp'"),
    (lambda: gl.make_fenchel_young_loss(logsumexp)(LOGITS, PROBS[:, :2]), ValueError, r"fenchel_young_loss: `scores` and `targets` must have the same shape"),
    (lambda: gl.safe_softmax_cross_entropy(LOGITS, PROBS[:2]), ValueError, r"safe_softmax_cross_entropy: `labels` must be broadcastable to the shape \(6, 5\) of `logits`, got \(2, 5\)"),
    (lambda: gl.safe_softmax_cross_entropy(LOGITS[0], PROBS), ValueError, r"safe_softmax_cross_entropy: `labels` must be broadcastable to the shape \(5,\) of `logits`, got \(6, 5\)"),
    (lambda: gl.poly_loss_cross_entropy(LOGITS, PROBS, epsilon="2"), TypeError, r"poly_loss_cross_entropy: `epsilon` must be a number, got '2'"),
    (lambda: gl.poly_loss_cross_entropy(LOGITS, PROBS, where=MASK.T), ValueError, r"poly_loss_cross_entropy: `where` must be broadcastable to the shape \(6, 5\) of `logits`, got \(5, 6\)"),
    (lambda: gl.sigmoid_focal_loss(LOGITS, BIN_LABELS, alpha=1.5), ValueError, r"sigmoid_focal_loss: `alpha` must be >= 0 and <= 1, got 1.5"),
    (lambda: gl.sigmoid_focal_loss(LOGITS, BIN_LABELS, gamma=-1.0), ValueError, r"sigmoid_focal_loss: `gamma` must be >= 0, got -1.0"),
    (lambda: gl.sigmoid_focal_loss(LOGITS, BIN_LABELS.astype(jnp.complex64)), TypeError, r"sigmoid_focal_loss: `labels` must be a real or boolean array, got dtype complex64"),
    (lambda: gl.smooth_labels(INT_LABELS, 0.1), TypeError, r"smooth_labels: `labels` must be a floating-point array, got dtype int32"),
    (lambda: gl.smooth_labels(PROBS, -0.1), ValueError, r"smooth_labels: `alpha` must be >= 0 and <= 1, got -0.1"),
    (lambda: gl.smooth_labels(PROBS, 0.1, axis=(5,)), ValueError, r"smooth_labels: `axis` must be in \[-2, 2\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    "make,exc,match", ERRORS, ids=[m.split(":")[0] + f"-{i}" for i, (_, _, m) in enumerate(ERRORS)]
)
def test_invalid_arguments_raise(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
