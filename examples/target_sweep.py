"""Sweep the target precision in one vmapped training run, and check that the models reach it.

``K`` linear models, one per target precision in ``linspace(0.5, 0.95, K)``,
are trained together: ``torch.func.vmap`` maps the gradient of
``recall_at_precision_loss`` (with its ``aux``) over the stacked parameters,
multipliers and targets, while every model sees the same minibatches and the
same streaming label prior. Each step is

* a primal SGD step on all ``K`` models, on the surrogate loss's gradient;
* a dual ascent step (``goloss.strict_dual_step``, the modules' default rule) on
  all ``K`` multipliers, on the vmapped ``aux["strict_violation"]``: each model's
  rate deficit ``target - precision`` on the batch, at its own threshold (logit
  0), over the room for error ``1 - target`` (``goloss.normalised_violation``).

The strict signal makes each multiplier settle where the model's real precision
meets its target (the proxy-Lagrangian of Cotter et al., 2019), so the achieved
precision follows the target; ascending on the surrogate gradient instead
enforces loose cross-entropy bounds of the counts and overshoots the target.

The data are generated offline with ``sklearn.datasets.make_classification``
(20% positives, overlapping classes, so that every target in the sweep is
reachable at some recall), split into training and held-out halves. The script
prints, per model, the target against the precision and recall reached on the
held-out split at threshold 0 (``torchmetrics``' multilabel precision and recall,
one label per model), and plots achieved against target precision next to the
diagonal ``y = x``.

Run::

    python examples/target_sweep.py                       # writes target_sweep.png
    python examples/target_sweep.py --plot sweep.png --targets 10
    python examples/target_sweep.py --quick               # smoke run: 2 epochs; not the results
"""

from __future__ import annotations

import argparse
import time

# torch, scikit-learn, torchmetrics and goloss are imported where they are used, so that
# --help answers at once.

SMOKE_LINE = "smoke run: --quick trains for 2 epochs only; the numbers below are not the results"


def make_data(seed: int, n_samples: int):
    import torch
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(
        n_samples=n_samples, n_features=10, n_informative=5, weights=[0.8, 0.2],
        flip_y=0.0, class_sep=1.0, random_state=seed,
    )
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(x_train)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return (as_tensor(scaler.transform(x_train)), as_tensor(y_train),
            as_tensor(scaler.transform(x_test)), as_tensor(y_test))


def loss_fn(params, lambdas, target, x, y, priors):
    """``(loss, aux)`` of one linear model; vmapped over ``(params, lambdas, target)``."""
    import goloss

    logits = x @ params["w"] + params["b"]
    return goloss.recall_at_precision_loss(
        None, lambdas, logits, y, target_precision=target, label_priors=priors, reduction="mean",
    )


def plot(path, targets, precisions, recalls):
    """Achieved held-out precision (and recall) against the target, with the diagonal y = x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot([0.0, 1.0], [0.0, 1.0], "k:", label="y = x (precision on target)")
    ax.plot(targets, precisions, "o-", color="tab:red", label="achieved precision")
    ax.plot(targets, recalls, "s--", color="tab:blue", alpha=0.7, label="achieved recall")
    low = min(0.4, min(targets) - 0.1)
    ax.set_xlim(low, 1.0)
    ax.set_ylim(min(low, min(recalls) - 0.05), 1.02)
    ax.set_xlabel("target precision")
    ax.set_ylabel("held-out metric at threshold 0")
    ax.set_title("recall_at_precision_loss, one vmapped run")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def held_out_precision_recall(scores, labels):
    """Per model (column of ``scores`` [N, K]), precision and recall at logit 0, from torchmetrics."""
    import torch
    from torchmetrics.functional.classification import multilabel_precision, multilabel_recall

    k = scores.shape[1]
    probs = torch.sigmoid(scores.double())
    labels = labels.long()[:, None].repeat(1, k)  # every model is scored against the same labels
    kwargs = {"num_labels": k, "threshold": 0.5, "average": "none"}
    return multilabel_precision(probs, labels, **kwargs).tolist(), multilabel_recall(probs, labels, **kwargs).tolist()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=10, help="K, number of target precisions (default %(default)s)")
    parser.add_argument("--samples", type=int, default=40_000, help="examples, half held out (default 40000)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=512, help="minibatch size (default %(default)s)")
    parser.add_argument("--lr", type=float, default=0.1, help="primal SGD learning rate (default %(default)s)")
    parser.add_argument("--dual-lr", type=float, default=0.05,
                        help="dual learning rate of goloss.strict_dual_step (default 0.05)")
    parser.add_argument("--plot", metavar="PATH", default="target_sweep.png",
                        help="PNG of the sweep (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 4 targets (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.targets = 2, 4
    return args


def main(argv=None):
    args = parse_args(argv)
    import torch
    from torch.func import grad, vmap
    from tqdm import tqdm

    import goloss

    # Per model: parameters, multiplier and target are batched; data and priors are shared.
    # The gradient is the model's only; aux["strict_violation"] comes back [K], one per model.
    batched_grad = vmap(grad(loss_fn, has_aux=True), in_dims=(0, 0, 0, None, None, None))

    torch.set_num_threads(1)  # the tensors are tiny: extra threads only add overhead
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = make_data(args.seed, args.samples)
    k, d = args.targets, x_train.shape[1]
    targets = torch.linspace(0.5, 0.95, k)
    params = {"w": torch.zeros(k, d), "b": torch.zeros(k)}
    _, lambdas = goloss.init_loss_state(goloss.recall_at_precision_loss, k)  # [K]: one per model
    counts = goloss.init_label_prior_counts(1)

    generator = torch.Generator().manual_seed(args.seed)
    for _ in tqdm(range(args.epochs), desc="epochs"):
        for batch in torch.randperm(len(y_train), generator=generator).split(args.batch_size):
            x, y = x_train[batch], y_train[batch]
            counts, priors = goloss.update_label_prior_counts(counts, y)
            g_params, aux = batched_grad(params, lambdas, targets, x, y, priors)
            params = {name: p - args.lr * g_params[name] for name, p in params.items()}  # descent: surrogate
            # ascent on the strict signal, normalised by each target's room for error (as the modules do)
            signal = goloss.normalised_violation(aux["strict_violation"], targets, "precision")
            lambdas = goloss.strict_dual_step(lambdas, signal, args.dual_lr)

    scores = x_test @ params["w"].T + params["b"]  # [N, K]
    precisions, recalls = held_out_precision_recall(scores, y_test)
    if args.quick:
        print(SMOKE_LINE)
    print(f"recall_at_precision_loss sweep: {k} linear models, {args.epochs} epochs, "
          f"{len(y_train)} train / {len(y_test)} held-out examples, strict dual signal, dual_lr {args.dual_lr:g}")
    print("precision, recall: held-out, at each model's own threshold (logit 0)")
    print(f"{'target':>8} {'precision':>10} {'recall':>8} {'lambda':>8}")
    for i, target in enumerate(targets.tolist()):
        print(f"{target:>8.3f} {precisions[i]:>10.4f} {recalls[i]:>8.4f} {float(lambdas[i]):>8.3f}")
    errors = [abs(p - t) for p, t in zip(precisions, targets.tolist())]
    print(f"mean |precision - target| {sum(errors) / k:.4f}, max {max(errors):.4f}")
    plot(args.plot, targets.numpy(), precisions, recalls)
    print(f"saved plot to {args.plot}")
    print(f"time: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
