"""The Adam family of optimizers: Adam, NAdam, AdamW, NAdamW, AMSGrad, 8-bit Adam, Adamax,
AdaBelief, RAdam, each a short `chain`.
"""

from __future__ import annotations

from typing import Any

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._chain import chain
from gradchain._optimizers.common import Mask, as_mask, learning_rate_step, named_errors
from gradchain._transforms.adam import (
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_belief,
    scale_by_radam,
)
from gradchain._transforms.quantized import scale_by_adam_8bit
from gradchain._transforms.regularization import add_decayed_weights

__all__ = ["adabelief", "adam", "adam_8bit", "adamax", "adamw", "amsgrad", "nadam", "nadamw", "radam"]


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
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        adam_ = scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nu_dtype=nu_dtype, nesterov=nesterov)
        if weight_decay is None:
            return chain(adam_, lr)
        return chain(adam_, add_decayed_weights(weight_decay, as_mask(mask)), lr)


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
    with named_errors("amsgrad"):
        lr = learning_rate_step("amsgrad", learning_rate)
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
    with named_errors("adam_8bit"):
        lr = learning_rate_step("adam_8bit", learning_rate)
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
    with named_errors("adamax"):
        lr = learning_rate_step("adamax", learning_rate)
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
    with named_errors("adabelief"):
        lr = learning_rate_step("adabelief", learning_rate)
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
    with named_errors("radam"):
        lr = learning_rate_step("radam", learning_rate)
        return chain(scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov), lr)
