import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

# Traced values are dyadic (exact in float32, and so is 1 - value): a float32 tracer then
# computes exactly what the weakly typed Python float does.
B1 = (0.75, 0.875)
B2 = (0.9921875, 0.998046875)

CASES = [
    Case(
        "scale_by_rss",
        gc.scale_by_rss,
        traced=lambda a: gc.scale_by_rss(initial_accumulator_value=a),
        traced_values=(0.0, 0.1),
    ),
    Case("scale_by_rms", gc.scale_by_rms, traced=gc.scale_by_rms, traced_values=(0.875, 0.9921875)),
    Case(
        "scale_by_rms",
        lambda: gc.scale_by_rms(eps_in_sqrt=False, bias_correction=True),
        variant="torch_biascorr",
        traced=lambda e: gc.scale_by_rms(eps=e, eps_in_sqrt=False, bias_correction=True),
        traced_values=(1e-8, 1e-3),
    ),
    Case("scale_by_stddev", gc.scale_by_stddev, traced=gc.scale_by_stddev, traced_values=(0.875, 0.9921875)),
    Case(
        "scale_by_stddev",
        lambda: gc.scale_by_stddev(initial_scale=0.1, eps_in_sqrt=False, bias_correction=True),
        variant="torch_biascorr",
        traced=lambda s: gc.scale_by_stddev(initial_scale=s, bias_correction=True),
        traced_values=(0.05, 0.1),
    ),
    Case("scale_by_adam", gc.scale_by_adam, traced=lambda b1: gc.scale_by_adam(b1=b1), traced_values=B1),
    Case(
        "scale_by_adam",
        lambda: gc.scale_by_adam(nesterov=True, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16),
        variant="nadam_bf16",
        traced=lambda b2: gc.scale_by_adam(b2=b2, nesterov=True),
        traced_values=B2,
    ),
    Case(
        "scale_by_amsgrad",
        gc.scale_by_amsgrad,
        traced=lambda b2: gc.scale_by_amsgrad(b2=b2),
        traced_values=B2,
    ),
    Case(
        "scale_by_adamax", gc.scale_by_adamax, traced=lambda b1: gc.scale_by_adamax(b1=b1), traced_values=B1
    ),
    Case(
        "scale_by_belief",
        gc.scale_by_belief,
        traced=lambda b1: gc.scale_by_belief(b1=b1, nesterov=True),
        traced_values=B1,
    ),
    Case("scale_by_radam", gc.scale_by_radam, traced=lambda b2: gc.scale_by_radam(b2=b2), traced_values=B2),
    Case("scale_by_lion", gc.scale_by_lion, traced=lambda b1: gc.scale_by_lion(b1=b1), traced_values=B1),
]
