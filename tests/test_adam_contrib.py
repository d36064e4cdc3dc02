"""The Adam-like optimizers of optax.contrib (ADOPT, AdEMAMix and its schedulers, simplified
AdEMAMix, ACProp, MADGRAD) and MARS: float64 NumPy transcriptions of the docstring rules,
Optax 0.2.8 parity (eager and jitted), the authors' references (timm's Adopt, MADGRAD and
Mars; pytorch_optimizer's AdEMAMix and MARS), edge cases, dtypes and argument errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

N_STEPS = 12
SHAPES = {"w": (6, 4), "b": (4,), "stack": (3, 5, 4)}
SCHED = lambda c: 0.02 * 0.9 ** c.astype(jnp.float32)
NOT_BIAS = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)


def _problem(seed=0, dtype=jnp.float32, zero_first=True, n=N_STEPS):
    """Parameters with |p| >= 1 and ``n`` gradient trees (the first one zero on "b")."""
    params = jax.tree.map(lambda x: jnp.sign(x) * (1 + jnp.abs(x)), helpers.random_tree(seed, SHAPES, dtype))
    grads = helpers.grad_sequence(seed + 1, params, n)
    if zero_first:
        grads[0]["b"] = jnp.zeros_like(grads[0]["b"])
    return params, grads


def _max_rel(actual_seq, expected_seq) -> float:
    """Largest relative difference, each element against max(|expected|, 1% of the step's max)."""
    worst = 0.0
    for a, b in zip(actual_seq, expected_seq):
        scale = max(float(np.max(np.abs(np.asarray(x, np.float64)))) for x in jax.tree.leaves(b))
        worst = max(worst, helpers.max_rel_diff(a, b, floor=max(1e-2 * scale, 1e-30)))
    return worst


# ------------------------------------------------ float64 NumPy transcriptions (one leaf)
# Step functions ``(g, p) -> u`` with their state in a closure, one line per docstring line.
def np_adopt(b1=0.9, b2=0.9999, eps=1e-6, nesterov=False, clip=lambda t: t**0.25):
    s = {"t": 0}

    def step(g, p):
        t, m, v = s["t"], s.get("m", 0 * g), s.get("v", 0 * g)
        if t == 0:
            v, u = g**2, 0 * g
        else:
            n = g / np.maximum(np.sqrt(v), eps)
            n = n if clip is None else np.clip(n, -clip(t), clip(t))
            m = b1 * m + (1 - b1) * n
            v = b2 * v + (1 - b2) * g**2
            u = b1 * m + (1 - b1) * n if nesterov else m
        s.update(t=t + 1, m=m, v=v)
        return u

    return step


def np_ademamix(b1=0.9, b2=0.999, b3=0.9999, alpha=6.0, eps=1e-8, eps_root=0.0):
    s = {"t": 0}
    at = lambda h, k: h(k) if callable(h) else h

    def step(g, p):
        k = s["t"]
        t, m1, m2, v = k + 1, s.get("m1", 0 * g), s.get("m2", 0 * g), s.get("v", 0 * g)
        m1 = b1 * m1 + (1 - b1) * g
        m2 = at(b3, k) * m2 + (1 - at(b3, k)) * g
        v = b2 * v + (1 - b2) * g**2
        u = (m1 / (1 - b1**t) + at(alpha, k) * m2) / (np.sqrt(v / (1 - b2**t) + eps_root) + eps)
        s.update(t=t, m1=m1, m2=m2, v=v)
        return u

    return step


def np_simplified_ademamix(b1=0.99, b2=0.95, alpha=0.0, eps=1e-8, eps_root=0.0):
    s = {"t": 0}

    def step(g, p):
        t, m, n = s["t"] + 1, s.get("m", 0 * g), s.get("n", 0 * g)
        m = b1 * m + g
        n = b2 * n + (1 - b2) * g**2
        u = (m + alpha * g) / (np.sqrt(n / (1 - b2**t) + eps_root) + eps)
        s.update(t=t, m=m, n=n)
        return u

    return step


def np_acprop(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16):
    s = {"t": 0}

    def step(g, p):
        t, m_prev, s_prev = s["t"] + 1, s.get("m", 0 * g), s.get("s", 0 * g)
        m = b1 * m_prev + (1 - b1) * g
        s_new = b2 * s_prev + (1 - b2) * (g - m_prev) ** 2 + eps_root
        u = g / (np.sqrt(s_prev / (1 - b2 ** (t - 1))) + eps) if t > 1 else g / (1 + eps)
        s.update(t=t, m=m, s=s_new)
        return u

    return step


def np_madgrad(lr=0.1, momentum=0.9, eps=1e-6):
    s = {"k": 0}

    def step(g, p):
        k, x0, big_g, sum_g = s["k"], s.setdefault("x0", p), s.get("G", 0 * g), s.get("s", 0 * g)
        lam = (lr + eps) * np.sqrt(k + 1)
        big_g = big_g + lam * g**2
        sum_g = sum_g + lam * g
        z = x0 - sum_g / (np.cbrt(big_g) + eps)
        u = (1 - momentum) * (z - p)
        s.update(k=k + 1, G=big_g, s=sum_g)
        return u

    return step


def np_mars(b1=0.95, b2=0.99, eps=1e-8, gamma=0.025, correct_first_step=True):
    s = {"t": 0}

    def step(g, p):
        t, m, v, g_prev = s["t"] + 1, s.get("m", 0 * g), s.get("v", 0 * g), s.get("g", 0 * g)
        c = g + gamma * b1 / (1 - b1) * (g - g_prev) if correct_first_step or t > 1 else g
        c = c / max(1.0, np.linalg.norm(c))
        m = b1 * m + (1 - b1) * c
        v = b2 * v + (1 - b2) * c**2
        u = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        s.update(t=t, m=m, v=v, g=g)
        return u

    return step


def _np_chain(*steps):
    def step(g, p):
        for f in steps:
            g = f(g, p)
        return g

    return step


lr = lambda x: lambda g, p: -x * g
wd = lambda x: lambda g, p: g + x * p


def check_transcription(make, make_ref, rtol=1e-10, leaves=None):
    """``make()`` in float64 (eager, params updated by its own updates) against the leafwise
    transcription ``make_ref(i)`` (``i``: the leaf's index), every step."""
    with jax.enable_x64(True):
        params, grads = _problem(dtype=jnp.float64)
        updates, _, _ = helpers.run_steps(make(), params, grads)
    for i, p in enumerate(jax.tree.leaves(helpers.to_numpy64(params))):
        ref = make_ref(i)
        for t, g in enumerate(grads):
            u = ref(np.asarray(jax.tree.leaves(g)[i], np.float64), p)
            got = np.asarray(jax.tree.leaves(updates[t])[i])
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, u, rtol=rtol, atol=1e-300, err_msg=f"leaf {i} step {t}")
            p = p + u


