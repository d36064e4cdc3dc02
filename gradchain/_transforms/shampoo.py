"""Shampoo: a block-diagonal Kronecker-factored preconditioner, grafted onto a diagonal method.

Distributed Shampoo's design (Anil et al.): each matrix leaf is cut into blocks of at
most ``block_size`` per side; each block keeps the two statistics ``L = sum G G^T`` and
``R = sum G^T G`` (exponential averages), whose inverse ``2k``-th roots (k the number of
preconditioned axes: ``L^(-1/4) G R^(-1/4)`` for a matrix) are recomputed every
``preconditioning_compute_steps`` with `gradchain.matrix_inverse_pth_root`. The
preconditioned block takes the norm of a simpler method's direction (grafting: SGD,
AdaGrad, RMSProp or Adam), and momentum follows. The optimizer, `shampoo`, is in
`gradchain._optimizers.second_order`.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation
from gradchain._kit import (
    BiasCorrections,
    Compute,
    ema_update,
    map_leaves,
    second_moment_zeros,
    store,
    zeros_like_params,
)
from gradchain._numerics import as_leaf, compute_dtype, hp, leaf_dtype, safe_increment, zero_count
from gradchain._transforms.linalg import matrix_inverse_pth_root
from gradchain._validate import (
    check_decay,
    check_flag,
    check_int,
    check_nonnegative,
    check_scalar,
    check_tree_match,
    concrete_scalar,
    refuse_flat,
)

__all__ = ["ScaleByShampooState", "scale_by_shampoo"]

_HIGHEST = jax.lax.Precision.HIGHEST
GRAFT_TYPES = ("sgd", "adagrad", "rmsprop", "adam")


class ScaleByShampooState(NamedTuple):
    """State of `scale_by_shampoo`.

    A leaf's preconditioned sides ``n_i`` are cut into ``c_i = ceil(n_i / d_i)`` blocks of
    side ``d_i = min(block_size, n_i)`` (the last zero-padded); its statistics and their
    roots are one array per side, ``(*batch, c_1, ..., c_k, d_i, d_i)``, covering all its
    blocks. Per parameter value of an ``(m, n)`` leaf: 2 momenta, the graft's squares (1;
    none for ``"sgd"``), and ``2 * c_m * c_n * (d_m**2 + d_n**2) / (m * n)`` for statistics
    and roots: ``2 * (m**2 + n**2) / (m * n)`` unblocked, about 4 (plus the padding) when
    both sides are cut into blocks. The momenta and the graft's
    squares have the parameter's shape and take its sharding; the statistics and roots are
    replicated (`gradchain.state_shardings` replicates per-parameter leaves of other shapes).
    """

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, param dtype: momentum of the grafted Shampoo direction
    graft_mu: Any  # per-param tree, param dtype: momentum of the graft's direction
    graft_nu: Any  # per-param tree, second-moment dtype: the graft's squares (None for "sgd")
    stats: Any  # per-param list, one (*batch, *grid, d_i, d_i) per side, compute dtype; None: none
    preconds: Any  # per-param list of the statistics' inverse roots, as `stats`


class BlockLayout(NamedTuple):
    """How a leaf is preconditioned: its trailing axes cut into a grid of equal blocks."""

    nb: int  # leading batch axes (a stack of matrices), not preconditioned
    n: tuple  # sizes of the preconditioned (trailing) axes
    d: tuple  # block side on each: min(block_size, n)
    c: tuple  # blocks on each: ceil(n / d) (the last one zero-padded where d does not divide n)
    k: int  # the root: exponent_override, else 2 * len(n)


def block_layout(shape: tuple, block_size: int, all_axes: bool, exponent: int) -> BlockLayout | None:
    """The `BlockLayout` of a leaf, or None for leaves that are not preconditioned (rank < 2)."""
    r = len(shape)
    if r < 2 or math.prod(shape) == 0:
        return None
    nb = 0 if all_axes else r - 2
    n = tuple(shape[nb:])
    d = tuple(min(block_size, x) for x in n)
    c = tuple(-(-x // y) for x, y in zip(n, d))
    return BlockLayout(nb, n, d, c, exponent or 2 * len(n))


def _indices(lay: BlockLayout) -> tuple:
    """einsum indices of a block grid ``(*batch, *grid, *block)``, and a spare index."""
    nb, k = lay.nb, len(lay.n)
    return list(range(nb)), list(range(nb, nb + k)), list(range(nb + k, nb + 2 * k)), nb + 2 * k


def to_blocks(x: jax.Array, lay: BlockLayout) -> jax.Array:
    """``(*batch, n_1, ..., n_k)`` -> ``(*batch, c_1, ..., c_k, d_1, ..., d_k)``, zero-padded."""
    nb, k = lay.nb, len(lay.n)
    x = jnp.pad(x, [(0, 0)] * nb + [(0, c * d - n) for n, d, c in zip(lay.n, lay.d, lay.c)])
    x = x.reshape(x.shape[:nb] + sum(((c, d) for c, d in zip(lay.c, lay.d)), ()))
    return x.transpose([*range(nb), *(nb + 2 * i for i in range(k)), *(nb + 2 * i + 1 for i in range(k))])


def from_blocks(y: jax.Array, lay: BlockLayout) -> jax.Array:
    """The inverse of `to_blocks` (the padding cropped)."""
    nb, k = lay.nb, len(lay.n)
    y = y.transpose([*range(nb), *(a for i in range(k) for a in (nb + i, nb + k + i))])
    y = y.reshape(y.shape[:nb] + tuple(c * d for c, d in zip(lay.c, lay.d)))
    return y[(slice(None),) * nb + tuple(slice(0, n) for n in lay.n)]


def _statistic(x: jax.Array, lay: BlockLayout, i: int) -> jax.Array:
    """Each block times itself over every block axis but the ``i``-th: ``G G^T``, ``G^T G``."""
    b, g, e, f = _indices(lay)
    other = [*e]
    other[i] = f
    return jnp.einsum(x, b + g + e, x, b + g + other, [*b, *g, e[i], f], precision=_HIGHEST)


def _precondition(x: jax.Array, p: jax.Array, lay: BlockLayout, i: int) -> jax.Array:
    """Each block's ``i``-th block axis multiplied by its (symmetric) matrix ``p``."""
    b, g, e, f = _indices(lay)
    out = [*e]
    out[i] = f
    return jnp.einsum(x, b + g + e, p, [*b, *g, e[i], f], b + g + out, precision=_HIGHEST)


