"""Regression and classification losses, per example (no reduction), as in Optax.

Every loss returns one value per example (``.mean()`` it yourself), is numerically
stable (log-softmax / log-sigmoid through ``logsumexp`` / ``softplus``, finite for
logits of any finite size) and safe under ``jax.numpy_dtype_promotion("strict")``:
integer or boolean labels and targets are cast explicitly to the float dtype of the
predictions, two float dtypes are combined as standard promotion would. Unlike Optax,
shapes are never broadcast: a mismatch raises a ``ValueError`` naming both shapes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain._numerics import hp
from gradchain._validate import check_positive
from gradchain.losses._common import axes, floating, log_softmax, mask, masked_sum, pair

__all__ = [
    "huber_loss",
    "l2_loss",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "squared_error",
]


# ----------------------------------------------------------------------------- helpers
def _errors(fn: str, predictions: Any, targets: Any) -> jax.Array:
    if targets is None:
        return floating(fn, "predictions", predictions)
    p, t = pair(fn, "predictions", predictions, "targets", targets)
    return p - t


# ---------------------------------------------------------------------------- regression
def squared_error(predictions, targets=None) -> jax.Array:
    """Elementwise squared error: ``loss = (predictions - targets)**2``.

    Mean squared error is ``squared_error(p, t).mean()``.

    Args:
        predictions: A floating-point array of any shape.
        targets: An array of the same shape, or ``None`` for zeros.

    Returns:
        The elementwise losses, shaped like ``predictions``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.losses.squared_error(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0]))
        Array([1., 4.], dtype=float32)
    """
    e = _errors("squared_error", predictions, targets)
    return e * e


def l2_loss(predictions, targets=None) -> jax.Array:
    """Half the squared error: ``loss = 0.5 * (predictions - targets)**2``.

    The factor ``0.5`` makes the gradient ``predictions - targets``.

    Args:
        predictions: A floating-point array of any shape.
        targets: An array of the same shape, or ``None`` for zeros.

    Returns:
        The elementwise losses, shaped like ``predictions``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.losses.l2_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0]))
        Array([0.5, 2. ], dtype=float32)
    """
    e = _errors("l2_loss", predictions, targets)
    return 0.5 * (e * e)


def huber_loss(predictions, targets=None, *, delta=1.0) -> jax.Array:
    """Huber loss: quadratic for errors up to ``delta``, linear beyond.

    With ``e = predictions - targets``::

        q    = min(|e|, delta)
        loss = 0.5 * q**2 + delta * (|e| - q)

    i.e. ``0.5 * e**2`` if ``|e| <= delta``, else ``delta * (|e| - 0.5 * delta)``; its
    gradient is the error clipped to ``[-delta, delta]``.

    Args:
        predictions: A floating-point array of any shape.
        targets: An array of the same shape, or ``None`` for zeros.
        delta: The switch point, ``> 0``.

    Returns:
        The elementwise losses, shaped like ``predictions``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.losses.huber_loss(jnp.array([0.5, -3.0]), delta=1.0)
        Array([0.125, 2.5  ], dtype=float32)

    References:
        Huber, "Robust Estimation of a Location Parameter", Annals of Mathematical
        Statistics, 1964.
    """
    check_positive("huber_loss", "delta", delta)
    e = _errors("huber_loss", predictions, targets)
    d = hp(delta, e.dtype)
    abs_e = jnp.abs(e)
    q = jnp.minimum(abs_e, d)
    return 0.5 * (q * q) + d * (abs_e - q)


# ------------------------------------------------------------------------ classification
def _class_mask(fn: str, where: Any, x: jax.Array, class_axes: tuple[int, ...]) -> jax.Array | None:
    """``where`` of ``x``'s shape, or of the batch shape (``x``'s without the class axes,
    expanded there), as a boolean mask of ``x``'s shape; ``None`` stays ``None``."""
    if where is None:
        return None
    w = jnp.asarray(where)
    if w.ndim != x.ndim:
        w = jnp.expand_dims(w, class_axes)
    return mask(fn, w, x.shape, "`logits`")


def softmax_cross_entropy(logits, labels, axis=-1, where=None) -> jax.Array:
    """Cross-entropy between ``softmax(logits)`` and target distributions ``labels``.

    Over the class axes ``A`` (an int, a tuple of ints, or ``None`` for all), among the
    entries where ``where`` holds (computed with a stable log-softmax)::

        loss = -sum_{c in A, where} labels[c] * log_softmax_where(logits)[c]

    Args:
        logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
        labels: Target distributions (e.g. one-hot), the same shape as ``logits``;
            integer or boolean one-hot labels are cast to the logits' dtype.
        axis: The class axis or axes.
        where: Optional boolean mask of the entries to include, of ``logits``'s shape
            or of the batch shape; masked entries contribute nothing (even ``nan``
            ones), and a slice with no entry gives 0.

    Returns:
        The per-example losses, of ``logits``'s shape without the class axes.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> [round(float(v), 4) for v in gradchain.losses.softmax_cross_entropy(logits, labels)]
        [0.2761, 2.9518]
    """
    fn = "softmax_cross_entropy"
    x, y = pair(fn, "logits", logits, "labels", labels)
    ax = axes(fn, axis, x.ndim, x.shape)
    w = _class_mask(fn, where, x, ax)
    lp = log_softmax(x, ax, w)
    if w is not None:
        lp = jnp.where(w, lp, jnp.zeros_like(lp))  # no -inf * 0 in values or gradients
    return -masked_sum(y * lp, ax, w)


