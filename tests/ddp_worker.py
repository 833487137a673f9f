"""Worker for test_distributed.py: launched by torchrun with 2 CPU processes (gloo).

Trains each constrained loss for a few steps with a per-rank batch and DistributedDataParallel,
runs the cross-rank ROC-AUC loss, and saves every rank's final state to OUT/rank{r}.pt.
Also importable: ``train(...)`` is the shared training loop the test runs in one process.
"""

from __future__ import annotations

import datetime
import os
import sys

import torch
import torch.distributed as dist

import goloss

STEPS, BATCH, LABELS = 4, 8, 2
NAMES = ("r_at_p", "p_at_r", "r_at_p_surrogate", "pr_auc")  # the strict dual signal (default) and the surrogate


def make_loss(name):
    return {
        "r_at_p": lambda: goloss.RecallAtPrecisionLoss(0.8, LABELS, dual_lr=2.0),
        "p_at_r": lambda: goloss.PrecisionAtRecallLoss(0.9, LABELS, dual_lr=2.0),
        "r_at_p_surrogate": lambda: goloss.RecallAtPrecisionLoss(0.8, LABELS, dual_lr=2.0, dual_signal="surrogate"),
        "pr_auc": lambda: goloss.PrecisionRecallAUCLoss(LABELS, num_anchors=3, dual_lr=2.0),
    }[name]().double()


def data(world_size):
    """STEPS batches of BATCH * world_size examples, the same on every rank."""
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(BATCH * world_size, 3, generator=generator, dtype=torch.float64),
             (torch.rand(BATCH * world_size, LABELS, generator=generator) < 0.3).double()) for _ in range(STEPS)]


def train(name, batches, wrap=lambda model: model):
    torch.manual_seed(1)
    model = torch.nn.Linear(3, LABELS).double()
    criterion = make_loss(name)
    trained = wrap(model)
    optimizer = torch.optim.SGD([*model.parameters(), *criterion.parameters()], lr=0.3)
    for x, y in batches:
        loss = criterion(trained(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        criterion.dual_step()
    return {"model": model.state_dict(), "loss": criterion.state_dict()}


CALIBRATION_ROWS = (13, 7)  # unequal per-rank sizes of the calibration set


def calibration_set():
    """``(logits [20, LABELS], labels, weights)``: the whole set; rank r holds its share of the rows."""
    generator = torch.Generator().manual_seed(2)
    rows = sum(CALIBRATION_ROWS)
    labels = (torch.rand(rows, LABELS, generator=generator) < 0.5).double()
    logits = (torch.randn(rows, LABELS, generator=generator, dtype=torch.float64) + labels).round(decimals=1)
    return logits, labels, torch.rand(rows, generator=generator, dtype=torch.float64)


def calibrate(logits, labels, weights):
    criterion = goloss.RecallAtPrecisionLoss(torch.tensor([0.6, 0.7]), LABELS).double()
    criterion.calibrate(logits, labels, weights)
    return criterion.threshold


def main(out):
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    local = [(x[rank * BATCH:(rank + 1) * BATCH], y[rank * BATCH:(rank + 1) * BATCH]) for x, y in data(world)]
    ddp = lambda model: torch.nn.parallel.DistributedDataParallel(model)  # noqa: E731
    results = {name: train(name, local, ddp) for name in NAMES}

    x, y = data(world)[0]
    logits = x[rank * BATCH:(rank + 1) * BATCH, :LABELS].clone().requires_grad_()
    roc = goloss.ROCAUCLoss(reduction="none", cross_rank=True)(logits, y[rank * BATCH:(rank + 1) * BATCH])
    roc.sum().backward()
    results["roc"] = {"loss": roc.detach(), "grad": logits.grad}
    start = sum(CALIBRATION_ROWS[:rank])
    share = slice(start, start + CALIBRATION_ROWS[rank])
    results["threshold"] = calibrate(*(tensor[share] for tensor in calibration_set()))
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    dist.barrier()  # no rank tears gloo down while another still uses it
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
