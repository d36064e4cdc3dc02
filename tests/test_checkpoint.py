"""Checkpoint round trip for every registry case: train, save, restore, continue.

For each case (about ten cases share one checkpoint): k jitted steps, then the state
(and params) are saved with orbax's
``StandardCheckpointer`` and with ``flax.serialization``, restored with and without a
target, and training continues with the same compiled step. The continuation must be
bit-identical to uninterrupted training. ``k`` is odd so accumulation cases stop
mid-accumulation; a guarded run also saves right after a skipped (NaN) step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
from tests import helpers
from tests.registry import CASES

ocp = pytest.importorskip("orbax.checkpoint")
serialization = pytest.importorskip("flax.serialization")

K, M = 3, 2


def _step(tx, extra_args):
    @jax.jit
    def step(p, s, g):
        u, s = tx.update(g, s, p, **extra_args)
        return gradchain.apply_updates(p, u), s

    return step


def _assert_bitwise_equal(a, b, what):
    assert jax.tree.structure(a) == jax.tree.structure(b), what
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.atleast_1d(np.asarray(x)), np.atleast_1d(np.asarray(y))
        assert x.dtype == y.dtype and x.shape == y.shape, what
        np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8), err_msg=what)


def _restore_like(target, raw):
    """Read orbax's untyped restore (dicts for NamedTuples, lists for tuples) into ``target``'s types."""
    if target is None:
        return None
    if isinstance(target, tuple) and hasattr(target, "_fields"):
        return type(target)(*[_restore_like(getattr(target, f), raw[f]) for f in target._fields])
    if isinstance(target, (tuple, list)):
        return type(target)(_restore_like(t, r) for t, r in zip(target, raw, strict=True))
    if isinstance(target, dict):
        return {k: _restore_like(v, raw[k]) for k, v in target.items()}
    return raw


def _restorers(tmp_path, target):
    """Yield (name, restored) for every way of saving and loading ``target``."""
    ckpt = ocp.StandardCheckpointer()
    path = tmp_path / "orbax"
    ckpt.save(path, target)
    ckpt.wait_until_finished()
    yield "orbax with target", ckpt.restore(path, target)
    yield "orbax without target", _restore_like(target, ckpt.restore(path))
    blob = serialization.to_bytes(target)
    yield "flax with target", serialization.from_bytes(target, blob)
    yield "flax without target", serialization.from_state_dict(target, serialization.msgpack_restore(blob))


def _round_trip(tx, extra_args, params, grads, tmp_path, what):
    _round_trip_many([(what, tx, extra_args)], params, grads, tmp_path)


def _round_trip_many(runs, params, grads, tmp_path):
    """K steps of each (name, tx, extra_args); ONE checkpoint holds all their (params, state)
    (orbax's per-save cost dwarfs a small state's); each continues M steps after every way
    of restoring and must equal its uninterrupted run bit for bit."""
    steps, saved, ref = {}, {}, {}
    for what, tx, extra_args in runs:
        step = steps[what] = _step(tx, extra_args)
        p, s = params, tx.init(params)
        for g in grads[:K]:
            p, s = step(p, s, g)
        saved[what] = (p, s)
        for g in grads[K:]:
            p, s = step(p, s, g)
        ref[what] = (p, s)
    for name, restored in _restorers(tmp_path, saved):
        for what, (rp, rs) in restored.items():
            for g in grads[K:]:
                rp, rs = steps[what](rp, rs, g)
            _assert_bitwise_equal(rp, ref[what][0], f"{what}: params after {name}")
            _assert_bitwise_equal(rs, ref[what][1], f"{what}: state after {name}")


CHUNKS = 24  # cases per checkpoint: about ten
_CHUNKED = [CASES[i::CHUNKS] for i in range(CHUNKS)]


@pytest.mark.parametrize("chunk", _CHUNKED, ids=[f"{c[0].id}+{len(c) - 1}" for c in _CHUNKED])
def test_checkpoint_round_trip_is_bit_identical(chunk, tmp_path):
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, K + M)
    _round_trip_many([(c.id, c.make(), dict(c.extra_args)) for c in chunk], params, grads, tmp_path)


def test_round_trip_after_a_skipped_step(tmp_path):
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, K + M)
    grads[K - 1] = jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.nan), grads[K - 1])
    for tx in (
        gradchain.apply_if_finite(gradchain.adam(0.01), 3),
        gradchain.dynamic_loss_scaling(gradchain.adamw(0.01)),
    ):
        _round_trip(tx, {}, params, grads, tmp_path / str(id(tx)), "guarded")
