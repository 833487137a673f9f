"""Drop-in: one line turns a BCE training script into "maximise recall at precision >= target".

An ordinary PyTorch script: a linear model, an Adam loop, and
``loss = criterion(model(x).squeeze(-1), y); loss.backward(); optimizer.step()``.
The two runs differ in one line, the criterion (see :func:`make_criterion`)::

    criterion = nn.BCEWithLogitsLoss()
    criterion = goloss.RecallAtPrecisionLoss(target, auto_dual_step=True)

Everything else is goloss's default: the strict dual signal (the multiplier
ascends on the batch's real rate deficit ``target - precision`` at logit 0,
``dual_lr`` 0.05) and the xent surrogate for the model's gradient.
``auto_dual_step=True`` takes the multiplier's step at the end of each training
forward, so the BCE loop needs no extra line (without it, call
``criterion.dual_step()`` after ``optimizer.step()``); ``criterion.lambdas`` is
read only for the progress bar.

After training, both models get a threshold from the same validation split, as a
user of cross-entropy would tune one::

    criterion.calibrate(model(x_val).squeeze(-1), y_val)   # sets criterion.threshold
    decisions = criterion.predict(model(x_test).squeeze(-1))  # logits > threshold

and BCE's threshold comes from the same rule, ``goloss.calibrate_threshold(logits,
labels, target, "precision")``: the lowest threshold at which the validation
split has precision >= target.

Data: scikit-learn's bundled handwritten digits (no download) as "is it a 9?"
(10% positives), standardised, split per seed into stratified train (40%),
validation (25%) and test (35%; about 63 positives, so one false positive moves
precision by about 0.015) parts.

Test-set evaluation, per seed: goloss at logit 0 (training put its threshold
there, on the training data) and at its calibrated threshold; BCE at its
validation-tuned threshold; average precision of both (torchmetrics). The last
lines say whether the mean test precision is within 0.025 of the target.

Defaults: target precision 0.95, Adam lr 0.03 with weight decay 1e-2 (for
both runs: only the criterion changes), full batch, 500 epochs.

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
    """Digits as "is it ``args.digit``?": standardised train / validation / test tensors, stratified."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    digits = load_digits()
    x, y = digits.data.astype(np.float32), (digits.target == args.digit).astype(np.float32)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=args.test_size, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=args.val_size / (1.0 - args.test_size), stratify=y_rest, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)
    to_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return [(to_tensor(scaler.transform(features)), to_tensor(labels))
            for features, labels in ((x_train, y_train), (x_val, y_val), (x_test, y_test))]


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


def _rates(y, scores, threshold):
    """Precision (1 with nothing predicted) and recall of the decisions ``scores > threshold``."""
    predicted = scores > threshold
    tp = (predicted & (y > 0)).sum().item()
    return tp / predicted.sum().item() if predicted.any() else 1.0, tp / max((y > 0).sum().item(), 1)


def evaluate(y, s_goloss, goloss_threshold, s_bce, bce_threshold):
    """The test metrics of one seed: decisions ``logits > threshold``; average precision from
    torchmetrics (probabilities: sigmoid of the logits)."""
    import torch
    from torchmetrics.functional.classification import binary_average_precision

    precision, recall = _rates(y, s_goloss, 0.0)
    calibrated_precision, calibrated_recall = _rates(y, s_goloss, goloss_threshold)
    bce_precision, bce_recall = _rates(y, s_bce, bce_threshold)
    return {
        "precision": precision,
        "recall": recall,
        "calibrated_precision": calibrated_precision,
        "calibrated_recall": calibrated_recall,
        "bce_precision": bce_precision,
        "bce_recall": bce_recall,
        "ap_goloss": binary_average_precision(torch.sigmoid(s_goloss), y.long()).item(),
        "ap_bce": binary_average_precision(torch.sigmoid(s_bce), y.long()).item(),
    }


