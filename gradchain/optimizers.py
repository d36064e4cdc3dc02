"""Optimizers: each a short `chain` of building blocks, named and parameterised as in Optax.

The math of every optimizer lives once, in its building blocks' docstrings; here each
docstring says which chain it is. Every ``learning_rate`` is a number ``>= 0``, a scalar
array or tracer (so an optimizer can be built inside ``jit``/``vmap``, e.g. for a
learning-rate sweep), or a schedule ``count -> value``; the sign flip happens once, in
`scale_by_learning_rate`. An invalid argument raises an error that names the optimizer
(and, for a building block's argument, the block), e.g.
``"adam: `learning_rate` must be >= 0, got -1.0."``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, ScalarOrSchedule, identity
from gradchain._chain import chain
from gradchain._validate import check_decay, check_nonnegative, check_positive, check_scalar
from gradchain.transforms.adaptive import (
    scale_by_adam,
    scale_by_amsgrad,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
)
from gradchain.transforms.adaptive_more import scale_by_adamax, scale_by_belief, scale_by_lion, scale_by_radam
from gradchain.transforms.clipping import clip_by_block_rms
from gradchain.transforms.layerwise import (
    scale_by_factored_rms,
    scale_by_param_block_rms,
    scale_by_trust_ratio,
)
from gradchain.transforms.momentum import ema, trace
from gradchain.transforms.quantized import scale_by_adam_8bit
from gradchain.transforms.regularization import add_decayed_weights
from gradchain.transforms.scaling import scale, scale_by_learning_rate
from gradchain.wrappers import masked

__all__ = [
    "adabelief",
    "adafactor",
    "adagrad",
    "adam",
    "adam_8bit",
    "adamax",
    "adamw",
    "amsgrad",
    "lamb",
    "lars",
    "lion",
    "nadam",
    "nadamw",
    "radam",
    "rmsprop",
    "sgd",
]

Mask = Any  # None, a bool, a pytree of bools mirroring the params, or a callable params -> such a pytree


@contextlib.contextmanager
def _named(fn: str):
    """Prefix the optimizer's name to errors raised while building its chain.

    ``adam(0.1, b1=1.0)`` then reads "adam: scale_by_adam: `b1` must be ...": which
    optimizer, which building block, which argument. (The block's message already says
    everything, so the block's traceback is not chained.)
    """
    try:
        yield
    except (ValueError, TypeError) as e:
        if str(e).startswith(f"{fn}:") or type(e) not in (ValueError, TypeError):
            raise
        raise type(e)(f"{fn}: {e}") from None


def _lr(fn: str, learning_rate: ScalarOrSchedule) -> GradientTransformation:
    check_nonnegative(fn, "learning_rate", learning_rate, allow_schedule=True)
    return scale_by_learning_rate(learning_rate)


def _mask(mask: Mask) -> Mask:
    """Optax's bool masks as gradchain masks: True means everywhere (no mask), False nowhere."""
    if mask is True:
        return None
    if mask is False:
        return lambda params: jax.tree.map(lambda _: False, params)
    return mask


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
    with _named("sgd"):
        lr = _lr("sgd", learning_rate)
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
    with _named("adagrad"):
        lr = _lr("adagrad", learning_rate)
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
    with _named("rmsprop"):
        lr = _lr("rmsprop", learning_rate)
        block = scale_by_stddev if centered else scale_by_rms
        kw = {"eps_in_sqrt": eps_in_sqrt, "bias_correction": bias_correction}
        last = identity() if momentum is None else trace(momentum, nesterov)
        return chain(block(decay, eps, initial_scale, **kw), lr, last)


def adam(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam: ``chain(scale_by_adam(b1, b2, eps, eps_root, ...), scale_by_learning_rate(learning_rate))``.

    See `scale_by_adam` for the update rule (and its Nesterov form, `nadam`). Equal to
    ``torch.optim.Adam(lr, betas=(b1, b2), eps=eps)``.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1: Decay of the first-moment average, in ``[0, 1)``.
        b2: Decay of the second-moment average, in ``[0, 1)``.
        eps: Added to the denominator outside the square root, ``>= 0``.
        eps_root: Added inside the square root, ``>= 0`` (non-zero to differentiate through).
        mu_dtype: Storage dtype of the first moment; ``None``: the param's.
        nesterov: Use the Nesterov (NAdam) first-moment estimate.
        nu_dtype: Storage dtype of the second moment (see `scale_by_adam`).

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adam(0.1)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(jnp.zeros(2)))[0]  # first step: -lr * sign(g)
        Array([-0.1,  0.1], dtype=float32)

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    return _adam("adam", learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov)


def _adam(
    fn, learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov, weight_decay=None, mask=None
):
    """adam, nadam, adamw and nadamw, with errors naming ``fn``."""
    with _named(fn):
        lr = _lr(fn, learning_rate)
        adam_ = scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nu_dtype=nu_dtype, nesterov=nesterov)
        if weight_decay is None:
            return chain(adam_, lr)
        return chain(adam_, add_decayed_weights(weight_decay, _mask(mask)), lr)


