"""Gradient noise: annealed Gaussian noise added to the updates (`add_noise`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation
from gradchain._kit import Compute, map_leaves, store
from gradchain._numerics import is_tracer, safe_increment, zero_count
from gradchain._validate import check_floating, check_nonnegative

__all__ = ["AddNoiseState", "add_noise"]


class AddNoiseState(NamedTuple):
    """State of `add_noise`."""

    count: jax.Array  # int32 scalar: steps taken
    rng_key: jax.Array  # uint32 raw key data (`jax.random.key_data`) of the next step's key


def _is_typed_key(key: Any) -> bool:
    return isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)


def _check_key(fn: str, key: Any) -> None:
    """An int seed, a typed key (`jax.random.key`) or raw key data (`jax.random.PRNGKey`)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return
    if _is_typed_key(key):
        if np.shape(key) != ():
            raise ValueError(
                f"{fn}: `key` must be a single PRNG key, got a key array of shape {np.shape(key)}."
            )
        return
    dtype = getattr(key, "dtype", None)
    if dtype is not None and (is_tracer(key) or isinstance(key, (jax.Array, np.ndarray))):
        if jnp.issubdtype(dtype, jnp.integer) and jnp.ndim(key) == 0:
            return  # an integer seed as an array or tracer
        if jnp.dtype(dtype) == jnp.uint32 and jnp.ndim(key) == 1:
            return  # raw key data
    raise TypeError(
        f"{fn}: `key` must be a PRNG key (`jax.random.key(seed)` or `jax.random.PRNGKey(seed)`) or an "
        f"int seed, got {key!r}."
    )


def add_noise(eta, gamma, key=None) -> GradientTransformation:
    """Add Gaussian noise whose variance decays with the step count.

    Update rule, at step ``t = count + 1``::

        sigma_t = sqrt(eta / t**gamma)
        key_t, k_t = split(key_{t-1})
        z_t ~ N(0, 1), one draw per coordinate (leaf i uses split(k_t, n_leaves)[i])
        u_t = g_t + sigma_t * z_t

    with ``key_0`` the given key. The draws are Optax's, bit for bit, for float32 and
    float64 leaves (bfloat16 and float16 leaves draw in float32 and round the sum once).

    The state stores the key as raw key data (``jax.random.key_data``), not as a typed
    key: checkpoints through ``flax.serialization`` or NumPy cannot hold typed keys.
    Optax 0.2.8 stores the typed key; the noise is the same.

    Args:
        eta: Variance of the noise at the first step, ``>= 0``.
        gamma: Decay exponent of the variance, ``>= 0``.
        key: The random key: ``jax.random.key(seed)``, ``jax.random.PRNGKey(seed)``, or an
            int seed. Required (Optax 0.2.8 warns and uses seed 0 when it is missing).

    Returns:
        A `GradientTransformation` with state `AddNoiseState(count, rng_key)`.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> tx = gradchain.add_noise(0.01, 0.55, key=jax.random.key(0))
        >>> u, state = tx.update(jnp.zeros(10_000), tx.init(jnp.zeros(10_000)))
        >>> round(float(u.std()), 2)  # sqrt(0.01) at the first step
        0.1

    References:
        Neelakantan et al., "Adding Gradient Noise Improves Learning for Very Deep
        Networks", 2015.
    """
    fn = "add_noise"
    check_nonnegative(fn, "eta", eta)
    check_nonnegative(fn, "gamma", gamma)
    if key is None:
        raise TypeError(
            f"{fn}: `key` must be a PRNG key (`jax.random.key(seed)`) or an int seed, got None: "
            "pass one, the noise is otherwise the same in every run."
        )
    _check_key(fn, key)
    impl = jax.random.key_impl(key) if _is_typed_key(key) else None

    def init_fn(params):
        del params
        if _is_typed_key(key):
            data = jax.random.key_data(key)
        elif jnp.ndim(key) == 1:
            data = jnp.asarray(key, jnp.uint32)
        else:
            data = jax.random.key_data(jax.random.key(key))
        return AddNoiseState(count=zero_count(), rng_key=data)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_floating(fn, updates)
        count = safe_increment(state.count)
        next_key, sample_key = jax.random.split(jax.random.wrap_key_data(state.rng_key, impl=impl))
        n = jax.tree.structure(updates).num_leaves
        keys = jax.tree.unflatten(jax.tree.structure(updates), list(jax.random.split(sample_key, n)))

        def leaf(g, k):
            c = Compute(g)
            t = count.astype(c.rdt)
            sigma = c(jnp.sqrt(c.hp(eta, real=True) / t ** c.hp(gamma, real=True)))
            return (store(c(g) + sigma * jax.random.normal(k, g.shape, c.dt), g),)

        (new_updates,) = map_leaves(leaf, updates, keys)
        return new_updates, AddNoiseState(count=count, rng_key=jax.random.key_data(next_key))

    return GradientTransformation(init_fn, update_fn)
