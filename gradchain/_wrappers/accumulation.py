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
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, as_transformation
from gradchain._numerics import abs_sq, compute_dtype, cond, hp, safe_increment, zero_count
from gradchain._tree import find_states, stats_dtype, unwrap_variable
from gradchain._validate import check_dtype, check_scalar, check_tree_match

__all__ = [
    "AccumulateGradientsState",
    "ShouldSkipUpdateFunction",
    "accumulate_gradients",
    "has_updated",
    "microbatched_value_and_grad",
    "skip_large_updates",
    "skip_not_finite",
]


class AccumulateGradientsState(NamedTuple):
    """State of `accumulate_gradients`."""

    mini_step: jax.Array  # int32 scalar: gradients accumulated since the last inner step
    gradient_step: jax.Array  # int32 scalar: inner steps taken (the argument of an every_k schedule)
    inner_state: Any  # the wrapped transformation's state, advanced on inner steps only
    acc_grads: Any  # per-param tree: running mean (or sum) of the accumulated gradients
    skip_state: Any  # what `should_skip_update_fn` returned last (`()` without one)
    emitted: jax.Array  # bool scalar: whether the latest call stepped the inner transformation


class ShouldSkipUpdateFunction(Protocol):
    """The type of `accumulate_gradients`' ``should_skip_update_fn`` (Optax's name).

    ``fn(updates, gradient_step, params) -> (should_skip, skip_state)``: a bool scalar
    array (True: ignore this call's updates, as if the call never happened) and a
    pytree of arrays to store in ``state.skip_state`` (for logging), of the same
    structure, shapes and dtypes on every call.
    """

    def __call__(self, updates: Any, gradient_step: jax.Array, params: Any) -> tuple[jax.Array, Any]: ...


def _no_skip(updates, gradient_step, params):
    del updates, gradient_step, params
    return jnp.zeros([], jnp.bool_), ()


def skip_not_finite(updates: Any, gradient_step: Any, params: Any) -> tuple[jax.Array, dict]:
    """A ``should_skip_update_fn`` for `accumulate_gradients`: skip updates holding a NaN or Inf.

    Over all leaves ``g`` of ``updates``::

        num_not_finite = sum(count(not isfinite(g)))
        should_skip = num_not_finite > 0

    Args:
        updates: The updates (gradients) of one call.
        gradient_step: Unused (the signature of `ShouldSkipUpdateFunction`).
        params: Unused.

    Returns:
        ``(should_skip, {"should_skip": should_skip, "num_not_finite": num_not_finite})``,
        a bool scalar and an int32 count.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> skip, info = gradchain.skip_not_finite({"a": jnp.array([1.0, jnp.nan, jnp.inf])}, 0, None)
        >>> bool(skip), int(info["num_not_finite"])
        (True, 2)
    """
    del gradient_step, params
    num = zero_count()
    for g in jax.tree.leaves(updates):
        g = jnp.asarray(g)
        if jnp.issubdtype(g.dtype, jnp.inexact):
            num = num + jnp.sum(~jnp.isfinite(g), dtype=jnp.int32)
    should_skip = num > 0
    return should_skip, {"should_skip": should_skip, "num_not_finite": num}


def skip_large_updates(
    updates: Any, gradient_step: Any, params: Any, max_squared_norm
) -> tuple[jax.Array, dict]:
    """A ``should_skip_update_fn`` for `accumulate_gradients`: skip updates of a large norm.

    Bind ``max_squared_norm`` with ``functools.partial``. Over all leaves ``g``::

        norm_squared = sum over leaves of sum(|g|**2)
        should_skip = not (norm_squared < max_squared_norm)      (so NaN is skipped too)

    The squares are summed in at least float32 (Optax sums a bfloat16 tree in bfloat16,
    and squares complex entries without ``abs``).

    Args:
        updates: The updates (gradients) of one call.
        gradient_step: Unused (the signature of `ShouldSkipUpdateFunction`).
        params: Unused.
        max_squared_norm: The largest accepted squared global norm.

    Returns:
        ``(should_skip, {"should_skip": should_skip, "norm_squared": norm_squared})``.

    Examples:
        >>> import functools, jax.numpy as jnp, gradchain
        >>> skip = functools.partial(gradchain.skip_large_updates, max_squared_norm=10.0)
        >>> should_skip, info = skip(jnp.array([3.0, 4.0]), 0, None)
        >>> bool(should_skip), info["norm_squared"]
        (True, Array(25., dtype=float32))
    """
    del gradient_step, params
    check_scalar("skip_large_updates", "max_squared_norm", max_squared_norm, allow_inf=True)
    leaves = [jnp.asarray(g) for g in jax.tree.leaves(updates)]
    dt = stats_dtype(leaves)
    norm_sq = jnp.zeros([], dt)
    for g in leaves:
        norm_sq = norm_sq + jnp.sum(abs_sq(g.astype(compute_dtype(g.dtype)))).astype(dt)
    should_skip = ~(norm_sq < hp(max_squared_norm, dt))
    return should_skip, {"should_skip": should_skip, "norm_squared": norm_sq}


