"""Learning-rate-free optimizers: Prodigy, D-Adaptation AdamW, DoG, DoWG, COCOB, Mechanic.

Every one reads the parameters (distances from the start, decoupled decay), so every case
has ``needs_params=True``. ``estim_lr0=1e-3`` and the like make the estimates move within
the contract tests' few steps.
"""

import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

_sched = lambda c: 0.5 + 0.5 * 0.9 ** c.astype(jnp.float32)
_not_bias = lambda p: jax.tree.map(lambda x: jnp.ndim(x) > 1, p)

CASES = [
    Case("prodigy", lambda: gc.prodigy(), traced=gc.prodigy, traced_values=(0.5, 1.0), needs_params=True),
    Case(
        "prodigy",
        lambda: gc.prodigy(
            _sched, beta3=0.99, estim_lr0=1e-3, weight_decay=0.1, safeguard_warmup=True, growth_rate=1.5
        ),
        variant="authors_flags",
        traced=lambda d0: gc.prodigy(estim_lr0=d0, growth_rate=1.2, use_bias_correction=False),
        traced_values=(1e-4, 1e-3),
        needs_params=True,
    ),
    Case(
        "prodigy",
        lambda: gc.prodigy(estim_lr0=1e-3, weight_decay=0.1, slice_p=3, decouple=False),
        variant="slice_coupled",
        traced=lambda c: gc.prodigy(estim_lr0=1e-3, estim_lr_coef=c, slice_p=2),
        traced_values=(0.5, 2.0),
        needs_params=True,
    ),
    Case(
        "dadapt_adamw",
        lambda: gc.dadapt_adamw(),
        traced=gc.dadapt_adamw,
        traced_values=(0.5, 1.0),
        needs_params=True,
    ),
    Case(
        "dadapt_adamw",
        lambda: gc.dadapt_adamw(_sched, estim_lr0=1e-3, weight_decay=0.1, growth_rate=1.5, decouple=False),
        variant="authors_flags",
        traced=lambda wd: gc.dadapt_adamw(estim_lr0=1e-3, weight_decay=wd, use_bias_correction=False),
        traced_values=(0.0, 0.1),
        needs_params=True,
    ),
    Case(
        "scale_by_dog",
        lambda: gc.scale_by_dog(("heuristic", 1e-3)),
        traced=lambda v: gc.scale_by_dog(("distance", v)),
        traced_values=(1e-3, 1e-2),
        needs_params=True,
    ),
    Case(
        "dog",
        lambda: gc.dog(),
        traced=lambda lr: gc.dog(lr, init_step=("learning_rate", 1e-2)),
        traced_values=(0.5, 1.0),
        needs_params=True,
    ),
    Case(
        "dog",
        lambda: gc.dog(_sched, ("learning_rate", 1e-2), weight_decay=0.1, mask=_not_bias),
        variant="lr_init_decay",
        needs_params=True,
    ),
    Case(
        "scale_by_dowg",
        lambda: gc.scale_by_dowg(),
        traced=lambda r2: gc.scale_by_dowg(r2),
        traced_values=(1e-4, 1e-2),
        needs_params=True,
    ),
    Case("dowg", lambda: gc.dowg(), traced=gc.dowg, traced_values=(0.5, 1.0), needs_params=True),
    Case(
        "dowg",
        lambda: gc.dowg(_sched, 1e-3, weight_decay=0.1, mask=_not_bias),
        variant="decay",
        needs_params=True,
    ),
    Case(
        "scale_by_cocob",
        lambda: gc.scale_by_cocob(),
        traced=lambda a: gc.scale_by_cocob(a),
        traced_values=(10.0, 100.0),
        needs_params=True,
    ),
    Case("cocob", lambda: gc.cocob(), traced=gc.cocob, traced_values=(0.5, 1.0), needs_params=True),
    Case(
        "cocob",
        lambda: gc.cocob(_sched, weight_decay=1e-2, mask=_not_bias),
        variant="decay",
        needs_params=True,
    ),
    Case(
        "mechanize",
        lambda: gc.mechanize(gc.adam(1.0)),
        traced=lambda wd: gc.mechanize(gc.sgd(1.0, momentum=0.9), weight_decay=wd),
        traced_values=(0.0, 0.01),
        needs_params=True,
    ),
    Case(
        "mechanize",
        lambda: gc.mechanize(gc.chain(gc.clip_by_global_norm(1.0), gc.sgd(_sched)), 0.0, 1e-6, 1e-4, 3),
        variant="chain_schedule",
        traced=lambda s0: gc.mechanize(gc.sgd(1.0), s_init=s0),
        traced_values=(1e-6, 1e-4),
        needs_params=True,
    ),
]
