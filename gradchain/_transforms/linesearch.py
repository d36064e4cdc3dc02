"""Line searches: a step size along the incoming updates, chosen from the objective.

`scale_by_backtracking_linesearch` (sufficient decrease, Armijo) and
`scale_by_zoom_linesearch` (strong Wolfe conditions, Nocedal & Wright's Algorithms 3.5
and 3.6); `value_and_grad_from_state` reuses the value and gradient a search computed at
the point it accepted. Both searches read three extra arguments of ``update``:

- ``value_fn``: the objective, ``value_fn(params, **kw) -> real scalar``. Every other extra
  argument whose name ``value_fn`` takes (all of them if it takes ``**kwargs``) is passed
  on to it, e.g. a batch ``x=..., y=...``; the rest are ignored, as every gradchain
  transformation ignores extra arguments it does not use (Optax raises on them).
- ``value`` and ``grad``: the objective and its gradient at ``params``. Either may be
  omitted and is then computed from ``value_fn`` (Optax requires both).

Step sizes, values and errors are real scalars in float32 (float64 when every parameter
is). A candidate step ``eta`` is evaluated at exactly the parameters
``apply_updates(params, eta * updates)`` will produce, so the value a search accepts is the
objective where the step lands. For complex parameters, gradients are conjugated JAX
gradients (``conj(jax.grad(f))``: the update that increases ``f``, which Optax also expects
as updates), and the slope along ``u`` is ``Re <u, grad> = Re sum(conj(u) * grad)``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation
from gradchain._numerics import cond, hp, safe_increment
from gradchain._transforms.lbfgs import conj_grads, real_vdot
from gradchain._tree import scale_tree, stats_dtype, unwrap_variable
from gradchain._update import apply_updates
from gradchain._validate import (
    check_flag,
    check_int,
    check_nonnegative,
    check_positive,
    check_scalar,
    check_tree_match,
    concrete_scalar,
    require_params,
)

__all__ = [
    "BacktrackingLinesearchInfo",
    "ScaleByBacktrackingLinesearchState",
    "ScaleByZoomLinesearchState",
    "ZoomLinesearchInfo",
    "scale_by_backtracking_linesearch",
    "scale_by_zoom_linesearch",
]


# ------------------------------------------------------------------ shared numerics
def _fn_kwargs(fn: str, value_fn: Any, extra_args: dict) -> dict:
    """The extra arguments ``value_fn`` takes (all of them if it takes ``**kwargs``)."""
    if value_fn is None:
        raise ValueError(f"{fn}: `update` needs the objective: pass `value_fn=` (a function of the params).")
    if not callable(value_fn):
        raise TypeError(f"{fn}: `value_fn` must be callable, got {value_fn!r}.")
    try:
        sig = list(inspect.signature(value_fn).parameters.values())
    except (TypeError, ValueError):
        sig = []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig):
        return dict(extra_args)
    names = {p.name for p in sig[1:] if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    return {k: v for k, v in extra_args.items() if k in names}


def _objective(fn: str, value_fn: Callable, kwargs: dict) -> Callable[[Any], jax.Array]:
    """``params -> value_fn(params, **kwargs)``, its output checked."""

    def f(params):
        v = jnp.asarray(value_fn(params, **kwargs))
        if v.ndim != 0:
            raise ValueError(f"{fn}: `value_fn` must return a scalar, got an array of shape {v.shape}.")
        if not jnp.issubdtype(v.dtype, jnp.floating):
            raise TypeError(f"{fn}: `value_fn` must return a real floating scalar, got dtype {v.dtype}.")
        return v

    return f


def _jit_when_possible(core: Callable) -> Callable:
    """``core(static, *args)``, jitted with ``static`` (holding ``value_fn``) as a static argument
    when it is hashable and the arguments for ``value_fn`` (the last) are arrays: an eager
    ``update`` then compiles its search once per tree signature instead of on every call."""
    jitted = jax.jit(core, static_argnums=0)

    @functools.wraps(core)
    def run(static, *args):
        try:
            hash(static)
        except TypeError:
            return core(static, *args)
        arrays = all(isinstance(x, (jax.Array, np.ndarray, np.generic)) for x in jax.tree.leaves(args[-1]))
        return jitted(static, *args) if arrays else core(static, *args)

    return run


def _start(fn: str, f, params, value, grad, sdt) -> tuple[jax.Array, Any]:
    """The objective and its (conjugated) gradient at ``params``: given, or computed."""
    if grad is None:
        v, grad = jax.value_and_grad(f)(params)
        grad = conj_grads(grad)
        value = v if value is None else value
    else:
        if jax.tree.structure(grad) != jax.tree.structure(params):
            raise ValueError(
                f"{fn}: `grad` must have the tree structure of `params`.\n"
                f"  grad:    {jax.tree.structure(grad)}\n  params:  {jax.tree.structure(params)}"
            )
        if value is None:
            value = f(params)
    value = jnp.asarray(value)
    if value.ndim != 0:
        raise ValueError(f"{fn}: `value` must be a scalar, got an array of shape {value.shape}.")
    grad = jax.tree.map(lambda g, p: jnp.asarray(g).astype(jnp.result_type(p)), grad, params)
    return jnp.real(value).astype(sdt), grad


def _step_params(params, eta, updates):
    """The parameters ``apply_updates(params, eta * updates)`` produces."""
    return apply_updates(params, scale_tree(updates, eta))


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _nan_to_inf(err):
    return jnp.where(jnp.isnan(err), jnp.inf, err)


def _print_if(pred, message: str, **values) -> None:
    def show():
        jax.debug.print(message, **values)

    cond(pred, show, lambda: None)


def _scalar_dtype(params) -> Any:
    return stats_dtype([jnp.asarray(unwrap_variable(p)) for p in jax.tree.leaves(params)])


# ------------------------------------------------------------------ backtracking
class BacktrackingLinesearchInfo(NamedTuple):
    """Diagnostics of the last backtracking search (in `ScaleByBacktrackingLinesearchState`)."""

    num_linesearch_steps: jax.Array  # int32 scalar: objective evaluations in the last search
    decrease_error: jax.Array  # real scalar: max(0, violation of the decrease criterion); inf for NaN/inf


class ScaleByBacktrackingLinesearchState(NamedTuple):
    """State of `scale_by_backtracking_linesearch`."""

    learning_rate: jax.Array  # real scalar: the accepted step size (1 before the first search)
    value: jax.Array  # real scalar: the objective at the accepted point (inf before the first search)
    grad: Any  # per-param tree: the gradient there with store_grad, else None leaves
    info: BacktrackingLinesearchInfo


def scale_by_backtracking_linesearch(
    max_backtracking_steps,
    slope_rtol=1e-4,
    decrease_factor=0.8,
    increase_factor=1.5,
    max_learning_rate=1.0,
    atol=0.0,
    rtol=0.0,
    *,
    store_grad: bool = False,
    verbose: bool = False,
) -> GradientTransformation:
    """Backtracking line search: scale the updates by a step with sufficient decrease (Armijo).

    For updates ``u`` at parameters ``w`` with objective ``f``, ``slope = Re <u, grad f(w)>``::

        eta_0 = min(increase_factor * eta_prev, max_learning_rate)   (max_learning_rate if eta_prev = 0)
        eta_j = decrease_factor * eta_{j-1}
        accept the first eta_j with, or stop after j = max_backtracking_steps:
            f(w + eta_j u) <= (1 + rtol) f(w) + slope_rtol * eta_j * slope + atol
        u_out = eta * u          (eta = 0 if f(w + eta u) is NaN or inf)

    ``u`` should be a descent direction (``slope < 0``), e.g. ``-grad`` after `sgd`.

    Args:
        max_backtracking_steps: Most decreases of the step per search, an int ``>= 0``.
        slope_rtol: Fraction of the linear decrease required, in [0, 1).
        decrease_factor: Factor shrinking the step, in (0, 1).
        increase_factor: Factor on the previous step for the first guess, ``> 0``
            (``math.inf``: start from ``max_learning_rate`` every time).
        max_learning_rate: Largest step tried, ``> 0``.
        atol: Absolute tolerance of the criterion, ``>= 0``.
        rtol: Relative tolerance on ``f(w)``, ``>= 0``.
        store_grad: Also compute the gradient at the accepted point and keep it (with the
            value) for `value_and_grad_from_state`.
        verbose: Print diagnostics when a search fails.

    Returns:
        A `GradientTransformation` with state `ScaleByBacktrackingLinesearchState`; its
        ``update`` takes ``params`` and the extra arguments ``value_fn``, ``value``, ``grad``
        (see the module docstring).

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda w: jnp.sum(w**2)
        >>> tx = gradchain.chain(gradchain.sgd(1.0), gradchain.scale_by_backtracking_linesearch(15))
        >>> w = jnp.array([1.0, 2.0, 3.0]); state = tx.init(w)
        >>> for _ in range(3):
        ...     v, g = jax.value_and_grad(f)(w)
        ...     u, state = tx.update(g, state, w, value=v, grad=g, value_fn=f)
        ...     w = gradchain.apply_updates(w, u)
        ...     print(f"{f(w):.3e}")
        5.040e+00
        1.814e+00
        6.532e-01

    References:
        Armijo, "Minimization of functions having Lipschitz continuous first partial
        derivatives", Pacific J. Math. 1966. Nocedal & Wright, "Numerical Optimization",
        2nd ed. 2006, Algorithm 3.1. Vaswani et al., "Painless Stochastic Gradient", NeurIPS 2019.
    """
    fn = "scale_by_backtracking_linesearch"
    check_scalar(fn, "max_backtracking_steps", max_backtracking_steps, lo=0, integer=True)
    check_scalar(fn, "slope_rtol", slope_rtol, lo=0.0, hi=1.0, hi_open=True)
    check_scalar(fn, "decrease_factor", decrease_factor, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    check_positive(fn, "increase_factor", increase_factor, allow_inf=True)
    check_positive(fn, "max_learning_rate", max_learning_rate)
    check_nonnegative(fn, "atol", atol)
    check_nonnegative(fn, "rtol", rtol)
    store_grad = check_flag(fn, "store_grad", store_grad)
    verbose = check_flag(fn, "verbose", verbose)

    def init_fn(params):
        sdt = _scalar_dtype(params)
        grad = jax.tree.map(lambda p: jnp.zeros_like(p) if store_grad else None, params)
        return ScaleByBacktrackingLinesearchState(
            learning_rate=jnp.ones([], sdt),
            value=jnp.full([], jnp.inf, sdt),
            grad=grad,
            info=BacktrackingLinesearchInfo(jnp.zeros([], jnp.int32), jnp.full([], jnp.inf, sdt)),
        )

    hyper = (
        max_backtracking_steps,
        slope_rtol,
        decrease_factor,
        increase_factor,
        max_learning_rate,
        atol,
        rtol,
    )

    def update_fn(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra_args):
        check_tree_match(fn, updates, state.grad)
        require_params(fn, params)
        check_tree_match(fn, updates, params, "`params`")
        kwargs = _fn_kwargs(fn, value_fn, extra_args)
        static = (fn, value_fn, store_grad, verbose)
        u, eta, v, g, steps, err = _backtrack(
            static, params, updates, value, grad, state.learning_rate, hyper, kwargs
        )
        g = state.grad if g is None else g
        return u, ScaleByBacktrackingLinesearchState(eta, v, g, BacktrackingLinesearchInfo(steps, err))

    return GradientTransformation(init_fn, update_fn)


@_jit_when_possible
def _backtrack(static, params, updates, value, grad, prev, hyper, kwargs):
    """One backtracking search; returns the scaled updates, step, value, gradient (or None),
    number of evaluations and decrease error."""
    fn, value_fn, store_grad, verbose = static
    max_steps, slope_rtol, decrease_factor, increase_factor, max_learning_rate, atol, rtol = hyper
    f = _objective(fn, value_fn, kwargs)
    sdt = prev.dtype
    c = lambda x: hp(x, sdt)
    value0, grad0 = _start(fn, f, params, value, grad, sdt)
    slope = real_vdot(updates, grad0)
    max_steps = jnp.asarray(max_steps).astype(jnp.int32)

    def decrease_error(eta, new_value):
        err = new_value - (1.0 + c(rtol)) * value0 - eta * c(slope_rtol) * slope
        return jnp.maximum(_nan_to_inf(err), 0.0)

    def keep_going(s):
        _, _, err, it = s
        return ~(err <= c(atol)) & (it <= max_steps)

    def body(s):
        eta, _, _, it = s
        eta = jnp.where(it > 0, c(decrease_factor) * eta, eta)
        new_value = f(_step_params(params, eta, updates)).astype(sdt)
        return eta, new_value, decrease_error(eta, new_value), it + 1

    top = c(max_learning_rate)
    guess = jnp.where(prev > 0, jnp.minimum(c(increase_factor) * prev, top), top)
    start = (guess, value0, jnp.full([], jnp.inf, sdt), jnp.zeros([], jnp.int32))
    eta, new_value, err, steps = jax.lax.while_loop(keep_going, body, start)
    moved = ~jnp.isinf(err)  # a NaN/inf value everywhere: do not move
    eta = jnp.where(moved, eta, 0.0)
    new_value = jnp.where(moved, new_value, value0)
    new_grad = conj_grads(jax.grad(f)(_step_params(params, eta, updates))) if store_grad else None
    if verbose:
        _print_if(
            err > c(atol),
            fn + ": no step with sufficient decrease: value {v}, slope {s} (must be < 0), step {e}, "
            "decrease error {d} (the step is 0 if every trial value was NaN or inf).",
            v=value0,
            s=slope,
            e=eta,
            d=err,
        )
    return scale_tree(updates, eta), eta, new_value, new_grad, steps, err


# ------------------------------------------------------------------ zoom
class ZoomLinesearchInfo(NamedTuple):
    """Diagnostics of the last zoom search (in `ScaleByZoomLinesearchState`).

    A positive ``curvature_error`` is mild (e.g. ``max_learning_rate`` too small); a
    positive ``decrease_error`` means the objective may not have decreased.
    """

    num_linesearch_steps: jax.Array  # int32 scalar: objective evaluations in the last search
    decrease_error: jax.Array  # real scalar: violation of the (approximate) decrease criterion
    curvature_error: jax.Array  # real scalar: violation of the curvature criterion


class ScaleByZoomLinesearchState(NamedTuple):
    """State of `scale_by_zoom_linesearch`."""

    learning_rate: jax.Array  # real scalar: the accepted step size (1 before the first search)
    value: jax.Array  # real scalar: the objective at the accepted point (inf before the first search)
    grad: Any  # per-param tree, param dtype: the (conjugated) gradient there
    info: ZoomLinesearchInfo


class _Zoom(NamedTuple):
    """The search's carry: the last trial point, the bracket [low, high] and a safe point."""

    count: jax.Array
    stepsize: jax.Array
    value: jax.Array
    grad: Any
    slope: jax.Array
    decrease_error: jax.Array
    curvature_error: jax.Array
    interval_found: jax.Array
    done: jax.Array
    failed: jax.Array
    low: tuple  # (step, value, slope) with the lower value
    high: tuple  # (step, value, slope) the other end
    ref: tuple  # (step, value): third point of the cubic fit
    safe: tuple  # (step, value, grad): best point with sufficient decrease


