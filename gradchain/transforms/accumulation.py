"""Gradient accumulation: larger effective batches in a fixed memory budget.

Two tools, for two situations:

- `accumulate_gradients` wraps an optimizer so that it steps once every ``k`` calls,
  on the mean of the ``k`` gradients it was given (Optax's ``MultiSteps``), for when
  each micro-batch is a separate training-loop iteration (one jitted call each);
- `microbatched_value_and_grad` computes the mean loss and gradient of a large batch
  inside one call, looping over micro-batches with ``lax.scan`` so that only one
  micro-batch's activations are alive at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, as_transformation
from gradchain._numerics import compute_dtype, cond, safe_increment, zero_count
from gradchain._validate import check_dtype, check_scalar, check_tree_match

__all__ = ["AccumulateGradientsState", "accumulate_gradients", "microbatched_value_and_grad"]


class AccumulateGradientsState(NamedTuple):
    """State of `accumulate_gradients`."""

    mini_step: jax.Array  # int32 scalar: gradients accumulated since the last inner step
    gradient_step: jax.Array  # int32 scalar: inner steps taken (the argument of an every_k schedule)
    inner_state: Any  # the wrapped transformation's state, advanced on inner steps only
    acc_grads: Any  # per-param tree: running mean (or sum) of the accumulated gradients


def accumulate_gradients(
    inner: GradientTransformation,
    every_k,
    *,
    use_grad_mean: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Accumulate ``k`` gradients, then step ``inner`` once on their mean (Optax's ``MultiSteps``).

    On the first ``k - 1`` of every ``k`` calls the updates are zero and ``inner``'s
    state is untouched; on the ``k``-th, ``inner`` runs on the accumulated mean
    (``jax.lax.cond``: it is not evaluated on the other calls under ``jit``). With
    ``n = mini_step`` and ``k = every_k(gradient_step)`` (or the constant)::

        a_t = a_{t-1} + (g_t - a_{t-1}) / (n + 1)       (use_grad_mean; else a_{t-1} + g_t)
        if n + 1 >= k:  u_t, s_t = inner(a_t, s_{t-1});  a_t = 0;  n = 0;  gradient_step += 1
        else:           u_t = 0;  s_t = s_{t-1};  n = n + 1

    The state holds one extra tree, the running mean ``a`` (no copy of the updates).
    Averaging ``k`` equal-sized micro-batch gradients gives the full-batch gradient,
    so ``k`` calls equal one step on the concatenated batch.

    Args:
        inner: The transformation (optimizer) to step on the accumulated gradients.
        every_k: An integer ``>= 1``, or a schedule ``gradient_step -> int`` (values
            below 1 act as 1; it is read only when a new accumulation starts).
        use_grad_mean: Average the gradients (default); if False, sum them.
        accumulator_dtype: Dtype of the accumulator; default: each parameter's dtype,
            at least float32 (so bfloat16 gradients are accumulated in float32).

    Returns:
        A `GradientTransformation` with state `AccumulateGradientsState(mini_step,
        gradient_step, inner_state, acc_grads)`; ``state.mini_step == 0`` after a call
        means that call stepped ``inner``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.accumulate_gradients(gradchain.scale(-1.0), 2)
        >>> state = tx.init(jnp.zeros(1))
        >>> u, state = tx.update(jnp.array([1.0]), state); u
        Array([0.], dtype=float32)
        >>> u, state = tx.update(jnp.array([3.0]), state); u
        Array([-2.], dtype=float32)
    """
    fn = "accumulate_gradients"
    inner = as_transformation(fn, "inner", inner)
    check_scalar(fn, "every_k", every_k, lo=1, integer=True, allow_schedule=True)
    check_dtype(fn, "accumulator_dtype", accumulator_dtype)
    if not isinstance(use_grad_mean, (bool, np.bool_)):
        raise TypeError(f"{fn}: `use_grad_mean` must be a bool, got {use_grad_mean!r}.")

    def acc_dtype(x):
        return (
            jnp.dtype(accumulator_dtype)
            if accumulator_dtype is not None
            else compute_dtype(jnp.result_type(x))
        )

    def init_fn(params):
        return AccumulateGradientsState(
            mini_step=zero_count(),
            gradient_step=zero_count(),
            inner_state=inner.init(params),
            acc_grads=jax.tree.map(lambda p: jnp.zeros_like(p, dtype=acc_dtype(p)), params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_tree_match(fn, updates, state.acc_grads, "the accumulator `state.acc_grads`")
        k = every_k(state.gradient_step) if callable(every_k) else every_k
        k = k if isinstance(k, int) else jnp.asarray(k).astype(jnp.int32)
        n = state.mini_step

        def accumulate(g, a):
            dt = compute_dtype(a.dtype)
            g, a_c = g.astype(dt), a.astype(dt)
            new = a_c + (g - a_c) / (n + 1).astype(dt) if use_grad_mean else a_c + g
            return new.astype(a.dtype)

        emit = n + 1 >= k

        # The running mean is formed inside each branch (not before the cond): XLA then
        # writes it straight into its output buffer, with no temporary copy of the tree.
        def step(updates, acc, inner_state):
            grads = jax.tree.map(lambda g, a: accumulate(g, a).astype(g.dtype), updates, acc)
            new_updates, inner_state = inner.update(grads, inner_state, params, **extra_args)
            return new_updates, inner_state, jax.tree.map(jnp.zeros_like, acc)

        def wait(updates, acc, inner_state):
            return jax.tree.map(jnp.zeros_like, updates), inner_state, jax.tree.map(accumulate, updates, acc)

        new_updates, inner_state, acc = cond(emit, step, wait, updates, state.acc_grads, state.inner_state)
        return new_updates, AccumulateGradientsState(
            mini_step=jnp.where(emit, zero_count(), safe_increment(n)),
            gradient_step=jnp.where(emit, safe_increment(state.gradient_step), state.gradient_step),
            inner_state=inner_state,
            acc_grads=acc,
        )

    return GradientTransformation(init_fn, update_fn)


def microbatched_value_and_grad(
    loss_fn: Callable[..., Any],
    params: Any,
    batch: Any,
    num_microbatches: int,
    *,
    has_aux: bool = False,
) -> tuple[Any, Any]:
    """Mean loss and mean gradient of a large batch, computed one micro-batch at a time.

    Splits every leaf of ``batch`` along its leading axis into ``n = num_microbatches``
    equal micro-batches ``b_1 .. b_n`` and runs ``jax.value_and_grad(loss_fn)`` on each
    inside ``jax.lax.scan``, so peak memory is that of one micro-batch plus one
    gradient accumulator (not that of the full batch)::

        loss = (1/n) sum_j loss_fn(params, b_j)
        grad = (1/n) sum_j grad_params loss_fn(params, b_j)

    For a ``loss_fn`` that averages over its batch this is the full-batch loss and
    gradient. Sums run in at least float32; results have the dtypes of
    ``jax.value_and_grad``'s.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar loss`` (or ``(loss, aux)`` with
            ``has_aux``).
        params: The pytree to differentiate with respect to.
        batch: A pytree of arrays sharing the leading (batch) axis, whose size must be
            divisible by ``num_microbatches``.
        num_microbatches: An integer ``>= 1``.
        has_aux: ``loss_fn`` returns ``(loss, aux)``; ``aux`` is then returned stacked
            along a new leading axis of size ``num_microbatches``.

    Returns:
        ``(loss, grads)``, or ``((loss, aux), grads)`` with ``has_aux``, as
        ``jax.value_and_grad(loss_fn, has_aux=has_aux)(params, batch)`` would return.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> loss = lambda w, b: jnp.mean((b["x"] * w - b["y"]) ** 2)
        >>> batch = {"x": jnp.arange(8.0), "y": jnp.ones(8)}
        >>> w = jnp.asarray(0.5, jnp.float32)
        >>> l, g = gradchain.microbatched_value_and_grad(loss, w, batch, 4)
        >>> l, g
        (Array(1.875, dtype=float32), Array(10.5, dtype=float32))
        >>> jax.value_and_grad(loss)(w, batch)  # the same, in one pass
        (Array(1.875, dtype=float32), Array(10.5, dtype=float32))
    """
    fn = "microbatched_value_and_grad"
    if not callable(loss_fn):
        raise TypeError(f"{fn}: `loss_fn` must be callable, got {loss_fn!r}.")
    if isinstance(num_microbatches, (bool, np.bool_)) or not isinstance(num_microbatches, (int, np.integer)):
        raise TypeError(f"{fn}: `num_microbatches` must be a Python int, got {num_microbatches!r}.")
    check_scalar(fn, "num_microbatches", num_microbatches, lo=1, integer=True)
    n = int(num_microbatches)
    leaves = jax.tree.leaves(batch)
    if not leaves:
        raise ValueError(f"{fn}: `batch` must contain at least one array, got {batch!r}.")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"{fn}: every leaf of `batch` must share one leading (batch) axis, got leading sizes "
            f"{[jnp.shape(x)[0] if jnp.ndim(x) else 'scalar' for x in leaves]}."
        )
    size = sizes.pop()
    if size % n:
        raise ValueError(
            f"{fn}: the batch size {size} must be divisible by `num_microbatches`, got {n} "
            f"(a remainder of {size % n}); drop or pad examples, or pick a divisor of {size}."
        )
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=has_aux)
    micro = jax.tree.map(lambda x: jnp.reshape(x, (n, size // n) + jnp.shape(x)[1:]), batch)
    first = jax.tree.map(lambda x: x[0], micro)
    out_shape = jax.eval_shape(value_and_grad, params, first)
    (loss_shape, _), grad_shape = out_shape if has_aux else ((out_shape[0], None), out_shape[1])

    def zeros(s):
        return jnp.zeros(s.shape, compute_dtype(s.dtype))

    def body(carry, b):
        loss_sum, grad_sum = carry
        out, g = value_and_grad(params, b)
        loss, aux = out if has_aux else (out, None)
        loss_sum = loss_sum + jnp.asarray(loss).astype(loss_sum.dtype)
        grad_sum = jax.tree.map(lambda s, x: s + x.astype(s.dtype), grad_sum, g)
        return (loss_sum, grad_sum), aux

    init = (zeros(loss_shape), jax.tree.map(zeros, grad_shape))
    (loss_sum, grad_sum), aux = jax.lax.scan(body, init, micro)
    mean = lambda s, like: (s / jnp.asarray(n, s.dtype)).astype(like.dtype)
    loss = mean(loss_sum, loss_shape)
    grads = jax.tree.map(mean, grad_sum, grad_shape)
    return ((loss, aux) if has_aux else loss), grads
