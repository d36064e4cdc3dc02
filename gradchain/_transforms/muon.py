"""Muon: momentum orthogonalized by Newton-Schulz iterations.

`scale_by_muon` keeps a momentum per matrix and replaces it by an approximation of its
polar factor ``U V^T`` (``M = U S V^T``); `scale_by_shape` applies the learning-rate scale
of each matrix's shape; `gradchain.muon` chains them with weight decay and a learning rate
and sends the leaves that are not matrices to AdamW. `orthogonalize_via_newton_schulz` is
the iteration itself.

Which axes of a leaf form the matrix is a `MuonDimensionNumbers` (Optax's): the reduction
(input) and output axes, every other axis a batch axis. Batch axes are never merged: the
iteration runs on one matrix and is ``jax.vmap``-ed once per batch axis, so a stacked
(scanned) kernel sharded along its layer axis is orthogonalized shard by shard, without
an all-gather. Only several reduction (or output) axes are merged, into one matrix side.

Numerics: the momentum is computed in at least float32 and stored in ``mu_dtype`` (or the
parameter's dtype), and the update reads it as stored; the iteration runs in that compute
dtype (float32 for float32 and bfloat16 parameters: Optax's numbers for float32, where
Optax would iterate in bfloat16 for bfloat16 parameters), or in ``ns_dtype`` (e.g.
``jnp.bfloat16``, as Keller Jordan's and torch's implementations do).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from gradchain._base import EmptyState, GradientTransformation
from gradchain._kit import BiasCorrections, Compute, ema_update, map_leaves, store, zeros_like_params
from gradchain._numerics import compute_dtype, hp, safe_increment, zero_count
from gradchain._validate import (
    canonical_dtype,
    check_decay,
    check_flag,
    check_floating,
    check_int,
    check_nonnegative,
    check_tree_match,
    refuse_flat,
)

__all__ = [
    "MuonDimensionNumbers",
    "MuonState",
    "orthogonalize_via_newton_schulz",
    "resolve_dimension_numbers",
    "scale_by_muon",
    "scale_by_shape",
]

PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")
STANDARD_NS_COEFFS = (3.4445, -4.7750, 2.0315)  # Keller Jordan's quintic, 5 steps
DION_NS_COEFFS = (  # Optax's "dion" preset (Ahn et al. 2025)
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
# Amsel et al. 2025, Algorithm 1 (degree 5, lower bound 1e-3): one polynomial per step;
# the last one repeats. (The published code then applies a safety factor, see below.)
POLAR_EXPRESS_NS_COEFFS = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)
_PE_SAFETY = 1.01


def polar_express_coefficients(ns_steps: int) -> tuple:
    """The Polar Express schedule for ``ns_steps`` iterations, as its reference code runs it.

    The reference divides every polynomial but the last by the safety factor 1.01
    (``(a / 1.01, b / 1.01**3, c / 1.01**5)``, i.e. ``p(x / 1.01)``), repeats the last one
    beyond eight steps, and normalizes by ``1.01 * ||X||_F``: that extra ``1 / 1.01`` is
    folded here into the first polynomial, so the iteration itself normalizes by
    ``||X||_F`` as for every other schedule.
    """
    shrink = lambda t: (t[0] / _PE_SAFETY, t[1] / _PE_SAFETY**3, t[2] / _PE_SAFETY**5)
    safe = [shrink(t) for t in POLAR_EXPRESS_NS_COEFFS[:-1]] + [POLAR_EXPRESS_NS_COEFFS[-1]]
    rows = safe[:ns_steps] + [safe[-1]] * max(0, ns_steps - len(safe))
    return (shrink(rows[0]), *rows[1:]) if rows else ()


class MuonDimensionNumbers(NamedTuple):
    """Which axes of a leaf form the matrix that Muon orthogonalizes (Optax's spec).

    For ``y = x @ W`` the reduction (input) axis comes first and the output axis second,
    so the default ``(0, 1)`` is a 2-D kernel. Several axes on one side are merged into
    one matrix side (e.g. ``reduction_axis=(0, 1, 2)`` for an HWIO convolution). Every
    other axis is a batch axis: each matrix along it is orthogonalized on its own (a
    scanned stack ``(layers, d_in, d_out)`` is ``MuonDimensionNumbers(1, 2)``).
    Negative axes count from the end.
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


class MuonState(NamedTuple):
    """State of `scale_by_muon` (Optax's fields): one momentum per Muon leaf."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, `mu_dtype` or param dtype; None where a leaf is not a Muon leaf
    ns_coeffs: jax.Array  # (3,) or (n, 3): the Newton-Schulz coefficients, one row per step


class _Box:
    """An opaque tree leaf: one leaf's dimension numbers, or its normalized axes, or None."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _is_spec_leaf(x) -> bool:
    return x is None or isinstance(x, MuonDimensionNumbers)


def _leaf_axes(fn: str, name: str, dims: Any, shape: tuple, where: str):
    """``dims`` for a leaf of ``shape`` as ``(batch, reduction, output)`` axis tuples."""
    ndim = len(shape)
    if not isinstance(dims, MuonDimensionNumbers):
        raise TypeError(
            f"{fn}: `{name}` must hold `MuonDimensionNumbers` or None, got {dims!r} for the leaf {where}."
        )
    if ndim < 2:
        raise ValueError(
            f"{fn}: `{name}` must leave out leaves of rank < 2 (Muon orthogonalizes matrices), got "
            f"{dims!r} for the leaf {where} of shape {shape}. Give it None, or use `gradchain.muon`, "
            "which sends such leaves to AdamW."
        )

    def norm(axes):
        axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
        ok = all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) and -ndim <= a < ndim for a in axes
        )
        return tuple(int(a) % ndim for a in axes) if ok and axes else None

    red, out = norm(dims.reduction_axis), norm(dims.output_axis)
    if red is None or out is None or len(set(red + out)) != len(red + out):
        raise ValueError(
            f"{fn}: `{name}` must name distinct, non-empty reduction and output axes of the leaf, got "
            f"{dims!r} for the leaf {where} of shape {shape}."
        )
    batch = tuple(a for a in range(ndim) if a not in red + out)
    return batch, red, out


