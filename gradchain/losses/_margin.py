"""Margin losses, as in Optax: hinge and perceptron, binary and multiclass.

Binary losses take scores and targets in ``{-1, 1}`` of the same shape (never
broadcast). Multiclass losses take scores ``[..., num_classes]`` and integer labels
``[...]``; a label outside ``[0, num_classes)`` gives ``nan`` (Optax returns a
meaningless finite number there).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradchain.losses._common import floating, integer_labels, pair, take_label

__all__ = ["hinge_loss", "multiclass_hinge_loss", "multiclass_perceptron_loss", "perceptron_loss"]


def hinge_loss(predictor_outputs, targets) -> jax.Array:
    """Binary hinge loss: ``loss = max(0, 1 - predictor_outputs * targets)``.

    Args:
        predictor_outputs: Scores of the decision function, any shape.
        targets: Targets in ``{-1, 1}``, the same shape (integers are cast).

    Returns:
        The elementwise losses, shaped like ``predictor_outputs``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> losses.hinge_loss(jnp.array([2.0, 0.5, -1.0]), jnp.array([1, 1, 1]))
        Array([0. , 0.5, 2. ], dtype=float32)

    References:
        "Hinge loss", Wikipedia, https://en.wikipedia.org/wiki/Hinge_loss.
    """
    s, y = pair("hinge_loss", "predictor_outputs", predictor_outputs, "targets", targets)
    return jnp.maximum(1 - s * y, 0)


def perceptron_loss(predictor_outputs, targets) -> jax.Array:
    """Binary perceptron loss: ``loss = max(0, -predictor_outputs * targets)``.

    Args:
        predictor_outputs: Scores of the model, any shape.
        targets: Targets in ``{-1, 1}``, the same shape (integers are cast).

    Returns:
        The elementwise losses, shaped like ``predictor_outputs``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> losses.perceptron_loss(jnp.array([2.0, 0.5, -1.0]), jnp.array([1, -1, 1]))
        Array([0. , 0.5, 1. ], dtype=float32)

    References:
        "Perceptron", Wikipedia, https://en.wikipedia.org/wiki/Perceptron.
    """
    s, y = pair("perceptron_loss", "predictor_outputs", predictor_outputs, "targets", targets)
    return jnp.maximum(-(s * y), 0)


def _scores_and_labels(fn: str, scores, labels):
    s = floating(fn, "scores", scores)
    if s.ndim < 1:
        raise ValueError(
            f"{fn}: `scores` must have a class axis (at least one dimension), got shape {s.shape}."
        )
    return s, integer_labels(fn, labels, s.shape[:-1], "`scores`")


def multiclass_hinge_loss(scores, labels) -> jax.Array:
    """Multiclass hinge loss (Crammer-Singer): the largest margin violation.

    For the label ``y`` of each example, over the classes ``k``::

        loss = max_k (scores[k] + [k != y]) - scores[y]

    Args:
        scores: Scores, shape ``[..., num_classes]``.
        labels: Integer class indices, shape ``[...]``.

    Returns:
        The per-example losses, shaped like ``labels``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> scores = jnp.array([[3.0, 2.5, 0.0], [0.0, 1.0, 0.0]])
        >>> losses.multiclass_hinge_loss(scores, jnp.array([0, 2]))
        Array([0.5, 2. ], dtype=float32)

    References:
        Crammer & Singer, "On the Algorithmic Implementation of Multiclass Kernel-based
        Vector Machines", JMLR, 2001.
    """
    s, k = _scores_and_labels("multiclass_hinge_loss", scores, labels)
    others = 1 - jax.nn.one_hot(k, s.shape[-1], dtype=s.dtype)
    return jnp.max(s + others, axis=-1) - take_label(s, k)


def multiclass_perceptron_loss(scores, labels) -> jax.Array:
    """Multiclass perceptron loss: how far the label's score is below the best score.

    For the label ``y`` of each example::

        loss = max_k scores[k] - scores[y]

    Args:
        scores: Scores, shape ``[..., num_classes]``.
        labels: Integer class indices, shape ``[...]``.

    Returns:
        The per-example losses, shaped like ``labels``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> scores = jnp.array([[3.0, 2.5, 0.0], [0.0, 1.0, 0.0]])
        >>> losses.multiclass_perceptron_loss(scores, jnp.array([0, 2]))
        Array([0., 1.], dtype=float32)

    References:
        Collins, "Discriminative Training Methods for Hidden Markov Models: Theory and
        Experiments with Perceptron Algorithms", EMNLP, 2002.
    """
    s, k = _scores_and_labels("multiclass_perceptron_loss", scores, labels)
    return jnp.max(s, axis=-1) - take_label(s, k)
