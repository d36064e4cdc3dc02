"""Muon: orthogonalized momentum for the matrices, AdamW for every other leaf."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._chain import chain
from gradchain._masking import resolve_mask
from gradchain._optimizers.adam import adamw
from gradchain._optimizers.common import Mask, as_mask, learning_rate_step, named_errors
from gradchain._transforms.muon import (
    STANDARD_NS_COEFFS,
    MuonDimensionNumbers,
    check_shape_scale_args,
    resolve_dimension_numbers,
    scale_by_muon,
    scale_by_shape,
)
from gradchain._transforms.regularization import add_decayed_weights
from gradchain._validate import check_decay, check_nonnegative
from gradchain._wrappers.masking import partition

__all__ = ["muon"]

_DIMS = "muon_weight_dimension_numbers"


def _is_spec_leaf(x) -> bool:
    return x is None or isinstance(x, MuonDimensionNumbers)


def _labels(muon_mask: Mask, dims_spec: Any):
    """``params -> tree of "muon" / "adam"``: by ``muon_mask``, else the dimension numbers, else rank 2."""

    def labels(params):
        if muon_mask is not None:
            mask = resolve_mask("muon", muon_mask, params, "muon_mask")
            for (path, p), m in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(mask)):
                if m and jnp.ndim(p) < 2:
                    raise ValueError(
                        f"muon: `muon_mask` must select leaves of rank >= 2 (matrices), got True for the "
                        f"leaf {jax.tree_util.keystr(path)} of shape {jnp.shape(p)}."
                    )
            return jax.tree.map(lambda m: "muon" if m else "adam", mask)
        if dims_spec is None:
            return jax.tree.map(lambda p: "muon" if jnp.ndim(p) == 2 else "adam", params)
        axes = resolve_dimension_numbers("muon", _DIMS, dims_spec, params)
        return jax.tree.structure(params).unflatten(["adam" if a is None else "muon" for a in axes])

    return labels


def _muon_dims(dims_spec: Any):
    """The dimension numbers of the Muon leaves (the others are `MaskedNode` in ``tree``)."""
    if dims_spec is None:
        return None  # each Muon leaf: its last two axes

    def dims(tree):
        spec = dims_spec(tree) if callable(dims_spec) and not _is_spec_leaf(dims_spec) else dims_spec
        default = MuonDimensionNumbers(-2, -1)  # a leaf chosen by `muon_mask` with no numbers
        return jax.tree.map(lambda d: default if d is None else d, spec, is_leaf=_is_spec_leaf)

    return dims


def muon(
    learning_rate: ScalarOrSchedule,
    ns_coeffs: Any = STANDARD_NS_COEFFS,
    ns_steps: int = 5,
    beta=0.95,
    eps=1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Mask = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1=0.9,
    adam_b2=0.999,
    adam_eps_root=0.0,
    adam_weight_decay: ScalarOrSchedule = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: Any = None,
    consistent_rms: Any = None,
    muon_mask: Mask = None,
    adjust_lr_fn: str | None = None,
    ns_dtype: Any = None,
    bias_correction: bool = True,
) -> GradientTransformation:
    """Muon: Momentum Orthogonalized by Newton-Schulz for matrices, AdamW for the rest.

    Optax's ``optax.contrib.muon``, with its arguments and numbers: a `partition` of::

        "muon": chain(scale_by_muon(ns_coeffs, ns_steps, beta, eps, mu_dtype, ...),
                      scale_by_shape(dims, consistent_rms, adjust_lr_fn=...),
                      add_decayed_weights(weight_decay, weight_decay_mask),
                      scale_by_learning_rate(learning_rate))
        "adam": adamw(adam_learning_rate or learning_rate, adam_b1, adam_b2, eps, adam_eps_root,
                      mu_dtype, adam_weight_decay, nesterov=nesterov)

    so a matrix moves by ``-lr * (scale(shape) * O_t + weight_decay * p)`` with ``O_t`` the
    orthogonalized momentum of `scale_by_muon` and ``scale(shape)`` that of `scale_by_shape`
    (by default ``sqrt(max(1, fan_out / fan_in))``); the weight decay is multiplied by the
    learning rate but not by the shape scale (as in torch.optim.Muon). Note the AdamW branch
    is NAdamW by default (Optax passes ``nesterov`` on) and shares ``eps``.

    Which leaves are Muon's: the 2-D ones (Optax's default); or those with dimension
    numbers in ``muon_weight_dimension_numbers`` (None entries: AdamW); or, with
    ``muon_mask``, those it marks True, which may be stacked kernels (their last two axes
    form the matrix, leading axes are batch, unless ``muon_weight_dimension_numbers`` says
    otherwise). torch.optim.Muon's conventions are ``bias_correction=False,
    adjust_lr_fn="original", ns_dtype=jnp.bfloat16, eps=1e-7`` (it clamps the norm at
    ``eps`` where this adds ``eps``: the same unless the momentum is ~0), with its defaults
    ``learning_rate=1e-3, weight_decay=0.1``.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        ns_coeffs, ns_steps, beta, eps, mu_dtype, nesterov, adaptive, preconditioning,
            ns_dtype, bias_correction: As in `scale_by_muon` (``eps`` also AdamW's).
        weight_decay: Decoupled weight decay of the Muon leaves, ``>= 0`` or a schedule.
        weight_decay_mask: Which Muon leaves decay: None (all), a pytree of bools, or a
            callable returning one.
        adam_b1, adam_b2, adam_eps_root, adam_weight_decay: AdamW's for the other leaves.
        adam_learning_rate: AdamW's learning rate; None: ``learning_rate``.
        muon_weight_dimension_numbers: A `MuonDimensionNumbers`, a tree of them and None
            (None: an AdamW leaf), or a callable returning one from the params.
        consistent_rms: None, or scale updates to this RMS (see `scale_by_shape`).
        muon_mask: Which leaves are Muon's: a pytree of bools or a callable returning one.
        adjust_lr_fn: None (Optax's scale), ``"original"`` or ``"match_rms_adamw"``
            (torch.optim.Muon's, see `scale_by_shape`).

    Returns:
        A `GradientTransformation` with state ``PartitionState({"muon": ..., "adam": ...})``
        (Optax's structure); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.muon(0.1)
        >>> p = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
        >>> g = {"w": jnp.array([[2.0, 0.0], [0.0, 1.0]]), "b": jnp.array([1.0, -1.0])}
        >>> u, _ = tx.update(g, tx.init(p), p)
        >>> u["w"].diagonal().round(2)   # -0.1 * singular values pushed into a band around 1
        Array([-0.07, -0.11], dtype=float32)
        >>> u["b"]            # AdamW's first step: -0.1 * sign(g)
        Array([-0.1,  0.1], dtype=float32)

    References:
        Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
        Liu et al., "Muon is Scalable for LLM Training", 2025.
    """
    fn = "muon"
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        check_decay(fn, "adam_b1", adam_b1)
        check_decay(fn, "adam_b2", adam_b2)
        check_nonnegative(fn, "adam_eps_root", adam_eps_root)
        check_nonnegative(fn, "adam_weight_decay", adam_weight_decay, allow_schedule=True)
        if adam_learning_rate is not None:
            check_nonnegative(fn, "adam_learning_rate", adam_learning_rate, allow_schedule=True)
        check_shape_scale_args(fn, consistent_rms, adjust_lr_fn)
        dims = _muon_dims(muon_weight_dimension_numbers)
        muon_tx = chain(
            scale_by_muon(
                ns_coeffs,
                ns_steps,
                beta,
                eps,
                mu_dtype,
                nesterov=nesterov,
                adaptive=adaptive,
                preconditioning=preconditioning,
                weight_dimension_numbers=dims,
                ns_dtype=ns_dtype,
                bias_correction=bias_correction,
            ),
            scale_by_shape(dims, consistent_rms, adjust_lr_fn=adjust_lr_fn),
            add_decayed_weights(weight_decay, as_mask(weight_decay_mask)),
            lr,
        )
        adam_lr = learning_rate if adam_learning_rate is None else adam_learning_rate
        adam_tx = adamw(
            adam_lr, adam_b1, adam_b2, eps, adam_eps_root, mu_dtype, adam_weight_decay, nesterov=nesterov
        )
        return partition(
            {"muon": muon_tx, "adam": adam_tx}, _labels(muon_mask, muon_weight_dimension_numbers)
        )
