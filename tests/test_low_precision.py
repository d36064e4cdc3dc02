"""Low-precision parameters: `stochastic_round`, `apply_updates_stochastic`, `kahan_summation`.

Stochastic rounding: a float64 NumPy transcription of the rule (P(round up) = distance
ratio) checked exactly, draw by draw, on a grid; unbiasedness by statistics (the mean of
many roundings equals x within a stated number of standard errors); keys, NaN/Inf,
dtypes, jit/vmap, errors. Kahan: a float64 NumPy transcription of the docstring rule over
16 steps, the invariant ``p + c = p0 + sum(u)``, and the demonstration that summing many
tiny updates into a bfloat16 parameter tracks the float64 sum where plain bfloat16 addition
stalls. And examples/bf16_training.py's quick mode.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

BF16, F16 = jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)
NP_DTYPE = {BF16: ml_dtypes.bfloat16, F16: np.float16}
Z_BOUND = 5.0  # statistical tests: |mean - x| <= 5 standard errors (two-sided p ~ 6e-7 per value)


def _f64(x) -> np.ndarray:
    return np.asarray(jnp.asarray(x).astype(jnp.float32), np.float64)


# ------------------------------------------------ float64 NumPy transcription of the rule
def np_neighbours(a: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """lo <= a < hi: adjacent values of ``dtype`` around ``a >= 0`` (hi of the largest finite
    value: the next power of two, where the spacing would continue)."""
    t = NP_DTYPE[jnp.dtype(dtype)]
    with np.errstate(over="ignore"):
        lo = a.astype(t)
    lo = np.where(lo.astype(np.float64) > a, np.nextafter(lo, t(0)), lo)
    with np.errstate(over="ignore"):
        hi = np.nextafter(lo, t(np.inf)).astype(np.float64)
    lo = lo.astype(np.float64)
    top = np.isinf(hi)
    hi[top] = 2 * lo[top] - np.nextafter(lo[top].astype(t), t(0)).astype(np.float64)
    return lo, hi


def np_stochastic_round(x: np.ndarray, dtype, bits: np.ndarray) -> np.ndarray:
    """The docstring's rule in float64, with ``r`` the top bits of the same random draws."""
    a = np.abs(x)
    lo, hi = np_neighbours(a, dtype)
    frac = (a - lo) / (hi - lo)
    if jnp.dtype(dtype) == BF16:
        k = np.full(a.shape, 16)
    else:  # float16: 24 bits in the subnormal range, 13 in the normal range
        k = np.where(a < 2.0**-14, 24, 13)
    r = (bits.astype(np.uint64) >> (32 - k).astype(np.uint64)).astype(np.float64) / 2.0**k
    out = np.where(r >= 1 - frac, hi, lo)
    with np.errstate(over="ignore"):  # hi beyond the largest finite value is infinity
        out = out.astype(NP_DTYPE[jnp.dtype(dtype)]).astype(np.float64)
    return np.copysign(out, x)


def np_spacing(x: np.ndarray, dtype) -> np.ndarray:
    """The spacing of ``dtype`` around ``x`` (between the neighbours of ``|x|``)."""
    if jnp.dtype(dtype) in NP_DTYPE:
        lo, hi = np_neighbours(np.abs(x), dtype)
        return hi - lo
    return np.spacing(np.abs(x).astype(dtype)).astype(np.float64)


def _grid(dtype) -> np.ndarray:
    """float32 values between neighbours of ``dtype``: several binades, both signs,
    fractions 0, 1/8, ..., 7/8 of the spacing and random ones, and the exact neighbours."""
    rng = np.random.default_rng(0)
    t = NP_DTYPE[jnp.dtype(dtype)]
    lows = [0.0, 1.0, 1.5, 3.0e-3, 0.7, 96.0, 1000.0]
    # tiny and largest; for float16 subnormals and the top of its range
    lows += [2.0**-120, 3.0e38] if dtype == BF16 else [1.0e-7, 6.1e-5, 6.0e4, 65504.0]
    out = []
    for lo in lows:
        lo = np.float64(t(lo))
        with np.errstate(over="ignore"):
            hi = np.float64(np.nextafter(t(lo), t(np.inf)).astype(np.float64))
        if not np.isfinite(hi):
            hi = 2 * lo - np.float64(np.nextafter(t(lo), t(0)))
        fr = np.concatenate([np.arange(8) / 8, rng.uniform(size=8)])
        out.append(lo + fr * (hi - lo))
    x = np.concatenate(out).astype(np.float32)
    return np.concatenate([x, -x])


