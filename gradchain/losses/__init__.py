"""Losses (per example, no reduction), in the conventions of Optax.

Regression: `squared_error`, `l2_loss`, `huber_loss`. Classification:
`softmax_cross_entropy`, `softmax_cross_entropy_with_integer_labels`,
`sigmoid_binary_cross_entropy`. Reduce (e.g. ``.mean()``) yourself.
"""

from gradchain.losses._losses import huber_loss as huber_loss
from gradchain.losses._losses import l2_loss as l2_loss
from gradchain.losses._losses import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from gradchain.losses._losses import softmax_cross_entropy as softmax_cross_entropy
from gradchain.losses._losses import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from gradchain.losses._losses import squared_error as squared_error

__all__ = [
    "huber_loss",
    "l2_loss",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "squared_error",
]