def accumulate_gradients(
    inner: GradientTransformation,
    every_k,
    *,
    use_grad_mean: bool = True,
    accumulator_dtype: Any = None,
    should_skip_update_fn: ShouldSkipUpdateFunction | None = None,
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

    With ``should_skip_update_fn`` (e.g. `skip_not_finite`), a call whose updates it
    rejects returns zeros and changes nothing but ``state.skip_state``: it is as if
    the call never happened. `has_updated` says whether the latest call stepped
    ``inner`` (Optax's ``MultiSteps.has_updated``).

    Args:
        inner: The transformation (optimizer) to step on the accumulated gradients.
        every_k: An integer ``>= 1``, or a schedule ``gradient_step -> int`` (values
            below 1 act as 1; it is read only when a new accumulation starts).
        use_grad_mean: Average the gradients (default); if False, sum them.
        accumulator_dtype: Dtype of the accumulator; default: each parameter's dtype,
            at least float32 (so bfloat16 gradients are accumulated in float32).
        should_skip_update_fn: ``None``, or ``fn(updates, gradient_step, params) ->
            (should_skip, skip_state)`` (see `ShouldSkipUpdateFunction`): calls it
            rejects are ignored. It is also called once by ``init``, on zeros shaped
            like the parameters, to build ``state.skip_state``.

    Returns:
        A `GradientTransformation` with state `AccumulateGradientsState(mini_step,
        gradient_step, inner_state, acc_grads, skip_state, emitted)`; ``emitted`` (read
        it with `has_updated`) says whether the latest call stepped ``inner``.

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
    if should_skip_update_fn is None:
        should_skip_update_fn = _no_skip
    elif not callable(should_skip_update_fn):
        raise TypeError(
            f"{fn}: `should_skip_update_fn` must be callable or None, got {should_skip_update_fn!r}."
        )

    def should_skip(updates, gradient_step, params):
        out = should_skip_update_fn(updates, gradient_step, params)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(
                f"{fn}: `should_skip_update_fn` must return a pair (should_skip, skip_state), got {out!r}."
            )
        skip = jnp.asarray(out[0])
        if skip.dtype != jnp.bool_ or skip.shape != ():
            raise ValueError(
                f"{fn}: `should_skip_update_fn` must return a bool scalar as `should_skip`, got an "
                f"array of dtype {skip.dtype} and shape {skip.shape}."
            )
        return skip, out[1]

    def acc_dtype(x):
        return (
            jnp.dtype(accumulator_dtype)
            if accumulator_dtype is not None
            else compute_dtype(jnp.result_type(x))
        )

    def init_fn(params):
        _, skip_state = should_skip(jax.tree.map(jnp.zeros_like, params), zero_count(), params)
        return AccumulateGradientsState(
            mini_step=zero_count(),
            gradient_step=zero_count(),
            inner_state=inner.init(params),
            acc_grads=jax.tree.map(lambda p: jnp.zeros_like(p, dtype=acc_dtype(p)), params),
            skip_state=skip_state,
            emitted=jnp.zeros([], jnp.bool_),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_tree_match(fn, updates, state.acc_grads, "the accumulator `state.acc_grads`")
        if should_skip_update_fn is _no_skip:
            return accumulate_step(updates, state, params, extra_args)
        skip, skip_state = should_skip(updates, state.gradient_step, params)

        def skipped(updates, state):
            zeros = jax.tree.map(jnp.zeros_like, updates)
            return zeros, state._replace(skip_state=skip_state, emitted=jnp.zeros([], jnp.bool_))

        def accepted(updates, state):
            new_updates, new_state = accumulate_step(updates, state, params, extra_args)
            return new_updates, new_state._replace(skip_state=skip_state)

        return cond(skip, skipped, accepted, updates, state)

    def accumulate_step(updates, state, params, extra_args):
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
            skip_state=state.skip_state,
            emitted=jnp.asarray(emit),
        )

    return GradientTransformation(init_fn, update_fn)


def has_updated(state: Any) -> jax.Array:
    """Whether the latest call of an `accumulate_gradients` transformation stepped its inner one.

    Optax's ``MultiSteps.has_updated``, which reads ``mini_step == 0 and gradient_step
    > 0``: that is also True after a call that ``should_skip_update_fn`` rejected right
    after an inner step; gradchain keeps the answer in ``state.emitted`` instead.

    Args:
        state: An `AccumulateGradientsState`, or any state holding exactly one (a
            `chain`/`named_chain` state, a ``flax.nnx.Optimizer``'s ``opt_state``).

    Returns:
        A bool scalar array: True iff the latest ``update`` returned ``inner``'s updates
        (False for a freshly initialised state).

    Raises:
        ValueError: If ``state`` holds no `AccumulateGradientsState`, or several.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.accumulate_gradients(gradchain.sgd(0.1), 2)
        >>> state = tx.init(jnp.zeros(1))
        >>> for g in (1.0, 3.0):
        ...     _, state = tx.update(jnp.array([g]), state)
        ...     print(bool(gradchain.has_updated(state)))
        False
        True
    """
    found = [s for _, s in find_states(state, AccumulateGradientsState)]
    if len(found) != 1:
        what = "no AccumulateGradientsState" if not found else f"{len(found)} AccumulateGradientsStates"
        raise ValueError(
            f"has_updated: `state` must hold exactly one AccumulateGradientsState, got {what} in a "
            f"{type(state).__name__}; pass the state of a transformation built with "
            "`gradchain.accumulate_gradients(...)`" + ("." if not found else ", or the one you mean.")
        )
    return jnp.asarray(unwrap_variable(found[0].emitted))


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
    size: int = int(sizes.pop() or 0)
    if size % n:
        raise ValueError(
            f"{fn}: the batch size {size} must be divisible by `num_microbatches`, got {n} "
            f"(a remainder of {size % n}); drop or pad examples, or pick a divisor of {size}."
        )
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=has_aux)
    micro = jax.tree.map(lambda x: jnp.reshape(x, (n, size // n, *jnp.shape(x)[1:])), batch)
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
