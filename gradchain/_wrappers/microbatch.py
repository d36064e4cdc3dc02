"""`microbatch`: evaluate a function of a large batch one micro-batch at a time.

The loop is a ``jax.lax.fori_loop``, so only one micro-batch's intermediates are alive
at a time; how the micro-batch results combine is an *accumulation* per output leaf:

========================  ====================================================
``"sum"``                 sum of the micro-batch results (the default)
``"mean"``                sum divided by the number of micro-batches
``"running_mean"``        mean of the micro-batches that ran (see
                          ``num_real_microbatches``)
``"concat"``              the results concatenated along axis 0, in batch order
========================  ====================================================

Optax's ``optax.microbatching.AccumulationType`` members and ``Accumulator`` objects
(anything with ``init``, ``update`` and ``finalize``) are accepted too.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradchain._numerics import compute_dtype
from gradchain._validate import check_int

__all__ = ["microbatch"]

_KINDS = ("sum", "mean", "running_mean", "concat")


class _Builtin:
    """One of the named accumulations, over a subtree of the output (leaf by leaf)."""

    def __init__(self, kind: str, num_microbatches: int):
        self.kind, self.n = kind, num_microbatches

    def _carry_dtype(self, x):
        if self.kind in ("mean", "running_mean") and not jnp.issubdtype(x.dtype, jnp.inexact):
            raise ValueError(
                f"microbatch: the {self.kind!r} accumulation needs floating-point outputs of `fun`, got "
                f"dtype {x.dtype}; use 'sum' or 'concat' for integer outputs."
            )
        return compute_dtype(x.dtype) if jnp.issubdtype(x.dtype, jnp.inexact) else x.dtype

    def init(self, shapes):
        self.shapes = shapes

        def leaf(x):
            if self.kind == "concat":
                return jnp.zeros((self.n, *x.shape), x.dtype)
            return jnp.zeros(x.shape, self._carry_dtype(x))

        return jax.tree.map(leaf, shapes)

    def update(self, carry, value, index):
        def leaf(c, v):
            v = jnp.asarray(v)
            if self.kind == "concat":
                return c.at[index].set(v)
            if self.kind == "running_mean":
                i = jnp.asarray(index).astype(c.dtype)
                p = i / (i + 1)
                return c * p + v.astype(c.dtype) * (1 - p)
            return c + v.astype(c.dtype)

        return jax.tree.map(leaf, carry, value)

    def finalize(self, carry):
        def leaf(c, x):
            if self.kind == "concat":
                return jnp.reshape(c, (-1, *c.shape[2:]), order="F")
            if self.kind == "mean":
                c = c / jnp.asarray(self.n, c.dtype)
            return c.astype(x.dtype)

        return jax.tree.map(leaf, carry, self.shapes)


def _kind(spec: Any) -> str | None:
    """The named accumulation ``spec`` stands for (a str, or an enum member such as Optax's)."""
    if isinstance(spec, str) and spec.lower() in _KINDS:
        return spec.lower()
    if isinstance(spec, enum.Enum) and spec.name.lower() in _KINDS:
        return spec.name.lower()
    return None


def _is_custom(spec: Any) -> bool:
    return all(callable(getattr(spec, a, None)) for a in ("init", "update", "finalize"))


def _check_accumulator(accumulator: Any) -> None:
    for spec in jax.tree.leaves(accumulator):
        if _kind(spec) is None and not _is_custom(spec):
            raise ValueError(
                f"microbatch: `accumulator` must be one of {list(_KINDS)} (or a pytree prefix of `fun`'s "
                f"output holding them), got {spec!r}."
            )


def _take(x, index, axis):
    return jax.lax.dynamic_index_in_dim(x, index, axis=axis, keepdims=False)


def microbatch(
    fun: Callable[..., Any],
    argnums: int | Sequence[int],
    microbatch_size: int | None,
    accumulator: Any = "sum",
    *,
    argnames: str | Sequence[str] = (),
    in_axes: int | Sequence[int] = 0,
    num_real_microbatches=None,
) -> Callable[..., Any]:
    """Turn ``fun`` into a function that runs it on micro-batches in sequence and combines them.

    The batch arguments (``argnums``, ``argnames``) share a batch axis of size ``B``
    (``in_axes``, per argument); with ``n = B / microbatch_size``, micro-batch ``j`` holds
    the examples ``j, j + n, j + 2n, ...`` (a strided split, as Optax's: a sharded batch
    axis stays sharded)::

        r_j = fun(args with each batch argument restricted to micro-batch j)
        sum:           out = sum_j r_j
        mean:          out = (1/n) sum_j r_j
        running_mean:  out = (1/m) sum_{j<m} r_j        (m = num_real_microbatches, else n)
        concat:        out = the r_j concatenated along axis 0, in the original batch order

    with the sum running over ``j < m`` when ``num_real_microbatches = m`` stops early
    (``concat`` leaves zeros in place of the rest). Sums of floating outputs run in at
    least float32 and are returned in the output's dtype (Optax sums bfloat16 outputs in
    bfloat16).

    Args:
        fun: The function to evaluate.
        argnums: The index (or indices) of the positional arguments with a batch axis.
        microbatch_size: The number of examples per micro-batch (it must divide ``B``);
            ``None`` returns ``fun`` itself.
        accumulator: How to combine each output: ``"sum"``, ``"mean"``,
            ``"running_mean"`` or ``"concat"``, or a pytree prefix of ``fun``'s output
            holding them.
        argnames: The name (or names) of keyword arguments with a batch axis.
        in_axes: The batch axis of each batch argument, in the order ``argnums +
            argnames`` (one int: all of them).
        num_real_microbatches: Run only the first ``m`` micro-batches (an int or int32
            scalar, possibly traced: variable batch sizes without recompiling).

    Returns:
        A function with ``fun``'s signature.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> fun = lambda x: (x + 1, jnp.sum(3 * x))
        >>> micro = gradchain.microbatch(fun, argnums=0, microbatch_size=2, accumulator=("concat", "sum"))
        >>> micro(jnp.array([1.0, 2.0, 3.0, 4.0]))
        (Array([2., 3., 4., 5.], dtype=float32), Array(30., dtype=float32))
    """
    fn = "microbatch"
    if not callable(fun):
        raise TypeError(f"{fn}: `fun` must be callable, got {fun!r}.")
    if microbatch_size is None:
        return fun
    size = check_int(fn, "microbatch_size", microbatch_size, 1)
    argnums = (argnums,) if isinstance(argnums, int) and not isinstance(argnums, bool) else tuple(argnums)  # pyright: ignore[reportArgumentType]
    argnames = (argnames,) if isinstance(argnames, str) else tuple(argnames)
    for i in argnums:
        check_int(fn, "argnums", i, 0)
    for name in argnames:
        if not isinstance(name, str):
            raise TypeError(f"{fn}: `argnames` must hold str names, got {name!r}.")
    if not argnums and not argnames:
        raise ValueError(f"{fn}: `argnums` or `argnames` must name at least one batch argument, got neither.")
    n_batch = len(argnums) + len(argnames)
    axes = (in_axes,) * n_batch if isinstance(in_axes, int) else tuple(in_axes)
    if len(axes) != n_batch:
        raise ValueError(
            f"{fn}: `in_axes` must hold one axis per batch argument ({n_batch}: `argnums` then `argnames`), "
            f"got {in_axes!r}."
        )
    for ax in axes:
        check_int(fn, "in_axes", ax, 0)
    if num_real_microbatches is not None and isinstance(num_real_microbatches, int):
        check_int(fn, "num_real_microbatches", num_real_microbatches, 0)
    _check_accumulator(accumulator)

    def microbatched(*args, **kwargs):
        if max(argnums, default=-1) >= len(args):
            raise ValueError(
                f"{fn}: `argnums` {argnums} names a positional argument beyond the {len(args)} given."
            )
        missing = [n for n in argnames if n not in kwargs]
        if missing:
            raise ValueError(f"{fn}: `argnames` names keyword arguments that were not given: {missing}.")
        batch = [args[i] for i in argnums] + [kwargs[n] for n in argnames]
        for b, ax in zip(batch, axes):
            for x in jax.tree.leaves(b):
                if jnp.ndim(x) <= ax:
                    raise ValueError(
                        f"{fn}: every leaf of a batch argument must have its batch axis {ax} (`in_axes`), "
                        f"got a leaf of shape {jnp.shape(x)}."
                    )
        sizes = sorted({jnp.shape(x)[ax] for b, ax in zip(batch, axes) for x in jax.tree.leaves(b)})
        if len(sizes) != 1:
            raise ValueError(f"{fn}: the batch arguments must share one batch size, got sizes {sizes}.")
        total = sizes[0]
        if total % size:
            raise ValueError(
                f"{fn}: the batch size {total} must be divisible by `microbatch_size`, got {size}."
            )
        n = total // size

        def split(x, ax):  # (..., B, ...) -> (..., n, size, ...): [j, i] is example j + n * i
            return jnp.reshape(x, (*x.shape[:ax], n, size, *x.shape[ax + 1 :]), order="F")

        split_batch = [
            jax.tree.map(lambda x, ax=ax: split(jnp.asarray(x), ax), b) for b, ax in zip(batch, axes)
        ]

        def f(index):
            a, kw = list(args), dict(kwargs)
            parts = [
                jax.tree.map(lambda x, ax=ax: _take(x, index, ax), b) for b, ax in zip(split_batch, axes)
            ]
            for i, part in zip(argnums, parts):
                a[i] = part
            for name, part in zip(argnames, parts[len(argnums) :]):
                kw[name] = part
            return fun(*a, **kw)

        shapes = jax.eval_shape(f, 0)

        def build(spec):
            kind = _kind(spec)
            return _Builtin(kind, n) if kind is not None else spec

        accs = jax.tree.map(build, accumulator)
        try:
            jax.tree.map(lambda a, s: None, accs, shapes)
        except ValueError:
            raise ValueError(
                f"{fn}: `accumulator` must be a pytree prefix of `fun`'s output "
                f"{jax.tree.structure(shapes)}, got {accumulator!r}."
            ) from None
        carry = jax.tree.map(lambda a, s: a.init(s), accs, shapes)

        def body(index, carry):
            out = f(index)
            return jax.tree.map(lambda a, c, o: a.update(c, o, index), accs, carry, out)

        bound = n if num_real_microbatches is None else num_real_microbatches
        carry = jax.lax.fori_loop(0, bound, body, carry)
        return jax.tree.map(lambda a, c: a.finalize(c), accs, carry)

    return microbatched