def nadam(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: Any = None,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """NAdam: ``adam(..., nesterov=True)``, i.e. ``chain(scale_by_adam(..., nesterov=True), lr)``.

    See `scale_by_adam` for the Nesterov first-moment estimate. Arguments as in `adam`.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.nadam(0.1)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(jnp.zeros(2)))[0]
        Array([-0.1,  0.1], dtype=float32)

    References:
        Dozat, "Incorporating Nesterov Momentum into Adam", ICLR workshop 2016.
    """
    return _adam("nadam", learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype, True)


def adamw(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdamW: Adam with decoupled weight decay.

    The chain (see `scale_by_adam` and `add_decayed_weights`)::

        chain(scale_by_adam(b1, b2, eps, eps_root, ...), add_decayed_weights(weight_decay, mask),
              scale_by_learning_rate(learning_rate))

    so ``u_t = -lr_t * (adam_t + weight_decay * p_t)``: the decay is multiplied by the
    learning rate, as in ``torch.optim.AdamW(lr, betas, eps, weight_decay)`` (same
    arguments; torch's default ``weight_decay`` is 0.01, Optax's and this one's 1e-4).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, eps, eps_root, mu_dtype, nesterov, nu_dtype: As in `adam`.
        weight_decay: Decay rate ``>= 0``, or a schedule.
        mask: Where to decay: ``None`` (every leaf), a pytree of bools mirroring the
            params, or a callable returning one (e.g. to skip biases).

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adamw(0.1, weight_decay=0.5)
        >>> p = jnp.array([1.0, -2.0])
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(p), p)[0].tolist()  # -0.1 * (sign(g) + 0.5 * p)
        [-0.15, 0.2]

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    wd = (weight_decay, mask)
    return _adam("adamw", learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov, *wd)


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """NAdamW: ``adamw(..., nesterov=True)``; see `adamw` and `scale_by_adam`.

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.nadamw(0.1, weight_decay=0.5)
        >>> p = jnp.array([1.0, -2.0])
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(p), p)[0].tolist()  # m' = (0.09 / 0.19 + 1) * g
        [-0.1974, 0.2474]
    """
    return _adam("nadamw", learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype, True, weight_decay, mask)


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> GradientTransformation:
    """AMSGrad: ``chain(scale_by_amsgrad(b1, b2, eps, eps_root, ...), scale_by_learning_rate(lr))``.

    See `scale_by_amsgrad` for the update rule (the maximum of the debiased second moment,
    as in Optax; ``torch.optim.Adam(amsgrad=True)`` debiases the maximum instead).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, eps, eps_root, mu_dtype: As in `adam`.
        bias_correction_mu: Debias the first moment.
        bias_correction_nu: Debias the second moment.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.amsgrad(0.1)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(jnp.zeros(2)))[0]
        Array([-0.1,  0.1], dtype=float32)

    References:
        Reddi et al., "On the Convergence of Adam and Beyond", ICLR 2018.
    """
    with _named("amsgrad"):
        lr = _lr("amsgrad", learning_rate)
        kw = {"bias_correction_mu": bias_correction_mu, "bias_correction_nu": bias_correction_nu}
        return chain(scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype, **kw), lr)


def adam_8bit(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    *,
    block_size: int = 2048,
    min_8bit_size: int = 4096,
) -> GradientTransformation:
    """8-bit Adam: ``chain(scale_by_adam_8bit(...), scale_by_learning_rate(learning_rate))``.

    See `scale_by_adam_8bit` for the update rule: `adam` with both moments stored in
    8 bits per value (plus 4 bytes per ``block_size`` values) for leaves of at least
    ``min_8bit_size`` values. Like ``bitsandbytes.optim.Adam8bit`` (block-wise).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1: Decay of the first-moment average, in ``[0, 1)``.
        b2: Decay of the second-moment average, in ``[0, 1)``.
        eps: Added to the denominator outside the square root, ``>= 0``.
        eps_root: Added inside the square root, ``>= 0``.
        block_size: Values per quantization block, a positive int.
        min_8bit_size: Leaves with fewer values keep unquantized moments, an int ``>= 0``.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp
        >>> import gradchain
        >>> tx = gradchain.adam_8bit(0.1, min_8bit_size=0)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(jnp.zeros(2)))[0]  # first step: -lr * sign(g)
        Array([-0.1,  0.1], dtype=float32)

    References:
        Dettmers, Lewis, Shleifer & Zettlemoyer, "8-bit Optimizers via Block-wise
        Quantization", ICLR 2022.
    """
    with _named("adam_8bit"):
        lr = _lr("adam_8bit", learning_rate)
        tx = scale_by_adam_8bit(b1, b2, eps, eps_root, block_size=block_size, min_8bit_size=min_8bit_size)
        return chain(tx, lr)


def adamax(learning_rate: ScalarOrSchedule, b1=0.9, b2=0.999, eps=1e-8) -> GradientTransformation:
    """AdaMax: ``chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))``.

    See `scale_by_adamax` for the update rule (Adam with an infinity-norm second moment).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1: Decay of the first-moment average, in ``[0, 1)``.
        b2: Decay of the running maximum of ``|g|``, in ``[0, 1)``.
        eps: Added to ``|g|``, ``>= 0``.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adamax(0.1)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(jnp.zeros(2)))[0]
        Array([-0.1,  0.1], dtype=float32)

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.
    """
    with _named("adamax"):
        lr = _lr("adamax", learning_rate)
        return chain(scale_by_adamax(b1, b2, eps), lr)


def adabelief(
    learning_rate: ScalarOrSchedule, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *, nesterov: bool = False
) -> GradientTransformation:
    """AdaBelief: ``chain(scale_by_belief(b1, b2, eps, eps_root, nesterov=...), scale_by_learning_rate(lr))``.

    See `scale_by_belief` for the update rule (Adam whose second moment tracks
    ``(g - m)**2``, the "belief" in the current gradient).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2: Decays of the two averages, in ``[0, 1)``.
        eps: Added to the denominator outside the square root, ``>= 0``.
        eps_root: Added to the second-moment average each step, ``>= 0``.
        nesterov: Use the Nesterov first-moment estimate.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adabelief(0.1)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(jnp.zeros(2)))[0].round(4)  # -lr * g / |0.9 g|
        Array([-0.1111,  0.1111], dtype=float32)

    References:
        Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
        Observed Gradients", NeurIPS 2020.
    """
    with _named("adabelief"):
        lr = _lr("adabelief", learning_rate)
        return chain(scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov), lr)


