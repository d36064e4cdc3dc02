"""Optimizers of Adam's relatives: Yogi, Adan, NovoGrad, Adadelta, AdamaxW and the
optimistic methods for min-max games, each a short `chain`.
"""

from __future__ import annotations

from typing import Any

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._chain import chain
from gradchain._optimizers.common import Mask, as_mask, learning_rate_step, named_errors
from gradchain._transforms.adam import scale_by_adam, scale_by_adamax
from gradchain._transforms.adam_variants import (
    scale_by_adadelta,
    scale_by_adan,
    scale_by_novograd,
    scale_by_optimistic_gradient,
    scale_by_yogi,
)
from gradchain._transforms.regularization import add_decayed_weights
from gradchain._transforms.scaling import scale_by_learning_rate
from gradchain._validate import check_nonnegative, check_scalar

__all__ = [
    "adadelta",
    "adamaxw",
    "adan",
    "novograd",
    "optimistic_adam",
    "optimistic_adam_v2",
    "optimistic_gradient_descent",
    "yogi",
]


def yogi(learning_rate: ScalarOrSchedule, b1=0.9, b2=0.999, eps=1e-3) -> GradientTransformation:
    """Yogi: ``chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate))``.

    See `scale_by_yogi` for the update rule (Adam with an additive second moment).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1: Decay of the first-moment average, in ``[0, 1)``.
        b2: Rate of the second-moment change, in ``[0, 1)``.
        eps: Added to the denominator outside the square root, ``>= 0``.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.yogi(0.1)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(jnp.zeros(2)))[0].tolist()  # ~ -lr * sign(g)
        [-0.0996, 0.1]

    References:
        Zaheer et al., "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018.
    """
    with named_errors("yogi"):
        lr = learning_rate_step("yogi", learning_rate)
        return chain(scale_by_yogi(b1, b2, eps), lr)


def adan(
    learning_rate: ScalarOrSchedule,
    b1=0.98,
    b2=0.92,
    b3=0.99,
    eps=1e-8,
    eps_root=1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask = None,
) -> GradientTransformation:
    """Adan: ``chain(scale_by_adan(b1, b2, b3, eps, eps_root), add_decayed_weights(weight_decay, mask), lr)``.

    See `scale_by_adan` for the update rule (and how it differs from Optax 0.2.8). The
    weight decay is decoupled and multiplied by the learning rate, ``-lr * (u + wd * p)``,
    as in Optax; the authors' code divides the parameters by ``1 + lr * wd`` instead
    (equal to first order in ``lr * wd``).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, b3, eps, eps_root: As in `scale_by_adan` (``eps_root`` defaults to 1e-8
            here, as in Optax).
        weight_decay: Decay rate ``>= 0``, or a schedule.
        mask: Where to decay: ``None`` (every leaf), a pytree of bools mirroring the
            params, or a callable returning one.

    Returns:
        A `GradientTransformation` (a `chain` of three members); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adan(0.1)
        >>> p = jnp.zeros(2)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(p), p)[0].round(4)  # first step: -lr * sign(g)
        Array([-0.1,  0.1], dtype=float32)

    References:
        Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing
        Deep Models", 2022.
    """
    with named_errors("adan"):
        lr = learning_rate_step("adan", learning_rate)
        return chain(
            scale_by_adan(b1, b2, b3, eps, eps_root), add_decayed_weights(weight_decay, as_mask(mask)), lr
        )


