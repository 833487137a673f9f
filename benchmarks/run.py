"""Forward+backward cost of each goloss loss as a ratio to binary_cross_entropy_with_logits.

Run from the repository root: ``python -m benchmarks.run`` (``--quick`` for a seconds-long smoke
run, ``--device cuda`` on a GPU, ``--no-compile`` to skip torch.compile, ``--only loss`` or
``--only module`` for one of the two tables, ``--threads 1 --clock cpu`` to time this process's CPU
time, robust to other processes on a shared machine). The second table, "module and small-batch rows"
(``benchmarks/module_rows.py``), holds the acceptance ratios of the modules, ``reduction="none"``,
a vmap over targets and a small-MLP training step, each with the spread of its ratios. Every figure is
measured in this one process run: the median of ``--repeats`` timed runs after warm-up, divided
by the median time of BCE forward+backward on the same number of elements (B*L for the rate
losses and ROC-AUC, B*L*A for PR-AUC), both with ``reduction="mean"`` as in training; the loss
call computes its aux (bounds, priors) too. The ``literal`` column is the same ratio for the
literal translation of the original formulas in ``benchmarks/literal.py``. Peak extra memory
is measured in a fresh child process: the peak-RSS counter (VmHWM) is reset through
``/proc/self/clear_refs`` once the inputs exist, with glibc told to map blocks of 128 KiB or
more directly so that freed memory leaves the process (CPU), or
``torch.cuda.max_memory_allocated`` (CUDA).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

import goloss
from benchmarks import literal, module_rows, pages

TARGETS = {
    "recall_at_precision_loss": "target_precision",
    "precision_at_recall_loss": "target_recall",
    "false_positive_rate_at_true_positive_rate_loss": "target_rate",
    "true_positive_rate_at_false_positive_rate_loss": "target_rate",
}
PR_AUC, ROC_HINGE, ROC_XENT = "precision_recall_auc_loss", "roc_auc_loss (hinge)", "roc_auc_loss (xent)"


def timed(fn, device, repeats, warmup=2):
    now = module_rows.CLOCK["now"]

    def once():
        start = now()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return now() - start

    for _ in range(warmup):
        once()
    return statistics.median(once() for _ in range(repeats))


def timed_ratio(fn, baseline, device, repeats):
    """Median over ``repeats`` of time(fn) / time(baseline), the two timed back to back, so that
    the load of a shared machine affects both sides of each ratio alike."""
    timed(fn, device, 1)
    timed(baseline, device, 1)
    return statistics.median(
        timed(fn, device, 1, warmup=0) / timed(baseline, device, 1, warmup=0) for _ in range(repeats)
    )


def objective(name, anchors):
    """``f(x, y, lam, bias) -> loss``: the mean-reduced goloss loss (its aux is computed too)."""

    def f(x, y, lam, bias):
        if name == PR_AUC:
            return goloss.precision_recall_auc_loss({"biases": bias}, lam, x, y, num_anchors=anchors, reduction="mean")[0]
        if name in (ROC_HINGE, ROC_XENT):
            return goloss.roc_auc_loss(None, None, x, y, surrogate_type=name[14:-1], reduction="mean")[0]
        return getattr(goloss, name)(None, lam, x, y, **{TARGETS[name]: 0.8}, reduction="mean")[0]

    return f


def literal_objective(name, anchors):
    def f(x, y, lam, bias):
        if name == PR_AUC:
            return literal.precision_recall_auc_loss(bias, lam, x, y, anchors)[0].mean()
        if name in (ROC_HINGE, ROC_XENT):
            return literal.roc_auc_loss(x, y, name[14:-1]).mean()
        return literal.rate_loss(name, lam, x, y, 0.8)[0].mean()

    return f


def inputs(name, batch, labels, anchors, device):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, labels, generator=generator).to(device).requires_grad_()
    y = (torch.rand(batch, labels, generator=generator) < 0.2).float().to(device)
    shape = (labels, anchors) if name == PR_AUC else (labels,)
    lam = torch.ones(shape, device=device, requires_grad=True)
    bias = torch.zeros(labels, anchors, device=device, requires_grad=True)
    return x, y, lam, bias


def step(f, args):
    return lambda: f(*args).backward()


def bce_step(elements, device, compiled=False):
    x = torch.randn(elements, device=device, requires_grad=True)
    y = (torch.rand(elements, device=device) < 0.2).float()
    f = torch.nn.functional.binary_cross_entropy_with_logits
    if compiled:
        f = torch.compile(f)
    return step(f, (x, y))


def peak_extra_bytes(name, batch, labels, anchors, device):
    """Peak memory of one goloss forward+backward beyond its inputs (bytes)."""
    if device == "cuda":
        run = step(objective(name, anchors), inputs(name, batch, labels, anchors, device))
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        return torch.cuda.max_memory_allocated() - base
    command = [sys.executable, "-m", "benchmarks.run", "--peak-child", name, str(batch), str(labels), str(anchors)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    return int(subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout)


def _rss(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def _peak_child(name, batch, labels, anchors):
    run = step(objective(name, anchors), inputs(name, batch, labels, anchors, "cpu"))
    run()  # warm-up: lazy initialisation is not the loss's memory
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current RSS
    base = _rss("VmRSS")
    run()
    print(max(_rss("VmHWM") - base, 0))


def target_sweep_ratio(batch, count, device, repeats):
    """Time of one vmapped call over ``count`` target precisions / time of one call (R@P)."""
    x, y, lam, _ = inputs("recall_at_precision_loss", batch, 1, 1, device)

    def one(target, lam):
        return goloss.recall_at_precision_loss(None, lam, x, y, target_precision=target, reduction="mean")[0]

    targets = torch.linspace(0.5, 0.95, count, device=device)
    lams = torch.ones(count, 1, device=device, requires_grad=True)
    single = timed(lambda: one(targets[0], lam).backward(), device, repeats)
    swept = timed(lambda: torch.func.vmap(one)(targets, lams).sum().backward(), device, repeats)
    return swept / single


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat, no compile: a smoke run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--only", choices=("loss", "module"), help="run only the loss table or only the module table")
    parser.add_argument("--min-time", type=float, default=None,
                        help="module table: least seconds of baseline calls per timed sample "
                             "(default 0.05; quick 0.002)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads(THREADS) first (default: torch's choice)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time with perf_counter (wall, default) or process_time (cpu: this process's CPU "
                             "time, robust to other processes on a loaded machine; CPU device, best with --threads 1)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables as a Markdown page (e.g. "
                        "docs/results/speed.md), stamped with the commit and the machine")
    parser.add_argument("--peak-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if args.device != "cpu":
            parser.error("--clock cpu measures CPU time: use it with --device cpu")
        module_rows.CLOCK["now"] = time.process_time
    if args.peak_child:
        name, *numbers = args.peak_child
        return _peak_child(name, *map(int, numbers))
    anchors = 20
    if args.quick:
        rows = [(name, 512, 4) for name in [*TARGETS, PR_AUC]] + [(ROC_HINGE, 512, 1), (ROC_XENT, 512, 1)]
    else:
        rows = ([(name, 2**20, 1) for name in [*TARGETS, PR_AUC, ROC_HINGE]]
                + [(name, 4096, 100) for name in [*TARGETS, PR_AUC]] + [(ROC_XENT, 32768, 1)])
    repeats = 1 if args.quick else args.repeats
    compiled = not (args.quick or args.no_compile)
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    with pages.markdown_page(args.markdown, "Speed: goloss against BCE", command.strip()):
        tables(args, rows, anchors, repeats, compiled)


def tables(args, rows, anchors, repeats, compiled):
    print(f"goloss {goloss.__version__}, torch {torch.__version__}, device {args.device}, "
          f"threads {torch.get_num_threads()}, clock {args.clock}, median of {repeats} back-to-back ratios "
          "after warm-up, float32, reduction='mean'")
    if args.only != "module":
        loss_table(args, rows, anchors, repeats, compiled)
    if args.only != "loss":
        min_time = args.min_time if args.min_time is not None else (0.002 if args.quick else 0.05)
        module_rows.print_table(args.device, args.quick, 3 if args.quick else args.repeats, min_time)


def loss_table(args, rows, anchors, repeats, compiled):
    print("eager / compiled / literal: forward+backward time over BCE-with-logits forward+backward on the same "
          "number of elements (compiled: torch.compile(goloss) over torch.compile(BCE)); peak: extra memory, "
          "in MiB and in float32 tensors of that many elements")
    header = (f"{'loss':48s} {'B':>8s} {'L':>4s} {'elements':>10s} {'eager':>7s} {'compiled':>9s} "
              f"{'literal':>8s} {'peak MiB':>9s} {'peak/elts':>10s}")
    print(header)
    print("-" * len(header))
    baselines = {}
    for name, batch, labels in rows:
        elements = batch * labels * (anchors if name == PR_AUC else 1)
        if elements not in baselines:
            baselines[elements] = (bce_step(elements, args.device), bce_step(elements, args.device, compiled))
        bce_eager, bce_compiled = baselines[elements]
        args_ = inputs(name, batch, labels, anchors, args.device)
        slow = name == ROC_XENT and not args.quick
        eager = timed_ratio(step(objective(name, anchors), args_), bce_eager, args.device, 3 if slow else repeats)
        fast = float("nan")
        if compiled and not slow:
            torch._dynamo.reset()
            fast = timed_ratio(step(torch.compile(objective(name, anchors)), args_), bce_compiled, args.device, repeats)
        pairs = batch * batch * labels if name in (ROC_HINGE, ROC_XENT) else 0
        baseline = (timed_ratio(step(literal_objective(name, anchors), args_), bce_eager, args.device, repeats)
                    if pairs <= 2**24 else float("nan"))  # the pairwise form needs B^2 memory
        peak = peak_extra_bytes(name, batch, labels, anchors, args.device)
        print(f"{name:48s} {batch:8d} {labels:4d} {elements:10d} {eager:7.2f} {fast:9.2f} "
              f"{baseline:8.2f} {peak / 2**20:9.1f} {peak / (4 * elements):10.2f}")
    batch, count = (512, 2) if args.quick else (2**20, 16)
    ratio = target_sweep_ratio(batch, count, args.device, repeats)
    print(f"\nvmap over K = {count} target precisions (recall_at_precision_loss, B = {batch}, L = 1): "
          f"{ratio:.2f}x the time of one target")


if __name__ == "__main__":
    main()
