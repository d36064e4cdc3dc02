"""gradchain: composable gradient transformations for JAX.

Every technique is a pure ``(init, update)`` pair (`GradientTransformation`); every
optimizer is a `chain` of them. See README.md for the tour and the API table.
"""

from gradchain import losses as losses
from gradchain import projections as projections
from gradchain import schedules as schedules
from gradchain._base import EmptyState as EmptyState
from gradchain._base import GradientTransformation as GradientTransformation
from gradchain._base import OptState as OptState
from gradchain._base import Params as Params
from gradchain._base import ScalarOrSchedule as ScalarOrSchedule
from gradchain._base import Schedule as Schedule
from gradchain._base import TransformInitFn as TransformInitFn
from gradchain._base import TransformUpdateFn as TransformUpdateFn
from gradchain._base import Updates as Updates
from gradchain._base import identity as identity
from gradchain._base import stateless as stateless
from gradchain._chain import chain as chain
from gradchain._chain import named_chain as named_chain
from gradchain._masking import MaskedNode as MaskedNode
from gradchain._masking import MaskedState as MaskedState
from gradchain._masking import masked as masked
from gradchain._tree import global_norm as global_norm
from gradchain._update import apply_updates as apply_updates
from gradchain._update import incremental_update as incremental_update
from gradchain.flat import FlatLayout as FlatLayout
from gradchain.flat import ravel_by_dtype as ravel_by_dtype
from gradchain.flat import unraveled as unraveled
from gradchain.losses import convex_kl_divergence as convex_kl_divergence
from gradchain.losses import cosine_distance as cosine_distance
from gradchain.losses import cosine_similarity as cosine_similarity
from gradchain.losses import ctc_loss as ctc_loss
from gradchain.losses import ctc_loss_with_forward_probs as ctc_loss_with_forward_probs
from gradchain.losses import generalized_kl_divergence as generalized_kl_divergence
from gradchain.losses import hinge_loss as hinge_loss
from gradchain.losses import huber_loss as huber_loss
from gradchain.losses import kl_divergence as kl_divergence
from gradchain.losses import l2_loss as l2_loss
from gradchain.losses import log_cosh as log_cosh
from gradchain.losses import ntxent as ntxent
from gradchain.losses import safe_softmax_cross_entropy as safe_softmax_cross_entropy
from gradchain.losses import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from gradchain.losses import sigmoid_focal_loss as sigmoid_focal_loss
from gradchain.losses import smooth_labels as smooth_labels
from gradchain.losses import softmax_cross_entropy as softmax_cross_entropy
from gradchain.losses import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from gradchain.losses import squared_error as squared_error
from gradchain.lr_finder import LRFinderResult as LRFinderResult
from gradchain.lr_finder import lr_finder as lr_finder
from gradchain.optimizers import adabelief as adabelief
from gradchain.optimizers import adafactor as adafactor
from gradchain.optimizers import adagrad as adagrad
from gradchain.optimizers import adam as adam
from gradchain.optimizers import adam_8bit as adam_8bit
from gradchain.optimizers import adamax as adamax
from gradchain.optimizers import adamw as adamw
from gradchain.optimizers import amsgrad as amsgrad
from gradchain.optimizers import lamb as lamb
from gradchain.optimizers import lars as lars
from gradchain.optimizers import lion as lion
from gradchain.optimizers import nadam as nadam
from gradchain.optimizers import nadamw as nadamw
from gradchain.optimizers import radam as radam
from gradchain.optimizers import rmsprop as rmsprop
from gradchain.optimizers import sgd as sgd
from gradchain.schedules import constant_schedule as constant_schedule
from gradchain.schedules import cosine_decay_schedule as cosine_decay_schedule
from gradchain.schedules import cosine_onecycle_schedule as cosine_onecycle_schedule
from gradchain.schedules import exponential_decay as exponential_decay
from gradchain.schedules import inverse_time_decay as inverse_time_decay
from gradchain.schedules import join_schedules as join_schedules
from gradchain.schedules import linear_onecycle_schedule as linear_onecycle_schedule
from gradchain.schedules import linear_schedule as linear_schedule
from gradchain.schedules import piecewise_constant_schedule as piecewise_constant_schedule
from gradchain.schedules import piecewise_interpolate_schedule as piecewise_interpolate_schedule
from gradchain.schedules import polynomial_schedule as polynomial_schedule
from gradchain.schedules import sgdr_schedule as sgdr_schedule
from gradchain.schedules import warmup_constant_schedule as warmup_constant_schedule
from gradchain.schedules import warmup_cosine_decay_schedule as warmup_cosine_decay_schedule
from gradchain.schedules import warmup_exponential_decay_schedule as warmup_exponential_decay_schedule
from gradchain.schedules import warmup_inverse_sqrt_schedule as warmup_inverse_sqrt_schedule
from gradchain.schedules import warmup_stable_decay_schedule as warmup_stable_decay_schedule
from gradchain.sharding import shard_state as shard_state
from gradchain.sharding import state_shardings as state_shardings
from gradchain.transforms.accumulation import AccumulateGradientsState as AccumulateGradientsState
from gradchain.transforms.accumulation import accumulate_gradients as accumulate_gradients
from gradchain.transforms.accumulation import microbatched_value_and_grad as microbatched_value_and_grad
from gradchain.transforms.adaptive import ScaleByAdamState as ScaleByAdamState
from gradchain.transforms.adaptive import ScaleByAmsgradState as ScaleByAmsgradState
from gradchain.transforms.adaptive import ScaleByRmsState as ScaleByRmsState
from gradchain.transforms.adaptive import ScaleByRssState as ScaleByRssState
from gradchain.transforms.adaptive import ScaleByRStdDevState as ScaleByRStdDevState
from gradchain.transforms.adaptive import scale_by_adam as scale_by_adam
from gradchain.transforms.adaptive import scale_by_amsgrad as scale_by_amsgrad
from gradchain.transforms.adaptive import scale_by_rms as scale_by_rms
from gradchain.transforms.adaptive import scale_by_rss as scale_by_rss
from gradchain.transforms.adaptive import scale_by_stddev as scale_by_stddev
from gradchain.transforms.adaptive_clipping import AutoClipState as AutoClipState
from gradchain.transforms.adaptive_clipping import ZClipState as ZClipState
from gradchain.transforms.adaptive_clipping import autoclip as autoclip
from gradchain.transforms.adaptive_clipping import zclip as zclip
from gradchain.transforms.adaptive_more import ScaleByBeliefState as ScaleByBeliefState
from gradchain.transforms.adaptive_more import ScaleByLionState as ScaleByLionState
from gradchain.transforms.adaptive_more import scale_by_adamax as scale_by_adamax
from gradchain.transforms.adaptive_more import scale_by_belief as scale_by_belief
from gradchain.transforms.adaptive_more import scale_by_lion as scale_by_lion
from gradchain.transforms.adaptive_more import scale_by_radam as scale_by_radam
from gradchain.transforms.clipping import ClipByGlobalNormState as ClipByGlobalNormState
from gradchain.transforms.clipping import adaptive_grad_clip as adaptive_grad_clip
from gradchain.transforms.clipping import clip_by_block_rms as clip_by_block_rms
from gradchain.transforms.clipping import clip_by_global_norm as clip_by_global_norm
from gradchain.transforms.clipping import clip_by_norm as clip_by_norm
from gradchain.transforms.clipping import clip_by_value as clip_by_value
from gradchain.transforms.control import EarlyStoppingState as EarlyStoppingState
from gradchain.transforms.control import ReduceLROnPlateauState as ReduceLROnPlateauState
from gradchain.transforms.control import early_stopping as early_stopping
from gradchain.transforms.control import reduce_on_plateau as reduce_on_plateau
from gradchain.transforms.layerwise import FactoredState as FactoredState
from gradchain.transforms.layerwise import scale_by_factored_rms as scale_by_factored_rms
from gradchain.transforms.layerwise import scale_by_param_block_norm as scale_by_param_block_norm
from gradchain.transforms.layerwise import scale_by_param_block_rms as scale_by_param_block_rms
from gradchain.transforms.layerwise import scale_by_trust_ratio as scale_by_trust_ratio
from gradchain.transforms.loss_scaling import DynamicLossScaleState as DynamicLossScaleState
from gradchain.transforms.loss_scaling import dynamic_loss_scaling as dynamic_loss_scaling
from gradchain.transforms.loss_scaling import loss_scale as loss_scale
from gradchain.transforms.loss_scaling import scale_loss as scale_loss
from gradchain.transforms.momentum import EmaState as EmaState
from gradchain.transforms.momentum import TraceState as TraceState
from gradchain.transforms.momentum import ema as ema
from gradchain.transforms.momentum import trace as trace
from gradchain.transforms.monitoring import GradientHealthState as GradientHealthState
from gradchain.transforms.monitoring import gradient_health as gradient_health
from gradchain.transforms.monitoring import health_report as health_report
from gradchain.transforms.quantized import QuantizedArray as QuantizedArray
from gradchain.transforms.quantized import ScaleByAdam8bitState as ScaleByAdam8bitState
from gradchain.transforms.quantized import dequantize_blockwise as dequantize_blockwise
from gradchain.transforms.quantized import quantize_blockwise as quantize_blockwise
from gradchain.transforms.quantized import scale_by_adam_8bit as scale_by_adam_8bit
from gradchain.transforms.regularization import AddDecayedWeightsState as AddDecayedWeightsState
from gradchain.transforms.regularization import AddL1PenaltyState as AddL1PenaltyState
from gradchain.transforms.regularization import L1ProximalState as L1ProximalState
from gradchain.transforms.regularization import add_decayed_weights as add_decayed_weights
from gradchain.transforms.regularization import add_l1_penalty as add_l1_penalty
from gradchain.transforms.regularization import l1_proximal as l1_proximal
from gradchain.transforms.scaling import ScaleByScheduleState as ScaleByScheduleState
from gradchain.transforms.scaling import centralize as centralize
from gradchain.transforms.scaling import scale as scale
from gradchain.transforms.scaling import scale_by_learning_rate as scale_by_learning_rate
from gradchain.transforms.scaling import scale_by_schedule as scale_by_schedule
from gradchain.wrappers import ApplyIfFiniteState as ApplyIfFiniteState
from gradchain.wrappers import InjectHyperparamsState as InjectHyperparamsState
from gradchain.wrappers import PartitionState as PartitionState
from gradchain.wrappers import apply_if_finite as apply_if_finite
from gradchain.wrappers import freeze as freeze
from gradchain.wrappers import inject_hyperparams as inject_hyperparams
from gradchain.wrappers import partition as partition
from gradchain.wrappers import selective_transform as selective_transform
from gradchain.wrappers import set_to_zero as set_to_zero

