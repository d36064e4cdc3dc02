"""Layer-wise optimizers: LAMB, LARS and Adafactor, each a short `chain` with per-layer steps."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._chain import chain
from gradchain._masking import masked
from gradchain._optimizers.common import Mask, as_mask, learning_rate_step, named_errors
from gradchain._transforms.adam import (
    scale_by_adam,
)
from gradchain._transforms.clipping import clip_by_block_rms
from gradchain._transforms.layerwise import (
    scale_by_factored_rms,
    scale_by_param_block_rms,
    scale_by_trust_ratio,
)
from gradchain._transforms.momentum import ema, trace
from gradchain._transforms.regularization import add_decayed_weights
from gradchain._transforms.scaling import scale, scale_by_learning_rate
from gradchain._validate import check_decay, check_nonnegative, check_positive, check_scalar

__all__ = ["adafactor", "lamb", "lars"]


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
    with named_errors("lamb"):
        lr = learning_rate_step("lamb", learning_rate)
        decay = add_decayed_weights(weight_decay, as_mask(mask))
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
    with named_errors("lars"):
        lr = learning_rate_step("lars", learning_rate)
        decay = add_decayed_weights(weight_decay, as_mask(weight_decay_mask))
        trust, trust_mask = (
            scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps),
            as_mask(trust_ratio_mask),
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
    with named_errors(fn):
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
            members.append(add_decayed_weights(weight_decay_rate, as_mask(weight_decay_mask)))
        members.append(scale(-1.0))
        return chain(*members)
