"""A pure torch.func training loop: an MLP trained for recall at precision >= 0.8.

Everything that changes during training is an explicit pytree passed in and
returned: the MLP's parameters (through ``torch.func.functional_call``), the
state of a tiny functional Adam written with ``optree``, the Lagrange
multiplier, and the streaming label-prior counts. One call of
``torch.func.grad(..., has_aux=True)`` gives the gradient with respect to the
parameters and the loss's ``aux``. The two players use different signals (the
proxy-Lagrangian of Cotter et al., 2019):

* the model takes an Adam *descent* step on the surrogate loss's gradient;
* the multiplier takes an *ascent* step (``goloss.strict_dual_step``, the
  modules' default rule) on ``aux["strict_violation"]``, the batch's real rate
  deficit at logit 0, ``target - precision``, over the room for error
  ``1 - target`` (``goloss.normalised_violation``): it grows while the batch's
  precision at the model's own threshold is below the target and shrinks once it
  is above.

Ascending on the surrogate gradient instead (``aux`` has it as
``"violation"``) enforces the constraint on loose cross-entropy bounds of the
counts, and the precision then overshoots the target; the strict signal puts it
near the target.

The data are generated offline with ``sklearn.datasets.make_classification``
(10% positives, some label noise); the metrics on the held-out split come from
``torchmetrics``: precision and recall at the model's own threshold (logit 0), the
best recall at precision >= the target over all thresholds, average precision and
ROC AUC.

Run::

    python examples/functional_loop.py           # full run
    python examples/functional_loop.py --quick   # smoke run: a few epochs; not the results
"""

from __future__ import annotations

import argparse
import time
from typing import Any, NamedTuple

# torch, optree, scikit-learn, torchmetrics and goloss are imported where they are used, so
# that --help answers at once.

TARGET_PRECISION = 0.8
QUICK_EPOCHS = 5
SMOKE_LINE = "smoke run: --quick trains for a few epochs only; the numbers below are not the results"


class AdamState(NamedTuple):
    step: int
    m: Any
    v: Any


def adam_init(params) -> AdamState:
    import optree
    import torch

    zeros = optree.tree_map(torch.zeros_like, params)
    return AdamState(0, zeros, zeros)


def adam_update(params, grads, state: AdamState, lr, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam step on a pytree of tensors; returns ``(new_params, new_state)``."""
    import optree

    step = state.step + 1
    m = optree.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.m, grads)
    v = optree.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state.v, grads)
    new_params = optree.tree_map(
        lambda p, m, v: p - lr * (m / (1 - b1**step)) / ((v / (1 - b2**step)).sqrt() + eps),
        params, m, v,
    )
    return new_params, AdamState(step, m, v)


def make_data(seed: int):
    import torch
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(
        n_samples=20_000, n_features=20, n_informative=6, n_redundant=4, weights=[0.9, 0.1],
        flip_y=0.01, class_sep=1.0, random_state=seed,
    )
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(x_train)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return (as_tensor(scaler.transform(x_train)), as_tensor(y_train),
            as_tensor(scaler.transform(x_test)), as_tensor(y_test))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=256, help="minibatch size (default %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    parser.add_argument("--dual-lr", type=float, default=0.05,
                        help="dual learning rate of goloss.strict_dual_step (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = QUICK_EPOCHS
    return args


def evaluate(logits, labels) -> dict:
    """Held-out metrics from torchmetrics, on the sigmoid of float64 logits."""
    import torch
    from torchmetrics.functional.classification import (
        binary_auroc,
        binary_average_precision,
        binary_precision,
        binary_recall,
        binary_recall_at_fixed_precision,
    )

    probs, labels = torch.sigmoid(logits.double()), labels.long()
    return {
        "precision": binary_precision(probs, labels, threshold=0.5).item(),  # logit 0
        "recall": binary_recall(probs, labels, threshold=0.5).item(),
        "recall_at_target": binary_recall_at_fixed_precision(probs, labels, min_precision=TARGET_PRECISION)[0].item(),
        "ap": binary_average_precision(probs, labels).item(),
        "auroc": binary_auroc(probs, labels).item(),
    }


def main(argv=None):
    args = parse_args(argv)
    import torch
    from torch import nn
    from torch.func import functional_call, grad
    from tqdm import tqdm

    import goloss

    torch.set_num_threads(1)  # the tensors are tiny: extra threads only add overhead
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = make_data(args.seed)
    model = nn.Sequential(nn.Linear(x_train.shape[1], 32), nn.ReLU(), nn.Linear(32, 1))

    def loss_fn(params, lambdas, x, y, priors):
        # Logits and labels [B, 1] (one label), so that aux has the multipliers' shape [1].
        logits = functional_call(model, params, (x,))
        return goloss.recall_at_precision_loss(
            None, lambdas, logits, y,
            target_precision=TARGET_PRECISION, label_priors=priors, reduction="mean",
        )

    # The gradient for the model only; the multiplier ascends on aux["strict_violation"].
    grad_fn = grad(loss_fn, has_aux=True)

    # The whole training state: plain tensors and tuples of them.
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt_state = adam_init(params)
    _, lambdas = goloss.init_loss_state(goloss.recall_at_precision_loss, 1, dtype=torch.float32)
    counts = goloss.init_label_prior_counts(1, dtype=torch.float32)

    generator = torch.Generator().manual_seed(args.seed)
    bar = tqdm(range(args.epochs), desc="epochs")
    for _ in bar:
        for batch in torch.randperm(len(y_train), generator=generator).split(args.batch_size):
            x, y = x_train[batch], y_train[batch]
            counts, priors = goloss.update_label_prior_counts(counts, y)
            g_params, aux = grad_fn(params, lambdas, x, y[:, None], priors)
            params, opt_state = adam_update(params, g_params, opt_state, args.lr)  # descent: surrogate
            # ascent on the strict signal over the room for error 1 - target (the modules' rule)
            signal = goloss.normalised_violation(aux["strict_violation"], TARGET_PRECISION, "precision")
            lambdas = goloss.strict_dual_step(lambdas, signal, args.dual_lr)
        bar.set_postfix(lam=f"{float(lambdas):.3f}", batch_precision=f"{float(aux['precision']):.3f}")

    with torch.no_grad():
        scores = functional_call(model, params, (x_test,)).squeeze(-1)
    metrics = evaluate(scores, y_test)
    if args.quick:
        print(SMOKE_LINE)
    print(f"recall_at_precision_loss, target precision {TARGET_PRECISION}, {args.epochs} epochs")
    print(f"train examples {len(y_train)}, held-out {len(y_test)}, positives {float(y_test.mean()):.3f}")
    print(f"final lambda {float(lambdas):.4f}, label prior {float(priors):.4f}")
    print(f"held-out precision {metrics['precision']:.4f} (target {TARGET_PRECISION}, at logit 0)")
    print(f"held-out recall {metrics['recall']:.4f}")
    print(f"held-out best recall at precision >= {TARGET_PRECISION} (any threshold) {metrics['recall_at_target']:.4f}")
    print(f"held-out average precision {metrics['ap']:.4f}, ROC AUC {metrics['auroc']:.4f}")
    print(f"time: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
