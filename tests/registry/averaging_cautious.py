import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

CASES = [
    Case(
        "ema_params",
        lambda: gc.ema_params(0.9),
        traced=gc.ema_params,
        traced_values=(0.5, 0.999),
        needs_params=True,
    ),
    Case(
        "ema_params",
        lambda: gc.chain(
            gc.adam(0.01),
            gc.ema_params(
                0.999, min_decay=0.1, update_after_step=1, use_warmup=True, average_dtype=jnp.bfloat16
            ),
        ),
        variant="warmup_bf16_average",
        traced=lambda d: gc.chain(gc.sgd(0.1), gc.ema_params(d, use_warmup=True)),
        traced_values=(0.5, 0.9),
        needs_params=True,
    ),
    Case("swa_params", lambda: gc.swa_params(), needs_params=True),
    Case(
        "swa_params",
        lambda: gc.chain(gc.sgd(0.1, momentum=0.9), gc.swa_params(start_step=2, update_period=2)),
        variant="start_period",
        traced=lambda lr: gc.chain(gc.sgd(lr), gc.swa_params(1, 2)),
        needs_params=True,
    ),
    Case(
        "cautious",
        lambda: gc.cautious(gc.adamw(0.01, weight_decay=0.1)),
        traced=lambda e: gc.cautious(gc.adam(0.01), e),
        traced_values=(1e-3, 0.5),
        needs_params=True,
    ),
    Case(
        "cautious",
        lambda: gc.chain(
            gc.cautious(gc.scale_by_lion(), rescale="global", descent=False), gc.scale_by_learning_rate(0.01)
        ),
        variant="block_global",
        traced=lambda lr: gc.chain(
            gc.cautious(gc.scale_by_adam(), descent=False), gc.scale_by_learning_rate(lr)
        ),
    ),
    Case(
        "add_cautious_weight_decay",
        lambda: gc.add_cautious_weight_decay(0.1),
        traced=gc.add_cautious_weight_decay,
        traced_values=(0.0, 0.1),
        needs_params=True,
    ),
    Case(
        "add_cautious_weight_decay",
        lambda: gc.chain(
            gc.scale_by_adam(),
            gc.add_cautious_weight_decay(
                lambda count: 0.1 / (1.0 + count.astype(jnp.float32)),
                mask=lambda p: jax.tree.map(lambda x: jnp.ndim(x) > 1, p),
            ),
            gc.scale_by_learning_rate(0.01),
        ),
        variant="schedule_mask",
        needs_params=True,
    ),
]