def resolve_dimension_numbers(fn: str, name: str, spec: Any, tree: Any) -> list:
    """One ``(batch, reduction, output)`` axes triple, or None, per leaf of ``tree``.

    ``spec`` is None (every leaf is a matrix over its last two axes, leading axes batch),
    a `MuonDimensionNumbers`, a tree of them and None (a prefix of ``tree`` is enough),
    or a callable returning one from ``tree``.
    """
    if callable(spec) and not isinstance(spec, MuonDimensionNumbers):
        spec = spec(tree)
    paths_leaves = jax.tree_util.tree_leaves_with_path(tree)
    if spec is None:
        specs = [MuonDimensionNumbers(-2, -1)] * len(paths_leaves)
    else:
        boxed = jax.tree.map(_Box, spec, is_leaf=_is_spec_leaf)
        try:
            expanded = jax.tree.map(lambda b, sub: jax.tree.map(lambda _: b, sub), boxed, tree)
            specs = [b.value for b in jax.tree.structure(tree).flatten_up_to(expanded)]
        except (ValueError, TypeError):
            raise ValueError(
                f"{fn}: the `{name}` tree does not match the parameters.\n"
                f"  {name}:  {jax.tree.structure(boxed)}\n  params:  {jax.tree.structure(tree)}\n"
                "Give one `MuonDimensionNumbers` (or None) per parameter leaf, or per subtree as a "
                "prefix of the parameter tree, or a callable that builds that tree from the params."
            ) from None
    return [
        None if d is None else _leaf_axes(fn, name, d, jnp.shape(x), jax.tree_util.keystr(path) or "(root)")
        for (path, x), d in zip(paths_leaves, specs)
    ]


def _dims_tree(fn: str, name: str, spec: Any, tree: Any) -> Any:
    axes = resolve_dimension_numbers(fn, name, spec, tree)
    return jax.tree.structure(tree).unflatten([_Box(a) for a in axes])


