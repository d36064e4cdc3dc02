"""Clipping as plain functions of arrays, not transformations: per-example clipping for
differentially private training (`per_example_global_norm_clip`,
`per_example_layer_norm_clip`) and adaptive gradient clipping's unit-wise norm and clip
(`unitwise_norm`, `unitwise_clip`; the transformation is `adaptive_grad_clip`).

Norms are accumulated in at least float32; results keep the dtype of the gradients
(integer gradients, which Optax's examples use, give float32 sums).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._numerics import abs_sq, compute_dtype, hp, real_dtype
from gradchain._tree import clip_factor
from gradchain._validate import check_flag, check_nonnegative, check_positive

__all__ = ["per_example_global_norm_clip", "per_example_layer_norm_clip", "unitwise_clip", "unitwise_norm"]


def _batch_size(fn: str, grads: Any) -> int:
    """The common leading (batch) size of every leaf, or a `ValueError` naming the shapes."""
    leaves = [jnp.asarray(g) for g in jax.tree.leaves(grads)]
    if not leaves:
        raise ValueError(f"{fn}: `grads` must hold at least one array with a batch axis, got {grads!r}.")
    sizes = {g.shape[0] if g.ndim else None for g in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"{fn}: `grads` must have a batch dimension in the 0th axis of every leaf, of one size, "
            f"got shapes {[g.shape for g in leaves]}."
        )
    return int(sizes.pop() or 0)


def _out_dtype(g: jax.Array) -> Any:
    """The dtype of a clipped sum: the gradient's, or float32 for integer gradients."""
    return g.dtype if jnp.issubdtype(g.dtype, jnp.inexact) else compute_dtype(g.dtype)


def _clip_examples(grads: list[jax.Array], l2_norm_clip) -> tuple[list[jax.Array], jax.Array]:
    """Clip each example (row) of the leaves ``grads`` to global norm ``l2_norm_clip``; sum them."""
    dts = [compute_dtype(g.dtype) for g in grads]
    rdt = real_dtype(jnp.result_type(*[np.dtype(real_dtype(d)) for d in dts]))
    sq = sum(
        jnp.sum(abs_sq(g.astype(d)).reshape(g.shape[0], -1), axis=1).astype(rdt) for g, d in zip(grads, dts)
    )
    factor = clip_factor(jnp.sqrt(sq), hp(l2_norm_clip, rdt))
    num_clipped = jnp.sum(factor < 1).astype(jnp.int32)
    sums = [
        jnp.tensordot(factor.astype(d), g.astype(d), axes=1).astype(_out_dtype(g)) for g, d in zip(grads, dts)
    ]
    return sums, num_clipped


def per_example_global_norm_clip(grads: Any, l2_norm_clip) -> tuple[Any, jax.Array]:
    """Clip each example's gradient to a global L2 norm, then sum over the examples.

    Every leaf of ``grads`` carries the batch on axis 0; example ``i``'s gradient is
    row ``i`` of every leaf, ``g_i``, and ``C = l2_norm_clip``::

        n_i = sqrt(sum over leaves of sum(|g_i|**2))
        m_i = C / n_i   if n_i > C,   else 1
        sum = sum_i m_i * g_i
        num_clipped = count of m_i < 1

    An example of norm 0, NaN or at most ``C`` is kept as it is (Optax: ``min(C / n, 1)``
    with NaN read as 1). This is DP-SGD's clipping step; add the noise separately.

    Args:
        grads: A pytree of per-example gradients, batch on axis 0 of every leaf.
        l2_norm_clip: The largest L2 norm of one example's gradient, ``>= 0`` (``inf``
            clips nothing).

    Returns:
        ``(sum, num_clipped)``: the sum of the clipped gradients (the tree of ``grads``
        without its batch axis) and the int32 count of clipped examples.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> grads = [jnp.array([[0, 0, 0], [0, 3, 4], [4, 0, 3], [3, 4, 0]])]
        >>> gradchain.per_example_global_norm_clip(grads, jnp.inf)
        ([Array([7., 7., 7.], dtype=float32)], Array(0, dtype=int32))
        >>> gradchain.per_example_global_norm_clip(grads, 1.25)
        ([Array([1.75, 1.75, 1.75], dtype=float32)], Array(3, dtype=int32))

    References:
        Abadi et al., "Deep Learning with Differential Privacy", CCS 2016.
    """
    fn = "per_example_global_norm_clip"
    check_nonnegative(fn, "l2_norm_clip", l2_norm_clip, allow_inf=True)
    _batch_size(fn, grads)
    leaves, treedef = jax.tree.flatten(grads)
    sums, num_clipped = _clip_examples([jnp.asarray(g) for g in leaves], l2_norm_clip)
    return jax.tree.unflatten(treedef, sums), num_clipped


