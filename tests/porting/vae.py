"""A Linen variational autoencoder trained with Adam, written against Optax (the structure
of Flax's VAE example), on scikit-learn's 8x8 digits binarized."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from sklearn.datasets import load_digits

LATENTS = 8


class Encoder(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(128, name="fc1")(x))
        return nn.Dense(LATENTS, name="fc2_mean")(x), nn.Dense(LATENTS, name="fc2_logvar")(x)


class Decoder(nn.Module):
    @nn.compact
    def __call__(self, z):
        z = nn.relu(nn.Dense(128, name="fc1")(z))
        return nn.Dense(64, name="fc2")(z)


class VAE(nn.Module):
    def setup(self):
        self.encoder = Encoder()
        self.decoder = Decoder()

    def __call__(self, x, z_rng):
        mean, logvar = self.encoder(x)
        std = jnp.exp(0.5 * logvar)
        z = mean + std * jax.random.normal(z_rng, logvar.shape)
        return self.decoder(z), mean, logvar


def kl_divergence(mean, logvar):
    return -0.5 * jnp.sum(1 + logvar - jnp.square(mean) - jnp.exp(logvar))


@jax.jit
def train_step(params, opt_state, batch, z_rng):
    def loss_fn(params):
        recon_x, mean, logvar = VAE().apply({"params": params}, batch, z_rng)
        bce = optax.sigmoid_binary_cross_entropy(recon_x, batch).sum(-1).mean()
        kld = jax.vmap(kl_divergence)(mean, logvar).mean()
        l2 = 1e-5 * sum(optax.l2_loss(p).sum() for p in jax.tree.leaves(params))
        return bce + kld + l2

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


tx = optax.adam(1e-3)


def main(steps=200, batch_size=64):
    data = (load_digits().data > 7).astype(np.float32)
    rng = jax.random.key(0)
    params = VAE().init(rng, jnp.ones((1, 64)), rng)["params"]
    opt_state = tx.init(params)
    order = np.random.default_rng(0).permutation(len(data))
    losses = []
    for step in range(steps):
        idx = order[(step * batch_size) % (len(data) - batch_size) :][:batch_size]
        params, opt_state, loss = train_step(params, opt_state, data[idx], jax.random.fold_in(rng, step))
        losses.append(float(loss))
    return {"losses": losses}


if __name__ == "__main__":
    print(f"final loss {main()['losses'][-1]:.3f}")