def _ns_rows(fn: str, ns_coeffs: Any, ns_steps: int) -> Any:
    """The coefficients as Optax stores them: ``(3,)`` (repeated ``ns_steps`` times) or ``(n, 3)``."""
    presets = {"standard": STANDARD_NS_COEFFS, "dion": DION_NS_COEFFS}
    if isinstance(ns_coeffs, str):
        if ns_coeffs == "polar_express":
            return polar_express_coefficients(ns_steps) or np.zeros((0, 3))
        if ns_coeffs not in presets:
            raise ValueError(
                f"{fn}: `ns_coeffs` must be a triple (a, b, c), a sequence of triples, or one of "
                f"'standard', 'dion', 'polar_express', got {ns_coeffs!r}."
            )
        ns_coeffs = presets[ns_coeffs]
    try:
        shape = jnp.shape(jnp.asarray(ns_coeffs))
    except (TypeError, ValueError):
        shape = None
    if shape is None or len(shape) not in (1, 2) or shape[-1] != 3:
        raise ValueError(
            f"{fn}: `ns_coeffs` must be a triple (a, b, c) or a sequence of triples (shape (3,) or "
            f"(n, 3)), got {ns_coeffs!r}."
        )
    if len(shape) == 2 and shape[0] > ns_steps:
        raise ValueError(
            f"{fn}: `ns_coeffs` must hold at most `ns_steps` = {ns_steps} triples (a sequence of "
            f"triples runs one step per triple, as in Optax), got {shape[0]}."
        )
    try:
        values = np.asarray(ns_coeffs, dtype=np.float64)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        values = None  # traced: checked when it is concrete
    if values is not None and not np.all(np.isfinite(values)):
        raise ValueError(f"{fn}: `ns_coeffs` must be finite, got {ns_coeffs!r}.")
    return ns_coeffs


def _check_preconditioning(fn: str, preconditioning: Any) -> None:
    if preconditioning not in PRECONDITIONINGS:
        raise ValueError(
            f"{fn}: `preconditioning` must be one of {PRECONDITIONINGS}, got {preconditioning!r}."
        )


def _ns_step(x, row, rescale=None):
    """One step ``X <- a X + (b A + c A A) X`` with ``A = X X^H``.

    Products accumulate in at least float32; in a reduced-precision ``x`` each line is
    rounded once to ``x``'s dtype (torch's ``addmm`` in bfloat16) and the coefficients are
    never rounded. ``rescale``: the AOL or Schatten-4 rescaling of Optax's first step (with
    Optax's eps, 1e-8).
    """
    acc = compute_dtype(x.dtype)
    mm = lambda p, q: jnp.matmul(p, q, preferred_element_type=acc)
    a, b, c = row
    gram = mm(x, x.T.conj())
    if rescale == "aol":
        s = jax.lax.rsqrt(jnp.clip(jnp.abs(gram).sum(axis=-1), min=1e-8))[:, None]
        x, gram = (x.astype(acc) * s).astype(x.dtype), gram * s * s.T
    elif rescale == "schatten":
        s = jax.lax.rsqrt(jnp.clip(jnp.linalg.norm(gram), min=1e-8))
        x, gram = (x.astype(acc) * s).astype(x.dtype), gram * s**2
    if x.dtype == acc:  # b A + (c A) A, as Optax orders it: bit-identical to Optax
        poly = b * gram + mm(c * gram, gram)
    else:  # torch's addmm(A, A, A, beta=b, alpha=c): A rounded, b A + c A A rounded once
        gram = gram.astype(x.dtype)
        poly = (b * gram.astype(acc) + c * mm(gram, gram)).astype(x.dtype)
    return (a * x.astype(acc) + mm(poly, x)).astype(x.dtype)


