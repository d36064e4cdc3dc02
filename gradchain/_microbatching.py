"""Microbatched vmap and per-example gradients (Optax's ``optax.microbatching``).

`microbatch` (the top-level `gradchain.microbatch`) runs a function over a large batch
one micro-batch at a time; `micro_vmap` is ``jax.vmap`` run that way, and `micro_grad`
computes, transforms and reduces per-example gradients on top of it. How the results of
the micro-batches combine is an `AccumulationType` (``SUM``, ``MEAN``, ``RUNNING_MEAN``,
``CONCAT``) or a custom `Accumulator`, per output subtree (a pytree prefix of the
output). `reshape_batch_axis` is the strided split they use (micro-batch ``j`` holds
examples ``j, j + n, j + 2n, ...``), which keeps a sharded batch axis sharded.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._validate import check_flag, check_int
from gradchain._wrappers.microbatch import microbatch

__all__ = ["AccumulationType", "Accumulator", "micro_grad", "micro_vmap", "reshape_batch_axis"]


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """A custom way to combine the results of the micro-batches.

    For results ``x_0, ..., x_{n-1}`` it computes::

        carry = init(shape_dtype_of(x_0))
        carry = update(carry, x_i, i)        for i = 0, ..., n - 1
        out   = finalize(carry)

    and, inside one micro-batch of `micro_vmap`, ``aggregate(per_example_values)``
    reduces the vmapped axis 0.

    Attributes:
        init: ``init(shape_dtype_tree) -> carry``.
        update: ``update(carry, value, index) -> carry``.
        finalize: ``finalize(carry) -> result``.
        aggregate: ``aggregate(values_with_a_leading_axis) -> value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> largest = gradchain.microbatching.Accumulator(
        ...     init=lambda s: jnp.full(s.shape, -jnp.inf, s.dtype),
        ...     update=lambda c, x, i: jnp.maximum(c, x),
        ...     finalize=lambda c: c,
        ...     aggregate=lambda x: jnp.max(x, axis=0),
        ... )
        >>> gradchain.microbatch(jnp.max, 0, 2, largest)(jnp.array([3.0, 1.0, 4.0, 1.0]))
        Array(4., dtype=float32)
    """

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], Any]
    finalize: Callable[[Any], Any]
    aggregate: Callable[[Any], Any]


class AccumulationType(enum.Enum):
    """The built-in ways to combine micro-batch results.

    ::

        MEAN:          (1/n) sum_j r_j
        SUM:           sum_j r_j
        RUNNING_MEAN:  (1/m) sum_{j<m} r_j     (m = num_real_microbatches, else n)
        CONCAT:        the r_j concatenated along axis 0, in the original batch order

    Examples:
        >>> import gradchain
        >>> gradchain.microbatching.AccumulationType.SUM.name
        'SUM'
    """

    MEAN = enum.auto()
    SUM = enum.auto()
    RUNNING_MEAN = enum.auto()
    CONCAT = enum.auto()


_AGGREGATE = {
    AccumulationType.MEAN: lambda x: jnp.mean(x, axis=0),
    AccumulationType.SUM: lambda x: jnp.sum(x, axis=0),
    AccumulationType.RUNNING_MEAN: lambda x: jnp.mean(x, axis=0),
    AccumulationType.CONCAT: lambda x: x,
}


def _as_type(spec: Any) -> AccumulationType | None:
    """The built-in accumulation ``spec`` names (a member, a name, or another enum's member
    of the same name, such as Optax's own ``AccumulationType``)."""
    if isinstance(spec, AccumulationType):
        return spec
    name = spec if isinstance(spec, str) else spec.name if isinstance(spec, enum.Enum) else None
    return AccumulationType.__members__.get(name.upper()) if name is not None else None


def _aggregate(fn: str, accumulator: Any, output: Any) -> Any:
    """Reduce the vmapped axis of ``output`` per subtree, as ``accumulator`` (a prefix) says."""

    def one(spec, values):
        kind = _as_type(spec)
        if kind is not None:
            return jax.tree.map(_AGGREGATE[kind], values)
        if callable(getattr(spec, "aggregate", None)):
            return spec.aggregate(values)
        raise ValueError(
            f"{fn}: `accumulator` must hold AccumulationType members or Accumulators (with `aggregate`), "
            f"got {spec!r}."
        )

    specs, treedef = jax.tree.flatten(accumulator)
    try:
        parts = treedef.flatten_up_to(output)
    except (ValueError, TypeError):
        raise ValueError(
            f"{fn}: `accumulator` must be a pytree prefix of `fun`'s output {jax.tree.structure(output)}, "
            f"got {accumulator!r}."
        ) from None
    return treedef.unflatten([one(spec, part) for spec, part in zip(specs, parts)])


def reshape_batch_axis(tree: Any, microbatch_size: int, axis: int = 0) -> Any:
    """Split the batch axis of every leaf into ``(num_microbatches, microbatch_size)``, strided.

    ::

        x: (..., B, ...)  ->  (..., B / microbatch_size, microbatch_size, ...)
        out[..., j, i, ...] = x[..., j + i * (B / microbatch_size), ...]     (column-major)

    so a sharded batch axis stays sharded (on the ``microbatch_size`` axis) and the
    micro-batch axis is replicated; with explicit sharding the result says so.

    Args:
        tree: A pytree of arrays, each with a batch axis ``axis``.
        microbatch_size: The examples per micro-batch; must divide the batch size.
        axis: The batch axis.

    Returns:
        A tree like ``tree`` with one more axis per leaf.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.microbatching.reshape_batch_axis(jnp.arange(6), 2)
        Array([[0, 3],
               [1, 4],
               [2, 5]], dtype=int32)
    """
    fn = "reshape_batch_axis"
    size = check_int(fn, "microbatch_size", microbatch_size, 1)
    axis = check_int(fn, "axis", axis, 0)

    def leaf(x):
        x = jnp.asarray(x)
        if x.ndim <= axis or x.shape[axis] % size:
            raise ValueError(
                f"{fn}: every leaf needs a batch axis {axis} (`axis`) whose size `microbatch_size` "
                f"({size}) divides, got a leaf of shape {x.shape}."
            )
        shape = (*x.shape[:axis], x.shape[axis] // size, size, *x.shape[axis + 1 :])
        sharding = jax.typeof(x).sharding
        if not sharding.mesh.are_all_axes_explicit:
            return x.reshape(shape, order="F")
        spec = sharding.spec
        if len(spec) > axis:
            spec = jax.P(*spec[:axis], None, spec[axis], *spec[axis + 1 :])
        shards = x.shape[axis] // sharding.shard_shape(x.shape)[axis]
        if size % shards:
            raise ValueError(
                f"{fn}: `microbatch_size` must be a multiple of the {shards} shards of the batch axis, got {size}."
            )
        return x.reshape(shape, order="F", out_sharding=jax.sharding.NamedSharding(sharding.mesh, spec))

    return jax.tree.map(leaf, tree)


def micro_vmap(
    fun: Callable[..., Any],
    in_axes: int | Sequence[int | None] = 0,
    out_axes: Any = 0,
    *,
    microbatch_size: int | None = None,
    vmap_fn: Callable[..., Any] = jax.vmap,
    accumulator: Any = AccumulationType.CONCAT,
    num_real_microbatches: Any = None,
) -> Callable[..., Any]:
    """``jax.vmap`` over micro-batches in sequence, optionally reducing the mapped axis.

    With ``CONCAT`` (the default) the result is ``vmap(fun)``'s; ``SUM`` / ``MEAN``
    reduce the mapped axis without ever holding all of it::

        out = concat_j vmap(fun)(micro-batch j)           (CONCAT)
        out = sum_j sum_k fun(example k of micro-batch j)  (SUM; MEAN divides by B)

    Keyword arguments are mapped over their axis 0.

    Args:
        fun: The function to map.
        in_axes: The mapped axis of each positional argument (``None``: not mapped),
            or one int for a single argument.
        out_axes: Must be 0 (as in Optax).
        microbatch_size: Examples per micro-batch (dividing the batch size); ``None``:
            one plain ``vmap``.
        vmap_fn: ``jax.vmap`` or a function with its signature.
        accumulator: An `AccumulationType`, an `Accumulator`, or a pytree prefix of
            ``fun``'s output holding them.
        num_real_microbatches: Run only the first ``m`` micro-batches (possibly traced).

    Returns:
        The mapped function.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.microbatching.micro_vmap(lambda x: x**2, microbatch_size=2)(jnp.arange(6))
        Array([ 0,  1,  4,  9, 16, 25], dtype=int32)
    """
    fn = "micro_vmap"
    if not callable(fun):
        raise TypeError(f"{fn}: `fun` must be callable, got {fun!r}.")
    if not callable(vmap_fn):
        raise TypeError(f"{fn}: `vmap_fn` must be callable, got {vmap_fn!r}.")
    if out_axes != 0:
        raise NotImplementedError(f"{fn}: `out_axes` must be 0 (as in Optax), got {out_axes!r}.")
    axes = (in_axes,) if isinstance(in_axes, int) else in_axes
    if not isinstance(axes, (tuple, list)) or not all(a is None or isinstance(a, int) for a in axes):
        raise TypeError(f"{fn}: `in_axes` must be an int or a sequence of ints and None, got {in_axes!r}.")

    def vmap_reduce(*args, kwargs):
        return _aggregate(fn, accumulator, vmap_fn(fun, axes, out_axes)(*args, **kwargs))

    micro = microbatch(
        vmap_reduce,
        argnums=tuple(i for i, a in enumerate(axes) if a is not None),
        microbatch_size=microbatch_size,
        accumulator=accumulator,
        argnames="kwargs",
        in_axes=(*(a for a in axes if a is not None), 0),
        num_real_microbatches=num_real_microbatches,
    )

    def mapped(*args, **kwargs):
        return micro(*args, kwargs=kwargs)

    return mapped


class Aux(NamedTuple):
    """The per-example outputs of `micro_grad` (Optax's ``Aux``)."""

    values: Any  # the loss of each example
    metrics: Any  # metrics_fn of each example's gradient
    aux: Any  # fun's auxiliary output of each example (has_aux), else None


def _identity(x: Any) -> Any:
    return x


def _no_metrics(x: Any) -> None:
    return None


def micro_grad(
    fun: Callable[..., Any],
    has_aux: bool = False,
    argnums: int | Sequence[int] = 0,
    *,
    batch_argnums: int | Sequence[int] = 1,
    keep_batch_dim: bool = True,
    microbatch_size: int | None = None,
    accumulator: Any = AccumulationType.SUM,
    transform_fn: Callable[[Any], Any] = _identity,
    metrics_fn: Callable[[Any], Any] = _no_metrics,
    num_real_microbatches: Any = None,
) -> Callable[..., tuple[Any, Aux]]:
    """Per-example gradients, transformed and reduced over the batch, computed micro-batch by micro-batch.

    For each example ``k`` of the batch arguments::

        g_k = grad of fun(..., example k, ...) in `argnums`
        out = accumulate_k transform_fn(g_k)           (SUM by default; MEAN, ...)
        aux = Aux(values=[fun_k], metrics=[metrics_fn(g_k)], aux=[fun's aux_k])

    ``transform_fn`` can clip or square each example's gradient (DP-SGD, gradient
    variances); ``metrics_fn`` keeps a small per-example statistic.

    Args:
        fun: ``fun(params, batch, ...) -> loss`` (or ``(loss, aux)`` with ``has_aux``).
        has_aux: Whether ``fun`` returns ``(loss, aux)``.
        argnums: The argument(s) to differentiate.
        batch_argnums: The argument(s) with a batch axis 0.
        keep_batch_dim: Call ``fun`` on batches of one example (a batch axis of size
            1) rather than on bare examples.
        microbatch_size: Examples per micro-batch; ``None``: all at once.
        accumulator: How to reduce the transformed gradients (see `micro_vmap`).
        transform_fn: Applied to each example's gradient before reducing.
        metrics_fn: Applied to each example's gradient, returned per example.
        num_real_microbatches: Run only the first ``m`` micro-batches.

    Returns:
        ``grad_fn(*args, **kwargs) -> (reduced, Aux(values, metrics, aux))``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> loss = lambda w, x, y: 0.5 * jnp.mean((x @ w - y) ** 2)
        >>> g, aux = gradchain.microbatching.micro_grad(
        ...     loss, batch_argnums=(1, 2), accumulator=gradchain.microbatching.AccumulationType.MEAN
        ... )(jnp.zeros(1), jnp.ones((4, 1)), jnp.array([0.0, 2.0, 4.0, 6.0]))
        >>> g, aux.values
        (Array([-3.], dtype=float32), Array([ 0.,  2.,  8., 18.], dtype=float32))

    References:
        Optax 0.2.8, ``optax.microbatching.micro_grad``; Sander et al., "Towards Efficient
        and Scalable Training of Differentially Private Deep Learning", arXiv:2510.00236.
    """
    fn = "micro_grad"
    for name, f in (("fun", fun), ("transform_fn", transform_fn), ("metrics_fn", metrics_fn)):
        if not callable(f):
            raise TypeError(f"{fn}: `{name}` must be callable, got {f!r}.")
    check_flag(fn, "has_aux", has_aux)
    check_flag(fn, "keep_batch_dim", keep_batch_dim)
    batch = (batch_argnums,) if isinstance(batch_argnums, int) else tuple(batch_argnums)
    if not batch:
        raise ValueError(f"{fn}: `batch_argnums` must name at least one argument, got {batch_argnums!r}.")
    for i in batch:
        check_int(fn, "batch_argnums", i, 0)

    with_aux = fun if has_aux else (lambda *a, **k: (fun(*a, **k), None))
    value_and_grad = jax.value_and_grad(with_aux, argnums, has_aux=True)

    def per_example(*args, **kwargs):
        (value, aux), grad = value_and_grad(*args, **kwargs)
        return transform_fn(grad), Aux(values=value, metrics=metrics_fn(grad), aux=aux)

    in_axes: list[int | None] = [None] * (max(batch) + 1)
    for i in batch:
        in_axes[i] = 0
    mapped = micro_vmap(
        per_example,
        in_axes=in_axes,
        accumulator=(accumulator, AccumulationType.CONCAT),
        microbatch_size=microbatch_size,
        num_real_microbatches=num_real_microbatches,
    )
    if not keep_batch_dim:
        return mapped

    def with_batch_dim(*args, **kwargs):
        args = list(args)
        for i in batch:
            args[i] = jax.tree.map(lambda x: jnp.expand_dims(x, 1), args[i])
        return mapped(*args, **kwargs)

    return with_batch_dim