def _block_norm(x: jax.Array, lay: BlockLayout) -> jax.Array:
    """Frobenius norm of each block (kept as size-1 block axes)."""
    return jnp.sqrt(jnp.sum(x * x, axis=tuple(range(x.ndim - len(lay.n), x.ndim)), keepdims=True))


def _norm(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(x * x))


def _root_parts(s: jax.Array, lay: BlockLayout, i: int) -> list:
    """The ``i``-th statistics cut into stacks of equal true size: the full blocks and, where
    ``d`` does not divide ``n``, the last block's unpadded corner. ``(part, size, where)``."""
    axis = lay.nb + i  # the grid axis of the blocks along the i-th preconditioned axis
    n, d, c = lay.n[i], lay.d[i], lay.c[i]
    r = n - (c - 1) * d
    if r == d:
        return [(s, d, None)]
    full = jax.lax.slice_in_dim(s, 0, c - 1, axis=axis)
    edge = jax.lax.slice_in_dim(s, c - 1, c, axis=axis)[..., :r, :r]
    return [(full, d, None), (edge, r, d)]


def scale_by_shampoo(
    block_size: int = 1024,
    beta1=0.9,
    beta2=0.999,
    diagonal_epsilon=1e-10,
    matrix_epsilon=1e-6,
    start_preconditioning_step: int = 5,
    preconditioning_compute_steps: int = 1,
    *,
    graft_type: str = "sgd",
    nesterov: bool = True,
    moving_average_for_momentum: bool = False,
    exponent_override: int = 0,
    graft_per_block: bool = True,
    precondition_all_axes: bool = False,
    error_tolerance=1e-6,
) -> GradientTransformation:
    """Shampoo: block-diagonal Kronecker preconditioning with grafting and momentum.

    Update rule, for a leaf ``G`` cut into blocks ``G_b`` at step ``t = count + 1``, with
    ``w2 = 1 - beta2`` (1 if ``beta2 == 1``), ``w = 1 - beta1`` with
    ``moving_average_for_momentum`` (else 1), ``k = exponent_override`` or twice the number
    of preconditioned axes (4 for a matrix), ``f = preconditioning_compute_steps``::

        a_t = a_{t-1} + G_t**2                                    (graft "adagrad")
        a_t = beta2 * a_{t-1} + (1 - beta2) * G_t**2              ("rmsprop", "adam")
        D_t = G_t                                                 ("sgd")
        D_t = G_t / (sqrt(a_t) + diagonal_epsilon)                ("adagrad", "rmsprop")
        D_t = G_t / (sqrt(a_t / (1 - beta2**t)) + diagonal_epsilon)   ("adam")
        L_{b,t} = beta2 * L_{b,t-1} + w2 * G_{b,t} G_{b,t}^T
        R_{b,t} = beta2 * R_{b,t-1} + w2 * G_{b,t}^T G_{b,t}
        if t % f == 0:  PL_b = L_{b,t}^(-1/k),  PR_b = R_{b,t}^(-1/k)
        S_{b,t} = PL_b G_{b,t} PR_b
        S_{b,t} = S_{b,t} * |D_{b,t}| / (|S_{b,t}| + 1e-16)      (Frobenius norms)
        m_t = beta1 * m_{t-1} + w * S_t
        n_t = beta1 * n_{t-1} + w * D_t
        (M_t, E_t) = (m_t, S_t) if t >= start_preconditioning_step else (n_t, D_t)
        u_t = M_t                          (nesterov: u_t = beta1 * M_t + w * E_t)

    with ``L_0 = R_0 = matrix_epsilon * I``, ``PL = PR = I`` until the first computation
    and ``m_0 = n_0 = a_0 = 0``. The roots are `matrix_inverse_pth_root`'s (coupled
    Newton, ridge ``matrix_epsilon * lambda_max``, ``error_tolerance``); a root that comes
    out non-finite keeps the previous one. Every axis longer than ``block_size`` is cut
    into pieces of ``block_size`` (the last one shorter: stored zero-padded, its root taken
    of the unpadded corner; a 1x1 root in closed form). The grafting norms are taken per
    block (per leaf with ``graft_per_block=False``, as pytorch_optimizer's
    ``ScalableShampoo`` and Distributed Shampoo do). A leaf of rank >= 3 is a stack of
    matrices over its leading axes, each preconditioned (and grafted) on its own, or with
    ``precondition_all_axes`` a tensor with one factor per axis (contracted over all
    others; ``k = 2 * rank``). Vectors and scalars take the graft's direction (``S = D``).
    The learning rate and weight decay are applied after (see `shampoo`).

    Args:
        block_size: Longest block side, a Python int ``>= 1``.
        beta1: Decay of the momenta, in [0, 1).
        beta2: Decay of the statistics and of the RMSProp/Adam graft, in [0, 1]
            (1: sums; < 1 with ``graft_type="adam"``).
        diagonal_epsilon: Added to the graft's root, ``>= 0``.
        matrix_epsilon: The statistics' initial diagonal and the roots' relative ridge, ``>= 0``.
        start_preconditioning_step: First step that uses the Shampoo direction, a Python
            int ``>= 1`` (the graft's direction before).
        preconditioning_compute_steps: Steps between root computations, a Python int ``>= 1``.
        graft_type: ``"sgd"``, ``"adagrad"``, ``"rmsprop"`` or ``"adam"`` (RMSProp with
            bias correction).
        nesterov: Nesterov momentum.
        moving_average_for_momentum: Momenta as averages (weight ``1 - beta1``), not sums.
        exponent_override: The root ``k`` if ``> 0``, a Python int ``>= 0``.
        graft_per_block: Graft each block (else the whole leaf).
        precondition_all_axes: One factor per axis of a rank >= 3 leaf (the reference's
            tensor form) instead of a stack of matrices.
        error_tolerance: The root iteration's stopping error, a concrete number ``>= 0``
            (pytorch_optimizer uses 1e-3).

    Returns:
        A `GradientTransformation` with state
        `ScaleByShampooState(count, mu, graft_mu, graft_nu, stats, preconds)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_shampoo(beta1=0.0, matrix_epsilon=0.0, start_preconditioning_step=1)
        >>> g = jnp.array([[4.0, 0.0], [0.0, 1.0]])
        >>> u, state = tx.update(g, tx.init(g))  # L = R = g**2: L^(-1/4) g R^(-1/4) = I, grafted
        >>> u.round(4)
        Array([[2.9155, 0.    ],
               [0.    , 2.9155]], dtype=float32)

    References:
        Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization", ICML 2018.
        Anil et al., "Scalable Second Order Optimization for Deep Learning", arXiv:2002.09018
        (Distributed Shampoo); reference: pytorch_optimizer 4.1.0's ``ScalableShampoo``.
    """
    fn = "scale_by_shampoo"
    bs = check_int(fn, "block_size", block_size, 1)
    check_decay(fn, "beta1", beta1)
    check_scalar(fn, "beta2", beta2, lo=0.0, hi=1.0)
    check_nonnegative(fn, "diagonal_epsilon", diagonal_epsilon)
    check_nonnegative(fn, "matrix_epsilon", matrix_epsilon)
    start = check_int(fn, "start_preconditioning_step", start_preconditioning_step, 1)
    freq = check_int(fn, "preconditioning_compute_steps", preconditioning_compute_steps, 1)
    if graft_type not in GRAFT_TYPES:
        raise ValueError(
            f"{fn}: `graft_type` must be one of {', '.join(map(repr, GRAFT_TYPES))}, got {graft_type!r}."
        )
    if graft_type == "adam" and concrete_scalar(beta2) == 1.0:
        raise ValueError(f"{fn}: `beta2` must be < 1 with graft_type='adam' (its bias correction), got 1.0.")
    check_flag(fn, "nesterov", nesterov)
    check_flag(fn, "moving_average_for_momentum", moving_average_for_momentum)
    exponent = check_int(fn, "exponent_override", exponent_override, 0)
    check_flag(fn, "graft_per_block", graft_per_block)
    all_axes = check_flag(fn, "precondition_all_axes", precondition_all_axes)
    check_nonnegative(fn, "error_tolerance", error_tolerance)
    tolerance = concrete_scalar(error_tolerance)
    if tolerance is None:  # it decides when the compiled iteration stops
        raise TypeError(f"{fn}: `error_tolerance` must be a concrete number, got {error_tolerance!r}.")

    def init_fn(params):
        def stats(p, scale):
            p = as_leaf(p)
            if jnp.issubdtype(leaf_dtype(p), jnp.complexfloating):
                raise TypeError(f"{fn}: `params` must be real, got a {leaf_dtype(p)} leaf.")
            lay = block_layout(p.shape, bs, all_axes, exponent)
            if lay is None:
                return None
            dt = compute_dtype(leaf_dtype(p))
            eyes = [jnp.eye(d, dtype=dt) for d in lay.d]
            grid = p.shape[: lay.nb] + lay.c
            return [jnp.broadcast_to(e if scale is None else hp(scale, dt) * e, grid + e.shape) for e in eyes]

        graft_nu = None if graft_type == "sgd" else second_moment_zeros(params)
        return ScaleByShampooState(
            count=zero_count(),
            mu=zeros_like_params(params),
            graft_mu=zeros_like_params(params),
            graft_nu=jax.tree.map(lambda _: None, params) if graft_nu is None else graft_nu,
            stats=jax.tree.map(lambda p: stats(p, matrix_epsilon), params),
            preconds=jax.tree.map(lambda p: stats(p, None), params),
        )

    cfg = (bs, start, freq, graft_type, nesterov, moving_average_for_momentum, exponent)
    cfg += (graft_per_block, all_axes, tolerance)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        refuse_flat(fn, updates)
        check_tree_match(fn, updates, state.mu)
        hps = (beta1, beta2, diagonal_epsilon, matrix_epsilon)
        return _shampoo_step(hps, jax.tree.map(as_leaf, updates), state, cfg)

    return GradientTransformation(init_fn, update_fn)


