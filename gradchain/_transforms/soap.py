"""SOAP: Adam run in the eigenbasis of Shampoo's Kronecker-factored preconditioner.

Each matrix leaf ``G`` (``(m, n)``) keeps Shampoo's two factors, ``L = EMA(G G^T)`` and
``R = EMA(G^T G)``, and their eigenbases ``QL``, ``QR``; Adam's moments are kept for the
rotated gradient ``QL^T G QR``, and the update is rotated back. The bases are
computed by ``eigh`` on the first step and refreshed every ``precondition_frequency``
steps by one step of power iteration followed by a QR decomposition, as in the paper.
The optimizer, `soap`, is in `gradchain._optimizers.second_order`.

Shapes: a leaf of rank >= 3 is a stack of matrices over its leading axes (``(..., m, n)``,
e.g. scanned layers), each preconditioned on its own (factors ``(..., m, m)`` and
``(..., n, n)``); ``precondition_all_axes=True`` gives every axis its own factor instead
(the reference's tensor form). A side longer than ``max_precond_dim`` gets no rotation
(identity: one-sided SOAP). Vectors and scalars are plain Adam unless ``precondition_1d``.
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
from gradchain._numerics import (
    as_leaf,
    compute_dtype,
    cond,
    leaf_dtype,
    per_matrix,
    safe_increment,
    zero_count,
)
from gradchain._validate import (
    check_decay,
    check_flag,
    check_int,
    check_nonnegative,
    check_tree_match,
    refuse_flat,
)

__all__ = ["ScaleBySoapState", "scale_by_soap"]

_HIGHEST = jax.lax.Precision.HIGHEST


class ScaleBySoapState(NamedTuple):
    """State of `scale_by_soap`.

    Per parameter value of an ``(m, n)`` leaf preconditioned on both sides:
    ``2 + 2 * (m**2 + n**2) / (m * n)`` values (the two moments; the factors and the
    bases). ``mu`` and ``nu`` have the parameter's shape and take its sharding; the
    factors and bases (lists of ``(..., d, d)`` arrays) are replicated
    (`gradchain.state_shardings` replicates per-parameter leaves of other shapes).
    """

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, param dtype: EMA of the rotated gradients (eigenbasis)
    nu: Any  # per-param tree, second-moment dtype: EMA of the squared rotated gradients (eigenbasis)
    gg: Any  # per-param list of Kronecker factors, (..., d, d) per preconditioned axis, compute dtype; None: none
    q: Any  # per-param list of their eigenbases (columns by decreasing eigenvalue), as `gg`


def precond_axes(shape: tuple, max_precond_dim: int, precondition_1d: bool, all_axes: bool) -> tuple:
    """``(nb, axes)``: a leaf's leading batch axes and its preconditioned axes."""
    r = len(shape)
    if r == 0 or math.prod(shape) == 0 or (r == 1 and not precondition_1d):
        return 0, ()
    nb = 0 if (all_axes or r == 1) else r - 2
    return nb, tuple(a for a in range(nb, r) if shape[a] <= max_precond_dim)


def _rotate_axis(x: jax.Array, q: jax.Array, axis: int, nb: int, back: bool) -> jax.Array:
    """``x`` with ``axis`` multiplied by ``q^T`` (into the basis), or by ``q`` (``back``).

    ``q`` has ``x``'s leading ``nb`` (batch) axes, then ``(d, d)``.
    """
    r = x.ndim
    qs = list(range(nb)) + ([r, axis] if back else [axis, r])
    out = list(range(r))
    out[axis] = r
    return jnp.einsum(x, list(range(r)), q, qs, out, precision=_HIGHEST)


def _factor(x: jax.Array, axis: int, nb: int) -> jax.Array:
    """``x`` times itself over every non-batch axis but ``axis``: ``G G^T`` (axis -2), ``G^T G`` (axis -1)."""
    r = x.ndim
    other = list(range(r))
    other[axis] = r
    return jnp.einsum(x, list(range(r)), x, other, [*list(range(nb)), axis, r], precision=_HIGHEST)


def _wide_dtype(dt) -> Any:
    """float64 where JAX has it (x64 enabled), else ``dt``."""
    wide = jax.dtypes.canonicalize_dtype(jnp.float64)
    return wide if wide == jnp.float64 else dt