@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bfloat16", "float16"])
def test_rule_matches_float64_transcription_draw_by_draw(dtype):
    x = _grid(dtype)
    draws = 64
    xs = np.broadcast_to(x, (draws, x.size))
    key = jax.random.key(7)
    got = _f64(gc.stochastic_round(jnp.asarray(xs), dtype, key))
    bits = np.asarray(jax.random.bits(key, xs.shape, jnp.uint32))  # documented use of the key
    want = np_stochastic_round(xs.astype(np.float64), dtype, bits)
    np.testing.assert_array_equal(got, want)
    lo, hi = np_neighbours(np.abs(xs.astype(np.float64)), dtype)
    with np.errstate(over="ignore"):
        hi = hi.astype(NP_DTYPE[dtype]).astype(np.float64)  # beyond the largest finite: inf
    assert np.all((np.abs(got) == lo) | (np.abs(got) == hi)), "not a neighbour"
    assert np.mean(np.abs(got) == hi) > 0.2 and np.mean(np.abs(got) == lo) > 0.2  # both occur


@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bfloat16", "float16"])
def test_unbiased_mean_of_many_roundings(dtype):
    # x strictly between neighbours (random fractions, several magnitudes, both signs); the
    # mean of n roundings has standard error spacing * sqrt(frac (1 - frac) / n).
    rng = np.random.default_rng(1)
    n = 8192
    lows = np.asarray([1.0, 0.3, 17.0, 2.5e-4, 1234.0, 3.0e-7], np.float32).astype(NP_DTYPE[dtype])
    lo, hi = np_neighbours(lows.astype(np.float64), dtype)
    frac = rng.uniform(0.05, 0.95, size=lo.size)
    x = (lo + frac * (hi - lo)) * np.where(np.arange(lo.size) % 2, -1, 1)
    x = x.astype(np.float32)
    y = _f64(gc.stochastic_round(jnp.broadcast_to(jnp.asarray(x), (n, x.size)), dtype, jax.random.key(3)))
    frac = (np.abs(x.astype(np.float64)) - lo) / (hi - lo)
    se = (hi - lo) * np.sqrt(frac * (1 - frac) / n)
    err = np.abs(y.mean(0) - x.astype(np.float64))
    assert np.all(err <= Z_BOUND * se), (err / se, "standard errors")
    # and the nearest rounding is biased by far more than that
    near = np.abs(_f64(jnp.asarray(x).astype(dtype)) - x.astype(np.float64))
    assert np.all(near > 20 * se)


def test_keys_reproducible_typed_equals_raw_and_different_keys_differ():
    x = jnp.linspace(1.0, 2.0, 4001, dtype=jnp.float32)
    a = gc.stochastic_round(x, jnp.bfloat16, jax.random.key(5))
    b = gc.stochastic_round(x, jnp.bfloat16, jax.random.key(5))
    raw = gc.stochastic_round(x, jnp.bfloat16, jax.random.PRNGKey(5))
    c = gc.stochastic_round(x, jnp.bfloat16, jax.random.key(6))
    np.testing.assert_array_equal(_f64(a), _f64(b))
    np.testing.assert_array_equal(_f64(a), _f64(raw))
    assert np.mean(_f64(a) != _f64(c)) > 0.2


@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bfloat16", "float16"])
def test_non_finite_pass_and_signed_zero_and_overflow(dtype):
    x = jnp.asarray([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.4e38, -3.4e38], jnp.float32)
    y = gc.stochastic_round(x, dtype, jax.random.key(0))
    assert y.dtype == dtype
    assert np.isnan(_f64(y[0])) and _f64(y[1]) == np.inf and _f64(y[2]) == -np.inf
    assert _f64(y[3]) == 0 and not np.signbit(_f64(y[3])) and _f64(y[4]) == 0 and np.signbit(_f64(y[4]))
    if dtype == F16:  # far beyond the largest float16: infinity, as round-to-nearest gives
        assert _f64(y[5]) == np.inf and _f64(y[6]) == -np.inf
    # NaN payloads and inputs from other dtypes
    nan_payload = jax.lax.bitcast_convert_type(jnp.uint32(0x7F800001), jnp.float32)
    assert np.isnan(_f64(gc.stochastic_round(nan_payload[None], dtype, jax.random.key(1))))
    half = jnp.asarray([1.0, -2.5], jnp.bfloat16)
    np.testing.assert_array_equal(
        _f64(gc.stochastic_round(half, jnp.bfloat16, jax.random.key(0))), [1.0, -2.5]
    )


