"""Drop-in: one line turns a BCE training script into "maximise recall at precision >= target".

An ordinary PyTorch script: a linear model, an Adam loop, and
``loss = criterion(model(x).squeeze(-1), y); loss.backward(); optimizer.step()``.
The two runs differ in one line, the criterion (see :func:`make_criterion`)::

    criterion = nn.BCEWithLogitsLoss()
    criterion = goloss.RecallAtPrecisionLoss(target, auto_dual_step=True)

Everything else is goloss's default: the strict dual signal (the multiplier
ascends on the batch's real rate deficit ``target - precision`` at logit 0,
``dual_lr`` 1.0) and the xent surrogate for the model's gradient.
``auto_dual_step=True`` takes the multiplier's step at the end of each training
forward, so the BCE loop needs no extra line (without it, call
``criterion.dual_step()`` after ``optimizer.step()``); ``criterion.lambdas`` is
read only for the progress bar.

Data: scikit-learn's bundled handwritten digits (no download) as "is it a 9?"
(10% positives), standardised, split per seed into stratified train / held-out
halves (about 90 held-out positives, so one false positive moves precision by
about 0.01).

Held-out evaluation, per seed (torchmetrics, on the sigmoid of the logits):

* goloss: precision and recall at the model's own threshold, logit 0, against
  the target;
* BCE: the best recall among thresholds whose held-out precision is at least the
  precision goloss reached, the threshold tuned *on the held-out set* (which
  favours BCE: goloss gets no threshold tuning);
* average precision of both.

Defaults: target precision 0.95, Adam lr 0.03 with weight decay 1e-2 (for
both runs: only the criterion changes), full batch, 500 epochs (the multiplier
overshoots in the first epochs, while the model's precision is low, and has
settled by then). What it shows: the strict signal holds the *training*
precision at logit 0 on the target (column "train P", about 0.95); the held-out
precision lands a few points below it (about 0.89), the generalisation gap of
a 65-parameter model fitted to 900 examples, which no training-set constraint
can see. To hold the constraint on unseen data, step the multiplier on a
validation batch instead: ``criterion.dual_step(logits=val_logits,
labels=val_labels)``.

Run::

    python examples/drop_in.py                  # 5 seeds, target precision 0.95, saves drop_in_pr_curve.png
    python examples/drop_in.py --target 0.9 --seeds 10 --batch-size 128
    python examples/drop_in.py --quick          # smoke run: 1 seed; not the results
"""

from __future__ import annotations

import argparse
import time

# torch, scikit-learn, torchmetrics and goloss are imported where they are used, so that
# --help answers at once.

QUICK_EPOCHS = 500
SMOKE_LINE = "smoke run: --quick trains 1 seed only; the numbers below are not the results"


def make_criterion(name: str, args: argparse.Namespace):
    """The one line that differs between the two runs."""
    from torch import nn

    import goloss

    if name == "bce":
        return nn.BCEWithLogitsLoss()
    return goloss.RecallAtPrecisionLoss(args.target, auto_dual_step=True)


