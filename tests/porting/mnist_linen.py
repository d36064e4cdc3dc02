"""A Linen CNN classifier trained with a TrainState and SGD with momentum, written against
Optax (the structure of Flax's MNIST example), on scikit-learn's 8x8 digits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax.training import train_state
from sklearn.datasets import load_digits


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(features=16, kernel_size=(3, 3))(x))
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.relu(nn.Conv(features=32, kernel_size=(3, 3))(x))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(features=64)(x))
        return nn.Dense(features=10)(x)


@jax.jit
def apply_model(state, images, labels):
    def loss_fn(params):
        logits = state.apply_fn({"params": params}, images)
        one_hot = jax.nn.one_hot(labels, 10)
        loss = jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot))
        return loss, logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return grads, loss, accuracy


@jax.jit
def update_model(state, grads):
    return state.apply_gradients(grads=grads)


def create_train_state(rng, learning_rate, momentum):
    cnn = CNN()
    params = cnn.init(rng, jnp.ones([1, 8, 8, 1]))["params"]
    tx = optax.sgd(learning_rate, momentum)
    return train_state.TrainState.create(apply_fn=cnn.apply, params=params, tx=tx)


def main(steps=200, batch_size=64):
    digits = load_digits()
    images = (digits.images[..., None] / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    state = create_train_state(jax.random.key(0), learning_rate=0.1, momentum=0.9)
    perm = np.random.default_rng(0).permutation(len(images))
    losses = []
    for step in range(steps):
        idx = perm[(step * batch_size) % (len(images) - batch_size) :][:batch_size]
        grads, loss, _ = apply_model(state, images[idx], labels[idx])
        state = update_model(state, grads)
        losses.append(float(loss))
    _, _, accuracy = apply_model(state, images, labels)
    return {"losses": losses, "accuracy": float(accuracy)}


if __name__ == "__main__":
    out = main()
    print(f"final loss {out['losses'][-1]:.4f}, train accuracy {out['accuracy']:.3f}")