CLIP64 = lambda c: c.astype(jnp.float64) ** 0.25  # the default clip, in float64 (it is float32 otherwise)
CLIP3 = lambda c: jnp.power(c.astype(jnp.float64), 1 / 3)
SCHED_B3 = lambda k: 0.9 + 0.09 * min(k / 5, 1)  # (Python floats: exact in the transcription)
SCHED_ALPHA = lambda k: 2.0 * min(k / 4, 1)
f64_schedule = lambda f: lambda k: f(k.astype(jnp.float64))  # (min of a float64 array and 1)

# (id, gradchain transformation builder, transcription builder)
TRANSCRIPTIONS = [
    ("adopt", lambda: gc.scale_by_adopt(clip_value_fn=CLIP64), lambda: np_adopt()),
    (
        "adopt_custom",
        lambda: gc.scale_by_adopt(0.8, 0.99, 1e-3, nesterov=True, clip_value_fn=CLIP3),
        lambda: np_adopt(0.8, 0.99, 1e-3, True, lambda t: t ** (1 / 3)),
    ),
    ("adopt_noclip", lambda: gc.scale_by_adopt(use_clipping=False), lambda: np_adopt(clip=None)),
    ("ademamix", gc.scale_by_ademamix, np_ademamix),
    (
        "ademamix_schedules",
        lambda: gc.scale_by_ademamix(
            0.8, 0.99, f64_schedule(SCHED_B3), f64_schedule(SCHED_ALPHA), 1e-6, 1e-8
        ),
        lambda: np_ademamix(0.8, 0.99, SCHED_B3, SCHED_ALPHA, 1e-6, 1e-8),
    ),
    ("simplified_ademamix", gc.scale_by_simplified_ademamix, np_simplified_ademamix),
    (
        "simplified_ademamix_custom",
        lambda: gc.scale_by_simplified_ademamix(0.9, 0.99, 2.0, 1e-6, 1e-8),
        lambda: np_simplified_ademamix(0.9, 0.99, 2.0, 1e-6, 1e-8),
    ),
    ("acprop", gc.scale_by_acprop, np_acprop),
    (
        "acprop_custom",
        lambda: gc.scale_by_acprop(0.8, 0.5, 1e-3, 1e-4),
        lambda: np_acprop(0.8, 0.5, 1e-3, 1e-4),
    ),
    ("madgrad", lambda: gc.scale_by_madgrad(0.1), lambda: np_madgrad(0.1)),
    ("madgrad_custom", lambda: gc.scale_by_madgrad(0.5, 0.0, 1e-3), lambda: np_madgrad(0.5, 0.0, 1e-3)),
    ("mars", gc.scale_by_mars, np_mars),
    (
        "mars_custom",
        lambda: gc.scale_by_mars(0.9, 0.999, 1e-6, 0.5, correct_first_step=False),
        lambda: np_mars(0.9, 0.999, 1e-6, 0.5, False),
    ),
    # optimizers, as the chains their docstrings spell out
    (
        "opt_adopt_l2",
        lambda: gc.adopt(0.1, weight_decay=0.2, clip_value_fn=CLIP64),
        lambda: _np_chain(wd(0.2), np_adopt(), lr(0.1)),
    ),
    ("opt_mars_1d", lambda: gc.mars(0.1, optimize_1d=True), lambda: _np_chain(np_mars(), lr(0.1))),
]


