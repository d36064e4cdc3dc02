"""Sequence (CTC), ranking, segmentation (Dice) and metric-learning losses: float64
NumPy transcriptions of the documented formulas (and a brute-force CTC), Optax 0.2.8
parity (values and gradients), torch CTC parity, documented differences, errors."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradchain import losses as gl

RNG = np.random.default_rng(2)
F32 = jnp.float32


def f64(x):
    return np.asarray(x, np.float64)


def optax_losses():
    return pytest.importorskip("optax").losses


def standard(fn, *args, **kw):
    """Call Optax, which needs standard dtype and rank promotion."""
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return fn(*args, **kw)


def value_and_grad(fn, x):
    """``fn(x)`` and the gradient of its sum, in one compilation."""
    return jax.jit(lambda x: (fn(x), jax.grad(lambda x: jnp.sum(fn(x)))(x)))(x)


def np_log_softmax(x, where=None):
    xm = x if where is None else np.where(where, x, -np.inf)
    m = xm.max(-1, keepdims=True)
    return xm - m - np.log(np.exp(xm - m).sum(-1, keepdims=True))


# ----------------------------------------------------------------------------------- CTC
CTC_LOGITS = jnp.asarray(1.5 * RNG.standard_normal((3, 6, 4)), F32)
CTC_LABELS = jnp.array([[1, 2, 2], [3, 1, 0], [2, 3, 1]], jnp.int32)
CTC_LABEL_PAD = jnp.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]], F32)
CTC_FRAME_PAD = jnp.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1], [0, 1, 0, 0, 1, 0]], F32)  # mid padding
CTC_ARGS = (CTC_FRAME_PAD, CTC_LABELS, CTC_LABEL_PAD)


def np_ctc(logits, frame_pad, labels, label_pad, blank=0, eps=-1e5):
    """The docstring recursion, one sequence at a time, in float64."""
    losses, blanks, emits = [], [], []
    for x, fp, y, yp in zip(f64(logits), f64(frame_pad), np.asarray(labels), f64(label_pad)):
        lp, n_max, length = np_log_softmax(x), len(y), int(len(y) - yp.sum())
        b, e = np.full(n_max + 1, eps), np.full(n_max, eps)
        b[0] = 0.0
        bs, es = [], []
        for t in range(len(x)):
            if not fp[t]:
                e_new = np.empty(n_max)
                for n in range(n_max):
                    prev = e[n - 1] + eps * (y[n] == y[n - 1]) if n > 0 else eps
                    e_new[n] = lp[t, y[n]] + np.logaddexp.reduce([e[n], b[n], prev])
                b_new = np.empty(n_max + 1)
                b_new[0] = lp[t, blank] + b[0]
                for n in range(1, n_max + 1):
                    b_new[n] = lp[t, blank] + np.logaddexp(b[n], e[n - 1])
                b, e = b_new, e_new
            bs.append(b)
            es.append(e)
        b_end = np.concatenate([b[:1], np.logaddexp(b[1:], e)])
        bs[-1] = b_end
        losses.append(-b_end[length])
        blanks.append(bs)
        emits.append(es)
    return np.array(losses), np.array(blanks).transpose(1, 0, 2), np.array(emits).transpose(1, 0, 2)


def brute_force_ctc(logits, frame_pad, labels, label_pad, blank=0):
    """-log of the summed probability of every frame path that collapses to the labels."""
    out = []
    for x, fp, y, yp in zip(f64(logits), f64(frame_pad), np.asarray(labels), f64(label_pad)):
        p = np.exp(np_log_softmax(x[fp == 0]))
        target = tuple(y[: int(len(y) - yp.sum())])
        total = 0.0
        for path in itertools.product(range(x.shape[1]), repeat=len(p)):
            merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
            if tuple(k for k in merged if k != blank) == target:
                total += np.prod(p[np.arange(len(p)), path])
        out.append(-np.log(total))
    return np.array(out)


def test_ctc_matches_recursion_brute_force_and_optax():
    args = (CTC_FRAME_PAD, CTC_LABELS, CTC_LABEL_PAD)
    (loss, blank, emit), g = jax.jit(
        lambda x: (
            gl.ctc_loss_with_forward_probs(x, *args),
            jax.grad(lambda x: gl.ctc_loss(x, *args).sum())(x),
        )
    )(CTC_LOGITS)
    want = np_ctc(CTC_LOGITS, *args)
    for got_i, want_i in zip((loss, blank, emit), want):
        np.testing.assert_allclose(got_i, want_i, rtol=2e-6, atol=2e-5)
    np.testing.assert_allclose(loss, brute_force_ctc(CTC_LOGITS, *args), rtol=2e-6)
    theirs = optax_losses()
    (o_loss, o_blank, o_emit), o_g = standard(
        jax.jit(
            lambda x: (
                theirs.ctc_loss_with_forward_probs(x, *args),
                jax.grad(lambda x: theirs.ctc_loss(x, *args).sum())(x),
            )
        ),
        CTC_LOGITS,
    )
    np.testing.assert_allclose(loss, o_loss, rtol=1e-6)
    np.testing.assert_allclose(blank, o_blank, rtol=1e-6)  # unreachable states hold ~log_epsilon
    np.testing.assert_allclose(emit, o_emit, rtol=1e-6)
    np.testing.assert_allclose(g, o_g, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(g))


def test_ctc_matches_torch():
    torch = pytest.importorskip("torch")
    frame_pad = CTC_FRAME_PAD.at[2].set(0.0)  # torch needs padding at the end
    x = torch.tensor(np.asarray(CTC_LOGITS), requires_grad=True)
    want = torch.nn.functional.ctc_loss(
        torch.log_softmax(x, -1).transpose(0, 1),
        torch.tensor(np.asarray(CTC_LABELS)).long(),
        torch.tensor([6, 4, 6]),
        torch.tensor([3, 2, 3]),
        blank=0,
        reduction="none",
    )
    want.sum().backward()
    got, g = value_and_grad(lambda x: gl.ctc_loss(x, frame_pad, CTC_LABELS, CTC_LABEL_PAD), CTC_LOGITS)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=2e-6)
    np.testing.assert_allclose(g * (1 - frame_pad)[..., None], x.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_ctc_edge_cases():
    x, frame_pad, labels, label_pad = CTC_LOGITS[:2], CTC_FRAME_PAD[:2], CTC_LABELS[:2], CTC_LABEL_PAD[:2]

    @jax.jit
    def three(x):  # one compilation for the three label sets
        return [
            gl.ctc_loss(x, frame_pad, y, label_pad)
            for y in (labels, labels.at[1, 2].set(-1), labels.at[0, 1].set(4))
        ]

    base, padded_minus_one, bad = three(x)
    np.testing.assert_array_equal(padded_minus_one, base)  # padded labels may hold anything
    assert np.isnan(bad[0]) and bad[1] == base[1]  # a real label out of range gives nan
    # Boolean paddings, another blank, an impossible alignment (more labels than frames).
    long_labels = jnp.array([[1, 2, 1, 2, 1, 2, 1]], jnp.int32)
    got = jax.jit(
        lambda x: gl.ctc_loss(x, frame_pad[:1] > 0, long_labels, jnp.zeros((1, 7), bool), blank_id=3)
    )(x[:1])
    theirs = optax_losses().ctc_loss
    want = standard(
        jax.jit(lambda x: theirs(x, frame_pad[:1], long_labels, jnp.zeros((1, 7)), blank_id=3)), x[:1]
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert 1e4 < got[0] < 1e6  # log_epsilon keeps it finite
    assert jax.eval_shape(lambda x: gl.ctc_loss(x, *CTC_ARGS), CTC_LOGITS.astype(jnp.bfloat16)).dtype == F32


# ------------------------------------------------ ranking, Dice, metric learning: formulas
def np_ranking(x, y, where=None, weights=None, reduce="mean"):
    valid = np.ones(x.shape, bool) if where is None else where
    w = 1.0 if weights is None else weights
    per_list = -np.sum(np.where(valid, w * y * np_log_softmax(x, valid), 0), -1)
    lists = valid.any(-1)
    if reduce is None:
        return per_list
    if reduce == "sum":
        return per_list[lists].sum()
    return per_list[lists].mean() if lists.any() else 0.0


def np_ntxent(e, y, temperature):
    u = e / np.sqrt(np.maximum((e * e).sum(-1, keepdims=True), np.finfo(np.float32).eps))
    s = u @ u.T / temperature
    terms = []
    for i, j in itertools.permutations(range(len(y)), 2):
        if y[i] == y[j]:
            negatives = [np.exp(s[i, k]) for k in range(len(y)) if y[k] != y[i]]
            terms.append(s[i, j] - np.log(np.exp(s[i, j]) + sum(negatives)))
    return -np.mean(terms) if terms else 0.0


def np_triplet(a, p, n, axis=-1, q=2, margin=1.0, eps=1e-6):
    def d(b):
        return (np.sum(np.abs(a - b) ** q, axis=axis) + eps) ** (1 / q)

    return np.maximum(d(p) - d(n) + margin, 0)


def np_dice(x, t, class_weights=None, smooth=1.0, alpha=0.5, beta=0.5, probs=False, reduction="mean", ignore_background=False, axis=None):  # fmt: skip
    p = x if probs else (1 / (1 + np.exp(-x)) if x.shape[-1] == 1 else np.exp(np_log_softmax(x)))
    red = tuple(range(1, x.ndim - 1)) if axis is None else axis
    i_c = np.sum(p * t, axis=red)
    fp_c = np.sum(p, axis=red) - i_c
    fn_c = np.sum(t, axis=red) - i_c
    dice = 1 - (i_c + smooth) / (i_c + alpha * fp_c + beta * fn_c + smooth)
    dice = dice if class_weights is None else dice * class_weights
    dice = dice[..., 1:] if ignore_background and x.shape[-1] > 1 else dice
    return {"mean": np.mean, "sum": np.sum, "none": lambda d, axis: d}[reduction](dice, axis=-1)


def np_generalized_dice(x, t, smooth=1.0, ignore_background=False):
    f = t.sum(axis=tuple(range(t.ndim - 1)))
    w = 1 / (f**2 + 1e-7)
    w = t.shape[-1] * w / w.sum()
    return np.mean(np_dice(x, t, w, smooth, reduction="none", ignore_background=ignore_background))


SCORES = jnp.asarray(2 * RNG.standard_normal((3, 5)), F32)
RELEVANCE = jnp.asarray(RNG.integers(0, 4, (3, 5)), F32)
LIST_MASK = jnp.asarray(RNG.random((3, 5)) < 0.7).at[:, 0].set(True)
ITEM_WEIGHTS = jnp.asarray(RNG.random((3, 5)) + 0.5, F32)
EMB = jnp.asarray(RNG.standard_normal((6, 3)), F32)
GROUPS = jnp.array([0, 0, 1, 1, 2, 2])
UNEVEN = jnp.array([0, 0, 0, 1, 1, 2])
ANCHORS, POSITIVES, NEGATIVES = (jnp.asarray(RNG.standard_normal((4, 3)), F32) for _ in range(3))
SEG = jnp.asarray(1.5 * RNG.standard_normal((2, 3, 3, 4)), F32)  # [batch, H, W, classes]
ONEHOT = jax.nn.one_hot(jnp.asarray(RNG.integers(0, 4, (2, 3, 3))), 4, dtype=F32)
SEG_PROBS = jax.nn.softmax(SEG)
BIN_SEG = jnp.asarray(RNG.standard_normal((2, 5)), F32)
BIN_TARGET = jnp.asarray(RNG.integers(0, 2, (2, 5)), F32)
CW = jnp.asarray([0.5, 1.0, 2.0, 1.5], F32)

L, A = f64, np.asarray
# (id, name in both libraries, first argument (differentiated), other arguments, keywords,
#  float64 transcription, whether Optax must run eagerly)
CASES = [
    ("ranking", "ranking_softmax_loss", SCORES, (RELEVANCE,), {}, lambda: np_ranking(L(SCORES), L(RELEVANCE))),
    ("ranking_where_none", "ranking_softmax_loss", SCORES, (RELEVANCE,), {"where": LIST_MASK, "reduce_fn": None}, lambda: np_ranking(L(SCORES), L(RELEVANCE), A(LIST_MASK), reduce=None)),
    ("ranking_weights_sum", "ranking_softmax_loss", SCORES, (RELEVANCE,), {"where": LIST_MASK, "weights": ITEM_WEIGHTS, "reduce_fn": jnp.sum}, lambda: np_ranking(L(SCORES), L(RELEVANCE), A(LIST_MASK), L(ITEM_WEIGHTS), "sum")),
    ("ntxent", "ntxent", EMB, (GROUPS,), {}, lambda: np_ntxent(L(EMB), A(GROUPS), 0.07)),
    ("ntxent_uneven", "ntxent", EMB, (UNEVEN, 0.5), {}, lambda: np_ntxent(L(EMB), A(UNEVEN), 0.5)),
    ("triplet", "triplet_margin_loss", ANCHORS, (POSITIVES, NEGATIVES), {}, lambda: np_triplet(L(ANCHORS), L(POSITIVES), L(NEGATIVES))),
    ("triplet_q4_axis0", "triplet_margin_loss", ANCHORS, (POSITIVES, NEGATIVES, 0, 4), {"margin": 3.0, "eps": 0.0}, lambda: np_triplet(L(ANCHORS), L(POSITIVES), L(NEGATIVES), 0, 4, 3.0, 0.0)),
    ("dice", "dice_loss", SEG, (ONEHOT,), {}, lambda: np_dice(L(SEG), L(ONEHOT))),
    ("dice_tversky_weights", "dice_loss", SEG, (ONEHOT,), {"alpha": 0.3, "beta": 0.7, "class_weights": CW, "smooth": 0.5}, lambda: np_dice(L(SEG), L(ONEHOT), L(CW), 0.5, 0.3, 0.7)),
    ("dice_background_sum", "dice_loss", SEG, (ONEHOT,), {"ignore_background": True, "reduction": "sum"}, lambda: np_dice(L(SEG), L(ONEHOT), reduction="sum", ignore_background=True)),
    ("dice_none_axis", "dice_loss", SEG, (ONEHOT,), {"reduction": "none", "axis": (0, 2)}, lambda: np_dice(L(SEG), L(ONEHOT), reduction="none", axis=(0, 2))),
    ("dice_sigmoid", "dice_loss", BIN_SEG, (BIN_TARGET[..., None],), {}, lambda: np_dice(L(BIN_SEG)[..., None], L(BIN_TARGET)[..., None])),
    ("binary_dice", "binary_dice_loss", BIN_SEG, (BIN_TARGET,), {"smooth": 0.1}, lambda: np_dice(L(BIN_SEG)[..., None], L(BIN_TARGET)[..., None], smooth=0.1)),
    ("generalized_dice", "multiclass_generalized_dice_loss", SEG, (ONEHOT,), {}, lambda: np_generalized_dice(L(SEG), L(ONEHOT))),
    ("generalized_dice_bg", "multiclass_generalized_dice_loss", SEG, (ONEHOT,), {"ignore_background": True, "smooth": 2.0}, lambda: np_generalized_dice(L(SEG), L(ONEHOT), 2.0, True)),
]  # fmt: skip


@pytest.mark.parametrize("case,name,x,rest,kw,ref", CASES, ids=[c[0] for c in CASES])
def test_matches_float64_formula_and_optax_values_and_grads(case, name, x, rest, kw, ref):
    ours, theirs = getattr(gl, name), getattr(optax_losses(), name)
    weights = jnp.asarray(RNG.standard_normal(jax.eval_shape(lambda x: ours(x, *rest, **kw), x).shape), F32)

    def values_and_grad(fn):  # one compilation: the values and a weighted gradient
        return lambda x: (fn(x, *rest, **kw), jax.grad(lambda x: jnp.sum(weights * fn(x, *rest, **kw)))(x))

    got, got_g = jax.jit(values_and_grad(ours))(x)
    assert got.dtype == F32 and np.all(np.isfinite(got_g)), case
    np.testing.assert_allclose(got, ref(), rtol=5e-6, atol=1e-6, err_msg=case)
    # Optax checks `apply_softmax=False` probabilities with a Python `if`: it cannot be jitted.
    optax_fn = (
        values_and_grad(theirs)
        if kw.get("apply_softmax", True) is False
        else jax.jit(values_and_grad(theirs))
    )
    want, want_g = standard(optax_fn, x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=case)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-5, atol=1e-6, err_msg=case)


# ---------------------------------------------------- documented differences from Optax
def test_ntxent_without_positive_pairs_is_zero_not_nan():
    labels = jnp.arange(6)
    v, g = value_and_grad(lambda e: gl.ntxent(e, labels), EMB)
    assert v == 0 and np.all(g == 0)
    assert np.isnan(standard(jax.jit(optax_losses().ntxent), EMB, labels))


def test_triplet_odd_norm_degree_is_a_distance():
    def l1(fn):
        return jax.jit(lambda a: fn(a, POSITIVES, NEGATIVES, norm_degree=1, margin=0.5))(ANCHORS)

    got = l1(gl.triplet_margin_loss)
    np.testing.assert_allclose(
        got, np_triplet(f64(ANCHORS), f64(POSITIVES), f64(NEGATIVES), q=1, margin=0.5), rtol=1e-6
    )
    assert not np.allclose(
        got, standard(l1, optax_losses().triplet_margin_loss)
    )  # Optax sums signed differences


def test_dice_on_probabilities():
    # dice_loss(apply_softmax=False) on softmax probabilities: the formula, and the same as on logits.
    got, logits, sig_probs, sig_logits = jax.jit(
        lambda: [
            gl.dice_loss(SEG_PROBS, ONEHOT, apply_softmax=False),  # checked eagerly only: under jit it passes
            gl.dice_loss(SEG, ONEHOT),
            gl.binary_dice_loss(jax.nn.sigmoid(BIN_SEG), BIN_TARGET, apply_sigmoid=False),
            gl.binary_dice_loss(BIN_SEG, BIN_TARGET),
        ]
    )()
    np.testing.assert_allclose(got, np_dice(f64(SEG_PROBS), f64(ONEHOT), probs=True), rtol=5e-6)
    np.testing.assert_allclose(got, logits, rtol=1e-6)
    # binary_dice_loss(apply_sigmoid=False) works (Optax 0.2.8 refuses any input but ones).
    np.testing.assert_allclose(sig_probs, sig_logits, rtol=1e-6)
    with pytest.raises(ValueError, match="sum to 1"):
        standard(optax_losses().binary_dice_loss, jax.nn.sigmoid(BIN_SEG), BIN_TARGET, apply_sigmoid=False)
    with pytest.raises(ValueError, match=r"dice_loss: `predictions` must be probabilities summing to 1"):
        gl.dice_loss(SEG, ONEHOT, apply_softmax=False)


def test_ranking_with_every_list_masked_is_zero():
    where = jnp.zeros((3, 5), bool)
    v, g = value_and_grad(lambda x: gl.ranking_softmax_loss(x, RELEVANCE, where=where), SCORES)
    assert v == 0 and np.all(g == 0)
    one = where.at[0, 1].set(True)
    per_list = jax.jit(lambda x: gl.ranking_softmax_loss(x, RELEVANCE, where=one, reduce_fn=None))(SCORES)
    np.testing.assert_array_equal(per_list[1:], [0.0, 0.0])


# ------------------------------------------------------------------------------ errors
ERRORS = [
    (lambda: gl.ctc_loss(CTC_LOGITS[0], *CTC_ARGS), ValueError, r"ctc_loss: `logits` must have shape \[batch, frames, classes\], got \(6, 4\)"),
    (lambda: gl.ctc_loss(CTC_LOGITS, CTC_FRAME_PAD[:, :5], CTC_LABELS, CTC_LABEL_PAD), ValueError, r"ctc_loss: `logit_paddings` must have shape \[batch, frames\] = \(3, 6\), got \(3, 5\)"),
    (lambda: gl.ctc_loss(CTC_LOGITS, CTC_FRAME_PAD, CTC_LABELS[:2], CTC_LABEL_PAD[:2]), ValueError, r"ctc_loss: `labels` must have shape \[batch, max_labels\] with batch = 3, got \(2, 3\)"),
    (lambda: gl.ctc_loss(CTC_LOGITS, CTC_FRAME_PAD, CTC_LABELS, CTC_LABEL_PAD[:, :2]), ValueError, r"ctc_loss: `label_paddings` must have the shape \(3, 3\) of `labels`, got \(3, 2\)"),
    (lambda: gl.ctc_loss(CTC_LOGITS, CTC_FRAME_PAD, CTC_LABELS.astype(F32), CTC_LABEL_PAD), TypeError, r"ctc_loss: `labels` must be an integer array"),
    (lambda: gl.ctc_loss(CTC_LOGITS, *CTC_ARGS, blank_id=4), ValueError, r"ctc_loss: `blank_id` must be in \[0, 4\)"),
    (lambda: gl.ctc_loss_with_forward_probs(CTC_LOGITS, *CTC_ARGS, blank_id=1.0), TypeError, r"ctc_loss_with_forward_probs: `blank_id` must be an int, got 1.0"),
    (lambda: gl.ctc_loss(CTC_LOGITS, *CTC_ARGS, log_epsilon=0.0), ValueError, r"ctc_loss: `log_epsilon` must be < 0, got 0.0"),
    (lambda: gl.ctc_loss(CTC_LOGITS, *CTC_ARGS, log_epsilon=-jnp.inf), ValueError, r"ctc_loss: `log_epsilon` must be finite"),
    (lambda: gl.ranking_softmax_loss(SCORES, RELEVANCE[:2]), ValueError, r"ranking_softmax_loss: `logits` and `labels` must have the same shape, got \(3, 5\) and \(2, 5\)"),
    (lambda: gl.ranking_softmax_loss(SCORES, RELEVANCE, weights=ITEM_WEIGHTS[:, :2]), ValueError, r"ranking_softmax_loss: `weights` must be broadcastable to the shape \(3, 5\) of `logits`, got \(3, 2\)"),
    (lambda: gl.ranking_softmax_loss(SCORES, RELEVANCE, reduce_fn="mean"), TypeError, r"ranking_softmax_loss: `reduce_fn` must be a callable or None, got 'mean'"),
    (lambda: gl.ranking_softmax_loss(SCORES, RELEVANCE, where=ITEM_WEIGHTS), TypeError, r"ranking_softmax_loss: `where` must be a boolean array, got dtype float32"),
    (lambda: gl.ntxent(EMB[0], GROUPS), ValueError, r"ntxent: `embeddings` must have shape \[batch, dim\], got \(3,\)"),
    (lambda: gl.ntxent(EMB, GROUPS[:4]), ValueError, r"ntxent: `labels` must have shape \[batch\] = \(6,\) \(one per embedding\), got \(4,\)"),
    (lambda: gl.ntxent(EMB, GROUPS, temperature=0.0), ValueError, r"ntxent: `temperature` must be > 0, got 0.0"),
    (lambda: gl.triplet_margin_loss(ANCHORS, POSITIVES[:2], NEGATIVES), ValueError, r"triplet_margin_loss: `anchors` and `positives` must have the same shape, got \(4, 3\) and \(2, 3\)"),
    (lambda: gl.triplet_margin_loss(ANCHORS, POSITIVES, NEGATIVES.astype(jnp.int32)), TypeError, r"triplet_margin_loss: `negatives` must be a floating-point array"),
    (lambda: gl.triplet_margin_loss(ANCHORS, POSITIVES, NEGATIVES, norm_degree=0), ValueError, r"triplet_margin_loss: `norm_degree` must be > 0, got 0"),
    (lambda: gl.triplet_margin_loss(ANCHORS, POSITIVES, NEGATIVES, axis=(0, 1)), TypeError, r"triplet_margin_loss: `axis` must be an int, got \(0, 1\)"),
    (lambda: gl.dice_loss(SEG, ONEHOT[..., :3]), ValueError, r"dice_loss: `predictions` and `targets` must have the same shape, got \(2, 3, 3, 4\) and \(2, 3, 3, 3\)"),
    (lambda: gl.dice_loss(SEG, ONEHOT, reduction="max"), ValueError, r"dice_loss: `reduction` must be 'mean', 'sum' or 'none', got 'max'"),
    (lambda: gl.dice_loss(SEG, ONEHOT, class_weights=CW[:3]), ValueError, r"dice_loss: `class_weights` must have shape \(num_classes,\) = \(4,\), got \(3,\)"),
    (lambda: gl.dice_loss(SEG, ONEHOT, axis=(1, -1)), ValueError, r"dice_loss: `axis` must not include the class axis"),
    (lambda: gl.dice_loss(SEG, ONEHOT, smooth=-1.0), ValueError, r"dice_loss: `smooth` must be >= 0, got -1.0"),
    (lambda: gl.binary_dice_loss(BIN_SEG.astype(jnp.int32), BIN_TARGET), TypeError, r"binary_dice_loss: `predictions` must be a floating-point array"),
    (lambda: gl.multiclass_generalized_dice_loss(SEG, ONEHOT[0]), ValueError, r"multiclass_generalized_dice_loss: `predictions` and `targets` must have the same shape"),
]  # fmt: skip


@pytest.mark.parametrize(
    "make,exc,match", ERRORS, ids=[m.split(":")[0] + f"-{i}" for i, (_, _, m) in enumerate(ERRORS)]
)
def test_invalid_arguments_raise(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