def radam(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    threshold=5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """RAdam: ``chain(scale_by_radam(b1, b2, eps, eps_root, threshold, ...), scale_by_learning_rate(lr))``.

    See `scale_by_radam` for the update rule (momentum alone until the variance of the
    adaptive rate is tractable, then rectified Adam).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, eps, eps_root, nesterov: As in `adam`.
        threshold: The rectification switches on once ``rho_t >= threshold``.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.radam(0.1)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(jnp.zeros(2)))[0].tolist()  # early: -lr * m_hat
        [-0.05, 0.4]

    References:
        Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.
    """
    with _named("radam"):
        lr = _lr("radam", learning_rate)
        return chain(scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov), lr)


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
    with _named("lion"):
        lr = _lr("lion", learning_rate)
        return chain(scale_by_lion(b1, b2, mu_dtype), add_decayed_weights(weight_decay, _mask(mask)), lr)


def lamb(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-6,
    eps_root=0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask = None,
) -> GradientTransformation:
    """LAMB: Adam with weight decay, rescaled per layer by the trust ratio.

    The chain (see `scale_by_adam`, `add_decayed_weights`, `scale_by_trust_ratio`)::

        chain(scale_by_adam(b1, b2, eps, eps_root), add_decayed_weights(weight_decay, mask),
              scale_by_trust_ratio(), scale_by_learning_rate(learning_rate))

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, eps, eps_root: As in `adam` (``eps`` defaults to 1e-6 here).
        weight_decay: Decay rate ``>= 0``, or a schedule.
        mask: Where to decay (see `adamw`).

    Returns:
        A `GradientTransformation` (a `chain` of four members); needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.lamb(0.1)
        >>> p = jnp.array([3.0, 4.0])
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(p), p)[0].round(4)  # |step| = lr * |p|
        Array([-0.3536,  0.3536], dtype=float32)

    References:
        You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
        minutes", ICLR 2020.
    """
    with _named("lamb"):
        lr = _lr("lamb", learning_rate)
        decay = add_decayed_weights(weight_decay, _mask(mask))
        return chain(scale_by_adam(b1, b2, eps, eps_root), decay, scale_by_trust_ratio(), lr)


