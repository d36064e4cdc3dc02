"""Learning-rate and hyperparameter schedules: functions from the step count to a value.

Every factory returns a pure function ``count -> value`` (int32 count, scalar or array;
float32 value of the same shape), usable with `gradchain.scale_by_schedule` or as the
``learning_rate`` of an optimizer. Names and arguments follow Optax; `inverse_time_decay`,
`warmup_inverse_sqrt_schedule` and `warmup_stable_decay_schedule` are additions. As in
``optax.schedules``, `inject_hyperparams` and the schedule protocols are here too.
"""

from gradchain._base import Schedule as Schedule
from gradchain._wrappers.hyperparams import InjectHyperparamsState as InjectHyperparamsState
from gradchain._wrappers.hyperparams import InjectStatefulHyperparamsState as InjectStatefulHyperparamsState
from gradchain._wrappers.hyperparams import StatefulSchedule as StatefulSchedule
from gradchain._wrappers.hyperparams import WrappedSchedule as WrappedSchedule
from gradchain._wrappers.hyperparams import inject_hyperparams as inject_hyperparams
from gradchain._wrappers.hyperparams import inject_stateful_hyperparams as inject_stateful_hyperparams
from gradchain.schedules._join import cosine_onecycle_schedule as cosine_onecycle_schedule
from gradchain.schedules._join import join_schedules as join_schedules
from gradchain.schedules._join import sgdr_schedule as sgdr_schedule
from gradchain.schedules._join import warmup_cosine_decay_schedule as warmup_cosine_decay_schedule
from gradchain.schedules._join import warmup_exponential_decay_schedule as warmup_exponential_decay_schedule
from gradchain.schedules._join import warmup_inverse_sqrt_schedule as warmup_inverse_sqrt_schedule
from gradchain.schedules._more import linear_onecycle_schedule as linear_onecycle_schedule
from gradchain.schedules._more import piecewise_interpolate_schedule as piecewise_interpolate_schedule
from gradchain.schedules._more import warmup_constant_schedule as warmup_constant_schedule
from gradchain.schedules._more import warmup_stable_decay_schedule as warmup_stable_decay_schedule
from gradchain.schedules._schedules import constant_schedule as constant_schedule
from gradchain.schedules._schedules import cosine_decay_schedule as cosine_decay_schedule
from gradchain.schedules._schedules import exponential_decay as exponential_decay
from gradchain.schedules._schedules import inverse_time_decay as inverse_time_decay
from gradchain.schedules._schedules import linear_schedule as linear_schedule
from gradchain.schedules._schedules import piecewise_constant_schedule as piecewise_constant_schedule
from gradchain.schedules._schedules import polynomial_schedule as polynomial_schedule

__all__ = sorted(n for n in dir() if not n.startswith("_"))