def _newton_schulz_matrix(x, rows, eps, preconditioning):
    """The iteration on one matrix (in ``x.dtype``); ``rows`` a list of ``(a, b, c)`` scalars."""
    transposed = x.shape[0] > x.shape[1]  # iterate on the wide side: X X^T is the smaller Gram
    if transposed:
        x = x.T
    if preconditioning in ("frobenius", "spectral"):
        wide = compute_dtype(x.dtype)  # the norm accumulates in >= float32 (as torch's does)
        norm = jnp.linalg.norm(x.astype(wide), ord="fro" if preconditioning == "frobenius" else 2)
        x = x / (norm.astype(x.dtype) + hp(eps, x.dtype))
    for i, row in enumerate(rows):
        first = i == 0 and preconditioning in ("aol", "schatten")
        x = _ns_step(x, row, preconditioning if first else None)
    return x.T if transposed else x


def orthogonalize_via_newton_schulz(
    x: jax.Array,
    ns_coeffs: Any,
    ns_steps: int = 5,
    preconditioning: str = "frobenius",
    eps: Any = 1e-8,
    dimension_numbers: Any = None,
    *,
    ns_dtype: Any = None,
) -> jax.Array:
    """Approximate the polar factor ``U V^T`` of each matrix of ``x`` by Newton-Schulz steps.

    For each matrix (``x.T`` if it is tall, so the Gram matrix is the smaller one)::

        X_0 = M / (||M||_F + eps)                  (frobenius; spectral: ||M||_2)
        A_k = X_k X_k^H
        X_{k+1} = a_k X_k + (b_k A_k + c_k A_k A_k) X_k      (k = 0 .. n - 1)

    with ``(a_k, b_k, c_k)`` the k-th row of ``ns_coeffs`` (or ``ns_coeffs`` itself at every
    step for a single triple). On the singular values this is the odd polynomial
    ``p(s) = a s + b s**3 + c s**5`` composed ``n`` times: the standard quintic pushes them
    into a band around 1 (about [0.7, 1.2]) rather than onto 1, which Muon tolerates.
    ``aol`` and ``schatten`` skip the normalization and rescale inside the first step.

    Args:
        x: A matrix, or a leaf with ``dimension_numbers`` saying which axes are the matrix.
        ns_coeffs: ``(3,)`` or ``(n, 3)`` coefficients.
        ns_steps: Steps for a single triple (a sequence of triples runs one step per triple).
        preconditioning: ``"frobenius"``, ``"spectral"``, ``"aol"`` or ``"schatten"``.
        eps: Added to the norm.
        dimension_numbers: A `MuonDimensionNumbers`; None: the last two axes (leading batch).
        ns_dtype: The dtype of the iteration; None: ``x``'s dtype.

    Returns:
        An array of ``x``'s shape and dtype.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain._transforms.muon import orthogonalize_via_newton_schulz
        >>> o = orthogonalize_via_newton_schulz(jnp.diag(jnp.array([4.0, 3.0])), jnp.array([1.875, -1.25, 0.375]), 20)
        >>> o.round(4)   # the Pade-quintic converges: the polar factor of diag(4, 3) is I
        Array([[1., 0.],
               [0., 1.]], dtype=float32)

    References:
        Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    fn = "orthogonalize_via_newton_schulz"
    _check_preconditioning(fn, preconditioning)
    (axes,) = resolve_dimension_numbers(fn, "dimension_numbers", dimension_numbers, [x])
    coeffs = jnp.asarray(_ns_rows(fn, ns_coeffs, check_int(fn, "ns_steps", ns_steps, 0)))
    ns_dtype = canonical_dtype(fn, "ns_dtype", ns_dtype)
    dt = x.dtype if ns_dtype is None else ns_dtype
    return _orthogonalize(x.astype(dt), axes, coeffs, ns_steps, eps, preconditioning).astype(x.dtype)


def _explicit_spec(y) -> tuple:
    """``y``'s partition spec over explicit mesh axes (empty or all None otherwise)."""
    return tuple(getattr(getattr(jax.typeof(y), "sharding", None), "spec", ()))


def _reshard(y, spec):
    return jax.sharding.reshard(y, NamedSharding(jax.typeof(y).sharding.mesh, PartitionSpec(*spec)))


