"""Precision at 98% recall on synthetic 2-D data: cross-entropy vs goloss.

A PyTorch port of the original Global Objectives example
(``tensorflow/models``, ``research/global_objectives/loss_layers_example.py``).
The data is a mixture of four Gaussians: a big negative blob and a big positive
blob that a line separates well, plus a small positive cluster and a small
negative cluster that no line can put on the same side as their big blobs'
classes. Cross-entropy fits the big blobs and gives up the 50 small-cluster
positives, so at 98% recall its threshold must let in almost everything;
``precision_at_recall_loss`` keeps the recall constraint in the objective and
turns the line so that the small positive cluster comes in first.

Training is the original's: a linear model with ``w = [-1, -1]``, ``b = 0``,
full-batch SGD, learning rate 1.0 decaying linearly to 1/150 over 150 steps,
steps 0..150 inclusive. For goloss each step is a primal SGD step on
``(w, b)`` and then, at the new ``(w, b)``, a projected dual ascent step on
the multiplier with rate ``15 * lr`` (the original's ``dual_rate_factor``);
the label prior is a streaming estimate updated every step.

Evaluation is on an independently drawn eval set, as in the original: the
precision at recall 0.98, here torchmetrics' ``binary_precision_at_fixed_recall``
(the highest precision among the thresholds that keep at least 98% of the
positives; the original took the 2nd percentile of the positives' scores as
the threshold, which lands on the same operating point up to ties).

Run::

    python examples/synthetic_precision_at_recall.py              # 10 seeds
    python examples/synthetic_precision_at_recall.py --plot boundaries.png
    python examples/synthetic_precision_at_recall.py --quick      # smoke run: not the results
"""

from __future__ import annotations

import argparse
import time

# numpy, torch, torchmetrics and goloss are imported where they are used, so that --help
# answers at once.

TARGET_RECALL = 0.98
LEARNING_RATE = 1.0
DUAL_RATE_FACTOR = 15.0

# (center, standard deviation, count, label) of each Gaussian, as in the original.
CLUSTERS = [
    ([0.0, -0.5], 0.15, 3000, 0.0),
    ([0.0, 1.0], 0.15, 500, 1.0),
    ([1.0, -0.5], 0.10, 50, 1.0),
    ([1.0, 1.0], 0.10, 100, 0.0),
]


QUICK_SEEDS, QUICK_STEPS = 2, 60
SMOKE_LINE = (f"smoke run: --quick trains {QUICK_SEEDS} seeds for {QUICK_STEPS} steps only; "
              "the numbers below are not the results")


