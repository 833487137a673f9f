"""Module and small-batch rows: acceptance ratios of the ``nn`` modules, ``reduction="none"``,
a ``vmap`` over targets and a small-MLP training step, each against a baseline timed in the
same run.

Each row builds a pair of zero-argument callables ``(candidate, baseline)``. A sample times
``n`` back-to-back calls of one, then ``n`` of the other (the order alternates from sample to
sample), with ``n`` chosen at warm-up so that a sample of the baseline lasts about
``min_time`` seconds; its ratio is ``time(candidate) / time(baseline)``. The table prints the
median of ``repeats`` such ratios, their interquartile range and their min-max, so that the
noise of a shared machine shows. Only public API is used (``criterion(...)``,
``criterion.dual_step()``, ``goloss.*``); value checks stay on (the default).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

import goloss

# The PR-AUC rows time the loss alone, with no optimizer moving the biases, and the rate rows step
# the multipliers on fixed random data, where precision 0.9 is out of reach: not the pitfalls the
# modules warn about.
warnings.filterwarnings("ignore", message="PrecisionRecallAUCLoss: the per-anchor biases")
warnings.filterwarnings("ignore", message=r".*the multiplier of label \d+ reached its cap")

Step = Callable[[], None]
CLOCK = {"now": time.perf_counter}  # time.process_time with --clock cpu (see benchmarks.run)


@dataclass
class Row:
    name: str
    batch: int
    labels: int
    anchors: Optional[int]
    target: float
    make: Callable[[], tuple[Step, Step]]  # built lazily, so one row's tensors live at a time


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _sample(fn, calls, device):
    now = CLOCK["now"]
    _sync(device)
    start = now()
    for _ in range(calls):
        fn()
    _sync(device)
    return (now() - start) / calls


def ratio_samples(fn, baseline, device, repeats, min_time, warmup=2):
    """``repeats`` back-to-back ratios time(fn) / time(baseline) (per call)."""
    for _ in range(warmup):
        fn()
        baseline()
    calls = max(1, math.ceil(min_time / max(_sample(baseline, 1, device), 1e-7)))
    ratios = []
    for i in range(repeats):
        if i % 2:
            base = _sample(baseline, calls, device)
            ratios.append(_sample(fn, calls, device) / base)
        else:
            ratios.append(_sample(fn, calls, device) / _sample(baseline, calls, device))
    return ratios


def _data(batch, labels, device, seed=0):
    """Leaf logits requiring grad and {0, 1} labels, ``[B]`` for one label, else ``[B, L]``."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch,) if labels == 1 else (batch, labels)
    x = torch.randn(shape, generator=generator).to(device).requires_grad_()
    y = (torch.rand(shape, generator=generator) < 0.2).float().to(device)
    return x, y


def _module_step(criterion, x, y, reduce_none=False):
    def run():
        loss = criterion(x, y)
        (loss.mean() if reduce_none else loss).backward()
        criterion.dual_step()

    return run


def rap_module_vs_functional(batch, labels, device):
    def make():
        x, y = _data(batch, labels, device)
        criterion = goloss.RecallAtPrecisionLoss(0.9, num_labels=labels).to(device).train()
        lam = torch.ones(labels, device=device, requires_grad=True)

        def functional():
            goloss.recall_at_precision_loss(None, lam, x, y, target_precision=0.9, reduction="mean")[0].backward()

        return _module_step(criterion, x, y), functional

    return make


def prauc_module_vs_functional(batch, labels, anchors, device):
    def make():
        x, y = _data(batch, labels, device)
        criterion = goloss.PrecisionRecallAUCLoss(labels, num_anchors=anchors).to(device).train()
        lam = torch.ones(labels, anchors, device=device, requires_grad=True)
        params = {"biases": torch.zeros(labels, anchors, device=device, requires_grad=True)}

        def functional():
            goloss.precision_recall_auc_loss(params, lam, x, y, num_anchors=anchors, reduction="mean")[0].backward()

        return _module_step(criterion, x, y), functional

    return make


def rap_module_vs_bce_module(batch, device):
    def make():
        x, y = _data(batch, 1, device)
        criterion = goloss.RecallAtPrecisionLoss(0.9).to(device).train()
        bce = torch.nn.BCEWithLogitsLoss()
        return _module_step(criterion, x, y), lambda: bce(x, y).backward()

    return make


def _bce_none_mean(x, y):
    return lambda: F.binary_cross_entropy_with_logits(x, y, reduction="none").mean().backward()


def rap_none_vs_bce_none(batch, device):
    def make():
        x, y = _data(batch, 1, device)
        lam = torch.ones(1, device=device, requires_grad=True)

        def functional():
            loss = goloss.recall_at_precision_loss(None, lam, x, y, target_precision=0.9, reduction="none")[0]
            loss.mean().backward()

        return functional, _bce_none_mean(x, y)

    return make


