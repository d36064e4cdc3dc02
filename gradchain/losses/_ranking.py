"""Ranking losses, as in Optax: `ranking_softmax_loss`.

A ranking loss compares the ranking induced by item scores with the one induced by
relevance labels, over the last axis (a list of items); leading axes are batch axes.
Unlike the other losses, it reduces over the lists by default (``reduce_fn=jnp.mean``),
as Optax does.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from gradchain.losses._common import broadcast, cast_real, floating, log_softmax, mask, masked_sum, same_shape

__all__ = ["ranking_softmax_loss"]


def ranking_softmax_loss(
    logits, labels, *, where=None, weights=None, reduce_fn: Callable | None = jnp.mean
) -> jax.Array:
    """Ranking softmax loss: the cross-entropy of the softmax over a list of items.

    Per list (the last axis), over the valid items ``i`` (where ``where`` holds, which
    alone enter the softmax)::

        loss = -sum_i weights[i] * labels[i] * log_softmax(logits)[i]

    then ``reduce_fn`` over the lists that have a valid item (a list with none has
    loss 0; a mean over no list is 0, not ``nan``).

    Args:
        logits: Item scores, shape ``[..., list_size]``.
        labels: Relevance labels, the same shape (cast to ``logits``'s dtype).
        where: Optional boolean mask of the valid items, broadcastable to ``logits``'s
            shape.
        weights: Optional per-item weights, broadcastable to ``logits``'s shape.
        reduce_fn: ``jnp.mean`` (default), ``jnp.sum`` or another reduction taking
            a ``where=`` keyword, or ``None`` for the per-list losses.

    Returns:
        The reduced loss, or with ``reduce_fn=None`` the per-list losses (shape
        ``[...]``, 0 for a list without valid items).

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> loss = losses.ranking_softmax_loss(jnp.array([2.0, 1.0, 3.0]), jnp.array([1.0, 0.0, 0.0]))
        >>> round(float(loss), 4)
        1.4076
        >>> scores = jnp.array([[2.0, 1.0, 0.0], [1.0, 0.5, 1.5]])
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> where = jnp.array([[True, True, False], [True, True, True]])
        >>> per_list = losses.ranking_softmax_loss(scores, labels, where=where, reduce_fn=None)
        >>> [round(float(v), 4) for v in per_list]
        [0.3133, 0.6803]
        >>> round(float(losses.ranking_softmax_loss(scores, labels, where=where)), 4)  # their mean
        0.4968

    References:
        Bruch et al., "An Analysis of the Softmax Cross Entropy Loss for
        Learning-to-Rank with Binary Relevance", ICTIR, 2019.
    """
    fn = "ranking_softmax_loss"
    if reduce_fn is not None and not callable(reduce_fn):
        raise TypeError(f"{fn}: `reduce_fn` must be a callable or None, got {reduce_fn!r}.")
    x = floating(fn, "logits", logits)
    if x.ndim < 1:
        raise ValueError(
            f"{fn}: `logits` must have a list axis (at least one dimension), got shape {x.shape}."
        )
    y = jnp.asarray(labels)
    same_shape(fn, "logits", x, "labels", y)
    y = cast_real(fn, "labels", y, x.dtype)
    if weights is not None:
        y = y * broadcast(fn, "weights", cast_real(fn, "weights", weights, x.dtype), x.shape, "`logits`")
    w = mask(fn, where, x.shape, "`logits`")
    last = (x.ndim - 1,)
    loss = -masked_sum(y * log_softmax(x, last, w), last, w)
    valid = None if w is None else jnp.any(w, axis=-1)
    if reduce_fn is None:
        return loss
    if reduce_fn is jnp.mean:
        if valid is None:
            return jnp.mean(loss)
        count = jnp.sum(valid).astype(x.dtype)
        return jnp.sum(loss) / jnp.maximum(count, 1)
    return reduce_fn(loss, where=valid)
