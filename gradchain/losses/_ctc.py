"""Connectionist temporal classification, as in Optax: `ctc_loss`, `ctc_loss_with_forward_probs`.

The forward (alpha) recursion runs in log space over the frames with `jax.lax.scan`,
for a batch of padded sequences; ``log_epsilon`` (a large negative finite number)
stands for ``log 0`` so that impossible alignments give a large finite loss, never
``inf`` or ``nan`` gradients. Arithmetic runs in at least float32.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain._numerics import compute_dtype, hp
from gradchain._validate import check_scalar
from gradchain.losses._common import cast_real, floating, log_softmax

__all__ = ["ctc_loss", "ctc_loss_with_forward_probs"]


def _check(fn: str, logits: Any, logit_paddings: Any, labels: Any, label_paddings: Any, blank_id: Any):
    x = floating(fn, "logits", logits)
    if x.ndim != 3:
        raise ValueError(f"{fn}: `logits` must have shape [batch, frames, classes], got {x.shape}.")
    batch, frames, classes = x.shape
    y = jnp.asarray(labels)
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(f"{fn}: `labels` must be an integer array of class indices, got dtype {y.dtype}.")
    if y.ndim != 2 or y.shape[0] != batch:
        raise ValueError(
            f"{fn}: `labels` must have shape [batch, max_labels] with batch = {batch}, got {y.shape}."
        )
    xp = jnp.asarray(logit_paddings)
    if xp.shape != (batch, frames):
        raise ValueError(
            f"{fn}: `logit_paddings` must have shape [batch, frames] = {(batch, frames)}, got {xp.shape}."
        )
    yp = jnp.asarray(label_paddings)
    if yp.shape != y.shape:
        raise ValueError(f"{fn}: `label_paddings` must have the shape {y.shape} of `labels`, got {yp.shape}.")
    if isinstance(blank_id, bool) or not isinstance(blank_id, int):
        raise TypeError(f"{fn}: `blank_id` must be an int, got {blank_id!r}.")
    if not 0 <= blank_id < classes:
        raise ValueError(f"{fn}: `blank_id` must be in [0, {classes}) (a class of `logits`), got {blank_id}.")
    dtype = compute_dtype(x.dtype)
    xp = cast_real(fn, "logit_paddings", xp, dtype)
    yp = cast_real(fn, "label_paddings", yp, dtype)
    return x.astype(dtype), xp, y.astype(jnp.int32), yp


def ctc_loss_with_forward_probs(
    logits, logit_paddings, labels, label_paddings, *, blank_id=0, log_epsilon=-1e5
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """CTC loss and the log forward probabilities (alphas) of blank and label states.

    For one sequence, with ``lp[t] = log_softmax(logits[t])``, labels ``y[0..N)`` of
    which the first ``L`` are real, ``eps = log_epsilon`` standing for ``log 0``,
    ``B[t, n]`` (``n = 0..N``) the log-probability that frames ``1..t`` spelled
    ``y[0..n)`` and frame ``t`` is blank, and ``E[t, n]`` (``n = 0..N-1``) that they
    spelled ``y[0..n]`` and frame ``t`` emits ``y[n]`` (``E[t, -1] = eps``); a repeated
    label must be separated by a blank::

        B[0, 0] = 0,  B[0, n > 0] = eps,  E[0, n] = eps                (before frame 1)
        E[t, n] = lp[t, y[n]] + logsumexp(E[t-1, n], B[t-1, n],
                                          E[t-1, n-1] + eps * [y[n] == y[n-1]])
        B[t, 0] = lp[t, blank] + B[t-1, 0]
        B[t, n] = lp[t, blank] + logaddexp(B[t-1, n], E[t-1, n-1])
        loss    = -logaddexp(B[T, L], E[T, L-1])          (-B[T, 0] if L = 0)

    A padded frame copies ``B[t-1]`` and ``E[t-1]``. The returned blank alphas are
    ``B[1..T]`` except that the last frame holds ``logaddexp(B[T, n], E[T, n-1])``
    (the final label may end the sequence), as in Optax.

    Args:
        logits: Per-frame class scores, shape ``[batch, frames, classes]`` (classes
            include the blank).
        logit_paddings: 1.0 (or ``True``) for padded frames, else 0.0, shape
            ``[batch, frames]``; padded frames may be anywhere.
        labels: Integer label sequences, shape ``[batch, max_labels]``, right-padded
            (padded entries may hold any value, e.g. -1). A real label outside
            ``[0, classes)`` makes that sequence's loss ``nan`` (Optax scores it as a
            label of probability 1).
        label_paddings: 1.0 (or ``True``) for padded labels, shape ``[batch,
            max_labels]``; each row zeros then ones.
        blank_id: The class of the blank symbol.
        log_epsilon: Finite stand-in for ``log 0``, ``< 0``.

    Returns:
        ``(loss, logalpha_blank, logalpha_nonblank)``: the per-sequence losses
        ``[batch]``, and the alphas ``B`` and ``E`` of shapes ``[frames, batch,
        max_labels + 1]`` and ``[frames, batch, max_labels]``, in at least float32.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> logits = jnp.zeros((1, 3, 3))           # uniform over {blank, 1, 2}, 3 frames
        >>> loss, blank, label = losses.ctc_loss_with_forward_probs(
        ...     logits, jnp.zeros((1, 3)), jnp.array([[1, 2]]), jnp.zeros((1, 2)))
        >>> round(float(loss[0]), 4), blank.shape, label.shape    # 5 alignments of 3**-3 each
        (1.6864, (3, 1, 3), (3, 1, 2))

    References:
        Graves et al., "Connectionist Temporal Classification: Labelling Unsegmented
        Sequence Data with Recurrent Neural Networks", ICML, 2006.
    """
    return _forward(
        "ctc_loss_with_forward_probs", logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon
    )


def _forward(fn, logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon):
    check_scalar(fn, "log_epsilon", log_epsilon, hi=0.0, hi_open=True)
    x, frame_pad, y, label_pad = _check(fn, logits, logit_paddings, labels, label_paddings, blank_id)
    batch, _, classes = x.shape
    max_labels = y.shape[1]
    eps = hp(log_epsilon, x.dtype)
    lp = log_softmax(x, (2,))  # [batch, frames, classes]
    lp_blank = lp[:, :, blank_id]  # [batch, frames]
    valid = (y >= 0) & (y < classes)
    index = jnp.broadcast_to(jnp.where(valid, y, 0)[:, None, :], (batch, x.shape[1], max_labels))
    lp_label = jnp.take_along_axis(lp, index, axis=2)  # [batch, frames, max_labels]
    lp_label = jnp.where(valid[:, None, :], lp_label, jnp.zeros_like(lp_label))  # as Optax's one_hot
    repeat = jnp.concatenate([jnp.zeros((batch, 1), bool), y[:, 1:] == y[:, :-1]], axis=1)  # y[n] == y[n-1]
    no_skip = jnp.where(repeat, jnp.asarray(eps, x.dtype), jnp.zeros((), x.dtype))

    def shift(e, first):  # e[:, n-1] at position n, `first` at position 0
        return jnp.concatenate([first, e], axis=1)

    def step(carry, inputs):
        b, e = carry  # [batch, max_labels + 1], [batch, max_labels]
        lp_b, lp_y, pad = inputs  # [batch], [batch, max_labels], [batch]
        e_prev = shift(e[:, :-1], jnp.full((batch, 1), eps, x.dtype)) + no_skip
        e_new = lp_y + jnp.logaddexp(jnp.logaddexp(e, b[:, :-1]), e_prev)
        b_new = lp_b[:, None] + shift(jnp.logaddexp(b[:, 1:], e), b[:, :1])
        padded = pad[:, None] > 0
        b_new = jnp.where(padded, b, b_new)
        e_new = jnp.where(padded, e, e_new)
        return (b_new, e_new), (b_new, e_new)

    b0 = jnp.full((batch, max_labels + 1), eps, x.dtype).at[:, 0].set(0)
    e0 = jnp.full((batch, max_labels), eps, x.dtype)
    scanned = (lp_blank.T, jnp.transpose(lp_label, (1, 0, 2)), frame_pad.T)
    (b_t, e_t), (blank, label) = jax.lax.scan(step, (b0, e0), scanned)
    b_end = shift(jnp.logaddexp(b_t[:, 1:], e_t), b_t[:, :1])  # the last label may end the sequence
    blank = blank.at[-1].set(b_end)
    length = max_labels - jnp.sum(label_pad, axis=1).astype(jnp.int32)
    loss = -jnp.take_along_axis(b_end, length[:, None], axis=1)[:, 0]
    bad = jnp.any(~valid & (label_pad == 0), axis=1)
    return jnp.where(bad, jnp.full_like(loss, jnp.nan), loss), blank, label


def ctc_loss(logits, logit_paddings, labels, label_paddings, *, blank_id=0, log_epsilon=-1e5) -> jax.Array:
    """CTC loss of padded label sequences given per-frame logits.

    The negative log-probability of all alignments of ``labels`` (blanks between and
    around labels, repeats merged) under the per-frame softmax of ``logits``; see
    `ctc_loss_with_forward_probs` for the recursion and the argument conventions::

        loss = -log sum_{alignments a of labels} prod_t softmax(logits[t])[a[t]]

    Args:
        logits: Per-frame class scores, shape ``[batch, frames, classes]``.
        logit_paddings: 1.0 for padded frames, else 0.0, shape ``[batch, frames]``.
        labels: Integer label sequences, shape ``[batch, max_labels]``, right-padded.
        label_paddings: 1.0 for padded labels, shape ``[batch, max_labels]``.
        blank_id: The class of the blank symbol.
        log_epsilon: Finite stand-in for ``log 0``, ``< 0``.

    Returns:
        The per-sequence losses, shape ``[batch]``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> logits = jnp.zeros((2, 3, 3))
        >>> labels = jnp.array([[1, 2], [1, -1]])          # the second has one label
        >>> label_paddings = jnp.array([[0.0, 0.0], [0.0, 1.0]])
        >>> [round(float(v), 4) for v in losses.ctc_loss(logits, jnp.zeros((2, 3)), labels, label_paddings)]
        [1.6864, 1.5041]

    References:
        Graves et al., "Connectionist Temporal Classification: Labelling Unsegmented
        Sequence Data with Recurrent Neural Networks", ICML, 2006.
    """
    loss, _, _ = _forward("ctc_loss", logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon)
    return loss
