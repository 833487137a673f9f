"""Does each custom autograd Function in goloss earn its place? Each against the same computation
written as plain torch ops + autograd, forward+backward, at the sizes where the library uses it.

Run from the repository root: ``python -m benchmarks.functions`` (``--quick`` for a seconds-long
smoke run at tiny sizes, ``--threads N`` for ``torch.set_num_threads``, default 1, ``--repeats``).

* SurrogateSums (the ``reduction="mean"/"sum"`` sums) against ``plain_surrogate_sums``;
  c = y, d None (``1 - y``, as for unweighted labels); loss ``(S+ - S-/2).sum()``.
* SurrogateRows (``reduction="none"``) against ``plain_surrogate_rows``; c = y, d and mask None,
  alpha, beta, gamma ``[L]`` without gradient; loss ``rows.mean()``.
* AnchorSum (PR-AUC) against ``plain_anchor_sum``; biases, lambdas ``[L, A]`` and logits with
  gradient; loss ``g.mean()``.
* blocked_xent_roc_auc against ``pairwise_roc_auc(x, y, w, "xent")``; loss ``mean()``.

Both sides are the library's own: each kernel's plain reference lives beside it and is the
oracle of its tests. The Functions are called as the library calls them
(``goloss._dispatch.apply``). ``goloss._dispatch.KERNELS`` records where this measured them at
least 1.3x faster. Each case first checks that both sides agree (outputs and
gradients). Time: this process's CPU time (``time.process_time``, which sums the CPU time of all
threads), each sample N back-to-back forward+backward calls (gradients by ``torch.autograd.grad``)
with N chosen so that the plain side takes at least ``--min-time`` seconds; the ratio is
time(plain) / time(Function), so above 1 the Function is faster: the median of ``--repeats``
back-to-back ratios, with their min-max. Memory: the MiB saved for backward, counted once per
distinct storage through ``torch.autograd.graph.saved_tensors_hooks`` and leaving out the inputs'
storages (which live anyway): the memory held between forward and backward. It is deterministic;
it is not the transient peak inside forward or backward.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from goloss._anchor_sum import AnchorSum, plain_anchor_sum
from goloss._dispatch import apply as apply_function
from goloss._roc_auc import blocked_xent_roc_auc, pairwise_roc_auc
from goloss._surrogate_rows import SurrogateRows, plain_surrogate_rows
from goloss._surrogate_sums import SurrogateSums, plain_surrogate_sums

ANCHORS = 20


def _data(batch, labels, seed):
    generator = torch.Generator().manual_seed(seed)
    x = (2.0 * torch.randn(batch, labels, generator=generator)).requires_grad_()
    y = (torch.rand(batch, labels, generator=generator) < 0.3).float()
    return generator, x, y


def surrogate_sums(batch, labels, hinge):
    _, x, y = _data(batch, labels, 0)
    c = y  # unweighted labels: d = 1 - c, implicit (as the losses call it)

    def plain():
        return plain_surrogate_sums(x, c, None, hinge)

    def function():
        return apply_function(SurrogateSums, x, c, None, hinge)

    return [x], [x, c], plain, function, lambda out: (out[0] - 0.5 * out[1]).sum()


def surrogate_rows(batch, labels, hinge):
    generator, x, c = _data(batch, labels, 1)
    alpha, beta, gamma = (torch.rand(labels, generator=generator) + 0.1 for _ in range(3))

    def plain():
        return plain_surrogate_rows(x, c, None, alpha, beta, gamma, None, hinge)

    def function():
        return apply_function(SurrogateRows, x, c, None, alpha, beta, gamma, None, hinge)[:3]

    return [x], [x, c, alpha, beta, gamma], plain, function, lambda out: out[0].mean()


def anchor_sum(batch, labels, hinge):
    generator, x, y = _data(batch, labels, 2)
    w = torch.ones_like(y)
    biases = (0.5 * torch.randn(labels, ANCHORS, generator=generator)).requires_grad_()
    lambdas = torch.rand(labels, ANCHORS, generator=generator).requires_grad_()
    anchors = torch.linspace(0.1, 0.9, ANCHORS)

    def plain():
        return plain_anchor_sum(x, y, w, biases, lambdas, anchors, hinge)[:3]

    def function():
        weighted, _, positive_sums, negative_sums, *_ = apply_function(
            AnchorSum, x, y, w, biases, lambdas, anchors, hinge)
        return weighted, positive_sums, negative_sums

    return [x, biases, lambdas], [x, y, w, biases, lambdas, anchors], plain, function, lambda out: out[0].mean()


def roc_auc(batch, labels, hinge):
    _, x, y = _data(batch, labels, 3)
    w = torch.ones_like(y)
    return ([x], [x, y, w], lambda: (pairwise_roc_auc(x, y, w, "xent"),),
            lambda: (blocked_xent_roc_auc(x, y, w),), lambda out: out[0].mean())


def step(fn, loss, leaves):
    out = fn()
    return out, torch.autograd.grad(loss(out), leaves)


def seconds(fn, loss, leaves, calls):
    start = time.process_time()
    for _ in range(calls):
        step(fn, loss, leaves)
    return time.process_time() - start


def saved_mib(fn, inputs):
    """MiB of the distinct storages saved for backward by ``fn()``, other than the inputs'."""
    seen = {t.untyped_storage().data_ptr() for t in inputs}
    total = 0

    def pack(tensor):
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn()  # the graph, and so every saved tensor, lives until the count is done
    del out
    return total / 2**20