def per_example_layer_norm_clip(grads: Any, global_l2_norm_clip, *, uniform: bool = True) -> tuple[Any, Any]:
    """Clip each example's gradient layer by layer, then sum over the examples.

    Each leaf (layer) ``l`` of ``K`` is clipped on its own, as by
    `per_example_global_norm_clip` on that leaf alone, to ``C_l``, where ``C =
    global_l2_norm_clip`` and ``D_l`` is the size of one example's gradient of layer
    ``l`` (``D`` the sum of the ``D_l``)::

        C_l = C / sqrt(K)           if uniform
        C_l = C * sqrt(D_l / D)     otherwise

    Either way ``sum_l C_l**2 = C**2``: the whole clipped gradient has norm at most ``C``.

    Args:
        grads: A pytree of per-example gradients, batch on axis 0 of every leaf.
        global_l2_norm_clip: The overall clip norm ``C``, ``>= 0``.
        uniform: Split ``C`` evenly between the layers (default), or by their size.

    Returns:
        ``(sums, num_clipped)``: two trees with the structure of ``grads``, the sums of
        the clipped gradients and, per layer, the int32 count of clipped examples.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> grads = {"a": jnp.array([[3.0, 4.0], [0.0, 1.0]]), "b": jnp.array([[0.0], [2.0]])}
        >>> sums, counts = gradchain.per_example_layer_norm_clip(grads, 2.0**0.5)
        >>> sums["a"], sums["b"], int(counts["a"]), int(counts["b"])
        (Array([0.6, 1.8], dtype=float32), Array([1.], dtype=float32), 1, 1)

    References:
        McMahan et al., "Learning Differentially Private Recurrent Language Models",
        ICLR 2018.
    """
    fn = "per_example_layer_norm_clip"
    check_nonnegative(fn, "global_l2_norm_clip", global_l2_norm_clip, allow_inf=True)
    check_flag(fn, "uniform", uniform)
    _batch_size(fn, grads)
    leaves, treedef = jax.tree.flatten(grads)
    leaves = [jnp.asarray(g) for g in leaves]
    sizes = [int(np.prod(g.shape[1:])) for g in leaves]
    total = sum(sizes)
    sums, counts = [], []
    for g, size in zip(leaves, sizes):
        share = 1.0 / len(leaves) if uniform else (size / total if total else 0.0)
        (s,), n = _clip_examples([g], global_l2_norm_clip * share**0.5)
        sums.append(s)
        counts.append(n)
    return jax.tree.unflatten(treedef, sums), jax.tree.unflatten(treedef, counts)


def _unit_axes(fn: str, x: jax.Array, axis: Any) -> tuple[int, ...] | None:
    """The axes summed over for one norm per unit; ``None`` for the whole array."""
    if axis is not None:
        return tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if jnp.squeeze(x).ndim <= 1:
        return None
    conventions = {2: (0,), 3: (0,), 4: (0, 1, 2), 5: (0, 1, 2, 3)}
    if x.ndim not in conventions:
        raise ValueError(
            f"{fn}: `x` must have 1 to 5 dimensions when `axis` is None, got shape {x.shape}; pass "
            "`axis=` to say which axes form a unit."
        )
    return conventions[x.ndim]


