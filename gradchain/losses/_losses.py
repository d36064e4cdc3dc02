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

__all__ = [
    "huber_loss",
    "l2_loss",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "squared_error",
]


# ----------------------------------------------------------------------------- helpers
def _floating(fn: str, name: str, x: Any) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: `{name}` must be a floating-point array, got dtype {x.dtype}.")
    return x


def _same_shape(fn: str, a_name: str, a: jax.Array, b_name: str, b: jax.Array) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{fn}: `{a_name}` and `{b_name}` must have the same shape, got {a.shape} and {b.shape} "
            "(losses never broadcast)."
        )


def _pair(fn: str, a_name: str, a: Any, b_name: str, b: Any) -> tuple[jax.Array, jax.Array]:
    """``a`` (floating) and ``b`` (any real or bool dtype) of equal shapes, in one float dtype."""
    a = _floating(fn, a_name, a)
    b = jnp.asarray(b)
    _same_shape(fn, a_name, a, b_name, b)
    if jnp.issubdtype(b.dtype, jnp.floating):
        with jax.numpy_dtype_promotion("standard"):
            dtype = jnp.promote_types(a.dtype, b.dtype)
    elif jnp.issubdtype(b.dtype, jnp.integer) or b.dtype == jnp.bool_:
        dtype = a.dtype
    else:
        raise TypeError(f"{fn}: `{b_name}` must be a real or boolean array, got dtype {b.dtype}.")
    return a.astype(dtype), b.astype(dtype)


def _errors(fn: str, predictions: Any, targets: Any) -> jax.Array:
    if targets is None:
        return _floating(fn, "predictions", predictions)
    p, t = _pair(fn, "predictions", predictions, "targets", targets)
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
def _class_axis(fn: str, logits: jax.Array, axis: Any) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"{fn}: `axis` must be an int, got {axis!r}.")
    if not -logits.ndim <= axis < logits.ndim:
        raise ValueError(
            f"{fn}: `axis` must be in [{-logits.ndim}, {logits.ndim}) for logits of shape "
            f"{logits.shape}, got {axis}."
        )
    return axis % logits.ndim


def softmax_cross_entropy(logits, labels, axis=-1) -> jax.Array:
    """Cross-entropy between ``softmax(logits)`` and target distributions ``labels``.

    Along the class axis (computed with a stable log-softmax)::

        loss = -sum_c labels[c] * log_softmax(logits)[c]

    Args:
        logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
        labels: Target distributions (e.g. one-hot), the same shape as ``logits``;
            integer or boolean one-hot labels are cast to the logits' dtype.
        axis: The class axis.

    Returns:
        The per-example losses, of ``logits``'s shape without the class axis.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> [round(float(v), 4) for v in gradchain.losses.softmax_cross_entropy(logits, labels)]
        [0.2761, 2.9518]
    """
    fn = "softmax_cross_entropy"
    x, y = _pair(fn, "logits", logits, "labels", labels)
    axis = _class_axis(fn, x, axis)
    return -jnp.sum(y * jax.nn.log_softmax(x, axis=axis), axis=axis)


def softmax_cross_entropy_with_integer_labels(logits, labels, axis=-1) -> jax.Array:
    """Cross-entropy of ``softmax(logits)`` against integer class labels.

    For the label ``k`` of each example, with ``m = max(logits)`` over the class axis::

        loss = log(sum(exp(logits - m))) - (logits[k] - m)      (= logsumexp(logits) - logits[k])

    Args:
        logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
        labels: Integer class indices in ``[0, num_classes)``, shape ``[...]`` (the
            shape of ``logits`` without the class axis). A label out of that range
            (negative ones included) gives ``nan``.
        axis: The class axis of ``logits``.

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
    x = _floating(fn, "logits", logits)
    k = jnp.asarray(labels)
    if not jnp.issubdtype(k.dtype, jnp.integer):
        raise TypeError(
            f"{fn}: `labels` must be an integer array of class indices, got dtype {k.dtype} "
            "(for one-hot or probability labels use `softmax_cross_entropy`)."
        )
    axis = _class_axis(fn, x, axis)
    expected = x.shape[:axis] + x.shape[axis + 1 :]
    if k.shape != expected:
        raise ValueError(
            f"{fn}: `labels` must have the shape of `logits` without the class axis {axis}, "
            f"got logits {x.shape} and labels {k.shape} (expected {expected})."
        )
    k = jnp.expand_dims(k.astype(jnp.int32), axis)
    # Both terms relative to the largest logit m: log(sum(exp(x - m))) - (x[k] - m). Unlike
    # `logsumexp(x) - x[k]` (Optax), this keeps full relative precision when the loss is
    # small (a confident, correct prediction), where m + log(...) would round to ulp(m).
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    label = jnp.take_along_axis(shifted, k, axis=axis, mode="fill", wrap_negative_indices=False)
    return jnp.log(jnp.sum(jnp.exp(shifted), axis=axis)) - jnp.squeeze(label, axis)


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
    x, y = _pair("sigmoid_binary_cross_entropy", "logits", logits, "labels", labels)
    return y * jax.nn.softplus(-x) + (1 - y) * jax.nn.softplus(x)