def novograd(
    learning_rate: ScalarOrSchedule, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0
) -> GradientTransformation:
    """NovoGrad: ``chain(scale_by_novograd(b1, b2, eps, eps_root, weight_decay), lr)``.

    See `scale_by_novograd` for the update rule (momentum of updates normalized by a
    per-layer second moment, the weight decay inside the momentum).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1: Decay of the momentum, in ``[0, 1)``.
        b2: Decay of the per-layer second moment, in ``[0, 1)``.
        eps: Added to the denominator outside the square root, ``>= 0`` (1e-6 here,
            1e-8 in `scale_by_novograd`, as in Optax).
        eps_root: Added inside the square root, ``>= 0``.
        weight_decay: A number ``>= 0`` (no schedule); ``update`` needs ``params``
            unless it is 0.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.novograd(0.1)
        >>> tx.update(jnp.array([3.0, -4.0]), tx.init(jnp.zeros(2)))[0]  # -lr * g / |g|
        Array([-0.06,  0.08], dtype=float32)

    References:
        Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive Moments
        for Training of Deep Networks", 2019.
    """
    with named_errors("novograd"):
        lr = learning_rate_step("novograd", learning_rate)
        return chain(scale_by_novograd(b1, b2, eps, eps_root, weight_decay), lr)


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho=0.9,
    eps=1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Mask = None,
) -> GradientTransformation:
    """Adadelta: ``chain(add_decayed_weights(weight_decay, weight_decay_mask), scale_by_adadelta(rho, eps), lr)``.

    See `scale_by_adadelta` for the update rule. The weight decay is added to the
    gradient (L2 regularization), as in Optax and ``torch.optim.Adadelta``, whose
    defaults these are (``lr=1.0``). ``learning_rate=None`` means 1: Adadelta's own step,
    descending. (Optax 0.2.8 drops the learning-rate step for ``None``, sign flip
    included, so its default ``optax.adadelta()`` ascends.)

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule; ``None``: 1.
        rho: Decay of both averages, in ``[0, 1)``.
        eps: Added inside both square roots, ``> 0``.
        weight_decay: L2 coefficient ``>= 0``, or a schedule.
        weight_decay_mask: Where to decay: ``None`` (every leaf), a pytree of bools
            mirroring the params, or a callable returning one.

    Returns:
        A `GradientTransformation` (a `chain` of three members); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adadelta(rho=0.5, eps=1e-4)
        >>> p = jnp.zeros(1)
        >>> tx.update(jnp.array([1.0]), tx.init(p), p)[0]  # -sqrt(1e-4 / (0.5 + 1e-4))
        Array([-0.01414072], dtype=float32)

    References:
        Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012.
    """
    with named_errors("adadelta"):
        lr = learning_rate_step("adadelta", 1.0 if learning_rate is None else learning_rate)
        wd = add_decayed_weights(weight_decay, as_mask(weight_decay_mask))
        return chain(wd, scale_by_adadelta(rho, eps), lr)