def _orthogonalize(x, axes, coeffs, ns_steps, eps, preconditioning):
    """`_newton_schulz_matrix` on every matrix of ``x`` (vmapped over the batch axes)."""
    batch, red, out = axes
    perm = batch + red + out
    y = x if perm == tuple(range(x.ndim)) else jnp.transpose(x, perm)
    nb = len(batch)
    spec = _explicit_spec(y)
    gather = any(s is not None for s in spec[nb:])
    if gather:  # explicit mesh axes: each step needs whole matrices (auto axes: XLA gathers)
        y = _reshard(y, spec[:nb] + (None,) * (y.ndim - nb))
    moved = y.shape
    merged = len(red) > 1 or len(out) > 1  # merge matrix axes only, never a batch axis
    if merged:
        sides = (math.prod(moved[nb : nb + len(red)]), math.prod(moved[nb + len(red) :]))
        y = y.reshape((*moved[:nb], *sides))
    c = coeffs.astype(compute_dtype(x.dtype))  # never rounded to a bfloat16 `ns_dtype`
    rows = [tuple(c)] * ns_steps if c.ndim == 1 else [tuple(r) for r in c]
    f = lambda m: _newton_schulz_matrix(m, rows, eps, preconditioning)
    for _ in range(nb):
        f = jax.vmap(f)
    y = f(y)
    if merged:
        y = y.reshape(moved)
    if gather:  # back to the incoming layout (a local slice)
        y = _reshard(y, spec)
    return y if perm == tuple(range(x.ndim)) else jnp.transpose(y, tuple(int(a) for a in np.argsort(perm)))


