"""Distributed training with a global-objectives loss: DistributedDataParallel on CPU (gloo).

Run with two processes on one machine, either way:

    python examples/ddp.py                                  # starts its 2 CPU processes itself
    torchrun --nproc_per_node 2 examples/ddp.py            # the usual launcher
    python examples/ddp.py --quick                          # smoke run, a few epochs

Without torchrun (no ``RANK`` / ``WORLD_SIZE`` in the environment) the script spawns
``--nproc`` processes itself with ``torch.multiprocessing.spawn`` and a gloo group on
127.0.0.1 at a free port; under torchrun it joins the group torchrun set up.

Each rank trains on its own shard of scikit-learn's bundled digits data ("is it a 9?", about
10% positives) with ``goloss.RecallAtPrecisionLoss``. Under ``torch.distributed`` the loss
module sums the label-prior counts and averages the multipliers' gradient over the ranks, so
every rank ends with the same multipliers and priors; the model is wrapped in DDP as usual.
Rank 0 evaluates on the held-out split with torchmetrics: precision and recall at the model's
own threshold (logit 0), the best recall at precision >= the target, and average precision.
"""

from __future__ import annotations

import argparse
import os
import socket

SMOKE_LINE = "smoke run: --quick trains for a few epochs only; the numbers below are not the results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-precision", type=float, default=0.9, help="target precision (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=150, help="training epochs (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="per rank; the strict signal needs a few dozen positives per step over the ranks "
                             "(default %(default)s)")
    parser.add_argument("--nproc", type=int, default=2, help="processes to spawn without torchrun (default 2)")
    parser.add_argument("--quick", action="store_true", help="a few epochs, for a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = 60
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int | None, args: argparse.Namespace, port: int | None) -> None:
    """One rank: ``rank`` and ``port`` come from ``spawn``, or both are None under torchrun."""
    import datetime

    import torch
    import torch.distributed as dist
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from tqdm import tqdm

    import goloss

    timeout = datetime.timedelta(seconds=120)
    if port is None:  # torchrun: RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT are in the environment
        dist.init_process_group("gloo", timeout=timeout)
    else:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=args.nproc, timeout=timeout)
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same initial model on every rank

    digits = load_digits()
    x, y = digits.data / 16.0, (digits.target == 9).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    x_train, y_train = torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train)
    dataset = torch.utils.data.TensorDataset(x_train, y_train)
    sampler = torch.utils.data.distributed.DistributedSampler(dataset, num_replicas=world, rank=rank, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)

    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(64, 1))
    criterion = goloss.RecallAtPrecisionLoss(target_precision=args.target_precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    for epoch in tqdm(range(args.epochs), desc=f"rank {rank}", disable=rank != 0):
        sampler.set_epoch(epoch)
        for inputs, labels in loader:
            loss = criterion(model(inputs).squeeze(-1), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            criterion.dual_step()  # the strict signal comes from counts summed over the ranks

    state = torch.stack([criterion.lambdas[0], criterion.current_label_priors()[0]])
    states = [torch.zeros_like(state) for _ in range(world)]
    dist.all_gather(states, state)
    if rank == 0:
        from torchmetrics.functional.classification import (
            binary_average_precision,
            binary_precision,
            binary_recall,
            binary_recall_at_fixed_precision,
        )

        with torch.no_grad():
            logits = model(torch.tensor(x_test, dtype=torch.float32)).squeeze(-1).double()
        probs, truth = torch.sigmoid(logits), torch.tensor(y_test).long()
        if args.quick:
            print(SMOKE_LINE)
        for other, (lam, prior) in enumerate(states):
            print(f"rank {other}: lambda {lam:.4f}  label prior {prior:.4f}")
        recall_at_target, _ = binary_recall_at_fixed_precision(probs, truth, min_precision=args.target_precision)
        print(f"held-out precision {binary_precision(probs, truth):.3f} "
              f"(target {args.target_precision}), recall {binary_recall(probs, truth):.3f} (at logit 0)")
        print(f"held-out best recall at precision >= {args.target_precision}: {recall_at_target:.3f}; "
              f"average precision {binary_average_precision(probs, truth):.3f}", flush=True)
    dist.barrier()  # no rank tears gloo down while another still uses it
    dist.destroy_process_group()


def main(argv=None) -> None:
    args = parse_args(argv)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # launched by torchrun
        worker(None, args, None)
        return
    spawn(worker, args.nproc, args, free_port())


def spawn(fn, nprocs: int, *args) -> None:
    """Run ``fn(rank, *args)`` in ``nprocs`` fresh processes; exit non-zero if one fails.

    ``torch.multiprocessing.spawn`` does the same; the standard library's spawn context keeps
    this parent process from importing torch, so the workers start a few seconds sooner.
    """
    import multiprocessing
    import sys
    import time

    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=fn, args=(rank, *args)) for rank in range(nprocs)]
    for process in processes:
        process.start()
    while any(process.is_alive() for process in processes):
        if any(process.exitcode not in (None, 0) for process in processes):
            for process in processes:  # a failed rank would leave the others waiting in a collective
                process.terminate()
            break
        time.sleep(0.1)
    for process in processes:
        process.join()
    failed = [rank for rank, process in enumerate(processes) if process.exitcode != 0]
    if failed:
        sys.exit(f"rank(s) {failed} failed")


if __name__ == "__main__":
    main()
