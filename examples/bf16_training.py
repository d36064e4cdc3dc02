"""Training with bfloat16 parameters: round-to-nearest stalls, stochastic rounding and Kahan don't.

What it shows
-------------
A bfloat16 number keeps 8 significant bits, so an update smaller than half the spacing
between a parameter and its neighbours (``|u| < |p| * 2**-9``) is rounded away when it
is added to the parameter. With a small learning rate, plain bfloat16 training therefore
stops moving long before the optimum: the parameters stall wherever ``lr * gradient``
has fallen below their rounding threshold.

The model is linear regression on generated data (``y = X w* + noise``, 1024 examples,
32 features; no download), trained with full-batch ``gradchain.sgd(lr)`` four ways:

* **float32** parameters: the baseline (``apply_updates``);
* **bfloat16, round to nearest**: ``apply_updates`` on bfloat16 parameters: stalls;
* **bfloat16, stochastic rounding**: ``apply_updates_stochastic(params, updates, key)``
  rounds ``p + u`` up or down at random, with probabilities proportional to the distances,
  so the parameters are right on average (one fresh key per step, no state);
* **bfloat16, Kahan summation**: ``chain(sgd(lr), kahan_summation())`` keeps what rounding
  lost in a bfloat16 compensation buffer and adds it back (deterministic; 2 more bytes per
  parameter), with the ordinary ``apply_updates``.

The loss is computed in float32 (``w.astype(jnp.float32)``) in every variant; only the
stored parameters differ. Prints a table of final losses and writes
``bf16_training.png`` (loss curves, log scale) into ``--out`` (default:
``examples/outputs/``, created if missing). Checks that stochastic rounding and Kahan end
within a factor 1.25 of float32's loss while round-to-nearest ends at least 10x above it
(exit code 1 otherwise). ``--quick`` (CI, a few seconds): a larger learning rate and fewer
steps (the same story).

Run::

    python examples/bf16_training.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import gradchain

# name: (parameter dtype, how updates are applied, bytes per parameter incl. optimizer extras)
VARIANTS = {
    "float32": (jnp.float32, "nearest", 4),
    "bfloat16, round to nearest": (jnp.bfloat16, "nearest", 2),
    "bfloat16, stochastic rounding": (jnp.bfloat16, "stochastic", 2),
    "bfloat16, Kahan summation": (jnp.bfloat16, "kahan", 4),
}
# (learning rate, steps): full run and --quick
SETTINGS = {False: (3e-3, 4000), True: (1e-2, 1000)}
TRACK_FACTOR = 1.25  # stochastic rounding and Kahan: final loss <= 1.25 x float32's
STALL_FACTOR = 10.0  # round to nearest: final loss >= 10 x float32's
N_EXAMPLES, N_FEATURES, NOISE = 1024, 32, 0.1


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="fewer steps (for CI); still checks the results")
    p.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "outputs"),
        help="folder for the PNG (default: examples/outputs/, created if missing)",
    )
    p.add_argument("--seed", type=int, default=0, help="data and rounding seed (default 0)")
    return p.parse_args(argv)


def make_problem(seed: int):
    """Generated linear-regression data: X (n, d), y = X w* + noise, float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N_EXAMPLES, N_FEATURES))
    w_star = rng.standard_normal(N_FEATURES)
    y = x @ w_star + NOISE * rng.standard_normal(N_EXAMPLES)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


def train(variant: str, x, y, lr: float, steps: int, seed: int) -> np.ndarray:
    """Full-batch SGD from w = 0; returns the loss before each step and after the last."""
    dtype, mode, _ = VARIANTS[variant]
    tx = gradchain.sgd(lr)
    if mode == "kahan":
        tx = gradchain.chain(tx, gradchain.kahan_summation())  # last in the chain

    def loss(w):
        return 0.5 * jnp.mean((x @ w.astype(jnp.float32) - y) ** 2)  # computed in float32

    def step(carry, t):
        w, state, key = carry
        value, grad = jax.value_and_grad(loss)(w)  # grad has w's dtype
        updates, state = tx.update(grad, state, w)
        if mode == "stochastic":
            w = gradchain.apply_updates_stochastic(w, updates, jax.random.fold_in(key, t))
        else:
            w = gradchain.apply_updates(w, updates)
        return (w, state, key), value

    @jax.jit
    def run():
        w0 = jnp.zeros(N_FEATURES, dtype)
        (w, _, _), losses = jax.lax.scan(
            step, (w0, tx.init(w0), jax.random.key(seed)), jnp.arange(steps, dtype=jnp.int32)
        )
        return jnp.concatenate([losses, loss(w)[None]])

    return np.asarray(run(), np.float64)