def test_jit_and_vmap_over_keys():
    x = jnp.linspace(-3.0, 3.0, 257, dtype=jnp.float32)
    keys = jax.random.split(jax.random.key(2), 4)
    f = lambda k: gc.stochastic_round(x, jnp.float16, k)
    batched = jax.jit(jax.vmap(f))(keys)
    for i in range(4):
        np.testing.assert_array_equal(_f64(batched[i]), _f64(f(keys[i])))
    raw = jax.random.split(jax.random.PRNGKey(2), 4)
    np.testing.assert_array_equal(_f64(jax.vmap(f)(raw)), _f64(batched))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: gc.stochastic_round(jnp.ones(2), jnp.float32, jax.random.key(0)), TypeError, "`dtype` must be bfloat16 or float16"),
        (lambda: gc.stochastic_round(jnp.ones(2), jnp.int8, jax.random.key(0)), TypeError, "`dtype` must be a floating"),
        (lambda: gc.stochastic_round(jnp.ones(2, jnp.int32), jnp.bfloat16, jax.random.key(0)), TypeError, "`x` must be a real floating"),
        (lambda: gc.stochastic_round(jnp.ones(2), jnp.bfloat16, None), TypeError, "`key` must be a PRNG key"),
        (lambda: gc.stochastic_round(jnp.ones(2), jnp.bfloat16, 0), TypeError, "`key` must be a PRNG key"),
        (lambda: gc.stochastic_round(jnp.ones(2), jnp.bfloat16, jnp.zeros(2, jnp.int32)), TypeError, "got an array of dtype int32"),
        (lambda: gc.stochastic_round(jnp.ones(2), jnp.bfloat16, jnp.zeros(3, jnp.uint32)), ValueError, "single PRNG key.*shape \\(3,\\)"),
        (lambda: gc.stochastic_round(jnp.ones(2), jnp.bfloat16, jax.random.split(jax.random.PRNGKey(0))), ValueError, "single PRNG key.*shape \\(2, 2\\)"),
        (lambda: gc.stochastic_round(jnp.ones(2), jnp.bfloat16, jax.random.split(jax.random.key(0))), ValueError, "key array of shape \\(2,\\)"),
        (lambda: gc.apply_updates_stochastic({"w": jnp.ones(2)}, {"w": jnp.ones(2)}, None), TypeError, "apply_updates_stochastic: `key` must be a PRNG key"),
        (lambda: gc.apply_updates_stochastic({"w": jnp.ones(2)}, {"v": jnp.ones(2)}, jax.random.key(0)), ValueError, "apply_updates_stochastic: the `updates` tree does not match"),
        (lambda: gc.apply_updates_stochastic({"w": jnp.ones(2, jnp.int32)}, {"w": jnp.ones(2)}, jax.random.key(0)), TypeError, "apply_updates_stochastic: a float32 update cannot be added to a int32"),
        (lambda: gc.apply_updates_stochastic(jnp.ones(2, jnp.bfloat16), jnp.ones(2, jnp.complex64), jax.random.key(0)), TypeError, "complex update"),
        (lambda: gc.kahan_summation(jnp.int32), TypeError, "kahan_summation: `compensation_dtype` must be a floating dtype"),
        (lambda: gc.kahan_summation(jnp.complex64), TypeError, "kahan_summation: `compensation_dtype` must be a real"),
        (lambda: gc.kahan_summation(jnp.float32).init(jnp.ones(2, jnp.complex64)), TypeError, "cannot hold the compensation"),
        (lambda: gc.kahan_summation().update(jnp.ones(3), gc.kahan_summation().init(jnp.ones(2)), jnp.ones(2)), ValueError, "kahan_summation: the update at leaf"),
        (lambda: gc.kahan_summation().update({"a": jnp.ones(2)}, gc.kahan_summation().init({"a": jnp.ones(2)}), {"b": jnp.ones(2)}), ValueError, "kahan_summation: the `updates` tree does not match `params`"),
    ],
)  # fmt: skip
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------- apply_updates_stochastic
def _mixed_tree():
    rng = np.random.default_rng(4)
    params = {
        "f32": jnp.asarray(rng.standard_normal((6, 4)), jnp.float32),
        "bf16": jnp.asarray(rng.standard_normal((3, 5, 4)), jnp.bfloat16),
        "f16": jnp.asarray(rng.standard_normal(4), jnp.float16),
        "py": 0.5,
        "none": None,
    }
    updates = {
        "f32": jnp.asarray(1e-3 * rng.standard_normal((6, 4)), jnp.float32),
        "bf16": jnp.asarray(1e-3 * rng.standard_normal((3, 5, 4)), jnp.bfloat16),
        "f16": jnp.asarray(1e-4 * rng.standard_normal(4), jnp.float32),
        "py": 0.25,
        "none": None,
    }
    return params, updates


