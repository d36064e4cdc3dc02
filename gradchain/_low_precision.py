"""Training with bfloat16/float16 parameters: stochastic rounding and Kahan summation.

A bfloat16 parameter keeps 8 significant bits: an update smaller than half the spacing
between its neighbours (``|u| < |p| * 2**-9``) rounds away entirely under
`apply_updates`, so training with small learning rates stalls. Two remedies:

- `apply_updates_stochastic(params, updates, key)` replaces `apply_updates`: ``p + u`` is
  rounded up or down at random with probabilities proportional to the distances, so the
  rounded parameter equals ``p + u`` in expectation (`stochastic_round` is the rule, on one
  array). No state; one PRNG key per step.
- `kahan_summation()` is a transformation chained last: it keeps what the rounding lost in
  a compensation buffer and adds it back to the next update, and emits updates for which
  the ordinary `apply_updates` gives the compensated sum. Deterministic; one buffer per
  parameter (2 bytes per bfloat16 parameter).

float32/float64 parameters are left to the ordinary arithmetic (`apply_updates_stochastic`
equals `apply_updates` on them bit for bit).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation
from gradchain._kit import Compute, map_leaves, store, zeros_like_params
from gradchain._numerics import as_leaf
from gradchain._update import apply_updates
from gradchain._validate import canonical_dtype, check_tree_match, require_params

_HALF = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


# ------------------------------------------------------------------ the rounding rule
def _prng_key(fn: str, key: Any) -> jax.Array:
    """``key`` as a typed PRNG key: a typed scalar key, or raw ``uint32`` key data."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if jnp.shape(key) != ():
            raise ValueError(
                f"{fn}: `key` must be a single PRNG key, got a key array of shape {jnp.shape(key)}."
            )
        return key
    if dtype is not None and np.dtype(dtype) == np.uint32:
        try:
            typed = jax.random.wrap_key_data(key)
        except (TypeError, ValueError):
            typed = None
        if typed is not None and typed.shape == ():
            return typed
        raise ValueError(
            f"{fn}: `key` must be a single PRNG key (`jax.random.key(seed)`, or the raw key data of "
            f"`jax.random.PRNGKey(seed)`), got uint32 data of shape {jnp.shape(key)}."
        )
    what = f"an array of dtype {dtype}" if dtype is not None else repr(key)
    raise TypeError(
        f"{fn}: `key` must be a PRNG key (`jax.random.key(seed)` or `jax.random.PRNGKey(seed)`), got {what}."
    )


def _check_target(fn: str, dtype: Any) -> np.dtype:
    dtype = canonical_dtype(fn, "dtype", dtype)
    if dtype not in _HALF:
        raise TypeError(f"{fn}: `dtype` must be bfloat16 or float16, got {dtype!r}.")
    return dtype


def _truncate_with_noise(x: jax.Array, noise: jax.Array, drop: int) -> jax.Array:
    """Add ``noise`` (``drop`` random bits) to the low ``drop`` bits of float32 ``x``, then
    clear them: rounds ``|x|`` up to the next value with ``drop`` fewer mantissa bits with
    probability (low bits) / 2**drop, i.e. by the distance ratio (carries reach the next
    binade, or infinity, exactly where the next value is)."""
    xb = jax.lax.bitcast_convert_type(x, jnp.uint32)
    xb = (xb + noise) & jnp.uint32((0xFFFFFFFF << drop) & 0xFFFFFFFF)
    return jax.lax.bitcast_convert_type(xb, jnp.float32)


def _round_bf16(x: jax.Array, bits: jax.Array) -> jax.Array:
    """float32 -> bfloat16: 16 random bits added below bfloat16's mantissa, then truncated
    (``r`` = the top 16 bits / 2**16). The truncated value is a bfloat16 number."""
    return _truncate_with_noise(x, bits >> 16, 16).astype(jnp.bfloat16)


_F16_TINY = 2.0**-14  # smallest normal float16; below it float16's spacing is 2**-24


