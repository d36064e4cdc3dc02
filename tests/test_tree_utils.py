"""`gradchain.tree_utils` and `gradchain.tree` against Optax 0.2.8's `optax.tree_utils` / `optax.tree`:
the same names and signatures, the same numbers and dtypes (bit for bit, eager and jitted),
Optax's state-search semantics, float64 transcriptions of the norms and moments, and errors."""

from __future__ import annotations

import functools
import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from gradchain import tree_utils as tu

# Test-side jits compile without LLVM's expensive passes (half the compile time); ours and
# Optax's are compiled alike, so the comparisons are unaffected.
JIT = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

STD = lambda: (jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"))


def _optax(f, *args):
    a, b = STD()
    with a, b:
        return f(*args)


def _rng_tree(seed, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    r = lambda *s: jnp.asarray(rng.standard_normal(s), dtype)
    return {"w": r(2, 3), "n": [r(3)]}


X, Y = _rng_tree(0), _rng_tree(1)
YP = jax.tree.map(lambda y: jnp.abs(y) + 0.5, Y)  # positive: moments, divisors
XB = _rng_tree(2, jnp.bfloat16)
C = {"c": jnp.asarray([1 + 2j, -3 + 0.5j], jnp.complex64), "r": jnp.asarray([2.0, -1.0])}
I = {"a": jnp.array([1, 2]), "b": jnp.array([[3], [-4]])}
EMPTY = [jnp.ones((2, 3)), jnp.zeros((4, 0, 5))]
KEY = jax.random.key(3)
R = {"a": jnp.zeros(3), "b": [jnp.zeros(3)]}

# name -> (function of the tree_utils module, its array arguments); Python scalars stay inside.
# Related calls are grouped into one case (one jit each) to keep the file fast.
CASES = {
    "arithmetic": (
        lambda m, x, y, yp, s: (
            m.tree_add(x, y),
            m.tree_add(x, y, x),
            m.tree_sub(x, y),
            m.tree_mul(x, y),
            m.tree_div(x, yp),
            m.tree_scale(2.5, x),
            m.tree_scale(s, x),
            m.tree_add_scale(x, 0.7, y),
            m.tree_add_scale(None, 1.0, y),
        ),
        (X, Y, YP, jnp.float32(0.3)),
    ),
    "mixed_dtypes": (
        lambda m, x, xb, s: (
            m.tree_add(x, xb),
            m.tree_mul(xb, x),
            m.tree_scale(s, xb),
            m.tree_where(True, xb, x),
        ),
        (X, XB, jnp.float32(0.3)),
    ),
    "vdot": (
        lambda m, x, y, i, c: (m.tree_vdot(x, y), m.tree_vdot(i, i), m.tree_vdot(c, m.tree_scale(2.0, c))),
        (X, Y, I, C),
    ),
    "reductions": (
        lambda m, x, i, e: (
            m.tree_sum(x),
            m.tree_sum(x, associative_reduction=True),
            m.tree_max(x),
            m.tree_min(x),
            m.tree_max(i),
            m.tree_sum(i),
            m.tree_min(e),
            m.tree_max(e),
        ),
        (X, I, EMPTY),
    ),
    "complex": (lambda m, c: (m.tree_conj(c), m.tree_real(c)), (C,)),
    "like": (
        lambda m, x, i: (
            m.tree_batch_shape(x, (2, 1)),
            m.tree_zeros_like(x),
            m.tree_zeros_like(x, jnp.int32),
            m.tree_ones_like(x, jnp.bfloat16),
            m.tree_full_like(i, 3.0),
            m.tree_full_like(x, 2, jnp.int32),
        ),
        (X, I),
    ),
    "clip_where_allclose": (
        lambda m, x, y, c: (
            m.tree_clip(x, -0.5, 0.5),
            m.tree_clip(x, None, 0.1),
            m.tree_clip(x, -0.1),
            m.tree_where(c, x, y),
            m.tree_allclose(x, y),
            m.tree_allclose(x, m.tree_add_scale(x, 1e-7, y)),
        ),
        (X, Y, jnp.array(False)),
    ),
    "cast": (
        lambda m, x, xb: (m.tree_cast(x, jnp.bfloat16), m.tree_cast(x, None), m.tree_cast_like(x, xb)),
        (X, XB),
    ),
    "moments": (
        lambda m, x, y, yp, c: (
            m.tree_update_moment(x, yp, 0.9, 2),
            m.tree_update_moment(x, y, 0.8, 1),
            m.tree_update_infinity_moment(x, yp, 0.9, 1e-3),
            m.tree_update_moment_per_elem_norm(x, yp, 0.9, 2),
            m.tree_update_moment_per_elem_norm(c, {"c": jnp.ones(2)}, 0.5, 2),
        ),
        (X, Y, YP, {"c": C["c"]}),
    ),
    "bias_correction": (lambda m, x, t: m.tree_bias_correction(x, 0.9, t), (X, jnp.int32(3))),
    "random": (
        lambda m, k, r: (
            m.tree_random_like(k, r),
            m.tree_random_like(k, r, jax.random.uniform, jnp.bfloat16),
            m.tree_unwrap_random_key_data(m.tree_split_key_like(k, r)),
        ),
        (KEY, R),
    ),
}
for _ord in (None, 1, 2, "inf", "infinity", jnp.inf):
    CASES[f"norm_{_ord}"] = (
        lambda m, x, c, o=_ord: (
            m.tree_norm(x, o),
            m.tree_norm(x, o, True),
            m.tree_norm(c, ord=o, squared=True),
        ),
        (X, C),
    )


def _assert_same(actual, expected, ulp=False):
    """Same structure, same dtypes, same values (NaN where NaN; within an ulp with ``ulp``)."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected), (actual, expected)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected)):
        if isinstance(a, str) or isinstance(b, str):
            assert a == b, jax.tree_util.keystr(path)
            continue
        a, b = jnp.asarray(a), jnp.asarray(b)
        assert a.dtype == b.dtype, (jax.tree_util.keystr(path), a.dtype, b.dtype)
        if ulp:
            np.testing.assert_array_max_ulp(np.asarray(a), np.asarray(b), maxulp=1)
        else:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax_exactly_eager(name):
    f, args = CASES[name]
    # Optax's tree_bias_correction is itself jitted, gradchain's eager: one rounding apart
    _assert_same(f(tu, *args), _optax(f, optax.tree_utils, *args), ulp=name == "bias_correction")


def test_matches_optax_exactly_jitted():
    # every case in one program per library (XLA may fuse a * b + c into one rounding: both alike)
    run = lambda m: JIT(lambda: {n: f(m, *args) for n, (f, args) in CASES.items()})
    ours, theirs = run(tu)(), _optax(run(optax.tree_utils))
    for name in CASES:
        _assert_same(ours[name], theirs[name])


@pytest.mark.parametrize("fn", ["tree_sum", "tree_vdot", "tree_max", "tree_min", "tree_size", "tree_norm"])
def test_empty_trees_reduce_like_optax(fn):
    for tree in ({}, (), [], None, {"key": [None, [None]]}, [jnp.zeros(0)]):
        args = (tree, tree) if fn == "tree_vdot" else (tree,)
        got, want = getattr(tu, fn)(*args), _optax(getattr(optax.tree_utils, fn), *args)
        assert np.asarray(got) == np.asarray(want) and type(got) is type(want)


def test_tree_size_and_dtype_match_optax():
    assert tu.tree_size(X) == optax.tree_utils.tree_size(X) == 9
    mixed = {"a": jnp.ones(1, jnp.float16), "b": jnp.ones(1, jnp.float32), "c": jnp.ones(1, jnp.bfloat16)}
    for tree, handler in [(X, None), (mixed, "promote"), ({"a": mixed["a"], "b": mixed["b"]}, "lowest"),
                          ({"a": mixed["a"], "b": mixed["b"]}, "highest"), ({}, None)]:  # fmt: skip
        assert tu.tree_dtype(tree, handler) == _optax(optax.tree_utils.tree_dtype, tree, handler)
    ints = {"a": jnp.ones(1, jnp.int32), "b": jnp.ones(1, jnp.uint32)}
    halves = {"a": jnp.ones(1, jnp.float16), "b": jnp.ones(1, jnp.bfloat16)}
    for handler in ("promote", "highest", "lowest"):
        assert tu.tree_dtype(ints, handler) == _optax(optax.tree_utils.tree_dtype, ints, handler)
    assert tu.tree_dtype(halves, "promote") == jnp.float32
    for handler in ("highest", "lowest"):
        with pytest.raises(
            ValueError, match="tree_dtype: the leaf dtypes float16 and bfloat16 cannot be ordered"
        ):
            tu.tree_dtype(halves, handler)
    with pytest.raises(ValueError, match=r"tree_dtype: the leaves have several dtypes .*\['c'\]"):
        tu.tree_dtype(mixed)


def test_float64_transcriptions_of_norms_vdot_and_moments():
    x64 = [np.asarray(v, np.float64) for v in jax.tree.leaves(X)]
    y64 = [np.asarray(v, np.float64) for v in jax.tree.leaves(YP)]
    flat = np.concatenate([v.ravel() for v in x64])
    close = lambda a, b: np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=2e-6)
    close(tu.tree_norm(X), np.sqrt(np.sum(flat**2)))  # sqrt(sum |x|^2)
    close(tu.tree_norm(X, squared=True), np.sum(flat**2))
    close(tu.tree_norm(X, 1), np.sum(np.abs(flat)))  # sum |x|
    close(tu.tree_norm(X, "inf"), np.max(np.abs(flat)))  # max |x|
    close(tu.tree_norm(X, jnp.inf, True), np.max(np.abs(flat)) ** 2)
    c = np.asarray(C["c"], np.complex128)
    close(tu.tree_norm(C), np.sqrt(np.sum(np.abs(c) ** 2) + 5.0))
    close(tu.tree_vdot(X, YP), sum(np.sum(a * b) for a, b in zip(x64, y64)))  # sum x . y
    close(tu.tree_vdot(C, C).real, np.sum(np.abs(c) ** 2) + 5.0)  # conj(x) . x
    for got, g, v in zip(jax.tree.leaves(tu.tree_update_moment(X, YP, 0.9, 2)), x64, y64):
        close(got, 0.1 * g**2 + 0.9 * v)  # m = (1 - d) g^order + d m
    for got, g, v in zip(jax.tree.leaves(tu.tree_update_infinity_moment(X, YP, 0.9, 1e-3)), x64, y64):
        close(got, np.maximum(np.abs(g) + 1e-3, 0.9 * v))  # v = max(|g| + eps, d v)
    for got, g, v in zip(jax.tree.leaves(tu.tree_update_moment_per_elem_norm(X, YP, 0.75, 3)), x64, y64):
        close(got, 0.25 * np.abs(g) ** 3 + 0.75 * v)  # m = (1 - d) |g|^order + d m
    for got, m in zip(jax.tree.leaves(tu.tree_bias_correction(YP, 0.9, 3)), y64):
        close(got, m / (1 - 0.9**3))  # m / (1 - d^count)


def test_moment_helpers_are_gradchains_own_with_the_documented_differences():
    assert tu.tree_update_moment is gradchain.update_moment
    assert tu.tree_update_moment_per_elem_norm is gradchain.update_moment_per_elem_norm
    assert tu.tree_bias_correction is gradchain.bias_correction
    assert tu.tree_map_params is gradchain.tree_map_params
    # README porting table: |g|**order for odd orders (Optax: g**order, signed), count >= 1
    g, m = jnp.array([-2.0, 1.0]), jnp.zeros(2)
    np.testing.assert_array_equal(tu.tree_update_moment_per_elem_norm(g, m, 0.5, 1), [1.0, 0.5])
    np.testing.assert_array_equal(
        optax.tree_utils.tree_update_moment_per_elem_norm(g, m, 0.5, 1), [-1.0, 0.5]
    )
    with pytest.raises(ValueError, match="bias_correction: `count` must be >= 1"):
        tu.tree_bias_correction(m, 0.9, 0)
    for name, op in [("tree_add_scale", lambda m: tu.tree_add_scale(None, 1, m)),
                     ("tree_update_moment", lambda m: tu.tree_update_moment(None, m, 1, 1))]:  # fmt: skip
        assert op(jnp.ones(3)) is None, name


def test_names_signatures_and_short_names_match_optax():
    public = lambda mod: {
        n for n in dir(mod) if not n.startswith("_") and not inspect.ismodule(getattr(mod, n))
    }
    assert public(optax.tree_utils) <= public(tu)
    assert public(optax.tree) <= public(gradchain.tree)
    for n in public(optax.tree):
        long = f"tree_{n}"
        assert getattr(gradchain.tree, n) is getattr(tu, long), n
        if n in ("map_params", "bias_correction"):
            continue
        ours, theirs = (
            inspect.signature(getattr(tu, long)),
            inspect.signature(getattr(optax.tree_utils, long)),
        )
        assert list(ours.parameters) == list(theirs.parameters), n
        for p, q in zip(ours.parameters.values(), theirs.parameters.values()):
            assert p.kind == q.kind, (n, p)
            if not callable(q.default):
                assert p.default == q.default or (p.default is None and q.default is None), (n, p)


@pytest.mark.parametrize(
    "name,kw,ref",
    [("tree_scalar_mul", (2.0, X), lambda: tu.tree_scale(2.0, X)),
     ("tree_add_scalar_mul", (X, 2.0, Y), lambda: tu.tree_add_scale(X, 2.0, Y)),
     ("tree_l1_norm", (X,), lambda: tu.tree_norm(X, 1)),
     ("tree_l2_norm", (X,), lambda: tu.tree_norm(X)),
     ("tree_linf_norm", (X,), lambda: tu.tree_norm(X, "inf"))],
)  # fmt: skip
def test_optax_deprecated_names_still_resolve_with_a_warning(name, kw, ref):
    with pytest.warns(DeprecationWarning, match=f"tree_utils.{name} is deprecated"):
        f = getattr(tu, name)
    _assert_same(f(*kw), ref())
    with pytest.raises(AttributeError, match="no attribute 'tree_nope'"):
        tu.tree_nope  # noqa: B018


@pytest.mark.parametrize(
    "call,err,match",
    [(lambda: tu.tree_add(X, {"w": 1.0}), ValueError, "tree_add: `tree_y` must have the tree structure"),
     (lambda: tu.tree_add(X, Y, [1.0]), ValueError, r"tree_add: `other_trees\[0\]`"),
     (lambda: tu.tree_sub(X, Y["n"]), ValueError, "tree_sub: `tree_y`"),
     (lambda: tu.tree_where(True, X, I), ValueError, "tree_where: `tree_y`"),
     (lambda: tu.tree_allclose(X, I), ValueError, "tree_allclose: `b`"),
     (lambda: tu.tree_vdot({"a": jnp.ones(2)}, {"a": jnp.ones(3)}), ValueError, r"tree_vdot: the leaves at \['a'\]"),
     (lambda: tu.tree_scale(jnp.ones(2), X), ValueError, "tree_scale: `scalar` must be a scalar"),
     (lambda: tu.tree_add_scale(X, "a", Y), TypeError, "tree_add_scale: `scalar`"),
     (lambda: tu.tree_norm(X, 3), ValueError, "tree_norm: `ord` must be None, 1, 2 or inf, got 3"),
     (lambda: tu.tree_norm(X, "fro"), ValueError, "tree_norm: `ord`"),
     (lambda: tu.tree_norm(X, squared=1), TypeError, "tree_norm: `squared` must be a bool"),
     (lambda: tu.tree_sum(X, associative_reduction="yes"), TypeError, "tree_sum: `associative_reduction`"),
     (lambda: tu.tree_batch_shape(X, (2, -1)), TypeError, "tree_batch_shape: `shape`"),
     (lambda: tu.tree_zeros_like(X, "nope"), TypeError, "tree_zeros_like: `dtype`"),
     (lambda: tu.tree_full_like(X, None), TypeError, "tree_full_like: `fill_value`"),
     (lambda: tu.tree_clip(X, "a"), TypeError, "tree_clip: `min_value`"),
     (lambda: tu.tree_cast(X, "nope"), TypeError, "tree_cast: `dtype`"),
     (lambda: tu.tree_cast_like(X, [1.0]), ValueError, "tree_cast_like: `other_tree`"),
     (lambda: tu.tree_dtype(X, "max"), ValueError, "tree_dtype: `mixed_dtype_handler` must be one of"),
     (lambda: tu.tree_random_like(0, X), TypeError, "tree_random_like: `rng_key`"),
     (lambda: tu.tree_random_like(KEY, X, sampler=3), TypeError, "tree_random_like: `sampler`"),
     (lambda: tu.tree_split_key_like(1.5, X), TypeError, "tree_split_key_like: `rng_key`"),
     (lambda: tu.tree_update_moment(X, Y, 1.5, 2), ValueError, "update_moment: `decay`"),
     (lambda: tu.tree_get(X, "w", filtering=3), TypeError, "tree_get: `filtering` must be a callable"),
     (lambda: tu.tree_set(X, 3, w=1.0), TypeError, "tree_set: `filtering`")],
)  # fmt: skip
def test_bad_input_names_the_function_and_argument(call, err, match):
    with pytest.raises(err, match=match):
        call()


# ----------------------------------------------------------------------------------------
# State search: the same tree searched by both libraries gives the same answers.


def _states():
    p = jnp.array([1.0, 2.0, 3.0])
    sched = lambda c: 1.0 / (jnp.asarray(c, jnp.float32) + 1)
    with STD()[0], STD()[1]:
        opt = [
            optax.inject_hyperparams(optax.adam)(learning_rate=0.1).init(p),
            optax.inject_hyperparams(optax.sgd)(learning_rate=sched).init(p),
            optax.chain(optax.add_noise(1.0, 0.9, 0), optax.scale_by_adam()).init(p),
            optax.chain(optax.adam(1.0), optax.adam(1.0)).init(p),
            optax.masked(optax.adam(1.0), {"a": True, "b": False}).init({"a": p, "b": p}),
        ]
    ours = [
        gradchain.inject_hyperparams(gradchain.adam)(learning_rate=0.1).init(p),
        gradchain.inject_hyperparams(gradchain.sgd)(learning_rate=sched).init(p),
        gradchain.chain(gradchain.add_noise(1.0, 0.9, key=0), gradchain.scale_by_adam()).init(p),
        gradchain.partition({"x": gradchain.adam(0.1), "y": gradchain.sgd(0.1)}, {"a": "x", "b": "y"}).init(
            {"a": p, "b": p}
        ),
        gradchain.masked(gradchain.adam(1.0), {"a": True, "b": False}).init({"a": p, "b": p}),
    ]
    plain = [
        {"a": {"a": 1.0}, "b": {"a": 1}},
        {"hparams": {"learning_rate": 1.0}, "learning_rate": "foo"},
        {"count": 1.0, "inner": ({"count": 2.0}, [{"count": 3.0}])},
        {7: {"count": 4.0}, 8: {7: 5.0}},
        (),
        jnp.ones(3),
    ]
    return opt + ours + plain


STATES = _states()
KEYS = [
    "count",
    "learning_rate",
    "mu",
    "a",
    "b1",
    "ScaleByAdamState",
    "AddNoiseState",
    "inner_state",
    "nope",
    7,
]
FILTERS = {
    "none": None,
    "arrays": lambda path, value: isinstance(value, jax.Array),
    "floats": lambda path, value: isinstance(value, float),
    "adam": lambda path, value: type(path[-1]).__name__ == "NamedTupleKey" and path[-1].tuple_name == "ScaleByAdamState",
}  # fmt: skip


def _readable(found):
    return [
        (jax.tree_util.keystr(p), [type(k).__name__ for k in p], tu.tree_unwrap_random_key_data(v))
        for p, v in found
    ]  # fmt: skip


def _outcome(f):
    try:
        return "ok", f()
    except KeyError:
        return "KeyError", None


@pytest.mark.parametrize("filt", sorted(FILTERS))
def test_tree_get_all_with_path_and_tree_get_match_optax(filt):
    for i, state in enumerate(STATES):
        for key in KEYS:
            ours = tu.tree_get_all_with_path(state, key, FILTERS[filt])
            theirs = optax.tree_utils.tree_get_all_with_path(state, key, FILTERS[filt])
            a, b = _readable(ours), _readable(theirs)
            assert [x[:2] for x in a] == [x[:2] for x in b], (i, key)
            for (_, _, u), (_, _, v) in zip(a, b):
                _assert_same(u, v)
            got = _outcome(lambda: tu.tree_get(state, key, "dflt", FILTERS[filt]))
            want = _outcome(lambda: optax.tree_utils.tree_get(state, key, "dflt", FILTERS[filt]))
            assert got[0] == want[0], (i, key)
            _assert_same(tu.tree_unwrap_random_key_data(got[1]), tu.tree_unwrap_random_key_data(want[1]))


SETS = [
    ({"count": 2.0}, None),
    ({"learning_rate": 0.5, "b1": 0.3}, None),
    ({"learning_rate": jnp.asarray(0.25)}, "arrays"),
    ({"a": 2.0}, "floats"),
    ({"a": {"c": 0.0}}, "dicts"),
    ({"count": jnp.array(42)}, "adam"),
    ({"AddNoiseState": "replaced"}, None),
    ({"mu": 0.0, "nope": 1.0}, None),
]
FILTERS["dicts"] = lambda path, value: isinstance(value, dict)


@pytest.mark.parametrize("case", range(len(SETS)))
def test_tree_set_matches_optax(case):
    kwargs, filt = SETS[case]
    for i, state in enumerate(STATES):
        args = (state,) if filt is None else (state, FILTERS[filt])
        got = _outcome(lambda: tu.tree_set(*args, **kwargs))
        want = _outcome(lambda: optax.tree_utils.tree_set(*args, **kwargs))
        assert got[0] == want[0], (i, kwargs)
        if got[0] == "ok":
            g, w = (jax.tree_util.tree_flatten(tu.tree_unwrap_random_key_data(t)) for t in (got[1], want[1]))
            assert g[1] == w[1], (i, kwargs)
            for a, b in zip(g[0], w[0]):
                assert type(a) is type(b) and np.array_equal(np.asarray(a), np.asarray(b)), (i, kwargs)


def test_tree_set_on_gradchain_states_eager_and_jitted():
    p = jnp.zeros(3)
    tx = gradchain.inject_hyperparams(gradchain.adam)(learning_rate=1.0)
    state = tx.init(p)
    set_lr = JIT(lambda s, lr: tu.tree_set(s, learning_rate=lr))
    for i in range(3):
        state = set_lr(state, 1.0 / (i + 1))
        _, state = tx.update(jnp.ones(3), state, p)
        assert tu.tree_get(state, "learning_rate") == np.float32(1.0 / (i + 1))
    # only the wrapper's own count is set: the chain's plain tuple below it is not entered (as Optax)
    new = tu.tree_set(state, count=jnp.asarray(7, jnp.int32))
    counts = [int(v) for _, v in tu.tree_get_all_with_path(new, "count")]
    assert counts == [7, 3]
    # a schedule's name is in hyperparams and hyperparams_states: Optax's KeyError, then filtering
    sched = gradchain.inject_hyperparams(gradchain.sgd)(
        learning_rate=lambda c: 0.1 / (jnp.asarray(c, jnp.float32) + 1)
    ).init(p)
    with pytest.raises(KeyError, match=r"tree_get: `key` .*learning_rate.* matches 2 values in `tree`"):
        tu.tree_get(sched, "learning_rate")
    assert float(tu.tree_get(sched, "learning_rate", filtering=FILTERS["arrays"])) == pytest.approx(0.1)
    with pytest.raises(KeyError, match="tree_set: no value in `tree` matches the key 'ema'"):
        tu.tree_set(state, ema=1.0)
    with pytest.raises(KeyError, match="that passes `filtering`"):
        tu.tree_set(state, FILTERS["floats"], learning_rate=1.0)
    assert str(tu.NamedTupleKey("ScaleByAdamState", "mu")) == "ScaleByAdamState.mu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tu.tree_get(state, "count", filtering=FILTERS["adam"])