def make_data(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw of the four-Gaussian mixture: ``x`` [3650, 2] and ``y`` [3650], float32."""
    import numpy as np
    import torch

    x = np.concatenate([sd * rng.standard_normal((n, 2)) + center for center, sd, n, _ in CLUSTERS])
    y = np.concatenate([np.full(n, label) for _, _, n, label in CLUSTERS])
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def learning_rate(step: int, steps: int) -> float:
    """Linear (power 1 polynomial) decay from 1.0 to 1/steps, as ``tf.train.polynomial_decay``."""
    end = LEARNING_RATE / steps
    return (LEARNING_RATE - end) * (1.0 - min(step, steps) / steps) + end


def xent_loss(w, b, x, y):
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(x @ w + b, y)


def train_xent(x, y, steps):
    """Plain full-batch SGD on mean cross-entropy; returns ``(w, b)``."""
    import torch

    w, b = torch.tensor([-1.0, -1.0]), torch.zeros(())
    grad = torch.func.grad(xent_loss, argnums=(0, 1))
    for step in range(steps + 1):
        lr = learning_rate(step, steps)
        gw, gb = grad(w, b, x, y)
        w, b = w - lr * gw, b - lr * gb
    return w, b


def goloss_loss(w, b, lambdas, x, y, priors):
    import goloss

    loss, _ = goloss.precision_at_recall_loss(
        None, lambdas, x @ w + b, y,
        target_recall=TARGET_RECALL, label_priors=priors, reduction="mean",
    )
    return loss


def train_goloss(x, y, steps):
    """Alternating primal SGD / projected dual ascent on precision_at_recall_loss.

    Returns ``(w, b, lambdas, label_priors)``.
    """
    import torch

    import goloss

    w, b = torch.tensor([-1.0, -1.0]), torch.zeros(())
    _, lambdas = goloss.init_loss_state(goloss.precision_at_recall_loss, 1, dtype=torch.float32)
    counts = goloss.init_label_prior_counts(1, dtype=torch.float32)
    primal_grad = torch.func.grad(goloss_loss, argnums=(0, 1))
    lambdas_grad = torch.func.grad(goloss_loss, argnums=2)
    for step in range(steps + 1):
        lr = learning_rate(step, steps)
        counts, priors = goloss.update_label_prior_counts(counts, y)
        gw, gb = primal_grad(w, b, lambdas, x, y, priors)
        w, b = w - lr * gw, b - lr * gb
        # The dual step sees the new (w, b), as the original's second session.run did.
        glambdas = lambdas_grad(w, b, lambdas, x, y, priors)
        lambdas = goloss.dual_ascent_step(lambdas, glambdas, lr * DUAL_RATE_FACTOR)
    return w, b, lambdas, priors


def precision_at_recall(w, b, x, y) -> tuple[float, float]:
    """Eval precision at recall >= ``TARGET_RECALL`` (torchmetrics) and its threshold, as a logit."""
    import torch
    from torchmetrics.functional.classification import binary_precision_at_fixed_recall

    probs = torch.sigmoid((x @ w + b).double())  # float64, so that the sigmoid makes no ties
    precision, threshold = binary_precision_at_fixed_recall(probs, y.long(), min_recall=TARGET_RECALL)
    return precision.item(), torch.logit(threshold).item()


def plot(path, x, y, models):
    """Eval data and, per model, the line where its score equals its recall-0.98 threshold."""
    import numpy as np
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.6))
    xn, yn = x.numpy(), y.numpy()
    ax.scatter(*xn[yn == 0].T, s=3, c="tab:blue", alpha=0.4, label="negatives")
    ax.scatter(*xn[yn == 1].T, s=3, c="tab:red", alpha=0.6, label="positives")
    grid = np.linspace(xn[:, 0].min() - 0.2, xn[:, 0].max() + 0.2, 200)
    for (name, w, b, precision, threshold), style in zip(models, ("k--", "g-")):
        w, b = w.numpy(), float(b)
        # w0 * x0 + w1 * x1 + b = threshold, solved for x1.
        ax.plot(grid, (threshold - b - w[0] * grid) / w[1], style,
                label=f"{name} (precision {precision:.2f})")
    ax.set_ylim(xn[:, 1].min() - 0.2, xn[:, 1].max() + 0.2)
    ax.set_title(f"Decision boundaries at recall {TARGET_RECALL}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    parser.add_argument("--steps", type=int, default=150, help="training steps (default 150)")
    parser.add_argument("--plot", metavar="PATH",
                        help="save a PNG of the first seed's data and boundaries (default: no plot)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SEEDS} seeds, {QUICK_STEPS} steps (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps = QUICK_SEEDS, QUICK_STEPS
    return args


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    import torch
    from tqdm import tqdm

    torch.set_num_threads(1)  # the tensors are tiny: extra threads only add overhead
    start = time.perf_counter()
    rows = []
    for seed in tqdm(range(args.seeds), desc="seeds"):
        rng = np.random.default_rng(seed)
        x_train, y_train = make_data(rng)
        x_eval, y_eval = make_data(rng)  # drawn independently, same config
        w_x, b_x = train_xent(x_train, y_train, args.steps)
        w_g, b_g, lambdas, priors = train_goloss(x_train, y_train, args.steps)
        p_xent, t_xent = precision_at_recall(w_x, b_x, x_eval, y_eval)
        p_go, t_go = precision_at_recall(w_g, b_g, x_eval, y_eval)
        rows.append((seed, p_xent, p_go, float(lambdas), float(priors)))
        if seed == 0 and args.plot:
            plot(args.plot, x_eval, y_eval,
                 [("cross-entropy", w_x, b_x, p_xent, t_xent), ("goloss", w_g, b_g, p_go, t_go)])

    if args.quick:
        print(SMOKE_LINE)
    print(f"Eval precision at recall {TARGET_RECALL} ({args.steps} steps, float32)")
    print(f"{'seed':>6} {'xent':>8} {'goloss':>8} {'lambda':>8} {'prior':>8}")
    for seed, p_xent, p_go, lam, prior in rows:
        print(f"{seed:>6} {p_xent:>8.4f} {p_go:>8.4f} {lam:>8.3f} {prior:>8.4f}")
    print(f"{'mean':>6} {np.mean([r[1] for r in rows]):>8.4f} {np.mean([r[2] for r in rows]):>8.4f}")
    print(f"time: {time.perf_counter() - start:.1f} s")
    if args.plot:
        print(f"saved plot to {args.plot}")


if __name__ == "__main__":
    main()