@pytest.mark.parametrize("make,make_ref", [r[1:] for r in TRANSCRIPTIONS], ids=[r[0] for r in TRANSCRIPTIONS])
def test_matches_float64_transcription(make, make_ref):
    check_transcription(make, lambda i: make_ref())


def test_mars_optimizer_splits_matrices_from_the_rest():
    """``optimize_1d=False``: MARS on ``ndim >= 2``, AdamW (with its own decays) on the vector."""

    def ref(i):  # leaves in key order: b, stack, w
        if i == 0:
            return _np_chain(np_adam(0.8, 0.9, 1e-6), wd(0.3), lr(0.05))
        return _np_chain(np_mars(eps=1e-6), wd(0.2), lr(0.1))

    make = lambda: gc.mars(
        0.1, eps=1e-6, weight_decay=0.2, learning_rate_1d=0.05, b1_1d=0.8, b2_1d=0.9, weight_decay_1d=0.3
    )
    check_transcription(make, ref)


def np_adam(b1, b2, eps):
    s = {"t": 0}

    def step(g, p):
        t, m, v = s["t"] + 1, s.get("m", 0 * g), s.get("v", 0 * g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        s.update(t=t, m=m, v=v)
        return (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)

    return step


# ------------------------------------------------------------------- Optax 0.2.8 parity
ALPHA = gc.ademamix_alpha_scheduler(5.0, warmup=6)
BETA3 = gc.ademamix_beta3_scheduler(0.999, beta_start=0.9, warmup=6)
CLIP_LIN = lambda c: 0.5 + 0.25 * c.astype(jnp.float32)
# (id, name, args, kwargs): the same call builds the gradchain and the optax.contrib transformation.
OPTAX = [
    ("scale_by_adopt", "scale_by_adopt", (), {}),
    (
        "scale_by_adopt_custom",
        "scale_by_adopt",
        (0.8, 0.99, 1e-3),
        {"nesterov": True, "clip_value_fn": CLIP_LIN},
    ),
    ("adopt_schedule_noclip", "adopt", (SCHED,), {"use_clipping": False}),
    ("scale_by_ademamix", "scale_by_ademamix", (), {}),
    ("scale_by_ademamix_schedulers", "scale_by_ademamix", (0.8, 0.99, BETA3, ALPHA, 1e-6, 1e-8), {}),
    ("ademamix_schedules_mask", "ademamix", (SCHED,), {"b3": BETA3, "weight_decay": 0.1, "mask": NOT_BIAS}),
    ("scale_by_simplified_ademamix", "scale_by_simplified_ademamix", (0.9, 0.99, ALPHA, 1e-6, 1e-8), {}),
    ("simplified_ademamix_wd", "simplified_ademamix", (SCHED,), {"alpha": 2.0, "weight_decay": 0.1}),
    ("scale_by_acprop", "scale_by_acprop", (), {}),
    ("acprop_mask", "acprop", (SCHED, 0.8, 0.5, 1e-3, 1e-4), {"weight_decay": 0.1, "mask": NOT_BIAS}),
    ("scale_by_madgrad", "scale_by_madgrad", (SCHED, 0.5, 1e-4), {}),
    ("madgrad_l2", "madgrad", (0.01, 0.8, 0.1, 1e-5), {}),
]


@pytest.mark.parametrize("name,args,kw", [r[1:] for r in OPTAX], ids=[r[0] for r in OPTAX])
def test_matches_optax_contrib_eager_and_jitted(name, args, kw):
    optax = pytest.importorskip("optax")
    params, grads = _problem()
    uo, po, _ = helpers.run_optax(getattr(optax.contrib, name)(*args, **kw), params, grads)
    tx = getattr(gc, name)(*args, **kw)
    assert getattr(gc.contrib, name) is getattr(gc, name)
    # The rescalings' updates are O(1) and do not read the params: there, p_t = p_0 + sum(u)
    # adds nothing to the updates' comparison but cancellation (p_t near 0).
    check_params = not name.startswith("scale_by_") or name == "scale_by_madgrad"
    for jit in (False, True):
        u, p, _ = helpers.run_steps(tx, params, grads, jit=jit)
        if "madgrad" in name:
            _check_madgrad_updates(u, uo, [params, *po[:-1]])
        else:
            assert _max_rel(u, uo) <= 2e-5, f"jit={jit}: updates differ by {_max_rel(u, uo):.2e}"
        assert not check_params or _max_rel(p, po) <= 2e-5, (
            f"jit={jit}: params differ by {_max_rel(p, po):.2e}"
        )
        assert all(a.dtype == b.dtype for a, b in zip(jax.tree.leaves(u[-1]), jax.tree.leaves(params)))


def _check_madgrad_updates(u, uo, ps):
    """Optax computes MADGRAD's update as ``x_{k+1} - x_k`` in float32 (exact to an ulp of
    ``|x|``, ~1e-7 here, larger than 2e-5 of the updates); gradchain as ``(1 - momentum) *
    (z_{k+1} - x_k)`` (20 times closer to float64). Within 2e-5 plus 2 ulps of the params."""
    for t, (a, b, p) in enumerate(zip(u, uo, ps)):
        scale = max(float(np.max(np.abs(np.asarray(x)))) for x in jax.tree.leaves(b))
        for x, y, q in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(p)):
            x, y, q = (np.asarray(v, np.float64) for v in (x, y, q))
            bound = 2e-5 * np.maximum(np.abs(y), 1e-2 * scale) + 2 * 2.0**-23 * np.abs(q)
            assert np.all(np.abs(x - y) <= bound), f"step {t}: {np.max(np.abs(x - y) - bound):.2e} too far"


