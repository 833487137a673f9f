"""Where the constrained losses put the model's own threshold (logit 0) on held-out data.

Run from the repository root: ``python -m benchmarks.operating_point`` (``--quick`` for a
seconds-long smoke run). Every model is trained as a user would, through the public API only:
the target given to the criterion (e.g. ``goloss.RecallAtPrecisionLoss(0.9)``), Adam 1e-3 over
the model's and the criterion's parameters, one ``crit.dual_step()`` per batch (after
``optimizer.step()``). Signals compared:

- ``strict``: the module's default ``dual_signal="strict"``: the multiplier ascends on the strict
  (0-1, at logit 0) rate deficit of the training batch (e.g. ``t - precision`` for
  recall-at-precision), normalised by the room for error the target leaves (Cotter et al. 2019,
  proxy-Lagrangian);
- ``strict held-out``: the same measured on one batch of a validation split per dual step
  (cycling over the validation batches), ``crit.dual_step(logits=, labels=)``;
- ``surrogate``: ``dual_signal="surrogate"``, the multiplier ascends on the surrogate constraint
  (the bounds; its default ``dual_lr=1``);
- ``BCE tuned``: ``BCEWithLogitsLoss`` with its threshold tuned on the test set (an upper
  reference, not a deployable method).

``--dual-lr`` compares other dual learning rates for the strict signals (the modules'
``dual_lr=``; default: the module's default), ``--lambdas-init`` other initial multipliers
(with ``--dual-lr 0``: multipliers held fixed), ``--lr`` another learning rate of Adam (1e-3).

For each row it prints the held-out rate at logit 0 (mean over seeds, and per seed), the same
rate on the training set, the objective rate at logit 0, the objective of cross-entropy tuned to
the target on the test set, and pass/fail: the constrained rate within ``--tol`` (0.025; 0.03
for held-out) of the target (for multi-label rows: per label within ``max(tol, 2 standard
errors)``), and the objective no lower than cross-entropy's tuned objective minus 0.02.
"""

from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing
import time
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_precision_at_fixed_recall,
    binary_recall_at_fixed_precision,
    binary_sensitivity_at_specificity,
    binary_specificity_at_sensitivity,
)

import goloss

KINDS = {  # loss kind -> (module, constrained rate, objective rate, objective is maximised)
    "RAP": (goloss.RecallAtPrecisionLoss, "precision", "recall", True),
    "PAR": (goloss.PrecisionAtRecallLoss, "recall", "precision", True),
    "TPRAtFPR": (goloss.TPRAtFPRLoss, "fpr", "tpr", True),
    "FPRAtTPR": (goloss.FPRAtTPRLoss, "tpr", "fpr", False),
}


# ---------------------------------------------------------------------------------------------
# Data (features standardised, or pixels scaled into [0, 1]; labels [N, L])
# ---------------------------------------------------------------------------------------------
@dataclass
class Data:
    name: str
    xtr: torch.Tensor
    ytr: torch.Tensor
    xval: torch.Tensor
    yval: torch.Tensor
    xte: torch.Tensor
    yte: torch.Tensor
    batch: int
    epochs: int


def _split(x, y, fractions, rng, stratify=False):
    """Random train/val/test parts; ``stratify`` cuts each class of a 1-D ``y`` alike, so that every
    part has the same positive rate (as a large random split of one population has)."""
    if not stratify:
        idx = rng.permutation(len(x))
        cuts = np.cumsum([int(round(f * len(x))) for f in fractions[:-1]])
        return [(x[part], y[part]) for part in np.split(idx, cuts)]
    parts = [[] for _ in fractions]
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        cuts = np.cumsum([int(round(f * len(idx))) for f in fractions[:-1]])
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.append(chunk)
    return [(x[i], y[i]) for i in (rng.permutation(np.concatenate(part)) for part in parts)]


def _finish(name, x, y, rng, fractions, batch, epochs, per_feature=True, stratify=False):
    """Split into train/val/test and scale (:func:`_scale`)."""
    return _scale(name, _split(x, y, fractions, rng, stratify), batch, epochs, per_feature)


def _scale(name, splits, batch, epochs, per_feature=True):
    """Scale ``[(x, y)]`` train/val/test splits with the training split's statistics: standardise
    per feature (tabular), or scale pixels into [0, 1] as images are (``transforms.ToTensor``),
    which keeps their non-zero means (a linear model's offset)."""
    (xtr, ytr), (xval, yval), (xte, yte) = splits
    mean, std = (xtr.mean(0), xtr.std(0) + 1e-6) if per_feature else (0.0, xtr.max())
    f = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    g = lambda a: torch.tensor(a.reshape(len(a), -1), dtype=torch.float32)  # noqa: E731
    return Data(name, f(xtr), g(ytr), f(xval), g(yval), f(xte), g(yte), batch, epochs)