def measure(case, repeats, min_time):
    leaves, inputs, plain, function, loss = case
    for a, b in zip(step(plain, loss, leaves), step(function, loss, leaves)):  # agree (and warm up)
        for u, v in zip(a, b):  # in norm: float32 rounding differs elementwise
            assert v.shape == u.shape and (v - u).norm() <= 1e-4 * u.norm() + 1e-12, (u, v)
    calls = 1
    while (elapsed := seconds(plain, loss, leaves, calls)) < min_time:
        calls = max(2 * calls, int(1.2 * calls * min_time / max(elapsed, 1e-6)))
    seconds(function, loss, leaves, calls)
    ratios = [seconds(plain, loss, leaves, calls) / seconds(function, loss, leaves, calls) for _ in range(repeats)]
    return statistics.median(ratios), min(ratios), max(ratios), saved_mib(plain, inputs), saved_mib(function, inputs)


def cases(quick):
    """``(name, builder, batch, labels, surrogates)``."""
    if quick:
        return [("SurrogateSums", surrogate_sums, 512, 2, (False, True)),
                ("SurrogateRows", surrogate_rows, 128, 2, (False, True)),
                ("AnchorSum", anchor_sum, 64, 1, (False, True)),
                ("blocked_xent_roc_auc", roc_auc, 64, 1, (False,))]
    return ([("SurrogateSums", surrogate_sums, n // labels, labels, (False, True))
             for n in (2**17, 2**20) for labels in (1, 8)]
            + [("SurrogateSums", surrogate_sums, 4096, 100, (False,))]
            + [("SurrogateRows", surrogate_rows, n // labels, labels, (False, True))
               for n in (2**10, 2**14, 2**17, 2**20) for labels in (1, 8)]
            + [("AnchorSum", anchor_sum, batch, 1, (False, True)) for batch in (2**12, 2**15, 2**18)]
            + [("blocked_xent_roc_auc", roc_auc, batch, 1, (False,)) for batch in (2**10, 2**12)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 repeats: a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--repeats", type=int, default=7, help="back-to-back ratios per row (default 7)")
    parser.add_argument("--min-time", type=float, help="least seconds of plain calls per sample (0.05; quick 0.001)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else args.repeats
    min_time = args.min_time if args.min_time is not None else (0.001 if args.quick else 0.05)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float32, process CPU time, "
          f"median of {repeats} back-to-back ratios time(plain) / time(Function): above 1 the Function is faster")
    header = f"{'function':<28}{'size':<22}{'ratio':>7}  {'min-max':<12}{'saved MiB plain':>16}{'Function':>10}"
    print(header)
    print("-" * len(header))
    largest_roc = None
    for name, builder, batch, labels, surrogates in cases(args.quick):
        anchors = f" A={ANCHORS}" if builder is anchor_sum else ""
        for hinge in surrogates:
            ratio, low, high, plain_mib, function_mib = measure(builder(batch, labels, hinge), repeats, min_time)
            label = f"{name} ({'hinge' if hinge else 'xent'})"
            print(f"{label:<28}{f'B={batch} L={labels}{anchors}':<22}{ratio:>7.2f}  {f'{low:.2f}-{high:.2f}':<12}"
                  f"{plain_mib:>16.2f}{function_mib:>10.2f}", flush=True)
            if builder is roc_auc:
                largest_roc = (batch, plain_mib)
    if largest_roc is not None:
        batch, mib = largest_roc
        print(f"pairwise_roc_auc at B=32768 L=1 (not run): about {mib * (32768 / batch) ** 2 / 1024:.0f} GiB saved "
              f"for backward (B^2 scaling of B={batch}); blocked_xent_roc_auc saves only its inputs")


if __name__ == "__main__":
    main()
