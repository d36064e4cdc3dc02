"""Optax's deprecated ``optax.second_order`` helpers: Hessian-vector products and diagonals.

Each call emits Optax's `DeprecationWarning` (deprecated in Optax 0.2.7, removed in
0.2.9): for curvature in an optimizer see `hutchinson_estimator_diag_hessian` and
`sophia`. The loss has the signature ``loss(params, inputs, targets) -> scalar``; the
results are over the raveled parameters (``jax.flatten_util.ravel_pytree`` order).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import flatten_util

__all__ = ["fisher_diag", "hessian_diag", "hvp"]


def _deprecated(f: Callable) -> Callable:
    message = f"The function {f.__name__} is deprecated. This function will be/was removed in optax 0.2.9."

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        warnings.warn(message, category=DeprecationWarning, stacklevel=2)
        return f(*args, **kwargs)

    return wrapped


def _check_loss(fn: str, name: str, loss: Any) -> None:
    if not callable(loss):
        raise TypeError(f"{fn}: `{name}` must be callable as {name}(params, inputs, targets), got {loss!r}.")


def _ravel(tree: Any) -> jax.Array:
    return flatten_util.ravel_pytree(tree)[0]


def _hvp(loss: Callable, v: Any, params: Any, inputs: Any, targets: Any) -> Any:
    flat, unravel = flatten_util.ravel_pytree(params)
    v = jnp.asarray(v)
    if v.shape != flat.shape:
        raise ValueError(
            f"hvp: `v` must be a vector of the raveled parameters' size, shape {flat.shape}, got shape {v.shape}."
        )
    grad = jax.grad(lambda p: loss(p, inputs, targets))
    return jax.jvp(grad, [params], [unravel(v)])[1]


@_deprecated
def hvp(loss: Callable, v: Any, params: Any, inputs: Any, targets: Any) -> Any:
    """The Hessian of ``loss`` (in ``params``) times a vector ``v``, by forward-over-reverse differentiation.

    ::

        out = H v,   H = d^2 loss(params, inputs, targets) / d params^2

    Args:
        loss: ``loss(params, inputs, targets) -> scalar``.
        v: A vector with as many entries as the raveled ``params``.
        params: The parameters (a pytree).
        inputs: The inputs ``loss`` is evaluated at.
        targets: The targets ``loss`` is evaluated at.

    Returns:
        ``H v``, a tree like ``params``.

    Examples:
        >>> import warnings, jax.numpy as jnp, gradchain
        >>> loss = lambda p, x, y: jnp.sum((x * p - y) ** 2)
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     gradchain.second_order.hvp(loss, jnp.array([1.0, 0.0]), jnp.ones(2), jnp.array([1.0, 2.0]), 0.0)
        Array([2., 0.], dtype=float32)
    """
    _check_loss("hvp", "loss", loss)
    return _hvp(loss, v, params, inputs, targets)


@_deprecated
def hessian_diag(loss: Callable, params: Any, inputs: Any, targets: Any) -> jax.Array:
    """The diagonal of the Hessian of ``loss`` in the raveled ``params``, one Hessian-vector product per entry.

    ::

        out_k = e_k . (H e_k)      for each unit vector e_k

    Costs ``n`` Hessian-vector products for ``n`` parameters (use it on small models).

    Args:
        loss: ``loss(params, inputs, targets) -> scalar``.
        params: The parameters (a pytree).
        inputs: The inputs ``loss`` is evaluated at.
        targets: The targets ``loss`` is evaluated at.

    Returns:
        A vector with one entry per raveled parameter.

    Examples:
        >>> import warnings, jax.numpy as jnp, gradchain
        >>> loss = lambda p, x, y: jnp.sum((x * p - y) ** 2)
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     gradchain.second_order.hessian_diag(loss, jnp.ones(2), jnp.array([1.0, 2.0]), 0.0)
        Array([2., 8.], dtype=float32)
    """
    _check_loss("hessian_diag", "loss", loss)
    flat = _ravel(params)
    basis = jnp.eye(flat.size, dtype=flat.dtype)
    return jax.vmap(lambda e: jnp.vdot(e, _ravel(_hvp(loss, e, params, inputs, targets))))(basis)


@_deprecated
def fisher_diag(negative_log_likelihood: Callable, params: Any, inputs: Any, targets: Any) -> jax.Array:
    """The diagonal of the observed Fisher information: the squared gradient of the negative log-likelihood.

    ::

        out = (d nll(params, inputs, targets) / d params)**2     (raveled)

    Args:
        negative_log_likelihood: ``nll(params, inputs, targets) -> scalar``.
        params: The parameters (a pytree).
        inputs: The inputs the likelihood is evaluated at.
        targets: The targets the likelihood is evaluated at.

    Returns:
        A vector with one entry per raveled parameter.

    Examples:
        >>> import warnings, jax.numpy as jnp, gradchain
        >>> nll = lambda p, x, y: jnp.sum((x * p - y) ** 2)
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     gradchain.second_order.fisher_diag(nll, jnp.ones(2), jnp.array([1.0, 2.0]), 0.0)
        Array([ 4., 64.], dtype=float32)
    """
    _check_loss("fisher_diag", "negative_log_likelihood", negative_log_likelihood)
    return jnp.square(_ravel(jax.grad(negative_log_likelihood)(params, inputs, targets)))