def eigenbasis(a: jax.Array, previous: jax.Array) -> jax.Array:
    """Eigenvectors of the symmetric ``a`` (``(..., d, d)``), columns by decreasing eigenvalue.

    ``eigh`` runs on ``a / max |a|`` (the same vectors, and no overflow) in ``a``'s dtype;
    where it fails (non-finite eigenvalues or vectors) and JAX has a wider dtype (float64
    with x64, for float32 factors), it runs again in that; a matrix whose basis is still
    not finite keeps ``previous``.
    """

    def finite(w, v):
        return jnp.all(jnp.isfinite(v), axis=(-2, -1)) & jnp.all(jnp.isfinite(w), axis=-1)

    # divided twice by sqrt(max |a|): 1 / max |a| can be subnormal, which XLA flushes to 0
    root = jnp.sqrt(jnp.max(jnp.abs(a), axis=(-2, -1), keepdims=True))
    root = jnp.where(jnp.isfinite(root) & (root > 0), root, jnp.ones_like(root))
    a = a / root / root
    eye = jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)
    w, v = per_matrix(jnp.linalg.eigh, a + 1e-30 * eye)
    wide = _wide_dtype(a.dtype)
    if wide != a.dtype:

        def again(_):
            w2, v2 = per_matrix(jnp.linalg.eigh, a.astype(wide))
            return w2.astype(a.dtype), v2.astype(a.dtype)

        w, v = cond(jnp.all(finite(w, v)), lambda _: (w, v), again, None)
    return jnp.where(finite(w, v)[..., None, None], v[..., ::-1], previous)


def _refresh_axis(gg: jax.Array, q: jax.Array, v: jax.Array, axis: int, nb: int):
    """One power-iteration step and QR for one side; ``v`` follows the new column order."""
    p = jnp.matmul(gg, q, precision=_HIGHEST)
    est = jnp.sum(q * p, axis=-2)  # Rayleigh quotients: the eigenvalue estimates
    order = jnp.argsort(est, axis=-1, descending=True)
    shape = [1] * v.ndim
    shape[:nb] = v.shape[:nb]
    shape[axis] = v.shape[axis]
    v = jnp.take_along_axis(v, order.reshape(shape), axis=axis)
    p = jnp.take_along_axis(p, order[..., None, :], axis=-1)
    return per_matrix(lambda x: jnp.linalg.qr(x)[0], p), v