def test_apply_updates_stochastic_per_leaf_rule_dtypes_and_none():
    params, updates = _mixed_tree()
    key = jax.random.key(11)
    for fn in (gc.apply_updates_stochastic, jax.jit(gc.apply_updates_stochastic)):
        new = fn(params, updates, key)
        plain = gc.apply_updates(params, updates)
        assert jax.tree.structure(new) == jax.tree.structure(params) and new["none"] is None
        for k in ("f32", "py"):  # exactly apply_updates
            np.testing.assert_array_equal(np.asarray(new[k]), np.asarray(plain[k]))
            assert jnp.result_type(new[k]) == jnp.result_type(plain[k])
        leaves = jax.tree.leaves(params)
        for k in ("bf16", "f16"):
            i = next(j for j, leaf in enumerate(leaves) if leaf is params[k])  # its leaf index
            x = params[k].astype(jnp.float32) + updates[k].astype(jnp.float32)
            want = gc.stochastic_round(x, params[k].dtype, jax.random.fold_in(key, i))
            assert new[k].dtype == params[k].dtype
            np.testing.assert_array_equal(_f64(new[k]), _f64(want))
    assert gc.apply_updates_stochastic(None, None, key) is None


def test_apply_updates_stochastic_float64_exact():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        p = {"a": jnp.asarray(rng.standard_normal(7)), "b": jnp.asarray(rng.standard_normal(3), jnp.float32)}
        u = {"a": jnp.asarray(1e-12 * rng.standard_normal(7)), "b": jnp.asarray(rng.standard_normal(3))}
        new = gc.apply_updates_stochastic(p, u, jax.random.key(0))
        plain = gc.apply_updates(p, u)
        for k in p:
            assert new[k].dtype == p[k].dtype
            np.testing.assert_array_equal(np.asarray(new[k]), np.asarray(plain[k]))


def test_apply_updates_stochastic_non_finite_and_keys():
    p = jnp.ones(6, jnp.bfloat16)
    u = jnp.asarray([np.nan, np.inf, -np.inf, 1e-3, 1e-3, 1e-3], jnp.float32)
    new = _f64(gc.apply_updates_stochastic(p, u, jax.random.PRNGKey(0)))
    assert np.isnan(new[0]) and new[1] == np.inf and new[2] == -np.inf
    assert set(new[3:]) <= {1.0, 1.0078125}
    p, u = jnp.ones(4096, jnp.bfloat16), jnp.full(4096, 1e-3, jnp.float32)
    a = _f64(gc.apply_updates_stochastic(p, u, jax.random.key(1)))
    np.testing.assert_array_equal(a, _f64(gc.apply_updates_stochastic(p, u, jax.random.key(1))))
    assert np.any(a != _f64(gc.apply_updates_stochastic(p, u, jax.random.key(2))))


def test_many_tiny_stochastic_steps_track_the_float64_sum():
    # 2,000 steps of +1e-3 (about 1/8 of bfloat16's spacing at 1..2): plain bfloat16 stays
    # at 1; stochastic rounding is a random walk whose mean is the exact sum, 3.0.
    steps, n = 2000, 512
    u = jnp.full(n, 1e-3, jnp.float32)

    def run(key):
        def step(p, t):
            return gc.apply_updates_stochastic(p, u, jax.random.fold_in(key, t)), None

        return jax.lax.scan(step, jnp.ones(n, jnp.bfloat16), jnp.arange(steps))[0]

    p = _f64(jax.jit(run)(jax.random.key(0)))
    plain = _f64(jax.lax.fori_loop(0, steps, lambda _, p: gc.apply_updates(p, u), jnp.ones(n, jnp.bfloat16)))
    exact = 1 + steps * np.float64(np.float32(1e-3))
    assert np.all(plain == 1.0)
    # each step adds a rounding error of variance <= spacing**2 / 4 (spacing <= 2**-6 here)
    se = np.sqrt(steps / 4 / n) * 2.0**-6
    assert abs(p.mean() - exact) <= Z_BOUND * se, (p.mean(), exact, se)


