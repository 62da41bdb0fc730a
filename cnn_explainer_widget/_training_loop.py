"""The training loop: jitted Adam steps over fixed-size batches, early stopping, best weights.

The whole training step (forward, gradients, Adam update) is one ``jax.jit``-compiled function
of plain arrays: the module is split once with ``nnx.split`` and merged back inside the step.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cnn_explainer_widget.flax_module import logits

#: Adam with its learning rate in the optimiser state, so one compiled step serves every rate.
_ADAM = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)


def _loss_and_correct(
    graphdef: nnx.GraphDef[Any], p: Any, rest: Any, x: jax.Array, y: jax.Array, w: jax.Array
) -> tuple[jax.Array, jax.Array]:
    scores = logits(nnx.merge(graphdef, p, rest), x)
    losses = optax.softmax_cross_entropy_with_integer_labels(scores, y)
    correct = (jnp.argmax(scores, axis=-1) == y).astype(jnp.float32)
    # Padded examples of a last, short batch have weight 0: one compiled shape for all.
    return (losses * w).sum() / jnp.maximum(w.sum(), 1.0), (correct * w).sum()


# The graph definition is static: jax.jit caches one compiled step per architecture and batch
# shape, so training the same architecture again (or another of its instances) compiles nothing.
@functools.partial(jax.jit, static_argnums=0)
def _train_step(
    graphdef: nnx.GraphDef[Any],
    p: Any,
    rest: Any,
    opt_state: Any,
    x: jax.Array,
    y: jax.Array,
    w: jax.Array,
) -> tuple[Any, Any, jax.Array, jax.Array]:
    grad_fn = jax.value_and_grad(_loss_and_correct, argnums=1, has_aux=True)
    (loss, correct), grads = grad_fn(graphdef, p, rest, x, y, w)
    updates, opt_state = _ADAM.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state, loss * w.sum(), correct


@functools.partial(jax.jit, static_argnums=0)
def _eval_step(
    graphdef: nnx.GraphDef[Any], p: Any, rest: Any, x: jax.Array, y: jax.Array, w: jax.Array
) -> tuple[jax.Array, jax.Array]:
    loss, correct = _loss_and_correct(graphdef, p, rest, x, y, w)
    return loss * w.sum(), correct


def _batches(indices: np.ndarray, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed-size batches of ``indices``; the last one padded, with a 0/1 weight per slot."""
    out = []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        weights = np.zeros(batch_size, np.float32)
        weights[: len(chunk)] = 1.0
        padded = np.concatenate([chunk, np.full(batch_size - len(chunk), chunk[0])])
        out.append((padded, weights))
    return out


#: A training loss over this many times a uniform guess's (ln C) means the weights blew up.
DIVERGENCE_FACTOR = 1e4


def fit(
    model: nnx.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    patience: int | None,
    rng: np.random.Generator,
    progress: bool,
    n_classes: int = 2,
) -> tuple[dict[str, list[float]], int]:
    """Train ``model`` in place; return the per-epoch history and the best epoch (weights kept).

    The model holds the best epoch's weights from the end of that epoch on, so no work is lost.
    On ``KeyboardInterrupt`` training stops with a warning naming the epoch whose weights the
    model keeps (if no epoch finished, the interrupt is raised and the model is unchanged). A
    loss that is not finite or above `DIVERGENCE_FACTOR` × ln(``n_classes``) raises
    `FloatingPointError`.
    """
    from tqdm.auto import tqdm  # imported when training, not when the package is

    batch_size = min(batch_size, len(x_train))
    graphdef, params, *others = nnx.split(model, nnx.Param, ...)
    rest = others[0]  # everything that is not a parameter
    opt_state = _ADAM.init(params)
    opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    history: dict[str, list[float]] = {
        "loss": [],
        "accuracy": [],
        "val_loss": [],
        "val_accuracy": [],
    }
    val_batches = _batches(np.arange(len(x_val)), batch_size) if len(x_val) else []
    monitor = "val_loss" if val_batches else "loss"
    limit = DIVERGENCE_FACTOR * max(1.0, math.log(n_classes))
    best, best_epoch, waited, epoch = math.inf, 0, 0, 0
    bar = tqdm(range(1, epochs + 1), desc="training", unit="epoch", disable=not progress)
    try:
        for epoch in bar:
            sums = []
            for idx, w in _batches(rng.permutation(len(x_train)), batch_size):
                params, opt_state, loss, right = _train_step(
                    graphdef, params, rest, opt_state, x_train[idx], y_train[idx], w
                )
                sums.append((loss, right))
            # One device-to-host transfer per epoch, not one per step.
            loss_sum, correct = np.asarray(jax.device_get(sums), np.float64).sum(axis=0)
            metrics = {"loss": loss_sum / len(x_train), "accuracy": correct / len(x_train)}
            if val_batches:
                sums = [
                    _eval_step(graphdef, params, rest, x_val[idx], y_val[idx], w)
                    for idx, w in val_batches
                ]
                val_loss, val_correct = np.asarray(jax.device_get(sums), np.float64).sum(axis=0)
                metrics["val_loss"] = val_loss / len(x_val)
                metrics["val_accuracy"] = val_correct / len(x_val)
            metrics = {k: float(v) for k, v in metrics.items()}
            for key in ("loss", "val_loss"):
                value = metrics.get(key, 0.0)
                if not (math.isfinite(value) and value <= limit):
                    raise FloatingPointError(
                        f"training diverged in epoch {epoch} ({key} {value:.3g}, over "
                        f"{limit:.3g}: {DIVERGENCE_FACTOR:,.0f} × a uniform guess's); try a "
                        f"lower learning_rate than {learning_rate:g}. The model keeps "
                        + (f"the weights of epoch {best_epoch}." if best_epoch else "its weights.")
                    )
            for key, value in metrics.items():
                history[key].append(value)
            if progress:
                bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items()})
                bar.write(
                    f"epoch {epoch:>3}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                )
            if metrics[monitor] < best:
                best, best_epoch, waited = metrics[monitor], epoch, 0
                nnx.update(model, params)  # the best weights, kept at every epoch
            else:
                waited += 1
                if patience is not None and waited >= patience:
                    if progress:
                        bar.write(f"early stop: no improvement for {patience} epochs")
                    break
    except KeyboardInterrupt:
        if not best_epoch:
            raise
        warnings.warn(
            f"training interrupted in epoch {epoch}: the model keeps the best weights, from "
            f"epoch {best_epoch} ({monitor} {best:.4g})",
            UserWarning,
            stacklevel=3,
        )
    finally:
        bar.close()
    return history, best_epoch


__all__ = ["fit"]
