import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

CASES = [
    Case(
        "schedule_free",
        lambda: gc.schedule_free(gc.sgd(0.1), 0.1),
        traced=lambda b1: gc.schedule_free(gc.sgd(0.1), 0.1, b1=b1),
        traced_values=(0.5, 0.9),
        needs_params=True,
    ),
    Case(
        "schedule_free",
        lambda: gc.schedule_free(
            gc.adam(gc.linear_schedule(0.01, 0.001, 10), b1=0.0),
            gc.linear_schedule(0.01, 0.001, 10),
            b1=0.8,
            weight_lr_power=1.0,
            state_dtype=jnp.float32,
            r=0.5,
        ),
        variant="adam_schedule_r",
        traced=lambda r: gc.schedule_free(gc.adam(0.01, b1=0.0), 0.01, r=r),
        traced_values=(0.0, 1.0),
        needs_params=True,
    ),
    Case(
        "schedule_free_sgd",
        lambda: gc.schedule_free_sgd(0.1, warmup_steps=3, weight_decay=0.01),
        traced=lambda lr: gc.schedule_free_sgd(lr, warmup_steps=3, weight_decay=0.01),
        needs_params=True,
    ),
    Case(
        "schedule_free_sgd",
        lambda: gc.schedule_free_sgd(0.1, warmup_steps=3, r=1.0, align_schedule=True),
        variant="authors",
        traced=lambda b1: gc.schedule_free_sgd(0.1, b1=b1, align_schedule=True),
        traced_values=(0.5, 1.0),
        needs_params=True,
    ),
    Case(
        "schedule_free_adamw",
        lambda: gc.schedule_free_adamw(0.01, warmup_steps=2, weight_decay=0.1),
        traced=lambda wd: gc.schedule_free_adamw(0.01, weight_decay=wd),
        needs_params=True,
    ),
    Case(
        "schedule_free_adamw",
        lambda: gc.schedule_free_adamw(
            0.01,
            warmup_steps=2,
            weight_decay=0.1,
            state_dtype=jnp.float32,
            decay_at_z=True,
            align_schedule=True,
        ),
        variant="authors_f32_state",
        traced=lambda lr: gc.schedule_free_adamw(lr, warmup_steps=2, decay_at_z=True, align_schedule=True),
        needs_params=True,
    ),
]