def _teacher(rng, x, hidden=32, nonlinear=1.0):
    """A random score: linear part plus a random one-hidden-layer tanh network."""
    d = x.shape[1]
    u = rng.standard_normal(d) / math.sqrt(d)
    w1 = rng.standard_normal((d, hidden)) * 2.0 / math.sqrt(d)
    v = rng.standard_normal(hidden) / math.sqrt(hidden)
    score = x @ u + nonlinear * np.tanh(x @ w1) @ v
    return score / score.std()


def _augment_digits(x, y, n, rng, shift=2, contrast=(0.7, 1.2), noise=0.05):
    """``n`` augmented 16x16 images (flattened) from 8x8 digits ``x`` (pixels in [0, 16]).

    Each base image is used ``n / len(x)`` times (rounded either way): upsampled to 16x16 (2x2
    blocks), shifted by up to ``shift`` pixels each way (zero padding, a random crop), its
    intensity multiplied by a factor in ``contrast``, Gaussian pixel noise of ``noise`` times the
    maximum intensity added, then clipped to [0, 16]."""
    pick = rng.permutation(np.resize(np.arange(len(x)), n))
    images = np.kron(x[pick].reshape(n, 8, 8).astype(np.float32), np.ones((1, 2, 2), np.float32))
    size = images.shape[1]
    padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift)))
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, n))
    rows = (dy[:, None] + np.arange(size))[:, :, None]
    cols = (dx[:, None] + np.arange(size))[:, None, :]
    images = padded[np.arange(n)[:, None, None], rows, cols]
    images *= rng.uniform(*contrast, size=(n, 1, 1)).astype(np.float32)
    images += (noise * 16.0) * rng.standard_normal(images.shape, dtype=np.float32)
    return np.clip(images, 0.0, 16.0).reshape(n, -1), y[pick]


def make_data(name: str, seed: int, quick: bool = False, stratify: bool = False) -> Data:
    rng = np.random.default_rng(1000 + seed)
    if name.startswith("digits-aug"):  # digits-aug-<d>: MNIST-like proxy, one digit vs rest (~10% positives)
        from sklearn.datasets import load_digits
        digit = int(name.split("-")[2])
        x, t = load_digits(return_X_y=True)
        # split the 1797 base images first (test images come from unseen digits), then augment
        # each split to MNIST's sizes: 60k train, 10k val, 10k test
        sizes = (60_000, 10_000, 10_000) if not quick else (6000, 1000, 1000)
        bases = _split(x, (t == digit).astype(float), (0.45, 0.15, 0.40), rng, stratify)
        splits = [_augment_digits(xb, yb, size, rng) for (xb, yb), size in zip(bases, sizes)]
        return _scale(name, splits, 512, 6, per_feature=False)
    if name.startswith("digits"):  # digits-<d>: one digit vs rest (~10% positives), 1797 samples
        from sklearn.datasets import load_digits
        digit = int(name.split("-")[1])
        x, t = load_digits(return_X_y=True)
        return _finish(name, x, (t == digit).astype(float), rng, (0.45, 0.15, 0.40), 64, 60)
    if name == "breast_cancer":  # malignant (37%) as the positive class
        from sklearn.datasets import load_breast_cancer
        x, t = load_breast_cancer(return_X_y=True)
        return _finish(name, x, 1.0 - t, rng, (0.45, 0.15, 0.40), 64, 60 if not quick else 5)
    if name == "gauss2d":  # two overlapping 2-D Gaussians, 10% positives
        n = 20_000 if not quick else 4000
        y = (rng.random(n) < 0.1).astype(float)
        x = rng.standard_normal((n, 2)) + y[:, None] * np.array([1.5, 1.5])
        return _finish(name, x, y, rng, (0.6, 0.15, 0.25), 256, 20)
    if name == "image":  # MNIST-sized one-vs-rest stand-in: 100-dim, nonlinear teacher + noise, 10% positives
        n = 80_000 if not quick else 8000
        data_rng = np.random.default_rng(7)  # the same task for every seed, a new sample
        z = rng.standard_normal((n, 100)) @ (np.eye(100) + 0.3 * data_rng.standard_normal((100, 100)) / 10)
        x = np.maximum(z - 0.5, 0.0)  # sparse non-negative "pixels"
        score = _teacher(data_rng, x - x.mean(0), nonlinear=0.8) + IMAGE_NOISE * rng.standard_normal(n)
        y = (score > np.quantile(score, 0.9)).astype(float)
        return _finish(name, x, y, rng, (0.625, 0.125, 0.25), 512, 6)
    if name == "multilabel7":  # 7 labels, positives 6-37%
        n = 60_000 if not quick else 6000
        data_rng = np.random.default_rng(11)
        x = rng.standard_normal((n, 30))
        rates = np.array([0.06, 0.10, 0.15, 0.20, 0.25, 0.30, 0.37])
        noise = np.array([0.9, 0.6, 0.5, 0.45, 0.35, 0.25, 0.12])
        ys = []
        for rate, sd in zip(rates, noise):
            score = _teacher(data_rng, x, nonlinear=1.0) + sd * rng.standard_normal(n)
            ys.append(score > np.quantile(score, 1 - rate))
        return _finish(name, x, np.stack(ys, 1).astype(float), rng, (0.7, 0.1, 0.2), 1024, 8)
    raise ValueError(name)