def unitwise_norm(x: Any, axis: int | tuple[int, ...] | None = None) -> jax.Array:
    """The L2 norm of each unit of ``x``, broadcast back to ``x``'s shape.

    A unit is a slice of ``x`` across the reduced axes: ``axis`` if given, else by the
    usual layer layouts (as in Optax)::

        squeezed rank <= 1:  the whole array         (scalars, biases, (1, n) rows)
        rank 2 or 3:         axis 0                  (linear kernels (in, out), multi-head)
        rank 4:              axes (0, 1, 2)          (conv kernels HWIO)
        rank 5:              axes (0, 1, 2, 3)       (conv3d kernels DHWIO)
        norm = sqrt(sum over those axes of |x|**2)

    Args:
        x: An array.
        axis: An axis or tuple of axes to reduce; ``None``: by rank, as above.

    Returns:
        An array of ``x``'s shape and real dtype (float32 for integer ``x``).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.unitwise_norm(jnp.array([[3.0, 1.0], [4.0, 0.0]]))
        Array([[5., 1.],
               [5., 1.]], dtype=float32)

    References:
        Brock et al., "High-Performance Large-Scale Image Recognition Without
        Normalization", ICML 2021.
    """
    x = jnp.asarray(x)
    axes = _unit_axes("unitwise_norm", x, axis)
    dt = compute_dtype(x.dtype)
    sq = jnp.sum(abs_sq(x.astype(dt)), axis=axes, keepdims=True)
    out = real_dtype(x.dtype) if jnp.issubdtype(x.dtype, jnp.inexact) else real_dtype(dt)
    return jnp.broadcast_to(jnp.sqrt(sq), x.shape).astype(out)


def unitwise_clip(g_norm: Any, max_norm: Any, grad: Any, div_eps=1e-6) -> jax.Array:
    """Rescale each unit of ``grad`` whose norm reaches ``max_norm`` down to ``max_norm``.

    Elementwise, with ``g_norm``, ``max_norm`` and ``grad`` of one shape (``g_norm``
    from `unitwise_norm`)::

        u = grad                                          if g_norm < max_norm
        u = grad * max_norm / max(g_norm, div_eps)        otherwise

    Args:
        g_norm: The unit-wise norms of ``grad``.
        max_norm: The largest unit norm, elementwise (the shape of ``g_norm``).
        grad: The gradient.
        div_eps: A number ``> 0`` guarding the division.

    Returns:
        The clipped gradient, in ``grad``'s dtype.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> g = jnp.array([[3.0, 1.0], [4.0, 0.0]])
        >>> n = gradchain.unitwise_norm(g)
        >>> gradchain.unitwise_clip(n, jnp.full_like(n, 2.5), g)
        Array([[1.5, 1. ],
               [2. , 0. ]], dtype=float32)

    References:
        Brock et al., "High-Performance Large-Scale Image Recognition Without
        Normalization", ICML 2021.
    """
    fn = "unitwise_clip"
    check_positive(fn, "div_eps", div_eps)
    g_norm, max_norm, grad = jnp.asarray(g_norm), jnp.asarray(max_norm), jnp.asarray(grad)
    for name, x in (("max_norm", max_norm), ("grad", grad)):
        if x.shape != g_norm.shape:
            raise ValueError(f"{fn}: `{name}` must have the shape of `g_norm` {g_norm.shape}, got {x.shape}.")
    dt = compute_dtype(grad.dtype)
    rdt = real_dtype(dt)
    n, m, x = g_norm.astype(rdt), max_norm.astype(rdt), grad.astype(dt)
    clipped = x * (m / jnp.maximum(n, hp(div_eps, rdt))).astype(dt)
    return jnp.where(n < m, x, clipped).astype(_out_dtype(grad))
