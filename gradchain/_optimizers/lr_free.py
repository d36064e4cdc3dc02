"""Learning-rate-free optimizers as chains (Optax's contrib names): `dog`, `dowg` and `cocob`.

`prodigy` and `dadapt_adamw` are single transformations (the learning rate enters their
distance estimate): see `gradchain._transforms.lr_free`; `mechanize` wraps any optimizer.
"""

from __future__ import annotations

from typing import Any

from gradchain._base import GradientTransformation, ScalarOrSchedule, identity
from gradchain._chain import chain
from gradchain._optimizers.common import Mask, as_mask, learning_rate_step, named_errors
from gradchain._transforms.lr_free_more import scale_by_cocob, scale_by_dog, scale_by_dowg
from gradchain._transforms.regularization import add_decayed_weights
from gradchain._transforms.scaling import scale_by_learning_rate
from gradchain._validate import check_nonnegative

__all__ = ["cocob", "dog", "dowg"]


def _decay(weight_decay: Any, mask: Mask) -> GradientTransformation:
    return identity() if weight_decay is None else add_decayed_weights(weight_decay, as_mask(mask))


def dog(
    learning_rate: ScalarOrSchedule = 1.0,
    init_step: tuple[str, Any] = ("heuristic", 1e-6),
    eps=1e-8,
    weight_decay: Any = None,
    mask: Mask = None,
) -> GradientTransformation:
    """DoG: ``chain(add_decayed_weights(weight_decay, mask), scale_by_dog(init_step, eps), scale_by_learning_rate(lr))``.

    See `scale_by_dog` for the step size (the largest distance from the start over the
    root of the summed squared gradient norms); the decay is left out when
    ``weight_decay`` is ``None``. ``learning_rate`` multiplies the adapted step (1, or
    a schedule). ``init`` must see the real starting parameters.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        init_step: ``(tag, value)``, see `scale_by_dog`.
        eps: Added to the summed squared norms inside the square root, ``>= 0``.
        weight_decay: ``None`` (no decay), or the rate of L2 decay added to the gradients.
        mask: Where to decay: ``None`` (everywhere), a pytree of bools, or a callable.

    Returns:
        A `GradientTransformation` (a `chain` of three members); ``update`` needs ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(x**2)
        >>> tx, x = gradchain.dog(), jnp.array([1.0, 2.0, 3.0])
        >>> state = tx.init(x)
        >>> for _ in range(5):
        ...     u, state = tx.update(jax.grad(f)(x), state, x)
        ...     x = gradchain.apply_updates(x, u)
        >>> print(f"{float(f(x)):.2f}")   # Optax's example: 13.99 after 5 steps
        13.99

    References:
        Ivgi, Hinder & Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step
        Size Schedule", ICML 2023.
    """
    with named_errors("dog"):
        lr = learning_rate_step("dog", learning_rate)
        if weight_decay is not None:
            check_nonnegative("dog", "weight_decay", weight_decay, allow_schedule=True)
        return chain(_decay(weight_decay, mask), scale_by_dog(init_step, eps), lr)


def dowg(
    learning_rate: ScalarOrSchedule = 1.0,
    init_estim_sq_dist: Any = None,
    eps=1e-4,
    weight_decay: Any = None,
    mask: Mask = None,
) -> GradientTransformation:
    """DoWG: ``chain(add_decayed_weights(weight_decay, mask), scale_by_dowg(init_estim_sq_dist, eps), scale_by_learning_rate(lr))``.

    See `scale_by_dowg` for the step size (the squared distance from the start over the
    root of the distance-weighted squared gradient norms); the decay is left out when
    ``weight_decay`` is ``None``. ``init`` must see the real starting parameters.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        init_estim_sq_dist: The initial squared distance, ``>= 0``; ``None``: ``eps``.
        eps: Added to the denominator, ``>= 0``.
        weight_decay: ``None`` (no decay), or the rate of L2 decay added to the gradients.
        mask: Where to decay: ``None`` (everywhere), a pytree of bools, or a callable.

    Returns:
        A `GradientTransformation` (a `chain` of three members); ``update`` needs ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(x**2)
        >>> tx, x = gradchain.dowg(), jnp.array([1.0, 2.0, 3.0])
        >>> state = tx.init(x)
        >>> for _ in range(5):
        ...     u, state = tx.update(jax.grad(f)(x), state, x)
        ...     x = gradchain.apply_updates(x, u)
        ...     print(f"{float(f(x)):.4f}")   # Optax's example
        13.9254
        13.8728
        13.7754
        13.5962
        13.2688

    References:
        Khaled, Mishchenko & Jin, "DoWG Unleashed: An Efficient Universal Parameter-Free
        Gradient Descent Method", NeurIPS 2023.
    """
    with named_errors("dowg"):
        lr = learning_rate_step("dowg", learning_rate)
        if weight_decay is not None:
            check_nonnegative("dowg", "weight_decay", weight_decay, allow_schedule=True)
        return chain(_decay(weight_decay, mask), scale_by_dowg(init_estim_sq_dist, eps), lr)


def cocob(
    learning_rate: ScalarOrSchedule = 1.0,
    alpha=100.0,
    eps=1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask = None,
) -> GradientTransformation:
    """COCOB: ``chain(add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr, flip_sign=False), scale_by_cocob(alpha, eps))``.

    See `scale_by_cocob` for the update (coin betting per coordinate; it descends by
    itself, so the learning rate scales the gradients it bets on, without a sign flip).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule (1 in the paper).
        alpha: Bounds the bet fraction early on, ``> 0``.
        eps: The initial scale of each coordinate's gradients, ``>= 0``.
        weight_decay: The rate of L2 decay added to the gradients, ``>= 0``, or a schedule.
        mask: Where to decay: ``None`` (everywhere), a pytree of bools, or a callable.

    Returns:
        A `GradientTransformation` (a `chain` of three members); ``update`` needs ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(x**2)
        >>> tx, x = gradchain.cocob(), jnp.array([1.0, 2.0, 3.0])
        >>> state = tx.init(x)
        >>> for _ in range(30):
        ...     u, state = tx.update(jax.grad(f)(x), state, x)
        ...     x = gradchain.apply_updates(x, u)
        >>> print(f"{float(f(x)):.2f}")
        0.22

    References:
        Orabona & Tommasi, "Training Deep Networks without Learning Rates Through Coin
        Betting", NeurIPS 2017.
    """
    with named_errors("cocob"):
        check_nonnegative("cocob", "learning_rate", learning_rate, allow_schedule=True)
        return chain(
            add_decayed_weights(weight_decay, as_mask(mask)),
            scale_by_learning_rate(learning_rate, flip_sign=False),
            scale_by_cocob(alpha, eps),
        )
