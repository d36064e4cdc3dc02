"""Optax's ``optax.contrib`` names, so that code written against ``optax.contrib`` ports with
``import gradchain as optax``.

Every name here is the same object as the top-level one (``gradchain.contrib.muon is
gradchain.muon``); the top level is the path to use in new code.
"""

from gradchain._transforms.plateau import ReduceLROnPlateauState as ReduceLROnPlateauState
from gradchain._transforms.plateau import reduce_on_plateau as reduce_on_plateau

# [muon]

# [schedule_free]
from gradchain._optimizers.schedule_free import schedule_free_adamw as schedule_free_adamw
from gradchain._optimizers.schedule_free import schedule_free_sgd as schedule_free_sgd
from gradchain._transforms.schedule_free import ScheduleFreeState as ScheduleFreeState
from gradchain._transforms.schedule_free import schedule_free as schedule_free
from gradchain._transforms.schedule_free import schedule_free_eval_params as schedule_free_eval_params

# [lr_free]

# [adam_contrib]
# [contrib_misc]
# [second_order]

__all__ = sorted(n for n in dir() if not n.startswith("_"))