def test_states_have_optax_field_names():
    optax = pytest.importorskip("optax")
    p = {"w": jnp.ones(3)}
    for name, args in [
        ("scale_by_adopt", ()),
        ("scale_by_ademamix", ()),
        ("scale_by_simplified_ademamix", ()),
        ("scale_by_acprop", ()),
        ("scale_by_madgrad", (0.1,)),
    ]:
        ours, theirs = getattr(gc, name)(*args).init(p), getattr(optax.contrib, name)(*args).init(p)
        assert type(ours).__name__ == type(theirs).__name__ and ours._fields == theirs._fields, name
        assert jax.tree.structure(ours).num_leaves == jax.tree.structure(theirs).num_leaves, name


QUADRATIC_EXAMPLES = [  # Optax 0.2.8's docstring examples: f(x) = sum(x**2) from [1, 2, 3]
    (lambda: gc.adopt(0.003), [1.40e1] * 5),
    (lambda: gc.ademamix(0.01), [1.39e1, 1.38e1, 1.36e1, 1.35e1, 1.34e1]),
    (lambda: gc.simplified_ademamix(0.01), [1.39e1, 1.36e1, 1.33e1, 1.28e1, 1.23e1]),
]


@pytest.mark.parametrize(
    "make,expected", QUADRATIC_EXAMPLES, ids=["adopt", "ademamix", "simplified_ademamix"]
)
def test_optax_docstring_examples(make, expected):
    f = lambda x: jnp.sum(x * x)
    tx, x = make(), jnp.array([1.0, 2.0, 3.0])
    s, got = tx.init(x), []
    for _ in range(5):
        u, s = tx.update(jax.grad(f)(x), s, x)
        x = gc.apply_updates(x, u)
        got.append(float(f"{float(f(x)):.2E}"))
    assert got == expected


# ---------------------------------------------- the authors' references (torch, float64)
def _torch_params(make_opt, params, grads):
    """The parameters after each step of a torch optimizer built by ``make_opt(tensors)``."""
    torch = pytest.importorskip("torch")
    names = sorted(params)  # the dict's leaf order
    ts = [torch.tensor(np.asarray(params[k]), requires_grad=True) for k in names]
    opt, out = make_opt(ts), []
    for g in grads:
        for x, k in zip(ts, names):
            x.grad = torch.tensor(np.asarray(g[k]))
        opt.step()
        out.append({k: x.detach().numpy().copy() for x, k in zip(ts, names)})
    return out


def _check_reference(make_tx, make_opt, rtol):
    with jax.enable_x64(True):
        params, grads = _problem(dtype=jnp.float64, zero_first=False)
        _, ps, _ = helpers.run_steps(make_tx(), params, grads)
    expected = _torch_params(make_opt, params, grads)
    for t, (a, b) in enumerate(zip(ps, expected)):
        helpers.assert_trees_close(a, b, rtol=rtol, atol=1e-14, msg=f"step {t}")


def _timm(module, cls):
    from tests.oracles import timm_optim

    pytest.importorskip("torch")
    return getattr(timm_optim(module), cls)


CLIP_TIMM = lambda c: jnp.power(c.astype(jnp.float64), 0.333)
TIMM_ADOPT = [  # (id, gradchain adopt kwargs, timm Adopt kwargs)
    ("clip_exp", {"clip_value_fn": CLIP_TIMM}, {}),
    ("no_clip", {"use_clipping": False, "b2": 0.99}, {"clip_exp": None, "betas": (0.9, 0.99)}),
    ("l2", {"clip_value_fn": CLIP_TIMM, "weight_decay": 0.1}, {"weight_decay": 0.1}),
    (
        "decoupled",
        {"clip_value_fn": CLIP_TIMM, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"weight_decay": 0.1, "decoupled": True},
    ),
]


@pytest.mark.parametrize("ours,theirs", [r[1:] for r in TIMM_ADOPT], ids=[r[0] for r in TIMM_ADOPT])
def test_adopt_matches_timm(ours, theirs):
    """timm's ``Adopt`` (the authors' code with ``clip_exp``): its clip ``(step - 1)**clip_exp``
    is ``clip_value_fn(count)``; its decoupled decay skips the first step, as ours."""
    Adopt = _timm("adopt", "Adopt")
    _check_reference(lambda: gc.adopt(0.01, **ours), lambda ps: Adopt(ps, lr=0.01, **theirs), rtol=1e-10)