def rap_module_none_vs_bce_none(batch, device):
    def make():
        x, y = _data(batch, 1, device)
        criterion = goloss.RecallAtPrecisionLoss(0.9, reduction="none").to(device).train()
        return _module_step(criterion, x, y, reduce_none=True), _bce_none_mean(x, y)

    return make


def vmap_targets_vs_one(batch, count, device):
    """vmap over ``count`` target precisions of ``loss.sum()`` with the functional default
    reduction ("none"), forward+backward, versus the same for one target."""

    def make():
        x, y = _data(batch, 1, device)

        def total(target, lam):
            return goloss.recall_at_precision_loss(None, lam, x, y, target_precision=target)[0].sum()

        targets = torch.linspace(0.5, 0.95, count, device=device)
        lams = torch.ones(count, 1, device=device, requires_grad=True)
        lam = torch.ones(1, device=device, requires_grad=True)
        swept = torch.func.vmap(total)
        return (lambda: swept(targets, lams).sum().backward()), (lambda: total(targets[0], lam).backward())

    return make


def mlp_step(batch, features, device):
    """A training step of an MLP features-64-64-1 (ReLU) with Adam: R@P module versus BCE."""

    def make():
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(features, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, 1),
        ).to(device)
        twin = copy.deepcopy(model)
        generator = torch.Generator().manual_seed(1)
        inputs = torch.randn(batch, features, generator=generator).to(device)
        labels = (torch.rand(batch, generator=generator) < 0.2).float().to(device)
        criterion = goloss.RecallAtPrecisionLoss(0.9).to(device).train()
        bce = torch.nn.BCEWithLogitsLoss()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        twin_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3)

        def goloss_step():
            optimizer.zero_grad()
            loss = criterion(model(inputs).squeeze(-1), labels)
            loss.backward()
            optimizer.step()
            criterion.dual_step()

        def bce_step():
            twin_optimizer.zero_grad()
            loss = bce(twin(inputs).squeeze(-1), labels)
            loss.backward()
            twin_optimizer.step()

        return goloss_step, bce_step

    return make


def rows(device, quick):
    big, small, prauc, mlp_batch = (2048, 256, 512, 128) if quick else (2**20, 4096, 2**15, 128)
    count = 2 if quick else 16
    return [
        Row("A  R@P module step / functional (mean)", big, 1, None, 1.25, rap_module_vs_functional(big, 1, device)),
        Row("A  R@P module step / functional (mean)", small, 8, None, 1.25,
            rap_module_vs_functional(small, 8, device)),
        Row("A  PR-AUC module step / functional (mean)", prauc, 1, 20, 1.25,
            prauc_module_vs_functional(prauc, 1, 20, device)),
        Row("B  R@P module step / BCEWithLogitsLoss step", big, 1, None, 2.5, rap_module_vs_bce_module(big, device)),
        Row("C  R@P functional none+mean / BCE none+mean", big, 1, None, 2.5, rap_none_vs_bce_none(big, device)),
        Row("C  R@P module none+mean / BCE none+mean", big, 1, None, 2.5, rap_module_none_vs_bce_none(big, device)),
        Row(f"D  vmap {count} targets / 1 target (none, .sum())", big, 1, None, 4.0,
            vmap_targets_vs_one(big, count, device)),
        Row("E  MLP 32-64-64-1 Adam step: R@P module / BCE", mlp_batch, 1, None, 2.0, mlp_step(mlp_batch, 32, device)),
    ]


TITLE = "module and small-batch rows"


def print_table(device, quick, repeats, min_time):
    clock = "process CPU time" if CLOCK["now"] is time.process_time else "wall time"
    print(f"\n{TITLE}: median of {repeats} back-to-back ratios (candidate / baseline, {clock} per call, "
          f"each sample >= {min_time * 1e3:.0f} ms of baseline calls), IQR and min-max of the ratios; "
          "value checks on")
    header = (f"{'row':48s} {'B':>8s} {'L':>3s} {'A':>3s} {'ratio':>6s} {'IQR':>11s} {'min-max':>11s} "
              f"{'target':>7s} {'met':>4s}")
    print(header)
    print("-" * len(header))
    results = []
    for row in rows(device, quick):
        fn, baseline = row.make()
        ratios = ratio_samples(fn, baseline, device, repeats, min_time)
        del fn, baseline
        median = statistics.median(ratios)
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else (median,) * 3
        met = "yes" if round(median, 2) <= row.target else "no"  # as printed
        anchors = "-" if row.anchors is None else str(row.anchors)
        print(f"{row.name:48s} {row.batch:8d} {row.labels:3d} {anchors:>3s} {median:6.2f} "
              f"{f'{q1:.2f}-{q3:.2f}':>11s} {f'{min(ratios):.2f}-{max(ratios):.2f}':>11s} "
              f"{f'<={row.target:g}':>7s} {met:>4s}", flush=True)
        results.append((row, median, ratios))
    return results