IMAGE_NOISE = 0.3
MULTILABEL_TARGETS = [0.2, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99]


def make_model(kind: str, d: int, labels: int) -> torch.nn.Module:
    if kind == "linear":
        return torch.nn.Linear(d, labels)
    return torch.nn.Sequential(torch.nn.Linear(d, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, labels))


# ---------------------------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    dataset: str
    model: str
    kind: str  # RAP / PAR / TPRAtFPR / FPRAtTPR
    target: tuple  # one per label
    signal: str  # strict / heldout / surrogate / bce
    seed: int = 0
    dual_lr: Optional[float] = None  # None: the module's default for the signal
    quick: bool = False
    batch: Optional[int] = None
    epochs: Optional[int] = None
    lr: float = 1e-3  # Adam's
    lambdas_init: Optional[float] = None  # None: the module's default


def rates_at_zero(logits, y):
    pred = (logits > 0).float()
    tp, fp = (pred * y).sum(0), (pred * (1 - y)).sum(0)
    pos, neg = y.sum(0), (1 - y).sum(0)
    return {
        "precision": torch.where(tp + fp > 0, tp / (tp + fp).clamp_min(1), torch.ones_like(tp)),
        "recall": tp / pos.clamp_min(1), "tpr": tp / pos.clamp_min(1), "fpr": fp / neg.clamp_min(1),
        "predicted_positives": tp + fp, "positives": pos, "negatives": neg,
    }


def tuned(kind, logits, y, target):
    """Cross-entropy's objective at the target, threshold tuned on this (test) set, per label."""
    out = []
    for k in range(y.shape[1]):
        p, t, tk = torch.sigmoid(logits[:, k]), y[:, k].long(), float(target[k])
        if kind == "RAP":
            value = binary_recall_at_fixed_precision(p, t, min_precision=tk)[0]
        elif kind == "PAR":
            value = binary_precision_at_fixed_recall(p, t, min_recall=tk)[0]
        elif kind == "TPRAtFPR":
            value = binary_sensitivity_at_specificity(p, t, min_specificity=1 - tk)[0]
        else:  # FPR at TPR >= t
            value = 1 - binary_specificity_at_sensitivity(p, t, min_sensitivity=tk)[0]
        out.append(float(value))
    return out


