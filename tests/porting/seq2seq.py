"""An LSTM encoder-decoder that learns to add two numbers given as characters, written
against Optax (the structure of Flax's seq2seq example), with gradient clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

CHARS = "0123456789+= "
VOCAB = len(CHARS)
IN_LEN, OUT_LEN = 6, 3  # "12+34=" -> "46 "


def encode(s, n):
    return [CHARS.index(c) for c in s.ljust(n)]


def make_batch(rng, batch_size):
    a, b = rng.integers(0, 50, batch_size), rng.integers(0, 50, batch_size)
    inputs = np.array([encode(f"{x}+{y}=", IN_LEN) for x, y in zip(a, b)])
    outputs = np.array([encode(str(x + y), OUT_LEN) for x, y in zip(a, b)])
    return jax.nn.one_hot(inputs, VOCAB), jax.nn.one_hot(outputs, VOCAB)


class Seq2seq(nn.Module):
    hidden: int = 64

    @nn.compact
    def __call__(self, inputs, targets):
        batch = inputs.shape[0]
        encoder = nn.RNN(nn.OptimizedLSTMCell(self.hidden), return_carry=True)
        carry, _ = encoder(inputs)
        start = jnp.zeros((batch, 1, VOCAB))
        decoder_inputs = jnp.concatenate([start, targets[:, :-1]], axis=1)  # teacher forcing
        decoder = nn.RNN(nn.OptimizedLSTMCell(self.hidden))
        hidden = decoder(decoder_inputs, initial_carry=carry)
        return nn.Dense(VOCAB)(hidden)


def loss_and_accuracy(logits, targets):
    loss = optax.softmax_cross_entropy(logits, targets).sum(-1).mean()
    accuracy = jnp.mean(jnp.all(jnp.argmax(logits, -1) == jnp.argmax(targets, -1), axis=-1))
    return loss, accuracy


tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3))


@jax.jit
def train_step(params, opt_state, inputs, targets):
    def loss_fn(params):
        logits = Seq2seq().apply({"params": params}, inputs, targets)
        return loss_and_accuracy(logits, targets)

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, accuracy


def main(steps=300, batch_size=64):
    rng = np.random.default_rng(0)
    inputs, targets = make_batch(rng, batch_size)
    params = Seq2seq().init(jax.random.key(0), inputs, targets)["params"]
    opt_state = tx.init(params)
    losses, accuracy = [], 0.0
    for _ in range(steps):
        inputs, targets = make_batch(rng, batch_size)
        params, opt_state, loss, accuracy = train_step(params, opt_state, inputs, targets)
        losses.append(float(loss))
    return {"losses": losses, "accuracy": float(accuracy)}


if __name__ == "__main__":
    out = main()
    print(f"final loss {out['losses'][-1]:.4f}, batch accuracy {out['accuracy']:.3f}")