def _round_f16(x: jax.Array, bits: jax.Array) -> jax.Array:
    """float32 -> float16. Normal range: 13 random bits below float16's mantissa, then
    truncated (``r`` = the top 13 bits / 2**13), as for bfloat16 (above 65504 the next
    value, 65536, becomes inf). Subnormal range (uniform spacing 2**-24): ``s = |x| * 2**24``,
    ``frac = s - floor(s)``, up iff ``r >= 1 - frac`` with ``r`` = the top 24 bits / 2**24.
    Every float32 value formed here is a float16 number (no narrowing round trips, which XLA
    may elide under jit)."""
    normal = _truncate_with_noise(x, bits >> 19, 13)
    s = jnp.abs(x) * jnp.float32(2.0**24)
    k = jnp.floor(s)
    r = (bits >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)
    sub = (k + jnp.where(r >= 1 - (s - k), 1.0, 0.0).astype(jnp.float32)) * jnp.float32(2.0**-24)
    sub = jnp.copysign(sub, x)
    return jnp.where(jnp.abs(x) < _F16_TINY, sub, normal).astype(jnp.float16)


@functools.partial(jax.jit, static_argnums=1)  # one dispatch per leaf when called eagerly
def _round(x: jax.Array, dtype: np.dtype, key: jax.Array) -> jax.Array:
    """float32 ``x`` stochastically rounded to ``dtype`` (bfloat16 or float16); NaN and
    +-inf pass as ``x.astype(dtype)``."""
    bits = jax.random.bits(key, x.shape, jnp.uint32)
    y = _round_bf16(x, bits) if dtype == jnp.bfloat16 else _round_f16(x, bits)
    return jnp.where(jnp.isfinite(x), y, x.astype(dtype))


def stochastic_round(x: Any, dtype: Any, key: Any) -> jax.Array:
    """Round an array to bfloat16 or float16 stochastically: unbiased, by distance.

    For ``x`` (read in float32) between its neighbours ``lo <= x < hi`` in ``dtype``::

        frac = (x - lo) / (hi - lo)
        r    ~ uniform on [0, 1), drawn from `key`
        out  = hi if r >= 1 - frac else lo          # P(hi) = frac, so E[out] = x

    bfloat16 uses the bit trick (add 16 random bits below the mantissa of float32 ``x``,
    then truncate them): exactly this rule with ``r`` on the 2**-16 grid, which resolves
    every float32 value. float16 does the same with 13 bits in its normal range; in its
    subnormal range (uniform spacing 2**-24) it draws ``r`` on the 2**-24 grid, so that
    ``P(hi)`` is ``frac`` rounded to a multiple of 2**-24. ``x`` and ``-x`` round
    symmetrically (the rule acts on ``|x|``). Beyond the largest finite value the spacing
    continues to infinity (so values there may round to +-inf, as round-to-nearest
    would). NaN and +-inf pass unchanged. The random bits are
    ``jax.random.bits(key, x.shape, jnp.uint32)``; ``r`` is their top 16 bits / 2**16
    (bfloat16), top 13 bits / 2**13 (float16, normal) or top 24 bits / 2**24 (float16,
    subnormal).

    Args:
        x: An array (any real floating dtype; computed in float32).
        dtype: ``jnp.bfloat16`` or ``jnp.float16``.
        key: A PRNG key: ``jax.random.key(seed)``, or raw ``jax.random.PRNGKey(seed)`` data.

    Returns:
        ``x`` rounded to ``dtype``, each element to one of its two neighbours.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> x = jnp.full(20_000, 1.0 + 2.0**-9)          # a quarter of the way from 1 to 1 + 2**-7
        >>> y = gradchain.stochastic_round(x, jnp.bfloat16, jax.random.key(0))
        >>> sorted(set(y.tolist())), x.astype(jnp.bfloat16)[0]   # neighbours; nearest is 1
        ([1.0, 1.0078125], Array(1, dtype=bfloat16))
        >>> float(jnp.mean(y == 1.0078125)), 0.25          # rounded up a quarter of the time
        (0.25, 0.25)

    References:
        Gupta et al., "Deep Learning with Limited Numerical Precision", ICML 2015.
        Zamirai et al., "Revisiting BFloat16 Training", arXiv:2010.06192, 2020.
    """
    fn = "stochastic_round"
    dtype = _check_target(fn, dtype)
    key = _prng_key(fn, key)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: `x` must be a real floating-point array, got dtype {x.dtype}.")
    return _round(x.astype(jnp.float32), dtype, key)


# ------------------------------------------------------------- applying updates
def _check_trainable(fn: str, p: Any, u: Any) -> None:
    if not jnp.issubdtype(p.dtype, jnp.inexact) and jnp.issubdtype(u.dtype, jnp.inexact):
        raise TypeError(
            f"{fn}: a {u.dtype} update cannot be added to a {p.dtype} parameter without rounding it "
            "away; integer and boolean leaves are not trainable (leave them out of the tree you optimize)."
        )


