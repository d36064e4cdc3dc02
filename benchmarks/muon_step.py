"""Benchmark: one Muon step on a GPT-2-like tree, gradchain vs Optax vs torch.optim.Muon.

A Muon step is compute-bound, unlike Adam's: every 2-D leaf (embeddings included, as
Optax's default labels them) goes through 5 Newton-Schulz steps, each three matrix products
on the wide side of the matrix (``X X^T``, ``A A``, ``B X``): ``4 m^2 n + 2 m^3`` flops per
step for an ``m x n`` matrix with ``m <= n``. The table reports that count, the step time of
each contender and its rate. The other leaves (LayerNorm scales, biases) get AdamW.

Contenders, in ONE process on the same float32 tree (`gpt2_shapes` / `tree_shapes` from
``optimizer_step.py``: GPT-2 small, 124M parameters; ``--quick``: d=192, a 12,564 vocabulary):

* ``gradchain``: ``gradchain.muon(0.02)`` (Newton-Schulz in float32, Optax's numbers);
* ``gradchain ns_dtype=bf16``: ``gradchain.muon(0.02, ns_dtype=jnp.bfloat16)`` (torch's);
* ``optax``: ``optax.contrib.muon(0.02)`` under ``jax.numpy_dtype_promotion("standard")``;
* ``torch``: ``torch.optim.Muon(lr=0.02, weight_decay=0)`` on the 2-D parameters (its
  iteration is in bfloat16) plus ``torch.optim.AdamW(lr=0.02, weight_decay=0)`` on the rest
  (torch's Muon refuses other shapes), ``torch.set_num_threads`` = the CPU count.

The JAX steps are ONE ``jax.jit`` of ``(params, grads, state) -> (params, state)`` with
params and state donated; compile time is split into trace / lower / compile. Measuring
as in ``optimizer_step.py`` (its ``time_side_by_side``): 2 warm-up steps, a calibration
picks ``n`` steps per sample (>= ~20 ms), each repeat times every contender once in a
rotated order; reported: median, min and max per step, and each median relative to
gradchain's.

Writes ``muon_step.{json,md}`` (``muon_step_quick.*`` with ``--quick``) under ``--out``
(default ``benchmarks/results/cpu``).

    python benchmarks/muon_step.py            # GPT-2 small, 5 repeats
    python benchmarks/muon_step.py --quick    # d=192 GPT-2, 3 repeats (~2 min on 2 shared CPU cores)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from optimizer_step import fmt_ms, gpt2_shapes, time_side_by_side, tree_shapes, versions

import gradchain as gc

LR = 0.02
NS_STEPS = 5
CONTENDERS = ("gradchain", "gradchain ns_dtype=bf16", "optax", "torch")


def ns_flops(shapes: dict) -> int:
    """Newton-Schulz flops of one step: ``NS_STEPS * (4 m^2 n + 2 m^3)`` per 2-D leaf (m <= n)."""
    total = 0
    for s in shapes.values():
        if len(s) == 2:
            m, n = sorted(s)
            total += NS_STEPS * (4 * m * m * n + 2 * m**3)
    return total


class JaxContender:
    """One jitted, donated step of a JAX Muon; compile time split into trace / lower / compile."""

    def __init__(self, name, params_np, grads_np):
        if name == "optax":
            import optax

            tx, apply = optax.contrib.muon(LR), optax.apply_updates
            ctx = lambda: jax.numpy_dtype_promotion("standard")
        else:
            ns_dtype = jnp.bfloat16 if "bf16" in name else None
            tx, apply, ctx = gc.muon(LR, ns_dtype=ns_dtype), gc.apply_updates, contextlib.nullcontext

        def step(params, grads, state):
            updates, state = tx.update(grads, state, params)
            return apply(params, updates), state

        self.params = {k: jnp.array(v, copy=True) for k, v in params_np.items()}
        self.grads = {k: jnp.array(v, copy=True) for k, v in grads_np.items()}
        with ctx():
            self.state = jax.block_until_ready(jax.jit(tx.init)(self.params))
            t0 = time.perf_counter()
            traced = jax.jit(step, donate_argnums=(0, 2)).trace(self.params, self.grads, self.state)
            t1 = time.perf_counter()
            lowered = traced.lower()
            t2 = time.perf_counter()
            self.compiled = lowered.compile()
            t3 = time.perf_counter()
        self.compile_s = {"trace": t1 - t0, "lower": t2 - t1, "compile": t3 - t2, "total": t3 - t0}

    def run(self, n):
        p, s = self.params, self.state
        for _ in range(n):
            p, s = self.compiled(p, self.grads, s)
        jax.block_until_ready((p, s))
        self.params, self.state = p, s


class TorchContender:
    """torch.optim.Muon on the 2-D parameters, torch.optim.AdamW on the others."""

    def __init__(self, params_np, grads_np):
        import torch

        matrices, others = [], []
        for k, v in params_np.items():
            p = torch.from_numpy(v.copy()).requires_grad_()
            p.grad = torch.from_numpy(grads_np[k].copy())
            (matrices if p.ndim == 2 else others).append(p)
        self.optims = [
            torch.optim.Muon(matrices, lr=LR, weight_decay=0.0),
            torch.optim.AdamW(others, lr=LR, weight_decay=0.0),
        ]
        self.torch = torch
        self.compile_s = None

    def run(self, n):
        with self.torch.no_grad():
            for _ in range(n):
                for o in self.optims:
                    o.step()


def table(result: dict) -> list[str]:
    base = result["contenders"].get("gradchain", next(iter(result["contenders"].values())))["median_s"]
    lines = [
        f"### {result['tree']}: {result['n_params'] / 1e6:.2f}M params, {result['n_leaves']} leaves "
        f"({result['n_matrices']} matrices: Muon, {result['ns_gflop']:.1f} GFLOP of Newton-Schulz per step)",
        "",
        "| contender | median ms | min ms | max ms | relative | NS GFLOP/s | trace s | lower s | compile s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in result["contenders"].items():
        cs = c["compile_s"]
        comp = f"{cs['trace']:.2f} | {cs['lower']:.2f} | {cs['compile']:.2f}" if cs else "- | - | -"
        lines.append(
            f"| {name} | {fmt_ms(c['median_s'])} | {fmt_ms(c['min_s'])} | {fmt_ms(c['max_s'])} | "
            f"{c['median_s'] / base:.2f} | {result['ns_gflop'] / c['median_s']:.1f} | {comp} |"
        )
    lines.append("")
    return lines


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--quick", action="store_true", help="d=192 GPT-2 (~1/16 the params), 3 repeats")
    parser.add_argument("--tiny", action="store_true", help="~1/1000-size GPT-2, 1 repeat: a smoke test")
    parser.add_argument("--repeats", type=int, default=None, help="timed samples per contender (5; quick 3)")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated subset of: " + ", ".join(CONTENDERS),
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "cpu")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    for c in contenders:
        if c not in CONTENDERS:
            parser.error(f"unknown contender {c!r}; choose from {CONTENDERS}")
    args.quick = args.quick or args.tiny
    repeats = args.repeats or (1 if args.tiny else 3 if args.quick else 5)

    shapes = tree_shapes("gpt2_small", args.quick, tiny=args.tiny)
    assert args.quick or shapes == gpt2_shapes()
    rng = np.random.default_rng(0)
    params_np = {k: (0.02 * rng.standard_normal(s, dtype=np.float32)) for k, s in shapes.items()}
    grads_np = {k: (1e-4 * rng.standard_normal(s, dtype=np.float32)) for k, s in shapes.items()}
    live = {}
    for name in contenders:
        live[name] = (
            TorchContender(params_np, grads_np)
            if name == "torch"
            else JaxContender(name, params_np, grads_np)
        )
    samples, inner = time_side_by_side(live, repeats)
    result = {
        "tree": "gpt2_small"
        + (" (tiny)" if args.tiny else " (quick: d=192, vocab 12564, ctx 256)" if args.quick else ""),
        "n_params": int(sum(np.prod(s) for s in shapes.values())),
        "n_leaves": len(shapes),
        "n_matrices": sum(len(s) == 2 for s in shapes.values()),
        "ns_gflop": ns_flops(shapes) / 1e9,
        "repeats": repeats,
        "contenders": {
            name: {
                "median_s": statistics.median(samples[name]),
                "min_s": min(samples[name]),
                "max_s": max(samples[name]),
                "steps_per_sample": inner[name],
                "samples_s": samples[name],
                "compile_s": live[name].compile_s,
            }
            for name in live
        },
    }
    lines = table(result)
    print("\n".join(lines), flush=True)

    meta = {
        "benchmark": "muon_step",
        "quick": args.quick,
        "command": " ".join(
            ["python", "benchmarks/muon_step.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": f"lr={LR}, ns_steps={NS_STEPS}, weight decay 0, float32 parameters and gradients",
        "contenders": contenders,
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "versions": versions(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_avg_1min_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "total_wall_s": time.perf_counter() - t_start,
    }
    v = meta["versions"]
    text = "\n".join(
        [
            f"# muon_step benchmark{' (quick)' if args.quick else ''}",
            "",
            (
                f"{meta['date_utc']}; {meta['devices']} ({meta['processor'] or meta['machine']}, "
                f"{meta['cpu_count']} CPUs, torch threads {meta['torch_num_threads']}, 1-min load average at the "
                f"end {meta['load_avg_1min_at_end']}); jax {v['jax']}, optax {v['optax']}, torch {v['torch']}."
            ),
            "",
            (
                f"One step of Muon ({meta['settings']}): gradchain.muon / optax.contrib.muon (jitted, params and "
                "state donated) vs torch.optim.Muon on the 2-D leaves + AdamW on the others. Median / min / max of "
                f"{repeats} samples per contender after 2 warm-up steps, order rotated across repeats; relative = "
                "median / gradchain's median; NS GFLOP/s = Newton-Schulz flops / median."
            ),
            "",
            f"Reproduce: `{meta['command']}` (total wall time {meta['total_wall_s']:.0f} s).",
            "",
            *lines,
        ]
    )
    report = {"meta": meta, "result": result}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "muon_step_tiny" if args.tiny else "muon_step_quick" if args.quick else "muon_step"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(text + "\n")
    print(f"total {meta['total_wall_s']:.1f} s; wrote {args.out / stem}.{{json,md}}")
    return report


if __name__ == "__main__":
    main()