@pytest.mark.parametrize("warmup", [None, 5])
def test_ademamix_matches_pytorch_optimizer(warmup):
    """pytorch_optimizer's ``AdEMAMix(weight_decouple=True)``: the same rule; its warm-ups
    read the 1-based step, ours the count of previous steps: ``sched(t + 1)``."""
    po = pytest.importorskip("pytorch_optimizer")
    b3, alpha = 0.999, 5.0
    if warmup is not None:
        with jax.enable_x64(True):  # (float64 hyperparameters: a float64 schedule)
            f64 = lambda x: jnp.asarray(x, jnp.float64)
            a = gc.ademamix_alpha_scheduler(f64(alpha), warmup=warmup)
            b = gc.ademamix_beta3_scheduler(f64(b3), f64(0.9), warmup)
        b3, alpha = (lambda c: b(c + 1)), (lambda c: a(c + 1))
    _check_reference(
        lambda: gc.ademamix(0.01, 0.9, 0.99, b3, alpha, weight_decay=0.1),
        lambda ps: po.AdEMAMix(
            ps,
            lr=0.01,
            betas=(0.9, 0.99, 0.999),
            alpha=5.0,
            t_alpha_beta3=warmup,
            weight_decay=0.1,
            weight_decouple=True,
        ),
        rtol=1e-10,
    )


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_madgrad_matches_timm(momentum):
    """timm's ``MADGRAD`` (the authors' code; L2 decay); with ``momentum = 0`` it recomputes
    ``x0`` from the iterate instead of storing it."""
    MADGRAD = _timm("madgrad", "MADGRAD")
    _check_reference(
        lambda: gc.madgrad(0.05, momentum, 0.1),
        lambda ps: MADGRAD(ps, lr=0.05, momentum=momentum, weight_decay=0.1),
        rtol=1e-9,
    )


@pytest.mark.parametrize("optimize_1d", [False, True])
def test_mars_matches_timm(optimize_1d):
    """timm's ``Mars``: ``correct_first_step=False`` (its ``c_1 = g_1``), its AdamW for vectors
    with the MARS betas and decay."""
    Mars = _timm("mars", "Mars")
    kw = dict(b1_1d=0.9, b2_1d=0.99, weight_decay_1d=0.1, optimize_1d=optimize_1d, correct_first_step=False)
    _check_reference(
        lambda: gc.mars(0.01, 0.9, 0.99, 1e-8, 0.5, 0.1, **kw),
        lambda ps: Mars(ps, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1, gamma=0.5, optimize_1d=optimize_1d),
        rtol=1e-10,
    )


def test_mars_matches_pytorch_optimizer_defaults():
    """pytorch_optimizer's ``MARS`` with its (the authors') defaults: the first step corrected
    against ``g_0 = 0``, AdamW(0.9, 0.95, decay 0.1) on vectors. Its denominator is
    ``(sqrt(v + 1e-15) + eps) / sqrt(1 - b2**t)`` (``eps`` debiased too, and a fixed
    ``1e-15`` inside the root): compared at ``eps = 0``, where only that ``1e-15`` differs
    (parameters within 1e-8 relative, i.e. updates within ~3e-6)."""
    po = pytest.importorskip("pytorch_optimizer")
    _check_reference(
        lambda: gc.mars(3e-3, eps=0.0, weight_decay=0.1),
        lambda ps: po.MARS(ps, eps=0.0, weight_decay=0.1),
        rtol=1e-8,
    )


# -------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("nesterov", [False, True])
def test_adopt_first_step_records_the_second_moment_and_makes_no_update(nesterov):
    g0 = jnp.array([2.0, -3.0, 0.0])
    for eps in (0.0, 1e-6):  # eps = 0: the unused g / eps never turns into a NaN
        tx = gc.scale_by_adopt(eps=eps, nesterov=nesterov)
        u, s = tx.update(g0, tx.init(jnp.zeros(3)))
        np.testing.assert_array_equal(u, 0.0)
        np.testing.assert_array_equal(s.nu, g0**2)
        np.testing.assert_array_equal(s.mu, 0.0)
        assert int(s.count) == 1
    u, s = tx.update(jnp.array([1.0, 1.0, 0.0]), s)  # n = clip(g / |g_0|, -1, 1)
    want = (0.1 * np.array([0.5, 1 / 3, 0.0])) * (1.9 if nesterov else 1.0)
    np.testing.assert_allclose(u, want, rtol=1e-6)


TRANSFORMS = {
    "scale_by_adopt": gc.scale_by_adopt,
    "scale_by_ademamix": gc.scale_by_ademamix,
    "scale_by_simplified_ademamix": gc.scale_by_simplified_ademamix,
    "scale_by_acprop": gc.scale_by_acprop,
    "scale_by_madgrad": lambda: gc.scale_by_madgrad(0.1),
    "scale_by_mars": gc.scale_by_mars,
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_zero_gradients_give_zero_updates(name):
    params = helpers.random_tree(0, SHAPES)
    zeros = jax.tree.map(jnp.zeros_like, params)
    u, p, s = helpers.run_steps(TRANSFORMS[name](), params, [zeros] * 3)
    for x in jax.tree.leaves(u):
        np.testing.assert_array_equal(x, 0.0)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(s))


def test_acprop_first_step_is_the_gradient():
    g = jnp.array([0.5, -4.0])
    tx = gc.scale_by_acprop(eps=0.25)
    u, s = tx.update(g, tx.init(g))
    np.testing.assert_allclose(u, g / 1.25, rtol=1e-7)
    np.testing.assert_allclose(s.nu, 0.001 * g**2 + 1e-16, rtol=1e-6)  # centred on m_0 = 0