def _cubicmin(a, fa, fpa, b, fb, c, fc):
    """Critical point of the cubic through (a, fa), (b, fb), (c, fc) with slope fpa at a (NaN if none)."""
    db, dc = b - a, c - a
    denom = (db * dc) ** 2 * (db - dc)
    rb, rc = fb - fa - fpa * db, fc - fa - fpa * dc
    A = (dc**2 * rb - db**2 * rc) / denom
    B = (-(dc**3) * rb + db**3 * rc) / denom
    return a + (-B + jnp.sqrt(B * B - 3.0 * A * fpa)) / (3.0 * A)


def _quadmin(a, fa, fpa, b, fb):
    """Critical point of the quadratic through (a, fa), (b, fb) with slope fpa at a."""
    db = b - a
    B = (fb - fa - fpa * db) / db**2
    return a - fpa / (2.0 * B)


def scale_by_zoom_linesearch(
    max_linesearch_steps,
    max_learning_rate=None,
    tol=0.0,
    increase_factor=2.0,
    slope_rtol=1e-4,
    curv_rtol=0.9,
    approx_dec_rtol=1e-6,
    stepsize_precision=1e-5,
    initial_guess_strategy: str = "keep",
    *,
    verbose: bool = False,
) -> GradientTransformation:
    """Zoom line search: scale the updates by a step satisfying the strong Wolfe conditions.

    For updates ``u`` at parameters ``w``, with ``phi(eta) = f(w + eta u)`` and
    ``phi'(eta) = Re <u, grad f(w + eta u)>``, accept ``eta`` when both errors are ``<= tol``::

        decrease_error  = max(0, phi(eta) - phi(0) - slope_rtol * eta * phi'(0))
        curvature_error = max(0, |phi'(eta)| - curv_rtol * |phi'(0)|)
        u_out = eta * u

    Near a flat minimum the decrease error is the smaller of the above and Hager & Zhang's
    approximate criterion ``max(phi'(eta) - (2 slope_rtol - 1) phi'(0), phi(eta) - phi(0) -
    approx_dec_rtol |phi(0)|)`` (``approx_dec_rtol=None``: Armijo's alone). Phase 1 multiplies
    the step by ``increase_factor`` until it brackets an acceptable step; phase 2 shrinks the
    bracket by cubic, quadratic or bisection steps. If no step is accepted within
    ``max_linesearch_steps`` evaluations (or the bracket is below ``stepsize_precision``),
    the lowest point with sufficient decrease is taken, else the last one tried.

    Args:
        max_linesearch_steps: Most objective evaluations per search, an int ``>= 1``.
        max_learning_rate: Largest step, ``> 0``, or ``None`` (no bound).
        tol: Tolerance on both errors, ``>= 0``.
        increase_factor: Growth of the step in phase 1, ``> 1``.
        slope_rtol: ``c1`` of the decrease criterion, in [0, 1).
        curv_rtol: ``c2`` of the curvature criterion, ``> slope_rtol`` (``math.inf``: none).
        approx_dec_rtol: Relative decrease that enables the approximate criterion, ``>= 0``, or ``None``.
        stepsize_precision: Bracket width below which a step with sufficient decrease is
            taken, ``>= 0``.
        initial_guess_strategy: ``"one"`` (first trial step 1, for quasi-Newton methods) or
            ``"keep"`` (the previous step, for gradient descent; 1 after a zero step).
        verbose: Print diagnostics when a search fails.

    Returns:
        A `GradientTransformation` with state `ScaleByZoomLinesearchState`; its ``update``
        takes ``params`` and the extra arguments ``value_fn``, ``value``, ``grad`` (see the
        module docstring).

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda w: jnp.sum((w - 1.0) ** 2)
        >>> tx = gradchain.chain(gradchain.sgd(1.0), gradchain.scale_by_zoom_linesearch(15))
        >>> w = jnp.zeros(3); state = tx.init(w)
        >>> v, g = jax.value_and_grad(f)(w)
        >>> u, state = tx.update(g, state, w, value=v, grad=g, value_fn=f)
        >>> gradchain.apply_updates(w, u), state[1].learning_rate
        (Array([1., 1., 1.], dtype=float32), Array(0.5, dtype=float32))

    References:
        Nocedal & Wright, "Numerical Optimization", 2nd ed. 2006, Algorithms 3.5 and 3.6.
        Hager & Zhang, "Algorithm 851: CG_DESCENT", ACM TOMS 2006.
    """
    fn = "scale_by_zoom_linesearch"
    check_int(fn, "max_linesearch_steps", max_linesearch_steps, 1)
    if max_learning_rate is not None:
        check_positive(fn, "max_learning_rate", max_learning_rate)
    check_nonnegative(fn, "tol", tol)
    check_scalar(fn, "increase_factor", increase_factor, lo=1.0, lo_open=True)
    check_scalar(fn, "slope_rtol", slope_rtol, lo=0.0, hi=1.0, hi_open=True)
    check_positive(fn, "curv_rtol", curv_rtol, allow_inf=True)
    c1, c2 = concrete_scalar(slope_rtol), concrete_scalar(curv_rtol)
    if c1 is not None and c2 is not None and not c1 < c2:
        raise ValueError(f"{fn}: `curv_rtol` must be > `slope_rtol` ({slope_rtol!r}), got {curv_rtol!r}.")
    if approx_dec_rtol is not None:
        check_nonnegative(fn, "approx_dec_rtol", approx_dec_rtol)
    check_nonnegative(fn, "stepsize_precision", stepsize_precision)
    if initial_guess_strategy not in ("one", "keep"):
        raise ValueError(
            f"{fn}: `initial_guess_strategy` must be 'one' or 'keep', got {initial_guess_strategy!r}."
        )
    verbose = check_flag(fn, "verbose", verbose)

    def init_fn(params):
        sdt = _scalar_dtype(params)
        inf = jnp.full([], jnp.inf, sdt)
        return ScaleByZoomLinesearchState(
            learning_rate=jnp.ones([], sdt),
            value=inf,
            grad=jax.tree.map(jnp.zeros_like, params),
            info=ZoomLinesearchInfo(jnp.zeros([], jnp.int32), inf, inf),
        )

    config = (max_linesearch_steps, initial_guess_strategy == "one", verbose)
    hyper = (
        max_learning_rate,
        tol,
        increase_factor,
        slope_rtol,
        curv_rtol,
        approx_dec_rtol,
        stepsize_precision,
    )

    def update_fn(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra_args):
        check_tree_match(fn, updates, state.grad)
        require_params(fn, params)
        check_tree_match(fn, updates, params, "`params`")
        kwargs = _fn_kwargs(fn, value_fn, extra_args)
        static = (fn, value_fn, *config)
        u, z = _zoom(static, params, updates, value, grad, state.learning_rate, hyper, kwargs)
        info = ZoomLinesearchInfo(z.count, z.decrease_error, z.curvature_error)
        return u, ScaleByZoomLinesearchState(z.stepsize, z.value, z.grad, info)

    return GradientTransformation(init_fn, update_fn)


