"""A small transformer language model trained with the optimizers of 2024-26, side by side.

What it shows
-------------
A character-level GPT (2 pre-norm blocks, causal attention, 4 heads) learns Python
source code: the corpus is the source of modules of Python's own standard library,
available on every machine (no download). The same model, data order and number of
steps are trained with each optimizer:

* ``AdamW``: the baseline, ``gradchain.adamw`` with a warm-up cosine schedule;
* ``Muon``: Newton-Schulz-orthogonalized momentum on the hidden matrices, AdamW on
  embeddings, the head and vectors (``gradchain.muon``);
* ``Schedule-free AdamW``: no schedule; the loss is measured at the evaluation point
  ``schedule_free_eval_params`` (``gradchain.schedule_free_adamw``);
* ``Prodigy``: learning-rate-free (``gradchain.prodigy`` with ``learning_rate=1``);
* ``SOAP``, ``Shampoo``: second-order preconditioners (``gradchain.soap``,
  ``gradchain.shampoo``);
* ``AdEMAMix``: Adam with a second, slow momentum (``gradchain.ademamix``).

Each optimizer's learning rate is a sensible default for this model, not tuned per
optimizer. The script prints the validation loss of each at equal steps and at equal
wall time (the time the fastest run needed for all its steps), writes the loss curves
(against steps and against seconds) to ``lm_optimizers.png`` under ``--out``, and
checks that every optimizer lowers the validation loss below the unigram entropy of
the corpus (exit code 1 otherwise). ``--quick`` (CI): a smaller model, 30 steps of the
first three optimizers, each checked to beat a uniform guess.

Run::

    python examples/lm_optimizers.py                # ~2 min 50 s on 2 CPU cores
    python examples/lm_optimizers.py --quick        # ~30 s
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import gradchain

CTX, D, HEADS, LAYERS, BATCH = 64, 96, 4, 2, 16
CORPUS_MODULES = ("argparse", "textwrap", "json.decoder", "json.encoder", "dataclasses", "enum", "string")


# ------------------------------------------------------------------------------ data
def corpus() -> tuple[np.ndarray, np.ndarray, int]:
    """Character ids of the standard library modules' source: 90% train, 10% validation."""
    import importlib

    text = "\n".join(inspect.getsource(importlib.import_module(m)) for m in CORPUS_MODULES)
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text], dtype=np.int32)
    split = int(0.9 * len(ids))
    return ids[:split], ids[split:], len(chars)


def unigram_entropy(ids: np.ndarray, vocab: int) -> float:
    p = np.bincount(ids, minlength=vocab) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def batches(ids: np.ndarray, steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - CTX - 1, (steps, BATCH))
    return np.stack([np.stack([ids[s : s + CTX + 1] for s in row]) for row in starts])


# ----------------------------------------------------------------------------- model
def init_params(key, vocab: int) -> dict:
    """Hidden matrices are 2-D ``(fan_in, fan_out)``; the attention projections of all
    blocks are stacked along a leading layer axis (a scanned model's layout)."""
    ks = iter(jax.random.split(key, 8))

    def normal(shape, scale):
        return scale * jax.random.normal(next(ks), shape, jnp.float32)

    return {
        "embed": normal((vocab, D), 0.02),
        "pos": normal((CTX, D), 0.02),
        "blocks": {
            "qkv": normal((LAYERS, D, 3 * D), D**-0.5),
            "proj": normal((LAYERS, D, D), (2 * LAYERS * D) ** -0.5),
            "fc": normal((LAYERS, D, 4 * D), D**-0.5),
            "out": normal((LAYERS, 4 * D, D), (2 * LAYERS * 4 * D) ** -0.5),
            "ln1": jnp.ones((LAYERS, D)),
            "ln2": jnp.ones((LAYERS, D)),
        },
        "ln_f": jnp.ones((D,)),
        "head": normal((D, vocab), D**-0.5),
    }


