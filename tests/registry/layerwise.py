import gradchain as gc
from tests.registry import Case

CASES = [
    Case(
        "scale_by_trust_ratio",
        lambda: gc.scale_by_trust_ratio(trust_coefficient=0.1),
        needs_params=True,
        traced=lambda h: gc.scale_by_trust_ratio(trust_coefficient=h),
    ),
    Case(
        "scale_by_trust_ratio",
        lambda: gc.scale_by_trust_ratio(min_norm=0.5, trust_coefficient=0.02, eps=1e-3),
        needs_params=True,
        variant="min_norm_eps",
        traced=lambda h: gc.scale_by_trust_ratio(min_norm=h),
    ),
    Case(
        "scale_by_param_block_norm",
        gc.scale_by_param_block_norm,
        needs_params=True,
        traced=gc.scale_by_param_block_norm,
    ),
    Case(
        "scale_by_param_block_rms",
        gc.scale_by_param_block_rms,
        needs_params=True,
        traced=gc.scale_by_param_block_rms,
        traced_values=(0.5, 2.0),
    ),
    Case(
        "scale_by_factored_rms",
        gc.scale_by_factored_rms,
        traced=lambda h: gc.scale_by_factored_rms(decay_rate=h),
        traced_values=(0.5, 0.8),
    ),
    Case(
        "scale_by_factored_rms",
        lambda: gc.scale_by_factored_rms(min_dim_size_to_factor=2, step_offset=1),
        variant="factored",
        traced=lambda h: gc.scale_by_factored_rms(min_dim_size_to_factor=2, epsilon=h),
        traced_values=(1e-30, 1e-3),
    ),
]
