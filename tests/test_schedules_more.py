"""piecewise_interpolate_schedule, linear_onecycle_schedule, warmup_constant_schedule and
warmup_stable_decay_schedule: Optax 0.2.8 parity at every step (eager, jit, scalar and
array counts), float64 NumPy transcriptions, pytorch_optimizer's WSD, tracers, errors,
and the deliberate differences from Optax."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradchain import schedules as gs

N = 320  # every schedule below ends before N: the counts run beyond the end
T = np.arange(N + 1, dtype=np.float64)
COUNTS = jnp.arange(N + 1, dtype=jnp.int32)
RTOL, ATOL = 1e-6, 1e-7

# Each builder takes the schedules module (gradchain.schedules or optax.schedules).
PARITY = {
    "interp_linear": lambda m: m.piecewise_interpolate_schedule("linear", 1.0, {40: 0.1, 200: 0.01}),
    "interp_cosine": lambda m: m.piecewise_interpolate_schedule("cosine", 0.5, {100: 3.0, 10: 0.2, 301: 0.0}),
    "interp_zero_key": lambda m: m.piecewise_interpolate_schedule("linear", 2.0, {0: 0.5, 7: 1.5, 8: 0.9}),
    "interp_none": lambda m: m.piecewise_interpolate_schedule("cosine", 0.3),
    "onecycle": lambda m: m.linear_onecycle_schedule(300, 1.0),
    "onecycle_args": lambda m: m.linear_onecycle_schedule(
        250, 0.3, pct_start=0.1, pct_final=0.6, div_factor=10.0, final_div_factor=100.0
    ),
    "onecycle_no_rise": lambda m: m.linear_onecycle_schedule(97, 2.0, pct_start=0.0, pct_final=0.5),
    "warmup_constant": lambda m: m.warmup_constant_schedule(0.0, 3e-4, 50),
    "warmup_constant_init": lambda m: m.warmup_constant_schedule(0.2, 1.0, 1),
    "warmup_constant_down": lambda m: m.warmup_constant_schedule(1.0, 0.1, 299),
}


def _optax_values(make):
    """Optax's values at every count, eager and jitted (vmapped: Optax's piecewise
    interpolation takes scalar counts only)."""
    optax = pytest.importorskip("optax")
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        sched = make(optax.schedules)
        f = jax.vmap(lambda c: jnp.asarray(sched(c), jnp.float32))
        return np.asarray(f(COUNTS)), np.asarray(jax.jit(f)(COUNTS))


@pytest.mark.parametrize("name", sorted(PARITY))
def test_matches_optax_at_every_step(name):
    ref_eager, ref_jit = _optax_values(PARITY[name])
    sched = PARITY[name](gs)
    eager = sched(COUNTS)  # an array of counts
    assert eager.shape == (N + 1,) and eager.dtype == jnp.float32
    np.testing.assert_allclose(eager, ref_eager, rtol=RTOL, atol=ATOL, err_msg=name)
    np.testing.assert_allclose(jax.jit(sched)(COUNTS), ref_jit, rtol=RTOL, atol=ATOL, err_msg=name)
    scalar = jax.jit(sched)  # scalar counts, jitted: every one
    got = np.array([scalar(jnp.int32(i)) for i in range(N + 1)])
    np.testing.assert_allclose(got, ref_jit, rtol=RTOL, atol=ATOL, err_msg=name)
    for i in (0, 1, 7, 8, 40, 99, 100, 101, 299, 300, N):  # scalar counts, eager
        value = sched(jnp.int32(i))
        assert value.shape == () and value.dtype == jnp.float32
        np.testing.assert_allclose(value, ref_eager[i], rtol=RTOL, atol=ATOL, err_msg=f"{name} at {i}")
    np.testing.assert_allclose(sched(17), ref_eager[17], rtol=RTOL, atol=ATOL)  # a Python int


# ------------------------------------------------------- float64 NumPy transcriptions
def np_interp(t, kind, init, boundaries_and_scales):
    bounds = [0] + sorted(boundaries_and_scales)
    values = [init]
    for b in bounds[1:]:
        values.append(values[-1] * boundaries_and_scales[b])
    out = np.full(t.shape, values[-1])
    for k in reversed(range(len(bounds) - 1)):
        p = (t - bounds[k]) / max(bounds[k + 1] - bounds[k], 1)
        if kind == "linear":
            seg = values[k] + (values[k + 1] - values[k]) * p
        else:
            seg = values[k + 1] + (values[k] - values[k + 1]) * (1 + np.cos(np.pi * p)) / 2
        out = np.where(t < bounds[k + 1], seg, out)
    return out


def np_onecycle(t, steps, peak, pct_start=0.3, pct_final=0.85, div=25.0, final_div=1e4):
    v0 = peak / div
    xs = [0, math.floor(pct_start * steps), math.floor(pct_final * steps), steps]
    return np.interp(t, xs, [v0, peak, v0, v0 / final_div])


def np_warmup_constant(t, init, peak, warmup):
    return np.where(t < warmup, init + (peak - init) * t / max(warmup, 1), peak)


def np_wsd(t, peak, total, warmup, decay, init=0.0, end=0.0, decay_type="1-sqrt"):
    s = np.clip((t - (total - decay)) / max(decay, 1), 0, 1)
    f = {"linear": 1 - s, "cosine": (1 + np.cos(np.pi * s)) / 2, "1-sqrt": 1 - np.sqrt(s)}[decay_type]
    warm = init + (peak - init) * t / max(warmup, 1)
    stable_or_decay = np.where(t < total - decay, peak, np.where(t < total, end + (peak - end) * f, end))
    return np.where(t < warmup, warm, stable_or_decay)


REFERENCE = {
    "interp_linear": (
        lambda: gs.piecewise_interpolate_schedule("linear", 1.0, {40: 0.1, 200: 0.01}),
        lambda t: np_interp(t, "linear", 1.0, {40: 0.1, 200: 0.01}),
    ),
    "interp_cosine": (
        lambda: gs.piecewise_interpolate_schedule("cosine", 0.5, {100: 3.0, 10: 0.2, 301: 0.0}),
        lambda t: np_interp(t, "cosine", 0.5, {100: 3.0, 10: 0.2, 301: 0.0}),
    ),
    "onecycle": (lambda: gs.linear_onecycle_schedule(300, 1.0), lambda t: np_onecycle(t, 300, 1.0)),
    "onecycle_args": (
        lambda: gs.linear_onecycle_schedule(250, 0.3, 0.1, 0.6, 10.0, 100.0),
        lambda t: np_onecycle(t, 250, 0.3, 0.1, 0.6, 10.0, 100.0),
    ),
    "warmup_constant": (
        lambda: gs.warmup_constant_schedule(0.1, 2.0, 64),
        lambda t: np_warmup_constant(t, 0.1, 2.0, 64),
    ),
    "wsd_1sqrt": (
        lambda: gs.warmup_stable_decay_schedule(1.0, 300, 30, 60),
        lambda t: np_wsd(t, 1.0, 300, 30, 60),
    ),
    "wsd_linear_ends": (
        lambda: gs.warmup_stable_decay_schedule(3e-3, 200, 0, 50, 1e-4, 3e-4, decay_type="linear"),
        lambda t: np_wsd(t, 3e-3, 200, 0, 50, 1e-4, 3e-4, "linear"),
    ),
    "wsd_cosine": (
        lambda: gs.warmup_stable_decay_schedule(0.5, 301, 100, 201, 0.05, 0.01, decay_type="cosine"),
        lambda t: np_wsd(t, 0.5, 301, 100, 201, 0.05, 0.01, "cosine"),
    ),
    "wsd_no_decay": (
        lambda: gs.warmup_stable_decay_schedule(1.0, 100, 10, 0, end_value=0.2),
        lambda t: np_wsd(t, 1.0, 100, 10, 0, end=0.2),
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_matches_float64_transcription_of_docstring(name):
    make, ref = REFERENCE[name]
    sched = make()
    expected = ref(T)
    np.testing.assert_allclose(sched(COUNTS), expected, rtol=2e-6, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(jax.jit(sched)(COUNTS), expected, rtol=2e-6, atol=1e-7, err_msg=name)


# ------------------------------------------------------------- pytorch_optimizer WSD
WSD_TORCH = [  # (peak, total, warmup, decay, end, decay_type)
    (1.0, 120, 10, 30, 0.0, "1-sqrt"),
    (3e-3, 120, 0, 50, 0.0, "linear"),
    (0.5, 100, 20, 80, 0.0, "cosine"),
    (0.5, 100, 7, 41, 0.05, "cosine"),  # min_lr_ratio = 0.1
    (2.0, 60, 15, 0, 0.5, "linear"),  # no decay phase
]


@pytest.mark.parametrize("peak, total, warmup, decay, end, decay_type", WSD_TORCH)
def test_wsd_matches_pytorch_optimizer(peak, total, warmup, decay, end, decay_type):
    # Tolerance: rtol 1e-6 (float32 against float64), atol 1e-7 * peak (warm-up cancellation).
    torch = pytest.importorskip("torch")
    wsd = pytest.importorskip("pytorch_optimizer.lr_scheduler.wsd")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    sched = wsd.get_wsd_schedule(
        opt, warmup, total - warmup - decay, decay, min_lr_ratio=end / peak, cooldown_type=decay_type
    )
    lrs = []
    for _ in range(130):
        lrs.append(opt.param_groups[0]["lr"])  # LambdaLR's factor times peak
        opt.step()
        sched.step()
    ours = gs.warmup_stable_decay_schedule(peak, total, warmup, decay, end_value=end, decay_type=decay_type)
    np.testing.assert_allclose(ours(COUNTS[:130]), lrs, rtol=1e-6, atol=1e-7 * peak)


def test_wsd_linear_decay_ends_at_end_value_continuously():
    # Deliberate difference: pytorch_optimizer's linear and 1-sqrt cool-downs go to 0 and
    # then jump to min_lr_ratio; ours end at end_value.
    pytest.importorskip("torch")
    wsd = pytest.importorskip("pytorch_optimizer.lr_scheduler.wsd")
    kw = {"num_warmup_steps": 0, "num_stable_steps": 10, "num_decay_steps": 10, "min_lr_ratio": 0.5}
    torch_factor = [
        wsd.get_wsd_scheduler_lambda(t, num_cycles=0.5, cooldown_type="linear", **kw) for t in range(22)
    ]
    ours = np.asarray(
        gs.warmup_stable_decay_schedule(1.0, 20, 0, 10, end_value=0.5, decay_type="linear")(jnp.arange(22))
    )
    np.testing.assert_allclose(ours[10:21], np.linspace(1.0, 0.5, 11), rtol=1e-6)
    assert np.max(np.abs(np.diff(ours))) <= 0.05 + 1e-6
    np.testing.assert_allclose(torch_factor[19:22], [0.1, 0.5, 0.5], rtol=1e-6)  # its jump at the end


# ------------------------------------------------------ deliberate differences from Optax
def test_warmup_constant_without_warmup_is_constant_peak():
    optax = pytest.importorskip("optax")
    np.testing.assert_allclose(gs.warmup_constant_schedule(0.0, 0.7, 0)(jnp.arange(5)), 0.7, rtol=1e-7)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        assert float(optax.schedules.warmup_constant_schedule(0.0, 0.7, 0)(3)) == 0.0  # Optax: init forever


def test_linear_onecycle_keeps_every_phase_when_boundaries_coincide():
    optax = pytest.importorskip("optax")
    # pct_final = 1: b2 = T; Optax's dict {b1: 25, T: 1/25} -> {b1: 25, T: 1e-4} loses the
    # descent back to v0 and ends at peak / 1e4 instead of peak / 25 / 1e4.
    sched = gs.linear_onecycle_schedule(100, 1.0, pct_start=0.3, pct_final=1.0)
    t = np.arange(110.0)
    expected = np.where(t < 100, np.interp(t, [0, 30, 100], [0.04, 1.0, 0.04]), 0.04 / 1e4)
    np.testing.assert_allclose(sched(jnp.arange(110)), expected, rtol=2e-6)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        np.testing.assert_allclose(
            jax.jit(optax.schedules.linear_onecycle_schedule(100, 1.0, 0.3, 1.0))(105), 1e-4
        )
    # pct_start == pct_final: the rise, an empty descent, then the anneal from v0
    sched = gs.linear_onecycle_schedule(
        10, 1.0, pct_start=0.5, pct_final=0.5, div_factor=2.0, final_div_factor=5.0
    )
    np.testing.assert_allclose(
        sched(jnp.arange(12)), [0.5, 0.6, 0.7, 0.8, 0.9, 0.5, 0.42, 0.34, 0.26, 0.18, 0.1, 0.1], rtol=1e-6
    )


def test_piecewise_interpolate_takes_array_counts_and_holds_before_zero():
    sched = gs.piecewise_interpolate_schedule("linear", 1.0, {4: 0.5})
    counts = jnp.array([[-3, 0, 2], [4, 6, 100]], jnp.int32)
    np.testing.assert_allclose(sched(counts), [[1.0, 1.0, 0.75], [0.5, 0.5, 0.5]], rtol=1e-7)
    assert sched(counts).shape == (2, 3)


# ----------------------------------------------------------------- tracers and vmap
def test_hyperparameters_may_be_tracers():
    peaks = jnp.array([0.5, 1.0, 2.0])
    t = T[:120]
    cases = [
        (
            lambda p: gs.warmup_stable_decay_schedule(p, 100, 10, 30, decay_type="cosine"),
            lambda p: np_wsd(t, p, 100, 10, 30, decay_type="cosine"),
        ),
        (
            lambda p: gs.linear_onecycle_schedule(100, p, 0.25, 0.75, 5.0, 10.0),
            lambda p: np_onecycle(t, 100, p, 0.25, 0.75, 5.0, 10.0),
        ),
        (
            lambda p: gs.warmup_constant_schedule(0.1 * p, p, 10),
            lambda p: np_warmup_constant(t, 0.1 * p, p, 10),
        ),
        (
            lambda p: gs.piecewise_interpolate_schedule("cosine", p, {10: 0.5, 50: p}),
            lambda p: np_interp(t, "cosine", p, {10: 0.5, 50: p}),
        ),
    ]
    for build, ref in cases:
        batched = jax.jit(jax.vmap(lambda p, build=build: build(p)(COUNTS[:120])))(peaks)
        for i, p in enumerate([0.5, 1.0, 2.0]):
            np.testing.assert_allclose(batched[i], ref(p), rtol=2e-6, atol=1e-7)
    # step arguments as tracers too
    f = jax.jit(lambda w, d: gs.warmup_stable_decay_schedule(1.0, 100, w, d)(COUNTS[:120]))
    np.testing.assert_allclose(f(10, 30), np_wsd(T[:120], 1.0, 100, 10, 30), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(f(0, 0), np_wsd(T[:120], 1.0, 100, 0, 0), rtol=2e-6, atol=1e-7)
    g = jax.jit(lambda w: gs.warmup_constant_schedule(0.0, 1.0, w)(COUNTS[:20]))
    np.testing.assert_allclose(g(0), 1.0)
    np.testing.assert_allclose(g(8), np_warmup_constant(T[:20], 0.0, 1.0, 8), rtol=1e-6)
    h = jax.jit(lambda ps, pf: gs.linear_onecycle_schedule(100, 1.0, ps, pf)(COUNTS[:120]))
    np.testing.assert_allclose(h(0.3, 0.85), np_onecycle(T[:120], 100, 1.0), rtol=2e-6, atol=1e-7)


def test_public_surface():
    names = {"piecewise_interpolate_schedule", "linear_onecycle_schedule", "warmup_constant_schedule"}
    assert names | {"warmup_stable_decay_schedule"} <= set(gs.__all__)
    assert gs.__all__ == sorted(gs.__all__)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: gs.piecewise_interpolate_schedule("exp", 1.0),
            ValueError,
            r"piecewise_interpolate_schedule: `interpolate_type` must be 'linear' or 'cosine', got 'exp'\.",
        ),
        (lambda: gs.piecewise_interpolate_schedule(None, 1.0), TypeError, r"`interpolate_type` must be"),
        (lambda: gs.piecewise_interpolate_schedule("linear", np.nan), ValueError, r"`init_value` must be"),
        (lambda: gs.piecewise_interpolate_schedule("linear", 1.0, [(1, 2)]), TypeError, r"must be a dict"),
        (
            lambda: gs.piecewise_interpolate_schedule("linear", 1.0, {5: -0.1}),
            ValueError,
            r"\[5\]` must be >= 0",
        ),
        (lambda: gs.piecewise_interpolate_schedule("linear", 1.0, {-5: 0.1}), ValueError, r"must be >= 0"),
        (lambda: gs.piecewise_interpolate_schedule("cosine", 1.0, {2.5: 0.1}), ValueError, r"an integer"),
        (lambda: gs.linear_onecycle_schedule(0, 1.0), ValueError, r"`transition_steps` must be > 0, got 0"),
        (lambda: gs.linear_onecycle_schedule(10, 1.0, pct_start=1.5), ValueError, r"`pct_start` must be"),
        (
            lambda: gs.linear_onecycle_schedule(10, 1.0, 0.5, 0.4),
            ValueError,
            r"`pct_final` must be >= `pct_start`",
        ),
        (
            lambda: gs.linear_onecycle_schedule(10, 1.0, div_factor=0.0),
            ValueError,
            r"`div_factor` must be > 0",
        ),
        (lambda: gs.linear_onecycle_schedule(10, "1"), TypeError, r"`peak_value` must be a number"),
        (
            lambda: gs.warmup_constant_schedule(0.0, 1.0, -1),
            ValueError,
            r"`warmup_steps` must be >= 0, got -1",
        ),
        (
            lambda: gs.warmup_constant_schedule(0.0, 1.0, 2.5),
            ValueError,
            r"`warmup_steps` must be an integer",
        ),
        (lambda: gs.warmup_constant_schedule(None, 1.0, 2), TypeError, r"`init_value` must be a number"),
        (lambda: gs.warmup_stable_decay_schedule(1.0, 0, 0, 0), ValueError, r"`total_steps` must be > 0"),
        (
            lambda: gs.warmup_stable_decay_schedule(1.0, 100, 60, 50),
            ValueError,
            r"warmup_stable_decay_schedule: `warmup_steps \+ decay_steps` must be <= `total_steps` = 100",
        ),
        (
            lambda: gs.warmup_stable_decay_schedule(1.0, 100, 10, -1),
            ValueError,
            r"`decay_steps` must be >= 0",
        ),
        (
            lambda: gs.warmup_stable_decay_schedule(1.0, 100, 10, 10, decay_type="exp"),
            ValueError,
            r"`decay_type` must be 'linear' or 'cosine' or '1-sqrt', got 'exp'",
        ),
        (lambda: gs.warmup_stable_decay_schedule(1.0, 100, 10, 10, decay_type=1), TypeError, r"`decay_type`"),
        (
            lambda: gs.warmup_stable_decay_schedule(np.inf, 100, 10, 10),
            ValueError,
            r"`peak_value` must be finite",
        ),
        (
            lambda: gs.warmup_stable_decay_schedule(1.0, 100, 10, 10, end_value=jnp.ones(2)),
            ValueError,
            r"scalar",
        ),
    ],
)
def test_bad_arguments_raise(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