def train(cfg: Config) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    data = make_data(cfg.dataset, cfg.seed, cfg.quick)
    batch, epochs = cfg.batch or data.batch, cfg.epochs or data.epochs
    labels = data.ytr.shape[1]
    model = make_model(cfg.model, data.xtr.shape[1], labels)
    target = torch.tensor(cfg.target, dtype=torch.float32).expand(labels).clone()
    module = KINDS[cfg.kind][0]
    if cfg.signal == "bce":
        crit = torch.nn.BCEWithLogitsLoss()
    else:
        kwargs = {"dual_signal": "surrogate" if cfg.signal == "surrogate" else "strict"}
        if cfg.dual_lr is not None:
            kwargs["dual_lr"] = cfg.dual_lr
        if cfg.lambdas_init is not None:
            kwargs["lambdas_init"] = cfg.lambdas_init
        crit = module(target if labels > 1 else float(target[0]), num_labels=labels, **kwargs)
    opt = torch.optim.Adam(list(model.parameters()) + list(crit.parameters()), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    val_batches = torch.split(torch.randperm(len(data.xval), generator=gen), batch)
    val_step = 0
    lambdas_trace = []
    n = len(data.xtr)
    for _ in range(epochs):
        for idx in torch.split(torch.randperm(n, generator=gen), batch):
            xb, yb = data.xtr[idx], data.ytr[idx]
            logits = model(xb)
            if labels == 1:
                logits, yb = logits.squeeze(-1), yb.squeeze(-1)
            loss = crit(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if cfg.signal == "bce":
                continue
            if cfg.signal == "heldout":
                vidx = val_batches[val_step % len(val_batches)]
                val_step += 1
                with torch.no_grad():
                    vl, vy = model(data.xval[vidx]), data.yval[vidx]
                if labels == 1:
                    vl, vy = vl.squeeze(-1), vy.squeeze(-1)
                crit.dual_step(logits=vl, labels=vy)
            else:  # strict or surrogate: the signal the training forwards recorded
                crit.dual_step()
            lambdas_trace.append(crit.lambdas.detach().clone())
    with torch.no_grad():
        logits = model(data.xte)
        train_rates = rates_at_zero(model(data.xtr), data.ytr)
    r = rates_at_zero(logits, data.yte)
    steps = len(lambdas_trace)
    result = {
        "cfg": cfg, "steps": epochs * math.ceil(n / batch),
        "rates": {k: v.tolist() for k, v in r.items()},
        "train_rates": {k: v.tolist() for k, v in train_rates.items()},
        "tuned": tuned(cfg.kind, logits, data.yte, target) if cfg.signal == "bce" else None,
    }
    if steps:
        trace = torch.stack(lambdas_trace)
        result["lambda_final"] = trace[-1].tolist()
        # equilibrium check: mean multiplier over the last 20% of steps vs. the 20% before
        a, b = trace[int(0.6 * steps):int(0.8 * steps)].mean(0), trace[int(0.8 * steps):].mean(0)
        result["lambda_drift"] = ((b - a) / b.clamp_min(1e-3)).tolist()
    return result


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------
def _image_rows(dataset):
    """The rows of an image-like set: R@P 0.9 (linear and MLP), P@R 0.9 and TPR@FPR 0.02 (MLP)."""
    return [(dataset, "linear", "RAP", (0.9,)), (dataset, "mlp", "RAP", (0.9,)),
            (dataset, "mlp", "PAR", (0.9,)), (dataset, "mlp", "TPRAtFPR", (0.02,))]


def suite(quick: bool, only=None):
    """(dataset, model, kind, target) rows of the acceptance table."""
    rows = _image_rows("image")
    for d in (3, 8):
        rows += _image_rows(f"digits-aug-{d}")
    rows = rows + suite_rest(quick)
    if quick:
        rows = [("gauss2d", "linear", "RAP", (0.9,))]
    if only:
        rows = [r for r in rows if f"{r[0]}/{r[1]}/{r[2]}" in only]
    return rows


def suite_rest(quick):
    rows, image_models = [], ("linear", "mlp")
    digits = (8,) if quick else (3, 8, 9)
    for d in digits:
        for model in image_models:
            rows.append((f"digits-{d}", model, "RAP", (0.9,)))
    rows += [("breast_cancer", "linear", "RAP", (0.9,)), ("gauss2d", "linear", "RAP", (0.9,)),
             ("gauss2d", "linear", "PAR", (0.9,)), ("gauss2d", "linear", "TPRAtFPR", (0.02,)),
             ("multilabel7", "mlp", "RAP", tuple(MULTILABEL_TARGETS))]
    return rows


def _run(cfg):
    return train(cfg)


def run_all(cfgs, processes):
    from tqdm import tqdm
    results = []
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for r in tqdm(pool.imap_unordered(_run, cfgs), total=len(cfgs), desc="training", leave=False):
            results.append(r)
    return results


def summarise(results, tol, tol_heldout, margin=0.02):
    """Group by row and signal; returns printable lines."""
    groups = {}
    for r in results:
        c = r["cfg"]
        groups.setdefault((c.dataset, c.model, c.kind, c.target, c.signal, c.dual_lr, c.lambdas_init), []).append(r)
    # cross-entropy tuned objective per (dataset, model, kind, target): mean over seeds, per label
    ce = {}
    for key, rs in groups.items():
        if key[4] == "bce":
            ce[key[:4]] = np.mean([r["tuned"] for r in rs], 0)
    lines = []
    header = ("dataset", "model", "loss", "target", "signal", "dual_lr", "rate@0 mean", "per seed", "train rate",
              "objective@0", "CE tuned", "lambda", "pass")
    lines.append(header)
    order = {"strict": 0, "heldout": 1, "surrogate": 2, "bce": 3}
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3], order[k[4]], k[5] or 0, k[6] or 0)):
        dataset, model, kind, target, signal, dual_lr, lambdas_init = key
        rs = groups[key]
        constrained, objective, maximise = KINDS[kind][1], KINDS[kind][2], KINDS[kind][3]
        rate = np.array([r["rates"][constrained] for r in rs])  # [seeds, L]
        obj = np.array([r["rates"][objective] for r in rs])
        counts_key = {"precision": "predicted_positives", "recall": "positives", "tpr": "positives",
                      "fpr": "negatives"}[constrained]
        counts = np.array([r["rates"][counts_key] for r in rs]).mean(0)
        t = np.array(target) * np.ones(rate.shape[1])
        ce_obj = ce.get(key[:4])
        signal_name = {"strict": "strict", "heldout": "strict held-out", "surrogate": "surrogate",
                       "bce": "BCE tuned"}[signal]
        if signal == "bce":
            verdict = "-"
        else:
            allowed = tol_heldout if signal == "heldout" else tol
            if rate.shape[1] > 1:  # per label: within max(tol, 2 standard errors of the seed mean)
                se = np.sqrt(t * (1 - t) / np.maximum(counts, 1) / len(rs))
                allowed = np.maximum(allowed, 2 * se)
            ok_rate = np.abs(rate.mean(0) - t) <= allowed
            if ce_obj is None:
                ok_obj = np.ones_like(ok_rate)
            elif maximise:
                ok_obj = obj.mean(0) >= ce_obj - margin
            else:
                ok_obj = obj.mean(0) <= ce_obj + margin
            ok = ok_rate & ok_obj
            verdict = "PASS" if ok.all() else ("FAIL(" + ",".join(
                ("rate" if not a else "") + ("+" if not a and not b else "") + ("obj" if not b else "")
                for a, b in zip(ok_rate, ok_obj) if not (a and b)) + ")")
        fmt = lambda a: "/".join(f"{v:.3f}" for v in np.atleast_1d(a))  # noqa: E731
        lam = np.mean([r.get("lambda_final", [np.nan]) for r in rs], 0)
        dual = "-" if signal == "bce" else f"{dual_lr:g}" if dual_lr is not None else "default"
        if lambdas_init is not None and signal != "bce":
            dual += f", init {lambdas_init:g}"
        lines.append((dataset, model, f"{kind}", fmt(t), signal_name, dual,
                      fmt(rate.mean(0)), " ".join(fmt(s) for s in rate),
                      fmt(np.mean([r["train_rates"][constrained] for r in rs], 0)), fmt(obj.mean(0)),
                      "-" if ce_obj is None else fmt(ce_obj), "-" if signal == "bce" else fmt(lam), verdict))
    return lines