def apply_updates_stochastic(params: Any, updates: Any, key: Any) -> Any:
    """Return ``params + updates``, rounded stochastically for bfloat16/float16 parameters.

    A drop-in for `apply_updates` when parameters are stored in half precision: each
    bfloat16/float16 leaf is formed in float32 and rounded by `stochastic_round`, so that
    updates below half the parameter's spacing are kept in expectation instead of being
    rounded away. Other leaves are exactly `apply_updates`'s::

        p_new = stochastic_round(float32(p) + float32(u), dtype(p), key_i)   # bfloat16, float16
        p_new = apply_updates(p, u)                                           # otherwise
        key_i = jax.random.fold_in(key, i)     # i: the leaf's index in jax.tree.leaves(params)

    Pass a fresh key every step (e.g. ``jax.random.fold_in(key, step)``); the same key
    gives the same result. NaN and +-inf sums pass unchanged; ``None`` leaves pass.

    Args:
        params: A pytree of arrays.
        updates: A pytree with the structure of ``params``.
        key: A PRNG key: ``jax.random.key(seed)``, or raw ``jax.random.PRNGKey(seed)`` data.

    Returns:
        The updated parameters, with the structure and dtypes of ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> p = {"w": jnp.ones(20_000, jnp.bfloat16)}
        >>> u = {"w": jnp.full(20_000, 1e-3)}              # below half of bfloat16's 2**-7 spacing at 1
        >>> gradchain.apply_updates(p, u)["w"].astype(jnp.float32).mean()     # rounded away
        Array(1., dtype=float32)
        >>> new = gradchain.apply_updates_stochastic(p, u, jax.random.key(0))
        >>> new["w"].dtype, new["w"].astype(jnp.float32).mean().round(3)      # kept on average
        (dtype(bfloat16), Array(1.001, dtype=float32))

    References:
        Gupta et al., "Deep Learning with Limited Numerical Precision", ICML 2015.
        Zamirai et al., "Revisiting BFloat16 Training", arXiv:2010.06192, 2020.
    """
    fn = "apply_updates_stochastic"
    key = _prng_key(fn, key)
    if params is None:
        return None
    check_tree_match(fn, updates, params, "`params`", floating=False)
    p_leaves, treedef = jax.tree.flatten(params)
    u_leaves = treedef.flatten_up_to(updates)

    def leaf(i, p, u):
        p, u = as_leaf(p), as_leaf(u)
        _check_trainable(fn, p, u)
        if p.dtype not in _HALF:
            return apply_updates(p, u)
        if jnp.issubdtype(u.dtype, jnp.complexfloating):
            raise TypeError(f"{fn}: a complex update cannot be added to a real {p.dtype} parameter.")
        x = p.astype(jnp.float32) + u.astype(jnp.float32)
        return _round(x, p.dtype, jax.random.fold_in(key, i))

    return treedef.unflatten([leaf(i, p, u) for i, (p, u) in enumerate(zip(p_leaves, u_leaves))])


# ------------------------------------------------------------- Kahan summation
class KahanSummationState(NamedTuple):
    """State of `kahan_summation`."""

    compensation: Any  # per-param tree: what rounding has lost so far, in `compensation_dtype`


def _stored(x: jax.Array, dtype: Any) -> jax.Array:
    """``x`` rounded to ``dtype`` (to nearest), returned in ``x``'s dtype: the value stored.

    Under ``jit`` XLA may drop a narrowing ``convert`` that is converted back (excess
    precision), which would hide exactly the rounding Kahan summation measures: bfloat16
    uses ``reduce_precision`` (same result, kept by XLA), other narrower dtypes a barrier.
    """
    dtype = jnp.dtype(dtype)
    if dtype == x.dtype:
        return x
    if dtype == jnp.bfloat16 and x.dtype == jnp.float32:
        return jax.lax.reduce_precision(x, exponent_bits=8, mantissa_bits=7)
    return jax.lax.optimization_barrier(x.astype(dtype)).astype(x.dtype)


