"""Optax's ``optax.contrib`` names, so that code written against ``optax.contrib`` ports with
``import gradchain as optax``.

Every name here is the same object as the top-level one (``gradchain.contrib.muon is
gradchain.muon``); the top level is the path to use in new code.
"""

from gradchain._transforms.plateau import ReduceLROnPlateauState as ReduceLROnPlateauState
from gradchain._transforms.plateau import reduce_on_plateau as reduce_on_plateau

# [muon]
# [schedule_free]
# [lr_free]
# [adam_contrib]
# [contrib_misc]
# [second_order]

__all__ = sorted(n for n in dir() if not n.startswith("_"))
