"""Porting is an import change: six training scripts written against Optax (tests/porting/)
run unchanged except for the line ``import optax`` -> ``import gradchain as optax``, and
train as they do with Optax."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent / "porting"
# script -> the steps its quick run takes here (the scripts' own defaults are longer)
SCRIPTS = {
    "mnist_linen": 30,
    "nnx_tutorial": 30,
    "vae": 30,
    "seq2seq": 30,
    "trainstate_toy": 40,
    "gpt": 12,
}


def _load(name: str, port: bool) -> types.ModuleType:
    source = (HERE / f"{name}.py").read_text()
    assert source.count("import optax\n") == 1, f"{name}.py must import optax once, as `import optax`"
    if port:
        source = source.replace("import optax\n", "import gradchain as optax\n")
    module = types.ModuleType(f"porting_{name}_{'gradchain' if port else 'optax'}")
    module.__file__ = str(HERE / f"{name}.py")
    sys.modules[module.__name__] = module  # flax/dataclasses look modules up by name
    try:
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    finally:
        sys.modules.pop(module.__name__, None)
    return module


@pytest.fixture(autouse=True)
def _standard_promotion():
    """The scripts are user code written for JAX's default promotion rules."""
    import jax

    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_script_runs_with_the_import_change_alone(name):
    steps = SCRIPTS[name]
    theirs = _load(name, port=False).main(steps=steps)
    mine = _load(name, port=True).main(steps=steps)
    assert mine.keys() == theirs.keys()
    for key in theirs:
        a, b = np.asarray(mine[key], np.float64), np.asarray(theirs[key], np.float64)
        assert np.all(np.isfinite(a)), f"{name}: {key} is not finite with gradchain"
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=f"{name}: {key}")
    losses = np.asarray(mine["losses"])
    assert losses[-5:].mean() < losses[:5].mean(), f"{name}: the loss did not go down"


def test_the_port_really_uses_gradchain():
    module = _load("vae", port=True)
    assert module.optax.__name__ == "gradchain"
    state = module.tx.init({"w": np.zeros(2, np.float32)})
    assert type(state[0]).__module__.startswith("gradchain")
