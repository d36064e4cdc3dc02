"""Euclidean projections of pytrees onto convex sets: ``argmin_{y in C} ||x - y||_2``.

Names and arguments follow ``optax.projections``. Use them for projected gradient
descent: after ``params = gradchain.apply_updates(params, updates)``, project
``params = projection_l2_ball(params, radius)``.
"""

from gradchain.projections._projections import projection_box as projection_box
from gradchain.projections._projections import projection_halfspace as projection_halfspace
from gradchain.projections._projections import projection_hypercube as projection_hypercube
from gradchain.projections._projections import projection_hyperplane as projection_hyperplane
from gradchain.projections._projections import projection_l1_ball as projection_l1_ball
from gradchain.projections._projections import projection_l1_sphere as projection_l1_sphere
from gradchain.projections._projections import projection_l2_ball as projection_l2_ball
from gradchain.projections._projections import projection_l2_sphere as projection_l2_sphere
from gradchain.projections._projections import projection_linf_ball as projection_linf_ball
from gradchain.projections._projections import projection_non_negative as projection_non_negative
from gradchain.projections._projections import projection_simplex as projection_simplex
from gradchain.projections._projections import projection_vector as projection_vector

__all__ = [
    "projection_box",
    "projection_halfspace",
    "projection_hypercube",
    "projection_hyperplane",
    "projection_l1_ball",
    "projection_l1_sphere",
    "projection_l2_ball",
    "projection_l2_sphere",
    "projection_linf_ball",
    "projection_non_negative",
    "projection_simplex",
    "projection_vector",
]
