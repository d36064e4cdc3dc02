import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

_sched = lambda c: 0.05 * 0.9 ** c.astype(jnp.float32)
_not_bias = lambda p: jax.tree.map(lambda x: jnp.ndim(x) > 1, p)
_alpha = gc.ademamix_alpha_scheduler(5.0, warmup=3)
_beta3 = gc.ademamix_beta3_scheduler(0.999, beta_start=0.9, warmup=3)

CASES = [
    # transformations
    Case(
        "scale_by_adopt",
        gc.scale_by_adopt,
        traced=lambda b1: gc.scale_by_adopt(b1=b1),
        traced_values=(0.5, 0.9),
    ),
    Case(
        "scale_by_adopt",
        lambda: gc.scale_by_adopt(0.8, 0.99, 1e-4, jnp.bfloat16, nesterov=True, use_clipping=False),
        variant="nesterov_noclip_bf16",
        traced=lambda b2: gc.scale_by_adopt(b2=b2, nesterov=True),
        traced_values=(0.5, 0.99),
    ),
    Case(
        "scale_by_ademamix",
        gc.scale_by_ademamix,
        traced=lambda alpha: gc.scale_by_ademamix(alpha=alpha),
        traced_values=(0.0, 6.0),
    ),
    Case(
        "scale_by_ademamix",
        lambda: gc.scale_by_ademamix(b3=_beta3, alpha=_alpha, eps_root=1e-8, mu_dtype=jnp.bfloat16),
        variant="schedulers_bf16",
        traced=lambda b3: gc.scale_by_ademamix(b3=b3),
        traced_values=(0.9, 0.999),
    ),
    Case(
        "scale_by_simplified_ademamix",
        gc.scale_by_simplified_ademamix,
        traced=lambda alpha: gc.scale_by_simplified_ademamix(alpha=alpha),
        traced_values=(0.0, 2.0),
    ),
    Case(
        "scale_by_simplified_ademamix",
        lambda: gc.scale_by_simplified_ademamix(0.9, 0.99, _alpha, 1e-6, 1e-8),
        variant="alpha_schedule",
        traced=lambda b1: gc.scale_by_simplified_ademamix(b1=b1),
        traced_values=(0.5, 0.99),
    ),
    Case(
        "scale_by_acprop",
        gc.scale_by_acprop,
        traced=lambda b2: gc.scale_by_acprop(b2=b2),
        traced_values=(0.5, 0.9),
    ),
    Case(
        "scale_by_madgrad",
        lambda: gc.scale_by_madgrad(0.01),
        traced=gc.scale_by_madgrad,
        needs_params=True,
    ),
    Case(
        "scale_by_madgrad",
        lambda: gc.scale_by_madgrad(_sched, momentum=0.0, eps=1e-4),
        variant="schedule_nomomentum",
        traced=lambda m: gc.scale_by_madgrad(0.01, momentum=m),
        traced_values=(0.0, 0.9),
        needs_params=True,
    ),
    Case(
        "scale_by_mars",
        gc.scale_by_mars,
        traced=lambda g: gc.scale_by_mars(gamma=g),
        traced_values=(0.0, 0.025),
    ),
    Case(
        "scale_by_mars",
        lambda: gc.scale_by_mars(0.9, 0.999, 1e-6, 0.5, correct_first_step=False),
        variant="timm_first_step",
        traced=lambda b1: gc.scale_by_mars(b1=b1, correct_first_step=False),
        traced_values=(0.5, 0.9),
    ),
    # optimizers
    Case("adopt", lambda: gc.adopt(0.01), traced=gc.adopt),
    Case(
        "adopt",
        lambda: gc.adopt(_sched, nesterov=True, weight_decay=0.1, mask=_not_bias),
        variant="l2_schedule_mask",
        traced=lambda wd: gc.adopt(0.01, weight_decay=wd),
        needs_params=True,
    ),
    Case(
        "adopt",
        lambda: gc.adopt(0.01, weight_decay=_sched, decoupled_weight_decay=True),
        variant="decoupled",
        traced=lambda wd: gc.adopt(0.01, weight_decay=wd, decoupled_weight_decay=True),
        needs_params=True,
    ),
    Case("ademamix", lambda: gc.ademamix(0.01), traced=gc.ademamix, needs_params=True),
    Case(
        "ademamix",
        lambda: gc.ademamix(_sched, b3=_beta3, alpha=_alpha, weight_decay=0.1, mask=_not_bias),
        variant="schedulers_mask",
        traced=lambda wd: gc.ademamix(0.01, weight_decay=wd),
        needs_params=True,
    ),
    Case(
        "simplified_ademamix",
        lambda: gc.simplified_ademamix(0.01),
        traced=gc.simplified_ademamix,
        needs_params=True,
    ),
    Case("acprop", lambda: gc.acprop(0.01), traced=gc.acprop, needs_params=True),
    Case(
        "acprop",
        lambda: gc.acprop(_sched, weight_decay=0.1, mask=_not_bias),
        variant="schedule_mask",
        traced=lambda b1: gc.acprop(0.01, b1=b1),
        traced_values=(0.5, 0.9),
        needs_params=True,
    ),
    Case("madgrad", lambda: gc.madgrad(0.01), traced=gc.madgrad, needs_params=True),
    Case(
        "madgrad",
        lambda: gc.madgrad(_sched, 0.5, 0.1, 1e-5),
        variant="schedule_l2",
        traced=lambda wd: gc.madgrad(0.01, weight_decay=wd),
        needs_params=True,
    ),
    Case("mars", lambda: gc.mars(0.01), traced=gc.mars, needs_params=True),
    Case(
        "mars",
        lambda: gc.mars(_sched, weight_decay=0.1, optimize_1d=True, correct_first_step=False),
        variant="optimize_1d",
        traced=lambda wd: gc.mars(0.01, weight_decay=wd, optimize_1d=True),
        needs_params=True,
    ),
    Case(
        "mars",
        lambda: gc.mars(0.01, learning_rate_1d=_sched, b1_1d=0.8, b2_1d=0.9, weight_decay_1d=_sched),
        variant="adamw_1d_schedules",
        traced=lambda lr: gc.mars(0.01, learning_rate_1d=lr),
        needs_params=True,
    ),
]
