"""More regression losses, as in Optax: `log_cosh`, `cosine_similarity`, `cosine_distance`.

Shapes are never broadcast (a mismatch raises a ``ValueError``); integer or boolean
targets are cast to the predictions' dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._numerics import hp
from gradchain._validate import check_nonnegative
from gradchain.losses._common import axes, floating, mask, masked_sum, pair

__all__ = ["cosine_distance", "cosine_similarity", "log_cosh"]

_LOG2 = float(np.log(2.0))


def log_cosh(predictions, targets=None) -> jax.Array:
    """Elementwise log-cosh loss: ``loss = log(cosh(predictions - targets))``.

    About ``e**2 / 2`` for a small error ``e`` and ``|e| - log(2)`` for a large one: a
    twice-differentiable alternative to the Huber loss, with gradient ``tanh(e)``.
    Computed without overflow or cancellation::

        loss = log1p(2 * sinh(e / 2)**2)                 if |e| <= 1
             = |e| + log1p(exp(-2 |e|)) - log(2)          otherwise

    (Optax evaluates ``logaddexp(e, -e) - log(2)``, which loses the small losses of
    small errors to cancellation: the two agree to ``1e-7`` absolutely.)

    Args:
        predictions: A floating-point array of any shape.
        targets: An array of the same shape, or ``None`` for zeros.

    Returns:
        The elementwise losses, shaped like ``predictions``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> [float(f"{v:.4g}") for v in losses.log_cosh(jnp.array([0.001, 1.0, 100.0]))]
        [5e-07, 0.4338, 99.31]

    References:
        Chen et al., "Log Hyperbolic Cosine Loss Improves Variational Auto-Encoder",
        2019, https://openreview.net/pdf?id=rkglvsC9Ym.
    """
    fn = "log_cosh"
    if targets is None:
        e = floating(fn, "predictions", predictions)
    else:
        p, t = pair(fn, "predictions", predictions, "targets", targets)
        e = p - t
    a = jnp.abs(e)
    small = a <= 1
    h = jnp.sinh(0.5 * jnp.where(small, e, jnp.zeros_like(e)))  # no overflow in the unused branch
    return jnp.where(small, jnp.log1p(2 * (h * h)), a + jnp.log1p(jnp.exp(-2 * a)) - _LOG2)


def _cosine(fn: str, predictions: Any, targets: Any, epsilon: Any, axis: Any, where: Any) -> jax.Array:
    check_nonnegative(fn, "epsilon", epsilon)
    a, b = pair(fn, "predictions", predictions, "targets", targets)
    red = axes(fn, axis, a.ndim, a.shape)
    w = mask(fn, where, a.shape, "`predictions`")
    eps = hp(epsilon, a.dtype)

    def unit(x):
        n2 = jnp.maximum(masked_sum(x * x, red, w, keepdims=True), eps)
        n2 = jnp.where(n2 > 0, n2, jnp.ones_like(n2))  # a zero vector stays zero, not nan
        return x / jnp.sqrt(n2)

    return masked_sum(unit(a) * unit(b), red, w)


def cosine_similarity(predictions, targets, *, epsilon=0.0, axis=-1, where=None) -> jax.Array:
    """Cosine similarity of ``predictions`` and ``targets`` along ``axis``.

    With sums over ``axis`` (among the entries where ``where`` holds)::

        |x|  = sqrt(max(sum_i x[i]**2, epsilon))      (1 if that is 0)
        loss = sum_i (predictions[i] / |predictions|) * (targets[i] / |targets|)

    A zero vector (with ``epsilon = 0``) has similarity 0 with anything and a finite
    gradient, where Optax returns ``nan``.

    Args:
        predictions: The predicted vectors, shape ``[..., dim]``.
        targets: The target vectors, the same shape.
        epsilon: Lower bound on the squared norms, ``>= 0``.
        axis: The axis or axes holding the vectors (``None``: all).
        where: Optional boolean mask, broadcastable to the inputs' shape: the entries
            to include.

    Returns:
        The similarities in ``[-1, 1]``, of the inputs' shape without ``axis``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> x = jnp.array([[1.0, 0.0], [3.0, 4.0]])
        >>> [round(float(v), 4) for v in losses.cosine_similarity(x, jnp.array([[1.0, 1.0], [3.0, 4.0]]))]
        [0.7071, 1.0]

    References:
        "Cosine similarity", Wikipedia, https://en.wikipedia.org/wiki/Cosine_similarity.
    """
    return _cosine("cosine_similarity", predictions, targets, epsilon, axis, where)


def cosine_distance(predictions, targets, *, epsilon=0.0, axis=-1, where=None) -> jax.Array:
    """Cosine distance: ``loss = 1 - cosine_similarity(predictions, targets)``.

    See `cosine_similarity` for ``|x|``, ``epsilon``, ``axis`` and ``where``::

        loss = 1 - sum_i (predictions[i] / |predictions|) * (targets[i] / |targets|)

    Args:
        predictions: The predicted vectors, shape ``[..., dim]``.
        targets: The target vectors, the same shape.
        epsilon: Lower bound on the squared norms, ``>= 0``.
        axis: The axis or axes holding the vectors (``None``: all).
        where: Optional boolean mask, broadcastable to the inputs' shape.

    Returns:
        The distances in ``[0, 2]``, of the inputs' shape without ``axis``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> losses.cosine_distance(jnp.array([1.0, 0.0]), jnp.array([-1.0, 0.0]))
        Array(2., dtype=float32)

    References:
        "Cosine distance", Wikipedia,
        https://en.wikipedia.org/wiki/Cosine_similarity#Cosine_distance.
    """
    return 1 - _cosine("cosine_distance", predictions, targets, epsilon, axis, where)
