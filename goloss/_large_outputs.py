"""Fresh large CPU outputs backed by transparent huge pages (Linux).

glibc serves an allocation over its largest mmap threshold (32 MiB on 64-bit) from a fresh
``mmap`` on every call, and the kernel then faults its pages in one 4 KiB page at a time, each
zeroed: writing a fresh 64 MiB output costs about three times writing a reused one. Where the
kernel offers transparent huge pages on request (``/sys/kernel/mm/transparent_hugepage/enabled``
is ``always`` or ``madvise``), advising the output's 2 MiB-aligned span as ``MADV_HUGEPAGE``
before it is written makes those faults 2 MiB each. This is what PyTorch does for every
allocation when the process starts with ``THP_MEM_ALLOC_ENABLE=1``; here it applies to the one
output that needs it, a ``vmap`` over targets of ``reduction="none"`` (``[K, B, L]``).

Measured gain (2026-12-07, 2 threads, ``benchmarks.module_rows.vmap_targets_vs_one`` at B = 2^20,
K = 16, with :data:`LARGE_BYTES` as is and raised out of reach in the same process, three runs):
the sweep's forward+backward 1.65x faster; row D of ``python -m benchmarks.run`` 2.52-2.57x
the time of one target with it, 4.15-4.22x without (its bound is 4).
"""

from __future__ import annotations

import ctypes
import sys

import torch

#: Outputs from this size on (glibc's largest mmap threshold) come from a fresh mapping.
LARGE_BYTES = 32 << 20
HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14


def _load_madvise():
    if sys.platform != "linux":
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _load_madvise()


def empty_output(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.empty(shape)``, contiguous; on a Linux CPU and from :data:`LARGE_BYTES` on, a view of
    a buffer one huge page larger whose aligned span is advised for huge pages (where refused,
    ordinary pages: the advice changes speed only)."""
    nbytes = dtype.itemsize
    for size in shape:
        nbytes *= size
    if _madvise is None or torch.device(device).type != "cpu" or nbytes < LARGE_BYTES:
        return torch.empty(shape, dtype=dtype, device=device)
    raw = torch.empty(nbytes + HUGE_PAGE, dtype=torch.uint8)
    address = raw.data_ptr()
    start = -(-address // HUGE_PAGE) * HUGE_PAGE
    _madvise(start, (address + raw.numel() - start) // HUGE_PAGE * HUGE_PAGE, _MADV_HUGEPAGE)
    offset = start - address
    return raw[offset:offset + nbytes].view(dtype).view(shape)