def test_madgrad_keeps_the_initial_parameters_and_needs_params():
    p = {"w": jnp.array([1.0, -2.0])}
    tx = gc.scale_by_madgrad(0.1)
    s = tx.init(p)
    np.testing.assert_array_equal(s.x0["w"], p["w"])
    _, s2 = tx.update(p, s, p)
    np.testing.assert_array_equal(s2.x0["w"], p["w"])
    with pytest.raises(ValueError, match="scale_by_madgrad: this transformation needs the parameters"):
        tx.update(p, s)
    with pytest.raises(ValueError, match=r"scale_by_madgrad: the `updates` tree does not match `params`"):
        tx.update(p, s, {"v": p["w"]})


def test_mars_clips_the_corrected_gradient_to_unit_norm_and_keeps_the_gradient():
    tx = gc.scale_by_mars(b1=0.5, gamma=1.0)  # c_1 = (1 + 1) * g_1: norm 10 -> 1
    g = jnp.array([3.0, -4.0])
    u, s = tx.update(g, tx.init(g))
    np.testing.assert_allclose(s.mu, 0.5 * g / 5.0, rtol=1e-6)
    np.testing.assert_array_equal(s.last_grad, g)
    g2 = jnp.array([0.03, 0.0])  # c_2 = g_2 + (g_2 - g_1): norm 5.0...: clipped again
    _, s = tx.update(g2, s)
    c2 = 2 * np.array([0.03, 0.0]) - np.array([3.0, -4.0])
    np.testing.assert_allclose(
        s.mu, 0.25 * np.array([3.0, -4.0]) / 5.0 + 0.5 * c2 / np.linalg.norm(c2), rtol=1e-6
    )
    tx = gc.scale_by_mars(correct_first_step=False)
    _, s = tx.update(0.1 * g, tx.init(g))
    np.testing.assert_allclose(s.mu, 0.05 * 0.1 * g, rtol=1e-6)  # c_1 = g_1 (norm 0.5: not clipped)


def test_ademamix_schedulers_at_step_zero_and_at_the_end_of_warmup():
    a = gc.ademamix_alpha_scheduler(8.0, alpha_start=2.0, warmup=10)
    np.testing.assert_allclose(a(jnp.array([0, 5, 10, 11, 1000])), [2.0, 5.0, 8.0, 8.0, 8.0])
    b = gc.ademamix_beta3_scheduler(0.9999, beta_start=0.9, warmup=10)
    vals = np.asarray(b(jnp.array([0, 5, 10, 11, 1000])), np.float64)
    np.testing.assert_allclose(
        vals,
        [
            0.9,
            0.5 ** (2 / (np.log(0.5) / np.log(0.9) + np.log(0.5) / np.log(0.9999))),
            0.9999,
            0.9999,
            0.9999,
        ],
        rtol=1e-6,
    )
    assert float(b(jnp.asarray(10))) == np.float32(0.9999)
    for sched, end in ((gc.ademamix_alpha_scheduler(3.0), 3.0), (gc.ademamix_beta3_scheduler(0.99), 0.99)):
        np.testing.assert_allclose(sched(jnp.arange(3)), [end] * 3, rtol=1e-6)  # warmup = 0: constant
    b0 = gc.ademamix_beta3_scheduler(0.999, warmup=4)  # beta_start = 0: defined, increasing
    vals = np.asarray(b0(jnp.arange(6)))
    assert vals[0] == 0.0 and np.all(np.diff(vals[:5]) > 0) and vals[4] == vals[5] == np.float32(0.999)
    traced = jax.jit(lambda w: gc.ademamix_alpha_scheduler(8.0, warmup=w)(jnp.arange(3)))(jnp.asarray(2))
    np.testing.assert_allclose(traced, [0.0, 4.0, 8.0])
    assert jax.jit(gc.ademamix_beta3_scheduler(0.999, 0.9, 3))(jnp.asarray(1)).dtype == jnp.float32


def test_ademamix_schedulers_match_pytorch_optimizer_and_the_papers_formula():
    po = pytest.importorskip("pytorch_optimizer")
    with jax.enable_x64(True):
        a = gc.ademamix_alpha_scheduler(jnp.asarray(5.0, jnp.float64), warmup=7)
        b = gc.ademamix_beta3_scheduler(jnp.asarray(0.9999, jnp.float64), 0.9, 7)
        for t in range(10):
            np.testing.assert_allclose(a(jnp.asarray(t)), po.AdEMAMix.schedule_alpha(7, t, 5.0), rtol=1e-12)
            np.testing.assert_allclose(
                b(jnp.asarray(t)), po.AdEMAMix.schedule_beta3(7, t, 0.9, 0.9999), rtol=1e-12
            )
            x = min(t / 7, 1)  # the paper's exp(ln b1 ln b3 / ((1 - x) ln b3 + x ln b1))
            paper = np.exp(np.log(0.9) * np.log(0.9999) / ((1 - x) * np.log(0.9999) + x * np.log(0.9)))
            np.testing.assert_allclose(b(jnp.asarray(t)), paper, rtol=1e-12)