def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
) -> GradientTransformation:
    """AdamaxW: ``chain(scale_by_adamax(b1, b2, eps), add_decayed_weights(weight_decay, mask), lr)``.

    `adamax` with decoupled weight decay (multiplied by the learning rate, as in
    `adamw`): ``u_t = -lr_t * (adamax_t + weight_decay * p_t)``.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, eps: As in `scale_by_adamax`.
        weight_decay: Decay rate ``>= 0``, or a schedule.
        mask: Where to decay: ``None`` (every leaf), a pytree of bools mirroring the
            params, or a callable returning one.

    Returns:
        A `GradientTransformation` (a `chain` of three members); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adamaxw(0.1, weight_decay=0.5)
        >>> p = jnp.array([1.0, -2.0])
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(p), p)[0].tolist()  # -0.1 * (sign(g) + 0.5 * p)
        [-0.15, 0.2]

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    with named_errors("adamaxw"):
        lr = learning_rate_step("adamaxw", learning_rate)
        return chain(scale_by_adamax(b1, b2, eps), add_decayed_weights(weight_decay, as_mask(mask)), lr)


def optimistic_gradient_descent(
    learning_rate: ScalarOrSchedule, alpha=1.0, beta=1.0
) -> GradientTransformation:
    """Optimistic gradient descent: ``chain(scale_by_optimistic_gradient(alpha, beta), lr)``.

    ``u_t = -lr_t * ((alpha + beta) * g_t - beta * g_{t-1})``; see
    `scale_by_optimistic_gradient`. Converges in bilinear min-max games (train both
    players with it, the maximizer on negated gradients).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        alpha: Weight of the current gradient (numbers only: Optax's type hint says
            schedule, but its transformation cannot take one).
        beta: Weight of the extrapolation from the previous gradient.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.optimistic_gradient_descent(0.1)
        >>> u, s = tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))
        >>> tx.update(jnp.array([3.0]), s)[0]  # -0.1 * (2 * 3 - 1)
        Array([-0.5], dtype=float32)

    References:
        Mokhtari, Ozdaglar & Pattathil, "A Unified Analysis of Extra-gradient and
        Optimistic Gradient Methods for Saddle Point Problems", AISTATS 2020.
    """
    with named_errors("optimistic_gradient_descent"):
        lr = learning_rate_step("optimistic_gradient_descent", learning_rate)
        return chain(scale_by_optimistic_gradient(alpha, beta), lr)


def optimistic_adam(
    learning_rate,
    optimism=None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> GradientTransformation:
    """Optimistic Adam (Optax's first interface): the learning rate is also ``alpha``.

    The chain::

        chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
              scale_by_optimistic_gradient(alpha=learning_rate, beta=optimism),
              scale_by_learning_rate(1.0))

    so ``u_t = -(lr * r_t + optimism * (r_t - r_{t-1}))`` with ``r_t`` Adam's direction.
    `optimistic_adam_v2` is the general form (and takes a schedule); this one exists
    for porting (Optax deprecates it; gradchain keeps it without a warning).

    Args:
        learning_rate: A number ``>= 0`` or scalar array (no schedule: it is ``alpha``).
        optimism: The extrapolation weight ``beta``; ``None``: ``learning_rate``.
        b1, b2, eps, eps_root, mu_dtype, nesterov: As in `scale_by_adam` (Nesterov by
            default, as in Optax).

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.optimistic_adam(0.1)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(jnp.zeros(2)))[0]  # first step: -lr * sign(g)
        Array([-0.1,  0.1], dtype=float32)

    References:
        Daskalakis et al., "Training GANs with Optimism", ICLR 2018.
    """
    fn = "optimistic_adam"
    if callable(learning_rate):
        raise TypeError(
            f"{fn}: `learning_rate` must be a number (it is also the optimistic step's alpha; "
            f"for a schedule use `optimistic_adam_v2`), got the callable {learning_rate!r}."
        )
    check_nonnegative(fn, "learning_rate", learning_rate)
    if optimism is None:
        optimism = learning_rate
    check_scalar(fn, "optimism", optimism)
    with named_errors(fn):
        adam_ = scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=nesterov)
        return chain(
            adam_, scale_by_optimistic_gradient(learning_rate, optimism), scale_by_learning_rate(1.0)
        )


def optimistic_adam_v2(
    learning_rate: ScalarOrSchedule,
    *,
    alpha=1.0,
    beta=1.0,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: Any = None,
    nesterov: bool = True,
) -> GradientTransformation:
    """Optimistic Adam: Adam's direction through an optimistic step, then the learning rate.

    The chain::

        chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
              scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))

    so ``u_t = -lr_t * ((alpha + beta) * r_t - beta * r_{t-1})`` with ``r_t`` Adam's
    direction (see `scale_by_adam`, `scale_by_optimistic_gradient`).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        alpha: Weight of the current direction.
        beta: Weight of the extrapolation from the previous direction.
        b1, b2, eps, eps_root, mu_dtype, nesterov: As in `scale_by_adam` (Nesterov by
            default, as in Optax).

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.optimistic_adam_v2(0.1)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(jnp.zeros(2)))[0]  # first step: -lr * sign(g)
        Array([-0.1,  0.1], dtype=float32)

    References:
        Daskalakis et al., "Training GANs with Optimism", ICLR 2018.
    """
    with named_errors("optimistic_adam_v2"):
        lr = learning_rate_step("optimistic_adam_v2", learning_rate)
        adam_ = scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=nesterov)
        return chain(adam_, scale_by_optimistic_gradient(alpha, beta), lr)
