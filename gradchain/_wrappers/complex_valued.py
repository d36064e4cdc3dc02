"""Complex parameters as pairs of real ones: `split_real_and_imaginary` runs an inner
transformation on the real and imaginary parts as two real parameters.

JAX's gradient of a real loss with respect to a complex parameter ``z = x + iy`` is
``dL/dx - i dL/dy``, the conjugate of the descent direction: conjugate the gradients
before the update (``jax.tree.map(jnp.conj, grads)``), as Optax's documentation says.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, as_transformation
from gradchain._validate import check_floating

__all__ = ["SplitRealAndImaginaryArrays", "SplitRealAndImaginaryState", "split_real_and_imaginary"]


class SplitRealAndImaginaryArrays(NamedTuple):
    """A complex leaf as the pair of real arrays the inner transformation sees (Optax's type)."""

    real: Any
    imaginary: Any


class SplitRealAndImaginaryState(NamedTuple):
    """State of `split_real_and_imaginary`."""

    inner_state: Any  # the inner state, initialised on the split parameters


def _split(x: Any) -> Any:
    if x is not None and jnp.iscomplexobj(x):
        return SplitRealAndImaginaryArrays(jnp.real(x), jnp.imag(x))
    return x


def _is_pair(x: Any) -> bool:
    return isinstance(x, SplitRealAndImaginaryArrays)


def split_real_and_imaginary(inner: GradientTransformation) -> GradientTransformation:
    """Run ``inner`` on complex leaves split into their real and imaginary parts.

    Every complex leaf ``z = x + iy`` of the updates (and of the parameters) becomes the
    pair `SplitRealAndImaginaryArrays(x, y)`, two real leaves for ``inner``; its output
    pair ``(a, b)`` is merged back::

        (a, b) = inner((Re g, Im g)),   u = a + i b

    so an optimizer on complex parameters acts as on twice as many real ones (Adam's
    second moment per real coordinate, not per complex one). Real leaves pass through
    to ``inner`` unchanged. Extra arguments are forwarded to ``inner``.

    Args:
        inner: The transformation to run on the real pairs.

    Returns:
        A `GradientTransformation` with state `SplitRealAndImaginaryState(inner_state)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.split_real_and_imaginary(gradchain.scale_by_adam())
        >>> z = jnp.array([1.0 + 0.01j, -2.0 + 3.0j])
        >>> tx.update(z, tx.init(z))[0]   # Adam's first step: the sign of each real coordinate
        Array([ 1.+1.j, -1.+1.j], dtype=complex64)

    References:
        Optax's ``contrib.split_real_and_imaginary``; the conjugation convention is
        https://github.com/deepmind/optax/issues/196.
    """
    fn = "split_real_and_imaginary"
    inner = as_transformation(fn, "inner", inner)

    def init_fn(params):
        return SplitRealAndImaginaryState(inner.init(jax.tree.map(_split, params)))

    def update_fn(updates, state, params=None, **extra_args):
        check_floating(fn, updates)
        split_updates = jax.tree.map(_split, updates)
        split_params = None if params is None else jax.tree.map(_split, params)
        new, inner_state = inner.update(split_updates, state.inner_state, split_params, **extra_args)

        def merge(u, g):
            if _is_pair(u):
                return jax.lax.complex(u.real, u.imaginary).astype(jnp.result_type(g))
            return u

        merged = jax.tree.map(merge, new, updates, is_leaf=_is_pair)
        return merged, SplitRealAndImaginaryState(inner_state)

    return GradientTransformation(init_fn, update_fn)
