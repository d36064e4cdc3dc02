"""gradchain: composable gradient transformations for JAX.

Every technique is a pure ``(init, update)`` pair (`GradientTransformation`); every
optimizer is a `chain` of them. See README.md for the tour and the API table.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from gradchain import assignment as assignment
from gradchain import contrib as contrib
from gradchain import experimental as experimental
from gradchain import losses as losses
from gradchain import microbatching as microbatching
from gradchain import perturbations as perturbations
from gradchain import projections as projections
from gradchain import schedules as schedules
from gradchain import second_order as second_order
from gradchain import transforms as transforms
from gradchain import tree as tree
from gradchain import tree_utils as tree_utils
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
from gradchain._flat import FlatBuffers as FlatBuffers
from gradchain._flat import FlatLayout as FlatLayout
from gradchain._flat import ravel_by_dtype as ravel_by_dtype
from gradchain._flat import unraveled as unraveled
from gradchain._low_precision import KahanSummationState as KahanSummationState
from gradchain._low_precision import apply_updates_stochastic as apply_updates_stochastic
from gradchain._low_precision import kahan_summation as kahan_summation
from gradchain._low_precision import stochastic_round as stochastic_round
from gradchain._lr_finder import LRFinderResult as LRFinderResult
from gradchain._lr_finder import lr_finder as lr_finder
from gradchain._masking import MaskedNode as MaskedNode
from gradchain._masking import MaskedState as MaskedState
from gradchain._masking import masked as masked
from gradchain._migrate import from_optax_state as from_optax_state
from gradchain._optimizers.adam import adabelief as adabelief
from gradchain._optimizers.adam import adam as adam
from gradchain._optimizers.adam import adam_8bit as adam_8bit
from gradchain._optimizers.adam import adamax as adamax
from gradchain._optimizers.adam import adamw as adamw
from gradchain._optimizers.adam import amsgrad as amsgrad
from gradchain._optimizers.adam import nadam as nadam
from gradchain._optimizers.adam import nadamw as nadamw
from gradchain._optimizers.adam import radam as radam
from gradchain._optimizers.adam_contrib import acprop as acprop
from gradchain._optimizers.adam_contrib import ademamix as ademamix
from gradchain._optimizers.adam_contrib import adopt as adopt
from gradchain._optimizers.adam_contrib import madgrad as madgrad
from gradchain._optimizers.adam_contrib import mars as mars
from gradchain._optimizers.adam_contrib import simplified_ademamix as simplified_ademamix
from gradchain._optimizers.adam_variants import adadelta as adadelta
from gradchain._optimizers.adam_variants import adamaxw as adamaxw
from gradchain._optimizers.adam_variants import adan as adan
from gradchain._optimizers.adam_variants import novograd as novograd
from gradchain._optimizers.adam_variants import optimistic_adam as optimistic_adam
from gradchain._optimizers.adam_variants import optimistic_adam_v2 as optimistic_adam_v2
from gradchain._optimizers.adam_variants import optimistic_gradient_descent as optimistic_gradient_descent
from gradchain._optimizers.adam_variants import yogi as yogi
from gradchain._optimizers.classic import adagrad as adagrad
from gradchain._optimizers.classic import lion as lion
from gradchain._optimizers.classic import rmsprop as rmsprop
from gradchain._optimizers.classic import sgd as sgd
from gradchain._optimizers.contrib_misc import dpsgd as dpsgd
from gradchain._optimizers.contrib_misc import galore as galore
from gradchain._optimizers.contrib_misc import sophia as sophia
from gradchain._optimizers.layerwise import adafactor as adafactor
from gradchain._optimizers.layerwise import lamb as lamb
from gradchain._optimizers.layerwise import lars as lars
from gradchain._optimizers.lbfgs import lbfgs as lbfgs
from gradchain._optimizers.lr_free import cocob as cocob
from gradchain._optimizers.lr_free import dog as dog
from gradchain._optimizers.lr_free import dowg as dowg
from gradchain._optimizers.muon import muon as muon
from gradchain._optimizers.schedule_free import schedule_free_adamw as schedule_free_adamw
from gradchain._optimizers.schedule_free import schedule_free_sgd as schedule_free_sgd
from gradchain._optimizers.second_order import shampoo as shampoo
from gradchain._optimizers.second_order import soap as soap
from gradchain._optimizers.sign_and_misc import fromage as fromage
from gradchain._optimizers.sign_and_misc import noisy_sgd as noisy_sgd
from gradchain._optimizers.sign_and_misc import polyak_sgd as polyak_sgd
from gradchain._optimizers.sign_and_misc import rprop as rprop
from gradchain._optimizers.sign_and_misc import sign_sgd as sign_sgd
from gradchain._optimizers.sign_and_misc import signum as signum
from gradchain._optimizers.sign_and_misc import sm3 as sm3
from gradchain._sharding import shard_state as shard_state
from gradchain._sharding import state_shardings as state_shardings
from gradchain._transforms.adam import ScaleByAdamState as ScaleByAdamState
from gradchain._transforms.adam import ScaleByAmsgradState as ScaleByAmsgradState
from gradchain._transforms.adam import ScaleByBeliefState as ScaleByBeliefState
from gradchain._transforms.adam import scale_by_adam as scale_by_adam
from gradchain._transforms.adam import scale_by_adamax as scale_by_adamax
from gradchain._transforms.adam import scale_by_amsgrad as scale_by_amsgrad
from gradchain._transforms.adam import scale_by_belief as scale_by_belief
from gradchain._transforms.adam import scale_by_radam as scale_by_radam
from gradchain._transforms.adam_contrib import ScaleByAdemamixState as ScaleByAdemamixState
from gradchain._transforms.adam_contrib import (
    ScaleBySimplifiedAdEMAMixState as ScaleBySimplifiedAdEMAMixState,
)
from gradchain._transforms.adam_contrib import ademamix_alpha_scheduler as ademamix_alpha_scheduler
from gradchain._transforms.adam_contrib import ademamix_beta3_scheduler as ademamix_beta3_scheduler
from gradchain._transforms.adam_contrib import scale_by_acprop as scale_by_acprop
from gradchain._transforms.adam_contrib import scale_by_ademamix as scale_by_ademamix
from gradchain._transforms.adam_contrib import scale_by_adopt as scale_by_adopt
from gradchain._transforms.adam_contrib import scale_by_simplified_ademamix as scale_by_simplified_ademamix
from gradchain._transforms.adam_variants import ScaleByAdaDeltaState as ScaleByAdaDeltaState
from gradchain._transforms.adam_variants import ScaleByAdanState as ScaleByAdanState
from gradchain._transforms.adam_variants import ScaleByNovogradState as ScaleByNovogradState
from gradchain._transforms.adam_variants import (
    ScaleByOptimisticGradientState as ScaleByOptimisticGradientState,
)
from gradchain._transforms.adam_variants import scale_by_adadelta as scale_by_adadelta
from gradchain._transforms.adam_variants import scale_by_adan as scale_by_adan
from gradchain._transforms.adam_variants import scale_by_novograd as scale_by_novograd
from gradchain._transforms.adam_variants import scale_by_optimistic_gradient as scale_by_optimistic_gradient
from gradchain._transforms.adam_variants import scale_by_yogi as scale_by_yogi
from gradchain._transforms.clip_functions import per_example_global_norm_clip as per_example_global_norm_clip
from gradchain._transforms.clip_functions import per_example_layer_norm_clip as per_example_layer_norm_clip
from gradchain._transforms.clip_functions import unitwise_clip as unitwise_clip
from gradchain._transforms.clip_functions import unitwise_norm as unitwise_norm
from gradchain._transforms.clipping import AutoClipState as AutoClipState
from gradchain._transforms.clipping import ClipByGlobalNormState as ClipByGlobalNormState
from gradchain._transforms.clipping import ZClipState as ZClipState
from gradchain._transforms.clipping import adaptive_grad_clip as adaptive_grad_clip
from gradchain._transforms.clipping import autoclip as autoclip
from gradchain._transforms.clipping import clip_by_block_rms as clip_by_block_rms
from gradchain._transforms.clipping import clip_by_global_norm as clip_by_global_norm
from gradchain._transforms.clipping import clip_by_norm as clip_by_norm
from gradchain._transforms.clipping import clip_by_value as clip_by_value
from gradchain._transforms.clipping import zclip as zclip
from gradchain._transforms.contrib_misc import MomoAdamState as MomoAdamState
from gradchain._transforms.contrib_misc import MomoState as MomoState
from gradchain._transforms.contrib_misc import momo as momo
from gradchain._transforms.contrib_misc import momo_adam as momo_adam
from gradchain._transforms.elementwise_control import ApplyEvery as ApplyEvery
from gradchain._transforms.elementwise_control import NonNegativeParamsState as NonNegativeParamsState
from gradchain._transforms.elementwise_control import ZeroNansState as ZeroNansState
from gradchain._transforms.elementwise_control import apply_every as apply_every
from gradchain._transforms.elementwise_control import keep_params_nonnegative as keep_params_nonnegative
from gradchain._transforms.elementwise_control import scale_gradient as scale_gradient
from gradchain._transforms.elementwise_control import stateless_with_tree_map as stateless_with_tree_map
from gradchain._transforms.elementwise_control import zero_nans as zero_nans
from gradchain._transforms.galore import GaLoreDimensionNumbers as GaLoreDimensionNumbers
from gradchain._transforms.galore import GaLoreState as GaLoreState
from gradchain._transforms.galore import scale_by_galore as scale_by_galore
from gradchain._transforms.layerwise import FactoredState as FactoredState
from gradchain._transforms.layerwise import scale_by_factored_rms as scale_by_factored_rms
from gradchain._transforms.layerwise import scale_by_param_block_norm as scale_by_param_block_norm
from gradchain._transforms.layerwise import scale_by_param_block_rms as scale_by_param_block_rms
from gradchain._transforms.layerwise import scale_by_trust_ratio as scale_by_trust_ratio
from gradchain._transforms.lbfgs import ScaleByLBFGSState as ScaleByLBFGSState
from gradchain._transforms.lbfgs import scale_by_lbfgs as scale_by_lbfgs
from gradchain._transforms.lbfgs import value_and_grad_from_state as value_and_grad_from_state
from gradchain._transforms.linalg import matrix_inverse_pth_root as matrix_inverse_pth_root
from gradchain._transforms.linalg import nnls as nnls
from gradchain._transforms.linalg import power_iteration as power_iteration
from gradchain._transforms.linesearch import (
    ScaleByBacktrackingLinesearchState as ScaleByBacktrackingLinesearchState,
)
from gradchain._transforms.linesearch import ScaleByZoomLinesearchState as ScaleByZoomLinesearchState
from gradchain._transforms.linesearch import ZoomLinesearchInfo as ZoomLinesearchInfo
from gradchain._transforms.linesearch import (
    scale_by_backtracking_linesearch as scale_by_backtracking_linesearch,
)
from gradchain._transforms.linesearch import scale_by_zoom_linesearch as scale_by_zoom_linesearch
from gradchain._transforms.lr_free import DAdaptAdamWState as DAdaptAdamWState
from gradchain._transforms.lr_free import ProdigyState as ProdigyState
from gradchain._transforms.lr_free import dadapt_adamw as dadapt_adamw
from gradchain._transforms.lr_free import prodigy as prodigy
from gradchain._transforms.lr_free_more import COCOBState as COCOBState
from gradchain._transforms.lr_free_more import DoGState as DoGState
from gradchain._transforms.lr_free_more import DoWGState as DoWGState
from gradchain._transforms.lr_free_more import MechanicState as MechanicState
from gradchain._transforms.lr_free_more import mechanize as mechanize
from gradchain._transforms.lr_free_more import scale_by_cocob as scale_by_cocob
from gradchain._transforms.lr_free_more import scale_by_dog as scale_by_dog
from gradchain._transforms.lr_free_more import scale_by_dowg as scale_by_dowg
from gradchain._transforms.mars_madgrad import MadgradState as MadgradState
from gradchain._transforms.mars_madgrad import ScaleByMarsState as ScaleByMarsState
from gradchain._transforms.mars_madgrad import scale_by_madgrad as scale_by_madgrad
from gradchain._transforms.mars_madgrad import scale_by_mars as scale_by_mars
from gradchain._transforms.moment_helpers import bias_correction as bias_correction
from gradchain._transforms.moment_helpers import safe_root_mean_squares as safe_root_mean_squares
from gradchain._transforms.moment_helpers import update_infinity_moment as update_infinity_moment
from gradchain._transforms.moment_helpers import update_moment as update_moment
from gradchain._transforms.moment_helpers import update_moment_per_elem_norm as update_moment_per_elem_norm
from gradchain._transforms.momentum import EmaState as EmaState
from gradchain._transforms.momentum import TraceState as TraceState
from gradchain._transforms.momentum import ema as ema
from gradchain._transforms.momentum import trace as trace
from gradchain._transforms.monitoring import GradientHealthState as GradientHealthState
from gradchain._transforms.monitoring import gradient_health as gradient_health
from gradchain._transforms.monitoring import health_report as health_report
from gradchain._transforms.muon import MuonDimensionNumbers as MuonDimensionNumbers
from gradchain._transforms.muon import MuonState as MuonState
from gradchain._transforms.muon import scale_by_muon as scale_by_muon
from gradchain._transforms.noise import AddNoiseState as AddNoiseState
from gradchain._transforms.noise import add_noise as add_noise
from gradchain._transforms.plateau import EarlyStoppingState as EarlyStoppingState
from gradchain._transforms.plateau import ReduceLROnPlateauState as ReduceLROnPlateauState
from gradchain._transforms.plateau import early_stopping as early_stopping
from gradchain._transforms.plateau import reduce_on_plateau as reduce_on_plateau
from gradchain._transforms.privacy import (
    DifferentiallyPrivateAggregateState as DifferentiallyPrivateAggregateState,
)
from gradchain._transforms.privacy import differentially_private_aggregate as differentially_private_aggregate
from gradchain._transforms.quantized import QuantizedArray as QuantizedArray
from gradchain._transforms.quantized import ScaleByAdam8bitState as ScaleByAdam8bitState
from gradchain._transforms.quantized import dequantize_blockwise as dequantize_blockwise
from gradchain._transforms.quantized import quantize_blockwise as quantize_blockwise
from gradchain._transforms.quantized import scale_by_adam_8bit as scale_by_adam_8bit
from gradchain._transforms.regularization import AddDecayedWeightsState as AddDecayedWeightsState
from gradchain._transforms.regularization import AddL1PenaltyState as AddL1PenaltyState
from gradchain._transforms.regularization import L1ProximalState as L1ProximalState
from gradchain._transforms.regularization import add_decayed_weights as add_decayed_weights
from gradchain._transforms.regularization import add_l1_penalty as add_l1_penalty
from gradchain._transforms.regularization import l1_proximal as l1_proximal
from gradchain._transforms.rms import ScaleByRmsState as ScaleByRmsState
from gradchain._transforms.rms import ScaleByRssState as ScaleByRssState
from gradchain._transforms.rms import ScaleByRStdDevState as ScaleByRStdDevState
from gradchain._transforms.rms import scale_by_rms as scale_by_rms
from gradchain._transforms.rms import scale_by_rss as scale_by_rss
from gradchain._transforms.rms import scale_by_stddev as scale_by_stddev
from gradchain._transforms.scaling import ScaleByScheduleState as ScaleByScheduleState
from gradchain._transforms.scaling import centralize as centralize
from gradchain._transforms.scaling import scale as scale
from gradchain._transforms.scaling import scale_by_learning_rate as scale_by_learning_rate
from gradchain._transforms.scaling import scale_by_schedule as scale_by_schedule
from gradchain._transforms.schedule_free import ScheduleFreeState as ScheduleFreeState
from gradchain._transforms.schedule_free import schedule_free as schedule_free
from gradchain._transforms.schedule_free import schedule_free_eval_params as schedule_free_eval_params
from gradchain._transforms.shampoo import ScaleByShampooState as ScaleByShampooState
from gradchain._transforms.shampoo import scale_by_shampoo as scale_by_shampoo
from gradchain._transforms.sign import ScaleByLionState as ScaleByLionState
from gradchain._transforms.sign import ScaleByRpropState as ScaleByRpropState
from gradchain._transforms.sign import scale_by_lion as scale_by_lion
from gradchain._transforms.sign import scale_by_rprop as scale_by_rprop
from gradchain._transforms.sign import scale_by_sign as scale_by_sign
from gradchain._transforms.sm3 import ScaleBySM3State as ScaleBySM3State
from gradchain._transforms.sm3 import scale_by_sm3 as scale_by_sm3
from gradchain._transforms.soap import ScaleBySoapState as ScaleBySoapState
from gradchain._transforms.soap import scale_by_soap as scale_by_soap
from gradchain._transforms.sophia import HutchinsonState as HutchinsonState
from gradchain._transforms.sophia import SophiaState as SophiaState
from gradchain._transforms.sophia import (
    hutchinson_estimator_diag_hessian as hutchinson_estimator_diag_hessian,
)
from gradchain._transforms.sophia import scale_by_sophia as scale_by_sophia
from gradchain._transforms.step_size import (
    ScaleByDistanceOverGradientsState as ScaleByDistanceOverGradientsState,
)
from gradchain._transforms.step_size import normalize_by_update_norm as normalize_by_update_norm
from gradchain._transforms.step_size import (
    scale_by_distance_over_gradients as scale_by_distance_over_gradients,
)
from gradchain._transforms.step_size import scale_by_polyak as scale_by_polyak
from gradchain._tree import global_norm as global_norm
from gradchain._update import apply_updates as apply_updates
from gradchain._update import incremental_update as incremental_update
from gradchain._utilities import AdaptiveGradClipState as AdaptiveGradClipState
from gradchain._utilities import ClipState as ClipState
from gradchain._utilities import GradientTransformationExtraArgs as GradientTransformationExtraArgs
from gradchain._utilities import MaskOrFn as MaskOrFn
from gradchain._utilities import MultiNormalDiagFromLogScale as MultiNormalDiagFromLogScale
from gradchain._utilities import MultiSteps as MultiSteps
from gradchain._utilities import MultiStepsState as MultiStepsState
from gradchain._utilities import MultiTransformState as MultiTransformState
from gradchain._utilities import ScaleByTrustRatioState as ScaleByTrustRatioState
from gradchain._utilities import ScaleState as ScaleState
from gradchain._utilities import TransformUpdateExtraArgsFn as TransformUpdateExtraArgsFn
from gradchain._utilities import clip as clip
from gradchain._utilities import init_empty_state as init_empty_state
from gradchain._utilities import multi_normal as multi_normal
from gradchain._utilities import multi_transform as multi_transform
from gradchain._utilities import safe_increment as safe_increment
from gradchain._utilities import safe_int32_increment as safe_int32_increment
from gradchain._utilities import safe_norm as safe_norm
from gradchain._utilities import tree_map_params as tree_map_params
from gradchain._utilities import with_extra_args_support as with_extra_args_support
from gradchain._wrappers.accumulation import AccumulateGradientsState as AccumulateGradientsState
from gradchain._wrappers.accumulation import ShouldSkipUpdateFunction as ShouldSkipUpdateFunction
from gradchain._wrappers.accumulation import accumulate_gradients as accumulate_gradients
from gradchain._wrappers.accumulation import has_updated as has_updated
from gradchain._wrappers.accumulation import microbatched_value_and_grad as microbatched_value_and_grad
from gradchain._wrappers.accumulation import skip_large_updates as skip_large_updates
from gradchain._wrappers.accumulation import skip_not_finite as skip_not_finite
from gradchain._wrappers.averaging import AveragedParamsState as AveragedParamsState
from gradchain._wrappers.averaging import averaged_params as averaged_params
from gradchain._wrappers.averaging import ema_params as ema_params
from gradchain._wrappers.averaging import swa_params as swa_params
from gradchain._wrappers.cautious import AddCautiousWeightDecayState as AddCautiousWeightDecayState
from gradchain._wrappers.cautious import add_cautious_weight_decay as add_cautious_weight_decay
from gradchain._wrappers.cautious import cautious as cautious
from gradchain._wrappers.complex_valued import SplitRealAndImaginaryState as SplitRealAndImaginaryState
from gradchain._wrappers.complex_valued import split_real_and_imaginary as split_real_and_imaginary
from gradchain._wrappers.control import ConditionallyMaskState as ConditionallyMaskState
from gradchain._wrappers.control import ConditionallyTransformState as ConditionallyTransformState
from gradchain._wrappers.control import ConditionFn as ConditionFn
from gradchain._wrappers.control import conditionally_mask as conditionally_mask
from gradchain._wrappers.control import conditionally_transform as conditionally_transform
from gradchain._wrappers.control import flatten as flatten
from gradchain._wrappers.finite import ApplyIfFiniteState as ApplyIfFiniteState
from gradchain._wrappers.finite import DynamicLossScaleState as DynamicLossScaleState
from gradchain._wrappers.finite import apply_if_finite as apply_if_finite
from gradchain._wrappers.finite import dynamic_loss_scaling as dynamic_loss_scaling
from gradchain._wrappers.finite import loss_scale as loss_scale
from gradchain._wrappers.finite import scale_loss as scale_loss
from gradchain._wrappers.hyperparams import InjectHyperparamsState as InjectHyperparamsState
from gradchain._wrappers.hyperparams import InjectStatefulHyperparamsState as InjectStatefulHyperparamsState
from gradchain._wrappers.hyperparams import StatefulSchedule as StatefulSchedule
from gradchain._wrappers.hyperparams import WrappedSchedule as WrappedSchedule
from gradchain._wrappers.hyperparams import WrappedScheduleState as WrappedScheduleState
from gradchain._wrappers.hyperparams import inject_hyperparams as inject_hyperparams
from gradchain._wrappers.hyperparams import inject_stateful_hyperparams as inject_stateful_hyperparams
from gradchain._wrappers.lookahead import LookaheadParams as LookaheadParams
from gradchain._wrappers.lookahead import LookaheadState as LookaheadState
from gradchain._wrappers.lookahead import lookahead as lookahead
from gradchain._wrappers.lookahead import periodic_update as periodic_update
from gradchain._wrappers.masking import PartitionState as PartitionState
from gradchain._wrappers.masking import freeze as freeze
from gradchain._wrappers.masking import partition as partition
from gradchain._wrappers.masking import selective_transform as selective_transform
from gradchain._wrappers.masking import set_to_zero as set_to_zero
from gradchain._wrappers.measurements import MonitorState as MonitorState
from gradchain._wrappers.measurements import SnapshotState as SnapshotState
from gradchain._wrappers.measurements import measure_with_ema as measure_with_ema
from gradchain._wrappers.measurements import monitor as monitor
from gradchain._wrappers.measurements import snapshot as snapshot
from gradchain._wrappers.microbatch import microbatch as microbatch
from gradchain._wrappers.sam import NormalizeState as NormalizeState
from gradchain._wrappers.sam import SAMState as SAMState
from gradchain._wrappers.sam import normalize as normalize
from gradchain._wrappers.sam import sam as sam
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

try:
    __version__ = _version("gradchain")
except _PackageNotFoundError:  # a bare checkout on sys.path, not installed
    __version__ = "0+unknown"

# Every public name, computed from the explicit re-exports above (private modules and
# helpers start with an underscore).
__all__ = sorted(n for n in dir() if not n.startswith("_") and n != "annotations")