def run(quick: bool = False, seed: int = 0) -> dict:
    """Train every variant; returns {"lr", "steps", "floor", "seconds", "losses": {variant: curve}}."""
    lr, steps = SETTINGS[quick]
    x, y = make_problem(seed)
    w_ls = np.linalg.lstsq(np.asarray(x, np.float64), np.asarray(y, np.float64), rcond=None)[0]
    floor = 0.5 * float(np.mean((np.asarray(x, np.float64) @ w_ls - np.asarray(y, np.float64)) ** 2))
    t0 = time.perf_counter()
    losses = {
        name: train(name, x, y, lr, steps, seed)
        for name in tqdm(VARIANTS, desc="variants", unit="run", file=sys.stdout, leave=False)
    }
    return {"lr": lr, "steps": steps, "floor": floor, "seconds": time.perf_counter() - t0, "losses": losses}


def check(results: dict) -> list[str]:
    """The failed checks (empty: all passed)."""
    final = {name: curve[-1] for name, curve in results["losses"].items()}
    base = final["float32"]
    failed = [
        f"{name}: final loss {final[name]:.4g} > {TRACK_FACTOR} x float32's {base:.4g}"
        for name in ("bfloat16, stochastic rounding", "bfloat16, Kahan summation")
        if not final[name] <= TRACK_FACTOR * base
    ]
    if not final["bfloat16, round to nearest"] >= STALL_FACTOR * base:
        failed.append(
            f"round to nearest did not stall: {final['bfloat16, round to nearest']:.4g} < "
            f"{STALL_FACTOR} x float32's {base:.4g}"
        )
    return failed


def report(results: dict, out: str | None) -> int:
    """Print the table, write the PNG into ``out`` (None: no plot), return the exit code."""
    lr, steps, floor = results["lr"], results["steps"], results["floor"]
    base = results["losses"]["float32"][-1]
    print(
        f"linear regression, {N_EXAMPLES} x {N_FEATURES}, full-batch sgd(lr={lr:g}), {steps} steps "
        f"({results['seconds']:.1f} s incl. compilation); least-squares optimum: loss {floor:.5f}\n"
    )
    print(f"  {'parameters':32s} {'bytes/param':>11s} {'final loss':>11s} {'x float32':>10s}")
    for name, curve in results["losses"].items():
        print(f"  {name:32s} {VARIANTS[name][2]:11d} {curve[-1]:11.5f} {curve[-1] / base:10.2f}")
    if out is not None:
        print(f"\nwrote {plot(results, out)}")
    failed = check(results)
    if failed:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    print(
        f"OK: stochastic rounding and Kahan end within {TRACK_FACTOR}x of float32's loss; "
        f"round to nearest stalls at >= {STALL_FACTOR}x"
    )
    return 0


def plot(results: dict, out: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    styles = ["-", "-", "--", ":"]
    for (name, curve), ls in zip(results["losses"].items(), styles):
        ax.semilogy(curve, ls, lw=2, label=f"{name} (final {curve[-1]:.4f})")
    ax.axhline(results["floor"], color="grey", lw=1, ls="-.", label="least-squares optimum")
    ax.set(
        xlabel="step",
        ylabel="training loss (log scale)",
        title=f"Linear regression, sgd(lr={results['lr']:g}): bfloat16 parameters, three ways to add updates",
    )
    ax.legend()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "bf16_training.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    return report(run(args.quick, args.seed), args.out)


if __name__ == "__main__":
    sys.exit(main())
