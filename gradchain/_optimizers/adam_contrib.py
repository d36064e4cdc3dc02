"""Optimizers of the ``optax.contrib`` Adam-like family, each a short chain: `adopt`,
`ademamix`, `simplified_ademamix`, `acprop`, `madgrad` and `mars` (not in Optax).

The update rules are in the building blocks (`gradchain._transforms.adam_contrib` and
`gradchain._transforms.mars_madgrad`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._chain import chain
from gradchain._optimizers.common import Mask, as_mask, learning_rate_step, named_errors
from gradchain._transforms.adam import scale_by_adam
from gradchain._transforms.adam_contrib import (
    adopt_clip_value,
    scale_by_acprop,
    scale_by_ademamix,
    scale_by_adopt,
    scale_by_simplified_ademamix,
)
from gradchain._transforms.mars_madgrad import scale_by_madgrad, scale_by_mars
from gradchain._transforms.regularization import add_decayed_weights
from gradchain._transforms.scaling import scale_by_learning_rate
from gradchain._validate import check_decay, check_flag, check_nonnegative
from gradchain._wrappers.masking import partition

__all__ = ["acprop", "ademamix", "adopt", "madgrad", "mars", "simplified_ademamix"]


def _after_first_step(weight_decay: ScalarOrSchedule) -> Callable[[jax.Array], jax.Array]:
    """The schedule ``t -> weight_decay(t)`` (or the constant), 0 at ``t = 0``."""

    def schedule(count):
        value = weight_decay(count) if callable(weight_decay) else weight_decay
        return jnp.where(count > 0, value, jnp.zeros_like(value))

    return schedule


def adopt(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.9999,
    eps=1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], Any] = adopt_clip_value,
    weight_decay: ScalarOrSchedule | None = None,
    decoupled_weight_decay: bool = False,
    mask: Mask = None,
) -> GradientTransformation:
    """ADOPT: ``chain(scale_by_adopt(b1, b2, eps, mu_dtype, ...), scale_by_learning_rate(lr))``.

    See `scale_by_adopt` for the update rule (the first step only records the second
    moment: its update is zero). Optax's arguments, plus the weight decay of the
    authors' and timm's ``Adopt(weight_decay, decoupled)``, which Optax lacks::

        weight_decay=None:               chain(scale_by_adopt, lr)                     (Optax)
        decoupled_weight_decay=False:    chain(add_decayed_weights(wd), scale_by_adopt, lr)
        decoupled_weight_decay=True:     chain(scale_by_adopt, add_decayed_weights(wd_t), lr),
                                         wd_t = 0 at t = 0 (the first step), wd afterwards

    L2 decay enters the gradient (and so ``v_0``); decoupled decay shrinks the weights by
    ``lr * wd`` from the second step on, as timm's (the first step leaves them alone).
    timm's default ``clip_exp=0.333`` is ``clip_value_fn=lambda t: t.astype(jnp.float32) ** 0.333``.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, eps, mu_dtype, nesterov, use_clipping, clip_value_fn: As in `scale_by_adopt`.
        weight_decay: ``None`` (no decay, Optax's chain), or a rate ``>= 0`` or schedule.
        decoupled_weight_decay: Decoupled (AdamW-style) rather than L2 decay.
        mask: Where to decay (see `add_decayed_weights`); only with ``weight_decay``.

    Returns:
        A `GradientTransformation` (a `chain` of two or three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adopt(0.1)
        >>> s = tx.init(jnp.zeros(2))
        >>> u, s = tx.update(jnp.array([0.5, -4.0]), s); u    # the first step records v
        Array([0., 0.], dtype=float32)
        >>> tx.update(jnp.array([0.5, -4.0]), s)[0]          # -lr * (1 - b1) * sign(g)
        Array([-0.01,  0.01], dtype=float32)

    References:
        Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any beta2 with the
        Optimal Rate", NeurIPS 2024.
    """
    fn = "adopt"
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        check_flag(fn, "decoupled_weight_decay", decoupled_weight_decay)
        tx = scale_by_adopt(
            b1,
            b2,
            eps,
            mu_dtype,
            nesterov=nesterov,
            use_clipping=use_clipping,
            clip_value_fn=clip_value_fn,
        )
        if weight_decay is None:
            if mask is not None:
                raise ValueError(f"{fn}: `mask` must be None without `weight_decay`, got {mask!r}.")
            return chain(tx, lr)
        check_nonnegative(fn, "weight_decay", weight_decay, allow_schedule=True)
        if decoupled_weight_decay:  # no decay on the first step, which makes no update (timm's)
            decay = add_decayed_weights(_after_first_step(weight_decay), as_mask(mask))
            return chain(tx, decay, lr)
        return chain(add_decayed_weights(weight_decay, as_mask(mask)), tx, lr)


def ademamix(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask = None,
) -> GradientTransformation:
    """AdEMAMix: AdamW with a second, slow momentum.

    The chain (see `scale_by_ademamix` and `add_decayed_weights`)::

        chain(scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype),
              add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))

    The paper warms ``alpha`` and ``b3`` up: pass ``alpha=ademamix_alpha_scheduler(alpha,
    warmup=T)`` and ``b3=ademamix_beta3_scheduler(b3, beta_start=b1, warmup=T)``. The
    decay is decoupled and multiplied by the learning rate (the authors' code, and
    pytorch_optimizer's ``AdEMAMix(weight_decouple=True)``).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, b3, alpha, eps, eps_root, mu_dtype: As in `scale_by_ademamix` (the default
            ``alpha`` is Optax's 5.0 here).
        weight_decay: Decay rate ``>= 0``, or a schedule.
        mask: Where to decay (see `add_decayed_weights`).

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.ademamix(0.1)
        >>> p = jnp.zeros(2)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(p), p)[0]   # -lr * (1 + alpha * (1 - b3)) * sign(g)
        Array([-0.10005,  0.10005], dtype=float32)

    References:
        Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older",
        ICLR 2025 (arXiv:2409.03137).
    """
    fn = "ademamix"
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        tx = scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype)
        return chain(tx, add_decayed_weights(weight_decay, as_mask(mask)), lr)


def simplified_ademamix(
    learning_rate: ScalarOrSchedule,
    b1=0.99,
    b2=0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps=1e-8,
    eps_root=0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask = None,
) -> GradientTransformation:
    """Simplified AdEMAMix: one momentum sum plus ``alpha`` times the gradient.

    The chain (see `scale_by_simplified_ademamix` and `add_decayed_weights`)::

        chain(scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root),
              add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))

    ``m`` is a sum (of size up to ``1 / (1 - b1)`` times the gradient), so learning rates
    are smaller than Adam's by about that factor.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, alpha, eps, eps_root: As in `scale_by_simplified_ademamix`.
        weight_decay: Decay rate ``>= 0``, or a schedule.
        mask: Where to decay (see `add_decayed_weights`).

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.simplified_ademamix(0.1)
        >>> p = jnp.zeros(2)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(p), p)[0]   # -lr * sign(g)
        Array([-0.1,  0.1], dtype=float32)

    References:
        Morwani et al., "Connections between Schedule-Free Optimizers, AdEMAMix, and
        Accelerated SGD Variants", 2025 (arXiv:2502.02431).
    """
    fn = "simplified_ademamix"
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        tx = scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root)
        return chain(tx, add_decayed_weights(weight_decay, as_mask(mask)), lr)


def acprop(
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    b2=0.999,
    eps=1e-16,
    eps_root=1e-16,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask = None,
) -> GradientTransformation:
    """ACProp: AdaBelief's centred second moment, used one step late (asynchronously).

    The chain (see `scale_by_acprop` and `add_decayed_weights`)::

        chain(scale_by_acprop(b1, b2, eps, eps_root), add_decayed_weights(weight_decay, mask),
              scale_by_learning_rate(learning_rate))

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, eps, eps_root: As in `scale_by_acprop`.
        weight_decay: Decay rate ``>= 0``, or a schedule.
        mask: Where to decay (see `add_decayed_weights`).

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.acprop(0.1)
        >>> p = jnp.zeros(2)
        >>> tx.update(jnp.array([0.5, -4.0]), tx.init(p), p)[0]   # the first step: -lr * g
        Array([-0.05,  0.4 ], dtype=float32)

    References:
        Zhuang et al., "Momentum Centering and Asynchronous Update for Adaptive Gradient
        Methods", NeurIPS 2021.
    """
    fn = "acprop"
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        tx = scale_by_acprop(b1, b2, eps, eps_root)
        return chain(tx, add_decayed_weights(weight_decay, as_mask(mask)), lr)


def madgrad(
    learning_rate: ScalarOrSchedule, momentum=0.9, weight_decay: ScalarOrSchedule = 0.0, eps=1e-6
) -> GradientTransformation:
    """MADGRAD: ``chain(add_decayed_weights(weight_decay), scale_by_madgrad(learning_rate, momentum, eps))``.

    See `scale_by_madgrad` for the update rule. The decay is L2 (added to the gradient),
    as in Optax and the authors' ``MADGRAD(weight_decay=...)`` (timm's default too).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        momentum: As in `scale_by_madgrad`, in [0, 1).
        weight_decay: L2 coefficient ``>= 0``, or a schedule.
        eps: As in `scale_by_madgrad`.

    Returns:
        A `GradientTransformation` (a `chain` of two members); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.madgrad(1.0, momentum=0.0, eps=0.0)
        >>> p = jnp.array([1.0, 2.0])
        >>> tx.update(jnp.array([8.0, -1.0]), tx.init(p), p)[0]   # -g / |g|**(2/3)
        Array([-2.,  1.], dtype=float32)

    References:
        Defazio & Jelassi, "Adaptivity without Compromise: A Momentumized, Adaptive, Dual
        Averaged Gradient Method for Stochastic Optimization", JMLR 2022 (arXiv:2101.11075).
    """
    fn = "madgrad"
    with named_errors(fn):
        return chain(add_decayed_weights(weight_decay), scale_by_madgrad(learning_rate, momentum, eps))


def _matrix_or_not(params: Any) -> Any:
    return jax.tree.map(lambda p: "mars" if jnp.ndim(p) >= 2 else "adamw", params)


def mars(
    learning_rate: ScalarOrSchedule,
    b1=0.95,
    b2=0.99,
    eps=1e-8,
    gamma=0.025,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    correct_first_step: bool = True,
    optimize_1d: bool = False,
    learning_rate_1d: ScalarOrSchedule | None = None,
    b1_1d=0.9,
    b2_1d=0.95,
    weight_decay_1d: ScalarOrSchedule = 0.1,
) -> GradientTransformation:
    """MARS (AdamW form): `scale_by_mars` on matrices, AdamW on the other parameters.

    The chain, with the authors' split (``optimize_1d=False``; timm and pytorch_optimizer
    send every leaf with ``ndim >= 2`` to MARS, the authors' code only ``ndim == 2``)::

        partition({"mars":  chain(scale_by_mars(b1, b2, eps, gamma), add_decayed_weights(weight_decay),
                                  scale_by_learning_rate(learning_rate)),
                   "adamw": chain(scale_by_adam(b1_1d, b2_1d, eps), add_decayed_weights(weight_decay_1d),
                                  scale_by_learning_rate(learning_rate_1d))},
                  "mars" where ndim >= 2, else "adamw")

    and with ``optimize_1d=True`` the ``"mars"`` chain on every leaf. The defaults are the
    authors' (``learning_rate_1d=None`` is ``learning_rate``, their ``lr_1d = lr`` default).
    timm's ``Mars(lr, betas=(b1, b2), eps, weight_decay, gamma)`` is
    ``mars(lr, b1, b2, eps, gamma, weight_decay, b1_1d=b1, b2_1d=b2,
    weight_decay_1d=weight_decay, correct_first_step=False)``.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, eps, gamma, correct_first_step: As in `scale_by_mars`.
        weight_decay: Decoupled decay of the MARS parameters, ``>= 0`` or a schedule.
        optimize_1d: Use MARS for every parameter (no AdamW split).
        learning_rate_1d: Learning rate of the AdamW parameters; ``None``: ``learning_rate``.
        b1_1d, b2_1d: Adam's decays for the AdamW parameters, in [0, 1).
        weight_decay_1d: Decoupled decay of the AdamW parameters, ``>= 0`` or a schedule.

    Returns:
        A `GradientTransformation`: a `chain` of three members, or (``optimize_1d=False``)
        a `partition` of two such chains.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.mars(0.1, weight_decay_1d=0.0)
        >>> g = {"w": jnp.full((2, 2), 0.25), "b": jnp.array([0.5, -4.0])}
        >>> u, s = tx.update(g, tx.init(g), g)                  # the first steps: -lr * sign(g)
        >>> u["w"].round(4), u["b"].round(4)
        (Array([[-0.1, -0.1],
               [-0.1, -0.1]], dtype=float32), Array([-0.1,  0.1], dtype=float32))

    References:
        Yuan et al., "MARS: Unleashing the Power of Variance Reduction for Training Large
        Models", ICML 2025 (arXiv:2411.10438).
    """
    fn = "mars"
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        check_flag(fn, "optimize_1d", optimize_1d)
        tx = scale_by_mars(b1, b2, eps, gamma, correct_first_step=correct_first_step)
        mars_chain = chain(tx, add_decayed_weights(weight_decay), lr)
        if optimize_1d:
            return mars_chain
        check_decay(fn, "b1_1d", b1_1d)
        check_decay(fn, "b2_1d", b2_1d)
        check_nonnegative(fn, "weight_decay_1d", weight_decay_1d, allow_schedule=True)
        if learning_rate_1d is None:
            lr_1d = lr
        else:
            check_nonnegative(fn, "learning_rate_1d", learning_rate_1d, allow_schedule=True)
            lr_1d = scale_by_learning_rate(learning_rate_1d)
        adam = scale_by_adam(b1_1d, b2_1d, eps)
        adam_chain = chain(adam, add_decayed_weights(weight_decay_1d), lr_1d)
        return partition({"mars": mars_chain, "adamw": adam_chain}, _matrix_or_not)