__all__ = [
    "AccumulateGradientsState",
    "AddDecayedWeightsState",
    "AddL1PenaltyState",
    "ApplyIfFiniteState",
    "AutoClipState",
    "ClipByGlobalNormState",
    "DynamicLossScaleState",
    "EarlyStoppingState",
    "EmaState",
    "EmptyState",
    "FactoredState",
    "FlatLayout",
    "GradientHealthState",
    "GradientTransformation",
    "InjectHyperparamsState",
    "L1ProximalState",
    "LRFinderResult",
    "MaskedNode",
    "MaskedState",
    "OptState",
    "Params",
    "PartitionState",
    "QuantizedArray",
    "ReduceLROnPlateauState",
    "ScalarOrSchedule",
    "ScaleByAdam8bitState",
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByBeliefState",
    "ScaleByLionState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "ScaleByRssState",
    "ScaleByScheduleState",
    "Schedule",
    "TraceState",
    "TransformInitFn",
    "TransformUpdateFn",
    "Updates",
    "ZClipState",
    "accumulate_gradients",
    "adabelief",
    "adafactor",
    "adagrad",
    "adam",
    "adam_8bit",
    "adamax",
    "adamw",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_l1_penalty",
    "amsgrad",
    "apply_if_finite",
    "apply_updates",
    "autoclip",
    "centralize",
    "chain",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "constant_schedule",
    "convex_kl_divergence",
    "cosine_decay_schedule",
    "cosine_distance",
    "cosine_onecycle_schedule",
    "cosine_similarity",
    "ctc_loss",
    "ctc_loss_with_forward_probs",
    "dequantize_blockwise",
    "dynamic_loss_scaling",
    "early_stopping",
    "ema",
    "exponential_decay",
    "freeze",
    "generalized_kl_divergence",
    "global_norm",
    "gradient_health",
    "health_report",
    "hinge_loss",
    "huber_loss",
    "identity",
    "incremental_update",
    "inject_hyperparams",
    "inverse_time_decay",
    "join_schedules",
    "kl_divergence",
    "l1_proximal",
    "l2_loss",
    "lamb",
    "lars",
    "linear_onecycle_schedule",
    "linear_schedule",
    "lion",
    "log_cosh",
    "loss_scale",
    "losses",
    "lr_finder",
    "masked",
    "microbatched_value_and_grad",
    "nadam",
    "nadamw",
    "named_chain",
    "ntxent",
    "partition",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "projections",
    "quantize_blockwise",
    "radam",
    "ravel_by_dtype",
    "reduce_on_plateau",
    "rmsprop",
    "safe_softmax_cross_entropy",
    "scale",
    "scale_by_adam",
    "scale_by_adam_8bit",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_factored_rms",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_stddev",
    "scale_by_trust_ratio",
    "scale_loss",
    "schedules",
    "selective_transform",
    "set_to_zero",
    "sgd",
    "sgdr_schedule",
    "shard_state",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_labels",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "squared_error",
    "state_shardings",
    "stateless",
    "trace",
    "unraveled",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "warmup_inverse_sqrt_schedule",
    "warmup_stable_decay_schedule",
    "zclip",
]