# ------------------------------------------------------------------ kahan_summation
def np_kahan(param_dtype, comp_dtype):
    """The docstring rule in float64, one line per line; ``rnd`` rounds to a dtype."""
    rnd = lambda x, t: np.asarray(x, np.float64).astype(NP_DTYPE.get(jnp.dtype(t), t)).astype(np.float64)
    s = {}

    def step(g, p):
        c = s.get("c", 0 * g)
        y = g + c
        u = rnd(p + y, param_dtype) - p
        c = rnd(y - (rnd(p + u, param_dtype) - p), comp_dtype)
        s["c"] = c
        return u

    return step, s


@pytest.mark.parametrize(
    "param_dtype, comp_dtype",
    [(BF16, BF16), (BF16, jnp.float32), (F16, jnp.float32), (jnp.float32, jnp.float32)],
    ids=["bf16-bf16", "bf16-f32", "f16-f32", "f32-f32"],
)
def test_kahan_matches_float64_transcription(param_dtype, comp_dtype):
    # Updates on the 2**-20 grid (below 2**-6 in size) and parameters in [1, 4): every sum
    # is exact in float32, so the float64 transcription must agree bit for bit.
    rng = np.random.default_rng(0)
    shapes = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}
    params = jax.tree.map(
        lambda s: jnp.asarray(1 + 3 * rng.uniform(size=s), param_dtype), shapes, is_leaf=lambda s: isinstance(s, tuple)
    )  # fmt: skip
    grads = [
        jax.tree.map(lambda p: jnp.asarray(np.round(rng.uniform(-1, 1, p.shape) * 2**14) / 2**20, jnp.float32), params)
        for _ in range(16)
    ]  # fmt: skip
    tx = gc.kahan_summation(comp_dtype)
    for jit in (False, True):
        us, ps, state = helpers.run_steps(tx, params, grads, jit=jit)
        for name in shapes:
            step, s = np_kahan(param_dtype, comp_dtype)
            p = _f64(params[name])
            for g, u_got, p_got in zip(grads, us, ps):
                u = step(_f64(g[name]), p)
                p = p + u
                np.testing.assert_array_equal(_f64(u_got[name]), u)
                np.testing.assert_array_equal(_f64(p_got[name]), p)
                assert u_got[name].dtype == jnp.float32 and p_got[name].dtype == param_dtype
            np.testing.assert_array_equal(_f64(state.compensation[name]), s["c"])
            assert state.compensation[name].dtype == jnp.dtype(comp_dtype)


def test_kahan_default_compensation_dtypes():
    params = {"bf": jnp.ones(2, jnp.bfloat16), "h": jnp.ones(2, jnp.float16), "f": jnp.ones(2), "py": 1.0}
    c = gc.kahan_summation().init(params).compensation
    assert [c[k].dtype for k in ("bf", "h", "f", "py")] == [BF16, jnp.float32, jnp.float32, jnp.float32]


@pytest.mark.parametrize("update_dtype", [jnp.bfloat16, jnp.float32])
def test_kahan_invariant_with_mixed_magnitudes(update_dtype):
    # p + c carries p0 + sum(u) up to c's own rounding, also when the emitted bfloat16
    # update is re-rounded (large relative steps) and apply_updates rounds again.
    rng = np.random.default_rng(2)
    p0 = jnp.asarray(rng.standard_normal(64) * 10.0 ** rng.integers(-3, 3, 64), jnp.bfloat16)
    grads = [
        jnp.asarray(rng.standard_normal(64) * 10.0 ** rng.integers(-6, 3, 64), update_dtype)
        for _ in range(40)
    ]
    exact = _f64(p0) + sum(_f64(g) for g in grads)
    scale = np.abs(_f64(p0)) + sum(np.abs(_f64(g)) for g in grads)
    for jit in (False, True):  # (under jit, XLA must not skip the roundings the rule measures)
        us, ps, state = helpers.run_steps(gc.kahan_summation(jnp.float32), p0, grads, jit=jit)
        got = _f64(ps[-1]) + _f64(state.compensation)
        assert np.all(np.abs(got - exact) <= 1e-6 * scale), jit


