"""Schedule-Free optimizers: `schedule_free_sgd` and `schedule_free_adamw`, each `schedule_free`
around a short momentum-free `chain`.

Evaluate at ``schedule_free_eval_params(state, params)``, train at ``params``; see
`gradchain._transforms.schedule_free` for the rule and the training loop.
"""

from __future__ import annotations

from typing import Any

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._chain import chain
from gradchain._numerics import safe_increment
from gradchain._optimizers.classic import sgd
from gradchain._optimizers.common import learning_rate_step, named_errors
from gradchain._transforms.regularization import add_decayed_weights
from gradchain._transforms.rms import scale_by_rms
from gradchain._transforms.schedule_free import schedule_free_wrapper
from gradchain._validate import check_decay, check_flag, check_int, check_nonnegative
from gradchain.schedules import warmup_constant_schedule

__all__ = ["schedule_free_adamw", "schedule_free_sgd"]


def _learning_rates(fn: str, learning_rate, warmup_steps, align_schedule: bool):
    """(the averaging weights' learning rate, the base optimizer's learning rate).

    With ``warmup_steps`` the learning rate is ``warmup_constant_schedule(0, lr, W)``. The
    wrapper reads a schedule at its 1-based ``step_count``, the base optimizer at its own
    0-based count (Optax); ``align_schedule`` shifts the base optimizer's by one step so
    that both read ``lr(t)`` at step ``t`` (the authors' package).
    """
    check_flag(fn, "align_schedule", align_schedule)
    check_nonnegative(fn, "learning_rate", learning_rate, allow_schedule=True)
    if warmup_steps is not None:
        check_int(fn, "warmup_steps", warmup_steps, 0)
        if callable(learning_rate):
            raise TypeError(
                f"{fn}: `learning_rate` must be a number when `warmup_steps` is given, got the "
                f"schedule {learning_rate!r}; put the warmup in the schedule instead."
            )
        learning_rate = warmup_constant_schedule(0.0, learning_rate, warmup_steps)
    if align_schedule and callable(learning_rate):
        schedule = learning_rate
        return learning_rate, lambda count: schedule(safe_increment(count))
    return learning_rate, learning_rate


def schedule_free_sgd(
    learning_rate: ScalarOrSchedule = 1.0,
    warmup_steps: int | None = None,
    b1=0.9,
    weight_decay=None,
    weight_lr_power=2.0,
    state_dtype: Any = None,
    *,
    r=0.0,
    align_schedule: bool = False,
) -> GradientTransformation:
    """Schedule-Free SGD: `schedule_free` around plain SGD (with L2 weight decay).

    The chain (see `schedule_free` for the rule, with ``d_t`` the inner chain's update)::

        schedule_free(chain(add_decayed_weights(weight_decay), sgd(lr)), lr, b1,
                      weight_lr_power, state_dtype, r=r)      # no add_decayed_weights if None

    so ``z_t = z_{t-1} - lr * (g_t + weight_decay * y_{t-1})``: the decay is taken at ``y``
    (the parameters), as in Optax and in the authors' ``SGDScheduleFreeReference``, and
    multiplied by the learning rate. ``lr`` is ``learning_rate``, or
    ``warmup_constant_schedule(0, learning_rate, warmup_steps)``.

    Optax's convention, followed by default: the averaging weights read a schedule at
    the 1-based step ``t`` and the inner `sgd` at its 0-based count, so z moves by
    ``lr(t - 1)``; with a warmup, z stays put on the first step. ``align_schedule=True``
    steps z by ``lr(t)``, as the authors' package does (``lr * min(t / warmup_steps, 1)``);
    with a constant learning rate the two agree. ``warmup_steps=0`` means no warmup (as in
    the authors' package; Optax's schedule then stays at 0, so nothing trains).

    Train at ``params``; evaluate at ``schedule_free_eval_params(state, params)``.

    Args:
        learning_rate: A number ``>= 0``, a scalar array/tracer, or a schedule (then
            without ``warmup_steps``).
        warmup_steps: ``None``, or the length of a linear warmup from 0, an int ``>= 0``.
        b1: The interpolation weight, in ``(0, 1]`` (the authors' ``momentum``).
        weight_decay: ``None``, or an L2 decay ``>= 0`` (or a schedule) added to the gradient.
        weight_lr_power: Power of the largest learning rate in the averaging weight, ``>= 0``.
        state_dtype: Storage dtype of ``z``; ``None``: each parameter's dtype.
        r: Power of the step in the averaging weight (the authors' ``r``).
        align_schedule: Step ``z`` with ``lr(t)`` rather than ``lr(t - 1)`` (the authors').

    Returns:
        A `GradientTransformation` with state `ScheduleFreeState`; ``update`` needs ``params``.

    Examples:
        Train at ``params`` (noisy gradients), evaluate at the average:

        >>> import jax, jax.numpy as jnp, gradchain
        >>> loss = lambda p: jnp.sum((p - jnp.array([1.0, -2.0])) ** 2)
        >>> tx = gradchain.schedule_free_sgd(0.1, warmup_steps=10)
        >>> params = jnp.zeros(2)
        >>> state = tx.init(params)
        >>> for key in jax.random.split(jax.random.key(0), 200):
        ...     grads = jax.grad(loss)(params) + jax.random.normal(key, (2,))   # at params (y)
        ...     updates, state = tx.update(grads, state, params)
        ...     params = gradchain.apply_updates(params, updates)
        >>> eval_params = gradchain.schedule_free_eval_params(state, params)   # the average (x)
        >>> eval_params.round(2), bool(loss(eval_params) < loss(params))
        (Array([ 1.01, -2.01], dtype=float32), True)

    References:
        Defazio et al., "The Road Less Scheduled", NeurIPS 2024 (arXiv:2405.15682).
    """
    fn = "schedule_free_sgd"
    with named_errors(fn):
        weight_lr, base_lr = _learning_rates(fn, learning_rate, warmup_steps, align_schedule)
        inner = sgd(base_lr)
        if weight_decay is not None:
            check_nonnegative(fn, "weight_decay", weight_decay, allow_schedule=True)
            inner = chain(add_decayed_weights(weight_decay), inner)
        return schedule_free_wrapper(
            fn, inner, weight_lr, b1, weight_lr_power, state_dtype, r, base_at_z=False
        )