def scale_by_muon(
    ns_coeffs: Any = STANDARD_NS_COEFFS,
    ns_steps: int = 5,
    beta=0.95,
    eps=1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: Any = None,
    ns_dtype: Any = None,
    bias_correction: bool = True,
) -> GradientTransformation:
    """Muon's direction: the polar factor of the (Nesterov) momentum of each matrix.

    Update rule, for incoming update ``G`` of a matrix at step ``t = count + 1``::

        M_t = beta * M_{t-1} + (1 - beta) * G_t
        N_t = M_t / (1 - beta**t)                                              (nesterov=False)
        N_t = beta * M_t / (1 - beta**(t+1)) + (1 - beta) * G_t / (1 - beta**t)  (nesterov)
        O_t = NS(N_t)                  (`orthogonalize_via_newton_schulz`: ~ U V^T of N_t)
        u_t = O_t                      (adaptive=False)
        u_t = <N_t, O_t> * O_t         (adaptive: the sum runs over the whole leaf, as in Optax)

    with ``M_0 = 0``. With ``bias_correction=False`` the divisions by ``1 - beta**k`` go
    (torch.optim.Muon's and Keller Jordan's convention: ``N_t = beta M_t + (1 - beta) G_t``).
    Leaves with batch axes (stacked kernels) are orthogonalized per matrix.

    Args:
        ns_coeffs: The Newton-Schulz coefficients ``(a, b, c)`` (default: Keller Jordan's
            quintic), a sequence of triples (one per step; at most ``ns_steps`` of them),
            or a preset: ``"standard"``, ``"dion"`` (Optax's) or ``"polar_express"``
            (Amsel et al.: a different triple at each of the ``ns_steps`` steps).
        ns_steps: Newton-Schulz steps for a single triple, a Python int ``>= 0``.
        beta: Decay of the momentum, in [0, 1).
        eps: Added to the norm that normalizes the momentum, ``>= 0``.
        mu_dtype: Storage dtype of the momentum; None: the parameter's.
        nesterov: Orthogonalize the Nesterov look-ahead rather than the momentum.
        adaptive: Scale by the dual norm ``<N_t, O_t>`` (Bernstein & Newhouse 2024).
        preconditioning: ``"frobenius"`` (Optax's default), ``"spectral"``, ``"aol"`` or
            ``"schatten"``: how the iteration is started (see Optax).
        weight_dimension_numbers: Which axes of each leaf form the matrix: None (the last
            two axes of every leaf, leading axes batch; a leaf of rank < 2 is an error), a
            `MuonDimensionNumbers`, a tree of them with None for leaves that are not
            matrices (their updates pass unchanged and they keep no state), or a callable
            returning such a tree from the params.
        ns_dtype: Dtype of the Newton-Schulz iteration; None: the compute dtype (at least
            float32); ``jnp.bfloat16`` as in Keller Jordan's and torch's code (bit-identical
            to torch.optim.Muon's eagerly; under ``jit``, XLA keeps float32 between some
            bfloat16 ops unless ``compiler_options={"xla_allow_excess_precision": False}``).
        bias_correction: Divide by ``1 - beta**k`` (Optax); False for torch.optim.Muon's form.

    Returns:
        A `GradientTransformation` with state `MuonState(count, mu, ns_coeffs)`: one
        momentum per Muon leaf (``mu_dtype``), the coefficients, a counter.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_muon(ns_coeffs="polar_express", ns_steps=8)
        >>> g = jnp.array([[3.0, 0.0], [0.0, 0.5]])
        >>> tx.update(g, tx.init(g))[0].round(2)   # ~ U V^T = I: both directions get step 1
        Array([[1., 0.],
               [0., 1.]], dtype=float32)

    References:
        Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
        Bernstein & Newhouse, "Old Optimizer, New Norm: An Anthology", 2024.
        Amsel, Persson, Musco & Gower, "The Polar Express: Optimal Matrix Sign Methods and
        Their Application to the Muon Algorithm", 2025.
    """
    fn = "scale_by_muon"
    ns_steps = check_int(fn, "ns_steps", ns_steps, 0)
    rows = _ns_rows(fn, ns_coeffs, ns_steps)
    check_decay(fn, "beta", beta)
    check_nonnegative(fn, "eps", eps)
    mu_dtype = canonical_dtype(fn, "mu_dtype", mu_dtype)
    ns_dtype = canonical_dtype(fn, "ns_dtype", ns_dtype)
    for name, flag in (("nesterov", nesterov), ("adaptive", adaptive), ("bias_correction", bias_correction)):
        check_flag(fn, name, flag)
    _check_preconditioning(fn, preconditioning)
    name = "weight_dimension_numbers"

    def init_fn(params):
        refuse_flat(fn, params)
        dims = _dims_tree(fn, name, weight_dimension_numbers, params)
        mu = jax.tree.map(
            lambda z, d: None if d.value is None else z, zeros_like_params(params, mu_dtype), dims
        )
        coeffs = jnp.asarray(rows)
        if not jnp.issubdtype(coeffs.dtype, jnp.floating):
            coeffs = coeffs.astype(jax.dtypes.canonicalize_dtype(jnp.float64))
        return MuonState(count=zero_count(), mu=mu, ns_coeffs=coeffs)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        refuse_flat(fn, updates)
        check_tree_match(fn, updates, state.mu)
        dims = _dims_tree(fn, name, weight_dimension_numbers, updates)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, beta=beta)

        def leaf(g, m, d):
            if d.value is None:
                return g, m
            c = Compute(g, m)
            x = c(g)
            m = store(ema_update(c(m), x, beta), m)
            mt, b = c(m), c.hp(beta)
            if bias_correction and nesterov:
                n = b * (mt / corr("beta", c.dt, True)) + (1 - b) * (x / corr("beta", c.dt))
            elif bias_correction:
                n = mt / corr("beta", c.dt)
            else:
                n = b * mt + (1 - b) * x if nesterov else mt
            ndt = c.dt if ns_dtype is None else ns_dtype
            o = _orthogonalize(n.astype(ndt), d.value, state.ns_coeffs, ns_steps, eps, preconditioning)
            o = o.astype(c.dt)
            if adaptive:
                o = jnp.sum(n.conj() * o) * o
            return store(o, g), m

        if not jax.tree.leaves(updates):  # (map_leaves on no leaves returns one tree per input)
            return updates, state._replace(count=count)
        u, mu = map_leaves(leaf, updates, state.mu, dims)
        return u, MuonState(count=count, mu=mu, ns_coeffs=state.ns_coeffs)

    return GradientTransformation(init_fn, update_fn)