@functools.partial(jax.jit, static_argnums=3)
def _shampoo_step(hps: tuple, updates: Any, state: ScaleByShampooState, cfg: tuple):
    """One step of `scale_by_shampoo`, compiled once per leaf layout and configuration.

    Eagerly, the many small operations (and the root iterations) would each be compiled
    on their own; hyperparameters are arguments, so transformations that differ only in
    them share the program. Under an outer ``jit`` this is inlined.
    """
    beta1, beta2, diagonal_epsilon, matrix_epsilon = hps
    bs, start, freq, graft_type, nesterov, moving_average_for_momentum, exponent = cfg[:7]
    graft_per_block, all_axes, error_tolerance = cfg[7:]
    treedef = jax.tree.structure(updates)
    layouts = [block_layout(np.shape(g), bs, all_axes, exponent) for g in jax.tree.leaves(updates)]

    def statistics_leaf(lay, g, a, stats):
        """The graft's squares and the blocks' statistics at step t."""
        c = Compute(g, *([] if a is None else [a]))
        x = c(g)
        if graft_type == "adagrad":
            a = store(c.real(a) + x * x, a)
        elif graft_type in ("rmsprop", "adam"):
            a = store(ema_update(c.real(a), x * x, beta2), a)
        if lay is not None:
            blocks = to_blocks(x, lay)
            b2 = jnp.asarray(beta2).astype(stats[0].dtype)
            w2 = jnp.where(b2 == 1, jnp.ones_like(b2), 1 - b2)  # a sum for beta2 = 1
            stats = [b2 * s + w2 * _statistic(blocks.astype(s.dtype), lay, i) for i, s in enumerate(stats)]
        return a, stats

    def roots(stats, preconds):
        """Every statistic's inverse root, one batched iteration per (size, root, dtype)."""
        parts, groups = [], {}
        for lay, ss in zip(layouts, treedef.flatten_up_to(stats)):
            if lay is None:
                continue
            for i, s in enumerate(ss):
                for part, size, pad in _root_parts(s, lay, i):
                    groups.setdefault((size, lay.k, s.dtype), []).append(len(parts))
                    parts.append([part, pad])
        for (size, k, _), members in groups.items():
            stacked = jnp.concatenate([parts[j][0].reshape(-1, size, size) for j in members])
            if size == 1:  # matrix_inverse_pth_root's own 1x1 case, without its power iteration
                ridge = hp(matrix_epsilon, stacked.dtype) * jnp.maximum(stacked, 1e-16)
                inv = (stacked + ridge) ** (-1.0 / k)
            else:
                inv = jax.vmap(
                    lambda s, k=k: matrix_inverse_pth_root(
                        s, k, ridge_epsilon=matrix_epsilon, error_tolerance=error_tolerance
                    )[0]
                )(stacked)
            offsets = np.cumsum([0, *(math.prod(parts[j][0].shape[:-2]) for j in members)])
            for j, lo, hi in zip(members, offsets[:-1], offsets[1:]):
                parts[j][0] = inv[lo:hi].reshape(parts[j][0].shape)
        it = iter(parts)
        new = []
        for lay, ps in zip(layouts, treedef.flatten_up_to(preconds)):
            if lay is None:
                new.append(None)
                continue
            out = []
            for i, old in enumerate(ps):
                pieces = [next(it) for _ in _root_parts(old, lay, i)]
                pad = [(0, 0)] * (old.ndim - 2)
                fixed = [x if p is None else jnp.pad(x, pad + [(0, p - x.shape[-1])] * 2) for x, p in pieces]
                root = jnp.concatenate(fixed, axis=lay.nb + i)
                ok = jnp.all(jnp.isfinite(root), axis=(-2, -1), keepdims=True)
                out.append(jnp.where(ok, root, old))  # a failed root keeps the previous one
            new.append(out)
        return treedef.unflatten(new)

    def direction_leaf(corr, precondition, lay, g, m, n, a, preconds):
        c = Compute(g, m, n)
        x = c(g)
        if graft_type == "sgd":
            d = x
        else:
            v = c.real(a) / corr("beta2", c.rdt) if graft_type == "adam" else c.real(a)
            d = x / (jnp.sqrt(v) + c.hp(diagonal_epsilon, real=True))
        if lay is None:
            s = d * (_norm(d) / (_norm(d) + 1e-16))
        else:
            s = to_blocks(x, lay)
            for i, p in enumerate(preconds):
                s = _precondition(s, c(p), lay, i)
            if graft_per_block:
                db = to_blocks(d, lay)
                s = s * (_block_norm(db, lay) / (_block_norm(s, lay) + 1e-16))
            s = from_blocks(s, lay)
            if not graft_per_block:
                s = s * (_norm(d) / (_norm(s) + 1e-16))
        b1 = c.hp(beta1)
        w = 1 - b1 if moving_average_for_momentum else 1.0
        m = store(b1 * c(m) + w * s, m)
        n = store(b1 * c(n) + w * d, n)
        u = jnp.where(precondition, c(m), c(n))
        if nesterov:
            u = b1 * u + w * jnp.where(precondition, s, d)
        return store(u, g), m, n

    def per_leaf(f, *trees):  # map_leaves, with each leaf's layout as the first argument
        it = iter(layouts)
        return map_leaves(lambda *xs: f(next(it), *xs), *trees)

    t = safe_increment(state.count)
    graft_nu, stats = per_leaf(statistics_leaf, updates, state.graft_nu, state.stats)
    preconds = jax.lax.cond(t % freq == 0, lambda ps: roots(stats, ps), lambda ps: ps, state.preconds)
    corr = BiasCorrections(t, beta2=beta2)
    leaf = lambda lay, *xs: direction_leaf(corr, t >= start, lay, *xs)
    u, mu, graft_mu = per_leaf(leaf, updates, state.mu, state.graft_mu, graft_nu, preconds)
    return u, ScaleByShampooState(t, mu, graft_mu, graft_nu, stats, preconds)
