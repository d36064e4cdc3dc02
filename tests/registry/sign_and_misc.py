import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

_sched = lambda c: 0.05 * 0.9 ** c.astype(jnp.float32)

CASES = [
    # transformations
    Case("scale_by_sign", gc.scale_by_sign),
    Case(
        "scale_by_lion",
        lambda: gc.scale_by_lion(mode="smooth", smooth_beta=2.0),
        variant="smooth",
        traced=lambda beta: gc.scale_by_lion(mode="smooth", smooth_beta=beta),
        traced_values=(0.5, 2.0),
    ),
    Case(
        "scale_by_lion",
        lambda: gc.scale_by_lion(b1=0.5, mode="refined", mu_dtype=jnp.bfloat16),
        variant="refined_bf16",
        traced=lambda b1: gc.scale_by_lion(b1=b1, mode="refined"),
        traced_values=(0.5, 0.9),
    ),
    Case(
        "scale_by_rprop", lambda: gc.scale_by_rprop(0.01), traced=gc.scale_by_rprop, traced_values=(0.01, 0.1)
    ),
    Case(
        "scale_by_rprop",
        lambda: gc.scale_by_rprop(0.01, eta_minus=0.3, eta_plus=1.5, min_step_size=1e-3, max_step_size=0.02),
        variant="bounds",
        traced=lambda e: gc.scale_by_rprop(0.01, eta_plus=e),
        traced_values=(1.1, 2.0),
    ),
    Case("scale_by_sm3", gc.scale_by_sm3, traced=lambda b1: gc.scale_by_sm3(b1), traced_values=(0.0, 0.9)),
    Case(
        "scale_by_sm3",
        lambda: gc.scale_by_sm3(0.5, b2=0.99, eps=1e-6),
        variant="ema",
        traced=lambda b2: gc.scale_by_sm3(0.5, b2=b2),
        traced_values=(0.9, 1.0),
    ),
    Case(
        "add_noise",
        lambda: gc.add_noise(0.01, 0.55, jax.random.key(0)),
        traced=lambda eta: gc.add_noise(eta, 0.55, 3),
        traced_values=(0.0, 0.01),
    ),
    Case("add_noise", lambda: gc.add_noise(0.1, 1.0, jax.random.PRNGKey(1)), variant="raw_key"),
    Case("scale_by_polyak", gc.scale_by_polyak, traced=lambda m: gc.scale_by_polyak(max_learning_rate=m)),
    Case(
        "scale_by_polyak",
        lambda: gc.scale_by_polyak(0.5, 0.1, 1e-3, "sps+"),
        variant="sps_plus",
        traced=lambda f: gc.scale_by_polyak(f, 0.1, 1e-3, "sps+"),
        traced_values=(0.5, 2.0),  # the second gives a zero step (value 1 < f_min)
    ),
    Case(
        "scale_by_distance_over_gradients",
        gc.scale_by_distance_over_gradients,
        traced=lambda r: gc.scale_by_distance_over_gradients(reps_rel=r),
        traced_values=(1e-6, 1e-4),
        needs_params=True,
    ),
    Case(
        "scale_by_distance_over_gradients",
        lambda: gc.scale_by_distance_over_gradients(1e-4, 0.0, None, -1.0),
        variant="native_dtype",
        traced=lambda s: gc.scale_by_distance_over_gradients(global_scale=s),
        traced_values=(-1.0, 0.5),
        needs_params=True,
    ),
    Case(
        "normalize_by_update_norm",
        gc.normalize_by_update_norm,
        traced=lambda s: gc.normalize_by_update_norm(scale_factor=s),
        traced_values=(-0.1, 0.5),
    ),
    # optimizers
    Case("sign_sgd", lambda: gc.sign_sgd(0.01), traced=gc.sign_sgd),
    Case("sign_sgd", lambda: gc.sign_sgd(_sched), variant="schedule"),
    Case("signum", lambda: gc.signum(0.01), traced=gc.signum),
    Case(
        "signum",
        lambda: gc.signum(_sched, beta=0.5, accumulator_dtype=jnp.bfloat16),
        variant="schedule_bf16",
        traced=lambda b: gc.signum(0.01, beta=b),
        traced_values=(0.0, 0.9),
    ),
    Case("rprop", lambda: gc.rprop(0.01), traced=gc.rprop),
    Case("sm3", lambda: gc.sm3(0.1), traced=gc.sm3),
    Case("fromage", lambda: gc.fromage(0.01), traced=gc.fromage, needs_params=True),
    Case(
        "fromage",
        lambda: gc.fromage(_sched, min_norm=0.0),
        variant="schedule",
        traced=lambda m: gc.fromage(0.01, min_norm=m),
        traced_values=(0.0, 1e-3),
        needs_params=True,
    ),
    Case(
        "noisy_sgd",
        lambda: gc.noisy_sgd(0.01, key=jax.random.key(0)),
        traced=lambda lr: gc.noisy_sgd(lr, key=0),
    ),
    Case("polyak_sgd", gc.polyak_sgd, traced=lambda m: gc.polyak_sgd(max_learning_rate=m)),
    Case(
        "polyak_sgd",
        lambda: gc.polyak_sgd(0.5, _sched, variant="sps+"),
        variant="schedule_sps_plus",
        traced=lambda s: gc.polyak_sgd(0.5, s, variant="sps+"),
    ),
]