def _shape_scale(axes, shape, adjust_lr_fn, consistent_rms, dt):
    """The learning-rate scale of one matrix: its (rows, cols) = (reduction, output) sizes."""
    _, red, out = axes
    rows, cols = math.prod(shape[a] for a in red), math.prod(shape[a] for a in out)
    if adjust_lr_fn == "original":
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    if consistent_rms is None:
        return math.sqrt(max(1.0, cols / rows))
    return math.sqrt(max(rows, cols)) * hp(consistent_rms, dt)


def check_shape_scale_args(fn: str, consistent_rms: Any, adjust_lr_fn: Any) -> None:
    """``consistent_rms`` (None or ``>= 0``) and ``adjust_lr_fn`` (one of `ADJUST_LR_FNS`), not both."""
    if adjust_lr_fn not in ADJUST_LR_FNS:
        raise ValueError(f"{fn}: `adjust_lr_fn` must be one of {ADJUST_LR_FNS}, got {adjust_lr_fn!r}.")
    if consistent_rms is not None:
        check_nonnegative(fn, "consistent_rms", consistent_rms)
        if adjust_lr_fn is not None:
            raise ValueError(
                f"{fn}: `consistent_rms` must be None when `adjust_lr_fn` is given (both set the "
                f"scale; 'match_rms_adamw' is consistent_rms=0.2), got {consistent_rms!r}."
            )


def scale_by_shape(
    weight_dimension_numbers: Any = None,
    consistent_rms: Any = None,
    *,
    adjust_lr_fn: str | None = None,
) -> GradientTransformation:
    """Scale each matrix's update by a factor of its shape (Muon's learning-rate conventions).

    With ``(rows, cols)`` the sizes of the reduction and output sides of the matrix::

        u_t = sqrt(max(1, cols / rows)) * g_t           (default: Optax's width scaling)
        u_t = sqrt(max(rows, cols)) * consistent_rms * g_t      (consistent_rms, Optax)
        u_t = sqrt(max(1, rows / cols)) * g_t           (adjust_lr_fn="original")
        u_t = 0.2 * sqrt(max(rows, cols)) * g_t         (adjust_lr_fn="match_rms_adamw")

    ``"original"`` is torch.optim.Muon's default and Keller Jordan's ``max(1, rows/cols)**0.5``
    of the matrix as stored: PyTorch stores ``(out, in)``, so it is ``fan_out / fan_in``
    there, the same number that Optax's default computes for a JAX ``(in, out)`` kernel.
    Leaves without dimension numbers pass unchanged.

    Args:
        weight_dimension_numbers: As in `scale_by_muon`.
        consistent_rms: None, or the target RMS (``0.2`` matches AdamW, Liu et al. 2025).
        adjust_lr_fn: None (Optax's conventions above), ``"original"`` or ``"match_rms_adamw"``
            (torch.optim.Muon's names).

    Returns:
        A stateless `GradientTransformation`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain._transforms.muon import scale_by_shape
        >>> tx = scale_by_shape()
        >>> tx.update(jnp.ones((2, 8)), tx.init(None))[0][0, 0]   # sqrt(8 / 2)
        Array(2., dtype=float32)

    References:
        Liu et al., "Muon is Scalable for LLM Training", 2025.
    """
    fn = "scale_by_shape"
    check_shape_scale_args(fn, consistent_rms, adjust_lr_fn)

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_floating(fn, updates)
        dims = _dims_tree(fn, "weight_dimension_numbers", weight_dimension_numbers, updates)

        def leaf(g, d):
            if d.value is None:
                return (g,)
            c = Compute(g)
            return (store(c(g) * _shape_scale(d.value, jnp.shape(g), adjust_lr_fn, consistent_rms, c.dt), g),)

        (u,) = map_leaves(leaf, updates, dims) if jax.tree.leaves(updates) else (updates,)
        return u, state

    return GradientTransformation(init_fn, update_fn)
