import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

# The contract trees (tests/helpers.random_tree and test_properties) mix matrices, stacks of
# matrices ((2, 2, 3), (3, 1, 2)), vectors and scalars: `scale_by_muon` takes the leaves of
# rank >= 2 over their last two axes (leading axes batch) and passes the others through.
MATRICES = lambda p: jax.tree.map(lambda x: gc.MuonDimensionNumbers(-2, -1) if jnp.ndim(x) >= 2 else None, p)
STACKS = lambda p: jax.tree.map(lambda x: jnp.ndim(x) >= 2, p)

CASES = [
    Case(
        "scale_by_muon",
        lambda: gc.scale_by_muon(weight_dimension_numbers=MATRICES),
        traced=lambda b: gc.scale_by_muon(beta=b, weight_dimension_numbers=MATRICES),
        traced_values=(0.5, 0.95),
    ),
    Case(
        "scale_by_muon",
        lambda: gc.scale_by_muon(
            "polar_express",
            8,  # converged: the steep 5-step schedule amplifies jit-vs-eager rounding
            mu_dtype=jnp.bfloat16,
            nesterov=False,
            adaptive=True,
            bias_correction=False,
            weight_dimension_numbers=MATRICES,
        ),
        variant="polar_express_adaptive_torch_momentum",
        traced=lambda e: gc.scale_by_muon(eps=e, preconditioning="aol", weight_dimension_numbers=MATRICES),
        traced_values=(1e-8, 1e-3),
    ),
    Case("muon", lambda: gc.muon(0.02), traced=gc.muon, traced_values=(0.01, 0.1), needs_params=True),
    Case(
        "muon",
        lambda: gc.muon(
            0.02, weight_decay=0.1, muon_mask=STACKS, adjust_lr_fn="original", adam_learning_rate=1e-3
        ),
        variant="stacks_original_lr",
        traced=lambda b: gc.muon(0.02, beta=b, consistent_rms=0.2, muon_mask=STACKS),
        traced_values=(0.5, 0.95),
        needs_params=True,
    ),
]
