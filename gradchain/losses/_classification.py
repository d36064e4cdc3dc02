"""More classification losses, as in Optax: `safe_softmax_cross_entropy`,
`poly_loss_cross_entropy`, `sigmoid_focal_loss`, and the label transform `smooth_labels`.

Where Optax documents ``labels`` as broadcastable to the logits' shape, they are
broadcast here too (explicitly, NumPy rules, never enlarging the logits' shape) and
cast to the logits' dtype. ``where`` masks are boolean and broadcastable to the
logits' shape; masked entries take no part in the normalization nor in the sum.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gradchain._numerics import hp
from gradchain._validate import check_nonnegative, check_scalar
from gradchain.losses._common import axes, floating, labels_like, log_softmax, mask, masked_sum

__all__ = ["poly_loss_cross_entropy", "safe_softmax_cross_entropy", "sigmoid_focal_loss", "smooth_labels"]


def safe_softmax_cross_entropy(logits, labels) -> jax.Array:
    """Softmax cross-entropy that takes ``0 * log 0 = 0`` (``-inf`` logits allowed).

    Over the last axis::

        loss = -sum_{c: labels[c] != 0} labels[c] * log_softmax(logits)[c]

    A class ruled out with a ``-inf`` logit and a zero label costs nothing (value and
    gradient), where `softmax_cross_entropy` returns ``nan``.

    Args:
        logits: Unnormalized log-probabilities, shape ``[..., num_classes]``.
        labels: Target distributions, broadcastable to ``logits``'s shape (integer or
            boolean one-hot labels are cast).

    Returns:
        The per-example losses, of ``logits``'s shape without the last axis.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> logits = jnp.array([[1.2, -0.8, -jnp.inf], [0.9, -1.2, 1.1]])
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> [round(float(v), 4) for v in losses.safe_softmax_cross_entropy(logits, labels)]
        [0.1269, 2.9518]
    """
    fn = "safe_softmax_cross_entropy"
    x = floating(fn, "logits", logits)
    if x.ndim < 1:
        raise ValueError(
            f"{fn}: `logits` must have a class axis (at least one dimension), got shape {x.shape}."
        )
    y = labels_like(fn, "labels", labels, x, "logits")
    terms = y * log_softmax(x, (x.ndim - 1,))
    return -jnp.sum(jnp.where(y != 0, terms, jnp.zeros_like(terms)), axis=-1)


def poly_loss_cross_entropy(logits, labels, *, epsilon=2.0, axis=-1, where=None) -> jax.Array:
    """Poly-1 loss: cross-entropy plus ``epsilon`` times the first polynomial term.

    With ``log p = log_softmax(logits)`` and sums over ``axis`` (among the entries
    where ``where`` holds, which alone enter the softmax)::

        ce   = -sum_c labels[c] * log p[c]
        loss = ce + epsilon * sum_c labels[c] * (1 - p[c])

    Args:
        logits: Unnormalized log-probabilities, shape ``[..., num_classes]``.
        labels: Target distributions, broadcastable to ``logits``'s shape.
        epsilon: Coefficient of the term ``(1 - p_t)``: 2.0 recommended for ImageNet
            classification, -1.0 for detection.
        axis: The class axis or axes (``None``: all).
        where: Optional boolean mask, broadcastable to ``logits``'s shape.

    Returns:
        The per-example losses, of ``logits``'s shape without ``axis``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> [round(float(v), 4) for v in losses.poly_loss_cross_entropy(logits, labels, epsilon=2.0)]
        [0.7587, 4.8473]

    References:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR, 2022.
    """
    fn = "poly_loss_cross_entropy"
    check_scalar(fn, "epsilon", epsilon)
    x = floating(fn, "logits", logits)
    y = labels_like(fn, "labels", labels, x, "logits")
    red = axes(fn, axis, x.ndim, x.shape)
    w = mask(fn, where, x.shape, "`logits`")
    log_p = log_softmax(x, red, w)
    ce = -masked_sum(y * log_p, red, w)
    return ce + hp(epsilon, x.dtype) * masked_sum(y * (1 - jnp.exp(log_p)), red, w)


def sigmoid_focal_loss(logits, labels, *, alpha=None, gamma=2.0) -> jax.Array:
    """Sigmoid focal loss: binary cross-entropy down-weighted on easy examples.

    With ``p = sigmoid(logits)`` and labels ``y`` in ``[0, 1]`` (0/1 or soft)::

        ce       = y * softplus(-logits) + (1 - y) * softplus(logits)
        1 - p_t  = (1 - y) * p + y * (1 - p)          (computed in log space)
        loss     = ce * (1 - p_t)**gamma
        loss     = (alpha * y + (1 - alpha) * (1 - y)) * loss     (if alpha is given)

    Args:
        logits: Log-odds of class 1, any shape.
        labels: Targets in ``[0, 1]``, broadcastable to ``logits``'s shape.
        alpha: Optional weight of the positive class, in ``[0, 1]``.
        gamma: Focusing exponent, ``>= 0`` (0 gives the cross-entropy).

    Returns:
        The elementwise losses, shaped like ``logits``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> logits = jnp.array([3.0, 0.0, -2.0])
        >>> [round(float(v), 4) for v in losses.sigmoid_focal_loss(logits, jnp.array([1, 1, 1]), gamma=2.0)]
        [0.0001, 0.1733, 1.6501]

    References:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV, 2017.
    """
    fn = "sigmoid_focal_loss"
    if alpha is not None:
        check_scalar(fn, "alpha", alpha, lo=0.0, hi=1.0)
    check_nonnegative(fn, "gamma", gamma)
    x = floating(fn, "logits", logits)
    y = labels_like(fn, "labels", labels, x, "logits")
    ce = y * jax.nn.softplus(-x) + (1 - y) * jax.nn.softplus(x)
    # log(1 - p_t) = log((1 - y) * sigmoid(x) + y * sigmoid(-x)); log 0 = -inf drops a term.
    log_one_minus_pt = jnp.logaddexp(
        jnp.log1p(-y) + jax.nn.log_sigmoid(x), jnp.log(y) + jax.nn.log_sigmoid(-x)
    )
    loss = ce * jnp.exp(hp(gamma, x.dtype) * log_one_minus_pt)
    if alpha is None:
        return loss
    a = hp(alpha, x.dtype)
    return (a * y + (1 - a) * (1 - y)) * loss


def smooth_labels(labels, alpha, *, axis=-1, where=None) -> jax.Array:
    """Label smoothing: mix the labels with the uniform distribution over the classes.

    With ``n`` the number of classes along ``axis`` (the number of entries where
    ``where`` holds, per slice, if given)::

        smoothed = (1 - alpha) * labels + alpha / n

    As in Optax, masked entries are transformed too. A slice with no entry where
    ``where`` holds takes ``n = 1`` (Optax divides by zero there).

    Args:
        labels: One-hot labels or distributions, a floating-point array.
        alpha: The smoothing factor, in ``[0, 1]``.
        axis: The class axis or axes (``None``: all).
        where: Optional boolean mask, broadcastable to ``labels``'s shape: the classes
            that count in ``n``.

    Returns:
        The smoothed labels, shaped like ``labels``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> losses.smooth_labels(jnp.array([0.0, 1.0, 0.0, 0.0]), 0.2)
        Array([0.05, 0.85, 0.05, 0.05], dtype=float32)

    References:
        Müller, Kornblith & Hinton, "When Does Label Smoothing Help?", NeurIPS, 2019.
    """
    fn = "smooth_labels"
    check_scalar(fn, "alpha", alpha, lo=0.0, hi=1.0)
    y = floating(fn, "labels", labels)
    red = axes(fn, axis, y.ndim, y.shape)
    w = mask(fn, where, y.shape, "`labels`")
    if w is None:
        n = math.prod(y.shape[a] for a in red)
    else:
        n = jnp.maximum(jnp.sum(w, axis=red, keepdims=True), 1).astype(y.dtype)
    a = hp(alpha, y.dtype)
    return (1 - a) * y + a / n
