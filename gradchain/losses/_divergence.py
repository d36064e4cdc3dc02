"""Kullback-Leibler divergences between distributions given in log space, as in Optax.

Each sums over ``axis`` (an int, a tuple of ints, or ``None`` for all axes) among the
entries where ``where`` holds (a boolean mask broadcastable to the inputs' shape);
masked entries contribute exactly 0, to values and gradients, whatever they hold.
``0 * log 0`` is taken as 0 (a zero target costs nothing, even against a ``-inf``
log-prediction, where Optax returns ``nan``).
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp

from gradchain.losses._common import axes, floating, mask, masked_sum, pair

__all__ = [
    "convex_kl_divergence",
    "generalized_kl_divergence",
    "kl_divergence",
    "kl_divergence_with_log_targets",
]


def _kl_terms(fn: str, log_predictions: Any, targets: Any, axis: Any, where: Any):
    lp, t = pair(fn, "log_predictions", log_predictions, "targets", targets)
    red = axes(fn, axis, lp.ndim, lp.shape)
    w = mask(fn, where, lp.shape, "`log_predictions`")
    nonzero = t != 0  # 0 * log 0 = 0, also in gradients; a negative target gives nan
    safe_t = jnp.where(nonzero, t, jnp.ones_like(t))
    terms = jnp.where(nonzero, t * (jnp.log(safe_t) - lp), jnp.zeros_like(t))
    return lp, t, terms, red, w


def kl_divergence(log_predictions, targets, axis=-1, where=None) -> jax.Array:
    """Kullback-Leibler divergence ``KL(targets || exp(log_predictions))``.

    Over ``axis``, with ``0 * log 0 = 0``::

        loss = sum_i targets[i] * (log(targets[i]) - log_predictions[i])

    Args:
        log_predictions: Log-probabilities of the predicted distribution (e.g. a
            ``log_softmax``), any shape.
        targets: Probabilities of the target distribution, ``>= 0``, the same shape
            (integer or boolean one-hot targets are cast).
        axis: The axis or axes to sum over (``None``: all).
        where: Optional boolean mask, broadcastable to the inputs' shape: the entries
            to include in the sum.

    Returns:
        The divergences, of the inputs' shape without ``axis``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from gradchain import losses
        >>> log_p = jax.nn.log_softmax(jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))
        >>> targets = jnp.array([[0.1, 0.2, 0.7], [1.0, 0.0, 0.0]])
        >>> [round(float(v), 4) for v in losses.kl_divergence(log_p, targets)]
        [0.0058, 1.0986]

    References:
        Kullback & Leibler, "On Information and Sufficiency", Annals of Mathematical
        Statistics, 1951.
    """
    _, _, terms, red, w = _kl_terms("kl_divergence", log_predictions, targets, axis, where)
    return masked_sum(terms, red, w)


def kl_divergence_with_log_targets(log_predictions, log_targets, axis=-1, where=None) -> jax.Array:
    """Kullback-Leibler divergence with both distributions in log space.

    Over ``axis``, with ``exp(-inf) * (-inf - x) = 0``::

        loss = sum_i exp(log_targets[i]) * (log_targets[i] - log_predictions[i])

    Args:
        log_predictions: Log-probabilities of the predicted distribution, any shape.
        log_targets: Log-probabilities of the target distribution, the same shape
            (``-inf`` for a zero probability).
        axis: The axis or axes to sum over (``None``: all).
        where: Optional boolean mask, broadcastable to the inputs' shape: the entries
            to include in the sum.

    Returns:
        The divergences, of the inputs' shape without ``axis``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from gradchain import losses
        >>> log_p = jax.nn.log_softmax(jnp.array([1.0, 2.0, 3.0]))
        >>> log_t = jnp.log(jnp.array([0.1, 0.2, 0.7]))
        >>> round(float(losses.kl_divergence_with_log_targets(log_p, log_t)), 4)
        0.0058
    """
    fn = "kl_divergence_with_log_targets"
    lp = floating(fn, "log_predictions", log_predictions)
    lp, lt = pair(fn, "log_predictions", lp, "log_targets", floating(fn, "log_targets", log_targets))
    red = axes(fn, axis, lp.ndim, lp.shape)
    w = mask(fn, where, lp.shape, "`log_predictions`")
    zero = jnp.isneginf(lt)
    safe_lt = jnp.where(zero, jnp.zeros_like(lt), lt)
    terms = jnp.where(zero, jnp.zeros_like(lt), jnp.exp(safe_lt) * (safe_lt - lp))
    return masked_sum(terms, red, w)


def generalized_kl_divergence(log_predictions, targets, axis=-1, where=None) -> jax.Array:
    """Generalized KL divergence, for unnormalized non-negative measures.

    The Bregman divergence of ``f(x) = x log x - x``; over ``axis``, with
    ``0 * log 0 = 0``::

        loss = sum_i targets[i] * (log(targets[i]) - log_predictions[i])
                     + exp(log_predictions[i]) - targets[i]

    It equals `kl_divergence` when both sides sum to 1.

    Args:
        log_predictions: Logs of the predicted (unnormalized) measure, any shape.
        targets: The target measure, ``>= 0``, the same shape.
        axis: The axis or axes to sum over (``None``: all).
        where: Optional boolean mask, broadcastable to the inputs' shape: the entries
            to include in the sum.

    Returns:
        The divergences, of the inputs' shape without ``axis``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> log_p = jnp.log(jnp.array([1.0, 2.0, 3.0]))
        >>> round(float(losses.generalized_kl_divergence(log_p, jnp.array([2.0, 2.0, 1.0]))), 4)
        1.2877

    References:
        Boyd & Vandenberghe, "Convex Optimization", Cambridge University Press, 2004, p. 90.

        Bregman, "The relaxation method of finding the common point of convex sets and
        its application to the solution of problems in convex programming", USSR
        Computational Mathematics and Mathematical Physics, 1967.
    """
    lp, t, terms, red, w = _kl_terms("generalized_kl_divergence", log_predictions, targets, axis, where)
    return masked_sum(terms + (jnp.exp(lp) - t), red, w)


def convex_kl_divergence(log_predictions, targets, axis=-1, where=None) -> jax.Array:
    """Deprecated name of `generalized_kl_divergence` (kept because Optax 0.2.8 has it).

    Emits a `DeprecationWarning`, as Optax does, then computes, with ``0 * log 0 = 0``::

        loss = sum_i targets[i] * (log(targets[i]) - log_predictions[i])
                     + exp(log_predictions[i]) - targets[i]

    Args:
        log_predictions: Logs of the predicted (unnormalized) measure, any shape.
        targets: The target measure, ``>= 0``, the same shape.
        axis: The axis or axes to sum over (``None``: all).
        where: Optional boolean mask, broadcastable to the inputs' shape.

    Returns:
        ``generalized_kl_divergence(log_predictions, targets, axis, where)``.

    Examples:
        >>> import warnings, jax.numpy as jnp
        >>> from gradchain import losses
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     losses.convex_kl_divergence(jnp.zeros(2), jnp.ones(2))
        Array(0., dtype=float32)

    References:
        See `generalized_kl_divergence`.
    """
    warnings.warn(
        "convex_kl_divergence is deprecated; use generalized_kl_divergence.", DeprecationWarning, stacklevel=2
    )
    return generalized_kl_divergence(log_predictions, targets, axis, where)
