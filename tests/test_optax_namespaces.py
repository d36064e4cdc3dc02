"""Optax 0.2.8's remaining namespaces under gradchain: `second_order`, `assignment`,
`perturbations`, `microbatching`, `experimental.aggregating`. Each name against Optax's
(names, signatures, numbers, eager and jitted), float64 transcriptions, and bad input."""

from __future__ import annotations

import functools
import inspect
import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.experimental
import pytest

import gradchain
from gradchain.experimental import aggregating as agg

# Test-side jits compile without LLVM's expensive passes (half the compile time); ours and
# Optax's are compiled alike, so the comparisons are unaffected.
JIT = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

try:
    from scipy.optimize import linear_sum_assignment
except ImportError:  # pragma: no cover
    linear_sum_assignment = None


def _std(f, *args, **kw):
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return f(*args, **kw)


def _close(actual, expected, rtol=1e-6, atol=0.0):
    a, b = jax.tree.leaves(actual), jax.tree.leaves(expected)
    assert len(a) == len(b), (actual, expected)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol)


def _public(mod):
    return {n for n in dir(mod) if not n.startswith("_") and not inspect.ismodule(getattr(mod, n))}


AGG_NAMES = {
    "AccumulateAvgUpdatesState", "AggregatedUpdates", "Aggregator", "AggregatorUpdateFn", "MaybeAxis",
    "PerElementMeanAndSumSqDiffGradsState", "PerElementMeanAndVarianceEMAState", "PerElementUpdates",
    "accumulate_avg_updates", "add_mean_variance_to_opt", "average_incrementally_updates",
    "average_per_element_updates", "get_batch_size_from_per_elt_updates",
    "get_per_element_mean_and_sum_sq_diff_grads", "get_unbiased_mean_and_variance_ema", "process",
    "track_per_element_mean_and_variance_with_ema",
}  # fmt: skip


@pytest.mark.parametrize(
    "ns", ["second_order", "assignment", "perturbations", "microbatching", "aggregating"]
)
def test_names_and_signatures_match_optax(ns):
    theirs = optax.experimental.aggregating if ns == "aggregating" else getattr(optax, ns)
    ours = agg if ns == "aggregating" else getattr(gradchain, ns)
    names = AGG_NAMES if ns == "aggregating" else _public(theirs)
    assert names <= _public(ours) and names <= _public(theirs)
    for n in names:
        t, o = getattr(theirs, n), getattr(ours, n)
        if inspect.isfunction(t):
            ps, qs = inspect.signature(o).parameters, inspect.signature(t).parameters
            assert list(ps) == list(qs), n
            for p, q in zip(ps.values(), qs.values()):
                assert p.kind == q.kind, (n, p.name)
                if isinstance(q.default, (int, float, str, bool, type(None))):
                    assert p.default == q.default, (n, p.name)
        elif inspect.isclass(t) and hasattr(t, "_fields"):
            assert o._fields == t._fields, n
    assert gradchain.microbatching.microbatch is gradchain.microbatch
    assert [(m.name, m.value) for m in gradchain.microbatching.AccumulationType] == [
        (m.name, m.value) for m in optax.microbatching.AccumulationType
    ]


# ---------------------------------------------------------------------- second_order

W = {"w": jnp.asarray(np.random.default_rng(0).standard_normal((3, 2)), jnp.float32), "b": jnp.zeros(2) + 0.1}
XS = jnp.asarray(np.random.default_rng(1).standard_normal((4, 3)), jnp.float32)
YS = jnp.asarray(np.random.default_rng(2).standard_normal((4, 2)), jnp.float32)


def _mse(p, x, y):
    return jnp.sum((x @ p["w"] + p["b"][None] - y) ** 2)


def _nll(p, x, y):
    return jnp.sum(jax.nn.log_softmax(x @ p["w"] + p["b"][None]) * -jax.nn.softmax(y))