# ------------------------------------------------------------------------------ dtypes
def test_state_dtypes_for_half_precision_parameters():
    params = {"h": jnp.ones((2, 3), jnp.float16), "f": jnp.ones(4)}
    s = gc.scale_by_adopt(mu_dtype=jnp.bfloat16).init(params)
    assert s.nu["h"].dtype == jnp.float32 and s.mu["h"].dtype == s.mu["f"].dtype == jnp.bfloat16
    s = gc.scale_by_ademamix(mu_dtype=jnp.bfloat16).init(params)
    assert s.nu["h"].dtype == jnp.float32 and s.m1["h"].dtype == s.m2["f"].dtype == jnp.bfloat16
    assert gc.scale_by_simplified_ademamix().init(params).n["h"].dtype == jnp.float32
    assert gc.scale_by_acprop().init(params).nu["h"].dtype == jnp.float32
    s = gc.scale_by_madgrad(0.1).init(params)
    assert s.grad_sum_sq["h"].dtype == jnp.float32 and s.s["h"].dtype == s.x0["h"].dtype == jnp.float16
    s = gc.scale_by_mars().init(params)
    assert s.nu["h"].dtype == jnp.float32 and s.mu["h"].dtype == s.last_grad["h"].dtype == jnp.float16
    for name, make in TRANSFORMS.items():
        tx = make()
        u, s2 = tx.update(params, tx.init(params), params)
        assert u["h"].dtype == jnp.float16 and u["f"].dtype == jnp.float32, name
        assert jax.tree.structure(s2) == jax.tree.structure(tx.init(params)), name


# ------------------------------------------------------------------------------ errors
V, T = ValueError, TypeError
X2 = jnp.ones(2)
ERRORS = [
    (lambda: gc.scale_by_adopt(b1=1.0), V, r"scale_by_adopt: `b1` must be >= 0 and < 1, got 1.0"),
    (lambda: gc.scale_by_adopt(eps=-1.0), V, r"scale_by_adopt: `eps` must be >= 0, got -1.0"),
    (lambda: gc.scale_by_adopt(nesterov=1), T, r"scale_by_adopt: `nesterov` must be a bool, got 1"),
    (lambda: gc.scale_by_adopt(use_clipping=None), T, r"scale_by_adopt: `use_clipping` must be a bool"),
    (lambda: gc.scale_by_adopt(clip_value_fn=0.25), T, r"scale_by_adopt: `clip_value_fn` must be callable"),
    (lambda: gc.scale_by_adopt(mu_dtype=jnp.int32), T, r"scale_by_adopt: `mu_dtype` must be a floating"),
    (lambda: gc.adopt(-0.1), V, r"adopt: `learning_rate` must be >= 0, got -0.1"),
    (lambda: gc.adopt(0.1, b2=1.0), V, r"adopt: scale_by_adopt: `b2` must be >= 0 and < 1"),
    (lambda: gc.adopt(0.1, weight_decay=-1.0), V, r"adopt: `weight_decay` must be >= 0, got -1.0"),
    (lambda: gc.adopt(0.1, mask=NOT_BIAS), V, r"adopt: `mask` must be None without `weight_decay`"),
    (lambda: gc.adopt(0.1, decoupled_weight_decay=0), T, r"adopt: `decoupled_weight_decay` must be a bool"),
    (lambda: gc.scale_by_ademamix(b3=1.0), V, r"scale_by_ademamix: `b3` must be >= 0 and < 1, got 1.0"),
    (lambda: gc.scale_by_ademamix(alpha=-1.0), V, r"scale_by_ademamix: `alpha` must be >= 0, got -1.0"),
    (lambda: gc.scale_by_ademamix(eps_root=X2), V, r"scale_by_ademamix: `eps_root` must be a scalar"),
    (lambda: gc.scale_by_ademamix(mu_dtype="x"), T, r"scale_by_ademamix: `mu_dtype` must be a floating"),
    (lambda: gc.ademamix(0.1, b2=1.0), V, r"ademamix: scale_by_ademamix: `b2` must be >= 0 and < 1"),
    (lambda: gc.ademamix(0.1, weight_decay=-1.0), V, r"ademamix: add_decayed_weights: `weight_decay` must"),
    (lambda: gc.ademamix("1"), T, r"ademamix: `learning_rate` must be a number"),
    (lambda: gc.ademamix_alpha_scheduler(1.0, warmup=-1), V, r"alpha_scheduler: `warmup` must be >= 0"),
    (
        lambda: gc.ademamix_alpha_scheduler(1.0, warmup=1.5),
        V,
        r"alpha_scheduler: `warmup` must be an integer",
    ),
    (lambda: gc.ademamix_alpha_scheduler("a"), T, r"ademamix_alpha_scheduler: `alpha` must be a number"),
    (lambda: gc.ademamix_alpha_scheduler(1.0, np.nan), V, r"alpha_scheduler: `alpha_start` must be a number"),
    (lambda: gc.ademamix_beta3_scheduler(1.0), V, r"beta3_scheduler: `beta_end` must be >= 0 and < 1"),
    (
        lambda: gc.ademamix_beta3_scheduler(0.9, -0.1),
        V,
        r"beta3_scheduler: `beta_start` must be >= 0 and < 1",
    ),
    (lambda: gc.ademamix_beta3_scheduler(0.9, 0.5, "3"), T, r"beta3_scheduler: `warmup` must be a number"),
    (lambda: gc.scale_by_simplified_ademamix(b1=1.0), V, r"simplified_ademamix: `b1` must be >= 0 and < 1"),
    (lambda: gc.scale_by_simplified_ademamix(alpha=-2.0), V, r"simplified_ademamix: `alpha` must be >= 0"),
    (
        lambda: gc.simplified_ademamix(0.1, eps=-1.0),
        V,
        r"simplified_ademamix: scale_by_simplified_ademamix: `eps`",
    ),
    (lambda: gc.scale_by_acprop(eps_root=-1.0), V, r"scale_by_acprop: `eps_root` must be >= 0, got -1.0"),
    (lambda: gc.acprop(0.1, b1=2.0), V, r"acprop: scale_by_acprop: `b1` must be >= 0 and < 1"),
    (lambda: gc.scale_by_madgrad(-0.1), V, r"scale_by_madgrad: `learning_rate` must be >= 0, got -0.1"),
    (lambda: gc.scale_by_madgrad(0.1, momentum=1.0), V, r"scale_by_madgrad: `momentum` must be >= 0 and < 1"),
    (lambda: gc.scale_by_madgrad(0.1, eps=-1.0), V, r"scale_by_madgrad: `eps` must be >= 0, got -1.0"),
    (lambda: gc.madgrad(0.1, weight_decay=-1.0), V, r"madgrad: add_decayed_weights: `weight_decay` must be"),
    (lambda: gc.madgrad(0.1, momentum=1.5), V, r"madgrad: scale_by_madgrad: `momentum` must be >= 0"),
    (lambda: gc.scale_by_mars(gamma=-1.0), V, r"scale_by_mars: `gamma` must be >= 0, got -1.0"),
    (lambda: gc.scale_by_mars(b2=1.0), V, r"scale_by_mars: `b2` must be >= 0 and < 1, got 1.0"),
    (
        lambda: gc.scale_by_mars(correct_first_step=None),
        T,
        r"scale_by_mars: `correct_first_step` must be a bool",
    ),
    (lambda: gc.mars(0.1, gamma=-1.0), V, r"mars: scale_by_mars: `gamma` must be >= 0"),
    (lambda: gc.mars(0.1, b1_1d=1.0), V, r"mars: `b1_1d` must be >= 0 and < 1, got 1.0"),
    (lambda: gc.mars(0.1, b2_1d=-0.5), V, r"mars: `b2_1d` must be >= 0 and < 1, got -0.5"),
    (lambda: gc.mars(0.1, learning_rate_1d=-1.0), V, r"mars: `learning_rate_1d` must be >= 0, got -1.0"),
    (lambda: gc.mars(0.1, weight_decay_1d=-1.0), V, r"mars: `weight_decay_1d` must be >= 0, got -1.0"),
    (lambda: gc.mars(0.1, optimize_1d=1), T, r"mars: `optimize_1d` must be a bool, got 1"),
    (lambda: gc.mars(None), T, r"mars: `learning_rate` must be a number"),
]


