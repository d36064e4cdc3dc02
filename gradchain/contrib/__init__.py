"""Optax's ``optax.contrib`` names, so that code written against ``optax.contrib`` ports with
``import gradchain as optax``.

Every name here is the same object as the top-level one (``gradchain.contrib.muon is
gradchain.muon``); the top level is the path to use in new code.
"""

from gradchain._optimizers.adam_contrib import acprop as acprop
from gradchain._optimizers.adam_contrib import ademamix as ademamix
from gradchain._optimizers.adam_contrib import adopt as adopt
from gradchain._optimizers.adam_contrib import madgrad as madgrad
from gradchain._optimizers.adam_contrib import simplified_ademamix as simplified_ademamix
from gradchain._optimizers.contrib_misc import dpsgd as dpsgd
from gradchain._optimizers.contrib_misc import galore as galore
from gradchain._optimizers.contrib_misc import sophia as sophia
from gradchain._optimizers.lr_free import cocob as cocob
from gradchain._optimizers.lr_free import dog as dog
from gradchain._optimizers.lr_free import dowg as dowg
from gradchain._optimizers.muon import muon as muon
from gradchain._optimizers.schedule_free import schedule_free_adamw as schedule_free_adamw
from gradchain._optimizers.schedule_free import schedule_free_sgd as schedule_free_sgd
from gradchain._transforms.adam_contrib import ScaleByAdemamixState as ScaleByAdemamixState
from gradchain._transforms.adam_contrib import (
    ScaleBySimplifiedAdEMAMixState as ScaleBySimplifiedAdEMAMixState,
)
from gradchain._transforms.adam_contrib import scale_by_acprop as scale_by_acprop
from gradchain._transforms.adam_contrib import scale_by_ademamix as scale_by_ademamix
from gradchain._transforms.adam_contrib import scale_by_adopt as scale_by_adopt
from gradchain._transforms.adam_contrib import scale_by_simplified_ademamix as scale_by_simplified_ademamix
from gradchain._transforms.contrib_misc import MomoAdamState as MomoAdamState
from gradchain._transforms.contrib_misc import MomoState as MomoState
from gradchain._transforms.contrib_misc import momo as momo
from gradchain._transforms.contrib_misc import momo_adam as momo_adam
from gradchain._transforms.galore import GaLoreDimensionNumbers as GaLoreDimensionNumbers
from gradchain._transforms.galore import GaLoreState as GaLoreState
from gradchain._transforms.galore import scale_by_galore as scale_by_galore
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
from gradchain._transforms.mars_madgrad import MadgradState as MadgradState
from gradchain._transforms.mars_madgrad import scale_by_madgrad as scale_by_madgrad
from gradchain._transforms.muon import MuonDimensionNumbers as MuonDimensionNumbers
from gradchain._transforms.muon import MuonState as MuonState
from gradchain._transforms.muon import scale_by_muon as scale_by_muon
from gradchain._transforms.plateau import ReduceLROnPlateauState as ReduceLROnPlateauState
from gradchain._transforms.plateau import reduce_on_plateau as reduce_on_plateau
from gradchain._transforms.privacy import (
    DifferentiallyPrivateAggregateState as DifferentiallyPrivateAggregateState,
)
from gradchain._transforms.privacy import differentially_private_aggregate as differentially_private_aggregate
from gradchain._transforms.schedule_free import ScheduleFreeState as ScheduleFreeState
from gradchain._transforms.schedule_free import schedule_free as schedule_free
from gradchain._transforms.schedule_free import schedule_free_eval_params as schedule_free_eval_params
from gradchain._transforms.sophia import HutchinsonState as HutchinsonState
from gradchain._transforms.sophia import SophiaState as SophiaState
from gradchain._transforms.sophia import (
    hutchinson_estimator_diag_hessian as hutchinson_estimator_diag_hessian,
)
from gradchain._wrappers.complex_valued import SplitRealAndImaginaryState as SplitRealAndImaginaryState
from gradchain._wrappers.complex_valued import split_real_and_imaginary as split_real_and_imaginary
from gradchain._wrappers.sam import NormalizeState as NormalizeState
from gradchain._wrappers.sam import SAMState as SAMState
from gradchain._wrappers.sam import normalize as normalize
from gradchain._wrappers.sam import sam as sam

__all__ = sorted(n for n in dir() if not n.startswith("_"))
