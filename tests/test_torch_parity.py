"""torch.optim parity: with torch's conventions spelled out, gradchain reproduces the
parameter trajectory of torch.optim on a least-squares problem.

Each framework computes its own gradients from its own parameters (so gradients depend
on the trajectory and any discrepancy compounds), float32 on both sides, 20 steps. Each
row of CASES is one line of the README's torch table (/work/notes/torch_table.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain as gc
from tests import helpers

torch = pytest.importorskip("torch")

N_STEPS = 20
RTOL = 1e-5

_rng = np.random.default_rng(0)
X = _rng.standard_normal((64, 5)).astype(np.float32)
W0 = (np.sign(_rng.standard_normal((5, 3))) * (1.5 + _rng.random((5, 3)))).astype(np.float32)
B0 = (1.5 + _rng.random(3)).astype(np.float32)
# the optimum lies between 0.5 and 1 away from the start, on the same side of zero
Y = (X @ (W0 - np.sign(W0) * (0.5 + 0.5 * _rng.random((5, 3)))) + (B0 - 0.7)).astype(np.float32)


def _jax_loss(params):
    r = X @ params["w"] + params["b"][None, :] - Y
    return 0.5 * jnp.mean(jnp.sum(r * r, axis=1))


def _torch_loss(w, b):
    r = torch.from_numpy(X) @ w + b - torch.from_numpy(Y)
    return 0.5 * (r * r).sum(dim=1).mean()


def _gradchain_trajectory(tx):
    params = {"w": jnp.asarray(W0), "b": jnp.asarray(B0)}

    @jax.jit
    def step(params, state):
        grads = jax.grad(_jax_loss)(params)
        updates, state = tx.update(grads, state, params)
        return gc.apply_updates(params, updates), state

    state, out = tx.init(params), []
    for _ in range(N_STEPS):
        params, state = step(params, state)
        out.append(params)
    return out


def _torch_trajectory(make_opt):
    w = torch.tensor(W0, requires_grad=True)
    b = torch.tensor(B0, requires_grad=True)
    opt = make_opt([w, b])
    out = []
    for _ in range(N_STEPS):
        opt.zero_grad()
        _torch_loss(w, b).backward()
        opt.step()
        out.append({"w": w.detach().numpy().copy(), "b": b.detach().numpy().copy()})
    return out


O = torch.optim
# (row of the table, torch optimizer factory, the equal gradchain optimizer)
CASES = [
    ("SGD", lambda ps: O.SGD(ps, lr=0.1), lambda: gc.sgd(0.1)),
    ("SGD momentum", lambda ps: O.SGD(ps, lr=0.05, momentum=0.9), lambda: gc.sgd(0.05, momentum=0.9)),
    (
        "SGD nesterov",
        lambda ps: O.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        lambda: gc.sgd(0.05, momentum=0.9, nesterov=True),
    ),
    (
        "SGD weight_decay",
        lambda ps: O.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
        lambda: gc.chain(gc.add_decayed_weights(0.01), gc.sgd(0.05, momentum=0.9)),
    ),
    (
        "Adagrad",
        lambda ps: O.Adagrad(ps, lr=0.1),
        lambda: gc.adagrad(0.1, initial_accumulator_value=0.0, eps=1e-10),
    ),
    (
        "Adagrad initial_accumulator_value",
        lambda ps: O.Adagrad(ps, lr=0.1, initial_accumulator_value=0.1, eps=1e-10),
        lambda: gc.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-10),
    ),
    (
        "RMSprop",
        lambda ps: O.RMSprop(ps, lr=0.01),
        lambda: gc.rmsprop(0.01, decay=0.99, eps=1e-8, eps_in_sqrt=False),
    ),
    (
        "RMSprop centered",
        lambda ps: O.RMSprop(ps, lr=0.01, centered=True),
        lambda: gc.rmsprop(0.01, decay=0.99, eps=1e-8, eps_in_sqrt=False, centered=True),
    ),
    (
        "RMSprop momentum",
        lambda ps: O.RMSprop(ps, lr=0.01, momentum=0.9),
        lambda: gc.rmsprop(0.01, decay=0.99, eps=1e-8, eps_in_sqrt=False, momentum=0.9),
    ),
    (
        "RMSprop centered momentum",
        lambda ps: O.RMSprop(ps, lr=0.01, alpha=0.9, momentum=0.5, centered=True),
        lambda: gc.rmsprop(0.01, decay=0.9, eps=1e-8, eps_in_sqrt=False, centered=True, momentum=0.5),
    ),
    # a large eps makes its placement (outside the square root, as in torch) visible
    (
        "RMSprop eps",
        lambda ps: O.RMSprop(ps, lr=0.01, eps=0.1),
        lambda: gc.rmsprop(0.01, decay=0.99, eps=0.1, eps_in_sqrt=False),
    ),
    ("Adam", lambda ps: O.Adam(ps, lr=0.01), lambda: gc.adam(0.01)),
    (
        "Adam betas eps",
        lambda ps: O.Adam(ps, lr=0.02, betas=(0.8, 0.99), eps=0.1),
        lambda: gc.adam(0.02, b1=0.8, b2=0.99, eps=0.1),
    ),
    (
        "Adam weight_decay",
        lambda ps: O.Adam(ps, lr=0.01, weight_decay=0.1),
        lambda: gc.chain(gc.add_decayed_weights(0.1), gc.adam(0.01)),
    ),
    ("AdamW", lambda ps: O.AdamW(ps, lr=0.01), lambda: gc.adamw(0.01, weight_decay=0.01)),
    (
        "AdamW weight_decay",
        lambda ps: O.AdamW(ps, lr=0.02, betas=(0.8, 0.99), eps=0.1, weight_decay=0.5),
        lambda: gc.adamw(0.02, b1=0.8, b2=0.99, eps=0.1, weight_decay=0.5),
    ),
    ("Adamax", lambda ps: O.Adamax(ps, lr=0.02), lambda: gc.adamax(0.02)),
    (
        "Adamax betas eps",
        lambda ps: O.Adamax(ps, lr=0.02, betas=(0.8, 0.99), eps=0.1),
        lambda: gc.adamax(0.02, b1=0.8, b2=0.99, eps=0.1),
    ),
]


@pytest.mark.parametrize("make_torch, make_gc", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parameter_trajectory_matches_torch(make_torch, make_gc):
    got = _gradchain_trajectory(make_gc())
    expected = _torch_trajectory(make_torch)
    moved = helpers.max_rel_diff(expected[-1], {"w": W0, "b": B0})
    assert moved > 1e-2, f"the parameters barely moved ({moved:.1e}): the test would be vacuous"
    for t, (a, b) in enumerate(zip(got, expected)):
        worst = helpers.max_rel_diff(a, b)
        assert worst <= RTOL, f"step {t}: parameters differ from torch by {worst:.2e} (relative)"


def test_the_problem_keeps_parameters_away_from_zero():
    """Relative comparisons are meaningful only if no parameter approaches zero."""
    for make_torch, _ in [c[1:] for c in CASES]:
        for p in _torch_trajectory(make_torch):
            assert min(float(np.min(np.abs(x))) for x in p.values()) > 0.1