def kahan_summation(compensation_dtype: Any = None) -> GradientTransformation:
    """Compensate the rounding of ``params + updates`` (Kahan summation); chain it last.

    For incoming update ``u_t``, parameters ``p`` and compensation ``c`` (zero at first),
    with ``round`` the rounding to the parameter's dtype that `apply_updates` does::

        y     = u_t + c                   # the step, plus what earlier roundings lost
        u'_t  = round(p + y) - p          # emitted: apply_updates(p, u'_t) = round(p + y)
        c     = y - (apply_updates(p, u'_t) - p)

    so that ``p + c`` carries the exact running sum of the updates. With bfloat16
    parameters, updates far below the parameter's spacing accumulate in ``c`` until they
    move it, instead of rounding away; the result is deterministic. Use it LAST in a
    chain (``chain(adam(lr), kahan_summation())``), pass the parameters to ``update``,
    and apply the updates to those same parameters with `apply_updates`: the emitted
    update is computed for them. ``c`` is measured from the parameter `apply_updates`
    will produce (re-rounded bfloat16 updates included), so the rule holds for any
    update dtype. A non-finite ``c`` (a NaN/Inf step) is reset to zero; the step itself
    passes to the parameters, as without the transformation. On float32/float64
    parameters it is classic Kahan summation in that precision.

    Memory: one compensation per parameter in ``compensation_dtype`` (2 bytes for a
    bfloat16 parameter by default).

    Args:
        compensation_dtype: Storage dtype of ``c``. ``None``: the parameter's dtype, except
            float32 for float16 parameters (float16's range would flush the small
            compensations of parameters below ~0.1 to subnormals). bfloat16 ``c`` keeps
            8 bits of what was lost, which is what the usual bfloat16 recipes store;
            float32 keeps nearly all of it.

    Returns:
        A `GradientTransformation` with state `KahanSummationState(compensation)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.kahan_summation()
        >>> p = jnp.ones(2, jnp.bfloat16)
        >>> state = tx.init(p)
        >>> for _ in range(100):                          # 100 steps of 1e-3: plain bfloat16 stays at 1
        ...     u, state = tx.update(jnp.full(2, 1e-3, jnp.bfloat16), state, p)
        ...     p = gradchain.apply_updates(p, u)
        >>> p, (p.astype(jnp.float32) + state.compensation.astype(jnp.float32)).round(2)
        (Array([1.10156, 1.10156], dtype=bfloat16), Array([1.1, 1.1], dtype=float32))

    References:
        Kahan, "Further remarks on reducing truncation errors", Comm. ACM 8(1), 1965.
        Zamirai et al., "Revisiting BFloat16 Training", arXiv:2010.06192, 2020.
    """
    fn = "kahan_summation"
    compensation_dtype = canonical_dtype(fn, "compensation_dtype", compensation_dtype)
    if compensation_dtype is not None and jnp.issubdtype(compensation_dtype, jnp.complexfloating):
        raise TypeError(
            f"{fn}: `compensation_dtype` must be a real floating dtype or None, got {compensation_dtype!r}."
        )

    def c_dtype(p):
        d = jnp.result_type(as_leaf(p))
        if compensation_dtype is None:
            return jnp.dtype(jnp.float32) if d == jnp.float16 else d
        if jnp.issubdtype(d, jnp.complexfloating):
            raise TypeError(
                f"{fn}: a real `compensation_dtype` ({compensation_dtype}) cannot hold the compensation "
                f"of a {d} parameter; use compensation_dtype=None."
            )
        return compensation_dtype

    def init_fn(params):
        return KahanSummationState(
            compensation=jax.tree.map(lambda p: zeros_like_params(p, c_dtype(p)), params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        require_params(fn, params)
        check_tree_match(fn, updates, state.compensation)
        check_tree_match(fn, updates, params, "`params`", floating=False)

        out, comp = map_leaves(leaf, updates, state.compensation, params)
        return out, KahanSummationState(compensation=comp)

    def leaf(g, c_old, p):
        p = as_leaf(p)
        _check_trainable(fn, p, g)
        k = Compute(g, c_old, p)
        y = k(g) + k(c_old)  # the step, plus what earlier roundings lost
        target = _stored(k(p) + y, p.dtype)  # round(p + y)
        u = _stored(target - k(p), g.dtype)  # emitted (re-rounded to the update's dtype)
        # apply_updates(p, u): p + u in their promoted dtype (exact here, or the rounding of
        # a float32 sum of two half-precision numbers, which is the same), rounded to p's
        applied = _stored(k(p) + u, p.dtype)
        c = y - (applied - k(p))  # what the addition lost of y
        return store(u, g), store(jnp.where(jnp.isfinite(c), c, jnp.zeros_like(c)), c_old)

    return GradientTransformation(init_fn, update_fn)
