"""Schedule-Free learning: `schedule_free` turns a base optimizer into one that needs no
learning-rate decay, and `schedule_free_eval_params` gives the parameters to evaluate.

Three sequences of parameters take part. ``z`` is what the base optimizer steps (kept in
the state), ``x`` is a weighted running average of the ``z`` (the parameters to evaluate,
checkpoint and serve) and ``y``, an interpolation between the two, is where the gradients
are taken: the parameters a training loop holds. Only ``y`` and ``z`` are stored; ``x`` is
recomputed from them (``x = (y - (1 - b1) * z) / b1``), so the memory cost is one extra
copy of the parameters (``z``) on top of the base optimizer's state.

The optimizers `schedule_free_sgd` and `schedule_free_adamw` are in
`gradchain._optimizers.schedule_free`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, ScalarOrSchedule, as_transformation
from gradchain._kit import Compute, map_leaves, store
from gradchain._numerics import as_leaf, hp, safe_increment
from gradchain._tree import find_states, stats_dtype
from gradchain._validate import (
    canonical_dtype,
    check_nonnegative,
    check_scalar,
    check_tree_match,
    concrete_scalar,
    require_params,
    schedule_value,
)

__all__ = ["ScheduleFreeState", "schedule_free", "schedule_free_eval_params"]


class ScheduleFreeState(NamedTuple):
    """State of `schedule_free` (Optax's fields, names and order).

    Memory: one copy of the parameters (``z``, in ``state_dtype`` or the parameters'
    dtypes) plus the base optimizer's state; the rest are scalars.
    """

    b1: jax.Array  # scalar: the interpolation weight b1 (read by `schedule_free_eval_params`)
    weight_sum: jax.Array  # scalar: sum of the averaging weights so far
    step_count: jax.Array  # int32 scalar: the step about to be taken (1 before the first update)
    max_lr: jax.Array  # scalar: the largest learning rate seen so far
    base_optimizer_state: Any  # the base optimizer's state
    z: Any  # per-param tree: the base optimizer's iterate, in `state_dtype` or the param's dtype


def _scalar_dtype(params: Any) -> np.dtype:
    """Dtype of the scalar statistics: float32, float64 for float64 parameters."""
    return stats_dtype([as_leaf(p) for p in jax.tree.leaves(params)])


def _z_init(fn: str, p: Any, state_dtype: Any) -> jax.Array:
    p = as_leaf(p)
    if state_dtype is None:
        return jnp.copy(p)  # a distinct array, so that params and state can both be donated
    if jnp.iscomplexobj(p) and not jnp.issubdtype(state_dtype, jnp.complexfloating):
        raise TypeError(
            f"{fn}: `state_dtype` must be a complex dtype for complex parameters, got {state_dtype!r}: "
            "a real z would drop the imaginary part."
        )
    return jnp.copy(p.astype(state_dtype))


def schedule_free(
    base_optimizer: GradientTransformation,
    learning_rate: ScalarOrSchedule,
    b1=0.9,
    weight_lr_power=2.0,
    state_dtype: Any = None,
    *,
    r=0.0,
) -> GradientTransformation:
    """Schedule-Free wrapper: replace the momentum and the decay schedule of a base optimizer
    by interpolation and averaging.

    The parameters the training loop holds, and takes the gradients at, are ``y``; the
    base optimizer steps ``z``; evaluate at ``x``, the running average of the ``z``, that
    `schedule_free_eval_params` recomputes from the state and ``y``. At step ``t =
    step_count`` (1 on the first call), with ``y_{t-1} = params``, ``g_t`` the gradient
    there and ``d_t`` the base optimizer's update for it (computed with ``params =
    y_{t-1}``)::

        lr_t     = learning_rate, or learning_rate(t) for a schedule
        lrmax_t  = max(lrmax_{t-1}, lr_t)                 (lrmax_0 = 0)
        w_t      = t**r * lrmax_t**weight_lr_power
        W_t      = W_{t-1} + w_t                          (W_0 = 0)
        c_t      = w_t / W_t                              (0 while W_t = 0)
        x_{t-1}  = (y_{t-1} - (1 - b1) * z_{t-1}) / b1
        z_t      = z_{t-1} + d_t                          (z_0 = y_0 = x_0 = the initial params)
        x_t      = (1 - c_t) * x_{t-1} + c_t * z_t
        y_t      = b1 * x_t + (1 - b1) * z_t
        u_t      = y_t - y_{t-1}
                 = (1 - b1 * (1 - c_t)) * (z_t - z_{t-1}) - c_t * (y_{t-1} - z_{t-1})

    so that `apply_updates` moves the parameters from ``y_{t-1}`` to ``y_t``. The last line
    is how ``u_t`` is computed (from differences, so that rounding errors scale with the
    step rather than with the parameters; Optax subtracts ``y_t - y_{t-1}``). With plain
    SGD as the base (``d_t = -lr_t * g_t``) and constant ``lr``, ``c_t = 1 / t`` and ``x_t``
    is the uniform average of ``z_1 ... z_t``. ``learning_rate`` here sets only the
    averaging weights: the base optimizer takes its own (pass the same one, without decay;
    warmup is fine). Give the base optimizer no momentum (``b1=0`` for Adam): ``b1`` here
    replaces it. Optax's numbers, in the same call.

    The training loop takes the gradients at the parameters it holds and evaluates at
    ``schedule_free_eval_params(state, params)``::

        state = tx.init(params)
        for batch in batches:
            grads = jax.grad(loss)(params, batch)               # at y
            updates, state = tx.update(grads, state, params)
            params = gradchain.apply_updates(params, updates)
        eval_params = gradchain.schedule_free_eval_params(state, params)   # x

    Keep training from ``params`` (not from ``eval_params``), and checkpoint the state
    with them: ``x`` is recovered from both. (The authors' PyTorch package swaps the
    parameters in place instead, with ``optimizer.eval()`` and ``optimizer.train()``.)

    Args:
        base_optimizer: The optimizer that steps ``z``, including its learning rate (any
            ``(init, update)`` pair; an Optax one too).
        learning_rate: A number ``>= 0``, a scalar array/tracer, or a schedule (evaluated
            at the 1-based ``step_count``): the learning rate that weights the average.
        b1: The interpolation weight, in ``(0, 1]``: ``y = b1 * x + (1 - b1) * z``
            (``b1 = 1`` trains at the average itself). It must be positive, since ``x``
            is recovered by dividing by it (a traced ``b1`` is not checked).
        weight_lr_power: Power of the largest learning rate so far in the averaging
            weight, ``>= 0`` (0: uniform weights; the default 2 down-weights the warmup).
        state_dtype: Storage dtype of ``z``; ``None``: each parameter's dtype. For
            bfloat16 parameters, ``jnp.float32`` keeps ``x`` accurate.
        r: Power of the step in the averaging weight (polynomial averaging, the authors'
            ``r``; Optax has none), any finite number; 0 (default): Optax's weights.

    Returns:
        A `GradientTransformation` with state `ScheduleFreeState(b1, weight_sum,
        step_count, max_lr, base_optimizer_state, z)`; ``update`` needs ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> lr = 0.25
        >>> tx = gradchain.schedule_free(gradchain.sgd(lr), lr, b1=0.5)
        >>> loss = lambda p: jnp.sum((p - 2.0) ** 2)
        >>> params = jnp.zeros(2)
        >>> state = tx.init(params)
        >>> for _ in range(3):
        ...     grads = jax.grad(loss)(params)          # the gradient at y = params
        ...     updates, state = tx.update(grads, state, params)
        ...     params = gradchain.apply_updates(params, updates)
        >>> params, state.z, gradchain.schedule_free_eval_params(state, params)   # y, z, x
        (Array([1.625, 1.625], dtype=float32), Array([1.8125, 1.8125], dtype=float32),
         Array([1.4375, 1.4375], dtype=float32))

        Here ``z`` goes 1, 1.5, 1.8125 (SGD steps taken at ``y``), ``x`` is their mean and
        ``y`` the midpoint of ``x`` and ``z``.

    References:
        Defazio et al., "The Road Less Scheduled", NeurIPS 2024 (arXiv:2405.15682).
        The authors' code: github.com/facebookresearch/schedule_free.
    """
    return schedule_free_wrapper(
        "schedule_free", base_optimizer, learning_rate, b1, weight_lr_power, state_dtype, r, base_at_z=False
    )


def schedule_free_wrapper(
    fn: str,
    base_optimizer: Any,
    learning_rate: ScalarOrSchedule,
    b1: Any,
    weight_lr_power: Any,
    state_dtype: Any,
    r: Any,
    *,
    base_at_z: bool,
) -> GradientTransformation:
    """`schedule_free`, with errors naming ``fn``; ``base_at_z`` gives the base optimizer
    ``z`` as its parameters instead of ``y`` (the authors' ``decay_at_z``)."""
    base_optimizer = as_transformation(fn, "base_optimizer", base_optimizer)
    check_nonnegative(fn, "learning_rate", learning_rate, allow_schedule=True)
    check_scalar(fn, "b1", b1, lo=0.0, lo_open=True, hi=1.0)
    check_nonnegative(fn, "weight_lr_power", weight_lr_power)
    check_scalar(fn, "r", r)
    state_dtype = canonical_dtype(fn, "state_dtype", state_dtype)
    plain_weights = isinstance(r, (int, float)) and r == 0  # Optax's weights, bit for bit

    def init_fn(params):
        sdt = _scalar_dtype(params)
        return ScheduleFreeState(
            b1=jnp.asarray(b1).astype(sdt),
            weight_sum=jnp.zeros([], sdt),
            step_count=jnp.ones([], jnp.int32),
            max_lr=jnp.zeros([], sdt),
            base_optimizer_state=base_optimizer.init(params),
            z=jax.tree.map(lambda p: _z_init(fn, p, state_dtype), params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        require_params(fn, params)
        check_tree_match(fn, updates, state.z)
        check_tree_match(fn, updates, params, "the parameters `params`", floating=False)
        sdt = state.max_lr.dtype
        t = state.step_count
        lr = (
            schedule_value(fn, "learning_rate", learning_rate(t))
            if callable(learning_rate)
            else learning_rate
        )
        max_lr = jnp.maximum(state.max_lr, hp(lr, sdt))
        weight = max_lr ** hp(weight_lr_power, sdt)
        if not plain_weights:
            weight = t.astype(sdt) ** hp(r, sdt) * weight
        weight_sum = state.weight_sum + weight
        safe_sum = jnp.where(weight_sum == 0, jnp.ones_like(weight_sum), weight_sum)
        ck = jnp.where(weight_sum == 0, jnp.zeros_like(weight), weight / safe_sum)

        base_params = state.z if base_at_z else params
        d, base_state = base_optimizer.update(updates, state.base_optimizer_state, base_params, **extra_args)
        check_tree_match(fn, updates, d, "the base optimizer's updates", floating=False)

        def leaf(g, d, y, z):
            y = as_leaf(y)
            c = Compute(g, y, z)
            b, k = c.hp(b1), c(ck)
            z_new = store(c(z) + c(d), z)
            # y_t - y_{t-1} from differences only: rounding errors scale with the step and
            # the distance between y and z, not with the parameters (no cancellation)
            dz, e = c(z_new) - c(z), c(y) - c(z)
            return store((1 - b * (1 - k)) * dz - k * e, g), z_new

        new_updates, z = map_leaves(leaf, updates, d, params, state.z)
        new_state = ScheduleFreeState(
            b1=state.b1,
            weight_sum=weight_sum,
            step_count=safe_increment(t),
            max_lr=max_lr,
            base_optimizer_state=base_state,
            z=z,
        )
        return new_updates, new_state

    return GradientTransformation(init_fn, update_fn)


def schedule_free_eval_params(state: Any, params: Any) -> Any:
    """The parameters to evaluate a `schedule_free` model at: ``x``, the weighted average.

    Recomputed from the training parameters ``y`` and the state's ``z``::

        x = (y - (1 - b1) * z) / b1       (computed as z + (y - z) / b1)

    Call it whenever you evaluate, checkpoint or export; keep training from ``params``.
    Equal to the parameters the authors' PyTorch optimizers hold after ``.eval()``.

    Args:
        state: A `ScheduleFreeState`, or an optimizer state holding exactly one (a
            `chain`'s, a wrapper's).
        params: The parameters the training loop holds (``y``).

    Returns:
        ``x``, a tree like ``params``, each leaf in its parameter's dtype.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.schedule_free(gradchain.sgd(1.0), 1.0, b1=0.5)
        >>> y = jnp.array([1.0, 2.0])
        >>> updates, state = tx.update(jnp.array([1.0, 1.0]), tx.init(y), y)
        >>> y = gradchain.apply_updates(y, updates)        # first step: z = x = y = y0 - g
        >>> updates, state = tx.update(jnp.array([2.0, 2.0]), state, y)
        >>> y = gradchain.apply_updates(y, updates)        # z = (-2, -1) and x = (z1 + z2) / 2
        >>> y, gradchain.schedule_free_eval_params(state, y)
        (Array([-1.5, -0.5], dtype=float32), Array([-1.,  0.], dtype=float32))

    References:
        Defazio et al., "The Road Less Scheduled", NeurIPS 2024 (arXiv:2405.15682).
    """
    fn = "schedule_free_eval_params"
    found = find_states(state, ScheduleFreeState)
    if len(found) != 1:
        raise ValueError(
            f"{fn}: `state` must be a ScheduleFreeState or hold exactly one, got "
            f"{'none' if not found else len(found)} in {type(state).__name__}."
        )
    sf = found[0][1]
    b1 = concrete_scalar(sf.b1)
    if b1 is not None and b1 == 0:
        raise ValueError(f"{fn}: the state's `b1` must be > 0, got {b1!r}.")
    check_tree_match(fn, params, sf.z, "the state's `z`")

    def leaf(y, z):
        c = Compute(y, z)
        b = c(sf.b1)
        return (store(c(z) + (c(y) - c(z)) / b, y),)

    (x,) = map_leaves(leaf, params, sf.z)
    return x
