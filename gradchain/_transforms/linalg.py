"""Linear-algebra tools of second-order methods: `power_iteration` (the dominant eigenpair),
`matrix_inverse_pth_root` (Shampoo's ``M^(-1/p)``) and `nnls` (non-negative least squares).

Each runs in the input's compute dtype (at least float32; float64 stays float64) and returns
results in the input's dtype. They are plain functions, not transformations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradchain._numerics import compute_dtype
from gradchain._validate import check_int, check_nonnegative, check_scalar

__all__ = ["matrix_inverse_pth_root", "nnls", "power_iteration"]


def _vdot(x: Any, y: Any) -> jax.Array:
    """``sum(conj(x) * y)`` over the leaves of two trees."""
    parts = [
        jnp.vdot(a, b, precision=jax.lax.Precision.HIGHEST)
        for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y))
    ]
    return sum(parts[1:], parts[0])


def _normalize(x: Any) -> Any:
    norm = jnp.sqrt(jnp.real(_vdot(x, x)))
    return jax.tree.map(lambda a: a / norm.astype(a.dtype), x)


def _square_matrix(fn: str, name: str, matrix: Any) -> jax.Array:
    matrix = jnp.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{fn}: `{name}` must be a square matrix, got an array of shape {matrix.shape}.")
    if not jnp.issubdtype(matrix.dtype, jnp.inexact):
        raise TypeError(f"{fn}: `{name}` must be a floating-point matrix, got dtype {matrix.dtype}.")
    return matrix


def power_iteration(
    matrix: jax.Array | Callable[[Any], Any],
    *,
    v0: Any = None,
    num_iters=100,
    error_tolerance=1e-6,
    precision: jax.lax.Precision = jax.lax.Precision.HIGHEST,
    key: jax.Array | None = None,
) -> tuple[jax.Array, Any]:
    """The dominant eigenvalue and its unit eigenvector, by power iteration.

    From ``v_0`` (``v0``, or uniform in [-1, 1] drawn with ``key``, default ``PRNGKey(0)``)::

        v_k = z_{k-1} / |z_{k-1}|,   z_k = M v_k,   lambda_k = <v_k, z_k>
        stop when |z_k - lambda_k v_k| / |lambda_k| < error_tolerance, or after num_iters
        return lambda_k, z_k / |z_k|

    Args:
        matrix: A square array, or a function computing ``M v`` for ``v`` a pytree.
        v0: The starting vector (a pytree shaped like ``matrix``'s input if it is a
            function, where it is required).
        num_iters: Most iterations, an integer ``>= 0``.
        error_tolerance: Relative residual at which to stop, ``>= 0``.
        precision: Precision of the matrix-vector products with an array ``matrix``.
        key: PRNG key for the random ``v0``.

    Returns:
        ``(eigenvalue, eigenvector)``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> eig, vec = gradchain.power_iteration(jnp.array([[2.0, 1.0], [1.0, 2.0]]))
        >>> round(float(eig), 4), [round(abs(float(x)), 4) for x in vec]
        (3.0, [0.7071, 0.7071])

    References:
        von Mises & Pollaczek-Geiringer, "Praktische Verfahren der Gleichungsauflösung",
        ZAMM 1929.
    """
    fn = "power_iteration"
    check_scalar(fn, "num_iters", num_iters, lo=0, integer=True)
    check_nonnegative(fn, "error_tolerance", error_tolerance)
    if callable(matrix) and not isinstance(matrix, jax.Array):
        if v0 is None:
            raise ValueError(
                f"{fn}: `v0` must be given when `matrix` is a function (its input's tree is unknown)."
            )
        mvp = matrix
    else:
        m = _square_matrix(fn, "matrix", matrix)
        mvp = lambda v: jnp.matmul(m, v, precision=precision)
        if v0 is None:
            key = jax.random.PRNGKey(0) if key is None else key
            v0 = jax.random.uniform(key, m.shape[-1:], m.dtype, minval=-1.0, maxval=1.0)
    v0 = _normalize(v0)
    z0 = mvp(v0)
    eig0 = jnp.zeros_like(_vdot(v0, z0))

    def keep_going(carry):
        v, z, eig, k = carry
        residual = jax.tree.map(lambda a, b: a - eig.astype(b.dtype) * b, z, v)
        converged = jnp.abs(jnp.sqrt(jnp.real(_vdot(residual, residual))) / eig) < error_tolerance
        return ~converged & (k < num_iters)

    def body(carry):
        _, z, _, k = carry
        v = _normalize(z)
        z = mvp(v)
        return v, z, _vdot(v, z).astype(eig0.dtype), k + 1

    _, z, eig, _ = jax.lax.while_loop(keep_going, body, (v0, z0, eig0, jnp.zeros([], jnp.int32)))
    return eig, _normalize(z)


def matrix_inverse_pth_root(
    matrix: jax.Array,
    p: int,
    num_iters=100,
    ridge_epsilon=1e-6,
    error_tolerance=1e-6,
    precision: jax.lax.Precision = jax.lax.Precision.HIGHEST,
) -> tuple[jax.Array, jax.Array]:
    """``(M + eps I)^(-1/p)`` of a symmetric positive semi-definite ``M``, by coupled Newton iterations.

    With ``eps = ridge_epsilon * max(lambda_max(M), 1e-16)`` (``lambda_max`` by
    `power_iteration`), ``D = M + eps I``, ``a = -1/p`` and ``z = (1 + p) / (2 |D|_F)``::

        M_0 = z D,   H_0 = z**(1/p) I
        N_k = (1 - a) I + a M_k
        M_{k+1} = N_k**p M_k,   H_{k+1} = H_k N_k,   error_{k+1} = max |M_{k+1} - I|
        stop after num_iters, at error <= error_tolerance, or when the error grows by more
        than 1.2x (then H_k is returned)

    ``H`` converges to ``D^(-1/p)``. (Optax 0.2.8 computes ``N_k**p`` only for p = 1, 2, 4
    or 8 and ``N_k**(2**round(log2 p))`` otherwise; here every positive integer ``p`` works.)

    Args:
        matrix: A symmetric PSD matrix, ``(n, n)``.
        p: The root, a positive Python int.
        num_iters: Most iterations, an integer ``>= 0``.
        ridge_epsilon: Ridge relative to the largest eigenvalue, ``>= 0``.
        error_tolerance: Stop once ``max |M_k - I|`` is at most this, ``>= 0``.
        precision: Precision of the matrix products.

    Returns:
        ``(H, error)``: the inverse root in ``matrix``'s dtype and the final ``max |M - I|``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> h, err = gradchain.matrix_inverse_pth_root(jnp.diag(jnp.array([4.0, 16.0])), 2, ridge_epsilon=0.0)
        >>> jnp.diag(h).round(4)
        Array([0.5 , 0.25], dtype=float32)

    References:
        Higham, "Functions of Matrices: Theory and Computation", SIAM 2008, eq. 7.18.
        Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization", ICML 2018.
    """
    fn = "matrix_inverse_pth_root"
    matrix = _square_matrix(fn, "matrix", matrix)
    p = check_int(fn, "p", p, 1)
    check_scalar(fn, "num_iters", num_iters, lo=0, integer=True)
    check_nonnegative(fn, "ridge_epsilon", ridge_epsilon)
    check_nonnegative(fn, "error_tolerance", error_tolerance)
    dt = compute_dtype(matrix.dtype)
    m = matrix.astype(dt)
    n = m.shape[0]
    eye = jnp.eye(n, dtype=dt)
    alpha = -1.0 / p
    max_ev, _ = power_iteration(m, num_iters=100, error_tolerance=1e-6, precision=precision)
    eps = jnp.asarray(ridge_epsilon, dt) * jnp.maximum(max_ev, 1e-16)
    if n == 1:
        return ((m + eps) ** alpha).astype(matrix.dtype), jnp.zeros([], dt)
    matmul = lambda a, b: jnp.matmul(a, b, precision=precision)

    def power(a, k):  # a**k by repeated squaring (k a Python int >= 1)
        result = None
        while k:
            if k & 1:
                result = a if result is None else matmul(result, a)
            k >>= 1
            a = matmul(a, a) if k else a
        return result

    def keep_going(carry):
        k, _, _, _, error, improving = carry
        return (k < num_iters) & (error > error_tolerance) & improving

    def body(carry):
        k, mat_m, mat_h, _, error, _ = carry
        step = (1 - alpha) * eye + alpha * mat_m
        new_m = matmul(power(step, p), mat_m)
        new_error = jnp.max(jnp.abs(new_m - eye))
        return k + 1, new_m, matmul(mat_h, step), mat_h, new_error, new_error < error * 1.2

    damped = m + eps * eye
    z = (1 + p) / (2 * jnp.linalg.norm(damped))
    m0, h0 = damped * z, eye * z ** (1.0 / p)
    start = (jnp.zeros([], jnp.int32), m0, h0, h0, jnp.max(jnp.abs(m0 - eye)), jnp.ones([], bool))
    _, mat_m, mat_h, old_h, _, improving = jax.lax.while_loop(keep_going, body, start)
    h = jnp.where(improving, mat_h, old_h)
    return h.astype(matrix.dtype), jnp.max(jnp.abs(mat_m - eye))


def nnls(A: jax.Array, b: jax.Array, iters: int, unroll: int | bool = 1, L: Any = None) -> jax.Array:
    """Non-negative least squares: ``argmin_{x >= 0} |A x - b|``, by fast projected gradient.

    With ``Q = A^T A``, ``q = A^T b`` and ``L`` an upper bound on ``Q``'s spectral radius
    (default ``min(|Q|_F, |Q|_1)``), from ``x_0 = p_0 = 0``, ``c_0 = 0``::

        c_{k+1} = (1 + sqrt(1 + 4 c_k**2)) / 2
        x_{k+1} = max(p_k - (Q p_k - q) / L, 0)
        p_{k+1} = x_{k+1} + (c_k - 1) / c_{k+1} * (x_{k+1} - x_k)

    Args:
        A: The matrix, ``(M, N)``.
        b: The target, ``(M,)`` or ``(M, K)`` (``K`` problems at once).
        iters: Number of iterations, a Python int ``>= 0``.
        unroll: ``lax.scan``'s ``unroll``.
        L: An upper bound on the spectral radius of ``A^T A`` (``> 0``), or ``None``.

    Returns:
        ``x``, shaped ``(N,)`` or ``(N, K)``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.nnls(jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([5.0, 6.0]), 1000).round(2)
        Array([0. , 1.7], dtype=float32)

    References:
        Polyak, "Projected gradient method for non-negative least square", Contemporary
        Mathematics 636, 2015.
    """
    fn = "nnls"
    A, b = jnp.asarray(A), jnp.asarray(b)
    if A.ndim != 2:
        raise ValueError(f"{fn}: `A` must be a matrix, got an array of shape {A.shape}.")
    if b.ndim not in (1, 2) or b.shape[0] != A.shape[0]:
        raise ValueError(
            f"{fn}: `b` must have shape ({A.shape[0]},) or ({A.shape[0]}, K) to match `A` {A.shape}, got {b.shape}."
        )
    for name, x in (("A", A), ("b", b)):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{fn}: `{name}` must be a real floating-point array, got dtype {x.dtype}.")
    iters = check_int(fn, "iters", iters, 0)
    if L is not None:
        check_scalar(fn, "L", L, lo=0.0, lo_open=True)
    out_dt = jnp.promote_types(A.dtype, b.dtype)
    dt = compute_dtype(out_dt)
    A, b_ = A.astype(dt), b.astype(dt)
    Q, q = A.mT @ A, A.mT @ b_
    if L is None:
        L = jnp.minimum(jnp.linalg.norm(Q, "fro"), jnp.linalg.norm(Q, 1)) if Q.size else jnp.ones([], dt)
    L = jnp.asarray(L).astype(dt)
    L = jnp.where(L == 0, jnp.ones_like(L), L)

    def step(carry, _):
        x, p, c = carry
        c_next = (1 + jnp.sqrt(1 + 4 * c**2)) / 2
        x_next = jnp.maximum(p - (Q @ p - q) / L, 0)
        return (x_next, x_next + (c - 1) / c_next * (x_next - x), c_next), None

    x0 = jnp.zeros(A.shape[-1:] + b_.shape[1:], dt)
    (x, _, _), _ = jax.lax.scan(step, (x0, x0, jnp.zeros([], dt)), length=iters, unroll=unroll)
    return x.astype(out_dt)