def scale_by_soap(
    b1=0.95,
    b2=0.95,
    shampoo_beta=None,
    eps=1e-8,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    *,
    precondition_1d: bool = False,
    normalize_grads: bool = False,
    correct_bias: bool = True,
    precondition_all_axes: bool = False,
) -> GradientTransformation:
    """SOAP: Adam in the eigenbasis of Shampoo's factors, refreshed every few steps.

    Update rule, for a leaf ``G`` of shape ``(..., m, n)`` at step ``t = count + 1``, with
    ``sb = shampoo_beta`` (``b2`` if None), ``s = t - 1``, ``f = precondition_frequency``::

        L_t = sb * L_{t-1} + (1 - sb) * G_t G_t^T
        R_t = sb * R_{t-1} + (1 - sb) * G_t^T G_t
        t = 1:  QL, QR = eigenvectors of L_1, R_1 by decreasing eigenvalue;  u_1 = 0, m, v unchanged
        t >= 2:
          G'_t = QL^T G_t QR
          m_t = b1 * m_{t-1} + (1 - b1) * G'_t
          v_t = b2 * v_{t-1} + (1 - b2) * G'_t**2
          N_t = QL (m_t / (sqrt(v_t) + eps)) QR^T
          N_t = N_t / (sqrt(mean(N_t**2)) + eps)                   (normalize_grads)
          u_t = sqrt(1 - b2**s) / (1 - b1**s) * N_t                 (correct_bias; else N_t)
          if s % f == 0, for each side (L, QL, axis -2), then (R, QR, axis -1):
            P = L_t QL,  k = argsort(-diag(QL^T P)),  Q' = qr(P[:, k]).Q
            m_t = Q'^T QL m_t,  v_t = v_t[k]  (along the side's axis),  QL = Q'

    with ``m_0 = v_0 = L_0 = R_0 = 0``; the bases used for ``u_t`` are those before the
    refresh. A side longer than ``max_precond_dim`` keeps no factor (``Q = I``); a leaf of
    rank >= 3 is a stack of such matrices over its leading axes (or, with
    ``precondition_all_axes``, a tensor with one factor per axis, contracted over all the
    other axes); a vector is plain Adam (or has one factor ``g g^T``, with
    ``precondition_1d``); a scalar is plain Adam. Every leaf skips the first step (``u_1 =
    0``), which only initialises the bases, as in the authors' code. Both moments live in
    the eigenbasis: a refresh re-projects ``m`` exactly and permutes ``v`` to the new
    eigenvalue order (the paper's approximation: squares cannot be re-projected). The
    authors keep ``m`` in the parameter's basis and rotate it at every step instead: the
    same in exact arithmetic, but in floating point it divides two independent rounding
    errors (``QL^T m QR`` by ``sqrt(v)``) in directions the factors have not seen, which
    can blow the step up; here both come from one ``G'``. ``eps`` is added outside the
    root of the uncorrected ``v`` and the bias corrections scale the step, as in the
    reference. ``eigh`` and ``qr`` run in the compute dtype (float32 at least), ``eigh``
    again in float64 (with x64) if it fails (see `eigenbasis`).

    Args:
        b1: Decay of the first moment, in [0, 1).
        b2: Decay of the second moment, in [0, 1).
        shampoo_beta: Decay of the factors, in [0, 1); None: ``b2``.
        eps: Added to the root of the second moment (and to the RMS with
            ``normalize_grads``), ``>= 0``.
        precondition_frequency: Steps between refreshes of the bases, a Python int ``>= 1``.
        max_precond_dim: Longest side that gets a factor, a Python int ``>= 1``.
        precondition_1d: Give vectors a factor too (a ``(d, d)`` matrix).
        normalize_grads: Divide each leaf's direction (each matrix's, in a stack) by its RMS.
        correct_bias: Scale by Adam's bias corrections.
        precondition_all_axes: One factor per axis of a rank >= 3 leaf (the reference's
            tensor form) instead of a stack of matrices over the leading axes.

    Returns:
        A `GradientTransformation` with state `ScaleBySoapState(count, mu, nu, gg, q)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_soap(precondition_frequency=2)
        >>> state = tx.init(jnp.zeros((2, 2)))
        >>> g = jnp.array([[1.0, 0.0], [0.0, -2.0]])
        >>> u, state = tx.update(g, state)  # the first step only sets up the bases
        >>> u
        Array([[0., 0.],
               [0., 0.]], dtype=float32)
        >>> (tx.update(g, state)[0] + 0.0).round(4)  # then Adam in that basis: sign(g) on step two
        Array([[ 1.,  0.],
               [ 0., -1.]], dtype=float32)

    References:
        Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", ICLR 2025
        (arXiv:2409.11321); reference: pytorch_optimizer 4.1.0's ``SOAP``.
    """
    fn = "scale_by_soap"
    check_decay(fn, "b1", b1)
    check_decay(fn, "b2", b2)
    if shampoo_beta is not None:
        check_decay(fn, "shampoo_beta", shampoo_beta)
    check_nonnegative(fn, "eps", eps)
    freq = check_int(fn, "precondition_frequency", precondition_frequency, 1)
    max_dim = check_int(fn, "max_precond_dim", max_precond_dim, 1)
    one_d = check_flag(fn, "precondition_1d", precondition_1d)
    check_flag(fn, "normalize_grads", normalize_grads)
    check_flag(fn, "correct_bias", correct_bias)
    all_axes = check_flag(fn, "precondition_all_axes", precondition_all_axes)
    sb = b2 if shampoo_beta is None else shampoo_beta

    def init_fn(params):
        def factors(p, identity):
            p = as_leaf(p)
            if jnp.issubdtype(leaf_dtype(p), jnp.complexfloating):
                raise TypeError(f"{fn}: `params` must be real, got a {leaf_dtype(p)} leaf.")
            nb, axes = precond_axes(p.shape, max_dim, one_d, all_axes)
            if not axes:
                return None
            dt = compute_dtype(leaf_dtype(p))
            mats = [jnp.zeros(p.shape[:nb] + (p.shape[a],) * 2, dt) for a in axes]
            return (
                [jnp.broadcast_to(jnp.eye(m.shape[-1], dtype=dt), m.shape) for m in mats]
                if identity
                else mats
            )

        return ScaleBySoapState(
            count=zero_count(),
            mu=zeros_like_params(params),
            nu=second_moment_zeros(params),
            gg=jax.tree.map(lambda p: factors(p, False), params),
            q=jax.tree.map(lambda p: factors(p, True), params),
        )

    cfg = (freq, max_dim, one_d, all_axes, normalize_grads, correct_bias)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        refuse_flat(fn, updates)
        check_tree_match(fn, updates, state.mu)
        return _soap_step((b1, b2, sb, eps), jax.tree.map(as_leaf, updates), state, cfg)

    return GradientTransformation(init_fn, update_fn)


