"""The one place that decides a code path, and the only file that touches private torch API.

Every branch of goloss on *how* to compute (never *what*) asks one of these:

- :func:`compiling`: inside ``torch.compile``: the plain expressions run and the compiler fuses
  them.
- :func:`forward_mode`: forward-mode AD may be active (``torch.func.jvp``, ``jacfwd``,
  ``torch.autograd.forward_ad``). The kernels have no ``jvp`` rule, so the plain expressions run.
- :func:`under_transform`: inside a ``torch.func`` transform (``grad``, ``vmap``, ``jacrev``,
  ...). A value cannot steer Python there, so value checks are skipped, and a transform may
  batch an input but not a fresh temporary, so nothing is written in place.
- :func:`plain_eager`: neither: in-place updates of fresh temporaries are safe, value checks run.
- :func:`use_kernel`: a custom autograd Function (a "kernel") rather than plain ops + autograd:
  not while compiling, and only where ``python -m benchmarks.functions`` measured it at least
  1.3x faster (:data:`KERNELS`).

Private API, each with a public fallback that ``tests/test_dispatch.py`` runs:

- ``torch._C._functorch.maybe_current_level`` tells whether a transform is active. Fallback
  (a torch without it): assume one may be, so nothing is written in place and the value checks
  are skipped.
- ``Function.apply``'s C entry point skips the per-call ``inspect`` binding of the arguments
  (about 25 us, most of a small batch's cost on the CPU). Fallback: ``Function.apply``.
- ``torch.autograd.forward_ad._current_level`` (>= 0 inside a forward-mode level, of
  ``torch.func.jvp`` too) tells whether forward-mode AD may be active. Fallback: assume it may
  be, so no kernel runs.
- ``Tensor._version`` counts in-place changes (an optimizer step) without reading a value from
  the device. Fallback: None, and the caller compares values instead.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional
from collections.abc import Callable

import torch
import torch.autograd.forward_ad as forward_ad

#: Inputs up to this many elements are "small": per-call overhead, not passes over memory,
#: dominates, so a few plain ops beat a custom Function (and its node).
SMALL = 1 << 16

try:
    _current_level: Optional[Callable[[], Optional[int]]] = torch._C._functorch.maybe_current_level
except AttributeError:  # pragma: no cover - exercised by monkeypatching in the tests
    _current_level = None

try:
    from torch._functorch.utils import unwrap_dead_wrappers as _unwrap_dead_wrappers

    _c_apply: Any = torch._C._FunctionBase.__dict__["apply"]
except (ImportError, AttributeError, KeyError):  # pragma: no cover - another torch release
    _c_apply = None


def small(x: torch.Tensor) -> bool:
    """At most :data:`SMALL` elements: per-op overhead dominates, so fewer ops beat fewer passes."""
    return x.numel() <= SMALL


def compiling() -> bool:
    """Inside ``torch.compile`` (Dynamo tracing)."""
    return torch.compiler.is_compiling()


def under_transform() -> bool:
    """Inside a ``torch.func`` transform (True when it cannot be told: the safe answer)."""
    if compiling():
        return False
    return _current_level is None or _current_level() is not None


def forward_mode() -> bool:
    """Forward-mode AD may be active (True when it cannot be told: the safe answer)."""
    return getattr(forward_ad, "_current_level", 0) >= 0


def plain_eager() -> bool:
    """Plain eager mode: no compilation and no ``torch.func`` transform."""
    return not compiling() and not under_transform()


def in_place_in_backward() -> bool:
    """In a Function's backward: fresh temporaries may be worked in place, unless a graph of the
    backward itself is being recorded (``create_graph=True``, for double backward)."""
    return plain_eager() and not torch.is_grad_enabled()


def multiply_in_place(x: torch.Tensor, *weights: torch.Tensor) -> bool:
    """Whether a fresh ``[B, L]`` tensor computed from ``x`` may be multiplied by ``weights`` in
    place before its sum over the batch: several labels (one label sums with a dot product and no
    product tensor at all), plain eager mode (a transform may batch the weights but not the fresh
    tensor), and every weight of ``x``'s shape."""
    return x.dim() == 2 and x.shape[1] > 1 and plain_eager() and all(w.shape == x.shape for w in weights)


class Kernel(NamedTuple):
    """Where a kernel runs: from ``fewest`` elements, for hinge too if ``hinge``; with one label
    from ``fewest_one_label`` elements instead (None: ``fewest``)."""

    fewest: int
    hinge: bool
    fewest_one_label: Optional[int] = None


#: Where each kernel runs: where it measured faster than its plain reference by at least 1.3x
#: (``python -m benchmarks.functions``, one thread, plain time / kernel time; the run quoted in
#: docs/performance.md). The sums, cross-entropy: with several labels 1.42-1.64x from 2^17
#: elements in 15 of 17 runs, 1.26x and 1.34x in two (B x L = 16384 x 8, 131072 x 8, 4096 x 100);
#: with one label 1.43-1.58x at 2^20 and 1.17-1.40x at 2^17; hinge 0.6-0.8x. The rows,
#: cross-entropy, at 2^20: 1.58x (one label) and 1.35x (eight); 1.07-1.19x at 2^17 and 0.5-0.8x
#: below; hinge 0.5-0.9x. The anchor sum, cross-entropy / hinge: 2.13x / 1.79x at 2^19.3 and
#: 3.4x / 1.9x at 2^22.3 elements, with 64-100x less memory kept for backward; 1.21x / 1.07x at
#: 2^16.3. The blocked ROC-AUC form always runs: 1.39x at B = 1024 and 4.6x at 4096, and the
#: pairwise form keeps B^2 pair values for backward.
KERNELS = {
    "sums": Kernel(1 << 17, hinge=False, fewest_one_label=1 << 20),
    "rows": Kernel(1 << 20, hinge=False),
    "anchor_sum": Kernel(1 << 17, hinge=True),
}


def use_kernel(kernel: str, x: torch.Tensor, hinge: bool, per_element: int = 1) -> bool:
    """Whether ``kernel`` (a key of :data:`KERNELS`) computes on logits ``x`` (``[B]`` or
    ``[B, L]``; times ``per_element``: the anchors of PR-AUC) with the ``hinge`` or cross-entropy
    surrogate, rather than plain ops: never while compiling (the compiler fuses the plain ops) nor
    under forward-mode AD (the kernels have no ``jvp``)."""
    fewest, hinge_too, fewest_one_label = KERNELS[kernel]
    if fewest_one_label is not None and (x.dim() == 1 or x.shape[-1] == 1):
        fewest = fewest_one_label
    return (not compiling() and x.numel() * per_element >= fewest and (hinge_too or not hinge)
            and not forward_mode())


def apply(function: Any, *args: Any) -> Any:
    """``function.apply(*args)`` (arguments positional only), without ``apply``'s per-call
    argument binding in plain eager mode."""
    if _c_apply is None or not plain_eager():
        return function.apply(*args)
    return _c_apply.__get__(None, function)(*_unwrap_dead_wrappers(args))


def version(tensor: torch.Tensor) -> Optional[int]:
    """The in-place version counter of ``tensor`` (no device read), or None where not available."""
    return getattr(tensor, "_version", None)
