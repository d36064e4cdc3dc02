"""Losses, in the conventions (names, arguments, defaults) of Optax's ``optax.losses``.

Per-example losses (no reduction; ``.mean()`` them yourself), by family:

- regression: `squared_error`, `l2_loss`, `huber_loss`, `log_cosh`,
  `cosine_similarity`, `cosine_distance`;
- classification: `softmax_cross_entropy`, `softmax_cross_entropy_with_integer_labels`,
  `safe_softmax_cross_entropy`, `sigmoid_binary_cross_entropy`, `sigmoid_focal_loss`,
  `poly_loss_cross_entropy`, and the label transform `smooth_labels`;
- margin: `hinge_loss`, `perceptron_loss`, `multiclass_hinge_loss`,
  `multiclass_perceptron_loss`;
- Fenchel-Young: `sparsemax_loss`, `multiclass_sparsemax_loss`, `make_fenchel_young_loss`;
- divergences: `kl_divergence`, `kl_divergence_with_log_targets`,
  `generalized_kl_divergence` (and its deprecated name `convex_kl_divergence`);
- sequences: `ctc_loss`, `ctc_loss_with_forward_probs`;
- segmentation: `dice_loss`, `binary_dice_loss`, `multiclass_generalized_dice_loss`;
- metric learning: `triplet_margin_loss`.

Reduced, as in Optax: `ntxent` (mean over positive pairs), `ranking_softmax_loss`
(``reduce_fn=jnp.mean`` by default), `multiclass_generalized_dice_loss` (mean).
"""

from gradchain.losses._classification import poly_loss_cross_entropy as poly_loss_cross_entropy
from gradchain.losses._classification import safe_softmax_cross_entropy as safe_softmax_cross_entropy
from gradchain.losses._classification import sigmoid_focal_loss as sigmoid_focal_loss
from gradchain.losses._classification import smooth_labels as smooth_labels
from gradchain.losses._ctc import ctc_loss as ctc_loss
from gradchain.losses._ctc import ctc_loss_with_forward_probs as ctc_loss_with_forward_probs
from gradchain.losses._divergence import convex_kl_divergence as convex_kl_divergence
from gradchain.losses._divergence import generalized_kl_divergence as generalized_kl_divergence
from gradchain.losses._divergence import kl_divergence as kl_divergence
from gradchain.losses._divergence import kl_divergence_with_log_targets as kl_divergence_with_log_targets
from gradchain.losses._fenchel_young import make_fenchel_young_loss as make_fenchel_young_loss
from gradchain.losses._fenchel_young import multiclass_sparsemax_loss as multiclass_sparsemax_loss
from gradchain.losses._fenchel_young import sparsemax_loss as sparsemax_loss
from gradchain.losses._losses import huber_loss as huber_loss
from gradchain.losses._losses import l2_loss as l2_loss
from gradchain.losses._losses import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from gradchain.losses._losses import softmax_cross_entropy as softmax_cross_entropy
from gradchain.losses._losses import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from gradchain.losses._losses import squared_error as squared_error
from gradchain.losses._margin import hinge_loss as hinge_loss
from gradchain.losses._margin import multiclass_hinge_loss as multiclass_hinge_loss
from gradchain.losses._margin import multiclass_perceptron_loss as multiclass_perceptron_loss
from gradchain.losses._margin import perceptron_loss as perceptron_loss
from gradchain.losses._ranking import ranking_softmax_loss as ranking_softmax_loss
from gradchain.losses._regression import cosine_distance as cosine_distance
from gradchain.losses._regression import cosine_similarity as cosine_similarity
from gradchain.losses._regression import log_cosh as log_cosh
from gradchain.losses._segmentation import binary_dice_loss as binary_dice_loss
from gradchain.losses._segmentation import dice_loss as dice_loss
from gradchain.losses._segmentation import (
    multiclass_generalized_dice_loss as multiclass_generalized_dice_loss,
)
from gradchain.losses._self_supervised import ntxent as ntxent
from gradchain.losses._self_supervised import triplet_margin_loss as triplet_margin_loss

__all__ = [
    "binary_dice_loss",
    "convex_kl_divergence",
    "cosine_distance",
    "cosine_similarity",
    "ctc_loss",
    "ctc_loss_with_forward_probs",
    "dice_loss",
    "generalized_kl_divergence",
    "hinge_loss",
    "huber_loss",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "l2_loss",
    "log_cosh",
    "make_fenchel_young_loss",
    "multiclass_generalized_dice_loss",
    "multiclass_hinge_loss",
    "multiclass_perceptron_loss",
    "multiclass_sparsemax_loss",
    "ntxent",
    "perceptron_loss",
    "poly_loss_cross_entropy",
    "ranking_softmax_loss",
    "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_labels",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "sparsemax_loss",
    "squared_error",
    "triplet_margin_loss",
]