@pytest.mark.parametrize("make,exc,match", ERRORS)
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


BAD_SCHEDULES = [
    (lambda: gc.scale_by_adopt(clip_value_fn=lambda c: jnp.ones(2)), "scale_by_adopt", "clip_value_fn"),
    (lambda: gc.scale_by_ademamix(b3=lambda c: jnp.full(2, 0.9)), "scale_by_ademamix", "b3"),
    (lambda: gc.scale_by_ademamix(alpha=lambda c: jnp.ones(2)), "scale_by_ademamix", "alpha"),
    (
        lambda: gc.scale_by_simplified_ademamix(alpha=lambda c: jnp.ones(2)),
        "scale_by_simplified_ademamix",
        "alpha",
    ),
    (lambda: gc.scale_by_madgrad(lambda c: jnp.ones(2)), "scale_by_madgrad", "learning_rate"),
]


@pytest.mark.parametrize("make,fn,name", BAD_SCHEDULES, ids=[f"{f}.{n}" for _, f, n in BAD_SCHEDULES])
def test_a_schedule_must_return_a_scalar(make, fn, name):
    tx, g = make(), jnp.ones(2)
    with pytest.raises(ValueError, match=rf"{fn}: the schedule `{name}` must return a scalar"):
        tx.update(g, tx.init(g), g)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_tree_mismatch_is_reported(name):
    tx = TRANSFORMS[name]()
    p = {"a": jnp.zeros(2)}
    state = tx.init(p)
    with pytest.raises(ValueError, match=rf"{name}: the `updates` tree does not match the state"):
        tx.update({"b": jnp.zeros(2)}, state, p)
    with pytest.raises(ValueError, match=rf"{name}: the update at leaf \['a'\] has shape \(3,\)"):
        tx.update({"a": jnp.zeros(3)}, state, p)