def make_data(seed: int, args: argparse.Namespace):
    """Digits as "is it ``args.digit``?": standardised train / held-out tensors, stratified split."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    digits = load_digits()
    x, y = digits.data.astype(np.float32), (digits.target == args.digit).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=args.test_size, stratify=y, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)
    to_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return (to_tensor(scaler.transform(x_train)), to_tensor(y_train),
            to_tensor(scaler.transform(x_test)), to_tensor(y_test))


def make_model(num_features: int, hidden: int):
    from torch import nn

    if hidden == 0:
        return nn.Linear(num_features, 1)
    return nn.Sequential(nn.Linear(num_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def train(name, x_train, y_train, seed, args, bar):
    """An ordinary training loop; only ``make_criterion(name, ...)`` differs between the two runs."""
    import torch

    torch.manual_seed(seed)
    model = make_model(x_train.shape[1], args.hidden)
    criterion = make_criterion(name, args)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    n = len(x_train)
    batch_size = n if args.batch_size <= 0 else min(args.batch_size, n)
    for _ in range(args.epochs):
        # Shuffled minibatches, the last incomplete one dropped; batch_size n is full-batch.
        for idx in torch.randperm(n, generator=generator)[: n - n % batch_size].view(-1, batch_size):
            x, y = x_train[idx], y_train[idx]
            optimizer.zero_grad()
            loss = criterion(model(x).squeeze(-1), y)
            loss.backward()  # goloss (auto_dual_step=True) stepped its multiplier in the forward
            optimizer.step()
        bar.update(1)
        if name == "goloss":  # logging only: the multiplier grows while the constraint is violated
            bar.set_postfix(model=name, loss=f"{loss.item():.4f}", lam=f"{criterion.lambdas.item():.2f}",
                            refresh=False)
        else:
            bar.set_postfix(model=name, loss=f"{loss.item():.4f}", refresh=False)
    return model, criterion


def scores_of(model, x):
    """Held-out logits, float64 (so that their sigmoid does not round to 0 or 1)."""
    import torch

    model.eval()
    with torch.no_grad():
        return model(x).squeeze(-1).double()


def evaluate(y, s_goloss, s_bce):
    """The held-out metrics of one seed, all from torchmetrics (probabilities: sigmoid of the logits)."""
    import torch
    from torchmetrics.functional.classification import (
        binary_average_precision,
        binary_precision,
        binary_precision_at_fixed_recall,
        binary_recall,
        binary_recall_at_fixed_precision,
    )

    y = y.long()
    p_goloss, p_bce = torch.sigmoid(s_goloss), torch.sigmoid(s_bce)
    # goloss at its own threshold, logit 0 (probability 0.5).
    precision = binary_precision(p_goloss, y, threshold=0.5).item()
    recall = binary_recall(p_goloss, y, threshold=0.5).item()
    # BCE at (at least) the same precision, its threshold tuned on the held-out set: the best
    # recall with precision >= goloss's, then the best precision at that recall (the point's own).
    # If no threshold reaches that precision, BCE is at the curve's end: recall 0, precision 1.
    bce_recall = binary_recall_at_fixed_precision(p_bce, y, min_precision=precision)[0].item()
    bce_precision = 1.0
    if bce_recall > 0.0:
        bce_precision = binary_precision_at_fixed_recall(p_bce, y, min_recall=bce_recall)[0].item()
    return {
        "precision": precision,
        "recall": recall,
        "bce_precision": bce_precision,
        "bce_recall": bce_recall,
        "ap_goloss": binary_average_precision(p_goloss, y).item(),
        "ap_bce": binary_average_precision(p_bce, y).item(),
    }


def plot(path, y, s_goloss, s_bce, row, target, seed):
    """Both models' held-out PR curves, the target line, goloss at logit 0 and BCE's tuned point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from torchmetrics.classification import BinaryPrecisionRecallCurve

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for name, scores, ap, color in (("BCE", s_bce, row["ap_bce"], "tab:blue"),
                                    ("goloss", s_goloss, row["ap_goloss"], "tab:red")):
        precision, recall, _ = BinaryPrecisionRecallCurve()(torch.sigmoid(scores), y.long())
        ax.plot(recall, precision, color=color, drawstyle="steps-post", label=f"{name} (AP {ap:.3f})")
    ax.axhline(target, color="gray", linestyle="--", label=f"target precision {target:g}")
    ax.plot(row["recall"], row["precision"], "o", color="tab:red", markersize=8,
            label=f"goloss at logit 0 (P {row['precision']:.3f}, R {row['recall']:.3f})")
    ax.plot(row["bce_recall"], row["bce_precision"], "s", color="tab:blue", markersize=8, fillstyle="none",
            label=f"BCE, threshold tuned on held-out (P {row['bce_precision']:.3f}, R {row['bce_recall']:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(max(0.0, min(0.5, target - 0.3)), 1.02)
    ax.set_title(f"Held-out precision-recall, seed {seed}")
    ax.legend(loc="lower center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.95, help="target precision (default 0.95)")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds, 0..N-1 (default 5)")
    parser.add_argument("--digit", type=int, default=9, help="the positive class (default 9)")
    parser.add_argument("--test-size", type=float, default=0.5, help="held-out fraction (default 0.5)")
    parser.add_argument("--hidden", type=int, default=0, help="hidden units; 0 = linear model (default 0)")
    parser.add_argument("--epochs", type=int, default=500, help="training epochs (default 500)")
    parser.add_argument("--batch-size", type=int, default=0, help="minibatch size; 0 = full batch (default 0)")
    parser.add_argument("--lr", type=float, default=0.03, help="Adam learning rate (default 0.03)")
    parser.add_argument("--weight-decay", type=float, default=1e-2, help="Adam weight decay (default 1e-2)")
    parser.add_argument("--plot", metavar="PATH", default="drop_in_pr_curve.png",
                        help="PNG of the first seed's held-out PR curves (default drop_in_pr_curve.png)")
    parser.add_argument("--quick", action="store_true", help=f"1 seed, {QUICK_EPOCHS} epochs (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, QUICK_EPOCHS
    return args


def run(args):
    """Train BCE and goloss on each seed's split; the rows of the table."""
    import torch
    from torchmetrics.functional.classification import binary_precision
    from tqdm import tqdm

    start = time.perf_counter()
    rows = []
    with tqdm(total=2 * args.seeds * args.epochs, desc="training", unit="epoch", mininterval=0.5) as bar:
        for seed in range(args.seeds):
            x_train, y_train, x_test, y_test = make_data(seed, args)
            bce, _ = train("bce", x_train, y_train, seed, args, bar)
            model, criterion = train("goloss", x_train, y_train, seed, args, bar)
            y, s_bce, s_goloss = y_test, scores_of(bce, x_test), scores_of(model, x_test)
            train_probs = torch.sigmoid(scores_of(model, x_train))
            row = {"seed": seed, **evaluate(y, s_goloss, s_bce), "lambda": criterion.lambdas.item(),
                   "train_precision": binary_precision(train_probs, y_train.long(), threshold=0.5).item(),
                   "positives": int(y.sum())}
            rows.append(row)
            if seed == 0 and args.plot:
                plot(args.plot, y, s_goloss, s_bce, row, args.target, seed)
    return rows, time.perf_counter() - start


def print_table(rows, args, seconds):
    from statistics import fmean

    if args.quick:
        print(SMOKE_LINE)
    model = "linear" if args.hidden == 0 else f"MLP({args.hidden})"
    batch = "full batch" if args.batch_size <= 0 else f"batch {args.batch_size}"
    print(f"Digits 'is it a {args.digit}?': {rows[0]['positives']} held-out positives; "
          f"target precision {args.target:g}; {model}, Adam lr {args.lr:g} weight decay {args.weight_decay:g}, "
          f"{batch}, {args.epochs} epochs; goloss defaults (strict dual signal, dual_lr 1)")
    print("goloss P, R: held-out precision, recall at logit 0 (train P: on the training set).  "
          "BCE P, R: best held-out recall at precision >= goloss P, threshold tuned on the held-out set.")
    header = (f"{'seed':>5} | {'goloss P':>8} {'goloss R':>8} | {'BCE P':>6} {'BCE R':>6} | "
              f"{'AP goloss':>9} {'AP BCE':>7} | {'lambda':>6} {'train P':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['seed']:>5} | {row['precision']:>8.3f} {row['recall']:>8.3f} | {row['bce_precision']:>6.3f} "
              f"{row['bce_recall']:>6.3f} | {row['ap_goloss']:>9.3f} {row['ap_bce']:>7.3f} | "
              f"{row['lambda']:>6.2f} {row['train_precision']:>7.3f}")
    keys = ("precision", "recall", "bce_precision", "bce_recall", "ap_goloss", "ap_bce")
    means = {key: fmean(row[key] for row in rows) for key in keys}
    print(f"{'mean':>5} | {means['precision']:>8.3f} {means['recall']:>8.3f} | {means['bce_precision']:>6.3f} "
          f"{means['bce_recall']:>6.3f} | {means['ap_goloss']:>9.3f} {means['ap_bce']:>7.3f} |")
    print(f"|mean goloss precision - target| = {abs(means['precision'] - args.target):.3f}")
    print(f"time: {seconds:.1f} s")
    if args.plot:
        print(f"saved plot to {args.plot}")
    return means


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)  # a 65-parameter model: more threads only add overhead
    rows, seconds = run(args)
    print_table(rows, args, seconds)


if __name__ == "__main__":
    main()