def print_table(lines):
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    for j, line in enumerate(lines):
        print(" | ".join(str(v).ljust(w) for v, w in zip(line, widths)))
        if j == 0:
            print("-+-".join("-" * w for w in widths))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--dual-lr", type=float, nargs="*", default=[None],
                        help="dual learning rates (the modules' dual_lr=) to compare for the strict and "
                             "held-out signals (default: the module's default)")
    parser.add_argument("--signals", nargs="*", default=["strict", "heldout", "surrogate", "bce"])
    parser.add_argument("--datasets", nargs="*", default=None, help="only these datasets")
    parser.add_argument("--rows", nargs="*", default=None, help="only these dataset/model/loss rows")
    parser.add_argument("--lr", type=float, default=Config.lr, help="Adam's learning rate (default %(default)g)")
    parser.add_argument("--lambdas-init", type=float, nargs="*", default=[None],
                        help="the modules' lambdas_init= to compare (with --dual-lr 0: fixed multipliers)")
    parser.add_argument("--tol", type=float, default=0.025)
    parser.add_argument("--tol-heldout", type=float, default=0.03)
    args = parser.parse_args(argv)
    seeds = 1 if args.quick else args.seeds
    cfgs = []
    for dataset, model, kind, target in suite(args.quick, args.rows):
        if args.datasets and not any(dataset.startswith(d) for d in args.datasets):
            continue
        for signal, seed in itertools.product(args.signals, range(seeds)):
            base = Config(dataset, model, kind, target, signal, seed, quick=args.quick, lr=args.lr)
            if signal in ("strict", "heldout"):
                cfgs += [replace(base, dual_lr=lr, lambdas_init=init)
                         for lr, init in itertools.product(args.dual_lr, args.lambdas_init)]
            else:
                cfgs.append(base)
    start = time.perf_counter()
    results = run_all(cfgs, args.processes)
    print_table(summarise(results, args.tol, args.tol_heldout))
    print(f"\n{len(cfgs)} trainings in {time.perf_counter() - start:.0f} s ({args.processes} processes)")
    return results


if __name__ == "__main__":
    main()
