"""Fenchel-Young losses, as in Optax: the sparsemax losses and `make_fenchel_young_loss`.

A Fenchel-Young loss of a regularized max ``Omega*`` is ``Omega*(scores) - <targets,
scores>``: the log-sum-exp gives the softmax cross-entropy, the Gini-regularized max
(whose argmax is sparsemax) gives the sparsemax loss.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from gradchain.losses._common import floating, integer_labels, pair, take_label

__all__ = ["make_fenchel_young_loss", "multiclass_sparsemax_loss", "sparsemax_loss"]


def sparsemax_loss(logits, labels) -> jax.Array:
    """Binary sparsemax loss: zero exactly when ``sparse_sigmoid(logits) == labels``.

    With ``z = -logits`` where the label is 1 and ``z = logits`` where it is 0::

        loss = 0                 if z <= -1
             = (z + 1)**2 / 4    if -1 < z < 1
             = z                 if z >= 1

    i.e. ``jax.nn.sparse_plus(z)``.

    Args:
        logits: Scores of class 1, any shape.
        labels: Labels in ``{0, 1}`` (any nonzero value counts as 1), the same shape.

    Returns:
        The elementwise losses, shaped like ``logits``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> losses.sparsemax_loss(jnp.array([2.0, 0.0, -3.0]), jnp.array([1, 1, 1]))
        Array([0.  , 0.25, 3.  ], dtype=float32)

    References:
        Blondel, Martins & Niculae, "Learning with Fenchel-Young Losses", JMLR, 2020,
        Sec. 4.4.
    """
    x, y = pair("sparsemax_loss", "logits", logits, "labels", labels)
    return jax.nn.sparse_plus(jnp.where(y != 0, -x, x))


def _sparsemax(s: jax.Array) -> jax.Array:
    """Euclidean projection of each row (last axis) of ``s`` onto the probability simplex."""
    z = jnp.flip(jnp.sort(s, axis=-1), axis=-1)  # descending
    cumulative = jnp.cumsum(z, axis=-1)
    j = jnp.arange(1, s.shape[-1] + 1, dtype=s.dtype).reshape((1,) * (s.ndim - 1) + (-1,))
    size = jnp.sum(1 + j * z > cumulative, axis=-1, keepdims=True)  # the support's size, >= 1
    tau = (jnp.take_along_axis(cumulative, size - 1, axis=-1) - 1) / size.astype(s.dtype)
    return jnp.maximum(s - tau, 0)


def multiclass_sparsemax_loss(scores, labels) -> jax.Array:
    """Multiclass sparsemax loss: the Fenchel-Young loss of the Gini-regularized max.

    With ``p = sparsemax(scores)`` (the projection of ``scores`` onto the simplex) and
    the label ``y`` of each example; its gradient is ``p - onehot(y)``::

        loss = sum_{k: p[k] > 0} p[k] * (scores[k] - scores[y]) + (1 - sum_k p[k]**2) / 2

    Args:
        scores: Scores, shape ``[..., num_classes]`` (any number of leading axes;
            Optax takes exactly one).
        labels: Integer class indices, shape ``[...]``. A label outside
            ``[0, num_classes)`` gives ``nan``.

    Returns:
        The per-example losses, shaped like ``labels``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> scores = jnp.array([[2.0, 1.5, -1.0], [0.0, 0.0, 0.0]])
        >>> [round(float(v), 4) for v in losses.multiclass_sparsemax_loss(scores, jnp.array([1, 2]))]
        [0.5625, 0.3333]

    References:
        Martins & Astudillo, "From Softmax to Sparsemax: A Sparse Model of Attention and
        Multi-Label Classification", ICML, 2016.
    """
    fn = "multiclass_sparsemax_loss"
    s = floating(fn, "scores", scores)
    if s.ndim < 1:
        raise ValueError(
            f"{fn}: `scores` must have a class axis (at least one dimension), got shape {s.shape}."
        )
    k = integer_labels(fn, labels, s.shape[:-1], "`scores`")
    p = _sparsemax(s)
    gap = s - take_label(s, k)[..., None]
    gap = jnp.where(p > 0, gap, jnp.zeros_like(gap))  # -inf scores outside the support cost 0
    return jnp.sum(p * gap, axis=-1) + 0.5 * (1 - jnp.sum(p * p, axis=-1))


def make_fenchel_young_loss(max_fun: Callable) -> Callable[..., jax.Array]:
    """Build the Fenchel-Young loss of a (regularized) max function.

    For ``max_fun`` mapping a score vector to a scalar (e.g. ``logsumexp``), the
    returned ``loss(scores, targets, *args, **kwargs)`` computes, over the last axis::

        loss = max_fun(scores, *args, **kwargs) - sum_k targets[k] * scores[k]

    ``max_fun`` is applied to each vector ``scores[i, ..., :]`` (extra arguments are
    passed unchanged, not mapped); ``targets`` must have the shape of ``scores``.

    Args:
        max_fun: A function from a 1-D score vector to a scalar.

    Returns:
        The loss function ``loss(scores, targets, *args, **kwargs)``, returning one
        value per vector (``scores``'s shape without the last axis).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jax.scipy.special import logsumexp
        >>> from gradchain import losses
        >>> fy_loss = losses.make_fenchel_young_loss(logsumexp)  # softmax cross-entropy
        >>> scores = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> [round(float(v), 4) for v in fy_loss(scores, jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))]
        [0.2761, 2.9518]

    References:
        Blondel, Martins & Niculae, "Learning with Fenchel-Young Losses", JMLR, 2020.
    """
    if not callable(max_fun):
        raise TypeError(f"make_fenchel_young_loss: `max_fun` must be callable, got {max_fun!r}.")

    def fenchel_young_loss(scores, targets, *args, **kwargs) -> jax.Array:
        s, t = pair("fenchel_young_loss", "scores", scores, "targets", targets)
        if s.ndim < 1:
            raise ValueError(
                f"fenchel_young_loss: `scores` must have at least one dimension, got shape {s.shape}."
            )
        row_max = jnp.vectorize(lambda row: max_fun(row, *args, **kwargs), signature="(n)->()")
        return row_max(s) - jnp.sum(t * s, axis=-1)

    return fenchel_young_loss