@functools.partial(jax.jit, static_argnums=3)
def _soap_step(hps: tuple, updates: Any, state: ScaleBySoapState, cfg: tuple):
    """One step of `scale_by_soap`, compiled once per leaf layout and configuration.

    Eagerly, SOAP's many small operations would each be compiled on their own (seconds);
    hyperparameters are arguments, so transformations that differ only in them (a sweep)
    share the program. Under an outer ``jit`` this is inlined.
    """
    b1, b2, sb, eps = hps
    freq, max_dim, one_d, all_axes, normalize_grads, correct_bias = cfg
    count = state.count

    def layout(x) -> tuple:
        return precond_axes(np.shape(x), max_dim, one_d, all_axes)

    def new_factors(x, gg, nb, axes):
        return [ema_update(f, _factor(x.astype(f.dtype), a, nb), sb) for f, a in zip(gg, axes)]

    def leaf(corr, first, g, m, v, gg, q):
        # the step's update, moments and factors; on the first step (``first``) the update
        # is zero and the moments are left alone (selects: no branch around the products)
        nb, axes = layout(g)
        c = Compute(g, m, v, *(gg or []))
        x = c(g)

        def rotate(y, back=False):
            for a, qa in zip(axes, q or []):
                y = _rotate_axis(y, c(qa), a, nb, back)
            return y

        xr = rotate(x)
        m_new = store(ema_update(c(m), xr, b1), m)
        v_new = store(ema_update(c.real(v), xr * xr, b2), v)
        n = rotate(c(m_new) / (jnp.sqrt(c(v_new)) + c.hp(eps)), back=True)
        if normalize_grads:
            rms = jnp.sqrt(jnp.mean(n * n, axis=tuple(range(nb, n.ndim)), keepdims=True))
            n = n / (rms + c.hp(eps))
        if correct_bias:
            n = n * (jnp.sqrt(corr("b2", c.dt)) / corr("b1", c.dt))
        if gg is not None:
            gg = new_factors(x, gg, nb, axes)
        u = store(n, g)
        u = jnp.where(first, jnp.zeros_like(u), u)
        return u, jnp.where(first, m, m_new), jnp.where(first, v, v_new), gg, q

    def refresh_leaf(g, m, v, gg, q):
        nb, axes = layout(g)
        if gg is None:
            return m, v, q
        c = Compute(g, m, *gg)
        mp, new_q = c(m), []
        for f, qa, a in zip(gg, q, axes):
            new, v = _refresh_axis(f, qa, v, a, nb)
            # m into the new basis: exactly, through the parameter's basis
            mp = _rotate_axis(_rotate_axis(mp, c(qa), a, nb, True), c(new), a, nb, False)
            new_q.append(new)
        return store(mp, m), v, new_q

    # The products of every step run outside any branch: inside a `cond`, XLA:CPU copied
    # the bases into transposed layouts for them (1.9x the step time, measured on GPT-2
    # shapes). Only the bases' computations branch: set up on the first step (eigh),
    # refreshed every `freq` steps (power iteration and QR), kept otherwise.
    first = count == 0
    corr = BiasCorrections(jnp.maximum(count, 1), b1=b1, b2=b2)  # s = count >= 1 where it counts
    trees = (updates, state.mu, state.nu, state.gg, state.q)
    u, mu, nu, gg, q = map_leaves(lambda *xs: leaf(corr, first, *xs), *trees)

    def set_up(args):
        mu, nu, gg, q = args

        def bases(g, fs, olds):
            return (None if fs is None else [eigenbasis(f, old) for f, old in zip(fs, olds)],)

        return mu, nu, map_leaves(bases, updates, gg, q)[0]

    def refresh(args):
        return map_leaves(refresh_leaf, updates, *args)

    def keep(args):
        return args[0], args[1], args[3]

    branch = jnp.where(first, 0, jnp.where(count % freq == 0, 1, 2))
    mu, nu, q = jax.lax.switch(branch, (set_up, refresh, keep), (mu, nu, gg, q))
    return u, ScaleBySoapState(count=safe_increment(count), mu=mu, nu=nu, gg=gg, q=q)
