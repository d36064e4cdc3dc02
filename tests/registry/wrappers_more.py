"""Registry cases for the control wrappers and leafwise controls (tests/test_wrappers_more.py).

``lookahead`` updates `LookaheadParams`, not the plain parameter tree the contract tests
step; its cases run it through `_on_plain_params`, which keeps the slow copy in the
state. ``measure_with_ema`` outputs a measurement, not updates: one case measures the
updates themselves (``measure=identity``, an EMA of the updates), one runs it inside
``monitor``.
"""

import functools

import gradchain as gc
from tests.registry import Case


def _stateful(lr=0.1):
    """A small stateful inner transformation (per-parameter state and a count)."""
    return gc.chain(gc.scale_by_adam(), gc.scale_by_learning_rate(lr))


def _on_plain_params(tx):
    """`lookahead` on the plain parameter tree: the slow copy travels in the state."""

    def init_fn(params):
        return tx.init(gc.LookaheadParams.init_synced(params)), params

    def update_fn(updates, state, params=None, **extra_args):
        inner_state, slow = state
        both = None if params is None else gc.LookaheadParams(fast=params, slow=slow)
        u, inner_state = tx.update(updates, inner_state, both, **extra_args)
        return u.fast, (inner_state, gc.apply_updates(slow, u.slow))

    return gc.GradientTransformation(init_fn, update_fn)


def _every_other(step):
    return step % 2 == 0


def _value_above_half(step, value):
    return (value > 0.5) & (step % 3 != 1)


CASES = [
    Case("apply_every", lambda: gc.apply_every(3)),
    Case("apply_every", lambda: gc.apply_every(1), variant="k1"),
    Case("zero_nans", gc.zero_nans),
    Case("keep_params_nonnegative", gc.keep_params_nonnegative, needs_params=True),
    Case(
        "stateless_with_tree_map",
        lambda: gc.stateless_with_tree_map(lambda g, p: g if p is None else g + 0.1 * p),
    ),
    Case(
        "conditionally_transform",
        lambda: gc.conditionally_transform(_stateful(), _every_other),
        traced=lambda h: gc.conditionally_transform(_stateful(h), _every_other),
    ),
    Case(
        "conditionally_mask",
        lambda: gc.conditionally_mask(_stateful(), _every_other),
        traced=lambda h: gc.conditionally_mask(_stateful(h), _every_other),
    ),
    Case(
        "conditionally_mask",
        lambda: gc.conditionally_mask(_stateful(), _value_above_half, forward_extra_args=True),
        variant="forward_extra_args",
    ),
    Case("flatten", lambda: gc.flatten(_stateful()), traced=lambda h: gc.flatten(_stateful(h))),
    Case("flatten", lambda: gc.flatten(gc.clip_by_norm(1.0)), variant="global-norm"),
    Case(
        "lookahead",
        lambda: _on_plain_params(gc.lookahead(_stateful(), 3, 0.5)),
        traced=lambda h: _on_plain_params(gc.lookahead(_stateful(), 2, h)),
        needs_params=True,
    ),
    Case(
        "lookahead",
        lambda: _on_plain_params(gc.lookahead(_stateful(), 2, 0.3, reset_state=True)),
        variant="reset_state",
        needs_params=True,
    ),
    Case("snapshot", lambda: gc.snapshot("norm", gc.global_norm)),
    Case(
        "monitor",
        lambda: gc.monitor({"norm": gc.global_norm, "ema": gc.measure_with_ema(gc.global_norm, 0.9)}),
    ),
    Case(
        "measure_with_ema",
        lambda: gc.measure_with_ema(lambda u: u, 0.9),
        traced=lambda h: gc.measure_with_ema(lambda u: u, h),
        variant="identity",
    ),
    Case(
        "measure_with_ema",
        lambda: gc.monitor({"big": gc.measure_with_ema(lambda u: gc.global_norm(u) > 3.0, 0.8, False)}),
        variant="in-monitor",
    ),
    Case(
        "accumulate_gradients",
        lambda: gc.accumulate_gradients(_stateful(), 2, should_skip_update_fn=gc.skip_not_finite),
        traced=lambda h: gc.accumulate_gradients(_stateful(h), 2, should_skip_update_fn=gc.skip_not_finite),
        variant="skip_not_finite",
    ),
    Case(
        "accumulate_gradients",
        lambda: gc.accumulate_gradients(
            _stateful(),
            3,
            should_skip_update_fn=functools.partial(gc.skip_large_updates, max_squared_norm=30.0),
        ),
        variant="skip_large_updates",
    ),
]
