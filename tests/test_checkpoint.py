"""Checkpoint round trips through orbax.

Every registry case's state goes through orbax's ``StandardCheckpointer`` (restored with
and without a target) and comes back with the same node types, dtypes, shapes and bits.
For a few optimizers, training continues after each way of restoring (orbax and
``flax.serialization``, with and without a target) with the same compiled step, and must
equal uninterrupted training bit for bit; ``K`` is odd so accumulation stops mid-way,
and a guarded run also saves right after a skipped (NaN) step. Every registry case's
continuation after a ``flax.serialization`` restore is checked in test_contract.py.
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
            helpers.assert_trees_bitwise_equal(rp, ref[what][0], f"{what}: params after {name}")
            helpers.assert_trees_bitwise_equal(rs, ref[what][1], f"{what}: state after {name}")


CHUNKS = 4  # orbax's per-save cost dwarfs a small state's: many cases per checkpoint


def _moved_state(case, params, seed):
    """The case's ``init`` state with every floating leaf moved off its initial value
    (zeros and ones would hide a restore that fills defaults)."""
    rng = np.random.default_rng(seed)

    def move(x):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact) and x.size:
            return x + jnp.asarray(rng.standard_normal(x.shape), x.dtype)
        return x

    return jax.tree.map(move, case.make().init(params))


_CHUNKED = [CASES[i::CHUNKS] for i in range(CHUNKS)]


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_every_case_state_restores_bit_identical_through_orbax(chunk, tmp_path):
    # Every registry case's (params, state), one orbax checkpoint per chunk of cases,
    # restored with and without a target: the same node types, dtypes, shapes and bits.
    # Continuing training from a restored checkpoint (bit for bit, same compiled step)
    # is checked for every case in test_contract.py through flax.serialization, and
    # through orbax by the tests below.
    params = helpers.random_tree(0)
    saved = {f"case{i:03d}": (params, _moved_state(c, params, i)) for i, c in enumerate(_CHUNKED[chunk])}
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(tmp_path / "orbax", saved)
    ckpt.wait_until_finished()
    for how, restored in (
        ("with target", ckpt.restore(tmp_path / "orbax", saved)),
        ("without target", _restore_like(saved, ckpt.restore(tmp_path / "orbax"))),
    ):
        for (key, tree), case in zip(saved.items(), _CHUNKED[chunk], strict=True):
            helpers.assert_trees_bitwise_equal(restored[key], tree, f"{case.id}: orbax restore {how}")


def test_training_continues_bit_identical_after_orbax_restore(tmp_path):
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, K + M)
    runs = [
        ("adamw", gradchain.adamw(0.01, weight_decay=0.1), {}),
        ("clip+adam", gradchain.chain(gradchain.clip_by_global_norm(1.0), gradchain.scale_by_adam()), {}),
        ("multi_steps", gradchain.MultiSteps(gradchain.adam(0.01), 2).gradient_transformation(), {}),
        ("schedule_free", gradchain.schedule_free_adamw(0.01), {}),
    ]
    _round_trip_many(runs, params, grads, tmp_path)


def test_round_trip_after_a_skipped_step(tmp_path):
    params = helpers.random_tree(0)
    grads = helpers.grad_sequence(1, params, K + M)
    grads[K - 1] = jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.nan), grads[K - 1])
    for tx in (
        gradchain.apply_if_finite(gradchain.adam(0.01), 3),
        gradchain.dynamic_loss_scaling(gradchain.adamw(0.01)),
    ):
        _round_trip(tx, {}, params, grads, tmp_path / str(id(tx)), "guarded")