@pytest.mark.parametrize(
    "param_dtype, comp_dtype, tol",
    [(BF16, None, 0.02), (BF16, jnp.float32, 0.0), (F16, None, 0.0), (jnp.float32, None, 0.0)],
    ids=["bf16-bf16", "bf16-f32", "f16-f32", "f32-f32"],
)
def test_kahan_tracks_float64_sum_where_plain_addition_stalls(param_dtype, comp_dtype, tol):
    # 4,000 updates each below half the parameter's spacing (so plain addition rounds every
    # one away); Kahan ends within half a spacing of the exact sum (plus `tol` of the total
    # change when the compensation itself is bfloat16, which keeps 8 bits of each loss).
    steps = 4000
    ulp = float(jnp.finfo(param_dtype).eps)  # spacing at [1, 2)
    g = jnp.asarray([0.3, -0.4, 0.1, 0.45], jnp.float32) * ulp  # all below half a spacing
    g = g.astype(param_dtype)
    tx = gc.kahan_summation(comp_dtype)

    def run(p, apply_kahan):
        def step(carry, _):
            p, s = carry
            if apply_kahan:
                u, s = tx.update(g, s, p)
                return (gc.apply_updates(p, u), s), None
            return (gc.apply_updates(p, g), s), None

        return jax.lax.scan(step, (p, tx.init(p)), None, length=steps)[0][0]

    p0 = jnp.full(4, 1.5, param_dtype)
    kahan, plain = jax.jit(lambda p: (run(p, True), run(p, False)))(p0)
    exact = 1.5 + steps * _f64(g)
    np.testing.assert_array_equal(_f64(plain), _f64(p0))  # plain addition stalls
    spacing = np_spacing(exact, param_dtype)
    err = np.abs(_f64(kahan) - exact)
    assert np.all(err <= spacing / 2 * (1 + 1e-6) + tol * np.abs(exact - 1.5)), (err, spacing)
    assert np.all(np.abs(exact - 1.5) > 10 * spacing)  # a change worth tracking


def test_kahan_non_finite_step_resets_compensation():
    tx = gc.kahan_summation()
    p = jnp.ones(3, jnp.bfloat16)
    s = tx.init(p)
    u, s = tx.update(jnp.asarray([1e-3, 1e-3, 1e-3], jnp.bfloat16), s, p)
    u, s = tx.update(jnp.asarray([np.nan, np.inf, 1e-3], jnp.bfloat16), s, p)
    new = _f64(gc.apply_updates(p, u))
    assert np.isnan(new[0]) and new[1] == np.inf
    c = _f64(s.compensation)
    assert np.all(np.isfinite(c)) and c[0] == 0 and c[1] == 0 and c[2] > 0


def test_kahan_in_an_optimizer_chain_under_jit_and_vmap():
    # chain(sgd, kahan) with bfloat16 params, vmapped over 3 independent models, equals a loop.
    tx = gc.chain(gc.sgd(1e-3), gc.kahan_summation())
    batch = jnp.asarray(np.random.default_rng(0).standard_normal((3, 8)), jnp.bfloat16)
    grads = jnp.asarray(np.random.default_rng(1).standard_normal((5, 3, 8)), jnp.bfloat16)

    def run(p, gs):
        s = tx.init(p)
        for g in gs:
            u, s = tx.update(g, s, p)
            p = gc.apply_updates(p, u)
        return p, s

    got = jax.jit(jax.vmap(run, in_axes=(0, 1)))(batch, grads)
    for i in range(3):
        want = run(batch[i], grads[:, i])
        helpers.assert_trees_close(jax.tree.map(lambda x: x[i], got), want, rtol=0)


# ------------------------------------------------------------------ the example
def test_bf16_training_example_quick():
    pytest.importorskip("tqdm")  # the examples extra
    spec = importlib.util.spec_from_file_location(
        "bf16_training", Path(__file__).resolve().parents[1] / "examples" / "bf16_training.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    results = mod.run(quick=True)
    final = {name: curve[-1] for name, curve in results["losses"].items()}
    base = final["float32"]
    assert base < 1.1 * results["floor"]  # float32 reaches the least-squares optimum
    # stochastic rounding and Kahan track float32 within a factor 1.25; nearest stalls >= 10x
    assert final["bfloat16, stochastic rounding"] <= 1.25 * base
    assert final["bfloat16, Kahan summation"] <= 1.25 * base
    assert final["bfloat16, round to nearest"] >= 10 * base
    assert mod.check(results) == []