def plot(path, y, s_goloss, s_bce, row, target, seed):
    """Both models' test PR curves, the target line, goloss at logit 0 and calibrated, BCE's tuned point."""
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
    ax.plot(row["recall"], row["precision"], "o", color="tab:red", markersize=8, fillstyle="none",
            label=f"goloss at logit 0 (P {row['precision']:.3f}, R {row['recall']:.3f})")
    ax.plot(row["calibrated_recall"], row["calibrated_precision"], "o", color="tab:red", markersize=8,
            label=f"goloss calibrated (P {row['calibrated_precision']:.3f}, R {row['calibrated_recall']:.3f})")
    ax.plot(row["bce_recall"], row["bce_precision"], "s", color="tab:blue", markersize=8, fillstyle="none",
            label=f"BCE, validation-tuned (P {row['bce_precision']:.3f}, R {row['bce_recall']:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(max(0.0, min(0.5, target - 0.3)), 1.02)
    ax.set_title(f"Test precision-recall, seed {seed}")
    ax.legend(loc="lower center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.95, help="target precision (default 0.95)")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds, 0..N-1 (default 5)")
    parser.add_argument("--digit", type=int, default=9, help="the positive class (default 9)")
    parser.add_argument("--val-size", type=float, default=0.25, help="validation fraction (default 0.25)")
    parser.add_argument("--test-size", type=float, default=0.35, help="test fraction (default 0.35)")
    parser.add_argument("--hidden", type=int, default=0, help="hidden units; 0 = linear model (default 0)")
    parser.add_argument("--epochs", type=int, default=500, help="training epochs (default 500)")
    parser.add_argument("--batch-size", type=int, default=0, help="minibatch size; 0 = full batch (default 0)")
    parser.add_argument("--lr", type=float, default=0.03, help="Adam learning rate (default 0.03)")
    parser.add_argument("--weight-decay", type=float, default=1e-2, help="Adam weight decay (default 1e-2)")
    parser.add_argument("--plot", metavar="PATH", default="drop_in_pr_curve.png",
                        help="PNG of the first seed's test PR curves (default drop_in_pr_curve.png)")
    parser.add_argument("--quick", action="store_true", help=f"1 seed, {QUICK_EPOCHS} epochs (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, QUICK_EPOCHS
    return args


def run(args):
    """Train BCE and goloss on each seed's split, calibrate both on its validation part; the rows."""
    from tqdm import tqdm

    import goloss

    start = time.perf_counter()
    rows = []
    with tqdm(total=2 * args.seeds * args.epochs, desc="training", unit="epoch", mininterval=0.5) as bar:
        for seed in range(args.seeds):
            (x_train, y_train), (x_val, y_val), (x_test, y_test) = make_data(seed, args)
            bce, _ = train("bce", x_train, y_train, seed, args, bar)
            model, criterion = train("goloss", x_train, y_train, seed, args, bar)
            criterion.calibrate(scores_of(model, x_val), y_val)  # sets criterion.threshold
            bce_threshold, _ = goloss.calibrate_threshold(scores_of(bce, x_val), y_val, args.target, "precision")
            s_bce, s_goloss = scores_of(bce, x_test), scores_of(model, x_test)
            row = {"seed": seed, **evaluate(y_test, s_goloss, criterion.threshold.item(), s_bce, bce_threshold.item()),
                   "lambda": criterion.lambdas.item(),
                   "train_precision": _rates(y_train, scores_of(model, x_train), 0.0)[0],
                   "positives": int(y_test.sum())}
            rows.append(row)
            if seed == 0 and args.plot:
                plot(args.plot, y_test, s_goloss, s_bce, row, args.target, seed)
    return rows, time.perf_counter() - start


def print_table(rows, args, seconds):
    from statistics import fmean

    if args.quick:
        print(SMOKE_LINE)
    model = "linear" if args.hidden == 0 else f"MLP({args.hidden})"
    batch = "full batch" if args.batch_size <= 0 else f"batch {args.batch_size}"
    print(f"Digits 'is it a {args.digit}?': {rows[0]['positives']} test positives; "
          f"target precision {args.target:g}; {model}, Adam lr {args.lr:g} weight decay {args.weight_decay:g}, "
          f"{batch}, {args.epochs} epochs; goloss defaults (strict dual signal, dual_lr 0.05, auto_dual_step)")
    print("Test precision P and recall R. goloss @0: at logit 0 (train P: on the training set); goloss cal: at "
          "criterion.threshold from calibrate() on the validation split; BCE: threshold tuned on the same split.")
    header = (f"{'seed':>5} | {'P @0':>6} {'R @0':>6} | {'P cal':>6} {'R cal':>6} | {'BCE P':>6} {'BCE R':>6} | "
              f"{'AP goloss':>9} {'AP BCE':>7} | {'lambda':>6} {'train P':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['seed']:>5} | {row['precision']:>6.3f} {row['recall']:>6.3f} | "
              f"{row['calibrated_precision']:>6.3f} {row['calibrated_recall']:>6.3f} | {row['bce_precision']:>6.3f} "
              f"{row['bce_recall']:>6.3f} | {row['ap_goloss']:>9.3f} {row['ap_bce']:>7.3f} | "
              f"{row['lambda']:>6.2f} {row['train_precision']:>7.3f}")
    keys = ("precision", "recall", "calibrated_precision", "calibrated_recall", "bce_precision", "bce_recall",
            "ap_goloss", "ap_bce")
    means = {key: fmean(row[key] for row in rows) for key in keys}
    print(f"{'mean':>5} | {means['precision']:>6.3f} {means['recall']:>6.3f} | {means['calibrated_precision']:>6.3f} "
          f"{means['calibrated_recall']:>6.3f} | {means['bce_precision']:>6.3f} {means['bce_recall']:>6.3f} | "
          f"{means['ap_goloss']:>9.3f} {means['ap_bce']:>7.3f} |")
    for name, key in (("goloss at logit 0", "precision"), ("goloss calibrated", "calibrated_precision"),
                      ("BCE validation-tuned", "bce_precision")):
        gap = means[key] - args.target
        print(f"{name}: mean test precision {means[key]:.3f}, target {args.target:g}: "
              f"{'met' if abs(gap) <= 0.025 else 'missed'} (within 0.025: {gap:+.3f})")
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
