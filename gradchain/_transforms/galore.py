"""GaLore: run a base transformation on low-rank projections of the matrix gradients, the
projection refreshed from the gradient's SVD every few steps (`scale_by_galore`).

The optimizer, `galore`, is in `gradchain._optimizers.contrib_misc`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, as_transformation
from gradchain._kit import Compute, store
from gradchain._numerics import as_leaf, compute_dtype, cond, safe_increment, zero_count
from gradchain._transforms.adam import scale_by_adam
from gradchain._validate import check_floating, check_int, check_scalar, refuse_flat

__all__ = ["GaLoreDimensionNumbers", "GaLoreState", "scale_by_galore"]


class GaLoreDimensionNumbers(NamedTuple):
    """Which axes of a parameter form the rows (``reduction_axis``) and the columns
    (``output_axis``) of the matrix GaLore projects (Optax's fields and defaults).

    E.g. an attention kernel ``(embed, heads, head_dim)`` is the matrix ``(embed,
    heads * head_dim)`` with ``GaLoreDimensionNumbers(reduction_axis=0, output_axis=(1, 2))``.
    Every axis must be named once.
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


class GaLoreState(NamedTuple):
    """State of `scale_by_galore` (Optax's fields).

    Memory per projected ``(m, n)`` matrix with ``r = min(rank, m, n)``: the projector,
    ``max(m, n) * r``, plus the base transformation's state on the ``r x min(m, n)`` (or
    ``min x r``) projection instead of ``m * n``.
    """

    count: jax.Array  # int32 scalar: steps taken
    base_optimizer_state: Any  # the base transformation's state, on the projected shapes
    projector: Any  # per-param tree, param dtype: (max(m, n), r) matrices; None where not projected


def _axes(fn: str, spec: GaLoreDimensionNumbers, shape: tuple) -> tuple[tuple, tuple]:
    """``(reduction axes, output axes)`` as non-negative ints, every axis named once."""
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(
            f"{fn}: `weight_dimension_numbers` must name axes of parameters with at least 2 dimensions, "
            f"got {spec!r} for a parameter of shape {shape}."
        )
    as_tuple = lambda a: (a,) if isinstance(a, int) else tuple(a)
    red, out = as_tuple(spec.reduction_axis), as_tuple(spec.output_axis)
    for a in red + out:
        if isinstance(a, bool) or not isinstance(a, int) or not -ndim <= a < ndim:
            raise ValueError(
                f"{fn}: `weight_dimension_numbers` must hold axes in [-{ndim}, {ndim}) for shape {shape}, "
                f"got {spec!r}."
            )
    red, out = tuple(a % ndim for a in red), tuple(a % ndim for a in out)
    if not red or not out or sorted(red + out) != list(range(ndim)):
        raise ValueError(
            f"{fn}: `weight_dimension_numbers` must name every axis of shape {shape} once, as a reduction "
            f"or an output axis, got {spec!r}."
        )
    return red, out


class _Layout(NamedTuple):
    """How one parameter is read as an ``(m, n)`` matrix, and which side is projected."""

    perm: tuple
    m: int
    n: int
    rank: int
    left: bool  # m >= n: project the rows, P is (m, r) and the projection P^H G is (r, n)

    def to_matrix(self, x):
        return jnp.transpose(x, self.perm).reshape(self.m, self.n)

    def from_matrix(self, y, shape):
        moved = tuple(shape[a] for a in self.perm)
        inverse = tuple(sorted(range(len(shape)), key=lambda i: self.perm[i]))
        return y.reshape(moved).transpose(inverse)


def _layouts(fn: str, tree: Any, spec: Any, rank: int) -> list:
    """One `_Layout` (or None: not projected) per leaf of ``tree``."""
    leaves, treedef = jax.tree.flatten(tree)
    ndims = [jnp.ndim(x) for x in leaves]
    if spec is None:
        specs = [GaLoreDimensionNumbers() if d == 2 else None for d in ndims]
    elif isinstance(spec, GaLoreDimensionNumbers):
        specs = [spec if d >= 2 else None for d in ndims]
    else:
        given = spec(tree) if callable(spec) else spec
        try:
            specs = treedef.flatten_up_to(given)
        except (ValueError, TypeError):
            raise ValueError(
                f"{fn}: `weight_dimension_numbers` must be a GaLoreDimensionNumbers, a tree of them (None "
                f"where a parameter is not projected) with the structure of the parameters, or a function "
                f"returning one; got {given!r} for parameters {treedef}."
            ) from None
    out = []
    for x, s in zip(leaves, specs):
        if s is None:
            out.append(None)
            continue
        if not isinstance(s, GaLoreDimensionNumbers):
            raise TypeError(
                f"{fn}: `weight_dimension_numbers` must hold GaLoreDimensionNumbers or None, got {s!r}."
            )
        shape = jnp.shape(x)
        red, outs = _axes(fn, s, shape)
        m, n = math.prod(shape[a] for a in red), math.prod(shape[a] for a in outs)
        out.append(_Layout(red + outs, m, n, min(rank, m, n), m >= n))
    return out


def scale_by_galore(
    rank: int = 128,
    update_proj_gap: int = 200,
    scale=1.0,
    base_optimizer: GradientTransformation | None = None,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    """GaLore: the base transformation on low-rank projections of the matrix gradients.

    Each projected parameter is read as an ``(m, n)`` matrix ``G`` (see
    ``weight_dimension_numbers``), ``r = min(rank, m, n)``. On steps ``t`` with ``(t - 1)
    mod update_proj_gap == 0`` (the first included) the projector is refreshed from the
    SVD ``G = U S V^H`` (in at least float32)::

        P = U[:, :r]      if m >= n,   R_t = P^H G_t      (r x n)
        P = V[:, :r]      if m < n,    R_t = G_t P        (m x r)
        N_t = base(R_t)                     (every leaf at once; unprojected leaves as they are)
        u_t = scale * P N_t    if m >= n,   scale * N_t P^H   if m < n

    Unprojected leaves get ``base``'s update, unscaled. ``base`` is called without the
    parameters, on the projected shapes: use a gradient-only transformation
    (`scale_by_adam`, `scale_by_lion`, ...), and weight decay through `galore`.

    Args:
        rank: The largest rank of a projection, a Python int ``>= 1``.
        update_proj_gap: Steps between SVD refreshes, a Python int ``>= 1``.
        scale: Factor on the projected-back updates.
        base_optimizer: The transformation run on the projections; ``None``:
            ``scale_by_adam()``.
        weight_dimension_numbers: Which parameters are projected, and how each is read
            as a matrix: ``None`` (the 2-D ones, rows by columns), one
            `GaLoreDimensionNumbers` for every parameter of 2 or more dimensions, a tree
            of them (``None`` where a parameter is not projected), or a function of the
            parameters returning such a tree.

    Returns:
        A `GradientTransformation` with state `GaLoreState(count, base_optimizer_state,
        projector)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_galore(rank=1, base_optimizer=gradchain.identity())
        >>> g = jnp.array([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
        >>> u, state = tx.update(g, tx.init(g))
        >>> u    # the rank-1 part of the gradient
        Array([[3., 0.],
               [0., 0.],
               [0., 0.]], dtype=float32)

    References:
        Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
        Projection", ICML 2024.
    """
    fn = "scale_by_galore"
    rank = check_int(fn, "rank", rank, 1)
    gap = check_int(fn, "update_proj_gap", update_proj_gap, 1)
    check_scalar(fn, "scale", scale)
    base = (
        scale_by_adam() if base_optimizer is None else as_transformation(fn, "base_optimizer", base_optimizer)
    )
    spec = weight_dimension_numbers

    def init_fn(params):
        params = jax.tree.map(as_leaf, params)
        leaves, treedef = jax.tree.flatten(params)
        layouts = _layouts(fn, params, spec, rank)
        projectors, proxies = [], []
        for p, lay in zip(leaves, layouts):
            if lay is None:
                projectors.append(None)
                proxies.append(jnp.zeros_like(p))
            else:
                projectors.append(jnp.zeros((max(lay.m, lay.n), lay.rank), p.dtype))
                shape = (lay.rank, lay.n) if lay.left else (lay.m, lay.rank)
                proxies.append(jnp.zeros(shape, p.dtype))
        return GaLoreState(
            count=zero_count(),
            base_optimizer_state=base.init(treedef.unflatten(proxies)),
            projector=treedef.unflatten(projectors),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params
        refuse_flat(fn, updates)
        check_floating(fn, updates)
        updates = jax.tree.map(as_leaf, updates)
        leaves, treedef = jax.tree.flatten(updates)
        try:
            old = treedef.flatten_up_to(state.projector)
        except (ValueError, TypeError):
            raise ValueError(
                f"{fn}: the `updates` tree does not match the state.\n  updates:   {treedef}\n"
                f"  expected:  {jax.tree.structure(state.projector)}"
            ) from None
        layouts = _layouts(fn, updates, spec, rank)
        for g, lay, p in zip(leaves, layouts, old):
            if (lay is None) != (p is None) or (p is not None and p.shape != (max(lay.m, lay.n), lay.rank)):
                raise ValueError(
                    f"{fn}: the updates do not match the state: a parameter of shape {jnp.shape(g)} has "
                    f"projector {None if p is None else p.shape}. The usual cause is a state initialised from "
                    "different parameters, or a `weight_dimension_numbers` function that changed its answer."
                )

        def refreshed():
            out = []
            for g, lay, p in zip(leaves, layouts, old):
                if lay is None:
                    out.append(None)
                    continue
                dt = compute_dtype(g.dtype)
                u, _, vh = jnp.linalg.svd(lay.to_matrix(g).astype(dt), full_matrices=False)
                proj = u[:, : lay.rank] if lay.left else vh[: lay.rank, :].conj().T
                out.append(proj.astype(p.dtype))
            return out

        projs = cond(state.count % gap == 0, refreshed, lambda: list(old))

        def project(g, lay, p):
            if lay is None:
                return g
            c = Compute(g, p)
            x = c(lay.to_matrix(g))
            return store(c(p).conj().T @ x if lay.left else x @ c(p), g)

        low = treedef.unflatten([project(g, lay, p) for g, lay, p in zip(leaves, layouts, projs)])
        low_updates, base_state = base.update(low, state.base_optimizer_state, None, **extra_args)
        lows = treedef.flatten_up_to(low_updates)

        def back(g, n, lay, p):
            if lay is None:
                return store(jnp.asarray(n), g)
            c = Compute(g, n, p)
            y = c(p) @ c(n) if lay.left else c(n) @ c(p).conj().T
            return store(c.hp(scale, real=True) * lay.from_matrix(y, jnp.shape(g)), g)

        full = treedef.unflatten([back(g, n, lay, p) for g, n, lay, p in zip(leaves, lows, layouts, projs)])
        projector = treedef.unflatten(projs)
        return full, GaLoreState(
            count=safe_increment(state.count), base_optimizer_state=base_state, projector=projector
        )

    return GradientTransformation(init_fn, update_fn)
