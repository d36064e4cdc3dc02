"""Classic optimizers: SGD (with momentum), Adagrad, RMSprop and Lion, each a short `chain`.

See `gradchain._optimizers` for the conventions every optimizer follows.
"""

from __future__ import annotations

from typing import Any

from gradchain._base import GradientTransformation, ScalarOrSchedule, identity
from gradchain._chain import chain
from gradchain._optimizers.common import Mask, as_mask, learning_rate_step, named_errors
from gradchain._transforms.momentum import trace
from gradchain._transforms.regularization import add_decayed_weights
from gradchain._transforms.rms import scale_by_rms, scale_by_rss, scale_by_stddev
from gradchain._transforms.sign import scale_by_lion
from gradchain._validate import check_decay

__all__ = ["adagrad", "lion", "rmsprop", "sgd"]


def sgd(
    learning_rate: ScalarOrSchedule, momentum=None, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    The chain (see `trace` for the momentum rule)::

        chain(trace(momentum, nesterov, accumulator_dtype) if momentum is not None else identity(),
              scale_by_learning_rate(learning_rate))

    Equal to ``torch.optim.SGD(lr, momentum, nesterov=...)`` with ``dampening=0``.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        momentum: Decay of the momentum buffer in ``[0, 1)``; ``None``: no momentum.
        nesterov: Use Nesterov's look-ahead ``g + momentum * m``.
        accumulator_dtype: Storage dtype of the momentum buffer; ``None``: the param's.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.sgd(0.1, momentum=0.9)
        >>> state = tx.init(jnp.zeros(2))
        >>> u, state = tx.update(jnp.array([1.0, -2.0]), state)
        >>> u, state = tx.update(jnp.array([1.0, -2.0]), state); u  # -0.1 * (g + 0.9 * g)
        Array([-0.19,  0.38], dtype=float32)

    References:
        Sutskever et al., "On the importance of initialization and momentum in deep
        learning", ICML 2013.
    """
    if momentum is not None:
        check_decay("sgd", "momentum", momentum)
    with named_errors("sgd"):
        lr = learning_rate_step("sgd", learning_rate)
        first = identity() if momentum is None else trace(momentum, nesterov, accumulator_dtype)
        return chain(first, lr)


def adagrad(
    learning_rate: ScalarOrSchedule, initial_accumulator_value=0.1, eps=1e-7
) -> GradientTransformation:
    """Adagrad: ``chain(scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(lr))``.

    See `scale_by_rss` for the update rule. ``torch.optim.Adagrad(lr, eps=e)`` is
    ``adagrad(lr, initial_accumulator_value=0.0, eps=e)`` up to where ``eps`` enters
    (inside the square root here, outside in torch).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        initial_accumulator_value: Starting value of the sum of squares, ``>= 0``.
        eps: Added to the sum of squares inside the square root, ``>= 0``.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adagrad(0.1, initial_accumulator_value=0.0)
        >>> tx.update(jnp.array([3.0, -0.5]), tx.init(jnp.zeros(2)))[0].round(4)  # -0.1 * g / |g|
        Array([-0.1,  0.1], dtype=float32)

    References:
        Duchi et al., "Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization", JMLR 2011.
    """
    with named_errors("adagrad"):
        lr = learning_rate_step("adagrad", learning_rate)
        return chain(scale_by_rss(initial_accumulator_value, eps), lr)


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum=None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSprop, optionally centered and with momentum on the scaled step.

    The chain (update rules in `scale_by_rms`, `scale_by_stddev` and `trace`)::

        chain(scale_by_stddev(...) if centered else scale_by_rms(decay, eps, initial_scale,
                                                                 eps_in_sqrt=..., bias_correction=...),
              scale_by_learning_rate(learning_rate),
              trace(momentum, nesterov) if momentum is not None else identity())

    ``torch.optim.RMSprop(lr, alpha, eps, momentum=mom, centered=c)`` is
    ``rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False, centered=c, momentum=mom)``
    (for a constant ``lr``; the momentum buffer here holds ``lr``-scaled steps).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        decay: Decay of the squared-gradient average, in ``[0, 1)``.
        eps: Stabiliser in the denominator, ``>= 0``.
        initial_scale: Starting value of the squared-gradient average (torch: 0, TF1: 1).
        eps_in_sqrt: ``sqrt(v + eps)`` if True (Optax's default), ``sqrt(v) + eps`` if False (torch).
        centered: Divide by the standard deviation (subtract the squared mean gradient).
        momentum: Decay of a momentum buffer in ``[0, 1)`` applied after the scaling; ``None``: none.
        nesterov: Nesterov momentum (with ``momentum``).
        bias_correction: Debias the averages by ``1 - decay**t``.

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.rmsprop(0.1, decay=0.75, eps=0.0)
        >>> tx.update(jnp.array([2.0, -2.0]), tx.init(jnp.zeros(2)))[0]  # -0.1 * g / sqrt(0.25 * g**2)
        Array([-0.2,  0.2], dtype=float32)

    References:
        Hinton, "Neural Networks for Machine Learning", lecture 6e, 2012.
        Graves, "Generating Sequences With Recurrent Neural Networks", 2013 (centered).
    """
    if momentum is not None:
        check_decay("rmsprop", "momentum", momentum)
    with named_errors("rmsprop"):
        lr = learning_rate_step("rmsprop", learning_rate)
        block = scale_by_stddev if centered else scale_by_rms
        kw = {"eps_in_sqrt": eps_in_sqrt, "bias_correction": bias_correction}
        last = identity() if momentum is None else trace(momentum, nesterov)
        return chain(block(decay, eps, initial_scale, **kw), lr, last)


def lion(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Mask = None,
) -> GradientTransformation:
    """Lion, with decoupled weight decay.

    The chain (see `scale_by_lion` and `add_decayed_weights`)::

        chain(scale_by_lion(b1, b2, mu_dtype), add_decayed_weights(weight_decay, mask),
              scale_by_learning_rate(learning_rate))

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule (typically
            3-10x smaller than Adam's: every coordinate moves by ``lr``).
        b1: Interpolation between momentum and gradient for the sign, in ``[0, 1)``.
        b2: Decay of the momentum, in ``[0, 1)``.
        mu_dtype: Storage dtype of the momentum; ``None``: the param's.
        weight_decay: Decay rate ``>= 0``, or a schedule.
        mask: Where to decay (see `adamw`).

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.lion(0.1, weight_decay=0.0)
        >>> p = jnp.zeros(2)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(p), p)[0]
        Array([-0.1,  0.1], dtype=float32)

    References:
        Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
    """
    with named_errors("lion"):
        lr = learning_rate_step("lion", learning_rate)
        return chain(scale_by_lion(b1, b2, mu_dtype), add_decayed_weights(weight_decay, as_mask(mask)), lr)
