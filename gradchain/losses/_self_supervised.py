"""Self-supervised (metric-learning) losses, as in Optax: `ntxent`, `triplet_margin_loss`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradchain._numerics import hp
from gradchain._validate import check_nonnegative, check_positive, check_scalar
from gradchain.losses._common import axes, floating, logsumexp, promote_float, same_shape

__all__ = ["ntxent", "triplet_margin_loss"]


def ntxent(embeddings, labels, temperature=0.07) -> jax.Array:
    """Normalized temperature-scaled cross-entropy (NT-Xent, the SimCLR loss).

    With cosine similarities (squared norms at least ``eps = finfo(dtype).eps``), the
    positive pairs ``P`` (two different examples with equal labels) and the negatives
    ``N_i`` of example ``i`` (the examples with another label)::

        s[i, j] = cos(embeddings[i], embeddings[j]) / temperature
        loss    = -1/|P| * sum_{(i, j) in P} (s[i, j] - log(exp(s[i, j]) + sum_{k in N_i} exp(s[i, k])))

    A batch without positive pairs has loss 0 (Optax returns ``nan``).

    Args:
        embeddings: The embeddings, shape ``[batch, dim]``.
        labels: Group labels, shape ``[batch]``: examples with equal labels form
            positive pairs (e.g. ``[0, 0, 1, 1]`` for two augmented views of two images).
        temperature: The temperature, ``> 0``.

    Returns:
        The loss averaged over the positive pairs, a scalar.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> embeddings = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
        >>> round(float(losses.ntxent(embeddings, jnp.array([0, 0, 1, 1]), temperature=0.5)), 4)
        0.4302

    References:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML, 2020.
    """
    fn = "ntxent"
    check_positive(fn, "temperature", temperature)
    e = floating(fn, "embeddings", embeddings)
    y = jnp.asarray(labels)
    if e.ndim != 2:
        raise ValueError(f"{fn}: `embeddings` must have shape [batch, dim], got {e.shape}.")
    if y.shape != e.shape[:1]:
        raise ValueError(
            f"{fn}: `labels` must have shape [batch] = {e.shape[:1]} (one per embedding), got {y.shape}."
        )
    norm2 = jnp.maximum(jnp.sum(e * e, axis=-1, keepdims=True), jnp.finfo(e.dtype).eps)
    u = e / jnp.sqrt(norm2)
    s = jnp.sum(u[:, None, :] * u[None, :, :], axis=-1) / hp(temperature, e.dtype)
    same = y[:, None] == y[None, :]
    positive = same & ~jnp.eye(e.shape[0], dtype=bool)
    negatives = logsumexp(s, 1, ~same)  # -inf for an example without negatives
    log_prob = s - jnp.logaddexp(s, negatives[:, None])
    count = jnp.maximum(jnp.sum(positive), 1).astype(e.dtype)
    return -jnp.sum(jnp.where(positive, log_prob, jnp.zeros_like(log_prob))) / count


def triplet_margin_loss(
    anchors, positives, negatives, axis=-1, norm_degree=2, margin=1.0, eps=1e-6
) -> jax.Array:
    """Triplet margin loss: the positive must be closer to the anchor, by ``margin``.

    With ``q = norm_degree`` and sums over ``axis``::

        d(a, b) = (sum_i |a[i] - b[i]|**q + eps)**(1 / q)
        loss    = max(d(anchors, positives) - d(anchors, negatives) + margin, 0)

    Optax omits the absolute value, which changes nothing for even ``q`` but makes
    odd ``q`` (e.g. 1) give signed sums instead of distances, and ``nan``.

    Args:
        anchors: Anchor embeddings, shape ``[batch, dim]`` (any shape).
        positives: Embeddings similar to the anchors, the same shape.
        negatives: Embeddings dissimilar to the anchors, the same shape.
        axis: The axis holding the embedding vectors.
        norm_degree: The degree ``q > 0`` of the distance (2: Euclidean).
        margin: The required margin.
        eps: Added inside the root for a finite gradient at distance 0, ``>= 0``.

    Returns:
        The per-triplet losses, of the inputs' shape without ``axis``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> anchors = jnp.array([[0.0, 0.0], [1.0, 1.0]])
        >>> positives = jnp.array([[0.1, 0.1], [1.1, 1.1]])
        >>> negatives = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> loss = losses.triplet_margin_loss(anchors, positives, negatives, margin=1.0)
        >>> [round(float(v), 4) for v in loss]
        [0.1414, 0.1414]

    References:
        Balntas et al., "Learning local feature descriptors with triplets and shallow
        convolutional neural networks", BMVC, 2016.
    """
    fn = "triplet_margin_loss"
    check_positive(fn, "norm_degree", norm_degree)
    check_scalar(fn, "margin", margin)
    check_nonnegative(fn, "eps", eps)
    a = floating(fn, "anchors", anchors)
    p = floating(fn, "positives", positives)
    n = floating(fn, "negatives", negatives)
    same_shape(fn, "anchors", a, "positives", p)
    same_shape(fn, "anchors", a, "negatives", n)
    if isinstance(axis, (tuple, list)) or axis is None:
        raise TypeError(f"{fn}: `axis` must be an int, got {axis!r}.")
    (ax,) = axes(fn, axis, a.ndim, a.shape)
    dtype = promote_float(fn, "negatives", n, promote_float(fn, "positives", p, a.dtype))
    a, p, n = a.astype(dtype), p.astype(dtype), n.astype(dtype)
    q = norm_degree if isinstance(norm_degree, int) else hp(norm_degree, dtype)

    def distance(b):
        return jnp.power(jnp.sum(jnp.power(jnp.abs(a - b), q), axis=ax) + hp(eps, dtype), 1 / q)

    return jnp.maximum(distance(p) - distance(n) + hp(margin, dtype), 0)
