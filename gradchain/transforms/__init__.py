"""Optax's ``optax.transforms`` names, so that code written against ``optax.transforms``
ports with ``import gradchain as optax``. Each is the top-level object of the same name."""

from gradchain._chain import chain as chain
from gradchain._chain import named_chain as named_chain
from gradchain._masking import MaskedNode as MaskedNode
from gradchain._masking import MaskedState as MaskedState
from gradchain._masking import masked as masked
from gradchain._transforms.clip_functions import per_example_global_norm_clip as per_example_global_norm_clip
from gradchain._transforms.clip_functions import per_example_layer_norm_clip as per_example_layer_norm_clip
from gradchain._transforms.clip_functions import unitwise_clip as unitwise_clip
from gradchain._transforms.clip_functions import unitwise_norm as unitwise_norm
from gradchain._transforms.clipping import adaptive_grad_clip as adaptive_grad_clip
from gradchain._transforms.clipping import clip_by_block_rms as clip_by_block_rms
from gradchain._transforms.clipping import clip_by_global_norm as clip_by_global_norm
from gradchain._transforms.elementwise_control import NonNegativeParamsState as NonNegativeParamsState
from gradchain._transforms.elementwise_control import ZeroNansState as ZeroNansState
from gradchain._transforms.elementwise_control import keep_params_nonnegative as keep_params_nonnegative
from gradchain._transforms.elementwise_control import zero_nans as zero_nans
from gradchain._transforms.momentum import EmaState as EmaState
from gradchain._transforms.momentum import TraceState as TraceState
from gradchain._transforms.momentum import ema as ema
from gradchain._transforms.momentum import trace as trace
from gradchain._transforms.noise import AddNoiseState as AddNoiseState
from gradchain._transforms.noise import add_noise as add_noise
from gradchain._transforms.regularization import add_decayed_weights as add_decayed_weights
from gradchain._utilities import MultiSteps as MultiSteps
from gradchain._utilities import MultiStepsState as MultiStepsState
from gradchain._utilities import clip as clip
from gradchain._wrappers.accumulation import ShouldSkipUpdateFunction as ShouldSkipUpdateFunction
from gradchain._wrappers.accumulation import skip_large_updates as skip_large_updates
from gradchain._wrappers.accumulation import skip_not_finite as skip_not_finite
from gradchain._wrappers.control import ConditionallyMaskState as ConditionallyMaskState
from gradchain._wrappers.control import ConditionallyTransformState as ConditionallyTransformState
from gradchain._wrappers.control import ConditionFn as ConditionFn
from gradchain._wrappers.control import conditionally_mask as conditionally_mask
from gradchain._wrappers.control import conditionally_transform as conditionally_transform
from gradchain._wrappers.control import flatten as flatten
from gradchain._wrappers.finite import ApplyIfFiniteState as ApplyIfFiniteState
from gradchain._wrappers.finite import apply_if_finite as apply_if_finite
from gradchain._wrappers.masking import PartitionState as PartitionState
from gradchain._wrappers.masking import freeze as freeze
from gradchain._wrappers.masking import partition as partition
from gradchain._wrappers.masking import selective_transform as selective_transform
from gradchain._wrappers.measurements import MonitorState as MonitorState
from gradchain._wrappers.measurements import SnapshotState as SnapshotState
from gradchain._wrappers.measurements import measure_with_ema as measure_with_ema
from gradchain._wrappers.measurements import monitor as monitor
from gradchain._wrappers.measurements import snapshot as snapshot

__all__ = sorted(n for n in dir() if not n.startswith("_"))
