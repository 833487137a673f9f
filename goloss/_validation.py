"""Small shared input checks and shape helpers.

Shape, dtype and Python-value checks always run (under ``torch.func`` transforms
they see the per-example shapes). Checks that read tensor *values* (labels in
[0, 1], finite logits, non-negative weights, ...) run only in plain eager mode:
they are skipped under ``torch.func`` transforms and ``torch.compile``, where a
value cannot steer Python, and :func:`set_value_checks` turns them off for speed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Optional, Union

import torch

from . import _dispatch

TensorLike = Union[torch.Tensor, float, int]

SURROGATE_TYPES = ("xent", "hinge")
REDUCTIONS = ("none", "mean", "sum")


_value_checks = {"enabled": True}
LOW_PRECISION = (torch.float16, torch.bfloat16)


def set_value_checks(enabled: bool) -> None:
    """Turn on (default) or off the eager-mode checks that read tensor values.

    They cost one pass over each input and, on a GPU, a synchronisation; they
    never run under ``torch.func`` transforms or ``torch.compile``.
    """
    _value_checks["enabled"] = bool(enabled)


def value_checks_active() -> bool:
    """True in plain eager mode with value checks enabled."""
    return _value_checks["enabled"] and _dispatch.plain_eager()


def check_values(
    name: str, tensor: torch.Tensor, expected: str, low: float | None = None, high: float | None = None
) -> None:
    """Raise ``ValueError`` if ``tensor`` has a non-finite value or one outside ``[low, high]``."""
    if not value_checks_active() or tensor.numel() == 0:
        return
    values = tensor.detach()
    smallest, largest = torch.aminmax(values)  # one pass; NaN makes both comparisons fail
    low_ok = smallest >= low if low is not None else smallest > -math.inf
    high_ok = largest <= high if high is not None else largest < math.inf
    if not bool(low_ok & high_ok):
        bad = ~torch.isfinite(values)
        if low is not None:
            bad |= values < low
        if high is not None:
            bad |= values > high
        raise ValueError(f"{name} must be {expected}, got {values[bad].flatten()[0].item()!r}")


def promote_low_precision(logits: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 logits as float32: the losses are computed (and returned) in float32,
    as ``binary_cross_entropy_with_logits`` is under autocast, so large logits cannot overflow."""
    return logits.float() if logits.dtype in LOW_PRECISION else logits


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_positive_int(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive Python integer (``bool`` is refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_number(name: str, value: object, low: float | None = None) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number (``>= low`` if given)."""
    if (
        isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
        or (low is not None and value < low)
    ):
        bound = "" if low is None else f" >= {low:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")


def check_floating(name: str, tensor: torch.Tensor) -> None:
    """Raise ``TypeError`` unless ``tensor`` is a floating-point tensor."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")


def check_unit_interval(name: str, value: TensorLike) -> None:
    """Raise ``ValueError`` if ``value`` lies outside [0, 1] (tensor values: eager mode only)."""
    if isinstance(value, torch.Tensor):
        check_values(name, value, "in [0, 1]", 0.0, 1.0)
    elif not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1] or a tensor, got {value!r}")