def schedule_free_adamw(
    learning_rate: ScalarOrSchedule = 0.0025,
    warmup_steps: int | None = None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    weight_lr_power=2.0,
    state_dtype: Any = None,
    *,
    r=0.0,
    decay_at_z: bool = False,
    align_schedule: bool = False,
) -> GradientTransformation:
    """Schedule-Free AdamW: `schedule_free` around AdamW without momentum.

    The chain (see `scale_by_rms`, `add_decayed_weights` and `schedule_free`)::

        schedule_free(chain(scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
                            add_decayed_weights(weight_decay), scale_by_learning_rate(lr)),
                      lr, b1, weight_lr_power, state_dtype, r=r)

    so, with ``v`` the second moment and ``p = y_{t-1}`` (``p = z_{t-1}`` with ``decay_at_z``)::

        v_t = b2 * v_{t-1} + (1 - b2) * g_t**2
        z_t = z_{t-1} - lr * (g_t / (sqrt(v_t / (1 - b2**t)) + eps) + weight_decay * p)

    This is Adam with ``b1 = 0`` (Adam's ``b1`` is replaced by the interpolation weight
    ``b1``, 0.9 by default), with decoupled weight decay multiplied by the learning rate,
    as in Optax and the authors' ``AdamWScheduleFreeReference``. ``lr`` is
    ``learning_rate``, or ``warmup_constant_schedule(0, learning_rate, warmup_steps)``;
    ``align_schedule`` and ``warmup_steps=0`` as in `schedule_free_sgd` (the default is
    Optax's: z moves by ``lr(t - 1)``, the authors' by ``lr(t)``).

    Train at ``params``; evaluate at ``schedule_free_eval_params(state, params)``.

    Args:
        learning_rate: A number ``>= 0``, a scalar array/tracer, or a schedule (then
            without ``warmup_steps``).
        warmup_steps: ``None``, or the length of a linear warmup from 0, an int ``>= 0``.
        b1: The interpolation weight, in ``(0, 1]``.
        b2: Decay of the second-moment average, in ``[0, 1)``.
        eps: Added to the denominator outside the square root, ``>= 0``.
        weight_decay: Decoupled weight decay ``>= 0``, or a schedule.
        weight_lr_power: Power of the largest learning rate in the averaging weight, ``>= 0``.
        state_dtype: Storage dtype of ``z``; ``None``: each parameter's dtype.
        r: Power of the step in the averaging weight (the authors' ``r``).
        decay_at_z: Decay ``z`` rather than ``y`` (the authors' ``decay_at_z``): the base
            optimizer is given ``z`` as its parameters.
        align_schedule: Step ``z`` with ``lr(t)`` rather than ``lr(t - 1)`` (the authors').

    Returns:
        A `GradientTransformation` with state `ScheduleFreeState`; ``update`` needs ``params``.

    Examples:
        The first step under a warmup: Optax's convention steps z with ``lr(0) = 0``, the
        authors' with ``lr(1) = 0.1 / 10``; the first step moves ``y`` to ``z``.

        >>> import jax.numpy as jnp, gradchain
        >>> g, p = jnp.array([0.5, -4.0]), jnp.zeros(2)
        >>> for align in (False, True):
        ...     tx = gradchain.schedule_free_adamw(0.1, warmup_steps=10, align_schedule=align)
        ...     print(tx.update(g, tx.init(p), p)[0])
        [0. 0.]
        [-0.01  0.01]

    References:
        Defazio et al., "The Road Less Scheduled", NeurIPS 2024 (arXiv:2405.15682).
    """
    fn = "schedule_free_adamw"
    with named_errors(fn):
        check_flag(fn, "decay_at_z", decay_at_z)
        check_decay(fn, "b2", b2)
        check_nonnegative(fn, "eps", eps)
        check_nonnegative(fn, "weight_decay", weight_decay, allow_schedule=True)
        weight_lr, base_lr = _learning_rates(fn, learning_rate, warmup_steps, align_schedule)
        inner = chain(
            scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
            add_decayed_weights(weight_decay),
            learning_rate_step(fn, base_lr),
        )
        return schedule_free_wrapper(
            fn, inner, weight_lr, b1, weight_lr_power, state_dtype, r, base_at_z=decay_at_z
        )
