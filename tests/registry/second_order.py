import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

# One case per name, kept cheap to compile (a SOAP or Shampoo step compiles in several times
# Adam's time): refreshes (SOAP's bases, Shampoo's roots) every 1-2 steps, so that the
# contract tests' 3-4 steps run through them; few preconditioned sides (`max_precond_dim`,
# one-sided SOAP); blocks smaller than the test trees' sides (Shampoo: of size 2, whose roots
# take one batched iteration, and of size 1, whose roots are closed-form).
_sched = lambda c: 0.05 * 0.9 ** c.astype(jnp.float32)

CASES = [
    Case(
        "scale_by_soap",
        lambda: gc.scale_by_soap(0.9, 0.95, 0.9, 1e-8, 2, 3),
        traced=lambda b1: gc.scale_by_soap(b1, 0.95, 0.9, 1e-8, 2, 3),
        traced_values=(0.5, 0.9),
    ),
    Case(
        "soap",
        lambda: gc.soap(
            _sched,
            weight_decay=0.1,
            precondition_frequency=1,
            max_precond_dim=2,
            normalize_grads=True,
            precondition_all_axes=True,
            decay_updated_params=True,
        ),
        needs_params=True,
        traced=lambda wd: gc.soap(
            0.01, weight_decay=wd, precondition_frequency=1, max_precond_dim=2, decay_updated_params=True
        ),
    ),
    Case(
        "scale_by_shampoo",
        lambda: gc.scale_by_shampoo(2, 0.9, 0.99, 1e-8, 1e-4, 2, 2, graft_type="adam", graft_per_block=False),
        traced=lambda eps: gc.scale_by_shampoo(2, 0.9, 0.99, 1e-8, eps, 2, 2, graft_type="adam"),
        traced_values=(1e-6, 1e-3),
    ),
    Case(
        "shampoo",
        lambda: gc.shampoo(
            0.01,
            1,
            weight_decay=1e-3,
            start_preconditioning_step=2,
            preconditioning_compute_steps=2,
            graft_type="adagrad",
            nesterov=False,
            moving_average_for_momentum=True,
        ),
        needs_params=True,
        traced=lambda lr: gc.shampoo(lr, 1, start_preconditioning_step=2, graft_type="rmsprop"),
    ),
]