def softmax_cross_entropy_with_integer_labels(logits, labels, axis=-1, where=None) -> jax.Array:
    """Cross-entropy of ``softmax(logits)`` against integer class labels.

    For the label ``k`` of each example, with ``m`` the largest logit over the class
    axis among the entries where ``where`` holds::

        loss = log(sum_{where} exp(logits - m)) - (logits[k] - m)     (= logsumexp(logits) - logits[k])

    A tuple of class axes is read as one axis of their flattened slice (the label is a
    flat index into ``logits[axis]``, as ``jnp.ravel_multi_index`` gives it).

    Args:
        logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
        labels: Integer class indices in ``[0, num_classes)``, shape ``[...]`` (the
            shape of ``logits`` without the class axes). A label out of that range
            (negative ones included) gives ``nan``.
        axis: The class axis, or a tuple of class axes.
        where: Optional boolean mask of the classes to include, of ``logits``'s shape
            or of the batch shape; a slice with no entry gives 0.

    Returns:
        The per-example losses, shaped like ``labels``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> losses = gradchain.losses.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1]))
        >>> [round(float(v), 4) for v in losses]
        [0.2761, 2.9518]
    """
    fn = "softmax_cross_entropy_with_integer_labels"
    x = floating(fn, "logits", logits)
    k = jnp.asarray(labels)
    if not jnp.issubdtype(k.dtype, jnp.integer):
        raise TypeError(
            f"{fn}: `labels` must be an integer array of class indices, got dtype {k.dtype} "
            "(for one-hot or probability labels use `softmax_cross_entropy`)."
        )
    if axis is None:
        raise TypeError(f"{fn}: `axis` must be an int or a tuple of ints, got None.")
    ax = axes(fn, axis, x.ndim, x.shape)
    w = _class_mask(fn, where, x, ax)
    batch = tuple(i for i in range(x.ndim) if i not in ax)
    expected = tuple(x.shape[i] for i in batch)
    if k.shape != expected:
        raise ValueError(
            f"{fn}: `labels` must have the shape of `logits` without the class axes {ax}, "
            f"got logits {x.shape} and labels {k.shape} (expected {expected})."
        )
    if len(ax) > 1 or ax[0] != x.ndim - 1:  # class axes last, flattened into one
        x = jnp.transpose(x, batch + ax).reshape(*expected, -1)
        w = None if w is None else jnp.transpose(w, batch + ax).reshape(*expected, -1)
    k = k.astype(jnp.int32)[..., None]
    # Both terms relative to the largest logit m: log(sum(exp(x - m))) - (x[k] - m). Unlike
    # `logsumexp(x) - x[k]` (Optax), this keeps full relative precision when the loss is
    # small (a confident, correct prediction), where m + log(...) would round to ulp(m).
    if w is None:
        shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
        total = jnp.sum(jnp.exp(shifted), axis=-1)
    else:
        neg_inf = jnp.full_like(x, -jnp.inf)
        m = jnp.max(jnp.where(w, x, neg_inf), axis=-1, keepdims=True)
        m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m)))
        shifted = x - m
        total = jnp.sum(jnp.exp(jnp.where(w, shifted, neg_inf)), axis=-1)
        total = jnp.where(total > 0, total, jnp.ones_like(total))
    label = jnp.take_along_axis(shifted, k, axis=-1, mode="fill", wrap_negative_indices=False)[..., 0]
    out = jnp.log(total) - label
    if w is not None:
        out = jnp.where(jnp.any(w, axis=-1), out, jnp.zeros_like(out))
    return out


def sigmoid_binary_cross_entropy(logits, labels) -> jax.Array:
    """Elementwise binary cross-entropy of ``sigmoid(logits)`` against ``labels``.

    With ``log sigmoid(x) = -softplus(-x)`` (stable for any finite ``x``)::

        loss = labels * softplus(-logits) + (1 - labels) * softplus(logits)
             = -labels * log(sigmoid(logits)) - (1 - labels) * log(1 - sigmoid(logits))

    Args:
        logits: Log-odds of class 1, any shape.
        labels: Targets in ``[0, 1]`` (0/1 or probabilities; integer or boolean labels
            are cast), the same shape as ``logits``.

    Returns:
        The elementwise losses, shaped like ``logits``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> losses = gradchain.losses.sigmoid_binary_cross_entropy(jnp.array([0.0, 100.0]), jnp.array([1, 0]))
        >>> [round(float(v), 4) for v in losses]
        [0.6931, 100.0]
    """
    x, y = pair("sigmoid_binary_cross_entropy", "logits", logits, "labels", labels)
    return y * jax.nn.softplus(-x) + (1 - y) * jax.nn.softplus(x)
