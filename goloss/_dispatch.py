"""The one place that decides a code path, and the only file that touches private torch API.

Every branch of goloss on *how* to compute (never *what*) asks one of these:

- :func:`compiling`: inside ``torch.compile``. Custom autograd Functions with a ``jvp`` cannot
  be traced, so the plain expressions run and the compiler fuses them.
- :func:`under_transform`: inside a ``torch.func`` transform (``grad``, ``vmap``, ``jacrev``,
  ...). A value cannot steer Python there, so value checks are skipped, and a transform may
  batch an input but not a fresh temporary, so nothing is written in place.
- :func:`plain_eager`: neither: in-place updates of fresh temporaries are safe, value checks run.
- :func:`use_kernel`: a custom autograd Function (a "kernel") rather than plain ops: in eager
  mode and under transforms, for inputs of more than :data:`SMALL` elements (below that a few
  plain ops cost less than a Function's node).

Private API, each with a public fallback that ``tests/test_dispatch.py`` runs:

- ``torch._C._functorch.maybe_current_level`` tells whether a transform is active. Fallback
  (a torch without it): assume one may be, so nothing is written in place and the value checks
  are skipped.
- ``Function.apply``'s C entry point skips the per-call ``inspect`` binding of the arguments
  (about 25 us, most of a small batch's cost on the CPU). Fallback: ``Function.apply``.
- ``Tensor._version`` counts in-place changes (an optimizer step) without reading a value from
  the device. Fallback: None, and the caller compares values instead.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

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


def compiling() -> bool:
    """Inside ``torch.compile`` (Dynamo tracing)."""
    return torch.compiler.is_compiling()


def under_transform() -> bool:
    """Inside a ``torch.func`` transform (True when it cannot be told: the safe answer)."""
    if compiling():
        return False
    return _current_level is None or _current_level() is not None


def plain_eager() -> bool:
    """Plain eager mode: no compilation and no ``torch.func`` transform."""
    return not compiling() and not under_transform()


def in_place_in_backward() -> bool:
    """In a Function's backward: fresh temporaries may be worked in place, unless a graph of the
    backward itself is being recorded (``create_graph=True``, for double backward)."""
    return plain_eager() and not torch.is_grad_enabled()


def use_kernel(x: torch.Tensor) -> bool:
    """Whether a custom autograd Function computes on ``x`` (not compiling, more than :data:`SMALL`
    elements) rather than plain ops."""
    return not compiling() and x.numel() > SMALL


def apply(function: Any, *args: Any) -> Any:
    """``function.apply(*args)`` (arguments positional only), without ``apply``'s per-call
    argument binding in plain eager mode."""
    if _c_apply is None or not plain_eager():
        return function.apply(*args)
    return _c_apply.__get__(None, function)(*_unwrap_dead_wrappers(args))


def version(tensor: torch.Tensor) -> Optional[int]:
    """The in-place version counter of ``tensor`` (no device read), or None where not available."""
    return getattr(tensor, "_version", None)
