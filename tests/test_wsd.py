"""warmup_stable_decay_schedule against pytorch_optimizer 4.1.0's WSD schedule
(``pytorch_optimizer.lr_scheduler.get_wsd_schedule``, run through torch's LambdaLR) at every
step, for the linear, cosine and 1-sqrt cool-downs, ``min_lr_ratio`` and ``num_cycles``:
to a few float32 ulps (rtol 5e-7, no absolute slack) for the half-cosine and the other
cool-downs; and the new arguments' transcription, tracers and errors.

(The existing tests of the function, and its default convention, are in
test_schedules_more.py.)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradchain import schedules as gs

RTOL = 5e-7  # a few float32 ulps: the reference is float64, ours float32


def _torch_lrs(peak, warmup, stable, decay, steps, **kw):
    """The learning rates torch's LambdaLR sets, step after step, from pytorch_optimizer's WSD."""
    torch = pytest.importorskip("torch")
    wsd = pytest.importorskip("pytorch_optimizer.lr_scheduler.wsd")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    sched = wsd.get_wsd_schedule(opt, warmup, stable, decay, **kw)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.asarray(lrs)


CASES = [  # (peak, warmup, stable, decay, min_lr_ratio, num_cycles, cooldown)
    (1.0, 50, 300, 600, 0.0, 0.5, "1-sqrt"),
    (3e-4, 0, 100, 777, 0.1, 0.5, "1-sqrt"),
    (2.0, 40, 0, 500, 0.0, 0.5, "linear"),
    (6e-4, 25, 100, 300, 0.25, 0.5, "linear"),
    (0.5, 100, 200, 900, 0.0, 0.5, "cosine"),
    (3e-4, 10, 40, 400, 0.1, 0.5, "cosine"),
    (1.0, 7, 13, 0, 0.3, 0.5, "cosine"),  # no decay phase
]


@pytest.mark.parametrize("peak, warmup, stable, decay, ratio, cycles, cooldown", CASES)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_matches_pytorch_optimizer_at_every_step(peak, warmup, stable, decay, ratio, cycles, cooldown, jit):
    total = warmup + stable + decay
    n = total + 5  # beyond the end too
    expected = _torch_lrs(
        peak, warmup, stable, decay, n, min_lr_ratio=ratio, num_cycles=cycles, cooldown_type=cooldown
    )
    sched = gs.warmup_stable_decay_schedule(
        peak,
        total,
        warmup,
        decay,
        end_value=ratio * peak,
        decay_type=cooldown,
        num_cycles=cycles,
        decay_to_zero=True,
    )
    got = (jax.jit(sched) if jit else sched)(jnp.arange(n, dtype=jnp.int32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("cycles", [0.25, 1.0, 1.3])
def test_cosine_cycles_match_pytorch_optimizer(cycles):
    # Away from 0.5 the cosine goes through zeros inside the decay, where float32 (and C rounded
    # to float32) can only be accurate relative to the peak: rtol 5e-7 plus atol 1e-6 * peak.
    peak, warmup, stable, decay = 0.5, 20, 30, 400
    expected = _torch_lrs(
        peak, warmup, stable, decay, 460, min_lr_ratio=0.05, num_cycles=cycles, cooldown_type="cosine"
    )
    sched = gs.warmup_stable_decay_schedule(
        peak, 450, warmup, decay, end_value=0.025, decay_type="cosine", num_cycles=cycles
    )
    np.testing.assert_allclose(
        np.asarray(sched(jnp.arange(460)), np.float64), expected, rtol=RTOL, atol=1e-6 * peak
    )


def test_decay_to_zero_only_changes_linear_and_1sqrt():
    t = jnp.arange(30)
    for kind in ("linear", "1-sqrt"):
        a = gs.warmup_stable_decay_schedule(1.0, 25, 5, 10, end_value=0.4, decay_type=kind)(t)
        b = gs.warmup_stable_decay_schedule(
            1.0, 25, 5, 10, end_value=0.4, decay_type=kind, decay_to_zero=True
        )(t)
        np.testing.assert_array_equal(a[:16], b[:16])  # warm-up, stable and the first decay step
        assert float(b[24]) < 0.2 < 0.4 < float(a[24])  # to 0, then the jump; ends at 0.4 continuously
        np.testing.assert_array_equal(a[25:], b[25:])
    c = [
        gs.warmup_stable_decay_schedule(1.0, 25, 5, 10, end_value=0.4, decay_type="cosine", decay_to_zero=z)(
            t
        )
        for z in (False, True)
    ]
    np.testing.assert_array_equal(c[0], c[1])


def _np_wsd(t, peak, total, warmup, decay, init=0.0, end=0.0, kind="1-sqrt", cycles=0.5, to_zero=False):
    out = []
    for x in t:
        s = (x - (total - decay)) / max(decay, 1)  # s = (t - (N - D)) / D
        if kind == "linear":
            f = 1 - s  # f(s) = 1 - s
        elif kind == "cosine":
            f = (1 + math.cos(2 * math.pi * cycles * s)) / 2  # f(s) = (1 + cos(2 pi C s)) / 2
        else:
            f = 1 - math.sqrt(max(s, 0.0))  # f(s) = 1 - sqrt(s)
        if x < warmup:
            v = init + (peak - init) * x / warmup  # warm-up
        elif x < total - decay:
            v = peak  # stable
        elif x < total:
            v = peak * f if to_zero and kind != "cosine" else end + (peak - end) * f  # decay
        else:
            v = end
        out.append(v)
    return np.asarray(out)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kind="1-sqrt", init=0.1, end=0.05, to_zero=True),
        dict(kind="linear", init=0.2, end=0.3, to_zero=True),
        dict(kind="cosine", init=0.0, end=0.1, cycles=0.75),
    ],
    ids=str,
)
def test_matches_float64_transcription_of_docstring(kw):
    t = np.arange(130)
    expected = _np_wsd(t, 1.5, 120, 15, 60, **kw)
    sched = gs.warmup_stable_decay_schedule(
        1.5,
        120,
        15,
        60,
        kw["init"],
        kw["end"],
        decay_type=kw["kind"],
        num_cycles=kw.get("cycles", 0.5),
        decay_to_zero=kw.get("to_zero", False),
    )
    np.testing.assert_allclose(
        np.asarray(jax.jit(sched)(jnp.asarray(t)), np.float64), expected, rtol=2e-6, atol=2e-7
    )


def test_num_cycles_may_be_a_tracer():
    cycles = jnp.array([0.5, 1.0, 1.5])
    f = jax.jit(
        jax.vmap(
            lambda c: gs.warmup_stable_decay_schedule(1.0, 100, 10, 50, decay_type="cosine", num_cycles=c)(
                jnp.arange(110)
            )
        )
    )
    got = f(cycles)
    for i, c in enumerate([0.5, 1.0, 1.5]):
        np.testing.assert_allclose(
            got[i], _np_wsd(np.arange(110), 1.0, 100, 10, 50, kind="cosine", cycles=c), rtol=2e-6, atol=2e-7
        )


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: gs.warmup_stable_decay_schedule(1.0, 100, 10, 10, num_cycles=-0.5),
            ValueError,
            r"warmup_stable_decay_schedule: `num_cycles` must be >= 0, got -0\.5",
        ),
        (
            lambda: gs.warmup_stable_decay_schedule(1.0, 100, 10, 10, num_cycles="half"),
            TypeError,
            r"warmup_stable_decay_schedule: `num_cycles` must be a number",
        ),
        (
            lambda: gs.warmup_stable_decay_schedule(1.0, 100, 10, 10, decay_to_zero=1),
            TypeError,
            r"warmup_stable_decay_schedule: `decay_to_zero` must be a bool, got 1",
        ),
    ],
)
def test_bad_arguments_raise(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