def _norm(x, scale):
    x = x - x.mean(-1, keepdims=True)
    return x * jax.lax.rsqrt((x * x).mean(-1, keepdims=True) + 1e-5) * scale


def forward(params, tokens):
    t = tokens.shape[1]
    x = params["embed"][tokens] + params["pos"][:t][None]
    mask = jnp.tril(jnp.ones((t, t), bool))

    def block(x, p):
        h = _norm(x, p["ln1"])
        q, k, v = jnp.split(h @ p["qkv"], 3, axis=-1)
        q, k, v = (a.reshape(*a.shape[:2], HEADS, D // HEADS) for a in (q, k, v))
        att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(D // HEADS)
        att = jax.nn.softmax(jnp.where(mask, att, -1e9), axis=-1)
        x = x + jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(x.shape) @ p["proj"]
        x = x + jax.nn.gelu(_norm(x, p["ln2"]) @ p["fc"]) @ p["out"]
        return x, None

    x, _ = jax.lax.scan(block, x, params["blocks"])
    return _norm(x, params["ln_f"]) @ params["head"]


def loss_fn(params, batch):
    logits = forward(params, batch[:, :-1])
    return gradchain.losses.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()


# ------------------------------------------------------------------------ optimizers
def hidden_matrices(params):
    """True for the block matrices (stacked: the leading layer axis is a batch axis), False
    for embeddings, the head and every vector (those take AdamW inside `muon`)."""
    mask = jax.tree.map(lambda _: False, params)
    mask["blocks"] = {k: v.ndim == 3 for k, v in params["blocks"].items()}
    return mask


def make_optimizers(steps: int) -> dict:
    warm = max(1, steps // 10)
    cosine = gradchain.warmup_cosine_decay_schedule(0.0, 3e-3, warm, steps, end_value=3e-4)
    return {
        "AdamW": lambda: gradchain.adamw(cosine, b2=0.95, weight_decay=0.01),
        "Muon": lambda: gradchain.muon(
            gradchain.warmup_cosine_decay_schedule(0.0, 0.02, warm, steps, end_value=2e-3),
            weight_decay=0.01,
            muon_mask=hidden_matrices,
            adam_learning_rate=cosine,
            adam_b2=0.95,
            adam_weight_decay=0.01,
        ),
        "Schedule-free AdamW": lambda: gradchain.schedule_free_adamw(3e-3, warmup_steps=warm, b2=0.95),
        "Prodigy": lambda: gradchain.prodigy(1.0),
        "SOAP": lambda: gradchain.soap(3e-3, precondition_frequency=10),
        "Shampoo": lambda: gradchain.shampoo(3e-3, preconditioning_compute_steps=10),
        "AdEMAMix": lambda: gradchain.ademamix(cosine, b2=0.95, b3=0.999, alpha=5.0, weight_decay=0.01),
    }


def eval_params(name, params, state):
    """The parameters to evaluate: schedule-free evaluates at its x sequence."""
    if name.startswith("Schedule-free"):
        return gradchain.schedule_free_eval_params(state, params)
    return params


# ---------------------------------------------------------------------------- train
def train(name, tx, params, train_batches, val_batch, eval_every):
    state = tx.init(params)

    @jax.jit
    def step(params, state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, state = tx.update(grads, state, params)
        return gradchain.apply_updates(params, updates), state, loss

    val = jax.jit(loss_fn)
    t0 = time.perf_counter()
    params, state, _ = step(params, state, train_batches[0])  # compile (not timed)
    jax.block_until_ready(params)
    compile_s = time.perf_counter() - t0
    curve, clock, elapsed = [], [], 0.0
    for i in range(1, len(train_batches)):
        t0 = time.perf_counter()
        params, state, loss = step(params, state, train_batches[i])
        jax.block_until_ready(loss)
        elapsed += time.perf_counter() - t0
        if i % eval_every == 0 or i == len(train_batches) - 1:
            curve.append((i + 1, float(val(eval_params(name, params, state), val_batch))))
            clock.append(elapsed)
    return {"curve": curve, "clock": clock, "compile_s": compile_s}


def loss_at_time(run, t):
    """Validation loss of the last evaluation made within ``t`` seconds of stepping."""
    seen = [loss for (_, loss), c in zip(run["curve"], run["clock"], strict=True) if c <= t + 1e-9]
    return seen[-1] if seen else float("nan")


def plot(results, path, entropy):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, run in results.items():
        steps, losses = zip(*run["curve"], strict=True)
        axes[0].plot(steps, losses, label=name)
        axes[1].plot(run["clock"], losses, label=name)
    for ax, xlabel in zip(axes, ("step", "seconds of stepping (compile excluded)"), strict=True):
        ax.axhline(entropy, color="gray", ls=":", lw=1, label="unigram entropy")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation loss (nats/char)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Character-level transformer on Python standard-library source")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 steps of three optimizers (CI)")
    parser.add_argument("--steps", type=int, default=None, help="steps per optimizer (default 300)")
    parser.add_argument("--optimizers", default=None, help="comma-separated subset of the names")
    parser.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "outputs"),
        help="folder for lm_optimizers.png (default: examples/outputs)",
    )
    args = parser.parse_args(argv)
    args.error = parser.error
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    global CTX, D, BATCH
    if args.quick:  # a smaller model: the quick run is mostly compilation
        CTX, D, BATCH = 32, 64, 8
    steps = args.steps or (30 if args.quick else 300)
    train_ids, val_ids, vocab = corpus()
    entropy = unigram_entropy(train_ids, vocab)
    available = make_optimizers(steps)
    names = args.optimizers.split(",") if args.optimizers else list(available)
    if args.quick and not args.optimizers:
        names = names[:3]
    unknown = [n for n in names if n not in available]
    if unknown:
        args.error(f"unknown optimizers {unknown}; choose from {list(available)}")

    params0 = init_params(jax.random.key(0), vocab)
    n_params = sum(x.size for x in jax.tree.leaves(params0))
    train_batches = batches(train_ids, steps, seed=1)
    val_batch = batches(val_ids, 4, seed=2).reshape(-1, CTX + 1)
    print(
        f"{len(train_ids):,} training characters, vocabulary {vocab}, model {n_params:,} parameters; "
        f"{steps} steps of {BATCH}x{CTX} tokens; unigram entropy {entropy:.3f}"
    )
    results = {}
    for name in tqdm(names, desc="optimizers", unit="run", file=sys.stdout, leave=False):
        results[name] = train(name, available[name](), params0, train_batches, val_batch, max(1, steps // 20))
        run = results[name]
        print(
            f"  {name:<20} val loss {run['curve'][-1][1]:.3f} after {steps} steps, "
            f"{run['clock'][-1]:.1f} s stepping + {run['compile_s']:.1f} s compile"
        )

    budget = min(run["clock"][-1] for run in results.values())
    print(f"\n| optimizer | val loss at {steps} steps | val loss at {budget:.1f} s | ms / step |")
    print("| --- | --- | --- | --- |")
    for name, run in results.items():
        print(
            f"| {name} | {run['curve'][-1][1]:.3f} | {loss_at_time(run, budget):.3f} | "
            f"{1000 * run['clock'][-1] / (steps - 1):.1f} |"
        )
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "lm_optimizers.png")
    plot(results, path, entropy)
    print(f"\nwrote {path}")
    # the bar: the unigram entropy (full run); a uniform guess, log(vocab), in 30 quick steps
    bar, what = (math.log(vocab), "a uniform guess") if args.quick else (entropy, "the unigram entropy")
    bad = [n for n, run in results.items() if not run["curve"][-1][1] < bar]
    if bad:
        print(f"FAILED: {bad} did not get below {what} ({bar:.3f})")
        return 1
    print(f"OK: every optimizer went below {what} ({bar:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