def as_tensor(value: TensorLike, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a tensor with the dtype and device of ``like``."""
    if isinstance(value, torch.Tensor):
        same = value.dtype == like.dtype and value.device == like.device
        return value if same else value.to(dtype=like.dtype, device=like.device)
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def broadcast_to(name: str, value: torch.Tensor, shape: tuple[int, ...], expected: str) -> torch.Tensor:
    """Broadcast ``value`` to ``shape``, or raise ``ValueError`` naming ``name``."""
    if value.shape == shape:
        return value
    # expand succeeds exactly where value broadcasts to shape. torch.broadcast_shapes costs 15-27 us
    # a call here: a function call at B = 128, L = 1 with a number as target took 525-550 us with
    # it, 453-486 us with expand (one thread, medians of 9 x 500 calls, five alternations).
    try:
        return value.expand(shape)
    except RuntimeError:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(value.shape)}") from None


def _logits_and_labels_fine(logits: torch.Tensor, labels: torch.Tensor, probes: Sequence[torch.Tensor]) -> list:
    """Whether logits are finite and labels lie in [0, 1], then the ``probes``' values, with one
    synchronisation. Small inputs: ``labels + 0 * logits**2`` (NaN where a logit is not finite)
    within 0.5 of 0.5, in three small ops; large ones: two read-only ``aminmax`` passes."""
    if _dispatch.small(logits):
        probe = torch.addcmul(labels, logits, logits, value=0.0)
        distance = torch.linalg.vector_norm(probe.sub_(0.5), math.inf)
        if not probes:
            return [distance.item() <= 0.5]  # NaN fails
        fine = distance <= 0.5
    else:
        lowest, highest = torch.aminmax(logits)
        lowest_label, highest_label = torch.aminmax(labels)
        fine = (lowest > -math.inf) & (highest < math.inf) & (lowest_label >= 0.0) & (highest_label <= 1.0)
        if not probes:
            return [bool(fine)]
    values = torch.cat([fine.to(probes[0].dtype).reshape(1), *(probe.reshape(-1) for probe in probes)]).tolist()
    return [values[0] > 0.5, *values[1:]]


def check_logits_and_labels(
    logits: torch.Tensor, labels: torch.Tensor, probes: Sequence[torch.Tensor] = ()
) -> list[float]:
    """Raise ``ValueError``, naming the culprit, unless ``logits`` are finite and ``labels`` lie in
    [0, 1] (same shapes and dtype; eager value checks only, see :func:`value_checks_active`).

    ``probes`` (tensors of one floating dtype) are read back in the same synchronisation: their
    values, flattened, are returned (nothing without value checks)."""
    if not value_checks_active():
        return []
    fine, *values = _logits_and_labels_fine(
        logits.detach(), labels.detach() if labels.requires_grad else labels, [p.detach() for p in probes])
    if not fine:
        check_values("logits", logits, "finite")
        check_values("labels", labels, "in [0, 1]", 0.0, 1.0)
    return values


def as_batch_by_label(
    logits: torch.Tensor, labels: torch.Tensor, weights: TensorLike | None, ones_for_none: bool = True,
    value_checks: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Validate and bring ``logits``, ``labels``, ``weights`` to shape ``[B, L]``.

    Args:
      logits: ``[B]`` or ``[B, L]`` floating tensor.
      labels: same shape as ``logits``; cast to the dtype of ``logits``.
      weights: None, a number, or a tensor of shape ``[]``, ``[B]``, ``[B, 1]``
        or ``[B, L]``.
      ones_for_none: for ``weights=None``, return expanded ones (True) or None.
      value_checks: False leaves :func:`check_logits_and_labels` to the caller (the weights'
        values are checked either way).

    Returns:
      ``(logits, labels, weights)``, each ``[B, L]`` (weights possibly expanded, or None).
    """
    check_floating("logits", logits)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if logits.dim() not in (1, 2) or 0 in logits.shape:
        raise ValueError(
            f"logits must have shape [B] or [B, L] with B, L >= 1, got {tuple(logits.shape)}"
        )
    if labels.shape != logits.shape:
        raise ValueError(
            f"labels must have the shape of logits {tuple(logits.shape)}, got {tuple(labels.shape)}; "
            "for a model's [B, 1] output and [B] labels use logits.squeeze(-1) (or labels.view_as(logits))"
        )
    logits = promote_low_precision(logits)
    if logits.dim() == 1:
        logits, labels = logits.unsqueeze(1), labels.unsqueeze(1)
    if labels.dtype != logits.dtype:
        labels = labels.to(logits.dtype)
    if value_checks:
        check_logits_and_labels(logits, labels)
    shape = tuple(logits.shape)
    if weights is None:  # w = 1: nothing to check
        if not ones_for_none:
            return logits, labels, None
        return logits, labels, torch.ones((), dtype=logits.dtype, device=logits.device).expand(shape)
    weights = as_tensor(weights, logits)
    if weights.dim() == 1:
        weights = weights.unsqueeze(1)
    weights = broadcast_to("weights", weights, shape, f"[], [B], [B, 1] or [B, L] with B, L = {shape}")
    check_values("weights", weights, "finite and >= 0", 0.0)
    return logits, labels, weights


def check_num_labels(x: torch.Tensor, num_labels: int, logits: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``[B, L]`` logits ``x`` (from ``logits``) have a module's ``num_labels``."""
    if x.shape[1] != num_labels:
        raise ValueError(f"logits must have {num_labels} label(s) (num_labels), got shape {tuple(logits.shape)}")


def reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` (``"none"``, ``"mean"`` or ``"sum"``) to ``loss``."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
