"""An NNX MLP trained with nnx.Optimizer and AdamW, written against Optax (the structure of
Flax's NNX basics tutorial), with nnx.MultiMetric for the metrics."""

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits


class MLP(nnx.Module):
    def __init__(self, din, dmid, dout, *, rngs: nnx.Rngs):
        self.linear1 = nnx.Linear(din, dmid, rngs=rngs)
        self.dropout = nnx.Dropout(rate=0.1, rngs=rngs)
        self.bn = nnx.BatchNorm(dmid, rngs=rngs)
        self.linear2 = nnx.Linear(dmid, dout, rngs=rngs)

    def __call__(self, x):
        x = nnx.gelu(self.dropout(self.bn(self.linear1(x))))
        return self.linear2(x)


def loss_fn(model, batch):
    logits = model(batch["x"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits=logits, labels=batch["y"]).mean()
    return loss, logits


@nnx.jit
def train_step(model, optimizer, metrics, batch):
    grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
    (loss, logits), grads = grad_fn(model, batch)
    metrics.update(loss=loss, logits=logits, labels=batch["y"])
    optimizer.update(model, grads)
    return loss


def main(steps=200, batch_size=64):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    model = MLP(64, 128, 10, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(
        model, optax.adamw(learning_rate=3e-3, b1=0.9, weight_decay=1e-4), wrt=nnx.Param
    )
    metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average("loss"))
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(x), batch_size, replace=False)
        losses.append(
            float(train_step(model, optimizer, metrics, {"x": jnp.asarray(x[idx]), "y": jnp.asarray(y[idx])}))
        )
    computed = metrics.compute()
    return {"losses": losses, "accuracy": float(computed["accuracy"])}


if __name__ == "__main__":
    out = main()
    print(f"final loss {out['losses'][-1]:.4f}, running accuracy {out['accuracy']:.3f}")
