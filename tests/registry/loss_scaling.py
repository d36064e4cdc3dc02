"""Registry cases for gradchain/transforms/loss_scaling.py.

The contract tests feed random finite gradients: the cases use small initial scales
and ``growth_interval=2`` so that the scale grows within the four contract steps.
"""

import gradchain as gc
from gradchain import dynamic_loss_scaling
from tests.registry import Case

CASES = [
    Case(
        "dynamic_loss_scaling",
        lambda: dynamic_loss_scaling(gc.adam(0.01), 4.0, growth_interval=2),
        traced=lambda h: dynamic_loss_scaling(gc.sgd(0.1), h, growth_interval=2),
        traced_values=(2.0, 8.0),
    ),
    Case(
        "dynamic_loss_scaling",
        lambda: dynamic_loss_scaling(
            gc.chain(gc.clip_by_global_norm(1.0), gc.sgd(0.1, momentum=0.9)),
            3.0,
            growth_interval=1,
            growth_factor=3.0,
            backoff_factor=0.25,
            min_scale=0.5,
            max_scale=50.0,
        ),
        traced=lambda h: dynamic_loss_scaling(gc.sgd(0.1), 2.0, growth_interval=1, growth_factor=h),
        traced_values=(1.5, 3.0),
        variant="capped-growth",
    ),
]
