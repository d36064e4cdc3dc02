"""Differential privacy: per-example gradients clipped to a global norm, summed, noised and
averaged (`differentially_private_aggregate`, DP-SGD's aggregation step).

The optimizer, `dpsgd`, is in `gradchain._optimizers.contrib_misc`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation
from gradchain._kit import Compute, store
from gradchain._transforms.clip_functions import per_example_global_norm_clip
from gradchain._validate import check_floating, check_nonnegative, prng_key_data

__all__ = ["DifferentiallyPrivateAggregateState", "differentially_private_aggregate"]


class DifferentiallyPrivateAggregateState(NamedTuple):
    """State of `differentially_private_aggregate`."""

    rng_key: jax.Array  # uint32 raw key data (`jax.random.key_data`) of the next step's key


def differentially_private_aggregate(
    l2_norm_clip, noise_multiplier, key: Any = None, *, seed: int | None = None
) -> GradientTransformation:
    """DP-SGD's aggregation: clip each example's gradient, sum, add Gaussian noise, average.

    The incoming updates are per-example gradients, the batch on axis 0 of every leaf
    (``jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)``); the outgoing ones
    have the parameters' shapes. Put it first in a chain. With ``C = l2_norm_clip``,
    ``s = noise_multiplier``, ``B`` the batch size and ``g_i`` example ``i``'s gradient::

        n_i = sqrt(sum over leaves of sum(|g_i|**2))
        key_t, k_1, ..., k_L = split(key_{t-1}, L + 1)        (L leaves)
        z ~ N(0, 1), leaf l drawn with k_l
        u_t = (sum_i min(1, C / n_i) * g_i + C * s * z) / B

    The draws are Optax's, bit for bit, for the same key and float32/float64 leaves
    (bfloat16 and float16 leaves draw in float32 and round once). Aggregating tools
    (`MultiSteps`, `apply_every`) do not compose with it: the privacy accounting is per
    aggregated batch.

    Args:
        l2_norm_clip: ``C``, the largest L2 norm of one example's gradient, ``>= 0``.
        noise_multiplier: ``s``, the noise's standard deviation over ``C``, ``>= 0``.
        key: The random key: ``jax.random.key(seed)``, ``jax.random.PRNGKey(seed)`` or an
            int seed. Required (Optax 0.2.8 warns and uses seed 0 when it is missing).
        seed: An int seed, instead of ``key`` (Optax's deprecated spelling, still what
            its `dpsgd` passes).

    Returns:
        A `GradientTransformation` with state `DifferentiallyPrivateAggregateState(rng_key)`
        (raw key data, so that checkpoints can hold it).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.differentially_private_aggregate(1.0, 0.0, key=0)
        >>> per_example = jnp.array([[3.0, 4.0], [0.3, 0.4]])   # norms 5 and 0.5
        >>> tx.update(per_example, tx.init(jnp.zeros(2)))[0]     # ([0.6, 0.8] + [0.3, 0.4]) / 2
        Array([0.45, 0.6 ], dtype=float32)

    References:
        Abadi et al., "Deep Learning with Differential Privacy", CCS 2016.
    """
    fn = "differentially_private_aggregate"
    check_nonnegative(fn, "l2_norm_clip", l2_norm_clip, allow_inf=True)
    check_nonnegative(fn, "noise_multiplier", noise_multiplier)
    if seed is not None:
        if key is not None:
            raise ValueError(
                f"{fn}: `key` and `seed` must not both be given, got key={key!r}, seed={seed!r}."
            )
        key = seed
    if key is None:
        raise TypeError(
            f"{fn}: `key` must be a PRNG key (`jax.random.key(seed)`) or an int seed, got None: pass one, "
            "the noise is otherwise the same in every run."
        )
    data, impl = prng_key_data(fn, "key", key)

    def init_fn(params):
        del params
        return DifferentiallyPrivateAggregateState(rng_key=data)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_floating(fn, updates)
        leaves, treedef = jax.tree.flatten(updates)
        leaves = [jnp.asarray(g) for g in leaves]
        if not leaves:
            return updates, state
        sizes = {g.shape[0] if g.ndim else None for g in leaves}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(
                f"{fn}: `updates` must be per-example gradients, with the batch on axis 0 of every leaf (one "
                f"size), got shapes {[g.shape for g in leaves]}."
            )
        batch = leaves[0].shape[0]
        clipped, _ = per_example_global_norm_clip(leaves, l2_norm_clip)
        next_key, *keys = jax.random.split(
            jax.random.wrap_key_data(state.rng_key, impl=impl), len(leaves) + 1
        )
        out = []
        for g, k in zip(clipped, keys):
            c = Compute(g)
            s = c.hp(noise_multiplier, real=True)
            std = jnp.where(s == 0, 0, c.hp(l2_norm_clip, real=True) * s)  # (C = inf with s = 0: no noise)
            noise = jax.random.normal(k, g.shape, c.dt)
            out.append(store((c(g) + std * noise) / batch, g))
        return treedef.unflatten(out), DifferentiallyPrivateAggregateState(
            rng_key=jax.random.key_data(next_key)
        )

    return GradientTransformation(init_fn, update_fn)
