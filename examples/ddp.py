"""Distributed training with a global-objectives loss: DistributedDataParallel on CPU (gloo).

Run with two processes on one machine:

    torchrun --nproc_per_node 2 examples/ddp.py            # add --quick for a smoke run

Each rank trains on its own shard of scikit-learn's bundled digits data ("is it a 9?", about
10% positives) with ``goloss.RecallAtPrecisionLoss``. Under ``torch.distributed`` the loss
module sums the label-prior counts and averages the multipliers' gradient over the ranks, so
every rank ends with the same multipliers and priors; the model is wrapped in DDP as usual.
"""

from __future__ import annotations

import argparse
import datetime

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from sklearn.metrics import precision_score, recall_score
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import goloss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-precision", type=float, default=0.9)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="a few epochs, for a smoke test")
    args = parser.parse_args()
    epochs = 3 if args.quick else args.epochs

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same initial model on every rank

    digits = load_digits()
    x, y = digits.data / 16.0, (digits.target == 9).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    x_train, y_train = torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train)
    dataset = torch.utils.data.TensorDataset(x_train, y_train)
    sampler = torch.utils.data.distributed.DistributedSampler(dataset, num_replicas=world, rank=rank, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=128, sampler=sampler, drop_last=True)

    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(64, 1))
    criterion = goloss.RecallAtPrecisionLoss(target_precision=args.target_precision, dual_lr=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    for epoch in tqdm(range(epochs), desc=f"rank {rank}", disable=rank != 0):
        sampler.set_epoch(epoch)
        for inputs, labels in loader:
            loss = criterion(model(inputs).squeeze(-1), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            criterion.dual_step()  # the multipliers' gradient is averaged over the ranks first

    state = torch.stack([criterion.lambdas[0], criterion.current_label_priors()[0]])
    states = [torch.zeros_like(state) for _ in range(world)]
    dist.all_gather(states, state)
    if rank == 0:
        with torch.no_grad():
            predicted = (model(torch.tensor(x_test, dtype=torch.float32)).squeeze(-1) > 0).numpy()
        for other, (lam, prior) in enumerate(states):
            print(f"rank {other}: lambda {lam:.4f}  label prior {prior:.4f}")
        print(f"held-out precision {precision_score(y_test, predicted, zero_division=0):.3f} "
              f"(target {args.target_precision}), recall {recall_score(y_test, predicted):.3f}")
    dist.barrier()  # no rank tears gloo down while another still uses it
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
