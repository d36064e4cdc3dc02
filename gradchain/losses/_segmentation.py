"""Segmentation losses, as in Optax: `dice_loss`, `binary_dice_loss`,
`multiclass_generalized_dice_loss`.

Inputs are ``[batch, *spatial, num_classes]`` (class axis last); the overlap sums run
over the spatial axes by default. Predictions are logits (turned into probabilities by
a softmax over the classes, or a sigmoid when there is one class) unless
``apply_softmax=False``/``apply_sigmoid=False`` says they are probabilities already.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._numerics import hp, is_tracer
from gradchain._validate import check_nonnegative
from gradchain.losses._common import axes, broadcast, cast_real, floating, promote_float, same_shape

__all__ = ["binary_dice_loss", "dice_loss", "multiclass_generalized_dice_loss"]

_REDUCTIONS = ("mean", "sum", "none")


def _inputs(fn: str, predictions: Any, targets: Any) -> tuple[jax.Array, jax.Array]:
    p = floating(fn, "predictions", predictions)
    t = jnp.asarray(targets)
    if p.ndim == t.ndim - 1:
        p = p[..., None]
    elif t.ndim == p.ndim - 1:
        t = t[..., None]
    same_shape(fn, "predictions", p, "targets", t)
    if p.ndim < 1:
        raise ValueError(
            f"{fn}: `predictions` must have a class axis (at least one dimension), got shape ()."
        )
    dtype = promote_float(fn, "targets", t, p.dtype)
    return p.astype(dtype), t.astype(dtype)


def _probabilities(fn: str, p: jax.Array, normalize: bool, flag: str) -> jax.Array:
    if normalize:
        return jax.nn.sigmoid(p) if p.shape[-1] == 1 else jax.nn.softmax(p, axis=-1)
    sums = jnp.sum(p, axis=-1) if p.shape[-1] > 1 else None
    if sums is not None and not is_tracer(sums):  # values are checked eagerly only
        sums = np.asarray(sums)
        if not np.allclose(sums, 1.0, rtol=1e-5):
            raise ValueError(
                f"{fn}: `predictions` must be probabilities summing to 1 over the class axis when "
                f"`{flag}=False`, got sums in [{sums.min():.6g}, {sums.max():.6g}]."
            )
    return p


def _dice(
    fn, predictions, targets, *, class_weights, smooth, alpha, beta, normalize, flag, reduction,
    ignore_background, axis,
) -> jax.Array:  # fmt: skip
    check_nonnegative(fn, "smooth", smooth)
    check_nonnegative(fn, "alpha", alpha)
    check_nonnegative(fn, "beta", beta)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: `reduction` must be 'mean', 'sum' or 'none', got {reduction!r}.")
    p, t = _inputs(fn, predictions, targets)
    classes = p.shape[-1]
    if axis is None:
        red = tuple(range(1, p.ndim - 1))
    else:
        red = axes(fn, axis, p.ndim, p.shape)
        if p.ndim - 1 in red:
            raise ValueError(f"{fn}: `axis` must not include the class axis (the last one), got {axis!r}.")
    probs = _probabilities(fn, p, normalize, flag)
    intersection = jnp.sum(probs * t, axis=red)
    false_pos = jnp.sum(probs, axis=red) - intersection
    false_neg = jnp.sum(t, axis=red) - intersection
    s = hp(smooth, p.dtype)
    denominator = intersection + hp(alpha, p.dtype) * false_pos + hp(beta, p.dtype) * false_neg + s
    loss = 1 - (intersection + s) / denominator  # [..., classes]
    if class_weights is not None:
        cw = cast_real(fn, "class_weights", class_weights, p.dtype)
        if cw.shape != (classes,):
            raise ValueError(
                f"{fn}: `class_weights` must have shape (num_classes,) = ({classes},), got {cw.shape}."
            )
        loss = loss * broadcast(fn, "class_weights", cw, loss.shape, "the per-class losses")
    if ignore_background and classes > 1:
        loss = loss[..., 1:]
    if reduction == "mean":
        return jnp.mean(loss, axis=-1)
    if reduction == "sum":
        return jnp.sum(loss, axis=-1)
    return loss


def dice_loss(
    predictions,
    targets,
    *,
    class_weights=None,
    smooth=1.0,
    alpha=0.5,
    beta=0.5,
    apply_softmax: bool = True,
    reduction: str = "mean",
    ignore_background: bool = False,
    axis=None,
) -> jax.Array:
    """Soft Dice loss (Tversky loss for ``alpha != beta``), per class then reduced.

    With probabilities ``p`` (from the logits) and targets ``t``, sums over ``axis``
    (default: the spatial axes, all but the first and the last) for each class ``c``::

        I_c    = sum_i p[i, c] * t[i, c]
        FP_c   = sum_i p[i, c] - I_c
        FN_c   = sum_i t[i, c] - I_c
        dice_c = 1 - (I_c + smooth) / (I_c + alpha * FP_c + beta * FN_c + smooth)
        loss   = reduction_c (class_weights[c] * dice_c)      (over the classes kept)

    ``alpha = beta = 0.5`` is the Dice coefficient; ``alpha > beta`` penalizes false
    positives more. With ``ignore_background`` (and more than one class) class 0 is
    dropped before the reduction.

    Args:
        predictions: Logits, shape ``[..., num_classes]``; for binary segmentation
            ``[..., 1]`` (sigmoid) or ``[...]`` (one dimension less than ``targets``).
        targets: One-hot or soft targets of the same shape (or one dimension less).
        class_weights: Optional weights, shape ``[num_classes]``.
        smooth: Added to numerator and denominator, ``>= 0`` (``> 0`` keeps an empty
            class away from ``0 / 0``).
        alpha: Weight of the false positives, ``>= 0``.
        beta: Weight of the false negatives, ``>= 0``.
        apply_softmax: Whether ``predictions`` are logits. If ``False`` they must be
            probabilities summing to 1 over the classes (checked when not traced).
        reduction: ``"mean"`` or ``"sum"`` over the classes, or ``"none"``.
        ignore_background: Drop class 0 from the loss.
        axis: The axis or axes of the overlap sums (not the class axis); ``None``
            for the spatial axes.

    Returns:
        The losses, of the inputs' shape without ``axis`` and (unless
        ``reduction="none"``) without the class axis: ``[batch]`` by default.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> logits = jnp.array([[[2.0, -1.0], [0.5, 0.3], [-1.0, 1.5]]])   # [batch, pixels, classes]
        >>> targets = jnp.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
        >>> [round(float(v), 4) for v in losses.dice_loss(logits, targets)]
        [0.1162]
        >>> [round(float(v), 4) for v in losses.dice_loss(logits, targets, reduction="none")[0]]
        [0.1028, 0.1297]

    References:
        Milletari, Navab & Ahmadi, "V-Net: Fully Convolutional Neural Networks for
        Volumetric Medical Image Segmentation", 3DV, 2016.

        Salehi, Erdogmus & Gholipour, "Tversky loss function for image segmentation
        using 3D fully convolutional deep networks", MLMI, 2017.
    """
    return _dice(
        "dice_loss", predictions, targets, class_weights=class_weights, smooth=smooth, alpha=alpha,
        beta=beta, normalize=apply_softmax, flag="apply_softmax", reduction=reduction,
        ignore_background=ignore_background, axis=axis,
    )  # fmt: skip


def binary_dice_loss(predictions, targets, *, smooth=1.0, apply_sigmoid: bool = True) -> jax.Array:
    """Dice loss of one foreground class: `dice_loss` of sigmoid probabilities.

    Inputs of equal shape ``[batch, *spatial]`` (last axis not 1) get a class axis of
    size 1; then, as in `dice_loss` with ``alpha = beta = 0.5``, over the spatial axes::

        I    = sum_i p[i] * t[i]
        loss = 1 - (2 * I + 2 * smooth) / (sum_i p[i] + sum_i t[i] + 2 * smooth)

    With ``apply_sigmoid=False`` the predictions are probabilities (Optax 0.2.8 then
    refuses every input that is not all ones, by checking that the single class sums
    to 1).

    Args:
        predictions: Logits (or probabilities), shape ``[batch, ...]`` or ``[..., 1]``.
        targets: Binary or soft targets, the same shape (or one dimension less).
        smooth: Smoothing term, ``>= 0``.
        apply_sigmoid: Whether ``predictions`` are logits.

    Returns:
        The losses, shape ``[batch]``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> logits = jnp.array([[2.0, -1.0, 0.5], [-3.0, -3.0, 3.0]])
        >>> targets = jnp.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
        >>> [round(float(v), 4) for v in losses.binary_dice_loss(logits, targets)]
        [0.1327, 0.0352]

    References:
        Milletari, Navab & Ahmadi, "V-Net: Fully Convolutional Neural Networks for
        Volumetric Medical Image Segmentation", 3DV, 2016.
    """
    fn = "binary_dice_loss"
    p = floating(fn, "predictions", predictions)
    t = jnp.asarray(targets)
    if p.ndim == t.ndim and p.ndim > 0 and p.shape[-1] != 1:
        p, t = p[..., None], t[..., None]
    return _dice(
        fn, p, t, class_weights=None, smooth=smooth, alpha=0.5, beta=0.5, normalize=apply_sigmoid,
        flag="apply_sigmoid", reduction="mean", ignore_background=False, axis=None,
    )  # fmt: skip


def multiclass_generalized_dice_loss(
    predictions, targets, *, smooth=1.0, apply_softmax: bool = True, ignore_background: bool = False
) -> jax.Array:
    """Generalized Dice loss: `dice_loss` with inverse squared class-frequency weights.

    With the class frequencies ``f_c`` (target sums over all axes but the class axis)
    and ``C`` classes::

        w_c  = 1 / (f_c**2 + 1e-7)
        w_c  = C * w_c / sum_c w_c
        loss = mean over batch and classes of dice_loss(..., class_weights=w, reduction="none")

    Args:
        predictions: Logits, shape ``[batch, *spatial, num_classes]``.
        targets: One-hot targets, the same shape.
        smooth: Smoothing term, ``>= 0``.
        apply_softmax: Whether ``predictions`` are logits.
        ignore_background: Drop class 0 (after weighting) from the mean.

    Returns:
        The loss, a scalar.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradchain import losses
        >>> logits = jnp.array([[[2.0, -1.0], [0.5, 0.3], [-1.0, 1.5]]])
        >>> targets = jnp.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
        >>> round(float(losses.multiclass_generalized_dice_loss(logits, targets)), 4)
        0.1243

    References:
        Sudre et al., "Generalised Dice overlap as a deep learning loss function for
        highly unbalanced segmentations", DLMIA, 2017.
    """
    fn = "multiclass_generalized_dice_loss"
    p = floating(fn, "predictions", predictions)
    t = jnp.asarray(targets)
    same_shape(fn, "predictions", p, "targets", t)
    if p.ndim < 1:
        raise ValueError(
            f"{fn}: `predictions` must have a class axis (at least one dimension), got shape ()."
        )
    t = t.astype(promote_float(fn, "targets", t, p.dtype))
    frequencies = jnp.sum(t, axis=tuple(range(t.ndim - 1)))
    w = 1 / (frequencies * frequencies + 1e-7)
    w = p.shape[-1] * w / jnp.sum(w)
    per_class = _dice(
        fn, p, t, class_weights=w, smooth=smooth, alpha=0.5, beta=0.5, normalize=apply_softmax,
        flag="apply_softmax", reduction="none", ignore_background=ignore_background, axis=None,
    )  # fmt: skip
    return jnp.mean(per_class)
