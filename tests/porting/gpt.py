"""A small character-level GPT (nanoGPT-style) trained on Python's own `json` package source,
written against Optax: AdamW with weight decay masked to the kernels, a warm-up cosine
schedule, global-norm clipping, gradient accumulation (MultiSteps) and a NaN guard."""

import inspect
import json.decoder
import json.encoder

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

CTX, D, HEADS, LAYERS = 32, 64, 4, 2


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        mask = nn.make_causal_mask(jnp.ones(x.shape[:2]))
        x = x + nn.SelfAttention(num_heads=HEADS, qkv_features=D)(nn.LayerNorm()(x), mask=mask)
        h = nn.Dense(4 * D)(nn.LayerNorm()(x))
        return x + nn.Dense(D)(nn.gelu(h))


class GPT(nn.Module):
    vocab: int

    @nn.compact
    def __call__(self, tokens):
        pos = nn.Embed(CTX, D)(jnp.arange(tokens.shape[1])[None])
        x = nn.Embed(self.vocab, D)(tokens) + pos
        for _ in range(LAYERS):
            x = Block()(x)
        return nn.Dense(self.vocab, use_bias=False)(nn.LayerNorm()(x))


def decay_mask(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(steps, accumulate):
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, 3e-3, warmup_steps=steps // 10, decay_steps=steps, end_value=3e-4
    )
    opt = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(schedule, b1=0.9, b2=0.95, weight_decay=0.1, mask=decay_mask),
    )
    return optax.MultiSteps(optax.apply_if_finite(opt, max_consecutive_errors=3), every_k_schedule=accumulate)


def main(steps=200, batch_size=16, accumulate=2):
    text = inspect.getsource(json.decoder) + inspect.getsource(json.encoder)
    chars = sorted(set(text))
    data = np.array([chars.index(c) for c in text], dtype=np.int32)
    model = GPT(vocab=len(chars))
    params = model.init(jax.random.key(0), jnp.zeros((1, CTX), jnp.int32))["params"]
    tx = make_optimizer(steps, accumulate)
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, batch):
        def loss_fn(params):
            logits = model.apply({"params": params}, batch[:, :-1])
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps * accumulate):
        starts = rng.integers(0, len(data) - CTX - 1, batch_size)
        batch = np.stack([data[s : s + CTX + 1] for s in starts])
        params, opt_state, loss = train_step(params, opt_state, batch)
        losses.append(float(loss))
    return {"losses": losses}


if __name__ == "__main__":
    out = main()
    print(f"loss {out['losses'][0]:.3f} -> {np.mean(out['losses'][-20:]):.3f}")
