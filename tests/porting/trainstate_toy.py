"""A TrainState regression whose optimizer hyperparameters are injected and scheduled, and
read back for logging, written against Optax."""

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax.training import train_state


class Model(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(nn.tanh(nn.Dense(32)(x)))


def make_optimizer(steps):
    schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-2, warmup_steps=steps // 10, decay_steps=steps)
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.inject_hyperparams(optax.adamw)(learning_rate=schedule, weight_decay=1e-4),
    )


@jax.jit
def train_step(state, x, y):
    def loss_fn(params):
        return jnp.mean(optax.squared_error(state.apply_fn({"params": params}, x), y))

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss, optax.global_norm(grads)


def main(steps=200):
    key_x, key_init = jax.random.split(jax.random.key(0))
    x = jax.random.uniform(key_x, (256, 2), minval=-2.0, maxval=2.0)
    y = jnp.sin(x[:, :1]) * jnp.cos(x[:, 1:])
    model = Model()
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=model.init(key_init, x)["params"], tx=make_optimizer(steps)
    )
    losses, lrs = [], []
    for _ in range(steps):
        state, loss, _ = train_step(state, x, y)
        losses.append(float(loss))
        lrs.append(float(optax.tree_utils.tree_get(state.opt_state, "hyperparams")["learning_rate"]))
    return {"losses": losses, "learning_rates": lrs}


if __name__ == "__main__":
    out = main()
    print(f"final loss {out['losses'][-1]:.5f}, final learning rate {out['learning_rates'][-1]:.2e}")