def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Mask = True,
    trust_coefficient=0.001,
    eps=0.0,
    trust_ratio_mask: Mask = True,
    momentum=0.9,
    nesterov: bool = False,
) -> GradientTransformation:
    """LARS: SGD with momentum on weight-decayed, trust-ratio-scaled steps.

    The chain (see `add_decayed_weights`, `scale_by_trust_ratio`, `trace`)::

        chain(add_decayed_weights(weight_decay, weight_decay_mask),
              masked(scale_by_trust_ratio(trust_coefficient=..., eps=...), trust_ratio_mask),
              scale_by_learning_rate(learning_rate), trace(momentum, nesterov))

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        weight_decay: Decay rate ``>= 0`` (L2: added before the trust ratio), or a schedule.
        weight_decay_mask: Where to decay: True (everywhere), False, a pytree of bools
            mirroring the params, or a callable returning one.
        trust_coefficient: Multiplier of the trust ratio, ``>= 0``.
        eps: Added to the update norm in the trust ratio, ``>= 0``.
        trust_ratio_mask: Where to apply the trust ratio (as ``weight_decay_mask``);
            typically excludes biases and normalization scales.
        momentum: Decay of the momentum buffer, in ``[0, 1)``.
        nesterov: Nesterov momentum.

    Returns:
        A `GradientTransformation` (a `chain` of four members); needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.lars(1.0, trust_coefficient=0.01)
        >>> p = jnp.array([3.0, 4.0])
        >>> tx.update(jnp.array([0.0, -2.0]), tx.init(p), p)[0]  # -0.01 * |p| * g / |g|
        Array([0.  , 0.05], dtype=float32)

    References:
        You et al., "Large Batch Training of Convolutional Networks", 2017.
    """
    check_decay("lars", "momentum", momentum)
    with _named("lars"):
        lr = _lr("lars", learning_rate)
        decay = add_decayed_weights(weight_decay, _mask(weight_decay_mask))
        trust, trust_mask = (
            scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps),
            _mask(trust_ratio_mask),
        )
        trust = trust if trust_mask is None else masked(trust, trust_mask)
        return chain(decay, trust, lr, trace(momentum, nesterov))


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate=0.8,
    decay_offset=0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold=1.0,
    momentum=None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps=1e-30,
    factored: bool = True,
    weight_decay_mask: Mask = None,
) -> GradientTransformation:
    """Adafactor: factored second-moment scaling, clipped and relative to the weights' scale.

    The chain; a member whose argument is ``None`` (or False) is left out::

        chain(scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps),
              clip_by_block_rms(clipping_threshold),
              scale_by_learning_rate(learning_rate, flip_sign=False),
              scale_by_param_block_rms(),                   # multiply_by_parameter_scale
              ema(momentum, debias=False, accumulator_dtype=dtype_momentum),
              add_decayed_weights(weight_decay_rate, weight_decay_mask),
              scale(-1))

    See `scale_by_factored_rms`, `clip_by_block_rms` and `scale_by_param_block_rms` for the
    rules. Without a learning rate the step is relative: about ``RMS(p)`` per step.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, schedule, or ``None`` (no scaling).
        min_dim_size_to_factor: Factor a leaf only if its two largest axes are at least this long.
        decay_rate: Exponent of the second-moment decay schedule, ``>= 0``.
        decay_offset: Step at which that schedule restarts (fine-tuning), an integer ``>= 0``.
        multiply_by_parameter_scale: Scale steps by the RMS of each parameter block.
        clipping_threshold: Clip each block's update RMS to this (``>= 1`` usually); ``None``: no clipping.
        momentum: Decay of an (undebiased) average of the steps, in ``[0, 1)``; ``None``: none.
        dtype_momentum: Storage dtype of that average.
        weight_decay_rate: Decay rate ``>= 0`` or a schedule; ``None``: no weight decay.
        eps: Added to ``g**2`` in the second moment, ``>= 0``.
        factored: Factor the second moment of large matrices.
        weight_decay_mask: Where to decay (see `adamw`).

    Returns:
        A `GradientTransformation` (a `chain`); needs ``params`` when
        ``multiply_by_parameter_scale`` or ``weight_decay_rate`` is set.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adafactor(0.1, multiply_by_parameter_scale=False)
        >>> p = jnp.zeros(2)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(p), p)[0]  # -lr * g / |g|
        Array([-0.1,  0.1], dtype=float32)

    References:
        Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory
        Cost", ICML 2018.
    """
    fn = "adafactor"
    check_scalar(fn, "decay_offset", decay_offset, lo=0.0, integer=True)
    check_nonnegative(fn, "eps", eps)
    if clipping_threshold is not None:
        check_positive(fn, "clipping_threshold", clipping_threshold)
    if momentum is not None:
        check_decay(fn, "momentum", momentum)
    with _named(fn):
        if learning_rate is not None:
            check_nonnegative(fn, "learning_rate", learning_rate, allow_schedule=True)
        flags = {"multiply_by_parameter_scale": multiply_by_parameter_scale, "factored": factored}
        for name, flag in flags.items():
            if not isinstance(flag, bool):
                raise TypeError(f"{fn}: `{name}` must be a bool, got {flag!r}.")
        members = [scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)]
        if clipping_threshold is not None:
            members.append(clip_by_block_rms(clipping_threshold))
        if learning_rate is not None:
            members.append(scale_by_learning_rate(learning_rate, flip_sign=False))
        if multiply_by_parameter_scale:
            members.append(scale_by_param_block_rms())
        if momentum is not None:
            members.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
        if weight_decay_rate is not None:
            members.append(add_decayed_weights(weight_decay_rate, _mask(weight_decay_mask)))
        members.append(scale(-1.0))
        return chain(*members)
