"""Optax's ``optax.perturbations`` namespace: `make_perturbed_fun` and the noise distributions
`Gumbel` and `Normal`.
"""

from gradchain._perturbations import Gumbel as Gumbel
from gradchain._perturbations import Normal as Normal
from gradchain._perturbations import make_perturbed_fun as make_perturbed_fun

__all__ = sorted(n for n in dir() if not n.startswith("_"))
