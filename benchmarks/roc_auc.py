"""ROC-AUC per-example loss: pairwise definition vs the sorted hinge and the blocked xent forms.

Run from the repository root: ``python -m benchmarks.roc_auc`` (or ``python benchmarks/roc_auc.py``;
``--quick`` for a smoke run, ``--threads N`` to set torch's thread count).

For each form and batch size ``B`` (``L = 1``, float32, CPU), fresh child processes measure:

* ``ms``: the median wall time of forward + backward (``loss.sum().backward()``, gradients with
  respect to the logits) after one warm-up call;
* ``x BCE``: that time divided by the median forward + backward time of
  ``torch.nn.functional.binary_cross_entropy_with_logits`` on the same ``B`` elements, measured
  in the same child; ``cpu x BCE``: the same ratio of median process CPU times
  (``time.process_time``, all threads summed), less sensitive to other processes competing for
  the cores;
* ``peak MiB``: the peak extra resident memory of one forward + backward: the kernel's peak-RSS
  counter (``VmHWM``) is reset through ``/proc/self/clear_refs`` after the inputs exist and the
  warm-up's memory is freed, and compared with the RSS at that moment. glibc is told
  (``MALLOC_MMAP_THRESHOLD_``) to map every block of 128 KiB or more directly, so that freed
  tensors leave the RSS at once instead of staying in the heap. That setting slows allocation
  (a page fault per fresh block), so memory is measured in a second child, not the timed one. Where ``clear_refs`` is not
  available the figure falls back to the rise of ``ru_maxrss`` (an under-estimate if an earlier
  peak was higher).

The pairwise form is skipped where its ``[B, B]`` temporaries would need more than 4 GiB
(about eight live ``B * B`` float32 tensors in its forward + backward).

Targets: hinge at ``B = 2**20`` under 50x BCE; xent at ``B = 2**15`` under 256 MiB peak extra.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HINGE_SIZES = (2**12, 2**15, 2**20)
XENT_SIZES = (2**12, 2**15)
PAIRWISE_LIMIT_BYTES = 4 * 2**30
PAIRWISE_LIVE_PAIR_TENSORS = 8
HINGE_TARGET_RATIO = 50.0
XENT_TARGET_MIB = 256.0


def _pairwise_bytes(batch_size: int) -> int:
    return PAIRWISE_LIVE_PAIR_TENSORS * batch_size * batch_size * 4


# --------------------------------------------------------------------------- child


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _child(mode: str, form: str, batch_size: int, threads: int, repeats: int, max_seconds: float) -> dict:
    import gc

    sys.path.insert(0, ROOT)
    import torch
    import torch.nn.functional as F

    from goloss._roc_auc import blocked_xent_roc_auc, pairwise_roc_auc, sorted_hinge_roc_auc

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 1, generator=generator).requires_grad_()
    y = (torch.rand(batch_size, 1, generator=generator) < 0.3).float()
    w = torch.ones(batch_size, 1)
    functions = {
        "bce": lambda: F.binary_cross_entropy_with_logits(x, y),
        "pairwise hinge": lambda: pairwise_roc_auc(x, y, w, "hinge").sum(),
        "sorted hinge": lambda: sorted_hinge_roc_auc(x, y, w).sum(),
        "pairwise xent": lambda: pairwise_roc_auc(x, y, w, "xent").sum(),
        "blocked xent": lambda: blocked_xent_roc_auc(x, y, w).sum(),
    }

    def run(name):
        x.grad = None
        functions[name]().backward()

    def median_seconds(name, repeats):
        """Median wall and CPU (process) seconds of one forward + backward, and the run count."""
        run(name)  # warm-up
        walls, cpus = [], []
        while len(walls) < repeats and (len(walls) < 3 or sum(walls) < max_seconds):
            wall, cpu = time.perf_counter(), time.process_time()
            run(name)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        return statistics.median(walls), statistics.median(cpus), len(walls)

    if mode == "memory":
        run(form)  # warm-up before the memory measurement
        x.grad = None
        gc.collect()
        baseline = _rss_bytes()
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if _reset_peak():
            run(form)
            peak_extra, method = _peak_rss_bytes() - baseline, "VmHWM"
        else:
            run(form)
            peak_extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - maxrss_before
            method = "ru_maxrss"
        return {"peak_extra_bytes": max(0, peak_extra), "memory_method": method}
    seconds, cpu_seconds, count = median_seconds(form, repeats)
    bce_seconds, bce_cpu_seconds, _ = median_seconds("bce", max(repeats, 21))
    return {
        "form": form, "batch_size": batch_size, "seconds": seconds, "cpu_seconds": cpu_seconds,
        "repeats": count, "bce_seconds": bce_seconds, "bce_cpu_seconds": bce_cpu_seconds,
        "threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------- parent


def _measure(form: str, batch_size: int, args) -> dict:
    """Time in one fresh child, memory in another (whose malloc setting would slow the timing)."""
    measured = {}
    for mode in ("time", "memory"):
        env = dict(os.environ)
        if mode == "memory":
            env["MALLOC_MMAP_THRESHOLD_"] = "131072"
        command = [sys.executable, os.path.abspath(__file__), "--child", mode, form, str(batch_size),
                   "--threads", str(args.threads), "--repeats", str(args.repeats),
                   "--max-seconds", str(args.max_seconds)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{form} at B={batch_size} ({mode}) failed:\n{result.stderr[-2000:]}")
        measured.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return measured


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per form (fewer past --max-seconds)")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="stop timing a form after this long (>= 3 runs)")
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "FORM", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is None:
        import torch

        args.threads = torch.get_num_threads()
    if args.child:
        mode, form, batch_size = args.child
        print(json.dumps(_child(mode, form, int(batch_size), args.threads, args.repeats, args.max_seconds)))
        return 0

    hinge_sizes, xent_sizes = (HINGE_SIZES, XENT_SIZES) if not args.quick else ((2**10, 2**12), (2**10,))
    rows = []
    for surrogate, sizes, fast in (("hinge", hinge_sizes, "sorted hinge"), ("xent", xent_sizes, "blocked xent")):
        for batch_size in sizes:
            for form in (f"pairwise {surrogate}", fast):
                if form.startswith("pairwise") and _pairwise_bytes(batch_size) > PAIRWISE_LIMIT_BYTES:
                    rows.append({"form": form, "batch_size": batch_size, "skipped": True})
                    continue
                rows.append(_measure(form, batch_size, args))
                print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    print(f"torch {torch.__version__}, CPU, float32, L = 1, torch threads = {args.threads}, "
          f"os.cpu_count() = {os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    header = (f"{'form':<15}{'B':>9}{'ms':>11}{'BCE ms':>9}{'x BCE':>10}{'cpu x BCE':>11}"
              f"{'peak MiB':>10}{'runs':>6}")
    print(header)
    print("-" * len(header))
    verdicts = []
    for row in rows:
        if row.get("skipped"):
            need = _pairwise_bytes(row["batch_size"]) / 2**30
            print(f"{row['form']:<15}{row['batch_size']:>9}   skipped: needs ~{need:.0f} GiB of [B, B] temporaries")
            continue
        ratio = row["seconds"] / row["bce_seconds"]
        cpu_ratio = row["cpu_seconds"] / max(row["bce_cpu_seconds"], 1e-9)
        mib = row["peak_extra_bytes"] / 2**20
        print(f"{row['form']:<15}{row['batch_size']:>9}{row['seconds'] * 1e3:>11.2f}{row['bce_seconds'] * 1e3:>9.3f}"
              f"{ratio:>10.1f}{cpu_ratio:>11.1f}{mib:>10.1f}{row['repeats']:>6}")
        if row["form"] == "sorted hinge" and row["batch_size"] == 2**20:
            verdicts.append(f"hinge at B = 2^20 (target < {HINGE_TARGET_RATIO:.0f}x BCE): "
                            f"{ratio:.1f}x wall time, " + ("met" if ratio < HINGE_TARGET_RATIO else "NOT met")
                            + f"; {cpu_ratio:.1f}x CPU time, "
                            + ("met" if cpu_ratio < HINGE_TARGET_RATIO else "NOT met"))
        if row["form"] == "blocked xent" and row["batch_size"] == 2**15:
            verdicts.append(f"xent at B = 2^15: peak extra {mib:.1f} MiB (target < {XENT_TARGET_MIB:.0f} MiB): "
                            + ("met" if mib < XENT_TARGET_MIB else "NOT met"))
    methods = sorted({row["memory_method"] for row in rows if not row.get("skipped")})
    print(f"peak memory method: {', '.join(methods)}")
    for verdict in verdicts:
        print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
