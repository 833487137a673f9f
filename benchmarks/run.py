"""Forward+backward cost of each goloss loss as a ratio to binary_cross_entropy_with_logits.

Run from the repository root: ``python -m benchmarks.run`` (``--quick`` for a seconds-long smoke
run, ``--device cuda`` on a GPU). Every figure is measured in this one process run: the median
of ``--repeats`` timed runs after warm-up, divided by the median time of BCE forward+backward on
the same number of elements (B*L for the rate losses and ROC-AUC, B*L*A for PR-AUC). The
``literal`` column is the same ratio for the literal translation in ``benchmarks/literal.py``.
Peak extra memory is the rise of the peak RSS during one call, measured in a fresh child process
once its inputs exist (CPU), or ``torch.cuda.max_memory_allocated`` (CUDA).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch

import goloss
from benchmarks import literal


def timed(fn, device, repeats):
    def once():
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(2):
        once()
    return statistics.median(once() for _ in range(repeats))


def peak_extra_bytes(name, batch, labels, anchors, device):
    """Peak memory of one goloss forward+backward beyond its inputs."""
    if device == "cuda":
        fn = dict((case[0], case[2]) for case in cases(batch, labels, anchors, device))[name]
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        return torch.cuda.max_memory_allocated() - base
    command = [sys.executable, "-m", "benchmarks.run", "--peak-child", name, str(batch), str(labels), str(anchors)]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def _peak_child(name, batch, labels, anchors):
    fn = dict((case[0], case[2]) for case in cases(batch, labels, anchors, "cpu"))[name]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)


def cases(batch, labels, anchors, device):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, labels, generator=generator).to(device).requires_grad_()
    y = (torch.rand(batch, labels, generator=generator) < 0.2).float().to(device)
    lam = torch.ones(labels, device=device, requires_grad=True)
    lam_a = torch.ones(labels, anchors, device=device, requires_grad=True)
    bias = torch.zeros(labels, anchors, device=device, requires_grad=True)

    def backward(loss_and_aux):
        loss, aux = loss_and_aux
        (loss.sum() + sum(v.sum() for v in aux.values() if torch.is_tensor(v))).backward()

    targets = {
        "recall_at_precision_loss": "target_precision",
        "precision_at_recall_loss": "target_recall",
        "false_positive_rate_at_true_positive_rate_loss": "target_rate",
        "true_positive_rate_at_false_positive_rate_loss": "target_rate",
    }
    for name, target in targets.items():
        fn = getattr(goloss, name)
        yield (name, batch * labels,
               lambda fn=fn, target=target: backward(fn(None, lam, x, y, **{target: 0.8})),
               lambda: backward((lambda r: (r[0], dict(enumerate(r[1]))))(literal.recall_at_precision_loss(lam, x, y, 0.8))))
    yield ("precision_recall_auc_loss", batch * labels * anchors,
           lambda: backward(goloss.precision_recall_auc_loss({"biases": bias}, lam_a, x, y, num_anchors=anchors)),
           lambda: backward((lambda r: (r[0], dict(enumerate(r[1]))))(literal.precision_recall_auc_loss(bias, lam_a, x, y, anchors))))


def bce_backward(elements, device):
    x = torch.randn(elements, device=device, requires_grad=True)
    y = (torch.rand(elements, device=device) < 0.2).float()
    return lambda: literal.bce(x, y).sum().backward()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--peak-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        name, *numbers = args.peak_child
        return _peak_child(name, *map(int, numbers))
    sizes = [(512, 4)] if args.quick else [(2**20, 1), (4096, 100)]
    repeats = 1 if args.quick else args.repeats
    anchors = 20
    print(f"goloss {goloss.__version__}, torch {torch.__version__}, device {args.device}, "
          f"threads {torch.get_num_threads()}, median of {repeats} after warm-up, float32")
    header = f"{'loss':48s} {'B':>8s} {'L':>4s} {'elements':>10s} {'goloss/BCE':>11s} {'literal/BCE':>12s} {'peak MiB':>9s}"
    print(header)
    print("-" * len(header))
    for batch, labels in sizes:
        bce_times = {}
        for name, elements, ours, baseline in cases(batch, labels, anchors, args.device):
            if elements not in bce_times:
                bce_times[elements] = timed(bce_backward(elements, args.device), args.device, repeats)
            ratio = timed(ours, args.device, repeats) / bce_times[elements]
            literal_ratio = timed(baseline, args.device, repeats) / bce_times[elements]
            peak = peak_extra_bytes(name, batch, labels, anchors, args.device) / 2**20
            print(f"{name:48s} {batch:8d} {labels:4d} {elements:10d} {ratio:11.2f} {literal_ratio:12.2f} {peak:9.1f}")


if __name__ == "__main__":
    main()