@_jit_when_possible
def _zoom(static, params, updates, value, grad, prev, hyper, kwargs):
    """One zoom search; returns the scaled updates and the final `_Zoom` carry."""
    fn, value_fn, max_steps, guess_one, verbose = static
    max_learning_rate, tol, increase_factor, slope_rtol, curv_rtol, approx_dec_rtol, precision = hyper
    f = _objective(fn, value_fn, kwargs)
    sdt = prev.dtype
    c = lambda x: hp(x, sdt)
    value0, grad0 = _start(fn, f, params, value, grad, sdt)
    slope0 = real_vdot(updates, grad0)
    zero, inf = jnp.zeros([], sdt), jnp.full([], jnp.inf, sdt)
    guess = jnp.ones([], sdt) if guess_one else jnp.where(prev > 0, prev, 1.0)

    def probe(eta):
        v, g = jax.value_and_grad(f)(_step_params(params, eta, updates))
        g = conj_grads(g)
        return v.astype(sdt), g, real_vdot(g, updates)

    def errors(eta, v, s):
        dec = v - value0 - c(slope_rtol) * eta * slope0
        if approx_dec_rtol is not None:
            approx = s - (2 * c(slope_rtol) - 1.0) * slope0
            approx = jnp.maximum(approx, v - value0 - c(approx_dec_rtol) * jnp.abs(value0))
            dec = jnp.minimum(approx, dec)
        curv = jnp.abs(s) - c(curv_rtol) * jnp.abs(slope0)
        return _nan_to_inf(jnp.maximum(dec, 0.0)), _nan_to_inf(jnp.maximum(curv, 0.0))

    def search(z):  # Algorithm 3.5: grow the step until [low, high] brackets a good one
        eta = jnp.where(z.count == 0, guess, c(increase_factor) * z.stepsize)
        reached = jnp.zeros([], bool)
        if max_learning_rate is not None:
            reached = eta >= c(max_learning_rate)
            eta = jnp.minimum(eta, c(max_learning_rate))
        v, g, s = probe(eta)
        dec, curv = errors(eta, v, s)
        good = jnp.maximum(dec, curv) <= c(tol)
        safe = _select(dec <= c(tol), (eta, v, g), z.safe)
        high_is_new = (dec > 0.0) | ((v >= z.value) & (z.count > 0))
        low_is_new = (s >= 0.0) & ~high_is_new
        new, old = (eta, v, s), (z.stepsize, z.value, z.slope)
        low, high = _select(low_is_new, (new, old), (old, new))
        found = high_is_new | low_is_new | good
        done = good | (reached & ~found)
        failed = (z.count + 1 >= max_steps) & ~done
        count = safe_increment(z.count)
        return _Zoom(count, eta, v, g, s, dec, curv, found, done, failed, low, high, low[:2], safe)  # fmt: skip

    def zoom(z):  # Algorithm 3.6: shrink the bracket by interpolation
        (lo, v_lo, s_lo), (hi, v_hi, _) = z.low, z.high
        width = jnp.abs(hi - lo)
        left, right = jnp.minimum(lo, hi), jnp.maximum(lo, hi)
        cubic = _cubicmin(lo, v_lo, s_lo, hi, v_hi, *z.ref)
        quad = _quadmin(lo, v_lo, s_lo, hi, v_hi)
        use_cubic = (cubic > left + 0.2 * width) & (cubic < right - 0.2 * width)
        use_quad = ~use_cubic & (quad > left + 0.1 * width) & (quad < right - 0.1 * width)
        eta = jnp.where(use_cubic, cubic, jnp.where(use_quad, quad, (lo + hi) / 2.0))
        v, g, s = probe(eta)
        dec, curv = errors(eta, v, s)
        done = jnp.maximum(dec, curv) <= c(tol)
        safe = _select((dec <= c(tol)) & (v < z.safe[1]), (eta, v, g), z.safe)
        high_is_new = (dec > 0.0) | (v >= v_lo)
        high_is_low = (s * (hi - lo) >= 0.0) & ~high_is_new
        new = (eta, v, s)
        high = _select(high_is_new, new, _select(high_is_low, z.low, z.high))
        low = _select(high_is_new, z.low, new)
        ref = _select(high_is_new | high_is_low, z.high[:2], z.low[:2])
        too_narrow = (width <= c(precision)) & (safe[0] > 0.0)
        failed = ((z.count + 1 >= max_steps) | too_narrow) & ~done
        count = safe_increment(z.count)
        return _Zoom(count, eta, v, g, s, dec, curv, z.interval_found, done, failed, low, high, ref, safe)  # fmt: skip

    def settle(z):  # a failed search takes the safe point if there is one (or stays put)
        use_safe = z.failed & ((z.safe[0] > 0.0) | jnp.isinf(z.decrease_error))
        eta, v, g = _select(use_safe, z.safe, (z.stepsize, z.value, z.grad))
        return z._replace(stepsize=eta, value=v, grad=g)

    def body(z):
        return settle(jax.lax.cond(z.interval_found, zoom, search, z))

    point, no = (zero, value0, slope0), jnp.zeros([], bool)
    start = _Zoom(jnp.zeros([], jnp.int32), zero, value0, grad0, slope0, inf, inf, no, no, no, point, point, point[:2], (zero, value0, grad0))  # fmt: skip
    z = jax.lax.while_loop(lambda z: ~(z.done | z.failed), body, start)
    if verbose:
        _print_if(
            z.failed,
            fn + ": no step satisfies both criteria: value {v}, slope {s} (must be < 0), step taken {e}, "
            "decrease error {d}, curvature error {k}.",
            v=value0,
            s=slope0,
            e=z.stepsize,
            d=z.decrease_error,
            k=z.curvature_error,
        )
    return scale_tree(updates, z.stepsize), z
