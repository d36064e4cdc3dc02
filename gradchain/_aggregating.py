"""Aggregating per-example gradients (Optax's ``optax.experimental.aggregating``).

An `Aggregator` is a transformation whose ``update`` takes *per-example* updates (a
batch axis in front of each parameter's shape, from ``jax.vmap(jax.grad(loss))``) and
returns one update per parameter. `process` chains a per-example preprocessor, an
aggregator and an ordinary optimizer; aggregators may accumulate over several
micro-batches (a ``ready`` flag in their state says when the postprocessor runs), or
pass the per-example variance on to `track_per_element_mean_and_variance_with_ema`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, as_transformation, identity
from gradchain._chain import chain
from gradchain._numerics import cond, hp, is_tracer, safe_increment, zero_count
from gradchain._tree_dtypes import tree_zeros_like
from gradchain._tree_math import tree_scale, tree_where
from gradchain._tree_state import tree_get
from gradchain._utilities import init_empty_state
from gradchain._validate import check_decay, check_flag, check_int

__all__ = [
    "AccumulateAvgUpdatesState",
    "AggregatedUpdates",
    "Aggregator",
    "AggregatorUpdateFn",
    "MaybeAxis",
    "PerElementMeanAndSumSqDiffGradsState",
    "PerElementMeanAndVarianceEMAState",
    "PerElementUpdates",
    "accumulate_avg_updates",
    "add_mean_variance_to_opt",
    "average_incrementally_updates",
    "average_per_element_updates",
    "get_batch_size_from_per_elt_updates",
    "get_per_element_mean_and_sum_sq_diff_grads",
    "get_unbiased_mean_and_variance_ema",
    "process",
    "track_per_element_mean_and_variance_with_ema",
]

PerElementUpdates = Any  # a tree of per-example updates: (*batch_shape, *param_shape) leaves
AggregatedUpdates = Any  # a tree of updates shaped like the parameters
MaybeAxis = int | Sequence[int] | None


class AggregatorUpdateFn(Protocol):
    """``update(per_elt_updates, state, params=None, **extra_args) -> (updates, state)``."""

    def __call__(
        self, per_elt_updates: PerElementUpdates, state: Any, params: Any = None, **extra_args: Any
    ) -> tuple[AggregatedUpdates, Any]: ...


class Aggregator(GradientTransformation):
    """A transformation from per-example updates to one update per parameter.

    Built like any transformation, ``Aggregator(init, update)``; being its own type
    tells `process` (and the reader) that ``update`` expects per-example updates.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> agg = gradchain.experimental.aggregating.average_per_element_updates()
        >>> agg.update({"w": jnp.array([[1.0, 2.0], [3.0, 4.0]])}, agg.init({"w": jnp.zeros(2)}))[0]
        {'w': Array([2., 3.], dtype=float32)}
    """

    __slots__ = ()


def _axes(fn: str, per_elt_axis: Any) -> int | tuple[int, ...]:
    if isinstance(per_elt_axis, int) and not isinstance(per_elt_axis, bool):
        return per_elt_axis
    if (
        isinstance(per_elt_axis, (tuple, list))
        and per_elt_axis
        and all(isinstance(a, int) and not isinstance(a, bool) for a in per_elt_axis)
    ):
        return tuple(per_elt_axis)
    raise TypeError(
        f"{fn}: `per_elt_axis` must be an int or a non-empty sequence of ints, got {per_elt_axis!r}."
    )


def process(
    preprocessor: GradientTransformation,
    aggregator: GradientTransformation,
    postprocessor: GradientTransformation,
    aggregator_has_aux: bool = False,
) -> GradientTransformation:
    """Per-example preprocessing, aggregation, then an ordinary optimizer.

    ::

        u_k, s1 = preprocessor(g_k)                    (per-example updates)
        a, s2   = aggregator(u_1..u_B)                 (a, aux with aggregator_has_aux)
        out, s3 = postprocessor(a, **extra_args, **aux)  if tree_get(s2, "ready", True)
        out     = 0, s3 unchanged                        otherwise

    Args:
        preprocessor: Maps per-example gradients to per-example updates.
        aggregator: Maps per-example updates to one update (an `Aggregator`).
        postprocessor: The optimizer applied to the aggregated update.
        aggregator_has_aux: The aggregator returns ``(update, aux)``; ``aux`` (a dict)
            is passed to the postprocessor as extra arguments.

    Returns:
        An `Aggregator` if ``aggregator`` is one, else a `GradientTransformation`; its
        state is ``(preprocessor state, aggregator state, postprocessor state)``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> agg = gradchain.experimental.aggregating
        >>> opt = agg.process(gradchain.identity(), agg.average_per_element_updates(), gradchain.sgd(0.1))
        >>> per_example = {"w": jnp.array([[1.0, 0.0], [3.0, 2.0]])}
        >>> opt.update(per_example, opt.init({"w": jnp.zeros(2)}))[0]
        {'w': Array([-0.2, -0.1], dtype=float32)}
    """
    fn = "process"
    is_aggregator = isinstance(aggregator, Aggregator)
    pre = as_transformation(fn, "preprocessor", preprocessor)
    agg = as_transformation(fn, "aggregator", aggregator)
    post = as_transformation(fn, "postprocessor", postprocessor)
    has_aux = check_flag(fn, "aggregator_has_aux", aggregator_has_aux)

    def init_fn(params):
        return pre.init(params), agg.init(params), post.init(params)

    def update_fn(updates, state, params=None, **extra_args):
        pre_state, agg_state, post_state = state
        updates, pre_state = pre.update(updates, pre_state, params, **extra_args)
        aggregated, agg_state = agg.update(updates, agg_state, params, **extra_args)
        if has_aux:
            aggregated, aux = aggregated
            extra_args = extra_args | aux
        ready = tree_get(agg_state, "ready", True)
        updates, post_state = cond(
            ready,
            lambda g, s, p, kw: post.update(g, s, p, **kw),
            lambda g, s, p, kw: (tree_zeros_like(g), s),
            aggregated,
            post_state,
            params,
            extra_args,
        )
        return updates, (pre_state, agg_state, post_state)

    return (Aggregator if is_aggregator else GradientTransformation)(init_fn, update_fn)


def average_per_element_updates(per_elt_axis: int | Sequence[int] = 0) -> Aggregator:
    """Average the per-example updates over their batch axis: ``out = mean(u, axis=per_elt_axis)``.

    Args:
        per_elt_axis: The batch axis (or axes) of every leaf.

    Returns:
        An `Aggregator` with state ``EmptyState()``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> agg = gradchain.experimental.aggregating.average_per_element_updates()
        >>> agg.update(jnp.array([[1.0], [3.0]]), agg.init(jnp.zeros(1)))[0]
        Array([2.], dtype=float32)
    """
    axis = _axes("average_per_element_updates", per_elt_axis)

    def update_fn(updates, state, params=None, **extra_args):
        return jax.tree.map(lambda u: jnp.mean(u, axis=axis), updates), state

    return Aggregator(init_empty_state, update_fn)


class AccumulateAvgUpdatesState(NamedTuple):
    """State of `accumulate_avg_updates`."""

    micro_step: jax.Array  # int32 scalar: micro-batches averaged since the last output
    ready: jax.Array  # bool scalar: the last update was the average (not zeros)
    avg_grad: Any  # per-param tree: the running average, in the param dtype


def accumulate_avg_updates(accumulation_steps: int) -> GradientTransformation:
    """Average the updates of ``accumulation_steps`` calls, returned on the last one (zeros before).

    ::

        a_k = a_{k-1} + (u_k - a_{k-1}) / k               (k = 1 .. accumulation_steps)
        out = a_k and reset (ready)  if k == accumulation_steps,  else 0

    Args:
        accumulation_steps: The number of micro-batches per update, ``>= 1`` (1: the
            identity, without state).

    Returns:
        A `GradientTransformation` with state `AccumulateAvgUpdatesState`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.experimental.aggregating.accumulate_avg_updates(2)
        >>> u1, s = tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))
        >>> u2, s = tx.update(jnp.array([3.0]), s)
        >>> u1, u2, bool(s.ready)
        (Array([0.], dtype=float32), Array([2.], dtype=float32), True)
    """
    steps = check_int("accumulate_avg_updates", "accumulation_steps", accumulation_steps, 1)
    if steps == 1:
        return identity()

    def init_fn(params):
        return AccumulateAvgUpdatesState(zero_count(), jnp.asarray(False), tree_zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        k = state.micro_step + 1
        avg = jax.tree.map(lambda u, a: a + (u - a) / k.astype(a.dtype), updates, state.avg_grad)
        done = AccumulateAvgUpdatesState(zero_count(), jnp.asarray(True), tree_zeros_like(avg))
        pending = AccumulateAvgUpdatesState(k, jnp.asarray(False), avg)
        return tree_where(k == steps, (avg, done), (tree_zeros_like(avg), pending))

    return GradientTransformation(init_fn, update_fn)


def average_incrementally_updates(per_elt_axis: MaybeAxis, accumulation_steps: int) -> GradientTransformation:
    """Average over the batch axis (unless ``per_elt_axis`` is None), then over ``accumulation_steps`` calls.

    ::

        a   = mean(u, axis=per_elt_axis)         (skipped for per_elt_axis=None)
        out = accumulate_avg_updates(accumulation_steps)(a)

    Args:
        per_elt_axis: The batch axis, or ``None`` for updates already averaged.
        accumulation_steps: The number of micro-batches per update, ``>= 1``.

    Returns:
        An `Aggregator` (a `GradientTransformation` for ``per_elt_axis=None``).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> agg = gradchain.experimental.aggregating.average_incrementally_updates(0, 1)
        >>> agg.update(jnp.array([[1.0], [3.0]]), agg.init(jnp.zeros(1)))[0]
        Array([2.], dtype=float32)
    """
    accumulate = accumulate_avg_updates(accumulation_steps)
    if per_elt_axis is None:
        return accumulate
    both = chain(average_per_element_updates(per_elt_axis), accumulate)
    return Aggregator(both.init, both.update)


def get_batch_size_from_per_elt_updates(per_elt_updates: Any, per_elt_axis: int | Sequence[int]) -> int:
    """The number of examples in per-example updates (the size of the batch axis or axes).

    Args:
        per_elt_updates: A tree of per-example updates.
        per_elt_axis: The batch axis (or axes) of every leaf.

    Returns:
        The batch size, a Python int (every leaf must agree).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.experimental.aggregating.get_batch_size_from_per_elt_updates(jnp.zeros((8, 3)), 0)
        8
    """
    fn = "get_batch_size_from_per_elt_updates"
    axis = _axes(fn, per_elt_axis)
    axes = (axis,) if isinstance(axis, int) else axis
    sizes = [math.prod(jnp.shape(u)[a] for a in axes) for u in jax.tree.leaves(per_elt_updates)]
    if not sizes or any(s != sizes[0] for s in sizes):
        raise ValueError(f"{fn}: `per_elt_updates` must hold leaves with one batch size, got sizes {sizes}.")
    return sizes[0]


class PerElementMeanAndSumSqDiffGradsState(NamedTuple):
    """State of `get_per_element_mean_and_sum_sq_diff_grads` with ``accumulation_steps > 1``."""

    micro_step: jax.Array  # int32 scalar: micro-batches merged since the last output
    ready: jax.Array  # bool scalar: the last update was the merged statistics
    mean_grads: Any  # per-param tree: the running mean, in the param dtype
    sum_sq_diff_grads: Any  # per-param tree: the running sum of squared deviations


def _batch_stats(updates: Any, axis: Any) -> tuple[Any, Any]:
    mean = jax.tree.map(lambda x: jnp.mean(x, axis=axis, keepdims=True), updates)
    ssd = jax.tree.map(lambda x, m: jnp.sum(jnp.square(x - m), axis=axis), updates, mean)
    return jax.tree.map(lambda m: m.squeeze(axis=axis), mean), ssd


def get_per_element_mean_and_sum_sq_diff_grads(
    per_elt_axis: int | Sequence[int] = 0, accumulation_steps: int = 1
) -> Aggregator:
    """The mean of the per-example updates and the sum of their squared deviations (merged over micro-batches).

    Per micro-batch of ``b`` examples, and merged over ``k`` micro-batches (Chan et al.)::

        mean_b = mean(u),  ssd_b = sum((u - mean_b)**2)
        d      = mean_b - mean_{k-1}
        mean_k = mean_{k-1} + d / k
        ssd_k  = ssd_{k-1} + ssd_b + d**2 * (k - 1) * b / k

    Returns ``(mean, {"sum_sq_diff_grads": ssd, "sample_size": k * b})`` on the last
    micro-batch (zeros before): use with ``process(..., aggregator_has_aux=True)``.

    Args:
        per_elt_axis: The batch axis (or axes) of every leaf.
        accumulation_steps: The number of micro-batches per update, ``>= 1``.

    Returns:
        An `Aggregator` (state `PerElementMeanAndSumSqDiffGradsState`, or
        ``EmptyState()`` for one micro-batch).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> agg = gradchain.experimental.aggregating.get_per_element_mean_and_sum_sq_diff_grads()
        >>> (mean, aux), _ = agg.update(jnp.array([[1.0], [3.0]]), agg.init(jnp.zeros(1)))
        >>> mean, aux["sum_sq_diff_grads"], aux["sample_size"]
        (Array([2.], dtype=float32), Array([2.], dtype=float32), 2)

    References:
        Chan, Golub & LeVeque, "Algorithms for computing the sample variance", 1983.
    """
    fn = "get_per_element_mean_and_sum_sq_diff_grads"
    axis = _axes(fn, per_elt_axis)
    steps = check_int(fn, "accumulation_steps", accumulation_steps, 1)

    if steps == 1:

        def single(updates, state, params=None, **extra_args):
            b = get_batch_size_from_per_elt_updates(updates, axis)
            mean, ssd = _batch_stats(updates, axis)
            return (mean, {"sum_sq_diff_grads": ssd, "sample_size": b}), state

        return Aggregator(init_empty_state, single)

    def init_fn(params):
        zeros = tree_zeros_like(params)
        return PerElementMeanAndSumSqDiffGradsState(zero_count(), jnp.asarray(False), zeros, zeros)

    def update_fn(updates, state, params=None, **extra_args):
        b = get_batch_size_from_per_elt_updates(updates, axis)
        k = state.micro_step + 1
        batch_mean, batch_ssd = _batch_stats(updates, axis)
        delta = jax.tree.map(lambda m, a: m - a, batch_mean, state.mean_grads)
        mean = jax.tree.map(lambda a, d: a + d / k.astype(d.dtype), state.mean_grads, delta)
        factor = (state.micro_step * b) / k
        ssd = jax.tree.map(
            lambda a, s, d: a + s + d**2 * factor.astype(d.dtype), state.sum_sq_diff_grads, batch_ssd, delta
        )
        out = (mean, {"sum_sq_diff_grads": ssd, "sample_size": b * k})
        done = PerElementMeanAndSumSqDiffGradsState(
            zero_count(), jnp.asarray(True), tree_zeros_like(mean), tree_zeros_like(ssd)
        )
        pending = PerElementMeanAndSumSqDiffGradsState(k, jnp.asarray(False), mean, ssd)
        return tree_where(k == steps, (out, done), (tree_zeros_like(out), pending))

    return Aggregator(init_fn, update_fn)


class PerElementMeanAndVarianceEMAState(NamedTuple):
    """State of `track_per_element_mean_and_variance_with_ema`."""

    count: jax.Array  # int32 scalar: updates tracked
    ema_decay: jax.Array  # float scalar: the decay, for the bias correction
    mean_grads_ema: Any  # per-param tree: EMA of the mean gradient
    variance_grads_ema: Any  # per-param tree: EMA of the per-example variance


def track_per_element_mean_and_variance_with_ema(ema_decay: Any = 0.9) -> GradientTransformation:
    """Track EMAs of the mean gradient and of the per-example variance; the updates pass unchanged.

    Reads the extra arguments ``sum_sq_diff_grads`` and ``sample_size`` that
    `get_per_element_mean_and_sum_sq_diff_grads` passes on through `process`::

        mean_t = (1 - ema_decay) * u + ema_decay * mean_{t-1}
        var_t  = (1 - ema_decay) * sum_sq_diff_grads / (sample_size - 1) + ema_decay * var_{t-1}

    Args:
        ema_decay: The EMA decay, in [0, 1).

    Returns:
        A `GradientTransformation` with state `PerElementMeanAndVarianceEMAState` (see
        `get_unbiased_mean_and_variance_ema`).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.experimental.aggregating.track_per_element_mean_and_variance_with_ema(0.5)
        >>> _, s = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)), sum_sq_diff_grads=jnp.array([4.0]), sample_size=3)
        >>> s.mean_grads_ema, s.variance_grads_ema
        (Array([1.], dtype=float32), Array([1.], dtype=float32))
    """
    fn = "track_per_element_mean_and_variance_with_ema"
    check_decay(fn, "ema_decay", ema_decay)

    def init_fn(params):
        zeros = tree_zeros_like(params)
        return PerElementMeanAndVarianceEMAState(zero_count(), jnp.asarray(ema_decay), zeros, zeros)

    def update_fn(updates, state, params=None, *, sum_sq_diff_grads=None, sample_size=None, **extra_args):
        if sum_sq_diff_grads is None or sample_size is None:
            raise ValueError(
                f"{fn}: `update` needs the extra arguments `sum_sq_diff_grads` and `sample_size` (chain it after "
                "get_per_element_mean_and_sum_sq_diff_grads in process(..., aggregator_has_aux=True)), got None."
            )
        if not is_tracer(sample_size) and jnp.ndim(sample_size) == 0 and int(sample_size) < 2:
            raise ValueError(
                f"{fn}: `sample_size` must be >= 2 (a variance needs two examples), got {sample_size!r}."
            )

        def ema(x, y):
            d = hp(ema_decay, y.dtype)
            return (1 - d) * x + d * y

        mean = jax.tree.map(ema, updates, state.mean_grads_ema)
        var = jax.tree.map(
            ema, tree_scale(1 / (sample_size - 1), sum_sq_diff_grads), state.variance_grads_ema
        )
        return updates, state._replace(
            count=safe_increment(state.count), mean_grads_ema=mean, variance_grads_ema=var
        )

    return GradientTransformation(init_fn, update_fn)


def get_unbiased_mean_and_variance_ema(state: Any) -> tuple[Any, Any]:
    """The bias-corrected mean and variance EMAs of the `PerElementMeanAndVarianceEMAState` inside ``state``.

    ::

        mean = mean_grads_ema / (1 - ema_decay**count)
        var  = variance_grads_ema / (1 - ema_decay**count)

    Args:
        state: An optimizer state holding one `PerElementMeanAndVarianceEMAState`.

    Returns:
        ``(mean, variance)``, trees like the parameters.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.experimental.aggregating.track_per_element_mean_and_variance_with_ema(0.5)
        >>> _, s = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)), sum_sq_diff_grads=jnp.array([4.0]), sample_size=3)
        >>> gradchain.experimental.aggregating.get_unbiased_mean_and_variance_ema(s)
        (Array([2.], dtype=float32), Array([2.], dtype=float32))
    """
    fn = "get_unbiased_mean_and_variance_ema"
    s = tree_get(state, "PerElementMeanAndVarianceEMAState", None)
    if s is None:
        raise ValueError(
            f"{fn}: `state` must hold a PerElementMeanAndVarianceEMAState (from "
            "track_per_element_mean_and_variance_with_ema or add_mean_variance_to_opt), got none."
        )
    count = jnp.asarray(s.count)
    if not is_tracer(count) and int(count) == 0:
        raise ValueError(f"{fn}: `state` has tracked no update yet (count 0): the EMAs are 0/0.")
    decay = jnp.asarray(s.ema_decay)
    corr = 1 - decay ** count.astype(decay.dtype)
    unbias = lambda x: x / corr.astype(x.dtype)
    return jax.tree.map(unbias, s.mean_grads_ema), jax.tree.map(unbias, s.variance_grads_ema)


def add_mean_variance_to_opt(
    opt: GradientTransformation,
    ema_decay: Any = 0.9,
    per_elt_axis: int | Sequence[int] = 0,
    accumulation_steps: int = 1,
) -> GradientTransformation:
    """``opt`` on the mean of per-example gradients, tracking EMAs of their mean and variance.

    ``process(identity(), get_per_element_mean_and_sum_sq_diff_grads(per_elt_axis,
    accumulation_steps), chain(track_per_element_mean_and_variance_with_ema(ema_decay),
    opt), aggregator_has_aux=True)``; read the statistics with
    `get_unbiased_mean_and_variance_ema`.

    Args:
        opt: The optimizer.
        ema_decay: The EMA decay, in [0, 1).
        per_elt_axis: The batch axis (or axes) of the per-example gradients.
        accumulation_steps: The number of micro-batches per update, ``>= 1``.

    Returns:
        An `Aggregator` taking per-example gradients.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> agg = gradchain.experimental.aggregating
        >>> opt = agg.add_mean_variance_to_opt(gradchain.sgd(0.1), ema_decay=0.5)
        >>> u, s = opt.update(jnp.array([[1.0], [3.0], [5.0]]), opt.init(jnp.zeros(1)))
        >>> u, agg.get_unbiased_mean_and_variance_ema(s)
        (Array([-0.3], dtype=float32), (Array([3.], dtype=float32), Array([4.], dtype=float32)))
    """
    return process(
        identity(),
        get_per_element_mean_and_sum_sq_diff_grads(per_elt_axis, accumulation_steps),
        chain(track_per_element_mean_and_variance_with_ema(ema_decay), opt),
        aggregator_has_aux=True,
    )