def test_second_order_matches_optax_with_the_deprecation_warning():
    v = jnp.arange(8.0)
    calls = lambda m: {
        "hvp": m.hvp(_nll, v, W, XS, YS),
        "hessian_diag": m.hessian_diag(_nll, W, XS, YS),
        "fisher_diag": m.fisher_diag(_nll, W, XS, YS),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        ours = JIT(lambda: calls(gradchain.second_order))()  # (warns while tracing, as Optax)
    messages = {str(w.message) for w in caught if w.category is DeprecationWarning}
    for name in ("hvp", "hessian_diag", "fisher_diag"):
        assert (
            f"The function {name} is deprecated. This function will be/was removed in optax 0.2.9."
            in messages
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = _std(JIT(lambda: calls(optax.second_order)))
        eager_theirs = _std(optax.second_order.fisher_diag, _nll, W, XS, YS)
    _close(ours, theirs, rtol=1e-6, atol=1e-7)
    with pytest.warns(DeprecationWarning, match="The function fisher_diag is deprecated"):
        _close(gradchain.second_order.fisher_diag(_nll, W, XS, YS), eager_theirs, rtol=1e-6)  # eager


def test_second_order_float64_transcription_and_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        diag, fisher = JIT(
            lambda: (
                gradchain.second_order.hessian_diag(_mse, W, XS, YS),
                gradchain.second_order.fisher_diag(_mse, W, XS, YS),
            )
        )()
        with pytest.raises(TypeError, match="hessian_diag: `loss` must be callable"):
            gradchain.second_order.hessian_diag(3, W, XS, YS)
        with pytest.raises(TypeError, match="fisher_diag: `negative_log_likelihood` must be callable"):
            gradchain.second_order.fisher_diag(None, W, XS, YS)
        with pytest.raises(ValueError, match=r"hvp: `v` must be a vector .* shape \(8,\), got shape \(3,\)"):
            gradchain.second_order.hvp(_mse, jnp.ones(3), W, XS, YS)
    x, y = np.asarray(XS, np.float64), np.asarray(YS, np.float64)
    w, b = np.asarray(W["w"], np.float64), np.asarray(W["b"], np.float64)
    # loss = sum (x w + b - y)^2: d2/dw_ij^2 = 2 sum_n x_ni^2, d2/db_j^2 = 2 n; ravel order is b, then w
    expected = np.concatenate([np.full(2, 2.0 * len(x)), np.repeat(2 * np.sum(x**2, 0), 2)])
    np.testing.assert_allclose(np.asarray(diag, np.float64), expected, rtol=1e-6)
    r = x @ w + b - y
    g = np.concatenate([2 * r.sum(0), (2 * x.T @ r).ravel()])  # (d loss / d params)^2
    np.testing.assert_allclose(np.asarray(fisher, np.float64), g**2, rtol=2e-5)


# ------------------------------------------------------------------------ assignment

ALGOS = ["hungarian_algorithm", "base_hungarian_algorithm"]


def _costs(shape, seed, integers=False):
    rng = np.random.default_rng(seed)
    if integers:  # integer values in float32: many ties, so the tie-breaking must be Optax's too
        return jnp.asarray(rng.integers(0, 4, shape), jnp.float32)
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def _optimal_cost(c):
    c = np.asarray(c, np.float64)
    if linear_sum_assignment is not None:
        i, j = linear_sum_assignment(c)
        return c[i, j].sum()
    n, m = c.shape  # brute force (small matrices)
    if n <= m:
        return min(c[np.arange(n), list(p)].sum() for p in itertools.permutations(range(m), n))
    return min(c[list(p), np.arange(m)].sum() for p in itertools.permutations(range(n), m))


def _check_assignment(c, ij, ref):
    i, j = ij
    for a, b in zip(ij, ref):
        assert a.dtype == b.dtype and a.shape == b.shape, (a, b)
        np.testing.assert_array_equal(a, b)
    assert len(set(np.asarray(i))) == len(set(np.asarray(j))) == min(c.shape)
    np.testing.assert_allclose(float(np.asarray(c, np.float64)[i, j].sum()), _optimal_cost(c), rtol=1e-5)


@pytest.mark.parametrize("algo", ALGOS)
def test_assignment_matches_optax_and_is_optimal(algo):
    ours, theirs = getattr(gradchain.assignment, algo), JIT(getattr(optax.assignment, algo))
    # square (two of four with ties): eager; tall (n > m: transposed, top_k): jitted
    for kind, shape in {"square": (5, 5), "tall": (6, 3)}.items():
        fn = JIT(ours) if kind == "tall" else ours
        for seed in range(4 if kind == "square" else 2):
            c = _costs(shape, seed, integers=seed % 2 == 1)
            _check_assignment(c, fn(c), _std(theirs, c))
    e = ours(jnp.zeros((0, 3)))
    assert e[0].shape == e[1].shape == (0,)


@pytest.mark.parametrize("algo", ALGOS)
def test_assignment_bad_input(algo):
    fn = getattr(gradchain.assignment, algo)
    with pytest.raises(ValueError, match=f"{algo}: `cost_matrix` must be a 2-D array, got shape \\(3,\\)"):
        fn(jnp.ones(3))
    with pytest.raises(TypeError, match=f"{algo}: `cost_matrix` must hold real numbers, got dtype complex64"):
        fn(jnp.ones((2, 2), jnp.complex64))
    with pytest.raises(ValueError, match=f"{algo}: `cost_matrix` must not hold NaN or -inf"):
        fn(jnp.array([[1.0, jnp.nan], [0.0, 1.0]]))
    c = np.full((5, 5), np.inf, np.float32)  # +inf forbids a pair
    c[np.arange(5), (np.arange(5) + 1) % 5] = 1.0
    i, j = fn(jnp.asarray(c))
    assert c[np.asarray(i), np.asarray(j)].sum() == 5.0


# --------------------------------------------------------------------- perturbations

PX = {"a": jnp.array([0.3, -0.2, 0.5]), "b": jnp.array([1.0, -1.0])}


def _argmax_onehot(x):  # not differentiable: the point of perturbations
    return {"a": jax.nn.one_hot(jnp.argmax(x["a"]), 3), "s": jnp.sum(jnp.maximum(x["b"], 0.0))}


def test_perturbations_match_optax_and_float64():
    key, n, sigma = jax.random.key(4), 16, 0.5

    def run(m):
        gumbel = m.make_perturbed_fun(_argmax_onehot, n, sigma)  # Gumbel noise, baseline (the defaults)
        normal = m.make_perturbed_fun(_argmax_onehot, n, sigma, m.Normal(), False)

        def scalar(x):
            out = gumbel(key, x)
            return jnp.sum(out["a"] * jnp.arange(3.0)) + out["s"]

        return gumbel(key, PX), jax.grad(scalar)(PX), normal(key, PX)

    normal_sample = gradchain.perturbations.Normal().sample
    draws = lambda keys: jax.vmap(lambda k: gradchain.tree.random_like(k, PX, normal_sample))(keys)
    theirs = _std(JIT(lambda: run(optax.perturbations)))
    ours, z = JIT(lambda: (run(gradchain.perturbations), draws(jax.random.split(key, n))))()
    _close(ours, theirs, rtol=1e-6, atol=1e-7)
    for name in ("Gumbel", "Normal"):
        d, od = getattr(gradchain.perturbations, name)(), getattr(optax.perturbations, name)()
        np.testing.assert_array_equal(d.sample(key, (3,)), od.sample(key, (3,)))
        np.testing.assert_array_equal(d.log_prob(PX["a"]), _std(od.log_prob, PX["a"]))
    # float64: the same draws (one key per sample, split per leaf); value = (1/n) sum_k f(x + sigma z_k)
    ys = [
        {k: np.asarray(PX[k], np.float64) + sigma * np.asarray(z[k][i], np.float64) for k in PX}
        for i in range(n)
    ]
    onehot = lambda a: np.eye(3)[np.argmax(a)]
    expected = {
        "a": np.mean([onehot(y["a"]) for y in ys], 0),
        "s": np.mean([np.maximum(y["b"], 0).sum() for y in ys]),
    }
    _close(ours[2], expected, rtol=2e-6, atol=1e-6)


def test_perturbations_bad_input():
    f, mpf = jnp.sin, gradchain.perturbations.make_perturbed_fun
    for call, err, match in [
        (lambda: mpf(3), TypeError, "make_perturbed_fun: `fun` must be callable"),
        (lambda: mpf(f, 0), ValueError, "make_perturbed_fun: `num_samples` must be >= 1"),
        (lambda: mpf(f, 10, -0.1), ValueError, "make_perturbed_fun: `sigma`"),
        (lambda: mpf(f, 10, 0.1, object()), TypeError, "make_perturbed_fun: `noise` must have `sample`"),
        (lambda: mpf(f, 10, 0.1, use_baseline="yes"), TypeError, "make_perturbed_fun: `use_baseline`"),
    ]:
        with pytest.raises(err, match=match):
            call()


# --------------------------------------------------------------------- microbatching

BX = jnp.asarray(np.random.default_rng(6).standard_normal((8, 3)), jnp.float32)
BY = jnp.asarray(np.random.default_rng(7).standard_normal(8), jnp.float32) + 2.0


def _per_example(a, x, y):
    return {"p": x * y[..., None] + a, "m": jnp.mean(x, -1), "s": jnp.sum(x)}


@pytest.mark.parametrize("size", [None, 2])
def test_micro_vmap_matches_optax(size):
    def run(m, x, y, n_real=None):
        T = m.AccumulationType
        out = {
            "concat": m.micro_vmap(_per_example, (None, 0, 0), microbatch_size=size)(0.5, x, y),
            "reduce": m.micro_vmap(
                _per_example,
                (None, 0, 0),
                microbatch_size=size,
                accumulator={"p": T.SUM, "m": T.MEAN, "s": T.CONCAT},
            )(0.5, x, y),
            "kwargs": m.micro_vmap(lambda x, *, k: x * k, microbatch_size=size, accumulator=T.MEAN)(
                x, k=y[:, None]
            ),
        }
        if size == 2:
            out["running"] = m.micro_vmap(
                lambda x: x**2, microbatch_size=size, accumulator=T.RUNNING_MEAN, num_real_microbatches=n_real
            )(x)
        return out

    theirs = _std(JIT(lambda x, y, n: run(optax.microbatching, x, y, n)), BX, BY, 3)
    ours = JIT(lambda x, y, n: run(gradchain.microbatching, x, y, n))(BX, BY, 3)
    _close(ours, theirs, rtol=1e-6)
    if size is None:  # eager
        _close(run(gradchain.microbatching, BX, BY), theirs, rtol=1e-6)
    _close(ours["concat"], jax.vmap(_per_example, (None, 0, 0))(0.5, BX, BY), rtol=1e-6)


@pytest.mark.parametrize("keep_batch_dim,size", [(True, 2), (False, None)])
def test_micro_grad_matches_optax_and_float64(keep_batch_dim, size):
    def loss(params, x, y):
        pred = x @ params["w"] + params["b"]
        return 0.5 * jnp.mean((pred - y) ** 2), {"pred": pred}

    params = {"w": jnp.array([0.1, -0.2, 0.3]), "b": jnp.array(0.05)}

    def run(m, x, y):
        f = m.micro_grad(
            loss, True, 0, batch_argnums=(1, 2), keep_batch_dim=keep_batch_dim, microbatch_size=size,
            accumulator=m.AccumulationType.MEAN, transform_fn=lambda g: (g, jax.tree.map(jnp.square, g)),
            metrics_fn=lambda g: jnp.abs(g["b"]),
        )  # fmt: skip
        return f(params, x, y)

    theirs = _std(JIT(lambda x, y: run(optax.microbatching, x, y)), BX, BY)
    jitted = JIT(lambda x, y: run(gradchain.microbatching, x, y))(BX, BY)
    (g, g2), aux = run(gradchain.microbatching, BX, BY) if keep_batch_dim else jitted  # eager once
    assert type(aux).__name__ == "Aux" and aux._fields == ("values", "metrics", "aux")
    _close(((g, g2), tuple(aux)), (theirs[0], tuple(theirs[1])), rtol=1e-6)
    _close(jitted, theirs, rtol=1e-6)
    x, y = np.asarray(BX, np.float64), np.asarray(BY, np.float64)
    r = x @ np.asarray(params["w"], np.float64) + 0.05 - y  # per-example residuals
    gw, gb = r[:, None] * x, r  # per-example gradients of 0.5 r^2
    np.testing.assert_allclose(g["w"], gw.mean(0), rtol=1e-5)
    np.testing.assert_allclose(g2["w"], (gw**2).mean(0), rtol=1e-5)
    np.testing.assert_allclose(g["b"], gb.mean(), rtol=1e-5)
    np.testing.assert_allclose(aux.values, 0.5 * r**2, rtol=1e-5)
    np.testing.assert_allclose(aux.metrics, np.abs(gb), rtol=1e-5)


def test_reshape_batch_axis_and_custom_accumulators_match_optax():
    x = jnp.arange(24.0).reshape(2, 12)
    for axis, size in ((1, 3), (0, 1), (1, 12)):
        ours = gradchain.microbatching.reshape_batch_axis({"x": x}, size, axis)
        np.testing.assert_array_equal(
            ours["x"], optax.microbatching.reshape_batch_axis({"x": x}, size, axis)["x"]
        )
    largest = [
        m.Accumulator(lambda s: jnp.full(s.shape, -jnp.inf, s.dtype), lambda c, v, i: jnp.maximum(c, v),
                      lambda c: c, lambda v: jnp.max(v, 0))
        for m in (gradchain.microbatching, optax.microbatching)
    ]  # fmt: skip
    ours = gradchain.microbatching.micro_vmap(lambda v: v * 2, microbatch_size=2, accumulator=largest[0])(BY)
    theirs = _std(
        optax.microbatching.micro_vmap(lambda v: v * 2, microbatch_size=2, accumulator=largest[1]), BY
    )
    np.testing.assert_array_equal(ours, theirs)
    # Optax's own enum members are understood too (code mixing both imports)
    got = gradchain.microbatching.micro_vmap(
        jnp.sin, microbatch_size=4, accumulator=optax.microbatching.AccumulationType.SUM
    )(BY)
    np.testing.assert_allclose(got, jnp.sum(jnp.sin(BY)), rtol=1e-6)


def test_microbatching_bad_input():
    mb = gradchain.microbatching
    for call, err, match in [
        (lambda: mb.reshape_batch_axis(jnp.ones(6), 4), ValueError, r"reshape_batch_axis: every leaf .* shape \(6,\)"),
        (lambda: mb.reshape_batch_axis(jnp.ones(6), 0), ValueError, "reshape_batch_axis: `microbatch_size` must be >= 1"),
        (lambda: mb.micro_vmap(jnp.sin, out_axes=1), NotImplementedError, "micro_vmap: `out_axes` must be 0"),
        (lambda: mb.micro_vmap(3), TypeError, "micro_vmap: `fun` must be callable"),
        (lambda: mb.micro_vmap(jnp.sin, in_axes="0"), TypeError, "micro_vmap: `in_axes`"),
        (lambda: mb.micro_vmap(jnp.sin, accumulator=(mb.AccumulationType.SUM,))(BY), ValueError,
         "micro_vmap: `accumulator` must be a pytree prefix"),
        (lambda: mb.micro_vmap(jnp.sin, accumulator="max")(BY), ValueError, "micro_vmap: `accumulator` must hold"),
        (lambda: mb.micro_grad(_mse, batch_argnums=()), ValueError, "micro_grad: `batch_argnums` must name"),
        (lambda: mb.micro_grad(_mse, has_aux=1), TypeError, "micro_grad: `has_aux` must be a bool"),
        (lambda: mb.micro_grad(_mse, metrics_fn=3), TypeError, "micro_grad: `metrics_fn` must be callable"),
    ]:  # fmt: skip
        with pytest.raises(err, match=match):
            call()


# ----------------------------------------------------------------- experimental.aggregating


def _data(steps, batch=4, dim=3, out=2):
    rng = np.random.default_rng(8)
    xs = jnp.asarray(rng.standard_normal((steps, batch, dim)), jnp.float32)
    ys = jnp.asarray(rng.standard_normal((steps, batch, out)), jnp.float32)
    return xs, ys, jnp.asarray(rng.standard_normal((dim, out)), jnp.float32)


def _loss(w, x, y):
    return jnp.sum((x @ w - y) ** 2)


def _run(opt, steps, jit, apply):
    xs, ys, w = _data(steps)
    per_example = jax.vmap(jax.grad(_loss), (None, 0, 0))
    state, outs = opt.init(w), []
    step = lambda w, s, x, y: opt.update(per_example(w, x, y), s)
    step = JIT(step) if jit else step
    for x, y in zip(xs, ys):
        u, state = step(w, state, x, y)
        w = apply(w, u)
        tracker = gradchain.tree_utils.tree_get(state, "PerElementMeanAndVarianceEMAState")
        if tracker is not None and int(tracker.count) > 0:  # (before: 0/0, NaN in Optax, an error here)
            outs.append(agg.get_unbiased_mean_and_variance_ema(state))
        outs.append(u)
    return outs, jax.tree.leaves(state)


def _optimizers(lib, m):
    clip = jax.vmap(lambda g: g * jnp.minimum(1.0, 1.0 / jnp.linalg.norm(g)))
    return {
        "process_clip_average_sgd": m.process(
            lib.stateless(lambda g, p: clip(g)), m.average_per_element_updates(), lib.sgd(0.1, momentum=0.5)
        ),
        "average_incrementally_3": m.process(
            lib.identity(), m.average_incrementally_updates(0, 3), lib.sgd(0.1)
        ),
        "mean_variance_2": m.add_mean_variance_to_opt(lib.sgd(0.05), 0.8, 0, 2),
        "mean_variance_adam": m.add_mean_variance_to_opt(lib.adam(0.05), 0.9),
    }


@pytest.mark.parametrize("name", sorted(_optimizers(gradchain, agg)))
def test_aggregating_matches_optax(name):
    ours = _optimizers(gradchain, agg)[name]
    theirs = _std(_optimizers, optax, optax.experimental.aggregating)[name]
    want = _std(_run, theirs, 4, True, optax.apply_updates)
    rtol = 2e-6 if "adam" in name else 1e-6
    _close(
        _run(ours, 4, True, gradchain.apply_updates), want, rtol=rtol, atol=1e-7
    )  # (eager: the float64 test)


def test_aggregating_float64_statistics_and_errors():
    xs, ys, w = _data(2)
    g = jax.vmap(jax.grad(_loss), (None, 0, 0))(w, xs.reshape(8, 3), ys.reshape(8, 2))  # 2 micro-batches of 4
    stats = agg.get_per_element_mean_and_sum_sq_diff_grads(0, 2)
    s = stats.init(w)
    out0, s = stats.update(g[:4], s)
    (mean, aux), s = stats.update(g[4:], s)
    g64 = np.asarray(g, np.float64)
    np.testing.assert_allclose(mean, g64.mean(0), rtol=1e-5, atol=1e-6)  # merged mean
    np.testing.assert_allclose(aux["sum_sq_diff_grads"], ((g64 - g64.mean(0)) ** 2).sum(0), rtol=1e-5)
    assert int(aux["sample_size"]) == 8 and bool(s.ready) and not jax.tree.leaves(out0)[0].any()
    track = agg.track_per_element_mean_and_variance_with_ema(0.5)
    t = track.init(w)
    for _ in range(2):
        _, t = track.update(
            mean, t, sum_sq_diff_grads=aux["sum_sq_diff_grads"], sample_size=aux["sample_size"]
        )
    m_ema, v_ema = agg.get_unbiased_mean_and_variance_ema((t,))
    var = ((g64 - g64.mean(0)) ** 2).sum(0) / 7  # ema of a constant, debiased: the constant
    np.testing.assert_allclose(m_ema, g64.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v_ema, var, rtol=1e-5)
    for call, err, match in [
        (lambda: agg.accumulate_avg_updates(0), ValueError, "accumulate_avg_updates: `accumulation_steps` must be >= 1"),
        (lambda: agg.average_per_element_updates("x"), TypeError, "average_per_element_updates: `per_elt_axis`"),
        (lambda: agg.get_batch_size_from_per_elt_updates({"a": jnp.ones((2, 1)), "b": jnp.ones((3, 1))}, 0),
         ValueError, r"get_batch_size_from_per_elt_updates: .* sizes \[2, 3\]"),
        (lambda: agg.get_unbiased_mean_and_variance_ema((gradchain.EmptyState(),)), ValueError,
         "get_unbiased_mean_and_variance_ema: `state` must hold"),
        (lambda: agg.get_unbiased_mean_and_variance_ema(track.init(w)), ValueError, "tracked no update yet"),
        (lambda: track.update(w, t), ValueError, "track_per_element_mean_and_variance_with_ema: `update` needs"),
        (lambda: track.update(w, t, sum_sq_diff_grads=w, sample_size=1), ValueError, "`sample_size` must be >= 2"),
        (lambda: agg.track_per_element_mean_and_variance_with_ema(1.5), ValueError, "`ema_decay`"),
        (lambda: agg.process(gradchain.identity(), 3, gradchain.sgd(0.1)), TypeError, "process: `aggregator`"),
    ]:  # fmt: skip
        with pytest.raises(err, match=match):
            call()
    assert isinstance(agg.average_incrementally_updates(0, 2), agg.Aggregator)
    assert not isinstance(agg.average_incrementally_updates(None, 2), agg.Aggregator)
